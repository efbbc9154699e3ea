"""Results files: the trial records behind a proxy table, small enough to commit, versioned, and
able to seed a run folder so that a long grid continues on a fresh checkout.

A results file (JSON, :data:`FORMAT` version :data:`VERSION`) holds, per proxy, its configuration
key (:func:`dc_plugins.fingerprint.config_hash` of everything its content depends on, with that
mapping itself), the part of the training config its trials depend on, its size and build time,
and one row per trial (architecture, status, accuracy and the per-seed accuracies, seconds, SGD
steps, images seen, device); plus the run's config, data description, architectures and code
commit, and a SHA-256 of the content. It never holds images, sets or learning curves (a 720 x 7
grid stays a few hundred KB).

- :func:`export_results`: a run folder's ``results.json`` -> a results file (``dc-nas export``);
- :func:`results_from_file`: a results file -> :class:`~nas.experiment.NasResults` to score
  (``dc-nas score FILE``: every table figure from the committed file by one command);
- :func:`import_results`: a results file -> trial records in a run folder (``dc-nas import``),
  after checking that the file is of the run's configuration (proxy keys, training, space: a
  :class:`~dc_plugins.fingerprint.ConfigMismatchError` names every differing field). The run
  (``dc-nas`` with the same config and ``out``) then skips every imported trial, as it skips the
  trials of an interrupted run, and does not rebuild a proxy none of whose trials is left.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
from pathlib import Path

from dc_plugins.fingerprint import ConfigMismatchError, check_fingerprint, config_hash
from dc_plugins.io import atomic_path, write_json

from .config import NasConfig, apply_values

__all__ = ["FORMAT", "VERSION", "IMPORTED", "TRIAL_COLUMNS", "ResultsFileError", "git_commit", "results_payload",
           "export_results", "read_results_file", "results_from_file", "import_results"]

FORMAT = "dc-nas-results"
VERSION = 1
IMPORTED = "imported.json"  # what dc-nas import put into a run folder (read by nas.experiment.run_nas)
TRIAL_COLUMNS = ("arch", "status", "accuracy", "accuracies", "seconds", "eval_seconds", "steps", "images_seen",
                 "device")
_KEPT = ("finished", "partial")  # failed trials are not results: a continued run retries them
_PROXY_FIELDS = ("kind", "key", "config", "train", "num_images", "storage_bytes", "build_seconds", "build_device",
                 "columns", "trials")


class ResultsFileError(ValueError):
    """A results file that cannot be read: truncated, damaged, edited, or of another format."""


def git_commit(where: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout holding ``where`` (default: this package), or
    ``"unknown"`` (an installed package, no git)."""
    folder = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    return commit if len(commit) == 40 else "unknown"


def _config_of(results) -> NasConfig:
    return apply_values(NasConfig(), json.loads(json.dumps(results.config)))


def _space_fingerprint(config: NasConfig, archs: list[str]) -> dict:
    return {"space": dataclasses.asdict(config.space), "archs_sha256": config_hash(list(archs))}


def _proxy_config(run, out: Path | None, config: NasConfig) -> dict:
    """The proxy's key config: from results.json, else from its cached descriptor."""
    p = run.proxy
    if p.config:
        return p.config
    if out is not None:
        from .proxy import DESCRIPTOR, Proxy

        descriptor = Path(config.proxy.cache_dir or out / "proxies") / f"{p.label.replace(':', '-')}-{p.key[:16]}" / DESCRIPTOR
        if descriptor.is_file():
            return Proxy.load(descriptor).config
    raise ValueError(f"the results of proxy {p.label!r} do not say its configuration (written by an older dc-nas "
                     f"and its proxy descriptor is gone); rerun dc-nas with the same config and --out (every "
                     f"finished trial is reused) to rewrite results.json")


def _row(record) -> list:
    """One trial's row; times to 6 significant digits (wall-clock noise is larger; the file stays small)."""
    return [float(f"{v:.6g}") if c in ("seconds", "eval_seconds") else v
            for c, v in ((c, getattr(record, c)) for c in TRIAL_COLUMNS)]


def results_payload(results, out: str | Path | None = None) -> dict:
    """The results-file content of ``results`` (a :class:`~nas.experiment.NasResults`)."""
    from .experiment import train_fingerprint

    config = _config_of(results)
    proxies = {}
    for label, run in results.runs.items():
        p = run.proxy
        rows = [_row(r) for r in run.records.values()]  # failed ones too: the table counts them
        proxies[label] = {"kind": p.kind, "key": p.key, "config": _proxy_config(run, Path(out) if out else None, config),
                          "train": train_fingerprint(p.kind, config), "num_images": p.num_images,
                          "storage_bytes": p.storage_bytes, "build_seconds": p.build_seconds,
                          "build_device": p.build_device, "columns": list(TRIAL_COLUMNS), "trials": rows}
    payload = {"format": FORMAT, "version": VERSION, "commit": results.commit if results.commit != "unknown" else git_commit(),
               "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "config": results.config, "data": results.data, "archs": list(results.archs),
               "fingerprint": _space_fingerprint(config, results.archs), "proxies": proxies}
    payload["sha256"] = config_hash(payload)
    return payload


def _dumps(obj, indent: int = 0) -> str:
    """JSON with one line per trial row (and per short list): small, and readable in a diff."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and all(isinstance(v, list) for v in obj):
        return "[\n" + ",\n".join(inner + json.dumps(v) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def export_results(run_dir: str | Path, path: str | Path) -> Path:
    """Write the results file of the run folder ``run_dir`` (its ``results.json``) to ``path``
    (atomically). Returns ``path``."""
    from .experiment import load_results

    results = load_results(run_dir)
    _refresh_from_records(results, Path(run_dir))
    payload = results_payload(results, run_dir)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(_dumps(payload) + "\n")
    return path


def _refresh_from_records(results, run_dir: Path) -> None:
    """Take each proxy's trials from its records folder, where every trial writes its record when
    it ends: ``results.json`` is rewritten only after a whole proxy, so without this an export of a
    run stopped mid-proxy (a session ending three hours into a five-hour grid) would lose that
    proxy's finished trials. Records of another proxy key, or unreadable ones, are ignored."""
    from .evaluator import read_record, record_path
    from .experiment import records_dir

    config = _config_of(results)
    for run in results.runs.values():
        folder = records_dir(run_dir, run.proxy, config)
        for arch in results.archs:
            rec = read_record(record_path(folder, arch))
            if rec is not None and rec.arch == arch and rec.proxy_key == run.proxy.key:
                run.records[arch] = rec
        run.records = {a: run.records[a] for a in results.archs if a in run.records}


def read_results_file(path: str | Path) -> dict:
    """The checked content of a results file; :class:`ResultsFileError` names the file and what is
    wrong when it is missing, truncated, damaged or edited, or of another format or version."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {str(path)!r}")

    def bad(why: str) -> ResultsFileError:
        return ResultsFileError(f"{path} is not a readable dc-nas results file: {why}")

    try:
        payload = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise bad("not text") from None
    except ValueError as err:
        raise bad(f"invalid JSON (truncated or damaged?): {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise bad(f"its 'format' is {payload.get('format') if isinstance(payload, dict) else None!r}, "
                  f"not {FORMAT!r}")
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise bad(f"format version {version!r}; this dc-nas reads versions up to {VERSION}")
    missing = [k for k in ("commit", "config", "data", "archs", "fingerprint", "proxies", "sha256") if k not in payload]
    if missing:
        raise bad(f"missing fields {missing}")
    stored = payload.pop("sha256")
    if config_hash(payload) != stored:
        raise bad("its content does not match its sha256 (damaged, or edited by hand)")
    for label, p in payload["proxies"].items():
        lacking = [k for k in _PROXY_FIELDS if k not in p]
        if lacking:
            raise bad(f"proxy {label!r} lacks {lacking}")
        if list(p["columns"]) != list(TRIAL_COLUMNS):
            raise bad(f"proxy {label!r} has trial columns {p['columns']}; expected {list(TRIAL_COLUMNS)}")
        if any(not isinstance(row, list) or len(row) != len(TRIAL_COLUMNS) for row in p["trials"]):
            raise bad(f"proxy {label!r} has trial rows of the wrong length")
    return payload


def _records(label: str, p: dict):
    from .evaluator import TrialRecord

    for row in p["trials"]:
        values = dict(zip(TRIAL_COLUMNS, row))
        yield TrialRecord(proxy=label, proxy_key=p["key"], **values)


def results_from_file(path: str | Path):
    """The :class:`~nas.experiment.NasResults` of a results file (nothing is written), e.g. to
    score it: ``score_results(results_from_file(path), "whole", ["10", "30"])``."""
    from .experiment import NasResults, ProxyRun
    from .proxy import Proxy

    payload = read_results_file(path)
    runs = {}
    for label, p in payload["proxies"].items():
        proxy = Proxy(label=label, kind=p["kind"], key=p["key"], data=payload["config"]["data"], set_path=None,
                      num_images=p["num_images"], storage_bytes=p["storage_bytes"],
                      ipc=payload["config"]["proxy"]["ipc"], build_seconds=p["build_seconds"], config=p["config"],
                      build_device=p["build_device"], cached=True)
        records = {r.arch: r for r in _records(label, p)}
        runs[label] = ProxyRun(proxy, {a: records[a] for a in payload["archs"] if a in records})
    return NasResults(payload["config"], payload["data"], payload["archs"], runs, out=str(path),
                      commit=payload["commit"])


def import_results(path: str | Path, config: NasConfig, out: str | Path | None = None) -> dict[str, dict]:
    """Seed the run folder ``out`` (default ``config.out``) with the trials of a results file.

    The file must be of this configuration: for every proxy of ``config.proxies`` it holds, the
    proxy key (computed from this config and this data, whose training tensors are hashed), the
    training settings the trials depend on, and the architectures; else
    :class:`~dc_plugins.fingerprint.ConfigMismatchError` names the differing fields. Finished and
    partial (some of ``train.repeats``) trials become records where the folder has no finished
    one; a record already there is kept. Returns ``{label: {"imported": n, "kept": m}}``; proxies
    of the file that the config does not run are left out (``{"skipped": n}``).
    """
    from .data import load_split, with_absolute_root
    from .evaluator import read_trial, record_path
    from .experiment import records_dir, select_archs, train_fingerprint
    from .proxy import Proxy, ProxyProvider

    payload = read_results_file(path)
    config.validate()
    out = Path(out if out is not None else config.out)
    split = load_split(with_absolute_root(config.data), "cpu")  # only hashed: the device does not matter
    archs = select_archs(config)
    provider = ProxyProvider(split, config.proxy, config.proxy.cache_dir or out / "proxies", progress=False)
    current = {}
    for entry in config.proxies:
        label, kind, key, key_cfg = provider.describe(entry)
        current[label] = {"kind": kind, "key": key, "config": key_cfg, "train": train_fingerprint(kind, config)}
    common = [label for label in payload["proxies"] if label in current]
    if not common:
        raise ConfigMismatchError(f"results file {path} holds proxies {', '.join(payload['proxies'])}; this run's "
                                  f"proxies are {', '.join(current)}: nothing to import")
    stored_fp = {**payload["fingerprint"],
                 "proxies": {label: {k: payload["proxies"][label][k] for k in ("config", "train")} for label in common}}
    current_fp = {**_space_fingerprint(config, archs),
                  "proxies": {label: {k: current[label][k] for k in ("config", "train")} for label in common}}
    check_fingerprint(stored_fp, current_fp, f"results file {path}",
                      "import it with the configuration it was made with (dc-nas import FILE RUN_DIR without "
                      "--config uses the config stored in it), or train those trials anew")
    summary: dict[str, dict] = {label: {"skipped": len(p["trials"])} for label, p in payload["proxies"].items()
                                if label not in current}
    described = {}
    for label in common:
        p = payload["proxies"][label]
        stub = Proxy(label=label, kind=p["kind"], key=p["key"], data={}, set_path=None, num_images=p["num_images"],
                     storage_bytes=p["storage_bytes"], ipc=config.proxy.ipc, build_seconds=p["build_seconds"],
                     config=p["config"])
        folder = records_dir(out, stub, config)
        imported = kept = 0
        for rec in _records(label, p):
            if rec.status not in _KEPT or rec.arch not in archs:
                continue
            if read_trial(folder, rec.arch, rec.proxy_key, "finished") is not None:
                kept += 1
                continue
            write_json(record_path(folder, rec.arch), rec.to_dict())
            imported += 1
        summary[label] = {"imported": imported, "kept": kept}
        described[label] = {k: p[k] for k in ("kind", "key", "num_images", "storage_bytes", "build_seconds",
                                               "build_device")}
    previous = {}
    if (out / IMPORTED).is_file():
        try:
            previous = json.loads((out / IMPORTED).read_text()).get("proxies", {})
        except (ValueError, AttributeError):
            previous = {}
    write_json(out / IMPORTED, {"file": str(Path(path).resolve()), "commit": payload["commit"],
                                "proxies": {**previous, **described}})
    return summary
