"""Turning experiences into tensors and tensors back into items shaped like the stream's.

Avalanche's ``ReplayDataLoader`` collates memory batches with the current data's collate
function and concatenates them with the current batch, so memory items must have exactly the
stream's tuple structure and element types: ``(Tensor, int, int)`` for the usual benchmarks,
``(Tensor, Tensor)`` for a plain ``TensorDataset`` wrapped without task labels, and so on.
:class:`ItemLayout` records that structure from one stream item; :func:`memory_dataset` builds
a dataset of the same class, with the same data attributes (``targets`` and, where the stream
has them, ``targets_task_labels``) and the same collate function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["ItemLayout", "ExperienceTensors", "materialise", "memory_dataset", "item_signature"]

TASK_ATTR = "targets_task_labels"


def item_signature(item: Any) -> tuple:
    """What must agree between stream and memory items: length, types, tensor dtypes and
    (for everything but the image) tensor shapes."""
    if not isinstance(item, (tuple, list)):
        return (type(item).__name__,)
    sig = []
    for i, v in enumerate(item):
        if isinstance(v, torch.Tensor):
            sig.append(("Tensor", str(v.dtype), v.ndim if i == 0 else tuple(v.shape)))
        else:
            sig.append((type(v).__name__,))
    return tuple(sig)


@dataclass(frozen=True)
class ItemLayout:
    """The structure of one stream item: ``(x, y[, t])``.

    ``target_dtype`` is ``None`` when ``y`` is a Python int, else the dtype of the 0-d tensor.
    ``task_in_item`` tells whether the task label is appended by the ``targets_task_labels``
    data attribute (Avalanche's benchmarks) and ``has_task_labels`` whether the stream carries
    that attribute at all.
    """

    dataset_class: type
    collate_fn: Any
    target_dtype: str | None
    has_task_labels: bool
    task_in_item: bool
    signature: tuple
    image_shape: tuple = ()

    @classmethod
    def of(cls, dataset) -> "ItemLayout":
        if len(dataset) == 0:
            raise ValueError("the experience has no data")
        item = dataset[0]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValueError(f"stream items must be tuples (x, y[, t]), got {item_signature(item)}")
        if not hasattr(dataset, "targets"):
            raise ValueError("the experience dataset has no `targets`; build the stream with Avalanche's "
                             "benchmark generators or give the dataset a `targets` data attribute")
        getitem_attrs = [name for name, attr in getattr(dataset, "_data_attributes", {}).items()
                         if getattr(attr, "use_in_getitem", False)]
        unknown = [a for a in getitem_attrs if a != TASK_ATTR]
        if unknown:
            raise ValueError(f"stream items carry data attributes {unknown}; the condensed memory can "
                             f"only reproduce x, y and {TASK_ATTR}")
        task_in_item = TASK_ATTR in getitem_attrs
        if len(item) - len(getitem_attrs) != 2:
            raise ValueError(f"stream items {item_signature(item)} have fields besides (x, y[, task]); "
                             f"the condensed memory can only reproduce x, y and the task label")
        x, y = item[0], item[1]
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or not x.is_floating_point():
            got = f"{type(x).__name__} {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"condensation needs float image tensors (C, H, W) per item; the stream "
                             f"yields {got}. Add a ToTensor (and normalisation) transform to the stream")
        if isinstance(y, torch.Tensor):
            target_dtype = str(y.dtype).replace("torch.", "")
        elif isinstance(y, int):
            target_dtype = None
        else:
            raise ValueError(f"stream labels must be int or tensor, got {type(y).__name__}")
        return cls(type(dataset), getattr(dataset, "collate_fn", None), target_dtype,
                   hasattr(dataset, TASK_ATTR), task_in_item, item_signature(item), tuple(x.shape))


@dataclass
class ExperienceTensors:
    """An experience's data as tensors: images (N, C, H, W), class ids and task labels (N,)."""

    images: torch.Tensor
    targets: torch.Tensor
    tasks: torch.Tensor


def _eval_view(dataset):
    # Materialise without training-time augmentation.
    return dataset.eval() if hasattr(dataset, "eval") and callable(dataset.eval) else dataset


def materialise(dataset, batch_size: int = 512) -> ExperienceTensors:
    """Read a whole experience dataset (eval transforms) into tensors on the CPU."""
    data = _eval_view(dataset)
    # its own generator: a DataLoader draws a base seed even unshuffled, from the global one
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0, generator=torch.Generator(),
                        collate_fn=getattr(data, "collate_fn", None))
    images = torch.cat([batch[0] for batch in loader]).cpu()
    targets = torch.as_tensor([int(v) for v in dataset.targets], dtype=torch.long)
    if hasattr(dataset, TASK_ATTR):
        tasks = torch.as_tensor([int(v) for v in getattr(dataset, TASK_ATTR)], dtype=torch.long)
    else:
        tasks = torch.zeros_like(targets)
    if images.shape[0] != targets.shape[0]:
        raise ValueError(f"the experience yields {images.shape[0]} images but {targets.shape[0]} targets")
    return ExperienceTensors(images.float() if not images.is_floating_point() else images, targets, tasks)


class MemoryItems(Dataset):
    """The memory's raw items ``(x, y)``, with ``y`` an int or a 0-d tensor as in the stream."""

    def __init__(self, images: torch.Tensor, targets: Sequence[int], target_dtype: str | None):
        self.images = images
        self.targets = [int(t) for t in targets]
        self.target_dtype = target_dtype

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        y = self.targets[i]
        if self.target_dtype is not None:
            y = torch.tensor(y, dtype=getattr(torch, self.target_dtype))
        return self.images[i], y


def memory_dataset(images: torch.Tensor, targets: Sequence[int], tasks: Sequence[int], layout: ItemLayout,
                   transform=None):
    """An Avalanche dataset of the stream's class whose items look exactly like the stream's.

    ``transform`` (a callable on one image) becomes the ``train`` transform group; the ``eval``
    group has none. The dataset is returned in train mode, as the stream's training data.
    """
    from avalanche.benchmarks.utils import DataAttribute, TransformGroups

    attrs = [DataAttribute(list(map(int, targets)), "targets")]
    if layout.has_task_labels:
        attrs.append(DataAttribute(list(map(int, tasks)), TASK_ATTR, use_in_getitem=layout.task_in_item))
    base = MemoryItems(images, targets, layout.target_dtype)
    groups = TransformGroups({"train": transform, "eval": None}) if transform is not None else None
    data = layout.dataset_class([base], data_attributes=attrs, collate_fn=layout.collate_fn,
                                transform_groups=groups).train()
    if len(data) and item_signature(data[0]) != layout.signature:  # a bug here, not a user error
        raise RuntimeError(f"memory items {item_signature(data[0])} do not match the stream's "
                           f"{layout.signature}")
    return data
