"""Running the search: one NNI ``NasExperiment`` with ``GridSearch`` per proxy, then scoring.

:func:`run_nas` is what ``dc-nas`` runs: load the data split, pick the architectures, build (or
reuse) each proxy, run a grid experiment over the architectures that have no finished record
yet, collect every trial (finished or failed) and score the proxies against the reference.

Engines: ``sequential`` (default) runs trials in this process with NNI's
``SequentialEngineConfig`` (no server; failures are reported and skipped); ``ts`` uses NNI's
training-service engine, i.e. NNI manager, web UI and the ``local`` / ``remote`` / ... training
service given in the config. Resume: trial records (``trials/<proxy>/<arch>.json``) are
written by the trials themselves, so a rerun with the same config skips every architecture that
finished before, whatever stopped the run; ``dc-nas import`` (:mod:`nas.results`) writes them from a
committed results file, so that a fresh checkout continues a grid the same way.

The ``ts`` engine runs each trial as a new process, ``<python> -m nni.nas.execution.training_service
trial``, where ``<python>`` is the interpreter that started ``dc-nas`` (``sys.executable``, an
absolute path), in a copy of the directory ``dc-nas`` was started from (NNI's trial code
directory, which a NAS experiment cannot change; the ``local`` platform runs in it directly).
:func:`check_training_service` refuses the run in one line before anything is written when NNI's
Node.js manager cannot start (no runnable ``node`` binary) or its port is taken. Machines that run
trials elsewhere (``platform: remote``, and the cluster platforms) therefore need:

- the same Python environment at the same path: that interpreter path must exist on every
  machine (a remote machine's ``pythonPath`` picks only the Python of NNI's trial keeper there),
  with the same ``nni``, ``torch`` and ``dc-plugins`` (the trial unpickles the model space and
  :func:`nas.evaluator.evaluate_architecture` by module name);
- a small start directory: NNI uploads it to every machine before the first trial (at most 2,000
  files and 300 MB; a ``.nniignore`` there excludes files), so start ``dc-nas`` from a checkout
  without data or runs, or from an empty folder when dc-plugins is installed;
- the same paths, e.g. a shared file system mounted at the same place: a trial reads its proxy
  descriptor (``<out>/proxies/<label>-<key>/proxy.json``), the proxy's set file and ``data.root``
  (made absolute on the machine that started the run) at the paths of that machine, and writes its
  record under ``<out>/trials/``. Without a shared ``out``, the run still collects every result
  through NNI's reported metrics, but a rerun trains again what its own disk has no record of.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dc_plugins.device import torch_threads
from dc_plugins.io import atomic_path, write_json

from .config import ExperimentConfig, NasConfig
from .data import DataSplit, load_split, resolve_device, with_absolute_root
from .evaluator import TrialRecord, evaluate_architecture, make_evaluator, read_record, read_trial, record_path
from .proxy import Proxy, ProxyProvider, parse_proxy_entry
from .space import arch_from_sample, check_space, grid_archs, make_space, sample_archs

__all__ = ["ProxyRun", "NasResults", "select_archs", "run_proxy_experiment", "run_nas", "write_results",
           "load_results", "check_training_service", "TrainingServiceUnavailable", "train_fingerprint",
           "records_dir"]

_logger = logging.getLogger(__name__)


@dataclass
class ProxyRun:
    """Every architecture's record on one proxy."""

    proxy: Proxy
    records: dict[str, TrialRecord]
    skipped: list[str] = field(default_factory=list)   # finished in an earlier run, not retrained
    experiment_id: str | None = None
    wall_seconds: float = 0.0

    @property
    def finished(self) -> dict[str, float]:
        return {a: r.accuracy for a, r in self.records.items() if r.status == "finished" and r.accuracy is not None}

    @property
    def failed(self) -> list[str]:
        return [a for a, r in self.records.items() if r.status not in ("finished", "partial")]

    @property
    def partial(self) -> list[str]:
        """Architectures stopped between their ``train.repeats`` (a run exported mid-trial): not
        failures, not results either; a continued run trains only their missing seeds."""
        return [a for a, r in self.records.items() if r.status == "partial"]

    @property
    def train_seconds(self) -> float:
        return sum(r.seconds for r in self.records.values())

    def summary(self) -> dict:
        p = self.proxy
        return {"label": p.label, "kind": p.kind, "key": p.key, "set_path": p.set_path, "num_images": p.num_images,
                "storage_bytes": p.storage_bytes, "build_seconds": p.build_seconds, "build_device": p.build_device,
                "cached": p.cached, "config": p.config,
                "train_seconds": self.train_seconds, "wall_seconds": self.wall_seconds,
                "finished": len(self.finished), "failed": len(self.failed), "skipped": len(self.skipped),
                "experiment_id": self.experiment_id}


@dataclass
class NasResults:
    config: dict
    data: dict
    archs: list[str]
    runs: dict[str, ProxyRun]
    scores: list[dict] = field(default_factory=list)
    out: str = ""
    agreement: list[dict] = field(default_factory=list)  # seed-to-seed, runs with train.repeats >= 2
    choices: list[dict] = field(default_factory=list)    # design choices in each run's own top-k
    commit: str = "unknown"                              # code commit of the run (git HEAD), or "unknown"
    spread: list[dict] = field(default_factory=list)     # each training of a proxy against the reference
    margins: list[dict] = field(default_factory=list)    # condensed proxies against the selection ones
    shifts: list[dict] = field(default_factory=list)     # each proxy's rank shift by design choice

    def report(self) -> str:
        """The Markdown report of the scores (``scores.md``, what ``dc-nas score`` prints)."""
        from .scoring import format_report
        return format_report(self.scores, self.agreement, self.choices, self.spread, self.margins, self.shifts)


def select_archs(config: NasConfig) -> list[str]:
    """The architectures of the run: the explicit list or the product grid, then the seeded subset."""
    s = config.space
    archs = list(s.archs) if s.archs is not None else grid_archs(s.widths, s.depths, s.norms, s.activations, s.poolings)
    return sample_archs(archs, s.max_archs, s.seed, cover=s.cover_choices)


def train_fingerprint(kind: str, config: NasConfig, repeats: int | None = None) -> dict:
    """What of ``config.train`` a trial of a proxy of this ``kind`` depends on (its records
    folder is keyed by the hash of this; results files carry it for their resume checks)."""
    train = dataclasses.asdict(config.train)
    if repeats is not None:
        train["repeats"] = repeats
    # Only the budget this proxy trains for enters its key: a longer reference training must not
    # throw away the proxies' trials, nor a longer proxy training the reference's.
    train.pop("epochs" if kind == "whole" else "whole_epochs")
    # Likewise the augmentation: the one this proxy trains with (a key unchanged when unset).
    train["augment"] = config.train.augment_for(kind)
    del train["proxy_augment"]
    # How often a trial reports its validation accuracy does not change its training (validation
    # runs in eval mode, without gradients or random draws), so a sparser curve reuses the trials.
    del train["report_every"]
    # Nor how many repeats train together as one stacked model: the same trainings up to float
    # rounding (as the device, which is not in the key either), so records made either way are reused.
    del train["parallel"]
    return train


def _records_dir(out: Path, proxy: Proxy, config: NasConfig, repeats: int | None = None) -> Path:
    """This proxy's trial records for ``config.train`` (``repeats``: the same with that many trainings)."""
    train = train_fingerprint(proxy.kind, config, repeats)
    train_key = hashlib.sha256(json.dumps(train, sort_keys=True).encode()).hexdigest()
    # Absolute: trials of the training-service engine run in other processes (and directories).
    return (out / "trials" / f"{proxy.label.replace(':', '-')}-{proxy.key[:12]}-{train_key[:8]}").resolve()


def records_dir(out: str | Path, proxy: Proxy, config: NasConfig) -> Path:
    """Where the trial records of ``proxy`` under ``config.train`` live in the run folder ``out``."""
    return _records_dir(Path(out), proxy, config)


def _finished_records(records_dir: Path, archs: list[str], proxy: Proxy) -> dict[str, TrialRecord]:
    done = {arch: read_trial(records_dir, arch, proxy.key, "finished") for arch in archs}
    return {arch: rec for arch, rec in done.items() if rec is not None}


def _carry_over_trainings(out: Path, records_dir: Path, archs: list[str], proxy: Proxy,
                          config: NasConfig) -> int:
    """Prepare the architectures to run: keep each one's ``partial`` record (an interrupted trial),
    else seed one from a finished record of the same training with fewer ``repeats`` (its seeds
    are the first ones of this run), else drop the stale record. Returns how many trainings
    carry over, so raising ``train.repeats`` trains only the seeds that are new."""
    repeats = config.train.repeats
    lower = [_records_dir(out, proxy, config, repeats=r) for r in range(repeats - 1, 0, -1)]
    carried = 0
    for arch in archs:
        rec = read_trial(records_dir, arch, proxy.key, "partial")
        if rec is not None and 0 < len(rec.accuracies) < repeats:
            carried += len(rec.accuracies)
            continue
        path = record_path(records_dir, arch)
        path.unlink(missing_ok=True)  # failed, or from another proxy: train from scratch
        old = next(filter(None, (read_trial(folder, arch, proxy.key, "finished") for folder in lower)), None)
        if old is not None:
            accuracies = old.accuracies or [old.accuracy]  # records of one training may predate the list
            write_json(path, dataclasses.replace(old, status="partial", accuracies=list(accuracies)).to_dict())
            carried += len(accuracies)
    return carried


def _experiment_config(config: NasConfig, n_trials: int, label: str):
    from nni.nas.experiment.config import NasExperimentConfig, SequentialEngineConfig

    e = config.experiment
    workdir = Path(e.working_directory or Path(config.out) / "nni").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if e.engine == "sequential":
        exp_cfg = NasExperimentConfig(SequentialEngineConfig(continue_on_failure=True), "simplified")
    else:
        ts = dict(e.training_service)
        platform = ts.pop("platform")
        exp_cfg = NasExperimentConfig("ts", "simplified", platform)
        for key, value in ts.items():
            attr = _snake(key)
            if not hasattr(exp_cfg.training_service, attr):
                raise ValueError(f"experiment.training_service: {platform!r} has no option {key!r}")
            if attr == "machine_list":
                from nni.experiment.config.training_services import RemoteMachineConfig
                value = [RemoteMachineConfig(**{_snake(k): v for k, v in m.items()}) for m in value]
            setattr(exp_cfg.training_service, attr, value)
        exp_cfg.trial_concurrency = e.trial_concurrency
        exp_cfg.trial_gpu_number = e.trial_gpu_number
    exp_cfg.experiment_name = f"dc-nas {label}"
    exp_cfg.experiment_working_directory = str(workdir)
    exp_cfg.max_trial_number = n_trials  # the grid size exactly (NNI can wait forever past it)
    if e.max_trial_duration and e.engine == "ts":
        exp_cfg.max_trial_duration = e.max_trial_duration  # NNI kills a trial after this (e.g. "2h")
    return exp_cfg


class TrainingServiceUnavailable(OSError):
    """NNI's training-service engine cannot start its manager on this machine."""


# NNI's platforms whose manager also listens on ``port + 1`` (nni.experiment.launcher).
_TWO_PORT_PLATFORMS = ("hybrid", "remote", "openpai", "kubeflow", "frameworkcontroller", "adl")


def check_training_service(experiment: ExperimentConfig) -> None:
    """Refuse ``engine: ts`` in one line where NNI's manager cannot start: its bundled Node.js
    binary does not run, or its port (and ``port + 1`` for remote and cluster platforms) is taken
    or cannot be bound. NNI itself finds out only after it created the experiment folder, and says
    so in a traceback. Raises :class:`TrainingServiceUnavailable`."""
    try:
        import nni_node

        node = Path(nni_node.__path__[0]) / ("node.exe" if sys.platform == "win32" else "node")
        subprocess.run([str(node), "--version"], capture_output=True, timeout=60, check=True)
    except (ImportError, OSError, subprocess.SubprocessError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TrainingServiceUnavailable(f"experiment.engine ts: NNI's Node.js manager cannot run here ({detail}); "
                                         f"reinstall nni, or use engine: sequential") from None
    platform = experiment.training_service.get("platform")
    ports = [experiment.port] + ([experiment.port + 1] if platform in _TWO_PORT_PLATFORMS else [])
    for port in ports:
        with socket.socket() as probe:
            taken = probe.connect_ex(("localhost", port)) == 0  # what NNI checks before it starts
        problem = "is in use" if taken else None
        if not taken:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("", port))
                except OSError as err:
                    problem = f"cannot be bound ({err.strerror or err})"
        if problem:
            which = "experiment.port" if port == experiment.port else f"experiment.port + 1 (platform {platform})"
            raise TrainingServiceUnavailable(f"{which} = {port} {problem}: NNI's manager listens there; choose "
                                             f"another port, e.g. --set experiment.port=8081")


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


def _stop(exp) -> None:
    try:
        exp.stop()
    except Exception:  # stopping must never hide the original error
        _logger.exception("stopping the NNI experiment failed")
    finally:
        # NNI's sequential engine runs trials in this process and leaves the last trial's
        # parameters in nni.trial's module state; then nni.get_current_parameter() is not None
        # and every later Evaluator.mock_runtime() (NNI's own way to evaluate one model) refuses
        # with "Cannot mock trial when trial APIs are already available".
        import nni.trial

        nni.trial._params = None


@contextmanager
def _trial_progress(records_dir: Path, archs: list[str], label: str, *, done: int, enabled: bool,
                    interval: float = 2.0):
    """A tqdm bar of written trial records (finished or failed; not ``partial``, a trial still
    training its repeats). Trials write their own records, under either engine, so watching the
    folder needs no hook into NNI."""
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(archs), initial=done, desc=f"proxy {label}", unit="arch")
    stop = threading.Event()

    def count() -> int:
        records = (read_record(record_path(records_dir, a)) for a in archs)
        return sum(r is not None and r.status != "partial" for r in records)

    def watch() -> None:
        while not stop.wait(interval):
            bar.update(count() - bar.n)

    thread = threading.Thread(target=watch, name=f"progress-{label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.update(count() - bar.n)
        bar.close()


def run_proxy_experiment(archs: list[str], proxy: Proxy, split: DataSplit, config: NasConfig, *,
                         out: Path, function=evaluate_architecture) -> ProxyRun:
    """Train every architecture of ``archs`` on ``proxy`` in an NNI grid experiment.

    Architectures with a finished record for this proxy and training config are skipped. A
    failing trial gets a ``failed`` record; the experiment goes on.
    """
    from nni.nas.experiment import NasExperiment
    from nni.nas.strategy import GridSearch

    records_dir = _records_dir(out, proxy, config)
    records_dir.mkdir(parents=True, exist_ok=True)
    done = _finished_records(records_dir, archs, proxy)
    remaining = [a for a in archs if a not in done]
    run = ProxyRun(proxy, dict(done), skipped=sorted(done))
    start = time.perf_counter()
    models = []
    if remaining:
        if config.experiment.engine == "ts":
            check_training_service(config.experiment)  # also: the previous proxy's manager has stopped
        carried = _carry_over_trainings(out, records_dir, remaining, proxy, config)
        if carried:
            _logger.info("proxy %s: %d earlier trainings of %d architectures carry over", proxy.label, carried,
                         len(remaining))
        space = make_space(split.channels, split.num_classes, split.image_size, remaining)
        evaluator = make_evaluator(proxy, config.train, records=records_dir, device=config.device,
                                   threads=config.threads, function=function)
        exp = NasExperiment(space, evaluator, GridSearch(shuffle=False),
                            _experiment_config(config, len(remaining), proxy.label))
        try:
            with _trial_progress(records_dir, archs, proxy.label, done=len(done), enabled=config.progress):
                ok = exp.run(port=config.experiment.port)
        except BaseException:
            _stop(exp)
            raise
        if ok is None:  # NNI caught a KeyboardInterrupt and stopped the experiment itself
            raise KeyboardInterrupt(f"NAS experiment for proxy {proxy.label!r} interrupted; rerun to resume")
        run.experiment_id = exp.id
        try:
            models = list(exp.strategy.list_models(sort=False))
        finally:
            _stop(exp)
    run.wall_seconds = time.perf_counter() - start
    # Collect: the trial's own record first; else what NNI reported (remote machines write their
    # records on their own disks); else the architecture never ran.
    from_nni = {}
    for model in models:
        try:
            from_nni[arch_from_sample(model.sample)] = model
        except (KeyError, TypeError):
            continue
    for arch in remaining:
        rec = read_record(record_path(records_dir, arch))
        if rec is None or rec.proxy_key != proxy.key or rec.status == "partial":
            model = from_nni.get(arch)
            status = getattr(getattr(model, "status", None), "value", None)
            metric = getattr(model, "metric", None) if model is not None else None
            if model is not None and status == "trained" and metric is not None:
                rec = TrialRecord(arch, proxy.label, proxy.key, "finished", accuracy=float(metric),
                                  intermediate=[[i + 1, float(v)] for i, v in enumerate(model.metrics.intermediates)])
            elif rec is not None and rec.proxy_key == proxy.key:
                # Kept on disk so that a rerun trains only the missing seeds; failed in this run's report.
                run.records[arch] = dataclasses.replace(
                    rec, error=f"stopped after {len(rec.accuracies)} of {config.train.repeats} trainings; "
                               f"rerun to finish")
                continue
            else:
                reason = (f"NNI reports the trial as {status}; see the experiment log under "
                          f"{config.experiment.working_directory or Path(config.out) / 'nni'}" if model is not None
                          else "the experiment ended before this architecture ran")
                rec = TrialRecord(arch, proxy.label, proxy.key, "failed", error=reason)
            write_json(record_path(records_dir, arch), rec.to_dict())
        run.records[arch] = rec
    run.records = {a: run.records[a] for a in archs}
    return run


def run_nas(config: NasConfig, *, function=evaluate_architecture) -> NasResults:
    """Run the whole study described by ``config``; writes ``results.json``, ``results.csv``,
    ``scores.csv``, ``scores.md`` and ``scatter.png`` under ``config.out``."""
    from .scoring import check_top_k

    # Everything that can refuse the config does so before the output folder is touched.
    config.validate()
    if config.experiment.engine == "ts":
        check_training_service(config.experiment)
    entries = [parse_proxy_entry(p) for p in config.proxies]
    device = resolve_device(config.device)
    # Trials read the data by the path in their proxy's descriptor, from their own working
    # directory (another machine's, with remote training services): make it absolute.
    split = load_split(with_absolute_root(config.data), device)
    archs = select_archs(config)
    check_space(archs, split.channels, split.num_classes, split.image_size)
    reference = config.score.reference
    labels = [k if k != "file" else None for k, _ in entries]
    if reference in labels:
        check_top_k(config.score.top_k, len(archs))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_dict())
    provider = ProxyProvider(split, config.proxy, config.proxy.cache_dir or out / "proxies",
                             progress=config.progress)
    from .results import git_commit

    results = NasResults(config.to_dict(), split.describe(), archs, {}, out=str(out), commit=git_commit())
    for entry in config.proxies:
        # A proxy whose every trial came from a results file (dc-nas import) is not rebuilt.
        proxy = _imported_proxy(out, entry, provider, config, archs)
        if proxy is None:
            with torch_threads(config.threads):  # building a proxy (condensation) runs in this process
                proxy = provider.get(entry)
        _logger.info("proxy %s: %d images (%s)", proxy.label, proxy.num_images, "cached" if proxy.cached else "built")
        # Listed before its trials run, so that `dc-nas export` of a run stopped during this proxy
        # keeps its finished trials (the export reads them from the proxy's records folder).
        results.runs.setdefault(proxy.label, ProxyRun(proxy, {}))
        write_results(results)
        results.runs[proxy.label] = run_proxy_experiment(archs, proxy, split, config, out=out, function=function)
        write_results(results)  # partial results survive an interruption of later proxies
    if reference in results.runs:
        score_results(results, reference, config.score.top_k)
        write_results(results)
        if config.score.plot:
            from .scoring import scatter_plot
            scatter_plot(results.runs, reference, out / "scatter.png")
    return results


def _imported_proxy(out: Path, entry: str, provider: ProxyProvider, config: NasConfig,
                    archs: list[str]) -> Proxy | None:
    """The proxy of ``entry`` as ``dc-nas import`` described it (``<out>/imported.json``), when
    every architecture has a finished record of its key, so that a run continued from a results
    file does not rebuild (condense again) a proxy it has nothing left to train on; else None."""
    from .results import IMPORTED

    path = out / IMPORTED
    if not path.is_file():
        return None
    try:
        described = json.loads(path.read_text())["proxies"]
    except (ValueError, KeyError, TypeError):
        return None
    label, kind, key, key_cfg = provider.describe(entry)
    info = described.get(label)
    if not isinstance(info, dict) or info.get("key") != key:
        return None
    proxy = Proxy(label=label, kind=kind, key=key, data=provider._trial_data(), set_path=None,
                  num_images=info["num_images"], storage_bytes=info["storage_bytes"], ipc=config.proxy.ipc,
                  build_seconds=info["build_seconds"], config=key_cfg, build_device=info.get("build_device", ""),
                  cached=True)
    if len(_finished_records(_records_dir(out, proxy, config), archs, proxy)) < len(archs):
        return None
    return proxy


def score_results(results: NasResults, reference: str, ks) -> NasResults:
    """Fill ``results.scores`` (each proxy against ``reference``), ``results.agreement``,
    ``results.spread`` and ``results.margins`` (the seed-to-seed tables), ``results.choices``
    (at the largest of ``ks``) and ``results.shifts`` (each proxy's rank shift by design choice)."""
    from .scoring import margins, rank_shifts, repeat_agreement, score_runs, top_k_choices, training_spread

    results.scores = score_runs(results.runs, reference, ks)
    results.agreement = repeat_agreement(results.runs, ks)
    results.spread = training_spread(results.runs, reference, ks)
    results.margins = margins(results.scores, results.spread)
    ref_row = next(r for r in results.scores if r["proxy"] == reference)
    results.choices = top_k_choices(results.runs, max(ref_row["top_k"].values()))
    results.shifts = rank_shifts(results.runs, reference)
    return results


# -- results files --------------------------------------------------------------------------------

CSV_FIELDS = ("proxy", "arch", "status", "accuracy", "seconds", "eval_seconds", "steps", "images_seen", "device",
              "error")


def write_results(results: NasResults) -> None:
    """``results.json`` (everything), ``results.csv`` (one row per trial) and, once scored,
    ``scores.csv`` / ``scores.md`` (with the seed-to-seed table when trials were repeated, and the
    design choices of each run's top-k); all written atomically."""
    from .scoring import SCORE_FIELDS

    out = Path(results.out)
    payload = {"config": results.config, "data": results.data, "archs": results.archs,
               "proxies": {label: {**run.summary(), "trials": [r.to_dict() for r in run.records.values()]}
                           for label, run in results.runs.items()},
               "scores": results.scores, "agreement": results.agreement, "choices": results.choices,
               "spread": results.spread, "margins": results.margins, "shifts": results.shifts,
               "commit": results.commit}
    write_json(out / "results.json", payload)
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for label, run in results.runs.items():
            for rec in run.records.values():
                row = {k: getattr(rec, k) for k in CSV_FIELDS if k != "proxy"}
                row["proxy"] = label
                row["error"] = (rec.error or "").splitlines()[0] if rec.error else ""
                w.writerow(row)
    if results.scores:
        with atomic_path(out / "scores.csv") as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=SCORE_FIELDS, extrasaction="ignore")
            w.writeheader()
            for row in results.scores:
                w.writerow({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()})
        with atomic_path(out / "scores.md") as tmp:
            tmp.write_text(results.report() + "\n")


def load_results(out: str | Path) -> NasResults:
    """Read ``results.json`` back (for ``dc-nas score``)."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results at {str(path)!r}; run dc-nas first")
    payload = json.loads(path.read_text())
    runs = {}
    for label, d in payload["proxies"].items():
        proxy = Proxy(label=d["label"], kind=d["kind"], key=d["key"], data=payload["config"]["data"],
                      set_path=d.get("set_path"), num_images=d["num_images"], storage_bytes=d["storage_bytes"],
                      ipc=payload["config"]["proxy"]["ipc"], build_seconds=d["build_seconds"],
                      config=d.get("config") or {}, build_device=d.get("build_device", ""),
                      cached=bool(d.get("cached")))
        records = {t["arch"]: TrialRecord(**t) for t in d["trials"]}
        runs[label] = ProxyRun(proxy, records, experiment_id=d.get("experiment_id"), wall_seconds=d["wall_seconds"])
    return NasResults(payload["config"], payload["data"], payload["archs"], runs, payload.get("scores", []), str(out),
                      payload.get("agreement", []), payload.get("choices", []), payload.get("commit", "unknown"),
                      payload.get("spread", []), payload.get("margins", []), payload.get("shifts", []))
