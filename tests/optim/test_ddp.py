"""Every optimizer under DDP with two processes: both ranks hold the same weights, and the
weights of one process that trains on the whole batch.

``torchrun --nproc-per-node 2`` starts :mod:`tests.optim.ddp_worker` once for the module
(gloo on CPU, its store and sockets on 127.0.0.1 only); each rank trains each optimizer of
the capability table (its first setting, and the ``cautious`` ones) for ``STEPS`` steps in
float64 on its half of the global batch and saves its parameters. The tests compare them.

Tolerance against the single process: DDP's gradient is the mean of two half-batch means,
the single process's the mean of the whole batch, so the two differ by rounding (a few ulps).
How far a path carries such a difference depends on the optimizer (Sophia's finite-difference
curvature divides it by a small step; SOAP's eigenvectors of a rank-deficient factor are set
by it), so the bound is measured here for each case: the same single-process run with the
batch summed in reverse order is a perturbation of the same kind, and DDP must agree within
the larger of 1e-10 and 100 times that distance (measured: DDP's distance is 0.2-5 times the
reversed sum's; most settings agree to 1e-12).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tests.optim.cases import ALL_CASES
from tests.optim.ddp_worker import BATCH, ShiftedLoss, distributed_cases, train
from tests.problems import make_params

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")

STEPS = 10
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker: str, factory: pytest.TempPathFactory, steps: int) -> list[dict]:
    """``torchrun --nproc-per-node 2 -m worker OUT steps`` on this machine only (its store on
    127.0.0.1, gloo's sockets on the loopback interface); the two ranks' saved results.

    Once per test session: under pytest-xdist the first worker to get here runs it, under a
    file lock in the session's shared temporary folder, and the others read its results.
    """
    from filelock import FileLock

    # the session's folder: under xdist each worker's base folder lies in it; without xdist
    # the base folder is it (its parent is shared by every session, whose results it would
    # hand to this one)
    base = factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out = shared / f"{worker.rsplit('.', 1)[-1]}-{steps}"
    with FileLock(str(out) + ".lock"):
        if not (out / "rank1.pt").exists():
            out.mkdir(exist_ok=True)
            _launch(worker, out, steps)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


#: what torchrun's report says of a rank that died by a signal in native code
_KILLED_BY = ("(SIGABRT)", "(SIGSEGV)")


def _launch(worker: str, out: Path, steps: int) -> None:
    """Run the two ranks; where one of them died by SIGABRT or SIGSEGV, warn with its report
    and run them once more (a second such death fails).

    Once in a fresh-clone CI run on a loaded machine a rank of the FSDP worker aborted with
    "terminate called without an active exception" (a C++ thread of the process group still
    running as the process ended) and every test of the module failed with it, though the
    same commit had passed in full minutes before. A failure of the checks themselves (a
    case that raises is written to the results, not a crash) or any other exit still fails
    at once."""
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for attempt in (1, 2):
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                   "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
                   "-m", worker, str(out), str(steps)]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        crashed = done.returncode != 0 and any(k in done.stderr for k in _KILLED_BY)
        if not crashed or attempt == 2:
            break
        warnings.warn(f"a rank of {worker} died by a signal; running the ranks again. "
                      f"torchrun's report: {done.stderr[-3000:]}", stacklevel=2)
        for stale in out.glob("rank*.pt"):
            stale.unlink()
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """The two ranks' results: ``[rank0, rank1]``, each ``{case id: [tensors]}``."""
    return run_ranks("tests.optim.ddp_worker", tmp_path_factory, STEPS)


def relative(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest difference over the largest reference value, worst tensor."""
    return max(float(((x - y).abs().max() / y.abs().max()).detach()) for x, y in zip(a, b, strict=True))


def single_process_bound(case, steps: int) -> tuple[list[torch.Tensor], float]:
    """One process's run of ``case`` on the whole batch, and how close a distributed run
    must come to it: the larger of 1e-10 and 100 times what reversing the batch sum does
    to the same run (see the module docstring)."""
    single = train(case, ShiftedLoss(make_params(torch.float64, case.shapes)), BATCH, steps)
    reordered = train(case, ShiftedLoss(make_params(torch.float64, case.shapes)),
                      BATCH.flip(0), steps)
    start = make_params(torch.float64, case.shapes)
    assert relative(single, start) > 1e-3, "did not move"
    return single, max(1e-10, 100 * relative(reordered, single))


@pytest.mark.parametrize("case", distributed_cases(ALL_CASES), ids=lambda c: c.id)
def test_both_ranks_follow_the_single_process_run(ranks, case):
    first, second = ranks
    assert case.id not in first["errors"], first["errors"].get(case.id)
    assert all(torch.equal(a, b) for a, b in zip(first[case.id], second[case.id]))
    single, bound = single_process_bound(case, STEPS)
    assert relative(first[case.id], single) <= bound


def test_zero_with_a_process_group_skips_on_every_rank_when_one_partition_is_not_finite(ranks):
    """Under ``ZeroRedundancyOptimizer`` each rank's optimizer holds its own partition; rank 1
    alone sees an inf at step ``INF_STEP``. With ``skip_nonfinite=dist.group.WORLD`` both ranks
    skip that step, and so end with the weights of ``STEPS - 1`` steps of one process (the
    batch is the same every step, so a skipped step changes nothing that follows). With
    ``skip_nonfinite=True`` rank 0 would step its partition and rank 1 not."""
    from tests.optim.ddp_worker import ZERO_SKIP

    first, second = ranks
    for rank in ranks:
        assert "zero skip_nonfinite" not in rank["errors"], rank["errors"]["zero skip_nonfinite"]
    first, second = first["zero skip_nonfinite"], second["zero skip_nonfinite"]
    assert (first["skipped"], second["skipped"]) == (1, 1)
    assert all(torch.equal(a, b) for a, b in zip(first["weights"], second["weights"]))
    single, bound = single_process_bound(ZERO_SKIP, STEPS - 1)
    assert relative(first["weights"], single) <= bound
