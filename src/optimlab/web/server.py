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
``GET /api/sweeps``, ``GET /api/sweeps/{id}``
    the sweeps of the run store; one sweep's summary, mean curves and text table.

A request outside the limits gets 422 with ``{"message": "...", "detail": [...]}``:
``message`` says which field and why in one line, ``detail`` lists ``loc``/``msg``/``type``
per problem (as FastAPI does). An unknown sweep or file is 404.

The page (``/``) and its files come from this package's ``static`` folder only;
``/static/plotly.min.js`` is the installed ``plotly`` package's own bundle.
"""

from __future__ import annotations

import math
import os
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from . import api
from .models import (
    GRID_DEFAULT,
    ErrorResponse,
    GridResponse,
    LandscapeModel,
    OptimizerModel,
    RaceRequest,
    RaceResponse,
    SweepDetail,
    SweepModel,
    limits,
)

__all__ = ["create_app", "serve", "warm_up", "STATIC_DIR", "plotly_js", "CSP"]

#: The page's own files (index.html, app.js, style.css, vendor/katex).
STATIC_DIR = Path(str(resources.files("optimlab.web") / "static"))

#: What the page may load: only from this server, no inline or evaluated script (Plotly and
#: KaTeX set inline styles, hence 'unsafe-inline' for styles only).
CSP = ("default-src 'self'; script-src 'self'; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
       "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")

_JSON = "application/json"
_ERRORS = {422: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}


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


def _error(status: int, detail: list[dict]) -> Response:
    message = "; ".join(
        (".".join(str(p) for p in d["loc"] if p != "body") or "request") + ": " + d["msg"]
        for d in detail)
    return _json({"message": message, "detail": detail}, status)


def _clean(error: dict) -> dict:
    # keep what says where and why; drop the offending input and context, which may hold
    # NaN or objects that JSON cannot carry
    return {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "value_error"))}


def _landscape_params(request: Request) -> dict:
    params = {}
    for key, value in request.query_params.items():
        if key == "n":
            continue
        try:
            number = float(value)
        except ValueError:
            raise api.RequestError(("query", key), f"{key} must be a number, got {value!r}") \
                from None
        if not math.isfinite(number):
            raise api.RequestError(("query", key), f"{key} must be finite, got {value!r}")
        params[key] = int(number) if number.is_integer() and "." not in value \
            and "e" not in value.lower() else number
    return params


def warm_up() -> None:
    """Build the catalog payloads and run a one-step race, so the first page load does not
    pay for them (the first optimizer built imports part of torch, seconds on a slow
    machine)."""
    api.optimizers_json()
    api.landscapes()
    api.run_race(RaceRequest(landscape="rosenbrock", steps=1,
                             optimizers=[{"name": "adam"}, {"name": "sam"}]))


def create_app(db_path: str | os.PathLike | None = None, warm: bool = True) -> FastAPI:
    """The playground app. ``db_path`` is the run store the Runs tab reads (read-only; a
    missing file shows no sweeps). ``warm`` runs :func:`warm_up` when the server starts
    (before it accepts requests)."""
    db = None if db_path is None else os.path.abspath(os.fspath(db_path))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if warm:
            warm_up()
        yield

    app = FastAPI(title="optimlab playground", version="1", lifespan=lifespan,
                  description="Race optimizers on landscapes; browse stored sweeps.",
                  docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    app.state.db_path = db

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return _error(422, [_clean(e) for e in exc.errors()])

    @app.exception_handler(api.RequestError)
    async def _refused(_: Request, exc: api.RequestError) -> Response:
        loc = (["body"] if exc.loc and exc.loc[0] not in ("query", "path") else []) \
            + list(exc.loc)
        return _error(exc.status, [{"loc": loc, "msg": str(exc), "type": "value_error"}])

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        response = FileResponse(STATIC_DIR / "index.html", media_type="text/html")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CSP
        return response

    @app.get("/api/limits", summary="The API's limits")
    def get_limits() -> dict:
        return limits()

    @app.get("/api/landscapes", response_model=list[LandscapeModel], summary="2-D landscapes")
    def get_landscapes() -> Response:
        return _json(api.landscapes())

    @app.get("/api/landscapes/{name}/grid", response_model=GridResponse, responses=_ERRORS,
             summary="A landscape on a grid, for contours")
    def get_grid(name: str, request: Request, n: int = GRID_DEFAULT) -> Response:
        return _json(api.grid_json(name, _landscape_params(request), n))

    @app.get("/api/optimizers", response_model=list[OptimizerModel], summary="The catalog")
    def get_optimizers() -> Response:
        return _json(api.optimizers_json())

    @app.post("/api/race", response_model=RaceResponse, responses=_ERRORS,
              summary="Race optimizers on a landscape")
    def post_race(body: RaceRequest) -> Response:
        return _json(api.run_race(body))

    @app.get("/api/sweeps", response_model=list[SweepModel], summary="Stored sweeps")
    def get_sweeps() -> Response:
        return _json(api.sweeps(app.state.db_path))

    @app.get("/api/sweeps/{sweep_id}", response_model=SweepDetail, responses=_ERRORS,
             summary="One stored sweep")
    def get_sweep(sweep_id: int) -> Response:
        return _json(api.sweep_detail(app.state.db_path, sweep_id))

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def get_plotly() -> Response:
        response = FileResponse(plotly_js(), media_type="text/javascript")
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    # everything else under /static comes from the package folder (StaticFiles refuses any
    # path that resolves outside it, and follows no symlinks)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def serve(host: str = "127.0.0.1", port: int = 8000,
          db_path: str | os.PathLike | None = None, log_level: str = "info") -> None:
    """Serve the playground with uvicorn until interrupted (loopback unless told)."""
    import uvicorn

    uvicorn.run(create_app(db_path), host=host, port=port, log_level=log_level)
