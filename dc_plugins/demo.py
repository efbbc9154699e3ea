"""``make demo``: condense scikit-learn's bundled digits (offline, ships with the dependencies)
with DC and DM at 1 and 10 images per class, evaluate them against random and herding
selection, print the table and write the image grids. About 21 minutes on 2 CPU cores (measured
2026-12-02; 8.5 on a faster machine on 2026-11-26), most of it evaluation.

Budget (the ``cpu-quick`` preset, digits upsampled to 16x16 px): DC 100 outer iterations at
ipc 1 and 10 at ipc 10 (inner loop 5), DM 200 iterations, 64 real images per class per step;
3 evaluation networks, 1000 epochs at ipc 1 and 300 at ipc 10; DM's sets are evaluated with DSA
augmentation, random, herding and DC without any (``eval.augment: auto``: scikit-learn digits are
not MNIST, and the DC code augments only MNIST and BatchNorm networks).
"""

from __future__ import annotations

import argparse

from .suite import Suite


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dc_plugins.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--ipc", nargs="+", type=int, default=[1, 10])
    p.add_argument("--methods", nargs="+", default=["random", "herding", "dc", "dm"])
    p.add_argument("--eval-networks", type=int, default=3)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    from .device import tune_malloc

    tune_malloc()
    # 16 px: the 8x8 digits upsampled once; at 8 px three pooling blocks leave 1x1 features.
    suite = Suite(["digits"], args.ipc, args.methods, out=args.out, preset="cpu-quick",
                  device=args.device, eval_networks=args.eval_networks, overrides={"image_size": 16})
    results = suite.run(log=lambda s: print(s, flush=True))
    text = suite.write_tables(results)
    print("\nscikit-learn digits (1,437 train / 360 test images, 8x8 px upsampled to 16), cpu-quick preset:\n")
    print(text)
    print(f"\nimage grids (one row per class): {args.out}/digits/ipc*/<method>/grid.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
