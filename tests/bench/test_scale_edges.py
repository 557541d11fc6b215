"""Edges of sweeps at scale: Ray on a loopback address imported only after the executor
keeps it there, a group that fails the same way on every Ray worker stored as failed (not
lost), SIGTERM during a sweep whose executor installed its own handler, and a ``--db``
password that never reaches a message.

No Ray cluster is started here: the Ray executor's errors are Ray's own exception objects,
handed to :meth:`RayExecutor.map` by a stand-in for the ``ray`` module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from optimlab import cli
from optimlab.bench.executors import Call, LocalExecutor, RayExecutor

TINY = ["digits", "--optimizers", "sgd", "--lrs", "0.1", "--seeds", "1", "--steps", "4",
        "--eval-every", "2", "--batch-size", "32"]
RAY_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


# -- 1: a loopback --address: Ray imported only once the variable is set ----------------------

def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != RAY_VAR}
    env.update(RAY_USAGE_STATS_ENABLED="0", CI="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_checking_the_ray_executor_does_not_import_ray():
    """``optimlab bench --executor ray --address 127.0.0.1:PORT`` checked Ray by importing
    it, before the executor set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER: Ray then dialled the
    machine's network address and the sweep hung."""
    pytest.importorskip("ray")
    done = _python("""
        import sys
        from optimlab import cli
        args = cli.build_parser().parse_args(
            ["bench", "digits", "--optimizers", "sgd", "--executor", "ray",
             "--address", "127.0.0.1:6379"])
        cli._check_executor(args)
        print("ray imported" if "ray" in sys.modules else "ray not imported")
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ray not imported"


def test_the_bench_command_imports_ray_with_the_loopback_variable_set():
    """From the command line, where nothing sets the variable beforehand: when Ray is first
    imported the variable is there (the address is a closed port: refused in one line)."""
    pytest.importorskip("ray")
    done = _python("""
        import builtins, os, socket, tempfile
        seen = []
        real_import = builtins.__import__

        def watched(name, *args, **kwargs):  # the first `import ray...`, whoever runs it
            if (name == "ray" or name.startswith("ray.")) and not seen:
                seen.append(os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
            return real_import(name, *args, **kwargs)

        builtins.__import__ = watched
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        from optimlab import cli
        code = cli.main(["bench", "digits", "--optimizers", "sgd", "--lrs", "0.1", "--seeds",
                         "1", "--steps", "4", "--db", tempfile.mkdtemp() + "/runs.db",
                         "--executor", "ray", "--address", f"127.0.0.1:{port}"])
        print(code, seen)
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    code, seen = done.stdout.strip().split(" ", 1)
    assert code != "0" and "nothing answers there" in done.stderr
    assert seen == "['0']"


def test_without_ray_the_check_still_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    args = cli.build_parser().parse_args(["bench", "digits", "--optimizers", "sgd",
                                          "--executor", "ray"])
    with pytest.raises(cli.CLIError, match=r"--executor ray needs Ray: pip install 'optimlab\[ray\]'"):
        cli._check_executor(args)


# -- 2: a group's own error on a Ray worker is a failure, a dead worker a loss ------------------

class _FakeRay:
    """What :meth:`RayExecutor.map` uses of ``ray``: each group's ``get`` raises its error."""

    def __init__(self, errors):
        import ray.exceptions

        self.exceptions = ray.exceptions
        self.errors = errors

    def put(self, value):
        return value

    def wait(self, waiting, num_returns=1):
        return waiting[:num_returns], waiting[num_returns:]

    def get(self, ref):
        raise self.errors[ref]


class _FakeRemote:
    def __init__(self):
        self.count = 0

    def remote(self, fn, *args):
        self.count += 1
        return self.count - 1


def _outcomes(errors) -> list:
    executor = object.__new__(RayExecutor)
    executor.ray, executor._remote = _FakeRay(errors), _FakeRemote()
    calls = [Call(print, ()) for _ in errors]
    return [outcome for _, outcome in executor.map(calls, started=lambda index: None)]


def test_a_group_that_fails_on_its_worker_is_stored_failed_not_lost():
    """The task's module could not be imported on the worker: Ray raises a RayTaskError
    (wrapping a RaySystemError), which was reported as a lost group (with Ray's colour codes
    and traceback) that --resume would only run into again."""
    rex = pytest.importorskip("ray.exceptions")
    system = rex.RaySystemError(ModuleNotFoundError("No module named 'mytasks'"),
                                "Traceback (most recent call last):\n  File \"x.py\"\n"
                                "ModuleNotFoundError: No module named 'mytasks'")
    unpickle = rex.RayTaskError("optimlab-group", "Traceback (most recent call last):\n"
                                "  File \"worker.py\", line 1\n", system,
                                proctitle="ray::optimlab-group", pid=12, ip="127.0.0.1")
    raised = rex.RayTaskError("optimlab-group", "Traceback\n", ValueError("bad\nlines"),
                              proctitle="ray::optimlab-group", pid=12,
                              ip="127.0.0.1").as_instanceof_cause()
    errors = [unpickle, unpickle.as_instanceof_cause(), raised,
              rex.WorkerCrashedError(), rex.NodeDiedError("node 1 died"),
              rex.OutOfMemoryError("Task was killed due to the node running low on memory"),
              rex.ObjectLostError("ab" * 14, None, "call site"),
              rex.OwnerDiedError("ab" * 14, None, "call site")]
    outcomes = _outcomes(errors)
    kinds = [outcome.kind for outcome in outcomes]
    assert kinds == ["error", "error", "error", "lost", "lost", "lost", "lost", "lost"]
    assert outcomes[0].message == "ModuleNotFoundError: No module named 'mytasks'"
    assert outcomes[1].message == outcomes[0].message
    assert outcomes[2].message == "ValueError: bad"
    for outcome in outcomes:
        assert "\x1b" not in outcome.message and "\n" not in outcome.message
        assert "ray::" not in outcome.message
    assert outcomes[3].message.startswith("WorkerCrashedError: The worker died")


# -- 3: SIGTERM during a sweep whose executor installed its own handler ------------------------

class _RayLike(LocalExecutor):
    """An executor that installs its own SIGTERM handler when it starts (as ``ray.init``
    does), and whose first group receives SIGTERM."""

    def __init__(self):
        signal.signal(signal.SIGTERM, self.own_handler)

    @staticmethod
    def own_handler(signum, frame):
        raise RuntimeError("the executor's own SIGTERM handler ran")

    def map(self, calls, started, progress=None):
        os.kill(os.getpid(), signal.SIGTERM)
        yield from super().map(calls, started, progress)


@pytest.fixture
def sigterm_restored():
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def test_sigterm_stops_a_sweep_whose_executor_set_its_own_handler(monkeypatch, tmp_path, capsys,
                                                                  sigterm_restored):
    """ray.init installs a SIGTERM handler (exit 1, "SIGTERM received"); the sweep left it
    in place, so a terminated Ray sweep neither put its runs back nor said how to resume."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    monkeypatch.setattr(cli, "_executor", lambda args: _RayLike())
    code = cli.main(["bench", *TINY, "--db", str(tmp_path / "runs.db")])
    err = capsys.readouterr().err
    assert code == 143, err[-2000:]
    assert "terminated" in err and "--resume" in err
    # put back as it was found once the sweep ends: the executor's handler
    assert signal.getsignal(signal.SIGTERM) == _RayLike.own_handler


def test_a_handler_of_the_callers_is_still_left_alone(sigterm_restored):
    def callers(signum, frame):
        pass

    signal.signal(signal.SIGTERM, callers)
    before = signal.getsignal(signal.SIGTERM)
    _RayLike()  # the executor replaces it, as ray.init does
    with cli._sigterm_stops(before):
        assert signal.getsignal(signal.SIGTERM) == _RayLike.own_handler
    with cli._sigterm_stops():
        assert signal.getsignal(signal.SIGTERM) == _RayLike.own_handler
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with cli._sigterm_stops():
        assert signal.getsignal(signal.SIGTERM) == cli._sigterm_stops.stop
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# -- 4: a --db password never printed -------------------------------------------------------

@pytest.mark.parametrize("password", ["se/cret", "a%40b", "a:b", "a@b/c", "p@ss:w/rd", "plain"])
def test_a_password_is_masked_whatever_it_holds(password):
    url = f"postgresql://optimlab:{password}@127.0.0.1:55432/optimlab"
    masked = cli._masked(url)
    assert masked == "postgresql://optimlab:***@127.0.0.1:55432/optimlab"


def test_urls_without_a_password_are_shown_as_given():
    for url in ["postgresql://optimlab@127.0.0.1/optimlab", "postgresql://127.0.0.1:5432/db",
                "runs.db", "/tmp/a:b@c/runs.db"]:
        assert cli._masked(url) == url


def test_a_password_with_a_slash_is_not_in_the_error(tmp_path, capsys):
    pytest.importorskip("sqlalchemy")
    with __import__("socket").socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = cli.main(["runs", "--db", f"postgresql://optimlab:se/cret@127.0.0.1:{port}/optimlab"])
    err = capsys.readouterr().err
    assert code != 0 and "se/cret" not in err and "cret" not in err
    assert err.count("run store") == 1 and "+psycopg" not in err, err


# -- 5: an empty database opened to be read ---------------------------------------------------

def test_an_empty_server_database_is_no_run_store_yet(pg_server, capsys):
    """It said "... is not an optimlab run store (no schema_version table)", naming the
    driver's postgresql+psycopg:// URL; the SQLite file that does not exist yet says that
    nothing was stored there."""
    url = pg_server.create_database().replace("postgresql+psycopg://", "postgresql://", 1)
    code = cli.main(["runs", "--db", url])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err
    assert f"no optimlab run store in {url} yet (run `optimlab bench --db ...` first)" in err
    assert err.count("run store") == 1 and "+psycopg" not in err, err

