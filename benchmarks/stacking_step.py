"""One SGD step of K ConvNets three ways: the loop (K separate steps), ``vmap(functional_call)``
over stacked parameters (what ``dc_plugins.stacked`` uses) and a hand-written grouped
convolution (K networks as one ConvNet with ``groups=K``; instance norm, ReLU, average pooling
only). Says which stacking to use on this machine, and whether stacking pays at all.

    PYTHONPATH=. python benchmarks/stacking_step.py                 # K 5 and 20, batch 10 and 100
    PYTHONPATH=. python benchmarks/stacking_step.py --k 20 --batch 10 --steps 5

Writes ``benchmarks/results/eval_speed/stacking_step.json`` (machine, torch, threads included).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dc_plugins.data import make_generator
from dc_plugins.io import write_json
from dc_plugins.models import ConvNetSpec, make_convnet
from dc_plugins.stacked import StackedNets

OUT = Path(__file__).resolve().parent / "results" / "eval_speed" / "stacking_step.json"


def grouped_forward(params: dict, x: torch.Tensor, depth: int) -> torch.Tensor:
    """K ConvNets (instance norm, ReLU, avg pool) as one: ``x`` (K, B, C, H, W) -> (K, B, classes)."""
    k, b = x.shape[:2]
    h = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])
    for d in range(depth):
        conv, norm = f"features.{4 * d}", f"features.{4 * d + 1}"
        h = F.conv2d(h, params[f"{conv}.weight"].flatten(0, 1), params[f"{conv}.bias"].flatten(), padding=1, groups=k)
        # instance norm = one group per channel: the same over K networks' channels side by side
        h = F.group_norm(h, h.shape[1], params[f"{norm}.weight"].flatten(), params[f"{norm}.bias"].flatten())
        h = F.avg_pool2d(F.relu(h), 2)
    h = h.view(b, k, -1).transpose(0, 1)
    return torch.baddbmm(params["classifier.bias"].unsqueeze(1), h, params["classifier.weight"].transpose(1, 2))


def measure(spec: ConvNetSpec, k: int, batch: int, steps: int) -> dict:
    nets = [make_convnet(spec, generator=make_generator(i)) for i in range(k)]
    g = make_generator(123)
    x = torch.randn(k, batch, spec.channels, spec.image_size, spec.image_size, generator=g)
    y = torch.randint(spec.num_classes, (k, batch), generator=g)

    def timed(step) -> float:
        step()  # warm-up
        t = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - t) / steps

    opts = [torch.optim.SGD(n.parameters(), lr=0.01, momentum=0.9) for n in nets]

    def loop():
        for i, net in enumerate(nets):
            loss = F.cross_entropy(net(x[i]), y[i])
            opts[i].zero_grad()
            loss.backward()
            opts[i].step()

    stacked = StackedNets(nets).train()
    vopt = torch.optim.SGD(stacked.params.values(), lr=0.01, momentum=0.9)
    grouped = {n: p.detach().clone().requires_grad_() for n, p in stacked.params.items()}
    gopt = torch.optim.SGD(grouped.values(), lr=0.01, momentum=0.9)

    def step_of(forward, opt):
        def step():
            out = forward(x)
            loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(k, -1).mean(1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    with torch.no_grad():
        agree = float((stacked.forward(x) - grouped_forward(grouped, x, spec.depth)).abs().max())
    row = {"k": k, "batch": batch, "net": str(spec), "steps": steps, "vmap_vs_grouped_max_difference": agree,
           "loop_ms": 1e3 * timed(loop), "vmap_ms": 1e3 * timed(step_of(stacked.forward, vopt)),
           "grouped_ms": 1e3 * timed(step_of(lambda t: grouped_forward(grouped, t, spec.depth), gopt))}
    print(f"K={k} batch={batch}: loop {row['loop_ms']:.0f} ms, vmap {row['vmap_ms']:.0f} ms, "
          f"grouped {row['grouped_ms']:.0f} ms per step of all K", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    from benchmarks.eval_speed import machine

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default="convnet-w128-d3-instance-relu-avg")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--k", nargs="+", type=int, default=[5, 20])
    p.add_argument("--batch", nargs="+", type=int, default=[10, 100])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    spec = ConvNetSpec.parse(args.net, channels=1, num_classes=10, image_size=args.image_size)
    if (spec.norm, spec.activation, spec.pooling) != ("instance", "relu", "avg"):
        p.error(f"the grouped variant is written for instance norm, ReLU and average pooling; got {spec}")
    rows = [measure(spec, k, b, args.steps) for b in args.batch for k in args.k]
    write_json(args.out, {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                          "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
