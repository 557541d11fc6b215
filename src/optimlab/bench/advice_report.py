"""The advisor's answer as a report: one self-contained HTML page that tells its story.

``write_advice_report(advice, store, out_dir)`` writes into ``out_dir``:

``advice.html``
    one page with no external resource (figures embedded as PNG data URIs, no JavaScript),
    in the order the advisor worked: the answer (optimizer, rate, metric with its interval,
    the confidence statement, the compute spent, the horizon, code to paste); stage 1, the
    range tests (figure and the three rules); stage 2, the tournament (a table per rung and
    the final rung's learning curves); stage 3, every candidate and the comparison with
    Adam.
``range-tests.png``
    one small plot per candidate: the train loss each rate's run reached against the rate,
    the loss before training, and the picks of the advisor's rule, fastai's valley and the
    steepest slope.
``tournament.png``
    the successive-halving rungs (each arm's score at each rung it ran) and the final
    rung's validation-metric curves, mean over seeds per arm.
``advice.json``
    ``advice.to_json()`` as strict JSON (indent 2; a non-finite number, such as the range
    test's loss of a rate that diverged or the interval of one seed, as ``null``).

The page's style, tables and figure encoding are :mod:`optimlab.bench.report`'s.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._files import mkdir_failure
from .advisor import (
    ETA,
    LOWER,
    REFERENCE,
    SMALL_VALIDATION,
    STOP_FACTOR,
    Advice,
    RangeTest,
    _edge_words,
    _running_median,
    _truncated,
    difference_words,
)
from .analysis import CONFIDENCE, CRITERION
from .report import (
    _DASH,
    _attr,
    _data_uri,
    _e,
    _html_table,
    _metric_label,
    _no_data,
    _png,
    _pyplot,
    _seed_stats,
    _write,
    mean_digits,
    page_head,
)
from .store import RunStore
from .store.jsonio import strict_json
from .store.server import masked_url

__all__ = ["write_advice_report", "advice_json", "FILES"]

#: what :func:`write_advice_report` writes: key -> file name
FILES = {"report": "advice.html", "range_tests": "range-tests.png",
         "tournament": "tournament.png", "json": "advice.json"}

#: line styles of the rates of one optimizer, lowest rate first
_STYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
_PICKS = (  # (attribute, label, marker, size, filled)
    ("suggested_lr", "ours (lowest smoothed loss that trained)", "*", 17, True),
    ("fastai_lr", "fastai's valley", "v", 10, False),
    ("steep_lr", "steepest slope (torch-lr-finder, Lightning)", "D", 8, False),
)


# ----------------------------------------------------------------------------- helpers


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _lr(x: Any) -> str:
    return f"{x:.3g}" if _finite(x) else _DASH


def _color(name: str) -> str:
    from ..optim.palette import color, label_colors

    try:
        return color(name)
    except ValueError:  # not a registry name (cannot happen for the advisor's candidates)
        return label_colors([name])[name]


def _no_interval(seeds: Any) -> str:
    """Why a mean has no interval, in report.mean_text's words: one seed, or seeds whose
    values are all alike (analysis.mean_ci gives an infinite half-width for both)."""
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        return "no interval"
    return f"{'1 seed' if seeds == 1 else f'{seeds} seeds, all alike'}: no interval"


def _mean_ci(value: Any, ci: Any, digits: int = 4, seeds: Any = None) -> str:
    """``value ± ci`` (the interval to two significant digits); where there is no interval
    and ``seeds`` is given, why not: ``0.97 (2 seeds, all alike: no interval)``."""
    if not _finite(value):
        return _DASH
    if _finite(ci):
        return f"{value:.{digits}g} ± {ci:.2g}"
    return f"{value:.{digits}g}" + (f" ({_no_interval(seeds)})" if seeds is not None else "")


def _same(a: Any, b: Any) -> bool:
    return _finite(a) and _finite(b) and math.isclose(float(a), float(b), rel_tol=1e-9)


def _arm_key(optimizer: str, lr: float) -> tuple[str, float]:
    return optimizer, float(f"{float(lr):.12g}")  # rates recomputed by 10**x compare equal


def _default_lr(advice: Advice) -> float | None:
    v = (advice.versus or {}).get("adam_default")
    return float(v["lr"]) if v and _finite(v.get("lr")) else None


# ----------------------------------------------------------------------------- figures


def _range_figure(advice: Advice):
    plt = _pyplot()
    from matplotlib.lines import Line2D

    names = list(advice.range_tests)
    ncols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(9.0, 4.3 * ncols), 3.5 * nrows + 1.2),
                             layout="constrained", squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    if not names:
        axes.flat[0].set_visible(True)
        _no_data(axes.flat[0], "no range test")
    any_diverged = False
    raised = {c["optimizer"] for c in advice.candidates if c.get("error")}
    for ax, name in zip(axes.flat, names):
        t: RangeTest = advice.range_tests[name]
        col = _color(name)
        lrs = np.asarray(t.lrs, dtype=float)
        losses = np.asarray([v if _finite(v) else np.inf for v in t.losses], dtype=float)
        ok = np.isfinite(losses)
        finite = losses[ok]
        if not finite.size:
            _no_data(ax, "not run: it cannot take this\nmodel's gradients (the table says why)"
                     if not t.lrs else "every run raised an error\n(the table says which)"
                     if name in raised else "every rate diverged")
            ax.set_title(name, color=col, fontweight="bold")
            continue
        values = np.concatenate([finite, [t.initial_loss] if _finite(t.initial_loss) else []])
        log = bool((values > 0).all() and values.max() / values.min() > 10)
        ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        ax.plot(lrs[ok], finite, color=col, marker="o", markersize=3.5, linewidth=1.6,
                zorder=3, gid=f"range:{name}")
        smooth = np.asarray(_running_median([float(v) for v in losses]), dtype=float)
        stop = _truncated(list(smooth))
        ax.plot(lrs[:stop], smooth[:stop], color=col, linestyle=":", linewidth=1.2, alpha=0.8,
                zorder=2)
        if stop < len(lrs):  # what our rule does not look at
            left = math.sqrt(lrs[stop - 1] * lrs[stop]) if stop else lrs[0] / 2
            ax.axvspan(left, lrs[-1] * 2, color="0.92", zorder=0, linewidth=0)
        if _finite(t.initial_loss):
            ax.axhline(t.initial_loss, color="0.35", linestyle="--", linewidth=1)
        if not ok.all():
            any_diverged = True
            ax.plot(lrs[~ok], np.full((~ok).sum(), 0.96), transform=ax.get_xaxis_transform(),
                    linestyle="none", marker="x", markersize=8, markeredgewidth=2, color=col,
                    clip_on=False, zorder=5, gid=f"diverged:{name}")
        lo, hi = float(values.min()), float(values.max())
        if log:
            ax.set_ylim(lo / 1.3, hi * (1.3 if ok.all() else 2.5))
        else:
            span = hi - lo or 1.0
            ax.set_ylim(lo - 0.06 * span, hi + (0.06 if ok.all() else 0.18) * span)
        ax.set_xlim(lrs[0] / 2, lrs[-1] * 2)
        for attr, _, marker, size, filled in _PICKS:
            lr = getattr(t, attr)
            if not _finite(lr):
                continue
            i = int(np.argmin(np.abs(np.log(lrs) - math.log(lr))))
            y = losses[i] if np.isfinite(losses[i]) else (hi if not log else hi * 1.5)
            ax.plot([lr], [y], linestyle="none", marker=marker, markersize=size,
                    markerfacecolor=col if filled else "none", markeredgecolor="black",
                    markeredgewidth=1.1 if filled else 1.5, zorder=6, gid=f"{attr}:{name}")
        picks = ", ".join(f"{label} {_lr(getattr(t, attr))}" for attr, label in
                          (("suggested_lr", "ours"), ("fastai_lr", "fastai"),
                           ("steep_lr", "steepest")))
        title = f"{name}\n{picks}" if t.suggested_lr is not None else \
            f"{name}: cannot train\n(no rate ended below the initial loss)"
        ax.set_title(title, fontsize=9, color=col if t.suggested_lr is not None else "#a33")
        ax.set_xlabel("learning rate")
        ax.grid(True, which="major", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("train loss after the range test")
    handles = [Line2D([], [], color="0.3", marker="o", markersize=3.5,
                      label="final train loss at each rate"),
               Line2D([], [], color="0.3", linestyle=":", label="running median of 3 "
                      "(our rule's curve, up to its stop)"),
               Line2D([], [], color="0.35", linestyle="--", label="loss before training"),
               plt.Rectangle((0, 0), 1, 1, color="0.92",
                             label=f"past our stop rule (> {STOP_FACTOR:g}x the lowest loss "
                                   "before, or not finite)")]
    handles += [Line2D([], [], linestyle="none", marker=m, markersize=s * 0.8,
                       markerfacecolor="0.6" if f else "none", markeredgecolor="black",
                       label=label) for _, label, m, s, f in _PICKS]
    if any_diverged:
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=7,
                              markeredgewidth=2, color="0.3",
                              label="diverged (loss not finite), at the top edge"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3 if ncols > 2 else 2,
               fontsize=8, frameon=False)
    steps = advice.plan.range_steps
    fig.suptitle(f"stage 1: range tests, each rate trained on its own for {steps} steps",
                 fontsize=11)
    return fig


def _final_curves(advice: Advice, store: RunStore) -> dict[tuple[str, float], tuple]:
    """Per final-rung arm: (steps, mean, min, max) of the validation metric (the trainer's
    ``test_metric``: the task's test split is the advisor's validation set) over its seeds."""
    if not advice.final_records or not advice.sweep_ids:
        return {}
    try:
        df = store.metrics(advice.sweep_ids[-1])
    except KeyError:
        return {}
    df = df[df["name"] == "test_metric"]
    if df.empty:
        return {}
    arms: dict[tuple[str, float], set] = defaultdict(set)
    for r in advice.final_records:
        if _finite(r.get("lr")):
            arms[_arm_key(r["optimizer"], r["lr"])].add(int(r["seed"]))
    keys = [_arm_key(o, lr) for o, lr in zip(df["optimizer"], df["lr"])]
    df = df.assign(arm=keys)
    curves = {}
    for arm, seeds in arms.items():
        sub = df[(df["arm"] == arm) & df["seed"].isin(seeds)]
        if sub.empty:
            continue
        wide = sub.pivot_table(index="step", columns="run_id", values="value", dropna=False,
                               aggfunc="first")
        steps = wide.index.to_numpy(dtype=float)
        curves[arm] = (steps, *_seed_stats(wide.to_numpy(dtype=float)), wide.shape[1])
    return curves


def _arm_styles(arms: Sequence[tuple[str, float]]) -> dict[tuple[str, float], Any]:
    by_name: dict[str, list[float]] = defaultdict(list)
    for name, lr in arms:
        by_name[name].append(lr)
    return {(name, lr): _STYLES[sorted(set(rates)).index(lr) % len(_STYLES)]
            for name, rates in by_name.items() for lr in rates}


def _tournament_figure(advice: Advice, store: RunStore):
    plt = _pyplot()
    higher = bool(advice.metric.get("higher_is_better", True))
    metric = _metric_label(advice.metric.get("name", "metric"))
    fig, (hax, cax) = plt.subplots(1, 2, figsize=(12.5, 5.0), layout="constrained",
                                   width_ratios=(1, 1.5))
    pick = _arm_key(advice.optimizer, advice.hparams.get("lr", math.nan))
    default = _default_lr(advice)
    default_arm = _arm_key(REFERENCE, default) if default is not None else None
    all_arms = list(dict.fromkeys(_arm_key(a["optimizer"], a["lr"])
                                  for rung in advice.rungs for a in rung["arms"]))
    styles = _arm_styles(all_arms)
    from ..optim.palette import label_markers  # each optimizer's marker beside its colour

    markers = label_markers(a[0] for a in all_arms)

    # left: successive halving, each arm's score at each rung it ran
    scores: dict[tuple[str, float], list[tuple[int, float]]] = defaultdict(list)
    for i, rung in enumerate(advice.rungs):
        for a in rung["arms"]:
            scores[_arm_key(a["optimizer"], a["lr"])].append((i, a["score"]))
    finite = [s for v in scores.values() for _, s in v if _finite(s)]
    if not finite:
        _no_data(hax, "no rung ended")
    else:
        lo, hi = min(finite), max(finite)
        span = hi - lo or abs(hi) or 1.0
        edge = lo - 0.12 * span if higher else hi + 0.12 * span
        for arm, points in scores.items():
            xs = [i for i, _ in points]
            ys = [s if _finite(s) else edge for _, s in points]
            width = 2.6 if arm == pick else 1.2
            # one line per stretch of consecutive rungs: an arm cut at a rung and back in a
            # later one (Adam at its default rate, a reference in the final) is not joined
            # across the rungs it did not run
            start = 0
            for end in range(1, len(xs) + 1):
                if end < len(xs) and xs[end] == xs[end - 1] + 1:
                    continue
                if end - start > 1:
                    hax.plot(xs[start:end], ys[start:end], color=_color(arm[0]),
                             linestyle=styles[arm], linewidth=width, alpha=0.9,
                             zorder=3 if arm == pick else 2,
                             gid=f"rungs:{arm[0]}:{arm[1]:g}:{xs[start]}")
                start = end
            for x, (_, s) in zip(xs, points):
                bad = not _finite(s)
                hax.plot([x], [edge if bad else s], linestyle="none",
                         marker="x" if bad else markers[arm[0]], markersize=7 if bad else 4.5,
                         markeredgewidth=2 if bad else 1, color=_color(arm[0]), zorder=4)
        if any(not _finite(s) for v in scores.values() for _, s in v):
            hax.axhline(edge, color="0.6", linewidth=0.8, linestyle=":")
            hax.annotate("diverged", (0.01, edge), xycoords=("axes fraction", "data"),
                         fontsize=8, color="0.4", va="bottom")
        hax.set_xticks(range(len(advice.rungs)),
                       [f"rung {i + 1}\n{r['horizon']} steps, {r['seeds']} seeds"
                        for i, r in enumerate(advice.rungs)], fontsize=8)
        hax.set_xlim(-0.3, len(advice.rungs) - 0.7)
        hax.set_ylabel(f"score: worst validation {metric} over the last 25%")
        from matplotlib.lines import Line2D

        names = list(dict.fromkeys(a[0] for a in all_arms))
        hax.legend(handles=[Line2D([], [], color=_color(n), marker=markers[n], markersize=4.5,
                                   label=n) for n in names],
                   fontsize=8, loc="lower right" if higher else "upper right",
                   title="line style: the rate, lowest solid", title_fontsize=7)
        hax.grid(True, alpha=0.3)
    hax.set_title(f"successive halving: each arm's score per rung\n(an arm's line ends where "
                  f"it was cut; a point alone: an arm\nback as a reference after rungs it did "
                  f"not run; {'higher' if higher else 'lower'} is better)", fontsize=10)

    # right: the final rung's curves
    curves = _final_curves(advice, store)
    if not curves:
        _no_data(cax, "no curve stored for the final rung")
    else:
        final_order = [_arm_key(a["optimizer"], a["lr"]) for a in advice.rungs[-1]["arms"]] \
            if advice.rungs else []
        order = [a for a in final_order if a in curves] + [a for a in curves
                                                            if a not in final_order]
        drawn = []
        for arm in order:
            steps, mean, low, high, seeds = curves[arm]
            col = _color(arm[0])
            notes = []
            if arm == pick:
                notes.append("recommended")
            if arm == default_arm:
                notes.append("Adam's default lr")
            label = f"{arm[0]} lr {arm[1]:.3g}" + (f" ({', '.join(notes)})" if notes else "")
            label += f", {seeds} seed{'s' if seeds != 1 else ''}"
            cax.fill_between(steps, low, high, color=col, alpha=0.12, linewidth=0)
            cax.plot(steps, mean, color=col, linestyle=styles.get(arm, "-"),
                     marker=markers.get(arm[0], "o"), markersize=4,
                     markevery=max(1, len(steps) // 8),
                     linewidth=2.6 if arm == pick else 1.5, label=label,
                     zorder=3 if arm == pick else 2, gid=f"final:{arm[0]}:{arm[1]:g}")
            drawn.append(mean[np.isfinite(mean)])
        values = np.concatenate(drawn) if drawn else np.array([])
        if not higher and values.size and (values > 0).all() and values.max() / values.min() > 10:
            cax.set_yscale("log")
        cax.set_xlabel("step")
        cax.set_ylabel(f"validation {metric}")
        cax.grid(True, alpha=0.3)
        cax.legend(fontsize=8, loc="lower right" if higher else "upper right")
    horizon = advice.rungs[-1]["horizon"] if advice.rungs else advice.steps
    cax.set_title(f"final rung ({horizon} steps): validation {metric}, mean over seeds per arm, band "
                  f"min to max\n(colour: optimizer; line style: its rates, lowest solid)",
                  fontsize=10)
    fig.suptitle("stage 2: the tournament", fontsize=11)
    return fig


# ----------------------------------------------------------------------------- html


def _skipped_after(advice: Advice) -> int | None:
    """The rung (0-based) after which the tournament skipped to the final one, if it did."""
    for i, rung in enumerate(advice.rungs[:-1]):
        if rung.get("clear_leader"):
            return i
    return None


def _rung_rows(advice: Advice, i: int) -> list[list[str]]:
    """One rung's arms, best first, with what became of each (as the advisor recorded it)."""
    rung = advice.rungs[i]
    last = i == len(advice.rungs) - 1
    pick = _arm_key(advice.optimizer, advice.hparams.get("lr", math.nan))
    default = _default_lr(advice)
    rows = []
    for place, a in enumerate(rung["arms"], 1):
        arm = _arm_key(a["optimizer"], a["lr"])
        if last:
            notes = []
            if arm == pick:
                notes.append("recommended")
            if a["optimizer"] == REFERENCE and _same(a["lr"], default):
                notes.append("Adam at its default lr (reference)")
            if not notes:
                notes.append("finalist")
            fate = "; ".join(notes)
        else:
            fate = a.get("then", "")
            if fate.startswith("went on"):
                fate = fate.replace("went on", f"went on to rung {i + 2}", 1)
        score = a["score"]
        shown = f"{score:.4g}" if _finite(score) else "diverged"
        rows.append([str(place), a["optimizer"], _lr(a["lr"]), shown, fate])
    return rows


def _candidate_rows(advice: Advice) -> list[list[str]]:
    sign = -1.0 if advice.metric.get("higher_is_better", True) else 1.0

    def order(c: dict) -> tuple:
        rank = str(c.get("rank") or "").lstrip("=")
        if c.get("status") == "final":  # by rank, then best metric first among ties
            value = c.get("metric")
            return (0, int(rank) if rank.isdigit() else 99,
                    sign * value if _finite(value) else math.inf)
        status = str(c.get("status"))
        if status.startswith("out at rung"):
            return (1, -int(status.rsplit(" ", 1)[-1]), 0)
        return (2, 0, 0)

    rows = []
    # every finalist trained the final rung's seeds: the reason a mean has no interval
    seeds = advice.metric.get("seeds")
    ordered = sorted(advice.candidates, key=order)
    # the finalists are ranked by their means: two that differ print apart (mean_digits)
    final = [c for c in ordered if c.get("status") == "final" and _finite(c.get("metric"))]
    digits = {id(c): d for c, d in zip(final, mean_digits([c["metric"] for c in final]))}
    for c in ordered:
        status = str(c.get("status")) + (f": {c['error']}" if c.get("error") else "")
        # a rate at the edge of what was searched (the optimum may lie beyond it)
        range_edge = f" ({c['range_edge']} of grid)" if c.get("range_edge") else ""
        final_edge = f" ({c['final_edge']} of its final rates)" if c.get("final_edge") else ""
        rows.append([c.get("rank") or _DASH, c["optimizer"], status,
                     _lr(c.get("suggested_lr")) + range_edge, _lr(c.get("fastai_lr")),
                     _lr(c.get("steep_lr")), _lr(c.get("best_lr")) + final_edge,
                     _mean_ci(c.get("metric"), c.get("ci"), digits.get(id(c), 4),
                              seeds if c.get("status") == "final" else None)])
    return rows


def _versus_rows(advice: Advice) -> list[list[str]]:
    higher = bool(advice.metric.get("higher_is_better", True))
    rows = []
    for key, what in (("adam_default", "Adam at its default lr"), ("adam_tuned", "tuned Adam")):
        v = (advice.versus or {}).get(key)
        if advice.optimizer == REFERENCE and key == "adam_tuned":
            rows.append([what, _lr(advice.hparams.get("lr")), _mean_ci(advice.metric["value"],
                                                                      None),
                         "the recommendation is tuned Adam", _DASH, _DASH])
            continue
        if not v:
            adam = next((c for c in advice.candidates if c.get("optimizer") == REFERENCE), {})
            rows.append([what, _DASH, _DASH, "could not run (the table above says why)"
                         if adam.get("status") == "cannot run" else "not run", _DASH, _DASH])
            continue
        better = v.get("better_by")
        low, high = v.get("low"), v.get("high")
        if _finite(low) and _finite(high) and not higher:  # pick - reference: flip for lower
            low, high = -high, -low
        interval = f"[{low:+.3g}, {high:+.3g}]" if _finite(low) and _finite(high) else _DASH
        clear = _DASH if better is None else "yes" if v.get("distinct") else \
            "no: tied in the ranking" if v.get("tied_in_ranking") else "no"
        scale = max(abs(v["value"]) if _finite(v.get("value")) else 0.0,
                    abs(advice.metric["value"]) if _finite(advice.metric.get("value")) else 0.0)
        words = difference_words(better, advice.metric["name"], higher, scale) \
            if _finite(better) else ""
        # a run that raised could not run; one that diverged ran: said apart
        lost = ([f"could not run on {v['reference_failed']} of {v.get('seeds')} seeds"]
                if v.get("reference_failed") else []) + \
            ([f"diverged on {v['reference_diverged']} of {v.get('seeds')} seeds"]
             if v.get("reference_diverged") else [])
        gain = (" and ".join(lost) if not _finite(better) and lost else
                _DASH if not _finite(better) else
                f"0 ({words})" if words.startswith("the same") else f"{better:+.3g} ({words})")
        rows.append([what, _lr(v.get("lr")), _mean_ci(v.get("value"), None), gain, interval,
                     clear])
    return rows


def _html(advice: Advice, store: RunStore, pngs: dict[str, bytes], now: datetime) -> str:
    m = advice.metric
    metric = _metric_label(m.get("name", "metric"))
    higher = bool(m.get("higher_is_better", True))
    direction = "higher" if higher else "lower"
    lr = advice.hparams.get("lr")
    level = f"{CONFIDENCE:.0%}"
    model = advice.model or "default model"
    title = f"Advice for {advice.task} / {model}: {advice.optimizer} at lr {_lr(lr)}"
    plan = advice.plan
    names = [c["optimizer"] for c in advice.candidates]
    ci = m.get("ci")
    # the interval to two significant digits, as in the Stage 3 table (_mean_ci)
    ci_text = (f" ± {ci:.2g} ({level} interval over {m.get('seeds')} seeds)" if _finite(ci)
               else f" ({_no_interval(m.get('seeds'))})")
    if advice.seeds_repeat:
        ci_text = f" (no spread: the seeds repeat one run: {advice.seeds_repeat})"
    n_val = advice.validation_examples
    small = n_val is not None and n_val < SMALL_VALIDATION
    # one example moves an accuracy by 1/n; a loss is a mean over the examples
    noise = (f"one example is 1/{n_val} of an accuracy, and differences that size between "
             "finalists are noise" if m.get("name") == "accuracy" else
             f"a mean {metric} over so few examples is noisy, and small differences between "
             "finalists may be noise")
    # the edge of the search, said once: the advisor's statement ends with it, so its own
    # paragraph is for a statement that does not (the heading says "At the edge of the search")
    edge = _edge_words(advice).strip() if advice.edge else ""
    if edge and edge in advice.statement:
        edge = ""
    edge = edge.removeprefix("At the edge of the search: ")
    if not edge.startswith("lr="):  # "the range test's suggestion ...": a sentence's start
        edge = edge[:1].upper() + edge[1:]
    # the plan is sized for the candidates that could run (a refused one has no range test)
    sized = [n for n in names if getattr(advice.range_tests.get(n), "lrs", None)]
    planned = f"; the plan allowed at most {plan.cost(sized):,}"
    if _finite(getattr(advice, "seconds", None)):  # a budget in seconds prices the steps alone
        planned += f"; the advice took {advice.seconds:.1f} s, this report not counted"
    batch = f"batch size {advice.batch_size}" if advice.batch_size else \
        "full batch (every training example at every step)"
    skipped = _skipped_after(advice) is not None
    final_arms = len(advice.rungs[-1]["arms"]) if advice.rungs else 0
    parts = [
        *page_head(title),
        f'<p class="meta">Task {_e(advice.task)}, {_e(model)}; candidates '
        f"{_e(', '.join(names) or 'none')}. Report written "
        f"{_e(now.strftime('%Y-%m-%d %H:%M:%S UTC'))}.</p>",

        "<h2>The answer</h2>",
        "<p>What to use, how well it did and how sure the advisor is. The interval is over "
        "the final rung's seeds; read the statement before trusting a small difference.</p>",
        f'<p style="font-size:1.25em"><strong>{_e(advice.optimizer)}</strong> at '
        f"<strong>lr = {_e(_lr(lr))}</strong>: validation {_e(metric)} "
        f"<strong>{_e(_mean_ci(m.get('value'), None))}</strong>{_e(ci_text)}, "
        f"{_e(direction)} is better.</p>",
        f"<p>{_e(advice.statement)}</p>",
        "<p><strong>Validation, not test.</strong> Every rung ranked the arms, and the answer "
        f"reports its {_e(metric)}, on the validation set"
        + (f" ({n_val} examples)" if n_val is not None else "")
        + ": the set that chose the recommendation. Its value is the best of several "
        "finalists on those examples, so it is optimistic; no held-out test set is kept back. "
        "Measure the recommendation on data the advisor never saw. The final rung trained "
        f"seeds {_e(', '.join(map(str, plan.final_seeds)))}, none of which an earlier stage "
        "trained.</p>"
        + (f'<p><strong>A small validation set.</strong> {n_val} examples, fewer than '
           f"{SMALL_VALIDATION}: {_e(noise)}. Give more validation data.</p>"
           if small else "")
        + (f"<p><strong>At the edge of the search.</strong> {_e(edge)}</p>" if edge else ""),
        "<ul>"
        f"<li>For training of {advice.steps} steps, {_e(batch)}.</li>"
        f"<li>Compute spent: {_e(advice.compute)} (one member-step: one training step of "
        f"one run, weighted by the optimizer's work: an L-BFGS step counts its closure "
        f"evaluations){_e(planned)}.</li>"
        + (f"<li>Cannot be told apart from it: {_e(', '.join(advice.ties))}.</li>"
           if advice.ties else "") + "</ul>",
        f"<p>The recommendation is for this horizon: the best rate for {advice.steps} steps "
        "is not the best for a hundred times more; advise again for a longer run. "
        "Code to paste:</p>",
        f"<pre>{_e(advice.code)}</pre>",

        "<h2>Stage 1: range tests</h2>",
        f"<p>Each candidate trained every rate of a log grid ({len(plan.range_lrs)} rates from "
        f"{_lr(plan.range_lrs[0])} to {_lr(plan.range_lrs[-1])}) on its own for "
        f"{plan.range_steps} steps; each point is the train loss that run reached. Look for "
        "the valley: the curve falls from the initial loss (dashed), bottoms out, then rises "
        "as the rate gets too large. The star is the advisor's pick, the triangle fastai's, "
        "the diamond the steepest slope; runs that diverged are the crosses at the top edge "
        "(their loss is not finite, so they are not on the curve).</p>",
        f"<p>The advisor's rule takes the lowest loss of the curve smoothed by a running "
        f"median of three rates, among the rates whose run ended below the initial loss, and "
        f"stops reading at the first rate that is not finite or above {STOP_FACTOR:g}x the "
        "lowest loss before it (the grey region), so one noisy or blown-up point can neither "
        "win nor end the curve. fastai's valley (about halfway down the longest "
        "descending stretch of the raw curve) and the steepest slope (where the loss falls "
        "fastest per decade of rate) read the same points but pick rates on the way down, "
        "below the valley's bottom; they are shown for comparison only. No pick is final: "
        "the tournament tries rates around the advisor's for longer.</p>",
        f'<img src="{_data_uri(pngs["range_tests"])}" alt="train loss against the learning '
        'rate per candidate, with the three rules\' picks">',

        "<h2>Stage 2: the tournament</h2>",
        f"<p>Successive halving over rates around each suggestion "
        f"({', '.join(f'{o:+g}' for o in plan.offsets)} decades) and seeds: every arm trains "
        f"a short horizon, the best 1/{ETA} goes on to a longer one, and the last rung trains "
        f"the full {advice.steps} steps. Arms are ranked by their score, {_e(CRITERION)} "
        f"({direction} is better), so a late spike cannot win. Arms tied at a cut go on by "
        "the smaller rate, then the candidates' order, so no more go on than the plan costed. "
        "Tuned Adam always reaches the final, and so does Adam at its default rate, as "
        "references."
        + (f" Into the final rung every arm also brings the rate {LOWER:g} decades below its "
           "own: the best rate for a longer run is lower, the early rungs were shorter, and "
           "it falls between the tournament's half-decade steps."
           if plan.lower_rates and len(advice.rungs) > 1 else "")
        + (" When a rung's leader beats every other arm on every seed, its optimizer is "
           "clear: the tournament skips straight to the final rung with that optimizer's "
           "best arms, as it did here." if skipped else "") + "</p>",
    ]
    for i, rung in enumerate(advice.rungs):
        last = i == len(advice.rungs) - 1
        parts += [f"<h3>Rung {i + 1}{' (final)' if last else ''}: {rung['horizon']} steps, "
                  f"{rung['seeds']} seed{'s' if rung['seeds'] != 1 else ''}, "
                  f"{len(rung['arms'])} arms</h3>",
                  _html_table(["#", "optimizer", "lr", "score", "then"], _rung_rows(advice, i),
                              [True, False, True, True, False])]
        if _skipped_after(advice) == i:
            parts.append(f"<p>{_e(rung['arms'][0]['optimizer'])} at lr "
                         f"{_e(_lr(rung['arms'][0]['lr']))} beat every other arm on every seed "
                         "here (or the others diverged): its optimizer is clear, so only "
                         "that optimizer's best arms went on, with the references, straight "
                         "to the final rung.</p>")
    parts += [
        f"<p>In the figure, left: every arm's score at each rung it ran, so you can see which "
        f"were cut and whether the order held as the horizon grew. Right: the "
        f"{final_arms} final arms' validation {_e(metric)} over the steps, mean over seeds with a "
        "band from the worst to the best seed; the thick line is the recommendation. A curve "
        "still moving at the end means a longer run could change the answer.</p>",
        f'<img src="{_data_uri(pngs["tournament"])}" alt="successive-halving scores per rung '
        f'and the final rung\'s validation {_attr(metric)} curves">',

        "<h2>Stage 3: every candidate</h2>",
        f"<p>The finalists are ranked by their final validation {_e(metric)} with paired "
        f"comparisons over the same seeds (<code>=1</code>: cannot be told apart from the "
        f"first); the three range-test picks are side by side with the rate the tournament "
        f"chose. The metric is the mean with its {level} interval over the final seeds.</p>",
        _html_table(["rank", "optimizer", "status", "suggested lr (ours)", "fastai lr",
                     "steepest lr", "tournament best lr",
                     f"validation {metric} (mean ± {level} CI)"],
                    _candidate_rows(advice),
                    [False, False, False, True, True, True, True, True]),
        "<p>Against Adam: how much better the recommendation is (positive: better), with the "
        f"paired {level} interval of the difference over the same seeds; <em>clear</em> says "
        "whether that interval excludes zero and, against tuned Adam, the finalists' ranking "
        "(their pairs held to the level together) tells the two apart as well: "
        "<em>tied in the ranking</em> where the pair's interval alone excludes zero.</p>",
        _html_table(["reference", "lr", f"validation {metric}", "recommendation better by",
                     f"{level} interval", "clear"], _versus_rows(advice),
                    [False, True, True, True, True, False]),
        f'<p class="meta">Store: '
        f'{_e(masked_url(str(advice.store_path or getattr(store, "path", "?"))))}, '
        f"sweeps {_e(', '.join(str(s) for s in advice.sweep_ids) or 'none')} (range test "
        f"first, then one per rung). The same answer, machine-readable: "
        f"{FILES['json']}.</p>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- writing


def advice_json(advice: Advice) -> str:
    """The advice as the JSON text ``advice.json`` holds (and ``optimlab advise --json``
    writes): strict JSON, a non-finite number written as null."""
    return strict_json(advice.to_json(), indent=2)


def write_advice_report(advice: Advice, store: RunStore, out_dir) -> dict[str, Path]:
    """Write ``advice.html``, ``range-tests.png``, ``tournament.png`` and ``advice.json``
    for ``advice`` into ``out_dir`` (created if missing; files there with these names are
    replaced). ``store`` is where the advice's runs are (the final rung's curves are read
    from it).

    Returns the paths by name: ``report``, ``range_tests``, ``tournament``, ``json``.

    Raises:
        ValueError: ``out_dir`` exists and is not a folder.
        OSError: ``out_dir`` cannot be created or written (the message names it).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the report folder {out_dir} exists and is not a folder")
    answer = advice_json(advice)
    pngs = {"range_tests": _png(_range_figure(advice)),
            "tournament": _png(_tournament_figure(advice, store))}
    page = _html(advice, store, pngs, datetime.now(timezone.utc))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the report folder {out_dir}: "
                      f"{mkdir_failure(out_dir, err)}") from err
    paths = {key: out_dir / name for key, name in FILES.items()}
    for key, png in pngs.items():
        _write(paths[key], png)
    _write(paths["json"], (answer + "\n").encode("utf-8"))
    _write(paths["report"], page.encode("utf-8"))
    return paths
