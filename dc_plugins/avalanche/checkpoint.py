"""Avalanche strategy checkpointing that works on current torch/dill/typing_extensions.

Avalanche's ``save_checkpoint`` pickles the whole strategy with ``dill``. With torch >= 2.x,
``torch.optim`` deletes its submodule names (``del sgd`` in ``torch/optim/__init__.py``), so
dill cannot find ``torch.optim.sgd.SGD`` by name, pickles the optimizer *class by value*, and
fails on typing_extensions >= 4.16 (``PicklingError: Can't pickle sentinel: it's not the same
object as typing_extensions.sentinel``). That breaks checkpointing of every strategy that has an
optimizer, with or without our plugins.

:func:`save_checkpoint` re-binds the already imported ``torch.optim.<name>`` submodules on
their package (what ``import`` itself does, and what torch undid) so that dill pickles
optimizer classes by reference, then calls Avalanche's ``save_checkpoint`` writing to a
temporary file renamed into place. :func:`maybe_load_checkpoint` is Avalanche's, unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import Collection, Optional

from avalanche.checkpointing import maybe_load_checkpoint
from avalanche.checkpointing import save_checkpoint as _avalanche_save_checkpoint

from ..io import atomic_path

__all__ = ["save_checkpoint", "maybe_load_checkpoint", "expose_torch_optim_modules"]


def expose_torch_optim_modules() -> list[str]:
    """Bind imported ``torch.optim.*`` submodules as attributes of ``torch.optim`` where torch
    removed them; returns the names bound."""
    import torch.optim

    bound = []
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("torch.optim.") or name.count(".") != 2:
            continue
        short = name.rsplit(".", 1)[1]
        if not hasattr(torch.optim, short):
            setattr(torch.optim, short, module)
            bound.append(short)
    return bound


def save_checkpoint(strategy, fname: str | os.PathLike, exclude: Optional[Collection[str]] = None) -> None:
    """Avalanche's ``save_checkpoint`` (same arguments), atomic and fixed for dill (see above)."""
    expose_torch_optim_modules()
    with atomic_path(fname) as tmp:
        _avalanche_save_checkpoint(strategy, str(tmp), exclude=exclude)
