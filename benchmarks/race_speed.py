"""Race speed: batched races vs the naive loop, on Rosenbrock, measured in one run.

The naive loop is what one writes by hand: one optimizer at a time, each step a forward,
a backward and an ``optimizer.step()`` on a single 2-D point. The race runs every optimizer
as a population sharing one batched gradient evaluation per step. Both use the same
optimlab optimizers and produce the same paths (checked here).

1. 12 optimizers x 1000 steps, one learning rate each (issue 3's target: >= 10x);
2. the same 12 tuned: each over the 17-point learning-rate grid of ``tune=True``
   (204 runs), where batching pays most.

    python benchmarks/race_speed.py [--steps 1000] [--tune-steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import optimlab
from optimlab.bench.store.environment import cpu_description
from optimlab.landscapes import TUNE_GRID, get, race

OPTIMIZERS = {
    "sgd": {"lr": 1e-4}, "momentum": {"lr": 1e-4}, "nag": {"lr": 1e-4},
    "adagrad": {"lr": 0.1}, "adadelta": {"lr": 1.0}, "rmsprop": {"lr": 1e-3},
    "adam": {"lr": 0.02}, "amsgrad": {"lr": 0.02}, "nadam": {"lr": 0.02},
    "radam": {"lr": 0.02}, "lion": {"lr": 1e-3}, "adabelief": {"lr": 0.02},
}


def naive_run(landscape, name, hp, steps):
    p = torch.tensor(landscape.start, dtype=torch.float64, requires_grad=True)
    opt = optimlab.create(name, [p], **hp)
    path = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        landscape.f(p).backward()
        opt.step()
        path.append(p.detach().clone())
    return torch.stack(path).numpy()


def naive(landscape, steps):
    return {name: naive_run(landscape, name, hp, steps) for name, hp in OPTIMIZERS.items()}


def naive_tuning(landscape, steps):
    return {(name, lr): naive_run(landscape, name, {**hp, "lr": lr}, steps)
            for name, hp in OPTIMIZERS.items() for lr in TUNE_GRID}


def best_time(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000,
                        help="steps of the 12-optimizer race (default 1000)")
    parser.add_argument("--tune-steps", type=int, default=200,
                        help="steps of each run of the tuned race's grid (default 200)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timings of each, the best kept (default 3)")
    args = parser.parse_args()
    print(f"cpu: {cpu_description()}", flush=True)
    landscape = get("rosenbrock")
    t_naive, slow = best_time(lambda: naive(landscape, args.steps), args.repeats)
    t_race, fast = best_time(lambda: race(landscape, OPTIMIZERS, steps=args.steps),
                             args.repeats)
    worst = max(float(np.abs(fast.paths[k] - slow[k]).max() / np.abs(slow[k]).max())
                for k in OPTIMIZERS)
    print(f"rosenbrock, best of {args.repeats}, torch threads {torch.get_num_threads()}")
    print(f"1. {len(OPTIMIZERS)} optimizers x {args.steps} steps")
    print(f"   naive loop (one optimizer at a time): {t_naive * 1e3:9.1f} ms")
    print(f"   batched race:                         {t_race * 1e3:9.1f} ms")
    print(f"   speed-up: {t_naive / t_race:.1f}x (target >= 10x); "
          f"largest relative path difference {worst:.1e}")

    runs = len(OPTIMIZERS) * len(TUNE_GRID)
    t_naive, slow = best_time(lambda: naive_tuning(landscape, args.tune_steps), 1)
    t_race, _ = best_time(lambda: race(landscape, OPTIMIZERS, steps=args.tune_steps,
                                       tune=True), args.repeats)
    print(f"2. tune=True: {len(OPTIMIZERS)} optimizers x {len(TUNE_GRID)} learning rates "
          f"= {runs} runs x {args.tune_steps} steps")
    print(f"   naive loop (one run at a time, once): {t_naive * 1e3:9.1f} ms")
    print(f"   batched tuned race:                   {t_race * 1e3:9.1f} ms")
    print(f"   speed-up: {t_naive / t_race:.1f}x")

if __name__ == "__main__":
    main()
