"""One rank of the two-process FSDP2 check (``tests/optim/test_fsdp.py`` starts it with torchrun).

Every case of the capability table trains the model of :mod:`tests.optim.ddp_worker` with its
parameters sharded by ``fully_shard`` (FSDP2: DTensor parameters split along their first
dimension, unevenly where it is odd), each rank on its half of the batch, in float64 on CPU
(gloo). The rank writes ``OUT/rank{r}.pt``: ``{case id: [full tensors]}`` for a case that
trained, and ``"errors": {case id: "ExceptionType: message"}`` for one that refused.

    torchrun --nproc-per-node 2 -m tests.optim.fsdp_worker OUT [STEPS]
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

from tests.optim.cases import DENSE_CASES
from tests.optim.ddp_worker import BATCH, ShiftedLoss, _global_mean, train
from tests.problems import make_params


def main(argv: list[str]) -> int:
    out, steps = argv[0], int(argv[1]) if len(argv) > 1 else 10
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = BATCH.chunk(world)[rank]
    results: dict = {"errors": {}}
    for case in DENSE_CASES:
        model = ShiftedLoss(make_params(torch.float64, case.shapes))
        fully_shard(model)
        try:
            params = train(case, model, local, steps, _global_mean)
            results[case.id] = [p.full_tensor() for p in model.parameters()]
            assert len(params) == len(results[case.id])
        except Exception as error:  # noqa: BLE001 (reported per case to the test)
            results["errors"][case.id] = f"{type(error).__name__}: {error}"
        dist.barrier()
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
