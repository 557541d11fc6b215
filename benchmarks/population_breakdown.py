"""Where a population training step's time goes, op by op, in the real ``train_population``.

Trains the population of ``benchmarks/population_speed.py`` (64 MNIST-1D MLP members, Adam
over 8 learning rates x 8 seeds, batch 100) in ``--rounds`` rounds, after a short warm-up.
Each round runs it twice: once plainly timed, and once with every aten operation timed
where it runs (a ``TorchDispatchMode`` that reads the clock around each call, forward and
backward alike) and the fused optimizer step timed around its kernel call. It prints, per
training step and per evaluation:

* the matrix products (``bmm``, ``baddbmm``, ``mm``, ``addmm``), their FLOP rate, and what
  the same products would take at the rate this CPU reaches on one warm ``[64,100,100]``
  batched product (measured now): the gap is what cache misses cost them in place;
* the optimizer step, its bytes (parameter, gradient and state read, parameter and state
  written), the bandwidth they imply, and the bandwidth of a plain copy of as many bytes
  (measured now: what moving them costs here at the least);
* the other operations (elementwise, reductions, the mini-batch gather), the largest first;
* what is left of the plainly timed run: Python, autograd, the allocator and the set-up.

The timing mode adds Python work around every operation, so the run under it is slower
than the plain one; the operations' own times are read inside it and are not. Each figure
is a median over the rounds.

    python benchmarks/population_breakdown.py [--steps 300] [--rounds 3] [--eval-every N]

``--eval-every`` evaluates every N steps (default: ``--steps``, so at step 0 and at the
end); ``--eval-every 15`` with 300 steps evaluates 21 times, as ``optimlab bench`` does. The
plainly timed run also times each evaluation around its call and prints their median.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import torch
from _ceiling import adam_population, copy_rate, product_rate
from torch.utils._python_dispatch import TorchDispatchMode

from optimlab.bench import trainer
from optimlab.bench.store.environment import cpu_description
from optimlab.bench.tasks import get
from optimlab.bench.trainer import TrainConfig, train_population
from optimlab.optim import engine

PRODUCTS = {"aten.bmm.default", "aten.baddbmm.default", "aten.mm.default",
            "aten.addmm.default"}
#: operations that only make views or metadata (no data moves): left out of the tables
VIEWS = {"aten.view.default", "aten.transpose.int", "aten.unsqueeze.default",
         "aten.expand.default", "aten.detach.default", "aten.select.int",
         "aten._unsafe_view.default", "aten.as_strided.default", "aten.t.default",
         "aten.reshape.default", "aten.squeeze.dim", "aten.slice.Tensor"}


class OpTimer(TorchDispatchMode):
    """Add each aten operation's time to ``seconds[(phase, name)]`` and its matrix-product
    FLOPs to ``flops[phase]``; ``phase`` is ``"train"`` or ``"eval"``."""

    def __init__(self):
        super().__init__()
        self.phase = "train"
        self.seconds: dict[tuple[str, str], float] = collections.defaultdict(float)
        self.flops: dict[str, float] = collections.defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        elapsed = time.perf_counter() - start
        name = str(func)
        if name not in VIEWS:
            self.seconds[(self.phase, name)] += elapsed
            if name in PRODUCTS:
                self.flops[self.phase] += _product_flops(name, args, out)
        return out


def _product_flops(name: str, args: tuple, out: torch.Tensor) -> float:
    """2 x (output elements) x (inner dimension) of a matrix product."""
    first = args[1] if name in ("aten.baddbmm.default", "aten.addmm.default") else args[0]
    return 2.0 * out.numel() * first.shape[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of a plain and an instrumented run; medians printed "
                             "(default 3)")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="evaluate every N steps (default: --steps, two evaluations)")
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1 or (args.eval_every is not None and args.eval_every < 1):
        parser.error("--steps, --rounds and --eval-every must be at least 1")
    print(f"cpu: {cpu_description()}", flush=True)
    task = get("mnist1d")
    members = adam_population(64)
    config = TrainConfig(steps=args.steps, batch_size=100, eval_every=args.eval_every or args.steps,
                         model="mlp")
    # warm up on all the members, as the timed runs hold them (population_speed.py): the
    # first run at full size also faults in its full-size buffers, which no timed run should
    # pay for; a few steps suffice, the buffers are the same size at any step count
    train_population(task, TrainConfig(steps=5, batch_size=100, model="mlp"), members)

    # the fused optimizer step is one C call, not an aten operation: time it around its call
    step_seconds: list[float] = []
    numbers = [0]
    run = engine._MemberPlan.run

    def timed_run(self, params, grads, states):
        start = time.perf_counter()
        done = run(self, params, grads, states)
        step_seconds.append(time.perf_counter() - start)
        numbers[0] = sum(p.numel() for p in params)
        return done

    scores = trainer._population_scores
    evaluations = [0]

    def timed_scores(*a, **k):
        timer.phase = "eval"
        try:
            return scores(*a, **k)
        finally:
            timer.phase = "train"
            evaluations[0] += 0.5  # two sets (train, test) per evaluation

    # the plain runs time each evaluation (its two sets) around its calls, nothing inside
    eval_calls: list[float] = []

    def clocked_scores(*a, **k):
        start = time.perf_counter()
        try:
            return scores(*a, **k)
        finally:
            eval_calls.append(time.perf_counter() - start)

    rounds, plain, eval_times = [], [], []
    for _ in range(args.rounds):  # a plain run, then an instrumented one, in each round
        eval_calls.clear()
        trainer._population_scores = clocked_scores
        try:
            start = time.perf_counter()
            train_population(task, config, members)
            plain.append(time.perf_counter() - start)
        finally:
            trainer._population_scores = scores
        eval_times += [a + b for a, b in zip(eval_calls[::2], eval_calls[1::2])]
        engine._MemberPlan.run, trainer._population_scores = timed_run, timed_scores
        try:
            timer = OpTimer()
            step_seconds.clear()
            evaluations[0] = 0
            with timer:
                train_population(task, config, members)
            rounds.append((timer, sum(step_seconds), evaluations[0]))
        finally:
            engine._MemberPlan.run, trainer._population_scores = run, scores

    steps, evals = args.steps, rounds[0][2]
    rate = product_rate(64)
    flops = {ph: rounds[0][0].flops[ph] for ph in ("train", "eval")}
    per_op = collections.defaultdict(list)
    for timer, _, _ in rounds:
        for key, seconds in timer.seconds.items():
            per_op[key].append(seconds)
    op_median = {k: statistics.median(v + [0.0] * (len(rounds) - len(v))) for k, v in per_op.items()}

    def total(phase: str, products: bool) -> float:
        return sum(v for (ph, name), v in op_median.items()
                   if ph == phase and (name in PRODUCTS) == products)

    t_plain = statistics.median(plain)
    t_step = statistics.median(seconds for _, seconds, _ in rounds)
    bytes_per_step = numbers[0] * 4 * 7  # Adam float32: p, g, m, v read; p, m, v written
    print(f"64 members (adam, 8 lrs x 8 seeds), {steps} steps, batch 100, {evals:.0f} "
          f"evaluations; torch threads {torch.get_num_threads()}")
    print(f"train_population, plainly timed: {t_plain:.2f} s (median of {len(plain)}: "
          f"{min(plain):.2f}..{max(plain):.2f} s), {t_plain / steps * 1e3:.2f} ms per step "
          f"with the evaluations")
    prod = total("train", True)
    print(f"\nper training step (ms), medians of {len(rounds)} instrumented runs")
    print(f"  matrix products      {prod / steps * 1e3:6.2f}  ({flops['train'] / steps / 1e6:.0f} "
          f"MFLOP, {flops['train'] / prod / 1e9:.0f} GFLOP/s in place; "
          f"{flops['train'] / rate / steps * 1e3:.2f} ms at the {rate / 1e9:.0f} GFLOP/s of a "
          f"warm [64,100,100] product)")
    if t_step > 0:
        copy = copy_rate(bytes_per_step)
        print(f"  optimizer step       {t_step / steps * 1e3:6.2f}  (fused Adam over "
              f"{numbers[0] / 1e6:.2f}M numbers, {bytes_per_step / 1e6:.0f} MB: "
              f"{bytes_per_step * steps / t_step / 1e9:.0f} GB/s; a copy of as many bytes "
              f"runs at {copy / 1e9:.0f} GB/s here: {bytes_per_step / copy * 1e3:.2f} ms)")
    else:  # no C compiler: the plain path's operations are among the others
        print("  optimizer step         (not fused here: its operations are among the others)")
    other = total("train", False)
    print(f"  other operations     {other / steps * 1e3:6.2f}  (largest below)")
    for (ph, name), v in sorted(op_median.items(), key=lambda kv: -kv[1])[:40]:
        if ph == "train" and name not in PRODUCTS and v / steps > 20e-6:
            print(f"      {v / steps * 1e3:6.3f}  {name}")
    ev_prod, ev_other = total("eval", True), total("eval", False)
    left = t_plain - prod - t_step - other - ev_prod - ev_other
    print(f"  everything else      {left / steps * 1e3:6.2f}  (the plainly timed run less every "
          f"figure here: Python, autograd, allocation, the run's set-up)")
    if evals:
        print(f"\nper evaluation ({evals:.0f} of 64 members on a train and a test set; the "
              f"last on the whole sets, the others on {config.eval_subset}-example subsets), "
              f"ms: matrix products {ev_prod / evals * 1e3:.1f} "
              f"({flops['eval'] / ev_prod / 1e9:.0f} GFLOP/s), other operations "
              f"{ev_other / evals * 1e3:.1f}")
        between = sorted(eval_times)
        print(f"evaluations in the plainly timed runs: {sum(eval_times) / len(plain):.2f} s a run; "
              f"each {statistics.median(between) * 1e3:.1f} ms (median of {len(between)}; "
              f"{between[0] * 1e3:.1f}..{between[-1] * 1e3:.1f} ms; the last of each run reads the "
              f"whole sets)")


if __name__ == "__main__":
    main()
