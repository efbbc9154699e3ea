"""Reproduce the DC paper's NAS table: rank ConvNets with proxy training sets in NNI.

    .venv/bin/python examples/nas_proxy.py --setting offline-reduced   # USPS, 120 archs, 2 CPU cores, ~40 min
    .venv/bin/python examples/nas_proxy.py --setting cifar10-full      # CIFAR-10, 720 archs, GPU
    .venv/bin/python examples/nas_proxy.py --setting cifar10-jpeg-reduced   # CIFAR-10-JPEG, 120 archs, ~5.5 h CPU
    .venv/bin/python examples/nas_proxy.py --setting offline-reduced --tiny   # a 2-minute check

Each setting is a YAML config shipped inside the ``nas`` package (nas/configs/nas_offline_reduced.yaml,
nas_cifar10_full.yaml, nas_cifar10_jpeg_reduced.yaml; ``dc-nas --config nas_offline_reduced`` reads the same file, from a pip
install too) that documents its data, grid subset, image size and epochs; any field can be
overridden with ``--set key=value``. ``--tiny`` runs the same pipeline on 4
architectures with a few steps each, to check an installation. Interrupted runs resume where
they stopped when the same command is run again.

Output (under the config's ``out``): results.json / results.csv (every trial), scores.md /
scores.csv (the table, and each run's top-k by design choice), scatter.png, proxies/ (cached proxy sets), nni/ (NNI experiment logs).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from nas.cli import INPUT_ERRORS  # noqa: E402
from nas.config import load_config, parse_assignment  # noqa: E402

SETTINGS = {"offline-reduced": "nas_offline_reduced", "cifar10-full": "nas_cifar10_full",
            "cifar10-jpeg-reduced": "nas_cifar10_jpeg_reduced"}  # packaged configs

# The DC paper's table (CIFAR-10, 720 ConvNets, 10 images per class, 100 epochs), for comparison.
PAPER = """| proxy (paper, CIFAR-10) | best arch's whole-set acc. (%) | Spearman (top) | time (min) | storage (images) |
|---|---|---|---|---|
| random | 76.2 | -0.21 | 18.8 | 100 |
| herding | 76.2 | -0.20 | 18.8 | 100 |
| dc | 84.5 | 0.79 | 18.8 | 100 |
| early-stopping | 84.5 | 0.42 | 18.8 | 50,000 |
| whole | 85.9 | 1.00 | 8,604.3 | 50,000 |"""

TINY = [
    "space.max_archs=4", "train.epochs=4", "train.whole_epochs=1", "train.report_every=2",
    "proxy.iterations={dc: 2, dm: 10}", "proxy.selection={reference_epochs: 1}", "score.top_k=['2', '3']",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=sorted(SETTINGS), default="offline-reduced")
    p.add_argument("--config", help="another YAML file instead of the setting's")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--tiny", action="store_true", help="4 architectures, a few steps: checks the pipeline")
    p.add_argument("--out", help="output folder (default: the config's out, + '-tiny' with --tiny)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message=r".*is found to be not a nn.Module.*")

    path = Path(args.config) if args.config else SETTINGS[args.setting]
    try:
        overrides = [parse_assignment(s) for s in (TINY if args.tiny else [])]
        overrides += [parse_assignment(s) for s in args.set]
        cfg = load_config(path, overrides)
        if args.out:
            cfg.out = args.out
        elif args.tiny:
            cfg.out = cfg.out.rstrip("/") + "-tiny"

        from nni.runtime.log import silence_stdout

        from nas.experiment import run_nas

        silence_stdout()  # NNI's own log stays in <out>/nni/<experiment>/log/experiment.log
        print(f"config: {path}{' (tiny)' if args.tiny else ''} -> {cfg.out}")
        results = run_nas(cfg)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except INPUT_ERRORS as err:  # as dc-nas: one clear line
        print(f"nas_proxy: error: {err}", file=sys.stderr)
        return 2
    d = results.data
    print(f"data: {d['dataset']} {d['channels']}x{d['image_size']}x{d['image_size']}, "
          f"{d['train_images']} training / {d['val_images']} validation images; {len(results.archs)} architectures")
    for label, run in results.runs.items():
        print(f"  {label}: {len(run.finished)} finished, {len(run.failed)} failed, "
              f"{run.train_seconds / 60:.1f} min training, {run.proxy.build_seconds / 60:.1f} min building")
    print()
    print(results.report())
    print()
    print(PAPER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
