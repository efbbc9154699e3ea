"""Typed configuration of a NAS-proxy run: dataclasses that a YAML file and CLI flags fill.

Every key of the YAML file is a field below (nested sections are nested dataclasses); an unknown
key, a value of the wrong type or an unknown choice is an error that names the key and what is
allowed. ``--set section.key=value`` on the command line overrides any field.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from dc_plugins.config import apply_overrides as apply_values  # one override/coercion for all CLIs
from dc_plugins.config import parse_assignment, read_yaml_mapping
from dc_plugins.evaluation import check_parallel
from dc_plugins.models import ACTIVATIONS, NORMS, POOLINGS

__all__ = [
    "DataConfig",
    "SpaceConfig",
    "ProxyConfig",
    "TrainConfig",
    "ExperimentConfig",
    "ScoreConfig",
    "NasConfig",
    "ENGINES",
    "load_config",
    "apply_values",
    "parse_assignment",
]

ENGINES = ("sequential", "ts")
AUGMENTS = ("none", "dc", "dsa")  # a trial's training augmentation (dc_plugins.evaluation)


@dataclass
class DataConfig:
    """The real dataset: proxies are built from its training part, every trial validates on
    held-out real images (``validation: split`` = a stratified ``val_fraction`` of the training
    split, drawn with ``split_seed``; ``validation: test`` = the dataset's test split).
    ``train_per_class`` keeps that many random images of each class in the training part (a
    data-limited reference, where architectures differ by more than on a saturated full set)."""

    dataset: str = "cifar10"
    root: str = "data"
    image_size: int | None = None
    channels: int | None = None
    download: bool = False
    validation: str = "split"
    val_fraction: float = 0.1
    split_seed: int = 0
    train_per_class: int | None = None


@dataclass
class SpaceConfig:
    """The architectures: the product of the value lists (720 with the defaults), or an explicit
    ``archs`` list; ``max_archs`` keeps a seeded random subset of them, with every value of every
    design choice in it when ``cover_choices`` is true (:func:`nas.space.sample_archs`)."""

    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    depths: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    norms: list[str] = field(default_factory=lambda: list(NORMS))
    activations: list[str] = field(default_factory=lambda: list(ACTIVATIONS))
    poolings: list[str] = field(default_factory=lambda: list(POOLINGS))
    archs: list[str] | None = None
    max_archs: int | None = None
    seed: int = 0
    cover_choices: bool = False


@dataclass
class ProxyConfig:
    """How condensed / selected proxies are made (the engine's ``condense``). ``matching`` and
    ``selection`` override fields of the engine's MatchingConfig / SelectionConfig; fields left
    unset come from ``preset`` (``paper`` or ``cpu-quick``); ``trajectory`` does the same for
    MTT's TrajectoryConfig (proxy kind ``mtt``, its experts trained in the proxy's folder). ``iterations`` is one number for
    every matcher or a mapping per method (``{dc: 100, dm: 2000}``); unset = the preset's."""

    ipc: int = 10
    preset: str = "paper"
    iterations: int | dict | None = None
    seed: int = 0
    net: str = "convnet"
    cache_dir: str | None = None
    matching: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    trajectory: dict = field(default_factory=dict)   # MTT's TrajectoryConfig overrides (proxy kind mtt)


@dataclass
class TrainConfig:
    """How each trial trains: ``epochs`` on a proxy set, ``whole_epochs`` on the whole training
    part (the reference ranking); early stopping gets the compute of ``epochs`` on an
    ``ipc``-per-class proxy. SGD as the evaluation protocol (lr x0.1 at half the budget).
    ``repeats`` > 1 trains each architecture that many times (seeds ``seed``, ``seed + 1``, ...)
    and scores the mean: one short training ranks near-equal architectures mostly by its noise.
    Raising ``repeats`` later keeps the trainings done (the first seeds are the same).
    ``augment`` (none, dc, dsa) applies to every trial; ``proxy_augment``, when set, replaces it
    for the proxies' trials only, so the reference keeps its training while ten images per class
    are trained as the condensation papers evaluate them (``dc``: crop/scale/rotate on digits).
    One augmentation for every architecture of a run: it is resolved from the proxy and the
    dataset, never from an architecture's normalisation (``nas.evaluator.trial_augment``).
    ``parallel`` trains that many repeats of an architecture at once as one stacked model
    (``dc_plugins.stacked``), as ``eval.parallel`` does the evaluation's networks: the same
    trainings up to float rounding, so it is not part of the trials' key; None = by device
    (the loop on a CPU, chunks of up to 20 elsewhere: ``dc_plugins.evaluation.parallel_networks``)."""

    epochs: int = 100
    whole_epochs: int = 100
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch: int = 256
    augment: str = "none"
    proxy_augment: str | None = None
    report_every: int = 10
    seed: int = 0
    repeats: int = 1
    parallel: int | None = None

    def augment_for(self, proxy_kind: str) -> str:
        """The augmentation a trial of this proxy kind trains with."""
        if proxy_kind == "whole" or self.proxy_augment is None:
            return self.augment
        return self.proxy_augment


@dataclass
class ExperimentConfig:
    """NNI side. ``engine: sequential`` runs trials in-process (no server); ``engine: ts`` uses
    NNI's training-service engine (NNI manager + web UI on ``port``) with ``training_service``
    as in NNI's own config, e.g. ``{platform: local}`` or ``{platform: remote, machineList: [...]}``."""

    engine: str = "sequential"
    training_service: dict = field(default_factory=lambda: {"platform": "local"})
    port: int = 8080
    trial_concurrency: int = 1
    trial_gpu_number: int = 0
    working_directory: str | None = None
    max_trial_duration: str | None = None


@dataclass
class ScoreConfig:
    """Spearman over all architectures and over the top-k by reference accuracy; a ``k`` ending
    in ``%`` is a fraction of the architectures (rounded up)."""

    reference: str = "whole"
    top_k: list[str] = field(default_factory=lambda: ["10", "30", "5%"])
    plot: bool = True


@dataclass
class NasConfig:
    out: str = "runs/nas"
    device: str = "auto"
    threads: int | None = None  # torch CPU threads of the run and of each trial (None: torch's default)
    proxies: list[str] = field(default_factory=lambda: ["whole", "random", "herding", "dc", "early-stopping"])
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "NasConfig":
        """Check choices and ranges; raises ``ValueError`` naming the key and what is allowed."""
        d, t, e = self.data, self.train, self.experiment
        if d.validation not in ("split", "test"):
            raise ValueError(f"data.validation must be 'split' or 'test', got {d.validation!r}")
        if not 0 < d.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
        if d.train_per_class is not None and d.train_per_class < 1:
            raise ValueError(f"data.train_per_class must be >= 1 (or null for every image), got {d.train_per_class}")
        for key in ("epochs", "whole_epochs", "batch", "report_every", "repeats"):
            if getattr(t, key) < 1:
                raise ValueError(f"train.{key} must be >= 1, got {getattr(t, key)}")
        check_parallel(t.parallel, "train.parallel")
        if t.augment not in AUGMENTS:
            raise ValueError(f"train.augment must be none, dc or dsa, got {t.augment!r}")
        if t.proxy_augment is not None and t.proxy_augment not in AUGMENTS:
            raise ValueError(f"train.proxy_augment must be none, dc or dsa (or unset: train.augment), "
                             f"got {t.proxy_augment!r}")
        if self.proxy.ipc < 1:
            raise ValueError(f"proxy.ipc must be >= 1, got {self.proxy.ipc}")
        if e.engine not in ENGINES:
            raise ValueError(f"experiment.engine must be one of {', '.join(ENGINES)}, got {e.engine!r}")
        if e.engine == "sequential" and e.trial_concurrency != 1:
            raise ValueError("experiment.trial_concurrency must be 1 with the sequential engine; "
                             "use engine: ts for parallel trials")
        if e.engine == "sequential" and e.max_trial_duration:
            raise ValueError("experiment.max_trial_duration (a per-trial timeout) needs engine: ts; "
                             "NNI's sequential engine would read it as a budget for the whole search")
        if not isinstance(e.training_service, dict) or "platform" not in e.training_service:
            raise ValueError("experiment.training_service must be a mapping with a 'platform' key, "
                             f"e.g. {{platform: local}}; got {e.training_service!r}")
        if not self.proxies:
            raise ValueError("proxies must list at least one proxy kind")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 (or null for torch's default), got {self.threads}")
        if self.space.max_archs is not None and self.space.max_archs < 1:
            raise ValueError(f"space.max_archs must be >= 1, got {self.space.max_archs}")
        return self


# -- YAML and overrides --------------------------------------------------------------------------

def load_config(path: str | os.PathLike | None = None, overrides: list[dict] | None = None) -> NasConfig:
    """Defaults, then the YAML file, then each override mapping; validated."""
    cfg = NasConfig()
    if path is not None:
        apply_values(cfg, read_yaml_mapping(path))
    for values in overrides or []:
        apply_values(cfg, values)
    return cfg.validate()
