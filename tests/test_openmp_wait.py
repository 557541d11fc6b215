"""Where the machine is busy, the training commands set ``OMP_WAIT_POLICY=PASSIVE`` before
torch loads: torch's idle OpenMP threads spinning beside other processes made a small sweep
4 to 10 times slower (``optimlab._env.wait_passively_when_busy``)."""

import os
import subprocess
import sys

import pytest

from optimlab import _env, cli

PROBE = ("from optimlab import _env; import os; "
         "print(_env.wait_passively_when_busy(), os.environ.get('OMP_WAIT_POLICY'))")


@pytest.fixture
def busy():
    """A process that keeps a CPU busy while the test runs."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


#: the runnable-task count is Linux's
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/loadavg"),
                                reason="no /proc/loadavg: the count of running tasks is not known")


def _probe(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _env.OPENMP_WAIT}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**env, **env_extra},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@needs_proc
def test_beside_a_busy_process_the_threads_wait_passively(busy):
    """Torch's threads on every CPU (``OMP_NUM_THREADS``), one process busy beside them."""
    assert _env.others_running() >= 1
    assert _probe({"OMP_NUM_THREADS": str(len(_env.usable_cpus()))}) == "True PASSIVE"


@pytest.mark.parametrize("others, cpus, threads, passive", [
    (0, 2, 2, False), (1, 2, 2, True), (1, 2, 1, False), (2, 2, 1, True),
    (1, 64, 32, False), (32, 64, 32, False), (33, 64, 32, True)])
def test_busy_is_more_running_than_the_cpus_torchs_threads_leave_free(
        monkeypatch, others, cpus, threads, passive):
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # (as before the command loads it)
    monkeypatch.setattr(_env, "others_running", lambda *a, **k: others)
    monkeypatch.setattr(_env, "usable_cpus", lambda: set(range(cpus)))
    monkeypatch.setattr(_env, "_torch_threads", lambda c, e: threads)
    environ: dict = {}
    assert _env.wait_passively_when_busy(environ) is passive
    assert environ == ({"OMP_WAIT_POLICY": "PASSIVE"} if passive else {})


def test_torchs_threads_are_omp_num_threads_or_the_physical_cores():
    cpus = _env.usable_cpus()
    assert _env._torch_threads(cpus, {"OMP_NUM_THREADS": "1"}) == 1
    assert _env._torch_threads(cpus, {"OMP_NUM_THREADS": "100000"}) == len(cpus)
    physical = _env._torch_threads(cpus, {"OMP_NUM_THREADS": "zero"})
    assert 1 <= physical <= len(cpus)
    # torch's own default, in a fresh process (the suite sets its workers' threads)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == physical


def test_the_command_line_chooses_before_torch_loads(tmp_path):
    """In a fresh process, ``optimlab race`` reaches the choice with torch not yet imported
    (a module that imported it at start would turn the choice off without a word)."""
    code = ("import sys; from optimlab import _env, cli; seen = []; "
            "_env.wait_passively_when_busy = lambda: seen.append('torch' in sys.modules); "
            "assert cli.main(['race', 'quadratic', '--optimizers', 'sgd', '--steps', '3']) == 0; "
            "print(seen)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[False]"


@needs_proc
@pytest.mark.parametrize("name, value", [("OMP_WAIT_POLICY", "ACTIVE"),
                                         ("GOMP_SPINCOUNT", "100000"), ("KMP_BLOCKTIME", "0")])
def test_a_users_own_choice_is_left_alone(busy, name, value):
    assert _probe({name: value}) == ("False ACTIVE" if name == "OMP_WAIT_POLICY" else "False None")


def test_once_torch_is_loaded_nothing_is_set(monkeypatch):
    """The runtime read its variables when torch loaded: setting one after would say
    something untrue."""
    import torch  # noqa: F401 (loaded, as in any test process that trained)

    environ: dict = {}
    monkeypatch.setattr(_env, "others_running", lambda *a, **k: 3)
    assert _env.wait_passively_when_busy(environ) is False and environ == {}


def test_others_running_reads_the_fewest_of_its_samples(monkeypatch, tmp_path):
    readings = iter(["0.5 0.4 0.3 4/100 123\n", "0.5 0.4 0.3 2/100 123\n",
                     "0.5 0.4 0.3 5/100 123\n"])
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/loadavg":
            file = tmp_path / "loadavg"
            file.write_text(next(readings))
            return real_open(file, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    assert _env.others_running(samples=3, gap_s=0) == 1  # 2 runnable, less this process


def test_only_the_training_commands_choose(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(_env, "wait_passively_when_busy", lambda: calls.append(1))
    assert cli.main(["list"]) == 0
    assert calls == []
    assert {"bench", "tour", "advise", "race", "slice", "demo"} <= cli.TRAINING_COMMANDS
    assert cli.main(["race", "quadratic", "--optimizers", "sgd", "--steps", "3"]) == 0
    assert calls == [1]
