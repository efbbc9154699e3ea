"""The DC paper's NAS grid as an NNI model space, built on the engine's one ConvNet definition.

Five categorical choices (labels ``width``, ``depth``, ``norm``, ``activation``, ``pooling``)
span 4 x 4 x 5 x 3 x 3 = 720 architectures. Freezing a sample gives a plain
:class:`dc_plugins.models.ConvNet` (``create_fixed_module``), so trials train exactly the network
the matchers and the evaluation protocol use; there is no second network definition here.

For small runs the space takes explicit architecture lists: a product of fewer values per
dimension, a seeded random subset of the grid (:func:`sample_archs`), or both. A subset that is
not a full product is enforced with an NNI :class:`~nni.mutable.Constraint`, so NNI's own
``GridSearch`` enumerates exactly the chosen architectures.
"""

from __future__ import annotations

import itertools
import random
import warnings
from typing import Iterable, Sequence

with warnings.catch_warnings():
    # NNI 3.0 scans torch.nn on import and warns about newer torch classes that are not modules
    # (Buffer, LinearCrossEntropyOptions); harmless for this space, which uses none of them.
    warnings.filterwarnings("ignore", message=r".*is found to be not a nn.Module.*", category=RuntimeWarning)
    from nni.mutable import Categorical, Constraint, ConstraintViolation, ensure_frozen
    from nni.nas.nn.pytorch import ModelSpace
    from nni.nas.space import model_context

from dc_plugins.models import ACTIVATIONS, NORMS, POOLINGS, ConvNetSpec, make_convnet

__all__ = [
    "WIDTHS",
    "DEPTHS",
    "DIMENSIONS",
    "Arch",
    "grid_archs",
    "sample_archs",
    "parse_arch",
    "choice_values",
    "arch_from_sample",
    "check_space",
    "ArchSubset",
    "ConvNetSpace",
    "make_space",
]

WIDTHS = (32, 64, 128, 256)
DEPTHS = (1, 2, 3, 4)
DIMENSIONS = ("width", "depth", "norm", "activation", "pooling")
_ALLOWED = {"width": WIDTHS, "depth": DEPTHS, "norm": NORMS, "activation": ACTIVATIONS, "pooling": POOLINGS}

# An architecture without data shape: the ``ConvNetSpec.arch`` string, e.g. "w128-d3-instance-relu-avg".
Arch = str


def _check_values(name: str, values: Sequence, allowed: Sequence | None) -> tuple:
    values = tuple(values)
    if not values:
        raise ValueError(f"the space needs at least one {name}")
    if len(set(values)) != len(values):
        raise ValueError(f"duplicate {name} values in {list(values)}")
    if name in ("width", "depth"):
        bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        if bad:
            raise ValueError(f"{name} values must be positive integers, got {bad}")
    elif allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"unknown {name} {bad}; allowed: {', '.join(map(str, allowed))}")
    return values


def grid_archs(widths: Sequence[int] = WIDTHS, depths: Sequence[int] = DEPTHS,
               norms: Sequence[str] = NORMS, activations: Sequence[str] = ACTIVATIONS,
               poolings: Sequence[str] = POOLINGS) -> list[Arch]:
    """Every architecture of the product grid, in a fixed order (720 with the defaults)."""
    dims = [_check_values("width", widths, None), _check_values("depth", depths, None),
            _check_values("norm", norms, NORMS), _check_values("activation", activations, ACTIVATIONS),
            _check_values("pooling", poolings, POOLINGS)]
    return [ConvNetSpec(width=w, depth=d, norm=n, activation=a, pooling=p, image_size=2 ** d).arch
            for w, d, n, a, p in itertools.product(*dims)]


def sample_archs(archs: Sequence[Arch], n: int | None, seed: int, *, cover: bool = False) -> list[Arch]:
    """A seeded subset of ``n`` architectures (all of them when ``n`` is None or >= their number),
    returned in the grid's order. Uses its own ``random.Random(seed)``, never the global RNG.

    ``cover``: every value of every design choice that ``archs`` hold appears in the subset
    (each width, depth, normalisation, activation and pooling): in a seeded shuffle of ``archs``,
    the architectures that bring a value not yet present are taken first, then the rest in the
    shuffle's order. Without it (the default, and the subsets of earlier runs) a plain seeded
    sample, which can miss a value when ``n`` is small."""
    archs = list(archs)
    if n is None or n >= len(archs):
        return archs
    if n < 1:
        raise ValueError(f"max_archs must be >= 1, got {n}")
    rng = random.Random(seed)
    if not cover:
        chosen = set(rng.sample(range(len(archs)), n))
        return [a for i, a in enumerate(archs) if i in chosen]
    order = rng.sample(range(len(archs)), len(archs))
    values = [{(d, v) for d, v in parse_arch(a).items()} for a in archs]
    missing = set().union(*values)
    first: list[int] = []
    for i in order:
        if values[i] & missing:
            first.append(i)
            missing -= values[i]
        if not missing:
            break
    if len(first) > n:
        raise ValueError(f"max_archs={n} is too few to hold every design choice of the space (this seed needs "
                         f"{len(first)} architectures); raise max_archs or set space.cover_choices: false")
    taken = set(first)
    chosen = taken | set([i for i in order if i not in taken][: n - len(first)])
    return [a for i, a in enumerate(archs) if i in chosen]


def parse_arch(arch: Arch) -> dict:
    """``"w64-d2-batch-relu-max"`` -> ``{"width": 64, "depth": 2, "norm": "batch", ...}``."""
    spec = ConvNetSpec.parse(arch, image_size=1 << 16)
    return {"width": spec.width, "depth": spec.depth, "norm": spec.norm,
            "activation": spec.activation, "pooling": spec.pooling}


def arch_from_sample(sample: dict) -> Arch:
    """The arch string of an NNI sample dict (labels as in :data:`DIMENSIONS`)."""
    missing = [k for k in DIMENSIONS if k not in sample]
    if missing:
        raise KeyError(f"sample {sample!r} lacks {missing}")
    return (f"w{sample['width']}-d{sample['depth']}-{sample['norm']}-"
            f"{sample['activation']}-{sample['pooling']}")


class ArchSubset(Constraint):
    """Only the listed architectures are valid (for subsets that are not a full product)."""

    def __init__(self, choices: dict, archs: Iterable[Arch], label: str = "arch_subset"):
        self.label = label
        self.choices = choices
        self.archs = frozenset(archs)

    def leaf_mutables(self, is_leaf):
        for name in DIMENSIONS:
            yield from self.choices[name].leaf_mutables(is_leaf)
        yield self

    def check_contains(self, sample):
        for name in DIMENSIONS:
            err = self.choices[name].check_contains(sample)
            if err is not None:
                return err
        arch = arch_from_sample(sample)
        if arch not in self.archs:
            return ConstraintViolation(f"architecture {arch} is not in this subset of the grid")
        return None

    def extra_repr(self):
        return f"{len(self.archs)} architectures, label={self.label!r}"


class ConvNetSpace(ModelSpace):
    """NNI model space over ConvNet architectures; see the module docstring.

    Args:
        channels, num_classes, image_size: the data shape every network is built for.
        archs: the architectures to search (arch strings); ``None`` = the full 720 grid.

    >>> space = ConvNetSpace(channels=1, image_size=16, archs=sample_archs(grid_archs(), 30, seed=0))
    >>> net = space.freeze({"width": 32, "depth": 2, "norm": "batch", "activation": "relu", "pooling": "avg"})
    """

    def __init__(self, channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 archs: list[str] | None = None):
        super().__init__()
        arch_list = list(archs) if archs is not None else grid_archs()
        check_space(arch_list, channels, num_classes, image_size)
        values = choice_values(arch_list)
        # Defaults = the first listed architecture, so that NNI's dry run stays inside a subset.
        first = parse_arch(arch_list[0])
        self.choices = {name: self.add_mutable(Categorical(list(values[name]), default=first[name], label=name))
                        for name in DIMENSIONS}
        if len(arch_list) != _product_size(values):
            self.add_mutable(ArchSubset(self.choices, arch_list))
        # Dry run: build one member network so that the space itself can be called.
        sample = {name: ensure_frozen(self.choices[name]) for name in DIMENSIONS}
        self.net = make_convnet(_spec(sample, channels, num_classes, image_size))

    def forward(self, x):
        return self.net(x)

    @classmethod
    def create_fixed_module(cls, sample: dict, channels: int = 3, num_classes: int = 10,
                            image_size: int = 32, archs: list[str] | None = None):
        """Called by NNI in a frozen context instead of ``__init__``: a plain ConvNet."""
        arch = arch_from_sample(sample)
        if archs is not None and arch not in set(archs):
            raise ValueError(f"architecture {arch} is not in this space's subset of the grid")
        return make_convnet(_spec(sample, channels, num_classes, image_size))

    def freeze(self, sample: dict):
        """The concrete :class:`~dc_plugins.models.ConvNet` for ``sample`` (fresh weights)."""
        self.validate(sample)
        with model_context(sample):
            return ConvNetSpace(**self.trace_kwargs)

    @property
    def archs(self) -> list[str]:
        """The architectures of this space, in grid order."""
        archs = self.trace_kwargs.get("archs")
        return list(archs) if archs is not None else grid_archs()


def make_space(channels: int, num_classes: int, image_size: int,
               archs: Sequence[Arch] | None = None) -> ConvNetSpace:
    """The space over ``archs`` (``None`` = all 720); the full grid is passed as ``None`` so that
    the traced arguments NNI sends to trials stay small."""
    if archs is not None and sorted(archs) == sorted(grid_archs()):
        archs = None
    return ConvNetSpace(channels=channels, num_classes=num_classes, image_size=image_size,
                        archs=list(archs) if archs is not None else None)


def choice_values(archs: Sequence[Arch]) -> dict[str, tuple]:
    """The values each dimension takes over ``archs``, in the grid's order (duplicates raise)."""
    if not archs:
        raise ValueError("the space needs at least one architecture")
    parsed = [parse_arch(a) for a in archs]
    canon = [arch_from_sample(p) for p in parsed]
    if len(set(canon)) != len(canon):
        dup = sorted({a for a in canon if canon.count(a) > 1})
        raise ValueError(f"duplicate architectures in the space: {dup}")
    out = {}
    for name in DIMENSIONS:
        seen: list = []
        for p in parsed:
            if p[name] not in seen:
                seen.append(p[name])
        order = _ALLOWED[name]
        out[name] = tuple(sorted(seen, key=lambda v: (order.index(v) if v in order else len(order), v)))
    return out


def _product_size(values: dict) -> int:
    n = 1
    for name in DIMENSIONS:
        n *= len(values[name])
    return n


def _spec(sample: dict, channels: int, num_classes: int, image_size: int) -> ConvNetSpec:
    return ConvNetSpec(channels=channels, num_classes=num_classes, image_size=image_size,
                       width=int(sample["width"]), depth=int(sample["depth"]), norm=sample["norm"],
                       activation=sample["activation"], pooling=sample["pooling"])


def check_space(archs: Sequence[Arch], channels: int, num_classes: int, image_size: int) -> None:
    """Raise a ``ValueError`` naming every architecture that cannot be built for this data shape
    (e.g. 4 pooling blocks on 8-pixel images), before any trial starts."""
    bad = []
    for arch in archs:
        try:
            ConvNetSpec.parse(arch, channels=channels, num_classes=num_classes, image_size=image_size)
        except ValueError as err:
            bad.append(f"{arch} ({err})")
    if bad:
        raise ValueError(f"{len(bad)} architecture(s) cannot be built for {channels}x{image_size}x{image_size} "
                         f"images: {'; '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")
