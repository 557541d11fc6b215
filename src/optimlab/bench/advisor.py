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
reaches, and rate is the only thing that differs between points. The losses at the start
and at the end are both read on the whole train set (not the evaluation subset of
:attr:`~optimlab.bench.trainer.TrainConfig.eval_subset`), so a loss that does not move reads
as not moving. The suggestion
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

:func:`fastai_valley` (fastai's default since 2.4: about halfway down the longest
descending run; fastai's documentation says two thirds, its code takes start + len/3 +
len/6) and :func:`steepest` (the steepest descent of the loss per decade of rate,
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
that optimizer's best arms alone, as many as the plan costed for the final rung. The best
Adam arm always reaches the final rung (tuned Adam, the reference), and so does Adam at its
default rate. Arms whose scores tie at a cut (equal up to float32 rounding,
:data:`~optimlab.bench.analysis._ROUNDING`) are told apart by the smaller learning rate
(the best rate of a longer run is lower), then by the candidates' order, and marked "tied
at the cut": exactly the planned number go on, so the member-steps trained never exceed
:meth:`Plan.cost`, nor ``budget``.
The early rungs train seeds ``0 .. early_seeds - 1`` (at most ``seeds``); the final rung
trains seeds none of the earlier stages trained (:attr:`Plan.final_seeds`), so the final
comparison is not made on the seeds that chose the finalists.

**Stage 3, the answer.** The finalists are ranked as the training lab ranks a sweep
(:func:`~optimlab.bench.analysis.rank`: paired comparisons over seeds, ties said; the
first-ranked finalists whose means are equal up to float32 rounding in the candidates'
order, which the statement names); the recommendation is the first; :class:`Advice` carries
how much better it is than Adam at its defaults and than tuned Adam, which finalists cannot
be told apart, the member-steps spent, code to paste and every candidate's summary;
:meth:`Advice.to_json` is the machine-readable answer. A pick at the top or bottom of the
rates searched (the range test's grid, or its optimizer's rates in the final rung) is
flagged (:attr:`Advice.edge`): the best rate may lie outside the search; the statement says
what became of the nearest rate beyond it that the advisor tried (in a rung, or in the range
test), or that it tried none.

A candidate that cannot take the model's gradients (one of dense gradients only on a model
with ``nn.Embedding(sparse=True)``, SparseAdam where other parameters get dense ones) is
"cannot run" before anything trains, and never trained; where that is Adam, the statement
says Adam could not run, and why, instead of comparing with it.

**What the metric is.** Every rung ranks, and the answer reports, the metric on the
*validation* set (``val_data``; a task's test split): the set that selected the answer. The
value is therefore optimistic for the pick (the best of several finalists on the same
examples); no held-out set is kept back from the selection. Measure the recommendation on
data of your own that the advisor never saw before trusting its value. A validation set of
fewer than :data:`SMALL_VALIDATION` examples is warned of (:class:`AdvisorWarning`).

**Seeds that repeat one run.** A seed changes a run's mini-batch order and, for a task's
own model, its initial weights; :func:`advise` starts every run from your model's weights.
At full batch (``batch_size`` None or at least the training examples) with those weights
and a forward that draws nothing at random (dropout), every seed trains the same run: the
advisor then trains one seed per arm and says "no spread: the seeds repeat one run" instead
of an interval of zero width.

The recommendation is for the horizon asked for (``steps``, ``batch_size``): the best rate
for 300 steps is not the best for 30,000.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._table import listed, one_line
from ..optim.base import ArgumentTypeError, argument_error, check_callable, check_int, is_real
from ..optim.capabilities import SPARSE_ONLY
from ..optim.registry import resolve, work_weight
from .analysis import (
    _ROUNDING,
    CRITERION,
    _score_of,
    paired_difference,
    rank,
    summarize,
    within_rounding,
)
from .executors import check_executor
from .store import DEFAULT_PATH, TERMINAL, RunStore, check_store
from .store.jsonio import json_data
from .sweep import GIVEN_WEIGHTS, SweepSpec, run_records, train_members
from .tasks import Task
from .tasks import get as get_task
from .trainer import (
    TASK_ATTRIBUTES,
    Member,
    TrainConfig,
    full_batch,
    gradient_layouts,
    one_at_a_time,
)

__all__ = ["Advice", "AdvisorError", "AdvisorWarning", "Plan", "RangeTest", "advise", "advise_task",
           "candidates", "make_task", "steps_for_seconds", "DEFAULT_CANDIDATES",
           "difference_words", "fastai_valley", "loss_description", "plan", "steepest",
           "suggest_lr", "versus_words"]

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
#: seeds per arm in the rungs before the last (at most the final rung's ``seeds``)
EARLY_SEEDS = 2
#: a validation set of fewer examples than this is warned of: one example moves an accuracy
#: by more than 1/100, and the sampling error of an accuracy near 0.5 is 0.5/sqrt(n), over
#: 0.05 below 100 examples: differences between finalists that size are noise
SMALL_VALIDATION = 100
#: what :meth:`Advice.to_json` says of the metric's set (``metric["set"]``)
VALIDATION_NOTE = ("the validation set (val_data; a task's test split) that also selected the "
                   "recommendation: an optimistic estimate; measure it on data the advisor "
                   "never saw")
#: a loss above this multiple of the lowest one before it ends the range test's curve
STOP_FACTOR = 4.0
#: evaluations of each tournament run after step 0: the tuning score reads the last 25% of
#: them (:func:`~optimlab.bench.analysis.tail_score`); evaluating took half the advisor's
#: time at 12
EVALUATIONS = 8


class AdvisorError(ValueError):
    """The advisor cannot answer: the model cannot train, or the budget is too small."""


class _AdvisorTypeError(AdvisorError, ArgumentTypeError):
    """An :class:`AdvisorError` about an argument of the wrong kind (``model`` that is no
    ``nn.Module``): a ``TypeError`` too, as :class:`~optimlab.optim.base.ArgumentTypeError`
    is, so code that catches either keeps working."""


class AdvisorWarning(UserWarning):
    """The advisor answers, but its evidence is weak: a small validation set."""


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
    (longest decreasing subsequence ending at each point), and the rate about halfway down it
    (``start + int(len/3) + int(len/6)``, fastai's code; its documentation says two thirds),
    as fastai's ``lr_find`` suggests."""
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

    @property
    def edge(self) -> str | None:
        """``"top"`` or ``"bottom"`` when the suggestion is the grid's highest or lowest rate
        (the curve may still fall beyond it), else None."""
        if self.suggested_lr is None or len(self.lrs) < 2:
            return None
        return "top" if self.suggested_lr == self.lrs[-1] else \
            "bottom" if self.suggested_lr == self.lrs[0] else None

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

    @property
    def final_seeds(self) -> range:
        """The final rung's seeds: ``seeds`` of them after every seed an earlier stage trained
        (the range test's and the early rungs'), so the finalists are compared on seeds that
        did not choose them."""
        first = max(self.range_seeds, self.early_seeds)
        return range(first, first + self.seeds)

    def cost(self, candidates: int | Sequence[str]) -> int:
        """An upper bound of the member-steps this plan trains for ``candidates``: their
        registry names, each member-step weighted by :func:`_weight` (an L-BFGS step
        counts the closure evaluations it may make), or their number (each weighing 1).

        The range test is counted exactly; a later rung, whose arms are not known yet, as
        if its arms were the heaviest candidates' (each with at most its own rates)."""
        if isinstance(candidates, int) and not isinstance(candidates, bool):
            weights = [1.0] * candidates
        else:
            weights = [_weight(n) for n in candidates]
        ref = _weight(REFERENCE)

        def heaviest(arms: int, per_candidate: int) -> float:
            """The most ``arms`` arms can weigh, at most ``per_candidate`` per candidate."""
            pool = sorted((w for w in weights for _ in range(per_candidate)), reverse=True)
            extra = max(0, arms - len(pool)) * max(weights, default=1.0)
            return sum(pool[:arms]) + extra

        total = sum(weights) * len(self.range_lrs) * self.range_steps * self.range_seeds
        per = len(self.offsets)
        arms = len(weights) * per
        for i, horizon in enumerate(self.horizons):
            last = i == len(self.horizons) - 1
            if last and i > 0 and self.lower_rates:  # finalists also run LOWER decades lower
                arms, per = 2 * arms, 2 * per
            refs = 2 if last else 1  # tuned Adam carried along; Adam's default in the final
            total += (heaviest(arms, per) + refs * ref) * \
                (self.seeds if last else self.early_seeds) * horizon
            arms = max(2, math.ceil(arms / ETA)) + 1  # + tuned Adam
        return int(math.ceil(total - 1e-9))

    def largest_group(self) -> int:
        """An upper bound of one optimizer's population in any stage, as members x that
        stage's horizon (the member-steps it trains at once). A rung counts each
        candidate's rates (doubled in the final rung by the lower rates) and the reference
        Adam runs carried along (one, or two in the final rung), at that rung's seeds."""
        worst = len(self.range_lrs) * self.range_seeds * self.range_steps
        per = len(self.offsets)
        for i, horizon in enumerate(self.horizons):
            last = i == len(self.horizons) - 1
            if last and i > 0 and self.lower_rates:
                per = 2 * per
            members = (per + (2 if last else 1)) * (self.seeds if last else self.early_seeds)
            worst = max(worst, members * horizon)
        return worst


def _weight(name: str, hparams: Mapping | None = None) -> float:
    """What one training step of one run of ``name`` counts in member-steps: the
    registry's :func:`~optimlab.optim.registry.work_weight` (1 for a rule that batches,
    more for one stepped member by member, and L-BFGS's for the closure evaluations a step
    may make)."""
    return float(work_weight(name, dict(hparams or {})))




def _check_budget(budget) -> None:
    """Refuse a budget that is not None or a whole number of member-steps >= 1."""
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 1):
        whole = not isinstance(budget, bool) and isinstance(budget, int)
        raise argument_error(whole)(f"budget must be a number of member-steps >= 1, got {budget!r}")


def _horizons(steps: int) -> tuple[int, ...]:
    if steps >= ETA ** 3:
        return (steps // ETA ** 2, steps // ETA, steps)
    if steps >= ETA ** 2:
        return (steps // ETA, steps)
    return (steps,)


def _log_grid(low: float, high: float, per_decade: int) -> tuple[float, ...]:
    count = int(round(math.log10(high / low) * per_decade)) + 1
    return tuple(float(v) for v in np.logspace(math.log10(low), math.log10(high), count))


def plan(steps: int, candidates: int | Sequence[str], budget: int | None = None,
         seeds: int = 3, seconds: float | None = None) -> Plan:
    """The plan for ``candidates`` (registry names, or how many: each then weighs 1) and a
    horizon of ``steps``, shrunk to fit ``budget`` member-steps (None: the full plan),
    member-steps weighted as :meth:`Plan.cost` weighs them.

    The early rungs train :data:`EARLY_SEEDS` seeds, never more than ``seeds``.
    Shrinking goes, until the plan fits: one seed in the early rungs; no lower rates in the
    final rung; three rates per candidate, then two; one range-test rate a decade; two
    final seeds. A budget below
    that raises :class:`AdvisorError` with the least it needs (in seconds too where the
    budget was given as ``seconds``, turned into ``budget`` member-steps).
    """
    check_int("steps", steps, 1)
    check_int("seeds", seeds, 1)
    steps, seeds = int(steps), int(seeds)  # NumPy's as Python's: the plan is stored as JSON
    _check_budget(budget)
    count = candidates if isinstance(candidates, int) else len(candidates)
    full = Plan(steps, _log_grid(*RANGE, PER_DECADE), max(10, min(100, steps // 8)), 1,
                _horizons(steps), OFFSETS, min(EARLY_SEEDS, seeds), seeds)
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
    least = current.cost(candidates)
    many = f"{count} candidates" if count != 1 else "1 candidate"
    fewer = ", or name fewer optimizers" if count > 1 else ""
    # both spellings: plan() is called from Python as well as by `optimlab advise`
    raise_it = f"raise budget= (--budget on the command line){fewer}"
    if seconds is not None:
        raise AdvisorError(
            f"a budget of {seconds:g} s ({budget} member-steps at the calibrated step cost) is "
            f"too small for {many} at {steps} steps: the least this advisor spends "
            f"is {least} member-steps, about {least * seconds / budget:.3g} s of training steps "
            f"alone (the evaluations come on top; {raise_it})")
    raise AdvisorError(
        f"a budget of {budget} member-steps is too small for {many} at "
        f"{steps} steps: the least this advisor spends is {least} "
        f"member-steps ({raise_it})")


# --------------------------------------------------------------------------------------
# The answer
# --------------------------------------------------------------------------------------

@dataclass
class Advice:
    """The advisor's answer and its evidence.

    Attributes:
        task: the task's name; ``model`` its model (None: the default one).
        optimizer: the recommended registry name; ``hparams`` its hyperparameters.
        metric: ``{"name", "value", "higher_is_better", "ci", "seeds", "set"}``: the
            recommendation's final metric on the validation set, mean over the final rung's
            seeds, with its 95% interval; ``set`` says which set that is
            (:data:`VALIDATION_NOTE`): the one that selected it, so the value is optimistic.
        steps_spent: member-steps this call trained, summed over the runs of every stage
            that it trained to the end (finished or diverged); each run's steps weighted
            by its optimizer's :func:`~optimlab.optim.registry.work_weight` (1 for a rule
            that batches; L-BFGS's counts the closure evaluations a step may make). Runs
            read back from the store are not in it (``steps_read_back``), nor runs whose
            training raised (``runs_failed``).
        steps_read_back: the member-steps (weighted alike) of the runs read back from the
            store instead of trained (an earlier call trained them).
        runs_trained, runs_read_back, runs_failed: the runs this call trained to the end,
            those it read back from the store (finished, diverged or failed earlier), and
            those whose training raised in this call.
        candidates: one dict per candidate: its range test's three picks, the tournament's
            best rate and metric (None if it did not reach the final rung), its rank, the
            edges its rates sit on (``range_edge``: the suggestion at the top or bottom of
            the range test; ``final_edge``: its best rate at the top or bottom of its
            final-rung rates), and
            ``status`` (``"final"``, ``"out at rung k"``, ``"cannot train"`` where no
            rate's loss fell, ``"cannot run"`` where every run raised, its ``error`` then
            the first one).
        ties: the finalists that paired comparisons cannot tell apart from the pick.
        edge: where the pick's rate is at an edge of the rates searched, else None:
            ``{"range_test": "top" | "bottom" | None, "final_rung": ...}``, the first for
            the range test's grid (:data:`RANGE`), the second for its optimizer's rates in
            the final rung; the best rate may lie beyond that edge.
        seeds_repeat: why every seed trains the same run (full batch from the given
            weights, nothing random), or that the final rung's seeds came out identical;
            None where seeds differ. Then the spread over seeds says nothing.
        validation_examples: how many examples the validation set holds.
        seconds: the wall-clock seconds this call took (the calibration of a budget in
            seconds, the range test, the rungs and their evaluations; not the report):
            a budget in seconds prices the training steps alone (:func:`steps_for_seconds`).
        versus: ``{"adam_default": ..., "adam_tuned": ...}``: each with the reference's
            ``lr``, ``value`` and the pick's paired difference: ``better_by`` (positive when
            the pick is better, whichever way the metric goes; :func:`difference_words`
            says it by direction), ``low``, ``high`` (the interval of pick - reference),
            ``distinct`` (against tuned Adam, False where the finalists' ranking ties the
            two; ``tied_in_ranking`` True where that alone made it so, the pair's own
            interval excluding zero), ``seeds`` (compared), ``reference_diverged`` (of those, the
            seeds on which the reference diverged and the pick did not: then ``better_by``
            is None and the statement says so) and, apart from them, ``reference_failed``
            (the seeds whose run of the reference raised: it could not run) with the first
            ``reference_error``; None where unknown, or where Adam was not run (it cannot
            run here: its candidate's ``status`` and ``error`` say why).
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
    steps_read_back: int = 0
    runs_trained: int = 0
    runs_read_back: int = 0
    runs_failed: int = 0
    edge: dict | None = None
    seeds_repeat: str | None = None
    validation_examples: int | None = None
    seconds: float | None = None

    @property
    def code(self) -> str:
        """Python that builds the recommended optimizer for a model."""
        def text(hparams: Mapping) -> str:  # rates to 3 digits: 0.0316, not 0.0316227766
            return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}"
                             for k, v in hparams.items())

        entry = resolve(self.optimizer)
        cls = entry.cls
        # the class by the name optimlab exports it under, else by its own module (a
        # plugin's, or one registered in the user's code: optimlab has no such attribute)
        import optimlab
        where = "optimlab" if getattr(optimlab, cls.__name__, None) is cls else cls.__module__
        return (f"import optimlab\n"
                f"optimizer = optimlab.create({self.optimizer!r}, model.parameters(), "
                f"{text(self.hparams)})\n"
                f"# the same: {where}.{cls.__qualname__}(model.parameters(), "
                f"{text({**entry.preset, **self.hparams})})")

    def to_json(self) -> dict:
        """The answer in machine-readable form, as plain JSON data (tuples as lists, a
        non-finite number, such as a diverged rate's range-test loss, as None): what
        ``optimlab advise --json`` writes, ``json.dumps`` of it strict JSON. It leaves out
        :attr:`seconds` (how long this call took), so the same answer read back from the
        store gives the same JSON."""
        return json_data({"optimizer": self.optimizer, "hparams": dict(self.hparams),
                "metric": dict(self.metric), "steps_spent": self.steps_spent,
                "steps_read_back": self.steps_read_back, "runs_trained": self.runs_trained,
                "runs_read_back": self.runs_read_back, "runs_failed": self.runs_failed,
                "candidates": [dict(c) for c in self.candidates], "ties": list(self.ties),
                "versus": self.versus, "statement": self.statement, "task": self.task,
                "model": self.model, "steps": self.steps, "batch_size": self.batch_size,
                "plan": asdict(self.plan), "final_seeds": list(self.plan.final_seeds),
                "code": self.code, "edge": None if self.edge is None else dict(self.edge),
                "seeds_repeat": self.seeds_repeat,
                "validation_examples": self.validation_examples,
                "range_tests": {k: {**asdict(v), "edge": v.edge}
                                for k, v in self.range_tests.items()},
                "rungs": self.rungs, "sweep_ids": list(self.sweep_ids),
                "answer_sweep_id": self.answer_sweep_id,
                "store": self.store_path, "criterion": CRITERION}, finite=True)

    def __str__(self) -> str:
        m = self.metric
        ci = f" ± {m['ci']:.3g}" if math.isfinite(m.get("ci", math.inf)) else ""
        if self.seeds_repeat:
            ci, seeds = "", "no spread: the seeds repeat one run"
        else:
            seeds = f"{m['seeds']} seed{'s' if m['seeds'] != 1 else ''}" \
                + (", 95% interval" if ci else "")
        lines = [f"{self.optimizer} at lr={self.hparams['lr']:.3g}: validation {m['name']} "
                 f"{m['value']:.4g}{ci} ({seeds}, {self.steps} steps; on the set that selected "
                 "it, so optimistic)",
                 self.statement, f"compute spent: {self.compute}"]
        if self.seconds is not None:
            lines.append(f"took {self.seconds:.1f} s (training, evaluating and storing the runs)")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How IPython and Jupyter show the answer as a cell's value: its words
        (:meth:`__str__`), not the dataclass's repr of every field (about 9 KB)."""
        printer.text(str(self) if not cycle else "Advice(...)")

    @property
    def compute(self) -> str:
        """What this call trained and what it read back from the store, in words:
        ``"1,234 member-steps (56 runs trained)"``, ``"0 member-steps: every run (56, 1,234
        member-steps) read back from the store"``."""
        def runs(n: int) -> str:
            return f"{n:,} run{'s' if n != 1 else ''}"

        text = f"{self.steps_spent:,} member-steps"
        if self.runs_read_back and not self.runs_trained and not self.runs_failed:
            text += (f": nothing trained, every run ({self.runs_read_back:,}, "
                     f"{self.steps_read_back:,} member-steps) read back from the store")
        else:
            text += f" ({runs(self.runs_trained)} trained)"
            if self.runs_read_back:
                text += (f"; {runs(self.runs_read_back)} ({self.steps_read_back:,} "
                         "member-steps) read back from the store")
        if self.runs_failed:
            text += f"; {runs(self.runs_failed)} raised an error (not counted)"
        return text


# --------------------------------------------------------------------------------------
# Running the stages
# --------------------------------------------------------------------------------------

class _Watched:
    """A run store that notes the runs started through it: those are the runs a stage
    trained, the others of its sweep were read back. Everything else goes to ``store``."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self.started: set[int] = set()

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def start_run(self, run_id: int) -> None:
        self._store.start_run(run_id)
        self.started.add(run_id)


@dataclass
class _Run:
    """The stages' bookkeeping: where their runs are stored, and what this call trained
    (``spent`` member-steps, weighted by :func:`_weight`, over ``trained`` runs; ``failed``
    runs raised and are not counted) and read back from the store (``read_back`` runs,
    ``steps_read_back`` member-steps)."""

    store: RunStore
    task: Task
    base: TrainConfig
    request: dict
    engine: str
    progress: Callable[[int], None] | None
    on_stage: Callable[[str, int, Sequence[Member]], None] | None = None
    executor: Any = None  # where the groups train (:mod:`.executors`); None: here
    spent: float = 0.0
    steps_read_back: float = 0.0
    trained: int = 0
    read_back: int = 0
    failed: int = 0
    sweep_ids: list[int] = field(default_factory=list)

    def train(self, label: str, horizon: int, members: Sequence[Member],
              evaluations: int = EVALUATIONS, exact: bool = False) -> list[dict]:
        """Train ``members`` for ``horizon`` steps as one stored sweep; their run records.
        ``evaluations``: how many times each run is evaluated after step 0 (about);
        ``exact``: every evaluation reads the whole sets (``eval_subset=None``), so the
        loss at step 0 and the last one are on the same examples."""
        if self.on_stage is not None:
            self.on_stage(label, horizon, members)
        config = replace(self.base, steps=horizon,
                         eval_every=max(1, horizon // max(1, evaluations)))
        if exact:
            config = replace(config, eval_subset=None)
        stage = {"stage": label, "request": self.request}
        watched = _Watched(self.store)
        sweep_id = train_members(watched, self.task, config, members, engine=self.engine,
                                 name=f"advise {self.task.name}: {label}", extra={"advisor": stage},
                                 progress=self.progress, executor=self.executor)
        self.sweep_ids.append(sweep_id)
        wanted = {(m.optimizer, float(m.hparams["lr"]), m.seed) for m in members}

        def key(optimizer: str, hparams: Mapping, seed: int) -> tuple:
            return optimizer, float(hparams["lr"]), seed

        for r in self.store.list_runs(sweep_id, TERMINAL):
            if key(r.optimizer, r.hparams, r.seed) not in wanted:
                continue
            steps = horizon * _weight(r.optimizer, r.hparams)
            if r.id not in watched.started:
                self.read_back += 1
                self.steps_read_back += 0.0 if r.status == "failed" else steps
            elif r.status == "failed":
                self.failed += 1
            else:
                self.trained += 1
                self.spent += steps
        return [r for r in run_records(self.store, sweep_id)
                if key(r["optimizer"], {"lr": r["lr"]}, r["seed"]) in wanted]


def _arm_scores(records: Iterable[Mapping], higher_is_better: bool) -> dict[tuple, float]:
    """Each arm's (optimizer, lr) mean tuning score over its seeds; a diverged seed is the
    worst possible value."""
    worst = -math.inf if higher_is_better else math.inf
    scores: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        score = _score_of(r)  # a run stored before the score existed: its final metric
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
        value = _score_of(r)
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


def _members(arms: Iterable[tuple], seeds: Iterable[int]) -> list[Member]:
    return [Member(name, {"lr": lr}, seed) for name, lr in arms for seed in seeds]


def _seeds_repeat(task: Task, model: str | None, batch_size: int | None) -> str | None:
    """Why every seed would train the same run, or None: a seed draws a run's initial
    weights and its mini-batch order (and whatever the forward draws at random, dropout);
    at full batch (``batch_size`` None or at least the training examples) a factory of
    given weights (:func:`make_task`: your model's) leaves only the forward, which is
    probed: two seeds' forwards and losses on 64 training examples, in training mode, must
    be equal. Optimizers that draw noise (Sophia's probes, PSGD's) seed it from their own
    hyperparameters, not the run's seed."""
    if not full_batch(batch_size, len(task.x_train)):
        return None
    factory = task.models.get(model or task.default_model)
    if getattr(factory, GIVEN_WEIGHTS, False) is not True:
        return None
    outputs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = task.make_model(model)
        net.train()
        try:
            with torch.no_grad():
                out = net(task.x_train[:64])
                outputs.append((out, task.loss_fn(out, task.y_train[:64])))
        except Exception:  # _check_trainable says what is wrong
            return None
    same = all(isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape
               and torch.equal(a, b) for a, b in zip(*outputs))
    return ("full batch from the model's own initial weights, nothing random in its forward"
            if same else None)


def _repeated_seeds(records: Sequence[Mapping]) -> bool:
    """Whether every arm of ``records`` trained two or more seeds that ended identically
    (the same final metric and train loss): seeds that repeat one run."""
    by_arm: dict[tuple, set] = defaultdict(set)
    counts: dict[tuple, int] = defaultdict(int)
    for r in records:
        arm = (r["optimizer"], float(r["lr"]))
        by_arm[arm].add((r.get("metric"), r.get("final_train_loss"), bool(r["diverged"])))
        counts[arm] += 1
    return bool(by_arm) and all(counts[a] > 1 and len(v) == 1 for a, v in by_arm.items())


def _default_lr(name: str) -> float:
    return float(resolve(name).info.defaults.get("lr") or 1e-3)


def _check_trainable(task: Task, model: str | None) -> None:
    """Fail early, with one line, on a model with no parameters or data it rejects. Two
    common mistakes are said with what to change: a forward that returns a tuple or a dict
    (the loss and the accuracy read one tensor of outputs) and float class labels under a
    cross entropy (pass ``y.long()``, as :func:`make_task` says of bool labels)."""
    torch.manual_seed(0)
    net = task.make_model(model)
    if not any(p.requires_grad for p in net.parameters()):
        raise AdvisorError(f"the model of task {task.name!r} has no trainable parameters")
    x, y = task.x_train[:2], task.y_train[:2]
    try:
        out = net(x)
    except Exception as err:
        raise AdvisorError(f"the model of task {task.name!r} rejects its data: "
                           f"{type(err).__name__}: {' '.join(str(err).split())[:300]}") from err
    try:
        loss, failure = task.loss_fn(out, y), None
    except Exception as err:
        failure = err
    error = "" if failure is None else \
        f"{type(failure).__name__}: {' '.join(str(failure).split())[:300]}"
    said = f" ({error})" if error else ""
    if not isinstance(out, Tensor) and (failure is not None or task.metric == "accuracy"):
        part = "[0]" if isinstance(out, (tuple, list)) else \
            f"[{next(iter(out))!r}]" if isinstance(out, Mapping) and out else "..."
        raise AdvisorError(
            f"the model of task {task.name!r} returns a {type(out).__name__}, not a tensor: its "
            "forward must return one tensor of outputs (the logits, for a cross entropy or "
            "accuracy); wrap it in an nn.Module whose forward returns that tensor, e.g. return "
            f"self.model(x){part}{said}") from failure
    if failure is not None:
        entropy = task.loss == "cross_entropy" or _is_cross_entropy(task.loss)
        if entropy and y.is_floating_point() and out.shape != y.shape:
            raise AdvisorError(
                f"the targets of task {task.name!r} are {str(y.dtype).removeprefix('torch.')}, "
                "but a cross entropy takes class labels as integers: pass y.long() for class "
                f"labels (or, for class probabilities, targets of the output's shape){said}"
            ) from failure
        raise AdvisorError(f"the model of task {task.name!r} rejects its data: {error}") \
            from failure
    if loss.dim() != 0:
        raise AdvisorError(f"the loss of task {task.name!r} must be a scalar, got shape "
                           f"{tuple(loss.shape)}")


def _gradient_refusals(task: Task, model: str | None, names: Sequence[str]) -> dict[str, str]:
    """The built-in candidates that cannot take the model's gradients, with why, found
    before anything trains (every run of them would raise, as a run of Adam on a sparse
    embedding raised "Adam does not support sparse gradients"): one that steps dense
    gradients only (``Capabilities.sparse`` False) where a module of the model built with
    ``sparse=True`` (``nn.Embedding``, ``nn.EmbeddingBag``) gives its trained parameters
    sparse ones; one that takes sparse gradients only (SparseAdam) where other trained
    parameters get dense ones, as the command line refuses it (``_check_dense``). An
    optimizer registered by the user is left to its runs: its capabilities are its own
    word."""
    from ..optim.registry import is_builtin

    embedded, dense = gradient_layouts(task.make_model(model))
    why = {}
    for name in names:
        if not is_builtin(name):
            continue
        caps = resolve(name).capabilities
        if embedded and not caps.sparse:
            why[name] = (f"{name} steps dense gradients only, and the model's sparse "
                         "embedding (sparse=True) gives sparse ones, so it was not run (sgd, "
                         "momentum and adagrad take both)")
        elif caps.sparse_only and dense:
            why[name] = (f"{name} {SPARSE_ONLY}, "
                         f"and the model gives dense gradients to {len(dense)} of its "
                         f"{len(embedded) + len(dense)} trained parameters, so it was not run")
    return why


def candidates(optimizers: str | Sequence[str] | None = None) -> list[str]:
    """The registry names the advisor compares: ``optimizers`` (None:
    :data:`DEFAULT_CANDIDATES`; a bare string is one name), resolved, without repeats,
    with Adam (the reference) added; an empty list is refused, and so is a wrapper (SAM,
    Lookahead), as it needs an inner optimizer."""
    if optimizers is None:
        optimizers = DEFAULT_CANDIDATES
    elif isinstance(optimizers, str):
        optimizers = [optimizers]
    else:
        try:
            optimizers = list(optimizers)
        except TypeError:
            raise ArgumentTypeError(f"optimizers must be registry names such as ['adam', "
                                    f"'lion'], got {optimizers!r}") from None
        if not optimizers:
            raise ValueError("optimizers is empty: name at least one (registry names such as "
                             "['adam', 'lion']), or pass None for the default candidates")
        bad = [n for n in optimizers if not isinstance(n, str)]
        if bad:
            raise ArgumentTypeError(f"optimizers must be registry names (strings), got "
                                    f"{bad[0]!r}")
    names = list(dict.fromkeys(resolve(n).name for n in optimizers))
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
    thread, cached per machine), each divided by its work weight, as member-steps are
    weighted (:meth:`Plan.cost`).

    The seconds price the training steps alone. The evaluations (the range test reads the
    whole train set at each run's start and end, every rung's runs are evaluated
    :data:`EVALUATIONS` times), each stage's setup and the report come on top, and on a
    small model or a short horizon they take longer than the steps: ``optimlab advise
    mnist1d --steps 90 --budget 3s`` trained 3,350 member-steps (about 2 s of steps at the
    calibrated cost) and took 39 s, the report not counted, on 2 cores under a load of 5.
    :attr:`Advice.seconds` says how long the advice took."""
    from .cost import step_costs

    if not (is_real(seconds) and math.isfinite(seconds) and seconds > 0):
        raise argument_error(is_real(seconds))(f"a budget in seconds must be > 0, got {seconds!r}")
    costs = step_costs(task, model, batch_size, {n: {"lr": _default_lr(n)} for n in optimizers})
    if not costs:
        raise ValueError(f"no candidate can step this model ({', '.join(optimizers)}), so a "
                         "budget in seconds cannot be turned into steps")
    # a member-step of a heavy rule counts its work weight (:meth:`Plan.cost`): the seconds
    # of one weighted member-step are its step's seconds over its weight
    per_step = float(np.mean([c.seconds / _weight(n, {"lr": _default_lr(n)})
                              for n, c in costs.items()]))
    return max(1, int(seconds / per_step))


@one_at_a_time
def advise_task(task: str | Task, *, model: str | None = None,
                optimizers: str | Sequence[str] | None = None, steps: int = 300,
                batch_size: int | None = 100, budget: int | None = None, seeds: int = 3,
                store: RunStore | None = None, progress: Callable[[int], None] | None = None,
                engine: str = "auto", data_dir=None, budget_seconds: float | None = None,
                on_stage: Callable[[str, int, Sequence[Member]], None] | None = None,
                executor=None) -> Advice:
    """Advise on a training-lab task (a name, ``"module:function"`` or a :class:`Task`).

    Args:
        task: what to train.
        model: the task's model (None: its default).
        optimizers: candidates (registry names, or one name as a string; default
            :data:`DEFAULT_CANDIDATES`; an empty list is refused); Adam, the reference, is
            always added.
        steps, batch_size: the training the recommendation is for.
        budget: member-steps the advisor may spend in all (None: the full :func:`plan`);
            or ``budget_seconds``, converted by :func:`steps_for_seconds`: seconds of
            training steps, the evaluations and setup not counted (they can take longer
            than the steps; :attr:`Advice.seconds` says how long it took). What it trains
            never exceeds it (:attr:`Advice.steps_spent`), ties at a cut included.
        seeds: seeds of the final rung.
        store: where every run is kept (default: ``optimlab-runs.db`` in the working
            directory, as ``optimlab bench``); advising again on the same request (the same
            task, model, data and loss, :func:`loss_description`) reads the finished runs
            back instead of training them again (:attr:`Advice.runs_read_back`).
        progress: called once per training step of a population (or of one run, where
            the model is trained one run at a time).
        on_stage: called before each stage with its label, horizon and members.
        engine: ``"auto"`` (the population engine, one at a time where it cannot batch the
            model), ``"population"`` or ``"sequential"``.
        executor: where each stage's groups train (:mod:`.executors`: None trains them
            here; a :class:`~.executors.RayExecutor` sends each to a Ray task).

    Member-steps (``budget``, :attr:`Advice.steps_spent`) are weighted by each optimizer's
    :func:`~optimlab.optim.registry.work_weight`: a step of a rule that batches counts 1,
    a step of L-BFGS (which evaluates the closure up to ``max_iter`` times) counts as
    much more as its work.

    The caller's random state is left as it was (the work runs under
    :func:`torch.random.fork_rng`).

    Raises:
        AdvisorError: no parameters, data the model rejects, no candidate trains at any
            rate, every finalist diverged or raised, or a budget below the least the plan
            needs. A run that diverges is recorded and the advisor goes on.
        ValueError: an argument out of range (``steps``, ``seeds``, ``budget``,
            ``batch_size``: integers, not bools), an empty ``optimizers``.
    """
    _check_request(steps, seeds, budget, batch_size, budget_seconds)
    check_callable("progress", progress, "called with the number of steps taken")
    check_callable("on_stage", on_stage, "with each stage's label, horizon and members")
    check_executor(executor)
    if not isinstance(task, str) and not all(hasattr(task, a) for a in TASK_ATTRIBUTES):
        raise TypeError(f"task must be a task's name (optimlab.bench.tasks.names()), "
                        f"'package.module:function' or a Task, got {type(task).__name__} "
                        f"{one_line(repr(task), 60)}")
    if store is not None:
        check_store(store, "advise_task")
    names = candidates(optimizers)
    return _forked(task, model, names, steps, batch_size, budget, seeds, store, progress,
                   engine, data_dir, budget_seconds, on_stage, executor, None)


def _forked(*args) -> Advice:
    """:func:`_advise_task` with the caller's random state kept: the advisor seeds torch's
    global generator (each run's initial weights), and the caller's stream is given back as
    it was, on the CPU and on any CUDA device in use."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        return _advise_task(*args)


def _check_request(steps, seeds, budget, batch_size, budget_seconds=None) -> None:
    """The arguments of :func:`advise_task` and :func:`advise`, before anything is read or
    trained (a bool is not a number here: ``steps=True`` is refused, not taken for 1)."""
    check_int("steps", steps, 1)
    check_int("seeds", seeds, 1)
    if batch_size is not None:  # None: the whole training set
        check_int("batch_size", batch_size, 1)
    _check_budget(budget)
    if budget_seconds is not None and not is_real(budget_seconds):
        raise ArgumentTypeError(f"budget_seconds must be a number of seconds, got "
                                f"{budget_seconds!r}")


def _advise_task(task, model, names, steps, batch_size, budget, seeds, store, progress,
                 engine, data_dir, budget_seconds, on_stage, executor, val_what) -> Advice:
    """:func:`advise_task`'s work, its arguments checked and ``optimizers`` resolved;
    ``val_what`` names the validation set in the warning of a small one (None: the task's
    test split)."""
    started = time.perf_counter()
    task = get_task(task, data_dir=data_dir) if isinstance(task, str) else task
    _check_trainable(task, model)
    # candidates that cannot take the model's gradients: "cannot run", and never trained
    refused = _gradient_refusals(task, model, names)
    if len(refused) == len(names):
        raise AdvisorError(f"no candidate can run on task {task.name!r}: " + "; ".join(
            f"{n}: {e}" for n, e in refused.items()))
    runnable = [n for n in names if n not in refused]  # what the plan is sized for
    if budget_seconds is not None:
        if budget is not None:
            raise ValueError("give budget (member-steps) or budget_seconds, not both")
        budget = steps_for_seconds(task, model, batch_size, runnable, budget_seconds)
    # a batch of at least the training set is the full batch: stored (and said) as None
    if full_batch(batch_size, len(task.x_train)):
        batch_size = None
    repeat = _seeds_repeat(task, model, batch_size)
    # every seed would train the same run: one seed, not `seeds` copies of it
    the_plan = plan(steps, runnable, budget, 1 if repeat else seeds, budget_seconds)
    n_val = len(task.x_test)
    if n_val < SMALL_VALIDATION:
        what = val_what or f"the test split of task {task.name!r} (its validation set here)"
        if task.metric == "accuracy":
            noise = (f"one example moves the accuracy by 1/{n_val}, and the sampling error of "
                     f"an accuracy near 0.5 is 0.5/sqrt({n_val}) = {0.5 / math.sqrt(n_val):.2g}: "
                     "differences of that size between finalists are noise")
        else:
            noise = (f"a mean {task.metric} over so few examples is noisy, and small "
                     "differences between finalists may be noise")
        warnings.warn(f"{what} holds {n_val} example{'s' if n_val != 1 else ''}, fewer than "
                      f"{SMALL_VALIDATION}: the advisor ranks every rung and reports its "
                      f"{task.metric} on them; {noise}; give more validation data",
                      AdvisorWarning, stacklevel=4)
    if store is None:
        store = RunStore(DEFAULT_PATH)
    higher = task.metric == "accuracy"
    base = TrainConfig(steps=steps, batch_size=batch_size, model=model)
    # the loss is part of the request: another loss on the same data and model is another
    # sweep, not the stored results of the first
    request = {"task": task.name, "model": model, "optimizers": names, "steps": steps,
               "batch_size": batch_size, "plan": asdict(the_plan),
               "loss": loss_description(task.loss)}
    run = _Run(store, task, base, request, engine, progress, on_stage, executor)

    # Stage 1: the range tests, one population per candidate
    records = run.train("range test", the_plan.range_steps,
                        [Member(n, {"lr": lr}, s) for n in names if n not in refused
                         for lr in the_plan.range_lrs for s in range(the_plan.range_seeds)],
                        evaluations=1,  # its curve reads the losses at the start and end,
                        exact=True)  # both on the whole train set: like with like
    tests = {n: RangeTest.of(n, [r for r in records if r["optimizer"] == n]) for n in names}
    trainable = [n for n in names if tests[n].suggested_lr is not None]
    errors = {**_errors(records, names), **refused}
    if not trainable:
        if len(errors) == len(names):
            raise AdvisorError(f"no candidate can run on task {task.name!r}: " + "; ".join(
                f"{n}: {e}" for n, e in errors.items()))
        raise AdvisorError(f"no candidate trains on task {task.name!r}: at every rate from "
                           f"{RANGE[0]:g} to {RANGE[1]:g} the loss ends no lower than its "
                           "initial value or is not finite (check the loss and the data)")

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
        # the final rung on seeds no earlier stage trained (Plan.final_seeds)
        seeds_here = the_plan.final_seeds if last else range(the_plan.early_seeds)
        # Adam at its default rate as a reference, unless no run of Adam can run
        references = [reference_default] if last and REFERENCE not in errors else []
        stage_arms = list(dict.fromkeys(arms + references))
        rung_records = run.train(f"rung {i + 1} ({horizon} steps)", horizon,
                                 _members(stage_arms, seeds_here))
        scores = _arm_scores(rung_records, higher)
        ordered = sorted(scores, key=lambda a: -scores[a] if higher else scores[a])
        rungs.append({"horizon": horizon, "seeds": len(seeds_here),
                      "seed_list": list(seeds_here),
                      "arms": [{"optimizer": a[0], "lr": a[1], "score": scores[a]}
                               for a in ordered]})
        if last:
            final_records = rung_records
            break
        keep = max(2, math.ceil(len(arms) / ETA))
        clear = _clear_leader(rung_records, ordered, higher)
        if clear:  # the optimizer is clear; its rate still needs the full horizon
            skipped = len(horizons) - (i + 2)
            horizons = horizons[:i + 1] + horizons[-1:]
            for _ in range(skipped):  # as many arms as the plan costed for the final rung
                keep = max(2, math.ceil((keep + 1) / ETA))
        leader = ordered[0][0]
        eligible = [a for a in ordered if a in arms and (not clear or a[0] == leader)]
        kept = eligible[:keep]
        why = {a: "went on" for a in kept}
        if len(eligible) > keep and within_rounding(scores[eligible[keep]], scores[kept[-1]]):
            # a tie at the cut (up to float32 rounding) is broken by the smaller rate, then
            # the candidates' order: exactly `keep` go on, as the plan's cost counts
            cut = scores[kept[-1]]
            tied = [a for a in eligible if within_rounding(scores[a], cut)]
            tied.sort(key=lambda a: (a[1], names.index(a[0])))
            ahead = [a for a in kept if a not in tied]
            kept = ahead + tied[:keep - len(ahead)]
            why = {a: "went on" for a in ahead}
            for a in tied:
                why[a] = "went on (tied at the cut: a smaller rate)" if a in kept else \
                    "out (tied at the cut: a larger rate)"
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
    ranked = _ranked(summaries, higher, names)
    best_label, best = ranked[0]
    if not math.isfinite(best.mean):
        failed = [r for r in tuned if r["status"] == "failed"]
        if failed:
            what = "raised an error" if len(failed) == len(tuned) else "diverged or raised"
            raise AdvisorError(f"every finalist {what} on task {task.name!r} at {steps} "
                               f"steps; the first error: "
                               f"{failed[0].get('error') or 'no error recorded'}")
        raise AdvisorError(f"every finalist diverged on task {task.name!r} at {steps} steps")
    ties = [s.optimizer for label, s in ranked if label == best_label and s is not best]
    by_name = {s.optimizer: s for s in summaries}
    for label, s in ranked:
        status[s.optimizer] = "final"
    versus = {"adam_default": _versus(best, default_records, higher),
              "adam_tuned": _versus_tuned(best, [r for r in tuned if r["optimizer"] == REFERENCE],
                                          higher, by_name.get(REFERENCE), ties)}
    rows = []
    ranks = {s.optimizer: label for label, s in ranked}
    sides = {"low": "bottom", "high": "top"}
    for n in names:
        t, s = tests[n], by_name.get(n)
        rows.append({
            "optimizer": n, "suggested_lr": t.suggested_lr, "fastai_lr": t.fastai_lr,
            "steep_lr": t.steep_lr, "max_stable_lr": t.max_stable,
            "best_lr": s.best_lr if s else None, "metric": s.mean if s else None,
            "ci": s.ci if s else None, "rank": ranks.get(n), "status": status.get(n, "final"),
            "error": errors.get(n), "range_edge": t.edge,
            "final_edge": sides.get(s.edge) if s else None})
    # the pick at an edge of what was searched: its range test's grid, or its optimizer's
    # rates in the final rung (the best rate may lie beyond it)
    edge = {"range_test": tests[best.optimizer].edge, "final_rung": sides.get(best.edge)}
    if not any(edge.values()):
        edge = None
    if repeat is None and _repeated_seeds(final_records):
        repeat = "every finalist's seeds ended identically: they repeat one run"
    metric = {"name": task.metric, "value": best.mean, "higher_is_better": higher,
              "ci": best.ci, "seeds": best.seeds, "set": VALIDATION_NOTE}
    advice = Advice(task.name, model, best.optimizer, {"lr": best.best_lr}, metric,
                    int(round(run.spent)), rows, ties, versus, "", steps, batch_size, the_plan,
                    tests, rungs, final_records, run.sweep_ids, getattr(store, "path", None),
                    edge=edge, seeds_repeat=repeat, validation_examples=n_val,
                    steps_read_back=int(round(run.steps_read_back)), runs_trained=run.trained,
                    runs_read_back=run.read_back, runs_failed=run.failed,
                    seconds=time.perf_counter() - started)
    advice.statement = _statement(advice, best)
    advice.answer_sweep_id = _store_answer(store, task, base, request, advice)
    return advice


def _ranked(summaries: Sequence, higher: bool, names: Sequence[str]) -> list[tuple]:
    """The finalists ranked (:func:`~optimlab.bench.analysis.rank`), with one tie-break
    said in words: the first-ranked finalists whose means are equal up to float32 rounding
    (:func:`~optimlab.bench.analysis.within_rounding`) are put in the candidates' order
    (``names``), so the pick among equal means is the candidate named first, not whichever
    the records listed first."""
    ranked = rank(sorted(summaries, key=lambda s: names.index(s.optimizer)), higher)
    label, first = ranked[0]
    equal = [p for p in ranked if p[0] == label and within_rounding(p[1].mean, first.mean)]
    equal.sort(key=lambda p: names.index(p[1].optimizer))
    return equal + [p for p in ranked if all(p is not q for q in equal)]


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
    summary): the reference's rate and metric and the paired difference pick - reference.
    Of the seeds on which the pick has a value and the reference has none, those whose run
    of the reference raised (``records`` at its rate with status ``failed``) are counted
    apart from those that diverged: ``reference_failed`` with the first ``reference_error``
    (the reference could not run), ``reference_diverged`` (it ran and blew up)."""
    if reference is None:
        if not records:
            return None
        (reference,) = summarize(records, higher) or (None,)
        if reference is None:
            return None
    paired = paired_difference(best, reference)
    sign = 1.0 if higher else -1.0  # "better by": positive when the pick is better
    better = sign * paired.diff if math.isfinite(paired.diff) else None
    if better is not None and abs(better) <= _ROUNDING * max(abs(best.mean), abs(reference.mean),
                                                             1e-300):
        better = 0.0  # float32 rounding of the two means, not a difference
    # seeds on which the reference diverged and the pick did not: no paired difference (it
    # would be infinite), but a result to state rather than leave out
    common = set(best.per_seed or {}) & set(reference.per_seed or {})
    raised = {int(r["seed"]): r.get("error") or "no error recorded" for r in records or ()
              if r.get("status") == "failed" and r.get("seed") is not None
              and math.isclose(float(r["lr"]), reference.best_lr, rel_tol=1e-9)}
    lost = [s for s in sorted(common) if math.isfinite(best.per_seed[s])
            and not math.isfinite(reference.per_seed[s])]
    failed = [s for s in lost if s in raised]
    return {"lr": reference.best_lr, "value": reference.mean, "better_by": better,
            "low": paired.low, "high": paired.high, "distinct": paired.distinct,
            "seeds": paired.seeds, "reference_diverged": len(lost) - len(failed),
            "reference_failed": len(failed),
            "reference_error": raised[failed[0]] if failed else None}


def _versus_tuned(best, records, higher: bool, reference, ties: Sequence[str]) -> dict | None:
    """:func:`_versus` against tuned Adam, a finalist: where the ranks (the finalists' pairs
    held to 95% together, :func:`~optimlab.bench.analysis.rank`) tie it with the pick
    (``ties``), its difference is not ``distinct`` either, though the pair alone may be: the
    answer said "cannot be told apart" of the two and, in the same breath, a clear gain over
    tuned Adam."""
    versus = _versus(best, records, higher, reference)
    if versus is not None and REFERENCE in ties:
        # said where the pair's own interval excludes zero: the table shows that interval
        versus["tied_in_ranking"] = bool(versus["distinct"])
        versus["distinct"] = False
    return versus


def difference_words(better_by: float, metric: str, higher_is_better: bool,
                     scale: float = 0.0) -> str:
    """The pick's difference from a reference in words, by its direction rather than by
    which way is better: ``"289 lower loss"``, ``"0.05 higher accuracy"``, ``"the same
    loss"``. ``better_by`` is :func:`_versus`'s (positive: the pick is better; it is 0
    where the two differ by float32 rounding alone). A difference within that rounding of
    ``scale`` (the size of the values compared, :data:`~optimlab.bench.analysis._ROUNDING`
    of it) is "the same" too. Followed by "than" (:func:`versus_words` adds it, or "as")."""
    diff = better_by if higher_is_better else -better_by  # pick - reference
    if abs(diff) <= _ROUNDING * abs(scale) or diff == 0:
        return f"the same {metric}"
    return f"{abs(diff):.3g} {'higher' if diff > 0 else 'lower'} {metric}"


def versus_words(better_by: float, metric: str, higher_is_better: bool, what: str,
                 scale: float = 0.0) -> str:
    """:func:`difference_words` against ``what``: ``"0.05 higher accuracy than tuned
    Adam"``, ``"the same accuracy as tuned Adam"``."""
    words = difference_words(better_by, metric, higher_is_better, scale)
    return f"{words} {'as' if words.startswith('the same') else 'than'} {what}"


def _statement(advice: Advice, best) -> str:
    """The confidence statement, from the final rung's seeds, on the validation metric (the
    set that selected the pick): the finalists compared by paired 95% intervals (held to 95%
    together, Holm's step-down, with more than two finalists: :func:`.analysis.rank`) over two or
    more seeds; "one seed: no comparison possible" with one; "no spread: the seeds repeat
    one run" where every seed trained the same run (:attr:`Advice.seeds_repeat`); then the
    pick against Adam, and the edge of the search its rate sits on (:attr:`Advice.edge`)."""
    metric = advice.metric["name"]
    name = f"validation {metric}"
    higher = bool(advice.metric.get("higher_is_better", True))
    trained = [c for c in advice.candidates if c["status"] not in ("cannot train", "cannot run")]
    finalists = [c for c in advice.candidates if c["status"] == "final"]
    no_spread = advice.seeds_repeat is not None
    if no_spread:
        basis = f"no spread: the seeds repeat one run ({advice.seeds_repeat})"
    elif best.seeds < 2:
        basis = "one seed: no comparison possible"
    else:
        # the optimizers Holm's family holds: finalists with a finite metric
        compared = [c for c in finalists if isinstance(c.get("metric"), float)
                    and math.isfinite(c["metric"])]
        basis = (f"paired 95% intervals over {best.seeds} seeds" if len(compared) <= 2 else
                 f"paired comparisons over {best.seeds} seeds, 95% familywise (Holm)")
    # finalists whose mean equals the pick's up to float32 rounding: no mean is "the best",
    # and the rule that put the pick first is said (_ranked: the candidates' order)
    same = [best.optimizer] + [c["optimizer"] for c in finalists if c.get("optimizer") !=
                               best.optimizer and isinstance(c.get("metric"), float)
                               and within_rounding(c["metric"], best.mean)]
    first = f"{best.optimizer} comes first in the candidates' order"
    if len(finalists) > 1 and (no_spread or best.seeds < 2):
        text = f"{best.optimizer} has the best {name} of the {len(finalists)} finalists ({basis})."
        if len(same) > 1:
            text = (f"{listed(same)} have the same {name}, the best of the {len(finalists)} "
                    f"finalists ({basis}); {first}.")
    elif advice.ties:
        tied = [best.optimizer, *advice.ties]
        who = listed(tied)
        either = "either" if len(tied) == 2 else "any of them"
        means = f"{best.optimizer} has the best mean" if len(same) == 1 else \
            f"their means are equal, and {first}" if set(same) == set(tied) else \
            f"{listed(same)} have equal means, and {first}"
        text = f"{who} cannot be told apart here ({name}, {basis}): pick {either}; {means}."
    elif len(finalists) > 1:
        text = f"{best.optimizer} is better than every other finalist on {name} ({basis})."
    else:
        if len(advice.candidates) == 1:
            text = f"{best.optimizer} was the only candidate"
        elif len(trained) == 1:
            text = f"{best.optimizer} was the only candidate that could train here"
        elif any(r.get("clear_leader") for r in advice.rungs):
            text = f"{best.optimizer} was the clear leader of the tournament"
        else:
            text = f"{best.optimizer} was the only optimizer left in the final rung"
        text += f" ({basis})." if no_spread or best.seeds < 2 else "."
    parts = []
    adam = next((c for c in advice.candidates if c.get("optimizer") == REFERENCE), {})
    if adam.get("status") == "cannot run" and not any(advice.versus.values()):
        # every run of Adam raised, or none was run: no comparison with it, and why
        parts.append(f"Adam could not run here: {one_line(adam.get('error') or 'no error recorded', 200)}")
    for key, what in (("adam_default", "Adam at its default lr"), ("adam_tuned", "tuned Adam")):
        v = advice.versus.get(key)
        if best.optimizer == REFERENCE and key == "adam_tuned":
            continue
        if v is not None and v.get("better_by") is None and (v.get("reference_diverged")
                                                              or v.get("reference_failed")):
            # a run that raised could not run; one that diverged ran: said apart
            lost = [f"could not run on {v['reference_failed']} of {v['seeds']} seeds"]  \
                if v.get("reference_failed") else []
            if v.get("reference_diverged"):
                lost.append(f"diverged on {v['reference_diverged']} of {v['seeds']} seeds")
            error = f"; {one_line(v.get('reference_error') or 'no error recorded', 200)}" \
                if v.get("reference_failed") else ""
            parts.append(f"{what} {' and '.join(lost)} (lr={v['lr']:.3g}{error})")
            continue
        if v is None or v.get("better_by") is None:
            continue
        verdict = ", no interval" if no_spread or best.seeds < 2 else \
            "" if v["distinct"] else ", not a clear difference"
        parts.append(f"{versus_words(v['better_by'], name, higher, what)} "
                     f"(lr={v['lr']:.3g}{verdict})")
    text += " " + "; ".join(parts) + "." if parts else ""
    return text + _edge_words(advice)


def _edge_words(advice: Advice) -> str:
    """The sentence on the edge of the search the pick's rate sits on, or ``""``."""
    edge = advice.edge or {}
    lr = advice.hparams["lr"]
    where = []
    if edge.get("range_test"):
        test = advice.range_tests.get(advice.optimizer)
        suggested = f" ({test.suggested_lr:.3g})" if test and test.suggested_lr else ""
        where.append(f"the range test's suggestion{suggested} is the {edge['range_test']} of "
                     "its grid")
        if not edge.get("final_rung"):
            where[-1] += f" (the tournament's rates are around it; the pick is lr={lr:.3g})"
    if edge.get("final_rung"):
        where.append(f"lr={lr:.3g} is the {'highest' if edge['final_rung'] == 'top' else 'lowest'}"
                     f" of {advice.optimizer}'s rates in the final rung")
    if not where:
        return ""
    up = (edge.get("final_rung") or edge.get("range_test")) == "top"
    return f" At the edge of the search: {' and '.join(where)}; {_beyond_words(advice, up)}."


def _beyond_words(advice: Advice, up: bool) -> str:
    """What became of the rate nearest the pick's beyond it (above it where ``up``, else
    below) of those the advisor tried for the pick's optimizer: in a rung (the last one it
    ran, its longest horizon), its score against the pick's there; else in the range test,
    whether it trained. "A higher rate may do better, and the advisor did not try one"
    only where it tried none, or where the nearest one did not do worse."""
    name, lr = advice.optimizer, float(advice.hparams["lr"])
    side = "higher" if up else "lower"
    may = f"a {side} rate may do better"

    def beyond(rate) -> bool:
        return rate > lr * (1 + 1e-9) if up else rate < lr * (1 - 1e-9)

    def finite(x) -> bool:
        return isinstance(x, (int, float)) and math.isfinite(x)

    def arm(rung: Mapping, rate: float) -> dict | None:
        return next((a for a in rung["arms"] if a["optimizer"] == name
                     and math.isclose(float(a["lr"]), rate, rel_tol=1e-9)), None)

    test = advice.range_tests.get(name)
    tried = [float(a["lr"]) for rung in advice.rungs for a in rung["arms"]
             if a["optimizer"] == name and beyond(float(a["lr"]))]
    tried += [float(r) for r in (test.lrs if test else ()) if beyond(float(r))]
    if not tried:
        return f"{may}, and the advisor did not try one"
    rate = min(tried, key=lambda r: abs(math.log(r / lr)))
    nearest = f"the nearest {side} rate the advisor tried, {rate:.3g},"
    higher = bool(advice.metric.get("higher_is_better", True))
    for i in reversed(range(len(advice.rungs))):
        rung = advice.rungs[i]
        mine, pick = arm(rung, rate), arm(rung, lr)
        if mine is None:
            continue
        last = i == len(advice.rungs) - 1
        where = "the final rung" if last else f"rung {i + 1}"
        cut = "" if last or not str(mine.get("then", "out")).startswith("out") else \
            " and went no further"
        score = mine["score"]
        if not finite(score):
            return f"{nearest} diverged in {where}{cut}"
        if pick is None or not finite(pick["score"]):
            return f"{nearest} scored {score:.4g} in {where} ({rung['horizon']} steps){cut}"
        worse = not within_rounding(score, pick["score"]) and (score < pick["score"]) == higher
        verdict = "worse" if worse else "the same" if within_rounding(score, pick["score"]) \
            else "better"
        return (f"{nearest} scored {verdict} in {where} ({rung['horizon']} steps: {score:.4g} "
                f"against {pick['score']:.4g} at lr={lr:.3g}){cut}" + ("" if worse else f"; {may}"))
    loss, start = test.losses[test.lrs.index(rate)], test.initial_loss
    steps = f"{advice.plan.range_steps} steps"
    if not math.isfinite(loss):
        return f"{nearest} diverged in the range test ({steps})"
    if not loss < start:
        return (f"{nearest} did not train in the range test ({steps}: its loss ended at "
                f"{loss:.3g}, not below the initial {start:.3g})")
    return (f"{nearest} trained in the range test only ({steps}: its loss fell from {start:.3g} "
            f"to {loss:.3g}); {may}")


# --------------------------------------------------------------------------------------
# Any nn.Module and data
# --------------------------------------------------------------------------------------

def _same_length(x: Tensor, y: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """``(x, y)``, refused with :class:`AdvisorError` naming ``what`` unless they hold as
    many examples (first axis): fewer targets fail deep in the trainer (an index out of
    range), more inputs than targets would leave examples without labels unsaid."""
    nx, ny = (len(t) if t.dim() else None for t in (x, y))
    if nx != ny:
        raise AdvisorError(f"{what} has {nx if nx is not None else 'no'} inputs and "
                           f"{ny if ny is not None else 'no'} targets (along the first axis): "
                           f"x and y must hold one target per example")
    return x, y


def _in_order(loader: torch.utils.data.DataLoader) -> torch.utils.data.DataLoader:
    """A loader that reads what the shuffling ``loader`` reads, in a fixed order: a
    ``DataLoader(shuffle=True)`` (a ``RandomSampler``) gives its ``dataset`` in order, one
    with a ``SubsetRandomSampler`` its indices in ascending order: with the loader's
    ``collate_fn``, batch size and workers, every example once (``drop_last`` would drop
    random ones; a sampler with replacement would repeat some). Any other loader (in order
    already, an ``IterableDataset``, a sampler or batch sampler of your own) is read as it is.
    """
    data = torch.utils.data
    own_batches = loader.batch_size is None and loader.batch_sampler is not None
    if isinstance(loader.dataset, data.IterableDataset) or own_batches:
        return loader
    dataset = loader.dataset
    if type(loader.sampler) is data.SubsetRandomSampler:
        dataset = data.Subset(dataset, sorted(int(i) for i in loader.sampler.indices))
    elif type(loader.sampler) is not data.RandomSampler:
        return loader
    return data.DataLoader(dataset, batch_size=loader.batch_size, shuffle=False,
                           collate_fn=loader.collate_fn, num_workers=loader.num_workers,
                           worker_init_fn=loader.worker_init_fn,
                           multiprocessing_context=loader.multiprocessing_context)


def _tensors(data, what: str) -> tuple[Tensor, Tensor]:
    """``(x, y)`` from a pair of tensors or arrays, a ``Dataset`` or a ``DataLoader``; as
    many targets as inputs (:func:`_same_length`). A shuffling ``DataLoader`` is read in a
    fixed order (:func:`_in_order`), so the same data give the same tensors on every call
    (the held-out split and the stored runs' data digest depend on that order)."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], tuple):
        return _same_length(torch.as_tensor(data[0]), torch.as_tensor(data[1]), what)
    loader = data
    if isinstance(data, torch.utils.data.DataLoader):
        loader = _in_order(data)
    elif isinstance(data, torch.utils.data.Dataset) and not isinstance(
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
    return _same_length(torch.cat(xs), torch.cat(ys), what)


def _is_cross_entropy(loss_fn) -> bool:
    """Whether ``loss_fn`` is a cross entropy, whatever its options: an
    ``nn.CrossEntropyLoss``, ``F.cross_entropy`` or a ``functools.partial`` of either."""
    if isinstance(loss_fn, functools.partial):
        loss_fn = loss_fn.func
    return loss_fn is F.cross_entropy or isinstance(loss_fn, nn.CrossEntropyLoss)


def _reduction(loss_fn) -> str | None:
    """The ``reduction`` a torch loss module (or a partial of a loss function) is set to;
    None where it says none."""
    if isinstance(loss_fn, functools.partial):
        return loss_fn.keywords.get("reduction") if loss_fn.keywords else None
    if isinstance(loss_fn, nn.modules.loss._Loss):
        return loss_fn.reduction
    return None


def _loss_kind(loss_fn, integer_targets: bool = True) -> str | Callable:
    """``"cross_entropy"`` or ``"mse"`` for torch's own plain losses (the training lab's fast
    paths; cross entropy's with class labels only), else the callable itself.

    A loss whose ``reduction`` is not ``"mean"`` (``"sum"``, ``"none"``) is refused: the
    advisor's rates are for the mean loss of a batch, and its validation loss is a mean."""
    if not callable(loss_fn):
        raise AdvisorError(f"loss_fn must be callable (output, target) -> scalar, got "
                           f"{type(loss_fn).__name__}")
    if isinstance(loss_fn, type) and issubclass(loss_fn, nn.Module):
        # the class itself: calling it builds a module from (output, target) as arguments,
        # and the message blamed the model for rejecting its data
        raise AdvisorError(f"loss_fn is the class {loss_fn.__name__}, not a loss: pass an "
                           f"instance, {loss_fn.__name__}()")
    reduction = _reduction(loss_fn)
    if reduction not in (None, "mean"):
        raise AdvisorError(f"loss_fn {loss_description(loss_fn)} has reduction={reduction!r}: "
                           "the advisor needs the mean loss over a batch (its rates are for "
                           "that loss, its validation loss is a mean); pass reduction='mean'")
    if integer_targets and (loss_fn is F.cross_entropy or (
            type(loss_fn) is nn.CrossEntropyLoss and loss_fn.weight is None
            and loss_fn.label_smoothing == 0 and loss_fn.ignore_index == -100)):
        return "cross_entropy"
    if loss_fn is F.mse_loss or type(loss_fn) is nn.MSELoss:
        return "mse"
    return loss_fn


def _simple(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _tensor_text(tensor: Tensor) -> str:
    data = tensor.detach().cpu().contiguous().reshape(-1)
    digest = hashlib.blake2b(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"",
                             digest_size=8).hexdigest()
    return f"tensor({tuple(tensor.shape)}, {tensor.dtype}, {digest})"


def _value_text(value) -> str:
    if isinstance(value, Tensor):
        return _tensor_text(value)
    if _simple(value):
        return repr(value)
    if isinstance(value, (tuple, list)) and all(_simple(v) for v in value):
        return repr(value)
    return loss_description(value)


def loss_description(loss) -> str:
    """What identifies a loss in the store (the advisor's sweeps hold it, so another loss on
    the same data and model is another sweep): the name of a task's built-in loss
    (``"cross_entropy"``, ``"mse"``); a module's class with its settings, buffers and
    parameters (``torch.nn.modules.loss.CrossEntropyLoss(ignore_index=-100,
    label_smoothing=0.1, reduction='mean')``, tensors by shape, dtype and a digest); a
    function's module and qualified name with a digest of its code and of the simple values
    it closes over (two lambdas of one function differ; a function edited is another loss;
    so is, alas, the same one under another Python's bytecode); a ``functools.partial``'s
    function and arguments."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, functools.partial):
        args = [_value_text(a) for a in loss.args]
        args += [f"{k}={_value_text(v)}" for k, v in sorted((loss.keywords or {}).items())]
        return f"partial({loss_description(loss.func)}, {', '.join(args)})"
    cls = type(loss)
    if isinstance(loss, nn.Module):
        parts = []
        for prefix, module in loss.named_modules():
            for k, v in sorted(vars(module).items()):
                if not k.startswith("_") and k != "training" and _simple(v):
                    parts.append(f"{prefix + '.' if prefix else ''}{k}={v!r}")
        parts += [f"{k}={_tensor_text(v)}" for k, v in loss.state_dict(keep_vars=True).items()
                  if isinstance(v, Tensor)]
        return f"{cls.__module__}.{cls.__qualname__}({', '.join(parts)})"
    code = getattr(loss, "__code__", None)
    if code is not None:  # a Python function (or lambda)
        digest = hashlib.blake2b(digest_size=8)
        digest.update(code.co_code)
        digest.update(repr([c for c in code.co_consts if _simple(c)]).encode())
        digest.update(repr(code.co_names).encode())
        for cell in getattr(loss, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            digest.update(repr(value if _simple(value) else type(value).__qualname__).encode())
        name = f"{getattr(loss, '__module__', None) or ''}.{loss.__qualname__}"
        return f"{name}@{digest.hexdigest()}"
    if hasattr(loss, "__qualname__"):  # a builtin
        return f"{getattr(loss, '__module__', None) or ''}.{loss.__qualname__}"
    fields = [f"{k}={_value_text(v)}" for k, v in sorted(vars(loss).items())
              if not k.startswith("_")] if hasattr(loss, "__dict__") else []
    return f"{cls.__module__}.{cls.__qualname__}({', '.join(fields)})"


#: torch's losses of one target per output value: the output and the targets must have one
#: shape (they broadcast otherwise: ``[N, 1]`` against ``[N]`` is an ``[N, N]`` loss)
_ELEMENTWISE = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCELoss,
                nn.BCEWithLogitsLoss)
_ELEMENTWISE_F = (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.binary_cross_entropy,
                  F.binary_cross_entropy_with_logits)


def _shape(t: Tensor) -> str:
    return str(list(t.shape))


def _check_data(model: nn.Module, loss_fn, kind, x: Tensor, y: Tensor, x_val: Tensor,
                y_val: Tensor, val_what: str, split: bool = False) -> None:
    """Refuse, with :class:`AdvisorError` naming ``train_data`` and ``val_what``, data the
    advisor would only find wrong inside its range test (where every run fails and the error
    names the trainer's ``x_test``, ``y_train``):

    * the validation inputs or targets of another shape than the training ones (every axis
      but the first);
    * for a cross entropy (any options), a label of either set outside ``0 .. classes - 1``
      (``ignore_index`` allowed), checked on every label, classes read from the model's
      output on two training examples;
    * for torch's elementwise losses (:data:`_ELEMENTWISE`: ``nn.MSELoss``,
      ``nn.L1Loss``, ...), targets of another shape than the model's output (``[N]``
      targets for an ``[N, 1]`` output broadcast to an ``[N, N]`` loss).

    A model that fails on two training examples is left to :func:`_check_trainable` (its
    error says so). ``split``: the validation data were held out of ``train_data`` (an
    example's index is then not the caller's, and is not said)."""
    for a, b, what in ((x, x_val, "inputs"), (y, y_val, "targets")):
        if a.shape[1:] != b.shape[1:]:
            raise AdvisorError(f"{val_what} and train_data differ in their {what}' shape: "
                               f"{val_what} {_shape(b)}, train_data {_shape(a)} (every axis "
                               "but the first must match)")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:2])
    except Exception:  # the model rejects its data: _check_trainable says how
        return
    finally:
        model.train(was_training)
    if not isinstance(out, Tensor):
        return
    inner = loss_fn.func if isinstance(loss_fn, functools.partial) else loss_fn
    if _is_cross_entropy(loss_fn) and not y.is_floating_point():
        if out.ndim != y.ndim + 1 or out.shape[:-1] != y[:2].shape:
            raise AdvisorError(f"the cross entropy needs logits [..., classes] over the labels' "
                               f"shape: the model gave {_shape(out)} for two examples of "
                               f"train_data whose labels are {_shape(y[:2])}")
        classes = out.shape[-1]
        ignore = getattr(inner, "ignore_index", None) if isinstance(inner, nn.Module) else (
            (loss_fn.keywords or {}).get("ignore_index", -100)
            if isinstance(loss_fn, functools.partial) else -100)
        for labels, what in ((y, "train_data"), (y_val, val_what)):
            bad = ((labels < 0) | (labels >= classes)) & (labels != ignore)
            if bad.any():
                at = int(bad.reshape(len(labels), -1).any(1).nonzero()[0])
                value = int(labels.reshape(-1)[bad.reshape(-1)][0])
                # an example's index where it is the user's (the held-out split reorders)
                at = f" (example {at})" if split is False else ""
                raise AdvisorError(f"{what} holds the label {value}{at} but the "
                                   f"model has {classes} outputs: labels must be 0 .. "
                                   f"{classes - 1}")
        return
    if isinstance(inner, _ELEMENTWISE) or inner in _ELEMENTWISE_F or kind == "mse":
        if out.shape[1:] != y.shape[1:]:
            hint = ""
            if out.shape[1:] == (*y.shape[1:], 1):
                hint = "; give the targets a last axis of 1 (y.unsqueeze(-1))"
            elif y.shape[1:] == (*out.shape[1:], 1):
                hint = "; squeeze the targets' last axis (y.squeeze(-1))"
            label = f"nn.{type(inner).__name__}" if isinstance(inner, nn.Module) else \
                f"F.{getattr(inner, '__name__', 'loss')}"
            raise AdvisorError(f"train_data's targets are {_shape(y)} but the model's output "
                               f"for two examples is {_shape(out)}: {label} needs the output's "
                               f"shape for each example's target (it would broadcast them "
                               f"otherwise){hint}")


def make_task(model: nn.Module, loss_fn, train_data, val_data=None, metric: str | None = None,
              name: str = "your model", val_fraction: float = 0.2) -> Task:
    """A training-lab :class:`Task` for any ``nn.Module`` and data (see :func:`advise`).

    Integer targets (int8 to int64, uint8) are class labels, made int64 for a cross entropy
    or accuracy; bool targets are refused (:class:`AdvisorError`): pass ``y.long()`` for
    class labels or ``y.float()`` for a loss of float targets. Float inputs are made the
    dtype of the model's parameters where they are all of one floating dtype (a
    ``.double()`` model takes float64 inputs), else float32. Data the model or the loss
    cannot take (validation data of another shape, a label out of range in either set,
    targets of another shape than the output under an elementwise loss) are refused here,
    naming ``train_data`` or ``val_data`` (:func:`_check_data`).
    """
    if not isinstance(model, nn.Module):
        raise _AdvisorTypeError(f"model must be an nn.Module, got {type(model).__name__}")
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
    for targets, which in ((y, "train_data"), (y_val, "val_data")):
        if targets.dtype == torch.bool:
            raise AdvisorError(f"the targets of {which} are bool: pass y.long() for class labels "
                               "(a cross entropy of 2 classes) or y.float() for a loss of float "
                               "targets (e.g. nn.BCEWithLogitsLoss)")
    labels = y.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
    kind = _loss_kind(loss_fn, integer_targets=labels)
    if metric is None:  # a cross entropy with any options, of class labels
        metric = "accuracy" if _is_cross_entropy(loss_fn) and labels else "loss"
    if metric not in ("accuracy", "loss"):
        raise AdvisorError(f"metric must be None, 'accuracy' or 'loss', got {metric!r}")
    if metric == "accuracy" and not labels:
        raise AdvisorError("metric 'accuracy' needs integer class labels as targets")
    if labels and (_is_cross_entropy(loss_fn) or metric == "accuracy"):
        y, y_val = y.long(), y_val.long()
    dtypes = {p.dtype for p in model.parameters()}  # one floating dtype: the inputs' too
    dtype = next(iter(dtypes)) if len(dtypes) == 1 else torch.float32
    dtype = dtype if dtype.is_floating_point else torch.float32
    x = x.to(dtype) if x.is_floating_point() else x
    x_val = x_val.to(dtype) if x_val.is_floating_point() else x_val
    template = copy.deepcopy(model).cpu()
    given = "val_data" if val_data is not None else "the validation data held out of train_data"
    _check_data(template, loss_fn, kind, x, y, x_val, y_val, given, split=val_data is None)
    factory = functools.partial(copy.deepcopy, template)
    setattr(factory, GIVEN_WEIGHTS, True)  # its weights are part of the sweeps' identity
    return Task(name=name, x_train=x, y_train=y, x_test=x_val, y_test=y_val,
                models={"model": factory},
                default_model="model", loss=kind, metric=metric,
                description="your model and data, given to optimlab.advise")


@one_at_a_time
def advise(model: nn.Module, loss_fn, train_data, val_data=None, metric: str | None = None,
           budget: int | None = None, *, steps: int = 300, batch_size: int | None = None,
           optimizers: str | Sequence[str] | None = None, seeds: int = 3,
           store: RunStore | None = None,
           progress: Callable[[int], None] | None = None) -> Advice:
    """Which optimizer and learning rate for ``model``, with the evidence.

    Every run starts from a copy of ``model``'s current weights (seeds change the order of
    the mini-batches); the advisor never changes ``model`` itself.

    Args:
        model: any ``nn.Module``.
        loss_fn: ``(output, target) -> scalar`` mean loss, e.g. ``nn.CrossEntropyLoss()``;
            a torch loss with ``reduction="sum"`` (or ``"none"``) is refused
            (:class:`AdvisorError`): the rates the advisor finds are for the mean loss,
            and its validation loss is a mean. The loss is part of what identifies the
            stored runs (:func:`loss_description`).
        train_data: ``(x, y)`` tensors, a ``Dataset`` or a ``DataLoader`` of pairs (read
            once into memory; a shuffling ``DataLoader`` in its dataset's order, so the
            same call gives the same advice and finds its stored runs). Integer targets
            are class labels; bool targets are refused (see :func:`make_task`).
        val_data: the same for validation; None holds out 20% of ``train_data``.
        metric: ``"accuracy"`` or ``"loss"`` on the validation data (None: accuracy for
            a cross entropy, ``nn.CrossEntropyLoss`` with any options or
            ``F.cross_entropy``, of integer class labels; else the loss).
        budget: member-steps the advisor may spend (None: its full plan).
        steps: training steps the recommendation is for; ``batch_size`` its mini-batch
            (None: the ``DataLoader``'s, else 100).
        optimizers, seeds, store, progress: as :func:`advise_task` (``optimizers`` a list of
            registry names, or one name as a string; not empty).

    Member-steps are weighted as :func:`advise_task` says; the caller's random state is
    left as it was.

    Returns:
        :class:`Advice`; ``str(advice)`` says it in words, ``advice.to_json()`` for programs.
    """
    _check_request(steps, seeds, budget, batch_size)
    check_callable("progress", progress, "called with the number of steps taken")
    if store is not None:  # a path given for the store: refused before the data are read
        check_store(store, "advise")
    candidates(optimizers)  # refused before the data are read
    if batch_size is None:
        batch_size = getattr(train_data, "batch_size", None) or 100
    task = make_task(model, loss_fn, train_data, val_data, metric)
    val_what = "val_data" if val_data is not None else \
        "the validation data held out of train_data (val_data=None: 20% of it)"
    return _forked(task, None, candidates(optimizers), steps, batch_size, budget, seeds, store,
                   progress, "auto", None, None, None, None, val_what)
