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
        # One forward for all classes each: the embedding of an image does not depend on the others
        # (except under BatchNorm, where the paper also embeds all classes together).
        with torch.no_grad():
            emb_real = net.embed(torch.cat(real))
        emb_syn = net.embed(torch.cat(syn))
        loss = emb_syn.new_zeros(())
        r0 = s0 = 0
        for x_real, x_syn in zip(real, syn):
            mean_real = emb_real[r0:r0 + x_real.shape[0]].mean(0)
            mean_syn = emb_syn[s0:s0 + x_syn.shape[0]].mean(0)
            loss = loss + ((mean_real - mean_syn) ** 2).sum()
            r0, s0 = r0 + x_real.shape[0], s0 + x_syn.shape[0]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.images])
        self.optimizer.step()
        return loss.item() / self.real.num_classes
