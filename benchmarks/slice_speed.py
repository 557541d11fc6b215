"""How long a 41 x 41 slice of the MNIST-1D MLP's loss over the full test set (1000
examples) takes: the grid as batched populations (what ``optimlab slice`` does) against
the model run once per grid point.

    python benchmarks/slice_speed.py [--grid 41] [--repeats 5] [--chunk 256]

Both evaluate the same 1681 weight vectors on a filter-normalised random plane through
the initial weights and give the same losses (checked, to float32 rounding). Prints the
median and spread (min-max) of each over the repeats and their ratio, measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.func import functional_call

from optimlab.bench.slices import _random_plane, _scores, _stack_weights
from optimlab.bench.store.environment import cpu_description
from optimlab.bench.tasks import get as get_task
from optimlab.bench.trainer import _init_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, default=41,
                        help="points along each axis of the plane (default 41)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timings of each way (default 5)")
    parser.add_argument("--chunk", type=int, default=256,
                        help="grid points evaluated as one population (default 256)")
    opts = parser.parse_args()
    if opts.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {opts.repeats}")
    print(f"cpu: {cpu_description()}", flush=True)
    task = get_task("mnist1d")
    model = _init_model(task, "mlp", 0)
    origin = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    basis = _random_plane(model, origin, seed=0).double()
    axis = torch.linspace(-1, 1, opts.grid, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    flat = (origin.double() + torch.stack([gx.reshape(-1), gy.reshape(-1)], 1) @ basis.T).float()
    x, y = task.x_test, task.y_test
    names = [n for n, _ in model.named_parameters()]

    def batched():
        return _scores(task, model, flat, x, y, opts.chunk)[0]

    def one_by_one():
        out = torch.empty(flat.shape[0])
        with torch.no_grad():
            for i in range(flat.shape[0]):
                params = dict(zip(names, [w[0] for w in _stack_weights(model, flat[i:i + 1])]))
                out[i] = task.loss_fn(functional_call(model, params, (x,)), y)
        return out

    a, b = batched(), one_by_one()
    worst = float(((a - b).abs() / b.abs()).max())
    times = {"batched": [], "one by one": []}
    for _ in range(opts.repeats):
        for name, fn in (("batched", batched), ("one by one", one_by_one)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    print(f"{opts.grid} x {opts.grid} slice of the MNIST-1D MLP over {len(x)} test examples, "
          f"{opts.repeats} repeats, {torch.get_num_threads()} threads "
          f"(largest relative difference between the two: {worst:.1e})")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        print(f"  {name:11s} median {med[name]:6.2f} s   spread {min(values):.2f}-{max(values):.2f} s")
    print(f"  batched is {med['one by one'] / med['batched']:.1f}x faster")


if __name__ == "__main__":
    main()
