"""One rank of the two-process FSDP2 check (``tests/optim/test_fsdp.py`` starts it with torchrun).

Each optimizer of the capability table (``distributed_cases``) trains the model of
:mod:`tests.optim.ddp_worker` with its parameters sharded by ``fully_shard`` (FSDP2: DTensor
parameters split along their first dimension, unevenly where it is odd), each rank on its
half of the batch, in float64 on CPU (gloo). The rank writes ``OUT/rank{r}.pt``: ``{case id:
[full tensors]}`` for a case that trained, and ``"errors": {case id: "ExceptionType:
message"}`` for one that refused.

    torchrun --nproc-per-node 2 -m tests.optim.fsdp_worker OUT [STEPS]
"""

from __future__ import annotations

import sys

import torch
from torch.distributed.fsdp import fully_shard

from tests.optim.cases import DENSE_CASES
from tests.optim.ddp_worker import ShiftedLoss, distributed_cases, global_mean, run_all, train
from tests.problems import make_params


def _fsdp_case(case, local: torch.Tensor, steps: int, out: str) -> list[torch.Tensor]:
    model = ShiftedLoss(make_params(torch.float64, case.shapes))
    fully_shard(model)
    train(case, model, local, steps, global_mean)
    return [p.full_tensor() for p in model.parameters()]


def main(argv: list[str]) -> int:
    return run_all(argv, distributed_cases(DENSE_CASES), _fsdp_case)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
