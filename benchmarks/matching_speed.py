"""Matching speed: seconds per outer iteration of DC, DSA, DM and MTT, at the papers' settings and
at the CPU budget, each as the loop (the default), with ``matching.vectorize`` (classes batched
with ``torch.func.vmap``; DC/DSA only) and with ``matching.autocast="bf16"`` (``torch.autocast``
mixed precision), all in the same run.

    PYTHONPATH=. python benchmarks/matching_speed.py                   # everything (hours on a CPU)
    PYTHONPATH=. python benchmarks/matching_speed.py --methods dm mtt --ipc 1 10 --budget cpu-quick
    PYTHONPATH=. python benchmarks/matching_speed.py --only 'dc-paper-ipc10-*' --iterations 1
    PYTHONPATH=. python benchmarks/matching_speed.py --quick --data generated   # seconds: a smoke run

Cases are named ``<method>-<budget>-ipc<I>-<variant>`` (``--only`` takes shell patterns of
them). Each runs in its own subprocess, so that its peak resident memory (``wait4``'s
``ru_maxrss``; on CUDA also ``torch.cuda.max_memory_allocated``) is its own. A case builds the
matcher with :func:`dc_plugins.condense.make_condenser` from the budget's preset (``paper``: the
ConvNet w128-d3, 256 real images per class in a batch, DC/DSA's outer/inner loops of
:func:`dc_plugins.config.dc_loops`, MTT's ``syn_steps``, ``batch_syn`` etc. of
``dc_plugins.config.PRESETS``; ``cpu-quick``: that preset's values), takes ``--warmup`` outer
iterations (default 1: first-call allocations, kernel choices, vmap's trace) and then times
``--iterations`` of them (default 3), each as :meth:`Matcher.run` takes it (inside
``Matcher.precision()``).

Every variant of a method/budget/ipc starts from the same seed, hence the same images, networks
and batches: the first image gradient of each (the one of the first image update) is compared
with the loop's, ``||g - g_loop|| / ||g_loop||`` (loop vs vectorize should agree to float
rounding, loop vs bf16 is reported, not asserted), and the first iteration's loss is recorded.
A variant is compared only when its group's loop case ran in the same run (mind ``--only``).

Data: ``--data auto`` (default) takes CIFAR-10-JPEG (``<root>/cifar10-jpeg``, 32x32x3) when
present, else MNIST-10k (``<root>/MNIST``, 28 px padded to 32), else stops; ``--data generated``
uses Gaussian tensors of CIFAR-10's shape (10 classes, 3x32x32), so it runs anywhere. One
subprocess draws ``--real-per-class`` images per class (default 256, the papers' real batch)
once and every case reads that same pool (the parent itself never imports torch: a child's
``ru_maxrss`` starts from the size of the process it was forked from). MTT's expert trajectories are **synthesised**: one expert, a random
walk of the paper's length (``expert_train_epochs`` + 1 snapshots) from a fresh network's
parameters; what an iteration costs depends on the shapes, not on the experts' values (or on how
many there are: one is sampled per iteration), so no expert is trained. ``zca`` follows the
preset for the data's dataset name (image folders and generated data resolve as the default
dataset, i.e. no ZCA); it costs nothing per iteration either way.

Writes ``<out>/matching_speed.json`` and ``<out>/matching_speed.md`` (machine, torch version and
thread count in both) after every case, replacing earlier files of the same name atomically;
``--quick`` writes to ``benchmarks/results/matching_speed/quick`` unless ``--out`` is given, so
a smoke run never replaces a real one.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: the parent process must not import torch
    import torch

    from dc_plugins.config import RunConfig
    from dc_plugins.data import ImageDataset
    from dc_plugins.matching import Matcher, TrajectoryMatcher

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, benchmarks/ is on sys.path but the checkout is not: put it first, so that the
# shared helpers and dc_plugins both come from this checkout.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.eval_speed import machine, matmul_gflops  # noqa: E402

NAME = "matching_speed"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / NAME
METHODS = ("dc", "dsa", "dm", "mtt")
VARIANTS = ("loop", "vectorize", "bf16")
BUDGETS = ("paper", "cpu-quick")
VECTORIZABLE = ("dc", "dsa")   # the methods with a per-class loop that matching.vectorize batches
DATA = ("auto", "cifar10-jpeg", "mnist", "generated")
DEFAULTS = {"net": "convnet-w128-d3", "image_size": 32, "real_per_class": 256, "batch_real": None,
            "ipc": [1, 10, 50], "budget": list(BUDGETS), "iterations": 3}
# --quick: a network and sizes small enough for a smoke run in seconds (not a measurement)
QUICK = {"net": "convnet-w8-d2", "image_size": 16, "real_per_class": 8, "batch_real": 8, "ipc": [1],
         "budget": ["cpu-quick"], "iterations": 1}


@dataclass(frozen=True)
class Case:
    method: str
    budget: str
    ipc: int
    variant: str

    @property
    def group(self) -> str:
        """The method/budget/ipc whose variants are compared with each other."""
        return f"{self.method}-{self.budget}-ipc{self.ipc}"

    @property
    def name(self) -> str:
        return f"{self.group}-{self.variant}"

    @classmethod
    def parse(cls, name: str) -> "Case":
        method, rest = name.split("-", 1)
        budget, ipc, variant = rest.rsplit("-", 2)
        return cls(method, budget, int(ipc.removeprefix("ipc")), variant)


# -- choosing the cases -----------------------------------------------------------------------


def check_choices(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    """``values`` lower-cased, in the order given, duplicates dropped; a ``ValueError`` naming
    the first unknown one and what is allowed."""
    out: list[str] = []
    for v in values:
        key = v.lower()
        if key not in allowed:
            raise ValueError(f"unknown {what} {v!r}; allowed: {', '.join(allowed)}")
        if key not in out:
            out.append(key)
    return out


def plan_cases(methods: list[str], budgets: list[str], ipcs: list[int], variants: list[str],
               only: list[str] | None) -> tuple[list[Case], list[str]]:
    """The cases to run, grouped (a group's variants in ``VARIANTS`` order, the loop first: the
    others are compared with it), and the names left out as not applicable."""
    cases, not_applicable = [], []
    for method in methods:
        for budget in budgets:
            for ipc in ipcs:
                for variant in (v for v in VARIANTS if v in variants):
                    case = Case(method, budget, ipc, variant)
                    if variant == "vectorize" and method not in VECTORIZABLE:
                        not_applicable.append(case.name)
                        continue
                    cases.append(case)
    if only:
        cases = [c for c in cases if any(fnmatch.fnmatch(c.name, pat) for pat in only)]
    return cases, not_applicable


# -- the real pool (made once, in a subprocess of its own) ------------------------------------


def pick_data(choice: str, root: Path) -> str:
    """``auto``: the first real dataset present under ``root``; else what was asked for, if there."""
    present = {"cifar10-jpeg": (root / "cifar10-jpeg" / "train").is_dir(),
               "mnist": (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()}
    if choice == "auto":
        for name, ok in present.items():
            if ok:
                return name
        raise SystemExit(f"--data auto: no real data under {root} (looked for cifar10-jpeg/train and "
                         f"MNIST/raw/train-images-idx3-ubyte); pass --root, or --data generated")
    if choice in present and not present[choice]:
        raise SystemExit(f"--data {choice}: not found under {root}; pass --root, or --data generated")
    return choice


def make_pool(data: str, root: Path, per_class: int, image_size: int, seed: int) -> tuple[ImageDataset, str]:
    """``per_class`` images of each class of ``data`` (normalised, ``image_size`` px), on the CPU,
    and a sentence saying what they are."""
    import torch

    from dc_plugins.data import (DatasetInfo, ImageDataset, convert_images, load_dataset, make_generator,
                                 subsample_per_class)

    if data == "generated":
        g = make_generator(seed)
        classes, channels = 10, 3
        x = torch.randn(classes * per_class, channels, image_size, image_size, generator=g)
        y = torch.arange(classes).repeat_interleave(per_class)
        info = DatasetInfo("generated", channels, image_size, classes, (0.0,) * channels, (1.0,) * channels,
                           flip=True)
        return ImageDataset(x, y, info), (f"generated: Gaussian tensors, {classes} classes x {per_class}, "
                                          f"{channels}x{image_size}x{image_size}")
    if data == "cifar10-jpeg":
        train = load_dataset("imagefolder", root / "cifar10-jpeg", image_size=32, progress=False)
        what = "CIFAR-10-JPEG (lossy JPEG re-encoding of CIFAR-10's 50,000 training images)"
    else:
        train = load_dataset("mnist", root, image_size=32)
        what = "MNIST-10k (8,000 'train' images of the official MNIST test set, 28 px padded to 32)"
    pool = subsample_per_class(train, per_class, make_generator(seed))
    if image_size != pool.image_size:
        pool = ImageDataset(convert_images(pool.images, image_size=image_size), pool.labels,
                            dataclasses.replace(pool.info, image_size=image_size))
    return pool, f"{what}: {per_class} random images per class, {pool.channels}x{image_size}x{image_size}"


def save_pool(pool: ImageDataset, path: Path) -> None:
    import torch

    info = dataclasses.asdict(pool.info)
    torch.save({"images": pool.images.contiguous(), "labels": pool.labels, "info": json.dumps(info)}, path)


def load_pool(path: Path, device: torch.device) -> ImageDataset:
    import torch

    from dc_plugins.data import DatasetInfo, ImageDataset

    d = torch.load(path, weights_only=True)
    info = json.loads(d["info"])
    info = DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in info.items()})
    return ImageDataset(d["images"].to(device), d["labels"].to(device), info)


# -- one case (subprocess side) ---------------------------------------------------------------


def proc_status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` size (``VmRSS``: resident now) in MB; None off Linux. The peak is
    read by the parent from ``wait4`` instead: ``VmHWM`` misses peaks freed before it is read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def build_matcher(train: ImageDataset, case: Case, args: argparse.Namespace) -> tuple[Matcher, RunConfig]:
    """The case's matcher, as ``dc-condense`` would build it, plus the resolved run config."""
    from dc_plugins.condense import _preset_dataset, make_condenser
    from dc_plugins.config import MatchingConfig, RunConfig, TrajectoryConfig, resolve

    matching = MatchingConfig(batch_real=args.batch_real, vectorize=case.variant == "vectorize",
                              autocast="bf16" if case.variant == "bf16" else None)
    # one expert is enough to sample from; its cost per iteration is the same as with 100
    trajectory = TrajectoryConfig(num_experts=1)
    matcher = make_condenser(train, case.method, case.ipc, net=args.net, matching=matching, preset=case.budget,
                             seed=args.seed, trajectory=trajectory, progress=False)
    run = resolve(dataclasses.replace(RunConfig(method=case.method, ipc=case.ipc, preset=case.budget,
                                                dataset=_preset_dataset(train)), matching=matching,
                                      trajectory=trajectory))
    return matcher, run


def synthesise_experts(matcher: TrajectoryMatcher, seed: int) -> None:
    """One expert trajectory of the configured length: a fresh network's parameters, then a
    random walk (timing needs the shapes only). Stored in an in-memory buffer of the matcher's
    own metadata, so the matcher's checks pass as for a trained one."""
    import torch

    from dc_plugins.data import make_generator
    from dc_plugins.models import make_convnet
    from dc_plugins.trajectories import ExpertTrajectories

    t = matcher.trajectory
    g = make_generator(seed + 1)
    start = torch.nn.utils.parameters_to_vector(make_convnet(matcher.spec, generator=g).parameters()).detach()
    steps = 1e-3 * torch.randn(t.expert_train_epochs, start.numel(), generator=g)
    params = torch.cat([start[None], start + steps.cumsum(0)])
    experts = ExpertTrajectories(matcher.expert_metadata(), 1, None)
    experts._save(0, params)  # the in-memory store build() fills; no public way to add a trajectory
    matcher._check_experts(experts)
    matcher.experts = experts


def settings_of(matcher: Matcher, run: RunConfig, case: Case) -> dict:
    """What the case's iteration does, from the matcher and its resolved config."""
    s = {"net": str(matcher.spec), "images": list(matcher.images.shape), "init": matcher.config.init,
         "lr_img": matcher.config.lr_img, "preset_iterations": run.iterations}
    if case.method in ("dc", "dsa"):
        s.update(outer_loop=matcher.outer_loop, inner_loop=matcher.inner_loop,
                 loops_source=matcher.loops()["source"], batch_real=matcher.batch_real,
                 batch_train=matcher.config.batch_train)
    elif case.method == "dm":
        s.update(batch_real=matcher.batch_real)
    else:
        t = matcher.trajectory
        s.update(syn_steps=t.syn_steps, expert_epochs=t.expert_epochs, max_start_epoch=t.max_start_epoch,
                 batch_syn=matcher.batch_syn, gradient=t.gradient, zca=bool(t.zca),
                 expert_train_epochs=t.expert_train_epochs, experts="1 synthesised (random walk)",
                 preset_num_experts=resolve_num_experts(case))
    return s


def resolve_num_experts(case: Case) -> int:
    from dc_plugins.config import RunConfig, resolve

    return resolve(RunConfig(method=case.method, ipc=case.ipc, preset=case.budget)).trajectory.num_experts


def capture_first_gradient(matcher: Matcher) -> dict:
    """Wrap the image optimiser's ``step`` to keep a copy of ``images.grad`` at its first call:
    the gradient of the first image update, the same computation in every variant."""
    seen: dict = {}
    step = matcher.optimizer.step

    def wrapped(*a, **k):
        if "grad" not in seen:
            seen["grad"] = matcher.images.grad.detach().float().cpu().clone()
        return step(*a, **k)

    matcher.optimizer.step = wrapped
    return seen


def run_case(args: argparse.Namespace, case: Case) -> dict:
    """Warm-up, then ``args.iterations`` timed outer iterations of ``case``, in this process."""
    import torch

    from dc_plugins.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    train = load_pool(Path(args.pool), device)
    matcher, run = build_matcher(train, case, args)
    if case.method == "mtt":
        synthesise_experts(matcher, args.seed)
    first = capture_first_gradient(matcher)
    rss_setup = proc_status_mb("VmRSS")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def iteration() -> tuple[float, float, float]:
        t, c = time.perf_counter(), time.process_time()
        with matcher.precision():  # as Matcher.run takes each step
            loss = matcher.step()
        if cuda:
            torch.cuda.synchronize()
        return loss, time.perf_counter() - t, time.process_time() - c

    warm = [iteration() for _ in range(args.warmup)]
    timed = [iteration() for _ in range(args.iterations)]
    seconds = [s for _, s, _ in timed]
    mean = sum(seconds) / len(seconds)
    out = {"case": case.name, "group": case.group, "method": case.method, "budget": case.budget, "ipc": case.ipc,
           "variant": case.variant, "vectorize": matcher.config.vectorize, "autocast": matcher.config.autocast,
           "settings": settings_of(matcher, run, case), "warmup": args.warmup, "iterations": args.iterations,
           "seconds_per_iteration": mean, "seconds_min": min(seconds), "seconds": seconds,
           "cpu_seconds_per_iteration": sum(c for _, _, c in timed) / len(timed),
           "warmup_seconds": [s for _, s, _ in warm],
           "estimated_run_seconds": mean * run.iterations,
           "first_loss": warm[0][0], "losses": [x for x, _, _ in warm + timed],
           "first_grad_norm": float(first["grad"].norm()),
           "rss_setup_mb": rss_setup, "threads": torch.get_num_threads(),
           "device": str(device), "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None,
           "load_average": os.getloadavg()}
    torch.save({"grad": first["grad"], "loss": out["first_loss"]}, args.grad_out)
    if args.compare_grad and Path(args.compare_grad).is_file():
        out.update(compare_first(first["grad"], out["first_loss"], Path(args.compare_grad)))
    return out


def compare_first(grad: torch.Tensor, loss: float, loop_path: Path) -> dict:
    """Relative differences of this case's first image gradient and first loss from the loop's
    (saved by the loop's case: the same seed, hence the same images, network and batches)."""
    import torch

    loop = torch.load(loop_path, weights_only=True)
    g0 = loop["grad"]
    return {"grad_rel_diff_vs_loop": float((grad - g0).norm() / g0.norm()),
            "first_loss_rel_diff_vs_loop": abs(loss - loop["loss"]) / max(abs(loop["loss"]), 1e-30)}


def prepare(args: argparse.Namespace) -> dict:
    """The subprocess that does what needs torch before the cases: check that the pool fits the
    cases, make and save it, and describe the machine."""
    import torch

    from dc_plugins.config import PRESETS, RunConfig, resolve
    from dc_plugins.device import resolve_device

    for budget in args.budget:
        if budget not in PRESETS:
            raise ValueError(f"unknown budget {budget!r}; dc_plugins.config.PRESETS has {', '.join(PRESETS)}")
        for method in args.methods:
            if method in ("dc", "dsa", "dm"):
                batch = args.batch_real or PRESETS[budget][method]["matching.batch_real"]
                if args.real_per_class < batch:
                    raise ValueError(f"--real-per-class {args.real_per_class} is below {method}'s real batch {batch} "
                                     f"({budget}): raise it or pass --batch-real")
            for ipc in args.ipc:
                real_init = resolve(RunConfig(method=method, ipc=ipc, preset=budget)).matching.init == "real"
                if real_init and args.real_per_class < ipc:
                    raise ValueError(f"--real-per-class {args.real_per_class} is below ipc {ipc}, which {method} "
                                     f"({budget}) initialises from real images")
    if args.threads:
        torch.set_num_threads(args.threads)  # so that machine() records the cases' count
    device = str(resolve_device(args.device))
    pool, data_text = make_pool(args.data, Path(args.root), args.real_per_class, args.image_size, args.seed)
    save_pool(pool, Path(args.pool))
    gflops = matmul_gflops(device, n=512, reps=3) if args.quick else matmul_gflops(device)
    return {"machine": machine(), "device": device, "threads": torch.get_num_threads(), "data": data_text,
            "matmul_gflops": gflops}


# -- the parent: imports no torch, so that the cases' peak memory is their own ---------------------
# (a child's ru_maxrss starts at the resident size of the process it was forked from: a parent
# holding torch and the dataset would raise every case's figure to its own)


def child_args(args: argparse.Namespace, tmp: Path) -> list[str]:
    """The options every subprocess gets: this run's values, after --quick set its own."""
    a = ["--device", args.device, "--net", args.net, "--seed", str(args.seed), "--threads", str(args.threads),
         "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--data", args.data,
         "--root", args.root, "--real-per-class", str(args.real_per_class), "--image-size", str(args.image_size),
         "--methods", *args.methods, "--budget", *args.budget, "--ipc", *map(str, args.ipc),
         "--pool", str(tmp / "pool.pt")]
    if args.batch_real:
        a += ["--batch-real", str(args.batch_real)]
    if args.quick:
        a += ["--quick"]
    return a


def run_child(cmd: list[str], err_path: Path) -> tuple[int, dict | None, float, list[str]]:
    """Run ``cmd``; (exit code, its last stdout line as JSON, its peak RSS in MB, its stderr's tail)."""
    with open(err_path, "wb") as err:
        # stderr to a file: reading only stdout cannot then block on a full stderr pipe
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env={**os.environ, "PYTHONPATH": str(ROOT)})
        stdout = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    tail = err_path.read_text(errors="replace").strip().splitlines()[-5:]
    lines = stdout.decode().strip().splitlines()
    return code, json.loads(lines[-1]) if code == 0 and lines else None, usage.ru_maxrss / 1024, tail


def spawn(args: argparse.Namespace, case: Case, tmp: Path) -> dict:
    """Run ``case`` in a subprocess; its result with its peak resident memory, or the error."""
    cmd = [sys.executable, __file__, "--case", case.name, *child_args(args, tmp),
           "--grad-out", str(tmp / f"{case.name}.grad.pt")]
    if case.variant != "loop":
        cmd += ["--compare-grad", str(tmp / f"{Case(case.method, case.budget, case.ipc, 'loop').name}.grad.pt")]
    code, result, peak, tail = run_child(cmd, tmp / f"{case.name}.err")
    if result is None:
        return {"case": case.name, "group": case.group, "method": case.method, "budget": case.budget,
                "ipc": case.ipc, "variant": case.variant, "error": f"exit {code}", "stderr_tail": tail,
                "command": " ".join(cmd)}
    result["peak_rss_mb"] = peak
    return result


def add_speedup(case: dict, loop: dict | None) -> None:
    if loop is not None and "error" not in loop and "error" not in case:
        case["speedup_vs_loop"] = loop["seconds_per_iteration"] / case["seconds_per_iteration"]


def settings_text(s: dict, method: str) -> str:
    if method in ("dc", "dsa"):
        return f"outer {s['outer_loop']} x inner {s['inner_loop']}, real batch {s['batch_real']}"
    if method == "dm":
        return f"real batch {s['batch_real']}"
    return (f"N {s['syn_steps']}, M {s['expert_epochs']}, start < {s['max_start_epoch']}, "
            f"batch_syn {s['batch_syn']}" + (", ZCA" if s["zca"] else ""))


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Matching speed: loop vs vectorize vs bf16 ({result['date']})", "",
             f"Machine: {m['cpu']} ({m['cpu_count']} CPUs), torch {m['torch']}, {result['threads']} threads"
             + (f", GPU {m['cuda']}" if m["cuda"] else "") + f"; device {result['device']}; float32 matmul "
             f"{result['matmul_gflops']:.0f} GFLOP/s" + (" (quick: a small product)" if result["quick"] else "")
             + ".", "",
             f"Command: `{result['command']}`", "",
             f"Data: {result['data']}. Network {result['net']}. {result['warmup']} warm-up and "
             f"{result['iterations']} timed outer iterations per case, each case in its own process. "
             "MTT's expert trajectories are synthesised (one random-walk expert of the preset's length).", ""]
    if result["quick"]:
        lines += ["**Quick mode: a smoke run on a tiny network, not a measurement.**", ""]
    lines += [("| case | settings | s / it (min) | CPU s / it | vs loop | peak RSS MB (setup) | CUDA peak MB | "
               "first loss | grad rel. diff vs loop | full run est. h |"),
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["cases"]:
        if "error" in c:
            lines.append(f"| {c['case']} | failed: {c['error']}; {' / '.join(c['stderr_tail'][-1:])} "
                         "| | | | | | | | |")
            continue
        speed = f"{c['speedup_vs_loop']:.2f}x" if "speedup_vs_loop" in c else "—"
        diff = f"{c['grad_rel_diff_vs_loop']:.1e}" if "grad_rel_diff_vs_loop" in c else "—"
        cuda = f"{c['cuda_peak_mb']:.0f}" if c["cuda_peak_mb"] is not None else "—"
        setup = f"{c['rss_setup_mb']:.0f}" if c["rss_setup_mb"] is not None else "?"
        lines.append(
            f"| {c['case']} | {settings_text(c['settings'], c['method'])} | {c['seconds_per_iteration']:.3g} "
            f"({c['seconds_min']:.3g}) | {c['cpu_seconds_per_iteration']:.3g} | {speed} | {c['peak_rss_mb']:.0f} "
            f"({setup}) | {cuda} | {c['first_loss']:.4g} | {diff} | {c['estimated_run_seconds'] / 3600:.2g} |")
    lines += ["", ("s / it: mean (min) wall seconds of the timed outer iterations; CPU s: process CPU time (above "
                   "the wall time when several threads work). vs loop: the loop's s / it over this one's. Peak RSS: "
                   "the case's process (wait4 ru_maxrss), its resident memory once data and matcher were built in "
                   "brackets. Grad rel. diff: ||g - g_loop|| / ||g_loop|| of the first image update's gradient "
                   "(same seed, images, network and batches; vectorize should agree to float rounding, bf16 is "
                   "reported). Full run est.: s / it x the preset's iterations, an extrapolation.")]
    if result["not_applicable"]:
        lines += ["", f"Not applicable (vectorize batches DC/DSA's per-class loop): {', '.join(result['not_applicable'])}."]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """``dc_plugins.io.atomic_path``'s write, here because importing dc_plugins imports torch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"of {', '.join(METHODS)}")
    p.add_argument("--ipc", nargs="+", type=int, default=None, help="default 1 10 50")
    p.add_argument("--budget", nargs="+", default=None, help=f"presets, of {', '.join(BUDGETS)} (default both)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    p.add_argument("--only", nargs="+", default=None, metavar="PATTERN",
                   help="run only cases matching these shell patterns, e.g. 'dc-paper-ipc10-*' '*-bf16'")
    p.add_argument("--iterations", type=int, default=None, help="timed outer iterations per case (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed outer iterations before them (>= 1)")
    p.add_argument("--data", default="auto", help=f"of {', '.join(DATA)}")
    p.add_argument("--root", default=str(ROOT.parent / "shared" / "data"), help="folder of the real data")
    p.add_argument("--real-per-class", type=int, default=None, help="real images per class in the pool (default 256)")
    p.add_argument("--batch-real", type=int, default=None, help="override the budget's real batch (DC/DSA/DM)")
    p.add_argument("--image-size", type=int, default=None, help="default 32")
    p.add_argument("--net", default=None, help="default convnet-w128-d3 (the papers')")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help=f"default {DEFAULT_OUT.relative_to(ROOT)} (--quick: .../quick)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run in seconds; options not given take " + ", ".join(f"{k} {v}" for k, v in QUICK.items()))
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pool", help=argparse.SUPPRESS)
    p.add_argument("--grad-out", help=argparse.SUPPRESS)
    p.add_argument("--compare-grad", help=argparse.SUPPRESS)
    return p, p.parse_args(argv)


def validate(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Choices and ranges; what needs the presets is checked by :func:`prepare`."""
    try:
        args.methods = check_choices(args.methods, METHODS, "method")
        args.budget = check_choices(args.budget, BUDGETS, "budget")
        args.variants = check_choices(args.variants, VARIANTS, "variant")
        args.data = check_choices([args.data], DATA, "data")[0]
    except ValueError as err:
        p.error(str(err))
    for name in ("iterations", "warmup", "real_per_class", "image_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if any(i < 1 for i in args.ipc):
        p.error(f"--ipc values must be >= 1, got {args.ipc}")
    if args.threads < 0:
        p.error(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    if args.batch_real is not None and args.batch_real < 1:
        p.error(f"--batch-real must be >= 1, got {args.batch_real}")


def main(argv: list[str] | None = None) -> int:
    p, args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args, Case.parse(args.case))))
        return 0
    if args.prepare:
        try:
            print(json.dumps(prepare(args)))
        except ValueError as err:
            p.error(str(err))
        return 0
    pool_given = args.real_per_class is not None
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:  # given options win over --quick's
            setattr(args, name, value)
    if args.quick and not pool_given:
        args.real_per_class = max(args.real_per_class, *args.ipc)  # a real initialisation at any --ipc given
    validate(p, args)
    out = Path(args.out) if args.out else DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT
    cases, not_applicable = plan_cases(args.methods, args.budget, args.ipc, args.variants, args.only)
    if not cases:
        every = plan_cases(args.methods, args.budget, args.ipc, list(VARIANTS), None)[0]
        p.error(f"no case to run: --only {' '.join(args.only or [])} with --variants {' '.join(args.variants)} "
                f"matches none of {', '.join(c.name for c in every)}")
    args.data = pick_data(args.data, Path(args.root))
    tmp = Path(tempfile.mkdtemp(prefix="matching_speed."))
    try:
        code, prep, _, tail = run_child([sys.executable, __file__, "--prepare", *child_args(args, tmp)],
                                        tmp / "prepare.err")
        if prep is None:
            raise SystemExit(f"preparing the data failed (exit {code}):\n" + "\n".join(tail))
        result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv),
                  **prep, "net": args.net, "real_per_class": args.real_per_class, "image_size": args.image_size,
                  "quick": args.quick, "warmup": args.warmup, "iterations": args.iterations, "seed": args.seed,
                  "experts": "MTT: 1 synthesised expert (random walk), no training",
                  "not_applicable": not_applicable, "cases": []}
        loops: dict[str, dict] = {}
        for case in cases:
            t = time.perf_counter()
            r = spawn(args, case, tmp)
            r["wall_seconds"] = time.perf_counter() - t
            if case.variant == "loop":
                loops[case.group] = r
            add_speedup(r, loops.get(case.group))
            result["cases"].append(r)
            print(f"{case.name}: " + (f"FAILED ({r['error']}): {' / '.join(r['stderr_tail'])}" if "error" in r else
                                      f"{r['seconds_per_iteration']:.3g} s/it, peak RSS {r['peak_rss_mb']:.0f} MB"
                                      + (f", grad rel. diff vs loop {r['grad_rel_diff_vs_loop']:.1e}"
                                         if "grad_rel_diff_vs_loop" in r else "")), flush=True)
            # after every case, so that an interrupted run keeps the cases it finished
            write_atomic(out / f"{NAME}.json", json.dumps(result, indent=2) + "\n")
            write_atomic(out / f"{NAME}.md", markdown(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out}/{NAME}.json and {NAME}.md")
    return 1 if any("error" in c for c in result["cases"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
