"""K networks of one architecture trained as one stacked model (batched evaluation).

The evaluation protocol trains many fresh networks on a set of 10-500 images: at ipc 1 an epoch
is one SGD step on 10 images, far too small a step to keep a CPU (or a GPU) busy. Here the K
networks' parameters are stacked along a new leading dimension
(:func:`torch.func.stack_module_state`) and one step of all of them is one
``vmap(functional_call)`` forward and backward: each network still has its own initialisation,
its own data order and its own augmentation draws, each drawn from that network's generator in
the order :func:`dc_plugins.training.train_epoch` draws them for a single network, so network k
trained here is network k trained alone, up to float rounding.

The optimiser is ``torch.optim.SGD`` over the stacked leaves. SGD (momentum, weight decay,
learning rate) is elementwise, so one SGD over a stacked tensor is exactly K independent SGDs
over the slices; the loss is the sum of the K networks' mean losses, so the gradient of slice k
is network k's own gradient.

Two schedules share one training loop: :func:`train_stacked` (the evaluation protocol: epochs,
lr x0.1 at half of them) and :func:`train_stacked_steps` (a budget of SGD steps that may end
within a pass, lr x0.1 from a given step: the NAS trial's training, ``nas.evaluator``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .training import Augment

__all__ = ["StackedNets", "train_stacked", "train_stacked_steps"]


class StackedNets:
    """``nets`` (one architecture) as stacked parameter and buffer tensors ``(K, ...)``.

    ``forward(x)`` takes ``(K, B, ...)`` (one batch per network) and returns ``(K, B, classes)``.
    BatchNorm works in train mode: its running statistics are stacked buffers that vmap updates
    per network (in place, as ``nn.BatchNorm2d`` does); :meth:`unstack` writes them back.
    """

    def __init__(self, nets: Sequence[nn.Module]):
        if not nets:
            raise ValueError("StackedNets needs at least one network")
        first = type(nets[0]), [tuple(p.shape) for p in nets[0].parameters()]
        for net in nets[1:]:
            if (type(net), [tuple(p.shape) for p in net.parameters()]) != first:
                raise ValueError("StackedNets needs networks of one architecture (same parameter shapes)")
        self.nets = list(nets)
        params, buffers = stack_module_state(self.nets)
        self.params = params
        self.buffers = buffers
        # A parameter-less copy to call functionally (its own tensors are never used).
        self._base = copy.deepcopy(self.nets[0]).to("meta")

    def __len__(self) -> int:
        return len(self.nets)

    def _call(self, params, buffers, x):
        return functional_call(self._base, (params, buffers), (x,))

    def forward(self, x: torch.Tensor, *, shared_input: bool = False) -> torch.Tensor:
        """``x``: ``(K, B, ...)``, or ``(B, ...)`` seen by every network with ``shared_input``."""
        in_dims = (0, 0, None if shared_input else 0)
        return vmap(self._call, in_dims=in_dims, randomness="error")(self.params, self.buffers, x)

    def train(self, mode: bool = True) -> StackedNets:
        self._base.train(mode)
        return self

    @torch.no_grad()
    def network(self, k: int) -> nn.Module:
        """Network ``k`` with its current stacked parameters and buffers copied into it (e.g. to
        validate it mid-training; the stacked tensors train on, untouched by what is done to it)."""
        net = self.nets[k]
        for name, p in net.named_parameters():
            p.copy_(self.params[name][k])
        for name, b in net.named_buffers():
            b.copy_(self.buffers[name][k])
        return net

    def unstack(self) -> list[nn.Module]:
        """Copy the stacked parameters and buffers back into the networks and return them."""
        return [self.network(k) for k in range(len(self.nets))]


def _augment(augment: Augment, x: torch.Tensor, generator: torch.Generator, idx: torch.Tensor) -> torch.Tensor:
    # An augmentation that differs per image of the set (SelMatch's) takes the indices, as in train_epoch.
    return augment(x, generator, idx) if getattr(augment, "needs_indices", False) else augment(x, generator)


def _fit(stacked: StackedNets, opt: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
         generators: Sequence[torch.Generator], *, steps: int, batch: int, augment: Augment | None,
         shuffle_batch: bool, before_step: Callable[[int], None], after_pass: Callable[[int, int], None]) -> None:
    """``steps`` SGD steps of all networks: shuffled passes over ``images`` (the last one cut at
    ``steps``); ``before_step(steps_done)`` before each step, ``after_pass(passes, steps_done)``
    after each pass, once its losses are checked."""
    k, n = len(generators), images.shape[0]
    total = torch.zeros(k, dtype=torch.float64, device=images.device)
    done = passes = 0
    while done < steps:
        # drawn on the CPU per network, copied to the device once for all networks
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(images.device)
        for start in range(0, n, batch):
            if done >= steps:
                break
            before_step(done)
            idx = orders[:, start:start + batch]                                # (K, B)
            if shuffle_batch:
                # What train_epoch draws when it is called on this minibatch alone: one more
                # permutation of it, from the network's generator, before the augmentation.
                perms = torch.stack([torch.randperm(idx.shape[1], generator=g) for g in generators])
                idx = idx.gather(1, perms.to(idx.device))
            x, y = images[idx], labels[idx]                                     # (K, B, ...), (K, B)
            if augment is not None:
                x = torch.stack([_augment(augment, x[i], generators[i], idx[i]) for i in range(k)])
            out = stacked.forward(x)
            losses = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(k, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            total += losses.detach().double()
            done += 1
        # One host sync a pass, as in train_epoch: a non-finite minibatch loss makes its sum non-finite.
        finite = torch.isfinite(total)
        if not bool(finite.all()):
            from .matching.base import NonFiniteLossError
            bad = int((~finite).nonzero()[0])
            raise NonFiniteLossError(f"training loss of network {bad} became {total[bad].item()}")
        total.zero_()
        passes += 1
        after_pass(passes, done)


def _check_generators(nets: Sequence[nn.Module], generators: Sequence[torch.Generator]) -> None:
    if len(generators) != len(nets):
        raise ValueError(f"{len(nets)} networks need {len(nets)} generators, got {len(generators)}")


def train_stacked(nets: Sequence[nn.Module], images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                  generators: Sequence[torch.Generator], lr: float, momentum: float, weight_decay: float,
                  batch: int, augment: Augment | None = None, progress: bool = False) -> list[nn.Module]:
    """The evaluation protocol's training (SGD with momentum and weight decay, lr x0.1 at half the
    epochs, shuffled minibatches of ``batch``) of every network of ``nets`` on ``images``, all at
    once. Network k draws its data order and augmentation from ``generators[k]`` exactly as
    :func:`~dc_plugins.training.train_epoch` would. Returns the trained networks (the same objects).
    Raises :class:`~dc_plugins.matching.base.NonFiniteLossError` naming the network whose loss
    is not finite.
    """
    from tqdm.auto import tqdm

    _check_generators(nets, generators)
    stacked = StackedNets(nets).train()
    # SGD is elementwise: over the stacked leaves it is exactly one SGD per network slice.
    opt = torch.optim.SGD(stacked.params.values(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 2], gamma=0.1)
    bar = tqdm(total=epochs, desc="train", disable=not progress, leave=False, unit="ep")

    def after_pass(passes: int, done: int) -> None:
        sched.step()
        bar.update(1)

    try:
        _fit(stacked, opt, images, labels, generators, steps=epochs * -(-images.shape[0] // batch), batch=batch,
             augment=augment, shuffle_batch=False, before_step=lambda done: None, after_pass=after_pass)
    finally:
        bar.close()
    return stacked.unstack()


def train_stacked_steps(nets: Sequence[nn.Module], images: torch.Tensor, labels: torch.Tensor, *, steps: int,
                        generators: Sequence[torch.Generator], lr: float, momentum: float, weight_decay: float,
                        batch: int, augment: Augment | None = None, decay_at: int | None = None,
                        shuffle_batch: bool = False, on_pass: Callable[[int, int, StackedNets], None] | None = None,
                        progress: bool = False) -> list[nn.Module]:
    """:func:`train_stacked` with a budget of ``steps`` SGD steps instead of epochs: shuffled
    passes of minibatches of ``batch``, the last pass cut at ``steps`` (early stopping's budget),
    the learning rate ``lr`` x0.1 from step ``decay_at`` on (default ``steps // 2``; 0 or
    ``>= steps``: never, as a loop that checks ``step == decay_at > 0`` before each step).

    ``shuffle_batch`` also draws, before each minibatch's augmentation, the permutation of that
    minibatch that :func:`~dc_plugins.training.train_epoch` draws when it is called on one
    minibatch (as the NAS trial's loop calls it), so that network k draws what that loop draws.
    ``on_pass(passes, steps_done, stacked)`` is called after every pass, the cut one included
    (``stacked.network(k)`` gives network k as trained so far). Returns the trained networks.
    """
    from tqdm.auto import tqdm

    _check_generators(nets, generators)
    if decay_at is None:
        decay_at = steps // 2
    stacked = StackedNets(nets).train()
    opt = torch.optim.SGD(stacked.params.values(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    bar = tqdm(total=steps, desc="train", disable=not progress, leave=False, unit="step")

    def before_step(done: int) -> None:
        if done == decay_at and decay_at > 0:
            for group in opt.param_groups:
                group["lr"] = lr * 0.1

    def after_pass(passes: int, done: int) -> None:
        bar.update(done - bar.n)
        if on_pass is not None:
            on_pass(passes, done, stacked)

    try:
        _fit(stacked, opt, images, labels, generators, steps=steps, batch=batch, augment=augment,
             shuffle_batch=shuffle_batch, before_step=before_step, after_pass=after_pass)
    finally:
        bar.close()
    return stacked.unstack()
