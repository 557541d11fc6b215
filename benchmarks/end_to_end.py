"""End to end: ``optimlab bench`` with the population engine against ``--sequential``, in one run.

Runs the issue's command through the real command line,

    python -m optimlab bench mnist1d --model mlp --optimizers adam --lrs 1e-4:1e-1:16 \\
        --seeds 4 --steps 300 --batch-size 100 --db FRESH.db [--sequential]

each engine in its own subprocess with a fresh temporary ``--db``, the two engines
alternating for ``--repeats`` rounds, and times each process from start to exit (imports,
task load, training, evaluations, store writes and the summary table: what a user waits
for). In the same rounds it times the training alone in this process: ``train_population``
against ``train_sequential`` on the same members with the CLI's configuration
(``eval_every = steps // 20``, evaluations included), so that the two ratios, end to end and
training-only, come from one run on one machine state. Prints each run's wall time, the
medians with their spread, the load average, and the median ratios sequential/population.
Target (issue): end to end at least 5x.

    python benchmarks/end_to_end.py [--repeats 3] [--steps 300] [--seeds 4]
                                    [--lrs 1e-4:1e-1:16] [--no-training] [--check]
                                    [--baseline-src DIR]

It ends with the ratio's ceiling: no population command can take less than importing torch
(timed in fresh processes) plus its matrix products (training and evaluations, counted by
``torch.utils.flop_counter`` and divided by the rate this CPU reaches on a ``[64,100,100]``
batched product, measured now), so the sequential command's median over that is the most
any population engine could reach end to end here.

``--check`` exits 1 when the median end-to-end ratio is below 5 (``--target``). A quick
look: ``--steps 60 --seeds 2 --repeats 1``. ``--baseline-src DIR`` also times both
commands with ``PYTHONPATH=DIR`` (another copy of ``src``, say the last commit's:
``git archive HEAD src | tar -x -C /tmp/before``), in the same rounds, for a before/after.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _ceiling import product_flops, product_rate

import optimlab.cli
from optimlab.bench.analysis import parse_lrs
from optimlab.bench.store.environment import cpu_description
from optimlab.bench.sweep import SweepSpec
from optimlab.bench.tasks import get
from optimlab.bench.trainer import TrainConfig, train_population, train_sequential

TASK, MODEL, OPTIMIZER, BATCH = "mnist1d", "mlp", "adam", 100


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _spread(values: list[float]) -> str:
    return (f"median {statistics.median(values):7.2f} s  "
            f"(min {min(values):.2f}, max {max(values):.2f}, n={len(values)})")


def _cli(args: argparse.Namespace, db: Path, sequential: bool, src: str | None = None) -> float:
    """One ``optimlab bench`` process, start to exit, in seconds."""
    command = [sys.executable, "-m", "optimlab", "bench", TASK, "--model", MODEL,
               "--optimizers", OPTIMIZER, "--lrs", args.lrs, "--seeds", str(args.seeds),
               "--steps", str(args.steps), "--batch-size", str(BATCH), "--db", str(db)]
    if sequential:
        command.append("--sequential")
    env = None if src is None else {**os.environ, "PYTHONPATH": src}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def _compiled(source: str) -> bool:
    """Whether ``source`` has an up-to-date compiled copy in its ``__pycache__``."""
    cached = Path(importlib.util.cache_from_source(source))
    return cached.exists() and cached.stat().st_mtime >= Path(source).stat().st_mtime


def _import_torch(repeats: int = 3) -> float:
    """Median seconds of a fresh process that imports torch and exits as the ``optimlab``
    command does (heap frozen first, :func:`optimlab.cli.entry`: a plain exit adds a garbage
    collection over torch's objects, 0.2-0.55 s)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gc, torch; gc.freeze()"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds, engines alternating")
    parser.add_argument("--steps", type=int, default=300, help="steps of every run (default 300)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per learning rate (default 4)")
    parser.add_argument("--lrs", default="1e-4:1e-1:16", help="LOW:HIGH:COUNT as the CLI's")
    parser.add_argument("--no-training", action="store_true",
                        help="skip the in-process training-only timings")
    parser.add_argument("--baseline-src", metavar="DIR",
                        help="also time both commands with PYTHONPATH=DIR (a before/after)")
    parser.add_argument("--target", type=float, default=5.0,
                        help="the end-to-end ratio --check requires (default 5)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the median end-to-end ratio is below --target")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    print(f"cpu: {cpu_description()}", flush=True)

    # the CLI's sweep: the same members, in the same order, and the same TrainConfig
    config = TrainConfig(steps=args.steps, batch_size=BATCH, eval_every=max(1, args.steps // 20),
                         model=MODEL)
    spec = SweepSpec(task=TASK, optimizers=(OPTIMIZER,), config=config,
                     lrs=tuple(parse_lrs(args.lrs)), seeds=args.seeds)
    members = spec.members()
    task = get(TASK)  # also fills the data cache the subprocesses read
    # warm both engines up in this process (kernels loaded, first-call costs paid): the
    # first train_sequential of a process once paid about 1 s (the first optimizer imported
    # torch._dynamo), charged to the sequential engine; each engine warms up on as many
    # members as it holds at once (the population on all of them: its first run at full
    # size also faults in its full-size buffers), so that no timed round pays for the first.
    # A few steps suffice: the buffers are the same size at any step count
    warm = TrainConfig(steps=3, batch_size=BATCH, model=MODEL)
    train_population(task, warm, members)
    train_sequential(task, warm, members[:2])
    print(f"{TASK} {MODEL}, {len(members)} runs ({OPTIMIZER}, lrs {args.lrs} x {args.seeds} "
          f"seeds), {args.steps} steps, batch {BATCH}, eval every {config.eval_every} steps "
          f"(subset {config.eval_subset}); {os.cpu_count()} cpus, torch threads "
          f"{torch.get_num_threads()}; {_load()}")

    times: dict[str, list[float]] = {"cli population": [], "cli sequential": [],
                                     "train_population": [], "train_sequential": []}
    sources = [(None, "")] + ([(args.baseline_src, " (baseline)")] if args.baseline_src else [])
    for _, tag in sources[1:]:
        times.update({f"cli population{tag}": [], f"cli sequential{tag}": []})
    with tempfile.TemporaryDirectory(prefix="optimlab-e2e-") as tmp:
        for r in range(args.repeats):
            # the engines' order alternates between rounds (population first in odd rounds,
            # sequential first in even ones), so that a machine that speeds up or slows down
            # hurts both alike
            order = slice(None, None, 1 if r % 2 == 0 else -1)
            for k, (src, tag) in enumerate(sources):
                for engine in ("population", "sequential")[order]:
                    db = Path(tmp) / f"{engine}-{r}-{k}.db"  # fresh: no sweep to find or resume
                    elapsed = _cli(args, db, engine == "sequential", src)
                    times[f"cli {engine}{tag}"].append(elapsed)
                    label = "optimlab bench" + (" --sequential" if engine == "sequential"
                                                else "") + tag
                    print(f"round {r + 1}: {label:40s}{elapsed:7.2f} s  ({_load()})",
                          flush=True)
            if args.no_training:
                continue
            for label, train in (("train_population", train_population),
                                 ("train_sequential", train_sequential))[order]:
                start = time.perf_counter()
                train(task, config, members)
                times[label].append(time.perf_counter() - start)
                print(f"round {r + 1}: {label + ' in process':40s}{times[label][-1]:7.2f} s  "
                      f"({_load()})", flush=True)

    print()
    for label, values in times.items():
        if values:
            print(f"{label:28s} {_spread(values)}")
    end_to_end = statistics.median(times["cli sequential"]) / \
        statistics.median(times["cli population"])
    per_round = [s / p for s, p in zip(times["cli sequential"], times["cli population"])]
    print(f"end-to-end ratio sequential/population: {end_to_end:.2f}x (median of each; per "
          f"round {', '.join(f'{v:.2f}' for v in per_round)}; target >= {args.target:g}x)")
    for _, tag in sources[1:]:
        base_pop = statistics.median(times[f"cli population{tag}"])
        base_seq = statistics.median(times[f"cli sequential{tag}"])
        print(f"baseline end-to-end ratio: {base_seq / base_pop:.2f}x; this tree against the "
              f"baseline: population {base_pop / statistics.median(times['cli population']):.2f}x"
              f", sequential {base_seq / statistics.median(times['cli sequential']):.2f}x "
              f"faster")
    if times["train_population"]:
        training = statistics.median(times["train_sequential"]) / \
            statistics.median(times["train_population"])
        outside = statistics.median(times["cli population"]) - \
            statistics.median(times["train_population"])
        print(f"training-only ratio (in process, evaluations included): {training:.2f}x; "
              f"the population command spends {outside:.2f} s outside training (imports, task "
              f"load, store, summary)")
    importing = _import_torch()
    flops = product_flops(lambda: train_population(task, config, members))
    rate = product_rate(len(members))
    floor = importing + flops / rate
    sequential = statistics.median(times["cli sequential"])
    print(f"ceiling: importing torch takes {importing:.2f} s (fresh process, median of 3) and "
          f"the population command's matrix products ({flops / 1e9:.0f} GFLOP, training and "
          f"evaluations) {flops / rate:.2f} s at the {rate / 1e9:.0f} GFLOP/s this CPU reaches "
          f"on a [{len(members)},100,100] batched product; no population command here takes "
          f"less than {floor:.2f} s, so the end-to-end ratio is at most "
          f"{sequential / floor:.2f}x (the target needs {sequential / args.target:.2f} s)")
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not _compiled(optimlab.cli.__file__):
        print("PYTHONDONTWRITEBYTECODE is set and optimlab's modules have no compiled copy: "
              "every process above compiled them from source (about 0.13 s a command on a "
              "2-core AMD EPYC; `make setup` compiles them, as pip does for an installed "
              "package)")
    print(_load())
    if args.check and end_to_end < args.target:
        print(f"FAIL: end-to-end ratio {end_to_end:.2f}x < {args.target:g}x")
        sys.exit(1)


if __name__ == "__main__":
    main()
