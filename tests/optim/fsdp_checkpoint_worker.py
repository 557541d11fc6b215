"""One rank of the two-process FSDP2 checkpoint check (``tests/optim/test_fsdp_checkpoint.py``).

For each optimizer of the capability table that steps sharded parameters (the others refuse
at construction, as ``test_fsdp.py`` checks), the model of :mod:`tests.optim.ddp_worker` is
sharded by ``fully_shard`` and trained four ways, each rank on its half of the batch:

* ``uninterrupted``: ``STEPS`` steps;
* ``state_dict``: ``STEPS // 2`` steps, then the optimizer's and the model's ``state_dict()``
  (DTensor values) are copied into a fresh model and optimizer, built from other weights,
  with ``load_state_dict``, which take the remaining steps;
* ``dcp``: the same through ``torch.distributed.checkpoint`` (``get_state_dict``,
  ``dcp.save`` to disk, ``dcp.load`` and ``set_state_dict`` into a fresh pair), the way
  FSDP2 checkpoints are written;
* ``full``: the same with ``StateDictOptions(full_state_dict=True)``: whole (gathered)
  tensors on every rank, as for a single-file checkpoint, set into a fresh sharded pair
  (not for an optimizer without state tensors, which torch's loader refuses).

``get_state_dict`` first fills a fresh optimizer's state by stepping it once with zero
gradients and ``lr`` 0; an optimizer that needs a closure cannot take that step (torch's
own LBFGS neither), so those run the ``state_dict`` way only.

The rank writes ``OUT/rank{r}.pt``: ``{case id: {way: [full tensors]}}``, with ``"half"``
the weights after ``STEPS // 2`` steps and ``"stateless"`` whether the optimizer kept no
state tensor, and ``"errors": {case id: "Type: message"}``.

    torchrun --nproc-per-node 2 -m tests.optim.fsdp_checkpoint_worker OUT [STEPS]
"""

from __future__ import annotations

import copy
import os
import sys

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import fully_shard

from tests.optim.cases import DENSE_CASES
from tests.optim.ddp_worker import (
    ShiftedLoss,
    distributed_cases,
    global_mean,
    run_all,
    run_steps,
)
from tests.problems import make_params


def _sharded(case, seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = ShiftedLoss(make_params(torch.float64, case.shapes, seed=seed))
    fully_shard(model)
    return model, case.build(list(model.parameters()))


def _full(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().full_tensor() for p in model.parameters()]


def _resumed(case, local: torch.Tensor, steps: int, way: str, folder: str) -> dict:
    """Half the steps, a checkpoint the given ``way``, a fresh pair loaded from it, and the
    other half; the weights at the half and at the end."""
    half = steps // 2
    model, opt = _sharded(case)
    run_steps(case, model, opt, local, half, global_mean)
    out = {"half": _full(model)}
    fresh_model, fresh_opt = _sharded(case, seed=1)  # other weights: the load must set them
    if way == "state_dict":
        fresh_model.load_state_dict(copy.deepcopy(model.state_dict()))
        fresh_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    elif way == "full":
        full = StateDictOptions(full_state_dict=True)
        model_state, optim_state = copy.deepcopy(get_state_dict(model, opt, options=full))
        set_state_dict(fresh_model, fresh_opt, model_state_dict=model_state,
                       optim_state_dict=optim_state, options=full)
    else:
        model_state, optim_state = get_state_dict(model, opt)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=folder)
        model_state, optim_state = get_state_dict(fresh_model, fresh_opt)
        loaded = {"model": model_state, "optim": optim_state}
        dcp.load(loaded, checkpoint_id=folder)
        set_state_dict(fresh_model, fresh_opt, model_state_dict=loaded["model"],
                       optim_state_dict=loaded["optim"])
    run_steps(case, fresh_model, fresh_opt, local, steps - half, global_mean)
    out["end"] = _full(fresh_model)
    return out


def _checkpoint_case(case, local: torch.Tensor, steps: int, out: str) -> dict | None:
    try:
        model, opt = _sharded(case)
    except ValueError:  # refuses sharded parameters (test_fsdp.py holds the message)
        return None
    run_steps(case, model, opt, local, steps, global_mean)
    runs = {"uninterrupted": _full(model)}
    # torch's loader of a full optimizer state dict asserts on one that holds no tensor
    # (torch.optim.SGD without momentum too): "Expected device to be set"
    stateless = not any(torch.is_tensor(value) for entries in opt.state.values()
                        for value in entries.values())
    ways = ["state_dict"] + ([] if case.needs_closure else
                             ["dcp"] + ([] if stateless else ["full"]))
    for way in ways:
        resumed = _resumed(case, local, steps, way, os.path.join(out, f"{case.id}-{way}"))
        runs["half"], runs[way] = resumed["half"], resumed["end"]
    return {**runs, "stateless": stateless}


def main(argv: list[str]) -> int:
    return run_all(argv, distributed_cases(DENSE_CASES), _checkpoint_case)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
