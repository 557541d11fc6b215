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
from tests.optim.ddp_worker import distributed_cases, run_all


def _shard(model: torch.nn.Module) -> torch.nn.Module:
    fully_shard(model)
    return model


def main(argv: list[str]) -> int:
    return run_all(argv, distributed_cases(DENSE_CASES), _shard,
                   lambda model, params: [p.full_tensor() for p in model.parameters()])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
