"""Checkpoints of ``ZeroRedundancyOptimizer`` over optimlab optimizers.

ZeRO copies its keyword arguments into every param group of the optimizer it builds, and
loads a checkpoint by writing the saved entries into that optimizer's ``state`` and groups,
past its ``load_state_dict``. So a ``skip_nonfinite`` process group (the README's form under
ZeRO) reached the state_dict, which then failed to pickle (``consolidate_state_dict`` hung
rank 0 until the process group's timeout), and a loaded 8-bit state (saved as
``exp_avg_codes``) and skip count never reached the optimizer (``KeyError: 'exp_avg'`` at
the next step, the count back at 0).

The two-process checks start one process per rank (:mod:`tests.optim.zero_worker`, gloo
over a file store); a collective one rank never joins fails in the worker's ``TIMEOUT``
and the whole run in :data:`LIMIT` seconds.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import optimlab

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")

ROOT = Path(__file__).resolve().parents[2]
#: seconds the two ranks may take together
LIMIT = 90


def _step(opt, params, scale=1.0):
    for i, p in enumerate(params):
        p.grad = (p.detach() - 0.1 * (i + 1)) * scale
    opt.step()


def _params():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=g).requires_grad_() for s in [(3, 4), (5,)]]


def test_a_process_group_guard_saves_as_true_and_a_load_keeps_the_live_group(process_group):
    params = _params()
    # as ZeRO builds it: its keyword arguments are the groups' defaults, the guard included
    opt = optimlab.Adam([{"params": params, "skip_nonfinite": dist.group.WORLD}], lr=0.01,
                        skip_nonfinite=dist.group.WORLD)
    _step(opt, params)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)  # TypeError: cannot pickle 'ProcessGroup'
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    assert saved["param_groups"][0]["skip_nonfinite"] is True
    # stepped, the group holds True (ZeRO copies it into its own groups); the guard is shared
    assert opt.param_groups[0]["skip_nonfinite"] is True
    assert opt._nonfinite_group.group is dist.group.WORLD
    copies = [p.detach().clone().requires_grad_() for p in params]
    fresh = optimlab.Adam([{"params": copies, "skip_nonfinite": dist.group.WORLD}], lr=0.01,
                          skip_nonfinite=dist.group.WORLD)
    fresh.load_state_dict(saved)  # the live group's process group is kept
    assert fresh.param_groups[0]["skip_nonfinite"] is dist.group.WORLD
    _step(opt, params)
    _step(fresh, copies)
    for a, b in zip(params, copies):
        assert torch.equal(a, b)


def test_a_plain_optimizer_with_a_process_group_guard_pickles(process_group):
    params = _params()
    opt = optimlab.Adam(params, lr=0.01, skip_nonfinite=dist.group.WORLD)
    _step(opt, params)
    _assert_round_trips(opt.state_dict(), flag_in_groups=False)  # the guard is not a group key


def test_a_one_process_zero_optimizer_state_dict_pickles(process_group):
    from torch.distributed.optim import ZeroRedundancyOptimizer

    params = _params()
    zero = ZeroRedundancyOptimizer(params, optimizer_class=optimlab.Adam, lr=0.01,
                                   skip_nonfinite=dist.group.WORLD)
    _step(zero, params)
    _assert_round_trips(zero.optim.state_dict(), flag_in_groups=True)  # ZeRO copied it there


def _assert_round_trips(state_dict: dict, flag_in_groups: bool) -> None:
    """``state_dict`` saved with torch.save and read back: the guard's flag, where the groups
    hold it, as True (a process group cannot be pickled) and every state tensor as it was."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    flags = [g.get("skip_nonfinite", "absent") for g in saved["param_groups"]]
    assert flags == [True if flag_in_groups else "absent"] * len(state_dict["param_groups"])
    assert saved["state"].keys() == state_dict["state"].keys() and saved["state"]
    for pid, entries in state_dict["state"].items():
        assert saved["state"][pid].keys() == entries.keys()
        for key, value in entries.items():
            assert torch.equal(saved["state"][pid][key], value), (pid, key)


def _as_zero_loads(opt, saved):
    """What ``ZeroRedundancyOptimizer.load_state_dict`` does to its local optimizer: the
    saved entries straight into ``state``, the saved groups' keys into the groups."""
    for pid, p in enumerate(p for group in opt.param_groups for p in group["params"]):
        opt.state[p] = dict(saved["state"][pid])
    for group, kept in zip(opt.param_groups, saved["param_groups"]):
        group.update({key: value for key, value in kept.items() if key != "params"})


@pytest.mark.parametrize("fused", [None, False])
def test_codes_in_the_saved_format_are_taken_at_the_next_step(fused):
    params = _params()
    opt = optimlab.Adam(params, lr=0.01, state_precision="int8", fused=fused)
    for _ in range(3):
        _step(opt, params)
    saved = copy.deepcopy(opt.state_dict())  # as saved and loaded: not the live tensors
    assert "exp_avg_codes" in saved["state"][0]
    copies = [p.detach().clone().requires_grad_() for p in params]
    fresh = optimlab.Adam(copies, lr=0.01, state_precision="int8", fused=fused)
    _as_zero_loads(fresh, saved)
    _step(opt, params)
    _step(fresh, copies)  # KeyError: 'exp_avg'
    for a, b in zip(params, copies):
        assert torch.equal(a, b)
    assert all("exp_avg_codes" not in state for state in fresh.state.values())


def test_a_skip_count_put_into_the_groups_is_taken_at_the_next_step():
    params = _params()
    opt = optimlab.Adam(params, lr=0.01, skip_nonfinite=True)
    _step(opt, params, scale=float("inf"))
    _step(opt, params)
    saved = copy.deepcopy(opt.state_dict())
    fresh = optimlab.Adam([p.detach().clone().requires_grad_() for p in params], lr=0.01,
                          skip_nonfinite=True)
    _as_zero_loads(fresh, saved)
    _step(fresh, fresh.param_groups[0]["params"])
    assert fresh.skipped_steps == 1
    # ZeRO copies its groups' keys back before every step: the count is not taken twice
    _step(fresh, fresh.param_groups[0]["params"], scale=float("inf"))
    _as_zero_loads(fresh, {"state": copy.deepcopy(fresh.state_dict()["state"]),
                           "param_groups": [dict(g) for g in fresh.param_groups]})
    _step(fresh, fresh.param_groups[0]["params"])
    assert fresh.skipped_steps == 2


def _ranks(scenario: str, tmp_path: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.optim.zero_worker", str(tmp_path),
                               scenario, str(rank), str(store)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=LIMIT)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = []
    for rank in (0, 1):
        path = tmp_path / f"rank{rank}.pt"
        assert path.exists(), f"rank {rank} wrote nothing:\n" + "\n".join(logs)[-3000:]
        results.append(torch.load(path, weights_only=False))
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, "\n".join(errors)
    return results


def test_zero_with_a_process_group_guard_consolidates_loads_and_steps(tmp_path):
    for rank, result in enumerate(_ranks("guard", tmp_path)):
        for a, b in zip(result["trained"], result["resumed"]):
            assert torch.equal(a, b), rank
        assert result["skipped"] == (1, 1)
        assert result["guards"] == [True, True]


def test_zero_with_int8_state_consolidates_loads_and_steps(tmp_path):
    for rank, result in enumerate(_ranks("int8", tmp_path)):
        for a, b in zip(result["trained"], result["resumed"]):
            assert torch.equal(a, b), rank
