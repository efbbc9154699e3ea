"""Expert trajectories for trajectory matching (MTT): networks trained on the real data with
their flat parameters saved after every epoch.

A buffer is a folder with one file per expert, ``expert_0000.pt``, ``expert_0001.pt``, ...,
each written atomically (a reader never sees half a file) and holding

* ``params``: ``(epochs + 1, P)`` float32 or float16, the parameters at initialisation and after
  each epoch, flattened in ``net.parameters()`` order;
* ``meta``: what the trajectory depends on (:func:`expert_metadata`: dataset, network spec,
  image shape, normalisation, ZCA, epochs, lr, batch, augmentation, seed, a SHA-256 of the data,
  storage dtype);
* ``sha256``: a checksum of both, so an edited or damaged file is refused, never used.

:meth:`ExpertTrajectories.build` trains the experts that are missing (progress bar; an
interrupted build resumes with the next unfinished expert, a finished one is never retrained),
:meth:`ExpertTrajectories.sample` draws ``(expert, start epoch)`` from a generator and returns
the start and target parameters. Every expert ``e`` trains from its own generator
(``seed`` and ``e``), so a buffer does not depend on the order or the number of builds.

Experts train as MTT's ``buffer.py``: plain SGD (no momentum, no weight decay) at ``lr`` with
DSA on every real minibatch (one family per batch, per-image parameters).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .augment import DSAugment
from .data import make_generator
from .fingerprint import check_fingerprint
from .io import atomic_path, load_tagged_torch_file
from .models import ConvNetSpec, make_convnet
from .training import train_epoch

__all__ = ["FORMAT", "ExpertTrajectories", "TrajectorySample", "CorruptExpertError", "MissingExpertsError",
           "expert_metadata", "expert_seed"]

FORMAT = "dc-plugins/expert-trajectory"
FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class CorruptExpertError(ValueError):
    """An expert file cannot be trusted: truncated, edited, or not an expert-trajectory file."""


class MissingExpertsError(FileNotFoundError):
    """The buffer folder lacks experts that were asked for."""


def expert_metadata(*, dataset: str, spec: ConvNetSpec | str, image_shape, mean=(), std=(), zca: bool = False,
                    zca_eps: float = 0.0, epochs: int, lr: float, batch: int, augment: str | None, seed: int,
                    data: str, dtype: str = "float32") -> dict:
    """The metadata every expert file of a buffer carries; a buffer is used only by a run whose
    metadata is equal (a mismatch names the differing fields)."""
    if dtype not in _DTYPES:
        raise ValueError(f"expert dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"expert epochs must be a positive integer, got {epochs!r}")
    return {"format": FORMAT, "dataset": dataset, "net": str(spec), "image_shape": [int(s) for s in image_shape],
            "mean": [float(m) for m in mean], "std": [float(s) for s in std], "zca": bool(zca),
            "zca_eps": float(zca_eps) if zca else 0.0, "epochs": int(epochs), "lr": float(lr),
            "batch": int(batch), "augment": augment, "seed": int(seed), "data": data, "dtype": dtype}


def expert_seed(seed: int, expert: int) -> int:
    """The seed of expert ``expert``'s generator (initialisation, minibatch order, augmentation)."""
    return int(seed) * 1_000_003 + 7919 * (int(expert) + 1)


def _checksum(params: torch.Tensor, meta: dict, expert: int) -> str:
    h = hashlib.sha256()
    h.update(f"{expert};{tuple(params.shape)};{params.dtype};".encode())
    h.update(params.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


@dataclass
class TrajectorySample:
    """One draw: the student starts at ``start`` (expert ``expert`` after ``start_epoch`` epochs)
    and is compared with ``target`` (the same expert ``expert_epochs`` epochs later)."""

    expert: int
    start_epoch: int
    start: torch.Tensor
    target: torch.Tensor


class ExpertTrajectories:
    """``num_experts`` trajectories of ``meta["epochs"]`` epochs, in ``root`` (or in memory
    when ``root`` is None: nothing is written, for callers without an output folder).

    Args:
        meta: :func:`expert_metadata` of the run that uses the buffer.
        num_experts: how many experts the run uses (``0 .. num_experts - 1``).
        root: the buffer folder.
    """

    def __init__(self, meta: dict, num_experts: int, root: str | os.PathLike | None = None):
        if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts <= 0:
            raise ValueError(f"num_experts must be a positive integer, got {num_experts!r}")
        self.meta, self.num_experts = dict(meta), num_experts
        self.root = None if root is None else Path(root).expanduser()
        self._memory: dict[int, torch.Tensor] = {}    # in-memory buffer, or the last expert read
        self._verified: set[int] = set()
        self.trained = 0                              # experts trained by this object (resume checks)

    def __repr__(self) -> str:
        return (f"ExpertTrajectories({self.num_experts} experts x {self.epochs} epochs, {self.meta['net']}, "
                f"{self.meta['dataset']}, root={str(self.root) if self.root else None!r})")

    @property
    def epochs(self) -> int:
        return int(self.meta["epochs"])

    def path(self, expert: int) -> Path:
        if self.root is None:
            raise ValueError("an in-memory expert buffer has no files")
        return self.root / f"expert_{expert:04d}.pt"

    # -- reading ------------------------------------------------------------------------------
    def _read(self, expert: int, *, verify: bool) -> torch.Tensor:
        path = self.path(expert)
        payload = load_tagged_torch_file(path, "valid expert-trajectory", CorruptExpertError, FORMAT, FORMAT_VERSION)
        try:
            params, meta, stored_expert = payload["params"], json.loads(payload["meta"]), int(payload["expert"])
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptExpertError(f"{path} is not an expert-trajectory file: field {err} missing or "
                                     f"unreadable") from None
        if not isinstance(params, torch.Tensor) or params.ndim != 2:
            raise CorruptExpertError(f"{path} is not an expert-trajectory file: params is not a 2-d tensor")
        if verify and _checksum(params, meta, stored_expert) != payload.get("sha256"):
            raise CorruptExpertError(f"{path} is not an expert-trajectory file: checksum mismatch "
                                     f"(modified or damaged); delete it to retrain that expert")
        if stored_expert != expert:
            raise CorruptExpertError(f"{path} holds expert {stored_expert}, not expert {expert} (renamed file?)")
        check_fingerprint(meta, self.meta, f"expert buffer file {path}",
                          "delete the buffer (or point trajectory.buffer at another folder) to train new experts")
        if params.shape[0] != self.epochs + 1:
            raise CorruptExpertError(f"{path} holds {params.shape[0]} parameter snapshots; its metadata says "
                                     f"{self.epochs} epochs ({self.epochs + 1} snapshots)")
        return params

    def finished(self) -> list[int]:
        """The experts ``0 .. num_experts - 1`` already there (files are complete by construction:
        they are written atomically; their metadata is checked when they are read)."""
        if self.root is None:
            return sorted(self._memory)
        return [e for e in range(self.num_experts) if self.path(e).is_file()]

    def check(self) -> "ExpertTrajectories":
        """Raise unless every expert is there, of this metadata and intact: a missing folder or
        expert (:class:`MissingExpertsError`), another configuration
        (:class:`~dc_plugins.fingerprint.ConfigMismatchError` naming the fields) or a damaged
        file (:class:`CorruptExpertError`)."""
        if self.root is not None and not self.root.is_dir():
            raise MissingExpertsError(f"expert buffer {str(self.root)!r} does not exist; build it with "
                                      f"`dc-experts` (same flags as dc-condense) or leave trajectory.buffer unset")
        missing = [e for e in range(self.num_experts) if e not in self.finished()]
        if missing:
            where = f"expert buffer {str(self.root)!r}" if self.root else "the in-memory expert buffer"
            raise MissingExpertsError(
                f"{where} lacks experts {_ranges(missing)} of the {self.num_experts} asked for "
                f"(trajectory.num_experts); build them with `dc-experts` or lower trajectory.num_experts")
        for e in range(self.num_experts):
            self.expert(e)
        return self

    def expert(self, expert: int) -> torch.Tensor:
        """Expert ``expert``'s ``(epochs + 1, P)`` parameters (float32; the last one read stays cached)."""
        if not 0 <= expert < self.num_experts:
            raise ValueError(f"expert {expert} is not in this buffer (0 .. {self.num_experts - 1})")
        if expert in self._memory:
            return self._memory[expert]
        if self.root is None:
            raise MissingExpertsError(f"expert {expert} has not been trained (in-memory buffer); call build()")
        if not self.path(expert).is_file():
            raise MissingExpertsError(f"expert buffer {str(self.root)!r} has no expert {expert} "
                                      f"({self.path(expert).name}); build it with `dc-experts`")
        params = self._read(expert, verify=expert not in self._verified).float()
        self._verified.add(expert)
        self._memory = {expert: params}
        return params

    def sample(self, generator: torch.Generator, max_start_epoch: int, expert_epochs: int) -> TrajectorySample:
        """An expert uniformly, a start epoch uniformly in ``0 .. max_start_epoch - 1`` (as MTT),
        and the parameters there and ``expert_epochs`` epochs later."""
        self.check_window(max_start_epoch, expert_epochs)
        e = int(torch.randint(self.num_experts, (1,), generator=generator))
        t = int(torch.randint(max_start_epoch, (1,), generator=generator))
        return self.at(e, t, expert_epochs)

    def at(self, expert: int, start_epoch: int, expert_epochs: int) -> TrajectorySample:
        if start_epoch < 0 or start_epoch + expert_epochs > self.epochs:
            raise ValueError(f"start epoch {start_epoch} + expert_epochs {expert_epochs} is beyond the buffer's "
                             f"{self.epochs} epochs")
        params = self.expert(expert)
        return TrajectorySample(expert, start_epoch, params[start_epoch], params[start_epoch + expert_epochs])

    def check_window(self, max_start_epoch: int, expert_epochs: int) -> None:
        """Raise a ``ValueError`` unless every start epoch ``< max_start_epoch`` has its target."""
        for name, v in (("max_start_epoch", max_start_epoch), ("expert_epochs", expert_epochs)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"trajectory.{name} must be a positive integer, got {v!r}")
        if max_start_epoch - 1 + expert_epochs > self.epochs:
            raise ValueError(
                f"start epochs up to {max_start_epoch - 1} (trajectory.max_start_epoch={max_start_epoch}) plus "
                f"expert_epochs {expert_epochs} are beyond the buffer's {self.epochs} epochs; lower them or "
                f"train longer experts (trajectory.expert_train_epochs)")

    # -- writing ------------------------------------------------------------------------------
    def _save(self, expert: int, params: torch.Tensor) -> None:
        params = params.to(_DTYPES[self.meta["dtype"]]).cpu().contiguous()
        meta = self.meta
        payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "expert": expert, "params": params,
                   "meta": json.dumps(meta, sort_keys=True), "sha256": _checksum(params, meta, expert)}
        if self.root is None:
            self._memory[expert] = params.float()
            return
        with atomic_path(self.path(expert)) as tmp:
            torch.save(payload, tmp)

    def build(self, images: torch.Tensor, labels: torch.Tensor, *, spec: ConvNetSpec,
              augment: DSAugment | None, progress: bool = True) -> "ExpertTrajectories":
        """Train every expert that is not there yet on ``(images, labels)`` (on their device) and
        save it; finished experts are checked, never retrained. Returns ``self``."""
        from tqdm.auto import tqdm

        if str(spec) != self.meta["net"]:
            raise ValueError(f"network {spec} is not the buffer's {self.meta['net']}")
        if [int(s) for s in images.shape[1:]] != self.meta["image_shape"]:
            raise ValueError(f"images of shape {tuple(images.shape[1:])} are not the buffer's "
                             f"{tuple(self.meta['image_shape'])}")
        done = set(self.finished())
        for e in sorted(done):
            self.expert(e)  # metadata and checksum: a foreign or damaged file stops the build
        todo = [e for e in range(self.num_experts) if e not in done]
        bar = tqdm(total=len(todo) * self.epochs, disable=not progress or not todo, unit="ep",
                   desc=f"experts {len(done)}/{self.num_experts} done", dynamic_ncols=True)
        try:
            for e in todo:
                self._save(e, self.train_expert(e, images, labels, spec=spec, augment=augment,
                                                on_epoch=lambda: bar.update(1)))
                self.trained += 1
                bar.set_description(f"experts {e + 1}/{self.num_experts}")
        finally:
            bar.close()
        return self

    def train_expert(self, expert: int, images: torch.Tensor, labels: torch.Tensor, *, spec: ConvNetSpec,
                     augment: DSAugment | None, on_epoch=None) -> torch.Tensor:
        """Expert ``expert``'s ``(epochs + 1, P)`` trajectory (SGD at ``meta["lr"]``, DSA)."""
        g = make_generator(expert_seed(self.meta["seed"], expert))
        net = make_convnet(spec, generator=g, device=images.device).to(images.dtype)
        opt = torch.optim.SGD(net.parameters(), lr=self.meta["lr"], momentum=0.0, weight_decay=0.0)
        snaps = [torch.nn.utils.parameters_to_vector(net.parameters()).detach().cpu()]
        for _ in range(self.epochs):
            train_epoch(net, images, labels, opt, batch=self.meta["batch"], generator=g, augment=augment)
            snaps.append(torch.nn.utils.parameters_to_vector(net.parameters()).detach().cpu())
            if on_epoch is not None:
                on_epoch()
        return torch.stack(snaps)


def _ranges(items: list[int]) -> str:
    out, start = [], None
    for i, v in enumerate(items):
        if start is None:
            start = v
        if i + 1 == len(items) or items[i + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)
