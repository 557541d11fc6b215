r"""Loss landscapes of real networks: several optimizers' training paths on one shared plane
of a training-lab model's weight space, the 1-D interpolation between their solutions, and
the sharpness of each solution beside its test metric.

Every optimizer trains the same model from the same initial weights :math:`\theta_0` on the
same mini-batches (:func:`~optimlab.bench.trainer.train_sequential` with one seed), and its
weights are recorded along the way. A plane through :math:`\theta_0` spanned by two
directions :math:`B = [d_1, d_2]` is then chosen for all of them:

* ``plane="endpoints"`` (the default): through :math:`\theta_0` and the endpoints of two of
  the optimizers, :math:`d_1, d_2` orthonormal (Gram-Schmidt of the two displacements). Of
  all pairs, the one whose plane leaves the least of every path off it (the sum of squared
  residuals) is taken, so both endpoints lie exactly on the picture and the others as close
  as any such plane allows.
* ``plane="random"``: two random directions, filter-normalised as in Li et al. (2018):
  each filter (row of a weight matrix, output channel of a convolution) of each direction
  scaled to the norm of the same filter of the weights at the centre, biases and other 1-D
  parameters not moved. The paths of a real network lie almost entirely off such a plane,
  which the residuals below show.

A point :math:`\theta` on a path is drawn at its least-squares coordinates
:math:`c = (B^\top B)^{-1} B^\top (\theta - \theta_0)`; what the plane cannot show is its
*residual* :math:`\lVert \theta - \theta_0 - B c \rVert`, reported per path (at the end and
the largest on the way, also relative to the path's largest distance from
:math:`\theta_0`), so the picture does not lie by omission.

The loss on the grid is evaluated as one batched population (every grid point a member,
:func:`~optimlab.bench.trainer.population_scores`): a 41 x 41 slice of the MNIST-1D MLP
over 1000 examples is 1681 members (``python benchmarks/slice_speed.py``).

The 1-D interpolation (Goodfellow et al., 2015) is the loss along
:math:`(1-\alpha)\,\theta_a + \alpha\,\theta_b`, from :math:`\theta_0` to each solution and
between solutions, for :math:`\alpha` from -0.25 to 1.25.

Sharpness is the largest eigenvalue of the Hessian of the training loss at each solution,
by power iteration on Hessian-vector products (reverse-over-reverse: the gradient's graph is
built once and differentiated again against each vector), on a fixed subset of the training
set.
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from .._files import save_figure
from .._table import listed
from ..landscapes.race import check_entry
from ..optim.base import argument_error, check_callable, check_int, is_real
from ..optim.registry import rate_used, resolve
from .store.jsonio import is_json_number
from .tasks import Task
from .tasks import get as get_task
from .trainer import (
    Member,
    RunResult,
    TrainConfig,
    _init_model,
    check_task,
    eval_indices,
    one_at_a_time,
    population_scores,
    train_sequential,
)

__all__ = ["DEFAULT_OPTIMIZERS", "PLANES", "SlicePath", "Slice", "slice_landscape",
           "top_hessian_eigenvalue", "plot_slice", "plot_interpolation", "json_problem",
           "JSON_KEYS"]

#: the optimizers and settings of the default slice (the MNIST-1D MLP at batch 100)
DEFAULT_OPTIMIZERS: dict[str, dict] = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.02, "momentum": 0.9},
    "adam": {"lr": 0.003},
    "sam": {"lr": 0.1, "rho": 0.05},
}
PLANES = ("endpoints", "random")
#: examples the grid, the interpolation and the sharpness are measured on (a fixed subset)
EVAL_SIZE = 1000
ALPHAS = np.linspace(-0.25, 1.25, 31)


@dataclass
class SlicePath:
    """One optimizer's run on the slice: its settings, its path's coordinates on the plane
    and its residuals (distance off the plane) at each recorded step, and its solution's
    scores."""

    optimizer: str
    hparams: dict
    steps: list[int]
    coords: np.ndarray  # [T, 2]
    residual: np.ndarray  # [T]
    reach: float  # the path's largest distance from the initial weights
    train_loss: float
    test_loss: float
    test_metric: float
    sharpness: float | None = None
    diverged: bool = False
    lr: float | None = None  # the learning rate it trained with (its default if none given)

    @property
    def lr_text(self) -> str:
        """The learning rate as the table shows it: ``"0.05"`` (given), ``"0.1 (slice
        preset)"`` (:data:`DEFAULT_OPTIMIZERS`' rate, which the command line gives these
        optimizers where ``--lr`` does not), ``"1 (default)"`` (the class's)."""
        if self.lr is None:
            return "-"
        if "lr" not in self.hparams:
            return f"{self.lr:.3g} (default)"
        preset = DEFAULT_OPTIMIZERS.get(self.optimizer, {}).get("lr")
        return f"{self.lr:.3g}" + (" (slice preset)" if self.lr == preset else "")

    @property
    def end_residual(self) -> float:
        """The path's distance off the plane at its last recorded step."""
        return float(self.residual[-1])

    @property
    def max_residual(self) -> float:
        """The path's largest distance off the plane over its recorded steps (its finite
        ones: a run that blew up, up to where it did; NaN where none is finite)."""
        finite = self.residual[np.isfinite(self.residual)]
        return float(finite.max()) if finite.size else math.nan

    def relative(self, value: float) -> float:
        """``value`` as a fraction of the path's reach (0 where it never moved)."""
        return value / self.reach if self.reach > 0 else 0.0

    def off_plane(self, value: float, digits: int | None = 3) -> str:
        """A distance off the plane as the table and the legend write it, "0.123 (4%)" (the
        share of its reach alone with ``digits`` None), or "-" where it is not finite (a
        run that blew up)."""
        if not math.isfinite(value):
            return "-"
        share = f"{self.relative(value):.0%}"
        return share if digits is None else f"{value:.{digits}f} ({share})"


#: the name :class:`SlicePath` had before 2026-12-06, kept for code that imports it; not in
#: ``__all__``, where ``from optimlab.bench.slices import *`` hid ``pathlib.Path``
Path = SlicePath


@dataclass
class Slice:
    """A slice of a real network's loss landscape: the grid, the paths, the interpolation
    curves and the sharpness table (see the module's text)."""

    task: str
    model: str
    metric: str
    steps: int
    plane: str
    through: tuple[str, ...]  # the two optimizers whose endpoints span the plane (endpoints)
    xs: np.ndarray
    ys: np.ndarray
    loss: np.ndarray  # [len(ys), len(xs)]: the loss on the grid
    on: str  # which examples the grid's loss is over: "train" or "test"
    paths: list[SlicePath]
    interpolation: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The sharpness and residual table: headers and one row of text per optimizer (a
        diverged one marked so)."""
        headers = ["optimizer", "lr", "train loss", f"test {self.metric}", "top Hessian eig",
                   "off plane: end", "max (of reach)"]
        rows = []
        for p in self.paths:
            rows.append([p.optimizer + (" (diverged)" if p.diverged else ""), p.lr_text,
                         _score_text(p.train_loss), _score_text(p.test_metric),
                         "-" if p.sharpness is None else f"{p.sharpness:.2f}",
                         p.off_plane(p.end_residual), p.off_plane(p.max_residual)])
        return headers, rows

    def notes(self) -> list[str]:
        """Warnings about what the picture shows: a diverged optimizer, above all one whose
        endpoint spans the plane (the plane and the grid's extent are then set by weights
        that blew up)."""
        diverged = [p.optimizer for p in self.paths if p.diverged]
        spans = [name for name in self.through if name in diverged]
        notes = []
        if spans:
            notes.append(f"warning: the plane passes through the endpoint of {listed(spans)}, "
                         f"which diverged, so the picture is scaled to weights that blew up "
                         f"(give {'it' if len(spans) == 1 else 'them'} a lower learning rate "
                         f"or leave {'it' if len(spans) == 1 else 'them'} out)")
        rest = [name for name in diverged if name not in spans]
        if rest:
            notes.append(f"warning: {listed(rest)} diverged, so "
                         f"{'its row describes' if len(rest) == 1 else 'their rows describe'} "
                         f"weights that blew up")
        return notes

    def table(self) -> str:
        """The sharpness and residual table, as text, with :meth:`notes` under it."""
        headers, body = self.rows()
        rows = [headers] + body
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines + self.notes())

    def to_json(self) -> dict:
        """Everything, as plain JSON types."""
        return {"task": self.task, "model": self.model, "metric": self.metric,
                "steps": self.steps, "plane": self.plane, "through": list(self.through),
                "on": self.on, "xs": self.xs.tolist(), "ys": self.ys.tolist(),
                "loss": self.loss.tolist(), "seconds": self.seconds,
                "interpolation": {k: {kk: list(map(float, vv)) for kk, vv in v.items()}
                                  for k, v in self.interpolation.items()},
                "paths": [{"optimizer": p.optimizer, "hparams": p.hparams, "steps": p.steps,
                           "coords": p.coords.tolist(), "residual": p.residual.tolist(),
                           "reach": p.reach, "train_loss": p.train_loss,
                           "test_loss": p.test_loss, "test_metric": p.test_metric,
                           "sharpness": p.sharpness, "diverged": p.diverged, "lr": p.lr}
                          for p in self.paths]}

    @classmethod
    def from_json(cls, data: Mapping) -> Slice:
        """The slice :meth:`to_json` wrote, read back from JSON (a missing or null number
        is NaN); the playground rebuilds one to show its rates and warnings as the command
        line does.

        Raises:
            ValueError: ``data`` is not what :meth:`to_json` writes (:func:`json_problem`).
        """
        problem = json_problem(data)
        if problem:
            raise ValueError(f"not a slice: {problem}")

        def number(value) -> float:
            return math.nan if value is None else float(value)

        paths = [SlicePath(optimizer=p["optimizer"], hparams=p["hparams"], steps=list(p["steps"]),
                      coords=np.asarray(p["coords"], dtype=float),
                      residual=np.asarray(p["residual"], dtype=float),
                      reach=number(p.get("reach")), train_loss=number(p.get("train_loss")),
                      test_loss=number(p.get("test_loss")),
                      test_metric=number(p.get("test_metric")),
                      sharpness=p.get("sharpness"), diverged=bool(p.get("diverged", False)),
                      lr=None if p.get("lr") is None else float(p["lr"]))
                 for p in data["paths"]]
        return cls(task=data["task"], model=data["model"], metric=data["metric"],
                   steps=int(data["steps"]), plane=data["plane"], through=tuple(data["through"]),
                   xs=np.asarray(data["xs"], dtype=float), ys=np.asarray(data["ys"], dtype=float),
                   loss=np.asarray(data["loss"], dtype=float), on=data["on"], paths=paths,
                   interpolation={k: dict(v) for k, v in data.get("interpolation", {}).items()},
                   seconds=dict(data.get("seconds", {})))


#: The keys of a slice's JSON (:meth:`Slice.to_json`); ``seconds`` may be missing.
JSON_KEYS = ("task", "model", "metric", "steps", "plane", "through", "on", "xs", "ys", "loss",
             "paths", "interpolation")


def _numbers(value: Any, null: bool = True, empty: bool = True) -> bool:
    """Whether ``value`` is a list of numbers (null among them where ``null`` allows)."""
    return isinstance(value, list) and (empty or bool(value)) \
        and all(is_json_number(v, null) for v in value)


def json_problem(data: Any) -> str | None:
    """What makes ``data`` (a slice file's content) other than :meth:`Slice.to_json` wrote
    it: the keys it lacks, or the first field of a wrong type or shape; None for a slice."""
    missing = [k for k in JSON_KEYS if not isinstance(data, Mapping) or k not in data]
    if missing:
        return f"it lacks {', '.join(missing)}"
    problem = _field_problem(data)
    return None if problem is None else f"its {problem}"


def _field_problem(data: Mapping) -> str | None:
    for key in ("task", "model", "metric", "plane", "on"):
        if not isinstance(data[key], str):
            return f"{key} is not a text"
    if not is_json_number(data["steps"]) or not (isinstance(data["steps"], int)
                                                 or float(data["steps"]).is_integer()):
        return "steps is not a whole number"
    if not (isinstance(data["through"], list) and all(isinstance(t, str) for t in data["through"])):
        return "through is not a list of names"
    for key in ("xs", "ys"):
        if not _numbers(data[key], null=False, empty=False):
            return f"{key} is not a list of numbers"
    loss = data["loss"]
    if not (isinstance(loss, list) and len(loss) == len(data["ys"])
            and all(_numbers(row) and len(row) == len(data["xs"]) for row in loss)):
        return "loss is not a grid of numbers, len(ys) rows of len(xs)"
    if not isinstance(data["paths"], list):
        return "paths is not a list of paths"
    for i, p in enumerate(data["paths"]):
        where = f"paths[{i}]"
        if not isinstance(p, dict):
            return f"{where} is not an object"
        if not isinstance(p.get("optimizer"), str):
            return f"{where}.optimizer is not a name"
        if not isinstance(p.get("hparams"), dict):
            return f"{where}.hparams is not an object"
        if not _numbers(p.get("steps"), null=False):
            return f"{where}.steps is not a list of numbers"
        coords = p.get("coords")
        if not (isinstance(coords, list) and coords
                and all(_numbers(c) and len(c) == 2 for c in coords)):
            return f"{where}.coords is not a list of points [x, y]"
        if not _numbers(p.get("residual"), empty=False):
            return f"{where}.residual is not a list of numbers"
        for key in ("reach", "train_loss", "test_loss", "test_metric", "sharpness", "lr"):
            if not is_json_number(p.get(key), null=True):
                return f"{where}.{key} is not a number"
        if not isinstance(p.get("diverged", False), bool):
            return f"{where}.diverged is not true or false"
    interpolation = data["interpolation"]
    if not isinstance(interpolation, dict):
        return "interpolation is not an object"
    for name, curve in interpolation.items():
        if not (isinstance(curve, dict) and all(_numbers(v) for v in curve.values())
                and _numbers(curve.get("alpha")) and _numbers(curve.get("train_loss"))):
            return f"interpolation[{name!r}] is not curves of numbers (alpha, train_loss)"
    if not isinstance(data.get("seconds", {}), dict):
        return "seconds is not an object"
    return None


def _score_text(value: float) -> str:
    """A loss or metric for the table: four decimals, four digits once it has blown up."""
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"


def _lr_used(name: str, hparams: Mapping) -> float | None:
    """The learning rate ``name`` trains with given ``hparams`` as a float
    (:func:`~optimlab.optim.registry.rate_used`); None where it has none."""
    if "lr" in hparams:
        return float(hparams["lr"])
    try:
        lr = rate_used(name, **hparams)
    except (TypeError, ValueError, RuntimeError):  # training would say why
        lr = resolve(name).info.defaults.get("lr")
    return float(lr) if isinstance(lr, (int, float)) else None


# ----------------------------------------------------------------------------- weights


def _flat(params: Sequence[Tensor]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def _stack_weights(template: nn.Module, flat: Tensor) -> list[Tensor]:
    """``[K, P]`` flat weight vectors as the template's parameters, each ``[K, *shape]``."""
    out, i = [], 0
    for p in template.parameters():
        n = p.numel()
        out.append(flat[:, i:i + n].reshape(flat.shape[0], *p.shape))
        i += n
    return out


def _project(points: Tensor, origin: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares coordinates ``[T, 2]`` of ``points`` ``[T, P]`` on the plane through
    ``origin`` spanned by ``basis`` ``[P, 2]``, and each point's distance off it ``[T]``."""
    rel = (points - origin).double()
    b = basis.double()
    coords = torch.linalg.solve(b.T @ b, b.T @ rel.T).T
    residual = (rel - coords @ b.T).norm(dim=1)
    return coords, residual


def _finite(path: Tensor) -> bool:
    """Whether every recorded point of ``path`` is finite (a run that diverged to infinite
    or NaN weights is left out of the plane's choice and the grid's extent)."""
    return bool(torch.isfinite(path).all())


def _endpoint_plane(origin: Tensor, paths: dict[str, Tensor]) -> tuple[Tensor, tuple[str, str]]:
    """The orthonormal basis of the plane through ``origin`` and two endpoints that leaves
    the least of all paths off it, and the two optimizers. A path that diverged to
    non-finite weights is left out: it spans no plane, and its finite part (weights on their
    way to blowing up) does not choose one."""
    best = None
    blown = [name for name, path in paths.items() if not _finite(path)]
    kept = [name for name in paths if name not in blown]
    every = torch.cat([paths[name] for name in kept] or [origin[None]])
    for a, b in itertools.combinations(kept, 2):
        u = paths[a][-1] - origin
        v = paths[b][-1] - origin
        if u.norm() == 0:
            continue
        u = u / u.norm()
        v = v - (v @ u) * u
        # on one line through the origin (or the same point): what is left of v off u is
        # float32 rounding, about 1e-7 of v; 1e-4 of it is no plane either
        if v.norm() <= 1e-4 * float((paths[b][-1] - origin).norm()):
            continue
        basis = torch.stack([u, v / v.norm()], dim=1)
        _, residual = _project(every, origin, basis)
        score = float((residual ** 2).sum())
        if best is None or score < best[0]:
            best = (score, basis, (a, b))
    if best is None:
        why = (f"{listed(blown)} diverged to non-finite weights: give "
               f"{'it' if len(blown) == 1 else 'them'} a lower learning rate or leave "
               f"{'it' if len(blown) == 1 else 'them'} out" if blown else "did they move?")
        raise ValueError(f"no two optimizers' endpoints span a plane with the initial weights "
                         f"({why}); use plane='random'")
    return best[1], best[2]


def _random_plane(template: nn.Module, center: Tensor, seed: int) -> Tensor:
    """Two filter-normalised random directions (Li et al., 2018) at ``center``, ``[P, 2]``."""
    gen = torch.Generator().manual_seed(seed)
    weights = _stack_weights(template, center[None])
    columns = []
    for _ in range(2):
        parts = []
        for w in weights:
            w = w[0]
            if w.dim() <= 1:  # biases and other vectors stay put
                parts.append(torch.zeros_like(w).reshape(-1))
                continue
            d = torch.randn(w.shape, generator=gen, dtype=w.dtype)
            filters_w = w.reshape(w.shape[0], -1).norm(dim=1)
            filters_d = d.reshape(d.shape[0], -1).norm(dim=1).clamp_min(1e-12)
            d = d * (filters_w / filters_d).reshape(-1, *([1] * (w.dim() - 1)))
            parts.append(d.reshape(-1))
        columns.append(torch.cat(parts))
    return torch.stack(columns, dim=1)


# ----------------------------------------------------------------------------- scores


def _scores(task, template: nn.Module, flat: Tensor, x: Tensor, y: Tensor,
            chunk: int) -> tuple[Tensor, Tensor]:
    """Loss and metric of each row of ``flat`` ``[K, P]`` on ``(x, y)``, as a batched
    population of ``chunk`` members at a time."""
    losses, metrics = [], []
    for i in range(0, flat.shape[0], chunk):
        loss, metric = population_scores(task, template, _stack_weights(template,
                                                                          flat[i:i + chunk]),
                                          x, y)
        losses.append(loss)
        metrics.append(metric)
    return torch.cat(losses), torch.cat(metrics)


def top_hessian_eigenvalue(task, template: nn.Module, flat: Tensor, x: Tensor, y: Tensor,
                           iters: int = 50, tol: float = 1e-4, seed: int = 0) -> float:
    r"""The largest eigenvalue of the Hessian of ``task``'s loss on ``(x, y)`` at the flat
    weights ``flat``: power iteration on Hessian-vector products, stopped when the Rayleigh
    quotient changes by less than ``tol`` (relative) or after ``iters`` products. Power
    iteration finds the eigenvalue of largest magnitude, which at a trained network's
    solution is the top of the (positive) spectrum.

    Each product differentiates the gradient's graph (built once) again against the vector
    (reverse-over-reverse): forward-mode AD through the backward pass (``jvp`` of ``grad``)
    fails on losses whose backward writes into a zero tangent (``F.mse_loss`` against
    targets that have none: "ZeroTensors are immutable"), and a part of the gradient that
    does not depend on the weights (a loss linear in them) counts as a zero curvature."""
    check_int("iters", iters, 1)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise argument_error(is_real(tol))(f"tol must be a number >= 0, got {tol!r}")
    shapes = [(name, p.shape, p.numel()) for name, p in template.named_parameters()]
    buffers = dict(template.named_buffers())

    def loss(w: Tensor) -> Tensor:
        params, i = {}, 0
        for name, shape, n in shapes:
            params[name] = w[i:i + n].reshape(shape)
            i += n
        return task.loss_fn(functional_call(template, {**buffers, **params}, (x,)), y)

    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(flat.shape, generator=gen, dtype=flat.dtype)
    v = v / v.norm()
    w = flat.detach().clone().requires_grad_()
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss(w), w, create_graph=True)
    if grad.grad_fn is None:  # the gradient is constant: the Hessian is zero
        return 0.0

    def hessian_times(u: Tensor) -> Tensor:  # H u = (d grad / d w)^T u, H being symmetric
        (hu,) = torch.autograd.grad(grad, w, u, retain_graph=True, allow_unused=True,
                                    materialize_grads=True)
        return hu.detach()

    value = None
    for _ in range(iters):  # iters >= 1 (checked): the loop runs, value is a number
        hv = hessian_times(v)
        new = float(v @ hv)
        norm = hv.norm()
        if norm == 0 or not math.isfinite(new):
            return new
        v = hv / norm
        if value is not None and abs(new - value) <= tol * abs(new):
            return new
        value = new
    return value


# ----------------------------------------------------------------------------- the slice


def _train(task: Task, model: str, optimizers: Mapping[str, Mapping], steps: int,
           batch_size: int | None, seed: int, every: int,
           progress: Callable[[int], None] | None) -> tuple[dict, dict, list[RunResult]]:
    """Each optimizer from the same initial weights on the same batches; its recorded path
    ``[T, P]`` and steps."""
    config = TrainConfig(steps=steps, batch_size=batch_size, eval_every=steps, model=model,
                         eval_subset=None)
    members = [Member(name, dict(hp), seed) for name, hp in optimizers.items()]
    paths: dict[int, list[Tensor]] = {i: [] for i in range(len(members))}
    recorded: dict[int, list[int]] = {i: [] for i in range(len(members))}

    def observe(index: int, step: int, params: list[Tensor]) -> None:
        if step % every == 0 or step == steps:
            paths[index].append(_flat(params).clone())
            recorded[index].append(step)

    results = train_sequential(task, config, members, progress=progress, observe=observe)
    return ({m.optimizer: torch.stack(paths[i]) for i, m in enumerate(members)},
            {m.optimizer: recorded[i] for i, m in enumerate(members)}, results)


@one_at_a_time
def slice_landscape(task: str | Task = "mnist1d", model: str | None = "mlp",
                    optimizers: Mapping[str, Mapping] | None = None, steps: int = 1000,
                    batch_size: int | None = 100, seed: int = 0, grid: int = 41,
                    margin: float = 0.25, plane: str = "endpoints", on: str = "train",
                    eval_size: int | None = EVAL_SIZE, points: int = 50,
                    sharpness: bool = True, chunk: int = 256, data_dir=None,
                    progress: Callable[[int], None] | None = None) -> Slice:
    """Train ``optimizers`` (registry name -> hyperparameters; default
    :data:`DEFAULT_OPTIMIZERS`) on ``task``'s ``model`` from one initialisation, and slice
    the loss landscape through their paths (see the module's text).

    Args:
        steps, batch_size, seed: the training every optimizer gets (the same batches).
        grid: points per axis of the grid (``grid x grid`` evaluations).
        margin: how far the grid reaches beyond the paths' extent, as a fraction of it.
        plane: ``"endpoints"`` or ``"random"`` (:data:`PLANES`).
        on: the grid's loss over the ``"train"`` or the ``"test"`` examples.
        eval_size: how many of them (a fixed subset; None: all); the sharpness uses as
            many training examples.
        points: about how many points of each path are recorded.
        sharpness: measure each solution's top Hessian eigenvalue.
        chunk: grid points evaluated together (the population's size).

    Raises:
        ValueError: an unknown optimizer, plane or set, an optimizer for sparse gradients
            only (SparseAdam), a hyperparameter the optimizer does not take (naming the
            optimizer and the closest name) or a value it refuses, a grid under 2 points,
            ``steps``, ``chunk`` or ``eval_size`` under 1, a negative ``margin``, a model the
            task lacks, or no plane through the endpoints (nothing moved, or too few
            endpoints are finite: a run that diverged to non-finite weights spans none).
        TypeError: ``optimizers`` that are not a dict of dicts, a ``margin`` that is not a
            number, a ``task`` that is neither a name nor a task, a ``progress`` that cannot
            be called.

    Every argument is checked before the task is loaded or anything trains.
    """
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    if on not in ("train", "test"):
        raise ValueError(f"on must be 'train' or 'test', got {on!r}")
    check_int("grid", grid, 2, 401)
    check_int("steps", steps, 1)
    check_int("chunk", chunk, 1)
    check_int("points", points, 0)
    if eval_size is not None:
        check_int("eval_size", eval_size, 1)
    grid, steps = int(grid), int(steps)  # NumPy's as Python's: the slice is written as JSON
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(f"margin must be a finite number >= 0, got {type(margin).__name__} "
                        f"{margin!r}")
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    check_callable("progress", progress, "called with 1 after each step")
    if optimizers is None:
        optimizers = DEFAULT_OPTIMIZERS
    if not isinstance(optimizers, Mapping):
        raise TypeError(f"optimizers must be a dict of registry name -> hyperparameters, "
                        f"e.g. {{'sgd': {{'lr': 0.1}}, 'adam': {{'lr': 0.003}}}}, got "
                        f"{type(optimizers).__name__} {optimizers!r}")
    optimizers = dict(optimizers)
    if len(optimizers) < (2 if plane == "endpoints" else 1):
        raise ValueError("the endpoints plane needs at least two optimizers")
    for name, hp in optimizers.items():
        if not isinstance(hp, Mapping):
            raise TypeError(f"slice optimizer {name!r}: hyperparameters must be a dict, got "
                            f"{type(hp).__name__} {hp!r}")
        if resolve(name).capabilities.sparse_only:
            raise ValueError(f"optimizer {name!r} takes sparse gradients only "
                             f"(nn.Embedding(sparse=True)) and a slice trains with dense ones")
        # as a race checks its labels: a misspelt key names the optimizer and the closest
        # hyperparameter, a value the optimizer refuses is refused before anything trains
        check_entry(name, {**hp, "name": name}, where="slice optimizer")
    if isinstance(task, str):
        task = get_task(task, data_dir=data_dir)
    else:
        check_task(task)
    model = model or task.default_model
    if model not in task.models:
        raise ValueError(f"task {task.name} has no model {model!r} "
                         f"(models: {', '.join(task.models)})")

    t0 = time.perf_counter()
    paths, recorded, results = _train(task, model, optimizers, steps, batch_size, seed,
                                      max(1, steps // max(1, points)), progress)
    seconds = {"train": time.perf_counter() - t0}
    template = _init_model(task, model, seed)
    origin = next(iter(paths.values()))[0]
    if plane == "endpoints":
        basis, through = _endpoint_plane(origin, paths)
    else:
        basis, through = _random_plane(template, origin, seed), ()

    projected = {name: _project(path, origin, basis) for name, path in paths.items()}
    # the grid spans the paths that stayed finite (every path's finite points if none did)
    coords = torch.cat([c for name, (c, _) in projected.items() if _finite(paths[name])]
                       or [c[torch.isfinite(c).all(1)] for c, _ in projected.values()])
    lo, hi = coords.min(0).values, coords.max(0).values
    pad = (hi - lo).clamp_min(1e-3) * margin
    xs = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), grid, dtype=torch.float64)
    ys = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), grid, dtype=torch.float64)

    x_set, y_set = (task.x_train, task.y_train) if on == "train" else (task.x_test, task.y_test)
    index = eval_indices(len(x_set), eval_size)
    if index is not None:
        x_set, y_set = x_set[index], y_set[index]
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")  # [len(ys), len(xs)]
    offsets = (torch.stack([gx.reshape(-1), gy.reshape(-1)], 1) @ basis.double().T)
    t0 = time.perf_counter()
    loss, _ = _scores(task, template, (origin.double() + offsets).to(origin.dtype), x_set,
                      y_set, chunk)
    seconds["grid"] = time.perf_counter() - t0
    loss_grid = loss.reshape(grid, grid).double().numpy()

    # the 1-D interpolation: from the initial weights to each solution, and between them
    t0 = time.perf_counter()
    ends = {name: path[-1] for name, path in paths.items()}
    pairs = [("init", name) for name in ends] + list(itertools.combinations(ends, 2))
    alphas = torch.as_tensor(ALPHAS, dtype=torch.float64)
    train_sub = eval_indices(len(task.x_train), eval_size)
    xtr, ytr = ((task.x_train, task.y_train) if train_sub is None
                else (task.x_train[train_sub], task.y_train[train_sub]))
    interpolation = {}
    for a, b in pairs:
        start = origin if a == "init" else ends[a]
        line = ((1 - alphas)[:, None] * start.double() + alphas[:, None] * ends[b].double()
                ).to(origin.dtype)
        tr, _ = _scores(task, template, line, xtr, ytr, chunk)
        te, metric = _scores(task, template, line, task.x_test, task.y_test, chunk)
        interpolation[f"{a} -> {b}"] = {"alpha": ALPHAS, "train_loss": tr.tolist(),
                                        "test_loss": te.tolist(), "test_metric": metric.tolist()}
    seconds["interpolation"] = time.perf_counter() - t0

    out = []
    t0 = time.perf_counter()
    for (name, path), result in zip(paths.items(), results):
        c, r = projected[name]
        distance = (path - origin).double().norm(dim=1)
        reach = float(distance[torch.isfinite(distance)].max())  # before a divergence
        sharp = None
        if sharpness and not result.diverged:
            sharp = top_hessian_eigenvalue(task, template, path[-1], xtr, ytr, seed=seed)
        out.append(SlicePath(name, dict(optimizers[name]), recorded[name], c.numpy(), r.numpy(),
                        reach, result.train_loss[-1], result.test_loss[-1],
                        result.test_metric[-1], sharp, result.diverged,
                        _lr_used(name, optimizers[name])))
    seconds["sharpness"] = time.perf_counter() - t0
    return Slice(task.name, model, task.metric, steps, plane, tuple(through), xs.numpy(),
                 ys.numpy(), loss_grid, on, out, interpolation, seconds)


# ----------------------------------------------------------------------------- pictures


def plot_slice(result: Slice, path=None, title: str | None = None):
    """The contours of the slice with every optimizer's path (its colour from the palette),
    the residuals in the legend; saved to ``path`` (PNG) and closed when a path is given.
    A diverged path is drawn up to its last finite point and marked so; where no loss on the
    grid is finite, the paths are drawn without contours. Returns the figure."""
    from ..landscapes.plots import _pyplot

    plt = _pyplot()  # Agg only where no backend is chosen: a notebook's inline one stays

    from ..optim.palette import color

    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    loss = np.log10(np.clip(result.loss, 1e-12, None))
    finite = np.isfinite(loss)
    levels = (np.linspace(np.nanmin(loss[finite]), np.nanpercentile(loss[finite], 98), 30)
              if finite.any() else None)
    if levels is not None and levels[0] < levels[-1]:
        filled = ax.contourf(result.xs, result.ys, np.where(finite, loss, levels[-1]),
                             levels=levels, cmap="viridis", extend="max")
        ax.contour(result.xs, result.ys, np.where(finite, loss, levels[-1]), levels=levels[::3],
                   colors="white", linewidths=0.4, alpha=0.5)
        fig.colorbar(filled, ax=ax, label=f"log10 {result.on} loss")
    else:
        ax.text(0.5, 0.02, f"no contours: the {result.on} loss on the grid is "
                + ("not finite" if levels is None else "one value"), transform=ax.transAxes,
                ha="center", fontsize=8)
    # paths that nearly coincide (SGD's and SAM's at one rate) would hide one another: each
    # path is drawn thinner than the one before, on top of it, and the ends above every line
    count = len(result.paths)
    for i, p in enumerate(result.paths):
        label = (f"{p.optimizer}{' (diverged)' if p.diverged else ''}: off plane "
                 f"{p.off_plane(p.max_residual, None)} max, {p.off_plane(p.end_residual, None)} at end")
        xy = p.coords[np.isfinite(p.coords).all(1)]  # a diverged path up to where it blew up
        ax.plot(xy[:, 0], xy[:, 1], "-", color=color(p.optimizer),
                lw=1.5 + 1.5 * (count - 1 - i), label=label, zorder=3 + i)
        if len(xy):
            ax.plot(xy[-1, 0], xy[-1, 1], "o", color=color(p.optimizer), ms=7,
                    mec="black", zorder=3 + count + i)
    ax.plot(0, 0, "k*", ms=12, label="shared initialisation")
    # the grid's extent (a path that blew up would stretch the axes far beyond it)
    ax.set_xlim(result.xs[0], result.xs[-1])
    ax.set_ylim(result.ys[0], result.ys[-1])
    plane = (f"plane through the initialisation and the {' and '.join(result.through)} "
             f"endpoints" if result.plane == "endpoints" else
             "filter-normalised random plane (Li et al. 2018)")
    ax.set_title(title or f"{result.task} {result.model}: {plane}", fontsize=10)
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    ax.legend(fontsize=7, loc="best", framealpha=0.85)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=110)  # whole or not at all: a failed save keeps the old file
        plt.close(fig)
    return fig


def plot_interpolation(result: Slice, path=None):
    """The loss along the straight lines from the initialisation to each solution (in that
    optimizer's colour) and between solutions (greys with a marker each,
    :func:`~optimlab.optim.palette.pair_styles`: a line between two optimizers is neither's),
    train solid, test dashed; saved to ``path`` and closed when a path is given. Returns the
    figure."""
    from ..landscapes.plots import _pyplot

    plt = _pyplot()  # Agg only where no backend is chosen: a notebook's inline one stays

    from ..optim.palette import color, pair_styles

    from_init = {k: v for k, v in result.interpolation.items() if k.startswith("init")}
    between = {k: v for k, v in result.interpolation.items() if not k.startswith("init")}
    # a line between two solutions is no one optimizer's: greys with a marker each
    pairs = pair_styles(between)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, curves, title in ((axes[0], from_init, "from the initialisation (alpha 0) to each "
                               "solution (alpha 1)"),
                              (axes[1], between, "between two solutions")):
        for name, c in curves.items():
            end = name.split(" -> ")[1]
            col, marker = (color(end), None) if name.startswith("init") else pairs[name]
            every = max(1, len(c["alpha"]) // 8)
            ax.plot(c["alpha"], c["train_loss"], "-", color=col, marker=marker, ms=5,
                    markevery=every, label=f"{name} (train)")
            ax.plot(c["alpha"], c["test_loss"], "--", color=col, marker=marker, ms=4,
                    markevery=every, mfc="none", alpha=0.7)
        ax.axvline(0, color="grey", lw=0.5)
        ax.axvline(1, color="grey", lw=0.5)
        ax.set_yscale("log")
        ax.set_xlabel("alpha")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("loss (solid: train, dashed: test)")
    fig.suptitle(f"{result.task} {result.model}: linear interpolation (Goodfellow et al. 2015)",
                 fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=110)
        plt.close(fig)
    return fig
