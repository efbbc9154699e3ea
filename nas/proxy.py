"""Proxy training sets for NAS trials, built once and cached on disk under their full config.

A proxy is what each architecture trains on instead of (or as) the whole training set:

- ``whole``: the whole training part (the reference ranking);
- ``early-stopping``: the whole training part, cut to the compute of training on an
  ``ipc``-per-class proxy (the trial computes the step budget);
- ``random``, ``herding``, ``kcenter``, ``forgetting``: real images selected by the engine's
  coreset baselines; ``dc``, ``dsa``, ``dm``, ``mtt``, ``selmatch``: condensed by the engine's matchers (mtt
  and selmatch train their expert trajectories first, in the proxy's folder, ``experts/``);
- a path to a saved :class:`~dc_plugins.synthetic.SyntheticSet` file (``.pt``).

:meth:`ProxyProvider.get` writes ``<cache>/<label>-<key>/proxy.json`` (a :class:`Proxy`
descriptor) and, for set kinds, ``set.pt``. The key is a SHA-256 of the configuration the proxy
depends on (kind, data config, a fingerprint of the training tensors, library version, ipc,
seed; and for herding, k-center and forgetting the preset, network and ``selection``; for the
matchers the preset, network, iterations and ``matching``), so 720 trials share one
condensation, a second run with the same config reuses it and a change builds only the
proxies it concerns. Trials receive the
descriptor's *path* only (NNI pickles evaluator arguments, 64 KB limit per object); every path
in it is absolute (``data.root`` too, rewritten when a cached proxy is reached by another path),
as trials of NNI's training services run in other working directories, or on other machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from dc_plugins import __version__
from dc_plugins.config import (METHODS, SELECTION_METHODS, TRAJECTORY_METHODS, MatchingConfig, SelectionConfig,
                               TrajectoryConfig, apply_overrides, check_trajectory)
from dc_plugins.io import write_json
from dc_plugins.fingerprint import config_hash  # noqa: I001 (below io: keeps clear of other branches' edits above)
from dc_plugins.synthetic import CorruptSetError, SyntheticSet

from .config import DataConfig, ProxyConfig
from .data import DataSplit, data_fingerprint, with_absolute_root

__all__ = [
    "WHOLE_KINDS",
    "SET_KINDS",
    "PROXY_KINDS",
    "Proxy",
    "ProxyProvider",
    "parse_proxy_entry",
    "early_stopping_steps",
]

WHOLE_KINDS = ("whole", "early-stopping")
# The engine's methods, in its order.
SET_KINDS = tuple(m for m in ("random", "herding", "kcenter", "forgetting", "dc", "dsa", "dm", "mtt", "selmatch")
                  if m in METHODS)
PROXY_KINDS = WHOLE_KINDS + SET_KINDS
_ALIASES = {"earlystopping": "early-stopping", "early_stopping": "early-stopping", "es": "early-stopping",
            "k-center": "kcenter", "k_center": "kcenter", "full": "whole"}

DESCRIPTOR = "proxy.json"


def parse_proxy_entry(entry: str) -> tuple[str, str | None]:
    """``(kind, file)`` for one entry of the ``proxies`` list: a kind name, or a path to a saved
    set (``kind == "file"``). Unknown names raise a ``ValueError`` listing what is allowed."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"a proxy must be a kind name or a set file path, got {entry!r}")
    text = entry.strip()
    kind = _ALIASES.get(text.lower(), text.lower())
    if kind in PROXY_KINDS:
        return kind, None
    if text.endswith(".pt") or os.sep in text or Path(text).is_file():
        if not Path(text).is_file():
            raise FileNotFoundError(f"proxy set file {text!r} does not exist")
        return "file", str(Path(text).resolve())
    raise ValueError(f"unknown proxy kind {entry!r}; allowed: {', '.join(PROXY_KINDS)}, "
                     f"or a path to a saved condensed-set file (.pt)")


def early_stopping_steps(epochs: int, ipc: int, num_classes: int, batch: int) -> int:
    """SGD steps on the whole data with the compute (images forwarded and backpropagated) of
    ``epochs`` epochs on an ``ipc``-per-class proxy: ``ceil(epochs * ipc * classes / batch)``."""
    return max(1, -(-epochs * ipc * num_classes // batch))


@dataclass
class Proxy:
    """The descriptor a trial reads (by path): what to train on and how it was made."""

    label: str
    kind: str
    key: str
    data: dict
    set_path: str | None
    num_images: int
    storage_bytes: int
    ipc: int
    build_seconds: float
    config: dict
    build_device: str = ""                            # where the set was built (cpu, cuda); "" = unknown
    path: str = ""                                    # where this descriptor lives (not saved)
    cached: bool = field(default=False, compare=False)  # True when reused from disk (not saved)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path"), d.pop("cached")
        return d

    def save(self, path: str | os.PathLike) -> Path:
        write_json(path, self.to_dict())
        self.path = str(Path(path).resolve())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Proxy":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no proxy descriptor at {str(path)!r}")
        try:
            d = json.loads(path.read_text())
            proxy = cls(**d)
        except (ValueError, TypeError) as err:
            raise CorruptSetError(f"{str(path)!r} is not a proxy descriptor: {err}") from err
        proxy.path = str(path.resolve())
        return proxy

    @property
    def data_config(self) -> DataConfig:
        return DataConfig(**self.data)

    def load_set(self) -> SyntheticSet:
        if self.set_path is None:
            raise ValueError(f"proxy {self.label!r} trains on the whole training part; it has no set file")
        return SyntheticSet.load(self.set_path)


class ProxyProvider:
    """Builds or reuses proxies for one data split.

    Args:
        split: the real data (proxies come from ``split.train``).
        config: ipc, preset, iterations, seed, matching network and overrides.
        cache_dir: where proxies live; one folder per (label, key).
        progress: tqdm bars while condensing.
    """

    def __init__(self, split: DataSplit, config: ProxyConfig, cache_dir: str | os.PathLike, *,
                 progress: bool = True):
        self.split, self.config, self.cache_dir, self.progress = split, config, Path(cache_dir), progress
        self._fingerprint: str | None = None
        self.built: list[str] = []  # labels built (not reused) by this provider, for reports and tests
        for kind in SET_KINDS:
            self.iterations(kind)  # bad values fail before any work
        self.matching_config(), self.selection_config(), self.trajectory_config()  # unknown keys and bad values fail here

    def matching_config(self) -> MatchingConfig:
        """``proxy.matching`` over the engine's MatchingConfig, typed and validated by the
        project's one fill mechanism (the section stays a mapping of overrides: its cache key
        holds only what the user set)."""
        try:
            return apply_overrides(MatchingConfig(), dict(self.config.matching), "proxy.matching.")
        except KeyError as err:
            raise ValueError(err.args[0]) from None

    def trajectory_config(self) -> TrajectoryConfig:
        """``proxy.trajectory`` over the engine's TrajectoryConfig, as :meth:`matching_config`."""
        try:
            return check_trajectory(apply_overrides(TrajectoryConfig(), dict(self.config.trajectory),
                                                    "proxy.trajectory."))
        except KeyError as err:
            raise ValueError(err.args[0]) from None

    def selection_config(self) -> SelectionConfig:
        """``proxy.selection`` over the engine's SelectionConfig, as :meth:`matching_config`."""
        try:
            return apply_overrides(SelectionConfig(), dict(self.config.selection), "proxy.selection.")
        except KeyError as err:
            raise ValueError(err.args[0]) from None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.split)
        return self._fingerprint

    def key_config(self, kind: str, file: str | None = None) -> dict:
        """Everything the proxy's content depends on (its cache key is the hash of this)."""
        data = dataclasses.asdict(self.split.config)
        data.pop("root", None)      # where the files are does not change them; the fingerprint does
        data.pop("download", None)
        if data.get("train_per_class") is None:
            data.pop("train_per_class", None)  # added later: proxies cached before it keep their keys
        cfg: dict = {"kind": kind, "data": data, "data_sha256": self.fingerprint, "version": __version__}
        if kind == "early-stopping":
            cfg["ipc"] = self.config.ipc
        elif kind == "file":
            cfg["file_sha256"] = _file_sha256(file)
        elif kind == "random":
            # Random draws depend on the seed alone: a new matching network or matcher setting
            # must not rebuild it (nor retrain its trials).
            cfg.update(ipc=self.config.ipc, seed=self.config.seed)
        elif kind in SET_KINDS:
            # Herding, k-center and forgetting rank images with a reference network (net,
            # selection, the preset's reference epochs); the matchers learn on net (matching,
            # iterations). Each kind keys only its own settings.
            c = self.config
            cfg.update(ipc=c.ipc, preset=c.preset, seed=c.seed, net=c.net)
            if kind in SELECTION_METHODS:
                cfg.update(selection=c.selection)
            else:
                cfg.update(iterations=self.iterations(kind), matching=c.matching)
                if kind in TRAJECTORY_METHODS:
                    cfg.update(trajectory=c.trajectory)
        return cfg

    def iterations(self, kind: str) -> int | None:
        """The iterations for ``kind``: the number, the method's entry of the mapping, or None
        (the preset decides)."""
        its = self.config.iterations
        if isinstance(its, dict):
            unknown = [k for k in its if k not in SET_KINDS]
            if unknown:
                raise ValueError(f"proxy.iterations has unknown methods {unknown}; allowed: {', '.join(SET_KINDS)}")
            its = its.get(kind)
        if its is not None and (not isinstance(its, int) or its < 0):
            raise ValueError(f"proxy.iterations for {kind} must be a non-negative integer, got {its!r}")
        return its

    def describe(self, entry: str) -> tuple[str, str, str, dict]:
        """``(label, kind, key, key config)`` of one ``proxies`` entry, without building it: the
        key is :func:`dc_plugins.fingerprint.config_hash` of :meth:`key_config`."""
        kind, file = parse_proxy_entry(entry)
        label = kind if kind != "file" else f"file:{Path(file).stem}"
        key_cfg = self.key_config(kind, file)
        return label, kind, config_hash(key_cfg), key_cfg

    def get(self, entry: str) -> Proxy:
        """The proxy for one ``proxies`` entry, from the cache when its key matches."""
        kind, file = parse_proxy_entry(entry)
        if kind == "file":
            self._check_file(file)
        label, kind, key, key_cfg = self.describe(entry)
        folder = self.cache_dir / f"{label.replace(':', '-')}-{key[:16]}"
        cached = self._load_cached(folder / DESCRIPTOR, key)
        if cached is not None:
            data = self._trial_data()
            if cached.data != data:  # the same files, reached by another path in this run
                cached.data = data
                cached.save(folder / DESCRIPTOR)
            return cached
        proxy = self._build(kind, label, key, key_cfg, folder, file)
        proxy.save(folder / DESCRIPTOR)
        self.built.append(label)
        return proxy

    # -- internals --------------------------------------------------------------------------------
    def _trial_data(self) -> dict:
        """The data config a trial loads (``data.root`` absolute: trials may run elsewhere)."""
        return dataclasses.asdict(with_absolute_root(self.split.config))

    def _load_cached(self, descriptor: Path, key: str) -> Proxy | None:
        if not descriptor.is_file():
            return None
        try:
            proxy = Proxy.load(descriptor)
            if proxy.key != key:
                return None
            if proxy.set_path is not None:
                proxy.load_set()  # checksum: a damaged cache entry is rebuilt, not trusted
        except (CorruptSetError, FileNotFoundError, ValueError):
            return None
        proxy.cached = True
        return proxy

    def _check_file(self, file: str) -> None:
        syn = SyntheticSet.load(file)
        want = self.split.train.info.name
        if syn.dataset and syn.dataset != want:
            raise ValueError(f"proxy file {file!r} was made from dataset {syn.dataset!r}; this run uses {want!r}")
        try:
            syn.check_compatible(self.split.channels, self.split.image_size, self.split.num_classes)
        except ValueError as err:
            raise ValueError(f"proxy file {file!r} does not fit this run's data: {err}") from None

    def _build(self, kind: str, label: str, key: str, key_cfg: dict, folder: Path, file: str | None) -> Proxy:
        train = self.split.train
        start = time.perf_counter()
        set_path: str | None = None
        if kind in WHOLE_KINDS:
            n, nbytes = len(train), train.images.numel() * train.images.element_size()
        elif kind == "file":
            syn = SyntheticSet.load(file)
            set_path, n, nbytes = file, len(syn), syn.images.numel() * syn.images.element_size()
        else:
            from dc_plugins.condense import condense

            c = self.config
            folder.mkdir(parents=True, exist_ok=True)
            syn = condense(train, kind, c.ipc, iterations=self.iterations(kind), preset=c.preset, seed=c.seed, net=c.net,
                           matching=self.matching_config(), selection=self.selection_config(),
                           trajectory=self.trajectory_config(),
                           checkpoint=folder / "checkpoint.pt", resume=True, progress=self.progress)
            syn.save(folder / "set.pt")
            (folder / "checkpoint.pt").unlink(missing_ok=True)
            set_path, n, nbytes = str((folder / "set.pt").resolve()), len(syn), syn.images.numel() * 4
        return Proxy(label=label, kind=kind, key=key, data=self._trial_data(),
                     set_path=set_path, num_images=n, storage_bytes=int(nbytes), ipc=self.config.ipc,
                     build_seconds=time.perf_counter() - start, config=key_cfg,
                     build_device=train.images.device.type if kind in SET_KINDS else "")


def _file_sha256(path: str | None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
