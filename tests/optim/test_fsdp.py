"""The optimizers under FSDP2 (``fully_shard``, DTensor parameters split over two processes).

``torchrun --nproc-per-node 2`` starts :mod:`tests.optim.fsdp_worker` once for the module
(gloo on CPU, loopback only). An optimizer whose step needs each element alone (its
capability record's ``shards_for``) steps each process's local shard: it must end with the
weights of one process trained on the whole batch (the bound of ``test_ddp.py``), the same
on both ranks. One whose step reads a parameter as a whole (LAMB's and LARS's norms, Muon's
and the preconditioners' matrices, Adafactor's factors, cautious masking's counts, the
group sums of Prodigy and D-Adaptation, Sophia's curvature probe) must refuse at
construction with a ``ValueError`` naming the sharded parameter. LBFGS, SAM and Lookahead
work on the DTensors themselves (their norms and dot products are global: DTensor
reductions, or for LBFGS sums over each process's shards reduced over the mesh) and must
match too, LBFGS also where a parameter's rows do not divide by the processes.

The same run checks (:data:`tests.optim.fsdp_worker.EXTRAS`) that ``skip_nonfinite`` skips on
every rank when one rank's gradient shard holds an inf, that a param group of sharded and
plain parameters steps as one process, and that ``state_precision`` (and a switch that reads
a whole parameter, set on a group after construction) is refused with a ``ValueError``,
before any group steps.
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


def _result(ranks, key: str) -> tuple[dict, dict]:
    first, second = ranks
    assert key not in first["errors"], first["errors"][key]
    assert key not in second["errors"], second["errors"][key]
    return first[key], second[key]


def test_skip_nonfinite_skips_on_every_rank_when_one_shard_is_not_finite(ranks):
    """Rank 1 alone sees the inf (its shard of the gradient): both ranks must skip that step,
    as one process skips it, and so end with the weights of ``STEPS - 1`` steps (the batch is
    the same every step, so a skipped step changes nothing that follows)."""
    from tests.optim.fsdp_worker import SKIP  # imports fully_shard, which `ranks` checks

    first, second = _result(ranks, "skip_nonfinite")
    assert (first["skipped"], second["skipped"]) == (1, 1)
    assert all(torch.equal(a, b) for a, b in zip(first["weights"], second["weights"]))
    single, bound = single_process_bound(SKIP, STEPS - 1)
    assert relative(first["weights"], single) <= bound


def test_a_group_of_sharded_and_plain_parameters_steps_as_one_process(ranks):
    from tests.optim.fsdp_worker import PARTLY

    first, second = _result(ranks, "partly sharded")
    assert first["grads_kept"] and second["grads_kept"]
    assert all(torch.equal(a, b) for a, b in zip(first["weights"], second["weights"]))
    single, bound = single_process_bound(PARTLY, STEPS)
    assert relative(first["weights"], single) <= bound


def test_lbfgs_steps_unevenly_sharded_parameters_as_one_process(ranks):
    """torch 2.13 cannot flatten a DTensor of 3 rows on 2 processes: LBFGS's step failed
    with its RuntimeError. It works in each process's own shards now, with and without the
    line search."""
    from tests.optim.fsdp_worker import LBFGS_UNEVEN

    first, second = _result(ranks, "lbfgs uneven")
    for key, case in LBFGS_UNEVEN.items():
        assert all(torch.equal(a, b) for a, b in zip(first[key], second[key])), key
        single, bound = single_process_bound(case, STEPS)
        assert relative(first[key], single) <= bound, key


def test_state_precision_is_refused_on_sharded_parameters(ranks):
    first, second = _result(ranks, "refusals")
    assert first == second
    for precision in ("int8", "bfloat16"):
        assert first[precision].startswith(
            f"ValueError: Adam(state_precision='{precision}') cannot keep the state of the "
            "sharded parameter 0 of param group 0 (shape (4, 3)"), first[precision]
        assert "state_precision needs unsharded parameters (DDP works)" in first[precision]
        assert "\n" not in first[precision]
    # a switch set on the group after construction is refused by the first step
    assert first["later state_precision"].startswith(
        "ValueError: Adam(state_precision='int8') cannot keep the state of the sharded "
        "parameter 0 of param group 0"), first["later state_precision"]
    assert first["later cautious"].startswith(
        "ValueError: Adam cannot step the sharded parameter 0 of param group 0 (shape"), \
        first["later cautious"]
    # set on the second group: refused before the first group steps (no half step)
    error, moved, states = first["later second group"]
    assert error.startswith("ValueError: Adam cannot step the sharded parameter 0 of param "
                            "group 1 (shape"), error
    assert not any(moved) and states == 0, (moved, states)
