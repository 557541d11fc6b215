"""A population's optimizer step alone: the fused member plan against the plain path.

Two populations of Adam, each member with its own learning rate:

* the training lab's: 64 members of the MNIST-1D MLP (its parameters stacked, 0.97M
  numbers), as ``population_speed.py`` trains them;
* a race's: one member on a 2-D landscape (a ``[1, 2]`` point), as ``optimlab race`` steps
  each optimizer.

Each is stepped with fixed gradients by :class:`optimlab.Population` with ``fused=None``
(the default: every member's slice of every tensor in one generated C call) and with
``fused=False`` (the plain path, per-member values broadcast over the member axis), and,
for the MLP, torch's own Adam on the same stacked tensors (one learning rate for all:
``fused=True`` and ``foreach=True``) as a yardstick. Each figure is the median time of one
step over ``--steps`` steps; the repeats alternate the paths and the script prints the
median over them with the spread (min-max), and the ratios measured in this run.

    python benchmarks/population_step.py [--members 64] [--steps 300] [--repeats 5]

The tensors stay the same from step to step, so they are warm in cache here: inside
training, the forward and backward between two steps evict them, and the same step takes
2-3x longer (``population_breakdown.py`` times it in place).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from optimlab import Population
from optimlab.bench.store.environment import cpu_description
from optimlab.bench.tasks import get
from optimlab.bench.trainer import _init_model


def _median_step(step, steps: int) -> float:
    """Median seconds of ``step()`` over ``steps`` calls, after a few warm-up calls."""
    for _ in range(5):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _population(shapes, members: int, fused):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(members, *s, generator=gen) for s in shapes]
    grads = [torch.randn(p.shape, generator=gen) * 1e-2 for p in params]
    lrs = torch.logspace(-3.5, -1.5, members).tolist()
    pop = Population("adam", params, {"lr": lrs, "fused": fused})
    return lambda: pop.step(grads=grads)


def _torch_adam(shapes, members: int, **flags):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(members, *s, generator=gen).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    opt = torch.optim.Adam(params, lr=1e-3, **flags)
    return opt.step


def _line(label: str, values: list[float], unit: float = 1e3, name: str = "ms") -> str:
    return (f"  {label:44s} {statistics.median(values) * unit:9.3f} {name}  "
            f"({min(values) * unit:.3f}..{max(values) * unit:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=64, help="the MLP population's size")
    parser.add_argument("--steps", type=int, default=300, help="steps timed per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats, paths alternating")
    args = parser.parse_args()
    if min(args.members, args.steps, args.repeats) < 1:
        parser.error("--members, --steps and --repeats must be at least 1")
    print(f"cpu: {cpu_description()}", flush=True)
    print(f"torch threads: {torch.get_num_threads()}", flush=True)

    mlp = [tuple(p.shape) for p in _init_model(get("mnist1d"), "mlp", 0).parameters()]
    numbers = args.members * sum(torch.Size(s).numel() for s in mlp)
    cases = {
        "mlp fused": _population(mlp, args.members, None),
        "mlp plain": _population(mlp, args.members, False),
        "mlp torch fused": _torch_adam(mlp, args.members, fused=True),
        "mlp torch foreach": _torch_adam(mlp, args.members, foreach=True),
        "race fused": _population([(2,)], 1, None),
        "race plain": _population([(2,)], 1, False),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.repeats):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            times[name].append(_median_step(cases[name], args.steps))

    print(f"Adam, MNIST-1D MLP population: {args.members} members, {numbers / 1e6:.2f}M "
          f"numbers, each member its own lr; one step, median of {args.steps} steps, median "
          f"of {args.repeats} repeats (min..max)")
    print(_line("Population, fused member plan (default)", times["mlp fused"]))
    print(_line("Population, plain path (fused=False)", times["mlp plain"]))
    print(_line("torch.optim.Adam(fused=True), one lr", times["mlp torch fused"]))
    print(_line("torch.optim.Adam(foreach=True), one lr", times["mlp torch foreach"]))
    print("Adam, a race's one-member population on a 2-D point")
    print(_line("Population, fused member plan (default)", times["race fused"], 1e6, "us"))
    print(_line("Population, plain path (fused=False)", times["race plain"], 1e6, "us"))

    def ratio(a: str, b: str) -> str:
        per = [y / x for x, y in zip(times[a], times[b])]
        return (f"{statistics.median(times[b]) / statistics.median(times[a]):.2f}x "
                f"(repeats {min(per):.2f}..{max(per):.2f}x)")

    print(f"MLP population: fused {ratio('mlp fused', 'mlp plain')} faster than plain; "
          f"torch's fused Adam / ours {ratio('mlp fused', 'mlp torch fused')}")
    print(f"race population: fused {ratio('race fused', 'race plain')} faster than plain")


if __name__ == "__main__":
    main()
