"""The optimizers under FSDP2 (``fully_shard``, DTensor parameters split over two processes).

``torchrun --nproc-per-node 2`` starts :mod:`tests.optim.fsdp_worker` once for the module
(gloo on CPU, loopback only). An optimizer whose step needs each element alone (its
capability record's ``shards_for``) steps each process's local shard: it must end with the
weights of one process trained on the whole batch (the bound of ``test_ddp.py``), the same
on both ranks. One whose step reads a parameter as a whole (LAMB's and LARS's norms, Muon's
and the preconditioners' matrices, Adafactor's factors, cautious masking's counts, the
group sums of Prodigy and D-Adaptation, Sophia's curvature probe) must refuse at
construction with a ``ValueError`` naming the sharded parameter. LBFGS, SAM and Lookahead
work on the DTensors themselves (their norms and dot products are DTensor reductions, which
are global) and must match too.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

import optimlab
from optimlab.optim.base import RuleOptimizer
from tests.optim.cases import DENSE_CASES
from tests.optim.ddp_worker import distributed_cases
from tests.optim.test_ddp import relative, run_ranks, single_process_bound

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")

STEPS = 10


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    pytest.importorskip("torch.distributed.fsdp", reason="FSDP2 (fully_shard) missing")
    return run_ranks("tests.optim.fsdp_worker", tmp_path_factory, STEPS)


def _refuses(case) -> bool:
    return issubclass(getattr(optimlab, case.cls_name), RuleOptimizer) \
        and not case.capabilities.shards_for(case.hp)


@pytest.mark.parametrize("case", distributed_cases(DENSE_CASES), ids=lambda c: c.id)
def test_sharded_steps_match_one_process_or_refuse_naming_the_parameter(ranks, case):
    first, second = ranks
    if _refuses(case):
        error = first["errors"].get(case.id, "")
        assert error.startswith(f"ValueError: {case.cls_name} cannot step the sharded "
                                "parameter 0 of param group 0 (shape"), error
        return
    assert case.id not in first["errors"], first["errors"][case.id]
    assert all(torch.equal(a, b) for a, b in zip(first[case.id], second[case.id]))
    single, bound = single_process_bound(case, STEPS)
    assert relative(first[case.id], single) <= bound


def test_both_kinds_occur():
    """The table holds optimizers of both kinds (so neither branch above is vacuous)."""
    kinds = {_refuses(case) for case in distributed_cases(DENSE_CASES)}
    assert kinds == {True, False}
