"""The engine table's reference row: ConvNets trained on the whole training split.

    PYTHONPATH=. python benchmarks/whole_set.py --dataset imagefolder --root ../shared/data/cifar10-jpeg \\
        --epochs 10 --networks 1 --out benchmarks/results/engine_cifar10_jpeg/cpu-quick/whole-set.json

The protocol's optimiser (SGD, momentum 0.9, weight decay 5e-4, lr 0.01, x0.1 at half the epochs,
batch 256) and network (``--net``, default the ConvNet w128-d3 every method is evaluated with),
the learner's usual crop (4 px padding) + horizontal flip on natural images (crop only on
digits), the test split for the reported accuracy (nothing is chosen on it).

Long runs outlive a session: after every epoch the network, optimiser and generator are
checkpointed under ``--checkpoint-dir`` (``runs/``, not committed) and each finished network's
accuracy is written to ``--out`` (small, committed). Running the same command again skips the
finished networks, continues an interrupted one from its checkpoint when that exists, and refuses
an ``--out`` file of another configuration, naming the fields that differ.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dc_plugins.augment import CropFlip
from dc_plugins.config import EvalConfig
from dc_plugins.data import load_dataset
from dc_plugins.device import machine_info, resolve_device, torch_threads
from dc_plugins.evaluation import flips_allowed, network_generators
from dc_plugins.fingerprint import check_fingerprint, config_hash, data_fingerprint
from dc_plugins.io import atomic_path, load_torch_file, write_json
from dc_plugins.models import ConvNetSpec, make_convnet
from dc_plugins.training import accuracy, train_epoch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="imagefolder")
    p.add_argument("--root", default="../shared/data/cifar10-jpeg")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--net", default="convnet")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--networks", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--augment", choices=("crop-flip", "none"), default="crop-flip")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="results JSON (committed; resumed)")
    p.add_argument("--checkpoint-dir", default="runs/whole_set", help="per-epoch checkpoints (not committed)")
    args = p.parse_args(argv)
    for name in ("epochs", "networks", "batch"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    try:
        with torch_threads(args.threads):
            return run(args, device)
    except (ValueError, FileNotFoundError) as err:  # another configuration, missing or corrupt files
        raise SystemExit(f"whole_set: {err}") from None


def run(args: argparse.Namespace, device: torch.device) -> int:
    train = load_dataset(args.dataset, args.root, True, image_size=args.image_size, device=device)
    test = load_dataset(args.dataset, args.root, False, image_size=args.image_size, device=device)
    spec = ConvNetSpec.parse(args.net).with_data(train.channels, train.num_classes, train.image_size)
    fingerprint = {"dataset": args.dataset, "root": Path(args.root).name, "image_size": train.image_size,
                   "net": str(spec), "epochs": args.epochs, "seed": args.seed, "batch": args.batch,
                   "lr": args.lr, "augment": args.augment,
                   "data": data_fingerprint(train.labels, test.labels), "train_images": int(train.images.shape[0])}
    out = Path(args.out)
    result = {"what": "ConvNets trained on the whole training split (engine table reference)",
              "fingerprint": fingerprint, "config_hash": config_hash(fingerprint), "accuracies": [],
              "seconds": [], "network_seeds": "dc_plugins.evaluation.network_generators(seed, n)"}
    if out.exists():
        stored = json.loads(out.read_text())
        check_fingerprint(stored.get("fingerprint"), fingerprint, str(out),
                          "delete it or pass another --out to start over")
        result["accuracies"], result["seconds"] = list(stored["accuracies"]), list(stored["seconds"])
    cfg = EvalConfig(lr=args.lr, batch=args.batch)
    augment = CropFlip(flip=flips_allowed(train.info)) if args.augment == "crop-flip" else None
    generators = network_generators(args.seed, args.networks)
    ckpt_dir = Path(args.checkpoint_dir) / result["config_hash"][:12]
    for k in range(len(result["accuracies"]), args.networks):
        acc, seconds = train_one(k, spec, train, test, cfg, generators[k], augment, args.epochs, device,
                                 ckpt_dir / f"net{k}.pt", fingerprint)
        result["accuracies"].append(acc)
        result["seconds"].append(seconds)
        accs = torch.tensor(result["accuracies"], dtype=torch.float64)
        result.update(accuracy_mean=float(accs.mean()), accuracy_std=float(accs.std(unbiased=False)),
                      threads=torch.get_num_threads(), torch=torch.__version__, device=str(device),
                      machine=machine_info())
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, result)
        print(f"network {k}: {100 * acc:.2f} % ({seconds:.0f} s)", flush=True)
    accs = result["accuracies"]
    mean = sum(accs) / len(accs)
    print(f"whole set, {args.epochs} epochs, {len(accs)} network(s): {100 * mean:.2f} %  -> {out}")
    return 0


def train_one(k: int, spec: ConvNetSpec, train, test, cfg: EvalConfig, generator: torch.Generator, augment,
              epochs: int, device: torch.device, checkpoint: Path, fingerprint: dict) -> tuple[float, float]:
    from tqdm.auto import tqdm

    net = make_convnet(spec, generator=generator, device=device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    epoch, seconds = 0, 0.0
    if checkpoint.exists():
        state = load_torch_file(checkpoint, "whole-set checkpoint")
        check_fingerprint(state.get("fingerprint"), fingerprint, str(checkpoint), "delete it to start over")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        epoch, seconds = int(state["epoch"]), float(state["seconds"])
    bar = tqdm(total=epochs, initial=epoch, desc=f"whole set, network {k}", unit="ep", dynamic_ncols=True)
    while epoch < epochs:
        for group in opt.param_groups:  # the protocol's schedule: x0.1 once half the epochs are done
            group["lr"] = cfg.lr * (0.1 if epoch >= epochs // 2 else 1.0)
        start = time.perf_counter()
        net.train()
        train_epoch(net, train.images, train.labels, opt, batch=cfg.batch, generator=generator, augment=augment)
        seconds += time.perf_counter() - start
        epoch += 1
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(checkpoint) as tmp:
            torch.save({"net": net.state_dict(), "optimizer": opt.state_dict(), "generator": generator.get_state(),
                        "epoch": epoch, "seconds": seconds, "fingerprint": fingerprint}, tmp)
        bar.update(1)
    bar.close()
    acc = accuracy(net, test.images, test.labels)
    checkpoint.unlink(missing_ok=True)
    return acc, seconds


if __name__ == "__main__":
    raise SystemExit(main())
