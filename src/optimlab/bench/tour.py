"""``optimlab tour``: the tutorials' story end to end, in one HTML page.

1. Landscapes: SGD, momentum, RMSprop and Adam, each with its learning rate tuned on a log
   grid, raced on each difficulty (a ravine, a saddle, a plateau, an ill-conditioned bowl,
   noisy gradients), and the basins of attraction of local minima at fixed rates.
2. A real task: the four optimizers on MNIST-1D (MLP) over a learning-rate grid and three
   seeds, trained as batched populations and stored in the run store.
3. Across tasks: the same four on digits and sparse logistic regression too, and the
   AlgoPerf-style performance profile of time to a target over the three tasks.
4. A recurrent network: the four on a GRU over MNIST-1D (the folklore's RNN line).
5. A slice of the MLP's loss landscape; batch, mini-batch and stochastic gradient descent
   on least squares.
6. When to use which: the tutorials' folklore table beside this run's evidence, line by
   line, with a verdict (agrees, partly, does not agree, not seen here, not tested) that
   keeps the tables' rule: optimizers they cannot tell apart, or one seed, are no evidence.

Each tour starts a fresh run store (the previous one kept as ``tour-runs.previous.db``), so
every number on the page is computed by that run. A tour is built in a staging folder
(``.tour-new`` in its folder) and moved into place only once it has completed: a tour that
fails or is interrupted leaves the previous one (its page, store, reports and slice) as it was.

Each section opens with what to look at and what the numbers mean, and its tables are HTML
tables that say how learning rates were chosen and which optimizers cannot be told apart.

Everything is computed when it runs (about a minute on two cores); ``quick=True`` shrinks
every budget so the tests can run the whole tour in seconds.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import html
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .._files import NEW_FILE, mkdir_failure, new_file_mode, signals_deferred, write_atomically
from .._table import count as _count
from .._table import listed
from ..exhibits import gd_variants
from ..exhibits.basins import BASIN_OPTIMIZERS
from ..landscapes import get as get_landscape
from ..landscapes import race
from ..optim.registry import resolve
from .analysis import fastest_to_target, paired_difference, rank, ratio_score, summarize
from .profile import TIE_BY_ERRORS, TIE_BY_SPREADS, build_profile
from .report import _html_table, summary_parts, write_report
from .slices import DEFAULT_OPTIMIZERS, plot_interpolation, plot_slice, slice_landscape
from .store import RunStore
from .sweep import SweepSpec, run_sweep
from .trainer import TrainConfig

__all__ = ["RACES", "rnn_verdict", "run_tour"]

#: the arrow a table header carries: which way is better
UP, DOWN = "\u2191", "\u2193"

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
#: the tutorials' comparison on real tasks
TASK_OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")

def _rule_name(name: str) -> str:
    """The registry name of the rule ``name`` runs: an alias without a preset of its own is
    its target under another name (``gd`` is ``sgd``), any other name itself."""
    entry = resolve(name)
    return entry.alias_of if entry.alias_of and not entry.preset else entry.name


#: The basins exhibit's fixed rates for ``two_wells``, each optimizer under the name of the
#: rule it runs (:func:`_rule_name`: the exhibit's ``gd`` is ``sgd``): one name, so one
#: colour, for plain gradient descent everywhere on the page.
BASIN_RATES = {_rule_name(label): {**hp, "name": _rule_name(hp["name"])}
               for label, hp in BASIN_OPTIMIZERS["two_wells"].items()}

#: the standard deviation of the noisy race's gradient noise (:attr:`.Landscape.noise`)
NOISE = 2.0

#: (title, what, parameters, noise): one section per difficulty. ``what`` is a landscape
#: name (a race of the tuned OPTIMIZERS on it, with those landscape parameters) or
#: ``"exhibits.<function>"``, an exhibit of :mod:`optimlab.exhibits` called with those
#: parameters and ``steps`` (its table and figure make the section).
RACES = (
    ("A ravine: Rosenbrock's curved valley", "rosenbrock", {}, 0.0),
    ("Local minima: basins of attraction of two wells, the minimum each optimizer reaches "
     "from each of 15 x 15 starts", "exhibits.basins",
     {"landscape": "two_wells", "grid": 15, "optimizers": BASIN_RATES}, 0.0),
    ("A saddle point", "saddle", {}, 0.0),
    ("A plateau with vanishing gradients", "plateau", {}, 0.0),
    ("Ill-conditioning: a bowl with condition number 50, axis-aligned and rotated 45 degrees",
     "exhibits.ravine_alignment", {"kappa": 50.0, "angle": 45.0}, 0.0),
    (f"Noisy gradients: Rosenbrock with Gaussian gradient noise of standard deviation {NOISE:g}",
     "rosenbrock", {}, NOISE),
)


class _Html(str):
    """A lead paragraph that is HTML already (it holds a link): shown as is, not escaped."""


def _link(path: str) -> str:
    """A relative link to ``path`` (a report written beside the tour), as HTML."""
    return f'<a href="{html.escape(path, quote=True)}">{html.escape(path)}</a>'


def _with_link(text: str, path: str, after: str = ".") -> _Html:
    """``text`` (plain), then a link to ``path``, then ``after``: one lead paragraph."""
    return _Html(html.escape(text) + _link(path) + html.escape(after))


#: the text alternatives of a sweep report's two pictures (``bench/report.py`` draws them)
CURVES_ALT = ("Test metric and train loss against the step, each optimizer at its best "
              "learning rate; the table above gives the numbers.")
SENSITIVITY_ALT = ("Final test metric against the learning rate, one line per optimizer: "
                   "a wide flat top is a rate easy to choose; the table above gives the "
                   "best rates.")


@dataclass
class _Section:
    """One section of the page: ``lead`` paragraphs (what to look at, what the numbers
    mean, the caveats), ``tables`` as HTML, then ``text`` (shown as preformatted text only
    when there is no table), the pictures and ``notes`` (a list under the tables)."""

    title: str
    text: str
    images: list[_Image]
    lead: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


#: what to look at in each race: (landscape or exhibit, noisy?) -> paragraphs
RACE_LEADS = {
    ("rosenbrock", False): [
        "Rosenbrock's valley is curved and almost flat along its floor, so the gradient "
        "points across the valley rather than along it: a step that follows it can overshoot "
        "from wall to wall (a zig-zag), and a rate small enough not to bounce crawls along the floor. "
        "Momentum adds up the steps that agree, and Adam and RMSprop rescale the steep and "
        "the shallow directions. Each optimizer's rate was tuned on a log grid (the rate used "
        "is in the table, flagged where it sits on the grid's edge).",
        "The table gives the final loss, its gap to the minimum, the distance to the "
        "minimizer and the first step within the tolerance of the minimum. Caveat: on a "
        "two-dimensional function one tuned rate decides much of the outcome.",
    ],
    ("exhibits.basins", False): [
        "Which minimum an optimizer ends in depends on where it starts, and on the "
        "optimizer. Each panel colours a 15 x 15 grid of starts by the minimum that "
        "optimizer reached from there: gradient descent follows the slope into the nearest "
        "basin, momentum can carry a path over the ridge into the other well, and an "
        "adaptive method's nearly constant step size moves the boundary between basins.",
        "The table gives the share of starts that reach each minimum. One start, as a race "
        "shows, would tell only one of these stories. The rates here are fixed, not tuned "
        "(the table gives them): a rate tuned from one start says nothing about the others.",
    ],
    ("saddle", False): [
        "At a saddle point the gradient vanishes but the point is not a minimum, and this "
        "one is unbounded below: there is no minimum value, so the table reports whether "
        "each optimizer escaped and how many steps it took, not a gap to a minimum.",
        "Near the ridge the gradient is tiny, so a step proportional to it (SGD's, and "
        "momentum's until it gathers speed) is tiny too, while Adam divides by a bias-corrected "
        "running scale of the gradient and steps about its rate from the start (RMSprop, "
        "with no bias correction, starts at about ten times its rate). Caveat: "
        "tuning on a saddle picks the rate that escapes soonest (the rule under the table), "
        "so the escape steps compare tuned rates, not the methods alone.",
    ],
    ("plateau", False): [
        "On a plateau the gradient is nearly zero, and SGD's step, proportional to the "
        "gradient, is nearly zero too. RMSprop and Adam divide by a running scale of the "
        "gradient, so their steps stay about as large as the learning rate where the "
        "gradient vanishes (RMSprop's first steps larger, having no bias correction); "
        "momentum helps once it has gathered speed.",
    ],
    ("exhibits.ravine_alignment", False): [
        "An ill-conditioned bowl, twice: with its axes along the coordinates, and the same "
        "bowl rotated by 45 degrees. Diagonal adaptivity (RMSprop, Adam) rescales each "
        "coordinate on its own, which cures the conditioning only when the bowl's axes are "
        "the coordinates: compare RMSprop's steps to the tolerance on the two bowls with "
        "tuned gradient descent's, which are the same on both. Adam rescales by coordinate "
        "too, but its steps also follow a running average of the gradient; the lines under "
        "the table say, for each rule, on which bowl it did better in this run.",
        "The ravines of real networks are rarely aligned with the parameters' axes, so the "
        "rotated bowl is the fairer picture of what per-coordinate rates buy.",
    ],
    ("rosenbrock", True): [
        f"The same valley with isotropic Gaussian noise of standard deviation {NOISE:g} on "
        "every gradient coordinate, the same sequence for every optimizer. The tutorials "
        "expect the averaging methods (momentum, Adam) to smooth the noise; the table says "
        "whether they did here. The next paragraph sets each optimizer's result here "
        "beside its result without the noise.",
    ],
}


#: headers whose values are better lower (a loss, a distance, steps or evaluations to a
#: tolerance) or higher (an accuracy, reaching the global minimum): regular expressions
LOWER_BETTER = (r"\bloss\b", r"final f\b", r"^gap to min", r"^dist to min", r"steps to\b",
                r"^updates to\b", r"^evals to\b", r"^diverged \(any lr\)$")
HIGHER_BETTER = (r"accuracy", r"^-> deep well$", r"^reached target$")


def _directed(headers: list[str], higher: dict[str, bool] | None = None,
              plain: tuple[str, ...] = ()) -> list[str]:
    """``headers`` with an arrow on each that has a better direction: ``final loss \u2193``,
    ``test accuracy \u2191`` (:data:`LOWER_BETTER`, :data:`HIGHER_BETTER`); ``higher`` maps
    a header to its direction where the table knows it (a sweep's metric); the headers in
    ``plain`` have none (a landscape without a minimum: its final loss says how far a run
    went, not how well it converged)."""
    out = []
    for h in headers:
        if h in plain:
            out.append(h)
            continue
        up = (higher or {}).get(h)
        if up is None and any(re.search(p, h) for p in HIGHER_BETTER):
            up = True
        elif up is None and any(re.search(p, h) for p in LOWER_BETTER):
            up = False
        out.append(h if up is None else f"{h} {UP if up else DOWN}")
    return out


@dataclass(frozen=True)
class _Image:
    """A picture of the page and its text alternative (what a screen reader says, what a
    browser shows where the picture cannot load)."""

    png: bytes
    alt: str


def figure_alt(fig) -> str:
    """A text alternative for a matplotlib figure, read from the figure itself: its title,
    then each panel's title, axes and labelled lines or patches ("Panel 2, loss per step:
    x step, y f - f* (log); lines: adam, sgd"). Generated where it is drawn, so it cannot
    drift from the picture; the section's table holds the numbers."""
    parts = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text().strip():
        parts.append(suptitle.get_text().strip() + ".")
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    for i, ax in enumerate(axes, 1):
        title = " ".join(ax.get_title().split())
        head = f"Panel {i}" if len(axes) > 1 else "The figure"
        words = [f"{head}{', ' + title if title else ''}:"]
        for axis, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            label = " ".join(label.split())
            if label:
                # a log axis says so once: not again where its label already does
                # ("parameter updates (log)" read "(log) (log)")
                log = getattr(ax, f"get_{axis}scale")() == "log" \
                    and not label.lower().endswith("(log)")
                words.append(f"{axis} {label}{' (log)' if log else ''};")
        legend = ax.get_legend()
        names = [t.get_text() for t in legend.get_texts()] if legend is not None else []
        if names:
            words.append("shown: " + ", ".join(names) + ".")
        parts.append(" ".join(words).rstrip(";") + ("" if words[-1].endswith(".") else "."))
    names = [t.get_text() for legend in getattr(fig, "legends", []) for t in legend.get_texts()]
    if names:  # a legend of the whole figure
        parts.append("Shown: " + ", ".join(names) + ".")
    return " ".join(parts) or "A figure; the table above gives its numbers."


def _png(fig) -> _Image:
    from ..landscapes.plots import plt_close

    alt = figure_alt(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt_close(fig)
    return _Image(buffer.getvalue(), alt)


def _races(quick: bool, say: Callable[[str], None]) -> list[_Section]:
    from .. import exhibits

    steps = 60 if quick else 300
    sections, raced = [], {}
    for title, what, params, noise in RACES:
        say(f"race: {title}")
        if what.startswith("exhibits."):
            # an exhibit (basins of attraction, the aligned and the rotated ravine)
            result = getattr(exhibits, what.removeprefix("exhibits."))(steps=steps, **params)
        else:
            result = race(get_landscape(what, **params), {o: {} for o in OPTIMIZERS},
                          steps=steps, noise=noise, tune=True)
        # races and exhibits alike: rows() for the HTML table, notes() under it
        headers, rows = result.rows()
        landscape = getattr(result, "landscape", None)
        plain = ("final loss",) if landscape is not None and not landscape.minima else ()
        table = _html_table(_directed(headers, plain=plain), rows,
                            [False, False] + [True] * (len(headers) - 2))
        lead = list(RACE_LEADS.get((what, bool(noise)), []))
        if noise and (what, False) in raced:  # the same landscape's noiseless race, above
            lead += [said for said in [noise_comparison(raced[what, False], result)] if said]
        lead += _race_facts(what, result, noise)
        raced[what, bool(noise)] = result
        sections.append(_Section(title, result.table(), [_png(result.plot())], lead, [table],
                                 result.notes()))
    return sections


def turn_backs(path) -> float:
    """The share of a path's steps that turn back on the step before (their dot product
    is negative: a turn of more than 90 degrees), the zig-zag a race's picture shows; NaN
    for a path of fewer than two moving steps."""
    import numpy as np

    steps = np.diff(np.asarray(path, dtype=float), axis=0)
    pairs = [(a, b) for a, b in zip(steps[:-1], steps[1:])
             if np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and a.any() and b.any()]
    return float(np.mean([float(a @ b) < 0 for a, b in pairs])) if pairs else math.nan


def _escape_order(metrics: dict) -> str:
    """Whether the rules that rescale small gradients (RMSprop, Adam) left the saddle before
    plain SGD in this run, as a sentence ("" where one of them is missing)."""
    if "sgd" not in metrics or not {"rmsprop", "adam"} & set(metrics):
        return ""
    def when(m) -> float:
        return m.steps_to_escape if m.escaped and m.steps_to_escape is not None else math.inf
    sgd = when(metrics["sgd"])
    rescaled = {n: when(metrics[n]) for n in ("rmsprop", "adam") if n in metrics}
    if sgd == math.inf and all(t == math.inf for t in rescaled.values()):
        return " Here none of them left it, so this run cannot say which leaves first."
    sooner = [n for n, t in rescaled.items() if t < sgd]
    if len(sooner) == len(rescaled):
        return " Here the rescaling rules left before SGD."
    # each rule said as it went: before SGD, at its step, after it, or never
    parts = [f"only {listed(sooner)} left before SGD"] if sooner else []
    if same := [n for n, t in rescaled.items() if t == sgd < math.inf]:
        parts.append(f"{listed(same)} left at the step SGD left")
    if later := [n for n, t in rescaled.items() if sgd < t < math.inf]:
        parts.append(f"{listed(later)} left after it")
    if never := [n for n, t in rescaled.items() if t == math.inf]:
        parts.append(f"{listed(never)} never left it")
    lead = "" if sooner else ": the rescaling rules did not lead here"
    return f" Here {'; '.join(parts)}{lead}."


def _race_facts(what: str, result, noise: float = 0.0) -> list[str]:
    """Sentences read from this run's race, where a fixed text would claim an outcome the
    table might not show: who left the saddle and when, and whether the rescaling rules
    left first; which path zig-zags on the noiseless Rosenbrock (:func:`turn_backs`); where
    RMSprop ended against Adam on Rosenbrock, and how far each one's first step moved it
    (measured: whether RMSprop's 10x first step is why it ends behind, a race does not
    test)."""
    metrics = getattr(result, "metrics", None)
    if not isinstance(metrics, dict):
        return []
    if what == "saddle":
        said = [f"{label} left it at step {m.steps_to_escape}" if m.escaped else
                f"{label} did not leave it in {result.steps} steps"
                for label, m in metrics.items()]
        return ["In this run: " + "; ".join(said) + "." + _escape_order(metrics)] \
            if said else []
    facts = []
    paths = getattr(result, "paths", None)
    if what == "rosenbrock" and not noise and isinstance(paths, dict) and paths:
        share = {label: turn_backs(path) for label, path in paths.items()}
        share = {label: v for label, v in share.items() if math.isfinite(v)}
        if share:
            top = max(share.values())
            most = [label for label, v in share.items() if f"{v:.0%}" == f"{top:.0%}"]
            facts.append("In this run the share of steps that turn back on the step before "
                         "(more than 90 degrees: the zig-zag in the picture) is "
                         + ", ".join(f"{label} {v:.0%}" for label, v in share.items())
                         + ("; no path zig-zags." if top <= 0 else
                            f"; {most[0]}'s path zig-zags most." if len(most) == 1 else
                            f"; {listed(most)} zig-zag alike, the most."))
    if what == "rosenbrock" and {"rmsprop", "adam"} <= set(metrics):
        rms, adam = metrics["rmsprop"], metrics["adam"]
        first = ("RMSprop has no bias correction: its running average of squared gradients "
                 "starts at zero, so its first step is 1/sqrt(1 - alpha) = 10 times its rate "
                 "(alpha = 0.99), where Adam's bias correction starts Adam at the rate itself.")
        shown = (f"{rms.final_loss:.3g}", f"{adam.final_loss:.3g}")
        finished = (math.isfinite(rms.final_loss), math.isfinite(adam.final_loss))
        if not any(finished):
            return facts + [first + f" Here neither finished the race (final loss {shown[0]} "
                                    f"and {shown[1]}): it says nothing of the first step."]
        if all(finished) and shown[0] == shown[1]:
            return facts + [first + f" Here they end level (final loss {shown[0]} each)."]
        # a loss that is not finite (inf, or NaN from an overflow) did not finish: behind
        if not finished[0] or (finished[1] and rms.final_loss > adam.final_loss):
            # what the run measured, not why: RMSprop started as Adam does (no 10x first
            # step) still ended far behind Adam in the audit's rerun of the full tour
            return facts + [first + f" Here RMSprop ends behind Adam (final loss "
                                    f"{rms.final_loss:.3g} against {adam.final_loss:.3g})"
                                    + _first_steps(paths) + "; whether that first step is why, "
                                    "this race does not test."]
        return facts + [first + f" Here it does not cost RMSprop the race: it ends at "
                                f"{rms.final_loss:.3g}, Adam at {adam.final_loss:.3g}."]
    return facts


def _first_steps(paths) -> str:
    """How far RMSprop's and Adam's first steps moved them, measured on their ``paths``
    (a race's), as a clause ("" where a path is missing or too short)."""
    import numpy as np

    if not isinstance(paths, dict):
        return ""
    length = {}
    for name in ("rmsprop", "adam"):
        path = np.asarray(paths.get(name, ()), dtype=float)
        if path.ndim == 2 and len(path) >= 2 and np.all(np.isfinite(path[:2])):
            length[name] = float(np.linalg.norm(path[1] - path[0]))
    if len(length) < 2:
        return ""
    return (f"; its first step moved it {length['rmsprop']:.3g} from the start, Adam's "
            f"{length['adam']:.3g}")


def noise_comparison(noiseless, noisy) -> str:
    """A sentence setting each optimizer's noisy race beside its noiseless one (two races of
    one landscape, each rate tuned in its own race): final loss and distance to the
    minimizer without noise -> with it, and the step each first came within the tolerance
    (and whether it left it later, the table's "(left)"); "" where the two have no
    optimizer in common. The noisy race's fixed lead claimed its final losses reflect "the
    noise floor" although SGD never crossed the valley in either."""
    common = [n for n in noisy.metrics if n in noiseless.metrics]
    if not common:
        return ""

    def within(m, race) -> str:  # when it came within the tolerance, and whether it stayed
        if m.steps_to_tol is None:
            return "never"
        tol, gap = getattr(race, "tol", None), getattr(m, "gap", None)
        left = isinstance(tol, float) and isinstance(gap, float) and not gap <= tol
        return f"step {m.steps_to_tol}{' (left it later)' if left else ''}"

    def lr(race, name) -> str:
        value = (getattr(race, "hparams", None) or {}).get(name, {}).get("lr")
        return "" if value is None else f"{value:.3g}"

    said = []
    for name in common:
        a, b = noiseless.metrics[name], noisy.metrics[name]
        rates = [lr(noiseless, name), lr(noisy, name)]
        rates = f" (lr {rates[0]} -> {rates[1]})" if all(rates) else ""
        said.append(f"{name}{rates}: final loss {a.final_loss:.3g} -> {b.final_loss:.3g}, "
                    f"distance to the minimizer {a.distance:.3g} -> {b.distance:.3g}, "
                    f"within the tolerance {within(a, noiseless)} -> {within(b, noisy)}"
                    + (" (diverged without the noise)" if a.diverged else "")
                    + (" (diverged with the noise)" if b.diverged else ""))
    return ("Without the noise (the first race) -> with it (this one), each rate tuned in its "
            "own race: " + "; ".join(said) + ".")


#: how the training tables rank (:func:`.analysis.rank`), said where the first one opens
RANKED = ("An optimizer's rank is 1 plus the number of optimizers clearly better than it: "
          "better by a paired comparison over the seeds at their best rates (95% for all "
          "the pairs of a table together: Holm's step-down), or "
          "through a chain of such comparisons; rows of one rank are listed by mean final "
          "test accuracy, shown with its 95% confidence interval over the seeds.")

#: what the training sections say about their grids (every tour sweep has ``extend=True``)
EXTENDED = ("and where an optimizer's best rate was on the grid's edge, two more rates past "
            "that edge (up to three times), so a best rate is inside the rates tried unless "
            "the table flags it.")


def _mnist1d_sweep(store: RunStore, folder: Path, say: Callable[[str], None], model: str,
                   steps: int, evaluations: int, lrs: tuple[float, ...], seeds: int,
                   target: float | None = None) -> tuple[SweepSpec, int, dict]:
    """The tour's four optimizers on MNIST-1D with ``model`` (batch 100, about
    ``evaluations`` evaluations), trained, stored and reported in ``folder``."""
    spec = SweepSpec(task="mnist1d", optimizers=TASK_OPTIMIZERS,
                     config=TrainConfig(steps=steps, batch_size=100, model=model,
                                        eval_every=max(1, steps // evaluations)),
                     lrs=lrs, seeds=seeds, target=target, extend=True)
    say(f"{folder.name}: {len(spec.members())} runs of {steps} steps, as batched populations")
    sweep_id = run_sweep(spec, store, name=f"tour: {folder.name}")
    return spec, sweep_id, _report(store, sweep_id, folder)


def _report(store: RunStore, sweep_id: int, folder: Path) -> dict[str, Path]:
    """``write_report`` into ``folder``, its page naming the store where the tour leaves it
    (:func:`_final`), not the staging folder it is built in."""
    return write_report(store, sweep_id, folder, store_path=_final(Path(store.path)))


def _mnist1d(store: RunStore, out_dir: Path, quick: bool,
             say: Callable[[str], None]) -> tuple[_Section, int]:
    steps = 40 if quick else 1000
    spec, sweep_id, files = _mnist1d_sweep(
        store, out_dir / "mnist1d", say, "mlp", steps, evaluations=15,
        lrs=(1e-3, 1e-2, 1e-1) if quick else (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
        seeds=1 if quick else 3, target=0.5)
    return _sweep_section("SGD, Adagrad, RMSprop and Adam on MNIST-1D", store, sweep_id,
                          mnist1d_lead(steps, spec.lrs, spec.seeds),
                          [_Image(files["curves"].read_bytes(), CURVES_ALT),
                           _Image(files["lr_sensitivity"].read_bytes(),
                                  SENSITIVITY_ALT)]), sweep_id


def mnist1d_lead(steps: int, lrs, seeds: int) -> list[str]:
    """The MNIST-1D section's lead paragraphs, for a sweep of ``steps`` steps over the rates
    ``lrs`` with ``seeds`` seeds."""
    return [
        f"An MLP (40-100-100-10) on MNIST-1D, batch 100, {steps} steps; each optimizer at "
        f"each learning rate of {', '.join(f'{lr:g}' for lr in lrs)} with "
        f"{_count(seeds, 'seed')}, {EXTENDED} {RANKED}",
        "A shared rank such as =1 means a paired comparison over the seeds (every optimizer "
        "sees the same initial weights and mini-batches for a seed) cannot separate them: "
        "claiming that one beats the other would need more seeds. The best rate is the "
        "one whose worst accuracy over the last quarter of training is best, so a rate "
        "that spikes late does not win.",
        _with_link("Look at the learning-rate sensitivity plot for how forgiving each "
                   "optimizer is: a wide flat top is a rate that is easy to choose, a sharp "
                   "peak one that must be tuned. The full report, with every run, is ",
                   "mnist1d/report.html"),
    ]


def _recurrent(store: RunStore, out_dir: Path, quick: bool,
               say: Callable[[str], None]) -> tuple[_Section, int]:
    """The four optimizers on a recurrent network: the evidence for the folklore's RNN line."""
    steps = 10 if quick else 60
    spec, sweep_id, files = _mnist1d_sweep(
        store, out_dir / "mnist1d-gru", say, "gru", steps, evaluations=5,
        lrs=(1e-2, 1e-1) if quick else (1e-3, 1e-2, 1e-1, 1.0), seeds=1 if quick else 3)
    return _sweep_section("A recurrent network: GRU on MNIST-1D", store, sweep_id,
                          recurrent_lead(steps, spec.lrs, spec.seeds),
                          [_Image(files["curves"].read_bytes(), CURVES_ALT)]), sweep_id


def recurrent_lead(steps: int, lrs, seeds: int) -> list[str]:
    """The GRU section's lead paragraphs, for a sweep of ``steps`` steps over the rates
    ``lrs`` with ``seeds`` seeds."""
    return [
        f"A recurrent network: MNIST-1D read one value at a time by a bidirectional GRU "
        f"(hidden 6 each way, over a sequence of 40 values, then a linear layer), batch 100, "
        f"{steps} steps, "
        f"rates {', '.join(f'{lr:g}' for lr in lrs)}, {_count(seeds, 'seed')} (the grid "
        "extended past an edge as above), no gradient clipping. The folklore says RNNs are "
        "where SGD struggles and RMSprop and Adam are the usual choices; this is the table "
        "the closing section reads for that line.",
        _with_link("The budget is short (recurrent steps are the tour's most expensive), "
                   "so read the ranking, not the absolute accuracy, and mind the confidence "
                   + (f"intervals: with {seeds} seeds only large differences separate. "
                      if seeds > 1 else "intervals: with 1 seed there are none, and no "
                      "difference separates. ") +
                   "The full report is ", "mnist1d-gru/report.html"),
    ]


def _sweep_section(title: str, store: RunStore, sweep_id: int, lead: list[str],
                   images: list[_Image]) -> _Section:
    headers, rows, notes = summary_parts(store, sweep_id)
    return _Section(title, "", images, lead, [_sweep_table(store, sweep_id, headers, rows)],
                    notes + _to_target_note(headers))


def sweep_headers(headers: list[str], higher: bool = True) -> list[str]:
    """A sweep table's headers as the tour shows them: which way is better on each
    (:func:`_directed`; the metric's way from the sweep), and where the to-target columns
    are read: at the table's best lr (the rate that ends best), the median over seeds."""
    metric = next((h for h in headers if "(mean \u00b1" in h), None)
    out = []
    for h, shown in zip(headers, _directed(headers, {metric: higher} if metric else None)):
        if h.startswith("steps to "):
            shown += " (at the best lr, median over seeds)"
        elif h in ("gradient evals", "cost (calibrated)", "wall time"):
            shown = f"{h} to target {DOWN}"
        out.append(shown)
    return out


def _to_target_note(headers: list[str]) -> list[str]:
    """The note under a table with to-target columns: which rate they are read at, and
    that the profile reads another."""
    if not any(h.startswith("steps to ") for h in headers):
        return []
    return ["The to-target columns are read at each optimizer's best lr (the rate whose "
            "worst accuracy over the last quarter of training is best), the median over "
            "seeds; the cross-task profile instead takes, per seed, whichever rate reached "
            "the target fastest, so its times can be shorter than these."]


def _sweep_table(store: RunStore, sweep_id: int, headers: list[str],
                 rows: list[list[str]]) -> str:
    config = store.sweep(sweep_id)["config"] or {}
    higher = (config.get("metric") or {}).get("higher_is_better", True)
    return _html_table(sweep_headers(headers, bool(higher)), rows,
                       [False, False] + [True] * (len(headers) - 2))


#: the other tasks of the cross-task profile: (task, what it shows, target accuracy)
PROFILE_TASKS = (
    ("digits", "scikit-learn's 8x8 digits, MLP with 100 hidden units", 0.9),
    ("sparse-logreg", "sparse logistic regression with rare informative features, the case "
                      "Adagrad was made for", 0.7),
)


#: the window of rates :func:`stable_rates` looks at: within this factor of the optimizer's
#: own best rate, each side (one decade down, one up)
STABLE_WINDOW = 10.0


def stable_rates(sensitivity: dict[float, float],
                 best_lr: float | None = None) -> tuple[int, int] | None:
    """How forgiving one optimizer's rate is on one task: of the rates it ran (its own grid,
    extended past an edge included) within a factor :data:`STABLE_WINDOW` each side of its
    own best, ``best_lr`` (the tables' best lr, :data:`.analysis.CRITERION`; without it, the
    rate whose mean final metric is best), how many ended within :data:`STABLE_WITHIN` of
    the mean final metric there (or above it), and how many it ran there. A diverged rate
    counts as not close. None where the window was not tried on both sides of the best (the
    best is the lowest or the highest rate it ran there), or the best rate's metric is not
    finite: a one-sided count says nothing about width, so that task is not tested for it.

    Counted on each optimizer's own rates, around its own best: a shared grid that ends
    below one optimizer's best (SGD's best rates lay past the common grid's top) would
    count none of its good rates."""
    rates = {float(k): v for k, v in sensitivity.items()}
    finite = {lr: v for lr, v in rates.items() if math.isfinite(v)}
    if not finite:
        return None
    if best_lr is None:
        best_lr = max(finite, key=lambda lr: (finite[lr], -lr))
    elif float(best_lr) not in finite:
        return None
    best_lr = float(best_lr)
    best = finite[best_lr]
    window = [lr for lr in rates
              if best_lr / STABLE_WINDOW * (1 - 1e-9) <= lr <= best_lr * STABLE_WINDOW * (1 + 1e-9)]
    if not any(lr < best_lr for lr in window) or not any(lr > best_lr for lr in window):
        return None
    close = sum(math.isfinite(rates[lr]) and rates[lr] >= best - STABLE_WITHIN for lr in window)
    return close, len(window)


def one_seed(seeds: int, what: str = "") -> str | None:
    """The verdict of a line read from training tables with fewer than two seeds: with one
    seed there is no confidence interval and every table's optimizers share rank 1, so no
    difference is evidence and the folklore can be neither seen nor contradicted (None
    with two seeds or more)."""
    if seeds >= 2:
        return None
    return (f"not seen here: cannot tell at {seeds} seed (no confidence interval, so no "
            f"difference here is evidence{'; ' + what if what else ''})")


def stability_verdict(adam: dict[int, float], sgd: dict[int, float], seeds: int = 2) -> str:
    """The folklore's "Adam is more forgiving of its learning rate than SGD" against this
    run: per task, the share of each one's rates that came close to its best
    (:func:`stable_rates`). It agrees only where Adam's share is the larger on most tasks
    both were tested on (more tasks than the other way round, and at least two); a one-task
    or one-rate edge is no evidence, and neither is one seed (:func:`one_seed`)."""
    common = sorted(set(adam) & set(sgd))
    wins = sum(adam[k] > sgd[k] for k in common)
    losses = sum(adam[k] < sgd[k] for k in common)
    tally = f"Adam's share of close rates against SGD's: larger on {wins}, smaller on " \
            f"{losses} of {_count(len(common), 'task')} tested for both"
    if (said := one_seed(seeds, tally)) is not None:
        return said
    if wins > losses and wins >= 2 and wins > len(common) / 2:
        return f"agrees: Adam is more forgiving than SGD here ({tally})"
    if losses > wins and losses >= 2 and losses > len(common) / 2:
        return f"does not agree: Adam is less forgiving than SGD here ({tally})"
    return f"not seen here: the two cannot be told apart on this evidence ({tally})"


#: the extra parameter-sized buffers the folklore gives each (SGD without momentum)
FOLKLORE_MEMORY = {"sgd": 0, "adagrad": 1, "rmsprop": 1, "adam": 2}


def memory_verdict(memory: dict[str, float]) -> str:
    """The folklore's memory line against the buffers counted in each optimizer's state:
    exact counts, not a measurement over seeds, so no seed rule applies."""
    off = [f"{n} keeps {memory[n]:g}, not {k}" for n, k in FOLKLORE_MEMORY.items()
           if n in memory and memory[n] != k]
    if off:
        return "does not agree: " + "; ".join(off)
    return "agrees (counted, not measured: the same at any number of seeds)"


def generalisation_verdict(sgd_ahead: int, adam_ahead: int, tasks: int, seeds: int) -> str:
    """The folklore's "SGD often generalises best; Adam can generalise worse" against the
    paired comparisons of SGD and Adam's train-test loss gap on each task (:func:`gap_lead`:
    ``sgd_ahead`` tasks where SGD's gap is clearly the smaller, ``adam_ahead`` where Adam's
    is): agrees where SGD is clearly ahead on more tasks than Adam, does not agree the other
    way round, and is not seen where they tie (cannot be told apart, or as often ahead as
    behind)."""
    tally = (f"SGD's train-test gap clearly smaller than Adam's on {sgd_ahead}, larger on "
             f"{adam_ahead} of {tasks} tasks")
    if (said := one_seed(seeds, tally)) is not None:
        return said
    if sgd_ahead > adam_ahead:
        return f"agrees: {tally}"
    if adam_ahead > sgd_ahead:
        return f"does not agree: {tally}"
    return f"not seen here: {tally}"


def loss_gaps(records: list[dict], summary) -> tuple[dict[int, float], dict[int, float]]:
    """Per seed, at ``summary``'s best rate (an :class:`.analysis.OptimizerSummary`), the
    finished runs' train-test loss gap (final test loss minus final train loss, both
    evaluated on the whole sets: :func:`.sweep._summary`) and final train loss, read from
    the run ``records`` (:func:`.sweep.run_records`); a seed that did not finish there, or
    has no finite losses, is left out."""
    gaps, train = {}, {}
    for r in records:
        lr = r.get("lr")
        if (r.get("optimizer") != summary.optimizer or r.get("status") != "finished"
                or lr is None or not math.isclose(float(lr), summary.best_lr, rel_tol=1e-9)):
            continue
        tr, te = r.get("final_train_loss"), r.get("final_test_loss")
        if isinstance(tr, (int, float)) and isinstance(te, (int, float)) \
                and math.isfinite(tr) and math.isfinite(te):
            gaps[r["seed"]], train[r["seed"]] = float(te) - float(tr), float(tr)
    return gaps, train


def gap_lead(records: list[dict], sgd, adam) -> str | None:
    """Which of ``sgd`` and ``adam`` (summaries of one task) generalised better by the
    folklore's measure, the train-test loss gap at their best rates (:func:`loss_gaps`),
    paired over the seeds (:func:`.analysis.paired_difference`, 95%): the name of the one
    whose gap is clearly the smaller; ``"fit less"`` where that one's final train loss is
    also clearly the higher (a model that fitted the training set less has less to lose on
    the test set: a smaller gap from that is not better generalisation); None where the
    gaps cannot be told apart."""
    from dataclasses import replace

    (gap_s, train_s), (gap_a, train_a) = loss_gaps(records, sgd), loss_gaps(records, adam)
    gap = paired_difference(replace(sgd, per_seed=gap_s), replace(adam, per_seed=gap_a))
    if not gap.distinct or not (gap.high < 0 or gap.low > 0):
        return None
    train = paired_difference(replace(sgd, per_seed=train_s), replace(adam, per_seed=train_a))
    if gap.high < 0:  # SGD's gap the smaller: does it also fit less (a higher train loss)?
        return "fit less" if train.distinct and train.low > 0 else sgd.optimizer
    return "fit less" if train.distinct and train.high < 0 else adam.optimizer


def _mean_gap(records: list[dict], summary) -> str:
    """The means over seeds of ``summary``'s train-test loss gap and final train loss
    (:func:`loss_gaps`), for the closing table: "0.145 (train loss 0.853)", "-" where no
    seed finished at its best rate."""
    gaps, train = (list(v.values()) for v in loss_gaps(records, summary))
    if not gaps:
        return "-"
    return f"{sum(gaps) / len(gaps):.3g} (train loss {sum(train) / len(train):.3g})"


def _recommendation_verdict(scores: dict[str, float], seeds: int = 2) -> str:
    """The folklore's "default recommendation: Adam" against the profile scores (those of
    :func:`resolved_scores`, where reaching the target at the same evaluation is a tie): a
    tie at the top is said as one, Adam tied with every optimizer is not seen, one seed is
    no evidence (:func:`one_seed`), and scores all 0 (no optimizer reached a target) test
    nothing. Adam agrees only where it leads every other optimizer by :data:`SCORE_MARGIN`
    or more: a smaller lead is "partly", as a deficit smaller than the margin is."""
    top = max(scores.values(), default=0.0)
    if top <= 0:
        return "not tested: no optimizer reached a target, so the profile ranks none"
    leaders = [n for n, v in scores.items() if v == top]
    others = ", ".join(n for n in leaders if n != DEFAULT)
    if (said := one_seed(seeds, "each time to the target is one run's")) is not None:
        return said
    if len(scores) < 2:  # nothing to lead: a score "against 0.000" of no optimizer
        return f"not tested: only {listed(list(scores))} was profiled, so there is no other to lead"
    adam = scores.get(DEFAULT, 0.0)
    if leaders == [DEFAULT]:
        runner = max(v for n, v in scores.items() if n != DEFAULT)
        close = [n for n, v in scores.items() if n != DEFAULT and _within_margin(adam - v)]
        if not close:
            return (f"agrees: Adam has the highest profile score, at least {SCORE_MARGIN:g} "
                    f"above every other ({_score(adam)} against {_score(runner)})")
        return (f"partly: Adam has the highest profile score, but {listed(close)} "
                f"{'are' if len(close) > 1 else 'is'} within {SCORE_MARGIN:g} of it ({MARGIN_WORDS})")
    if DEFAULT in leaders and len(leaders) == len(scores):
        return "not seen here: every optimizer shares the highest profile score"
    if DEFAULT in leaders:
        return f"partly: Adam shares the highest profile score with {others}"
    if _within_margin(top - adam):
        return (f"partly: {listed(leaders)} {'score' if len(leaders) > 1 else 'scores'} "
                f"highest and Adam is within {SCORE_MARGIN:g} of it ({MARGIN_WORDS})")
    return (f"does not agree: {listed(leaders)} {'score' if len(leaders) > 1 else 'scores'} "
            f"highest, Adam at least {SCORE_MARGIN:g} lower")


#: the profile score difference the page reads as no difference (:data:`PROFILE_LEAD`'s
#: caveat); the recommendation verdict applies it to Adam's lead and to its deficit alike.
#: On three tasks a time ratio r on one of them scores (4 - r) / 9 of the whole, so 0.1 is
#: one task's ratio moving by 0.9 (1.0x to 1.9x), and a task not reached costs 1/3
SCORE_MARGIN = 0.1
#: :data:`SCORE_MARGIN` in words, for three tasks
MARGIN_WORDS = "on three tasks, one task's time ratio moving from 1.0x to about 1.9x"


def _within_margin(difference: float) -> bool:
    """Whether two profile scores ``difference`` apart are within :data:`SCORE_MARGIN` of
    each other (rounded first: 0.9 - 0.8 is 0.0999... in floating point)."""
    return abs(round(difference, 9)) < SCORE_MARGIN


def _score(value: float) -> str:
    """A profile score as every table, legend and verdict of the page shows it: three
    decimals (:meth:`.profile.Profile.rows`)."""
    return f"{value:.3f}"


def recommendation_evidence(scores: dict[str, float], tied: bool = False) -> str:
    """The "this run" cell of the default-recommendation line: the profile scores the
    verdict reads, at the profile table's precision (:func:`_score`), and, where ``tied``,
    that reaching the target at the same evaluation counted as a tie."""
    return ("profile scores: " + ", ".join(f"{n} {_score(v)}" for n, v in scores.items())
            + (" (reaching the target at the same evaluation counted as a tie; the "
               "profile's notes say where)" if tied else ""))


def same_evaluation_ties(ratios: dict[str, dict[str, float]],
                         steps: dict[str, dict[str, float]],
                         every: dict[str, int]) -> dict[str, list[str]]:
    """Per workload, the optimizers whose ratio to the fastest is above 1 although they
    reached the target at the same evaluation as a fastest one (the same median steps),
    where the evaluation interval could hide the difference: the target is checked every
    ``every`` steps, so two runs read at step ``s`` reached it somewhere in
    ``(s - every, s]`` and their ratio of steps can be anything up to ``s / (s - every)``;
    a ratio (of step costs, the steps being the same) within that cannot order them."""
    out: dict[str, list[str]] = {}
    for workload, per in ratios.items():
        counts, e = steps.get(workload) or {}, every.get(workload) or 1
        fastest = [o for o, r in per.items() if r == 1.0]
        tied = []
        for o, r in per.items():
            s = counts.get(o, math.nan)
            if not (math.isfinite(r) and r > 1.0 and math.isfinite(s) and e > 1):
                continue
            hides = math.inf if s <= e else s / (s - e)
            if any(counts.get(f) == s for f in fastest) and r <= hides:
                tied.append(o)
        if tied:
            out[workload] = sorted(tied)
    return out


def resolved_scores(ratios: dict[str, dict[str, float]],
                    ties: dict[str, list[str]]) -> dict[str, float]:
    """The profile scores (:func:`.analysis.ratio_score`) with the ratios of
    :func:`same_evaluation_ties` set to 1: what the measurement can resolve."""
    names = sorted({o for per in ratios.values() for o in per})
    return {o: ratio_score([1.0 if o in ties.get(w, ()) else per.get(o, math.inf)
                            for w, per in ratios.items()]) for o in names}


def _profile(store: RunStore, mnist1d_sweep: int, out_dir: Path, quick: bool,
             say: Callable[[str], None]):
    steps = 30 if quick else 300
    sweeps, tables, notes = [mnist1d_sweep], [], []
    for task, what, target in PROFILE_TASKS:
        spec = SweepSpec(task=task, optimizers=TASK_OPTIMIZERS,
                         config=TrainConfig(steps=steps, batch_size=32,
                                            eval_every=max(1, steps // 15)),
                         lrs=(1e-2, 1e-1) if quick else (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                         seeds=1 if quick else 3, target=target, extend=True)
        say(f"{task}: {len(spec.members())} runs of {steps} steps")
        sweep_id = run_sweep(spec, store, name=f"tour: {task}")
        _report(store, sweep_id, out_dir / task)
        sweeps.append(sweep_id)
        headers, rows, sweep_notes = summary_parts(store, sweep_id)
        tables.append(f"<h3>{html.escape(task)}: {html.escape(what)}</h3><p>Batch 32, "
                      f"{steps} steps, rates {', '.join(f'{lr:g}' for lr in spec.lrs)}, "
                      f"extended past an edge as there; target accuracy {target:g} (report: "
                      f"{_link(f'{task}/report.html')}).</p>"
                      + _sweep_table(store, sweep_id, headers, rows))
        notes += [f"{task}: {n}" for n in sweep_notes[1:]
                  if "calibrated step cost" not in n]
    profile = build_profile(store, sweeps)
    ties = profile_ties(store, sweeps, profile)
    headers, rows = profile.rows()
    headers = profile_headers(headers, profile.basis)
    tables.append("<h3>Performance profile over MNIST-1D, digits and sparse-logreg</h3>"
                  + _html_table(headers, rows, [False] + [True] * (len(headers) - 1)))
    section = _Section("Across tasks: which optimizer is fastest to a target", "",
                       [_png(profile.plot())], profile_lead(spec.seeds), tables,
                       profile_notes(notes, profile) + [PROFILE_RATE_NOTE]
                       + tie_notes(ties, profile))
    return section, sweeps, profile, ties


def profile_headers(headers: list[str], basis: dict[str, str] | None) -> list[str]:
    """The profile table's headers as the tour shows them: what its times are (the
    calibrated cost, where every workload is timed by it, :attr:`.profile.Profile.basis`;
    else a row names its own measure) and which way is better."""
    measure = ("calibrated cost to target (s)" if set((basis or {}).values()) <= {"cost"} else
               "calibrated cost to target (s), or the measure its row names")
    return [f"{headers[0]} ({measure} {DOWN}, ratio {DOWN}; score {UP})"] + headers[1:]


#: under the profile: the tables and the profile read different rates
PROFILE_RATE_NOTE = (
    "profile: the task tables read steps to the target at each optimizer's best lr (the "
    "rate whose worst accuracy over the last quarter of training is best), the median "
    "over seeds; the profile takes, per seed, whichever rate reached the target fastest, "
    "then the median over seeds, so a profile time can be shorter than the table's.")


def profile_ties(store: RunStore, sweeps: list[int], profile) -> dict[str, list[str]]:
    """:func:`same_evaluation_ties` of the profile of ``sweeps``: each workload's median
    steps to the target (per seed the fastest rate, as the profile takes them) and its
    evaluation interval, read from the store."""
    from .sweep import run_records

    steps, every = {}, {}
    for workload, sweep_id in zip(profile.times, sweeps):
        config = store.sweep(sweep_id)["config"] or {}
        every[workload] = int((config.get("train") or {}).get("eval_every") or 1)
        steps[workload] = fastest_to_target(run_records(store, sweep_id), "steps_to_target")
    return same_evaluation_ties(profile.ratios or {}, steps, every)


def tie_notes(ties: dict[str, list[str]], profile) -> list[str]:
    """The notes that say which ratios the closing verdict reads as ties, and the scores
    it reads."""
    if not ties:
        return []
    said = "; ".join(f"{w}: {', '.join(names)}" for w, names in ties.items())
    scores = resolved_scores(profile.ratios or {}, ties)
    return [f"profile: reached the target at the same evaluation as the fastest, so the step "
            f"counts cannot order them and the ratio over 1 is per-step cost alone, within "
            f"what the evaluation interval hides ({said}); the closing section counts these "
            "as ties (ratio 1), which gives the scores "
            + ", ".join(f"{n} {_score(v)}" for n, v in scores.items())
            + ". Evaluating every step would resolve them, at the cost of an evaluation per "
            "step."]


#: what the cross-task profile shows and how its ratios are taken
PROFILE_LEAD = (
    "The same four optimizers on two more tasks, then a performance profile over all "
    "three (AlgoPerf's): for each task, an optimizer's cost to reach the target "
    "(per seed at its fastest rate, then the median over seeds, as AlgoPerf's external "
    "tuning times it) is compared with the fastest optimizer's: its ratio in the table; "
    "rho(tau) is the share of tasks it reaches within tau times the fastest, and the "
    "score is the area under rho over tau from 1 to 4, divided by 3 (1 = fastest "
    "everywhere, 0 = never within 4x; a task that no optimizer reached scores 0 for all).",
    "The cost is steps to the target times the optimizer's step cost, measured once "
    "per machine and model (the CPU time of one training step, interleaved and "
    "repeated), so the same sweeps give the same profile on a busy machine as on a "
    "quiet one. The ratio is cost over cost only where the two step costs can be told "
    f"apart: where they are {TIE_BY_ERRORS} (where a calibration's rounds are not known, "
    f"{TIE_BY_SPREADS}), it is "
    "steps over steps (1.00x for the same steps), so measurement noise cannot order "
    "optimizers; the notes under the table name every ratio taken by steps. Steps and "
    "gradient evaluations are in the tables too; wall time is shown for information only "
    "(it depends on what else the machine was doing).",
    "Caveat: three small tasks make a small profile. A score difference of about "
    f"{SCORE_MARGIN:g} is, {MARGIN_WORDS}; a task not reached at all, where another "
    "optimizer was the fastest, costs 0.33.",
)


def profile_lead(seeds: int) -> list[str]:
    """:data:`PROFILE_LEAD`, its caveat ending with what this run's ``seeds`` allow: the
    tables' confidence intervals exist only with two seeds or more."""
    return list(PROFILE_LEAD[:-1]) + [PROFILE_LEAD[-1] + (
        " Read it together with the tables' confidence intervals." if seeds > 1 else
        f" With {seeds} seed the tables have no confidence intervals, and each time to the "
        "target is one run's, so no score difference here is evidence.")]


def profile_notes(task_notes: list[str], profile) -> list[str]:
    """The notes under the cross-task section: each task's table notes, then the profile's
    own (:meth:`.profile.Profile.notes`: how a time is taken, which ratios are by steps and
    why, workloads nobody reached), as ``optimlab profile`` prints them."""
    return list(task_notes) + [f"profile: {n}" for n in profile.notes()]


def _slice(out: Path, quick: bool, say: Callable[[str], None]) -> _Section:
    """Four optimizers' paths on one plane of the MNIST-1D MLP's loss landscape, the
    interpolation between their solutions and their sharpness; the slice is also written
    to ``out/slice/slice.json``, where the playground's Slices tab finds it."""
    say("a slice of the MNIST-1D MLP's loss landscape")
    result = slice_landscape("mnist1d", "mlp", DEFAULT_OPTIMIZERS, steps=60 if quick else 2000,
                             grid=9 if quick else 41, points=10 if quick else 50)
    (out / "slice").mkdir(exist_ok=True)
    write_atomically(out / "slice" / "slice.json", json.dumps(result.to_json()), mode=NEW_FILE)
    paths = {p.optimizer: p for p in result.paths}
    lead = [
        "Every optimizer here trains the same MLP from the same initial weights on the same "
        "mini-batches, and the picture is one plane of its weight space: through the shared "
        f"initialisation and the {' and '.join(result.through)} endpoints, the pair whose "
        "plane leaves least of all four paths off it. The colours are the training loss on "
        "that plane, evaluated on a grid as one batched population.",
        "A real network has thousands of dimensions, so a path mostly leaves the plane: the "
        "table gives how far each path is from it at its end and at most, also as a share "
        "of the path's reach (its largest distance from the initialisation). A path with a "
        "large share is drawn where its shadow falls, not where it went.",
        "Sharpness is the largest eigenvalue of the Hessian of the training loss at each "
        "solution (power iteration on Hessian-vector products); the tutorials' claim is "
        "that SAM, and SGD's noise, find flatter minima, and that flat minima generalise. "
        "The second picture follows the loss along straight lines: from the initialisation "
        "to each solution, and between two solutions (a bump between them is a barrier).",
        "The rates here are fixed, not tuned: each optimizer's slice preset (the table's lr "
        "column), one seed.",
    ]
    notes = []
    if {"sam", "sgd"} <= set(paths) and None not in (paths["sam"].sharpness,
                                                     paths["sgd"].sharpness):
        sam, sgd = paths["sam"], paths["sgd"]
        flatter = "flatter" if sam.sharpness < sgd.sharpness else "no flatter"
        notes.append(f"SAM's solution is {flatter} than SGD's at the same rate (top "
                     f"eigenvalue {sam.sharpness:.2f} against {sgd.sharpness:.2f}), with test "
                     f"{result.metric} {sam.test_metric:.3f} against {sgd.test_metric:.3f}.")
    sharp = [p for p in result.paths if p.sharpness is not None]
    if len(sharp) > 1:
        flattest = min(sharp, key=lambda p: p.sharpness)
        best = max(sharp, key=lambda p: p.test_metric)
        same = "the same one" if flattest is best else f"{best.optimizer}"
        notes.append(f"The flattest solution is {flattest.optimizer}'s; the best test "
                     f"{result.metric} is {same}'s: one seed and one task, so this checks "
                     "the claim here, it does not settle it.")
    worst = max(result.paths, key=lambda p: p.relative(p.max_residual))
    notes.append(f"Largest share off the plane: {worst.optimizer}, "
                 f"{worst.relative(worst.max_residual):.0%} of its reach.")
    s = result.seconds
    notes.append(f"The {len(result.xs)} x {len(result.ys)} grid took {s['grid']:.1f} s, "
                 f"training the four {s['train']:.1f} s, the sharpness {s['sharpness']:.1f} s.")
    headers, rows = result.rows()
    return _Section("A real network's loss landscape: four optimizers on one plane",
                    result.table(), [_png(plot_slice(result)), _png(plot_interpolation(result))],
                    lead, [_html_table(_slice_headers(headers), rows,
                                       [False] + [True] * (len(headers) - 1))], notes)


def _slice_headers(headers: list[str]) -> list[str]:
    """The slice table's headers with their better direction; sharpness is flatness, which
    the section tests rather than assumes better."""
    return [f"{h} (lower: flatter)" if h == "top Hessian eig" else h
            for h in _directed(headers)]


def _variants(say: Callable[[str], None]) -> _Section:
    say("gradient-descent variants")
    demo = gd_variants()
    lead = [
        "Least squares solved three ways: full-batch gradient descent (one exact gradient "
        "per update), mini-batch (a few examples) and stochastic (one example). Left: loss "
        "against updates, where full batch wins; right: loss against examples processed, "
        "the cost that matters, where the cheap noisy updates of the small batches get "
        "close to the minimum first and then wander at a noise floor set by the rate.",
        "The table gives the updates and the gradient evaluations (examples) each needs to "
        "close 99% of the gap between the starting loss and the minimum. Each variant runs "
        "at a fixed rate (the table's lr), not a tuned one.",
    ]
    headers, rows = demo.rows()
    return _Section("Batch, mini-batch and stochastic gradient descent", demo.table(),
                    [_png(demo.plot())], lead,
                    [_html_table(_directed(headers), rows,
                                 [False] + [True] * (len(headers) - 1))])


#: The tutorials' folklore about the four classic optimizers (the table they draw):
#: aspect -> (what the folklore says, per optimizer).
FOLKLORE = {
    "learning-rate stability": {
        "sgd": "sensitive: the rate must be tuned (and scheduled)",
        "adagrad": "forgiving, but its step only shrinks",
        "rmsprop": "moderate",
        "adam": "forgiving: works near its default",
    },
    "memory (extra buffers per parameter)": {
        "sgd": "none (one with momentum)", "adagrad": "one", "rmsprop": "one", "adam": "two",
    },
    "sparse data": {
        "sgd": "poor: rare features get the same small step",
        "adagrad": "best: made for rare features",
        "rmsprop": "good", "adam": "good",
    },
    "RNNs": {
        "sgd": "hard without clipping", "adagrad": "rates decay too fast",
        "rmsprop": "the classic choice", "adam": "the usual choice",
    },
    "generalisation": {
        "sgd": "often the best when tuned", "adagrad": "—", "rmsprop": "—",
        "adam": "can generalise worse than SGD",
    },
    "default recommendation": {
        "sgd": "", "adagrad": "", "rmsprop": "", "adam": "Adam",
    },
}
#: whom the folklore's claims are about (its subjects, not a check of what one can do)
PLAIN, SPARSE, DEFAULT = TASK_OPTIMIZERS[0], TASK_OPTIMIZERS[1], TASK_OPTIMIZERS[3]
#: how close to its best (in the metric's units) a rate must be to count as "as good"
STABLE_WITHIN = 0.02


def sparse_verdict(top: list[str], seeds: int = 2) -> str:
    """The folklore's sparse-data line (Adagrad the best, made for rare features; SGD poor)
    against the optimizers sharing the top rank on the sparse task: it agrees only where
    Adagrad is alone at the top; a tie with RMSprop or Adam (which the folklore calls good)
    is said with whom; a tie with SGD, which it calls poor, is not seen here; a top without
    Adagrad does not agree; one seed is no evidence (:func:`one_seed`)."""
    if (said := one_seed(seeds)) is not None:
        return said
    if SPARSE not in top:
        return "does not agree: Adagrad is not among the best"
    if PLAIN in top:
        return ("not seen here: SGD, which the folklore calls poor on sparse data, cannot be "
                "told apart from Adagrad at this number of seeds")
    others = [n for n in top if n != SPARSE]
    if not others:
        return "agrees"
    said = [resolve(n).cls.__name__ for n in others]  # the class's spelling: RMSprop
    said = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
    return (f"partly: Adagrad is among the best, but so {'is' if len(others) == 1 else 'are'} "
            f"{said}")


def takeaway(rows: list[list[str]]) -> str:
    """The closing "what to take away", read from the verdicts of the closing table's
    ``rows`` (aspect first, verdict last); the tutorials' usual advice follows, labelled as
    folklore this run does not test as such."""
    kinds: dict[str, list[str]] = {"agrees": [], "partly": [], "unseen": [], "not": [],
                                   "untested": []}
    for row in rows:
        aspect, verdict = row[0], row[-1]
        kind = ("agrees" if verdict.startswith("agrees") else
                "partly" if verdict.startswith("partly") else
                "unseen" if verdict.startswith("not seen here") else
                "untested" if verdict.startswith("not tested") else "not")
        kinds[kind].append(aspect.split(" (")[0])
    words = {"agrees": "agrees with the folklore on {}",
             "partly": "agrees only in part on {}",
             "unseen": "cannot see the difference the folklore claims on {}",
             "not": "contradicts it on {}",
             "untested": "could not test {}"}
    said = [words[kind].format(", ".join(aspects)) for kind, aspects in kinds.items()
            if aspects]
    return ("What to take away: this run " + ("; ".join(said) or "tested nothing")
            + " (each verdict below says why). The tutorials' advice (start with Adam near "
            "its default rate if you cannot tune; tune SGD's rate, with momentum and a "
            "schedule, when you can afford a sweep; use Adagrad for sparse features) is "
            "folklore that this run does not test as such: it tunes every rate, and runs "
            "SGD without momentum or a schedule. Run `optimlab bench` on your own task "
            "before believing any of it.")


def rnn_verdict(top: list[str], seeds: int = 2) -> str:
    """The folklore's RNN line (RMSprop and Adam the choices, SGD and Adagrad behind) against
    the optimizers sharing the top rank on a recurrent task; one seed is no evidence
    (:func:`one_seed`)."""
    if (said := one_seed(seeds)) is not None:
        return said
    favoured = {"rmsprop", "adam"} & set(top)
    if not favoured:
        return "does not agree: neither RMSprop nor Adam is among the best"
    if PLAIN in top:
        return "not seen here: SGD cannot be told apart from the best at this number of seeds"
    if SPARSE in top:
        return "partly: RMSprop or Adam is among the best, but so is Adagrad"
    return "agrees"


def _memory(names) -> dict[str, float]:
    """Extra parameter-sized buffers each optimizer keeps after a step, counted from its
    state (not from the catalog)."""
    import torch

    from ..optim.registry import create

    out = {}
    for name in names:
        p = torch.zeros(1000, requires_grad=True)
        opt = create(name, [p], lr=1e-3)
        p.grad = torch.ones_like(p)
        opt.step()
        out[name] = sum(v.numel() for v in opt.state[p].values()
                        if hasattr(v, "numel") and v.numel() == p.numel()) / p.numel()
    return out


def _evidence(store: RunStore, sweeps: list[int], profile, recurrent: int,
              ties: dict[str, list[str]] | None = None) -> _Section:
    """The closing table: each line of the folklore beside what this run measured.

    ``sweeps`` are the profile's tasks; ``recurrent`` the GRU sweep the RNN line reads;
    ``ties`` the profile's ratios that the evaluations cannot resolve
    (:func:`same_evaluation_ties`), read as ties by the default-recommendation line."""
    from .sweep import run_records

    names = list(TASK_OPTIMIZERS)

    def ranked(sweep_id: int) -> tuple[str, dict, dict, list[dict]]:
        info = store.sweep(sweep_id)
        higher = (info["config"].get("metric") or {}).get("higher_is_better", True)
        records = [r for r in run_records(store, sweep_id) if r["status"] != "pending"]
        done = summarize(records, higher)
        return (info["task"], {s.optimizer: s for s in done},
                {s.optimizer: label for label, s in rank(done, higher)}, records)

    tasks, summaries, ranks, records = (list(column) for column in zip(*map(ranked, sweeps)))
    _, rnn_summaries, rnn_ranks, _ = ranked(recurrent)

    def fewest_seeds(*per_task: dict) -> int:  # the seeds a line's evidence rests on
        return min((s.seeds for per in per_task for s in per.values()), default=0)

    seeds = fewest_seeds(*summaries)

    def first(ranked_as: dict, name: str) -> bool:  # rank 1, alone or shared ("=1")
        return ranked_as.get(name, "").lstrip("=") == "1"

    def top(k: int, name: str) -> bool:
        return first(ranks[k], name)

    rows = []
    # learning-rate stability: each optimizer's own rates within a window of its own best
    shown, share = {}, {}  # share[name][task]: the fraction of its rates close to its best
    for name in names:
        counts, share[name] = [], {}
        for k, per in enumerate(summaries):
            s = per.get(name)
            if s is None:
                continue
            found = stable_rates(s.sensitivity, s.best_lr)
            counts.append("not tested" if found is None else f"{found[0]}/{found[1]}")
            if found is not None:
                share[name][k] = found[0] / found[1]
        shown[name] = ", ".join(counts)
    rows.append(["learning-rate stability"] + [FOLKLORE["learning-rate stability"][n] for n in names]
                + ["; ".join(f"{n}: {shown[n]}" for n in names)
                   + f" of its own rates within a factor {STABLE_WINDOW:g} each side of its "
                   f"best lr (the tables') that end within {STABLE_WITHIN:g} of its accuracy there "
                   "or above it "
                   f"({', '.join(tasks)}; its grid extended past an edge included; not tested "
                   "where it ran no rate on one side of its best in that window)",
                   stability_verdict(share[DEFAULT], share[PLAIN], seeds)])
    memory = _memory(names)
    rows.append(["memory (extra buffers per parameter)"]
                 + [FOLKLORE["memory (extra buffers per parameter)"][n] for n in names]
                 + ["; ".join(f"{n}: {memory[n]:g}" for n in names)
                    + " (counted in each optimizer's state after a step, SGD without momentum)",
                    memory_verdict(memory)])
    if "sparse-logreg" in tasks:
        k = tasks.index("sparse-logreg")
        in_top = [n for n in names if top(k, n)]
        rows.append(["sparse data"] + [FOLKLORE["sparse data"][n] for n in names]
                    + ["top rank on sparse-logreg: " + (", ".join(in_top) or "none")
                       + "; ranks " + ", ".join(f"{n} {ranks[k].get(n, '-')}" for n in names),
                       sparse_verdict(in_top, fewest_seeds(summaries[k]))])
    rnn_top = [n for n in names if first(rnn_ranks, n)]
    rows.append(["RNNs"] + [FOLKLORE["RNNs"][n] for n in names]
                + ["top rank on the MNIST-1D GRU: " + (", ".join(rnn_top) or "none")
                   + "; ranks " + ", ".join(f"{n} {rnn_ranks.get(n, '-')}" for n in names),
                   rnn_verdict(rnn_top, fewest_seeds(rnn_summaries))])
    # the folklore's generalisation is the gap between test and train loss, not the test
    # accuracy after a short budget (an SGD that only trains more slowly is not one that
    # generalises worse): SGD against Adam on each task, paired over the seeds
    sgd_ahead = adam_ahead = fit_less = 0
    gaps = []
    for task, per, done in zip(tasks, summaries, records):
        a, b = per.get(PLAIN), per.get(DEFAULT)
        if a is None or b is None:
            continue
        lead = gap_lead(done, a, b)
        sgd_ahead += lead == a.optimizer
        adam_ahead += lead == b.optimizer
        fit_less += lead == "fit less"
        gaps.append(f"{task} {PLAIN} {_mean_gap(done, a)}, {DEFAULT} {_mean_gap(done, b)}")
    rows.append(["generalisation (train-test loss gap)"]
                + [FOLKLORE["generalisation"][n] for n in names]
                + [f"final test loss minus final train loss, SGD against Adam at their best "
                   f"rates (paired over the seeds, 95%): SGD's gap clearly smaller on "
                   f"{sgd_ahead}, Adam's on {adam_ahead} of {len(tasks)} tasks"
                   + (f" (on {fit_less} more, the smaller gap came with a clearly higher train "
                      "loss: fitting less, not generalising better, so not counted)"
                      if fit_less else "")
                   + f"; mean gaps: {'; '.join(gaps)}. After these short budgets a model that "
                   "fitted less has less to lose, so read each gap with its train loss",
                   generalisation_verdict(sgd_ahead, adam_ahead, len(tasks), seeds)])
    scores = resolved_scores(profile.ratios or {}, ties or {}) if ties else dict(profile.scores)
    rows.append(["default recommendation"] + [FOLKLORE["default recommendation"][n]
                                              for n in names]
                + [recommendation_evidence(scores, bool(ties)),
                   _recommendation_verdict(scores, seeds)])
    headers = ["aspect"] + [f"folklore: {n}" for n in names] + ["this run", "verdict"]
    lead = [
        "The tutorials close with a table of folklore about SGD, Adagrad, RMSprop and Adam. "
        "Here it is beside what this run measured, line by line, with a verdict: agrees, "
        "partly, does not agree, not seen here (the evidence cannot tell), or not tested. "
        f"The evidence is small (four small tasks, {seeds} seed{'s' if seeds != 1 else ''} "
        "each, short budgets). The verdicts keep the tables' rule: where the tables cannot "
        "tell two optimizers apart, a verdict that needs them apart says not seen here, and "
        + ("with one seed no table tells any apart, so every verdict read from the "
           "training tables says not seen here." if seeds < 2 else
           "a verdict agrees only where the difference the folklore claims was seen."),
        takeaway(rows),
    ]
    return _Section("When to use which: the folklore and this run's evidence", "", [], lead,
                    [_html_table(headers, rows)])


def _anchor(title: str) -> str:
    """A section's id, made from its title: what the page's contents list links to."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _section_html(section: _Section) -> str:
    images = "".join(f'<img alt="{html.escape(image.alt)}" src="data:image/png;base64,'
                     f'{base64.b64encode(image.png).decode()}">' for image in section.images)
    lead = "".join(f"<p>{text if isinstance(text, _Html) else html.escape(text)}</p>"
                   for text in section.lead)
    tables = "".join(f'<div class="wide">{t}</div>' for t in section.tables)
    text = "" if section.tables or not section.text else \
        f"<pre>{html.escape(section.text)}</pre>"
    notes = "" if not section.notes else \
        "<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in section.notes) \
        + "</ul>"
    return f'<section><h2 id="{_anchor(section.title)}">{html.escape(section.title)}</h2>' \
        f"{lead}{tables}{text}{notes}" \
        f"{images}</section>"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222;line-height:1.45}img{max-width:100%;display:block;margin:1em 0}"
        "pre{overflow-x:auto;background:#f6f6f6;padding:.8em;font-size:.85em}"
        ".wide{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0;font-size:.88em}"
        "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}"
        "th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}"
        ".notes{font-size:.9em;color:#444}h3{font-size:1em;margin-top:1.4em}")


#: the page's heading and title, and what a quick page says of itself
TITLE, QUICK_TITLE = "optimlab tour", "optimlab tour (quick)"
QUICK_NOTE = ("This is a quick tour (--quick): every budget is tiny and each training task "
              "has one seed, so no table's ranks are evidence of a difference and the "
              "closing verdicts say so; run `optimlab tour` without --quick for the evidence. ")


def _page(sections: list[_Section], seconds: float, quick: bool = False,
          previous: bool = False) -> str:
    """The page; ``previous``: whether a previous tour's store was kept aside
    (:func:`_keep_previous`), which the opening paragraph then says."""
    contents = "".join(f'<li><a href="#{_anchor(s.title)}">{html.escape(s.title)}</a></li>'
                       for s in sections)
    title = QUICK_TITLE if quick else TITLE
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{title}</title><style>{_CSS}</style></head><body>"
            f"<h1>{title}</h1>"
            "<p>" + (html.escape(QUICK_NOTE) if quick else "") +
            "The tutorials' story about gradient-based optimizers, checked: first on "
            "two-dimensional landscapes that each show one difficulty, then on real small "
            "training tasks, then across tasks, and last the folklore set beside this run's "
            "evidence. Every number and picture below was computed by this run "
            f"({seconds:.0f} s, from a fresh run store: {STORE}"
            + (f"; the one a previous tour left in this folder is kept as {PREVIOUS}"
               if previous else "") +
            "). Learning rates were "
            "tuned for each optimizer in the races and the training sweeps, so those compare "
            "tuned optimizers, not defaults; the basins of attraction, the network's "
            "loss-landscape slice and the batch, mini-batch and stochastic variants use "
            "fixed rates, given in their tables. Each table says how the rate was chosen and "
            "when two optimizers cannot be told apart; a header's arrow says which way is "
            f"better ({UP} higher, {DOWN} lower).</p>"
            f"<ol>{contents}</ol>"
            + "".join(_section_html(s) for s in sections) + "</body></html>")


#: the tour's run store in its folder, and where a rerun keeps the one before
STORE, PREVIOUS = "tour-runs.db", "tour-runs.previous.db"
#: the tour's page in its folder
PAGE = "tour.html"
#: the folder inside the tour's where a tour is built, in the same layout, until it has
#: completed (:func:`_tour`); hidden, so a listing of the tour's folder shows the tour
STAGING = ".tour-new"


def _keep_previous(out: Path) -> None:
    """Move the store a previous tour left in ``out``, with its ``-wal`` and ``-shm`` files,
    to ``tour-runs.previous.db`` (replacing an older one there); nothing where there is none.
    The store is not deleted: ``optimlab serve --db`` can still read it."""
    current, previous = out / STORE, out / PREVIOUS
    if current.exists():
        for suffix in ("", "-wal", "-shm"):  # a stale -wal beside the moved store would be
            Path(f"{previous}{suffix}").unlink(missing_ok=True)  # read as its journal
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{current}{suffix}").exists():
                os.replace(f"{current}{suffix}", f"{previous}{suffix}")


def fresh_store(out: Path) -> RunStore:
    """A new, empty run store ``out/tour-runs.db`` for one tour, so that every number of the
    page is computed by this run (``run_sweep`` resumes a stored sweep of the same
    configuration, and the configuration holds no code version) and its sweeps are 1, 2, 3
    and 4 (what ``optimlab profile 1 2 3 --db .../tour-runs.db`` reads). A store left there
    is not deleted: it is moved aside (:func:`_keep_previous`). The tour opens its store in
    its empty staging folder, and its completion (:func:`_publish`) keeps the previous tour's
    aside the same way."""
    _keep_previous(out)
    return RunStore(out / STORE)


def _final(path: Path) -> Path:
    """Where ``path``, a file of a tour's staging folder (:data:`STAGING`: its store), will
    be once the tour has completed and moved it into place (:func:`_publish`); any other
    path is itself."""
    return path.parent.parent / path.name if path.parent.name == STAGING else path


def _clear(stage: Path) -> None:
    """Remove the staging folder ``stage``, if there is one."""
    if stage.is_symlink() or stage.is_file():
        stage.unlink()
    elif stage.exists():
        shutil.rmtree(stage)


def _ready_beside(built: Path, place: Path) -> Path:
    """``built`` as a file in ``place``'s folder, ready to be renamed over ``place``: itself
    where both are on one file system, else a copy made there now under a temporary name
    (a report folder that is a link to another disk), so that a full disk stops the
    tour's move before anything is replaced rather than in the middle of it."""
    if os.stat(built).st_dev == os.stat(place.parent).st_dev:
        return built
    handle, copy = tempfile.mkstemp(prefix=f".{place.name}.", suffix=".tmp", dir=place.parent)
    try:
        with os.fdopen(handle, "wb") as target, open(built, "rb") as source:
            shutil.copyfileobj(source, target)
        os.chmod(copy, new_file_mode())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(copy)
        raise
    return Path(copy)


class _PartlyPublished(OSError):
    """A rename failed while a completed tour was being moved into place."""


def _publish(stage: Path, out: Path) -> None:
    """Move the tour completed in ``stage`` into ``out``, over the previous one.

    First everything that can fail for want of room or rights: the folders (a place that
    cannot take one, a file of its name, stops the move before anything is replaced) and a
    copy beside its place of each file bound for another disk (:func:`_ready_beside`).
    Then, signals held (:func:`~optimlab._files.signals_deferred`), only renames: the previous store aside
    (:func:`_keep_previous`) and the new one in its place, each file of the report folders
    and of ``slice/`` (a user's other files there stay), the page last, so the page is never
    one whose files are still to come. A rename that fails even so (a file another program
    holds open on Windows) raises :class:`_PartlyPublished`."""
    files = sorted(p for p in stage.rglob("*") if p.is_file() and p.parent != stage)
    for folder in sorted({out / f.parent.relative_to(stage) for f in files}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(err.errno, f"cannot create {folder}: {mkdir_failure(folder, err)}") \
                from None
    moves = [(Path(f"{stage / STORE}{suffix}"), Path(f"{out / STORE}{suffix}"))
             for suffix in ("", "-wal", "-shm")  # a store closed has no -wal left, as a rule
             if Path(f"{stage / STORE}{suffix}").exists()]
    moves += [(f, out / f.relative_to(stage)) for f in files] + [(stage / PAGE, out / PAGE)]
    ready: list[tuple[Path, Path, Path]] = []
    try:
        for built, place in moves:
            ready.append((built, _ready_beside(built, place), place))
    except BaseException:
        for built, copy, _ in ready:
            if copy != built:
                with contextlib.suppress(OSError):
                    os.unlink(copy)
        raise
    with signals_deferred():
        try:
            _keep_previous(out)
            for _, copy, place in ready:
                os.replace(copy, place)
        except OSError as err:
            raise _PartlyPublished(err.errno, f"{err.strerror or err} (moving {copy} to "
                                   f"{place})") from err


def _named_in(err: OSError, stage: Path, out: Path) -> OSError | None:
    """``err`` with the staging folder ``stage`` in its message replaced by ``out``, where the
    tour's files will be (a report's "cannot write .../mnist1d/report.html: No space left on
    device"): the user asked for ``out``; None where its message does not name ``stage``."""
    text = str(err) if err.errno is None else err.strerror
    if not text or (str(stage) not in text and os.path.abspath(stage) not in text):
        return None
    text = text.replace(os.path.abspath(stage), os.path.abspath(out)).replace(str(stage), str(out))
    return OSError(text) if err.errno is None else OSError(err.errno, text)


#: the file a running tour holds locked in its folder (:func:`_one_tour_at_a_time`)
TOUR_LOCK = ".tour.lock"


@contextlib.contextmanager
def _one_tour_at_a_time(out: Path) -> Iterator[None]:
    """Hold ``out/.tour.lock`` (``flock``) while a tour runs there: a second tour in the same
    folder would remove the first one's staging folder as a killed tour's (:func:`_tour`),
    and the two would move their files over each other's. The second is refused instead,
    with an ``OSError`` saying so. The lock goes with the process (a killed tour leaves only
    the empty file, and its staging folder, which the next tour removes). Where ``fcntl``
    is missing (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        # never through a symbolic link: one planted there (a folder others may write) would
        # have had the tour create the file it names, or lock a file not its own
        fd = os.open(out / TOUR_LOCK,
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(out / TOUR_LOCK):
            raise OSError(err.errno, f"cannot create {out / TOUR_LOCK}: it is a symbolic link, "
                          "not a lock file (remove it if no one should have put it there)") from None
        raise OSError(err.errno, f"cannot create {out / TOUR_LOCK}: {err.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(errno.EBUSY, f"another tour is running in {out} now (it holds "
                          f"{TOUR_LOCK}); wait for it to end, or give another --out") from None
        except OSError as err:
            # a file system without locks (an NFS mount without its lock daemon: ENOLCK,
            # some FUSE mounts: EOPNOTSUPP) runs the tour unlocked, as Windows does, rather
            # than refusing it with "No locks available"
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
        yield
    finally:
        os.close(fd)


def run_tour(out_dir, quick: bool = False, say: Callable[[str], None] = print) -> Path:
    """Run the tour and write ``out_dir/tour.html``; returns its path. One tour at a time
    runs in a folder (:func:`_one_tour_at_a_time`): a second one raises ``OSError``. Nothing
    of a previous tour there is replaced until this one has completed (:func:`_tour`)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"cannot create {out}: {mkdir_failure(out, err)}") from None
    with _one_tour_at_a_time(out):
        return _tour(out, quick, say)


def _tour(out: Path, quick: bool, say: Callable[[str], None]) -> Path:
    """:func:`run_tour`'s work, the folder's lock held. The tour is built in ``out/.tour-new``
    (:data:`STAGING`, in the layout it has in ``out``) and moved into ``out`` only once it
    has completed (:func:`_publish`): a tour that fails or is interrupted removes its
    staging folder and leaves the previous tour's page, store, reports and slice as they
    were (an interrupted tour used to have moved the previous store aside and written over
    its reports, under a page that still described them). A staging folder left by a
    killed tour is removed first: the lock says that no tour is building it."""
    start = time.perf_counter()
    previous = (out / STORE).exists()  # _publish keeps it aside, and the page says so
    stage = out / STAGING
    try:
        _clear(stage)
        stage.mkdir()
    except OSError as err:
        raise OSError(err.errno, f"cannot prepare {stage}, where the tour is built until it "
                      f"completes: {err.strerror or err}") from None
    keep = False
    try:
        try:
            _build(stage, quick, say, previous, start)
        except OSError as err:
            shown = _named_in(err, stage, out)
            if shown is None:
                raise
            raise shown from err
        try:
            _publish(stage, out)
        except _PartlyPublished as err:
            keep = True  # what was not moved is the user's only copy of it
            raise OSError(err.errno, f"the tour completed, but moving it into {out} failed part "
                          f"way: {err.strerror}; {out} now mixes the two tours, and what was "
                          f"not moved is in {stage} (the next tour there removes it)") from err
    finally:  # what a failed tour wrote, or the store's leftovers (its lock files)
        if not keep:
            with contextlib.suppress(OSError):
                _clear(stage)
    return out / PAGE


def _build(stage: Path, quick: bool, say: Callable[[str], None], previous: bool,
           start: float) -> None:
    """The tour's store, reports, slice and page, written in ``stage`` as they will be in the
    tour's folder (the page's links are relative; the reports name the store's final path)."""
    store = fresh_store(stage)  # stage is new: nothing to keep aside
    try:
        sections = _races(quick, say)
        for section, (_, what, _, noise) in zip(sections, RACES):
            section.lead = section.lead or RACE_LEADS.get((what, bool(noise)), [])
        mnist1d, sweep_id = _mnist1d(store, stage, quick, say)
        across, sweeps, profile, ties = _profile(store, sweep_id, stage, quick, say)
        recurrent, rnn_sweep = _recurrent(store, stage, quick, say)
        sections += [mnist1d, across, recurrent, _slice(stage, quick, say), _variants(say),
                     _evidence(store, sweeps, profile, rnn_sweep, ties)]
    finally:
        store.close()
    write_atomically(stage / PAGE, _page(sections, time.perf_counter() - start, quick, previous),
                     mode=NEW_FILE)
