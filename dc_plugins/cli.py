"""``dc-condense``: condense a dataset, save the set and its image grid, evaluate it.

Configuration comes from, in increasing priority: the defaults of :class:`RunConfig`, the preset
(for fields left unset), a YAML file (``--config``), the flags, and ``--set key=value`` for any
nested field (``--set matching.lr_img=0.05``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .config import (METHODS, matching_fingerprint, PRESETS, TRAJECTORY_METHODS, RunConfig, apply_overrides, load_yaml, nest,
                     parse_assignment, resolve, trajectory_fingerprint)
from .data import DATASETS, FOLDER_DATASETS, is_folder_dataset, load_dataset
from .device import machine_info, resolve_device, tune_malloc
from .fingerprint import config_hash, data_fingerprint
from .io import write_json

__all__ = ["main", "experts_main", "build_parser", "config_from_args", "run", "run_fingerprint", "load_data",
           "build_experts"]

# flag -> config field (dotted); every flag defaults to None = "not given"
_FLAGS = {
    "method": ("method", str, f"one of {', '.join(METHODS)}"),
    "dataset": ("dataset", str, f"one of {', '.join(list(DATASETS) + list(FOLDER_DATASETS))}"),
    "root": ("root", str, "torchvision-style data folder (imagefolder: holding train/ and test/)"),
    "train-dir": ("train_dir", str, "imagefolder: the training split's folder (<class>/<image>), with --test-dir"),
    "test-dir": ("test_dir", str, "imagefolder: the test split's folder, with --train-dir"),
    "ipc": ("ipc", int, "images per class"),
    "iterations": ("iterations", int, "outer iterations (matchers); preset decides if unset"),
    "batch-real": ("matching.batch_real", int, "real images per class per matching step"),
    "eval-networks": ("eval.networks", int, "networks trained to evaluate the set (0 = skip)"),
    "eval-epochs": ("eval.epochs", int, "epochs per evaluation network"),
    "preset": ("preset", str, f"one of {', '.join(PRESETS)} (default paper)"),
    "seed": ("seed", int, "seed of every random draw"),
    "device": ("device", str, "cpu, cuda, cuda:1 or auto"),
    "out": ("out", str, "output folder (set.pt, grid.png, result.json, checkpoint.pt)"),
    "net": ("net", str, "network spec, e.g. convnet-w128-d3-instance-relu-avg"),
    "image-size": ("image_size", int, "resize images to this size (28-px digits are padded to 32)"),
}


def build_parser(prog: str = "dc-condense", description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description or __doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file with RunConfig fields (nested: matching, selection, eval)")
    for flag, (_, typ, help_) in _FLAGS.items():
        p.add_argument(f"--{flag}", type=typ, default=None, help=help_)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set matching.lr_img=0.05 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt if it exists (refused if of another configuration)")
    p.add_argument("--download", action="store_true", help="let torchvision download missing data")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    cfg = load_yaml(args.config) if args.config else RunConfig()
    for flag, (field, _, _) in _FLAGS.items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            apply_overrides(cfg, nest(field, value))
    for item in args.set:
        apply_overrides(cfg, parse_assignment(item))
    if args.download:
        cfg.download = True
    return resolve(cfg)


def load_data(cfg: RunConfig, device="cpu", progress: bool = True):
    """The run's ``(train, test)`` datasets."""
    kw = dict(image_size=cfg.image_size, download=cfg.download, device=device, flip=cfg.flip)
    if is_folder_dataset(cfg.dataset):
        kw.update(train_dir=cfg.train_dir, test_dir=cfg.test_dir, cache_dir=cfg.cache_dir, progress=progress)
    return load_dataset(cfg.dataset, cfg.root, True, **kw), load_dataset(cfg.dataset, cfg.root, False, **kw)


def run_fingerprint(cfg: RunConfig, train, test) -> dict:
    """Every setting of a resolved ``cfg`` that can change ``result.json``, and a hash of the
    data (see :mod:`dc_plugins.fingerprint` for what is left out and why)."""
    from dataclasses import asdict

    # eval.parallel (networks trained together) changes the networks only by float rounding, as the
    # device does, and eval.workers (processes) not at all; left out, results written before they
    # existed keep their fingerprint
    # learned_lr is recorded only when switched off: it acts on sets with a learned step size only
    evaluation = {k: v for k, v in asdict(cfg.eval).items()
                  if k not in ("parallel", "workers") and not (k == "learned_lr" and v is True)}
    fp = {"method": cfg.method, "dataset": cfg.dataset, "ipc": cfg.ipc, "iterations": cfg.iterations,
          "seed": cfg.seed, "net": cfg.net, "image_size": cfg.image_size,
          "matching": matching_fingerprint(cfg.matching), "selection": asdict(cfg.selection), "eval": evaluation,
          "data": data_fingerprint(train.images, train.labels, test.images, test.labels),
          # only when set, so that runs made before the field existed keep their hashes
          **({"flip": cfg.flip} if cfg.flip is not None else {})}
    if cfg.method in TRAJECTORY_METHODS:  # only there: the other methods' fingerprints stay as they were
        fp["trajectory"] = trajectory_fingerprint(cfg.trajectory, cfg.method)
    return fp


def run(cfg: RunConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Condense, save, evaluate; returns the result dictionary written to ``result.json``.

    ``resume=True`` continues from ``OUT/checkpoint.pt`` when it exists and is of this
    configuration; one of another configuration is refused
    (:class:`~dc_plugins.fingerprint.ConfigMismatchError`, naming the differing fields).
    """
    from .condense import make_condenser
    from .evaluation import evaluate_set

    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    train, test = load_data(cfg, device, progress)
    fingerprint = run_fingerprint(cfg, train, test)
    out.mkdir(parents=True, exist_ok=True)
    condenser = make_condenser(train, cfg.method, cfg.ipc, net=cfg.net, matching=cfg.matching,
                               selection=cfg.selection, preset=cfg.preset, seed=cfg.seed,
                               trajectory=cfg.trajectory, progress=progress)
    experts_seconds = None
    if cfg.method in TRAJECTORY_METHODS:  # experts apart: their time is not the condensation's
        t0 = time.perf_counter()
        condenser.experts = condenser.make_experts(out / "experts")
        experts_seconds = time.perf_counter() - t0
    checkpoint = out / "checkpoint.pt"
    if resume and checkpoint.exists() and hasattr(condenser, "load_checkpoint"):
        condenser.load_checkpoint(checkpoint)
    done_before = getattr(condenser, "iteration", 0)
    start, cpu_start = time.perf_counter(), time.process_time()
    syn = condenser.run(cfg.iterations, checkpoint=checkpoint, checkpoint_every_s=cfg.checkpoint_minutes * 60,
                        progress=progress)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    ran = max(getattr(condenser, "iteration", 0) - done_before, 0)
    syn.save(out / "set.pt")
    syn.save_grid(out / "grid.png")
    result = {"method": cfg.method, "dataset": cfg.dataset, "ipc": cfg.ipc, "iterations": cfg.iterations,
              "preset": cfg.preset, "seed": cfg.seed, "device": str(device),
              "condense_seconds": seconds, "seconds_per_iteration": seconds / ran if ran else None,
              # CPU time of all threads: a contention-proof cost measure next to the wall clock
              "cpu_seconds_per_iteration": cpu_seconds / ran if ran else None,
              "threads": torch.get_num_threads(), "machine": machine_info(),
              "experts_seconds": experts_seconds,
              # DC/DSA: the loops used and the matching steps / inner epochs executed (all runs)
              "loops": syn.config.get("loops"),
              # SelMatch: the window start chosen and each window's validation accuracy (not the indices)
              "selmatch": ({k: v for k, v in syn.config["selmatch"].items() if k != "indices"}
                           if "selmatch" in syn.config else None),
              "accuracy_mean": None, "accuracy_std": None, "accuracies": [],
              "config": cfg.to_dict(), "fingerprint": fingerprint, "config_hash": config_hash(fingerprint)}
    if cfg.eval.networks > 0:
        # a set learned on ZCA-whitened data is trained and tested in that space, as MTT evaluates
        ev = evaluate_set(syn, test, config=cfg.eval, seed=cfg.seed, progress=progress,
                          zca=getattr(condenser, "zca", None))
        result.update(accuracy_mean=ev.mean, accuracy_std=ev.std, accuracies=ev.accuracies,
                      eval_epochs=ev.epochs, eval_augment=ev.augment, eval_net=ev.net,
                      eval_seconds=ev.seconds, eval_lr=ev.lr)  # the set's learned step size for MTT
    write_json(out / "result.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_malloc()
    try:
        cfg = config_from_args(args)
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2))
            return 0
        result = run(cfg, resume=args.resume, progress=not args.no_progress)
    except (ValueError, KeyError, FileNotFoundError, FloatingPointError) as err:
        print(f"dc-condense: error: {err}", file=sys.stderr)
        return 2
    acc = ("not evaluated" if result["accuracy_mean"] is None else
           f"{100 * result['accuracy_mean']:.2f} ± {100 * result['accuracy_std']:.2f} %")
    spi = result["seconds_per_iteration"]
    print(f"{result['method']} {result['dataset']} ipc={result['ipc']}: {acc}"
          + (f", {spi:.2f} s/iteration" if spi else "") + f" -> {cfg.out}")
    return 0


def build_experts(cfg: RunConfig, *, progress: bool = True) -> dict:
    """Train (or complete) the expert trajectories of an ``mtt`` run: into ``trajectory.buffer``
    when set, else ``OUT/experts`` (where ``dc-condense --method mtt --out OUT`` looks for them).
    Finished experts are kept, never retrained."""
    from .condense import make_condenser

    device = resolve_device(cfg.device)
    train, _ = load_data(cfg, device, progress)  # the same data (image folders included) as dc-condense
    root = Path(cfg.trajectory.buffer) if cfg.trajectory.buffer else Path(cfg.out) / "experts"
    matcher = make_condenser(train, cfg.method, cfg.ipc, net=cfg.net, matching=cfg.matching,
                             selection=cfg.selection, preset=cfg.preset, seed=cfg.seed,
                             trajectory=cfg.trajectory, progress=progress)
    start = time.perf_counter()
    experts = matcher.build_experts(root)
    return {"buffer": str(root), "experts": experts.num_experts, "epochs": experts.epochs,
            "trained": experts.trained, "seconds": time.perf_counter() - start, "meta": experts.meta}


def experts_main(argv: list[str] | None = None) -> int:
    """``dc-experts``: the flags of ``dc-condense`` (``--method`` is ``mtt``); builds the experts only."""
    parser = build_parser("dc-experts", "Train the expert trajectories of trajectory matching (MTT) "
                                        "into trajectory.buffer or OUT/experts; finished experts are kept.")
    args = parser.parse_args(argv)
    tune_malloc()
    try:
        if args.method is None:
            args.method = "mtt"
        cfg = config_from_args(args)
        if cfg.method not in TRAJECTORY_METHODS:
            raise ValueError(f"dc-experts builds experts for {', '.join(TRAJECTORY_METHODS)}, not {cfg.method!r}")
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2))
            return 0
        info = build_experts(cfg, progress=not args.no_progress)
    except (ValueError, KeyError, FileNotFoundError, FloatingPointError) as err:
        print(f"dc-experts: error: {err}", file=sys.stderr)
        return 2
    print(f"{info['experts']} experts x {info['epochs']} epochs in {info['buffer']} "
          f"({info['trained']} trained now, {info['experts'] - info['trained']} kept; {info['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
