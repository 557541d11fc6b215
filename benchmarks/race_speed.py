"""Race speed: batched races vs the naive loop, on Rosenbrock, measured in one run.

The naive loop is what one writes by hand: one optimizer at a time, each step a forward,
a backward and an ``optimizer.step()`` on a single 2-D point. The race runs every optimizer
as a population sharing one batched gradient evaluation per step. Both use the same
optimlab optimizers and produce the same paths (checked here).

1. 12 optimizers x 1000 steps, one learning rate each (issue 3's target: >= 10x);
2. the same 12 tuned: each over the 17-point learning-rate grid of ``tune=True``
   (204 runs), where batching pays most.

    python benchmarks/race_speed.py [--steps 1000] [--tune-steps 200] [--repeats 3]

Each part times both sides in ``--repeats`` interleaved rounds, the order alternating between
rounds, and prints each side's median with its range (min..max) and the ratio of the medians
(with the range of the rounds' own ratios). Part 2 also says how many runs the tuned race
really made: its grid, plus the rates it adds beyond a grid edge where the best rate sat on
one (``race.tuning_extended``), which the naive loop does not run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _timing import cell

import optimlab
from optimlab.bench.store.environment import cpu_description
from optimlab.landscapes import TUNE_GRID, get, race
from optimlab.optim.registry import resolve

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


def interleaved_rounds(first, second, repeats):
    """Seconds of each of ``repeats`` rounds of two callables, the order alternating between
    rounds (``first`` leads in odd rounds, ``second`` in even ones) so that a machine that
    speeds up or slows down hurts both alike; also the last result of each."""
    times = {"first": [], "second": []}
    results = {}
    for r in range(repeats):
        for side in ("first", "second")[::1 if r % 2 == 0 else -1]:
            fn = first if side == "first" else second
            start = time.perf_counter()
            results[side] = fn()
            times[side].append(time.perf_counter() - start)
    return times, results["first"], results["second"]


def speed_up(times):
    """``6.3x`` from the ratio of the medians, with the rounds' own ratios' range."""
    ratio = statistics.median(times["first"]) / statistics.median(times["second"])
    rounds = [a / b for a, b in zip(times["first"], times["second"])]
    spread = "" if len(rounds) == 1 else f", rounds {min(rounds):.1f}..{max(rounds):.1f}x"
    return f"{ratio:.1f}x (ratio of medians{spread})"


def vmap_reruns(tuned):
    """Tuned labels whose chosen rate the race runs once more, alone, as ``race`` does for an
    optimizer its population batches with vmap (it does not step bit for bit as it does
    alone: Muon); none of this script's optimizers is one, but the count follows
    ``OPTIMIZERS``."""
    return sum(1 for name in tuned.tuning if resolve(name).capabilities.batching_for(
        {**resolve(name).preset, **OPTIMIZERS[name], "lr": tuned.hparams[name]["lr"]}) == "vmap")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000,
                        help="steps of the 12-optimizer race (default 1000)")
    parser.add_argument("--tune-steps", type=int, default=200,
                        help="steps of each run of the tuned race's grid (default 200)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds timing both sides, the order alternating; the "
                             "median and range (min..max) reported (default 3)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    print(f"cpu: {cpu_description()}", flush=True)
    landscape = get("rosenbrock")
    # first-call costs (imports, kernels) paid before any round: a few steps of each side
    naive(landscape, 2)
    race(landscape, OPTIMIZERS, steps=2)
    race(landscape, OPTIMIZERS, steps=2, tune=True)

    times, slow, fast = interleaved_rounds(lambda: naive(landscape, args.steps),
                                           lambda: race(landscape, OPTIMIZERS, steps=args.steps),
                                           args.repeats)
    worst = max(float(np.abs(fast.paths[k] - slow[k]).max() / np.abs(slow[k]).max())
                for k in OPTIMIZERS)
    print(f"rosenbrock, median (min..max) of {args.repeats} interleaved rounds, "
          f"torch threads {torch.get_num_threads()}")
    print(f"1. {len(OPTIMIZERS)} optimizers x {args.steps} steps")
    print(f"   naive loop (one optimizer at a time): {cell(times, 'first', 1e3, 1)} ms")
    print(f"   batched race:                         {cell(times, 'second', 1e3, 1)} ms")
    print(f"   speed-up: {speed_up(times)} (target >= 10x); "
          f"largest relative path difference {worst:.1e}")

    runs = len(OPTIMIZERS) * len(TUNE_GRID)
    times, _, tuned = interleaved_rounds(
        lambda: naive_tuning(landscape, args.tune_steps),
        lambda: race(landscape, OPTIMIZERS, steps=args.tune_steps, tune=True), args.repeats)
    # what the tuned race really ran: the grid, the rates it added beyond a grid edge where
    # the best rate sat on one, and any chosen rate run again alone
    tried = sum(len(rates) for rates in tuned.tuning.values())
    beyond = sum(len(rates) for rates in tuned.tuning_extended.values())
    again = vmap_reruns(tuned)
    extra = f" + {again} re-run alone at the chosen rate" if again else ""
    print(f"2. tune=True: {len(OPTIMIZERS)} optimizers x {len(TUNE_GRID)} learning rates "
          f"= {runs} runs x {args.tune_steps} steps (naive loop); the batched race ran "
          f"{tried + again} runs x {args.tune_steps} steps ({tried - beyond} on the grid + "
          f"{beyond} beyond its edges{extra})")
    print(f"   naive loop (one run at a time):       {cell(times, 'first', 1e3, 1)} ms")
    print(f"   batched tuned race:                   {cell(times, 'second', 1e3, 1)} ms")
    print(f"   speed-up: {speed_up(times)}")


if __name__ == "__main__":
    main()
