"""What the playground's endpoints answer, as plain functions (no web framework here).

The payloads are built from the library itself: landscapes from
:mod:`optimlab.landscapes` (their grids and colour scales as the matplotlib pictures
compute them), optimizers from the registry's catalog, races from
:func:`optimlab.landscapes.race`, sweeps from the :class:`~optimlab.bench.store.RunStore`
through :mod:`optimlab.bench.report` and :mod:`optimlab.bench.analysis`.

Numbers that are not finite (a diverged path, a NaN loss) become ``None``, since JSON has
no NaN or infinity. A request that breaks a rule raises :class:`RequestError`, which says
which field and why (the server turns it into HTTP 422). A race can be stopped from another
thread through its :class:`RaceControl` (the server does so when the client goes away).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..bench.store.jsonio import is_json_number, json_data
from ..landscapes import Landscape, race
from ..landscapes import names as landscape_names
from ..landscapes.functions import from_catalog as get_landscape_by_name  # no user modules
from ..landscapes.inspect import inspect_steps
from ..landscapes.plots import _grid, _scale_for
from ..landscapes.race import diverged, run_fan
from ..optim import palette as _palette
from ..optim.base import argument_error, is_real
from ..optim.capabilities import closure_evaluations
from ..optim.registry import _on_change, available, resolve, work_weight
from . import hparams as hp
from .lrs import rates_for
from .models import (
    GRID_MAX,
    GRID_MIN,
    MAX_BASIN_WORK,
    MAX_ID,
    MAX_POINTS,
    MAX_WORK,
    TUNE_RACERS,
    basin_work,
    work,
)

if TYPE_CHECKING:
    from .models import RaceRequest

__all__ = ["RequestError", "Cancelled", "TimeLimit", "RaceControl", "COLORS", "COLOR_FIRST", "colors",
           "landscapes", "landscape", "grid", "grid_json", "optimizers", "run_race", "run_inspect",
           "numbered", "GRID_CACHE_BYTES",
           "run_basins", "slices", "slice_detail", "slice_files", "sweeps",
           "sweep_detail", "sweep_detail_json", "dumps", "finite_list"]

#: The page's colours: the catalog's palette (:mod:`optimlab.optim.palette`), so an
#: optimizer has the colour here that it has in every figure; every registry name keeps one
#: colour, no two share.
COLORS = _palette.COLORS
#: Who gets the first (most distinct) colours (the catalog's order).
COLOR_FIRST = _palette.COLOR_FIRST


def colors() -> dict[str, str]:
    """The colour of every registry name on the page (the catalog's palette)."""
    return _palette.colors()


class RequestError(ValueError):
    """A request the playground refuses: ``loc`` is the field (a tuple of keys/indices)."""

    def __init__(self, loc: Sequence, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.status = status


class Cancelled(Exception):
    """A race stopped by :meth:`RaceControl.cancel` before it finished."""


class TimeLimit(Cancelled):
    """A race stopped by its :class:`RaceControl`'s time limit (the server answers 422)."""


class RaceControl:
    """Stops a running race from another thread or past a time limit, and counts the work
    it did.

    :func:`run_race` (and :func:`run_inspect`, :func:`run_basins`) call :meth:`check` on
    each evaluation of the landscape (once per step for every optimizer together, twice for
    SAM's closure, up to ``max_iter`` times in an L-BFGS step), so a race stops within one
    evaluation of :meth:`cancel`, raising :class:`Cancelled`, or of ``seconds`` (None: no
    limit) after the control was made, raising :class:`TimeLimit`.
    ``evaluations`` counts the evaluations made (how far the race got).
    """

    def __init__(self, seconds: float | None = None) -> None:
        if seconds is not None and (not is_real(seconds) or not 0 < seconds < math.inf):
            raise argument_error(is_real(seconds))(
                f"seconds must be a number > 0 or None, got {seconds!r}")
        self._stop = threading.Event()
        self.evaluations = 0
        self.seconds = None if seconds is None else float(seconds)  # NumPy's as Python's
        self._deadline = None if seconds is None else time.monotonic() + seconds

    def cancel(self) -> None:
        """Ask the race to stop at its next evaluation (safe from any thread)."""
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._stop.is_set()

    def check(self) -> None:
        """Count one evaluation; raise :class:`Cancelled` once the race is cancelled, and
        :class:`TimeLimit` once it has run ``seconds``."""
        if self._stop.is_set():
            raise Cancelled(f"the race was stopped after {self.evaluations} evaluations")
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise TimeLimit((
                f"stopped after {self.seconds:g} s, the playground's time limit, at "
                f"{self.evaluations} evaluations of the landscape: ask for fewer steps, "
                "optimizers, rates or starts (an L-BFGS step that never stops early makes "
                "every evaluation its max_iter allows)"))
        self.evaluations += 1

    def watch(self, land: Landscape) -> Landscape:
        """``land`` whose function calls :meth:`check` first on every evaluation."""
        f = land.f

        def checked(x):
            self.check()
            return f(x)

        return dataclasses.replace(land, f=checked)


# ----------------------------------------------------------------------------- json


def finite_list(values) -> list:
    """A flat list of floats with every non-finite value replaced by ``None``."""
    a = np.asarray(values, dtype=float).ravel()
    if np.isfinite(a).all():
        return a.tolist()
    return [v if math.isfinite(v) else None for v in a.tolist()]


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """``value`` as strict JSON data (:func:`~optimlab.bench.store.jsonio.json_data`, a
    non-finite number as None); a class (SAM's base optimizer) as its registry name, and
    anything else as its text."""
    return json_data(value, finite=True, fallback=_named)


def _named(value: Any) -> str:
    if isinstance(value, type):
        return next((e.name for e in available() if e.cls is value and not e.preset), value.__name__)
    return str(value)


def dumps(payload: Any) -> bytes:
    """Compact JSON; refuses NaN and infinity (they must have become ``None`` already)."""
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()


# ----------------------------------------------------------------------------- landscapes


def _landscape_info(land: Landscape) -> dict:
    return {"name": land.name, "description": land.description,
            "domain": [list(map(float, d)) for d in land.domain],
            "minima": [list(map(float, m)) for m in land.minima],
            "min_value": float(land.min_value), "start": list(map(float, land.start)),
            "log_scale": bool(land.log_scale), "challenges": list(land.challenges),
            "params": _jsonable(land.params), "lrs": rates_for(land.name)}


@functools.lru_cache(maxsize=1)
def _landscapes() -> tuple[dict, ...]:
    out = []
    for name in landscape_names():
        land = get_landscape_by_name(name)
        if land.dim == 2:
            out.append(_landscape_info(land))
    return tuple(out)


def landscapes() -> list[dict]:
    """Every 2-D landscape of the catalog: name, description, domain, minima, start, ..."""
    return [dict(d) for d in _landscapes()]


def landscape(name: str, params: dict | None = None, loc: Sequence = ("landscape",),
              params_loc: Sequence = ("params",)) -> Landscape:
    """The 2-D landscape ``name`` built with ``params``; :class:`RequestError` otherwise
    (``loc`` names the field of the name, ``params_loc`` that of the parameters)."""
    try:
        get_landscape_by_name(name)
    except ValueError as err:
        raise RequestError(loc, str(err)) from None
    try:
        land = get_landscape_by_name(name, **(params or {}))
    except (ValueError, TypeError, ArithmeticError) as err:
        raise RequestError(params_loc, str(err)) from None
    if land.dim != 2:
        raise RequestError(loc, f"the playground races 2-D landscapes only; {land.name!r} "
                                f"has dim={land.dim}")
    return land


#: Most bytes of grid answers :func:`grid_json` keeps (an answer at n = 400 is about 6 MB, one
#: at the page's n = 100 about 400 kB); the least recently used go first.
GRID_CACHE_BYTES = 32 * 2**20


class _ByteCache:
    """A least-recently-used cache of ``bytes`` bounded by their total length (``most``), not
    by their number; a value longer than ``most`` is not kept. Safe from several threads."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.size = 0
        self._items: OrderedDict[Any, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key) -> bytes | None:
        """The value kept for ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value: bytes) -> None:
        """Keep ``value`` for ``key``, dropping the least recently used past :attr:`most`."""
        if len(value) > self.most:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.size += len(value) - (0 if old is None else len(old))
            self._items[key] = value
            while self.size > self.most:
                self.size -= len(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._items.clear()
            self.size = 0


_GRIDS = _ByteCache(GRID_CACHE_BYTES)


def _grid_payload(name: str, params: tuple, n: int) -> bytes:
    keys = [k for k, _ in params]
    # a refusal names the first parameter (several unknown ones are listed in the message)
    land = landscape(name, dict(params), ("path", "name"), ("query",) + tuple(keys[:1]))
    X, Y, Z = _grid(land, n)
    scale = _scale_for(land, Z)
    color = np.log10(scale(Z)) if scale.log else Z
    rows = lambda a: [finite_list(row) for row in a]  # noqa: E731
    # the start with these parameters (a rotated bowl's turns with its angle): the page
    # shows it before a race, which starts there when no start is given
    payload = {"name": land.name, "params": _jsonable(land.params), "n": n,
               "description": land.description, "start": list(map(float, land.start)),
               "x": X[0].tolist(), "y": Y[:, 0].tolist(), "z": rows(Z), "color": rows(color),
               "log": bool(scale.log), "zmin": float(scale.zmin), "offset": float(scale.offset),
               "color_title": "log10(f - f_min + ε)" if scale.log else "f"}
    return dumps(payload)


def grid_json(name: str, params: dict | None = None, n: int = 100) -> bytes:
    """The JSON of :func:`grid` (cached per landscape, parameters and size, at most
    :data:`GRID_CACHE_BYTES` in all)."""
    if not (isinstance(n, int) and GRID_MIN <= n <= GRID_MAX):
        raise RequestError(("query", "n"), f"n must be a whole number from {GRID_MIN} to "
                                           f"{GRID_MAX}, got {n!r}")
    try:
        key = (name, tuple(sorted((params or {}).items())), n)
        payload = _GRIDS.get(key)
        if payload is None:
            payload = _grid_payload(*key)
            _GRIDS.put(key, payload)
        return payload
    except RequestError:
        raise
    except (ValueError, ArithmeticError) as err:  # e.g. not finite anywhere on its domain
        raise RequestError(("query",), str(err)) from None


def grid(name: str, params: dict | None = None, n: int = 100) -> dict:
    """Values of a 2-D landscape on an ``n x n`` grid over its domain, for contours.

    ``z[i][j]`` is f at ``(x[j], y[i])``; ``color`` is what to colour: ``log10(f - zmin +
    offset)`` when ``log`` (the landscape asks for a log scale, or its values span many
    decades: the same rule as the matplotlib pictures), else f itself. ``start`` is the
    landscape's start with these parameters (where a race given no start begins).
    """
    return json.loads(grid_json(name, params, n))


# ----------------------------------------------------------------------------- optimizers


@functools.lru_cache(maxsize=1)
def _optimizers() -> bytes:
    out = []
    for entry in hp.offered():
        info = entry.info
        out.append({
            "name": entry.name, "cls": entry.cls.__name__, "alias_of": entry.alias_of,
            "preset": _jsonable(entry.preset), "summary": entry.summary,
            "family": info.family, "year": entry.year, "paper": entry.paper,
            "rule_latex": info.rule_latex, "rule_text": info.rule_text,
            "tuning": info.tuning, "strengths": info.strengths, "weaknesses": info.weaknesses,
            "typical_use": info.typical_use, "adaptive": info.adaptive,
            "momentum": info.momentum, "memory_note": entry.memory_note,
            "wrapper": info.wrapper, "needs_closure": info.needs_closure,
            "work_weight": work_weight(entry.name), "color": _palette.color(entry.name),
            "hyperparameters": hp.exposed(entry.name),
            "defaults": _jsonable(hp.defaults(entry.name)),
        })
    return dumps(out)


def optimizers() -> list[dict]:
    """Every registry name with its catalog row, update rule, colour and hyperparameters."""
    return json.loads(_optimizers())


def optimizers_json() -> bytes:
    """The JSON of :func:`optimizers` (built once)."""
    return _optimizers()


# ----------------------------------------------------------------------------- races


def _start(land: Landscape, start, loc: Sequence = ("start",)) -> list[float] | None:
    if start is None:
        return None
    if len(start) != 2:
        raise RequestError(loc, f"a start must be two numbers [x, y], got {len(start)}")
    try:
        point = [float(v) for v in start]
    except (TypeError, ValueError, OverflowError):
        raise RequestError(loc, "a start must be two finite numbers") from None
    if not all(math.isfinite(v) for v in point):
        raise RequestError(loc, "a start must be finite numbers")
    for axis, (v, (low, high)) in enumerate(zip(point, land.domain)):
        if not low <= v <= high:
            raise RequestError(loc, f"start {'xy'[axis]}={v:g} is outside {land.name}'s "
                                    f"domain [{low:g}, {high:g}]")
    return point


def _request_landscape(request) -> Landscape:
    """The landscape a race, inspect or basins request names, with its parameters."""
    params = request.params if isinstance(request.params, dict) else \
        request.params.model_dump(exclude_unset=True)
    return landscape(request.landscape, params)


def _entries(specs, where=lambda i: ("optimizers", i)) -> list[tuple[str, str, dict]]:
    """``(label, registry name, checked hyperparameters)`` of each racer spec; ``where(i)``
    is the location of spec ``i`` in the request, for the 422's ``loc``."""
    entries, labels, counts = [], set(), {}
    for i, spec in enumerate(specs):
        try:
            entry = resolve(spec.name)
        except ValueError as err:
            raise RequestError((*where(i), "name"), str(err)) from None
        given = spec.hparams if isinstance(spec.hparams, dict) else \
            spec.hparams.model_dump(exclude_unset=True)
        try:
            checked = hp.check(entry.name, given)
        except hp.HyperparameterError as err:
            loc = (*where(i), "hparams") + ((err.key,) if err.key else ())
            raise RequestError(loc, f"{entry.name}: {err}" if not str(err).startswith(
                entry.name) else str(err)) from None
        # every shown hyperparameter explicit, so the answer says each value used
        checked = {**_shown_defaults(entry, checked), **checked}
        entries.append((numbered(spec.label or spec.name, labels, counts), entry.name, checked))
    return entries


def _shown_defaults(entry, given: dict) -> dict:
    """The default of every hyperparameter the page shows for ``entry``
    (:func:`optimlab.web.hparams.exposed`); for a wrapper that ``given`` names the inner
    optimizer of (Lookahead's ``inner``), its own settings' and that optimizer's, alias
    preset included (``base_optimizer="momentum"``: ``momentum`` 0.9)."""
    wraps = entry.capabilities.wraps
    inner = given.get(wraps) if wraps else None
    if not isinstance(inner, str):
        values = hp.defaults(entry.name)
        return {h["name"]: values[h["name"]] for h in hp.exposed(entry.name)}
    own, values = hp.defaults(entry.name), hp.defaults(inner)
    return {**{h["name"]: values[h["name"]] for h in hp.exposed(inner)},
            **{k: own[k] for k in entry.info.defaults if k != wraps and k in own}}


def numbered(label: str, seen: set[str], counts: dict[str, int]) -> str:
    """``label``, or where ``seen`` has it already ``label #2``, ``#3``, ... (the first one not
    seen), added to ``seen``: how a race tells apart the racers of one label. ``counts``
    keeps each label's next number, so n racers of one label take n look-ups, not n**2."""
    base, k = label, counts.get(label, 2)
    if label in seen:
        while label in seen:
            label, k = f"{base} #{k}", k + 1
        counts[base] = k
    seen.add(label)
    return label


#: What an optimizer may raise when its hyperparameters do not suit it (a race answers 422).
_RUN_ERRORS = (ValueError, TypeError, ArithmeticError)


def _blame(run, entries: list, err: Exception) -> RequestError:
    """The refusal of a race that raised ``err``: each optimizer is raced alone until one
    raises again, so the answer names it (the others' races are not wasted: this runs only
    on the way to an error)."""
    for i, entry in enumerate(entries):
        try:
            run([entry])
        except _RUN_ERRORS as solo:
            return RequestError(("optimizers", i, "hparams"),
                                f"{entry[1]} failed while racing with these hyperparameters "
                                f"({type(solo).__name__}: {solo}); one of them is beyond what "
                                f"it can run with")
    return RequestError(("optimizers",), f"the race failed ({type(err).__name__}: {err})")


def run_race(request: RaceRequest, control: RaceControl | None = None) -> dict:
    """Run a race request; the answer of ``POST /api/race`` (see :class:`~.models.RaceResponse`).

    Raises :class:`RequestError` for a request outside the limits (also when an optimizer
    refuses its hyperparameters while the race builds it: ``ValueError``, ``TypeError``
    or ``OverflowError``), and :class:`Cancelled` when ``control`` is cancelled while it
    runs. A diverging optimizer is an answer, not an error: its metrics say ``diverged``
    and its non-finite numbers are ``None``.
    """
    began = time.perf_counter()
    land = _request_landscape(request)
    start = _start(land, request.start)
    entries = _entries(request.optimizers)
    starts = [_start(land, point, ("starts", i)) for i, point in enumerate(request.starts)]
    fan = [float(f) for f in request.fan]
    costs = _work_weights(entries)
    cost = work(request.steps, costs, request.tune, len(starts),
                len({f for f in fan if f != 1.0}))
    if cost > MAX_WORK:
        tuned = f" x {TUNE_RACERS} learning rates tuned" if request.tune else ""
        more = (f" with {len(starts)} more starts and {len(set(fan) - {1.0})} rates in the fan"
                if starts or fan else "")
        raise _too_big(f"race is too big: {request.steps} steps x {len(entries)} "
                       f"optimizers{tuned}{more}", cost, "optimizer-steps", entries, costs,
                       MAX_WORK, "fewer steps, optimizers, starts or rates")
    raced = land if control is None else control.watch(land)
    # a pick on the grid's edge adds rates beyond it only where that work fits too
    extend = request.tune and work(request.steps, costs, True, len(starts),
                                   len({f for f in fan if f != 1.0}), extension=True) <= MAX_WORK

    def run(chosen):
        return race(raced, {label: {"name": name, **h} for label, name, h in chosen},
                    start=start, steps=request.steps, noise=float(request.noise),
                    seed=request.seed, tune=request.tune, tol=float(request.tol),
                    extend=extend)

    try:
        result = run(entries)
    except _RUN_ERRORS as err:
        raise _blame(run, entries, err) from None
    stride = max(1, math.ceil(request.steps / (MAX_POINTS - 1)))
    index = np.arange(0, request.steps + 1, stride)
    if index[-1] != request.steps:
        index = np.append(index, request.steps)
    noisy = raced.with_noise(float(request.noise), request.seed) if request.noise else raced
    try:
        extra = _extra_paths(noisy, entries, result, starts, fan, request.steps, index)
    except _RUN_ERRORS as err:  # a factor took a rate beyond what an optimizer accepts
        raise RequestError(("fan",), f"the fan's rates failed ({type(err).__name__}: {err}); "
                                     f"use smaller factors") from None
    results = []
    out = set(result.every_rate_out())
    for label, name, _ in entries:
        path, loss, m = result.paths[label][index], result.losses[label][index], \
            result.metrics[label]
        used = {k: v for k, v in result.hparams[label].items() if k != "name"}
        tuning = result.tuning.get(label)
        results.append({
            "label": label, "name": name, "hparams": _jsonable(used),
            "x": finite_list(path[:, 0]), "y": finite_list(path[:, 1]),
            "loss": finite_list(loss),
            "metrics": {"final_loss": _finite(m.final_loss), "gap": _finite(m.gap),
                        "distance": _finite(m.distance), "steps_to_tol": m.steps_to_tol,
                        "diverged": bool(m.diverged),
                        "escaped": None if m.escaped is None else bool(m.escaped),
                        "steps_to_escape": None if m.steps_to_escape is None
                        else int(m.steps_to_escape)},
            "tuning": None if tuning is None else [
                {"lr": float(lr), "final_loss": _finite(v)} for lr, v in tuning.items()],
            "tuning_edge": result.tuning_edge.get(label),
            "every_rate_out": label in out,
            "tuning_extended": [float(lr) for lr in result.tuning_extended.get(label, ())],
            "extra": extra.get(label, []),
        })
    return {"landscape": land.name, "params": _jsonable(land.params),
            "start": [float(v) for v in result.start], "steps": request.steps,
            "noise": float(request.noise), "seed": request.seed, "tune": request.tune,
            "tuned_by": result.tuned_by, "extend": bool(extend),
            "tol": float(request.tol), "stride": stride, "step": index.tolist(),
            "results": results, "elapsed_ms": round((time.perf_counter() - began) * 1e3, 2)}


def _extra_paths(land: Landscape, entries: list, result, starts: list, fan: list[float],
                 steps: int, index) -> dict[str, list[dict]]:
    """Each racer's paths from every start (the race's own and ``starts``) at its own lr and
    at every factor of ``fan`` times it, but its race path: one batched run
    (:func:`~optimlab.landscapes.race.run_fan`)."""
    factors = [1.0] + list(dict.fromkeys(f for f in fan if f != 1.0))  # its own rate first
    if not starts and len(factors) == 1:  # a fan of 1.0 alone is the race itself
        return {}
    points = [list(map(float, result.start))] + starts
    chosen = [(label, name, {k: v for k, v in result.hparams[label].items() if k != "name"})
              for label, name, _ in entries]
    runs = run_fan(land, [(name, hp_) for _, name, hp_ in chosen], points, factors, steps)
    out = {}
    for (label, _, used), (paths, losses) in zip(chosen, runs):
        lr = float(used.get("lr", 0.0))
        rows = []
        for i, point in enumerate(points):
            for j, factor in enumerate(factors):
                if i == 0 and factor == 1.0:
                    continue  # the race's own path
                k = i * len(factors) + j
                path, loss = paths[:, k], losses[:, k]
                rows.append({"start": point, "lr": lr * factor, "factor": factor,
                             "x": finite_list(path[index, 0]), "y": finite_list(path[index, 1]),
                             "loss": finite_list(loss[index]),
                             # the race's own rule, as its metrics judge its path
                             "diverged": diverged(land, path, loss)})
        out[label] = rows
    return out


def run_inspect(request, control: RaceControl | None = None) -> dict:
    """``POST /api/inspect``: one optimizer step by step (see :class:`~.models.InspectResponse`).

    Raises :class:`RequestError` for a start outside the domain, hyperparameters the
    optimizer refuses (naming the field) or past the race's work budget (``steps`` x the
    optimizer's work weight ``<=`` :data:`MAX_WORK`), and :class:`Cancelled` when
    ``control`` is cancelled while it runs."""
    land = _request_landscape(request)
    start = _start(land, request.start)
    entries = _entries([request.optimizer], lambda i: ("optimizer",))
    (_, name, used), = entries
    costs = _work_weights(entries)
    cost = work(request.steps, costs, False)
    if cost > MAX_WORK:
        raise _too_big(f"inspection is too big: {request.steps} steps x 1 optimizer", cost,
                       "optimizer-steps", entries, costs, MAX_WORK,
                       "fewer steps, or hyperparameters that make a step cheaper")
    if control is not None:
        land = control.watch(land)
    if request.noise:
        land = land.with_noise(float(request.noise), request.seed)
    try:
        run = inspect_steps(land, name, used, start, request.steps)
    except _RUN_ERRORS as err:
        raise RequestError(("optimizer", "hparams"), f"{name} failed with these "
                                                     f"hyperparameters ({type(err).__name__}: "
                                                     f"{err})") from None
    state = [{"name": key, "kind": entry["kind"],
              "values": [finite_list(v) for v in entry["values"]] if entry["values"].ndim == 2
              else finite_list(entry["values"])} for key, entry in run["state"].items()]
    return {"landscape": land.name, "params": _jsonable(land.params), "name": name,
            "hparams": _jsonable(used), "start": finite_list(run["points"][0]),
            "steps": len(run["update"]), "x": finite_list(run["points"][:, 0]),
            "y": finite_list(run["points"][:, 1]), "loss": finite_list(run["loss"]),
            "grad": [finite_list(g) for g in run["grad"]],
            "update": [finite_list(u) for u in run["update"]], "state": state,
            "diverged": run["diverged"]}


def _work_weight(name: str, hparams: dict) -> float:
    """What one member-step of ``name`` with ``hparams`` counts in the work limits
    (:func:`optimlab.optim.registry.work_weight`); a wrapper's inner optimizer is weighed
    with the hyperparameters passed on to it (Lookahead over L-BFGS with ``max_iter``)."""
    wraps = resolve(name).capabilities.wraps
    inner = hparams.get(wraps) if wraps else None
    if not isinstance(inner, str):
        return work_weight(name, hparams)
    rest = {k: v for k, v in hparams.items() if k != wraps}
    return work_weight(name, rest) * work_weight(inner, rest)


def _work_weights(entries) -> list[float]:
    """Each entry's work weight (:func:`_work_weight`): what one of its member-steps counts
    in the work limits; an L-BFGS step counts the closure evaluations its ``max_iter`` and
    ``max_eval`` allow (:func:`optimlab.optim.capabilities.closure_evaluations`)."""
    return [_work_weight(name, hparams) for _, name, hparams in entries]


def _too_big(what: str, cost: int, unit: str, entries, costs, limit: int,
             fewer: str) -> RequestError:
    """The refusal of a request past its work budget: ``steps: the {what} comes to {cost}
    {unit}`` (with the optimizers counting more than 1: :func:`_heavy`), the limit, and what
    to do (``fewer``)."""
    return RequestError(("steps",), f"the {what} comes to {cost} {unit}{_heavy(entries, costs)}; "
                                    f"the limit is {limit} ({fewer})")


def _heavy(entries, costs) -> str:
    """The part of a too-big message that names the optimizers counting more than 1 (with
    the closure evaluations a step of a closure rule such as L-BFGS may make, and the
    hyperparameters that make its step cost more: ``history_size``, ``ns_steps``)."""
    heavy = []
    for (label, name, hparams), cost in zip(entries, costs):
        if cost != 1:
            caps = resolve(name).capabilities
            why = [f"up to {closure_evaluations(hparams)} evaluations a step"] \
                if caps.needs_closure and not caps.two_phase else []
            why += [f"{key} {value:g}" for key, (value, _) in caps.step_scales(hparams).items()]
            heavy.append(f"{label} {cost:g}" + (f" for {' and '.join(why)}" if why else ""))
    return (f" (a step of a rule that runs member by member counts more than one: "
            f"{', '.join(heavy)})") if heavy else ""


def run_basins(request, control: RaceControl | None = None) -> dict:
    """``POST /api/basins``: which minimum each optimizer reaches from each start of a grid
    (:func:`optimlab.exhibits.basins`, one batch; see :class:`~.models.BasinsResponse`).

    Raises :class:`RequestError` past the work budget (:data:`MAX_BASIN_WORK` member-steps),
    for a landscape without a known minimum, or when an
    optimizer refuses its hyperparameters, and :class:`Cancelled` when ``control`` is
    cancelled while it runs."""
    from ..exhibits.basins import DIVERGED, NOT_SETTLED, basin_color, basins, known_minima

    began = time.perf_counter()
    land = _request_landscape(request)
    if not known_minima(land):
        raise RequestError(("landscape",), f"{land.name} has no minimum for a run to end in "
                                           f"(it is unbounded below): a basins map needs one")
    entries = _entries(request.optimizers)
    costs = _work_weights(entries)
    cost = basin_work(request.grid, request.steps, costs)
    if cost > MAX_BASIN_WORK:
        raise _too_big(f"basins map is too big: {request.grid}x{request.grid} starts x "
                       f"{request.steps} steps x {len(entries)} optimizers", cost,
                       "member-steps", entries, costs, MAX_BASIN_WORK,
                       "fewer starts, steps or optimizers")
    (x0, x1), (y0, y1) = land.domain
    radius = float(request.radius) if request.radius is not None else \
        0.05 * min(x1 - x0, y1 - y0)
    raced = land if control is None else control.watch(land)

    def run(chosen):
        return basins(raced, {label: {"name": name, **h} for label, name, h in chosen},
                      grid=request.grid, steps=request.steps, radius=radius)

    try:
        demo = run(entries)
    except _RUN_ERRORS as err:
        raise _blame(run, entries, err) from None
    shares = demo.fractions()
    results = [{"label": label, "name": name,
                "hparams": _jsonable({k: v for k, v in demo.hparams[label].items()
                                      if k != "name"}),
                "basin": [int(b) for b in demo.basin[label]], "shares": shares[label]}
               for label, name, _ in entries]
    return {"landscape": land.name, "params": _jsonable(land.params), "grid": demo.grid,
            "steps": demo.steps, "radius": radius, "xs": finite_list(demo.xs),
            "ys": finite_list(demo.ys),
            "minima": [{"name": n, "point": list(map(float, p)), "color": basin_color(i)}
                       for i, (n, p) in enumerate(demo.minima)],
            "colors": {"not settled": basin_color(NOT_SETTLED),
                       "diverged": basin_color(DIVERGED)},
            "results": results, "elapsed_ms": round((time.perf_counter() - began) * 1e3, 2)}


# ----------------------------------------------------------------------------- slices

#: The file ``optimlab slice`` writes, and how deep below a slices folder it is looked for.
SLICE_FILE, SLICE_DEPTH = "slice.json", 3


def _slice_paths(folders: Sequence) -> dict[Path, tuple[str, Path]]:
    """Every ``slice.json`` of :func:`slice_files` (by its resolved path), each with its path
    relative to the first of ``folders`` it was found in (a folder given as a file: its name)
    and its path below that folder as found (links not resolved: what the list names it
    after, never the folder a link points into). A link resolving outside its folder is
    skipped: the playground shows only what lies in the folders it was given. So is a file
    below a hidden folder (a name starting with "."): the tour builds in ``.tour-new`` until
    it completes, and a half-built tour's slice is not one to show."""
    found: dict[Path, tuple[str, Path]] = {}
    for folder in folders or ():
        folder = Path(folder)
        if folder.is_file():
            found.setdefault(folder.resolve(), (folder.name, folder))
            continue
        root = folder.resolve()
        here: dict[Path, tuple[str, Path]] = {}
        for depth in range(SLICE_DEPTH + 1):
            for p in folder.glob("/".join(["*"] * depth + [SLICE_FILE])):
                real = p.resolve()
                hidden = any(part.startswith(".") for part in p.relative_to(folder).parts[:-1])
                if p.is_file() and real.is_relative_to(root) and not hidden:
                    rel = p.relative_to(folder).as_posix()
                    here[real] = min(here.get(real, (rel, p)), (rel, p))
        for path, entry in here.items():
            found.setdefault(path, entry)
    return found


def slice_files(folders: Sequence) -> list[Path]:
    """Every ``slice.json`` at most :data:`SLICE_DEPTH` folders below each of ``folders``
    (a folder that does not exist holds none; a link leading out of its folder is not
    followed), resolved and sorted by path; a file is its own list."""
    return sorted(_slice_paths(folders))


#: The range of slice ids: seven-digit numbers (:func:`_slice_ids`).
_SLICE_IDS = (1_000_000, 9_999_999)


def _slice_ids(folders: Sequence) -> dict[int, Path]:
    """The slice files of ``folders`` by id, in path order, each as its path below its folder
    (links not resolved: :func:`_slice_paths`). An id is a hash of the file's path
    relative to its slices folder (``runs/digits/slice.json``), so a link's ``slice=`` names
    the same file when other slices are added or removed; a path whose hash another path
    earlier in path order took (hardly ever) takes the next free number.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("b", "c"):
    ...     (root / name).mkdir(); _ = (root / name / SLICE_FILE).write_text("{}")
    >>> before = {p.parent.name: i for i, p in _slice_ids([root]).items()}
    >>> (root / "a").mkdir(); _ = (root / "a" / SLICE_FILE).write_text("{}")
    >>> after = {p.parent.name: i for i, p in _slice_ids([root]).items()}
    >>> sorted(after) == ["a", "b", "c"] and all(after[k] == before[k] for k in before)
    True
    >>> import shutil; shutil.rmtree(root)
    """
    low, high = _SLICE_IDS
    ids: dict[int, Path] = {}
    for _, (rel, path) in sorted(_slice_paths(folders).items()):
        digest = int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big")
        slice_id = low + digest % (high - low + 1)
        while slice_id in ids:
            slice_id = slice_id + 1 if slice_id < high else low
        ids[slice_id] = path
    return ids


def _read_slice(path: Path) -> dict:
    """A slice file's content, its types checked (:func:`~optimlab.bench.slices.json_problem`);
    a file that is not one raises :class:`RequestError` with status 503 saying why."""
    from ..bench.slices import json_problem

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RequestError(("path", "slice_id"), f"the slice file cannot be read "
                                                 f"({type(err).__name__})", status=503) from None
    problem = json_problem(data)
    if problem:
        raise RequestError(("path", "slice_id"), f"not a slice file: {problem}", status=503)
    return data


def slices(folders: Sequence) -> list[dict]:
    """The slices found in ``folders`` (``optimlab slice --out``) in path order: id (a hash
    of the file's path below its folder, :func:`_slice_ids`: it stays when other slices are
    added), the folder's name, task, model, optimizers, grid size and when it was written
    (ISO 8601 in UTC). A file that cannot be read is listed with its ``error``."""
    out = []
    for slice_id, path in _slice_ids(folders).items():
        row = {"id": slice_id, "name": path.parent.name, "modified": ""}
        try:
            row["modified"] = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc) \
                .isoformat(timespec="seconds")
            data = _read_slice(path)
        except (OSError, RequestError) as err:  # (OSError: removed since it was found)
            out.append({**row, "error": str(err)})
            continue
        out.append({**row, "task": data["task"], "model": data["model"],
                    "optimizers": [p.get("optimizer") for p in data["paths"]],
                    "grid": [len(data["xs"]), len(data["ys"])], "error": None})
    return out


def slice_detail(folders: Sequence, slice_id: int) -> dict:
    """One slice file's content (:meth:`~optimlab.bench.slices.Slice.to_json`), its
    non-finite numbers made ``None``; 404 for an id no file has (:func:`slices` lists them),
    503 for a file that is not a slice."""
    files = _slice_ids(folders)
    path = files.get(slice_id) if isinstance(slice_id, int) and not isinstance(slice_id, bool) \
        else None
    if path is None:
        raise RequestError(("path", "slice_id"), f"no slice {slice_id}: "
                                                 f"{len(files)} slice files are shown",
                           status=404)
    data = _read_slice(path)
    from ..bench.slices import Slice

    shown = Slice.from_json(data)
    answer = {"id": slice_id, "name": path.parent.name, **_jsonable(data)}
    # the learning rate as the command line's table says it ("0.1 (slice preset)", "1
    # (default)"), and its warnings (a diverged optimizer, above all one spanning the plane)
    for row, p in zip(answer["paths"], shown.paths):
        row["lr_text"] = p.lr_text
    answer["notes"] = shown.notes()
    return answer


# ----------------------------------------------------------------------------- sweeps


#: How long (seconds of wall time) one request may spend reading the run store: a query
#: still running then is interrupted (SQLite's progress handler) and the request answers 503,
#: so that a store built to never answer (a view over an endless recursive query) cannot hold
#: a worker thread, nor the server's shutdown, for ever.
STORE_DEADLINE_S = 30.0

#: The tables of the run store the API reads; each must be a table, not a view (whose query
#: could run for ever, or read another file's tables) nor missing.
STORE_TABLES = ("sweeps", "runs", "metrics")


#: The store deadline's clock (not ``time.monotonic`` read through this module's ``time``,
#: which the race tests replace with a counter).
_wall_clock = time.monotonic


class _StoreDeadline:
    """SQLite's progress handler for one request: true (interrupt) once ``seconds`` have
    passed since it was made; ``passed`` remembers that it fired."""

    def __init__(self, seconds: float) -> None:
        self.until = _wall_clock() + seconds
        self.passed = False

    def __call__(self) -> bool:
        if _wall_clock() > self.until:
            self.passed = True
        return self.passed


def _open(db_path):
    """The run store at ``db_path`` read-only (None when there is no store yet: no file, an
    empty one, or one whose tables are not created yet, as while ``optimlab bench`` creates
    the store), each query of it interrupted once :data:`STORE_DEADLINE_S` have passed
    (:func:`_reading` says so in the 503); a file that is not a run store, or a store whose
    :data:`STORE_TABLES` are not all tables, raises
    :class:`~optimlab.bench.store.StoreError` (503) saying which."""
    from ..bench.store import RunStore, StoreError
    from ..bench.store.runstore import NoStoreYet

    try:
        import pandas  # noqa: F401  (the store's DataFrame readers need it)
    except ImportError:
        raise RequestError(("path",), "the Runs tab reads the run store with pandas: "
                                      "pip install 'optimlab[bench]'", status=501) from None
    if db_path is None or not Path(db_path).exists():
        return None
    try:
        store = RunStore(db_path, readonly=True)
    except NoStoreYet:  # being created (or never written): no sweeps yet, not an error
        return None
    try:
        deadline = _StoreDeadline(STORE_DEADLINE_S)
        store.con.set_progress_handler(deadline, 1000)  # (every 1000 SQLite instructions)
        store.deadline = deadline
        kinds = dict(store.con.execute(
            f"SELECT lower(name), type FROM sqlite_master WHERE lower(name) IN "
            f"({', '.join('?' * len(STORE_TABLES))})", STORE_TABLES).fetchall())
        odd = [f"{name} is {'a ' + str(kinds[name]) if name in kinds else 'missing'}"
               for name in STORE_TABLES if kinds.get(name) != "table"]
        if odd:
            raise StoreError(f"it is not a run store as optimlab writes it ({', '.join(odd)}, "
                             f"where a table should be)")
    except BaseException:
        store.close()
        raise
    return store


@contextlib.contextmanager
def _reading(store):
    """Reads ``store`` in one snapshot (:meth:`~optimlab.bench.store.RunStore.snapshot`: every
    query of the answer sees one state of it, though a sweep writes it meanwhile) and closes
    it at the end; a query :func:`_open`'s deadline interrupted raises
    :class:`~optimlab.bench.store.StoreError` (503) saying so, whatever it raised."""
    from ..bench.store import StoreError

    try:
        with store, store.snapshot():
            yield store
    except Exception as err:
        if not store.deadline.passed:
            raise
        raise StoreError(f"reading it took longer than {STORE_DEADLINE_S:g} s, so it was "
                         f"stopped (a store this slow, or a view or query that never "
                         f"ends)") from err


#: What a damaged row of the store raises while it is decoded (text that is not JSON, JSON
#: of the wrong kind, a date that is not one).
_DAMAGE = (ValueError, TypeError, AttributeError, KeyError, IndexError, ArithmeticError)


def _runs_text(counts: dict[str, int]) -> str:
    """Runs finished out of all, the diverged, failed and unfinished noted, as ``optimlab
    runs`` says them: ``"12/48 (3 diverged, 33 to run)"``."""
    notes = [f"{counts[k]} {k}" for k in ("diverged", "failed") if counts.get(k)]
    open_ = counts.get("pending", 0) + counts.get("running", 0)
    if open_:
        notes.append(f"{open_} to run")
    return f"{counts.get('finished', 0)}/{sum(counts.values())}" \
        + (f" ({', '.join(notes)})" if notes else "")


def _created_at(text: Any) -> str:
    """A stored creation time as ISO 8601 in UTC (a time without a zone is UTC)."""
    when = datetime.fromisoformat(str(text))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def _sweep_config(text: Any, sweep_id: int) -> dict:
    """A sweep's stored config; ValueError naming the sweep when it is not a JSON object, or
    its fixed hyperparameters (``hparams``) are not one (the reports read them by name)."""
    config = None if text is None else json.loads(text)
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"sweep {sweep_id}'s stored config is not a JSON object")
    if not isinstance(config.get("hparams") or {}, dict):
        raise ValueError(f"sweep {sweep_id}'s stored hparams are not a JSON object")
    return config


def _sweep_row(store, row: tuple) -> dict:
    """One sweep of the list from its row ``(id, name, task, model, created_at, config)``:
    a damaged cell is said in ``error`` (the others still listed), never raised."""
    from ..bench.analysis import variant_label
    from ..bench.store import STATUSES

    sweep_id, name, task, model, created, config_text = row
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in store.con.execute("SELECT status, COUNT(*) FROM runs WHERE sweep_id = ? "
                                       "GROUP BY status", (sweep_id,)).fetchall():
        if status in counts:
            counts[status] = int(n)
    text = lambda v: v if isinstance(v, str) else None  # noqa: E731
    out = {"id": int(sweep_id), "name": text(name), "task": text(task), "model": text(model),
           "created_at": str(created or ""), "counts": counts, "runs": _runs_text(counts),
           "optimizers": [], "labels": [], "error": None}
    problems = []
    try:
        out["created_at"] = _created_at(created)
    except _DAMAGE:
        problems.append(f"its creation time {_short_text(created)} is not a date")
    try:
        config = _sweep_config(config_text, sweep_id)
        fixed = config.get("hparams") or {}
        out["optimizers"] = [str(o) for o in config.get("optimizers") or []]
        out["labels"] = [variant_label(o, fixed.get(o)) for o in out["optimizers"]]
    except _DAMAGE:
        problems.append("its stored config is not a JSON object of a sweep")
        out["optimizers"], out["labels"] = [], []
    if problems:
        out["error"] = f"sweep {sweep_id} cannot be shown: {'; '.join(problems)} (a damaged " \
                       f"row of the run store)"
    return out


def _short_text(value: Any, most: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= most else text[:most - 3] + "..."


_SWEEP_ROW = "SELECT id, name, task, model, created_at, config FROM sweeps"


def sweeps(db_path) -> list[dict]:
    """The sweeps stored in ``db_path`` (none when the file does not exist yet), with their
    runs counted by status (``runs`` says them as ``optimlab runs`` does) and their
    optimizers with the hyperparameters the sweep fixed (``labels``). A sweep whose row is
    damaged is listed with its ``error``."""
    store = _open(db_path)
    if store is None:
        return []
    with _reading(store):
        return [_sweep_row(store, row) for row in store.con.execute(_SWEEP_ROW + " ORDER BY id")]


def _curves(store, runs, best: dict[str, float]) -> dict:
    """Each optimizer's mean curves over the seeds at its ``best`` rate, of the ended
    ``runs`` there (the sweep's :class:`~optimlab.bench.store.Run` list): the metrics the
    page draws (:data:`~optimlab.bench.report.CURVE_METRICS`), read for those runs only, and
    at most :data:`MAX_POINTS` steps a curve, as a race's
    (:func:`~optimlab.bench.report.thin_indices`: the first and the last step and, between
    them, each bucket's lowest and highest point of every metric, so a spike stays in
    view)."""
    from ..bench.report import CURVE_METRICS, thin_indices
    from ..bench.store import TERMINAL

    curves = {}
    for name, lr in best.items():
        ids = [r.id for r in runs if r.optimizer == name and r.status in TERMINAL
               and is_json_number(r.hparams.get("lr")) and r.hparams.get("lr") == lr]
        rows = store.metric_points(ids, names=CURVE_METRICS) if ids else None
        if rows is None or rows.empty:
            continue
        wide = rows.pivot_table(index="step", columns="name", values="value", aggfunc="mean",
                                dropna=False)
        keep = thin_indices(len(wide), MAX_POINTS,
                            *(wide[metric].to_numpy(dtype=float) for metric in wide.columns))
        wide = wide.iloc[keep]
        curve = {"lr": lr, "seeds": int(rows["run_id"].nunique()),
                 "step": [int(s) for s in wide.index]}
        for metric in wide.columns:
            curve[str(metric)] = finite_list(wide[metric].to_numpy())
        curves[name] = curve
    return curves


#: Most bytes of :func:`sweep_detail_json` answers kept (one of 64 runs x 100,000 steps is
#: about 1.2 MB); the least recently used go first.
SWEEP_CACHE_BYTES = 32 * 2**20

_SWEEPS = _ByteCache(SWEEP_CACHE_BYTES)
#: a lock per answer being computed (:func:`_sweep_flight`), so that requests for one sweep
#: that come together read it once
_SWEEP_FLIGHTS: dict[Any, threading.Lock] = {}
_SWEEP_FLIGHTS_LOCK = threading.Lock()


def _sweep_key(store, db_path, sweep_id: int) -> tuple | None:
    """What :func:`sweep_detail_json`'s answer for a sweep whose runs have all ended is kept
    by: the store file (its resolved path, device and inode: a store made afresh at the same
    path, as each tour makes its own, is another file), the sweep's whole row (name, config,
    environment, costs) and every row of its runs (status, hyperparameters, summary,
    times). The points of an ended run are never written again, so these rows decide the
    answer. None while a run has not ended (its answer changes as it trains): read afresh
    each time."""
    from ..bench.store import TERMINAL

    row = tuple(store.con.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone())
    cur = store.con.execute("SELECT * FROM runs WHERE sweep_id = ? ORDER BY id", (sweep_id,))
    status = [d[0] for d in cur.description].index("status")
    runs = tuple(cur.fetchall())
    if any(run[status] not in TERMINAL for run in runs):
        return None
    path = Path(db_path).resolve()
    st = path.stat()
    digest = hashlib.sha256(repr((row, runs)).encode()).hexdigest()
    return (str(path), st.st_dev, st.st_ino, sweep_id, digest)


def _sweep_flight(key) -> threading.Lock:
    """The lock that the request computing the answer for ``key`` holds."""
    with _SWEEP_FLIGHTS_LOCK:
        return _SWEEP_FLIGHTS.setdefault(key, threading.Lock())


def sweep_detail(db_path, sweep_id: int) -> dict:
    """:func:`sweep_detail_json`'s answer, read."""
    return json.loads(sweep_detail_json(db_path, sweep_id))


def sweep_detail_json(db_path, sweep_id: int) -> bytes:
    """One sweep, as JSON: its summary per optimizer, mean curves at each best lr, the text table, and
    how the best lr is chosen (``criterion``: not the final metric the sensitivity shows).
    The summary rows come in rank order, as the command line's table lists them; a row's
    ``ci`` is the half-width of its mean's ``confidence`` interval over seeds (Student's t,
    as that table says it), null where there is none (one seed, or two alike).

    Each optimizer of the sweep has a summary row (``note``: "no run ended yet" for one with
    no ended run, its numbers null); its ``label`` and each curve's say the hyperparameters
    the sweep fixed; each rate of its ``sensitivity`` counts the seeds that finished and
    diverged, ``mean`` over the finished ones. ``heading`` is the sweep in one line.

    The answer for a sweep whose runs have all ended is kept (at most
    :data:`SWEEP_CACHE_BYTES` of answers) by the store file and the rows of the sweep and its
    runs (:func:`_sweep_key`), which each request reads: a sweep of 64 runs x 100,000 steps
    took 6-16 s to read on a 2-core machine, and four requests for it at once all ran out of
    :data:`STORE_DEADLINE_S` (503). Requests for one such sweep that come together read it
    once: the others wait for that answer.

    Raises :class:`RequestError` with status 404 when the store has no such sweep, 503 naming
    the sweep when a row of it is damaged (the other sweeps are still shown).
    """
    store = _open(db_path)
    if store is None:  # (the messages never say where the store is: no paths to a client)
        raise RequestError(("path", "sweep_id"), f"no sweep {sweep_id}: the run store holds "
                                                 f"no sweeps yet", status=404)
    if isinstance(sweep_id, bool) or not isinstance(sweep_id, int) \
            or not 1 <= sweep_id <= MAX_ID:
        store.close()
        raise RequestError(("path", "sweep_id"), f"no sweep {sweep_id}: sweep ids are whole "
                                                 f"numbers from 1 to {MAX_ID}", status=404)
    with _reading(store):
        row = store.con.execute(_SWEEP_ROW + " WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise RequestError(("path", "sweep_id"), f"no sweep {sweep_id} in the run store",
                               status=404)
        key = _sweep_key(store, db_path, sweep_id)
        payload = None if key is None else _SWEEPS.get(key)
        if payload is not None:
            return payload
        if key is None:
            return _sweep_answer(store, sweep_id, row)
        flight = _sweep_flight(key)
        # another request reading this sweep: wait for its answer, within this request's
        # deadline (then read it here, where that one failed or the wait ran out)
        got = flight.acquire(timeout=max(0.0, store.deadline.until - _wall_clock()))
        try:
            payload = _SWEEPS.get(key)
            if payload is None:
                payload = _sweep_answer(store, sweep_id, row)
                _SWEEPS.put(key, payload)
            return payload
        finally:
            if got:
                flight.release()
            with _SWEEP_FLIGHTS_LOCK:  # (a lock another request put there since stays)
                if _SWEEP_FLIGHTS.get(key) is flight and not flight.locked():
                    del _SWEEP_FLIGHTS[key]


def _sweep_answer(store, sweep_id: int, row) -> bytes:
    """:func:`sweep_detail_json`'s answer read from ``store`` (in a snapshot), ``row`` the
    sweep's row."""
    listed = _sweep_row(store, row)
    if listed["error"]:
        raise RequestError(("path", "sweep_id"), listed["error"], status=503)
    try:
        return dumps({"sweep": listed, **_sweep_content(store, sweep_id)})
    except _DAMAGE as err:
        raise RequestError(("path", "sweep_id"),
                           f"sweep {sweep_id} cannot be shown: a run of it is damaged in "
                           f"the run store ({type(err).__name__} while reading it)",
                           status=503) from None


def _sensitivity(records: list[dict], name: str) -> list[dict]:
    """Per learning rate of ``name``'s ended runs: how many seeds finished and diverged (or
    failed), and the mean final metric of those that finished (null when none did)."""
    by_lr: dict[float, tuple[list, list]] = {}
    for r in records:
        if r["optimizer"] != name:
            continue
        good, bad = by_lr.setdefault(float(r["lr"]), ([], []))
        metric = _finite(r["metric"]) if is_json_number(r["metric"]) else None
        (good if r["status"] == "finished" and metric is not None else bad).append(metric)
    return [{"lr": lr, "mean": float(np.mean(good)) if good else None,
             "finished": len(good), "diverged": len(bad), "seeds": len(good) + len(bad)}
            for lr, (good, bad) in sorted(by_lr.items())]


def _sweep_content(store, sweep_id: int) -> dict:
    """Everything of :func:`sweep_detail` but the sweep's row (may raise :data:`_DAMAGE`)."""
    from ..bench.analysis import CONFIDENCE, CRITERION, rank, summarize, variant_label
    from ..bench.report import METRIC_RANGES, read_sweep, summary_notes, summary_table, sweep_heading

    info = store.sweep(sweep_id)
    config = info["config"] or {}
    if not isinstance(config, dict):
        raise ValueError("its stored config is not a JSON object")
    # the sweep read once (its runs, metric, records and grids), for the summary here and
    # the report's heading, table and notes alike
    sw = read_sweep(store, sweep_id)
    fixed = config.get("hparams") or {}
    label = lambda name: variant_label(name, fixed.get(name))  # noqa: E731
    metric, higher = sw.metric, sw.higher
    records = [r for r in sw.records  # (ended runs)
               if is_json_number(r["lr"]) and _finite(r["lr"]) is not None]
    # edges against the whole grid, ended or not, as the report judges them
    summaries = summarize(records, higher, sw.grids)
    best = {s.optimizer: s.best_lr for s in summaries if math.isfinite(s.mean)}
    # the command line's ranks ("=1": a paired comparison cannot tell them apart), for the
    # optimizers with a best rate; the others have no rank, as its table says
    ranked = rank(summaries, higher)
    ranks = {s.optimizer: text for text, s in ranked if s.optimizer in best}
    # the rows in the command line's order: the ranked ones best first (by rank, then mean),
    # then those without a rank in their order
    summaries = [s for _, s in ranked if s.optimizer in ranks] \
        + [s for s in summaries if s.optimizer not in ranks]
    # ``ci``: the half-width of the mean's confidence interval (Student's t), as the command
    # line's table says it; null where there is none (one seed, or two alike: the page says
    # why, as that table does), not 0; with no best rate no seeds stand behind a mean, as
    # the command line's table says 0; ``edge`` is "low" or "high" when the best rate is the
    # grid's lowest or highest
    summary = [{"optimizer": s.optimizer, "label": label(s.optimizer),
                "rank": ranks.get(s.optimizer),
                "best_lr": s.best_lr if s.optimizer in best else None, "mean": _finite(s.mean),
                "ci": _finite(s.ci) if s.optimizer in best else None,
                "seeds": s.seeds if s.optimizer in best else 0, "diverged": s.diverged,
                "edge": s.edge if s.optimizer in best else None,
                "sensitivity": _sensitivity(records, s.optimizer), "note": None}
               for s in summaries]
    # an optimizer of the sweep with no ended run yet: a row saying so, not no row
    shown = {row["optimizer"] for row in summary}
    summary += [{"optimizer": name, "label": label(name), "rank": None, "best_lr": None,
                 "mean": None, "ci": None, "seeds": 0, "diverged": 0, "edge": None,
                 "sensitivity": [], "note": "no run ended yet"}
                for name in (str(o) for o in config.get("optimizers") or []) if name not in shown]
    curves = _curves(store, sw.runs, best)
    for name, curve in curves.items():
        curve["label"] = label(name)
    return {"heading": sweep_heading(sw), "config": _jsonable(config),
            "metric": metric, "higher_is_better": bool(higher), "criterion": CRITERION,
            "confidence": CONFIDENCE,
            # a bounded metric's range (an accuracy's [0, 1]): an interval past it is said
            # clipped, as the command line's table says it; null for an unbounded one
            "metric_range": list(METRIC_RANGES[metric]) if metric in METRIC_RANGES else None,
            "summary": summary, "curves": curves, "summary_text": summary_table(sw),
            "notes": summary_notes(sw)}


# the optimizer list follows optimlab.register/unregister in this process (the palette too)
_on_change(_optimizers.cache_clear)
