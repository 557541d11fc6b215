"""The training engines keep freed memory between steps (``optimlab.bench.allocator``).

Each check runs in a fresh interpreter, since the setting is once per process and the
allocator's state depends on what ran before. The page-fault check first runs its
allocation pattern under glibc's defaults and skips where that does not fault, so it cannot
pass by measuring nothing.
"""

import json
import os
import platform
import subprocess
import sys

import pytest

# Eight blocks of 16 MB from glibc's malloc (what torch's CPU allocator calls), written and
# freed, five times. glibc's adaptive trim threshold is at most 64 MB (twice its 32 MB
# ceiling for the mmap threshold), so by default the freed 128 MB at the top of the heap is
# handed back and each round faults all 32,768 pages in again; kept, none.
SCRIPT = """
import ctypes, json, resource
from optimlab.bench.allocator import keep_freed_memory

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)

def faults_per_round(rounds=5, size=16 << 20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        blocks = [libc.malloc(size) for _ in range(8)]
        for block in blocks:
            ctypes.memset(block, 1, size)
        for block in blocks:
            libc.free(block)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds

faults_per_round(2)  # let glibc's thresholds adapt first
default = faults_per_round()
kept = keep_freed_memory()
again = keep_freed_memory()
faults_per_round(1)
print(json.dumps({"default": default, "kept": kept, "again": again, "after": faults_per_round()}))
"""


def run(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                        "OPTIMLAB_KEEP_FREED_MEMORY")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env={**env, **env_extra},
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc's malloc")


@glibc
def test_freed_memory_is_kept_so_a_step_stops_faulting():
    got = run({})
    if got["default"] < 10_000:
        pytest.skip(f"this allocator keeps the freed blocks by default ({got['default']:.0f} "
                    "faults a round): nothing to measure")
    assert got["kept"] is True and got["again"] is True
    assert got["after"] < got["default"] / 100, got  # kept and reused: (almost) no faults


@glibc
@pytest.mark.parametrize("env", [{"OPTIMLAB_KEEP_FREED_MEMORY": "0"},
                                 {"MALLOC_TRIM_THRESHOLD_": "1000000"}])
def test_an_opt_out_or_the_users_own_thresholds_win(env):
    got = run(env)
    assert got["kept"] is False and got["again"] is False
    assert got["after"] > got["default"] / 2, got  # glibc's own behaviour, unchanged


def test_both_engines_and_the_batched_evaluation_ask_for_it(monkeypatch):
    from optimlab.bench import trainer
    from optimlab.bench.trainer import Member, TrainConfig
    from tests.bench.toy import ToyTask

    calls = []
    monkeypatch.setattr(trainer, "keep_freed_memory", lambda: calls.append(1) or True)
    config = TrainConfig(steps=2, batch_size=None, eval_every=2)
    trainer.train_population(ToyTask(), config, [Member("sgd", {"lr": 0.1}, seed=0)])
    trainer.train_sequential(ToyTask(), config, [Member("sgd", {"lr": 0.1}, seed=0)])
    assert calls == [1, 1]
    # a loss landscape's grid is evaluated by population_scores alone, with no training
    # before it in the process (benchmarks/slice_speed.py)
    task = ToyTask()
    template = task.make_model(None)
    weights = [p.detach().unsqueeze(0).repeat(3, *[1] * p.dim()) for p in template.parameters()]
    loss, _ = trainer.population_scores(task, template, weights, task.x_test, task.y_test)
    assert loss.shape == (3,) and calls == [1, 1, 1]


@pytest.mark.parametrize("tunables", [
    "glibc.malloc.mmap_threshold=65536",
    "glibc.malloc.trim_threshold=1000000",
    "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=0",
])
def test_thresholds_set_by_glibc_tunables_win(monkeypatch, tunables):
    """GLIBC_TUNABLES sets the thresholds as the MALLOC_*_THRESHOLD_ variables do: no
    mallopt call then (checked in this process, with mallopt replaced by a recorder)."""
    from optimlab.bench import allocator

    calls = []

    class Libc:
        def __init__(self, name):
            self.mallopt = self

        def __call__(self, option, value):
            calls.append((option, value))
            return 1

    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "OPTIMLAB_KEEP_FREED_MEMORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(allocator.ctypes, "CDLL", Libc)
    monkeypatch.setattr(allocator.platform, "system", lambda: "Linux")
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("glibc", "2.36"))
    allocator.keep_freed_memory.cache_clear()
    try:
        monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")  # not a threshold
        assert allocator.keep_freed_memory() is True and len(calls) == 2
        calls.clear()
        allocator.keep_freed_memory.cache_clear()
        monkeypatch.setenv("GLIBC_TUNABLES", tunables)
        assert allocator.keep_freed_memory() is False
        assert calls == []
    finally:  # the next caller decides anew (the real mallopt, as it would have)
        allocator.keep_freed_memory.cache_clear()
