"""``optimlab tour``: the tutorials' story end to end, in one HTML page.

1. Landscapes: SGD, momentum, RMSprop and Adam, each with its learning rate tuned on a log
   grid, raced on each difficulty (a ravine, local minima, a saddle, a plateau, an
   ill-conditioned bowl, noisy gradients).
2. A real task: the four optimizers on MNIST-1D (MLP) over a learning-rate grid and three
   seeds, trained as batched populations and stored in the run store.
3. Across tasks: the same four on digits and sparse logistic regression too, and the
   AlgoPerf-style performance profile of time to a target over the three tasks.
4. A recurrent network: the four on a GRU over MNIST-1D (the folklore's RNN line).
5. A slice of the MLP's loss landscape; batch, mini-batch and stochastic gradient descent
   on least squares.
6. When to use which: the tutorials' folklore table beside this run's evidence, line by
   line, with a verdict (agrees, does not agree, not tested).

Each section opens with what to look at and what the numbers mean, and its tables are HTML
tables that say how learning rates were chosen and which optimizers cannot be told apart.

Everything is computed when it runs (a few minutes on two cores); ``quick=True`` shrinks
every budget so the tests can run the whole tour in seconds.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..exhibits import gd_variants
from ..landscapes import get as get_landscape
from ..landscapes import race
from ..optim.registry import resolve
from .analysis import rank, summarize
from .profile import build_profile
from .report import _html_table, summary_parts, write_report
from .slices import DEFAULT_OPTIMIZERS, plot_interpolation, plot_slice, slice_landscape
from .store import RunStore
from .sweep import SweepSpec, run_sweep
from .trainer import TrainConfig

__all__ = ["RACES", "rnn_verdict", "run_tour"]

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
#: the tutorials' comparison on real tasks
TASK_OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")

#: (title, what, parameters, noise): one section per difficulty. ``what`` is a landscape
#: name (a race of the tuned OPTIMIZERS on it, with those landscape parameters) or
#: ``"exhibits.<function>"``, an exhibit of :mod:`optimlab.exhibits` called with those
#: parameters and ``steps`` (its table and figure make the section).
RACES = (
    ("A ravine: Rosenbrock's curved valley", "rosenbrock", {}, 0.0),
    ("Local minima: basins of attraction of two wells, the minimum each optimizer reaches "
     "from each of 15 x 15 starts", "exhibits.basins", {"landscape": "two_wells", "grid": 15},
     0.0),
    ("A saddle point", "saddle", {}, 0.0),
    ("A plateau with vanishing gradients", "plateau", {}, 0.0),
    ("Ill-conditioning: a bowl with condition number 50, axis-aligned and rotated 45 degrees",
     "exhibits.ravine_alignment", {"kappa": 50.0, "angle": 45.0}, 0.0),
    ("Noisy gradients: Rosenbrock with gradient noise 2", "rosenbrock", {}, 2.0),
)


class _Html(str):
    """A lead paragraph that is HTML already (it holds a link): shown as is, not escaped."""


def _link(path: str) -> str:
    """A relative link to ``path`` (a report written beside the tour), as HTML."""
    return f'<a href="{html.escape(path, quote=True)}">{html.escape(path)}</a>'


def _with_link(text: str, path: str, after: str = ".") -> _Html:
    """``text`` (plain), then a link to ``path``, then ``after``: one lead paragraph."""
    return _Html(html.escape(text) + _link(path) + html.escape(after))


@dataclass
class _Section:
    """One section of the page: ``lead`` paragraphs (what to look at, what the numbers
    mean, the caveats), ``tables`` as HTML, then ``text`` (shown as preformatted text only
    when there is no table), the pictures and ``notes`` (a list under the tables)."""

    title: str
    text: str
    images: list[bytes]
    lead: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


#: what to look at in each race: (landscape or exhibit, noisy?) -> paragraphs
RACE_LEADS = {
    ("rosenbrock", False): [
        "Rosenbrock's valley is curved and almost flat along its floor, so the gradient "
        "points across the valley rather than along it. Watch plain SGD zig-zag across the "
        "floor while momentum builds speed along it and Adam and RMSprop rescale the steep "
        "and the shallow directions. Each optimizer's rate was tuned on a log grid (the "
        "rate used is in the table, flagged where it sits on the grid's edge).",
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
        "shows, would tell only one of these stories.",
    ],
    ("saddle", False): [
        "At a saddle point the gradient vanishes but the point is not a minimum, and this "
        "one is unbounded below: there is no minimum value, so the table reports whether "
        "each optimizer escaped and how many steps it took, not a gap to a minimum.",
        "Gradient descent started near the ridge leaves it slowly, since the gradient "
        "there is tiny; optimizers that rescale small gradients (RMSprop, Adam) get away "
        "within a few dozen steps. Caveat: tuning on a saddle picks the largest rate that "
        "does not diverge, so the escape steps compare tuned rates, not the methods alone.",
    ],
    ("plateau", False): [
        "On a plateau the gradient is nearly zero, and SGD's step, proportional to the "
        "gradient, is nearly zero too. RMSprop and Adam divide by a running scale of the "
        "gradient, so their steps stay about as large as the learning rate and they cross "
        "the flat region; momentum helps once it has gathered speed.",
    ],
    ("exhibits.ravine_alignment", False): [
        "An ill-conditioned bowl, twice: with its axes along the coordinates, and the same "
        "bowl rotated by 45 degrees. Diagonal adaptivity (RMSprop, Adam) rescales each "
        "coordinate on its own, which cures the conditioning only when the bowl's axes are "
        "the coordinates: compare RMSprop's steps to the tolerance on the two bowls with "
        "tuned gradient descent's, which are the same on both. Adam's momentum does most "
        "of its work here, so it depends much less on the alignment.",
        "The ravines of real networks are rarely aligned with the parameters' axes, so the "
        "rotated bowl is the fairer picture of what per-coordinate rates buy.",
    ],
    ("rosenbrock", True): [
        "The same valley with Gaussian noise added to every gradient (the DeepOBS way, the "
        "same noise for every optimizer). Averaging methods (momentum, Adam) smooth the "
        "noise; the final loss now reflects the noise floor that each learning rate sets "
        "rather than how fast the valley was crossed.",
    ],
}


def _png(fig) -> bytes:
    from ..landscapes.plots import plt_close

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt_close(fig)
    return buffer.getvalue()


def _races(quick: bool, say: Callable[[str], None]) -> list[_Section]:
    from .. import exhibits

    steps = 60 if quick else 300
    sections = []
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
        table = _html_table(headers, rows, [False, False] + [True] * (len(headers) - 2))
        lead = list(RACE_LEADS.get((what, bool(noise)), [])) + _race_facts(what, result)
        sections.append(_Section(title, result.table(), [_png(result.plot())], lead, [table],
                                 result.notes()))
    return sections


def _race_facts(what: str, result) -> list[str]:
    """Sentences read from this run's race, where a fixed text would claim an outcome the
    table might not show: who left the saddle and when; whether RMSprop's unbiased first
    step cost it on Rosenbrock."""
    metrics = getattr(result, "metrics", None)
    if not isinstance(metrics, dict):
        return []
    if what == "saddle":
        said = [f"{label} left it at step {m.steps_to_escape}" if m.escaped else
                f"{label} did not leave it in {result.steps} steps"
                for label, m in metrics.items()]
        return ["In this run: " + "; ".join(said) + "."] if said else []
    if what == "rosenbrock" and {"rmsprop", "adam"} <= set(metrics):
        rms, adam = metrics["rmsprop"], metrics["adam"]
        first = ("RMSprop has no bias correction: its running average of squared gradients "
                 "starts at zero, so its first step is 1/sqrt(1 - alpha) = 10 times its rate "
                 "(alpha = 0.99), where Adam's bias correction starts Adam at the rate itself.")
        if rms.final_loss > adam.final_loss:
            return [first + f" Here RMSprop ends behind Adam (final loss {rms.final_loss:.3g} "
                            f"against {adam.final_loss:.3g}): on these steep walls that first "
                            "step can throw the path far up the valley."]
        return [first + f" Here it does not cost RMSprop the race: it ends at "
                        f"{rms.final_loss:.3g}, Adam at {adam.final_loss:.3g}."]
    return []


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
    sweep_id = run_sweep(spec, store)
    return spec, sweep_id, write_report(store, sweep_id, folder)


def _mnist1d(store: RunStore, out_dir: Path, quick: bool,
             say: Callable[[str], None]) -> tuple[_Section, int]:
    steps = 40 if quick else 1000
    spec, sweep_id, files = _mnist1d_sweep(
        store, out_dir / "mnist1d", say, "mlp", steps, evaluations=15,
        lrs=(1e-3, 1e-2, 1e-1) if quick else (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
        seeds=1 if quick else 3, target=0.5)
    lead = [
        f"An MLP (40-100-100-10) on MNIST-1D, batch 100, {steps} steps; each optimizer at "
        f"each learning rate of {', '.join(f'{lr:g}' for lr in spec.lrs)} with "
        f"{spec.seeds} seed(s), {EXTENDED} The table ranks them by mean final test accuracy "
        "at their best rate, with a 95% confidence interval over the seeds.",
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
    return _sweep_section("SGD, Adagrad, RMSprop and Adam on MNIST-1D", store, sweep_id, lead,
                          [files["curves"].read_bytes(),
                           files["lr_sensitivity"].read_bytes()]), sweep_id


def _recurrent(store: RunStore, out_dir: Path, quick: bool,
               say: Callable[[str], None]) -> tuple[_Section, int]:
    """The four optimizers on a recurrent network: the evidence for the folklore's RNN line."""
    steps = 10 if quick else 60
    spec, sweep_id, files = _mnist1d_sweep(
        store, out_dir / "mnist1d-gru", say, "gru", steps, evaluations=5,
        lrs=(1e-2, 1e-1) if quick else (1e-3, 1e-2, 1e-1, 1.0), seeds=1 if quick else 3)
    lead = [
        f"A recurrent network: MNIST-1D read one value at a time by a bidirectional GRU "
        f"(hidden 6 each way, 40 steps, then a linear layer), batch 100, {steps} steps, "
        f"rates {', '.join(f'{lr:g}' for lr in spec.lrs)}, {spec.seeds} seed(s) (the grid "
        "extended past an edge as above), no gradient clipping. The folklore says RNNs are "
        "where SGD struggles and RMSprop and Adam are the usual choices; this is the table "
        "the closing section reads for that line.",
        _with_link("The budget is short (recurrent steps are the tour's most expensive), "
                   "so read the ranking, not the absolute accuracy, and mind the confidence "
                   f"intervals: with {spec.seeds} seed(s) only large differences separate. "
                   "The full report is ", "mnist1d-gru/report.html"),
    ]
    return _sweep_section("A recurrent network: GRU on MNIST-1D", store, sweep_id, lead,
                          [files["curves"].read_bytes()]), sweep_id


def _sweep_section(title: str, store: RunStore, sweep_id: int, lead: list[str],
                   images: list[bytes]) -> _Section:
    headers, rows, notes = summary_parts(store, sweep_id)
    table = _html_table(headers, rows,
                        [False, False] + [True] * (len(headers) - 2))
    return _Section(title, "", images, lead, [table], notes)


#: the other tasks of the cross-task profile: (task, what it shows, target accuracy)
PROFILE_TASKS = (
    ("digits", "scikit-learn's 8x8 digits, MLP with 100 hidden units", 0.9),
    ("sparse-logreg", "sparse logistic regression with rare informative features, the case "
                      "Adagrad was made for", 0.7),
)


def stable_rates(sensitivity: dict[float, float], grid) -> tuple[int, int]:
    """How many rates of the sweep's common ``grid`` (the rates every optimizer ran, before
    any was extended past an edge) came within :data:`STABLE_WITHIN` of the optimizer's
    best over all the rates it ran, and how many rates the grid has: the same denominator
    for every optimizer. A grid rate it has no result for (or a diverged one) counts as not
    close. An empty ``grid`` (an old sweep) counts every rate it ran."""
    values = [v for v in sensitivity.values() if math.isfinite(v)]
    best = max(values) if values else math.nan
    grid = [float(lr) for lr in grid] or list(sensitivity)

    def at(lr: float) -> float:
        for key, v in sensitivity.items():
            if math.isclose(float(key), lr, rel_tol=1e-9):
                return v
        return math.nan

    close = sum(math.isfinite(at(lr)) and at(lr) >= best - STABLE_WITHIN for lr in grid)
    return close, len(grid)


def stability_verdict(adam: dict[int, float], sgd: dict[int, float]) -> str:
    """The folklore's "Adam is more forgiving of its learning rate than SGD" against this
    run: per task, the share of each one's rates that came close to its best. It agrees
    only where Adam's share is the larger on most tasks both ran (more tasks than the
    other way round, and at least two); a one-task or one-rate edge is no evidence."""
    common = sorted(set(adam) & set(sgd))
    wins = sum(adam[k] > sgd[k] for k in common)
    losses = sum(adam[k] < sgd[k] for k in common)
    tally = f"Adam's share of close rates larger on {wins}, smaller on {losses} of " \
            f"{len(common)} tasks"
    if wins > losses and wins >= 2 and wins > len(common) / 2:
        return f"agrees: Adam is more forgiving than SGD here ({tally})"
    if losses > wins and losses >= 2 and losses > len(common) / 2:
        return f"does not agree: Adam is less forgiving than SGD here ({tally})"
    return f"not seen here: the two cannot be told apart on this evidence ({tally})"


def _recommendation_verdict(scores: dict[str, float]) -> str:
    """The folklore's "default recommendation: Adam" against the profile scores: a tie at
    the top is said as one, and scores all 0 (no optimizer reached a target) test nothing."""
    top = max(scores.values(), default=0.0)
    if top <= 0:
        return "not tested: no optimizer reached a target, so the profile ranks none"
    leaders = [n for n, v in scores.items() if v == top]
    others = ", ".join(n for n in leaders if n != DEFAULT)
    if leaders == [DEFAULT]:
        return "agrees: Adam has the highest profile score"
    if DEFAULT in leaders:
        return f"partly: Adam shares the highest profile score with {others}"
    if top - scores.get(DEFAULT, 0.0) < 0.1:
        return (f"partly: {' and '.join(leaders)} {'score' if len(leaders) > 1 else 'scores'} "
                "highest and Adam is within 0.1 of it (about one task changing places)")
    return (f"does not agree: {' and '.join(leaders)} {'score' if len(leaders) > 1 else 'scores'} "
            "highest, Adam more than 0.1 lower")


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
        sweep_id = run_sweep(spec, store)
        write_report(store, sweep_id, out_dir / task)
        sweeps.append(sweep_id)
        headers, rows, sweep_notes = summary_parts(store, sweep_id)
        tables.append(f"<h3>{html.escape(task)}: {html.escape(what)}</h3><p>Batch 32, "
                      f"{steps} steps, rates {', '.join(f'{lr:g}' for lr in spec.lrs)}, "
                      f"extended past an edge as there; target accuracy {target:g} (report: "
                      f"{_link(f'{task}/report.html')}).</p>"
                      + _html_table(headers, rows,
                                    [False, False] + [True] * (len(headers) - 2)))
        notes += [f"{task}: {n}" for n in sweep_notes[1:]
                  if "calibrated step cost" not in n]
    profile = build_profile(store, sweeps)
    headers, rows = profile.rows()
    tables.append("<h3>Performance profile over MNIST-1D, digits and sparse-logreg</h3>"
                  + _html_table(headers, rows, [False] + [True] * (len(headers) - 1)))
    section = _Section("Across tasks: which optimizer is fastest to a target", "",
                       [_png(profile.plot())], list(PROFILE_LEAD), tables,
                       profile_notes(notes, profile))
    return section, sweeps, profile


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
    "apart: where they lie within the calibrations' measured spreads of each other, it is "
    "steps over steps (1.00x for the same steps), so measurement noise cannot order "
    "optimizers; the notes under the table name every ratio taken by steps. Steps and "
    "gradient evaluations are in the tables too; wall time is shown for information only "
    "(it depends on what else the machine was doing).",
    "Caveat: three small tasks make a small profile. A score difference of about 0.1 "
    "is one task changing places; read it together with the tables' confidence "
    "intervals.",
)


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
    (out / "slice" / "slice.json").write_text(json.dumps(result.to_json()))
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
                    lead, [_html_table(headers, rows, [False] + [True] * (len(headers) - 1))],
                    notes)


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
        "come within 1% of the way to the minimum.",
    ]
    headers, rows = demo.rows()
    return _Section("Batch, mini-batch and stochastic gradient descent", demo.table(),
                    [_png(demo.plot())], lead,
                    [_html_table(headers, rows, [False] + [True] * (len(headers) - 1))])


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


def sparse_verdict(top: list[str]) -> str:
    """The folklore's sparse-data line (Adagrad the best, made for rare features) against
    the optimizers sharing the top rank on the sparse task: it agrees only where Adagrad is
    alone at the top; a tie is said with whom."""
    if SPARSE not in top:
        return "does not agree: Adagrad is not among the best"
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


def rnn_verdict(top: list[str]) -> str:
    """The folklore's RNN line (RMSprop and Adam the choices, SGD and Adagrad behind) against
    the optimizers sharing the top rank on a recurrent task."""
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


def _evidence(store: RunStore, sweeps: list[int], profile, recurrent: int) -> _Section:
    """The closing table: each line of the folklore beside what this run measured.

    ``sweeps`` are the profile's tasks; ``recurrent`` the GRU sweep the RNN line reads."""
    from .sweep import run_records

    names = list(TASK_OPTIMIZERS)

    def ranked(sweep_id: int) -> tuple[str, dict, dict]:
        info = store.sweep(sweep_id)
        higher = (info["config"].get("metric") or {}).get("higher_is_better", True)
        done = summarize([r for r in run_records(store, sweep_id) if r["status"] != "pending"],
                         higher)
        return (info["task"], {s.optimizer: s for s in done},
                {s.optimizer: label for label, s in rank(done, higher)})

    tasks, summaries, ranks = (list(column) for column in zip(*map(ranked, sweeps)))
    grids = [tuple(store.sweep(i)["config"].get("lrs") or ()) for i in sweeps]

    def first(ranked_as: dict, name: str) -> bool:  # rank 1, alone or shared ("=1")
        return ranked_as.get(name, "").lstrip("=") == "1"

    def top(k: int, name: str) -> bool:
        return first(ranks[k], name)

    rows = []
    # learning-rate stability: how many rates of the grid come within STABLE_WITHIN
    shown, share = {}, {}  # share[name][task]: the fraction of its rates close to its best
    for name in names:
        counts, share[name] = [], {}
        for k, per in enumerate(summaries):
            s = per.get(name)
            if s is None:
                continue
            close, n = stable_rates(s.sensitivity, grids[k])
            counts.append((close, n))
            share[name][k] = close / max(1, n)
        shown[name] = ", ".join(f"{c}/{n}" for c, n in counts)
    stability = stability_verdict(share[DEFAULT], share[PLAIN])
    rows.append(["learning-rate stability"] + [FOLKLORE["learning-rate stability"][n] for n in names]
                + ["; ".join(f"{n}: {shown[n]}" for n in names)
                   + f" rates of the common grid within {STABLE_WITHIN:g} of its best "
                   f"({', '.join(tasks)}; the rates added past a grid's edge, for some "
                   "optimizers only, are left out of the count but may hold the best)",
                   stability])
    memory = _memory(names)
    rows.append(["memory (extra buffers per parameter)"]
                 + [FOLKLORE["memory (extra buffers per parameter)"][n] for n in names]
                 + ["; ".join(f"{n}: {memory[n]:g}" for n in names)
                    + " (counted in each optimizer's state after a step, SGD without momentum)",
                    "agrees" if memory[DEFAULT] == 2 and memory[SPARSE] == 1 else "differs"])
    if "sparse-logreg" in tasks:
        k = tasks.index("sparse-logreg")
        in_top = [n for n in names if top(k, n)]
        rows.append(["sparse data"] + [FOLKLORE["sparse data"][n] for n in names]
                    + ["top rank on sparse-logreg: " + (", ".join(in_top) or "none")
                       + "; ranks " + ", ".join(f"{n} {ranks[k].get(n, '-')}" for n in names),
                       sparse_verdict(in_top)])
    _, _, rnn_ranks = ranked(recurrent)
    rnn_top = [n for n in names if first(rnn_ranks, n)]
    rows.append(["RNNs"] + [FOLKLORE["RNNs"][n] for n in names]
                + ["top rank on the MNIST-1D GRU: " + (", ".join(rnn_top) or "none")
                   + "; ranks " + ", ".join(f"{n} {rnn_ranks.get(n, '-')}" for n in names),
                   rnn_verdict(rnn_top)])
    sgd_top = sum(top(k, PLAIN) for k in range(len(tasks)))
    adam_top = sum(top(k, DEFAULT) for k in range(len(tasks)))
    rows.append(["generalisation"] + [FOLKLORE["generalisation"][n] for n in names]
                + [f"top rank in final test metric: SGD on {sgd_top} of {len(tasks)} tasks, "
                   f"Adam on {adam_top}",
                   "agrees" if sgd_top > adam_top else "not seen here: SGD is not ahead"])
    rows.append(["default recommendation"] + [FOLKLORE["default recommendation"][n]
                                              for n in names]
                + ["profile scores: " + ", ".join(f"{n} {v:.2f}"
                                                  for n, v in profile.scores.items()),
                   _recommendation_verdict(profile.scores)])
    headers = ["aspect"] + [f"folklore: {n}" for n in names] + ["this run", "verdict"]
    lead = [
        "The tutorials close with a table of folklore about SGD, Adagrad, RMSprop and Adam. "
        "Here it is beside what this run measured, line by line, with a verdict: agrees, "
        "does not agree, or not tested. The evidence is small (four small tasks, a few "
        "seeds, short budgets); where the tables above say two optimizers cannot be told "
        "apart, so does this one.",
        takeaway(rows),
    ]
    return _Section("When to use which: the folklore and this run's evidence", "", [], lead,
                    [_html_table(headers, rows)])


def _section_html(section: _Section) -> str:
    images = "".join(f'<img alt="{html.escape(section.title)}" src="data:image/png;base64,'
                     f'{base64.b64encode(png).decode()}">' for png in section.images)
    lead = "".join(f"<p>{text if isinstance(text, _Html) else html.escape(text)}</p>"
                   for text in section.lead)
    tables = "".join(f'<div class="wide">{t}</div>' for t in section.tables)
    text = "" if section.tables or not section.text else \
        f"<pre>{html.escape(section.text)}</pre>"
    notes = "" if not section.notes else \
        "<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in section.notes) \
        + "</ul>"
    return f"<section><h2>{html.escape(section.title)}</h2>{lead}{tables}{text}{notes}" \
        f"{images}</section>"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222;line-height:1.45}img{max-width:100%;display:block;margin:1em 0}"
        "pre{overflow-x:auto;background:#f6f6f6;padding:.8em;font-size:.85em}"
        ".wide{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0;font-size:.88em}"
        "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}"
        "th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}"
        ".notes{font-size:.9em;color:#444}h3{font-size:1em;margin-top:1.4em}")


def _page(sections: list[_Section], seconds: float) -> str:
    contents = "".join(f"<li>{html.escape(s.title)}</li>" for s in sections)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>optimlab tour</title><style>{_CSS}</style></head><body>"
            "<h1>optimlab tour</h1>"
            "<p>The tutorials' story about gradient-based optimizers, checked: first on "
            "two-dimensional landscapes that each show one difficulty, then on real small "
            "training tasks, then across tasks, and last the folklore set beside this run's "
            "evidence. Every number and picture below was computed by this run "
            f"({seconds:.0f} s). Learning rates were tuned for each optimizer, so the "
            "comparisons are between tuned optimizers, not defaults; each table says how "
            "the rate was chosen and when two optimizers cannot be told apart.</p>"
            f"<ol>{contents}</ol>"
            + "".join(_section_html(s) for s in sections) + "</body></html>")


def run_tour(out_dir, quick: bool = False, say: Callable[[str], None] = print) -> Path:
    """Run the tour and write ``out_dir/tour.html``; returns its path."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"cannot create {out}: {err.strerror}") from None
    start = time.perf_counter()
    store = RunStore(out / "tour-runs.db")
    try:
        sections = _races(quick, say)
        for section, (_, what, _, noise) in zip(sections, RACES):
            section.lead = section.lead or RACE_LEADS.get((what, bool(noise)), [])
        mnist1d, sweep_id = _mnist1d(store, out, quick, say)
        across, sweeps, profile = _profile(store, sweep_id, out, quick, say)
        recurrent, rnn_sweep = _recurrent(store, out, quick, say)
        sections += [mnist1d, across, recurrent, _slice(out, quick, say), _variants(say),
                     _evidence(store, sweeps, profile, rnn_sweep)]
    finally:
        store.close()
    page = out / "tour.html"
    page.write_text(_page(sections, time.perf_counter() - start), encoding="utf-8")
    return page
