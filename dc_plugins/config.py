"""Typed configuration: dataclasses that YAML files and CLI flags fill, and the presets.

A field left at ``None`` means "take it from the preset" (``paper``: the published
hyper-parameters; ``cpu-quick``: a documented smaller budget for 2-core machines). Explicit
values, from YAML or flags, always win over the preset.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any



__all__ = [
    "METHODS",
    "MATCHING_METHODS",
    "SELECTION_METHODS",
    "PRESETS",
    "MatchingConfig",
    "TrajectoryConfig",
    "SelMatchConfig",
    "trajectory_fingerprint",
    "TRAJECTORY_METHODS",
    "SelectionConfig",
    "EvalConfig",
    "RunConfig",
    "check_method",
    "check_trajectory",
    "dc_loops",
    "dc_loops_source",
    "resolve",
    "load_yaml",
    "apply_overrides",
    "nest",
    "parse_assignment",
    "read_yaml_mapping",
    "packaged_configs",
]

MATCHING_METHODS = ("dc", "dsa", "dm", "mtt", "selmatch")
TRAJECTORY_METHODS = ("mtt", "selmatch")   # the methods that read RunConfig.trajectory
SELECTION_METHODS = ("random", "herding", "kcenter", "forgetting")
METHODS = MATCHING_METHODS + SELECTION_METHODS


def check_method(method: str) -> str:
    m = method.lower().replace("-", "").replace("_", "")
    if m not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    return m


# (outer_loop, inner_loop) by images per class, from the DC paper's code (it has no other rows).
_DC_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
# ipc >= 10 between and beyond the rows: outer x inner near this (the rows keep 500-600).
_DC_STEPS = 550


def dc_loops(ipc: int) -> tuple[int, int]:
    """DC's ``(outer_loop, inner_loop)`` for any ``ipc`` >= 1.

    The rows of the DC paper's code (ipc 1, 10, 20, 30, 40, 50) are returned exactly. Every other
    ipc follows one rule, monotone in ipc (outer never decreases; inner never decreases up to 10
    and never increases from 10 on):

    * 2-9: linear between the ipc-1 row (1, 1) and the ipc-10 row (10, 50): ``outer = ipc``,
      ``inner = round(1 + 49 (ipc - 1) / 9)`` (2 -> 6, 5 -> 23, 9 -> 45). Taking the ipc-1 row
      instead (the code's behaviour before) would match on one untrained network per iteration
      and never train it; taking the ipc-10 row would train 50 epochs on a few images per class.
    * >= 10: ``outer = ipc`` as in every row, ``inner = round(550 / ipc)`` (outer x inner near
      550, the rows' 500-600), kept between the inner loops of the neighbouring rows and at
      least 1 (11 -> 50, 15 -> 37, 25 -> 22, 60 -> 9, 100 -> 6).

    :func:`dc_loops_source` says whether a value is a row of the table or the rule.
    """
    if not isinstance(ipc, int) or isinstance(ipc, bool) or ipc < 1:
        raise ValueError(f"ipc must be a positive integer, got {ipc!r}")
    if ipc in _DC_LOOPS:
        return _DC_LOOPS[ipc]
    if ipc < 10:
        return ipc, int(1 + 49 * (ipc - 1) / 9 + 0.5)
    rows = sorted(_DC_LOOPS)
    below = max(k for k in rows if k < ipc)
    above = min((k for k in rows if k > ipc), default=None)
    hi = _DC_LOOPS[below][1]
    lo = _DC_LOOPS[above][1] if above is not None else 1
    return ipc, min(hi, max(lo, int(_DC_STEPS / ipc + 0.5)))


def dc_loops_source(ipc: int) -> str:
    """``"paper table"`` for the ipc values the DC code lists, ``"dc_loops rule"`` otherwise."""
    return "paper table" if ipc in _DC_LOOPS else "dc_loops rule"


@dataclass
class MatchingConfig:
    """Hyper-parameters of the matchers (DC, DSA, DM). ``None`` = from the preset."""

    lr_img: float | None = None
    momentum_img: float = 0.5
    batch_real: int | None = None
    init: str | None = None             # "noise" or "real"
    outer_loop: int | None = None       # DC/DSA; None = the paper's table for ipc (dc_loops)
    inner_loop: int | None = None
    lr_net: float = 0.01
    batch_train: int = 256
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    bn_images_per_class: int = 16
    # DC/DSA: compute the classes' gradient distances in one torch.func.vmap call instead of a
    # loop. Same result up to float rounding; faster or slower by network size and device
    # (examples/benchmark_vmap_matching.py measures it), hence off by default.
    vectorize: bool = False
    # Mixed precision of the matching computations (torch.autocast): None = float32; "bf16" or
    # "fp16" run convolutions and matrix products in that type (parameters, images and the
    # distances stay float32). Opt-in: it changes the learned set beyond float rounding. On CPUs
    # with AMX or AVX512-BF16 "bf16" made a DC step ~1.6x faster (BENCHMARKS.md).
    autocast: str | None = None


AUTOCAST_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def matching_fingerprint(matching: "MatchingConfig") -> dict:
    """``asdict(matching)`` for fingerprints, without ``autocast`` when it is off, so that results
    recorded before the field existed keep their configuration hashes."""
    from dataclasses import asdict

    d = asdict(matching)
    if d.get("autocast") is None:
        d.pop("autocast", None)
    return d


@dataclass
class SelMatchConfig:
    """SelMatch (Lee et al., ICML 2024) on top of MTT: ``trajectory.selmatch.*``. ``None`` = preset.

    Every class's real images are ranked hardest first by a difficulty score; the window of
    ``ipc`` images starting at fraction ``beta`` of the ranking initialises the set (``beta``
    None: searched over ``betas``, each window training ``window_epochs`` epochs of a fresh
    network scored on a validation split of ``val_fraction`` of the real data); per class the
    ``1 - alpha`` hardest images of the window stay fixed real images and the ``alpha`` part is
    distilled by trajectory matching (the student trains on both).
    """

    alpha: float | None = None
    beta: float | None = None
    betas: list[float] | None = None
    scores: str = "forgetting"      # "forgetting" (counted in a training run) or a file of one score per sample
    harder_is_higher: bool = True   # False for scores where low means hard (C-scores)
    score_epochs: int | None = None # epochs of the forgetting run
    val_fraction: float = 0.1
    window_epochs: int | None = None


@dataclass
class TrajectoryConfig:
    """MTT (Cazenavette et al., CVPR 2022): expert trajectories and how the student matches them.
    ``None`` = from the preset. A section of its own (``trajectory.*``), not of ``matching``, so
    that the fingerprints of DC/DSA/DM runs, checkpoints and caches stay what they were.

    The student starts at an expert's parameters after epoch ``t`` (``t`` uniform in
    ``0 .. max_start_epoch - 1``), takes ``syn_steps`` SGD steps of learnable size alpha (initially
    ``lr_teacher``) on minibatches of ``batch_syn`` synthetic images, and is compared with the
    expert ``expert_epochs`` epochs later. The images learn with ``matching.lr_img`` (SGD,
    ``matching.momentum_img``), alpha with ``lr_lr``.
    """

    syn_steps: int | None = None            # N
    expert_epochs: int | None = None        # M
    max_start_epoch: int | None = None
    lr_lr: float | None = None              # learning rate of alpha
    lr_teacher: float | None = None         # the experts' SGD lr and alpha's initial value
    batch_syn: int | None = None            # synthetic minibatch; None or 0 = the whole set
    num_experts: int | None = None          # E expert trajectories
    expert_train_epochs: int | None = None  # epochs each expert trains (its trajectory's length)
    expert_batch: int = 256
    expert_dtype: str = "float32"           # storage of the saved parameters: float32 | float16
    zca: bool | None = None                 # ZCA-whiten real and synthetic data (dc_plugins.zca)
    zca_eps: float = 0.1                    # regularisation added to the covariance's eigenvalues
    # exact: constant activation memory (one step's graph alive at a time); unrolled: the naive
    # graph through all N steps (the oracle; memory linear in N). Same gradient up to rounding.
    gradient: str = "exact"
    buffer: str | None = None               # expert folder; None: OUT/experts (CLI), else in memory
    selmatch: SelMatchConfig = field(default_factory=SelMatchConfig)   # method selmatch only


def trajectory_fingerprint(t: "TrajectoryConfig", method: str) -> dict:
    """What of ``t`` a ``method`` result depends on: not the buffer's path nor the gradient path
    (equal up to rounding), and the SelMatch section only for selmatch."""
    d = {k: v for k, v in dataclasses.asdict(t).items() if k not in ("buffer", "gradient")}
    if method != "selmatch":
        d.pop("selmatch", None)
    return d


@dataclass
class SelectionConfig:
    """Coreset baselines: herding/k-center features and forgetting scores come from a reference
    ConvNet trained on the real data for ``reference_epochs``."""

    reference_epochs: int | None = None
    reference_lr: float = 0.01
    reference_batch: int = 256


@dataclass
class EvalConfig:
    """The evaluation protocol: fresh networks trained on the set only, tested on real data."""

    networks: int = 5
    epochs: int | None = None           # None: 1000 with augmentation, 300 without (preset may cut)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch: int = 256
    augment: str = "auto"               # auto (the papers' rule: evaluation_augment) | dsa | dc | none
    net: str | None = None              # None = the matching network
    # Networks trained together as one stacked model (torch.func.vmap), in chunks of this many:
    # the same networks as one by one, up to float rounding. None = by device
    # (dc_plugins.evaluation.parallel_networks: 1 on a CPU, where stacking measured slower).
    parallel: int | None = None
    # Processes that train networks side by side on the CPU, each with its share of the torch
    # threads (dc_plugins.evaluation.evaluate_set); the same networks as in one process. 1 = in
    # this process. Ignored on other devices (one device, one process).
    workers: int = 1
    # Sets that learned their training step size (MTT, SelMatch: ``syn_lr`` in the set's config)
    # are evaluated with it instead of ``lr``, as the MTT code evaluates (args.lr_net = syn_lr).
    learned_lr: bool = True


@dataclass
class RunConfig:
    """One condensation run of the CLI: make a set, save it, evaluate it."""

    method: str = "dc"
    dataset: str = "mnist"
    root: str = "data"
    ipc: int = 1
    iterations: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str = "runs/condense"
    preset: str = "paper"
    image_size: int | None = None       # None: 28 for 28-px data (padded in the net), else 32;
                                        # image folders: their own size
    # dataset "imagefolder": root/{train,test}/<class>/<image>, or this pair of split folders
    train_dir: str | None = None
    test_dir: str | None = None
    cache_dir: str | None = None        # decoded-image cache; None: root/.dc_cache (or ~/.cache)
    flip: bool | None = None            # may mirroring change the class? None: digits no, others yes
    net: str = "convnet"
    download: bool = False
    checkpoint_minutes: float = 5.0
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _paper_size(cfg: "RunConfig") -> int:
    """28-px datasets stay at 28 (the ConvNet pads them to 32 in its first conv, as the DC
    code); everything else is resized to the ConvNet's 32 px; image folders keep their own size
    (``None``: known only from the files)."""
    from .data import dataset_info, is_folder_dataset

    if is_folder_dataset(cfg.dataset):
        return None
    return 28 if dataset_info(cfg.dataset).image_size == 28 else 32


# Values a preset fills in for fields left at None. Keys: method -> field path -> value; a callable
# value receives the config. "*" applies to every method.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "dc": {"iterations": 1000, "matching.lr_img": 0.1, "matching.batch_real": 256,
               "matching.init": "noise"},
        "dsa": {"iterations": 1000, "matching.lr_img": 0.1, "matching.batch_real": 256,
                "matching.init": "real"},
        "dm": {"iterations": 20000, "matching.lr_img": 1.0, "matching.batch_real": 256,
               "matching.init": "real"},
        "mtt": {"iterations": 5000, "matching.lr_img": 1000.0, "matching.init": "real",
                "trajectory.syn_steps": lambda c: 50 if c.ipc == 1 else 30,
                "trajectory.expert_epochs": 2,
                "trajectory.max_start_epoch": lambda c: 2 if c.ipc == 1 else 20 if c.ipc <= 10 else 40,
                "trajectory.lr_lr": lambda c: 1e-7 if c.ipc == 1 else 1e-5,
                "trajectory.lr_teacher": 0.01, "trajectory.num_experts": 100,
                "trajectory.expert_train_epochs": 50,
                "trajectory.zca": lambda c: c.dataset == "cifar10" and c.ipc <= 10},
        # SelMatch: MTT's values at ipc > 10 and the authors' scripts' (alpha, beta) for CIFAR-10
        # (250: 0.6, 0.5; 500: 0.2, 0.3; 1000 and 1500: 0.1, 0.2); other budgets search beta.
        "selmatch": {"iterations": 5000, "matching.lr_img": 1000.0, "matching.init": "real",
                     "trajectory.syn_steps": 30, "trajectory.expert_epochs": 2, "trajectory.max_start_epoch": 40,
                     "trajectory.lr_lr": 1e-5, "trajectory.lr_teacher": 0.01, "trajectory.num_experts": 100,
                     "trajectory.expert_train_epochs": 50, "trajectory.zca": False,
                     "trajectory.selmatch.alpha": lambda c: _SELMATCH.get(c.ipc, (0.6 if c.ipc <= 250 else
                                                                                  0.2 if c.ipc <= 500 else 0.1,))[0],
                     "trajectory.selmatch.beta": lambda c: _SELMATCH.get(c.ipc, (None, None))[1],
                     "trajectory.selmatch.betas": lambda c: [round(0.1 * i, 1) for i in range(10)],
                     "trajectory.selmatch.score_epochs": 20, "trajectory.selmatch.window_epochs": 300},
        "*": {"selection.reference_epochs": 20, "image_size": _paper_size},
    },
    # For 2-core CPUs: the DC-code yardstick budget at ipc 1 (100 outer iterations, 64 real
    # images per class, 28-px digits padded to 32 in the first conv as in the DC code); the
    # inner loop is dc_loops' cut 10x, at least 1 (ipc 1 -> 1, 5 -> 2, 10 -> 5); at
    # ipc >= 10 iterations are cut to 10 so that one
    # condensation takes minutes, and DC starts from real images (10 outer iterations cannot
    # turn noise into digits: measured 86.7 % vs 96.5 % for random real on MNIST-10k ipc 10);
    # DM runs 200 iterations; evaluation trains 1000 epochs at ipc < 10 and 300 at ipc >= 10.
    "cpu-quick": {
        "dc": {"iterations": lambda c: 100 if c.ipc < 10 else 10, "matching.lr_img": 0.1,
               "matching.batch_real": 64, "matching.init": lambda c: "noise" if c.ipc < 10 else "real",
               "matching.inner_loop": lambda c: max(1, dc_loops(c.ipc)[1] // 10)},
        "dsa": {"iterations": lambda c: 100 if c.ipc < 10 else 10, "matching.lr_img": 0.1,
                "matching.batch_real": 64, "matching.init": "real",
                "matching.inner_loop": lambda c: max(1, dc_loops(c.ipc)[1] // 10)},
        "dm": {"iterations": 200, "matching.lr_img": 1.0, "matching.batch_real": 64,
               "matching.init": "real"},
        # MTT: 2 experts of 6 epochs, 10 synthetic steps matched against 2 expert epochs from a
        # start in epochs 0-3, 50 iterations, no ZCA; the paper's step sizes and lr_img.
        "mtt": {"iterations": 50, "matching.lr_img": 1000.0, "matching.init": "real",
                "trajectory.syn_steps": 10, "trajectory.expert_epochs": 2, "trajectory.max_start_epoch": 4,
                "trajectory.lr_lr": 1e-5, "trajectory.lr_teacher": 0.01, "trajectory.num_experts": 2,
                "trajectory.expert_train_epochs": 6, "trajectory.zca": False},
        # SelMatch: MTT's cpu-quick budget; half of each class distilled; beta searched over 4
        # windows (a 3-epoch forgetting run, 50 epochs per window).
        "selmatch": {"iterations": 50, "matching.lr_img": 1000.0, "matching.init": "real",
                     "trajectory.syn_steps": 10, "trajectory.expert_epochs": 2, "trajectory.max_start_epoch": 4,
                     "trajectory.lr_lr": 1e-5, "trajectory.lr_teacher": 0.01, "trajectory.num_experts": 2,
                     "trajectory.expert_train_epochs": 6, "trajectory.zca": False,
                     "trajectory.selmatch.alpha": 0.5, "trajectory.selmatch.betas": lambda c: [0.0, 0.25, 0.5, 0.75],
                     "trajectory.selmatch.score_epochs": 3, "trajectory.selmatch.window_epochs": 50},
        "*": {"selection.reference_epochs": 3,
              "eval.epochs": lambda c: 1000 if c.ipc < 10 else 300, "image_size": _paper_size},
    },
}


# SelMatch's (alpha, beta) by images per class, from the authors' CIFAR-10 scripts.
_SELMATCH = {250: (0.6, 0.5), 500: (0.2, 0.3), 1000: (0.1, 0.2), 1500: (0.1, 0.2)}


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _set(cfg: Any, dotted: str, value: Any) -> None:
    *head, last = dotted.split(".")
    for part in head:
        cfg = getattr(cfg, part)
    if not hasattr(cfg, last):
        raise KeyError(dotted)
    setattr(cfg, last, value)


def resolve(cfg: RunConfig) -> RunConfig:
    """A copy of ``cfg`` with every ``None`` the preset knows filled in, after validation."""
    cfg = dataclasses.replace(cfg, matching=dataclasses.replace(cfg.matching),
                              selection=dataclasses.replace(cfg.selection),
                              eval=dataclasses.replace(cfg.eval),
                              trajectory=copy.deepcopy(cfg.trajectory))
    cfg.method = check_method(cfg.method)
    if cfg.preset not in PRESETS:
        raise ValueError(f"unknown preset {cfg.preset!r}; allowed: {', '.join(PRESETS)}")
    if not isinstance(cfg.ipc, int) or cfg.ipc <= 0:
        raise ValueError(f"ipc must be a positive integer, got {cfg.ipc!r}")
    if cfg.iterations is not None and cfg.iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {cfg.iterations}")
    if cfg.eval.networks < 0:
        raise ValueError(f"eval.networks must be >= 0, got {cfg.eval.networks}")
    from .data import is_folder_dataset

    if (cfg.train_dir is not None or cfg.test_dir is not None) and not is_folder_dataset(cfg.dataset):
        raise ValueError(f"train_dir/test_dir apply to dataset 'imagefolder' only, not {cfg.dataset!r}")
    if (cfg.train_dir is None) != (cfg.test_dir is None):
        raise ValueError(f"give both train_dir and test_dir, or neither (got train_dir={cfg.train_dir!r}, "
                         f"test_dir={cfg.test_dir!r})")
    preset = PRESETS[cfg.preset]
    for source in (preset.get(cfg.method, {}), preset.get("*", {})):
        for key, value in source.items():
            if _get(cfg, key) is None:
                _set(cfg, key, value(cfg) if callable(value) else value)
    if cfg.iterations is None:
        cfg.iterations = 0  # selection methods do not iterate
    if cfg.matching.autocast is not None and cfg.matching.autocast not in AUTOCAST_DTYPES:
        raise ValueError(f"matching.autocast must be one of {', '.join(AUTOCAST_DTYPES)} or null (float32), "
                         f"got {cfg.matching.autocast!r}")
    if cfg.matching.init not in (None, "noise", "real"):
        raise ValueError(f"matching.init must be 'noise' or 'real', got {cfg.matching.init!r}")
    if cfg.eval.parallel is not None and (isinstance(cfg.eval.parallel, bool) or not isinstance(cfg.eval.parallel, int)
                                          or cfg.eval.parallel < 1):
        raise ValueError(f"eval.parallel must be a positive integer or None, got {cfg.eval.parallel!r}")
    if isinstance(cfg.eval.workers, bool) or not isinstance(cfg.eval.workers, int) or cfg.eval.workers < 1:
        raise ValueError(f"eval.workers must be a positive integer (processes), got {cfg.eval.workers!r}")
    if cfg.eval.augment not in ("auto", "dsa", "dc", "none"):
        raise ValueError(f"eval.augment must be auto, dsa, dc or none, got {cfg.eval.augment!r}")
    if cfg.method in TRAJECTORY_METHODS:
        check_trajectory(cfg.trajectory)
    return cfg


def check_trajectory(t: TrajectoryConfig) -> TrajectoryConfig:
    """Raise a ``ValueError`` naming the bad ``trajectory.*`` value and what is allowed."""
    for name in ("syn_steps", "expert_epochs", "max_start_epoch", "num_experts", "expert_train_epochs",
                 "expert_batch"):
        v = getattr(t, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ValueError(f"trajectory.{name} must be a positive integer, got {v!r}")
    if t.batch_syn is not None and (isinstance(t.batch_syn, bool) or not isinstance(t.batch_syn, int)
                                    or t.batch_syn < 0):
        raise ValueError(f"trajectory.batch_syn must be a positive integer (0 or None: the whole set), "
                         f"got {t.batch_syn!r}")
    for name in ("lr_lr", "lr_teacher"):
        v = getattr(t, name)
        if v is not None and not v > 0:
            raise ValueError(f"trajectory.{name} must be > 0, got {v!r}")
    sm = t.selmatch
    if sm.alpha is not None and not 0 <= sm.alpha <= 1:
        raise ValueError(f"trajectory.selmatch.alpha must be in [0, 1], got {sm.alpha!r}")
    for name, v in (("beta", sm.beta), *((f"betas[{i}]", b) for i, b in enumerate(sm.betas or []))):
        if v is not None and not 0 <= v < 1:
            raise ValueError(f"trajectory.selmatch.{name} must be in [0, 1), got {v!r}")
    if sm.betas is not None and not sm.betas:
        raise ValueError("trajectory.selmatch.betas must hold at least one window start")
    if not 0 < sm.val_fraction < 1:
        raise ValueError(f"trajectory.selmatch.val_fraction must be in (0, 1), got {sm.val_fraction!r}")
    for name in ("score_epochs", "window_epochs"):
        v = getattr(sm, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ValueError(f"trajectory.selmatch.{name} must be a positive integer, got {v!r}")
    if not t.zca_eps >= 0:
        raise ValueError(f"trajectory.zca_eps must be >= 0, got {t.zca_eps!r}")
    if t.gradient not in ("exact", "unrolled"):
        raise ValueError(f"trajectory.gradient must be 'exact' or 'unrolled', got {t.gradient!r}")
    if t.expert_dtype not in ("float32", "float16"):
        raise ValueError(f"trajectory.expert_dtype must be 'float32' or 'float16', got {t.expert_dtype!r}")
    if (t.max_start_epoch is not None and t.expert_epochs is not None and t.expert_train_epochs is not None
            and t.max_start_epoch - 1 + t.expert_epochs > t.expert_train_epochs):
        raise ValueError(
            f"trajectory.max_start_epoch {t.max_start_epoch} + expert_epochs {t.expert_epochs} - 1 is beyond "
            f"the experts' {t.expert_train_epochs} epochs (trajectory.expert_train_epochs): the last start "
            f"epoch's target would not exist")
    return t


# -- YAML and CLI overrides: the project's one mechanism, in dc_plugins.settings ----------------

from .settings import (apply_overrides, nest, packaged_configs, parse_assignment,  # noqa: E402
                       read_yaml_mapping)


def load_yaml(path: str | os.PathLike, cfg: RunConfig | None = None) -> RunConfig:
    return apply_overrides(cfg or RunConfig(), read_yaml_mapping(path))
