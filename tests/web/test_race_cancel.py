"""A race whose client goes away stops: the server runs it in a worker thread, asks the
connection whether the client is still there every few hundredths of a second, and cancels
the race's :class:`~optimlab.web.api.RaceControl`, which the race checks on every step.
A race still running at the playground's time limit stops too, refused with 422."""

import asyncio
import json
import math
import time

import pytest

from optimlab.web import api, models
from optimlab.web.models import MAX_STEPS, RaceRequest
from optimlab.web.server import create_app

#: A race that takes many seconds: 20 optimizers x 10000 steps (the work budget's limit).
BIG = {"landscape": "rosenbrock", "steps": MAX_STEPS,
       "optimizers": [{"name": "adam", "hparams": {"lr": 0.01}}] * 20}


def test_a_cancelled_control_stops_the_race_at_its_next_step():
    control = api.RaceControl()
    control.cancel()
    with pytest.raises(api.Cancelled):
        api.run_race(RaceRequest(**BIG), control)
    assert control.evaluations == 0 and control.cancelled


def test_a_race_counts_one_evaluation_per_step():
    control = api.RaceControl()
    answer = api.run_race(RaceRequest(landscape="rosenbrock", steps=30,
                                      optimizers=[{"name": "adam"}, {"name": "gd"}]), control)
    assert control.evaluations == 31 and not control.cancelled  # 30 steps, the last point
    assert answer["results"][0]["metrics"]["final_loss"] is not None


async def _call(app, body: bytes, leave_after: float, path: str = "/api/race"):
    """POST ``path`` as a client that hangs up ``leave_after`` seconds in."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    began = time.perf_counter()
    sent, asked = [], [0]

    async def receive():
        asked[0] += 1
        if asked[0] == 1:
            return {"type": "http.request", "body": body, "more_body": False}
        if time.perf_counter() - began >= leave_after:
            return {"type": "http.disconnect"}  # (as uvicorn: at once, once it is gone)
        await asyncio.Event().wait()  # nothing yet: the server's check moves on

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return time.perf_counter() - began, sent


def test_a_control_with_a_time_limit_stops_the_race():
    control = api.RaceControl(seconds=0.3)
    began = time.perf_counter()
    with pytest.raises(api.TimeLimit, match=r"stopped after 0.3 s, the playground's time "
                                            r"limit, at \d+ evaluations"):
        api.run_race(RaceRequest(**BIG), control)
    assert time.perf_counter() - began < 5.0
    assert 0 < control.evaluations < MAX_STEPS, control.evaluations
    assert not control.cancelled


@pytest.mark.parametrize("seconds", [0, -1.0, "30", True, math.inf, math.nan])
def test_a_time_limit_must_be_a_positive_number(seconds):
    with pytest.raises(ValueError, match="seconds must be a number > 0 or None"):
        api.RaceControl(seconds)


def test_the_server_refuses_an_inspection_past_its_time_limit(controls, monkeypatch):
    """The work weights count a typical L-BFGS step; one that never stops early (here every
    step makes its 100 evaluations) runs past them, and the time limit stops it."""
    monkeypatch.setattr(models, "MAX_SECONDS", 0.3)
    app = create_app(None, warm=False)
    elapsed, sent = asyncio.run(_call(app, json.dumps(SLOW_INSPECT).encode(), leave_after=60.0,
                                      path="/api/inspect"))
    (control,) = controls
    assert control.seconds == 0.3 and not control.cancelled
    assert elapsed < 5.0, elapsed
    assert sent[0]["status"] == 422
    body = json.loads(sent[1]["body"])
    assert body["message"].startswith("steps: stopped after 0.3 s, the playground's time limit"), body
    assert body["detail"][0]["loc"] == ["body", "steps"], body
    assert models.limits()["max_seconds"] == 0.3  # GET /api/limits says so


@pytest.fixture
def controls(monkeypatch):
    """Every :class:`~optimlab.web.api.RaceControl` the server makes, as it makes them."""
    made = []

    class Recorded(api.RaceControl):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(api, "RaceControl", Recorded)
    return made


def test_a_race_stops_when_its_client_goes_away(controls):
    app = create_app(None, warm=False)
    elapsed, sent = asyncio.run(_call(app, json.dumps(BIG).encode(), leave_after=0.5))
    (control,) = controls
    assert control.cancelled
    # it stopped soon after the client left, far from the race's 10001 evaluations
    assert elapsed < 5.0, elapsed
    assert 0 < control.evaluations < MAX_STEPS // 4, control.evaluations
    done = control.evaluations
    time.sleep(0.3)
    assert control.evaluations == done  # and its thread does nothing more
    assert sent[0]["status"] == 499


#: An inspection that takes many seconds: L-BFGS making all its 100 evaluations every step.
SLOW_INSPECT = {"landscape": "rosenbrock", "steps": 60, "noise": 1.0,
                "optimizer": {"name": "lbfgs", "hparams": {"max_iter": 100, "tolerance_grad": -1.0,
                                                           "tolerance_change": -1.0}}}


def test_an_inspection_stops_when_its_client_goes_away(controls):
    app = create_app(None, warm=False)
    elapsed, sent = asyncio.run(_call(app, json.dumps(SLOW_INSPECT).encode(), leave_after=0.5,
                                      path="/api/inspect"))
    assert len(controls) == 1, f"no control stopped the inspection ({elapsed:.1f} s)"
    (control,) = controls
    assert control.cancelled and elapsed < 5.0, elapsed
    assert 0 < control.evaluations < 60 * 100 // 4, control.evaluations
    done = control.evaluations
    time.sleep(0.3)
    assert control.evaluations == done
    assert sent[0]["status"] == 499
