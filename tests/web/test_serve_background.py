"""``serve(background=True)``: the playground from a notebook (where an event loop already
runs), on a thread, with a handle that stops it; a busy port refused before any warm-up; the
foreground ``serve`` refusing a running loop in words; the ``optimlab.web`` wrappers passing
every argument. Servers listen on 127.0.0.1 only and stop within their test."""

import asyncio
import inspect
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

import optimlab.web
from optimlab.web import server

#: urllib without the environment's proxies: the requests go to this machine's server
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, host: str | None = None) -> tuple[int, bytes]:
    """``GET url`` over a real connection (``Host: host`` where given): status and body."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with _OPENER.open(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def refuses(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def serving_threads(port: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"optimlab-playground-{port}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def playground():
    """One background playground on a free port for the tests that only ask it things (its
    warm-up skipped: these tests are about serving, not the catalog)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server, "warm_up", lambda: None)
        pg = optimlab.web.serve(port=0, background=True)
    try:
        yield pg
    finally:
        assert pg.stop(timeout=10)


@pytest.fixture
def quick_warm(monkeypatch):
    """The app's warm-up skipped, its calls counted."""
    calls = []
    monkeypatch.setattr(server, "warm_up", lambda: calls.append(time.monotonic()))
    return calls


def test_background_serve_answers_the_page_and_the_api(playground):
    assert playground.port > 0 and playground.running
    assert playground.url == f"http://127.0.0.1:{playground.port}/"
    status, page = get(playground.url)
    assert status == 200 and b"optimlab playground" in page
    status, body = get(f"{playground.url}api/landscapes")
    assert status == 200 and "rosenbrock" in [land["name"] for land in json.loads(body)]


def test_background_serve_answers_the_host_of_its_real_port_only(playground):
    """Started on port 0, it answers the port the system picked, not any port (as
    ``allowed_hosts(host, 0)`` would): a page elsewhere cannot reach it by another."""
    assert get(f"{playground.url}api/limits", host=f"127.0.0.1:{playground.port}")[0] == 200
    status, body = get(f"{playground.url}api/limits", host="127.0.0.1:1")
    assert status == 400 and "not this server's" in json.loads(body)["message"]


def test_background_serve_logs_warnings_only_by_default(playground):
    """Each request would print an access line into whichever notebook cell runs."""
    assert get(f"{playground.url}api/limits")[0] == 200
    assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    assert logging.getLogger("uvicorn.error").isEnabledFor(logging.WARNING)


def test_the_handle_shows_as_a_link_to_the_page(playground):
    url = playground.url
    assert f'href="{url}"' in playground._repr_html_()
    assert url in repr(playground) and "running" in repr(playground) and len(repr(playground)) < 100


def test_a_second_server_on_the_same_port_fails_at_once(playground, monkeypatch):
    """It used to warm up the whole app and then die on its thread with "address already in
    use" in the log, returning as if it served."""
    warmed = []

    def slow_warm_up():
        warmed.append(1)
        time.sleep(3)

    monkeypatch.setattr(server, "warm_up", slow_warm_up)
    started = time.monotonic()
    with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{playground.port}: .*in use"):
        optimlab.web.serve(port=playground.port, background=True)
    assert time.monotonic() - started < 1.0 and warmed == []
    assert len(serving_threads(playground.port)) == 1
    assert get(f"{playground.url}api/landscapes")[0] == 200  # the first one still answers


def test_an_address_not_of_this_machine_fails_at_once(quick_warm):
    with pytest.raises(OSError, match=r"cannot listen on 192\.0\.2\.1:0"):
        server.serve(host="192.0.2.1", port=0, background=True)  # TEST-NET-1: nobody's
    assert quick_warm == []


def test_stop_frees_the_port_and_ends_the_thread(quick_warm):
    pg = server.serve(port=0, background=True)
    port = pg.port
    docs = pg._server.config.app.state.docs.name  # the optimizer reference's folder
    try:
        assert quick_warm and get(f"{pg.url}api/landscapes")[0] == 200
        assert len(serving_threads(port)) == 1 and os.path.isdir(docs)
    finally:
        assert pg.stop(timeout=10)
    assert refuses(port) and not serving_threads(port) and not pg.running
    assert not os.path.exists(docs)  # it stayed until the interpreter ended
    started = time.monotonic()
    assert pg.stop() and pg.stop(timeout=0)  # again: nothing left to stop
    assert time.monotonic() - started < 1.0
    assert "stopped" in repr(pg) and 'href="' not in pg._repr_html_()


def test_the_with_block_stops_it(quick_warm):
    with optimlab.web.serve(port=0, background=True) as pg:
        port = pg.port
        assert get(pg.url)[0] == 200
    assert refuses(port) and not serving_threads(port) and not pg.running


def test_a_failed_warm_up_is_an_error_and_frees_the_port(monkeypatch):
    def broken():
        raise ValueError("no catalog")

    monkeypatch.setattr(server, "warm_up", broken)
    port = free_port()
    with pytest.raises(RuntimeError, match=rf"did not start on 127\.0\.0\.1:{port}"):
        server.serve(port=port, background=True)
    assert refuses(port) and not serving_threads(port)


def test_foreground_serve_in_a_running_loop_says_to_use_background(monkeypatch):
    """``uvicorn.run`` in a notebook's cell failed with "Cannot run the event loop while
    another loop is running", after building the app; now it is refused first, in words.
    Without a loop the foreground serve runs uvicorn as before."""
    import uvicorn

    built, ran = [], []
    monkeypatch.setattr(server, "create_app", lambda *a, **kw: built.append(kw) or "app")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.append((app, kw)))

    async def cell():
        server.serve(port=free_port())

    with pytest.raises(RuntimeError, match=r"serve\(background=True\).*\.url and \.stop\(\)"):
        asyncio.run(cell())
    assert built == [] and ran == []
    with pytest.raises(RuntimeError, match=r"background=True"):
        asyncio.run(_wrapper_cell())
    assert built == [] and ran == []

    assert server.serve(port=8123, slices=["s"]) is None  # no loop: as ever
    (app, kw), = ran
    assert app == "app" and built[0]["hosts"] == server.allowed_hosts("127.0.0.1", 8123)
    assert kw == {"host": "127.0.0.1", "port": 8123, "log_level": "info",
                  "limit_concurrency": server.MAX_CONNECTIONS,
                  "timeout_keep_alive": server.KEEP_ALIVE_S}


async def _wrapper_cell():
    optimlab.web.serve(port=0)


def test_the_wrappers_pass_every_argument(monkeypatch):
    calls = []
    monkeypatch.setattr(server, "serve", lambda **kw: calls.append(kw) or "handle")
    monkeypatch.setattr(server, "create_app", lambda *a: calls.append(a) or "app")
    assert optimlab.web.serve("127.0.0.1", 0, "runs.db", log_level="debug", slices=["s"],
                              background=True) == "handle"
    assert calls.pop() == {"host": "127.0.0.1", "port": 0, "db_path": "runs.db",
                           "log_level": "debug", "slices": ["s"], "background": True}
    assert optimlab.web.create_app("runs.db", False, None, ["s"]) == "app"
    assert calls.pop() == ("runs.db", False, None, ["s"])
    monkeypatch.undo()
    for wrapper, wrapped in ((optimlab.web.serve, server.serve),
                             (optimlab.web.create_app, server.create_app)):
        assert list(inspect.signature(wrapper).parameters) == \
            list(inspect.signature(wrapped).parameters)
        assert [p.default for p in inspect.signature(wrapper).parameters.values()] == \
            [p.default for p in inspect.signature(wrapped).parameters.values()]
    from optimlab.web import Playground

    assert Playground is server.Playground
