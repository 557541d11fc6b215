"""What a sweep means: best learning rates, spread over seeds, sensitivity, profiles.

The functions take plain records (one dict per run: optimizer, lr, seed, final metric,
steps to target, wall time, diverged) so they work the same on fresh results and on runs
read back from the store.

Three rules keep the answers honest:

- **A late spike cannot win the tuning.** Each learning rate is scored by the mean over
  seeds of each run's ``score``: the *worst* test metric over the last quarter of its
  evaluations (:data:`CRITERION`), not the last value, so a rate that blew up at 95% of
  the budget and came back loses to one that stayed put. Runs stored before the score
  existed fall back to their final metric.
- **Edges are named.** :attr:`OptimizerSummary.edge` says when the best rate is the lowest or
  the highest of the rates tried: the optimum may lie outside the grid. Where the best
  score ties the grid's end rate (up to the rounding of a mean), that end rate is the best
  rate, so the flag names the rate shown. Given the sweep's grid, ended or not
  (:func:`summarize`'s ``grids``), an edge is an end of that grid: a rate that has not
  ended yet beyond the best is no edge.
- **Ties are said.** :func:`rank` gives each optimizer 1 + the number of optimizers that
  paired comparisons over seeds (:func:`paired_difference`: the same seed means the same
  initial weights and mini-batches) show to be clearly better than it, so two that no
  comparison can tell apart share a rank (``=1``) unless a third is clearly better than one
  and not the other. With more than two optimizers the comparisons are made together at
  a familywise 95% (Holm's step-down): ten optimizers that are all alike make 45 pairs,
  and at 95% each, about three in four such tables would rank some pair apart.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["OptimizerSummary", "Paired", "summarize", "performance_profile", "profile_score",
           "parse_lrs", "repeated_rates", "time_to_target", "mean_ci", "paired_difference",
           "rank", "CRITERION", "CONFIDENCE", "tail_score", "fixed_line", "fixed_text", "variant_label",
           "fastest_to_target", "profile_ratios", "ratio_score", "TIMING_RULE", "costs_tie", "cost_bound",
           "t_p_value",
           "within_rounding", "finite_number", "tidy_rate", "timed_against_fastest", "grids_of"]

#: how a learning rate is chosen (shown under every table that picks one)
CRITERION = "the worst test metric over the last 25% of evaluations, mean over seeds"
#: the share of a run's evaluations (the last ones) that :func:`tail_score` looks at
TAIL = 0.25
#: the level of every confidence interval and paired comparison
CONFIDENCE = 0.95
#: how a performance profile times an optimizer on a workload (:func:`fastest_to_target`)
TIMING_RULE = ("per seed the fastest learning rate's time to the target, then the median over "
               "seeds (AlgoPerf's external tuning ruleset, Dahl et al. 2023: the fastest trial "
               "of each study, the median over studies); a run counts the first time it "
               "reached the target, also where it diverged later (AlgoPerf's time to result); "
               "a seed that no rate brought to the target counts as infinitely slow")
#: values this close (relative to their size) are equal: metrics are stored as float32
#: (about 7 digits), so two equal gaps between them can differ in the last digits
_ROUNDING = 1e-6


def within_rounding(a: float, b: float) -> bool:
    """Whether ``a`` and ``b`` are finite and equal up to the rounding of float32 metrics of
    their size (:data:`_ROUNDING`, relative to the larger): two means of the same seeds'
    values summed in another order, or tied scores at a cut, are not a difference."""
    return math.isfinite(a) and math.isfinite(b) and \
        abs(a - b) <= _ROUNDING * max(abs(a), abs(b), 1e-300)


def finite_number(value) -> bool:
    """A real number (Python's or NumPy's, not a bool or a string) that is finite."""
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def repeated_rates(lrs) -> list[float]:
    """The learning rates that occur more than once in ``lrs`` (as floats), sorted: a
    grid's rate trains once, so a repeat is refused (:func:`parse_lrs`, ``SweepSpec``).
    Rates within a relative 1e-9 of each other are one rate, as the tables take them
    (``0.1`` and ``0.10000000000000002`` trained the same runs twice); the first of them
    is named.

    >>> repeated_rates([0.1, 0.3, 0.10000000000000002])
    [0.1]
    """
    firsts: list[float] = []
    counts: Counter = Counter()
    for lr in (float(lr) for lr in lrs):
        first = next((f for f in firsts if math.isclose(lr, f, rel_tol=1e-9)), None)
        if first is None:
            firsts.append(first := lr)
        counts[first] += 1
    return sorted(lr for lr, n in counts.items() if n > 1)


def tidy_rate(lr: float) -> float:
    """``lr`` without the floating-point drift of the arithmetic that made it: a value that
    rounds, at 12 significant digits, to a decimal of at most 10 is that decimal
    (``9.999999999999999e-06`` -> ``1e-05``, ``100.0000000000001`` -> ``100.0``); any
    other value is returned as it is (a log grid's ``0.00026826957952797245`` keeps its
    digits, and with them the identity of the sweeps stored with it).

    >>> tidy_rate(9.999999999999999e-06), tidy_rate(0.00026826957952797245)
    (1e-05, 0.00026826957952797245)
    """
    lr = float(lr)
    if not math.isfinite(lr) or lr == 0:
        return lr
    short = float(f"{lr:.12g}")
    digits = f"{abs(short):.11e}".split("e")[0].replace(".", "").rstrip("0")
    return short if len(digits) <= 10 else lr


def parse_lrs(text: str, exact: bool = True) -> list[float]:
    """``"1e-4:1e-1:8"`` -> 8 learning rates log-spaced from 1e-4 to 1e-1 (inclusive);
    ``"0.01,0.1"`` -> those values. Every value must be > 0; a range needs LOW <= HIGH and
    COUNT >= 2 (both ends are in the grid), or COUNT 1 with LOW equal to HIGH.

    A range's ends are LOW and HIGH exactly, and its other rates are free of the drift of
    the log spacing (:func:`tidy_rate`), so ``1e-5:1e-4:2`` and ``1e-5,1e-4`` are one grid
    (``np.logspace`` gave ``9.999999999999999e-06``). ``exact=False`` gives a range as
    ``np.logspace`` does, drift and all: the rates optimlab gave it before, which a sweep
    stored then holds (its configuration, and so its identity in the store).

    >>> parse_lrs("1e-5:1e-4:2"), parse_lrs("1e-5:1e-4:2", exact=False)
    ([1e-05, 0.0001], [9.999999999999999e-06, 0.0001])
    """
    text = text.strip()
    try:
        if ":" in text:
            low, high, count = text.split(":")
            low, high, n = float(low), float(high), int(count)
            if n < 1 or not (0 < low <= high):
                raise ValueError
            if n == 1 and low != high:
                raise ValueError(f"learning rates {text!r}: a range from {low:g} to {high:g} "
                                 "needs a COUNT of at least 2 (both ends are tried); for one "
                                 "rate give it alone, e.g. --lrs 0.01")
            values = [low] if n == 1 else [
                float(v) for v in np.logspace(math.log10(low), math.log10(high), n)]
            if exact and n > 1:  # the ends as given; the rates between without drift
                values = [low, *(tidy_rate(v) for v in values[1:-1]), high]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        if str(err).startswith("learning rates "):
            raise
        raise ValueError(f"learning rates must be LOW:HIGH:COUNT with 0 < LOW <= HIGH (e.g. "
                         f"1e-4:1e-1:8) or a comma-separated list of numbers > 0, got "
                         f"{text!r}") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise ValueError(f"learning rates must be > 0, got {text!r}")
    values = [float(v) for v in values]
    repeated = repeated_rates(values)
    if repeated:  # "0.1,0.1" or "0.1:0.1:3": one run would train for each
        raise ValueError(f"learning rates must differ, got {', '.join(f'{v:g}' for v in repeated)} "
                         f"more than once in {text!r}"
                         + (" (a range from a rate to itself holds one rate: COUNT 1)"
                            if ":" in text else ""))
    return values


@dataclass(frozen=True)
class OptimizerSummary:
    """One optimizer over its learning-rate grid and seeds.

    ``sensitivity`` maps each learning rate to the mean (over seeds) of the final metric;
    diverged seeds count as the worst possible value. ``best_lr`` is the rate with the
    best mean :func:`tail_score` (:data:`CRITERION`); among rates that tie for it (equal up
    to the rounding of a mean, :data:`_ROUNDING`) the one on the grid's end where one end is
    among them (the rate ``edge`` flags), else the lowest; ``mean``/``std`` are the final metric
    over the seeds at that rate, ``ci`` the half-width of its :data:`CONFIDENCE` interval
    (Student's t; ``inf`` with one seed), ``per_seed`` those values by seed. ``edge`` is
    ``"low"`` or ``"high"`` when ``best_lr`` is the lowest or highest rate tried (of the
    whole grid, where :func:`summarize` is given it; the grid may not hold the optimum),
    else None.
    """

    optimizer: str
    best_lr: float
    mean: float
    std: float
    seeds: int
    diverged: int
    sensitivity: dict[float, float]
    ci: float = math.inf
    edge: str | None = None
    per_seed: dict[int, float] | None = None

    @property
    def lr_text(self) -> str:
        """The best rate, with the edge it sits on: ``"0.1 (top of grid)"``."""
        mark = {"low": " (bottom of grid)", "high": " (top of grid)"}.get(self.edge or "", "")
        return f"{self.best_lr:.3g}{mark}"


def _no_spread(a: np.ndarray, scale: float | None = None) -> bool:
    """Whether finite values ``a`` are all equal, up to the rounding of float32 metrics of
    size ``scale`` (default: of ``a``'s own size)."""
    scale = float(np.abs(a).max()) if scale is None else scale
    return float(np.ptp(a)) <= _ROUNDING * max(scale, 1e-300)


def mean_ci(values: Sequence[float], level: float = CONFIDENCE) -> tuple[float, float]:
    """The mean of ``values`` and the half-width of its ``level`` confidence interval
    (Student's t with n - 1 degrees of freedom; ``inf`` for fewer than two values, and for
    two values that are equal: an interval of zero width from two equal values is no
    evidence of none, and tables say so (``"2 seeds, all alike: no interval"``,
    :func:`~optimlab.bench.report.mean_text`) rather than show ``± 0``). Three or more
    equal values give a half-width of 0, shown ``± 0``: seeds that all train one run (full
    batch from one start) have no spread, and :func:`paired_difference` then finds no
    difference ``distinct``."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return math.nan, math.inf
    if a.size >= 3 and np.isfinite(a).all() and float(np.ptp(a)) == 0.0:
        return float(a[0]), 0.0  # all equal: exactly that value, "± 0" (not 3e-16)
    # computed on the values scaled by a power of two (exact), so that values near the
    # ends of the float range neither overflow (1e300: a sum of squares of inf) nor lose
    # their digits (1e-320)
    scale = _power_of_two(a)
    a = a / scale
    mean = float(a.mean()) * scale
    if a.size < 2 or not np.isfinite(a).all() or (a.size < 3 and _no_spread(a)):
        return mean, math.inf
    return mean, float(_t_quantile(0.5 + level / 2, a.size - 1) * a.std(ddof=1)
                       / math.sqrt(a.size)) * scale


def _power_of_two(a: np.ndarray) -> float:
    """The power of two nearest above the largest finite magnitude in ``a`` (1.0 where there
    is none, or it is 0): dividing by it is exact and brings every value into [-1, 1]."""
    finite = np.abs(a[np.isfinite(a)])
    largest = float(finite.max()) if finite.size else 0.0
    # (at most 2^1023: 2^1024 is past the float range, and a value near 1.7e308 then scales
    # to just under 2, still far from overflowing)
    return math.ldexp(1.0, min(math.frexp(largest)[1], 1023)) if largest > 0 else 1.0


#: Student's t 0.975-quantiles for 1..30 degrees of freedom (6 digits; a 95% interval)
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
         2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
         2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
         2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def _t_quantile(q: float, df: int) -> float:
    """Student's t quantile: the 95% interval's from a table (importing SciPy for it took
    a second of every ``optimlab bench``), beyond 30 degrees of freedom the Cornish-Fisher
    expansion around the normal quantile (relative error below 1e-6), other levels from SciPy."""
    if abs(q - 0.975) < 1e-12:
        if df <= len(_T975):
            return _T975[df - 1]
        z = 1.959963985
        return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
                + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))
    from scipy.stats import t

    return float(t.ppf(q, df))


def t_p_value(t: float, df: int) -> float:
    """The two-sided p-value of Student's t statistic ``t`` with ``df`` (a whole number of at
    least 1) degrees of freedom: P(|T| >= |t|), from the finite series of Abramowitz and
    Stegun 26.7.3 and 26.7.4 (no SciPy import; checked against ``scipy.stats.t.sf``).

    >>> round(t_p_value(2.776445, 4), 6), round(t_p_value(0.0, 7), 6)
    (0.05, 1.0)
    """
    df = int(df)
    if df < 1:
        raise ValueError(f"degrees of freedom must be a whole number >= 1, got {df}")
    t = abs(float(t))
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    c2, sin = math.cos(theta) ** 2, math.sin(theta)
    term = total = 1.0
    if df % 2:  # odd: (2/pi)(theta + sin cos (1 + 2/3 c2 + 2.4/(3.5) c2^2 + ...))
        for k in range(1, (df - 3) // 2 + 1):
            term *= 2 * k / (2 * k + 1) * c2
            total += term
        inside = 2 / math.pi * (theta + (sin * math.cos(theta) * total if df > 1 else 0.0))
    else:  # even: sin (1 + 1/2 c2 + 1.3/(2.4) c2^2 + ...)
        for k in range(1, (df - 2) // 2 + 1):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        inside = sin * total
    return min(1.0, max(0.0, 1.0 - inside))


def fixed_text(fixed: Mapping | None) -> str:
    """A sweep's fixed hyperparameters of one optimizer, as its first line says them:
    ``"momentum=0.9, betas=(0.8, 0.99)"`` (a stored list shown as the tuple it was); ``""``
    for none."""
    def shown(value):
        return str(tuple(value)) if isinstance(value, list) else str(value)
    return ", ".join(f"{k}={shown(v)}" for k, v in (fixed or {}).items())


def fixed_line(hparams: Mapping[str, Mapping] | None) -> str:
    """Every optimizer's fixed hyperparameters of a sweep, as its first line says them:
    ``"sgd with momentum=0.9; adam with betas=(0.8, 0.99)"``; ``""`` for none."""
    return "; ".join(f"{name} with {fixed_text(hp)}" for name, hp in (hparams or {}).items()
                     if hp)


def variant_label(name: str, fixed: Mapping | None) -> str:
    """An optimizer with the hyperparameters its sweep fixed: ``"sgd (momentum=0.9)"``, or
    just ``"sgd"``; what tells apart the same optimizer run two ways in two sweeps."""
    text = fixed_text(fixed)
    return f"{name} ({text})" if text else name


def tail_score(values: Sequence[float], higher_is_better: bool = True) -> float:
    """A run's score for tuning: the worst of the last :data:`TAIL` share of its evaluated
    metric values (at least the last one); NaN when any of them is not finite."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return math.nan
    tail = a[-max(1, math.ceil(TAIL * a.size)):]
    if not np.isfinite(tail).all():
        return math.nan
    return float(tail.min() if higher_is_better else tail.max())


def _score_of(r: Mapping) -> float | None:
    score = r.get("score")
    return r["metric"] if score is None else score


def grids_of(runs: Iterable) -> dict[str, list[float]]:
    """Per optimizer, every learning rate (finite, > 0) it has a run at, ended or not: the
    grid :func:`summarize` judges an edge against (a sweep adds the runs of its whole grid
    before training, and an extension's before its own). ``runs`` are the store's
    (:meth:`.store.RunStore.list_runs`: ``optimizer`` and ``hparams`` are read).

    >>> from types import SimpleNamespace as Run
    >>> grids_of([Run(optimizer="sgd", hparams={"lr": 0.1}), Run(optimizer="sgd", hparams={"lr": 0.01})])
    {'sgd': [0.01, 0.1]}
    """
    grids: dict[str, set[float]] = defaultdict(set)
    for run in runs:
        lr = run.hparams.get("lr")
        if finite_number(lr) and lr > 0:
            grids[run.optimizer].add(float(lr))
    return {name: sorted(lrs) for name, lrs in grids.items()}


def summarize(records: Iterable[Mapping], higher_is_better: bool = True,
              grids: Mapping[str, Iterable[float]] | None = None) -> list[OptimizerSummary]:
    """Per optimizer: the best learning rate by :data:`CRITERION`, and the final metric
    there (mean, std, confidence interval over seeds).

    ``grids`` gives, per optimizer, every rate of its grid, ended or not (the sweep's own
    and the rates an extension added): an edge (:attr:`OptimizerSummary.edge`) is then an
    end of that grid, so a best rate is flagged only where the grid's end rate on that side
    has ended; a sweep stopped before its top rate ran does not call the highest rate that
    ended the top of its grid. Without it (or for an optimizer it does not name) the grid
    is the rates of ``records``."""
    worst = -math.inf if higher_is_better else math.inf
    grouped: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    scored: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    seeds: dict[str, dict[float, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    diverged: dict[str, int] = defaultdict(int)
    for r in records:
        value, score = r["metric"], _score_of(r)
        lr = float(r["lr"])
        if r.get("diverged") or value is None or not math.isfinite(value):
            diverged[r["optimizer"]] += 1
            value = score = worst
        elif score is None or not math.isfinite(score):
            score = worst
        grouped[r["optimizer"]][lr].append(value)
        scored[r["optimizer"]][lr].append(score)
        if r.get("seed") is not None:
            seeds[r["optimizer"]][lr][int(r["seed"])] = value
    summaries = []
    pick = max if higher_is_better else min
    for name, by_lr in grouped.items():
        means = {lr: float(np.mean(v)) for lr, v in sorted(by_lr.items())}
        scores = {lr: float(np.mean(v)) for lr, v in sorted(scored[name].items())}
        best = pick(scores, key=lambda lr: scores[lr])
        edge = None
        if math.isfinite(scores[best]):
            # the rates that tie for the best, up to the rounding of a mean (the same seeds'
            # values summed in another order differ in the last digit); one end of the grid
            # among them (not both: a grid that scores flat says nothing of a side) may have
            # the optimum beyond it, and is then the best rate, so the rate shown is the one
            # the flag names; otherwise the lowest of them
            tied = sorted(lr for lr, v in scores.items() if within_rounding(v, scores[best]))
            # the grid's ends, matched up to the drift of a rate's arithmetic
            grid = sorted({*means, *(float(lr) for lr in (grids or {}).get(name, ())
                                     if finite_number(lr) and lr > 0)})
            low, high = (any(math.isclose(lr, end, rel_tol=1e-9) for lr in tied)
                         for end in (grid[0], grid[-1]))
            if len(grid) > 1 and not math.isclose(grid[0], grid[-1], rel_tol=1e-9):
                edge = "low" if low and not high else "high" if high and not low else None
            best = tied[-1] if edge == "high" else tied[0]
        values = np.array(by_lr[best])
        finite = np.isfinite(values).all()
        std = float(values.std(ddof=1)) if len(values) > 1 and finite else 0.0
        _, ci = mean_ci(values)
        summaries.append(OptimizerSummary(name, best, means[best], std, len(values),
                                          diverged[name], means, ci, edge,
                                          dict(seeds[name][best]) or None))
    return summaries


@dataclass(frozen=True)
class Paired:
    """A paired comparison of two optimizers over the seeds both have: ``diff`` is the mean
    of (a - b) per seed, ``low``/``high`` its :data:`CONFIDENCE` interval; ``distinct`` is
    True when the interval excludes 0 (the difference is real at this number of seeds)."""

    a: str
    b: str
    diff: float
    low: float
    high: float
    seeds: int
    #: the two-sided p-value of the paired t test (1.0 where the seeds are no evidence of a
    #: difference, 0.0 for a difference the same on three or more seeds); :func:`rank`
    #: orders its comparisons by it (Holm's step-down)
    p: float = 1.0

    @property
    def distinct(self) -> bool:
        """Whether the two can be told apart: two seeds or more, and an interval that
        excludes 0."""
        return self.seeds >= 2 and (self.low > 0 or self.high < 0)


def paired_difference(a: OptimizerSummary, b: OptimizerSummary) -> Paired:
    """Compare ``a`` and ``b`` at their best rates seed by seed (a paired t interval: the
    same seed gives both the same initial weights and the same mini-batches).

    Where the seeds changed nothing (each optimizer's result the same on every seed, as
    full-batch training from one start repeats one run) there is no interval and no
    ``distinct`` difference: the seeds are no evidence, and a gap of float rounding would
    otherwise count as a certain one. Nor is there where the mean difference is within the
    rounding of float32 metrics of their size (:data:`_ROUNDING`), at any number of seeds.
    A difference the same on three or more seeds whose results differ, and larger than
    that rounding, is a consistent one, and distinct; the same on two seeds is not (see
    below)."""
    common = sorted(set(a.per_seed or {}) & set(b.per_seed or {}))
    diffs = [a.per_seed[s] - b.per_seed[s] for s in common]
    if not diffs or not np.isfinite(diffs).all():
        # a diverged seed on one side only is a real difference; on both, none is known
        return Paired(a.optimizer, b.optimizer, math.nan, -math.inf, math.inf, len(common))
    scale = max(abs(v) for s in common for v in (a.per_seed[s], b.per_seed[s]))
    if len(diffs) == 2 and _no_spread(np.asarray(diffs), scale):
        # two equal differences (a gap of one test example on both seeds) give a t interval
        # of zero width, which excludes 0; but the standard deviation of two values that
        # happen to agree is no evidence that the next seed would: not distinct
        return Paired(a.optimizer, b.optimizer, float(np.mean(diffs)), -math.inf, math.inf,
                      len(common))
    mean, half = mean_ci(diffs)
    if half == 0.0 and mean == 0.0:
        return Paired(a.optimizer, b.optimizer, 0.0, 0.0, 0.0, len(common), 1.0)
    if abs(mean) <= _ROUNDING * scale:
        # a mean difference of float32 rounding (one value a unit in the last place above
        # the other on every seed) gives a t interval of (nearly) zero width around it at
        # any number of seeds: no evidence of a difference, only of the rounding
        return Paired(a.optimizer, b.optimizer, mean, -math.inf, math.inf, len(common))
    if len(common) > 1 and len({a.per_seed[s] for s in common}) == 1 \
            and len({b.per_seed[s] for s in common}) == 1:  # one run, repeated
        return Paired(a.optimizer, b.optimizer, mean, -math.inf, math.inf, len(common))
    # the t statistic, from the interval's half-width (mean over the standard error)
    df = len(diffs) - 1
    if df < 1 or not math.isfinite(half):
        p = 1.0
    else:
        p = 0.0 if half == 0.0 else t_p_value(mean * _t_quantile(0.5 + CONFIDENCE / 2, df) / half, df)
    return Paired(a.optimizer, b.optimizer, mean, mean - half, mean + half, len(common), p)


def rank(summaries: Sequence[OptimizerSummary], higher_is_better: bool = True) \
        -> list[tuple[str, OptimizerSummary]]:
    """The summaries best first, each with its rank: 1 + the number of optimizers that are
    clearly better than it: :func:`paired_difference` ``distinct`` in their favour, or
    through a chain of such differences (X clearly above A and A clearly above B puts X
    above B, though X and B alone might not be told apart); an optimizer with no finite mean
    (a diverged seed) is below every one that has one. Two or more with the same rank are
    tied, ``"=1"``; one alone is ``"1"``, ``"2"``...

    The comparisons are held to a familywise :data:`CONFIDENCE` together (Holm's step-down
    over every pair, by :attr:`Paired.p`): with two optimizers that is their one paired
    comparison; with more, a pair's difference must be clearer than alone, so that
    optimizers that are all alike are ranked apart in at most 5% of sweeps, not in most
    of them.

    So optimizers that a paired comparison cannot tell apart share a rank unless a third is
    clearly better than one of them and not the other (A clearly better than C, B
    indistinguishable from both: A and B are ``=1``, C is ``2``), no two that it can tell
    apart share one (but for the cycles below), and the same input gives the same ranks
    whatever its order. Ranks
    may skip numbers and, with noisy seeds, a rank may hold a mean above one ranked higher;
    the list is ordered by rank, then by mean. Where optimizers hold different seeds (an
    unfinished sweep), each pair is compared on the seeds it shares, and those verdicts can
    go round in a circle (A above B, B above C, C above A): such a cycle orders nothing
    among its optimizers, so they share a rank."""
    def key(s: OptimizerSummary) -> float:
        value = s.mean if math.isfinite(s.mean) else (-math.inf if higher_is_better
                                                     else math.inf)
        return -value if higher_is_better else value

    n = len(summaries)
    finite = [math.isfinite(s.mean) for s in summaries]
    # one with a finite mean is above every one without (a diverged seed)
    above = [[finite[i] and not finite[j] for j in range(n)] for i in range(n)]
    pairs = [(i, j, paired_difference(summaries[i], summaries[j]))
             for i in range(n) for j in range(i + 1, n) if finite[i] and finite[j]]
    # a pair with fewer than two seeds in common (an unfinished sweep) cannot be compared at
    # any level: it is no hypothesis of the family, and would only make the others' stricter
    for i, j, pair in _holm([(i, j, pair) for i, j, pair in pairs if pair.seeds >= 2]):
        if pair.low > 0 if higher_is_better else pair.high < 0:
            above[i][j] = True
        elif pair.high < 0 if higher_is_better else pair.low > 0:
            above[j][i] = True
    for k in range(n):  # clear differences chain: X above A and A above B puts X above B
        for i in range(n):
            if above[i][k]:
                for j in range(n):
                    above[i][j] = above[i][j] or (above[k][j] and i != j)
    # seed sets that differ can make the pairwise verdicts contradict each other (A above B,
    # B above C and C above A, each on the seeds that pair shares): the chain then puts each
    # of them above itself. Such a cycle orders nothing, so its optimizers are tied; one
    # above the cycle stays above them all
    above = [[above[i][j] and not above[j][i] for j in range(n)] for i in range(n)]
    ranks = {id(s): 1 + sum(above[i][j] for i in range(n)) for j, s in enumerate(summaries)}
    ordered = sorted(summaries, key=lambda s: (ranks[id(s)], key(s)))
    counts: dict[int, int] = defaultdict(int)
    for s in ordered:
        counts[ranks[id(s)]] += 1
    return [(f"={ranks[id(s)]}" if counts[ranks[id(s)]] > 1 else str(ranks[id(s)]), s)
            for s in ordered]


def _holm(pairs: list[tuple[int, int, Paired]]) -> list[tuple[int, int, Paired]]:
    """The comparisons among ``pairs`` that hold at a familywise :data:`CONFIDENCE` (Holm
    1979: ordered by p-value, the k-th of m is a difference where its p-value is at most
    alpha / (m - k + 1) and every one before it was one; the first that is not ends the
    list). The last step (alpha itself) reads :attr:`Paired.distinct`, the interval's own
    verdict, so two optimizers alone are ranked as one paired comparison says."""
    alpha = 1.0 - CONFIDENCE
    ordered = sorted(pairs, key=lambda ijp: ijp[2].p)
    held = []
    for k, (i, j, pair) in enumerate(ordered):
        left = len(ordered) - k
        if not pair.distinct or (left > 1 and not pair.p <= alpha / left):
            break
        held.append((i, j, pair))
    return held


#: a normal distribution's standard deviation over its interquartile range (1 / 1.349) and
#: the standard error of a median of n draws over sigma / sqrt(n) (sqrt(pi / 2) = 1.2533)
_SIGMA_PER_IQR, _MEDIAN_SE = 1 / 1.349, 1.2533
#: degrees of freedom per round (less one) of sigma estimated as IQR / 1.349: from the
#: quartiles' asymptotic variances (p (1 - p) / (n f^2), their covariance 1/16 / (n f^2),
#: f = 0.3178 the normal density there) its relative variance is 1.36 / n, where the sample
#: standard deviation's is 1 / (2 (n - 1)): the information of (n - 1) / 2.72 of its degrees
_IQR_DF_PER_ROUND = 1 / 2.72


def costs_tie(cost: float, spread: float, rounds: int | None, other: float,
              other_spread: float, other_rounds: int | None) -> bool:
    """Whether a calibration cannot tell two step costs apart.

    A calibrated cost is the median of ``rounds`` timings whose ``spread`` is their
    interquartile range over the median (:class:`.cost.StepCost`). The spread is the
    scatter of *single* rounds; the uncertainty of their median is smaller by about
    sqrt(rounds): its standard error is 1.2533 sigma / sqrt(rounds), sigma = IQR / 1.349
    (a normal's). Two costs tie when they differ by at most :func:`cost_bound` standard
    errors of their difference, sqrt(se^2 + se_other^2): Student's t at :data:`CONFIDENCE`
    with Welch and Satterthwaite's degrees of freedom, each side's (rounds - 1) / 2.72, what
    an IQR's estimate of sigma is worth (:data:`_IQR_DF_PER_ROUND`). The normal's 1.96,
    used until the forty-first session, ignored that the spreads are themselves estimated:
    for two equal costs it declared a difference in 20% of calibrations of 3 rounds and 8%
    of 15 (simulated: normal rounds, 20,000 pairs each); Student's t brings that to at most
    5% (4.3% at 15 rounds, 1.3% at 5; `tests/bench/test_analysis.py` holds it).

    Tying costs within the spreads themselves (the larger over the smaller <= 1 + both
    spreads) tied costs 1.37 times apart under load (spreads 0.19) and let the load reorder
    optimizers that the calibration clearly tells apart; that rule is kept only where a
    cost's rounds are not known (runs stored before ``cost_rounds`` was, or a calibration of
    one round)."""
    low, high = sorted((cost, other))
    spread, other_spread = spread or 0.0, other_spread or 0.0
    if isinstance(rounds, int) and isinstance(other_rounds, int) and min(rounds,
                                                                         other_rounds) >= 2:
        se = _MEDIAN_SE * _SIGMA_PER_IQR * spread * cost / math.sqrt(rounds)
        se_other = _MEDIAN_SE * _SIGMA_PER_IQR * other_spread * other / math.sqrt(other_rounds)
        return high - low <= cost_bound(se, rounds, se_other, other_rounds) * math.hypot(
            se, se_other)
    return high <= low * (1 + spread + other_spread)


def cost_bound(se: float, rounds: int, se_other: float, other_rounds: int) -> float:
    """How many standard errors of their difference two calibrated step costs may differ
    by and tie (:func:`costs_tie`): the 0.975 quantile of Student's t with the degrees of
    freedom of Welch and Satterthwaite, each side's (``rounds`` - 1) / 2.72, rounded down
    (at least 1); the normal's 1.96 where neither has a standard error.

    >>> round(cost_bound(0.01, 15, 0.01, 15), 3)  # 10.3 degrees: 10
    2.228
    >>> round(cost_bound(0.01, 3, 0.0, 15), 3)  # the side without an error adds none
    12.706
    """
    df_one = (rounds - 1) * _IQR_DF_PER_ROUND
    df_other = (other_rounds - 1) * _IQR_DF_PER_ROUND
    scale = max(abs(se), abs(se_other))
    if scale == 0:
        return _t_quantile(0.975, 10**9)
    if not math.isfinite(scale):  # a spread of inf or NaN: the widest bound (NaN ties nothing)
        return _t_quantile(0.975, 1)
    a, b = se / scale, se_other / scale  # in ratios: no overflow at 1e200, no underflow at 1e-200
    df = (a * a + b * b) ** 2 / (a**4 / df_one + b**4 / df_other)
    return _t_quantile(0.975, max(1, math.floor(df)))


def _counted(k) -> bool:
    return finite_number(k) and k > 0


def timed_against_fastest(times: Mapping[str, float],
                          steps: Mapping[str, float] | None = None,
                          spreads: Mapping[str, float] | None = None,
                          rounds: Mapping[str, int] | None = None
                          ) -> tuple[str | None, list[str], dict[str, float], str | None]:
    """How a profile times the optimizers of one workload: ``(fastest, tied, timed, best)``.

    ``fastest`` is the optimizer with the least time (by name among equal times; None for
    no optimizer); ``tied`` the others whose step cost (``time / steps``, calibrated: the
    median of ``rounds`` timings that spread ``spread``) the calibration cannot tell from
    the fastest's (:func:`costs_tie`), sorted; ``timed`` each optimizer's time as the
    profile compares it: for those tied, their steps x the fastest's step cost (only the
    steps tell them from the fastest), for the others their own time; ``best`` the one of
    least ``timed``: the fastest, unless one tied with it took fewer steps (then the one of
    those with the fewest).

    Every optimizer is compared with the fastest alone, never with a third: whether a cost
    ties is decided against the fastest's, so an optimizer's time does not depend on which
    other optimizers the workload has. An optimizer without steps or with a time that is
    not finite and > 0 ties nothing (nor does any where the fastest is such a one). A NaN
    time (no value: a table's missing cell) counts as infinite, never reached, as a run
    that never reached its target does.

    >>> timed_against_fastest({"a": 10.0, "b": 10.5, "c": 11.0}, dict.fromkeys("abc", 10),
    ...                       dict.fromkeys("abc", 0.08), dict.fromkeys("abc", 15))
    ('a', ['b'], {'a': 10.0, 'b': 10.0, 'c': 11.0}, 'a')
    """
    steps, spreads, rounds = steps or {}, spreads or {}, rounds or {}
    if not times:
        return None, [], {}, None
    # NaN compares false with everything: min() would take it for the fastest
    times = {o: math.inf if t != t else t for o, t in times.items()}
    fastest = min(times, key=lambda o: (times[o], o))
    costed = {o: times[o] / steps[o] for o in times
              if _counted(steps.get(o)) and _counted(times[o])}
    tied = []
    if fastest in costed:
        tied = sorted(o for o in costed if o != fastest and costs_tie(
            costed[fastest], spreads.get(fastest, 0.0), rounds.get(fastest),
            costed[o], spreads.get(o, 0.0), rounds.get(o)))
    # steps x the fastest's cost, as the fastest's time x the steps' ratio: the same steps
    # as the fastest give exactly its time
    timed = {o: float(times[fastest]) * (steps[o] / steps[fastest]) if o in tied
             else float(times[o]) for o in times}
    # among equal times the fastest, then one timed at its cost, then by name
    best = min(timed, key=lambda o: (timed[o], o != fastest, o not in tied, o))
    return fastest, tied, timed, best


def profile_ratios(times: Mapping[str, Mapping[str, float]],
                   spreads: Mapping[str, Mapping[str, float]] | None = None,
                   steps: Mapping[str, Mapping[str, float]] | None = None,
                   rounds: Mapping[str, Mapping[str, int]] | None = None
                   ) -> dict[str, list[float]]:
    """Per optimizer, its ratio to the best on each task (in the order of ``times``):
    r = time / best time (Dolan & Moré 2002; AlgoPerf, Dahl et al. 2023), so the best
    has exactly 1 and the ratios order the optimizers transitively; ``inf`` where it never
    reached the target (also where no optimizer did: a workload nobody reached credits
    nobody, and scores 0 for every one).

    ``steps[task][optimizer]`` and ``spreads[task][optimizer]`` (with ``rounds``, where
    known), where given, say what a time is made of: the steps to the target times a
    calibrated step cost (``time / steps``), the median of ``rounds`` timings that spread
    ``spread`` (:class:`.cost.StepCost`). Only the cost's measurement noise is tied, never a
    difference in steps (deterministic for a seed), and each optimizer is compared with the
    fastest (the least time) directly (:func:`timed_against_fastest`): where the
    calibration cannot tell its step cost from the fastest's (:func:`costs_tie`), it is
    timed at the fastest's cost (its steps decide: r = steps / the best's steps), else by
    its own time (r = time / best time). So an optimizer that reaches the target in the
    steps of the fastest at a cost the calibration cannot tell from the fastest's ties it
    (ratio 1) however busy the machine was, whatever other optimizers the task has; 15%
    more steps at such a cost stays 1.15 at any spread. The best is the fastest, unless one
    tied with it took fewer steps: that one is then the best (the fastest's ratio is its
    steps over that one's), and every other ratio is over that one's steps x the fastest's
    cost (:class:`optimlab.bench.profile.Profile`'s notes name each ratio that differs from
    the time over the least time). ``spreads`` without ``steps`` is a ``ValueError`` (a
    time alone cannot say which part is noise); ``steps`` without ``spreads`` ties exactly
    equal costs only.

    Every task must time the same optimizers: one that was not run on a task has no ratio
    there (``inf`` would score it as a failure), so a ragged table is a ``ValueError``;
    :func:`optimlab.bench.profile.build_profile` keeps the optimizers run everywhere.
    """
    if spreads and any(spreads.values()) and steps is None:
        raise ValueError("spreads need the steps each time is made of: only the step costs' "
                         "measurement noise ties, never a difference in steps")
    optimizers = sorted({o for per_task in times.values() for o in per_task})
    for task, per_task in times.items():
        missing = [o for o in optimizers if o not in per_task]
        if missing:
            raise ValueError(f"task {task!r} has no time for {', '.join(missing)}: a "
                             f"performance profile needs the same optimizers on every task")
    ratios: dict[str, list[float]] = {o: [] for o in optimizers}
    for task, per_task in times.items():
        counts = (steps or {}).get(task) or {}
        fastest, tied, timed, best = timed_against_fastest(
            {o: per_task[o] for o in optimizers}, counts, (spreads or {}).get(task),
            (rounds or {}).get(task))
        group = {fastest, *tied} if tied else set()  # timed at the fastest's step cost
        for o in optimizers:
            t, least = timed[o], timed[best]
            if not math.isfinite(t):  # never reached: no credit, even where nobody reached
                ratios[o].append(math.inf)
            elif t == least:  # a target met at the start (time 0) by several ties them at 1
                ratios[o].append(1.0)
            elif least <= 0:
                ratios[o].append(math.inf)
            elif o in group and best in group:
                ratios[o].append(counts[o] / counts[best])  # one cost: by steps, exactly
            else:
                ratios[o].append(t / least)
    return ratios


def ratio_score(ratios: Sequence[float], high: float = 4.0) -> float:
    """The AlgoPerf score of one optimizer from its ratios on the tasks, exactly: the
    integral over tau in [1, ``high``] of the share of tasks with ratio <= tau, divided by
    ``high`` - 1 (a ratio r scores (high - r) / (high - 1), 0 at ``high`` and beyond)."""
    if not len(ratios):
        return math.nan
    return float(np.mean([max(0.0, high - max(r, 1.0)) / (high - 1) if math.isfinite(r)
                          else 0.0 for r in ratios]))


def performance_profile(times: Mapping[str, Mapping[str, float]],
                        taus: Sequence[float] | None = None,
                        spreads: Mapping[str, Mapping[str, float]] | None = None,
                        steps: Mapping[str, Mapping[str, float]] | None = None,
                        rounds: Mapping[str, Mapping[str, int]] | None = None
                        ) -> tuple[np.ndarray, dict]:
    """AlgoPerf's performance profile (Dahl et al. 2023).

    ``times[task][optimizer]`` is the time (or steps) to reach the task's target, ``inf``
    when never reached. For each task r = time / best time over optimizers (where ``steps``
    and ``spreads``, with ``rounds``, say a time is steps x a calibrated step cost, a cost
    the calibration cannot tell from the fastest's is the fastest's: :func:`profile_ratios`);
    the profile of an optimizer is rho(tau) = fraction of tasks with r <= tau. Returns
    ``(taus, rho)``.

    Every task must time the same optimizers (a ragged table is a ``ValueError``, see
    :func:`profile_ratios`).
    """
    taus = np.linspace(1.0, 4.0, 301) if taus is None else np.asarray(taus, dtype=float)
    ratios = profile_ratios(times, spreads, steps, rounds)
    rho = {o: np.array([np.mean([r <= tau for r in ratios[o]]) for tau in taus])
           for o in ratios}
    return taus, rho


def profile_score(taus: np.ndarray, rho: np.ndarray) -> float:
    """The AlgoPerf score: the integral of rho over tau in [1, 4], divided by 3.

    rho is a step function (right-continuous: it rises at a ratio and holds until the
    next), so each sample holds until the next tau: the integral is exact where the ratios
    lie on the taus (the trapezoid rule scored a ratio of exactly 4 0.0017, not 0).
    :func:`ratio_score` is exact for any ratio. A grid that stops before 4 has its last
    sample held out to 4 (rho never falls); one that does not start at 1 is a
    ``ValueError``, since rho between 1 and its first tau is not known."""
    taus, rho = np.asarray(taus, dtype=float), np.asarray(rho, dtype=float)
    if taus.shape != rho.shape or taus.ndim != 1:
        raise ValueError(f"taus and rho must be 1-D of one length, got shapes "
                         f"{list(taus.shape)} and {list(rho.shape)}")
    mask = (taus >= 1) & (taus <= 4)
    x, y = taus[mask], rho[mask]
    if not x.size or x[0] != 1:
        raise ValueError("the taus must include 1 (the AlgoPerf score integrates rho from 1 "
                         f"to 4); they start at {taus.min() if taus.size else None}")
    if x[-1] < 4:
        x = np.append(x, 4.0)
    else:
        y = y[:-1]
    return float(np.sum(y * np.diff(x)) / 3)


def time_to_target(records: Iterable[Mapping], higher_is_better: bool = True,
                   key: str = "time_to_target",
                   grids: Mapping[str, Sequence[float]] | None = None) -> dict[str, float]:
    """Per optimizer: the median over seeds of ``key`` at its best learning rate by the
    tables' tuning criterion (:data:`CRITERION`), as the tables show it: pass the sweep's
    ``grids`` (:func:`grids_of`) as the tables do, which decide a tie at a grid's edge.

    A seed that never reached the target counts as infinitely slow, so the median is
    ``inf`` unless most seeds got there; one that reached it and diverged later counts the
    first time it reached it (AlgoPerf's time to result: the divergence is its own column).
    Profiles time otherwise, by AlgoPerf's rule (:func:`fastest_to_target`).
    """
    records = list(records)
    # the grid decides a tie at its edge (summarize), as the tables are given it
    best = {s.optimizer: s.best_lr for s in summarize(records, higher_is_better, grids=grids)}
    out = {}
    for name, lr in best.items():
        times = [_reached_at(r.get(key)) for r in records
                 if r["optimizer"] == name and float(r["lr"]) == lr]
        out[name] = float(np.median(times)) if times else math.inf
    return out


def _reached_at(value) -> float:
    """A run's stored way to the target (steps, gradients or seconds to its first reach,
    kept also where the run diverged later) as a time: ``inf`` where it never reached."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return math.inf
    return float(value)


def fastest_to_target(records: Iterable[Mapping], key: str = "cost_to_target"
                      ) -> dict[str, float]:
    """Per optimizer: the time to the target that performance profiles use,
    :data:`TIMING_RULE`: for each seed the fastest of its learning rates (``key`` of its
    runs; a run that never reached counts as never, one that reached the target and
    diverged later as the first time it reached it), then the median over the seeds,
    ``inf`` unless most seeds reached the target at some rate.

    This is AlgoPerf's external tuning ruleset (Dahl et al. 2023, "Benchmarking Neural
    Network Training Algorithms", sec. 4: the time of a workload is the fastest trial of
    each study, the median over studies), here a seed standing for a study and the rates
    for its trials. It is not the tables' tuning criterion (:data:`CRITERION`, the rate
    that ends best): a rate that reaches the target first may end worse than another.

    A run that reached the target and diverged afterwards keeps its first reach: AlgoPerf's
    time to result is the first time the target is reached (Dahl et al. 2023, sec. 4), and
    counting it as never scored an optimizer that got there first 0; the divergence is
    shown in the tables' own column, and costs the rate the tuning (:data:`CRITERION`).
    """
    fastest: dict[str, dict] = defaultdict(dict)
    for r in records:
        t = _reached_at(r.get(key))
        seeds = fastest[r["optimizer"]]
        seed = r.get("seed")
        seeds[seed] = min(seeds.get(seed, math.inf), t)
    return {name: float(np.median(list(seeds.values()))) for name, seeds in fastest.items()}
