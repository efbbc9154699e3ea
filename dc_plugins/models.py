"""The ConvNet family of the dataset-condensation papers, built from a small spec.

28-pixel inputs are padded to 32 inside the first convolution, as in the papers' code.
One definition serves the matchers, the evaluation protocol and the NAS search space:
``depth`` blocks of [3x3 conv ``width`` channels -> norm -> activation -> 2x2 pool], then one
linear classifier on the flattened features. The spec covers the whole NAS grid of the DC paper
(width x depth x norm x activation x pooling = 4 x 4 x 5 x 3 x 3 = 720 networks).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn

__all__ = [
    "NORMS",
    "ACTIVATIONS",
    "POOLINGS",
    "ConvNetSpec",
    "ConvNet",
    "make_convnet",
    "reset_parameters",
]

NORMS = ("none", "batch", "layer", "instance", "group")
ACTIVATIONS = ("sigmoid", "relu", "leakyrelu")
POOLINGS = ("none", "max", "avg")


@dataclass(frozen=True)
class ConvNetSpec:
    """Everything needed to build a ConvNet. ``str(spec)`` round-trips through :meth:`parse`."""

    channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    width: int = 128
    depth: int = 3
    norm: str = "instance"
    activation: str = "relu"
    pooling: str = "avg"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; allowed: {', '.join(NORMS)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; allowed: {', '.join(POOLINGS)}")
        for name in ("channels", "num_classes", "image_size", "width", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pooling != "none" and self.image_size < 2 ** self.depth:
            raise ValueError(
                f"image_size {self.image_size} is too small for {self.depth} pooling blocks "
                f"(needs >= {2 ** self.depth})")
        if self.norm == "group" and self.width % 4:
            raise ValueError(f"group norm uses 4 groups; width {self.width} is not divisible by 4")

    @property
    def arch(self) -> str:
        """The architecture alone, without data shape: ``w128-d3-instance-relu-avg``."""
        return f"w{self.width}-d{self.depth}-{self.norm}-{self.activation}-{self.pooling}"

    def __str__(self) -> str:
        return f"convnet-{self.arch}"

    @classmethod
    def parse(cls, text: str, **data_shape) -> "ConvNetSpec":
        """Parse ``convnet[-w128][-d3][-instance][-relu][-avg]`` (any order, any subset).

        ``data_shape`` sets channels / num_classes / image_size. Unknown tokens are an error.
        """
        tokens = text.lower().split("-")
        if tokens and tokens[0] == "convnet":
            tokens = tokens[1:]
        kw: dict = {}
        for tok in tokens:
            if not tok:
                continue
            if m := re.fullmatch(r"w(\d+)", tok):
                kw["width"] = int(m.group(1))
            elif m := re.fullmatch(r"d(\d+)", tok):
                kw["depth"] = int(m.group(1))
            elif tok in NORMS and "norm" not in kw:
                kw["norm"] = tok
            elif tok in ACTIVATIONS:
                kw["activation"] = tok
            elif tok in POOLINGS:
                kw["pooling"] = tok
            else:
                raise ValueError(
                    f"cannot parse {tok!r} in network spec {text!r}; expected wN, dN, a norm "
                    f"({'/'.join(NORMS)}), an activation ({'/'.join(ACTIVATIONS)}) "
                    f"or a pooling ({'/'.join(POOLINGS)})")
        return cls(**data_shape, **kw)

    def with_data(self, channels: int, num_classes: int, image_size: int) -> "ConvNetSpec":
        return replace(self, channels=channels, num_classes=num_classes, image_size=image_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ConvNetSpec":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _norm(kind: str, width: int, size: int) -> nn.Module:
    # The papers' choices: instance norm = GroupNorm with one channel per group (affine),
    # layer norm over (C, H, W), group norm with 4 groups.
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(width)
    if kind == "layer":
        return nn.LayerNorm([width, size, size])
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)
    if kind == "group":
        return nn.GroupNorm(4, width, affine=True)
    raise AssertionError(kind)


def _activation(kind: str) -> nn.Module:
    # In place, as the papers' code: an out-of-place ReLU writes one more activation-sized tensor
    # (measured: 1.25 s of a 6 s DM iteration on CIFAR-10-JPEG on this CPU).
    return {"sigmoid": nn.Sigmoid, "relu": lambda: nn.ReLU(inplace=True),
            "leakyrelu": lambda: nn.LeakyReLU(0.01, inplace=True)}[kind]()


def _pool(kind: str) -> nn.Module:
    return {"none": nn.Identity, "max": lambda: nn.MaxPool2d(2, 2), "avg": lambda: nn.AvgPool2d(2, 2)}[kind]()


class ConvNet(nn.Module):
    """``features`` (the embedding DM matches and herding selects on) then ``classifier``."""

    def __init__(self, spec: ConvNetSpec):
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        c, size = spec.channels, spec.image_size
        for d in range(spec.depth):
            # As in the DC code, 28-px images (MNIST & co.) are padded to 32 by the first
            # convolution: the border stays zero in real and synthetic images alike.
            pad = 3 if d == 0 and size == 28 else 1
            size += 2 * (pad - 1)
            layers += [nn.Conv2d(c, spec.width, 3, padding=pad),
                       _norm(spec.norm, spec.width, size),
                       _activation(spec.activation),
                       _pool(spec.pooling)]
            c = spec.width
            if spec.pooling != "none":
                size //= 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.embedding_dim = c * size * size
        self.classifier = nn.Linear(self.embedding_dim, spec.num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def reset_parameters(module: nn.Module, generator: torch.Generator | None) -> nn.Module:
    """PyTorch's default initialisation, drawn from ``generator`` instead of the global RNG."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
    return module


def make_convnet(spec: ConvNetSpec | str = "convnet", *, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None, **data_shape) -> ConvNet:
    """Build a ConvNet from a spec (or spec string plus ``channels=, num_classes=, image_size=``).

    With ``generator`` the weights are drawn from it, so networks are reproducible without
    reseeding the global RNG.
    """
    if isinstance(spec, str):
        spec = ConvNetSpec.parse(spec, **data_shape)
    elif data_shape:
        spec = replace(spec, **data_shape)
    if generator is None:
        net = ConvNet(spec)  # torch's default init, from the global generator
    else:
        # Built without storage (torch.nn's constructors would draw a default init from the
        # global generator, only to be overwritten), then given memory and every parameter and
        # buffer drawn from ``generator``: the same weights, without the wasted draw, and the
        # global generator untouched (a condensation must not move the minibatch order of the
        # Avalanche learner it runs beside).
        with torch.device("meta"):
            net = ConvNet(spec)
        net = reset_parameters(net.to_empty(device="cpu"), generator)
    return net.to(device) if device is not None else net
