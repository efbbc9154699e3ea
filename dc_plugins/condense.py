"""One entry point from a dataset to a synthetic set, for every method."""

from __future__ import annotations

import copy
import dataclasses
import os

from .config import (MATCHING_METHODS, MatchingConfig, RunConfig, SelectionConfig, TrajectoryConfig,
                     check_method, resolve)
from .coreset import CoresetSelector
from .data import ClassIndex, ImageDataset
from .evaluation import flips_allowed
from .matching import DistributionMatcher, GradientMatcher, Matcher, SelMatchMatcher, TrajectoryMatcher
from .models import ConvNetSpec
from .synthetic import SyntheticSet

__all__ = ["make_condenser", "condense"]


def make_condenser(train: ImageDataset, method: str, ipc: int, *, net: str | ConvNetSpec = "convnet",
                   matching: MatchingConfig | None = None, selection: SelectionConfig | None = None,
                   preset: str = "paper", seed: int = 0, trajectory: TrajectoryConfig | None = None,
                   progress: bool = True) -> Matcher | CoresetSelector:
    """Build the matcher or selector for ``method`` on ``train`` (already on its device).

    Fields of ``matching``/``selection``/``trajectory`` (MTT) left at ``None`` come from ``preset``.
    """
    cfg = resolve(RunConfig(method=method, ipc=ipc, preset=preset, seed=seed, dataset=_preset_dataset(train),
                            matching=dataclasses.replace(matching) if matching else MatchingConfig(),
                            selection=dataclasses.replace(selection) if selection else SelectionConfig(),
                            trajectory=copy.deepcopy(trajectory) if trajectory else TrajectoryConfig()))
    spec = net if isinstance(net, ConvNetSpec) else ConvNetSpec.parse(net)
    spec = spec.with_data(train.channels, train.num_classes, train.image_size)
    index = ClassIndex.from_dataset(train)
    common = dict(spec=spec, seed=seed, dataset=train.info.name, mean=train.info.mean, std=train.info.std)
    flip = flips_allowed(train.info)
    if cfg.method == "dc":
        return GradientMatcher(index, ipc, config=cfg.matching, dsa=False, **common)
    if cfg.method == "dsa":
        return GradientMatcher(index, ipc, config=cfg.matching, dsa=True, flip=flip, **common)
    if cfg.method == "dm":
        return DistributionMatcher(index, ipc, config=cfg.matching, dsa=True, flip=flip, **common)
    if cfg.method == "selmatch":
        return SelMatchMatcher(index, ipc, config=cfg.matching, trajectory=cfg.trajectory, flip=flip,
                               progress=progress, **common)
    if cfg.method == "mtt":
        return TrajectoryMatcher(index, ipc, config=cfg.matching, trajectory=cfg.trajectory, flip=flip,
                                 progress=progress, **common)
    return CoresetSelector(cfg.method, index, ipc, config=cfg.selection, **common)


def _preset_dataset(train: ImageDataset) -> str:
    """The dataset name presets see (MTT's ZCA rule is per dataset); data of no known dataset
    (generated tensors) resolve as the default's."""
    from .data import DATASETS

    return train.info.name if train.info.name in DATASETS else RunConfig.dataset


def condense(train: ImageDataset, method: str, ipc: int, *, iterations: int | None = None,
             preset: str = "paper", seed: int = 0, net: str | ConvNetSpec = "convnet",
             matching: MatchingConfig | None = None, selection: SelectionConfig | None = None,
             checkpoint: str | os.PathLike | None = None, resume: bool = False,
             progress: bool = True, trajectory: TrajectoryConfig | None = None) -> SyntheticSet:
    """Condense (or select from) ``train`` into ``ipc`` images per class.

    >>> train = load_dataset("digits")
    >>> syn = condense(train, "dm", ipc=10, iterations=200)
    """
    method = check_method(method)
    condenser = make_condenser(train, method, ipc, net=net, matching=matching, selection=selection,
                               preset=preset, seed=seed, trajectory=trajectory, progress=progress)
    if iterations is None and method in MATCHING_METHODS:
        iterations = resolve(RunConfig(method=method, ipc=ipc, preset=preset, dataset=_preset_dataset(train))).iterations
    return condenser.run(iterations or 0, checkpoint=checkpoint, resume=resume, progress=progress)
