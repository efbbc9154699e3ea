"""The continual-learning runner: memories x distillation x seeds on a digit stream (DC paper, Sec. 4)
or a class-incremental split of one image dataset (``stream: split``, e.g. CIFAR-10-JPEG).

Each run trains one learner through the stream with :func:`~strategies.make_e2e_strategy`
(End-to-End replay: a memory, with or without knowledge distillation). After each stage the
learner is tested on the test sets of every domain seen so far; :mod:`strategies.report` makes
the table (mean of those accuracies, mean ± std over seeds, as the paper; and Avalanche's stream
forgetting after the last stage).

Memories (``memories`` of :class:`ContinualConfig`):

* ``none``: no replay (fine-tuning, with distillation when it is on);
* ``learner-herding``: Avalanche's ``ParametricBuffer`` + ``HerdingSelectionStrategy`` on the
  learner's own features (iCaRL/E2E), :class:`~strategies.herding.LearnerHerdingBuffer`;
* ``class-balanced-random``: Avalanche's ``ClassBalancedBuffer`` (random real exemplars per class);
* ``reference-herding``: the condensed buffer's method ``herding`` (the engine's herding, on the
  features of a separately trained reference ConvNet);
* ``dc``, ``dsa``, ``dm``, ``random``, ``kcenter``, ``forgetting``: the condensed buffer's methods.

``herding`` alone is refused: it would name two different baselines. (``random`` is the
condensed buffer's random coreset, ``class-balanced-random`` Avalanche's own random buffer.)

**Split streams** (``stream: split``): ``dataset`` (``imagefolder`` at ``root``, ``cifar10``, ...)
split into ``experiences`` experiences of classes by Avalanche's ``class_incremental_benchmark``,
Avalanche's split-CIFAR-10 shape; the class order is ``class_order`` or, when ``None``, drawn from
each run's seed (so the runs of one seed share their stream, and the spread over seeds includes the
class order); ``learner_augment: crop-flip`` augments the learner's real training items.
``condense_per_method`` sets condensation fields per memory (``{dm: {iterations: 1000}}``: DM is
cheap, DC is not).

**Resume.** A run is stored in ``out/runs/<memory>-<kd|nokd>-s<seed>/result.json`` with its
resolved configuration (:func:`resolved_run`: everything that changes its result, nothing about
where or how fast it ran) and that configuration's hash. Repeating the command reuses a finished
run only when the hash matches; a run folder of another configuration is refused before
anything runs, with a one-line :class:`ConfigMismatchError` naming the differing fields
(``old -> new``). So a table never mixes runs of different configurations.

Configuration: a YAML file (``--config continual_digits``, shipped in ``strategies/configs``)
fills :class:`ContinualConfig` (sections ``train`` = :class:`~strategies.E2EConfig`, ``condense``
= :class:`~dc_plugins.avalanche.CondensedReplayConfig`; a top-level ``offline`` section is applied
with ``--offline``), then ``--set key=value`` items (``--set train.epochs=2``), all through
:mod:`dc_plugins.config` (``read_yaml_mapping``, ``apply_overrides``, ``parse_assignment``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import yaml

from dc_plugins.avalanche import CondensedReplayConfig
from dc_plugins.config import (METHODS, TRAJECTORY_METHODS, apply_overrides, matching_fingerprint, parse_assignment,
                               read_yaml_mapping)
from dc_plugins import fingerprint
from dc_plugins.fingerprint import ConfigMismatchError, config_diff  # the engine's: one rule everywhere
from dc_plugins.io import atomic_path, write_json

from .e2e import AMBIGUOUS_HERDING, E2EConfig
from .report import summarise, write_outputs

__all__ = [
    "STREAMS",
    "MEMORIES",
    "ContinualConfig",
    "ConfigMismatchError",
    "load_config",
    "build_stream",
    "data_fingerprint",
    "resolved_run",
    "config_hash",
    "config_diff",
    "run_name",
    "run_one",
    "run_continual",
    "build_parser",
    "main",
    "cli",
]

STREAMS = ("svhn-mnist-usps", "mnist-usps-digits", "digits", "split")
CONDENSED_METHODS = tuple(m for m in METHODS if m != "herding")
MEMORIES = ("none", "learner-herding", "class-balanced-random", "reference-herding") + CONDENSED_METHODS
AVALANCHE_MEMORIES = ("none", "learner-herding", "class-balanced-random")  # no condensed buffer
# Fields of split streams only: left out of the other streams' resolved runs, so that the digit
# runs made before these fields existed keep their configuration hashes.
SPLIT_FIELDS = ("dataset", "experiences", "class_order", "learner_augment")

# ContinualConfig fields that do not change a run's result: where the data and outputs are,
# the device and threads, and the grid of runs (memory, distillation and seed are per run).
NOT_RESULT = ("root", "download", "device", "threads", "out", "memories", "distillation", "seeds")
CONDENSE_NOT_RESULT = ("device", "cache_dir", "progress")


@dataclass
class ContinualConfig:
    """Everything one invocation runs: the stream, the grid (``memories`` x ``distillation`` x
    ``seeds``), the learner and the two recipe sections. ``train.memory``, ``train.distillation``,
    ``condense.method`` and ``condense.seed`` are set per run from the grid."""

    stream: str = "svhn-mnist-usps"
    scenario: str = "class"
    root: str = "data"
    download: bool = False
    image_size: int = 32
    channels: int = 3
    max_train_per_class: Optional[int] = None
    digits_experiences: int = 5
    # stream "split": one dataset split by classes (see the module doc)
    dataset: str = "imagefolder"
    experiences: int = 5
    class_order: Optional[list[int]] = None   # None: drawn from each run's seed
    learner_augment: str = "none"             # none | crop-flip (the learner's real training items)
    memories: list[str] = field(default_factory=lambda: ["learner-herding", "dc"])
    distillation: list[bool] = field(default_factory=lambda: [False, True])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    net: str = "convnet-w128-d3-instance-relu-avg"
    device: str = "auto"
    threads: Optional[int] = None
    out: str = "runs/continual_digits"
    train: E2EConfig = field(default_factory=E2EConfig)
    condense: CondensedReplayConfig = field(default_factory=CondensedReplayConfig)
    # condense fields per memory, over the condense section: {dm: {iterations: 1000}, dc: {...}}
    condense_per_method: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> "ContinualConfig":
        if self.stream not in STREAMS:
            raise ValueError(f"unknown stream {self.stream!r}; allowed: {', '.join(STREAMS)}")
        if "herding" in self.memories:
            raise ValueError(f"memory {AMBIGUOUS_HERDING}")
        bad = [m for m in self.memories if m not in MEMORIES]
        if bad or not self.memories:
            raise ValueError(f"memories {bad or self.memories!r} not allowed; each must be one of {', '.join(MEMORIES)}")
        if len(set(self.memories)) < len(self.memories) or len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"memories {self.memories} and seeds {self.seeds} must not repeat a value")
        if not self.seeds or not self.distillation:
            raise ValueError("seeds and distillation need at least one value each")
        self.train, self.condense = self.train.replace(), self.condense.replace()  # re-validate the sections
        from dc_plugins.avalanche.transforms import LEARNER_AUGMENTS

        if self.learner_augment not in LEARNER_AUGMENTS:
            raise ValueError(f"unknown learner_augment {self.learner_augment!r}; allowed: {', '.join(LEARNER_AUGMENTS)}")
        if self.stream == "split" and self.scenario != "class":
            raise ValueError(f"stream 'split' is class-incremental; scenario {self.scenario!r} not allowed (allowed: class)")
        if self.experiences < 1:
            raise ValueError(f"experiences must be positive, got {self.experiences}")
        for memory, values in self.condense_per_method.items():
            if memory not in MEMORIES or memory in AVALANCHE_MEMORIES:
                allowed = [m for m in MEMORIES if m not in AVALANCHE_MEMORIES]
                raise ValueError(f"condense_per_method: {memory!r} is not a condensed memory; allowed: "
                                 f"{', '.join(allowed)}")
            try:
                self.condense.replace(**values)
            except KeyError as err:
                raise KeyError(f"condense_per_method.{memory}: {err.args[0]}") from None
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _fill(cfg: ContinualConfig, values: dict) -> None:
    apply_overrides(cfg, {k: v for k, v in values.items() if k != "offline"})


def load_config(path: str | None = None, *, offline: bool = False, sets: Sequence[str] = ()) -> ContinualConfig:
    """The resolved config: defaults, then the YAML file (a path or a packaged name), then with
    ``offline`` the offline stream and the file's ``offline`` section, then ``sets``
    (``key=value``). Unknown keys raise ``KeyError`` naming the allowed ones."""
    cfg = ContinualConfig()
    data = read_yaml_mapping(path) if path else {}
    _fill(cfg, data)
    if offline:
        _fill(cfg, {"stream": "mnist-usps-digits", "image_size": 28, "channels": 1})
        _fill(cfg, data.get("offline") or {})
    for item in sets:
        _fill(cfg, parse_assignment(item))
    return cfg.validate()


# -- the stream ---------------------------------------------------------------------------------

def load_split_data(cfg: ContinualConfig, *, progress: bool = True):
    """The (train, test) datasets a split stream is cut from (decoded once; image folders from
    their tensor cache after the first time)."""
    from dc_plugins.avalanche import streams
    from dc_plugins.data import is_folder_dataset

    folder = {"progress": progress} if is_folder_dataset(cfg.dataset) else {}
    (pair,) = streams.load_domains([cfg.dataset], cfg.root, download=cfg.download, image_size=cfg.image_size,
                                   channels=cfg.channels, max_train_per_class=cfg.max_train_per_class, **folder)
    return pair


def seed_dependent_stream(cfg: ContinualConfig) -> bool:
    """Whether the stream differs between run seeds (a split stream's seed-drawn class order)."""
    return cfg.stream == "split" and cfg.class_order is None


def build_stream(cfg: ContinualConfig, seed: int = 0, data=None):
    """The benchmark of ``cfg`` (for a split stream without ``class_order``: of run ``seed``);
    ``data``: the split stream's (train, test), if already loaded (:func:`load_split_data`)."""
    from dc_plugins.avalanche import streams

    if cfg.stream == "split":
        from dc_plugins.avalanche.transforms import make_learner_transform

        train, test = data if data is not None else load_split_data(cfg)
        return streams.class_split_stream(train, test, cfg.experiences, class_order=cfg.class_order, seed=seed,
                                          train_transform=make_learner_transform(cfg.learner_augment,
                                                                                 train.image_size))
    if cfg.stream == "digits":
        return streams.sklearn_digits_stream(cfg.digits_experiences, scenario=cfg.scenario,
                                             image_size=cfg.image_size, channels=cfg.channels)
    domains = streams.PAPER_DOMAINS if cfg.stream == "svhn-mnist-usps" else streams.OFFLINE_DOMAINS
    return streams.digit_stream(cfg.root, scenario=cfg.scenario, download=cfg.download and cfg.stream != "mnist-usps-digits",
                                image_size=cfg.image_size, channels=cfg.channels, domains=domains,
                                max_train_per_class=cfg.max_train_per_class)


def data_fingerprint(benchmark) -> str:
    """SHA-256 (16 hex digits) of every train and test image and label of the stream, in order
    (about 1 s for the offline stream's 21k images on one core): the same files at another
    ``root`` give the same fingerprint; other files, sizes or subsets do not."""
    from torch.utils.data import DataLoader

    h = hashlib.sha256()
    for stream in (benchmark.train_stream, benchmark.test_stream):
        for exp in stream:
            data = exp.dataset.eval() if hasattr(exp.dataset, "eval") else exp.dataset
            for batch in DataLoader(data, batch_size=1024, collate_fn=getattr(data, "collate_fn", None),
                                    generator=torch.Generator()):  # not the global one
                for part in batch:
                    h.update(torch.as_tensor(part).detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _num_outputs(benchmark, scenario: str) -> int:
    if scenario == "task":
        return max(len(e.classes_in_this_experience) for e in benchmark.train_stream)
    return int(benchmark.n_classes)


# -- one run's configuration --------------------------------------------------------------------

def run_name(memory: str, distill: bool, seed: int) -> str:
    return f"{memory}-{'kd' if distill else 'nokd'}-s{seed}"


def run_sections(cfg: ContinualConfig, memory: str, distill: bool, seed: int
                 ) -> tuple[E2EConfig, Optional[CondensedReplayConfig]]:
    """The E2E recipe of one run, and its condensed-memory settings (``None`` when the run has
    no condensed memory)."""
    kind = memory if memory in AVALANCHE_MEMORIES else "condensed"
    train = cfg.train.replace(memory=kind, distillation=distill,
                              balanced_finetuning=cfg.train.balanced_finetuning and memory != "none")
    if kind != "condensed":
        return train, None
    method = "herding" if memory == "reference-herding" else memory
    return train, cfg.condense.replace(**cfg.condense_per_method.get(memory, {})).replace(method=method, seed=seed)


def resolved_run(cfg: ContinualConfig, memory: str, distill: bool, seed: int, data: str) -> dict:
    """Everything that changes one run's result, as plain JSON values: the stream (``data`` is
    :func:`data_fingerprint`), the learner, the run's E2E recipe and, for a condensed memory, its
    condensation settings with the preset's values filled in at ``train.ipc``. Nothing about the
    device, threads, paths or progress bars."""
    train, condense = run_sections(cfg, memory, distill, seed)
    left_out = NOT_RESULT + ("train", "condense", "condense_per_method")
    if cfg.stream != "split":
        left_out += SPLIT_FIELDS
    shared = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in left_out}
    resolved: dict[str, Any] = {"memory": memory, "distillation": distill, "seed": seed, **shared, "data": data,
                                "train": dataclasses.asdict(train), "condense": None}
    if condense is not None:
        section = {k: v for k, v in dataclasses.asdict(condense).items() if k not in CONDENSE_NOT_RESULT}
        if condense.method not in TRAJECTORY_METHODS:  # the section added for MTT: other runs keep their hashes
            section.pop("trajectory", None)
        if isinstance(section.get("matching"), dict):  # likewise matching.autocast, when off
            section["matching"] = {k: v for k, v in section["matching"].items()
                                   if not (k == "autocast" and v is None)}
        if train.ipc is not None:  # the values the preset fills in (iterations, loops, lr, init, ...)
            engine = condense.resolved(train.ipc)
            section["resolved"] = {"iterations": engine.iterations, "matching": matching_fingerprint(engine.matching),
                                   "selection": dataclasses.asdict(engine.selection)}
            if condense.method in TRAJECTORY_METHODS:
                section["resolved"]["trajectory"] = dataclasses.asdict(engine.trajectory)
        resolved["condense"] = section
    return json.loads(json.dumps(resolved, default=str))


def config_hash(resolved: dict) -> str:
    """The engine's configuration hash, cut to 16 hex digits: it is printed in every log line."""
    return fingerprint.config_hash(resolved)[:16]


def _reusable(result_file: Path, resolved: dict) -> Optional[dict]:
    """The stored result if ``result_file`` holds a run of exactly ``resolved``; ``None`` if the
    run has not finished; :class:`ConfigMismatchError` if it is another configuration's."""
    if not result_file.is_file():
        return None
    try:
        stored = json.loads(result_file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigMismatchError(f"{result_file} is not a readable result file ({type(err).__name__}); "
                                  f"delete its run folder or choose another out") from None
    if not isinstance(stored, dict) or "config_hash" not in stored or "config" not in stored:
        raise ConfigMismatchError(f"{result_file} has no configuration hash (written before resume checked it); "
                                  f"delete its run folder or choose another out")
    if stored["config_hash"] != config_hash(resolved):
        diff = config_diff(stored["config"], resolved) or ["(stored hash does not match its configuration)"]
        shown = ", ".join(diff[:6]) + (f", and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise ConfigMismatchError(f"{result_file.parent} is a run of another configuration ({shown}); "
                                  f"choose another out or delete that run folder to rerun it")
    return stored


# -- running -------------------------------------------------------------------------------------

def _exp_metric(metrics: dict, prefix: str, j: int) -> Optional[float]:
    suffix = f"/Exp{j:03d}"
    hits = [v for k, v in metrics.items() if k.startswith(prefix) and k.endswith(suffix)]
    if len(hits) > 1:
        raise RuntimeError(f"expected one {prefix}...{suffix} metric, found {len(hits)}")
    return float(hits[0]) if hits else None


def run_one(cfg: ContinualConfig, benchmark, memory: str, distill: bool, seed: int, device: torch.device,
            out: Path, *, data: str, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train one learner through the stream; write and return its ``result.json`` content."""
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.logging import CSVLogger, TextLogger
    from avalanche.training.determinism.rng_manager import RNGManager
    from avalanche.training.plugins import EvaluationPlugin

    from dc_plugins.data import make_generator

    from .e2e import make_e2e_strategy
    from .models import make_learner

    resolved = resolved_run(cfg, memory, distill, seed, data)
    name = run_name(memory, distill, seed)
    run_dir = out / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    # Avalanche's data loaders shuffle with the global generators: seed them per run (Avalanche's
    # own way), so that a run's result depends on its configuration, not on the runs before it.
    RNGManager.set_random_seeds(seed)
    x0 = benchmark.train_stream[0].dataset[0][0]
    model = make_learner(cfg.net, channels=x0.shape[0], image_size=x0.shape[-1],
                         num_classes=_num_outputs(benchmark, cfg.scenario), multi_head=cfg.scenario == "task",
                         generator=make_generator(seed))
    train, condense = run_sections(cfg, memory, distill, seed)
    if condense is not None:
        condense = condense.replace(progress=progress, cache_dir=condense.cache_dir or str(out / "condensed-cache"))
    stages: list[dict] = []
    start = time.perf_counter()
    with open(run_dir / "log.txt", "w") as log_file:
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loss_metrics(stream=True),
                                     forgetting_metrics(experience=True, stream=True),
                                     loggers=[TextLogger(log_file), CSVLogger(str(run_dir / "avalanche"))])
        strategy = make_e2e_strategy(model, train, condensed=condense, device=device, evaluator=evaluator, seed=seed)
        for i, exp in enumerate(benchmark.train_stream):
            t0 = time.perf_counter()
            strategy.train(exp)
            metrics = strategy.eval(benchmark.test_stream[:i + 1])
            accs = [_exp_metric(metrics, "Top1_Acc_Exp/eval_phase/test_stream/", j) for j in range(i + 1)]
            # Avalanche's forgetting of experience j: its accuracy right after training on it minus now
            forgetting = [_exp_metric(metrics, "ExperienceForgetting/eval_phase/test_stream/", j) for j in range(i)]
            if any(a is None for a in accs + forgetting):
                raise RuntimeError(f"no accuracy or forgetting for a test experience after stage {i + 1}: "
                                   f"{sorted(metrics)}")
            stages.append({"stage": i + 1, "accuracies": accs, "mean_seen": statistics.fmean(accs),
                           "forgetting": forgetting,
                           "stream_forgetting": float(metrics.get("StreamForgetting/eval_phase/test_stream", 0.0)),
                           "seconds": round(time.perf_counter() - t0, 2)})
            log(f"  {name} stage {i + 1}: seen-average {100 * stages[-1]['mean_seen']:.2f} % "
                f"(per domain {', '.join(f'{100 * a:.1f}' for a in accs)}), forgetting "
                f"{100 * stages[-1]['stream_forgetting']:.2f} in {stages[-1]['seconds']:.0f} s")
    replay = next((p for p in strategy.plugins if hasattr(p, "storage_policy")), None)
    if replay is not None:  # for the memory probe (runs/ only: images are never committed)
        from .memory_probe import save_memory

        save_memory(run_dir, replay.storage_policy)
    result = {"memory": memory, "distillation": distill, "seed": seed, "stages": stages,
              "seconds": round(time.perf_counter() - start, 1),
              "memory_size": len(replay.storage_policy.buffer) if replay else 0,
              "condensation": getattr(getattr(replay, "storage_policy", None), "history", []),
              "config_hash": config_hash(resolved), "config": resolved}
    write_json(run_dir / "result.json", result)
    return result


def run_continual(cfg: ContinualConfig, *, progress: bool = True, log: Callable[[str], None] = print,
                  benchmark=None, probe_epochs: int | None = None, probe_networks: int = 3) -> list[dict]:
    """Run (or reuse) every run of the grid, write the outputs under ``cfg.out`` and return the
    table rows (:func:`strategies.report.summarise`).

    Outputs: ``table.md``, ``table.csv``, ``results.csv``, ``accuracy.png``, ``config.json`` (the
    config, the data fingerprint, the table's configuration hash and each run's), and
    ``runs/<name>/`` with ``result.json``, ``memory.pt`` (the final memory) and Avalanche's logs.
    Existing run folders are checked against the resolved configuration first
    (:class:`ConfigMismatchError`, nothing written).

    ``probe_epochs``: also train ``probe_networks`` fresh learners on each run's final memory alone
    (:mod:`strategies.memory_probe`; runs without a ``memory.pt``, finished before memories were
    saved, are listed as not probed) and write ``probe.md``.
    """
    from dc_plugins.device import resolve_device

    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    grid = [(m, d, s) for s in cfg.seeds for d in cfg.distillation for m in cfg.memories]
    # one benchmark for all runs, or (a split stream's seed-drawn class order) one per seed
    if benchmark is not None or not seed_dependent_stream(cfg):
        shared = benchmark if benchmark is not None else build_stream(cfg)
        benchmarks = {seed: shared for seed in cfg.seeds}
    else:
        pair = load_split_data(cfg, progress=progress)
        benchmarks = {seed: build_stream(cfg, seed, pair) for seed in cfg.seeds}
    prints = {id(bm): data_fingerprint(bm) for bm in benchmarks.values()}
    fingerprints = {seed: prints[id(bm)] for seed, bm in benchmarks.items()}
    data = fingerprints[cfg.seeds[0]] if len(prints) == 1 else fingerprints
    resolved = {run_name(*g): resolved_run(cfg, *g, fingerprints[g[2]]) for g in grid}
    done = {name: _reusable(out / "runs" / name / "result.json", r) for name, r in resolved.items()}
    table_config = {"runs": {name: config_hash(r) for name, r in resolved.items()}}
    write_json(out / "config.json", {"config": cfg.to_dict(), "data": data,
                                     "config_hash": config_hash(table_config), **table_config})
    for seed in (cfg.seeds if len(prints) > 1 else cfg.seeds[:1]):
        bm = benchmarks[seed]
        order = f", seed {seed}: classes {[e.classes_in_this_experience for e in bm.train_stream]}" \
            if cfg.stream == "split" else ""
        log(f"stream {cfg.stream} ({cfg.scenario}-incremental, data {fingerprints[seed]}{order}): "
            f"{[len(e.dataset) for e in bm.train_stream]} training images per experience, "
            f"{[len(e.dataset) for e in bm.test_stream]} test images; device {device}")
    results = []
    for memory, distill, seed in grid:
        name = run_name(memory, distill, seed)
        if done[name] is not None:
            results.append(done[name])
            log(f"  {name}: done earlier with this configuration ({done[name]['config_hash']}), reusing it")
            continue
        results.append(run_one(cfg, benchmarks[seed], memory, distill, seed, device, out, data=fingerprints[seed],
                               progress=progress, log=log))
        write_outputs(out, results, summarise(results))
    rows = summarise(results)
    write_outputs(out, results, rows)
    if probe_epochs:
        from .memory_probe import probe_markdown, probe_memory

        probes, missing = {}, []
        for memory, distill, seed in grid:
            name = run_name(memory, distill, seed)
            p = probe_memory(out / "runs" / name, benchmarks[seed], net=cfg.net, epochs=probe_epochs,
                             networks=probe_networks, seed=seed, flip=cfg.learner_augment == "crop-flip",
                             augment=cfg.learner_augment == "crop-flip", device=device)
            if p is None:
                missing.append(name)
            else:
                probes[(memory, distill, seed)] = p
                log(f"  {name}: memory alone {100 * p['accuracy_mean']:.2f} % ({p['memory_images']} images)")
        text = probe_markdown(probes) if probes else ""
        if missing:
            text += (f"\nNot probed (no memory.pt: finished before memories were saved; rerun them in an empty "
                     f"--out): {', '.join(missing)}\n")
        with atomic_path(out / "probe.md") as tmp:
            tmp.write_text(f"Probe: {probe_epochs} epochs, {probe_networks} networks of {cfg.net}.\n\n" + text)
    return rows


# -- command line --------------------------------------------------------------------------------

def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dc-continual", description=description or __doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file or packaged config name (shipped: continual_digits, "
                                    "continual_cifar10_jpeg)")
    p.add_argument("--offline", action="store_true",
                   help="MNIST-10k -> USPS -> scikit-learn digits (no internet), plus the YAML's offline section")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default from the config)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--device", help="cpu, cuda, auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no condensation progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--probe-memory", type=int, default=None, metavar="EPOCHS",
                   help="also train fresh learners on each run's final memory alone for EPOCHS epochs (probe.md)")
    p.add_argument("--probe-networks", type=int, default=3, metavar="N", help="learners per memory probe (default 3)")
    return p


# Bad input of a user (config keys and values, files, a run folder of another configuration)
INPUT_ERRORS = (ValueError, KeyError, OSError, FloatingPointError)


def main(argv: Sequence[str] | None = None, description: str | None = None) -> list[dict]:
    """Parse ``argv``, run, print the table and return its rows; input errors raise (see :func:`cli`)."""
    args = build_parser(description).parse_args(argv)
    sets = list(args.set)
    if args.seeds:
        sets.append(f"seeds={args.seeds}")
    if args.out:
        sets.append(f"out={args.out}")
    if args.device:
        sets.append(f"device={args.device}")
    cfg = load_config(args.config, offline=args.offline, sets=sets)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return []
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    warnings.filterwarnings("ignore", message=".*QP solver.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.probe_memory is not None and (args.probe_memory <= 0 or args.probe_networks <= 0):
        raise ValueError(f"--probe-memory and --probe-networks must be positive, got {args.probe_memory} and "
                         f"{args.probe_networks}")
    rows = run_continual(cfg, progress=not args.no_progress, log=lambda line: print(line, flush=True),
                         probe_epochs=args.probe_memory, probe_networks=args.probe_networks)
    out = Path(cfg.out)
    print("\nAccuracy (%) after each stage, averaged over the test sets seen so far; mean ± std over seeds; "
          "forgetting: Avalanche's stream forgetting after the last stage (points)")
    print((out / "table.md").read_text())  # the table and the paired differences against herding
    print(f"wrote {out / 'table.md'}, {out / 'table.csv'}, {out / 'results.csv'}, {out / 'accuracy.png'}")
    return rows


def cli(argv: Sequence[str] | None = None, *, prog: str = "dc-continual", description: str | None = None) -> int:
    """:func:`main` as a command: input errors are one line on stderr and exit status 2, an
    interruption is status 130 (the same command resumes)."""
    from dc_plugins.device import tune_malloc

    tune_malloc()
    try:
        main(argv, description)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except INPUT_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli(prog="python -m strategies.continual"))
