"""A grid of condensation runs (datasets x ipc x methods) with one results table.

Used by ``make demo`` and by the benchmark script. Every run goes through the same code path as
``dc-condense`` and lands in ``OUT/<dataset>/ipc<k>/<method>/``; runs whose ``result.json``
exists are skipped, so an interrupted suite continues where it stopped (and an unfinished
condensation resumes from its checkpoint). A finished run is reused only when its stored
configuration fingerprint (settings and a hash of the data, :mod:`dc_plugins.fingerprint`) is the
one the suite would run now; otherwise the suite stops with a one-line error naming the differing
fields, so that no table mixes configurations. The same holds for a checkpoint it resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .config import RunConfig, resolve

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
                    if not done.exists():
                        log(f"== {dataset} ipc={ipc} {method}")
                        run(cfg, resume=True, progress=progress)
                    r = json.loads(done.read_text())
                    key = (cfg.dataset, cfg.root, cfg.image_size)
                    if key not in data:  # the data hash of a finished run is checked too
                        data.clear()
                        data[key] = load_data(cfg)
                    check_fingerprint(r.get("fingerprint"), run_fingerprint(cfg, *data[key]),
                                      f"finished run {done}",
                                      f"delete {cfg.out} to rerun it, or give the suite another out folder")
                    results.append(r)
                    log(f"{dataset} ipc={ipc} {method}: {_acc(r)}")
        return results


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
