"""Sweeps on a Ray cluster: ``optimlab bench --executor ray`` stores what ``--executor local``
stores, and a worker killed in the middle of a group costs a retry, not a run.

One local cluster (a head with no CPUs and two one-CPU worker nodes, each a raylet with its
worker process) serves the whole module, on loopback only: every node is started with
``node_ip_address=127.0.0.1``, and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray's
drivers from swapping 127.0.0.1 for the machine's network address (Ray's own switch for
single-machine clusters; without it ``ray.init(address="127.0.0.1:...")`` dials the
machine's address, where nothing listens). ``RAY_USAGE_STATS_ENABLED=0`` keeps Ray from
reporting usage to its servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from optimlab import cli
from optimlab.bench.store import RunStore, StoreError

SWEEP = ["digits", "--optimizers", "sgd,adam", "--lrs", "0.01,0.1", "--seeds", "2",
         "--steps", "60", "--eval-every", "20", "--batch-size", "64"]
# longer groups, so that one can be killed while it trains
SLOW = ["digits", "--optimizers", "sgd,adam,rmsprop", "--lrs", "0.01,0.1", "--seeds", "2",
        "--steps", "1500", "--eval-every", "500", "--batch-size", "64"]
GROUP_TITLE = "ray::optimlab-group"  # the process title of a worker training a group
# loopback only (see the module's text), and no usage report to Ray's servers
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def cluster():
    ray_utils = pytest.importorskip("ray.cluster_utils")
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)  # inherited by every node
    loopback = {"node_ip_address": "127.0.0.1"}
    c = ray_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, **loopback})
    try:
        for _ in range(2):
            c.add_node(num_cpus=1, **loopback)
        yield c
    finally:
        c.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _bench(args, db, cwd, **kw) -> subprocess.Popen:
    env = {**os.environ, **RAY_ENV, "CI": "1"}
    return subprocess.Popen([sys.executable, "-m", "optimlab", "bench", *args, "--db", str(db)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the sweep did not end in {timeout} s: {err[-2000:]}")
    assert proc.returncode == 0, err[-3000:]
    return out


def _stored(db) -> tuple[list, list]:
    """The sweep's runs (member, status, summary without wall times) and metric points."""
    with RunStore(db, readonly=True) as store:
        sweep, = store.sweeps()["sweep_id"]
        runs = sorted(((r.optimizer, r.hparams["lr"], r.seed), r.status,
                       {k: v for k, v in (r.summary or {}).items()
                        if k not in ("wall_time", "time_to_target")})
                      for r in store.list_runs(int(sweep)))
        metrics = store.metrics(int(sweep))
        points = sorted(((o, lr, s), step, name, value) for o, lr, s, step, name, value in zip(
            metrics.optimizer, metrics.lr, metrics.seed, metrics.step, metrics.name,
            metrics.value))
    return runs, points


def _group_workers() -> list[int]:
    """Pids of Ray workers training a group now (their process title names the task)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    title = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith(GROUP_TITLE):
                pids.append(int(entry))
    return pids


def _finish_or_resume(args, db, cwd) -> str:
    """:func:`_finish` of the command, or, where its process died by a signal, of the same
    command with ``--resume``.

    Once in CI (one fresh-clone run of several, on a loaded machine) the Ray driver died by
    SIGSEGV with nothing on stderr; 22 runs here, quiet and beside two busy loops, did not
    repeat it. The CLI now prints the Python stack of such a crash (``faulthandler``), which
    this shows as a warning; what a sweep promises then is that nothing is lost and
    ``--resume`` finishes it, which the caller's comparison with the local sweep checks."""
    proc = _bench(args, db, cwd)
    out, err = proc.communicate(timeout=240)
    if proc.returncode is not None and proc.returncode < 0:
        warnings.warn(f"the Ray driver died by signal {-proc.returncode}; resuming. Its "
                      f"stderr: {err[-3000:]}", stacklevel=2)
        stored = False
        if os.path.exists(db):
            with RunStore(db, readonly=True) as store:
                stored = len(store.sweeps()) > 0
        return _finish(_bench([*args, "--resume"] if stored else args, db, cwd))
    assert proc.returncode == 0, err[-3000:]
    return out


def test_a_sweep_on_ray_stores_what_a_local_sweep_stores(cluster, tmp_path):
    assert cluster.address.startswith("127.0.0.1:")
    local = _finish(_bench(SWEEP, tmp_path / "local.db", tmp_path))
    remote = _finish_or_resume([*SWEEP, "--executor", "ray", "--address", cluster.address],
                               tmp_path / "ray.db", tmp_path)
    assert "on Ray (127.0.0.1:" in remote and "on Ray" not in local
    runs, points = _stored(tmp_path / "ray.db")
    assert len(runs) == 8 and {status for _, status, _ in runs} == {"finished"}
    assert len(points) == 8 * 4 * 3  # runs x evaluations (0, 20, 40, 60) x metrics
    local_runs, local_points = _stored(tmp_path / "local.db")
    assert [r[:2] for r in runs] == [r[:2] for r in local_runs]
    # the same seeds and the same arithmetic in another process: equal up to the float
    # rounding a different thread count may bring into a matrix product (here they agree)
    for (key, step, name, value), (key2, step2, name2, value2) in zip(points, local_points, strict=True):
        assert (key, step, name) == (key2, step2, name2)
        assert value == pytest.approx(value2, rel=1e-5, abs=1e-6)
    for (_, _, summary), (_, _, summary2) in zip(runs, local_runs, strict=True):
        assert summary.keys() == summary2.keys()
        for k in summary:
            if isinstance(summary[k], float):
                assert summary[k] == pytest.approx(summary2[k], rel=1e-5, abs=1e-6), k


def test_a_killed_worker_costs_a_retry_not_a_run(cluster, tmp_path, pg_server):
    """SIGKILL the worker of a group mid-training: Ray runs the group again on another
    worker; every run is stored once, finished, with the results of an undisturbed sweep.
    The store is the PostgreSQL one a cluster would share."""
    url = pg_server.create_database()
    proc = _bench([*SLOW, "--executor", "ray", "--address", cluster.address], url, tmp_path)
    killed = None
    try:
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            workers = _group_workers()
            if workers:
                time.sleep(0.5)  # let it train a little first
                if workers[0] in _group_workers():
                    os.kill(workers[0], signal.SIGKILL)
                    killed = workers[0]
            time.sleep(0.05)
        out = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed is not None, "no Ray worker was seen training a group"
    runs, points = _stored(url)
    assert len(runs) == 12 and {status for _, status, _ in runs} == {"finished"}, out
    with RunStore(url, readonly=True) as store:
        # one row per member and one point per (run, step, metric): nothing stored twice
        assert store.con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 12
        assert store.con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 12 * 4 * 3
    # the retried group trained from the start: the same numbers as a sweep left alone
    _finish(_bench(SLOW, tmp_path / "local.db", tmp_path))
    local_runs, local_points = _stored(tmp_path / "local.db")
    assert [r[:2] for r in runs] == [r[:2] for r in local_runs]
    for (key, step, name, value), (key2, step2, name2, value2) in zip(points, local_points, strict=True):
        assert (key, step, name) == (key2, step2, name2)
        assert value == pytest.approx(value2, rel=1e-5, abs=1e-6)


def test_the_ray_executor_ticks_progress_after_a_group_is_handed_on():
    """The bar moved before the group was yielded, so a progress callback that raised threw
    away a group that had trained and put its runs back to pending. Ray itself is stood in
    for: each remote call is done at once, in submission order."""
    import types

    from optimlab.bench.executors import Call, RayExecutor

    class Ref:
        def __init__(self, fn, args):
            self.value = fn(*args)

    fake = types.SimpleNamespace(
        put=lambda arg: arg, get=lambda ref: ref.value,
        wait=lambda refs, num_returns: (refs[:1], refs[1:]),
        exceptions=types.SimpleNamespace(RayError=RuntimeError))
    executor = object.__new__(RayExecutor)
    executor.ray = fake
    executor._remote = types.SimpleNamespace(remote=lambda fn, *args: Ref(lambda *a: ("done", a),
                                                                          (fn, *args)))
    seen = []
    outcomes = executor.map([Call(len, ("ab",), 5), Call(len, ("c",), 7)], lambda i: None,
                            lambda ticks: seen.append(("tick", ticks)))
    for index, _ in outcomes:
        seen.append(("stored", index))
    assert seen == [("stored", 0), ("tick", 5), ("stored", 1), ("tick", 7)]


def test_without_ray_the_ray_executor_is_one_line_saying_what_to_install(monkeypatch,
                                                                         tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = cli.main(["bench", *SWEEP, "--db", str(tmp_path / "runs.db"), "--executor", "ray"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err
    assert "--executor ray needs Ray: pip install 'optimlab[ray]'" in err
    code = cli.main(["bench", *SWEEP, "--db", str(tmp_path / "runs.db"), "--address",
                     "127.0.0.1:6379"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "--address is the Ray cluster's: it needs --executor ray" in err
    assert not (tmp_path / "runs.db").exists()  # refused before anything was stored


@pytest.mark.parametrize("address, kept", [("127.0.0.1:6379", True), ("ray://[::1]:10001", True),
                                            ("localhost:6379", True), ("10.1.2.3:6379", False)])
def test_a_loopback_address_keeps_ray_on_loopback_before_ray_is_imported(monkeypatch, address,
                                                                          kept):
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when imported: set after the import
    (as it was), a driver dialled the machine's network address and a sweep on a cluster
    started on 127.0.0.1 hung. The variable must be there when Ray is first imported."""
    from optimlab.bench import executors

    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    seen = []

    def importing_ray():
        seen.append(os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
        raise RuntimeError("stop here")

    monkeypatch.setattr(executors, "require_ray", importing_ray)
    with pytest.raises(RuntimeError, match="stop here"):
        executors.RayExecutor(address=address)
    assert seen == ["0" if kept else None]


@pytest.mark.parametrize("given", ["--address", "RAY_ADDRESS"])
def test_an_address_where_nothing_listens_is_one_line_in_seconds(tmp_path, capsys,
                                                                 monkeypatch, given):
    """Ray's client retried an unreachable head for over ten minutes, deaf to SIGTERM; the
    address is probed first (no cluster of this module's is needed, nor started): one TCP
    connection, bounded by CONNECT_TIMEOUT seconds, and Ray's client is never started. The
    same for ``$RAY_ADDRESS``, which ``ray.init`` read unchecked (and retried past two
    minutes)."""
    ray = pytest.importorskip("ray")
    import socket
    from types import SimpleNamespace

    from optimlab.bench import executors

    with socket.socket() as probe:  # a loopback port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    probes, inits = [], []

    def create_connection(address, timeout):
        probes.append((address, timeout))
        return socket.create_connection(address, timeout=timeout)

    def init(*args, **kwargs):
        inits.append((args, kwargs))
        raise AssertionError("Ray's client started: its retries are unbounded")

    monkeypatch.setattr(executors, "socket", SimpleNamespace(create_connection=create_connection))
    monkeypatch.setattr(ray, "init", init)
    assert not ray.is_initialized()  # or the probe is skipped: this driver is connected
    where = ["--address", f"127.0.0.1:{port}"] if given == "--address" else []
    if given == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    code = cli.main(["bench", *SWEEP, "--db", str(tmp_path / "runs.db"), "--executor", "ray",
                     *where])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err
    assert f"cannot connect to the Ray cluster at 127.0.0.1:{port}: nothing answers there" in err
    # the one wait is the probe's, and it is bounded: seconds, not Ray's minutes of retries
    assert probes == [(("127.0.0.1", port), executors.CONNECT_TIMEOUT)] and inits == []
    assert 0 < executors.CONNECT_TIMEOUT <= 10


class _NotRay:
    """A loopback server that is not Ray's, on a thread: it answers each connection with an
    HTTP/1.1 error and closes it (``"http"``), or accepts and never answers (``"silent"``).
    ``ray.init`` at such an address waited without end."""

    def __init__(self, kind: str) -> None:
        import socket
        import threading

        self.kind, self.held = kind, []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:  # the accept's timeout: look at the stop flag again
                continue
            if self.kind == "http":
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.server.close()


@pytest.mark.parametrize("kind", ["http", "silent"])
def test_an_address_where_another_server_listens_is_one_line_in_seconds(tmp_path, capsys,
                                                                         monkeypatch, kind):
    """A server that is not Ray's at the address (a web server or a database on the port):
    the probe speaks gRPC's first words (an HTTP/2 preface, which Ray's head answers with a
    SETTINGS frame at once: the module's cluster, used by the sweeps above, passes it), and
    one that answers otherwise, or not at all within CONNECT_TIMEOUT, is one line; Ray's
    client, which waited there without end, is never started."""
    ray = pytest.importorskip("ray")
    from optimlab.bench import executors

    def init(*args, **kwargs):
        raise AssertionError("Ray's client started: it waits unbounded on a server not Ray's")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 1.0)
    assert not ray.is_initialized()
    server = _NotRay(kind)
    try:
        began = time.monotonic()
        code = cli.main(["bench", *SWEEP, "--db", str(tmp_path / "runs.db"), "--executor", "ray",
                         "--address", f"127.0.0.1:{server.port}"])
        took = time.monotonic() - began
    finally:
        server.close()
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err, err
    said = {"http": "the server there is not a Ray cluster (it does not speak gRPC)",
            "silent": "a server accepts connections there but said nothing in 1 s"}[kind]
    assert f"cannot connect to the Ray cluster at 127.0.0.1:{server.port}: {said}" in err, err
    assert took < 30  # the probe's second, and the command's own start


def test_a_killed_driver_resumes_and_a_second_driver_is_refused(cluster, tmp_path, pg_server):
    """The driver of a Ray sweep is stopped (SIGSTOP) after its first group is stored: a
    second driver meanwhile is refused (the sweep is locked on the server), and ``--resume`` from
    a new driver, after the first is SIGKILLed, trains the rest without training a finished
    run again."""
    url = pg_server.create_database()
    args = [*SLOW, "--executor", "ray", "--address", cluster.address]
    first = _bench(args, url, tmp_path)
    try:
        deadline = time.monotonic() + 120
        finished = []
        while time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.1)
            try:
                with RunStore(url, readonly=True) as store:
                    runs = store.list_runs(1)
            except (KeyError, StoreError):  # no tables or no sweep yet
                continue
            finished = [r for r in runs if r.status == "finished"]
            if finished and len(finished) < len(runs):
                break
        assert first.poll() is None and finished, "the sweep ended before it could be killed"
        # stopped, it holds its lock (its connection lives) and stores nothing more: the
        # second driver surely meets a live sweep, however slowly it starts
        os.kill(first.pid, signal.SIGSTOP)
        second = _bench([*args, "--resume"], url, tmp_path)
        _, err = second.communicate(timeout=120)
        assert second.returncode != 0
        assert f"is being run or resumed by process {first.pid} on this machine" in err, err
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    with RunStore(url, readonly=True) as store:
        before = {r.id: r for r in store.list_runs(1)}
    assert {r.status for r in before.values()} <= {"finished", "running"}
    done = {i: r for i, r in before.items() if r.status == "finished"}
    assert 0 < len(done) < 12
    out = _finish(_bench([*args, "--resume"], url, tmp_path))
    with RunStore(url, readonly=True) as store:
        after = {r.id: r for r in store.list_runs(1)}
        assert store.con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 12 * 4 * 3
    assert set(after) == set(before) and {r.status for r in after.values()} == {"finished"}, out
    for i, r in done.items():  # not trained again
        assert (after[i].started_at, after[i].finished_at) == (r.started_at, r.finished_at)


def test_the_advisor_on_ray_gives_the_local_answer(cluster, tmp_path):
    """``optimlab advise --executor ray``: every stage's groups train on the cluster, and
    the answer is the one a local advisor gives."""
    advise = ["advise", "digits", "--optimizers", "sgd", "--steps", "40", "--budget", "6000",
              "--seeds", "2"]
    answers = []
    for tag, extra in (("local", []), ("ray", ["--executor", "ray", "--address",
                                               cluster.address])):
        env = {**os.environ, **RAY_ENV, "CI": "1"}
        proc = subprocess.run([sys.executable, "-m", "optimlab", *advise, "--db",
                               str(tmp_path / f"{tag}.db"), "--out", str(tmp_path / tag),
                               "--json", str(tmp_path / f"{tag}.json"), *extra],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        answers.append(json.loads((tmp_path / f"{tag}.json").read_text()))
    local, remote = answers
    assert (remote["optimizer"], remote["hparams"]) == (local["optimizer"], local["hparams"])
    assert remote["metric"]["value"] == pytest.approx(local["metric"]["value"], abs=1e-6)
    assert remote["steps_spent"] == local["steps_spent"]
