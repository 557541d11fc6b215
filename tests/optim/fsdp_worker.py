"""One rank of the two-process FSDP2 check (``tests/optim/test_fsdp.py`` starts it with torchrun).

Each optimizer of the capability table (``distributed_cases``) trains the model of
:mod:`tests.optim.ddp_worker` with its parameters sharded by ``fully_shard`` (FSDP2: DTensor
parameters split along their first dimension, unevenly where it is odd), each rank on its
half of the batch, in float64 on CPU (gloo). The rank writes ``OUT/rank{r}.pt``: ``{case id:
[full tensors]}`` for a case that trained, and ``"errors": {case id: "ExceptionType:
message"}`` for one that refused.

The same run holds the checks of :data:`EXTRAS`, each under its own id:

* ``skip_nonfinite``: Adam with ``skip_nonfinite=True``, an inf written at step 1 into an
  element of the gradient shard that rank 1 alone holds; writes ``{"weights": [full
  tensors], "skipped": skipped_steps}``.
* ``partly sharded``: ``fully_shard`` on a submodule holding the first parameter only, the
  others plain tensors in the same param group (their gradients averaged by hand, as DDP
  would); writes ``{"weights": [full tensors], "grads_kept": bool}`` (a step leaves every
  gradient in place).
* ``lbfgs uneven``: LBFGS (a fixed step, and the strong-Wolfe line search) on parameters
  whose first dimension does not divide by two (3 rows on two processes: torch 2.13 cannot
  flatten such a DTensor); writes ``{"fixed" or "strong_wolfe": [full tensors]}``.
* ``refusals``: ``{what: "ExceptionType: message"}`` for ``state_precision`` at construction
  (``"int8"``, ``"bfloat16"``) and for a switch set on a group after construction
  (``state_precision``, ``cautious``), raised by the first step; and for ``cautious`` set
  on the second of two groups: ``(message, [whether each parameter moved], state entries)``.

    torchrun --nproc-per-node 2 -m tests.optim.fsdp_worker OUT [STEPS]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

import optimlab
from tests.optim.cases import DENSE_CASES, Case
from tests.optim.ddp_worker import Extra, ShiftedLoss, distributed_cases, global_mean, run_all, train
from tests.problems import loss_fn, make_params

#: the non-finite guard: Adam that skips a step whose gradients are not all finite
SKIP = Case("Adam", {"lr": 0.05, "skip_nonfinite": True})
#: the step at which rank 1 writes an inf into its gradient shard
INF_STEP = 1
#: a param group of sharded and plain parameters
PARTLY = Case("Adam", {"lr": 0.05})
#: parameters sharded unevenly over two processes (3 rows, 5 entries, 3 slices)
UNEVEN_SHAPES = [(3, 4), (5,), (3, 2, 2)]


@dataclass(frozen=True)
class UnevenCase(Case):
    """A case of the table on :data:`UNEVEN_SHAPES`."""

    @property
    def shapes(self):
        return UNEVEN_SHAPES


#: LBFGS on unevenly sharded parameters, with and without its line search
LBFGS_UNEVEN = {"fixed": UnevenCase("LBFGS", dict(lr=0.1, max_iter=3, history_size=5)),
                "strong_wolfe": UnevenCase("LBFGS", dict(lr=1.0, max_iter=4,
                                                         line_search_fn="strong_wolfe"))}


def _fsdp_case(case, local: torch.Tensor, steps: int, out: str) -> list[torch.Tensor]:
    model = ShiftedLoss(make_params(torch.float64, case.shapes))
    fully_shard(model)
    train(case, model, local, steps, global_mean)
    return [p.full_tensor() for p in model.parameters()]


def _full(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().full_tensor() if hasattr(p, "full_tensor") else p.detach().clone()
            for p in model.parameters()]


def _skip_nonfinite(local: torch.Tensor, steps: int) -> dict:
    model = ShiftedLoss(make_params(torch.float64, SKIP.shapes))
    fully_shard(model)
    opt = SKIP.build(list(model.parameters()))
    first = next(model.parameters())  # (4, 3): rows 2 and 3 are rank 1's
    for step in range(steps):
        opt.zero_grad()
        model(local).backward()
        if step == INF_STEP and dist.get_rank() == 1:
            first.grad.to_local().view(-1)[-1] = float("inf")
        opt.step()
    return {"weights": _full(model), "skipped": opt.skipped_steps}


class _Head(torch.nn.Module):
    """Parameters whose shifted copies its forward makes (so ``fully_shard`` gathers them)."""

    def __init__(self, params: list[torch.Tensor]):
        super().__init__()
        self.params = torch.nn.ParameterList([torch.nn.Parameter(p.detach().clone())
                                              for p in params])

    def forward(self, shifts: torch.Tensor) -> list[list[torch.Tensor]]:
        return [[p - s for p in self.params] for s in shifts]


class PartlySharded(torch.nn.Module):
    """:class:`ShiftedLoss` (same parameters in the same order, same loss) with its first
    ``split`` parameters in a submodule of their own, which alone is to be sharded."""

    def __init__(self, params: list[torch.Tensor], split: int = 1):
        super().__init__()
        self.head = _Head(params[:split])
        self.tail = torch.nn.ParameterList([torch.nn.Parameter(p.detach().clone())
                                            for p in params[split:]])

    def forward(self, shifts: torch.Tensor) -> torch.Tensor:
        heads = self.head(shifts)
        return torch.stack([loss_fn(head + [p - s for p in self.tail])
                            for head, s in zip(heads, shifts)]).mean()


def _partly_sharded(local: torch.Tensor, steps: int) -> dict:
    model = PartlySharded(make_params(torch.float64, PARTLY.shapes))
    fully_shard(model.head)

    def average(p: torch.Tensor) -> None:  # not sharded: the mean over the ranks, as DDP's
        dist.all_reduce(p.grad)
        p.grad.div_(dist.get_world_size())

    for p in model.tail:
        p.register_post_accumulate_grad_hook(average)
    params = list(model.parameters())
    assert [hasattr(p, "placements") for p in params] == [True] + [False] * (len(params) - 1)
    opt = PARTLY.build(params)
    for _ in range(steps):
        opt.zero_grad()
        model(local).backward()
        opt.step()
    return {"weights": _full(model), "grads_kept": all(p.grad is not None for p in params)}


def _lbfgs_uneven(local: torch.Tensor, steps: int) -> dict:
    return {key: _fsdp_case(case, local, steps, "") for key, case in LBFGS_UNEVEN.items()}


def _error(run: Callable[[], object]) -> str:
    try:
        run()
    except Exception as error:  # noqa: BLE001 (the message is the result)
        return f"{type(error).__name__}: {error}"
    return ""


def _refusals(local: torch.Tensor, steps: int) -> dict:
    model = ShiftedLoss(make_params(torch.float64))
    fully_shard(model)
    params = list(model.parameters())
    out = {precision: _error(lambda precision=precision: optimlab.Adam(
        params, state_precision=precision)) for precision in ("int8", "bfloat16")}

    def later(key, value):
        opt = optimlab.Adam(params, lr=0.05)
        opt.param_groups[0][key] = value
        opt.zero_grad()
        model(local).backward()
        opt.step()

    out["later state_precision"] = _error(lambda: later("state_precision", "int8"))
    out["later cautious"] = _error(lambda: later("cautious", True))

    def later_second_group():  # refused before the first group steps: nothing moves
        opt = optimlab.Adam([{"params": params[:1]}, {"params": params[1:]}], lr=0.05)
        opt.param_groups[1]["cautious"] = True
        before = [p.detach().to_local().clone() for p in params]
        opt.zero_grad()
        model(local).backward()
        error = _error(opt.step)
        moved = [not torch.equal(b, p.detach().to_local()) for b, p in zip(before, params)]
        return error, moved, sum(len(s) for s in opt.state.values())

    out["later second group"] = later_second_group()
    return out


EXTRAS = [Extra("skip_nonfinite", _skip_nonfinite), Extra("partly sharded", _partly_sharded),
          Extra("lbfgs uneven", _lbfgs_uneven), Extra("refusals", _refusals)]


def _run_case(case, local: torch.Tensor, steps: int, out: str):
    if isinstance(case, Extra):
        return case.run(local, steps)
    return _fsdp_case(case, local, steps, out)


def main(argv: list[str]) -> int:
    return run_all(argv, distributed_cases(DENSE_CASES) + EXTRAS, _run_case)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
