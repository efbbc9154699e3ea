"""Gradient matching: DC (Zhao, Mopuri, Bilen, ICLR 2021), and DC+DSA with Siamese augmentation."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import dc_loops
from ..training import train_epoch
from .base import Matcher
from .distance import gradient_distance

__all__ = ["GradientMatcher"]


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

    def describe(self) -> dict:
        d = super().describe()
        d.update(outer_loop=self.outer_loop, inner_loop=self.inner_loop, dsa=self.augment is not None)
        return d

    def _freeze_batchnorm(self, net: nn.Module) -> None:
        """Set BatchNorm statistics from real images of every class, then freeze them: matching
        then sees per-sample-independent features, as with the other norms."""
        bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        if not bns:
            return
        n = self.config.bn_images_per_class
        x = torch.cat([self.real.sample(c, n, self.generator) for c in self.real.classes])
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: the stats are exactly this batch's
        net.train()
        with torch.no_grad():
            net(x)
        for m in bns:
            m.eval()

    def _class_loss(self, net: nn.Module, params: list[torch.Tensor], c: int) -> torch.Tensor:
        x_real = self.real.sample(c, self.batch_real, self.generator)
        x_syn = self.class_images(c)
        if self.augment is not None:
            siamese = self.augment.siamese(self.generator)
            x_real, x_syn = self.augment.apply(x_real, siamese), self.augment.apply(x_syn, siamese)
        y_real = torch.full((x_real.shape[0],), c, device=self.device)
        y_syn = torch.full((x_syn.shape[0],), c, device=self.device)
        g_real = torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)
        g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), y_syn), params, create_graph=True)
        return gradient_distance([g.detach() for g in g_real], g_syn)

    def step(self) -> float:
        net = self.new_network()
        params = list(net.parameters())
        net_opt = torch.optim.SGD(params, lr=self.config.lr_net)
        total = 0.0
        for ol in range(self.outer_loop):
            self._freeze_batchnorm(net)
            loss = sum(self._class_loss(net, params, c) for c in self.real.classes)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[self.images])  # only the images learn here
            self.optimizer.step()
            total += loss.item()
            if ol == self.outer_loop - 1:
                break
            # Move the network along its training path on the current synthetic set.
            images, labels = self.images.detach(), self.labels
            for _ in range(self.inner_loop):
                train_epoch(net, images, labels, net_opt, batch=self.config.batch_train,
                            generator=self.generator, augment=self.augment)
        return total / (self.outer_loop * self.real.num_classes)
