"""Population vs sequential training: 64 members of the MNIST-1D MLP, measured in one run.

Both engines train the same 64 members (Adam over 8 learning rates x 8 seeds, batch 100)
for the same number of steps; the population engine stacks them on a member axis and runs
one vmapped forward/backward and one Population step per step. Target (issue 4): the
population engine at least 8x faster per member.

    python benchmarks/population_speed.py [--steps 300] [--members 64] [--compare-stacked]

``--compare-stacked`` also times the population engine with and without its stacked linear
layers (a ``TorchFunctionMode`` that runs ``F.linear`` on stacked members as one batched
product instead of through vmap), alternating in one run: the mode is kept only while it
pays for itself.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from optimlab.bench.tasks import get
from optimlab.bench.trainer import Member, TrainConfig, train_population, train_sequential


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--compare-stacked", action="store_true",
                        help="also time the population engine without its stacked linear layers")
    args = parser.parse_args()
    task = get("mnist1d")
    lrs = np.logspace(-3.5, -1.5, 8)
    members = [Member("adam", {"lr": float(lrs[i % 8])}, seed=i // 8)
               for i in range(args.members)]
    config = TrainConfig(steps=args.steps, batch_size=100, eval_every=args.steps, model="mlp")
    train_population(task, TrainConfig(steps=5, batch_size=100, model="mlp"), members[:2])

    start = time.perf_counter()
    batched = train_population(task, config, members)
    t_population = time.perf_counter() - start
    start = time.perf_counter()
    sequential = train_sequential(task, config, members)
    t_sequential = time.perf_counter() - start
    worst = max(abs(a.test_loss[-1] - b.test_loss[-1]) / abs(b.test_loss[-1])
                for a, b in zip(batched, sequential))
    n = len(members)
    print(f"mnist1d mlp, {n} members (adam, 8 lrs x {n // 8} seeds), {args.steps} steps, "
          f"batch 100, torch threads {torch.get_num_threads()}")
    print(f"sequential engine: {t_sequential:7.2f} s  ({t_sequential / n * 1e3:7.1f} ms per member)")
    print(f"population engine: {t_population:7.2f} s  ({t_population / n * 1e3:7.1f} ms per member)")
    print(f"speed-up per member: {t_sequential / t_population:.1f}x (target >= 8x); "
          f"largest relative difference in final test loss {worst:.1e} (float32)")
    if args.compare_stacked:
        from optimlab.bench import trainer

        stacked_forward = trainer._stacked_forward
        times: dict[str, list[float]] = {"stacked": [], "vmap only": []}
        for _ in range(3):
            for label in times:
                trainer._stacked_forward = stacked_forward if label == "stacked" \
                    else (lambda *a, **k: None)
                start = time.perf_counter()
                train_population(task, config, members)
                times[label].append(time.perf_counter() - start)
        trainer._stacked_forward = stacked_forward
        med = {k: float(np.median(v)) for k, v in times.items()}
        print("population engine, 3 alternating runs each (median, min..max): " + "; ".join(
            f"{k} {med[k]:.2f} s ({min(v):.2f}..{max(v):.2f})" for k, v in times.items()))
        print(f"stacked linear layers: {med['vmap only'] / med['stacked']:.2f}x faster than vmap only")


if __name__ == "__main__":
    main()
