"""The plain multi-tensor path against ``torch.optim``'s ``foreach`` path, ms per step.

A model of many small tensors (default 200 tensors of 5,000 numbers) is where a per-tensor
loop loses: each tensor costs a dispatch per operation. For each optimizer this script times,
interleaved round-robin in one run so that a noisy machine hurts every candidate alike:

* ``optimlab plain``: ``fused=False``, the engine's multi-tensor path;
* ``torch foreach``: ``torch.optim.<Name>(foreach=True)``;
* ``optimlab fused`` and ``torch fused`` where they exist (CPU: optimlab's generated C loop;
  CUDA: torch's fused kernels, optimlab takes its plain path there).

Each sample is a run of ``--steps`` consecutive steps (gradients fixed, never zeroed) after a
warm-up; the figure is the median over ``--repeats`` samples, with the spread (min..max). It
prints the table and issue 11's check: optimlab plain no slower than torch foreach (ratio
<= 1.0) for SGD with momentum, Adam, RMSprop and Adagrad.

    python benchmarks/multi_tensor_speed.py [--tensors 200] [--numel 5000] [--device cpu]
        [--repeats 15] [--steps 10] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from _timing import cell, interleaved

import optimlab
from optimlab.bench.store.environment import cpu_description
from optimlab.cli import render_table

#: (registry name, torch class, hyperparameters, whether optimlab has a fused path)
CASES = [
    ("momentum", "SGD", {"lr": 0.01, "momentum": 0.9}),
    ("adam", "Adam", {"lr": 1e-3}),
    ("rmsprop", "RMSprop", {"lr": 1e-3}),
    ("adagrad", "Adagrad", {"lr": 1e-2}),
]


def _params(n: int, numel: int, device: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for _ in range(n):
        p = torch.randn(numel, generator=gen).to(device).requires_grad_()
        p.grad = torch.randn(numel, generator=gen).to(device)
        params.append(p)
    return params


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=200,
                        help="parameter tensors in the model (default 200)")
    parser.add_argument("--numel", type=int, default=5000,
                        help="numbers in each tensor (default 5000)")
    parser.add_argument("--device", default="cpu", help="device of the model (default cpu)")
    parser.add_argument("--repeats", type=int, default=15,
                        help="timed samples per candidate, round-robin (default 15)")
    parser.add_argument("--steps", type=int, default=10,
                        help="consecutive steps in each sample (default 10)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args(argv)
    print(f"cpu: {cpu_description()}", flush=True)
    if args.tensors < 1 or args.numel < 1 or args.repeats < 1 or args.steps < 1:
        parser.error("--tensors, --numel, --repeats and --steps must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    on_cpu = device == "cpu"
    print(f"{args.tensors} tensors of {args.numel} numbers on {device}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} "
          f"samples of {args.steps} steps (min..max)")
    header = ["optimizer", "optimlab plain", "torch foreach", "ratio", "optimlab fused",
              "torch fused"]
    rows, failures = [], []
    for name, torch_name, hp in CASES:
        twin = getattr(torch.optim, torch_name)
        builds = {
            "optimlab plain": lambda ps: optimlab.create(name, ps, fused=False, **hp),
            "torch foreach": lambda ps: twin(ps, foreach=True, **hp),
        }
        if on_cpu:
            builds["optimlab fused"] = lambda ps: optimlab.create(name, ps, fused=True, **hp)
        builds["torch fused"] = lambda ps: twin(ps, fused=True, **hp)
        opts = {}
        for label, build in builds.items():
            try:
                opts[label] = build(_params(args.tensors, args.numel, device))
            except (RuntimeError, ValueError, TypeError) as error:
                print(f"  {name} {label}: n/a ({str(error).splitlines()[0][:80]})")
        samples = interleaved({label: opt.step for label, opt in opts.items()}, args.repeats,
                              args.steps, warmup=3, sync=lambda: _sync(device))

        def ms(label):
            return cell(samples, label, 1e3, 2)

        ratio = statistics.median(samples["optimlab plain"]) / statistics.median(
            samples["torch foreach"])
        if ratio > 1.0:
            failures.append(f"{name} {ratio:.2f}x")
        row = [name, ms("optimlab plain"), ms("torch foreach"), f"{ratio:.2f}",
               ms("optimlab fused"), ms("torch fused")]
        rows.append(row)
        print("  " + " | ".join(row), flush=True)
    print()
    print(render_table(header, rows, markdown=True))
    print()
    if failures:
        print("FAIL: optimlab's plain path is slower than torch foreach for " + ", ".join(failures))
        return 1
    print("PASS: optimlab's plain multi-tensor path is no slower than torch foreach "
          "(ms per step, medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
