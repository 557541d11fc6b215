"""Optimizer state in less memory: bytes per parameter and the training lab's metric.

For each optimizer and each ``state_precision`` (None = float32, "bfloat16", "int8"), this
measures on the training lab's tasks:

* the bytes of optimizer state per model parameter, read from the optimizer's state after
  one step on the task's model (every tensor in the state, step counters and 8-bit block
  scales included);
* the final test metric (accuracy) of ``--seeds`` runs, median and range, with the float32
  state's as the reference in the same run.

Where ``torchao`` is importable, its 8-bit AdamW (``torchao.optim.AdamW8bit``, blockwise with
a dynamic code, as ``state_precision="int8"``) runs beside optimlab's on the same task, with
the same model, seeds and batches; otherwise the table says it was not run.

    python benchmarks/compact_state.py                      # digits and mnist1d, 3 seeds
    python benchmarks/compact_state.py --tasks digits --seeds 5 --steps 2000
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time

import torch

from optimlab.bench.store.environment import cpu_description
from optimlab.bench.tasks import get
from optimlab.bench.trainer import Member, TrainConfig, _init_model, train_sequential
from optimlab.optim import compact
from optimlab.optim.registry import create

PRECISIONS = (None, "bfloat16", "int8")
#: optimizer -> its hyperparameters on these tasks (the defaults the training lab uses)
OPTIMIZERS = {"adam": {"lr": 1e-3}, "momentum": {"lr": 0.05}, "lion": {"lr": 1e-4}}


def bytes_per_param(task, optimizer: str, hparams: dict, precision) -> float:
    """Optimizer state bytes per model parameter after one step on ``task``'s model."""
    model = _init_model(task, None, 0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = create(optimizer, params, **hparams, state_precision=precision)
    loss = task.loss_fn(model(task.x_train[:64]), task.y_train[:64])
    loss.backward()
    opt.step()
    return sum(compact.state_bytes(s) for s in opt.state.values()) / sum(p.numel()
                                                                        for p in params)


def torchao_run(task, config: TrainConfig, seed: int) -> tuple[float, float]:
    """(final test accuracy, state bytes per parameter) of torchao's AdamW8bit."""
    from torch.func import functional_call
    from torchao.optim import AdamW8bit

    from optimlab.bench.trainer import _metric, batch_indices

    model = _init_model(task, None, seed)
    params = list(model.parameters())
    # weight_decay 0: the comparison is with Adam; block_size as optimlab's
    opt = AdamW8bit(params, lr=OPTIMIZERS["adam"]["lr"], weight_decay=0.0,
                    block_size=compact.BLOCK)
    index = batch_indices(len(task.x_train), config.batch_size, seed, config.steps)
    for step in range(config.steps):
        rows = index[step]
        opt.zero_grad()
        task.loss_fn(model(task.x_train[rows]), task.y_train[rows]).backward()
        opt.step()
    with torch.no_grad():
        out = functional_call(model, dict(model.named_parameters()), (task.x_test,))
        metric = float(_metric(task, out, task.y_test, task.loss_fn(out, task.y_test)))
    held = 0
    for state in opt.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                # torchao's quantised tensors are subclasses holding codes and scales
                inner = [getattr(value, n) for n in ("codes", "scale") if hasattr(value, n)]
                held += sum(t.numel() * t.element_size() for t in inner) if inner else \
                    value.numel() * value.element_size()
    return metric, held / sum(p.numel() for p in params)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="digits,mnist1d",
                        help="comma-separated training-lab tasks (default digits,mnist1d)")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                        help=f"comma-separated optimizers, any of {', '.join(OPTIMIZERS)} "
                             f"(default {','.join(OPTIMIZERS)})")
    parser.add_argument("--seeds", type=int, default=3,
                        help="runs per optimizer and state precision (default 3)")
    parser.add_argument("--steps", type=int, default=1000, help="steps of every run (default 1000)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.optimizers.split(",") if name not in OPTIMIZERS]
    if unknown:
        parser.error(f"unknown optimizer(s) {', '.join(unknown)}; choose from {', '.join(OPTIMIZERS)}")
    print(f"cpu: {cpu_description()}", flush=True)
    torch.set_num_threads(1)
    has_torchao = importlib.util.find_spec("torchao") is not None
    print("| task | optimizer | state | bytes/param | test accuracy, median [min, max] "
          "| vs float32 state | wall s |")
    print("|---|---|---|---|---|---|---|")
    for task_name in args.tasks.split(","):
        task = get(task_name)
        config = TrainConfig(steps=args.steps, batch_size=100, eval_every=args.steps)
        for optimizer in args.optimizers.split(","):
            hparams = OPTIMIZERS[optimizer]
            reference = None
            for precision in PRECISIONS:
                members = [Member(optimizer, {**hparams, "state_precision": precision}, seed)
                           for seed in range(args.seeds)]
                start = time.perf_counter()
                results = train_sequential(task, config, members)
                wall = time.perf_counter() - start
                finals = [r.test_metric[-1] for r in results]
                median = statistics.median(finals)
                if precision is None:
                    reference = median
                size = bytes_per_param(task, optimizer, hparams, precision)
                print(f"| {task_name} | {optimizer} | {precision or 'float32'} | {size:.3f} | "
                      f"{median:.4f} [{min(finals):.4f}, {max(finals):.4f}] | "
                      f"{median - reference:+.4f} | {wall:.1f} |", flush=True)
            if optimizer == "adam":
                if not has_torchao:
                    print(f"| {task_name} | torchao AdamW8bit | int8 | - | not run: torchao "
                          "is not installed | - | - |")
                    continue
                start = time.perf_counter()
                try:
                    runs = [torchao_run(task, config, seed) for seed in range(args.seeds)]
                except Exception as error:  # noqa: BLE001 (report why it does not run here)
                    print(f"| {task_name} | torchao AdamW8bit | int8 | - | not run: "
                          f"{type(error).__name__}: {str(error).splitlines()[0][:80]} | - | - |")
                    continue
                wall = time.perf_counter() - start
                finals = [m for m, _ in runs]
                median = statistics.median(finals)
                print(f"| {task_name} | torchao AdamW8bit | int8 | {runs[0][1]:.3f} | "
                      f"{median:.4f} [{min(finals):.4f}, {max(finals):.4f}] | "
                      f"{median - reference:+.4f} | {wall:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
