"""Optimizer checkpoints under FSDP2 resume exactly, in memory and through DCP.

``torchrun --nproc-per-node 2`` starts :mod:`tests.optim.fsdp_checkpoint_worker` once per
session (gloo on CPU, loopback only). For every optimizer of the capability table that steps
sharded parameters, a run interrupted halfway, checkpointed and resumed in a fresh model and
optimizer built from other weights must end bit-identical to the uninterrupted run on both
ranks: through ``state_dict`` / ``load_state_dict`` (DTensor state), and, where the
optimizer steps without a closure, through ``torch.distributed.checkpoint`` (``get_state_dict``,
``dcp.save``, ``dcp.load``, ``set_state_dict``), which keeps only ``state`` and
``param_groups`` and first steps a fresh optimizer once with ``lr`` 0, and through DCP's
full (gathered) state dicts.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from tests.optim.cases import DENSE_CASES
from tests.optim.ddp_worker import distributed_cases
from tests.optim.test_ddp import run_ranks
from tests.optim.test_fsdp import _refuses

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")

STEPS = 10
CASES = [case for case in distributed_cases(DENSE_CASES) if not _refuses(case)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    pytest.importorskip("torch.distributed.fsdp", reason="FSDP2 (fully_shard) missing")
    pytest.importorskip("torch.distributed.checkpoint.state_dict", reason="DCP missing")
    return run_ranks("tests.optim.fsdp_checkpoint_worker", tmp_path_factory, STEPS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_resumed_sharded_run_is_bit_identical(ranks, case):
    first, second = ranks
    assert case.id not in first["errors"], first["errors"][case.id]
    runs = first[case.id]
    # DCP's full-state loader refuses an optimizer without state tensors (torch's SGD too)
    ways = {"state_dict"} | (set() if case.needs_closure else
                             {"dcp"} | (set() if runs["stateless"] else {"full"}))
    assert ways <= set(runs)
    # the second half moved the weights, so equal ends say the state was restored
    assert any(not torch.equal(a, b) for a, b in zip(runs["half"], runs["uninterrupted"]))
    for way in ways:
        assert all(torch.equal(a, b) for a, b in zip(runs[way], runs["uninterrupted"])), way
        assert all(torch.equal(a, b) for a, b in zip(runs[way], second[case.id][way])), way


def test_the_dcp_ways_cover_a_wrapper_and_running_group_state(ranks):
    """Lookahead (its own entries beside the inner optimizer's) and schedule-free (running
    values in its groups) go through both DCP ways, so those forms are exercised."""
    first, _ = ranks
    for case in CASES:
        if case.cls_name in ("Lookahead", "ScheduleFreeAdamW", "Adam"):
            assert {"dcp", "full"} <= set(first[case.id]), case.id
