"""``dc-nas``: rank ConvNet architectures with NNI on condensed and baseline proxy sets.

    dc-nas --config nas_offline_reduced
    dc-nas --config cfg.yaml --set train.epochs=20 --set proxies=[whole,dc,random]
    dc-nas score --out runs/nas --top-k 10,30,5%     # re-score saved results

Configuration: the defaults of :class:`nas.config.NasConfig`, then the YAML file, then flags,
then ``--set key=value`` (values read as YAML). A rerun with the same config skips every
architecture that already finished (``--fresh`` starts the trials over).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import warnings
from pathlib import Path

__all__ = ["main", "build_parser", "INPUT_ERRORS"]

# What bad input raises (OSError: missing files, and downloads that fail offline, urllib's
# URLError); the command lines print these in one line instead of a traceback.
INPUT_ERRORS = (ValueError, KeyError, OSError, FloatingPointError)

_FLAGS = {
    "out": ("out", str, "output folder (results, proxies, trial records, NNI logs)"),
    "dataset": ("data.dataset", str, "mnist, usps, fashion_mnist, svhn, cifar10 or digits"),
    "root": ("data.root", str, "torchvision-style data folder"),
    "image-size": ("data.image_size", int, "resize images to this size"),
    "proxies": ("proxies", str, "comma-separated proxy kinds or set files, e.g. whole,dc,random,early-stopping"),
    "max-archs": ("space.max_archs", int, "seeded random subset of this many architectures"),
    "ipc": ("proxy.ipc", int, "images per class of the proxies"),
    "epochs": ("train.epochs", int, "training epochs on a proxy set"),
    "whole-epochs": ("train.whole_epochs", int, "training epochs on the whole training part"),
    "engine": ("experiment.engine", str, "sequential (in-process) or ts (NNI training service)"),
    "device": ("device", str, "cpu, cuda, cuda:1 or auto"),
    "threads": ("threads", int, "torch CPU threads (default: one per core)"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dc-nas", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=("run", "score"),
                   help="run the study (default) or re-score saved results")
    p.add_argument("--config", help="YAML file with NasConfig fields")
    for flag, (_, typ, help_) in _FLAGS.items():
        p.add_argument(f"--{flag}", type=typ, default=None, help=help_)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set train.report_every=5 (repeatable)")
    p.add_argument("--top-k", default=None, help="score: comma-separated k values, e.g. 10,30,5%%")
    p.add_argument("--fresh", action="store_true", help="delete earlier trial records of OUT before running")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="NNI and dc-nas info logs")
    return p


def _config(args):
    from dc_plugins.config import nest

    from .config import load_config, parse_assignment

    # Flags, then --set items: each one nested mapping for the one override mechanism
    # (dc_plugins.config.apply_overrides, through load_config).
    overrides = [nest(field, getattr(args, flag.replace("-", "_"))) for flag, (field, _, _) in _FLAGS.items()
                 if getattr(args, flag.replace("-", "_")) is not None]
    overrides += [parse_assignment(item) for item in args.set]
    if args.no_progress:
        overrides.append({"progress": False})
    return load_config(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=r".*is found to be not a nn.Module.*")
    try:
        if args.command == "score":
            return _score(args)
        cfg = _config(args)
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2))
            return 0
        if not args.verbose:  # NNI prints every checkpoint and start/stop; experiment.log keeps them
            from nni.runtime.log import silence_stdout
            silence_stdout()
        if args.fresh:
            shutil.rmtree(Path(cfg.out) / "trials", ignore_errors=True)
        from .experiment import run_nas
        from .scoring import format_report

        results = run_nas(cfg)
    except KeyboardInterrupt as err:
        print(f"dc-nas: interrupted ({err}); rerun the same command to resume", file=sys.stderr)
        return 130
    except INPUT_ERRORS as err:
        print(f"dc-nas: error: {err}", file=sys.stderr)
        return 2
    for label, run in results.runs.items():
        print(f"{label}: {len(run.finished)} finished, {len(run.failed)} failed, {len(run.skipped)} resumed "
              f"({run.train_seconds / 60:.1f} min training)")
        for arch in run.failed:
            print(f"  failed {arch}: {(run.records[arch].error or '').splitlines()[0]}")
    if results.scores:
        print(format_report(results.scores, results.agreement, results.choices))
    print(f"results: {results.out}/results.json, results.csv, scores.md, scatter.png")
    return 0


def _score(args) -> int:
    from .experiment import load_results, score_results, write_results
    from .scoring import format_report, scatter_plot

    cfg = _config(args)
    results = load_results(cfg.out)
    ks = [k.strip() for k in args.top_k.split(",")] if args.top_k else results.config["score"]["top_k"]
    reference = results.config["score"]["reference"]
    write_results(score_results(results, reference, ks))
    scatter_plot(results.runs, reference, Path(cfg.out) / "scatter.png")
    print(format_report(results.scores, results.agreement, results.choices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
