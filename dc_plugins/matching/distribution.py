"""Distribution matching: DM (Zhao & Bilen, WACV 2023)."""

from __future__ import annotations

import torch

from .base import Matcher

__all__ = ["DistributionMatcher"]


class DistributionMatcher(Matcher):
    """Matches the mean embedding of each class's synthetic images to that of a real batch,
    under a freshly drawn, never-trained ConvNet and Siamese DSA. No second-order terms, so an
    iteration costs one forward of the real batch and one forward/backward of the set."""

    method = "dm"

    def __init__(self, *args, dsa: bool = True, **kwargs):
        super().__init__(*args, dsa=dsa, **kwargs)
        self.batch_real = self.config.batch_real or 256

    def step(self) -> float:
        net = self.new_network()
        net.train()  # batch statistics for BatchNorm; other norms are per sample
        for p in net.parameters():
            p.requires_grad_(False)
        # Draws class by class (real indices, then Siamese parameters), as always; the real images
        # of all classes are then fetched with one copy of their indices to the device.
        drawn, params = [], []
        for c in self.real.classes:
            drawn.append(self.real.draw_indices(c, self.batch_real, self.generator))
            params.append(self.augment.siamese(self.generator) if self.augment is not None else None)
        real, syn = [], []
        for c, x_real, siamese in zip(self.real.classes, self.real.gather(drawn), params):
            x_syn = self.class_images(c)
            if siamese is not None:
                x_real, x_syn = self.augment.apply(x_real, siamese), self.augment.apply(x_syn, siamese)
            real.append(x_real)
            syn.append(x_syn)
        # The real batches are embedded class by class: with BatchNorm the paper embeds all classes
        # together (batch statistics), but every other norm is per sample, and one forward of
        # classes x batch_real images (2,560 at 32 px) streams ~1.3 GB activations through memory
        # per layer, which on a CPU made an iteration 2-3x slower than per-class batches.
        # The synthetic images (a few per class) go through in one forward with a graph.
        together = self.spec.norm == "batch"
        with torch.no_grad():
            if together:
                emb_real, counts = net.embed(torch.cat(real)), [x.shape[0] for x in real]
                mean_real = torch.stack([e.mean(0) for e in emb_real.split(counts)])
            else:
                mean_real = torch.stack([net.embed(x).mean(0) for x in real])
        emb_syn = net.embed(torch.cat(syn))
        mean_syn = torch.stack([e.mean(0) for e in emb_syn.split([x.shape[0] for x in syn])])
        loss = ((mean_real - mean_syn) ** 2).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.images])
        self.optimizer.step()
        return loss.item() / self.real.num_classes
