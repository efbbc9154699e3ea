"""A grid of condensation runs (datasets x ipc x methods) with one results table.

Used by ``make demo`` and by the benchmark script. Every run goes through the same code path as
``dc-condense`` and lands in ``OUT/<dataset>/ipc<k>/<method>/``; runs whose ``result.json``
exists are skipped, so an interrupted suite continues where it stopped (and an unfinished
condensation resumes from its checkpoint). A finished run is reused only when its stored
configuration fingerprint (settings and a hash of the data, :mod:`dc_plugins.fingerprint`) is the
one the suite would run now; otherwise the suite stops with a one-line error naming the differing
fields, so that no table mixes configurations. The same holds for a checkpoint it resumes.

``runs/`` does not outlive a machine, so a long benchmark also keeps its finished results in a
``results`` folder meant to be committed (``benchmarks/results/<name>/``): one small JSON per run
(``<dataset>-ipc<k>-<method>.json``: accuracies, times, configuration and its fingerprint; never
images or sets). A run found there with the fingerprint the suite would run now is not rerun, so
the benchmark continues on a fresh checkout; one of another configuration is refused like a
finished run in ``out``.

:meth:`Suite.write_tables` writes ``OUT/table.md`` from this suite's runs and, with ``results``,
``RESULTS/table.md`` from *every* run kept there, so a later invocation over one method (say, the
MTT row added to a table measured earlier) extends the committed table instead of replacing it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import MATCHING_METHODS, SELECTION_METHODS, RunConfig, resolve
from .io import atomic_path, write_json

__all__ = ["Suite", "format_table"]


@dataclass
class Suite:
    datasets: list[str]
    ipcs: list[int]
    methods: list[str]
    out: str = "runs/suite"
    root: str = "data"
    preset: str = "cpu-quick"
    seed: int = 0
    device: str = "auto"
    eval_networks: int = 3
    overrides: dict = field(default_factory=dict)  # applied to every RunConfig (nested dicts)
    results: str | None = None  # committed per-run result files (see the module docstring)

    def config(self, dataset: str, ipc: int, method: str) -> RunConfig:
        from .config import apply_overrides

        cfg = RunConfig(method=method, dataset=dataset, root=self.root, ipc=ipc, seed=self.seed,
                        device=self.device, preset=self.preset,
                        out=str(Path(self.out) / dataset / f"ipc{ipc}" / method))
        cfg.eval.networks = self.eval_networks
        apply_overrides(cfg, self.overrides)
        return resolve(cfg)

    def run(self, *, progress: bool = False, log=print) -> list[dict]:
        from .cli import load_data, run, run_fingerprint
        from .fingerprint import check_fingerprint

        results = []
        data: dict = {}
        for dataset in self.datasets:
            for ipc in self.ipcs:
                for method in self.methods:
                    cfg = self.config(dataset, ipc, method)
                    done = Path(cfg.out) / "result.json"
                    kept = self.result_file(dataset, ipc, method)
                    if kept is not None and kept.exists() and not done.exists():
                        done = kept
                    if not done.exists():
                        log(f"== {dataset} ipc={ipc} {method}")
                        run(cfg, resume=True, progress=progress)
                    r = _read_result(done)
                    key = (cfg.dataset, cfg.root, cfg.image_size)
                    if key not in data:  # the data hash of a finished run is checked too
                        data.clear()
                        data[key] = load_data(cfg)
                    check_fingerprint(r.get("fingerprint"), run_fingerprint(cfg, *data[key]),
                                      f"finished run {done}",
                                      (f"delete {done} to rerun it, or give the suite another results folder"
                                       if done == kept else
                                       f"delete {cfg.out} to rerun it, or give the suite another out folder"))
                    if kept is not None and done != kept:
                        write_json(kept, r)
                    results.append(r)
                    log(f"{dataset} ipc={ipc} {method}: {_acc(r)}")
        return results

    def result_file(self, dataset: str, ipc: int, method: str) -> Path | None:
        """Where the committed copy of a run's result lives (``None`` without ``results``)."""
        if self.results is None:
            return None
        return Path(self.results) / f"{dataset}-ipc{ipc}-{method}.json"

    def kept_results(self) -> list[dict]:
        """Every run kept in ``results``, this suite's or an earlier one's, in table order."""
        if self.results is None:
            return []
        kept = [_read_result(path) for path in Path(self.results).glob("*.json") if _KEPT_NAME.fullmatch(path.name)]
        return sorted(kept, key=_table_order)

    def write_tables(self, results: list[dict]) -> str:
        """Write ``OUT/table.md`` (``results``) and ``RESULTS/table.md`` (all kept runs); return the first."""
        text = format_table(results)
        _write_text(Path(self.out) / "table.md", text + "\n")
        if self.results is not None:
            _write_text(Path(self.results) / "table.md", format_table(self.kept_results()) + "\n")
        return text


# <dataset>-ipc<k>-<method>.json; other JSON files (e.g. the whole-set reference) are not runs
_KEPT_NAME = re.compile(r".+-ipc\d+-[a-z]+\.json")
_METHOD_ORDER = {m: i for i, m in enumerate(SELECTION_METHODS + MATCHING_METHODS)}


def _table_order(r: dict) -> tuple:
    return r["dataset"], r["ipc"], _METHOD_ORDER.get(r["method"], len(_METHOD_ORDER)), r["method"]


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _read_result(path: Path) -> dict:
    try:
        r = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a result file ({type(err).__name__}: {err}); delete it to rerun "
                         f"the run") from None
    if not isinstance(r, dict) or "accuracies" not in r:
        raise ValueError(f"{path} is not a result file: no 'accuracies' field; delete it to rerun the run")
    return r


def _acc(r: dict) -> str:
    if r.get("accuracy_mean") is None:
        return "not evaluated"
    return f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f}"


def format_table(results: list[dict]) -> str:
    """A Markdown table: one row per run, accuracy mean ± std over the evaluation networks."""
    lines = ["| dataset | ipc | method | accuracy (%) | networks | eval epochs | iterations | s / iteration |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        spi = f"{r['seconds_per_iteration']:.2f}" if r.get("seconds_per_iteration") else "–"
        lines.append(f"| {r['dataset']} | {r['ipc']} | {r['method']} | {_acc(r)} | {len(r['accuracies'])} | "
                     f"{r.get('eval_epochs', '–')} | {r['iterations'] or '–'} | {spi} |")
    return "\n".join(lines)
