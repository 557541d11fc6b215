"""The playground API's limits and its request and response models (pydantic).

The OpenAPI schema (``GET /api/openapi.json``) is built from these models and is the one
statement of what a request may hold: every bound below is a constraint of a field
(``minimum``/``maximum``, ``exclusiveMinimum``, ``minItems``/``maxItems``, an ``enum`` of
names), each optimizer's hyperparameters are a model of their own (from
:func:`optimlab.web.hparams.accepted`, picked by ``name``), and the server enforces nothing
the schema does not say, except the rules that tie two fields together, which JSON Schema
cannot state; those are in the descriptions, and break with HTTP 422 too:

- the work budget: ``steps x racers <= MAX_WORK``, where each optimizer is one racer, or
  one per learning rate of the tuning grid (:data:`TUNE_RACERS`) when ``tune`` is on, and
  a racer counts its optimizer's work weight (1 for a rule that batches over members, 10 for
  one that runs member by member such as SOAP, 100 for L-BFGS at its default 20 inner
  iterations and in proportion to the closure evaluations its ``max_iter`` and ``max_eval``
  allow and to its ``history_size`` over 100, Muon's in proportion to its ``ns_steps`` over
  5: :func:`optimlab.optim.registry.work_weight`); ``POST /api/inspect`` counts its one
  optimizer the same way. The weights are typical costs, not worst cases (an L-BFGS step
  that never stops early makes every evaluation ``max_iter`` allows), so the server also
  stops a race, inspection or basins map still running after :data:`MAX_SECONDS` of wall
  time and answers 422 (:class:`optimlab.web.api.RaceControl`): no request runs for minutes.
  A tuned pick on the grid's edge makes the race try rates beyond it
  (:data:`TUNE_EXTENSION_RACERS` more at most) only where the work with those counted too is
  within the limit; otherwise the answer flags the edge (``tuning_edge``);
- ``start`` inside the chosen landscape's domain (``GET /api/landscapes``), ``params``
  only the landscape's own (``quadratic``: ``kappa``);
- whatever an optimizer itself refuses when it is built (e.g. Rprop's ``step_sizes`` with
  min > max), reported with the hyperparameter's name.

Every limit is a module constant, listed by ``GET /api/limits``; a request outside them
gets HTTP 422 with a message naming the field and the reason
(:func:`optimlab.web.server.create_app`).

=====================  ==============================================================
limit                  value
=====================  ==============================================================
steps                  1 .. :data:`MAX_STEPS` (10000)
optimizers per race    1 .. :data:`MAX_OPTIMIZERS` (20)
work per race          steps x racers <= :data:`MAX_WORK` (200000); an optimizer is one
                       racer, or :data:`TUNE_RACERS` (one per grid learning rate) when
                       tuning, times its work weight (1, 10 member by member, 100 L-BFGS
                       at 20 inner iterations, 500 at ``max_iter`` 100, 5000 with
                       ``history_size`` 1000 too; Muon x ``ns_steps``/5); an inspection
                       counts steps x its optimizer's weight the same way
work per basins map    grid**2 x steps x work weight, summed over the optimizers, <=
                       :data:`MAX_BASIN_WORK` (500000)
noise                  0 .. :data:`MAX_NOISE` (std of the Gaussian gradient noise)
seed                   0 .. 2**31 - 1
start                  two numbers in [-:data:`MAX_COORD`, :data:`MAX_COORD`], inside the
                       landscape's domain
landscape parameters   ``kappa`` in (0, :data:`MAX_KAPPA`], ``angle`` in [-180, 180]
hyperparameters        :func:`optimlab.web.hparams.accepted`: the ranges of
                       :data:`optimlab.web.hparams.RANGES` (e.g. 0 < lr <= 10), any other
                       number finite and within float32's range, and what the optimizer
                       itself accepts
contour grid           :data:`GRID_MIN` .. :data:`GRID_MAX` points per axis
ids in paths           1 .. 2**63 - 1 (SQLite's largest integer)
request body           at most :data:`MAX_BODY` bytes (1 MiB; HTTP 413 beyond)
wall time              a race, inspection or basins map stops after :data:`MAX_SECONDS`
                       (30 s; HTTP 422)
=====================  ==============================================================

Paths and losses come back with at most :data:`MAX_POINTS` points per optimizer (every
``stride``-th step, the last step always included); the metrics use every step.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictStr,
    create_model,
)

from ..landscapes import TUNE_GRID
from ..landscapes import names as _landscape_names
from ..landscapes.functions import from_catalog as _get_landscape
from ..landscapes.race import EXTEND_POINTS, MAX_EXTENSIONS
from ..optim.registry import _on_change
from . import hparams as hp

# (also, built on first use: OPTIMIZERS, LANDSCAPES, HYPERPARAMETER_MODELS, OptimizerSpec,
# LandscapeParams, GridQuery, RaceRequest; see _built)
__all__ = ["MAX_STEPS", "MAX_OPTIMIZERS", "MAX_WORK", "MAX_NOISE", "MAX_SEED", "MAX_POINTS",
           "GRID_MIN", "GRID_MAX", "GRID_DEFAULT", "MAX_LABEL", "MAX_COORD", "MAX_KAPPA",
           "MAX_ID", "MAX_BODY", "MAX_SECONDS", "TUNE_RACERS", "TUNE_EXTENSION_RACERS",
           "LANDSCAPE_PARAMS",
           "limits", "work", "whole",
           "RaceMetricsModel", "RaceResultModel", "RaceResponse", "ExtraPathModel",
           "StateEntryModel", "InspectResponse", "MAX_STARTS", "MAX_FAN", "MAX_FAN_FACTOR",
           "MAX_INSPECT_STEPS", "MAX_BASIN_GRID", "MAX_BASIN_STEPS", "MAX_BASIN_WORK", "BasinResultModel",
           "BasinsResponse", "HyperparameterModel",
           "OptimizerModel", "LandscapeModel", "GridResponse", "SweepModel", "SweepDetail",
           "SliceModel", "SliceDetail",
           "ErrorResponse", "LimitsModel"]

#: Most steps a race may take.
MAX_STEPS = 10_000
#: Most optimizers in one race.
MAX_OPTIMIZERS = 20
#: Most optimizer-steps in one race: steps x racers, each weighted by its work weight (see the
#: module docstring and :func:`work`).
MAX_WORK = 200_000
#: Racers one optimizer counts for when tuning: one per learning rate of the grid.
TUNE_RACERS = len(TUNE_GRID)
#: Racers a tuned optimizer may add when its pick sits on the grid's edge: the race extends
#: the grid (:func:`optimlab.landscapes.race`'s ``extend``) only when the request's work
#: with these counted too stays within :data:`MAX_WORK`; otherwise the edge is flagged.
TUNE_EXTENSION_RACERS = MAX_EXTENSIONS * EXTEND_POINTS
#: Largest gradient-noise standard deviation.
MAX_NOISE = 1000.0
#: Largest noise seed.
MAX_SEED = 2**31 - 1
#: Most points per path (and loss curve) in a race response.
MAX_POINTS = 2001
#: Contour grid points per axis: fewest, most, default.
GRID_MIN, GRID_MAX, GRID_DEFAULT = 10, 400, 100
#: Longest optimizer label.
MAX_LABEL = 40
#: Largest magnitude of a start coordinate (it must lie in the landscape's domain, too).
MAX_COORD = 1e6
#: Largest condition number ``kappa`` of the quadratic landscape.
MAX_KAPPA = 1e6
#: Largest id in a path (a sweep's): SQLite's largest integer.
MAX_ID = 2**63 - 1
#: Longest request body, in bytes: a race of :data:`MAX_OPTIMIZERS` optimizers, each with every
#: hyperparameter and a label, takes a few kB; a longer body is refused (HTTP 413) unread.
MAX_BODY = 2**20
#: Longest a race, an inspection or a basins map may run, in seconds of wall time: the work
#: weights bound the typical cost, not the worst (L-BFGS on Rosenbrock at lr 1e-3, where no
#: step stops early: 100 steps took 3.1 s on a busy 2-core Intel Xeon, so the 2000 its weight
#: of 100 admits would take about 60 s), so a request still running then is stopped, refused.
MAX_SECONDS = 30.0
#: Most extra start points of a race, learning-rate factors of its fan, and the largest factor.
MAX_STARTS, MAX_FAN, MAX_FAN_FACTOR = 16, 9, 100.0
#: Most steps ``POST /api/inspect`` records.
MAX_INSPECT_STEPS = 1000
#: ``POST /api/basins``: most starts per side of its grid, most steps per run, and most
#: member-steps (``grid**2 x steps`` per optimizer: every start of every optimizer is one
#: member of one batch), each optimizer's weighted by its work weight
#: (:func:`optimlab.optim.registry.work_weight`, as the race's :data:`MAX_WORK`). Measured on
#: a 2-core CPU: 1-3 us per member-step for Adam or SGD (weight 1), 86-272 for the rules
#: that run member by member (weight 10: Adafactor, Shampoo, SOAP, Prodigy, PSGD-Kron; SAM
#: 20), 1125 for L-BFGS (weight 100); the slowest admitted map timed there (PSGD-Kron,
#: 22x22 starts x 100 steps) took 12.4 s.
MAX_BASIN_GRID, MAX_BASIN_STEPS, MAX_BASIN_WORK = 30, 2000, 500_000


def limits() -> dict:
    """Every limit, by name (``GET /api/limits``)."""
    return {"max_steps": MAX_STEPS, "max_optimizers": MAX_OPTIMIZERS, "max_work": MAX_WORK,
            "tune_racers": TUNE_RACERS, "max_noise": MAX_NOISE, "max_seed": MAX_SEED,
            "max_points": MAX_POINTS, "grid_min": GRID_MIN, "grid_max": GRID_MAX,
            "grid_default": GRID_DEFAULT, "max_label": MAX_LABEL, "max_coord": MAX_COORD,
            "max_kappa": MAX_KAPPA, "max_starts": MAX_STARTS, "max_fan": MAX_FAN,
            "max_fan_factor": MAX_FAN_FACTOR, "max_inspect_steps": MAX_INSPECT_STEPS,
            "max_basin_grid": MAX_BASIN_GRID, "max_basin_steps": MAX_BASIN_STEPS,
            "max_basin_work": MAX_BASIN_WORK, "max_body": MAX_BODY,
            "max_seconds": MAX_SECONDS}


def work(steps: int, optimizers: int | Sequence[float], tune: bool, starts: int = 0,
         fan: int = 0, extension: bool = False) -> int:
    """Optimizer-steps of a race: ``steps x racers``, each optimizer one racer, or one per
    learning rate of the tuning grid when ``tune``, plus one per extra path of its fan and
    extra starts (what :data:`MAX_WORK` bounds).

    ``optimizers`` is how many there are, each costing 1, or each one's work weight
    (:func:`optimlab.optim.registry.work_weight`: 1 for a rule that batches over members,
    10 for one that runs member by member, 100 for L-BFGS). ``fan`` counts the factors
    other than 1 (each racer also runs at its own rate from every extra start).
    ``extension`` also counts the rates a tuned grid may add beyond its edge
    (:data:`TUNE_EXTENSION_RACERS`): the race extends the grid only when that fits too.

    >>> work(500, 3, False), work(500, 3, True), work(500, 3, False, starts=2, fan=3)
    (1500, 25500, 18000)
    >>> work(500, [1.0, 10.0], False)
    5500
    """
    extra = (1 + starts) * (1 + fan) - 1  # every (start, rate) path but the race's own
    racers = TUNE_RACERS + (TUNE_EXTENSION_RACERS if extension else 0) if tune else 1
    return round(steps * _weight(optimizers) * (racers + extra))


def basin_work(grid: int, steps: int, optimizers: int | Sequence[float]) -> int:
    """Member-steps of a basins map: ``grid**2 x steps`` for each optimizer, weighted by its
    work weight as in :func:`work` (what :data:`MAX_BASIN_WORK` bounds).

    >>> basin_work(30, 300, 1), basin_work(15, 200, [1.0, 10.0])
    (270000, 495000)
    """
    return round(grid ** 2 * steps * _weight(optimizers))


def _weight(optimizers: int | Sequence[float]) -> float:
    """What ``optimizers`` weigh together: their count, or the sum of their work weights."""
    return optimizers if isinstance(optimizers, int) else sum(optimizers)


_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def _bounds(rng: hp.Range) -> dict:
    return {("gt" if rng.low_open else "ge"): rng.low, ("lt" if rng.high_open else "le"): rng.high}


def _whole(value: Any) -> Any:
    # JSON Schema's integer is any number without a fraction: 5.0 is one too
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole(**bounds) -> Any:
    """A whole number (JSON Schema's ``integer``: 5 or 5.0, not "5" nor true) in ``bounds``."""
    # (the bounds before the validator, so the schema says minimum/maximum)
    return Annotated[int, Strict(), Field(**bounds), BeforeValidator(_whole)]


def _number(rng: hp.Range, strict: bool = True) -> Any:
    """A finite number within ``rng`` (an int where ``rng.kind`` is ``int``)."""
    if rng.kind == "int":
        return whole(**_bounds(rng)) if strict else Annotated[int, Field(**_bounds(rng))]
    return Annotated[float, Strict(strict), Field(allow_inf_nan=False, **_bounds(rng))]


def _field_type(rng: hp.Range) -> Any:
    """The pydantic type of a value in ``rng`` (see :class:`optimlab.web.hparams.Range`)."""
    if rng.kind == "bool":
        return StrictBool
    if rng.kind == "text":
        text = Annotated[StrictStr, Field(max_length=hp.MAX_TEXT)]
        return Optional[text] if rng.nullable else text
    if rng.kind == "choice":
        return Literal[rng.choices]
    if rng.kind in ("pair", "tuple"):
        item = _number(rng)
        item = Optional[item] if rng.nullable else item
        return Annotated[list[item], Field(min_length=rng.length, max_length=rng.length)]
    return Optional[_number(rng)] if rng.nullable else _number(rng)


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9a-zA-Z]+", name) if part)


def _hyperparameters(name: str) -> type[BaseModel]:
    """The model of ``name``'s hyperparameters: one optional field each, as accepted."""
    defaults = hp.defaults(name)
    fields = {}
    for key, ranges in hp.accepted(name).items():
        types = [_field_type(r) for r in ranges]
        kind = types[0] if len(types) == 1 else Union[tuple(types)]
        words = " or ".join(r.describe() if r.kind not in ("pair", "tuple") else
                            f"{r.length} numbers, each {r.describe()}"
                            + (" or null" if r.nullable else "") for r in ranges)
        helps = "; ".join(dict.fromkeys(r.help for r in ranges if r.help))
        extra: dict = {}
        if key in defaults:
            extra["default"] = hp._jsonable(defaults[key])
        fields[key] = (kind, Field(None, description=f"{helps} ({words})" if helps else words,
                                   json_schema_extra=_schema_default(extra)))
    return create_model(f"{_title(name)}Hyperparameters", __config__=_STRICT,
                        __doc__=f"The hyperparameters of {name}; each one left out takes the "
                                f"optimizer's default.", **fields)


def _schema_default(extra: dict):
    def edit(schema: dict) -> None:
        schema.pop("default", None)  # the field's None only means "not given"
        schema.update(extra)
    return edit


#: The parameters of the 2-D landscapes, with their ranges (others: any finite number).
LANDSCAPE_PARAMS: dict[str, hp.Range] = {
    "kappa": hp.Range("log", 0.0, MAX_KAPPA, low_open=True,
                      help="condition number of the quadratic bowl (quadratic and "
                      "rotated_quadratic)"),
    "angle": hp.Range("linear", -180.0, 180.0,
                      help="rotation of the bowl's axes in degrees (rotated_quadratic only)"),
}

Coordinate = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-MAX_COORD, le=MAX_COORD)]

#: The models built from the catalogs (on first use, not on import: building the landscapes
#: and optimizers they list takes seconds and runs autograd).
_LAZY = ("OPTIMIZERS", "HYPERPARAMETER_MODELS", "OptimizerSpec", "LANDSCAPES",
         "LandscapeParams", "GridQuery", "RaceRequest", "InspectRequest", "BasinsRequest")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _built()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _racer(name: str, model: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{_title(name)}Racer", __config__=_STRICT,
        __doc__=f"One racer running {name}: its hyperparameters and an optional label.",
        name=(Literal[name], Field(description="registry name (GET /api/optimizers)")),
        label=(Optional[Annotated[StrictStr, Field(min_length=1, max_length=MAX_LABEL)]],
               Field(None, description="legend label (default: the name)")),
        hparams=(model, Field(default_factory=model,
                              description="hyperparameters; the rest take the optimizer's "
                                          "defaults; the optimizer itself may refuse a "
                                          "combination (422, naming the hyperparameter)")),
    )


def _param_fields(landscapes: tuple[str, ...], strict: bool) -> dict:
    keys = dict.fromkeys(k for n in landscapes for k in _get_landscape(n).params)
    fields = {}
    for key in keys:
        rng = LANDSCAPE_PARAMS.get(key, hp.NUMBER)
        fields[key] = (Optional[_number(rng, strict)],
                       Field(None, description=f"{rng.help} ({rng.describe()}); only for a "
                                               f"landscape that has it",
                             json_schema_extra=_schema_default({})))
    return fields


@functools.lru_cache(maxsize=1)
def _built() -> dict:
    """The request models, from the registry and the landscape catalog.

    ``OPTIMIZERS``: registry names a race may use (GET /api/optimizers), in registry order;
    ``HYPERPARAMETER_MODELS``: each name's hyperparameter model; ``OptimizerSpec``: one
    racer, its model picked by ``name``; ``LANDSCAPES``: the 2-D landscapes a race may run
    on (GET /api/landscapes); ``LandscapeParams``, ``GridQuery``, ``RaceRequest``.

    A registered optimizer that cannot be built is left out, with a warning
    (:func:`optimlab.web.hparams.offered`): the playground goes on without it.
    """
    optimizers = tuple(e.name for e in hp.offered())
    hyperparameters = {n: _hyperparameters(n) for n in optimizers}
    racer = Annotated[Union[tuple(_racer(n, hyperparameters[n]) for n in optimizers)],
                      Field(discriminator="name")]
    landscapes = tuple(n for n in _landscape_names() if _get_landscape(n).dim == 2)

    landscape_params = create_model(
        "LandscapeParams", __config__=_STRICT,
        __doc__="Landscape parameters (e.g. kappa); each landscape takes only its own "
                "(GET /api/landscapes: params), the rest keep their defaults.",
        **_param_fields(landscapes, strict=True))
    grid_query = create_model(
        "GridQuery", __config__=_STRICT,
        __doc__="``GET /api/landscapes/{name}/grid``'s query: the grid size and the "
                "landscape's parameters.",
        n=(int, Field(GRID_DEFAULT, ge=GRID_MIN, le=GRID_MAX, description="points per axis")),
        **_param_fields(landscapes, strict=False))

    class RaceRequest(BaseModel):
        """``POST /api/race``: optimizers from one start on one 2-D landscape.

        Beyond each field's bounds, a race must fit the work budget: ``steps x racers <=
        200000``, where each optimizer is one racer, or 17 (one per learning rate of the
        tuning grid) when ``tune`` is on; ``start`` must lie inside the landscape's domain,
        ``params`` hold only the landscape's own. Each breaks with 422 naming the field.
        """

        model_config = _STRICT

        landscape: Literal[landscapes] = Field(description="a 2-D landscape "
                                                          "(GET /api/landscapes)")
        params: landscape_params = Field(default_factory=landscape_params,
                                         description="landscape parameters, e.g. kappa")
        start: Optional[list[Coordinate]] = Field(
            None, min_length=2, max_length=2,
            description="start point [x, y] inside the landscape's domain "
                        "(GET /api/landscapes; default: the landscape's start)")
        optimizers: list[racer] = Field(
            min_length=1, max_length=MAX_OPTIMIZERS,
            description=f"the racers; steps x racers <= {MAX_WORK}, each optimizer counting "
                        f"{TUNE_RACERS} racers when tune is on, times its work_weight "
                        f"(GET /api/optimizers)")
        steps: whole(ge=1, le=MAX_STEPS) = Field(
            500, description=f"steps per optimizer; steps x racers <= {MAX_WORK}")
        noise: Annotated[float, Strict()] = Field(0.0, ge=0, le=MAX_NOISE,
                                                  description="std of Gaussian gradient noise")
        seed: whole(ge=0, le=MAX_SEED) = Field(0, description="seed of the noise")
        tune: StrictBool = Field(False, description=f"pick each lr from a log grid of "
                                                    f"{TUNE_RACERS} first (each counts as a "
                                                    f"racer)")
        tol: Annotated[float, Strict()] = Field(1e-3, gt=0, le=1e6,
                                                description="tolerance of steps to tolerance")
        starts: list[Annotated[list[Coordinate], Field(min_length=2, max_length=2)]] = Field(
            default_factory=list, max_length=MAX_STARTS,
            description=f"more start points [x, y] (at most {MAX_STARTS}, each inside the "
                        f"domain): every racer runs from each of them too, in one batch; "
                        f"each such path counts as racers for the work budget")
        fan: list[Annotated[float, Strict(), Field(gt=0, le=MAX_FAN_FACTOR)]] = Field(
            default_factory=list, max_length=MAX_FAN,
            description=f"learning-rate factors (at most {MAX_FAN}, each in (0, "
                        f"{MAX_FAN_FACTOR:g}]): every racer also runs at factor x its lr (the "
                        f"tuned lr when tune is on), from the start and every point of "
                        f"starts; each counts as a racer for the work budget")

    RaceRequest.__module__ = __name__
    RaceRequest.__qualname__ = "RaceRequest"

    class InspectRequest(BaseModel):
        """``POST /api/inspect``: one optimizer, step by step, on one 2-D landscape: the
        gradient, its state and the step taken at every step. ``start`` must lie inside the
        landscape's domain (422 otherwise)."""

        model_config = _STRICT

        landscape: Literal[landscapes] = Field(description="a 2-D landscape")
        params: landscape_params = Field(default_factory=landscape_params,
                                         description="landscape parameters, e.g. kappa")
        start: Optional[list[Coordinate]] = Field(
            None, min_length=2, max_length=2,
            description="start point [x, y] (default: the landscape's start)")
        optimizer: racer = Field(description="the optimizer and its hyperparameters")
        steps: whole(ge=1, le=MAX_INSPECT_STEPS) = Field(
            100, description=f"steps to record (at most {MAX_INSPECT_STEPS})")
        noise: Annotated[float, Strict()] = Field(0.0, ge=0, le=MAX_NOISE,
                                                  description="std of Gaussian gradient noise")
        seed: whole(ge=0, le=MAX_SEED) = Field(0, description="seed of the noise")

    InspectRequest.__module__ = __name__
    InspectRequest.__qualname__ = "InspectRequest"

    class BasinsRequest(BaseModel):
        """``POST /api/basins``: every optimizer from every start of a ``grid`` x ``grid``
        tiling of the landscape's domain, all of them one batch; each start is classed by
        the known minimum its run ends within ``radius`` of. ``grid**2 x steps x
        work weight``, summed over the optimizers, ``<= 500000`` member-steps (422 naming
        ``steps`` otherwise; :func:`basin_work`)."""

        model_config = _STRICT

        landscape: Literal[landscapes] = Field(description="a 2-D landscape")
        params: landscape_params = Field(default_factory=landscape_params,
                                         description="landscape parameters, e.g. kappa")
        optimizers: list[racer] = Field(min_length=1, max_length=MAX_OPTIMIZERS,
                                        description="the optimizers, at fixed rates")
        steps: whole(ge=1, le=MAX_BASIN_STEPS) = Field(
            300, description=f"steps per run; grid**2 x steps x each optimizer's work_weight "
                             f"(GET /api/optimizers), summed, <= {MAX_BASIN_WORK}")
        grid: whole(ge=2, le=MAX_BASIN_GRID) = Field(15, description="starts per side")
        radius: Optional[Annotated[float, Strict(), Field(gt=0, le=MAX_COORD)]] = Field(
            None, description="a run counts for a minimum when it ends within this distance "
                              "of it (default: 5% of the domain's narrower side)")

    BasinsRequest.__module__ = __name__
    BasinsRequest.__qualname__ = "BasinsRequest"
    return {"OPTIMIZERS": optimizers, "HYPERPARAMETER_MODELS": hyperparameters,
            "OptimizerSpec": racer, "LANDSCAPES": landscapes,
            "LandscapeParams": landscape_params,
            "GridQuery": grid_query, "RaceRequest": RaceRequest,
            "InspectRequest": InspectRequest, "BasinsRequest": BasinsRequest}


class RaceMetricsModel(BaseModel):
    """One racer's result; non-finite numbers come back as null. On a landscape without a
    minimum (a saddle) ``gap``, ``distance`` and ``steps_to_tol`` are null and ``escaped``
    says whether the path's loss fell below the lowest value of the plotted domain,
    ``steps_to_escape`` at which step (null if never); on one with a minimum both are null
    (:class:`optimlab.landscapes.RaceMetrics`)."""

    final_loss: float | None
    gap: float | None
    distance: float | None
    steps_to_tol: int | None
    diverged: bool
    escaped: bool | None = None
    steps_to_escape: int | None = None


class ExtraPathModel(BaseModel):
    """One more path of a racer: from another start, or at another learning rate."""

    start: list[float]
    lr: float
    factor: float
    x: list[float | None]
    y: list[float | None]
    loss: list[float | None]
    diverged: bool


class RaceResultModel(BaseModel):
    """One racer: what it used, its path and losses, its metrics, and its extra paths
    (``starts`` x ``fan``, the race's own path left out)."""

    label: str
    name: str
    hparams: dict
    x: list[float | None]
    y: list[float | None]
    loss: list[float | None]
    metrics: RaceMetricsModel
    tuning: list[dict] | None = None
    #: the grid edge ("low", "high") the tuned rate still sits on, if any
    tuning_edge: str | None = None
    #: every rate tried is out by the tuning criterion: the rate shown (the smallest) won
    #: nothing (:meth:`~optimlab.landscapes.Race.every_rate_out`)
    every_rate_out: bool = False
    #: the rates the race added beyond the grid's edge (``race``'s ``extend``)
    tuning_extended: list[float] = []
    extra: list[ExtraPathModel] = []


class StateEntryModel(BaseModel):
    """One entry of the optimizer's state after each step: a ``direction`` (a vector that
    takes both signs: momentum, first moment), a ``scale`` (a vector never negative: second
    moment, accumulator) or a ``scalar``."""

    name: str
    kind: Literal["direction", "scale", "scalar"]
    values: list[list[float | None]] | list[float | None]


class InspectResponse(BaseModel):
    """``POST /api/inspect``'s answer: ``x``, ``y``, ``loss`` at steps 0..n; ``grad`` and
    ``update`` (the step taken) at steps 0..n-1, and each state entry after each step."""

    landscape: str
    params: dict
    name: str
    hparams: dict
    start: list[float]
    steps: int
    x: list[float | None]
    y: list[float | None]
    loss: list[float | None]
    grad: list[list[float | None]]
    update: list[list[float | None]]
    state: list[StateEntryModel]
    diverged: bool


class BasinResultModel(BaseModel):
    """One optimizer's basins: per start (row by row, y outer) the index into ``minima`` of
    the minimum its run ended in, -1 (ended near none: not settled) or -2 (diverged), and
    the share of starts of each class."""

    label: str
    name: str
    hparams: dict
    basin: list[int]
    shares: dict[str, float]


class BasinsResponse(BaseModel):
    """``POST /api/basins``'s answer: the start grid's centres ``xs`` and ``ys``, the minima
    classed by (with the colour of each class), and each optimizer's basins."""

    landscape: str
    params: dict
    grid: int
    steps: int
    radius: float
    xs: list[float]
    ys: list[float]
    #: ``{"name", "point", "color"}`` per minimum (basin code = its index)
    minima: list[dict]
    #: the colours of "not settled" (code -1) and "diverged" (code -2)
    colors: dict[str, str]
    results: list[BasinResultModel]
    elapsed_ms: float


class RaceResponse(BaseModel):
    """``POST /api/race``'s answer."""

    landscape: str
    params: dict
    start: list[float]
    steps: int
    noise: float
    seed: int
    tune: bool
    #: how tuning ranked the rates (empty when not tuning)
    tuned_by: str = ""
    #: whether a grid edge could be extended within the work limit (see :func:`work`)
    extend: bool = False
    tol: float
    stride: int
    step: list[int]
    results: list[RaceResultModel]
    elapsed_ms: float


class HyperparameterModel(BaseModel):
    """A hyperparameter a page shows: default, range, slider scale, help."""

    name: str
    default: object
    kind: str
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool | None = None
    high_open: bool | None = None
    ui_low: float | None = None
    ui_high: float | None = None


class OptimizerModel(BaseModel):
    """``GET /api/optimizers``: one registry name with its catalog row."""

    name: str
    cls: str
    alias_of: str | None
    preset: dict
    summary: str
    family: str
    year: int
    paper: str
    rule_latex: str
    rule_text: str
    tuning: str
    strengths: str
    weaknesses: str
    typical_use: str
    adaptive: bool
    momentum: bool
    memory_note: str
    wrapper: bool
    needs_closure: bool
    work_weight: float = Field(description="what one of its steps counts in the work limits "
                                         "(1: batched over members; 10: member by member; "
                                         "100: L-BFGS at its default max_iter, more with "
                                         "more inner iterations or a longer history_size; "
                                         "Muon more with more ns_steps; a wrapper's times "
                                         "its inner's)")
    color: str
    hyperparameters: list[HyperparameterModel]
    defaults: dict


class LandscapeModel(BaseModel):
    """``GET /api/landscapes``: one 2-D landscape."""

    name: str
    description: str
    domain: list[list[float]]
    minima: list[list[float]]
    min_value: float
    start: list[float]
    log_scale: bool
    challenges: list[str]
    params: dict
    #: the learning rate the page starts each optimizer at on this landscape
    #: (:mod:`optimlab.web.lrs`, the rule of :mod:`optimlab.landscapes.suggest`)
    lrs: dict[str, float]


class GridResponse(BaseModel):
    """``GET /api/landscapes/{name}/grid``: values on an n x n grid (rows follow y)."""

    name: str
    params: dict
    n: int
    description: str
    #: where a race with these parameters starts when it is given no start
    start: list[float]
    x: list[float]
    y: list[float]
    z: list[list[float | None]]
    color: list[list[float | None]]
    log: bool
    zmin: float
    offset: float
    color_title: str


class SweepModel(BaseModel):
    """``GET /api/sweeps``: one stored sweep."""

    id: int
    name: str | None
    task: str | None
    model: str | None
    created_at: str
    counts: dict[str, int]
    #: runs finished out of all, with the diverged, failed and unfinished ones noted, as
    #: ``optimlab runs`` says it: ``"12/48 (3 diverged, 36 to run)"``
    runs: str = ""
    optimizers: list[str]
    #: each optimizer with the hyperparameters the sweep fixed: ``"sgd (momentum=0.9)"``
    labels: list[str] = []
    #: why the sweep cannot be shown (a damaged row of the store), else null
    error: str | None = None


class SweepDetail(BaseModel):
    """``GET /api/sweeps/{id}``: summary rows (in rank order, as the command line's table
    lists them), curves and the text table; ``criterion`` says how each best lr is chosen
    (:data:`optimlab.bench.analysis.CRITERION`); a row's ``ci`` is the half-width of its
    mean's ``confidence`` interval over seeds (Student's t), null where there is none (one
    seed, or two alike)."""

    sweep: SweepModel
    #: the sweep in one line, as the command line's report heads it
    heading: str = ""
    config: dict
    metric: str
    higher_is_better: bool
    criterion: str
    #: the level of each summary row's ``ci`` (:data:`optimlab.bench.analysis.CONFIDENCE`)
    confidence: float = 0.95
    summary: list[dict]
    curves: dict
    summary_text: str
    #: the notes under the command line's table (:func:`optimlab.bench.report.summary_notes`):
    #: how each best lr is chosen, runs not ended, failures, shared ranks, best rates on the
    #: grid's edge, an advisor's answer
    notes: list[str] = []


class SliceModel(BaseModel):
    """``GET /api/slices``: one slice file (``error`` says why one cannot be shown)."""

    #: a hash of the file's path below its slices folder: it stays when slices are added
    id: int
    name: str
    #: when the file was written, ISO 8601 in UTC ("" when it cannot be told)
    modified: str
    task: str | None = None
    model: str | None = None
    optimizers: list[str] | None = None
    grid: list[int] | None = None
    error: str | None = None


class SliceDetail(BaseModel):
    """``GET /api/slices/{id}``: a slice (:meth:`optimlab.bench.slices.Slice.to_json`): the
    loss on a grid over a plane through the shared initialisation, each optimizer's path
    projected on it with its distance off the plane, the interpolation curves, and each
    solution's sharpness and test metric."""

    id: int
    name: str
    task: str
    model: str
    metric: str
    steps: int
    plane: str
    through: list[str]
    on: str
    xs: list[float]
    ys: list[float]
    loss: list[list[float | None]]
    paths: list[dict]
    interpolation: dict
    seconds: dict = {}
    #: the command line's warnings under its table (:meth:`~optimlab.bench.slices.Slice.notes`)
    notes: list[str] = []


class ErrorResponse(BaseModel):
    """A 4xx answer: ``message`` in words, ``detail`` field by field."""

    message: str
    detail: list[dict] | str


class LimitsModel(BaseModel):
    """``GET /api/limits``: every limit of the API, by name."""

    max_steps: int
    max_optimizers: int
    max_work: int
    tune_racers: int
    max_noise: float
    max_seed: int
    max_points: int
    grid_min: int
    grid_max: int
    grid_default: int
    max_label: int
    max_coord: float
    max_kappa: float
    max_starts: int
    max_fan: int
    max_fan_factor: float
    max_inspect_steps: int
    max_basin_grid: int
    max_basin_steps: int
    max_basin_work: int
    max_body: int
    max_seconds: float


# the request models follow optimlab.register/unregister in this process
_on_change(_built.cache_clear)
