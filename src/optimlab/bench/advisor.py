r"""The advisor: which optimizer and learning rate for *your* model, with the evidence.

``advise_task("mnist1d", steps=300)`` (or :func:`advise` for any ``nn.Module`` and data)
answers in three stages, every run batched as a population where the model allows it (one
at a time where it does not) and stored in the run store:

**Stage 1, a learning-rate range test per candidate.** fastai's ``lr_find``, Lightning's
``Tuner.lr_find`` and torch-lr-finder train *one* run whose rate rises every step and read
the loss as a function of the rate; what they read mixes the rate with the time the run has
trained, so the first steps' fast fall (or an early spike) is taken for the rate's effect.
Here each rate of a log grid (:data:`RANGE`, :data:`PER_DECADE` rates a decade) trains on its
own for the same short horizon (:attr:`Plan.range_steps`), all of a candidate's rates side
by side in one population: each point of the curve is the train loss a run at that rate
reaches, and rate is the only thing that differs between points. The suggestion
(:func:`suggest_lr`):

1. a running median over three neighbouring rates removes a single spiky or noisy point,
   in either direction (a lucky low loss, or one run that blew up between two that did
   not);
2. the smoothed curve stops at the first rate whose loss is not finite or exceeds 4x the
   lowest loss before it (fastai's stop rule, which on the raw curve a single spike trips);
3. the suggested rate is the one with the lowest smoothed loss among the rates whose run
   ended below the initial loss (of equal smoothed losses, the lowest raw one: the best
   rate often sits just below the first that diverges, whose median it shares); if no
   run ended below the initial loss, the candidate cannot train here and is dropped.

:func:`fastai_valley` (fastai's default since 2.4: two thirds of the way down the longest
descending run) and :func:`steepest` (the steepest descent of the loss per decade of rate,
torch-lr-finder's and Lightning's rule) are computed on the same curve for comparison.

**Stage 2, a short tournament.** Successive halving over candidates x rates around each
suggestion (:data:`OFFSETS` decades, never above the largest rate that trained) x seeds:
every arm trains ``steps / 9`` steps, the best third (by the training lab's
:data:`~optimlab.bench.analysis.CRITERION`) ``steps / 3``, and the best third of those the
full ``steps`` with ``seeds`` seeds. Into the final rung each arm also brings the rate a
quarter decade below its own (:data:`LOWER`): the best rate of a longer run is lower (the
short-horizon bias of successive halving; on MNIST-1D the 100-step winner, Adam at 0.0316,
lost to Adam at 0.01 over 300 steps), and the step lands between the tournament's
half-decade rates. When, after a rung, the leader beats every other arm on every seed (or
the others diverged), its optimizer is clear: the tournament skips to the final rung with
that optimizer's best arms alone. The best Adam arm always reaches the final rung (tuned
Adam, the reference), and so does Adam at its default rate.

**Stage 3, the answer.** The finalists are ranked as the training lab ranks a sweep
(:func:`~optimlab.bench.analysis.rank`: paired comparisons over seeds, ties said); the
recommendation is the first; :class:`Advice` carries how much better it is than Adam at its
defaults and than tuned Adam, which finalists cannot be told apart, the member-steps spent,
code to paste and every candidate's summary; :meth:`Advice.to_json` is the machine-readable
answer.

The recommendation is for the horizon asked for (``steps``, ``batch_size``): the best rate
for 300 steps is not the best for 30,000.
"""

from __future__ import annotations

import copy
import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..optim.registry import resolve
from .analysis import CRITERION, paired_difference, rank, summarize
from .store import DEFAULT_PATH, RunStore
from .sweep import SweepSpec, run_records, train_members
from .tasks import Task
from .tasks import get as get_task
from .trainer import Member, TrainConfig

__all__ = ["Advice", "AdvisorError", "Plan", "RangeTest", "advise", "advise_task",
           "candidates", "make_task", "steps_for_seconds", "DEFAULT_CANDIDATES",
           "difference_words", "fastai_valley", "plan", "steepest", "suggest_lr"]

#: what the advisor compares when not told (SGD with momentum 0.9 is the registry's "momentum")
DEFAULT_CANDIDATES = ("momentum", "adam", "adamw", "lion", "rmsprop", "adagrad")
#: the reference: always a candidate, and run at its default rate in the final rung
REFERENCE = "adam"
#: the range test's rates: log-spaced from RANGE[0] to RANGE[1], PER_DECADE a decade
RANGE = (1e-6, 10.0)
PER_DECADE = 2
#: the tournament's rates around each suggestion, in decades
OFFSETS = (-1.0, -0.5, 0.0, 0.5)
#: successive halving keeps the best 1/ETA of the arms at each rung
ETA = 3
#: into the final rung each arm also brings the rate this many decades lower: the best rate
#: of a longer run is lower, and a quarter decade lands between the tournament's steps (on
#: the MNIST-1D CNN the grid's best, 0.0215, sat between the advisor's 0.01 and 0.0316, and
#: 0.0316 lost 2.8 points of accuracy to it)
LOWER = 0.25
#: seeds per arm in the rungs before the last
EARLY_SEEDS = 2
#: a loss above this multiple of the lowest one before it ends the range test's curve
STOP_FACTOR = 4.0
#: evaluations of each tournament run after step 0: the tuning score reads the last 25% of
#: them (:func:`~optimlab.bench.analysis.tail_score`); evaluating took half the advisor's
#: time at 12
EVALUATIONS = 8


class AdvisorError(ValueError):
    """The advisor cannot answer: the model cannot train, or the budget is too small."""


# --------------------------------------------------------------------------------------
# The range test's rules
# --------------------------------------------------------------------------------------

def _truncated(losses: Sequence[float]) -> int:
    """How many points of the curve count: up to the first that is not finite or is above
    :data:`STOP_FACTOR` times the lowest loss before it (fastai's ``stop_div``)."""
    best = math.inf
    for i, loss in enumerate(losses):
        if not math.isfinite(loss) or (math.isfinite(best) and loss > STOP_FACTOR * best):
            return i
        best = min(best, loss)
    return len(losses)


def _running_median(values: Sequence[float]) -> list[float]:
    """The median of each point and its two neighbours; the two ends are kept as they are."""
    return [float(v) if i in (0, len(values) - 1) else float(np.median(values[i - 1:i + 2]))
            for i, v in enumerate(values)]


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], initial: float) -> float | None:
    """The advisor's rule on a range test's curve (see the module's docstring).

    Args:
        lrs: increasing rates.
        losses: the train loss each rate's run ended at (``inf`` or NaN if it diverged).
        initial: the loss before training.

    Returns:
        The suggested rate, or None when no rate ends below ``initial``.
    """
    clean = [float(v) if math.isfinite(v) else math.inf for v in losses]
    smooth = _running_median(clean)
    n = _truncated(smooth)
    stable = [i for i in range(n) if smooth[i] < initial and clean[i] < initial]
    if not stable:
        return None
    return float(lrs[min(stable, key=lambda i: (smooth[i], clean[i]))])


def fastai_valley(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """fastai's ``valley`` rule on the same curve: the longest run of decreasing losses
    (longest decreasing subsequence ending at each point), and the rate two thirds of the way
    down it (``start + int(len/3) + int(len/6)``), as fastai's ``lr_find`` suggests."""
    n = _truncated(losses)
    if n == 0:
        return None
    values = list(losses[:n])
    longest = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if values[i] < values[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end = i
                start = end - longest[end]
    sections = (end - start) / 3
    # fastai's start is one before the run's first point, so a short run from the curve's
    # first point gives index -1, which Python reads as the last (highest) rate: that is
    # the first rate here, as the run it names begins there
    return float(lrs[max(0, start + int(sections) + int(sections / 2))])


def steepest(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """The steepest-slope rule on the same curve: the rate where the loss falls fastest per
    decade of rate (torch-lr-finder's suggestion; Lightning's, without its 10 skipped points,
    which would leave little of a curve this short)."""
    n = _truncated(losses)
    if n < 2:
        return float(lrs[0]) if n else None
    slope = np.gradient(np.asarray(losses[:n], dtype=float), np.log10(np.asarray(lrs[:n])))
    return float(lrs[int(np.argmin(slope))])


@dataclass(frozen=True)
class RangeTest:
    """One candidate's range test: each rate's final train loss (mean over seeds; ``inf``
    where a run diverged), the loss before training, and the three rules' picks.
    ``max_stable`` is the largest rate whose run ended below the initial loss."""

    optimizer: str
    lrs: list[float]
    losses: list[float]
    initial_loss: float
    suggested_lr: float | None
    fastai_lr: float | None
    steep_lr: float | None
    max_stable: float | None

    @staticmethod
    def of(optimizer: str, records: Sequence[Mapping]) -> RangeTest:
        """The range test of ``optimizer`` from its stored run records."""
        by_lr: dict[float, list[float]] = defaultdict(list)
        initial = []
        for r in records:
            loss = r.get("final_train_loss")
            ok = not r["diverged"] and loss is not None and math.isfinite(loss)
            by_lr[float(r["lr"])].append(float(loss) if ok else math.inf)
            if r.get("initial_train_loss") is not None:
                initial.append(float(r["initial_train_loss"]))
        lrs = sorted(by_lr)
        losses = [float(np.mean(by_lr[lr])) for lr in lrs]
        start = float(np.median(initial)) if initial else math.inf
        stable = [lr for lr, loss in zip(lrs, losses) if loss < start]
        return RangeTest(optimizer, lrs, losses, start, suggest_lr(lrs, losses, start),
                         fastai_valley(lrs, losses), steepest(lrs, losses),
                         max(stable) if stable else None)


# --------------------------------------------------------------------------------------
# The plan and its budget
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """How much the advisor trains: the range test's rates, horizon and seeds; the
    tournament's rung horizons, rates per candidate (:data:`OFFSETS` used) and seeds."""

    steps: int
    range_lrs: tuple[float, ...]
    range_steps: int
    range_seeds: int
    horizons: tuple[int, ...]
    offsets: tuple[float, ...]
    early_seeds: int
    seeds: int
    #: each finalist also runs :data:`LOWER` decades lower in the final rung
    lower_rates: bool = True

    def cost(self, candidates: int) -> int:
        """An upper bound of the member-steps this plan trains for ``candidates``."""
        total = candidates * len(self.range_lrs) * self.range_steps * self.range_seeds
        arms = candidates * len(self.offsets)
        for i, horizon in enumerate(self.horizons):
            last = i == len(self.horizons) - 1
            if last and i > 0 and self.lower_rates:  # finalists also run LOWER decades lower
                arms = 2 * arms
            refs = 2 if last else 1  # tuned Adam carried along; Adam's default in the final
            total += (arms + refs) * (self.seeds if last else self.early_seeds) * horizon
            arms = max(2, math.ceil(arms / ETA)) + 1  # + tuned Adam
        return total


def _horizons(steps: int) -> tuple[int, ...]:
    if steps >= ETA ** 3:
        return (steps // ETA ** 2, steps // ETA, steps)
    if steps >= ETA ** 2:
        return (steps // ETA, steps)
    return (steps,)


def _log_grid(low: float, high: float, per_decade: int) -> tuple[float, ...]:
    count = int(round(math.log10(high / low) * per_decade)) + 1
    return tuple(float(v) for v in np.logspace(math.log10(low), math.log10(high), count))


def plan(steps: int, candidates: int, budget: int | None = None, seeds: int = 3) -> Plan:
    """The plan for ``candidates`` optimizers and a horizon of ``steps``, shrunk to fit
    ``budget`` member-steps (None: the full plan).

    Shrinking goes, until the plan fits: one seed in the early rungs; no lower rates in the
    final rung; three rates per candidate, then two; one range-test rate a decade; two
    final seeds. A budget below
    that raises :class:`AdvisorError` with the least it needs.
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(seeds, int) and seeds >= 1):
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    if budget is not None and not (isinstance(budget, int) and budget >= 1):
        raise ValueError(f"budget must be a number of member-steps >= 1, got {budget!r}")
    full = Plan(steps, _log_grid(*RANGE, PER_DECADE), max(10, min(100, steps // 8)), 1,
                _horizons(steps), OFFSETS, EARLY_SEEDS, seeds)
    if budget is None:
        return full
    shrink = [
        lambda p: replace(p, early_seeds=1),
        lambda p: replace(p, lower_rates=False),
        lambda p: replace(p, offsets=(-1.0, -0.5, 0.0)),
        lambda p: replace(p, offsets=(-0.5, 0.0)),
        lambda p: replace(p, range_lrs=_log_grid(*RANGE, 1)),
        lambda p: replace(p, seeds=min(p.seeds, 2)),
    ]
    current = full
    for step in [lambda p: p, *shrink]:
        current = step(current)
        if current.cost(candidates) <= budget:
            return current
    raise AdvisorError(
        f"a budget of {budget} member-steps is too small for {candidates} candidates at "
        f"{steps} steps: the least this advisor spends is {current.cost(candidates)} "
        "member-steps (raise --budget, or name fewer --optimizers)")


# --------------------------------------------------------------------------------------
# The answer
# --------------------------------------------------------------------------------------

@dataclass
class Advice:
    """The advisor's answer and its evidence.

    Attributes:
        task: the task's name; ``model`` its model (None: the default one).
        optimizer: the recommended registry name; ``hparams`` its hyperparameters.
        metric: ``{"name", "value", "higher_is_better", "ci", "seeds"}``: the recommendation's
            final test metric, mean over the final rung's seeds, with its 95% interval.
        steps_spent: member-steps trained, summed over every run of every stage.
        candidates: one dict per candidate: its range test's three picks, the tournament's
            best rate and metric (None if it did not reach the final rung), its rank, and
            ``status`` (``"final"``, ``"out at rung k"``, ``"cannot train"`` where no
            rate's loss fell, ``"cannot run"`` where every run raised, its ``error`` then
            the first one).
        ties: the finalists that paired comparisons cannot tell apart from the pick.
        versus: ``{"adam_default": ..., "adam_tuned": ...}``: each with the reference's
            ``lr``, ``value`` and the pick's paired difference: ``better_by`` (positive when
            the pick is better, whichever way the metric goes; :func:`difference_words`
            says it by direction), ``low``, ``high`` (the interval of pick - reference),
            ``distinct``; None where unknown.
        statement: the confidence statement, in words.
        steps, batch_size: the training the recommendation is for.
        range_tests: the stage-1 curves; ``rungs``: per rung, its horizon and every arm's
            score; ``final_records``: the final rung's run records; ``sweep_ids``: the stored
            stages (the range test, then each rung; the last is the final rung);
            ``answer_sweep_id``: the answer kept in the store (a sweep of one run whose
            summary is :meth:`to_json`); ``store_path``: where.
    """

    task: str
    model: str | None
    optimizer: str
    hparams: dict
    metric: dict
    steps_spent: int
    candidates: list[dict]
    ties: list[str]
    versus: dict
    statement: str
    steps: int
    batch_size: int | None
    plan: Plan
    range_tests: dict[str, RangeTest] = field(default_factory=dict)
    rungs: list[dict] = field(default_factory=list)
    final_records: list[dict] = field(default_factory=list)
    sweep_ids: list[int] = field(default_factory=list)
    store_path: str | None = None
    answer_sweep_id: int | None = None

    @property
    def code(self) -> str:
        """Python that builds the recommended optimizer for a model."""
        def text(hparams: Mapping) -> str:  # rates to 3 digits: 0.0316, not 0.0316227766
            return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}"
                             for k, v in hparams.items())

        entry = resolve(self.optimizer)
        return (f"import optimlab\n"
                f"optimizer = optimlab.create({self.optimizer!r}, model.parameters(), "
                f"{text(self.hparams)})\n"
                f"# the same: optimlab.{entry.cls.__name__}(model.parameters(), "
                f"{text({**entry.preset, **self.hparams})})")

    def to_json(self) -> dict:
        """The answer in machine-readable form (what ``optimlab advise --json`` writes)."""
        return {"optimizer": self.optimizer, "hparams": dict(self.hparams),
                "metric": dict(self.metric), "steps_spent": self.steps_spent,
                "candidates": [dict(c) for c in self.candidates], "ties": list(self.ties),
                "versus": self.versus, "statement": self.statement, "task": self.task,
                "model": self.model, "steps": self.steps, "batch_size": self.batch_size,
                "plan": asdict(self.plan), "code": self.code,
                "range_tests": {k: asdict(v) for k, v in self.range_tests.items()},
                "rungs": self.rungs, "sweep_ids": list(self.sweep_ids),
                "answer_sweep_id": self.answer_sweep_id,
                "store": self.store_path, "criterion": CRITERION}

    def __str__(self) -> str:
        m = self.metric
        ci = f" ± {m['ci']:.3g}" if math.isfinite(m.get("ci", math.inf)) else ""
        lines = [f"{self.optimizer} at lr={self.hparams['lr']:.3g}: {m['name']} "
                 f"{m['value']:.4g}{ci} ({m['seeds']} seeds, {self.steps} steps)",
                 self.statement, f"compute spent: {self.steps_spent} member-steps"]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Running the stages
# --------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One stage's bookkeeping: where its runs are stored and how many steps they cost."""

    store: RunStore
    task: Task
    base: TrainConfig
    request: dict
    engine: str
    progress: Callable[[int], None] | None
    on_stage: Callable[[str, int, Sequence[Member]], None] | None = None
    executor: Any = None  # where the groups train (:mod:`.executors`); None: here
    spent: int = 0
    sweep_ids: list[int] = field(default_factory=list)

    def train(self, label: str, horizon: int, members: Sequence[Member],
              evaluations: int = EVALUATIONS) -> list[dict]:
        """Train ``members`` for ``horizon`` steps as one stored sweep; their run records.
        ``evaluations``: how many times each run is evaluated after step 0 (about)."""
        if self.on_stage is not None:
            self.on_stage(label, horizon, members)
        config = replace(self.base, steps=horizon,
                         eval_every=max(1, horizon // max(1, evaluations)))
        stage = {"stage": label, "request": self.request}
        sweep_id = train_members(self.store, self.task, config, members, engine=self.engine,
                                 name=f"advise {self.task.name}: {label}", extra={"advisor": stage},
                                 progress=self.progress, executor=self.executor)
        self.sweep_ids.append(sweep_id)
        self.spent += horizon * len(members)
        wanted = {(m.optimizer, float(m.hparams["lr"]), m.seed) for m in members}
        return [r for r in run_records(self.store, sweep_id)
                if (r["optimizer"], float(r["lr"]), r["seed"]) in wanted]


def _arm_scores(records: Iterable[Mapping], higher_is_better: bool) -> dict[tuple, float]:
    """Each arm's (optimizer, lr) mean tuning score over its seeds; a diverged seed is the
    worst possible value."""
    worst = -math.inf if higher_is_better else math.inf
    scores: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        score = r.get("score", r["metric"])
        if r["diverged"] or score is None or not math.isfinite(score):
            score = worst
        scores[(r["optimizer"], float(r["lr"]))].append(float(score))
    return {arm: float(np.mean(v)) for arm, v in scores.items()}


def _clear_leader(records: Sequence[Mapping], ordered: list[tuple], higher_is_better: bool) -> bool:
    """Whether the leading arm is better than every other arm on every seed (or the other
    diverged): then more rungs cannot change the answer's optimizer."""
    if len(ordered) < 2:
        return True
    per_seed: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in records:
        value = r.get("score", r["metric"])
        bad = r["diverged"] or value is None or not math.isfinite(value)
        per_seed[(r["optimizer"], float(r["lr"]))][r["seed"]] = math.nan if bad else value
    leader = per_seed[ordered[0]]
    if len(leader) < 2 or any(math.isnan(v) for v in leader.values()):
        return False
    for arm in ordered[1:]:
        other = per_seed[arm]
        if all(math.isnan(v) for v in other.values()):
            continue
        for seed, value in leader.items():
            theirs = other.get(seed, math.nan)
            if math.isnan(theirs):
                continue
            gap = value - theirs if higher_is_better else theirs - value
            if not gap > 0:
                return False
    return True


def _members(arms: Iterable[tuple], seeds: int) -> list[Member]:
    return [Member(name, {"lr": lr}, seed) for name, lr in arms for seed in range(seeds)]


def _default_lr(name: str) -> float:
    return float(resolve(name).info.defaults.get("lr") or 1e-3)


def _check_trainable(task: Task, model: str | None) -> None:
    """Fail early, with one line, on a model with no parameters or data it rejects."""
    torch.manual_seed(0)
    net = task.make_model(model)
    if not any(p.requires_grad for p in net.parameters()):
        raise AdvisorError(f"the model of task {task.name!r} has no trainable parameters")
    try:
        loss = task.loss_fn(net(task.x_train[:2]), task.y_train[:2])
    except Exception as err:
        raise AdvisorError(f"the model of task {task.name!r} rejects its data: "
                           f"{type(err).__name__}: {' '.join(str(err).split())[:300]}") from err
    if loss.dim() != 0:
        raise AdvisorError(f"the loss of task {task.name!r} must be a scalar, got shape "
                           f"{tuple(loss.shape)}")


def candidates(optimizers: Sequence[str] | None = None) -> list[str]:
    """The registry names the advisor compares: ``optimizers`` (default
    :data:`DEFAULT_CANDIDATES`), resolved, without repeats, with Adam (the reference)
    added; a wrapper (SAM, Lookahead) is refused, as it needs an inner optimizer."""
    names = list(dict.fromkeys(resolve(n).name for n in (optimizers or DEFAULT_CANDIDATES)))
    if REFERENCE not in names:
        names.append(REFERENCE)
    for name in names:
        if resolve(name).capabilities.wraps:
            raise ValueError(f"{name} wraps another optimizer; name what it wraps instead")
    return names


def steps_for_seconds(task: Task, model: str | None, batch_size: int | None,
                      optimizers: Sequence[str], seconds: float) -> int:
    """A budget in seconds as member-steps: ``seconds`` over the candidates' mean calibrated
    step cost on this model (:func:`~optimlab.bench.cost.step_costs`: one run's step, single
    thread, cached per machine). The population engine steps a member in less time than
    that, so the advisor usually finishes well inside the seconds asked for."""
    from .cost import step_costs

    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a budget in seconds must be > 0, got {seconds!r}")
    costs = step_costs(task, model, batch_size, {n: {"lr": _default_lr(n)} for n in optimizers})
    if not costs:
        raise ValueError(f"no candidate can step this model ({', '.join(optimizers)}), so a "
                         "budget in seconds cannot be turned into steps")
    per_step = float(np.mean([c.seconds for c in costs.values()]))
    return max(1, int(seconds / per_step))


def advise_task(task: str | Task, *, model: str | None = None,
                optimizers: Sequence[str] | None = None, steps: int = 300,
                batch_size: int | None = 100, budget: int | None = None, seeds: int = 3,
                store: RunStore | None = None, progress: Callable[[int], None] | None = None,
                engine: str = "auto", data_dir=None, budget_seconds: float | None = None,
                on_stage: Callable[[str, int, Sequence[Member]], None] | None = None,
                executor=None) -> Advice:
    """Advise on a training-lab task (a name, ``"module:function"`` or a :class:`Task`).

    Args:
        task: what to train.
        model: the task's model (None: its default).
        optimizers: candidates (registry names; default :data:`DEFAULT_CANDIDATES`); Adam,
            the reference, is always added.
        steps, batch_size: the training the recommendation is for.
        budget: member-steps the advisor may spend in all (None: the full :func:`plan`);
            or ``budget_seconds``, converted by :func:`steps_for_seconds`.
        seeds: seeds of the final rung.
        store: where every run is kept (default: ``optimlab-runs.db`` in the working
            directory, as ``optimlab bench``); advising again on the same request reads the
            finished runs back instead of training them again.
        progress: called once per training step of a population (or of one run, where
            the model is trained one run at a time).
        on_stage: called before each stage with its label, horizon and members.
        engine: ``"auto"`` (the population engine, one at a time where it cannot batch the
            model), ``"population"`` or ``"sequential"``.
        executor: where each stage's groups train (:mod:`.executors`: None trains them
            here; a :class:`~.executors.RayExecutor` sends each to a Ray task).

    Raises:
        AdvisorError: no parameters, data the model rejects, no candidate trains at any
            rate, or a budget below the least the plan needs. A run that diverges is
            recorded and the advisor goes on.
    """
    task = get_task(task, data_dir=data_dir) if isinstance(task, str) else task
    names = candidates(optimizers)
    _check_trainable(task, model)
    if budget_seconds is not None:
        if budget is not None:
            raise ValueError("give budget (member-steps) or budget_seconds, not both")
        budget = steps_for_seconds(task, model, batch_size, names, budget_seconds)
    the_plan = plan(steps, len(names), budget, seeds)
    if store is None:
        store = RunStore(DEFAULT_PATH)
    higher = task.metric == "accuracy"
    base = TrainConfig(steps=steps, batch_size=batch_size, model=model)
    request = {"task": task.name, "model": model, "optimizers": names, "steps": steps,
               "batch_size": batch_size, "plan": asdict(the_plan)}
    run = _Run(store, task, base, request, engine, progress, on_stage, executor)

    # Stage 1: the range tests, one population per candidate
    records = run.train("range test", the_plan.range_steps,
                        [Member(n, {"lr": lr}, s) for n in names for lr in the_plan.range_lrs
                         for s in range(the_plan.range_seeds)],
                        evaluations=1)  # its curve reads the losses at the start and end
    tests = {n: RangeTest.of(n, [r for r in records if r["optimizer"] == n]) for n in names}
    trainable = [n for n in names if tests[n].suggested_lr is not None]
    errors = _errors(records, names)
    if not trainable:
        if len(errors) == len(names):
            raise AdvisorError(f"no candidate can run on task {task.name!r}: " + "; ".join(
                f"{n}: {e}" for n, e in errors.items()))
        raise AdvisorError(f"no candidate trains on task {task.name!r}: at every rate from "
                           f"{RANGE[0]:g} to {RANGE[1]:g} the loss ends above its initial "
                           "value or is not finite (check the loss and the data)")

    # Stage 2: successive halving
    arms = []

    def arm(name: str, offset: float) -> tuple[str, float]:
        """The arm ``offset`` decades from ``name``'s suggestion (one formula, so the same
        rate reached twice is the same float)."""
        return name, float(tests[name].suggested_lr * 10 ** offset)

    offset_of = {}
    for n in trainable:
        for o in sorted(the_plan.offsets):
            a = arm(n, o)
            if a[1] <= tests[n].max_stable * (1 + 1e-9):
                arms.append(a)
                offset_of[a] = o
    reference_default = (REFERENCE, _default_lr(REFERENCE))
    status = {n: "cannot run" if n in errors else "cannot train"
              for n in names if n not in trainable}
    rungs = []
    final_records: list[dict] = []
    horizons = list(the_plan.horizons)
    i = 0
    while i < len(horizons):
        horizon = horizons[i]
        last = i == len(horizons) - 1
        seeds_here = the_plan.seeds if last else the_plan.early_seeds
        stage_arms = list(dict.fromkeys(arms + ([reference_default] if last else [])))
        rung_records = run.train(f"rung {i + 1} ({horizon} steps)", horizon,
                                 _members(stage_arms, seeds_here))
        scores = _arm_scores(rung_records, higher)
        ordered = sorted(scores, key=lambda a: -scores[a] if higher else scores[a])
        rungs.append({"horizon": horizon, "seeds": seeds_here,
                      "arms": [{"optimizer": a[0], "lr": a[1], "score": scores[a]}
                               for a in ordered]})
        if last:
            final_records = rung_records
            break
        keep = max(2, math.ceil(len(arms) / ETA))
        clear = _clear_leader(rung_records, ordered, higher)
        if clear:  # the optimizer is clear; its rate still needs the full horizon
            horizons = horizons[:i + 1] + horizons[-1:]
        leader = ordered[0][0]
        kept = [a for a in ordered if a in arms and (not clear or a[0] == leader)][:keep]
        why = {a: "went on" for a in kept}
        adam_arms = [a for a in ordered if a[0] == REFERENCE and a in arms]
        if adam_arms and adam_arms[0] not in kept:
            kept.append(adam_arms[0])  # tuned Adam: the reference reaches the final
            why[adam_arms[0]] = "went on as tuned Adam (the reference)"
        if i + 1 == len(horizons) - 1 and the_plan.lower_rates:
            # Into the final rung, each arm brings the rate LOWER decades below it: the best
            # rate of a longer run is lower (short-horizon bias), the early rungs were
            # shorter than the horizon asked for, and the rates between the tournament's
            # half-decade steps get a look.
            for a in list(kept):
                lower = arm(a[0], offset_of[a] - LOWER)
                if lower not in kept:
                    kept.append(lower)
                    offset_of[lower] = offset_of[a] - LOWER
                    why.setdefault(lower, "went on at a lower rate, for the longer horizon")
        rungs[-1]["clear_leader"] = clear
        for entry in rungs[-1]["arms"]:
            entry["then"] = why.get((entry["optimizer"], entry["lr"]), "out")
        for a in arms:
            if a not in kept and a[0] not in {k[0] for k in kept}:
                status.setdefault(a[0], f"out at rung {i + 1}")
        arms = kept
        i += 1

    # Stage 3: the answer
    default_records = [r for r in final_records
                       if (r["optimizer"], float(r["lr"])) == reference_default]
    tuned = [r for r in final_records if (r["optimizer"], float(r["lr"])) in set(arms)]
    summaries = summarize(tuned, higher)
    ranked = rank(summaries, higher)
    best_label, best = ranked[0]
    if not math.isfinite(best.mean):
        raise AdvisorError(f"every finalist diverged on task {task.name!r} at {steps} steps")
    ties = [s.optimizer for label, s in ranked if label == best_label and s is not best]
    by_name = {s.optimizer: s for s in summaries}
    for label, s in ranked:
        status[s.optimizer] = "final"
    versus = {"adam_default": _versus(best, default_records, higher),
              "adam_tuned": _versus(best, None, higher, by_name.get(REFERENCE))}
    rows = []
    ranks = {s.optimizer: label for label, s in ranked}
    for n in names:
        t, s = tests[n], by_name.get(n)
        rows.append({
            "optimizer": n, "suggested_lr": t.suggested_lr, "fastai_lr": t.fastai_lr,
            "steep_lr": t.steep_lr, "max_stable_lr": t.max_stable,
            "best_lr": s.best_lr if s else None, "metric": s.mean if s else None,
            "ci": s.ci if s else None, "rank": ranks.get(n), "status": status.get(n, "final"),
            "error": errors.get(n)})
    metric = {"name": task.metric, "value": best.mean, "higher_is_better": higher,
              "ci": best.ci, "seeds": best.seeds}
    advice = Advice(task.name, model, best.optimizer, {"lr": best.best_lr}, metric, run.spent,
                    rows, ties, versus, "", steps, batch_size, the_plan, tests, rungs,
                    final_records, run.sweep_ids, getattr(store, "path", None))
    advice.statement = _statement(advice, best)
    advice.answer_sweep_id = _store_answer(store, task, base, request, advice)
    return advice


def _errors(records: Sequence[Mapping], names: Sequence[str]) -> dict[str, str]:
    """The candidates whose every range-test run failed (raised), with the first error:
    they cannot run on this task at all (Muon on a model with biases, say), which is not
    the same as a loss that never falls."""
    errors = {}
    for n in names:
        mine = [r for r in records if r["optimizer"] == n]
        if mine and all(r["status"] == "failed" for r in mine):
            errors[n] = mine[0].get("error") or "no error recorded"
    return errors


def _store_answer(store: RunStore, task: Task, base: TrainConfig, request: dict,
                  advice: Advice) -> int:
    """Keep the answer in the store beside its evidence: a sweep of one finished run (the
    recommendation) whose summary is :meth:`Advice.to_json`. Returns its sweep id."""
    spec = SweepSpec(task=task.name, optimizers=(advice.optimizer,), config=base, seeds=1)
    config = {**spec.stored_config(task), "lrs": None, "seeds": None,
              "advisor": {"stage": "answer", "request": request}}
    sweep_id = store.open_sweep(config, name=f"advise {task.name}: answer")
    member = {"optimizer": advice.optimizer, "hparams": dict(advice.hparams), "seed": 0}
    with store.lock_sweep(sweep_id):
        store.add_runs(sweep_id, [member])
        for run in store.pending_runs(sweep_id):
            store.start_run(run.id)
            store.finish_run(run.id, "finished", summary={
                **advice.to_json(), "final_metric": advice.metric["value"]})
    return sweep_id


def _versus(best, records, higher: bool, reference=None) -> dict | None:
    """The pick against a reference (Adam at its default rate from ``records``, or a given
    summary): the reference's rate and metric and the paired difference pick - reference."""
    if reference is None:
        if not records:
            return None
        (reference,) = summarize(records, higher) or (None,)
        if reference is None:
            return None
    paired = paired_difference(best, reference)
    sign = 1.0 if higher else -1.0  # "better by": positive when the pick is better
    return {"lr": reference.best_lr, "value": reference.mean,
            "better_by": sign * paired.diff if math.isfinite(paired.diff) else None,
            "low": paired.low, "high": paired.high, "distinct": paired.distinct,
            "seeds": paired.seeds}


def difference_words(better_by: float, metric: str, higher_is_better: bool) -> str:
    """The pick's difference from a reference in words, by its direction rather than by
    which way is better: ``"289 lower loss"``, ``"0.05 higher accuracy"``, ``"the same
    loss"``. ``better_by`` is :func:`_versus`'s (positive: the pick is better)."""
    diff = better_by if higher_is_better else -better_by  # pick - reference
    if diff == 0:
        return f"the same {metric}"
    return f"{abs(diff):.3g} {'higher' if diff > 0 else 'lower'} {metric}"


def _statement(advice: Advice, best) -> str:
    """The confidence statement, from the final rung's seeds."""
    name = advice.metric["name"]
    higher = bool(advice.metric.get("higher_is_better", True))
    trained = [c for c in advice.candidates if c["status"] not in ("cannot train", "cannot run")]
    if advice.ties:
        tied = [best.optimizer, *advice.ties]
        who = ", ".join(tied[:-1]) + f" and {tied[-1]}"
        either = "either" if len(tied) == 2 else "any of them"
        text = (f"{who} cannot be told apart here ({name}, paired 95% intervals over "
                f"{best.seeds} seeds): pick {either}; {best.optimizer} has the best mean.")
    elif len([c for c in advice.candidates if c["status"] == "final"]) > 1:
        text = (f"{best.optimizer} is better than every other finalist on {name} (paired "
                f"95% intervals over {best.seeds} seeds).")
    elif len(advice.candidates) == 1:
        text = f"{best.optimizer} was the only candidate."
    elif len(trained) == 1:
        text = f"{best.optimizer} was the only candidate that could train here."
    elif any(r.get("clear_leader") for r in advice.rungs):
        text = f"{best.optimizer} was the clear leader of the tournament."
    else:
        text = f"{best.optimizer} was the only optimizer left in the final rung."
    parts = []
    for key, what in (("adam_default", "Adam at its default lr"), ("adam_tuned", "tuned Adam")):
        v = advice.versus.get(key)
        if best.optimizer == REFERENCE and key == "adam_tuned":
            continue
        if v is None or v.get("better_by") is None:
            continue
        verdict = "" if v["distinct"] else ", not a clear difference"
        parts.append(f"{difference_words(v['better_by'], name, higher)} than {what} "
                     f"(lr={v['lr']:.3g}{verdict})")
    return text + (" " + "; ".join(parts) + "." if parts else "")


# --------------------------------------------------------------------------------------
# Any nn.Module and data
# --------------------------------------------------------------------------------------

def _tensors(data, what: str) -> tuple[Tensor, Tensor]:
    """``(x, y)`` from a pair of tensors or arrays, a ``Dataset`` or a ``DataLoader``."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], tuple):
        return torch.as_tensor(data[0]), torch.as_tensor(data[1])
    loader = data
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(
            data, torch.utils.data.IterableDataset):
        loader = torch.utils.data.DataLoader(data, batch_size=1024, shuffle=False)
    xs, ys = [], []
    try:
        for batch in loader:
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise AdvisorError(f"{what} must give (input, target) pairs, got a "
                                   f"{type(batch).__name__}")
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
    except TypeError as err:
        raise AdvisorError(f"{what} must be (x, y) tensors, a Dataset or a DataLoader of "
                           f"(input, target) pairs; got {type(data).__name__}") from err
    if not xs:
        raise AdvisorError(f"{what} is empty")
    return torch.cat(xs), torch.cat(ys)


def _loss_kind(loss_fn) -> str | Callable:
    """``"cross_entropy"`` or ``"mse"`` for torch's own plain losses (the training lab's fast
    paths), else the callable itself."""
    if loss_fn is F.cross_entropy or (
            isinstance(loss_fn, nn.CrossEntropyLoss) and loss_fn.reduction == "mean"
            and loss_fn.weight is None and loss_fn.label_smoothing == 0
            and loss_fn.ignore_index == -100):
        return "cross_entropy"
    if loss_fn is F.mse_loss or (isinstance(loss_fn, nn.MSELoss) and loss_fn.reduction == "mean"):
        return "mse"
    if not callable(loss_fn):
        raise AdvisorError(f"loss_fn must be callable (output, target) -> scalar, got "
                           f"{type(loss_fn).__name__}")
    return loss_fn


def make_task(model: nn.Module, loss_fn, train_data, val_data=None, metric: str | None = None,
              name: str = "your model", val_fraction: float = 0.2) -> Task:
    """A training-lab :class:`Task` for any ``nn.Module`` and data (see :func:`advise`)."""
    if not isinstance(model, nn.Module):
        raise AdvisorError(f"model must be an nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise AdvisorError("the model has no trainable parameters")
    x, y = _tensors(train_data, "train_data")
    if val_data is None:
        if not 0 < val_fraction < 1 or len(x) < 2:
            raise AdvisorError("give val_data, or train_data with at least two examples")
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        n_val = max(1, int(round(len(x) * val_fraction)))
        x, y, x_val, y_val = x[order[n_val:]], y[order[n_val:]], x[order[:n_val]], \
            y[order[:n_val]]
    else:
        x_val, y_val = _tensors(val_data, "val_data")
    kind = _loss_kind(loss_fn)
    if metric is None:
        metric = "accuracy" if kind == "cross_entropy" else "loss"
    if metric not in ("accuracy", "loss"):
        raise AdvisorError(f"metric must be None, 'accuracy' or 'loss', got {metric!r}")
    if metric == "accuracy" and y.dtype not in (torch.int64, torch.int32, torch.int16,
                                                 torch.uint8):
        raise AdvisorError("metric 'accuracy' needs integer class labels as targets")
    if kind == "cross_entropy" or metric == "accuracy":
        y, y_val = y.long(), y_val.long()
    x = x.float() if x.is_floating_point() else x
    x_val = x_val.float() if x_val.is_floating_point() else x_val
    template = copy.deepcopy(model).cpu()
    return Task(name=name, x_train=x, y_train=y, x_test=x_val, y_test=y_val,
                models={"model": functools.partial(copy.deepcopy, template)},
                default_model="model", loss=kind, metric=metric,
                description="your model and data, given to optimlab.advise")


def advise(model: nn.Module, loss_fn, train_data, val_data=None, metric: str | None = None,
           budget: int | None = None, *, steps: int = 300, batch_size: int | None = None,
           optimizers: Sequence[str] | None = None, seeds: int = 3,
           store: RunStore | None = None,
           progress: Callable[[int], None] | None = None) -> Advice:
    """Which optimizer and learning rate for ``model``, with the evidence.

    Every run starts from a copy of ``model``'s current weights (seeds change the order of
    the mini-batches); the advisor never changes ``model`` itself.

    Args:
        model: any ``nn.Module``.
        loss_fn: ``(output, target) -> scalar`` mean loss, e.g. ``nn.CrossEntropyLoss()``.
        train_data: ``(x, y)`` tensors, a ``Dataset`` or a ``DataLoader`` of pairs (read
            once into memory).
        val_data: the same for validation; None holds out 20% of ``train_data``.
        metric: ``"accuracy"`` or ``"loss"`` on the validation data (None: accuracy for
            cross entropy, else the loss).
        budget: member-steps the advisor may spend (None: its full plan).
        steps: training steps the recommendation is for; ``batch_size`` its mini-batch
            (None: the ``DataLoader``'s, else 100).
        optimizers, seeds, store, progress: as :func:`advise_task`.

    Returns:
        :class:`Advice`; ``str(advice)`` says it in words, ``advice.to_json()`` for programs.
    """
    if batch_size is None:
        batch_size = getattr(train_data, "batch_size", None) or 100
    task = make_task(model, loss_fn, train_data, val_data, metric)
    return advise_task(task, optimizers=optimizers, steps=steps, batch_size=batch_size,
                       budget=budget, seeds=seeds, store=store, progress=progress)
