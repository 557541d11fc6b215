"""Small models: one optimizer step, fused against plain against ``torch.optim``, in us.

``fused=None`` (the default) takes the generated C kernel for a CPU parameter group of any
size. This script shows why: on models from one 2-number tensor (a landscape's point) to the
training lab's MLPs, it times one ``step()`` of

* ``optimlab fused``: ``fused=True``, what the default runs on a CPU;
* ``optimlab plain``: ``fused=False`` (a single tensor steps alone, several as one
  multi-tensor batch);
* ``torch.optim``'s for-loop (``foreach=False``), ``foreach`` and ``fused`` paths, where
  torch has the optimizer,

interleaved round-robin so that a noisy machine hurts every candidate alike: each sample is
``--steps`` consecutive steps (gradients fixed), the figure the median of ``--repeats``
samples, with the spread (min..max). The last column is plain over fused.

    python benchmarks/small_step.py [--repeats 7] [--steps 200] [--optimizers adam,...]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _timing import cell, interleaved

import optimlab
from optimlab.bench.store.environment import cpu_description
from optimlab.cli import render_table
from optimlab.optim import kernels

#: (registry name, torch.optim class or None, hyperparameters)
CASES = [
    ("momentum", "SGD", {"lr": 0.01, "momentum": 0.9}),
    ("adam", "Adam", {"lr": 1e-3}),
    ("rmsprop", "RMSprop", {"lr": 1e-3}),
    ("adagrad", "Adagrad", {"lr": 1e-2}),
    ("lion", None, {"lr": 1e-4}),
]

#: model name -> parameter shapes
MODELS = {
    "2-D point": [(2,)],
    "one 1000-vector": [(1000,)],
    "digits MLP 64-100-10": [(100, 64), (100,), (10, 100), (10,)],
    "MNIST-1D MLP 40-100-100-10": [(100, 40), (100,), (100, 100), (100,), (10, 100), (10,)],
}


def _params(shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).requires_grad_()
        p.grad = torch.randn(shape, generator=gen) * 1e-3
        params.append(p)
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed samples per candidate, round-robin (default 7)")
    parser.add_argument("--steps", type=int, default=200,
                        help="consecutive steps in each sample (default 200)")
    parser.add_argument("--optimizers", default=",".join(name for name, _, _ in CASES),
                        help="comma-separated, of " + ", ".join(name for name, _, _ in CASES))
    args = parser.parse_args(argv)
    print(f"cpu: {cpu_description()}", flush=True)
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be positive")
    chosen = args.optimizers.split(",")
    unknown = sorted(set(chosen) - {name for name, _, _ in CASES})
    if unknown:
        parser.error(f"unknown optimizer(s) {', '.join(unknown)}")
    try:
        kernels.compiler()
    except kernels.CompilerUnavailable as error:
        print(f"no fused path here ({error}): every step takes the plain path")
        return 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; us per step, median "
          f"of {args.repeats} samples of {args.steps} steps (min..max)")
    labels = ["optimlab fused", "optimlab plain", "torch for-loop", "torch foreach",
              "torch fused"]
    rows, slower = [], []
    for name, torch_name, hp in CASES:
        if name not in chosen:
            continue
        twin = getattr(torch.optim, torch_name) if torch_name else None
        for model, shapes in MODELS.items():
            builds = {
                "optimlab fused": lambda ps: optimlab.create(name, ps, fused=True, **hp),
                "optimlab plain": lambda ps: optimlab.create(name, ps, fused=False, **hp),
            }
            if twin is not None:
                builds["torch for-loop"] = lambda ps: twin(ps, foreach=False, **hp)
                builds["torch foreach"] = lambda ps: twin(ps, foreach=True, **hp)
                builds["torch fused"] = lambda ps: twin(ps, fused=True, **hp)
            opts = {}
            for label, build in builds.items():
                try:
                    opts[label] = build(_params(shapes))
                except (RuntimeError, ValueError, TypeError):
                    continue  # torch has no fused path for this optimizer
            samples = interleaved({label: opt.step for label, opt in opts.items()},
                                  args.repeats, args.steps, warmup=5)
            ratio = statistics.median(samples["optimlab plain"]) / statistics.median(
                samples["optimlab fused"])
            if ratio < 0.95:  # a tie (1.0x on a single tiny tensor) is no reason to skip it
                slower.append(f"{name} on {model} ({ratio:.2f}x)")
            numel = sum(torch.Size(s).numel() for s in shapes)
            rows.append([name, f"{model} ({len(shapes)} tensors, {numel} numbers)",
                         *(cell(samples, label, 1e6, 1) for label in labels), f"{ratio:.1f}x"])
    print(render_table(["optimizer", "model", *labels, "plain/fused"], rows))
    if slower:
        print("the plain path was more than 5% faster than the fused one for: "
              + "; ".join(slower))
    else:
        print("the fused path was no slower than the plain one on any model (plain/fused "
              ">= 0.95): fused=None takes it whatever the size")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
