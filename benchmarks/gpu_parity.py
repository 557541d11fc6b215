"""Parity on a GPU: optimlab's engine on CUDA against ``torch.optim`` on CUDA.

For every optimizer ``torch.optim`` also has, run 100 steps of a small model (mixed shapes)
on CUDA with optimlab (its default path there: the multi-tensor engine) and with
``torch.optim``'s for-loop implementation (``foreach=False``, the path the CPU suite holds
optimlab to), in float64 and float32, from the same start. Prints the largest relative
difference per optimizer and checks:

* float64: within 1e-10 (the CPU suite's contract);
* float32: optimlab's error against the float64 CPU run at most 4x torch's own float32
  error on the device plus 4 eps (the bound the fused CPU tests use: both round every
  operation once).

The last column is torch against itself: its ``foreach=True`` path (torch's default on
CUDA) against its for-loop one, in float64. It is information, not a check: the two are
not always the same arithmetic (ASGD's differ by about 1e-8 after 100 steps, on a CPU as
well), so comparing optimlab with the foreach path would fail where optimlab is exact.

    python benchmarks/gpu_parity.py [--device cuda] [--steps 100]

``--device cpu`` runs the same checks on the CPU (the test suite does, on a few steps).
"""

from __future__ import annotations

import argparse
import sys

import torch

import optimlab

SHAPES = [(64, 32), (32,), (3, 5, 7), (1,), (1000,)]
TWINS = ("SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
         "ASGD", "Rprop")
HP = {"SGD": {"lr": 0.01, "momentum": 0.9, "nesterov": True}, "Adagrad": {"lr": 0.05},
      "Adadelta": {"lr": 0.5}, "RMSprop": {"lr": 1e-3, "centered": True, "momentum": 0.5},
      "Adam": {"lr": 1e-2, "amsgrad": True}, "AdamW": {"lr": 1e-2}, "Adamax": {"lr": 1e-2},
      "NAdam": {"lr": 1e-2}, "RAdam": {"lr": 1e-2}, "ASGD": {"lr": 1e-2, "t0": 10},
      "Rprop": {}}


def run(build, device, dtype, steps):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, dtype=torch.float64).to(device, dtype)
              .requires_grad_() for s in SHAPES]
    opt = build(params)
    for _ in range(steps):
        opt.zero_grad()
        sum(((p - 0.3) ** 2).sum() + 0.1 * (p**4).sum() for p in params).backward()
        opt.step()
    return [p.detach().to("cpu", torch.float64) for p in params]


def rel(a, b):
    return max(((x - y).abs().max() / y.abs().max().clamp(min=1e-30)).item() for x, y in zip(a, b))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda",
                        help="device to check on (default cuda; cpu runs the same checks)")
    parser.add_argument("--steps", type=int, default=100, help="steps per optimizer (default 100)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing checked")
        return 2
    failures = []
    print(f"{'optimizer':10} {'f64 vs torch':>14} {'f32 ours err':>13} {'f32 torch err':>14} "
          f"{'':4} {'torch foreach vs loop, f64':>27}")
    for name in TWINS:
        hp = HP[name]
        ours = lambda ps: getattr(optimlab, name)(ps, **hp)  # noqa: E731
        theirs = lambda ps: getattr(torch.optim, name)(ps, foreach=False, **hp)  # noqa: E731
        foreach = lambda ps: getattr(torch.optim, name)(ps, foreach=True, **hp)  # noqa: E731
        exact = run(ours, "cpu", torch.float64, args.steps)
        loop64 = run(theirs, args.device, torch.float64, args.steps)
        d64 = rel(run(ours, args.device, torch.float64, args.steps), loop64)
        torch_gap = rel(run(foreach, args.device, torch.float64, args.steps), loop64)
        e_ours = rel(run(ours, args.device, torch.float32, args.steps), exact)
        e_torch = rel(run(theirs, args.device, torch.float32, args.steps), exact)
        ok = d64 <= 1e-10 and e_ours <= 4 * e_torch + 4 * torch.finfo(torch.float32).eps
        failures += [] if ok else [name]
        print(f"{name:10} {d64:14.2e} {e_ours:13.2e} {e_torch:14.2e} {'ok' if ok else 'FAIL':4} "
              f"{torch_gap:27.2e}")
    print("FAIL: " + ", ".join(failures) if failures else "PASS: every optimizer within bounds")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
