"""The trial: train the sampled architecture on a proxy, validate on held-out real images.

:func:`evaluate_architecture` is the function of an NNI ``FunctionalEvaluator``
(:func:`make_evaluator`). Its arguments are small (the proxy descriptor's path and plain
dicts), as NNI pickles them for every trial. It reports the validation accuracy every
``report_every`` epochs (``nni.report_intermediate_result``) and at the end
(``nni.report_final_result``), and writes a trial record (JSON, atomic) so that an interrupted
run can skip finished architectures. A failing trial writes a ``failed`` record and re-raises,
so that NNI marks it failed; the experiment goes on with the next architecture. With
``train.repeats`` > 1 the record is written after every training, or every chunk of repeats
trained stacked (status ``partial``), and a
trial that finds a partial record trains only the seeds it lacks: an interrupted trial, or a
rerun with more repeats, keeps the trainings already done.

Training is the evaluation protocol's SGD (momentum, weight decay, lr x0.1 at half the budget)
with the engine's ``train_epoch``; the network is re-initialised from ``train.seed`` so that an
architecture starts from the same weights on every proxy. ``train.parallel`` repeats at a time
train as one stacked model (:func:`dc_plugins.stacked.train_stacked_steps`), each from its own
seed's generator with the draws of the loop, so that repeat i is the network the loop trains, up
to float rounding.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import traceback
from pathlib import Path

import torch

from dc_plugins.data import DatasetInfo, make_generator
from dc_plugins.device import torch_threads
from dc_plugins.evaluation import evaluation_augment, resolve_parallel
from dc_plugins.io import write_json
from dc_plugins.models import ConvNet, reset_parameters
from dc_plugins.training import accuracy, train_epoch

from .config import TrainConfig
from .data import load_split, resolve_device
from .proxy import Proxy, early_stopping_steps

__all__ = ["evaluate_architecture", "make_evaluator", "train_architecture", "TrialRecord", "read_record",
           "read_trial", "record_path"]


@dataclasses.dataclass
class TrialRecord:
    """One architecture trained on one proxy."""

    arch: str
    proxy: str
    proxy_key: str
    status: str                      # finished | failed | partial (some of train.repeats done)
    accuracy: float | None = None    # final validation accuracy in [0, 1] (mean over repeats)
    accuracies: list = dataclasses.field(default_factory=list)  # one per repeat (train.repeats)
    intermediate: list = dataclasses.field(default_factory=list)  # [[epoch, accuracy], ...]
    seconds: float = 0.0             # training + validation time of this trial
    eval_seconds: float = 0.0        # of which validation (the intermediate and final accuracies)
    steps: int = 0                   # SGD steps taken
    images_seen: int = 0             # images forwarded and backpropagated (compute)
    error: str | None = None
    device: str = ""                 # where it trained (cpu, cuda): the unit of ``seconds``; "" = unknown

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def record_path(records: str | Path, arch: str) -> Path:
    return Path(records) / f"{arch}.json"


def read_record(path: str | Path) -> TrialRecord | None:
    import json

    try:
        return TrialRecord(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def read_trial(records: str | Path, arch: str, proxy_key: str, status: str) -> TrialRecord | None:
    """The record of ``arch`` on the proxy ``proxy_key`` under ``records`` if it has ``status``;
    None when it is missing, unreadable, of another proxy or in another state."""
    rec = read_record(record_path(records, arch))
    if rec is None or rec.status != status or rec.proxy_key != proxy_key or rec.arch != arch:
        return None
    return rec


def _budget(proxy: Proxy, cfg: TrainConfig, n_images: int, num_classes: int) -> tuple[int, int]:
    """(steps, steps per epoch) of this trial."""
    per_epoch = max(1, math.ceil(n_images / cfg.batch))
    if proxy.kind == "early-stopping":
        return early_stopping_steps(cfg.epochs, proxy.ipc, num_classes, cfg.batch), per_epoch
    epochs = cfg.whole_epochs if proxy.kind == "whole" else cfg.epochs
    return epochs * per_epoch, per_epoch


def train_architecture(net: ConvNet, proxy: Proxy, train: TrainConfig, *, device: torch.device | str = "cpu",
                       report=None, progress: bool = False, done: TrialRecord | None = None,
                       checkpoint=None) -> TrialRecord:
    """Train ``net`` on ``proxy`` ``train.repeats`` times (seeds ``train.seed + i``, fresh
    weights each time) and return one record whose accuracy is the mean; ``report(epoch,
    accuracy)`` is called every ``train.report_every`` epochs of the first repeat (NNI's
    intermediate results are one curve). Works without NNI.

    ``train.parallel`` (:func:`~dc_plugins.evaluation.resolve_parallel`: None = the loop on a
    CPU, up to 20 elsewhere) repeats at a time train together as one stacked model; a chunk of
    one trains alone. Repeat i draws its initialisation, data order and augmentation from seed
    ``train.seed + i`` in either case, so its accuracy is the loop's up to float rounding; the
    record's steps and images seen are the same, its seconds those of the stacked trainings.

    ``done``: a record of this architecture, proxy and training whose ``accuracies`` hold the
    first trainings (seeds ``train.seed``, ``train.seed + 1``, ...); only the rest are trained.
    Each training is independent of the others, so the result is the one a single run gives.
    ``checkpoint(record)`` is called with a ``partial`` record after every training (every
    stacked chunk) but the last.
    """
    parallel = resolve_parallel(train.parallel, device, "train.parallel")
    record = None
    if done is not None and done.accuracies:
        if len(done.accuracies) > train.repeats:
            raise ValueError(f"the earlier record of {done.arch} has {len(done.accuracies)} trainings, more than "
                             f"train.repeats={train.repeats}")
        record = dataclasses.replace(done, accuracies=list(done.accuracies), intermediate=list(done.intermediate),
                                     error=None)
    first = len(record.accuracies) if record else 0
    while first < train.repeats:
        seeds = [train.seed + i for i in range(first, min(first + parallel, train.repeats))]
        if len(seeds) == 1:
            run = _train_once(net, proxy, dataclasses.replace(train, seed=seeds[0]), device=device,
                              report=report if first == 0 else None, progress=progress)
            accuracies = [run.accuracy]
        else:
            run = _train_stacked(net, proxy, train, seeds, device=device, curve=first == 0,
                                 report=report if first == 0 else None, progress=progress)
            accuracies = run.accuracies
        if record is None:
            record = dataclasses.replace(run, accuracies=[])
        else:
            record.seconds += run.seconds
            record.eval_seconds += run.eval_seconds
            record.steps += run.steps
            record.images_seen += run.images_seen
        record.accuracies.extend(accuracies)
        first += len(seeds)
        if checkpoint is not None and len(record.accuracies) < train.repeats:
            record.status = "partial"
            checkpoint(record)
    record.status = "finished"
    record.accuracy = sum(record.accuracies) / len(record.accuracies)
    return record


def trial_augment(proxy: Proxy, train: TrainConfig, dataset: str | DatasetInfo):
    """The training augmentation of every trial on ``proxy``: resolved from the proxy, the train
    settings and the dataset only, never from the architecture, so that all architectures of a run
    train with the same one (a BatchNorm architecture getting DC's crop + noise while the others
    get crop/scale/rotate would confound the ranking with the normalisation choice)."""
    method = proxy.kind if proxy.set_path is not None else "real"
    return evaluation_augment(train.augment_for(proxy.kind), method, dataset, None)[1]


def _trial_inputs(net: ConvNet, proxy: Proxy, train: TrainConfig, device: torch.device):
    """``(split, images, labels, augment)`` of a trial: the validation data, what it trains on, how."""
    split = load_split(proxy.data_config, device)
    spec = net.spec
    if (spec.channels, spec.image_size, spec.num_classes) != (split.channels, split.image_size, split.num_classes):
        raise ValueError(f"network {spec} expects {spec.channels}x{spec.image_size}x{spec.image_size} images and "
                         f"{spec.num_classes} classes; the data has {split.channels}x{split.image_size}x"
                         f"{split.image_size} and {split.num_classes}")
    if proxy.set_path is None:
        images, labels = split.train.images, split.train.labels
    else:
        syn = proxy.load_set()
        syn.check_compatible(split.channels, split.image_size, split.num_classes)
        images, labels = syn.images.to(device), syn.labels.to(device)
    return split, images, labels, trial_augment(proxy, train, split.train.info)


def _init(net: ConvNet, generator: torch.Generator, device: torch.device) -> ConvNet:
    # Drawn on the CPU from the CPU generator, then moved: the same weights on every device, and a
    # repeat's network that the previous repeat left on an accelerator is re-initialised on the CPU.
    return reset_parameters(net.to("cpu"), generator).to(device)


def _train_once(net: ConvNet, proxy: Proxy, train: TrainConfig, *, device: torch.device | str,
                report, progress: bool) -> TrialRecord:
    from tqdm.auto import tqdm

    device = torch.device(device)
    split, images, labels, augment = _trial_inputs(net, proxy, train, device)
    spec = net.spec
    generator = make_generator(train.seed)
    _init(net, generator, device)
    total, _ = _budget(proxy, train, images.shape[0], split.num_classes)
    opt = torch.optim.SGD(net.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    decay_at = total // 2
    record = TrialRecord(arch=spec.arch, proxy=proxy.label, proxy_key=proxy.key, status="running",
                         device=device.type)
    start = time.perf_counter()
    steps, epoch = 0, 0
    bar = tqdm(total=total, desc=f"{proxy.label} {spec.arch}", unit="step", disable=not progress, leave=False)
    try:
        while steps < total:
            # One shuffled pass (cut to the step budget for early stopping); the learning rate
            # drops x0.1 once half the steps are done, as in the evaluation protocol.
            order = torch.randperm(images.shape[0], generator=generator).to(images.device)
            for start_i in range(0, images.shape[0], train.batch):
                if steps >= total:
                    break
                if steps == decay_at and decay_at > 0:
                    for group in opt.param_groups:
                        group["lr"] = train.lr * 0.1
                idx = order[start_i:start_i + train.batch]
                # The engine's training loop, on one batch: one SGD step with its non-finite check.
                train_epoch(net, images[idx], labels[idx], opt, batch=train.batch, generator=generator,
                            augment=augment)
                record.images_seen += idx.numel()
                steps += 1
                bar.update(1)
            epoch += 1
            if epoch % train.report_every == 0 and steps < total:
                tick = time.perf_counter()
                acc = accuracy(net, split.val.images, split.val.labels)
                record.eval_seconds += time.perf_counter() - tick
                record.intermediate.append([epoch, acc])
                if report is not None:
                    report(epoch, acc)
    finally:
        bar.close()
    tick = time.perf_counter()
    record.accuracy = accuracy(net, split.val.images, split.val.labels)
    record.eval_seconds += time.perf_counter() - tick
    record.steps = steps
    record.seconds = time.perf_counter() - start
    record.status = "finished"
    return record


def _images_seen(steps: int, n_images: int, batch: int) -> int:
    """Images one training of ``steps`` steps forwards: whole passes of ``n_images``, then full
    minibatches of the cut pass (only a pass's last minibatch can be short)."""
    per_epoch = max(1, math.ceil(n_images / batch))
    passes, rest = divmod(steps, per_epoch)
    return passes * n_images + rest * batch


def _train_stacked(net: ConvNet, proxy: Proxy, train: TrainConfig, seeds: list[int], *, device: torch.device | str,
                   curve: bool, report, progress: bool) -> TrialRecord:
    """The trainings of ``seeds`` as one stacked model: network k is :func:`_train_once` of seed
    ``seeds[k]`` up to float rounding (its initialisation, data order, the minibatch permutation
    ``train_epoch`` draws and the augmentation, from its own generator in the loop's order; the
    same step budget and lr decay). ``curve``: validate the first network every
    ``train.report_every`` epochs into ``intermediate`` (and call ``report``), as the loop does; the
    other networks' curves are not validated (a trial keeps only its first repeat's). The record
    holds the accuracies in the order of ``seeds`` and the totals of all trainings."""
    from dc_plugins.matching.base import NonFiniteLossError
    from dc_plugins.stacked import train_stacked_steps

    device = torch.device(device)
    split, images, labels, augment = _trial_inputs(net, proxy, train, device)
    spec = net.spec
    generators = [make_generator(seed) for seed in seeds]
    # Fresh copies: ``net`` itself is left as it was (the loop leaves the last repeat's weights in it).
    nets = [_init(copy.deepcopy(net), g, device) for g in generators]
    total, _ = _budget(proxy, train, images.shape[0], split.num_classes)
    record = TrialRecord(arch=spec.arch, proxy=proxy.label, proxy_key=proxy.key, status="running",
                         device=device.type)
    start = time.perf_counter()

    def on_pass(epoch: int, steps: int, stacked) -> None:
        if curve and epoch % train.report_every == 0 and steps < total:
            tick = time.perf_counter()
            acc = accuracy(stacked.network(0), split.val.images, split.val.labels)
            record.eval_seconds += time.perf_counter() - tick
            record.intermediate.append([epoch, acc])
            if report is not None:
                report(epoch, acc)

    try:
        nets = train_stacked_steps(nets, images, labels, steps=total, generators=generators, lr=train.lr,
                                   momentum=train.momentum, weight_decay=train.weight_decay, batch=train.batch,
                                   augment=augment, decay_at=total // 2, shuffle_batch=True, on_pass=on_pass,
                                   progress=progress)
    except NonFiniteLossError as err:
        raise NonFiniteLossError(f"{err} (networks 0-{len(seeds) - 1}: the repeats of seeds {seeds}, trained "
                                 f"stacked)") from err
    tick = time.perf_counter()
    record.accuracies = [accuracy(n, split.val.images, split.val.labels) for n in nets]
    record.eval_seconds += time.perf_counter() - tick
    record.accuracy = record.accuracies[0]
    record.steps = total * len(nets)
    record.images_seen = _images_seen(total, images.shape[0], train.batch) * len(nets)
    record.seconds = time.perf_counter() - start
    record.status = "finished"
    return record


def evaluate_architecture(model: ConvNet, *, proxy: str, train: dict, records: str | None = None,
                          device: str = "auto", threads: int | None = None, progress: bool = False) -> float:
    """NNI trial function: ``model`` is the frozen ConvNet NNI instantiated from the space.

    Args:
        proxy: path of the proxy descriptor (``proxy.json``) written by the provider.
        train: :class:`~nas.config.TrainConfig` fields as a dict.
        records: folder for this proxy's trial records (``<arch>.json``); None = no record.
        device: ``auto``, ``cpu``, ``cuda``...
        threads: torch CPU threads for this trial (None: torch's default).
    """
    import nni

    cfg = TrainConfig(**train)
    handle = Proxy.load(proxy)
    arch = getattr(getattr(model, "spec", None), "arch", type(model).__name__)
    done, checkpoint = None, None
    if records is not None:
        done = read_trial(records, arch, handle.key, "partial")
        checkpoint = lambda rec: write_json(record_path(records, arch), rec.to_dict())  # noqa: E731
    try:
        with torch_threads(threads):
            record = train_architecture(model, handle, cfg, device=resolve_device(device),
                                        report=lambda epoch, acc: nni.report_intermediate_result(acc),
                                        progress=progress, done=done, checkpoint=checkpoint)
    except Exception as err:
        if records is not None:
            failed = TrialRecord(arch=arch, proxy=handle.label, proxy_key=handle.key, status="failed",
                                 error=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}")
            write_json(record_path(records, arch), failed.to_dict())
        raise
    if records is not None:
        write_json(record_path(records, arch), record.to_dict())
    nni.report_final_result(record.accuracy)
    return record.accuracy


def make_evaluator(proxy: Proxy | str, train: TrainConfig, *, records: str | Path | None = None,
                   device: str = "auto", threads: int | None = None, function=evaluate_architecture):
    """The NNI ``FunctionalEvaluator`` for one proxy (arguments: the descriptor path and plain dicts)."""
    from nni.nas.evaluator import FunctionalEvaluator

    path = proxy.path if isinstance(proxy, Proxy) else str(proxy)
    if not path:
        raise ValueError("the proxy has not been saved; pass a Proxy from ProxyProvider.get or a descriptor path")
    return FunctionalEvaluator(function, proxy=str(path), train=dataclasses.asdict(train),
                               records=str(records) if records is not None else None, device=device,
                               threads=threads)
