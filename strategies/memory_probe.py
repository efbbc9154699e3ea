"""What a rehearsal memory is worth on its own: fresh networks trained on the final memory only.

The condensation papers compare sets by training a fresh network on the set alone and testing it;
for a continual-learning memory that separates the memory's content (how much of every class the
100 images carry) from how the learner uses it (its capacity, the memory's share of each batch,
distillation). ``dc-continual --probe-memory EPOCHS`` does this for every run of a grid:

* each run saves its final memory as ``runs/<name>/memory.pt`` (images as the buffer stores them,
  labels; in ``runs/``, never committed: it is images),
* the probe trains ``networks`` fresh learners (the run's ``net``) on it for ``epochs`` epochs with
  the evaluation protocol's optimiser (SGD 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1
  at half) and the learner's augmentation, tests them on the union of the stream's test sets, and
  writes ``runs/<name>/probe.json`` (small, committed with the run's ``result.json``), reused when
  its settings and the memory's hash match.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from dc_plugins.fingerprint import data_fingerprint
from dc_plugins.io import atomic_path, load_torch_file, write_json

__all__ = ["save_memory", "probe_memory", "probe_markdown"]

MEMORY_FILE, PROBE_FILE = "memory.pt", "probe.json"


def save_memory(run_dir: Path, storage_policy) -> Path | None:
    """Write the buffer's items (eval view: as stored, no replay augmentation) to ``memory.pt``."""
    from dc_plugins.avalanche.items import materialise

    buffer = getattr(storage_policy, "buffer", None)
    if buffer is None or len(buffer) == 0:
        return None
    mem = materialise(buffer)
    path = Path(run_dir) / MEMORY_FILE
    with atomic_path(path) as tmp:
        torch.save({"images": mem.images, "labels": mem.targets}, tmp)
    return path


def _test_tensors(benchmark) -> tuple[torch.Tensor, torch.Tensor]:
    from dc_plugins.avalanche.items import materialise

    parts = [materialise(exp.dataset) for exp in benchmark.test_stream]
    return torch.cat([p.images for p in parts]), torch.cat([p.targets for p in parts])


def probe_memory(run_dir: Path, benchmark, *, net: str, epochs: int, networks: int, seed: int, flip: bool,
                 augment: bool, device: torch.device) -> dict | None:
    """Train ``networks`` fresh ``net`` learners on the run's ``memory.pt`` and test them on every
    test experience; returns (and writes) ``probe.json``'s content, ``None`` without a memory file."""
    from dc_plugins.augment import CropFlip
    from dc_plugins.config import EvalConfig
    from dc_plugins.evaluation import network_generators, train_on_set
    from dc_plugins.training import accuracy

    from .models import make_learner

    if epochs <= 0 or networks <= 0:
        raise ValueError(f"the memory probe needs epochs > 0 and networks > 0, got epochs={epochs}, "
                         f"networks={networks}")
    run_dir = Path(run_dir)
    path = run_dir / MEMORY_FILE
    if not path.exists():
        return None
    state = load_torch_file(path, "memory")
    images, labels = state["images"].to(device), state["labels"].to(device)
    settings = {"net": net, "epochs": epochs, "networks": networks, "seed": seed, "augment": augment,
                "flip": flip, "memory": data_fingerprint(state["images"], state["labels"])}
    probe_path = run_dir / PROBE_FILE
    if probe_path.exists():
        stored = json.loads(probe_path.read_text())
        if stored.get("settings") == settings:
            return stored
    test_x, test_y = _test_tensors(benchmark)
    test_x, test_y = test_x.to(device), test_y.to(device)
    num_classes = int(torch.cat([labels, test_y]).max()) + 1
    accs = []
    for g in network_generators(seed, networks):
        model = make_learner(net, channels=images.shape[1], image_size=images.shape[-1], num_classes=num_classes,
                             generator=g).to(device)
        train_on_set(model, images, labels, epochs=epochs, config=EvalConfig(), generator=g,
                     augment=CropFlip(flip=flip) if augment else None)
        accs.append(accuracy(model, test_x, test_y))
    result = {"settings": settings, "memory_images": int(images.shape[0]),
              "classes_in_memory": sorted(int(c) for c in labels.unique()),
              "accuracies": accs, "accuracy_mean": statistics.fmean(accs),
              "accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0}
    write_json(probe_path, result)
    return result


def probe_markdown(probes: dict[tuple[str, bool, int], dict]) -> str:
    """Mean ± std over seeds of the probes' mean accuracy, per (memory, distillation)."""
    keys = sorted({(m, d) for (m, d, _) in probes}, key=lambda k: (k[1], k[0]))
    lines = ["Memory alone: fresh learners trained on the final memory only, tested on all test classes (%):", "",
             "| memory | distillation | seeds | accuracy | per seed |", "|---|---|---|---|---|"]
    for memory, distill in keys:
        values = [100 * p["accuracy_mean"] for (m, d, _), p in sorted(probes.items()) if (m, d) == (memory, distill)]
        std = statistics.pstdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {memory} | {'yes' if distill else 'no'} | {len(values)} | "
                     f"{statistics.fmean(values):.2f} ± {std:.2f} | {', '.join(f'{v:.1f}' for v in values)} |")
    return "\n".join(lines) + "\n"
