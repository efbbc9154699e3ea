"""Trajectory matching: MTT (Cazenavette et al., CVPR 2022), with an exact gradient in constant
activation memory.

One :meth:`TrajectoryMatcher.step`: draw an expert and a start epoch ``t``; the student starts at
the expert's parameters ``theta*_t`` and takes ``N`` SGD steps of learnable size ``alpha`` on
minibatches of the synthetic set (one DSA draw per step); the loss is
``||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2``; the images and ``alpha`` take one
SGD step each.

The gradient of that loss with respect to the images and ``alpha`` is computed one of two ways
(``trajectory.gradient``), equal up to float rounding (``tests/test_trajectory.py`` checks
relative error < 1e-8 in float64):

* ``unrolled`` (:func:`unrolled_trajectory_gradients`): the N steps are built as one graph
  (``create_graph=True``) and backpropagated at once; the graph of every step stays alive, so
  memory grows linearly in N.
* ``exact`` (:func:`exact_trajectory_gradients`, default): reverse mode with an adjoint. The
  forward keeps no graph, only the parameters ``theta_t`` of every step (N x P floats) and the
  recorded minibatch indices and augmentation draws (:func:`draw_plan`). Backward, from
  ``a = dL/dtheta_N = 2 (theta_N - theta*) / D``, for ``t = N-1 ... 0``: recompute
  ``g_t = grad_theta loss(theta_t; aug(X_t))`` under :func:`torch.func.vjp`, whose one
  vector-Jacobian product with ``a`` gives ``(dg_t/dtheta)^T a`` and ``(dg_t/dX_t)^T a``; then
  ``dL/dX_t += -alpha (dg_t/dX_t)^T a``, ``dL/dalpha += -g_t . a``,
  ``a <- a - alpha (dg_t/dtheta)^T a``. Only one step's graph exists at a time. Unlike TESLA's
  per-batch formula it keeps the cross-step terms (through ``a``), so it is exact.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vjp

from ..augment import DSAParams, DSAugment
from ..config import TrajectoryConfig, check_trajectory, trajectory_fingerprint
from ..data import ClassIndex
from ..fingerprint import data_fingerprint
from ..models import make_convnet
from ..synthetic import SyntheticSet
from ..trajectories import ExpertTrajectories, expert_metadata
from ..zca import ZCA
from .base import Matcher

__all__ = ["TrajectoryMatcher", "Student", "StepPlan", "draw_plan", "exact_trajectory_gradients",
           "unrolled_trajectory_gradients", "trajectory_loss"]

StepPlan = list[tuple[torch.Tensor, DSAParams | None]]


class Student:
    """A network as a function of one flat parameter vector (``torch.func.functional_call``),
    in ``net.parameters()`` order, the order expert trajectories are saved in."""

    def __init__(self, net: nn.Module):
        buffers = [name for name, _ in net.named_buffers()]
        if buffers:
            raise ValueError(
                f"trajectory matching needs a network whose state is its parameters; this one has buffers "
                f"{buffers[:3]} (BatchNorm running statistics?): use instance (the paper's), group, layer "
                f"or no normalisation")
        self.net = net
        self.names = [name for name, _ in net.named_parameters()]
        self.shapes = [p.shape for _, p in net.named_parameters()]
        self.numels = [p.numel() for _, p in net.named_parameters()]

    @property
    def size(self) -> int:
        return sum(self.numels)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        if flat.shape != (self.size,):
            raise ValueError(f"flat parameters of shape {tuple(flat.shape)}; this network has {self.size}")
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.numels), self.shapes, strict=True)}

    def logits(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.net, self.unflatten(flat), (x,))

    def loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(flat, x), y)


def draw_plan(n: int, steps: int, batch: int, generator: torch.Generator,
              augment: DSAugment | None) -> StepPlan:
    """Each step's minibatch (MTT: the set reshuffled whenever its chunks are used up) and its
    DSA draw (one family per step, per-image parameters, as MTT's DiffAugment), drawn before the
    steps so that both gradient paths see the same ones."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"trajectory.syn_steps must be a positive integer, got {steps!r}")
    if batch <= 0:
        raise ValueError(f"trajectory.batch_syn must be positive, got {batch!r}")
    chunks: list[torch.Tensor] = []
    plan: StepPlan = []
    for _ in range(steps):
        if not chunks:
            chunks = list(torch.randperm(n, generator=generator).split(batch))
        idx = chunks.pop(0)
        plan.append((idx, augment.sample(idx.numel(), generator) if augment is not None else None))
    return plan


def _step_loss(student: Student, augment: DSAugment | None) -> Callable:
    def loss(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, params: DSAParams | None) -> torch.Tensor:
        if params is not None:
            x = augment.apply(x, params)
        return student.loss(theta, x, y)
    return loss


def trajectory_loss(theta_n: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MTT's normalised parameter distance ``||theta_N - target||^2 / ||start - target||^2``."""
    denom = ((start - target) ** 2).sum()
    if not denom > 0:
        raise ValueError("the expert did not move between the start and target epochs (zero distance); "
                         "check the buffer or raise trajectory.expert_epochs")
    return ((theta_n - target) ** 2).sum() / denom


def _check(plan: StepPlan, start: torch.Tensor, target: torch.Tensor, student: Student) -> None:
    if not plan:
        raise ValueError("trajectory.syn_steps must be a positive integer, got 0 steps")
    if start.shape != (student.size,) or target.shape != (student.size,):
        raise ValueError(f"expert parameters of {tuple(start.shape)} / {tuple(target.shape)}; the student "
                         f"network has {student.size}: the buffer is of another network")


def unrolled_trajectory_gradients(student: Student, start: torch.Tensor, target: torch.Tensor,
                                  images: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor, plan: StepPlan,
                                  augment: DSAugment | None = None
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, dL/dimages, dL/dlr)`` by backpropagating through all N steps at once (the
    oracle; the graph of every step stays in memory)."""
    _check(plan, start, target, student)
    loss_fn = _step_loss(student, augment)
    x_all = images.detach().requires_grad_(True)
    alpha = lr.detach().requires_grad_(True)
    theta = start.detach().requires_grad_(True)
    for idx, params in plan:
        g = torch.autograd.grad(loss_fn(theta, x_all[idx], labels[idx], params), theta, create_graph=True)[0]
        theta = theta - alpha * g
    loss = trajectory_loss(theta, start.detach(), target.detach())
    d_images, d_lr = torch.autograd.grad(loss, [x_all, alpha])
    return loss.detach(), d_images, d_lr


def exact_trajectory_gradients(student: Student, start: torch.Tensor, target: torch.Tensor,
                               images: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor, plan: StepPlan,
                               augment: DSAugment | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, dL/dimages, dL/dlr)`` by reverse mode with an adjoint vector: the same values as
    :func:`unrolled_trajectory_gradients` with one step's graph in memory at a time (plus the N
    parameter vectors)."""
    _check(plan, start, target, student)
    loss_fn = _step_loss(student, augment)
    step_grad = grad(loss_fn)  # g(theta, x, y, params) = d loss / d theta
    x_all, alpha = images.detach(), lr.detach()
    start, target = start.detach(), target.detach()
    # Forward: no graph (nothing requires grad), keep theta_0 .. theta_N.
    thetas = [start]
    for idx, params in plan:
        thetas.append(thetas[-1] - alpha * step_grad(thetas[-1], x_all[idx], labels[idx], params))
    denom = ((start - target) ** 2).sum()
    loss = trajectory_loss(thetas[-1], start, target)
    a = 2 * (thetas[-1] - target) / denom
    d_images = torch.zeros_like(x_all)
    d_lr = torch.zeros_like(alpha)
    for t in range(len(plan) - 1, -1, -1):
        idx, params = plan[t]
        y = labels[idx]
        g, pullback = vjp(lambda th, x, y=y, p=params: step_grad(th, x, y, p), thetas[t], x_all[idx])
        h_a, d_x = pullback(a)
        d_images.index_add_(0, idx.to(d_images.device), -alpha * d_x)
        d_lr = d_lr - (g * a).sum()
        a = a - alpha * h_a
        thetas[t + 1] = None  # no longer needed
    return loss, d_images, d_lr.reshape(lr.shape)


GRADIENTS = {"exact": exact_trajectory_gradients, "unrolled": unrolled_trajectory_gradients}


class TrajectoryMatcher(Matcher):
    """MTT: learns the set so that ``syn_steps`` SGD steps on it move a network from an expert's
    epoch ``t`` as far as ``expert_epochs`` epochs of training on the real data did.

    Args (beyond :class:`Matcher`'s):
        trajectory: the resolved :class:`~dc_plugins.config.TrajectoryConfig` (no field left at
            None; :func:`~dc_plugins.config.resolve` with a preset fills them).
        experts: an :class:`~dc_plugins.trajectories.ExpertTrajectories` to use as it is.
        experts_dir: where to train (or find, resumed) the experts when ``trajectory.buffer`` is
            unset. ``None``: ``<checkpoint folder>/experts`` when :meth:`run` gets a checkpoint,
            else in memory.

    ``trajectory.buffer`` names a buffer built beforehand (``dc-experts``): it must exist, hold
    ``num_experts`` experts and be of this data, network and settings, else a clear error.
    With ``trajectory.zca`` the matcher works on ZCA-whitened real and synthetic images (the
    experts train on whitened data too); :meth:`synthetic_set` maps the images back through
    the inverse whitening, so the set lives in the dataset's normalised space like every other.
    """

    method = "mtt"

    def __init__(self, real: ClassIndex, ipc: int, *, trajectory: TrajectoryConfig,
                 experts: ExpertTrajectories | None = None, experts_dir: str | Path | None = None,
                 progress: bool = True, dsa: bool = True, **kwargs):
        t = check_trajectory(copy.deepcopy(trajectory))
        unset = [f.name for f in dataclasses.fields(t) if getattr(t, f.name) is None
                 and f.name not in ("batch_syn", "buffer")]
        if unset:
            raise ValueError(f"trajectory.{unset[0]} is unset ({', '.join(unset)}); resolve the configuration "
                             f"with a preset (dc_plugins.config.resolve) or set them")
        spec = kwargs.get("spec")
        if spec is not None and spec.norm == "batch":
            raise ValueError("trajectory matching (mtt) needs a network without BatchNorm (its running statistics "
                             "are not parameters of the trajectory); use instance (the paper's), group, layer or none")
        self.trajectory = t
        self._data_hash = data_fingerprint(real.images, real.labels)  # of the data as given (before ZCA)
        self.zca: ZCA | None = None
        if t.zca:
            self.zca = ZCA.fit(real.images, t.zca_eps)
            real = ClassIndex(self.zca.transform(real.images), real.labels, real.num_classes)
        super().__init__(real, ipc, dsa=dsa, **kwargs)
        self.student = Student(make_convnet(self.spec).to(self.device, self.images.dtype))
        self.syn_lr = torch.tensor(float(t.lr_teacher), dtype=self.images.dtype, device=self.device,
                                   requires_grad=True)
        self.lr_optimizer = torch.optim.SGD([self.syn_lr], lr=t.lr_lr, momentum=0.5)
        self.batch_syn = t.batch_syn or self.images.shape[0]
        self.experts = experts
        self.experts_dir = None if experts_dir is None else Path(experts_dir)
        self.progress = progress
        self.update_mask: torch.Tensor | None = None  # images that learn (None: all)
        if experts is not None:
            self._check_experts(experts)

    # -- experts ------------------------------------------------------------------------------
    def expert_metadata(self) -> dict:
        t = self.trajectory
        return expert_metadata(dataset=self.dataset, spec=self.spec, image_shape=self.images.shape[1:],
                               mean=self.mean, std=self.std, zca=bool(t.zca), zca_eps=t.zca_eps,
                               epochs=t.expert_train_epochs, lr=t.lr_teacher, batch=t.expert_batch,
                               augment="_".join(self.augment.families) if self.augment else None,
                               seed=self.seed, data=self._data_hash, dtype=t.expert_dtype)

    def _check_experts(self, experts: ExpertTrajectories) -> None:
        from ..fingerprint import check_fingerprint

        check_fingerprint(experts.meta, self.expert_metadata(), "expert buffer", "use a buffer of this run's settings")
        if experts.num_experts < self.trajectory.num_experts:
            raise ValueError(f"the expert buffer has {experts.num_experts} experts; trajectory.num_experts is "
                             f"{self.trajectory.num_experts}")
        experts.check_window(self.trajectory.max_start_epoch, self.trajectory.expert_epochs)

    def make_experts(self, root: str | Path | None = None) -> ExpertTrajectories:
        """The experts this matcher samples: ``trajectory.buffer`` (checked, never trained), or
        trained now in ``root`` (resumed: finished experts are kept) or in memory."""
        t = self.trajectory
        if t.buffer is not None:
            experts = ExpertTrajectories(self.expert_metadata(), t.num_experts, t.buffer).check()
            self._check_experts(experts)
            return experts
        return self.build_experts(root)

    def build_experts(self, root: str | Path | None) -> ExpertTrajectories:
        """Train the experts missing in ``root`` (None: in memory) on this matcher's real data
        (whitened with ``trajectory.zca``), keeping the finished ones; what ``dc-experts`` runs."""
        experts = ExpertTrajectories(self.expert_metadata(), self.trajectory.num_experts, root)
        experts.build(self.real.images, self.real.labels, spec=self.spec, augment=self.augment,
                      progress=self.progress)
        self._check_experts(experts)
        return experts

    # -- one iteration ----------------------------------------------------------------------------
    def step(self) -> float:
        if self.experts is None:
            self.experts = self.make_experts(self.experts_dir)
        t = self.trajectory
        sample = self.experts.sample(self.generator, t.max_start_epoch, t.expert_epochs)
        start = sample.start.to(self.device, self.images.dtype)
        target = sample.target.to(self.device, self.images.dtype)
        plan = draw_plan(self.images.shape[0], t.syn_steps, self.batch_syn, self.generator, self.augment)
        loss, d_images, d_lr = GRADIENTS[t.gradient](self.student, start, target, self.images, self.labels,
                                                     self.syn_lr, plan, self.augment)
        if self.update_mask is not None:  # SelMatch: only the distilled part learns
            d_images = d_images * self.update_mask.view(-1, *([1] * (d_images.ndim - 1))).to(d_images)
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_optimizer.zero_grad(set_to_none=True)
        self.images.grad = d_images
        self.syn_lr.grad = d_lr.detach().reshape(self.syn_lr.shape)
        self.optimizer.step()
        self.lr_optimizer.step()
        return float(loss)

    def run(self, iterations: int, *, checkpoint=None, **kwargs) -> SyntheticSet:
        self.progress = kwargs.get("progress", self.progress)
        if self.experts is None and self.experts_dir is None and checkpoint is not None:
            self.experts_dir = Path(checkpoint).parent / "experts"
        if self.experts is None and iterations > self.iteration:
            self.experts = self.make_experts(self.experts_dir)
        return super().run(iterations, checkpoint=checkpoint, **kwargs)

    # -- the set and checkpoints -----------------------------------------------------------------
    def synthetic_set(self) -> SyntheticSet:
        syn = super().synthetic_set()
        if self.zca is not None:
            syn = syn.replace_images(self.zca.inverse(syn.images))
        return syn

    def describe(self) -> dict:
        d = super().describe()
        d.update(trajectory=dataclasses.asdict(self.trajectory), syn_lr=float(self.syn_lr.detach()),
                 zca=self.zca is not None)
        return d

    def fingerprint(self) -> dict:
        # the buffer's path and the gradient path cannot change the set beyond float rounding
        return {**super().fingerprint(), "trajectory": trajectory_fingerprint(self.trajectory, self.method)}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "syn_lr": self.syn_lr.detach().cpu().clone(),
                "lr_optimizer": self.lr_optimizer.state_dict()}

    def load_state_dict(self, state: dict, **kwargs) -> None:
        super().load_state_dict(state, **kwargs)
        if "syn_lr" not in state or "lr_optimizer" not in state:
            raise ValueError("checkpoint lacks the learned step size (syn_lr): not an mtt checkpoint")
        with torch.no_grad():
            self.syn_lr.copy_(state["syn_lr"].to(self.device, self.syn_lr.dtype))
        self.lr_optimizer.load_state_dict(state["lr_optimizer"])
