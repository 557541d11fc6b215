"""Population vs sequential training: 64 members of the MNIST-1D MLP, measured in one run.

Both engines train the same 64 members (Adam over 8 learning rates x 8 seeds, batch 100)
for the same number of steps; the population engine stacks them on a member axis and runs
one vmapped forward/backward and one Population step per step. Target (issue 4): the
population engine at least 8x faster per member.

    python benchmarks/population_speed.py [--steps 300] [--members 64] [--repeats 1]
                                          [--sequential-threads N] [--compare-stacked]

``--repeats R`` runs R rounds, the engines' order alternating between rounds so that a
machine that speeds up or slows down hurts both alike, and prints each round, the median
times and the median of the rounds' ratios with their spread: on a noisy machine one round
moves by a quarter.

It also prints the population step's ceiling on this machine: the floating-point work of its
matrix products (forward and backward, counted by ``torch.utils.flop_counter``) divided by
the rate this CPU reaches on the model's largest batched product, measured in the same run.
No float32 population step can take less than that, so the sequential time divided by it
bounds the per-member speed-up any population engine could reach here.

It says whether freed memory is kept between steps (:mod:`optimlab.bench.allocator`; run
with ``OPTIMLAB_KEEP_FREED_MEMORY=0`` for glibc's defaults) and counts the population
engine's minor page faults per step.

``--sequential-threads N`` runs the sequential engine on N torch threads (the population
keeps torch's default): on a small model its many small operations can run faster on one
thread than on two, so this is the baseline a user who tunes the thread count would get.

``--compare-stacked`` also times the population engine with and without its stacked linear
layers (each linear layer of the 64 members as one batched product: for this MLP, its
``nn.Linear`` modules swapped for stacked ones; for models that call ``F.linear`` on their
own parameters, a ``TorchFunctionMode``), alternating in one run, against vmap alone: the
stacked layers are kept only while they pay for themselves.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from _ceiling import adam_population, product_flops, product_rate

from optimlab.bench.allocator import keep_freed_memory
from optimlab.bench.store.environment import cpu_description
from optimlab.bench.tasks import get
from optimlab.bench.trainer import Member, TrainConfig, train_population, train_sequential


def step_flops(task, members: list[Member]) -> float:
    """Floating-point operations of one population training step's matrix products (forward
    and backward): a 2-step run less a 1-step run, whose evaluations are the same."""
    def run(steps: int) -> Callable[[], object]:
        return lambda: train_population(task, TrainConfig(steps=steps, batch_size=100,
                                                          eval_every=steps, model="mlp"), members)
    return product_flops(run(2)) - product_flops(run(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps of every member (default 300)")
    parser.add_argument("--members", type=int, default=64,
                        help="members, 8 learning rates x members/8 seeds (default 64)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds, the engines' order alternating (default 1)")
    parser.add_argument("--sequential-threads", type=int, default=None, metavar="N",
                        help="torch threads for the sequential engine (default: torch's, as the "
                             "population engine)")
    parser.add_argument("--compare-stacked", action="store_true",
                        help="also time the population engine without its stacked linear layers")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.sequential_threads is not None and args.sequential_threads < 1:
        parser.error(f"--sequential-threads must be at least 1, got {args.sequential_threads}")
    print(f"cpu: {cpu_description()}", flush=True)
    task = get("mnist1d")
    members = adam_population(args.members)
    config = TrainConfig(steps=args.steps, batch_size=100, eval_every=args.steps, model="mlp")
    # warm both engines up (kernels loaded, first-call costs paid) before timing either: the
    # first train_sequential of a process once paid about 1 s (the first optimizer imported
    # torch._dynamo), charged to the sequential engine; each engine warms up on as many
    # members as it holds at once (the population on all of them: its first run at full
    # size also faults in about 70 MB of memory), so that no round pays for the first
    warm = TrainConfig(steps=5, batch_size=100, model="mlp")
    train_population(task, warm, members)
    train_sequential(task, warm, members[:2])

    n = len(members)
    threads = torch.get_num_threads()
    sequential_threads = args.sequential_threads or threads
    print(f"mnist1d mlp, {n} members (adam, 8 lrs x {n // 8} seeds), {args.steps} steps, "
          f"batch 100, torch threads {threads} (sequential engine: {sequential_threads})",
          flush=True)
    times: dict[str, list[float]] = {"population": [], "sequential": []}
    faults = None
    for r in range(args.repeats):
        for engine in ("population", "sequential")[::1 if r % 2 == 0 else -1]:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            if engine == "population":
                batched = train_population(task, config, members)
            else:
                torch.set_num_threads(sequential_threads)
                try:
                    sequential = train_sequential(task, config, members)
                finally:
                    torch.set_num_threads(threads)
            times[engine].append(time.perf_counter() - start)
            if engine == "population" and faults is None:
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        if args.repeats > 1:
            print(f"round {r + 1}: sequential {times['sequential'][-1]:.2f} s, population "
                  f"{times['population'][-1]:.2f} s, "
                  f"{times['sequential'][-1] / times['population'][-1]:.1f}x", flush=True)
    ratios = [s_ / p_ for s_, p_ in zip(times["sequential"], times["population"])]
    t_sequential, t_population = (statistics.median(times[k]) for k in ("sequential", "population"))
    worst = max(abs(a.test_loss[-1] - b.test_loss[-1]) / abs(b.test_loss[-1])
                for a, b in zip(batched, sequential))
    print(f"freed memory kept between steps (optimlab.bench.allocator): "
          f"{'yes' if keep_freed_memory() else 'no'}; population engine: "
          f"{faults / args.steps:.0f} minor page faults per step")

    def spread(v: list[float]) -> str:
        return "" if len(v) == 1 else f", {min(v):.2f}..{max(v):.2f} s"

    print(f"sequential engine: {t_sequential:7.2f} s  ({t_sequential / n * 1e3:7.1f} ms per member"
          f"{spread(times['sequential'])})")
    print(f"population engine: {t_population:7.2f} s  ({t_population / n * 1e3:7.1f} ms per member"
          f"{spread(times['population'])})")
    rounds = "" if len(ratios) == 1 else \
        f" (median of {len(ratios)} rounds, {min(ratios):.1f}..{max(ratios):.1f}x)"
    print(f"speed-up per member: {statistics.median(ratios):.1f}x{rounds} (target >= 8x); "
          f"largest relative difference in final test loss {worst:.1e} (float32)")
    flops, rate = step_flops(task, members), product_rate(n)
    floor = flops / rate
    print(f"ceiling: one population step is {flops / 1e6:.0f} MFLOP of matrix products "
          f"(forward and backward); at this CPU's {rate / 1e9:.0f} GFLOP/s on a "
          f"[{n},100,100] batched product (measured now) they alone take {floor * 1e3:.2f} ms")
    print(f"  measured: {t_population / args.steps * 1e3:.2f} ms per step, evaluations included "
          f"({flops * args.steps / t_population / 1e9:.0f} GFLOP/s); no float32 population "
          f"step is faster than its products, so the speed-up per member here is at most "
          f"{t_sequential / (floor * args.steps):.1f}x")
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
