"""The evaluation protocol of the condensation papers.

Fresh, randomly initialised networks are trained on the condensed set only (SGD lr 0.01, or
for MTT/SelMatch sets the step size they learned, as the MTT code evaluates; momentum 0.9, weight decay 5e-4, batch 256, learning rate x0.1 once at half the epochs) and
tested on the real test set; the report is mean +- std over the networks.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from .augment import DCAugment, DSAugment
from .config import EvalConfig
from .data import DatasetInfo, ImageDataset, make_generator
from .models import ConvNetSpec, make_convnet
from .stacked import train_stacked
from .synthetic import SyntheticSet
from .training import Augment, accuracy, train_epoch
from .zca import ZCA

__all__ = [
    "EvalResult",
    "dc_augment_strategy",
    "evaluate_set",
    "flips_allowed",
    "evaluation_augment",
    "network_generators",
    "check_parallel",
    "parallel_networks",
    "resolve_parallel",
    "train_on_set",
]

# Digits change class when mirrored: DSA leaves out the flip family for them. (This list is about
# DSA's flip only; which datasets get DC's evaluation augmentation is DC_AUGMENT_DATASETS.)
DIGIT_DATASETS = ("mnist", "usps", "svhn", "digits")

# The DC code (utils.get_daparam) evaluates with its augmentation only when the dataset is MNIST
# (crop_scale_rotate) or the evaluation network is ConvNetBN (crop_noise); every other dataset and
# network trains without augmentation (and 300 instead of 1000 epochs).
DC_AUGMENT_DATASETS = ("mnist",)


def flips_allowed(dataset: str | DatasetInfo) -> bool:
    """Whether mirroring keeps an image's class: ``DatasetInfo.flip`` when set (image folders of
    digit-like data are marked ``flip=False``), else not for :data:`DIGIT_DATASETS`, yes for the
    rest. Data that must not be mirrored also gets DC's digit families (no noise)."""
    if isinstance(dataset, DatasetInfo):
        if dataset.flip is not None:
            return dataset.flip
        dataset = dataset.name
    return dataset not in DIGIT_DATASETS


def _name(dataset: str | DatasetInfo) -> str:
    return dataset.name if isinstance(dataset, DatasetInfo) else dataset


@dataclass
class EvalResult:
    accuracies: list[float]
    epochs: int
    augment: str
    net: str
    seconds: float = 0.0
    train_accuracies: list[float] = field(default_factory=list)
    train_seconds: float = 0.0          # the training part of ``seconds`` (the rest: testing)
    lr: float | None = None             # the training step size used (the set's learned one, or config.lr)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies) if self.accuracies else float("nan")

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(accuracy_mean=self.mean, accuracy_std=self.std)
        return d

    def __str__(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f} % ({len(self.accuracies)} nets, {self.epochs} epochs, aug={self.augment})"


def dc_augment_strategy(dataset: str | DatasetInfo, norm: str | None = None) -> str:
    """The DC code's families for ``dc`` augmentation: crop + noise for a BatchNorm network, else
    crop/scale/rotate for digit data, else all four (``norm=None``: no network-specific choice)."""
    if norm == "batch":
        return "crop_noise"
    return "crop_scale_rotate" if not flips_allowed(dataset) else "crop_scale_rotate_noise"


def evaluation_augment(kind: str, method: str, dataset: str | DatasetInfo,
                       spec: ConvNetSpec | None = None) -> tuple[str, Augment | None]:
    """The training augmentation of an evaluation: ``(kind, augment)``.

    ``auto`` follows the papers' code: DSA for sets learned with DSA (dsa, dm, mtt); otherwise DC's
    augmentation only for MNIST or a BatchNorm network (the DC code's get_daparam); none otherwise
    (USPS, SVHN, scikit-learn digits, CIFAR-10 with the default instance-norm ConvNet).

    ``spec=None`` resolves the augmentation without looking at the network, so that every
    architecture of a NAS run trains with the same one (``auto`` then never picks ``dc`` for
    BatchNorm, and ``dc`` uses the dataset's families, never the BatchNorm-only crop + noise).
    """
    norm = spec.norm if spec is not None else None
    if kind == "auto":
        if method in ("dsa", "dm", "mtt"):
            kind = "dsa"
        elif _name(dataset) in DC_AUGMENT_DATASETS or norm == "batch":
            kind = "dc"
        else:
            kind = "none"
    if kind == "dsa":
        return kind, DSAugment(flip=flips_allowed(dataset))
    if kind == "dc":
        return kind, DCAugment(dc_augment_strategy(dataset, norm))
    if kind == "none":
        return kind, None
    raise ValueError(f"unknown augmentation {kind!r}; allowed: auto, dsa, dc, none")


def train_on_set(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                 config: EvalConfig, generator: torch.Generator, augment: Augment | None = None,
                 progress: bool = False) -> torch.nn.Module:
    """The protocol's training: SGD with momentum and weight decay, lr x0.1 at half the epochs."""
    from tqdm.auto import tqdm

    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 2], gamma=0.1)
    for _ in tqdm(range(epochs), desc="train", disable=not progress, leave=False, unit="ep"):
        train_epoch(net, images, labels, opt, batch=config.batch, generator=generator, augment=augment)
        sched.step()
    return net


def network_generators(seed: int, n: int) -> list[torch.Generator]:
    """One generator per evaluation network: network k draws its initialisation, data order and
    augmentation from ``generators[k]`` only, so that it is the same network whether it is trained
    alone, in the loop or stacked with others, in any chunk. Network 0 uses ``make_generator(seed)``
    (a one-network evaluation is what it was before networks had their own generators); network
    k >= 1 a seed that numpy's ``SeedSequence((seed, k))`` derives, so that no network of one seed
    repeats a network of another seed."""
    if n < 0:
        raise ValueError(f"the number of networks must be >= 0, got {n}")
    seeds = [int(seed)] + [int(np.random.SeedSequence([int(seed) % 2 ** 64, k]).generate_state(1, np.uint64)[0])
                           for k in range(1, n)]
    seeds = seeds[:n]
    return [make_generator(s) for s in seeds]


@dataclass
class _NetworkJob:
    """Everything a process needs to train and test evaluation networks by their index k (whose
    generator is ``network_generators(seed, networks)[k]``, wherever it is trained)."""

    spec: ConvNetSpec
    images: torch.Tensor
    labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    epochs: int
    config: EvalConfig
    augment: Augment | None
    seed: int
    parallel: int

    def train(self, indices, *, progress: bool = False) -> list[tuple[float, float, float]]:
        """(test accuracy, training-set accuracy, training seconds) of networks ``indices``,
        ``parallel`` at a time as one stacked model."""
        indices = list(indices)
        all_generators = network_generators(self.seed, self.config.networks)
        out = []
        for first in range(0, len(indices), self.parallel):
            chunk = [all_generators[k] for k in indices[first:first + self.parallel]]
            started = time.perf_counter()
            device = self.images.device
            nets = [make_convnet(self.spec, generator=g, device=device) for g in chunk]
            if len(nets) == 1:
                train_on_set(nets[0], self.images, self.labels, epochs=self.epochs, config=self.config,
                             generator=chunk[0], augment=self.augment, progress=progress)
            else:
                c = self.config
                train_stacked(nets, self.images, self.labels, epochs=self.epochs, generators=chunk, lr=c.lr,
                              momentum=c.momentum, weight_decay=c.weight_decay, batch=c.batch,
                              augment=self.augment, progress=progress)
            seconds = (time.perf_counter() - started) / len(nets)
            out += [(accuracy(net, self.test_images, self.test_labels), accuracy(net, self.images, self.labels),
                     seconds) for net in nets]
        return out


_WORKER_JOB: _NetworkJob | None = None


def _start_worker(job: _NetworkJob, threads: int) -> None:
    global _WORKER_JOB
    torch.set_num_threads(threads)
    _WORKER_JOB = job


def _train_by_index(indices: list[int]) -> list[tuple[float, float, float]]:
    return _WORKER_JOB.train(indices)


def _train_in_workers(job: _NetworkJob, workers: int, bar) -> list[tuple[float, float, float]]:
    """Train the networks in ``workers`` spawned processes sharing this one's torch threads. One
    network's training is a chain of tiny steps that keeps few cores busy (at ipc 1 an epoch is
    one step on 10 images), so processes side by side use the cores that threads cannot.
    Spawned, not forked: a fork of a process whose OpenMP pool has run can hang in the child."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, torch.get_num_threads() // workers)
    n, step = job.config.networks, job.parallel
    tasks = [list(range(first, min(first + step, n))) for first in range(0, n, step)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(job, threads)) as pool:
        futures = [pool.submit(_train_by_index, t) for t in tasks]
        outcomes = []
        for future in futures:  # in network order; the bar advances as each chunk ends
            outcomes += future.result()
            bar.update(len(outcomes) - bar.n)
    return outcomes


def parallel_networks(config: EvalConfig, device: torch.device | str) -> int:
    """How many networks train together as one stacked model (``config.parallel``; ``None``: by device).

    Measured on the project's 2-core CPU (AMD EPYC, torch 2.14, 2 threads; benchmarks/eval_speed.py
    and the numbers in benchmarks/results/eval_speed/): a ConvNet w128-d3 step at ipc 1 is already
    compute-bound there (about 16 ms for 10 images, near the cores' float32 peak), and stacking
    20 networks made a step 2-5x slower (vmap 1.6 s, grouped convolution 0.6 s, loop 0.32 s per
    step of all 20): the stacked activations leave the caches, the elementwise layers become
    memory-bound. Hence ``None`` is the loop (1) on a CPU, and on an accelerator all networks in
    chunks of at most 20 (not measured in this project yet: no GPU was lent when this was written).
    """
    return resolve_parallel(config.parallel, device, "eval.parallel")


def check_parallel(parallel: int | None, key: str = "eval.parallel") -> int | None:
    """``parallel`` if it is None or a positive integer, else a ``ValueError`` naming ``key``."""
    if parallel is not None and (isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1):
        raise ValueError(f"{key} must be a positive integer (networks trained together) or None "
                         f"(by device), got {parallel!r}")
    return parallel


def resolve_parallel(parallel: int | None, device: torch.device | str, key: str = "eval.parallel") -> int:
    """:func:`parallel_networks` for any setting of its kind (``key`` names it in the error): the
    NAS trials' ``train.parallel`` (repeats of one architecture) follows the same rule."""
    if check_parallel(parallel, key) is not None:
        return parallel
    return 1 if torch.device(device).type == "cpu" else 20


def evaluate_set(syn: SyntheticSet, test: ImageDataset, *, config: EvalConfig | None = None,
                 spec: ConvNetSpec | None = None, epochs: int | None = None, seed: int = 0,
                 progress: bool = True, zca: ZCA | None = None) -> EvalResult:
    """Train ``config.networks`` fresh networks on ``syn`` and test them on ``test``.

    Network k is initialised and trained from its own generator (:func:`network_generators`);
    ``config.parallel`` networks at a time train as one stacked model
    (:func:`~dc_plugins.stacked.train_stacked`), which gives each network what training it alone
    gives, up to float rounding: the result depends on the seed, not on ``parallel``. On a CPU,
    ``config.workers`` processes train networks side by side (:func:`_train_in_workers`), with the
    same result up to the float rounding of another thread count.

    ``zca``: the whitening a set was learned under (MTT with ``trajectory.zca``; sets are stored
    in the dataset's normalised space): the set and the test images are whitened with it and the
    networks trained and tested there, as the MTT code evaluates.
    """
    from tqdm.auto import tqdm

    config = config or EvalConfig()
    device = test.images.device
    parallel = parallel_networks(config, device)
    if isinstance(config.workers, bool) or not isinstance(config.workers, int) or config.workers < 1:
        raise ValueError(f"eval.workers must be a positive integer (processes), got {config.workers!r}")
    if spec is None:
        spec = ConvNetSpec.parse(config.net or syn.config.get("net", "convnet"))
    spec = spec.with_data(test.channels, test.num_classes, test.image_size)
    syn.check_compatible(spec.channels, spec.image_size, spec.num_classes)
    kind, augment = evaluation_augment(config.augment, syn.method, test.info, spec)
    if syn.method == "selmatch" and config.augment == "auto" and "distilled" in syn.config:
        # SelMatch's combined augmentation: DSA on the distilled images, crop + flip on the selected
        from .augment import CombinedAugment, CropFlip

        flip = flips_allowed(test.info)
        kind, augment = "combined", CombinedAugment(torch.tensor(syn.config["distilled"], dtype=torch.bool),
                                                    DSAugment(flip=flip), CropFlip(flip=flip))
    epochs = epochs or config.epochs or (1000 if augment is not None else 300)
    if config.learned_lr and syn.config.get("syn_lr") is not None:
        lr = float(syn.config["syn_lr"])
        if not lr > 0 or lr != lr:
            raise ValueError(f"the set's learned step size syn_lr={lr} is not a positive number; "
                             f"evaluate with eval.learned_lr=false to use eval.lr={config.lr}")
        config = replace(config, lr=lr)
    images, labels = syn.images.detach().to(device), syn.labels.to(device)
    if zca is not None:
        images = zca.transform(images)
        test = replace(test, images=zca.transform(test.images))
    job = _NetworkJob(spec, images, labels, test.images, test.labels, epochs, config, augment, seed, parallel)
    start = time.perf_counter()
    bar = tqdm(total=config.networks, desc=f"evaluate {syn.method}", disable=not progress, unit="net")
    workers = min(config.workers, config.networks) if device.type == "cpu" else 1
    if workers > 1:
        outcomes = _train_in_workers(job, workers, bar)
    else:
        outcomes = []
        for first in range(0, config.networks, parallel):
            outcomes += job.train(range(first, min(first + parallel, config.networks)), progress=progress)
            bar.update(len(outcomes) - bar.n)
    bar.close()
    accs, train_accs = [o[0] for o in outcomes], [o[1] for o in outcomes]
    # with workers: the networks' training seconds summed over the processes (compute, not wall)
    train_seconds = sum(o[2] for o in outcomes)
    return EvalResult(accs, epochs, kind, str(spec), time.perf_counter() - start, train_accs, train_seconds,
                      config.lr)
