"""Peak memory and time of one MTT distillation iteration, exact constant-memory vs unrolled.

Each (gradient, N) runs in its own subprocess, which reports its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``; on CUDA also ``torch.cuda.max_memory_allocated``),
its RSS before the iteration (data, network, images loaded) and the seconds of the iteration
(after a 2-step warm-up iteration, whose peak is below the timed one's).
Setup as in the issue: MNIST-10k (``load_dataset('mnist', root)``, 28 px padded to 32 in the
ConvNet), ipc 10 (100 real-initialised images), ConvNet w128-d3-instance, the whole set as the
synthetic minibatch (MTT's default batch_syn), DSA on. The expert's start and target are a
fresh network and a perturbation of it: what one iteration costs does not depend on their
values. The unrolled runs go up in N and stop once the next one would pass ``--max-rss-gb``
(extrapolated linearly from the last two; reported as skipped, with the extrapolation).

    PYTHONPATH=. flock /work/wt/cpu.lock python benchmarks/mtt_memory.py --root ../shared/data

writes ``benchmarks/results/mtt_memory/results.json`` and ``table.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "mtt_memory"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(args) -> dict:
    import torch

    from dc_plugins.augment import DSAugment
    from dc_plugins.data import ClassIndex, load_dataset, make_generator
    from dc_plugins.matching.base import initial_images
    from dc_plugins.matching.trajectory import GRADIENTS, Student, draw_plan
    from dc_plugins.models import ConvNetSpec, make_convnet

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    train = load_dataset("mnist", args.root, True, device=device)
    index = ClassIndex.from_dataset(train)
    g = make_generator(0)
    spec = ConvNetSpec.parse(args.net).with_data(train.channels, train.num_classes, train.image_size)
    net = make_convnet(spec, generator=g, device=device)
    student = Student(net)
    start = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    target = start + 0.01 * torch.randn(start.shape, generator=g).to(device)
    images = initial_images(index, args.ipc, "real", g).requires_grad_(True)
    labels = torch.arange(index.num_classes, device=device).repeat_interleave(args.ipc)
    lr = torch.tensor(0.01, device=device, requires_grad=True)
    augment = DSAugment(flip=False)
    batch = args.batch_syn or images.shape[0]
    # warm-up (first-call allocations and kernel choices), 2 steps: below the timed run's peak
    GRADIENTS[args.gradient](student, start, target, images, labels, lr, draw_plan(images.shape[0], 2, batch, g,
                                                                                   augment), augment)
    plan = draw_plan(images.shape[0], args.steps, batch, g, augment)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    loss, d_images, d_lr = GRADIENTS[args.gradient](student, start, target, images, labels, lr, plan, augment)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    out = {"gradient": args.gradient, "steps": args.steps, "seconds": seconds, "cpu_seconds": cpu_seconds,
           "loss": float(loss),
           "grad_norm": float(d_images.norm()), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_before_mb": rss_before, "parameters": student.size, "images": images.shape[0],
           "threads": torch.get_num_threads(), "load_average": os.getloadavg()}
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_child(args, gradient: str, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--gradient", gradient, "--steps", str(steps), "--root", args.root,
           "--ipc", str(args.ipc), "--net", args.net, "--device", args.device, "--batch-syn", str(args.batch_syn),
           "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        return {"gradient": gradient, "steps": steps, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gradient", default="exact")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--net", default="convnet-w128-d3-instance-relu-avg")
    p.add_argument("--batch-syn", type=int, default=0, help="0: the whole set (MTT's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--n", type=int, nargs="+", default=[10, 20, 40, 80])
    p.add_argument("--max-rss-gb", type=float, default=18.0)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    results, skipped = [], []
    start = time.perf_counter()
    for gradient in ("exact", "unrolled"):
        done: list[dict] = []
        for n in sorted(args.n):
            if gradient == "unrolled" and len(done) >= 2:
                a, b = done[-2], done[-1]
                slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["steps"] - a["steps"])
                predicted = b["peak_rss_mb"] + slope * (n - b["steps"])
                if predicted > args.max_rss_gb * 1024:
                    skipped.append({"gradient": gradient, "steps": n, "predicted_peak_rss_mb": predicted,
                                    "reason": f"extrapolated peak RSS {predicted / 1024:.1f} GB > {args.max_rss_gb} GB"})
                    print(f"{gradient} N={n}: skipped ({skipped[-1]['reason']})", flush=True)
                    continue
            r = run_child(args, gradient, n)
            print(json.dumps(r), flush=True)
            results.append(r)
            if "error" not in r:
                done.append(r)
    from dc_plugins.device import machine_info  # here, not at import: the parent stays torch-free
    from dc_plugins.io import atomic_path, write_json

    info = {"command": " ".join(sys.argv), "data": "MNIST-10k (shared/data: 8,000 train images of the MNIST test set)",
            "setup": {"ipc": args.ipc, "net": args.net, "batch_syn": args.batch_syn or "whole set", "dsa": True,
                      "device": args.device}, "machine": machine_info(), "wall_seconds": time.perf_counter() - start,
            "results": results, "skipped": skipped}
    out = Path(args.out)
    write_json(out / "results.json", info)  # atomic: an interrupted run leaves the old file whole
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(table(info))
    print(table(info))
    return 0


def table(info: dict) -> str:
    rows = {(r["gradient"], r["steps"]): r for r in info["results"] if "error" not in r}
    ns = sorted({r["steps"] for r in info["results"]} | {s["steps"] for s in info["skipped"]})
    cuda = any("cuda_max_allocated_mb" in r for r in rows.values())
    head = ("| N | exact peak RSS (GB) | exact s/it (CPU s) | unrolled peak RSS (GB) | unrolled s/it (CPU s) "
            "| exact / unrolled CPU time |")
    if cuda:
        head += " exact CUDA max alloc (GB) | unrolled CUDA max alloc (GB) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    skipped = {(s["gradient"], s["steps"]): s for s in info["skipped"]}
    for n in ns:
        e, u = rows.get(("exact", n)), rows.get(("unrolled", n))

        def cell(r, key, div=1024.0, fmt="{:.2f}"):
            return fmt.format(r[key] / div) if r else "—"

        u_rss = cell(u, "peak_rss_mb") if u else (
            f"skipped (~{skipped[('unrolled', n)]['predicted_peak_rss_mb'] / 1024:.1f} extrapolated)"
            if ("unrolled", n) in skipped else "—")
        ratio = (f"{e['cpu_seconds'] / u['cpu_seconds']:.2f}" if e and u and "cpu_seconds" in e and "cpu_seconds" in u
                 else f"{e['seconds'] / u['seconds']:.2f} (wall)" if e and u else "—")

        def secs(r):
            if not r:
                return "—"
            return f"{r['seconds']:.1f} ({r['cpu_seconds']:.0f})" if "cpu_seconds" in r else f"{r['seconds']:.1f}"

        line = f"| {n} | {cell(e, 'peak_rss_mb')} | {secs(e)} | {u_rss} | {secs(u)} | {ratio} |"
        if cuda:
            line += f" {cell(e, 'cuda_max_allocated_mb')} | {cell(u, 'cuda_max_allocated_mb')} |"
        lines.append(line)
    m = info["machine"]
    lines += ["", f"{info['data']}; ipc {info['setup']['ipc']}, {info['setup']['net']}, synthetic minibatch "
                  f"{info['setup']['batch_syn']}, DSA; one iteration per subprocess; device {info['setup']['device']}; "
                  f"{m['cpu']}, {m.get('cpu_count', m.get('cores'))} cores, {m['memory_gb'] and round(m['memory_gb'], 1)} GB, torch {m['torch']}, "
                  f"{m['threads']} threads; total wall {info['wall_seconds']:.0f} s; load average during the runs "
                  f"{_loads(info)}.", ""]
    return "\n".join(lines)


def _loads(info: dict) -> str:
    loads = [r["load_average"][0] for r in info["results"] if "load_average" in r]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"


if __name__ == "__main__":
    sys.exit(main())
