"""Does vectorising DC's per-class gradient matching over classes (``matching.vectorize``) pay?

    python examples/benchmark_vmap_matching.py --width 32 --batch-real 64 --device cpu --threads 2
    python examples/benchmark_vmap_matching.py --width 128 --batch-real 256 --device cuda

`GradientMatcher` computes the gradient distance one class at a time by default; with
``matching.vectorize`` it batches the classes with ``torch.func.vmap``. This times one outer
step (every class's distance, then their sum's gradient with respect to the synthetic images)
both ways, with two matchers of the same seed on the same generated data (so the same network
and batches), checks that they agree, and prints the seconds per step of each and their ratio,
so the default can be re-measured on any machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from dc_plugins.config import MatchingConfig
from dc_plugins.data import ClassIndex
from dc_plugins.device import resolve_device
from dc_plugins.matching import GradientMatcher
from dc_plugins.models import ConvNetSpec


def time_steps(matcher: GradientMatcher, repeats: int, device: torch.device):
    """Seconds per matching step, after one warm-up step; the last step's loss and image gradient."""
    net = matcher.new_network()

    def once():
        matcher.images.grad = None
        loss = matcher.matching_loss(net)
        loss.backward(inputs=[matcher.images])
        return loss.detach(), matcher.images.grad.detach().clone()

    once()  # warm-up: allocator, kernels, vmap's first trace
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        result = once()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--norm", default="instance", help="instance, layer, group or none (batch would need frozen stats)")
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--batch-real", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float64", action="store_true", help="compute in float64: the two ways then agree to ~1e-15")
    args = p.parse_args(argv)
    if args.norm == "batch":
        p.error("--norm batch: the matcher freezes BatchNorm statistics first; time a per-sample norm instead")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.float64:
        torch.set_default_dtype(torch.float64)
    device = resolve_device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    spec = ConvNetSpec(channels=args.channels, num_classes=args.classes, image_size=args.image_size,
                       width=args.width, depth=args.depth, norm=args.norm)
    per_class = args.batch_real + args.ipc
    images = torch.randn(args.classes * per_class, args.channels, args.image_size, args.image_size, generator=gen)
    labels = torch.arange(args.classes).repeat_interleave(per_class)
    real = ClassIndex(images.to(device), labels.to(device), args.classes)

    def matcher(vectorize: bool) -> GradientMatcher:
        config = MatchingConfig(lr_img=0.1, batch_real=args.batch_real, vectorize=vectorize)  # lr unused: no step
        return GradientMatcher(real, args.ipc, spec=spec, config=config, seed=args.seed)

    t_loop, (loss_loop, grad_loop) = time_steps(matcher(False), args.repeats, device)
    t_vmap, (loss_vmap, grad_vmap) = time_steps(matcher(True), args.repeats, device)
    rel = float((grad_loop - grad_vmap).norm() / grad_loop.norm())
    print(f"{spec.arch}, {args.classes} classes x {args.batch_real} real / {args.ipc} synthetic, "
          f"{args.image_size} px, {device}, {torch.get_num_threads()} threads")
    print(f"loss: loop {loss_loop.item():.6g}, vmap {loss_vmap.item():.6g}; image gradient relative difference {rel:.1e}")
    print(f"seconds per outer step: loop {t_loop:.4f}, vmap {t_vmap:.4f}; vmap speed-up {t_loop / t_vmap:.2f}x")
    if rel > 1e-3:
        print("WARNING: the two computations disagree beyond float tolerance")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
