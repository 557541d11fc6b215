"""One rank of the two-process ZeRO checkpoint checks (``tests/optim/test_zero_checkpoint.py``
starts one process per rank, gloo over a file store, nothing on the network).

    python -m tests.optim.zero_worker OUT SCENARIO RANK STORE

Each scenario trains ``ZeroRedundancyOptimizer(..., optimizer_class=optimlab.Adam)`` for
:data:`STEPS` steps on four small tensors (two per rank's partition), consolidates the
state_dict, loads it into a fresh ZeRO optimizer over a copy of the weights and steps both
once more on the same gradients; the rank writes ``OUT/rank{r}.pt``: ``{"trained": [...],
"resumed": [...], "skipped": (trained's count, resumed's count), ...}`` or ``{"error": ...}``.

* ``guard``: ``skip_nonfinite=dist.group.WORLD`` (the README's form), rank 1 writes an inf
  into its gradients at step :data:`INF_STEP` (both ranks skip); each rank gets the
  consolidated dict by consolidating to itself (ZeRO's own groups hold the process group,
  so its global dict is not sent between processes), and checks that the local
  optimizer's state_dict pickles.
* ``int8``: ``state_precision="int8"``, consolidated to rank 0 and broadcast.
"""

from __future__ import annotations

import copy
import datetime
import io
import os
import sys
import traceback

import torch
import torch.distributed as dist

import optimlab

STEPS = 3
INF_STEP = 1
SHAPES = [(3, 4), (5,), (2, 3), (7,)]
#: seconds a collective waits for the other rank
TIMEOUT = 30


def _params() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_() for s in SHAPES]


def _grads(params: list[torch.Tensor], step: int, rank: int, inf: bool = False) -> None:
    for i, p in enumerate(params):
        p.grad = (p.detach() - 0.1 * (i + 1) * (step + 1)) * (1.0 + rank)
        if inf:
            p.grad.view(-1)[-1] = float("inf")


def _run(scenario: str, rank: int) -> dict:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    hp: dict = {"lr": 0.01}
    if scenario == "guard":
        hp["skip_nonfinite"] = dist.group.WORLD
    else:
        hp["state_precision"] = "int8"
    params = _params()
    zero = ZeroRedundancyOptimizer(params, optimizer_class=optimlab.Adam, **hp)
    for step in range(STEPS):
        _grads(params, step, rank, inf=scenario == "guard" and step == INF_STEP and rank == 1)
        zero.step()
    out: dict = {}
    if scenario == "guard":
        # what consolidate_state_dict sends between processes: it must pickle
        torch.save(zero.optim.state_dict(), io.BytesIO())
        for to in range(dist.get_world_size()):
            zero.consolidate_state_dict(to=to)
            if to == rank:
                sd = zero.state_dict()
        # ZeRO's own groups hold what this optimizer's groups held after the last step
        torch.save(sd, io.BytesIO())
    else:
        zero.consolidate_state_dict(to=0)
        box = [zero.state_dict() if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        sd = box[0]
    # as a save and load would give it: on rank 0 the dict holds the live state tensors
    sd = copy.deepcopy(sd)
    copies = [p.detach().clone().requires_grad_() for p in params]
    fresh = ZeroRedundancyOptimizer(copies, optimizer_class=optimlab.Adam, **hp)
    fresh.load_state_dict(sd)
    for opt, ps in ((zero, params), (fresh, copies)):
        _grads(ps, STEPS, rank)
        opt.step()
    out["trained"] = [p.detach().clone() for p in params]
    out["resumed"] = [p.detach().clone() for p in copies]
    out["skipped"] = (zero.optim.skipped_steps, fresh.optim.skipped_steps)
    out["guards"] = [getattr(opt.optim._nonfinite_group, "group", None) is dist.group.WORLD
                     for opt in (zero, fresh)]
    return out


def main(argv: list[str]) -> int:
    out, scenario, rank, store = argv[0], argv[1], int(argv[2]), argv[3]
    # a collective one rank never joins fails in TIMEOUT seconds, not gloo's default 30 min
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=TIMEOUT))
    try:
        result = _run(scenario, rank)
    except Exception as error:  # noqa: BLE001 (reported to the test)
        result = {"error": f"{type(error).__name__}: {error}\n" + traceback.format_exc(limit=8)}
        torch.save(result, os.path.join(out, f"rank{rank}.pt"))
        os._exit(1)  # the other rank may wait in a collective: it times out on its own
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
