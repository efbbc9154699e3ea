"""``CondensedReplayConfig``: how the replay memory condenses each experience.

A typed dataclass, filled from keyword arguments, a mapping or a YAML file. Fields left at
``None`` come from the engine's preset (``cpu-quick`` by default, ``paper`` one argument away;
see :mod:`dc_plugins.config`). The memory budget itself (``mem_size``) is an argument of the
plugin/buffer, as in Avalanche's ``ReplayPlugin``; ``ipc`` switches from "share ``mem_size``
equally" to "``ipc`` per class".

**The default budget.** ``CondensedReplayPlugin(mem_size=100)`` with nothing else set runs DM
with the ``cpu-quick`` preset (200 iterations, 64 real images per class per iteration, starting
from real images) on a 32-channel ConvNet (``convnet-w32-d3-instance-relu-avg``). On Avalanche's
SplitMNIST (5 experiences of MNIST-10k, 10 images per class at mem_size=100) with a Naive
SimpleMLP, ``examples/benchmark_split_mnist_default.py`` measured 10-12 s of condensation per
experience and 60 s for the whole run on the project's 2 cores (load average ~1.5); with the
cores shared by four test runs (load average 5-6) DM took 0.4 s per iteration (~80 s per
experience). DC and the paper's 128-channel ConvNet cost far more: under that load one DC outer
iteration at 10 images per class took 45 s (32 channels) and 117 s (128 channels) per
experience, DM 0.4 s and 1.5 s, so a DC default would have taken over half an hour. The paper's budget is one
argument away: ``preset="paper"`` (DM 20,000 iterations, DC/DSA 1,000, the paper's loops, the
128-channel ConvNet), e.g. ``CondensedReplayPlugin(100, method="dc", preset="paper")``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any


from ..config import (read_yaml_mapping, MATCHING_METHODS, METHODS, PRESETS, MatchingConfig, RunConfig, SelectionConfig,
                      TrajectoryConfig, apply_overrides, check_method, check_trajectory, resolve)
from ..models import ConvNetSpec

__all__ = ["CondensedReplayConfig", "MEMORY_TRANSFORMS"]

MEMORY_TRANSFORMS = ("auto", "dsa", "none")
# The condensation network by preset when ``net`` is None (see the module doc for the costs).
PRESET_NETS = {"paper": "convnet", "cpu-quick": "convnet-w32-d3-instance-relu-avg"}


@dataclass
class CondensedReplayConfig:
    """Settings of the condensation that fills a :class:`~dc_plugins.avalanche.CondensedBuffer`.

    Attributes:
        method: ``dm`` (default), ``dc``, ``dsa``, ``mtt``, ``selmatch`` (condensation) or ``random``, ``herding``, ``kcenter``,
            ``forgetting`` (the engine's coreset baselines, through the same buffer).
        ipc: images per class. ``None``: ``mem_size`` is shared equally between the classes,
            every slot used (the remainder goes to the earliest classes, as in Avalanche's
            balanced buffers): at the share each class will finally have when the stream's
            number of classes is known (``total_classes``), else at the share of the classes
            seen so far, re-selected when it shrinks (see :class:`CondensedBuffer`). An integer:
            each class keeps ``ipc`` images (the memory grows), unless ``ipc`` times the classes
            would exceed ``mem_size``, in which case the equal share is used and a warning says so.
        total_classes: how many classes (counted per experience, as the buffer's groups) the
            whole stream has. ``"auto"``: read from the experience's stream (Avalanche's
            ``exp.origin_stream``) when it exposes its experiences, else ``"adaptive"``.
            ``"adaptive"``: never look ahead; shares shrink as classes arrive. An integer: given.
        iterations: outer iterations of the matcher per experience; ``None``: the preset's.
        preset: ``paper`` or ``cpu-quick``: fills every field left at ``None``.
        net: the ConvNet used for condensation; ``None``: the preset's (``paper``: the paper's
            ``convnet-w128-d3-instance-relu-avg``; ``cpu-quick``: ``convnet-w32-d3-instance-relu-avg``).
            The data shape and class count come from the experience.
        device: where condensation runs; ``None``: the strategy's device.
        seed: base seed; the experience index and task label are added to it, so every
            condensation is reproducible without touching the global RNG.
        flip: let DSA mirror images (off by default: mirrored digits change class).
        cache_dir: if set, each condensed group of classes is saved there (a ``SyntheticSet``
            file named by a hash of the data and settings) and reused when the same experience
            is condensed again with the same settings, e.g. by another run of a comparison.
            A running condensation is checkpointed there too (``<name>.partial.pt``, every
            ``checkpoint_every_s`` seconds), so an interrupted run resumes mid-condensation.
        checkpoint_every_s: seconds between those checkpoints.
        memory_transform: how condensed images are augmented when replayed (train mode only;
            none in eval mode), through Avalanche's transform groups. ``"auto"`` or ``"dsa"``:
            DSA (``matching.dsa_strategy``, mirrored only with ``flip``), one random
            transformation per item and read; ``"none"``: replayed as stored. Real exemplars
            (coreset methods, small classes) are replayed as ``exp.dataset.subset(indices)``,
            through the stream's own transform groups, as Avalanche's buffers replay them.
        progress: show a tqdm bar while condensing.
        matching, selection: the engine's matcher and coreset settings (``None`` = preset).
        trajectory: MTT's and SelMatch's settings (``None`` = preset). Each condensation trains the experts it
            needs on the experience's classes first: with ``cpu-quick`` 2 experts of 6 epochs,
            then 50 iterations of 10 synthetic steps (see ``PRESETS`` in :mod:`dc_plugins.config`);
            with ``cache_dir`` the experts are saved next to the cached set (``<name>.experts/``)
            and reused, else kept in memory.
    """

    method: str = "dm"
    ipc: int | None = None
    total_classes: int | str = "auto"
    iterations: int | None = None
    preset: str = "cpu-quick"
    net: str | None = None
    device: str | None = None
    seed: int = 0
    flip: bool = False
    cache_dir: str | None = None
    checkpoint_every_s: float = 60.0
    memory_transform: str = "auto"
    progress: bool = True
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "CondensedReplayConfig":
        """Raise ``ValueError`` naming the bad value and what is allowed."""
        if not isinstance(self.method, str):
            raise ValueError(f"method must be a string; allowed: {', '.join(METHODS)}")
        self.method = check_method(self.method)
        if self.ipc is not None and (isinstance(self.ipc, bool) or not isinstance(self.ipc, int) or self.ipc <= 0):
            raise ValueError(f"ipc must be a positive integer or None, got {self.ipc!r}")
        tc = self.total_classes
        if not (tc in ("auto", "adaptive") or (isinstance(tc, int) and not isinstance(tc, bool) and tc > 0)):
            raise ValueError(f"total_classes must be 'auto', 'adaptive' or a positive integer, got {tc!r}")
        if self.memory_transform not in MEMORY_TRANSFORMS:
            raise ValueError(f"unknown memory_transform {self.memory_transform!r}; allowed: "
                             f"{', '.join(MEMORY_TRANSFORMS)}")
        if isinstance(self.checkpoint_every_s, bool) or not isinstance(self.checkpoint_every_s, (int, float)) \
                or self.checkpoint_every_s < 0:
            raise ValueError(f"checkpoint_every_s must be a non-negative number, got {self.checkpoint_every_s!r}")
        if self.iterations is not None and (not isinstance(self.iterations, int) or self.iterations < 0):
            raise ValueError(f"iterations must be a non-negative integer or None, got {self.iterations!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; allowed: {', '.join(PRESETS)}")
        if self.net is not None:
            ConvNetSpec.parse(self.net)  # raises a ValueError naming the bad token
        check_trajectory(self.trajectory)
        return self

    @property
    def resolved_net(self) -> str:
        """The condensation network: ``net``, or the preset's when ``None``."""
        return self.net if self.net is not None else PRESET_NETS[self.preset]

    @property
    def is_matching(self) -> bool:
        return self.method in MATCHING_METHODS

    def resolved(self, ipc: int) -> RunConfig:
        """The engine's run config for one condensation at ``ipc``, preset values filled in."""
        return resolve(RunConfig(method=self.method, ipc=ipc, iterations=self.iterations,
                                 preset=self.preset, seed=self.seed, net=self.resolved_net,
                                 matching=dataclasses.replace(self.matching),
                                 selection=dataclasses.replace(self.selection),
                                 trajectory=copy.deepcopy(self.trajectory)))

    def replace(self, **overrides: Any) -> "CondensedReplayConfig":
        """A copy with fields replaced; unknown names raise ``KeyError`` listing the allowed ones."""
        cfg = dataclasses.replace(self, matching=dataclasses.replace(self.matching),
                                  selection=dataclasses.replace(self.selection),
                                  trajectory=copy.deepcopy(self.trajectory))
        if overrides:
            apply_overrides(cfg, overrides)
        return cfg.validate()

    @classmethod
    def from_dict(cls, values: dict | None) -> "CondensedReplayConfig":
        if values is None:
            return cls()
        if not isinstance(values, dict):
            raise ValueError(f"a condensed-replay config must be a mapping, got {type(values).__name__}")
        return cls().replace(**values)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, key: str | None = None) -> "CondensedReplayConfig":
        """Read the config from a YAML file or packaged config (optionally from the mapping under
        ``key``, e.g. ``CondensedReplayConfig.from_yaml("continual_digits", key="condense")``)."""
        data = read_yaml_mapping(path)
        if key is not None:
            if key not in data:
                raise KeyError(f"{str(path)!r} has no {key!r} section")
            data = data[key]
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
