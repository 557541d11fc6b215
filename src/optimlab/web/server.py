"""The playground's web app: a JSON API and the page, on FastAPI.

Endpoints (all JSON; limits in :mod:`optimlab.web.models`):

``GET /api/limits``
    every limit of the API.
``GET /api/landscapes``
    the 2-D landscapes: name, description, domain, minima, min_value, start, log_scale,
    challenges, params.
``GET /api/landscapes/{name}/grid?n=100[&kappa=100]``
    f on an n x n grid over the domain, and the colour scale of its contours.
``GET /api/optimizers``
    every registry name: its catalog row (paper, update rule as LaTeX and text, tuning
    advice, strengths, weaknesses, typical use), its colour, and the hyperparameters a
    page shows with defaults and ranges.
``POST /api/race``
    a race (:class:`~optimlab.web.models.RaceRequest`): paths, losses, the values used and
    the metrics (final loss, distance to minimum, steps to tolerance, diverged).
``POST /api/inspect``
    one optimizer step by step: the gradient, its state and the step taken at each step
    (within the race's work budget).
``POST /api/basins``
    basins of attraction: the minimum each optimizer reaches from each start of a grid.
``GET /api/slices``, ``GET /api/slices/{id}``
    the slices of real networks' loss landscapes found in the slices folders
    (``optimlab slice``); one slice's grid, paths, interpolation and sharpness.
``GET /api/sweeps``, ``GET /api/sweeps/{id}``
    the sweeps of the run store; one sweep's summary, mean curves and text table.

A request outside the limits gets 422 with ``{"message": "...", "detail": [...]}``:
``message`` says which field and why in one line, ``detail`` lists ``loc``/``msg``/``type``
per problem (as FastAPI does). An unknown sweep or file is 404. The OpenAPI schema
(``/api/openapi.json``) states every limit (:mod:`optimlab.web.models`); there is no API
docs page, since Swagger UI would load from a CDN.

The page (``/``) and its files come from this package's ``static`` folder only;
``/static/plotly.min.js`` is the installed ``plotly`` package's own bundle.
``/docs/`` serves the optimizer reference (:mod:`optimlab.web.docs`, what ``optimlab docs``
writes): ``/docs/adam.html`` and the others, linked from each optimizer's card.

Exposure: the server answers only requests whose ``Host`` header names the address it was
started on (loopback by default: ``127.0.0.1``, ``localhost``, ``[::1]``), so a web page
elsewhere cannot reach it through DNS rebinding; every response carries the strict
Content-Security-Policy and ``X-Content-Type-Options: nosniff``. A race, an inspection or a
basins map whose client goes away stops within a step (:class:`optimlab.web.api.RaceControl`).
A request body longer than :data:`~optimlab.web.models.MAX_BODY` bytes gets 413 unread, one
that has not all come within :data:`BODY_TIMEOUT_S` 408. At most :data:`MAX_RACES` races
(inspections, basins maps) run at once, on threads of their own; one more waits
:data:`RACE_WAIT_S` for a slot, then gets 503.
"""

# (no ``from __future__ import annotations``: the endpoints' annotations name models that
# create_app builds, and FastAPI reads them as objects)
import asyncio
import difflib
import ipaddress
import itertools
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException

from ..bench.store import StoreError
from ..landscapes.functions import from_catalog as get_landscape_by_name  # no user modules
from ..optim.base import argument_error
from ..optim.registry import resolve
from . import api, models
from . import hparams as hp
from .docs import write_docs
from .models import (
    MAX_ID,
    BasinsResponse,
    ErrorResponse,
    GridResponse,
    InspectResponse,
    LandscapeModel,
    LimitsModel,
    OptimizerModel,
    RaceResponse,
    SliceDetail,
    SliceModel,
    SweepDetail,
    SweepModel,
    limits,
)

__all__ = ["create_app", "serve", "warm_up", "STATIC_DIR", "plotly_js", "CSP", "HEADERS",
           "LOOPBACK_HOSTS", "allowed_hosts", "is_loopback", "host_allowed", "exposure_warning",
           "DISCONNECT_POLL_S", "DOCS_PREFIX", "reclaim_docs_folders", "Playground",
           "START_TIMEOUT_S", "STOP_TIMEOUT_S", "browser_url"]

#: The page's own files (index.html, app.js, style.css, vendor/katex).
STATIC_DIR = Path(str(resources.files("optimlab.web") / "static"))

#: What the page may load: only from this server, no inline or evaluated script (Plotly and
#: KaTeX set inline styles, hence 'unsafe-inline' for styles only).
CSP = ("default-src 'self'; script-src 'self'; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
       "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")

#: Headers every response carries (the page, its files, the API, errors).
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}

#: The names of this machine's loopback address a browser may put in ``Host``.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

#: How often (seconds) a running race asks whether its client is still there.
DISCONNECT_POLL_S = 0.1


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity and cgroup quota), at least 1."""
    try:
        from ..bench.store.environment import usable_cpu_count

        return max(1, usable_cpu_count() or 1)
    except Exception:  # pragma: no cover - the count is a guess either way
        return max(1, os.cpu_count() or 1)


#: How many races (inspections, basins maps) run at once: one per usable CPU, since each
#: keeps one busy. They run on a thread limiter of their own, so that the cheap GET
#: endpoints (sync, on AnyIO's default thread pool) never wait behind them.
MAX_RACES = _usable_cpus()

#: How long (seconds) a race waits for one of the :data:`MAX_RACES` slots before it is
#: refused with 503 ("the playground is busy").
RACE_WAIT_S = 10.0

#: How long (seconds) the server waits for each part of a request body; a client that sends
#: a ``Content-Length`` and then trickles the body (or nothing) gets 408.
BODY_TIMEOUT_S = 10.0

#: The connections (and requests) uvicorn serves at once; past them it answers 503.
MAX_CONNECTIONS = 64

#: How long (seconds) uvicorn keeps an idle keep-alive connection open.
KEEP_ALIVE_S = 5

_JSON = "application/json"
_ERRORS = {422: {"model": ErrorResponse, "description": "a field outside its limits"},
           404: {"model": ErrorResponse, "description": "no such sweep"}}
_BUSY = {503: {"model": ErrorResponse,
               "description": "the playground is busy: as many races as it runs at once are "
                              "running (and none ended within a few seconds); try again"}}
_STORE_ERRORS = {501: {"model": ErrorResponse,
                       "description": "the run store needs pandas (optimlab[bench])"},
                 503: {"model": ErrorResponse,
                       "description": "the run store cannot be read (damaged, locked, ...)"}}

_SLICE_ERRORS = {503: {"model": ErrorResponse,
                       "description": "the slice file cannot be read or is not a slice "
                                      "(the list shows it with its error)"}}


def plotly_js() -> Path:
    """The installed plotly package's ``plotly.min.js``."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():  # pragma: no cover - a broken plotly install
        raise FileNotFoundError(f"plotly.min.js not found at {path}; reinstall plotly")
    return path


def _json(body: bytes | dict | list, status: int = 200) -> Response:
    if not isinstance(body, bytes):
        body = api.dumps(body)
    return Response(body, status_code=status, media_type=_JSON)


def _racers(body) -> list[str | None]:
    """The name a race's table gives each racer of a request ``body`` (its label, else its
    name; a repeated one numbered ``#2``, ``#3`` as :func:`optimlab.web.api.run_race` does),
    None for an item with no optimizer name the API takes; the one of ``optimizer``
    (``POST /api/inspect``) as a list of one. Only the first ``MAX_OPTIMIZERS + 1`` items are
    read (a longer list is refused for its length; a problem past them is named by its
    position), so a huge body costs no more than a full race's."""
    if not isinstance(body, dict):
        return []
    specs = body.get("optimizers")
    specs = specs if isinstance(specs, list) else [body.get("optimizer")]
    names, seen, counts = [], set(), {}
    for spec in itertools.islice(specs, models.MAX_OPTIMIZERS + 1):
        spec = spec if isinstance(spec, dict) else {}
        label = spec.get("label") if isinstance(spec.get("label"), str) and spec["label"] \
            else spec.get("name")
        if spec.get("name") not in models.OPTIMIZERS or not isinstance(label, str):
            names.append(None)
            continue
        names.append(api.numbered(label, seen, counts))
    return names


def _where(loc: Sequence, racers: list[str | None]) -> str:
    """Where a problem is, in words: ``optimizers[adam].hparams.lr`` (the racer by the name
    its row of the table has, not its position in the list; its position where the item has
    no optimizer name), ``params.kappa``; empty for the whole body."""
    parts = [p for p in loc if p != "body"]
    if len(parts) >= 2 and parts[0] == "optimizers" and isinstance(parts[1], int):
        i = parts[1]
        name = racers[i] if 0 <= i < len(racers) else None
        parts[:2] = [f"optimizers[{_short(name) if name else i}]"]
    elif parts[:1] == ["optimizer"] and racers and racers[0]:
        parts[0] = f"optimizer[{_short(racers[0])}]"
    return ".".join(_short(p) if isinstance(p, str) else str(p) for p in parts)


def _message(detail: list[dict], body=None) -> str:
    """The 422's one line: each problem as ``where: why`` (why alone for the whole body)."""
    racers = _racers(body)
    return "; ".join(": ".join(filter(None, (_where(d["loc"], racers), d["msg"])))
                     for d in detail)


def _error(status: int, detail: list[dict], body=None) -> Response:
    return _json({"message": _message(detail, body), "detail": detail}, status)


def _short(text: str, most: int = 60) -> str:
    """``text`` cut to ``most`` characters (with "..."): a name echoed in a message."""
    return text if len(text) <= most else text[:most - 3] + "..."


async def _body(request: Request):
    """The request's JSON body (already read: Starlette keeps it), or None."""
    try:
        return await request.json()
    except Exception:  # no body, not JSON, not readable: no racer names to tell
        return None


# ----------------------------------------------------------------------------- messages


def _unknown(kind: str, given: str, names: Sequence[str]) -> str:
    """``unknown optimizer 'adamx'; did you mean adamax, adam?`` and the names the API takes
    (only those: not the library's names it refuses), the name cut to 60 characters."""
    close = difflib.get_close_matches(given.strip().lower(), names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {kind} {_short(repr(given))}{hint} (the API takes {', '.join(names)})"


def _unknown_optimizer(tag) -> str:
    names = models.OPTIMIZERS
    if not isinstance(tag, str) or not tag:
        return "each optimizer needs a name: a registry name (GET /api/optimizers)"
    try:
        entry = resolve(tag)
    except ValueError:
        return _unknown("optimizer", tag, names)
    if entry.capabilities.sparse_only:
        return (f"{entry.name} needs sparse gradients (an embedding's), which the playground's "
                f"landscapes never give, so the playground does not offer it")
    if entry.name not in names:
        return _unknown("optimizer", tag, names)
    return f"{_short(repr(tag))} is not a registry name as the API takes it; use {entry.name!r}"


def _unknown_landscape(name) -> str:
    names = models.LANDSCAPES
    if not isinstance(name, str):
        return f"landscape must be one of {', '.join(names)}"
    try:
        land = get_landscape_by_name(name)
    except ValueError:
        return _unknown("landscape", name, names)
    if land.dim != 2:
        return f"the playground races 2-D landscapes only; {land.name!r} has dim={land.dim}"
    return f"{_short(repr(name))} is not a landscape name as the API takes it; use {land.name!r}"


def _explain(error: dict) -> dict:
    """One validation error as the API reports it: where, why in words, and its type; the
    optimizer's model name pydantic puts after its index is dropped, unknown names get a
    "did you mean" among the names the API takes (an inspect's one optimizer as a race's),
    a body that is not JSON says so (pydantic puts the offset where a field goes), and no
    text typed comes back longer than 60 characters."""
    loc, kind = list(error.get("loc", ())), str(error.get("type", "value_error"))
    msg, ctx = str(error.get("msg", "")), error.get("ctx") or {}
    optimizers = models.OPTIMIZERS
    if kind in ("union_tag_invalid", "union_tag_not_found") and (
            loc[-2:-1] == ["optimizers"] or loc == ["body", "optimizer"]):
        loc.append("name")  # (a race's racer, or /api/inspect's one optimizer)
        msg = _unknown_optimizer(ctx.get("tag") if kind == "union_tag_invalid" else None)
    elif kind == "json_invalid" and loc[:1] == ["body"]:
        # pydantic puts the offset where a field's name goes ("43: JSON decode error")
        where = [f"at character {loc[1]}"] if len(loc) > 1 and isinstance(loc[1], int) else []
        where += [str(ctx["error"])[:60].lower()] if ctx.get("error") else []
        loc, msg = ["body"], "the request body is not valid JSON" + (
            f" ({': '.join(where)})" if where else "")
    elif kind == "missing" and loc == ["body"]:
        msg = "the request has no body: it must be a JSON object"
    elif kind == "model_attributes_type" and loc == ["body"]:
        # raw bytes: a body sent without Content-Type application/json, which FastAPI does
        # not parse (and must not: a cross-site form may post text/plain, not JSON)
        msg = "the request body must be a JSON object" if not isinstance(
            error.get("input"), (bytes, bytearray)) else (
            "the request body must be sent as JSON, with the header Content-Type: "
            "application/json (a JSON object)")
    elif kind in ("literal_error", "enum") and loc in (["body", "landscape"], ["path", "name"]):
        msg = _unknown_landscape(error.get("input"))
    elif kind == "extra_forbidden" and "hparams" in loc[:-1] and loc.index("hparams") >= 1:
        key, name = loc[-1], loc[loc.index("hparams") - 1]
        if key in hp.HIDDEN or key == "name":
            msg = f"{key} cannot be set in the playground"
        elif name in optimizers:
            takes = ", ".join(hp.accepted(name))
            msg = f"{name} has no hyperparameter {_short(repr(key))} (it takes {takes})"
    elif kind == "literal_error" and len(loc) >= 2 and loc[-2] == "hparams" \
            and loc[-1] in ("inner", "base_optimizer"):
        try:
            hp.check_inner(str(loc[-1]), error.get("input"))
        except hp.HyperparameterError as err:
            msg = str(err)
    elif kind == "float_type" and isinstance(error.get("input"), int) \
            and not isinstance(error.get("input"), bool):
        msg = "Input should be a finite number; this integer is too large for a float"
    bound = ctx.get("le", ctx.get("ge"))
    if isinstance(bound, float) and abs(bound) == hp.FLOAT32_MAX:
        msg = f"Input should be a finite number of magnitude at most {hp.FLOAT32_MAX:.4g} " \
              f"(float32's largest)"
    if len(loc) > 3 and loc[:2] == ["body", "optimizers"] and loc[3] in optimizers:
        del loc[3]
    elif len(loc) > 2 and loc[:2] == ["body", "optimizer"] and loc[2] in optimizers:
        del loc[2]  # (/api/inspect's one optimizer)
    # a key of any length may come back in the location: cut it as the message does
    loc = [_short(p) if isinstance(p, str) else p for p in loc]
    return {"loc": loc, "msg": msg, "type": kind}


# ----------------------------------------------------------------------------- exposure


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this
    machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(host: str, port: int | None = None) -> tuple[str, ...] | None:
    """The ``Host`` header values a server bound to ``host:port`` answers.

    Loopback: the loopback names (:data:`LOOPBACK_HOSTS`) and the bound address itself
    (``127.0.0.2``) with that port (any port when it is 0 or None); another address or name:
    that one only; every address (``0.0.0.0``, ``::``): None, any host (the server was
    opened to the network on purpose).

    >>> allowed_hosts("127.0.0.1", 8000)
    ('127.0.0.1:8000', 'localhost:8000', '[::1]:8000')
    >>> allowed_hosts("127.0.0.2", 8000)
    ('127.0.0.2:8000', '127.0.0.1:8000', 'localhost:8000', '[::1]:8000')
    >>> allowed_hosts("0.0.0.0", 8000) is None
    True
    """
    if host in ("", "0.0.0.0", "::", "[::]"):
        return None
    bound = _bracketed(host.lower())
    names = (bound,) if not is_loopback(host) else \
        LOOPBACK_HOSTS if bound in LOOPBACK_HOSTS else (bound,) + LOOPBACK_HOSTS
    if not port:
        return names
    return tuple(f"{n}:{port}" for n in names) + (names if port == 80 else ())


def _split_host(value: str) -> tuple[str, str | None]:
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1:]
        return value[:end + 1], rest[1:] if rest.startswith(":") else None
    name, colon, port = value.partition(":")
    return name, port if colon else None


def host_allowed(header: str | None, allowed: Sequence[str] | None) -> bool:
    """Whether a ``Host`` header matches one of ``allowed`` (``name`` for any port,
    ``name:port`` for that one; None allows everything)."""
    if allowed is None:
        return True
    if not header:
        return False
    name, port = _split_host(header.strip().lower())
    for entry in allowed:
        want_name, want_port = _split_host(entry.lower())
        if name == want_name and (want_port is None or want_port == port):
            return True
    return False


def exposure_warning(host: str, port: int) -> str | None:
    """The warning ``serve`` prints when ``host`` is not a loopback address (None if it is)."""
    if is_loopback(host):
        return None
    check = "any Host header is accepted" if allowed_hosts(host, port) is None else \
        f"only Host {_bracketed(host)}:{port} is accepted"
    return (f"optimlab: warning: the playground listens on {_bracketed(host)}:{port}, not on "
            f"loopback: anyone who can reach this machine can use it and make it compute "
            f"races (it has no login; {check}); use --host 127.0.0.1 to keep it local")


def _unreadable(exc: BaseException) -> str | None:
    """Why FastAPI could not parse a JSON body (its 400 "There was an error parsing the
    body", raised from Python's error): nested too deeply (RecursionError), or a number with
    more digits than Python converts; None for anything else."""
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        return "the request body is not valid JSON as the API reads it: it is nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        most = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
        said = f" (more than {most} digits)" if most else ""
        return f"the request body is not valid JSON as the API reads it: it holds a number too " \
               f"long{said}"
    return None


def _body_too_long(size: int | None = None) -> str:
    said = f" ({size} bytes)" if size is not None else ""
    return (f"the request body is too long{said}: the limit is {models.MAX_BODY} bytes, more "
            f"than any request of the API needs")


class _Guard:
    """ASGI middleware: refuses a ``Host`` the server was not started on (400), a body
    longer than :data:`~optimlab.web.models.MAX_BODY` (413: by its ``Content-Length`` before
    reading it, else once that much has come) and a body that has not all come within
    :data:`BODY_TIMEOUT_S` of the request (408), and adds :data:`HEADERS` to every
    response."""

    def __init__(self, app, hosts: Sequence[str] | None) -> None:
        self.app = app
        self.hosts = None if hosts is None else tuple(hosts)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in HEADERS.items():
                    headers[key] = value
            await send(message)

        async def refuse(status: int, loc: list[str], msg: str) -> None:
            response = _error(status, [{"loc": loc, "msg": msg, "type": "value_error"}])
            await response(scope, receive, send_with_headers)

        headers = Headers(scope=scope)
        host = headers.get("host")
        if not host_allowed(host, self.hosts):
            shown = "no Host header" if not host else f"Host {host[:80]!r}"
            await refuse(400, ["header", "host"],
                         f"{shown} is not this server's: it answers "
                         f"{', '.join(self.hosts or ())} (a page elsewhere may not reach it by "
                         f"another name)")
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > models.MAX_BODY:
            await refuse(413, ["body"], _body_too_long(int(length)))
            return
        received, whole = 0, False
        deadline = asyncio.get_running_loop().time() + BODY_TIMEOUT_S

        async def receive_within_limit():
            # a body without a length (sent in chunks) is counted as it comes; the whole body
            # must come within BODY_TIMEOUT_S of the request, so that a client trickling it
            # (or sending a Content-Length and nothing) cannot hold the connection and a
            # worker (once the body is whole, a receive waits for the client to go away:
            # that is not bounded)
            nonlocal received, whole
            if whole:
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not come within "
                                         f"{BODY_TIMEOUT_S:g} s") from None
            whole = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > models.MAX_BODY:
                    raise HTTPException(413, _body_too_long())
            return message

        await self.app(scope, receive_within_limit, send_with_headers)


# ----------------------------------------------------------------------------- the app


def warm_up() -> None:
    """Build the catalog payloads and run a one-step race, so the first page load does not
    pay for them (the first optimizer built imports part of torch, seconds on a slow
    machine)."""
    api.optimizers_json()
    api.landscapes()
    api.run_race(models.RaceRequest(landscape="rosenbrock", steps=1,
                                    optimizers=[{"name": "adam"}, {"name": "sam"}]))


class _RaceSlots:
    """At most ``size`` races at once (:data:`MAX_RACES`), on a thread limiter of their own;
    made in the event loop on first use (AnyIO's and asyncio's primitives belong to one)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self.running = 0
        self._gate: asyncio.Semaphore | None = None
        self._threads = None

    def _made(self) -> None:
        if self._gate is None:
            import anyio

            self._gate = asyncio.Semaphore(self.size)
            self._threads = anyio.CapacityLimiter(self.size)

    async def acquire(self, wait: float) -> bool:
        """Take a slot, waiting at most ``wait`` seconds; False when none came free."""
        self._made()
        try:
            await asyncio.wait_for(self._gate.acquire(), wait)
        except asyncio.TimeoutError:
            return False
        self.running += 1
        return True

    def release(self) -> None:
        self.running -= 1
        self._gate.release()

    async def run(self, fn, *args):
        """``fn(*args)`` in a worker thread of the races' own limiter."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(fn, *args, limiter=self._threads)


def _busy(slots: _RaceSlots) -> Response:
    """The 503 of a race that found no free slot within :data:`RACE_WAIT_S`."""
    response = _error(503, [{"loc": ["body"], "type": "busy",
                             "msg": f"the playground is busy: {slots.running} "
                                    f"race{'' if slots.running == 1 else 's'} running (at most "
                                    f"{slots.size} at once, one per CPU); try again in a "
                                    f"moment"}])
    response.headers["Retry-After"] = "1"
    return response


async def _race(body, request: Request, run=None) -> Response:
    """Run a race (``run``: :func:`api.run_race`, or another function of a request and a
    :class:`~optimlab.web.api.RaceControl`) in a worker thread; stop it when the client
    goes away, and answer 422 if it runs past :data:`~optimlab.web.models.MAX_SECONDS`.
    At most :data:`MAX_RACES` run at once (the app's ``state.races``): one over them waits
    :data:`RACE_WAIT_S` for a slot, then gets 503 ("the playground is busy")."""
    slots = getattr(request.app.state, "races", None)
    if slots is None:
        slots = request.app.state.races = _RaceSlots(MAX_RACES)
    if not await slots.acquire(RACE_WAIT_S):
        return _busy(slots)
    try:
        return await _run_race(body, request, run, slots)
    finally:
        slots.release()


async def _run_race(body, request: Request, run, slots: _RaceSlots) -> Response:
    """:func:`_race` once it holds a slot."""
    control = api.RaceControl(models.MAX_SECONDS)
    task = asyncio.ensure_future(slots.run(run or api.run_race, body, control))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and await request.is_disconnected():
                control.cancel()
                break
        answer = await task
    except api.TimeLimit as err:
        raise api.RequestError(("steps",), str(err)) from None
    except api.Cancelled:
        return Response(status_code=499)  # nobody is left to read it
    except asyncio.CancelledError:  # the server is stopping
        control.cancel()
        raise
    return _json(answer)


def create_app(db_path: str | os.PathLike | None = None, warm: bool = True,
               hosts: Sequence[str] | None = LOOPBACK_HOSTS,
               slices: Sequence[str | os.PathLike] = ()) -> FastAPI:
    """The playground app. ``db_path`` is the run store the Runs tab reads (read-only; a
    missing file shows no sweeps). ``slices`` are folders (or files) whose ``slice.json``
    files (``optimlab slice``) the Slices tab shows. ``warm`` runs :func:`warm_up` when the server starts
    (before it accepts requests). ``hosts`` are the ``Host`` header values it answers
    (``name`` for any port, ``name:port``; None: any, see :func:`allowed_hosts`); others get
    400."""
    db = None if db_path is None else os.path.abspath(os.fspath(db_path))
    # the request models, built from the registry and the landscape catalog on first use
    RaceRequest, GridQuery, LANDSCAPES = models.RaceRequest, models.GridQuery, models.LANDSCAPES
    InspectRequest, BasinsRequest = models.InspectRequest, models.BasinsRequest

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if warm:
            warm_up()
        yield

    app = FastAPI(title="optimlab playground", version="1", lifespan=lifespan,
                  description="Race optimizers on landscapes; browse stored sweeps. Every "
                              "limit is stated in this schema; rules that tie fields "
                              "together are in the descriptions (RaceRequest).",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  responses={400: {"model": ErrorResponse,
                                   "description": "a Host header this server does not "
                                                  "answer, or a body that cannot be read"},
                             408: {"model": ErrorResponse,
                                   "description": f"a body that did not all come within "
                                                  f"{BODY_TIMEOUT_S:g} s"},
                             413: {"model": ErrorResponse,
                                   "description": f"a body over {models.MAX_BODY} bytes"}})
    app.state.db_path = db
    app.state.races = _RaceSlots(MAX_RACES)
    app.state.slices = [os.path.abspath(os.fspath(p)) for p in slices]
    app.add_middleware(_Guard, hosts=hosts)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return _error(422, [_explain(e) for e in exc.errors()], exc.body)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        # FastAPI's and Starlette's own refusals (an unreadable body, an unknown path, a
        # method not allowed) in the API's error format
        where = "body" if exc.status_code in (400, 408, 413) else "path"
        unreadable = _unreadable(exc) if exc.status_code == 400 else None
        if unreadable:  # JSON that Python's parser refuses: 422 naming why, as invalid JSON
            return _error(422, [{"loc": ["body"], "msg": unreadable, "type": "json_invalid"}])
        detail = [{"loc": [where], "msg": str(exc.detail), "type": "http_error"}]
        response = _error(exc.status_code, detail)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> Response:
        # a damaged or unreadable store: say why, without where it lies on this machine
        reason = str(exc)
        if db is not None:
            reason = reason.replace(str(Path(db).resolve()), Path(db).name) \
                .replace(str(db), Path(db).name)
        detail = [{"loc": ["path"], "msg": f"the run store cannot be read: {reason}",
                   "type": "store_error"}]
        return _error(503, detail)

    @app.exception_handler(api.RequestError)
    async def _refused(request: Request, exc: api.RequestError) -> Response:
        loc = (["body"] if exc.loc and exc.loc[0] not in ("query", "path") else []) \
            + list(exc.loc)
        body = await _body(request) if loc[:1] == ["body"] else None
        return _error(exc.status, [{"loc": loc, "msg": str(exc), "type": "value_error"}], body)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> Response:
        response = FileResponse(STATIC_DIR / "index.html", media_type="text/html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/api/limits", response_model=LimitsModel, summary="The API's limits")
    def get_limits() -> Response:
        return _json(limits())

    @app.get("/api/landscapes", response_model=list[LandscapeModel], summary="2-D landscapes")
    def get_landscapes() -> Response:
        return _json(api.landscapes())

    @app.get("/api/landscapes/{name}/grid", response_model=GridResponse, responses=_ERRORS,
             summary="A landscape on a grid, for contours")
    def get_grid(name: Annotated[Literal[LANDSCAPES], PathParam(description="a 2-D landscape")],
                 query: Annotated[GridQuery, Query()]) -> Response:
        params = query.model_dump(exclude_unset=True, exclude={"n"})
        return _json(api.grid_json(name, params, query.n))

    @app.get("/api/optimizers", response_model=list[OptimizerModel], summary="The catalog")
    def get_optimizers() -> Response:
        return _json(api.optimizers_json())

    @app.post("/api/race", response_model=RaceResponse, responses={**_ERRORS, **_BUSY},
              summary="Race optimizers on a landscape",
              description="The race runs in a worker thread and stops within a step when "
                          "the client goes away. Limits: RaceRequest's fields and its "
                          "description (the work budget).")
    async def post_race(body: RaceRequest, request: Request) -> Response:
        return await _race(body, request)

    @app.post("/api/inspect", response_model=InspectResponse, responses={**_ERRORS, **_BUSY},
              summary="One optimizer step by step: gradient, state, step taken",
              description="Runs in a worker thread and stops within a step when the client "
                          "goes away. Limits: InspectRequest's fields, start inside the "
                          "domain, and the race's work budget (steps x the optimizer's "
                          f"work_weight <= {models.MAX_WORK}).")
    async def post_inspect(body: InspectRequest, request: Request) -> Response:
        return await _race(body, request, api.run_inspect)

    @app.post("/api/basins", response_model=BasinsResponse, responses={**_ERRORS, **_BUSY},
              summary="Basins of attraction: the minimum each start of a grid ends in",
              description="Every optimizer from every start of a grid over the domain, one "
                          "batch; stops within a step when the client goes away. Limits: "
                          "BasinsRequest's fields and its description (the budget in "
                          "member-steps: starts x steps x optimizers).")
    async def post_basins(body: BasinsRequest, request: Request) -> Response:
        return await _race(body, request, api.run_basins)

    @app.get("/api/sweeps", response_model=list[SweepModel], responses=_STORE_ERRORS,
             summary="Stored sweeps")
    def get_sweeps() -> Response:
        return _json(api.sweeps(app.state.db_path))

    @app.get("/api/sweeps/{sweep_id}", response_model=SweepDetail,
             responses={**_ERRORS, **_STORE_ERRORS}, summary="One stored sweep")
    def get_sweep(sweep_id: Annotated[int, PathParam(ge=1, le=MAX_ID,
                                                     description="a sweep's id")]) -> Response:
        return _json(api.sweep_detail_json(app.state.db_path, sweep_id))

    @app.get("/api/slices", response_model=list[SliceModel], summary="Stored slices")
    def get_slices() -> Response:
        return _json(api.slices(app.state.slices))

    @app.get("/api/slices/{slice_id}", response_model=SliceDetail,
             responses={**_ERRORS, **_SLICE_ERRORS},
             summary="One real network's loss-landscape slice")
    def get_slice(slice_id: Annotated[int, PathParam(ge=1, le=MAX_ID,
                                                     description="a slice's id")]) -> Response:
        return _json(api.slice_detail(app.state.slices, slice_id))

    @app.api_route("/static/plotly.min.js", methods=["GET", "HEAD"], include_in_schema=False)
    def get_plotly() -> Response:
        response = FileResponse(plotly_js(), media_type="text/javascript")
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    # the optimizer reference (optimlab docs), written once per app into a folder of its
    # own (27 ms; removed with the app, or by a later app where this process is killed),
    # under the same headers as the page; where no temporary folder can be written the
    # playground goes on without it
    try:
        reclaim_docs_folders()
        app.state.docs = tempfile.TemporaryDirectory(prefix=f"{DOCS_PREFIX}{os.getpid()}-")
        write_docs(app.state.docs.name)
    except OSError as err:
        print(f"optimlab serve: the optimizer reference is not served ({err})", file=sys.stderr)
    else:
        app.mount("/docs", StaticFiles(directory=app.state.docs.name, html=True), name="docs")
    # everything else under /static comes from the package folder (StaticFiles refuses any
    # path that resolves outside it, and follows no symlinks)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


#: the start of the name of an app's folder of the optimizer reference, in the system's
#: temporary folder; the writing process's id and a random part follow
DOCS_PREFIX = "optimlab-docs-"
#: how old a folder named as before 2026-12-06 (no process id) must be to be reclaimed
_LEGACY_DOCS_AGE_S = 24 * 3600


def reclaim_docs_folders(root: str | os.PathLike | None = None) -> int:
    """Remove the reference folders (:data:`DOCS_PREFIX`) that killed servers left in the
    temporary folder ``root`` (default: the system's); returns how many.

    A server removes its own folder when it stops, but a process ended by a signal
    (``SIGTERM`` outside uvicorn, ``SIGKILL``, a test run killed on time-out) leaves its
    1.2 MB behind, one more per start. A folder is reclaimed where the process it names has
    ended and this user owns it; one named without a process id (written before
    2026-12-06) once it is a day old. Another user's folders and a live process's are left.
    """
    import shutil
    import time

    from ..bench.store.guard import process_alive

    base = Path(root if root is not None else tempfile.gettempdir())
    removed = 0
    try:
        candidates = list(base.glob(f"{DOCS_PREFIX}*"))
    except OSError:
        return 0
    for folder in candidates:
        pid, sep, _ = folder.name[len(DOCS_PREFIX):].partition("-")
        try:
            info = folder.lstat()
            if not folder.is_dir() or folder.is_symlink() or (
                    hasattr(os, "getuid") and info.st_uid != os.getuid()):
                continue
            if sep and pid.isdigit():
                if int(pid) == os.getpid() or process_alive(int(pid)):
                    continue
            elif time.time() - info.st_mtime < _LEGACY_DOCS_AGE_S:
                continue
            shutil.rmtree(folder)
            removed += 1
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            continue
    return removed


#: How long (seconds) ``serve(background=True)`` waits for its server to start (the app's
#: warm-up, :func:`warm_up`, included) before it gives up and says so.
START_TIMEOUT_S = 60.0

#: How long (seconds) :meth:`Playground.stop` waits by default for the server to finish the
#: requests it is answering and its thread to end.
STOP_TIMEOUT_S = 10.0


def _running_loop() -> bool:
    """Whether an asyncio event loop is running in this thread (a notebook's cell runs in one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _browser_host(host: str) -> str:
    """The address a browser on this machine uses for a server bound to ``host``: the bound
    one, bracketed where it is IPv6; loopback for every address (``0.0.0.0``, ``::``)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return _bracketed(host)


def browser_url(host: str, port: int) -> str:
    """The URL a browser on this machine opens for a server bound to ``host:port``
    (``http://[::1]:8000/`` for ``::1``; loopback for ``0.0.0.0`` and ``::``).

    >>> browser_url("::1", 8000), browser_url("0.0.0.0", 80)
    ('http://[::1]:8000/', 'http://127.0.0.1:80/')
    """
    return f"http://{_browser_host(host)}:{port}/"


def _listen(host: str, port: int):
    """A socket listening on ``host:port`` (``port`` 0: a free one the system picks), bound
    as uvicorn binds its own (IPv6 where the host has a colon); an :class:`OSError` that
    names the address and why when it cannot be (a port in use, a host this machine is
    not)."""
    import errno
    import socket

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        whole = not isinstance(port, bool) and isinstance(port, int)
        raise argument_error(whole)(f"port must be a whole number from 0 to 65535 (0: a free one), "
                         f"not {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family, backlog=2048)
    except (OSError, UnicodeError) as err:
        # (socket.create_server adds the address it tried, which the message names already)
        why = (getattr(err, "strerror", None) or str(err)).split(" (while attempting to bind")[0]
        if getattr(err, "errno", None) == errno.EADDRINUSE:
            why += " (another server, perhaps another playground, listens there; pass port=0 " \
                   "for a free port, or stop that one)"
        raise OSError(getattr(err, "errno", None), f"cannot listen on {_bracketed(host)}:{port}: "
                                                   f"{why}") from err


class Playground:
    """A playground served in the background (``serve(background=True)``): its address and
    the means to stop it.

    ``url`` is the page's address and ``port`` the port it listens on (the free one the
    system picked for ``port=0``). :meth:`stop` stops the server and frees the port;
    ``with serve(background=True) as pg:`` stops it at the end of the block. A notebook
    shows the handle as a link to the page. The server runs on a daemon thread of this
    process: it also ends when the process (the notebook's kernel) does.
    """

    def __init__(self, server, thread, host: str, port: int) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port
        self.url = browser_url(host, port)

    @property
    def running(self) -> bool:
        """Whether the server is still serving (its thread has not ended)."""
        return self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the server: it stops accepting connections at once, finishes the requests
        it is answering (up to ``timeout`` seconds; past them it drops them), and its thread
        ends. Returns whether it has ended; calling it again is harmless."""
        if not self._thread.is_alive():
            return True
        self._server.should_exit = True
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():  # a request still running: drop it rather than wait on
            self._server.force_exit = True
            self._thread.join(1.0)
        if self._thread.is_alive():
            return False
        # the optimizer reference's temporary folder goes with the server (it stayed until
        # the interpreter ended: one more folder, and a ResourceWarning, per serve and stop)
        docs = getattr(getattr(self._server.config.app, "state", None), "docs", None)
        if docs is not None:
            docs.cleanup()
        return True

    def __enter__(self) -> "Playground":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<optimlab Playground {self.url} {'running' if self.running else 'stopped'}>"

    def _repr_html_(self) -> str:
        import html

        url = html.escape(self.url, quote=True)
        if not self.running:
            return f"optimlab playground at {url} (stopped)"
        return (f'optimlab playground: <a href="{url}" target="_blank" rel="noopener">{url}</a> '
                f"(<code>.stop()</code> stops it)")


def _serve_background(host: str, port: int, db_path, log_level: str, slices) -> Playground:
    """:func:`serve` with ``background=True``: bind, start the server on a thread, wait for
    it to start (:data:`START_TIMEOUT_S`)."""
    import threading
    import time

    import uvicorn

    sock = _listen(host, port)  # before anything else: a port in use costs no warm-up
    try:
        port = sock.getsockname()[1]
        warning = exposure_warning(host, port)
        if warning:
            print(warning, file=sys.stderr)
        app = create_app(db_path, hosts=allowed_hosts(host, port), slices=slices)
        config = uvicorn.Config(app, host=host.strip("[]"), port=port, log_level=log_level,
                                lifespan="on", limit_concurrency=MAX_CONNECTIONS,
                                timeout_keep_alive=KEEP_ALIVE_S)
        server = uvicorn.Server(config)
    except BaseException:
        sock.close()
        raise
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])  # an event loop of this thread's own
        except BaseException as err:  # SystemExit where the warm-up failed: say so, below
            failure.append(err)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"optimlab-playground-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.02)
    except BaseException:  # interrupted while it starts (Ctrl-C): leave no server behind
        server.should_exit = True
        raise
    if server.started and thread.is_alive():
        return Playground(server, thread, host, port)
    server.should_exit = True
    thread.join(5.0)
    sock.close()
    where = f"the playground did not start on {_bracketed(host)}:{port}"
    error = failure[0] if failure else None
    if error is None and thread.is_alive():
        raise RuntimeError(f"{where} within {START_TIMEOUT_S:g} s (its warm-up may be stuck)")
    if error is None or isinstance(error, SystemExit):  # uvicorn's exit: the log says why
        raise RuntimeError(f"{where}: its warm-up failed (the log above says why)")
    raise RuntimeError(f"{where}: {type(error).__name__}: {error}") from error


def serve(host: str = "127.0.0.1", port: int = 8000,
          db_path: str | os.PathLike | None = None, log_level: str | None = None,
          slices: Sequence[str | os.PathLike] = (), background: bool = False) -> "Playground | None":
    """Serve the playground with uvicorn (loopback unless told): until interrupted, or in the
    background.

    ``db_path`` is the run store the Runs tab reads and ``slices`` the folders the Slices
    tab shows (see :func:`create_app`); ``log_level`` is uvicorn's (``"info"`` by default,
    which logs every request; ``"warning"`` by default in the background).

    By default it blocks until interrupted (Ctrl-C), running an event loop of its own, as
    ``optimlab serve`` does; so it cannot run where one already runs (a notebook's cell, a
    coroutine), and says so. ``background=True`` is for those: it listens on ``host:port``
    at once (a port in use is an :class:`OSError` right away, before the app's warm-up;
    ``port=0`` picks a free port), serves on a thread of its own, and returns once the
    server answers, with a :class:`Playground`: its ``url``, and ``stop()``. There it logs
    warnings only, so that requests do not print into whichever cell runs.

    On another address it prints a warning to stderr first (:func:`exposure_warning`), and
    answers only the ``Host`` names of the address it listens on (:func:`allowed_hosts`).
    """
    if background:
        return _serve_background(host, port, db_path, log_level or "warning", slices)
    if _running_loop():
        raise RuntimeError("serve() blocks and runs an event loop of its own, and one is already "
                           "running here (a notebook's cell, a coroutine); in a notebook use "
                           "serve(background=True), which returns a handle with .url and .stop()")
    import uvicorn

    warning = exposure_warning(host, port)
    if warning:
        print(warning, file=sys.stderr)
    uvicorn.run(create_app(db_path, hosts=allowed_hosts(host, port), slices=slices), host=host,
                port=port, log_level=log_level or "info", limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=KEEP_ALIVE_S)
    return None
