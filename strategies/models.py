"""The continual learner: the engine's ConvNet, single-head or with Avalanche's multi-head classifier."""

from __future__ import annotations

import torch
from avalanche.models import MultiHeadClassifier, MultiTaskModule

from dc_plugins.models import ConvNet, ConvNetSpec, make_convnet

__all__ = ["MultiHeadConvNet", "make_learner"]


class MultiHeadConvNet(MultiTaskModule):
    """ConvNet features shared by all tasks, one linear head per task (task-incremental)."""

    def __init__(self, spec: ConvNetSpec, generator: torch.Generator | None = None):
        super().__init__()
        trunk = make_convnet(spec, generator=generator)
        self.features = trunk.features
        self.embedding_dim = trunk.embedding_dim
        # Equal-size heads, so that minibatches mixing tasks (replay) can be concatenated.
        self.classifier = MultiHeadClassifier(trunk.embedding_dim, initial_out_features=spec.num_classes)

    def forward(self, x: torch.Tensor, task_labels: torch.Tensor | int | None):
        return self.classifier(self.features(x), task_labels)

    def forward_single_task(self, x: torch.Tensor, task_label: int):
        return self.classifier.forward_single_task(self.features(x), task_label)


def make_learner(net: str, *, channels: int, image_size: int, num_classes: int, multi_head: bool = False,
                 generator: torch.Generator | None = None) -> ConvNet | MultiHeadConvNet:
    """The learner for a stream: ``num_classes`` outputs (per task when ``multi_head``).

    Its embedding module is called ``features`` in both cases (the herding feature layer).
    """
    spec = ConvNetSpec.parse(net, channels=channels, image_size=image_size, num_classes=num_classes)
    return MultiHeadConvNet(spec, generator) if multi_head else make_convnet(spec, generator=generator)
