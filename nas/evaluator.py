"""The trial: train the sampled architecture on a proxy, validate on held-out real images.

:func:`evaluate_architecture` is the function of an NNI ``FunctionalEvaluator``
(:func:`make_evaluator`). Its arguments are small (the proxy descriptor's path and plain
dicts), as NNI pickles them for every trial. It reports the validation accuracy every
``report_every`` epochs (``nni.report_intermediate_result``) and at the end
(``nni.report_final_result``), and writes a trial record (JSON, atomic) so that an interrupted
run can skip finished architectures. A failing trial writes a ``failed`` record and re-raises,
so that NNI marks it failed; the experiment goes on with the next architecture. With
``train.repeats`` > 1 the record is written after every training (status ``partial``), and a
trial that finds a partial record trains only the seeds it lacks: an interrupted trial, or a
rerun with more repeats, keeps the trainings already done.

Training is the evaluation protocol's SGD (momentum, weight decay, lr x0.1 at half the budget)
with the engine's ``train_epoch``; the network is re-initialised from ``train.seed`` so that an
architecture starts from the same weights on every proxy.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from pathlib import Path

import torch

from dc_plugins.data import DatasetInfo, make_generator
from dc_plugins.device import torch_threads
from dc_plugins.evaluation import evaluation_augment
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

    ``done``: a record of this architecture, proxy and training whose ``accuracies`` hold the
    first trainings (seeds ``train.seed``, ``train.seed + 1``, ...); only the rest are trained.
    Each training is independent of the others, so the result is the one a single run gives.
    ``checkpoint(record)`` is called with a ``partial`` record after every training but the last.
    """
    record = None
    if done is not None and done.accuracies:
        if len(done.accuracies) > train.repeats:
            raise ValueError(f"the earlier record of {done.arch} has {len(done.accuracies)} trainings, more than "
                             f"train.repeats={train.repeats}")
        record = dataclasses.replace(done, accuracies=list(done.accuracies), intermediate=list(done.intermediate),
                                     error=None)
    for i in range(len(record.accuracies) if record else 0, train.repeats):
        run = _train_once(net, proxy, dataclasses.replace(train, seed=train.seed + i), device=device,
                          report=report if i == 0 else None, progress=progress)
        if record is None:
            record = run
        else:
            record.seconds += run.seconds
            record.eval_seconds += run.eval_seconds
            record.steps += run.steps
            record.images_seen += run.images_seen
        record.accuracies.append(run.accuracy)
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


def _train_once(net: ConvNet, proxy: Proxy, train: TrainConfig, *, device: torch.device | str,
                report, progress: bool) -> TrialRecord:
    from tqdm.auto import tqdm

    device = torch.device(device)
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
    augment = trial_augment(proxy, train, split.train.info)

    generator = make_generator(train.seed)
    reset_parameters(net, generator)
    net.to(device)
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
