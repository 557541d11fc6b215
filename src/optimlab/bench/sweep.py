"""Sweeps: optimizers x learning rates x seeds on one task, stored run by run.

``run_sweep(spec, store)`` opens (or finds again) the sweep in the :class:`RunStore`, adds
one run per member, and trains the runs that are not finished yet, one optimizer at a
time: all of an optimizer's pending members as one batched population (or one by one with
``engine="sequential"``). Each run's curves, status and summary are committed when its
group ends, so a sweep killed at any moment keeps every finished run, and running the same
spec again (resume) trains only the rest. A sweep stopped by Ctrl-C (``KeyboardInterrupt``)
or by an error outside training puts the runs it started and did not end back to
``pending`` (:meth:`~.store.RunStore.reset_runs`) before the exception goes on: only a killed
process leaves runs ``running``. One process at a time trains a sweep: a second
``run_sweep`` of the same sweep meanwhile raises ``StoreError`` up front.

Each run's summary holds the way to the target in steps, gradient evaluations and seconds
of the optimizer's calibrated step cost (:mod:`optimlab.bench.cost`: the figure profiles
and rankings use), beside the wall time (information: it depends on the machine's load),
and its tuning score (:func:`~optimlab.bench.analysis.tail_score`). The gradient
evaluations are steps x the calibrated count per step (``gradients_per_step``: the closure
calls of exactly the steps the calibration timed), not a count of the run's own calls: the
trainers do not count them, and on a Ray cluster they run elsewhere.

One sweep keeps one calibration: its runs are stored with the step cost each optimizer had
(``seconds_per_step``, ``gradients_per_step``, ``cost_spread``, ``cost_noisy``), and a resumed
or extended sweep gives the runs it trains the cost its ended runs of that optimizer hold
(an optimizer none of whose runs ended takes the cached one, or is measured). With
``recalibrate=True`` every optimizer of the sweep is measured again, together, and the
cache refreshed; an ended run's summary is never rewritten (the store keeps ended runs as
they ended), so where ended runs hold costs, the sweep keeps them and a
:class:`CalibrationWarning` says so (the new costs serve the sweeps trained from then on).

With the automatic grid (``lrs=None``), or a given one with ``extend=True``, a best rate on
the grid's edge extends the grid: up to :data:`MAX_EXTENSIONS` times, two more rates beyond
that edge at the grid's own spacing there, trained and stored like the rest, until the best
rate is inside the grid.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .._table import count, one_line
from ..optim.base import ArgumentTypeError, argument_error, check_callable, check_int, is_real
from ..optim.capabilities import DENSE_HERE, SPARSE_ONLY
from ..optim.registry import resolve
from .analysis import finite_number, repeated_rates, summarize, tail_score
from .cost import StepCost, step_costs
from .executors import Call, GroupsLost, LocalExecutor, check_executor
from .store import TERMINAL, RunStore, check_store
from .tasks import GIVEN_WEIGHTS, catalog_name
from .tasks import get as get_task
from .tasks import names as task_names
from .trainer import (
    Member,
    RunResult,
    TrainConfig,
    check_task,
    full_batch,
    gradient_layouts,
    new_model,
    one_at_a_time,
    population_refusal,
    train_population,
    train_sequential,
)

__all__ = ["SweepSpec", "auto_lrs", "run_sweep", "run_records", "train_members", "ENGINES",
           "MAX_EXTENSIONS", "LR_BOUNDS", "data_digest", "model_digest", "CalibrationWarning",
           "GIVEN_WEIGHTS", "EngineWarning", "default_eval_every", "rates_past_edge", "trained_by",
           "check_sparse_only"]

#: ``"auto"``: the population engine, and for a group it cannot batch (BatchNorm, a module
#: ``vmap`` rejects) the sequential engine
ENGINES = ("population", "sequential", "auto")
#: how many times an automatic grid is extended past an edge (two rates each time)
MAX_EXTENSIONS = 3
#: every extension of a grid (an automatic one's, or a given one's with ``extend``) stays
#: within these rates
LR_BOUNDS = (1e-7, 100.0)


def rates_past_edge(lrs: Iterable[float], edge: str) -> list[float]:
    """The rates an extension adds past the ``edge`` (``"low"`` or ``"high"``) of the tried
    rates ``lrs`` (at least two): two more at the grid's own spacing there (a given grid need
    not be even), those within :data:`LR_BOUNDS`; none where that edge cannot be extended.

    A rate is free of the drift of the arithmetic that made it
    (:func:`~.analysis.tidy_rate`: ``1.0``, not ``1.0000000000000002``), and one within a
    relative 1e-9 of a bound is that bound: rates that drifted a hair off a decade
    (``10.00000000000001``) still extend to the bound, 100.

    >>> rates_past_edge([1e-3, 1e-2, 1e-1], "high")
    [1.0, 10.0]
    >>> rates_past_edge([1e-7, 1e-6], "low")
    []
    >>> rates_past_edge([1.000000000000001, 10.00000000000001], "high")
    [100.0]
    """
    from .analysis import tidy_rate  # here: this function's own import

    lrs = sorted(lrs)
    at, step = (lrs[0], lrs[0] / lrs[1]) if edge == "low" else (lrs[-1], lrs[-1] / lrs[-2])
    rates = []
    for lr in (tidy_rate(at * step), tidy_rate(at * step ** 2)):
        lr = next((bound for bound in LR_BOUNDS if math.isclose(lr, bound, rel_tol=1e-9)), lr)
        if LR_BOUNDS[0] <= lr <= LR_BOUNDS[1]:
            rates.append(lr)
    return rates


def default_eval_every(steps: int) -> int:
    """The evaluation cadence ``optimlab bench`` gives a sweep of ``steps`` steps without
    ``--eval-every``: about 20 evaluations, every step for runs under 40 steps."""
    return max(1, steps // 20)


class CalibrationWarning(UserWarning):
    """``recalibrate=True`` measured the step costs again, but ended runs of the sweep keep
    the costs they were stored with (the message names them)."""


class EngineWarning(UserWarning):
    """A batched group raised, and its members were trained again one at a time (the
    sequential engine), so that only those that raise fail: the message names the
    optimizers whose runs came from that engine."""


def auto_lrs(optimizer: str, count: int = 7) -> list[float]:
    """A log grid around the optimizer's default learning rate: default / 10^1.5 (about / 32)
    to default * 10."""
    check_int("count", count, 1)
    default = resolve(optimizer).info.defaults.get("lr") or 1e-3
    return [float(v) for v in default * np.logspace(-1.5, 1.0, count)]


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: the task, the training configuration and the grid of members.

    ``lrs`` None gives each optimizer :func:`auto_lrs`. ``extend`` says whether a best rate
    on the grid's edge extends the grid past it (see the module's docstring); None (the
    default) extends an automatic grid and only flags the edge of a given one. ``hparams``
    holds extra fixed hyperparameters per optimizer (e.g. ``{"sgd": {"momentum": 0.9}}``).
    ``target`` is the test metric to reach for time-to-target (accuracy to reach, or
    loss/bits to go below).
    """

    task: str
    # any sequences (a list, a NumPy array of rates): kept as tuples
    optimizers: Sequence[str]
    config: TrainConfig = field(default_factory=TrainConfig)
    lrs: Sequence[float] | None = None
    seeds: int = 3
    hparams: dict = field(default_factory=dict)
    target: float | None = None
    extend: bool | None = None

    def __post_init__(self) -> None:
        """Check the spec as the command line checks its options, before anything trains.

        ``task`` must be a non-empty string; whether it names a task is known only when it
        is loaded (:func:`run_sweep`, before anything trains): a ``module:function`` is
        imported then, and a spec may name a task you load yourself and pass to
        :func:`run_sweep` as ``task``."""
        if not isinstance(self.task, str):
            raise TypeError(f"task must be a task name (a str such as 'mnist1d' or "
                            f"'package.module:function'), got {type(self.task).__name__} "
                            f"{self.task!r}")
        if not self.task.strip():
            raise ValueError(f"task must name a task (one of {', '.join(task_names())}, or "
                             f"'package.module:function'), got {self.task!r}")
        if self.extend is not None and not isinstance(self.extend, bool):
            raise ArgumentTypeError(f"extend must be True, False or None, got {self.extend!r}")
        given = tuple(self.optimizers) if isinstance(self.optimizers, Iterable) \
            and not isinstance(self.optimizers, str) else None  # a generator is read once
        if given is None or not all(isinstance(name, str) for name in given):
            raise ArgumentTypeError(
                f"optimizers must be a sequence of registry names such as "
                f"('adam', 'sgd'), got {self.optimizers!r}")
        # registry names as the registry spells them ("Adam " is "adam"): one sweep, one
        # group, and the same optimizer in two sweeps' profiles
        names = tuple(resolve(name).name for name in given)
        if not names:
            raise ValueError("a sweep needs at least one optimizer")
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"optimizers names {', '.join(twice)} more than once")
        object.__setattr__(self, "optimizers", names)
        if isinstance(self.hparams, dict):
            spelled = [_registry_name(k) for k in self.hparams]
            if len(set(spelled)) == len(spelled):
                object.__setattr__(self, "hparams", dict(zip(spelled, self.hparams.values())))
        if not isinstance(self.config, TrainConfig):
            raise ArgumentTypeError(f"config must be a TrainConfig, got {type(self.config).__name__}")
        if self.lrs is not None:
            # any sequence of numbers (a NumPy array, a list), kept as a tuple of floats:
            # lrs=(1,) and (1.0,) are one sweep
            lrs = None if isinstance(self.lrs, str) or not isinstance(self.lrs, Iterable) \
                else list(self.lrs)
            if not lrs or not all(finite_number(lr) and lr > 0 for lr in lrs):
                right_kind = lrs is not None and all(is_real(lr) for lr in lrs)
                raise argument_error(right_kind)(
                    f"learning rates must be finite numbers > 0 and the grid "
                    f"non-empty, got {self.lrs!r}")
            repeated = repeated_rates(lrs)
            if repeated:  # one run each would train, and the grid's size and key would lie
                raise ValueError(f"SweepSpec: lrs must differ, got {', '.join(map(repr, repeated))} "
                                 f"more than once in {self.lrs!r}")
            object.__setattr__(self, "lrs", tuple(float(lr) for lr in lrs))
        check_int("seeds", self.seeds, 1)
        object.__setattr__(self, "seeds", int(self.seeds))  # NumPy's as Python's (stored as JSON)
        if self.target is not None and not finite_number(self.target):
            raise argument_error(is_real(self.target))(
                f"target must be a finite number or None, got {self.target!r}")
        self._check_hparams()

    def _check_hparams(self) -> None:
        """Each optimizer's fixed hyperparameters: for an optimizer of the sweep, and taken by
        it (built once on a throwaway parameter, as ``optimlab bench --hp`` checks them)."""
        from ..optim.registry import probe

        if not isinstance(self.hparams, dict):
            raise ArgumentTypeError(
                f"hparams must be a dict (optimizer -> {{name: value}}), got "
                f"{self.hparams!r}")
        for name, hp in self.hparams.items():
            if name not in self.optimizers:
                raise ValueError(f"hparams names {name!r}, which is not among the optimizers "
                                 f"({', '.join(self.optimizers)})")
            if not isinstance(hp, dict):
                raise ArgumentTypeError(f"hparams[{name!r}] must be a dict, got {hp!r}")
            if "lr" in hp:
                raise ValueError(f"hparams[{name!r}] sets lr, which the sweep's lrs set")
            try:
                probe(name, **hp)
            except (TypeError, ValueError) as err:  # a wrong kind stays a TypeError too
                kind = ArgumentTypeError if isinstance(err, ArgumentTypeError) else ValueError
                raise kind(f"hparams[{name!r}]: {' '.join(str(err).split())}") from None

    @property
    def extends(self) -> bool:
        """Whether a best rate on the grid's edge extends the grid (``extend``, or by
        default whether the grid is the automatic one)."""
        return self.lrs is None if self.extend is None else self.extend

    def members(self) -> list[Member]:
        """Every (optimizer, lr, seed) of the grid, in a fixed order."""
        out = []
        for name in self.optimizers:
            for lr in self.lrs or auto_lrs(name):
                for seed in range(self.seeds):
                    out.append(Member(name, {**self.hparams.get(name, {}), "lr": float(lr)},
                                      seed))
        return out

    def stored_config(self, task) -> dict:
        """What is stored with the sweep (and identifies it): :meth:`to_config` plus the
        task's metric and its direction, so reports never have to guess them (a bring-your-
        own task's name tells nothing), a digest of its data (:func:`data_digest`) and of
        its model's architecture (:func:`model_digest`), so the same command on other data
        (another ``--data-dir``, an edited task module) or with another network under the
        same name is a sweep of its own rather than the stored results of the first.

        A ``batch_size`` of at least the task's training examples is stored as None (the
        full batch), which is what trains (:func:`~optimlab.bench.trainer.batch_stream`):
        batches of 100 and of 1000 on 90 examples are one sweep, reported as full-batch.
        Likewise ``train``'s ``model`` None (the task's default) is stored as the default's
        name, the model that trains, which the store keys the sweep by
        (:func:`~.store.jsonio.sweep_keys`): leaving the model out and naming the default
        are one sweep. The top-level ``model`` keeps the name as given (None for the
        default), which listings and reports show, and with it the store still finds a
        sweep stored before (under the key of its configuration as given)."""
        config = self.to_config()
        batch = self.config.batch_size
        if full_batch(batch, len(task.x_train)):
            config["train"] = {**config["train"], "batch_size": None}
        default = getattr(task, "default_model", None)
        if self.config.model is None and isinstance(default, str):
            config["train"] = {**config["train"], "model": default}
        return {**config, "metric": {"name": task.metric,
                                     "higher_is_better": task.metric == "accuracy"},
                "data": data_digest(task), "architecture": model_digest(task, self.config.model)}

    def to_config(self) -> dict:
        """The spec's own configuration (see :meth:`stored_config`). ``extend`` is stored
        only where it departs from the default, so a sweep stored before it existed is found
        again by the same spec. A built-in task is stored under its catalog name
        (:func:`~optimlab.bench.tasks.catalog_name`): ``Fashion_MNIST`` and
        ``fashion-mnist`` are one sweep. ``optimizers`` and ``lrs`` keep the order given,
        which reports list them in; the store's key leaves that order out
        (:func:`~.store.jsonio.sweep_keys`), so ``sgd,adam`` and ``adam,sgd`` are one sweep
        too (and ``--resume`` in either order trains only what the other left)."""
        config = {"task": catalog_name(self.task) or self.task, "model": self.config.model,
                  "optimizers": list(self.optimizers),
                  "lrs": None if self.lrs is None else list(self.lrs), "seeds": self.seeds,
                  "hparams": self.hparams, "target": self.target, "train": asdict(self.config)}
        if self.extends != (self.lrs is None):
            config["extend"] = self.extends
        return config


@one_at_a_time
def model_digest(task, model_name: str | None = None) -> str:
    """A digest (BLAKE2b, 16 bytes, hex) of the architecture of ``task``'s model
    ``model_name``: its module tree as ``repr`` prints it, every parameter's and buffer's
    name, shape and dtype, and the task's loss when it is a function of its own (module and
    name, and what those do not tell apart: a ``functools.partial``'s arguments, a loss
    module's settings, a lambda's code: :func:`_loss_settings`). Not initial values drawn
    at random: a model drawn from another random source than torch's would get a new
    digest each time, and its sweep could never be resumed. But a
    model whose factory copies given weights (marked with the attribute :data:`GIVEN_WEIGHTS`
    set to True: :func:`optimlab.advise` on your model) has them digested too, so the same
    model with other weights is a sweep of its own, not the stored runs of the first. So are
    the parameters that do not train (``requires_grad=False``: the trainer keeps them fixed),
    by name: the same model with a layer frozen is another sweep (a model with none frozen
    keeps the digest it had before this was digested). The
    model is built once, under a forked random state (the caller's stream is left as it
    was)."""
    import hashlib

    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = new_model(task, model_name)  # a factory returning no module: a ValueError
    factory = getattr(task, "models", {}).get(model_name or getattr(task, "default_model", None))
    given = getattr(factory, GIVEN_WEIGHTS, False) is True
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(model).encode())
    for kind, named in (("p", model.named_parameters()), ("b", model.named_buffers())):
        for name, tensor in named:
            digest.update(f"{kind}:{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
            if kind == "p" and not tensor.requires_grad:  # frozen: it does not train
                digest.update(f"frozen:{name};".encode())
            if given:  # the values are the model's, not the seed's
                data = tensor.detach().cpu().contiguous().reshape(-1)
                digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    loss = getattr(task, "loss", None)
    if callable(loss):
        digest.update(_loss_identity(loss).encode())
    return digest.hexdigest()


def _loss_identity(loss) -> str:
    """What :func:`model_digest` reads of a task's own loss function: its module and name,
    and where those do not tell two losses apart, their settings (:func:`_loss_settings`).
    A loss named by its module and name alone keeps the digest it had before the settings
    were read."""
    name = (f"loss:{getattr(loss, '__module__', '')}."
            f"{getattr(loss, '__qualname__', type(loss).__qualname__)}")
    settings = _loss_settings(loss)
    return name + (f"|{settings}" if settings else "")


def _loss_settings(loss) -> str:
    """The settings of a loss that its module and name do not show, as text: a
    ``functools.partial``'s function and arguments (``partial(F.cross_entropy,
    label_smoothing=0.3)``: every partial was named "functools.partial"), a loss module's
    settings that differ from its class's defaults and its buffers
    (``nn.CrossEntropyLoss(label_smoothing=0.3)``, a class ``weight``), and the code of a
    lambda or a function defined inside another (two lambdas of a module had one name). A
    plain function of a module is its name: its globals and an edit of its body are not
    read (name a new function, or the sweep differently)."""
    import functools
    import hashlib

    import torch

    if isinstance(loss, functools.partial):
        keywords = sorted((key, _setting_text(value)) for key, value in loss.keywords.items())
        return (f"partial({_loss_identity(loss.func)}, "
                f"{[_setting_text(a) for a in loss.args]!r}, {keywords!r})")
    if isinstance(loss, torch.nn.Module):
        def settings(module) -> dict:
            return {k: v for k, v in vars(module).items() if not k.startswith("_")
                    and isinstance(v, (bool, int, float, str, type(None)))}
        try:
            defaults = settings(type(loss)())
        except Exception:  # a class that needs arguments: every setting is its own
            defaults = {}
        changed = sorted((k, repr(v)) for k, v in settings(loss).items()
                         if k not in defaults or repr(defaults[k]) != repr(v))
        buffers = [f"{name}={_setting_text(buffer)}" for name, buffer in loss.named_buffers()]
        return repr(changed) + repr(buffers) if changed or buffers else ""
    code = getattr(loss, "__code__", None)
    qualname = getattr(loss, "__qualname__", "")
    if code is not None and ("<lambda>" in qualname or "<locals>" in qualname):
        text = repr((code.co_code, code.co_consts, code.co_names, code.co_varnames))
        return "code:" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return ""


def _setting_text(value) -> str:
    """A loss setting as text for its digest: a tensor by its dtype, shape and bytes (its
    ``repr`` cuts long ones short), anything else by its ``repr``."""
    import hashlib

    import torch

    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1)
        raw = data.view(torch.uint8).numpy().tobytes() if data.numel() else b""
        return f"tensor({value.dtype}, {tuple(value.shape)}, " \
               f"{hashlib.blake2b(raw, digest_size=8).hexdigest()})"
    return repr(value)


def data_digest(task) -> str:
    """A digest (BLAKE2b, 16 bytes, hex) of a task's train and test arrays: their dtypes,
    shapes and bytes. About 0.5 GB/s; the built-in tasks but MNIST take milliseconds."""
    import hashlib

    import torch

    digest = hashlib.blake2b(digest_size=16)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        array = getattr(task, name)
        digest.update(f"{name}:{array.dtype}:{tuple(array.shape)};".encode())
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()



def _reached(result: RunResult, target: float | None, higher_is_better: bool):
    if target is None:
        return None, None
    for step, value, wall in zip(result.steps, result.test_metric, result.wall_time):
        if (value >= target) if higher_is_better else (value <= target):
            return step, wall
    return None, None


def _summary(result: RunResult, target, higher_is_better, cost=None) -> dict:
    """A run's summary: final metrics, its tuning score, and (with a target) the way there
    in steps, gradient evaluations (steps x the calibrated closure calls per step),
    calibrated seconds (``cost_to_target``) and wall time; the calibration's spread, its
    rounds (``cost_rounds``: with the spread, the uncertainty of the cost, which profiles
    tie by, :func:`~.analysis.costs_tie`; left out where the cost was taken from ended runs
    that do not say) and whether it is too noisy to rank by (``cost_noisy``,
    :data:`~.cost.SPREAD_LIMIT`).

    The way to the target is to the first evaluation that reached it, also for a run that
    diverged later (AlgoPerf's time to result; the divergence is its status)."""
    step, wall = _reached(result, target, higher_is_better)
    out = {"initial_train_loss": result.train_loss[0],
           "final_train_loss": result.train_loss[-1], "final_test_loss": result.test_loss[-1],
           "final_metric": result.test_metric[-1],
           "score": tail_score(result.test_metric, higher_is_better),
           "steps_to_target": step, "time_to_target": wall, "wall_time": result.wall_time[-1]}
    if result.engine is not None:  # which engine trained it (a resumed sweep may mix them)
        out["engine"] = result.engine
    if cost is not None:
        out.update(seconds_per_step=cost.seconds, gradients_per_step=cost.gradients,
                   cost_spread=cost.spread, cost_noisy=cost.noisy)
        if cost.rounds >= 1:
            out["cost_rounds"] = int(cost.rounds)
        if step is not None:
            out.update(gradients_to_target=round(step * cost.gradients, 6),
                       cost_to_target=step * cost.seconds)
    return out


def _points(result: RunResult) -> list[tuple]:
    return [(step, {"train_loss": tr, "test_loss": te, "test_metric": m}, wall)
            for step, tr, te, m, wall in zip(result.steps, result.train_loss,
                                              result.test_loss, result.test_metric,
                                              result.wall_time)]


@one_at_a_time
def run_sweep(spec: SweepSpec, store: RunStore, engine: str = "population",
              data_dir=None, name: str | None = None,
              progress: Callable[[int], None] | None = None,
              recalibrate: bool = False, executor=None, task=None,
              stored_config: dict | None = None) -> int:
    """Train every unfinished member of ``spec``; returns the sweep id in ``store``.

    ``task`` is ``spec.task`` loaded already, where the caller has it (the command line
    does: loading MNIST twice costs a second); by default it is loaded here, with
    ``data_dir``. ``stored_config`` is ``spec.stored_config(task)`` where the caller has
    computed it (the command line does, to find the sweep first: digesting MNIST's data
    takes 0.24 s); by default it is computed here.

    ``executor`` trains the groups (:mod:`.executors`): here one after another (the
    default), or on a Ray cluster (:class:`~.executors.RayExecutor`), each group stored as
    it comes back. Groups whose workers kept dying raise
    :class:`~.executors.GroupsLost` after the rest are stored; resume trains them.

    ``progress`` is called with the training steps done, as they are done (or as each
    group ends, on Ray); where it also has ``extend(groups, note)`` (the command line's
    bar), the calls a retry adds are announced to it first, ``(steps, runs)`` each.

    A member whose training raises is recorded as ``failed`` with the error; one whose
    loss blows up is ``diverged``. Neither stops the sweep, nor costs the other members of
    its optimizer their runs: a batched group that raises is trained again one member at a
    time (:func:`~optimlab.bench.trainer.train_sequential`), so only the members that raise
    are failed. Ctrl-C (``KeyboardInterrupt``), or another exception out of the training
    loop (the store's), puts the runs this call started and did not end back to ``pending``
    (their partial points deleted) and goes on: the ended runs are kept, and the same call
    again trains the rest. An exception out of ``progress`` (the caller's code, not a
    run's) does the same and comes out of this call as it was raised: it fails no run.

    ``recalibrate`` measures every optimizer of the sweep's step cost again, together (see
    the module's docstring): the runs trained now take the new costs unless ended runs of
    their optimizer hold costs already, and where ended runs keep older costs (the store
    does not rewrite them) a :class:`CalibrationWarning` names them, also for a sweep with
    nothing left to train.

    The sweep is trained under :meth:`RunStore.lock_sweep`: while another process (or
    another store object) runs or resumes the same sweep, this one raises
    :class:`~optimlab.bench.store.StoreError` ("sweep 3 of ... is being run or resumed by
    process 12345 on this machine") before it adds or starts any run. A killed process
    holds no lock, so its sweep can always be resumed.
    """
    if not isinstance(spec, SweepSpec):
        raise TypeError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    check_store(store, "run_sweep")
    _check_name(name)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    progress = _checked_callbacks(progress, executor)
    if task is None:
        task = get_task(spec.task, data_dir=data_dir)
    check_task(task)
    # "auto" trains a model it cannot batch (a sparse embedding's) on the sequential engine
    check_sparse_only(spec.optimizers, task, spec.config.model, engine != "population")
    config = spec.stored_config(task) if stored_config is None else stored_config
    higher_is_better = config["metric"]["higher_is_better"]
    sweep_id = store.open_sweep(config, name=name)
    with store.lock_sweep(sweep_id), _progress_errors():  # a second process is refused here
        # "auto" comes back decided, so the extensions do not ask again
        engine = _train_pending(spec, store, sweep_id, task, engine, higher_is_better,
                                progress, recalibrate, executor)
        if spec.extends:
            _extend_edges(spec, store, sweep_id, task, engine, higher_is_better, progress,
                          executor)
    return sweep_id


class _ProgressFailed(BaseException):
    """An exception out of the caller's ``progress`` callback, carried past the trainer's
    and the executors' ``except Exception`` (which store a member's own error as its run's
    failure): the callback is the caller's code, not the run's, and a run it stopped is put
    back to pending like one a Ctrl-C stopped. :func:`_progress_errors` raises the
    original exception again."""


def _checked_callbacks(progress, executor):
    """``progress`` (checked callable) wrapped so that its errors stop the sweep
    (:class:`_ProgressFailed`) rather than fail the run it ticked for; TypeError, before
    the sweep is stored, for an ``executor`` without ``map`` (:mod:`.executors`)."""
    check_callable("progress", progress, "with the training steps done")
    check_executor(executor)
    if progress is None:
        return None

    def tick(n: int) -> None:
        try:
            progress(n)
        except Exception as err:
            raise _ProgressFailed(err) from err

    if getattr(progress, "extend", None) is not None:  # the command line's growing bar
        tick.extend = progress.extend  # type: ignore[attr-defined]
    return tick


@contextlib.contextmanager
def _progress_errors():
    """Raise the original exception of a :class:`_ProgressFailed` (the runs it stopped are
    pending again by then: :func:`_train_runs`)."""
    try:
        yield
    except _ProgressFailed as failed:
        error = failed.__cause__
        for note in getattr(failed, "__notes__", ()):  # what the reset could not do, say
            error.add_note(note)
        raise error from None


def check_sparse_only(names: Sequence[str], task, model: str | None, sequential: bool,
                      how: str = "pass engine='sequential'") -> None:
    """ValueError, before anything trains, for an optimizer of ``names`` that takes sparse
    gradients only (``Capabilities.sparse_only``: SparseAdam) where every run of it would
    fail: the population engine gives dense gradients, and so does a model without a sparse
    embedding on either engine. A model whose sparse embeddings hold only some of its
    trained parameters fails every run too (the others' gradients are dense), on the
    sequential engine as well; only where every parameter belongs to a sparse embedding
    does the sequential engine (``sequential``) train it, which ``how`` says how to ask for."""
    sparse = [resolve(name).name for name in names if resolve(name).capabilities.sparse_only]
    if not sparse:
        return
    embedded, dense = gradient_layouts(new_model(task, model))
    named = f"model {model or task.default_model} of task {task.name}"
    if embedded and not dense:
        if sequential:
            return
        why = f": {how} to train it one run at a time on the model's sparse embedding"
    elif embedded:
        raise ValueError(
            f"{sparse[0]} {SPARSE_ONLY}, and {named} "
            f"gives dense gradients to {len(dense)} of its {len(embedded) + len(dense)} "
            f"parameters beside its "
            "sparse embedding's, so every run would fail on either engine; choose an optimizer "
            "that takes both (adagrad, sgd), or, in Python, step the embedding with SparseAdam "
            "and the other parameters with another optimizer (e.g. Adam)")
    else:
        why = f", and so does {named}"
    raise ValueError(f"{sparse[0]} {SPARSE_ONLY}; {DENSE_HERE}{why}")


def _check_name(name) -> None:
    """TypeError unless a sweep's ``name`` is None or a string (it is stored as the sweep's
    name, which the listings show as text)."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str (the sweep's name) or None, got "
                        f"{type(name).__name__} {name!r}")


def _costs(spec: SweepSpec, task, optimizers, recalibrate: bool = False) -> dict:
    """The calibrated step cost of each optimizer (left out where it cannot be measured:
    the sweep goes on, its profile falls back to steps)."""
    if not optimizers:
        return {}
    wanted = {}
    for name in optimizers:
        lrs = spec.lrs or auto_lrs(name)
        wanted[name] = {**spec.hparams.get(name, {}), "lr": float(min(lrs))}
    try:
        return step_costs(task, spec.config.model, spec.config.batch_size, wanted,
                          recalibrate=recalibrate)
    except Exception:  # a model the micro-benchmark cannot step: no cost, not no sweep
        return {}


def _stored_costs(store: RunStore, sweep_id: int) -> dict[str, StepCost]:
    """The step cost each optimizer's ended runs of the sweep were stored with."""
    out: dict[str, StepCost] = {}
    for run in store.list_runs(sweep_id):
        s = run.summary or {}
        seconds, gradients, spread = (s.get(k) for k in ("seconds_per_step",
                                                           "gradients_per_step", "cost_spread"))
        if run.optimizer in out or run.status not in TERMINAL or not all(
                finite_number(v) for v in (seconds, gradients, spread)) or seconds <= 0:
            continue
        # the rounds the cost is the median of (0 where a run stored before they were):
        # a resumed run stores them too, so its profile ties costs by their uncertainty
        rounds = s.get("cost_rounds")
        rounds = int(rounds) if isinstance(rounds, int) and not isinstance(rounds, bool) \
            and rounds > 0 else 0
        out[run.optimizer] = StepCost(run.optimizer, float(seconds), float(spread),
                                      float(gradients), rounds, cached=True)
    return out


def _sweep_costs(spec: SweepSpec, store: RunStore, sweep_id: int, task, names,
                 recalibrate: bool) -> dict[str, StepCost]:
    """The step costs of the optimizers ``names`` about to train in the sweep: those its
    ended runs hold, the others cached or measured; with ``recalibrate``, every optimizer of
    the sweep measured again together, the ended runs' costs kept (and said, see
    :class:`CalibrationWarning`)."""
    stored = _stored_costs(store, sweep_id)
    if not recalibrate:
        kept = {n: stored[n] for n in names if n in stored}
        return {**kept, **_costs(spec, task, [n for n in names if n not in kept])}
    fresh = _costs(spec, task, list(spec.optimizers), recalibrate=True)
    if stored:
        ended = sorted(stored)
        trained = [n for n in names if n not in stored]
        warnings.warn(
            f"sweep {sweep_id}: the step costs of {', '.join(spec.optimizers)} were measured "
            f"again and cached, but the ended runs of {', '.join(ended)} keep the costs they "
            f"were stored with (the store does not rewrite an ended run), and so do the runs "
            f"of {', '.join(ended)} trained now"
            + (f"; {', '.join(trained)} take the new costs, so this sweep mixes two "
               f"calibrations" if trained else "")
            + "; to rank by the new costs, run the sweep again in another store",
            CalibrationWarning, stacklevel=5)
    return {**{n: fresh[n] for n in names if n in fresh},
            **{n: stored[n] for n in names if n in stored}}


def _train_pending(spec: SweepSpec, store: RunStore, sweep_id: int, task, engine: str,
                   higher_is_better: bool, progress, recalibrate: bool = False,
                   executor=None) -> str:
    """Add the spec's members and train those pending; the engine (:func:`_train_runs`)."""
    store.add_runs(sweep_id, [{"optimizer": m.optimizer, "hparams": m.hparams, "seed": m.seed}
                              for m in spec.members()])
    return _train_runs(spec, store, sweep_id, store.pending_runs(sweep_id), task, engine,
                       higher_is_better, progress, recalibrate, executor)


def _one_by_one(task, config: TrainConfig, members, progress=None) -> list[RunResult]:
    """The sequential engine, each member's error kept with its result (a sweep stores it
    as that run's failure and trains the others)."""
    return train_sequential(task, config, members, progress=progress, isolate=True)


_TRAIN = {"population": train_population, "sequential": _one_by_one}


def train_members(store: RunStore, task, config: TrainConfig, members, *,
                  engine: str = "auto", name: str | None = None, extra: dict | None = None,
                  progress: Callable[[int], None] | None = None, executor=None) -> int:
    """Train any list of members (each optimizer's as one group) as one stored sweep.

    For grids that :class:`SweepSpec` cannot describe (the advisor's rungs: each optimizer
    at its own rates). The sweep is identified by the task, ``config``, the members and
    ``extra``, so calling again with the same arguments trains only the runs not finished
    yet (resume), under the same lock as :func:`run_sweep`, on ``executor`` as there.
    Returns the sweep id.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    _check_name(name)
    check_task(task)
    progress = _checked_callbacks(progress, executor)
    # each optimizer as the registry spells it, as the spec below stores it
    members = [Member(resolve(m.optimizer).name, m.hparams, m.seed) for m in members]
    optimizers = tuple(dict.fromkeys(m.optimizer for m in members))
    spec = SweepSpec(task=task.name, optimizers=optimizers, config=config, seeds=1)
    stored = {**spec.stored_config(task), "lrs": None, "seeds": None, **(extra or {}),
              "members": [{"optimizer": m.optimizer, "hparams": m.hparams, "seed": m.seed}
                          for m in members]}
    higher_is_better = stored["metric"]["higher_is_better"]
    sweep_id = store.open_sweep(stored, name=name)
    with store.lock_sweep(sweep_id), _progress_errors():
        store.add_runs(sweep_id, stored["members"])
        _train_runs(spec, store, sweep_id, store.pending_runs(sweep_id), task, engine,
                    higher_is_better, progress, executor=executor)
    return sweep_id


def _train_runs(spec: SweepSpec, store: RunStore, sweep_id: int, pending, task, engine: str,
                higher_is_better: bool, progress, recalibrate: bool = False,
                executor=None) -> str:
    """Train the pending runs on ``executor`` (default: here), one call per optimizer on the
    population engine and one per run on the sequential one, storing each call's runs as it
    comes back (see :mod:`.executors`; a sequential sweep stopped mid-way keeps every run
    that ended), each with the step cost of :func:`_sweep_costs`.

    ``engine`` ``"auto"`` is the population engine, or the sequential one where it cannot
    batch the model (asked once, up front: :func:`~optimlab.bench.trainer.population_refusal`,
    so an error in training itself is reported, not retried one member at a time). Returns
    the engine, decided (``engine`` itself where nothing was to train), for the next call."""
    if not pending and not recalibrate:
        return engine
    if engine == "auto":
        try:
            engine = "population" if population_refusal(task, spec.config.model) is None \
                else "sequential"
        except ValueError:  # a model no engine can train: its runs fail with the error, stored
            engine = "sequential"
    train = _TRAIN[engine]
    executor = executor or LocalExecutor()
    optimizers = [o for o in spec.optimizers if any(run.optimizer == o for run in pending)]
    costs = _sweep_costs(spec, store, sweep_id, task, optimizers, recalibrate) \
        if spec.target is not None and (optimizers or recalibrate) else {}
    groups = [[run for run in pending if run.optimizer == optimizer] for optimizer in optimizers]
    if engine == "sequential":
        groups = [[run] for group in groups for run in group]
    names = [group[0].optimizer for group in groups]
    calls = [Call(train, (task, spec.config, [Member(r.optimizer, r.hparams, r.seed)
                                              for r in group]), spec.config.steps)
             for group in groups]

    begun: list[int] = []  # the runs this call started: put back to pending if it is stopped

    def started(index: int) -> None:
        for run in groups[index]:
            store.start_run(run.id)
            begun.append(run.id)

    lost: list[str] = []
    lost_runs: list[int] = []

    def store_group(index: int, outcome) -> None:
        group = groups[index]
        if outcome.kind == "lost":  # back to pending once the rest has trained: --resume does
            lost.append(f"{names[index]} ({count(len(group), 'run')}): {outcome.message}")
            lost_runs.extend(run.id for run in group)
        elif outcome.kind == "error":  # a broken member must not stop the sweep
            for run in group:
                store.finish_run(run.id, "failed", error=outcome.message)
        else:
            for run, result in zip(group, outcome.value):
                if result.error is not None:  # this member alone raised
                    store.finish_run(run.id, "failed", error=result.error)
                    continue
                store.finish_run(run.id, "diverged" if result.diverged else "finished",
                                 summary=_summary(result, spec.target, higher_is_better,
                                                  costs.get(names[index])),
                                 points=_points(result))

    try:
        _train_groups(executor, calls, groups, names, started, store_group, progress,
                      batched=train is not _one_by_one)
    except BaseException as err:  # Ctrl-C, or an error outside training (the store's)
        _reset_started(store, begun, err)
        raise
    if lost:
        err = GroupsLost(f"{count(len(lost), 'group')} lost their workers more often than the "
                         f"retries allow, or could not start there, and are left unfinished "
                         f"(resume the sweep to train them): " + "; ".join(lost))
        # pending, as a stopped sweep leaves its runs (nothing trains them now); where the
        # store cannot be written (a store losing its server as workers are lost) they stay
        # running, which a resume trains too, and the error says so
        _reset_started(store, lost_runs, err)
        raise err
    return engine


def _reset_started(store: RunStore, run_ids: list[int], err: BaseException) -> None:
    """Put the runs of ``run_ids`` still running back to pending (:meth:`RunStore.reset_runs`)
    as ``err`` stops the sweep: a resume trains them, and no report takes them for runs
    training now. Where the store cannot be written, they stay running (a resume trains
    those too) and ``err`` says so in a note."""
    if not run_ids:
        return
    try:
        store.reset_runs(run_ids)
    except Exception as failed:
        err.add_note(f"the runs this sweep started and did not end are left 'running' (resume "
                     f"trains them): they could not be put back to pending: {failed}")


def _train_groups(executor, calls: list, groups: list, names: list, started, store_group,
                  progress, batched: bool) -> None:
    """Train ``calls`` on ``executor``, storing each group as it comes back (``store_group``),
    and a batched group that raised again one member at a time (see :func:`_train_runs`)."""
    apart, causes = [], []
    for index, outcome in executor.map(calls, started, progress):
        if outcome.kind == "error" and batched and len(groups[index]) > 1:
            apart.append(index)  # one member's error stops a batched group: train them apart
            causes.append(f"{names[index]}'s: {one_line(outcome.message, 200)}")
        else:
            store_group(index, outcome)
    if apart:
        # the error is said: a group too big for memory fails as a whole and is trained
        # apart, which a broken member's error would not tell from
        warnings.warn(
            f"{', '.join(names[i] for i in apart)}: an error stopped the batched group, so its "
            f"{sum(len(groups[i]) for i in apart)} runs are trained again one at a time on the "
            "sequential engine (only the members that raise fail); the error, "
            f"{'; '.join(causes)}", EngineWarning, stacklevel=5)
        # each retry trains its group's members one after another: steps times members
        retries = [Call(_one_by_one, calls[i].args, calls[i].ticks * len(groups[i]))
                   for i in apart]
        extend = getattr(progress, "extend", None)  # a bar whose plan can grow (the CLI's)
        if extend is not None:
            runs = sum(len(groups[i]) for i in apart)
            extend([(call.ticks, len(groups[i])) for call, i in zip(retries, apart)],
                   f"{runs} runs trained again one at a time")
        for k, outcome in executor.map(retries, lambda k: None, progress):
            store_group(apart[k], outcome)


def _extend_edges(spec: SweepSpec, store: RunStore, sweep_id: int, task, engine: str,
                  higher_is_better: bool, progress, executor=None) -> None:
    """Extend each optimizer's grid past the edge its best rate sits on (``spec.extends``),
    at most :data:`MAX_EXTENSIONS` times in all: the extensions a stored sweep made already
    (its rates beyond the base grid, two a time) count, so running a finished sweep again,
    or resuming one, does not extend it further."""
    while True:
        records = [r for r in run_records(store, sweep_id, higher_is_better)
                   if r["status"] != "pending"]
        new = []
        for s in summarize(records, higher_is_better):
            tried = {r["lr"] for r in records if r["optimizer"] == s.optimizer}
            if s.edge is None or _extensions(spec, s.optimizer, tried) >= MAX_EXTENSIONS:
                continue
            beyond = rates_past_edge(s.sensitivity, s.edge)
            hp = spec.hparams.get(s.optimizer, {})
            new += [{"optimizer": s.optimizer, "hparams": {**hp, "lr": float(lr)}, "seed": seed}
                    for lr in beyond for seed in range(spec.seeds)]
        if not new:
            return
        store.add_runs(sweep_id, new)
        pending = store.pending_runs(sweep_id)
        if not pending:  # every rate beyond the edge was tried already
            return
        engine = _train_runs(spec, store, sweep_id, pending, task, engine, higher_is_better,
                             progress, executor=executor)


def _registry_name(name):
    """``name`` as the registry spells it, or as given where the registry does not know it
    (a wrong one is reported by the hparams check)."""
    try:
        return resolve(name).name
    except ValueError:
        return name


def _extensions(spec: SweepSpec, optimizer: str, rates) -> int:
    """How many times ``optimizer``'s grid was extended: its stored ``rates`` outside the
    base grid, two per extension (one where the bounds cut an extension short, which this
    counts as a whole one)."""
    base = spec.lrs or auto_lrs(optimizer)
    low, high = min(base) * (1 - 1e-9), max(base) * (1 + 1e-9)
    below = sum(lr < low for lr in rates)
    above = sum(lr > high for lr in rates)
    return -(-below // 2) + -(-above // 2)


def trained_by(store: RunStore, sweep_id: int) -> dict[str, int]:
    """How many of the sweep's ended runs each engine trained, ``{"population": 30,
    "sequential": 6}``, from their summaries (runs stored before the summary said, and runs
    that failed, are not counted). A resumed sweep may mix engines: a ``--sequential``
    resume, or a batched group that raised and was trained again one run at a time."""
    counts: dict[str, int] = {}
    for run in store.list_runs(sweep_id):
        engine = (run.summary or {}).get("engine")
        if isinstance(engine, str) and engine in ENGINES:
            counts[engine] = counts.get(engine, 0) + 1
    return counts


def run_records(store: RunStore, sweep_id: int,
                higher_is_better: bool | None = None) -> list[dict]:
    """One plain record per ended run (finished, diverged or failed: a run still pending or
    running has no result to count) for :func:`optimlab.bench.analysis.summarize`.

    Finished runs stored before summaries held their tuning score (optimlab before
    2026-12-03) have none: with ``higher_is_better`` given (the metric's direction), it is
    computed from their stored ``test_metric`` points by :func:`~.analysis.tail_score`, as
    the sweep would have stored it, so that such a sweep is ranked by the criterion its
    tables name; without it (or for a run with no point stored),
    :func:`~.analysis.summarize` ranks such runs by their final metric."""
    records, unscored = [], []
    for run in store.list_runs(sweep_id):
        if run.status not in TERMINAL:
            continue
        summary = run.summary or {}
        metric = summary.get("final_metric")
        records.append({**summary, "optimizer": run.optimizer, "lr": run.hparams.get("lr"),
                        "seed": run.seed, "status": run.status, "error": run.error,
                        "metric": math.nan if metric is None else metric,
                        "diverged": run.status != "finished", "run_id": run.id})
        # (a run that did not finish is scored the worst by summarize, whatever it holds)
        if "score" not in summary and run.status == "finished":
            unscored.append(records[-1])
    if unscored and higher_is_better is not None:
        points = store.metrics(sweep_id, run_ids=[r["run_id"] for r in unscored],
                               names=["test_metric"]).sort_values("step")
        by_run = {int(k): v["value"].to_numpy(dtype=float) for k, v in points.groupby("run_id")}
        for record in unscored:  # (a run with no point stored keeps its final metric)
            if record["run_id"] in by_run:
                record["score"] = tail_score(by_run[record["run_id"]], higher_is_better)
    return records

