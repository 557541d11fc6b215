"""One rank of the two-process DDP check (``tests/optim/test_ddp.py`` starts it with torchrun).

Each optimizer of the capability table (:func:`distributed_cases`) trains a small model under
``torch.nn.parallel.DistributedDataParallel`` (gloo, CPU, float64), each rank on its half of
the global batch, and the rank writes its final parameters to ``OUT/rank{r}.pt``
(``{case id: [tensors]}``, plus ``"errors": {case id: message}`` for a case that raised).

The same run holds the checks of :data:`EXTRAS`, each under its own id:

* ``zero skip_nonfinite``: Adam under ``ZeroRedundancyOptimizer`` (each rank steps its own
  partition of the parameters) with ``skip_nonfinite`` given the world's process group; at
  step :data:`INF_STEP` rank 1 alone writes an inf into every gradient it holds after DDP's
  all-reduce, so only its partition sees it. Writes ``{"weights": [tensors], "skipped":
  skipped_steps}``.

The model holds the case's parameter shapes; sample ``b`` of the batch shifts every
parameter by ``s_b`` before the shared test loss, so each rank's gradient differs and only
the all-reduced mean is the full batch's. A closure returns the *global* loss (all-reduced),
which LBFGS's line search compares across ranks' identical paths.

    torchrun --nproc-per-node 2 -m tests.optim.ddp_worker OUT [STEPS]
"""

from __future__ import annotations

import datetime
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

import optimlab
from tests.optim.cases import ALL_CASES, Case
from tests.problems import loss_fn, make_params, sparsify

#: the global batch: one shift per sample, split evenly over the ranks
BATCH = torch.linspace(-0.5, 0.5, 8, dtype=torch.float64)


def distributed_cases(cases: list) -> list:
    """The settings the two-process checks run: each optimizer's first case, and every case
    that turns on a switch that changes what the rule reads (``cautious``): the capability
    table's other settings change numbers, not how the step is distributed."""
    seen, out = set(), []
    for case in cases:
        switched = any(case.hp.get(k) for k in case.capabilities.reduces_when)
        if case.cls_name not in seen or switched:
            out.append(case)
            seen.add(case.cls_name)
    return out


class ShiftedLoss(torch.nn.Module):
    """The test problem as a module: the mean over the batch of ``loss(params - s_b)``."""

    def __init__(self, params: list[torch.Tensor]):
        super().__init__()
        self.params = torch.nn.ParameterList([torch.nn.Parameter(p.detach().clone())
                                              for p in params])

    def forward(self, shifts: torch.Tensor) -> torch.Tensor:
        return torch.stack([loss_fn([p - s for p in self.params]) for s in shifts]).mean()


def train(case, model: torch.nn.Module, shifts: torch.Tensor, steps: int,
          reduce_loss=None) -> list[torch.Tensor]:
    """``steps`` steps of ``case`` on ``model`` (a ShiftedLoss, maybe inside DDP)."""
    params = list(model.parameters())
    opt = case.build(params)
    run_steps(case, model, opt, shifts, steps, reduce_loss)
    return [p.detach().clone() for p in params]


def run_steps(case, model: torch.nn.Module, opt: torch.optim.Optimizer, shifts: torch.Tensor,
              steps: int, reduce_loss=None) -> None:
    """``steps`` steps of ``opt`` (built by ``case`` on ``model``'s parameters)."""
    params = list(model.parameters())
    sign = -1.0 if case.maximize else 1.0
    sparse = case.capabilities.sparse_only

    def closure():
        opt.zero_grad()
        loss = sign * model(shifts)
        loss.backward()
        if sparse:
            sparsify(params)
        if reduce_loss is None:
            return loss
        return reduce_loss(loss.detach())

    for _ in range(steps):
        if case.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()


def global_mean(loss: torch.Tensor) -> torch.Tensor:
    total = loss.clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def run_all(argv: list[str], cases, run_case) -> int:
    """Run every case on this rank and save the results (the body of the workers).

    ``argv`` is ``OUT [STEPS]``; ``run_case(case, local, steps, out)`` trains one case on
    this rank's half of the batch (``local``) and returns what is written for it, or None
    for a case it leaves out. A case that raises is written as ``"Type: message"`` and its
    traceback under ``"errors"``.
    """
    out, steps = argv[0], int(argv[1]) if len(argv) > 1 else 10
    # a collective that one rank never joins fails in 2 minutes, naming itself, instead
    # of waiting gloo's default 30 (past the launching test's own 10-minute limit)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    local = BATCH.chunk(world)[rank]
    results: dict = {"errors": {}}
    for case in cases:
        try:
            result = run_case(case, local, steps, out)
            if result is not None:
                results[case.id] = result
        except Exception as error:  # noqa: BLE001 (reported per case to the test)
            results["errors"][case.id] = (f"{type(error).__name__}: {error}\n"
                                          + traceback.format_exc(limit=6))
        dist.barrier()
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()
    return 0


@dataclass(frozen=True)
class Extra:
    """A check of the same run that is no case of the table: ``run(local, steps)``."""

    id: str
    run: Callable[[torch.Tensor, int], dict]


#: Adam with the non-finite guard (its ``skip_nonfinite`` the world's process group in the
#: ZeRO check; True in the single-process run it is compared with)
ZERO_SKIP = Case("Adam", {"lr": 0.05, "skip_nonfinite": True})
#: the step at which rank 1 writes an inf into its gradients
INF_STEP = 1


def _zero_skip_nonfinite(local: torch.Tensor, steps: int) -> dict:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    model = torch.nn.parallel.DistributedDataParallel(
        ShiftedLoss(make_params(torch.float64, ZERO_SKIP.shapes)))
    params = list(model.parameters())
    opt = ZeroRedundancyOptimizer(params, optimizer_class=optimlab.Adam,
                                  **{**ZERO_SKIP.hp, "skip_nonfinite": dist.group.WORLD})
    for step in range(steps):
        opt.zero_grad()
        model(local).backward()
        if step == INF_STEP and dist.get_rank() == 1:
            for p in params:
                p.grad.view(-1)[-1] = float("inf")
        opt.step()
    return {"weights": [p.detach().clone() for p in params], "skipped": opt.optim.skipped_steps}


#: the checks of this run that are no case of the table
EXTRAS = [Extra("zero skip_nonfinite", _zero_skip_nonfinite)]


def _ddp_case(case, local: torch.Tensor, steps: int, out: str) -> list[torch.Tensor] | dict:
    if isinstance(case, Extra):
        return case.run(local, steps)
    model = torch.nn.parallel.DistributedDataParallel(
        ShiftedLoss(make_params(torch.float64, case.shapes)))
    return train(case, model, local, steps, global_mean)


def main(argv: list[str]) -> int:
    return run_all(argv, distributed_cases(ALL_CASES) + EXTRAS, _ddp_case)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


#: the start of a script run by a fresh interpreter: one rank of gloo on a free local port,
#: with the DTensor names a sharded parameter needs (``distribute_tensor(t, init_device_mesh(
#: "cpu", (1,)), [Shard(0)])``)
ONE_RANK_GLOO = """
import os, socket, warnings
import torch, torch.distributed as dist
warnings.simplefilter("ignore")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
dist.init_process_group("gloo", rank=0, world_size=1)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor
"""
