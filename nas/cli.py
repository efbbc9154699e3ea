"""``dc-nas``: rank ConvNet architectures with NNI on condensed and baseline proxy sets.

    dc-nas --config nas_offline_reduced
    dc-nas --config cfg.yaml --set train.epochs=20 --set proxies=[whole,dc,random]
    dc-nas score --out runs/nas --top-k 10,30,5%     # re-score saved results
    dc-nas export runs/nas benchmarks/results/nas/results.json   # the trials behind the table, to commit
    dc-nas score benchmarks/results/nas/results.json             # the table from that file alone
    dc-nas import benchmarks/results/nas/results.json runs/nas   # seed a run folder from it, then
    dc-nas --config CFG --out runs/nas                           # continue: imported trials are not rerun

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
    p.add_argument("command", nargs="?", default="run", choices=("run", "score", "export", "import"),
                   help="run the study (default); score [RUN_DIR | RESULTS.json]: re-score saved results; "
                        "export RUN_DIR RESULTS.json: write a run's results file; import RESULTS.json [RUN_DIR]: "
                        "seed a run folder from one")
    p.add_argument("paths", nargs="*", help="the folders and files of score, export and import")
    p.add_argument("--config", help="YAML file with NasConfig fields")
    for flag, (_, typ, help_) in _FLAGS.items():
        p.add_argument(f"--{flag}", type=typ, default=None, help=help_)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set train.report_every=5 (repeatable)")
    p.add_argument("--top-k", default=None, help="score: comma-separated k values, e.g. 10,30,5%%")
    p.add_argument("--json", action="store_true", help="score: print the scores as JSON instead of tables")
    p.add_argument("--fresh", action="store_true", help="delete earlier trial records of OUT before running")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="NNI and dc-nas info logs")
    return p


def _overrides(args) -> list[dict]:
    from dc_plugins.config import nest

    from .config import parse_assignment

    # Flags, then --set items: each one nested mapping for the one override mechanism
    # (dc_plugins.config.apply_overrides, through load_config).
    overrides = [nest(field, getattr(args, flag.replace("-", "_"))) for flag, (field, _, _) in _FLAGS.items()
                 if getattr(args, flag.replace("-", "_")) is not None]
    overrides += [parse_assignment(item) for item in args.set]
    if args.no_progress:
        overrides.append({"progress": False})
    return overrides


def _config(args):
    from .config import load_config

    return load_config(args.config, _overrides(args))


_ARITY = {"run": (0, 0), "score": (0, 1), "export": (2, 2), "import": (1, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from dc_plugins.device import tune_malloc

    tune_malloc()
    low, high = _ARITY[args.command]
    if not low <= len(args.paths) <= high:
        usage = {"run": "dc-nas [run] [options]", "score": "dc-nas score [RUN_DIR | RESULTS.json] [options]",
                 "export": "dc-nas export RUN_DIR RESULTS.json", "import": "dc-nas import RESULTS.json [RUN_DIR] [options]"}
        parser.error(f"{args.command} takes {low}{'' if low == high else f' to {high}'} path(s), got "
                     f"{len(args.paths)}: {usage[args.command]}")
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=r".*is found to be not a nn.Module.*")
    try:
        if args.command == "score":
            return _score(args)
        if args.command == "export":
            return _export(args)
        if args.command == "import":
            return _import(args)
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

        results = run_nas(cfg)
    except KeyboardInterrupt as err:
        print(f"dc-nas: interrupted ({err}); rerun the same command to resume", file=sys.stderr)
        return 130
    except INPUT_ERRORS as err:
        print(f"dc-nas: error: {err}", file=sys.stderr)
        return 2
    for label, run in results.runs.items():
        partial = f", {len(run.partial)} between repeats" if run.partial else ""
        print(f"{label}: {len(run.finished)} finished, {len(run.failed)} failed{partial}, {len(run.skipped)} resumed "
              f"({run.train_seconds / 60:.1f} min training)")
        for arch in run.failed:
            print(f"  failed {arch}: {(run.records[arch].error or '').splitlines()[0]}")
    if results.scores:
        print(results.report())
    print(f"results: {results.out}/results.json, results.csv, scores.md, scatter.png")
    return 0


def _score(args) -> int:
    """Re-score a run folder (rewrites its scores) or a results file (prints only)."""
    from .experiment import load_results, score_results, write_results
    from .results import results_from_file
    from .scoring import scatter_plot

    target = Path(args.paths[0]) if args.paths else None
    from_file = target is not None and not target.is_dir()
    if from_file:
        results = results_from_file(target)
    else:
        results = load_results(target if target is not None else _config(args).out)
    ks = [k.strip() for k in args.top_k.split(",")] if args.top_k else results.config["score"]["top_k"]
    reference = results.config["score"]["reference"]
    score_results(results, reference, ks)
    if not from_file:
        write_results(results)
        scatter_plot(results.runs, reference, Path(results.out) / "scatter.png")
    if args.json:
        print(json.dumps({"source": str(results.out), "commit": results.commit, "scores": results.scores,
                          "agreement": results.agreement, "choices": results.choices,
                          "spread": results.spread, "margins": results.margins}, indent=2))
    else:
        print(results.report())
    return 0


def _export(args) -> int:
    from .results import export_results

    run_dir, path = args.paths
    written = export_results(run_dir, path)
    print(f"wrote {written} ({written.stat().st_size / 1024:.0f} KB)")
    return 0


def _import(args) -> int:
    """Seed a run folder for the config of ``--config``, else the one stored in the file; flags and
    ``--set`` apply on top of either (``--root`` for where the data is on this machine)."""
    from .config import NasConfig, apply_values
    from .results import import_results, read_results_file

    path = args.paths[0]
    if args.config:
        cfg = _config(args)
    else:
        cfg = apply_values(NasConfig(), read_results_file(path)["config"])
        for values in _overrides(args):
            apply_values(cfg, values)
        cfg.validate()
    out = args.paths[1] if len(args.paths) > 1 else cfg.out
    summary = import_results(path, cfg, out)
    for label, counts in summary.items():
        if "skipped" in counts:
            print(f"{label}: not in this run's proxies; {counts['skipped']} trials left out")
        else:
            print(f"{label}: {counts['imported']} trials imported, {counts['kept']} already there")
    print(f"seeded {out}; continue with the same config: dc-nas --config ... --out {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
