"""`optimlab serve`: loopback by default, one-line errors (exit 2), a real server answering."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from optimlab.cli import main


def test_serve_binds_loopback_by_default(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr("optimlab.web.server.serve", lambda **kw: calls.append(kw))
    assert main(["serve", "--port", "0", "--db", str(tmp_path / "runs.db")]) == 0
    (call,) = calls
    # --port 0: the free port the system picked is the one served and named
    assert call["host"] == "127.0.0.1" and call["port"] > 0
    assert str(call["db_path"]).endswith("runs.db")
    assert f"http://127.0.0.1:{call['port']}/" in capsys.readouterr().err


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "runs.db").write_bytes(b"this is not a database" * 100), "cannot read the run store"),
    (lambda d: (d / "runs.db").mkdir(), "cannot read the run store"),
    (lambda d: None, "directory does not exist"),
])
def test_an_unreadable_store_is_one_error_line(tmp_path, capsys, make, message):
    make(tmp_path)
    db = tmp_path / "runs.db" if (tmp_path / "runs.db").exists() else tmp_path / "no" / "runs.db"
    assert main(["serve", "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optimlab: error:") and message in err[0]


def test_a_busy_port_is_one_error_line(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port), "--db", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_optimlab_serve_answers_until_stopped(tmp_path, sweep_db):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "optimlab", "serve", "--port", str(port),
                             "--db", str(sweep_db[0])],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/sweeps", timeout=5) as answer:
                    sweeps = json.load(answer)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.time() < deadline, "the server did not come up"
                time.sleep(0.25)
        assert [s["id"] for s in sweeps] == [sweep_db[1]]
        with urllib.request.urlopen(f"{base}/", timeout=5) as answer:
            assert b"optimlab playground" in answer.read()
        request = urllib.request.Request(f"{base}/api/race", method="POST",
                                         data=json.dumps({"landscape": "rosenbrock", "steps": 10**6,
                                                          "optimizers": [{"name": "adam"}]}).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 422 and "steps" in json.load(refused.value)["message"]
        with urllib.request.urlopen(f"{base}/api/landscapes", timeout=5) as answer:
            assert answer.status == 200  # still answering
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: exit 130, as every command (uvicorn
        out, _ = proc.communicate(timeout=30)  # swallowed the KeyboardInterrupt: exit 0)
    assert "http://127.0.0.1:" in out
    assert proc.returncode == 130 and "optimlab: interrupted: playground stopped" in out, out


def test_a_store_named_that_is_not_there_is_said_not_served_silently(monkeypatch, tmp_path,
                                                                    capsys):
    """``--db`` mistyped served an empty Runs tab without a word. A store named that is not
    there yet is said (a sweep may write it while the page is open); the default one is not
    (the playground's races need no store)."""
    monkeypatch.setattr("optimlab.web.server.serve", lambda **kw: None)
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--port", "0", "--db", "nonexist.db"]) == 0
    assert "note: no run store at nonexist.db yet; the Runs tab is empty" in capsys.readouterr().err
    assert main(["serve", "--port", "0"]) == 0
    assert "note" not in capsys.readouterr().err


def test_serve_without_db_shows_the_tours_sweeps_where_only_they_are_here(monkeypatch, tmp_path,
                                                                          capsys, sweep_db):
    """After `make demo` a plain `optimlab serve` shows the tour's store, as `optimlab runs`
    reads it, with the same note; a store of its own here wins."""
    calls = []
    monkeypatch.setattr("optimlab.web.server.serve", lambda **kw: calls.append(kw))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "optimlab-tour").mkdir()
    store = sweep_db[0].read_bytes()
    (tmp_path / "optimlab-tour" / "tour-runs.db").write_bytes(store)
    assert main(["serve", "--port", "0"]) == 0
    assert str(calls[-1]["db_path"]).endswith("tour-runs.db")
    assert "showing the tour's sweeps in optimlab-tour" in capsys.readouterr().err
    (tmp_path / "optimlab-runs.db").write_bytes(store)
    assert main(["serve", "--port", "0"]) == 0
    assert str(calls[-1]["db_path"]).endswith("optimlab-runs.db")
    assert "note" not in capsys.readouterr().err


def test_a_port_taken_on_another_address_of_the_host_is_one_error_line(monkeypatch, tmp_path,
                                                                       capsys):
    """``--host localhost``: a server on [::1] at that port would get the browser's requests
    (uvicorn binds 127.0.0.1 only), so it is refused as a busy port is."""
    try:
        busy = socket.socket(socket.AF_INET6)
        busy.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        busy.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    with busy:
        busy.listen()
        port = busy.getsockname()[1]
        real = socket.getaddrinfo

        def both(host, *args, **kwargs):  # localhost as most machines resolve it: both
            found = real(host, *args, **kwargs)
            if host == "localhost" and not any(f == socket.AF_INET6 for f, *_ in found):
                found += real("::1", *args, **kwargs)
            return found

        monkeypatch.setattr(socket, "getaddrinfo", both)
        calls = []
        monkeypatch.setattr("optimlab.web.server.serve", lambda **kw: calls.append(kw))
        try:
            with socket.create_server(("127.0.0.1", port)):
                pass
        except OSError:
            pytest.skip("the port is taken on 127.0.0.1 too")
        assert main(["serve", "--host", "localhost", "--port", str(port),
                     "--db", str(tmp_path / "r.db")]) == 2
    assert not calls
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on localhost:{port}" in err[0]
    assert f"[::1]:{port}" in err[0] and "in use" in err[0]


def test_reference_folders_of_killed_servers_are_reclaimed(tmp_path):
    """A server ended by a signal left its 1.2 MB folder of the optimizer reference in the
    temporary folder, one more per start (75 of them, 90 MB, on a machine in an audit): a
    later app removes those whose process has ended, and leaves live ones."""
    import os

    from optimlab.web.server import DOCS_PREFIX, reclaim_docs_folders

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    folders = {name: tmp_path / f"{DOCS_PREFIX}{name}" for name in (
        f"{ended.pid}-abc", f"{os.getpid()}-def", f"{os.getppid()}-ghi", "legacy1", "legacy2")}
    for folder in folders.values():
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "adam.html").write_text("x")
    old = time.time() - 2 * 24 * 3600
    os.utime(folders["legacy2"], (old, old))
    (tmp_path / "unrelated").mkdir()
    assert reclaim_docs_folders(tmp_path) == 2
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f"{DOCS_PREFIX}{os.getpid()}-def", f"{DOCS_PREFIX}{os.getppid()}-ghi",
                           f"{DOCS_PREFIX}legacy1", "unrelated"])
    assert reclaim_docs_folders(tmp_path / "missing") == 0


def test_a_killed_servers_reference_folder_goes_with_the_next_app(tmp_path):
    """End to end: a process that built the app and was killed leaves its folder, named by
    its process id; the next app, in the same temporary folder, removes it."""
    import os
    import re
    import signal

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    code = ("import os, signal; from optimlab.web.server import create_app; "
            "app = create_app(warm=False); print(app.state.docs.name, flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = done.stdout.strip()
    assert os.path.isdir(left) and re.fullmatch(r"optimlab-docs-\d+-\w+", os.path.basename(left))
    code = ("from optimlab.web.server import create_app; app = create_app(warm=False); "
            "print(app.state.docs.name)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert not os.path.exists(left) and os.path.isdir(tmp_path) and done.stdout.strip() != left
