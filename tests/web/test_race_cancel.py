"""A race whose client goes away stops: the server runs it in a worker thread, asks the
connection whether the client is still there every few hundredths of a second, and cancels
the race's :class:`~optimlab.web.api.RaceControl`, which the race checks on every step.
A race still running at the playground's time limit stops too, refused with 422.

No test here reads the wall clock: api's clock is a counter (:func:`clock`), and a client
hangs up once the race has made a known number of evaluations (:func:`controls`)."""

import asyncio
import itertools
import json
import math
import threading
import time
import types

import pytest

from optimlab.web import api, models
from optimlab.web.models import MAX_STEPS, RaceRequest
from optimlab.web.server import create_app

#: A race that takes many seconds: 20 optimizers x 10000 steps (the work budget's limit).
BIG = {"landscape": "rosenbrock", "steps": MAX_STEPS,
       "optimizers": [{"name": "adam", "hparams": {"lr": 0.01}}] * 20}

#: What api's fake clock moves on at each reading (a power of two: tick counts add up
#: exactly in binary, so a limit of LIMIT_TICKS ticks runs out at exactly that reading).
TICK = 2.0 ** -10
LIMIT_TICKS = 256
#: The time limit the tests set: 0.25 s of the fake clock.
LIMIT = LIMIT_TICKS * TICK
#: How long a race parked at the client's leaving waits for the server's cancel before it
#: goes on (only a guard against a hung test: a server that never cancels lets the race
#: run to its end, answered 200, which the tests refuse).
GUARD_S = 60.0


@pytest.fixture
def clock(monkeypatch):
    """api's clock made a counter: each reading is one :data:`TICK` after the last, so a
    control made with ``seconds=LIMIT`` reads its clock once as it is made and once per
    check, and its check number ``LIMIT_TICKS + 1`` is the first past the limit."""
    readings = itertools.count()
    monkeypatch.setattr(api, "time", types.SimpleNamespace(
        monotonic=lambda: next(readings) * TICK, perf_counter=time.perf_counter))
    return readings


@pytest.fixture
def frozen(monkeypatch):
    """api's clock stopped: the server's own time limit never runs out."""
    monkeypatch.setattr(api, "time", types.SimpleNamespace(
        monotonic=lambda: 0.0, perf_counter=time.perf_counter))


def test_a_cancelled_control_stops_the_race_at_its_next_step():
    control = api.RaceControl()
    control.cancel()
    with pytest.raises(api.Cancelled):
        api.run_race(RaceRequest(**BIG), control)
    assert control.evaluations == 0 and control.cancelled


def test_a_race_counts_one_evaluation_per_step_and_one_for_its_start():
    control = api.RaceControl()
    answer = api.run_race(RaceRequest(landscape="rosenbrock", steps=30,
                                      optimizers=[{"name": "adam"}, {"name": "gd"}]), control)
    # 30 steps, the last point, and the start's check (f and its gradient finite there)
    assert control.evaluations == 32 and not control.cancelled
    assert answer["results"][0]["metrics"]["final_loss"] is not None


async def _call(app, body: bytes, gone: threading.Event, path: str = "/api/race"):
    """POST ``path`` as a client that hangs up once ``gone`` is set."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    sent, asked = [], [0]

    async def receive():
        asked[0] += 1
        if asked[0] == 1:
            return {"type": "http.request", "body": body, "more_body": False}
        if gone.is_set():
            return {"type": "http.disconnect"}  # (as uvicorn: at once, once it is gone)
        await asyncio.Event().wait()  # nothing yet: the server's check moves on

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_a_control_with_a_time_limit_stops_the_race(clock):
    control = api.RaceControl(seconds=LIMIT)
    with pytest.raises(api.TimeLimit, match=rf"stopped after 0.25 s, the playground's time "
                                            rf"limit, at {LIMIT_TICKS} evaluations"):
        api.run_race(RaceRequest(**BIG), control)
    # one evaluation per tick until the limit: the next check is the first past it
    assert control.evaluations == LIMIT_TICKS
    assert not control.cancelled


@pytest.mark.parametrize("seconds", [0, -1.0, "30", True, math.inf, math.nan])
def test_a_time_limit_must_be_a_positive_number(seconds):
    with pytest.raises(ValueError, match="seconds must be a number > 0 or None"):
        api.RaceControl(seconds)


@pytest.fixture
def controls(monkeypatch):
    """Every :class:`~optimlab.web.api.RaceControl` the server makes, as it makes them; the
    list's ``gone`` event is the client's hanging up, set by the race's check once it has
    made ``leave_at`` evaluations (None: never), and the race then waits there until the
    server cancels it. ``outcomes`` holds what each race's function ended with."""

    class Made(list):
        leave_at: int | None = None
        gone = threading.Event()
        outcomes: list = []

    made = Made()

    class Recorded(api.RaceControl):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

        def check(self):
            super().check()
            if self.evaluations == made.leave_at:
                made.gone.set()
                self._stop.wait(GUARD_S)  # the worker is slower than the server's poll

    def recorded(run):
        def wrapped(*args, **kwargs):
            try:
                answer = run(*args, **kwargs)
            except BaseException as err:
                made.outcomes.append(type(err))
                raise
            made.outcomes.append("answer")
            return answer
        return wrapped

    monkeypatch.setattr(api, "RaceControl", Recorded)
    monkeypatch.setattr(api, "run_race", recorded(api.run_race))
    monkeypatch.setattr(api, "run_inspect", recorded(api.run_inspect))
    return made


#: An inspection that takes many seconds: L-BFGS making all its 100 evaluations every step.
SLOW_INSPECT = {"landscape": "rosenbrock", "steps": 60, "noise": 1.0,
                "optimizer": {"name": "lbfgs", "hparams": {"max_iter": 100, "tolerance_grad": -1.0,
                                                           "tolerance_change": -1.0}}}


def test_the_server_refuses_an_inspection_past_its_time_limit(controls, clock, monkeypatch):
    """The work weights count a typical L-BFGS step; one that never stops early (here every
    step makes its 100 evaluations) runs past them, and the time limit stops it."""
    monkeypatch.setattr(models, "MAX_SECONDS", LIMIT)
    app = create_app(None, warm=False)
    sent = asyncio.run(_call(app, json.dumps(SLOW_INSPECT).encode(), controls.gone,
                             path="/api/inspect"))
    (control,) = controls
    assert control.seconds == LIMIT and not control.cancelled and not controls.gone.is_set()
    # the fake clock runs out at check LIMIT_TICKS + 1, inside L-BFGS's third step (of
    # 6000 evaluations in all): far from the end, and at that check exactly
    assert control.evaluations == LIMIT_TICKS and controls.outcomes == [api.TimeLimit]
    assert sent[0]["status"] == 422
    body = json.loads(sent[1]["body"])
    assert body["message"].startswith(f"steps: stopped after 0.25 s, the playground's time limit, "
                                      f"at {LIMIT_TICKS} evaluations"), body
    assert body["detail"][0]["loc"] == ["body", "steps"], body
    assert models.limits()["max_seconds"] == LIMIT  # GET /api/limits says so


@pytest.mark.parametrize("path, body, leave_at", [
    ("/api/race", BIG, 100),  # of the race's 10001 evaluations
    ("/api/inspect", SLOW_INSPECT, 250),  # inside L-BFGS's third step, of about 6000
])
def test_a_run_stops_when_its_client_goes_away(controls, frozen, path, body, leave_at):
    """The client hangs up at evaluation ``leave_at`` and the race waits there: the server's
    poll notices, cancels, and the race's next check raises, so it stops at ``leave_at``
    exactly; its function has raised :class:`~optimlab.web.api.Cancelled` (its thread does
    nothing more) before the server answers 499."""
    controls.leave_at = leave_at
    app = create_app(None, warm=False)
    sent = asyncio.run(_call(app, json.dumps(body).encode(), controls.gone, path=path))
    assert len(controls) == 1, "no control ran the request"
    (control,) = controls
    assert controls.gone.is_set() and control.cancelled
    assert control.evaluations == leave_at, control.evaluations
    assert controls.outcomes == [api.Cancelled]
    assert sent[0]["status"] == 499
