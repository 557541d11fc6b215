"""The playground API's limits and its request and response models (pydantic).

Every limit is a module constant, enforced on each request and listed by
``GET /api/limits``; a request outside them gets HTTP 422 with a message naming the field
and the reason (:func:`optimlab.web.server.create_app`).

=====================  ==============================================================
limit                  value
=====================  ==============================================================
steps                  1 .. :data:`MAX_STEPS` (10000)
optimizers per race    1 .. :data:`MAX_OPTIMIZERS` (20)
work per race          steps x optimizers <= :data:`MAX_WORK` (200000); when tuning, an
                       optimizer whose capability record batches members one by one
                       (``batching="member"``) counts once per learning rate of the grid
noise                  0 .. :data:`MAX_NOISE` (std of the Gaussian gradient noise)
seed                   0 .. 2**31 - 1
start                  two finite numbers inside the landscape's domain
hyperparameters        accepted by the optimizer itself, and inside
                       :data:`optimlab.web.hparams.RANGES` (e.g. 0 < lr <= 10)
contour grid           :data:`GRID_MIN` .. :data:`GRID_MAX` points per axis
=====================  ==============================================================

Paths and losses come back with at most :data:`MAX_POINTS` points per optimizer (every
``stride``-th step, the last step always included); the metrics use every step.
"""

from __future__ import annotations

from typing import Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

__all__ = ["MAX_STEPS", "MAX_OPTIMIZERS", "MAX_WORK", "MAX_NOISE", "MAX_SEED", "MAX_POINTS",
           "GRID_MIN", "GRID_MAX", "GRID_DEFAULT", "MAX_LABEL", "limits",
           "OptimizerSpec", "RaceRequest", "RaceMetricsModel", "RaceResultModel",
           "RaceResponse", "HyperparameterModel", "OptimizerModel", "LandscapeModel",
           "GridResponse", "SweepModel", "SweepDetail", "ErrorResponse"]

#: Most steps a race may take.
MAX_STEPS = 10_000
#: Most optimizers in one race.
MAX_OPTIMIZERS = 20
#: Most optimizer-steps in one race (see the module docstring).
MAX_WORK = 200_000
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


def limits() -> dict:
    """Every limit, by name (``GET /api/limits``)."""
    return {"max_steps": MAX_STEPS, "max_optimizers": MAX_OPTIMIZERS, "max_work": MAX_WORK,
            "max_noise": MAX_NOISE, "max_seed": MAX_SEED, "max_points": MAX_POINTS,
            "grid_min": GRID_MIN, "grid_max": GRID_MAX, "grid_default": GRID_DEFAULT,
            "max_label": MAX_LABEL}


_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

HyperparameterValue = Union[StrictBool, StrictInt, StrictFloat, StrictStr,
                            list[Union[StrictInt, StrictFloat, None]], None]


class OptimizerSpec(BaseModel):
    """One racer: a registry name, its hyperparameters, and an optional label."""

    model_config = _STRICT

    name: str = Field(max_length=40, description="registry name, e.g. adam or momentum")
    label: str | None = Field(None, min_length=1, max_length=MAX_LABEL,
                              description="legend label (default: the name)")
    hparams: dict[str, HyperparameterValue] = Field(
        default_factory=dict, max_length=16,
        description="hyperparameters, e.g. {\"lr\": 0.05, \"betas\": [0.9, 0.999]}; the "
                    "rest take the optimizer's defaults")


class RaceRequest(BaseModel):
    """``POST /api/race``: optimizers from one start on one 2-D landscape."""

    model_config = _STRICT

    landscape: str = Field(max_length=40, description="a 2-D landscape (GET /api/landscapes)")
    params: dict[str, StrictInt | StrictFloat] = Field(
        default_factory=dict, max_length=4, description="landscape parameters, e.g. kappa")
    start: list[StrictInt | StrictFloat] | None = Field(
        None, description="start point [x, y] inside the domain (default: the landscape's)")
    optimizers: list[OptimizerSpec] = Field(min_length=1, max_length=MAX_OPTIMIZERS)
    steps: StrictInt = Field(500, ge=1, le=MAX_STEPS)
    noise: StrictInt | StrictFloat = Field(0.0, ge=0, le=MAX_NOISE,
                                           description="std of Gaussian gradient noise")
    seed: StrictInt = Field(0, ge=0, le=MAX_SEED, description="seed of the noise")
    tune: StrictBool = Field(False, description="pick each lr from a log grid first")
    tol: StrictInt | StrictFloat = Field(1e-3, gt=0, le=1e6,
                                         description="tolerance of steps to tolerance")


class RaceMetricsModel(BaseModel):
    """One racer's result; non-finite numbers come back as null."""

    final_loss: float | None
    gap: float | None
    distance: float | None
    steps_to_tol: int | None
    diverged: bool


class RaceResultModel(BaseModel):
    """One racer: what it used, its path and losses, its metrics."""

    label: str
    name: str
    hparams: dict
    x: list[float | None]
    y: list[float | None]
    loss: list[float | None]
    metrics: RaceMetricsModel
    tuning: list[dict] | None = None


class RaceResponse(BaseModel):
    """``POST /api/race``'s answer."""

    landscape: str
    params: dict
    start: list[float]
    steps: int
    noise: float
    seed: int
    tune: bool
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


class GridResponse(BaseModel):
    """``GET /api/landscapes/{name}/grid``: values on an n x n grid (rows follow y)."""

    name: str
    params: dict
    n: int
    description: str
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
    optimizers: list[str]


class SweepDetail(BaseModel):
    """``GET /api/sweeps/{id}``: summary rows, curves and the text table."""

    sweep: SweepModel
    config: dict
    metric: str
    higher_is_better: bool
    summary: list[dict]
    curves: dict
    summary_text: str


class ErrorResponse(BaseModel):
    """A 4xx answer: ``message`` in words, ``detail`` field by field."""

    message: str
    detail: list[dict] | str
