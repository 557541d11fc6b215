"""``optimlab tour``: the tutorials' story end to end, in one HTML page.

1. Landscapes: SGD, momentum, RMSprop and Adam, each with its learning rate tuned on a log
   grid, raced on each difficulty (a ravine, local minima, a saddle, a plateau, an
   ill-conditioned bowl, noisy gradients).
2. A real task: the four optimizers on MNIST-1D (MLP) over a learning-rate grid and three
   seeds, trained as batched populations and stored in the run store.
3. Across tasks: the same four on digits and sparse logistic regression too, and the
   AlgoPerf-style performance profile of time to a target over the three tasks.
4. Batch, mini-batch and stochastic gradient descent on least squares.

Everything is computed when it runs (a few minutes on two cores); ``quick=True`` shrinks
every budget so the tests can run the whole tour in seconds.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..exhibits import gd_variants
from ..landscapes import get as get_landscape
from ..landscapes import race
from .profile import build_profile
from .report import summary_table, write_report
from .store import RunStore
from .sweep import SweepSpec, run_sweep
from .trainer import TrainConfig

__all__ = ["RACES", "run_tour"]

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
#: the tutorials' comparison on real tasks
TASK_OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")

#: (title, landscape name, landscape parameters, noise): one race per difficulty
RACES = (
    ("A ravine: Rosenbrock's curved valley", "rosenbrock", {}, 0.0),
    ("Local minima: two wells, the start decides the basin", "two_wells", {}, 0.0),
    ("A saddle point", "saddle", {}, 0.0),
    ("A plateau with vanishing gradients", "plateau", {}, 0.0),
    ("Ill-conditioning: a bowl with condition number 50", "quadratic", {"kappa": 50.0}, 0.0),
    ("Noisy gradients: Rosenbrock with gradient noise 2", "rosenbrock", {}, 2.0),
)


@dataclass
class _Section:
    title: str
    text: str
    images: list[bytes]


def _png(fig) -> bytes:
    from ..landscapes.plots import plt_close

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt_close(fig)
    return buffer.getvalue()


def _races(quick: bool, say: Callable[[str], None]) -> list[_Section]:
    sections = []
    for title, name, params, noise in RACES:
        say(f"race: {title}")
        result = race(get_landscape(name, **params), {o: {} for o in OPTIMIZERS},
                      steps=60 if quick else 300, noise=noise, tune=True)
        sections.append(_Section(title, result.table(), [_png(result.plot())]))
    return sections


def _mnist1d(store: RunStore, out_dir: Path, quick: bool,
             say: Callable[[str], None]) -> tuple[_Section, int]:
    steps = 40 if quick else 1000
    spec = SweepSpec(task="mnist1d", optimizers=TASK_OPTIMIZERS,
                     config=TrainConfig(steps=steps, batch_size=100,
                                        eval_every=max(1, steps // 15), model="mlp"),
                     lrs=(1e-3, 1e-2, 1e-1) if quick else (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                     seeds=1 if quick else 3, target=0.5)
    say(f"mnist1d: {len(spec.members())} runs of {steps} steps, as batched populations")
    sweep_id = run_sweep(spec, store)
    files = write_report(store, sweep_id, out_dir / "mnist1d")
    text = (f"MLP 40-100-100-10 on MNIST-1D, batch 100, {steps} steps, learning rates "
            f"{', '.join(f'{lr:g}' for lr in spec.lrs)}, {spec.seeds} seed(s) each; the full "
            f"report is mnist1d/report.html.\n\n{summary_table(store, sweep_id)}")
    return _Section("SGD, Adagrad, RMSprop and Adam on MNIST-1D", text,
                    [files["curves"].read_bytes(), files["lr_sensitivity"].read_bytes()]), sweep_id


#: the other tasks of the cross-task profile: (task, what it shows, target accuracy)
PROFILE_TASKS = (
    ("digits", "scikit-learn's 8x8 digits, MLP with 100 hidden units", 0.9),
    ("sparse-logreg", "sparse logistic regression with rare informative features, the case "
                      "Adagrad was made for", 0.7),
)


def _profile(store: RunStore, mnist1d_sweep: int, out_dir: Path, quick: bool,
             say: Callable[[str], None]) -> _Section:
    steps = 30 if quick else 300
    sweeps, texts = [mnist1d_sweep], []
    for task, what, target in PROFILE_TASKS:
        spec = SweepSpec(task=task, optimizers=TASK_OPTIMIZERS,
                         config=TrainConfig(steps=steps, batch_size=32,
                                            eval_every=max(1, steps // 15)),
                         lrs=(1e-2, 1e-1) if quick else (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                         seeds=1 if quick else 3, target=target)
        say(f"{task}: {len(spec.members())} runs of {steps} steps")
        sweep_id = run_sweep(spec, store)
        write_report(store, sweep_id, out_dir / task)
        sweeps.append(sweep_id)
        texts.append(f"{task}: {what}; batch 32, {steps} steps, target accuracy {target:g} "
                     f"(report: {task}/report.html)\n{summary_table(store, sweep_id)}")
    profile = build_profile(store, sweeps)
    text = ("Each optimizer at its best learning rate on each task; the profile rho(tau) is "
            "the share of tasks on which it reaches the target within tau times the fastest "
            "optimizer's time (AlgoPerf's performance profile; higher and further left is "
            "better, and the score is the area under it).\n\n" + "\n\n".join(texts)
            + "\n\nPerformance profile over MNIST-1D, digits and sparse-logreg:\n"
            + profile.table())
    return _Section("Across tasks: which optimizer is fastest to a target", text,
                    [_png(profile.plot())])


def _variants(say: Callable[[str], None]) -> _Section:
    say("gradient-descent variants")
    demo = gd_variants()
    return _Section("Batch, mini-batch and stochastic gradient descent", demo.table(),
                    [_png(demo.plot())])


def _page(sections: list[_Section], seconds: float) -> str:
    parts = []
    for section in sections:
        images = "".join(f'<img alt="{html.escape(section.title)}" src="data:image/png;base64,'
                         f'{base64.b64encode(png).decode()}">' for png in section.images)
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>"
                     f"<pre>{html.escape(section.text)}</pre>{images}</section>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>optimlab tour</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "img{max-width:100%;display:block;margin:1em 0}pre{overflow-x:auto;"
            "background:#f6f6f6;padding:.8em}</style></head><body><h1>optimlab tour</h1>"
            "<p>Every number and picture below was computed by this run "
            f"({seconds:.0f} s). Learning rates were tuned for each optimizer, so the "
            "comparisons are between tuned optimizers, not defaults.</p>"
            + "".join(parts) + "</body></html>")


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
        mnist1d, sweep_id = _mnist1d(store, out, quick, say)
        sections += [mnist1d, _profile(store, sweep_id, out, quick, say), _variants(say)]
    finally:
        store.close()
    page = out / "tour.html"
    page.write_text(_page(sections, time.perf_counter() - start), encoding="utf-8")
    return page
