"""Gradient matching: DC (Zhao, Mopuri, Bilen, ICLR 2021), and DC+DSA with Siamese augmentation."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ..config import dc_loops, dc_loops_source
from ..training import train_epoch
from .base import Matcher, NonFiniteLossError
from .distance import gradient_distance

__all__ = ["GradientMatcher", "class_distance", "class_distances"]


class GradientMatcher(Matcher):
    """Matches, class by class, the gradient of the loss on the synthetic images to the gradient
    on real images, along the training path of freshly drawn networks.

    One :meth:`step` is one outer iteration: draw a network; ``outer_loop`` times, take one SGD
    step on the images (summed layer-wise distance over classes) and then, except the last time,
    train the network ``inner_loop`` epochs on the current synthetic set.
    """

    method = "dc"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.augment is not None:
            self.method = "dsa"
        paper_outer, paper_inner = dc_loops(self.ipc)
        self.outer_loop = self.config.outer_loop or paper_outer
        self.inner_loop = self.config.inner_loop if self.config.inner_loop is not None else paper_inner
        self.batch_real = min(self.config.batch_real or 256, min(self.real.count(c) for c in self.real.classes))
        # What the iterations executed so far did (checkpointed): image updates and inner epochs.
        self.matching_steps = 0
        self.inner_epochs = 0

    def loops(self) -> dict:
        """The loops in use and what was executed: ``source`` says where the two loops come from
        (the DC paper's table, the :func:`~dc_plugins.config.dc_loops` rule for other ipc, or the
        configuration/preset when they differ from both)."""
        source = (dc_loops_source(self.ipc) if (self.outer_loop, self.inner_loop) == dc_loops(self.ipc)
                  else "config")
        return {"outer_loop": self.outer_loop, "inner_loop": self.inner_loop, "source": source,
                "iterations": self.iteration, "matching_steps": self.matching_steps,
                "inner_epochs": self.inner_epochs}

    def describe(self) -> dict:
        d = super().describe()
        d.update(outer_loop=self.outer_loop, inner_loop=self.inner_loop, dsa=self.augment is not None,
                 loops=self.loops())
        return d

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "loops": [self.outer_loop, self.inner_loop]}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "matching_steps": self.matching_steps, "inner_epochs": self.inner_epochs}

    def load_state_dict(self, state: dict, **kwargs) -> None:
        super().load_state_dict(state, **kwargs)
        self.matching_steps = int(state["matching_steps"])
        self.inner_epochs = int(state["inner_epochs"])

    def _freeze_batchnorm(self, net: nn.Module) -> None:
        """Set BatchNorm statistics from real images of every class, then freeze them: matching
        then sees per-sample-independent features, as with the other norms."""
        bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        if not bns:
            return
        n = self.config.bn_images_per_class
        x = torch.cat(self.real.gather([self.real.draw_indices(c, n, self.generator) for c in self.real.classes]))
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: the stats are exactly this batch's
        net.train()
        with torch.no_grad():
            net(x)
        for m in bns:
            m.eval()

    def _class_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every class's real batch and synthetic images, augmented with shared parameters.

        The draws come in the order class by class (real indices, then the class's Siamese
        parameters), as they always did; the real images of all classes are then fetched with
        one copy of their indices to the device.
        """
        drawn, params = [], []
        for c in self.real.classes:
            drawn.append(self.real.draw_indices(c, self.batch_real, self.generator))
            params.append(self.augment.siamese(self.generator) if self.augment is not None else None)
        batches = []
        for c, x_real, siamese in zip(self.real.classes, self.real.gather(drawn), params):
            x_syn = self.class_images(c)
            if siamese is not None:
                x_real, x_syn = self.augment.apply(x_real, siamese), self.augment.apply(x_syn, siamese)
            batches.append((x_real, x_syn))
        return batches

    def matching_loss(self, net: nn.Module) -> torch.Tensor:
        """The summed gradient distance over classes; differentiable in ``self.images``.

        Every class's batch is drawn before any gradient is taken (in class order, as the loop
        always drew them), so both ways of computing it see the same images.
        """
        batches = self._class_batches()
        if self.config.vectorize:
            real = torch.stack([r for r, _ in batches])
            syn = torch.stack([s for _, s in batches])
            return class_distances(net, real, syn).sum()
        params = list(net.parameters())
        return sum(class_distance(net, params, r, s, c) for c, (r, s) in zip(self.real.classes, batches))

    def step(self) -> float:
        net = self.new_network()
        net_opt = torch.optim.SGD(net.parameters(), lr=self.config.lr_net)
        # summed on the device in float64 (what adding loss.item() to a Python float gives), read once
        total = torch.zeros((), dtype=torch.float64, device=self.images.device)
        inner = torch.zeros((), dtype=torch.float64, device=self.images.device)
        for ol in range(self.outer_loop):
            self._freeze_batchnorm(net)
            loss = self.matching_loss(net)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[self.images])  # only the images learn here
            self.optimizer.step()
            self.matching_steps += 1
            total += loss.detach().double()
            if ol == self.outer_loop - 1:
                break
            # Move the network along its training path on the current synthetic set.
            images, labels = self.images.detach(), self.labels
            for _ in range(self.inner_loop):
                inner = inner + train_epoch(net, images, labels, net_opt, batch=self.config.batch_train,
                                            generator=self.generator, augment=self.augment, sync=False)
                self.inner_epochs += 1
        # one host sync an iteration: the matching losses and the inner-loop training's, read together
        total, inner = torch.stack([total, inner]).tolist()
        if not math.isfinite(inner):
            raise NonFiniteLossError(f"inner-loop training loss became {inner}")
        return total / (self.outer_loop * self.real.num_classes)


def class_distance(net: nn.Module, params: list[torch.Tensor], x_real: torch.Tensor, x_syn: torch.Tensor,
                   c: int) -> torch.Tensor:
    """DC's distance between the gradients of class ``c``'s loss on real and synthetic images;
    the synthetic gradient keeps its graph so the distance differentiates into the images."""
    y_real = torch.full((x_real.shape[0],), c, device=x_real.device)
    y_syn = torch.full((x_syn.shape[0],), c, device=x_syn.device)
    g_real = torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)
    g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), y_syn), params, create_graph=True)
    return gradient_distance([g.detach() for g in g_real], g_syn)


def class_distances(net: nn.Module, real: torch.Tensor, syn: torch.Tensor) -> torch.Tensor:
    """:func:`class_distance` for every class at once: ``real`` is ``(classes, batch, C, H, W)``,
    ``syn`` ``(classes, ipc, C, H, W)``, class ``k`` labelled ``k``; returns ``(classes,)``.

    The network must not mix samples (BatchNorm frozen in eval mode, as the matcher leaves it).
    """
    params = dict(net.named_parameters())
    buffers = dict(net.named_buffers())

    def loss(p: dict, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(net, (p, buffers), (x,)), c.expand(x.shape[0]))

    def distance(x_real: torch.Tensor, x_syn: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        g_real = grad(loss)(params, x_real, c)
        g_syn = grad(loss)(params, x_syn, c)
        return gradient_distance([g.detach() for g in g_real.values()], list(g_syn.values()))

    return vmap(distance)(real, syn, torch.arange(real.shape[0], device=real.device))
