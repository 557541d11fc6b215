"""The advisor against the full grid: does ``advise_task`` find what an exhaustive sweep finds?

For each task (default: digits, MNIST-1D with the MLP and with the CNN, sparse-logreg,
char-rnn and the three synthetic tasks of ``benchmarks/advisor_tasks.py``, whose best
optimizer family is known by construction) it runs

(a) the full grid: every candidate (the advisor's, default momentum, adam, adamw, lion,
    rmsprop, adagrad) x 13 learning rates log-spaced over 1e-4..1 x ``--seeds`` seeds, each
    run ``--steps`` long (``run_sweep``, evaluations every ``steps // --evals``, default 20). Each
    optimizer's best rate is picked by ``summarize``'s criterion (the worst test metric
    over the last 25% of evaluations, mean over seeds); the grid's best optimizer is the
    first of ``rank`` (by the mean final metric over seeds at that rate). Its compute is
    runs x steps member-steps;
(b) the advisor, ``optimlab.bench.advisor.advise_task`` with the same candidates, steps,
    batch size and final seeds: its pick, the pick's metric (mean final metric over its
    final rung's seeds) and the member-steps it spent over all its stages;

and prints two markdown tables: (1) per task, the advisor's pick and metric, the grid's best
optimizer, rate and metric, their absolute difference, where the advisor's optimizer ranks
on the grid, the compute ratio advisor / grid and both wall times; (2) per task and
candidate, the range test's suggested rate, fastai's valley rule and the steepest-slope
rule on the same curve, the tournament's best rate and the grid's best rate (with its
metric). Progress goes to stderr; ``--json OUT`` writes every number (non-finite values as
null), the advisor's whole answer (``Advice.to_json``) included.

    python benchmarks/advisor_vs_grid.py [--tasks digits,mnist1d/cnn,scaled_features,...]
        [--steps 300] [--batch-size 100] [--seeds 3] [--evals 20] [--db FILE] [--json OUT]
        [--quick]

Run it from the repository root. A task is a training-lab name, ``name/model`` for one of
its models (``mnist1d/cnn``), a name of ``benchmarks/advisor_tasks.py`` (``scaled_features``,
``underdetermined``, ``sign_friendly``) or any ``package.module:function``. ``--quick`` is a
smoke run: 60 steps, digits and the three synthetic tasks (under a minute on two cores). The
default run trains 234 grid runs of 300 steps per task: minutes for the small tasks, much
longer for char-rnn and the MNIST-1D CNN on a CPU. Runs are kept in ``--db`` (default: a
temporary file, deleted at the end); with the same ``--db`` a second run reads the finished
runs back instead of training them again (then the wall times mean nothing, the compute
figures are still the nominal member-steps).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the repository root holds benchmarks/
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from optimlab.bench.analysis import CRITERION, rank, summarize  # noqa: E402
from optimlab.bench.store import RunStore  # noqa: E402
from optimlab.bench.store.environment import cpu_description  # noqa: E402
from optimlab.bench.sweep import SweepSpec, run_records, run_sweep  # noqa: E402
from optimlab.bench.tasks import get  # noqa: E402
from optimlab.bench.trainer import TrainConfig  # noqa: E402

#: the grid's learning rates: 13 log-spaced over 1e-4..1
GRID_LRS = tuple(float(v) for v in np.logspace(-4, 0, 13))
#: the module of the synthetic tasks, and their names (accepted without the module)
SYNTHETIC_MODULE = "benchmarks.advisor_tasks"
SYNTHETIC = ("scaled_features", "underdetermined", "sign_friendly")
DEFAULT_TASKS = ("digits", "mnist1d/mlp", "mnist1d/cnn", "sparse-logreg", "char-rnn", *SYNTHETIC)
QUICK_TASKS = ("digits", *SYNTHETIC)
QUICK_STEPS = 60


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def parse_task(text: str) -> tuple[str, str | None]:
    """``"mnist1d/cnn"`` -> ``("mnist1d", "cnn")``; a synthetic task's short name gets its
    module (``"scaled_features"`` -> ``"benchmarks.advisor_tasks:scaled_features"``)."""
    name, _, model = text.strip().partition("/")
    name = name.strip()
    if not name:
        raise ValueError(f"empty task name in {text!r}")
    if name in SYNTHETIC:
        name = f"{SYNTHETIC_MODULE}:{name}"
    return name, model.strip() or None


def _finite(value):
    """``value`` as JSON: non-finite floats become None, containers are walked, tuples
    become lists and mapping keys strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _lr(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def _num(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def run_grid(store: RunStore, label: str, name: str, model: str | None, optimizers: list[str],
             steps: int, batch_size: int | None, seeds: int, evals: int = 20) -> dict:
    """Train the full grid of ``optimizers`` x :data:`GRID_LRS` x ``seeds`` on one task;
    each optimizer's best rate and metric by ``summarize``, the best optimizer by ``rank``.
    Each run is evaluated ``evals`` times (every ``steps // evals`` steps)."""
    config = TrainConfig(steps=steps, batch_size=batch_size, eval_every=max(1, steps // evals),
                         model=model)
    spec = SweepSpec(task=name, optimizers=tuple(optimizers), config=config, lrs=GRID_LRS,
                     seeds=seeds)
    runs = len(spec.members())
    task = get(name)
    higher = task.metric == "accuracy"
    done = [0]

    def progress(n: int) -> None:  # one call per population step: one optimizer per `steps`
        done[0] += n
        if done[0] % steps == 0:
            log(f"[{label}] grid: {done[0] // steps}/{len(optimizers)} optimizer groups trained")

    log(f"[{label}] grid: {len(optimizers)} optimizers x {len(GRID_LRS)} rates x {seeds} seeds "
        f"= {runs} runs of {steps} steps")
    start = time.perf_counter()
    sweep_id = run_sweep(spec, store, engine="auto", name=f"advisor_vs_grid {label}: grid",
                         progress=progress)
    wall = time.perf_counter() - start
    records = run_records(store, sweep_id)
    ranked = rank(summarize(records, higher), higher)
    optimizers_out = []
    for label_rank, s in ranked:
        optimizers_out.append({
            "optimizer": s.optimizer, "rank": label_rank, "best_lr": s.best_lr, "edge": s.edge,
            "mean": s.mean, "std": s.std, "ci": s.ci, "seeds": s.seeds, "diverged": s.diverged,
            "sensitivity": [[lr, v] for lr, v in sorted(s.sensitivity.items())]})
    best = optimizers_out[0] if optimizers_out else None
    log(f"[{label}] grid done in {wall:.1f} s: best {best['optimizer']} lr {best['best_lr']:.3g} "
        f"{task.metric} {best['mean']:.4g}" if best else f"[{label}] grid: no runs")
    return {"sweep_id": sweep_id, "runs": runs, "steps": steps, "member_steps": runs * steps,
            "wall_s": wall, "metric": task.metric, "higher_is_better": higher, "best": best,
            "optimizers": optimizers_out}


def run_advisor(store: RunStore, label: str, name: str, model: str | None,
                optimizers: list[str], steps: int, batch_size: int | None, seeds: int) -> dict:
    """The advisor's answer on one task (``advise_task``), with its wall time."""
    from optimlab.bench.advisor import advise_task

    kwargs = {}
    if "on_stage" in inspect.signature(advise_task).parameters:
        def on_stage(stage: str, horizon: int, members) -> None:
            log(f"[{label}] advisor: {stage}: {len(members)} runs x {horizon} steps")
        kwargs["on_stage"] = on_stage
    log(f"[{label}] advisor: {len(optimizers)} candidates, {steps} steps, {seeds} final seeds")
    start = time.perf_counter()
    advice = advise_task(name, model=model, optimizers=optimizers, steps=steps,
                         batch_size=batch_size, seeds=seeds, store=store, **kwargs)
    wall = time.perf_counter() - start
    log(f"[{label}] advisor done in {wall:.1f} s: {advice.optimizer} lr "
        f"{advice.hparams['lr']:.3g} {advice.metric['name']} {advice.metric['value']:.4g} "
        f"({advice.steps_spent} member-steps)")
    answer = advice.to_json() if hasattr(advice, "to_json") else {
        "optimizer": advice.optimizer, "hparams": dict(advice.hparams),
        "metric": dict(advice.metric), "steps_spent": advice.steps_spent,
        "candidates": [dict(c) for c in advice.candidates]}
    return {**answer, "wall_s": wall}


def compare(grid: dict, advisor: dict) -> dict:
    """The advisor against the grid: the metric difference, the pick's rank and metric on the
    grid, and the compute ratio advisor / grid."""
    best = grid["best"]
    value = advisor["metric"]["value"]
    on_grid = next((o for o in grid["optimizers"] if o["optimizer"] == advisor["optimizer"]),
                   None)
    return {
        "difference": abs(value - best["mean"]) if best else None,
        "signed_difference": (value - best["mean"]) * (1 if grid["higher_is_better"] else -1)
        if best else None,  # > 0: the advisor's answer is better than the grid's best
        "relative_difference": abs(value - best["mean"]) / abs(best["mean"])
        if best and best["mean"] else None,
        "same_optimizer": bool(best) and best["optimizer"] == advisor["optimizer"],
        "pick_grid_rank": on_grid["rank"] if on_grid else None,
        "pick_grid_metric": on_grid["mean"] if on_grid else None,
        "compute_ratio": advisor["steps_spent"] / grid["member_steps"],
    }


def tables(results: list[dict]) -> str:
    """The two markdown tables (and the notes under them)."""
    lines = ["| task | metric | advisor pick: metric | grid best: metric | abs. difference | "
             "pick's grid rank (its grid metric) | compute advisor / grid | wall s advisor / grid |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        arrow = "higher better" if r["grid"]["higher_is_better"] else "lower better"
        metric = f"{r['grid']['metric']} ({arrow})"
        best = r["grid"]["best"]
        grid_text = (f"{best['optimizer']} lr {best['best_lr']:.3g}: {_num(best['mean'])}"
                     if best else "-")
        a = r.get("advisor")
        if a is None:
            lines.append(f"| {r['label']} | {metric} | failed: {r.get('advisor_error', '?')} | "
                         f"{grid_text} | - | - | - | - |")
            continue
        c = r["comparison"]
        lines.append(
            f"| {r['label']} | {metric} | {a['optimizer']} lr {a['hparams']['lr']:.3g}: "
            f"{_num(a['metric']['value'])} | {grid_text} | {_num(c['difference'])} | "
            f"{c['pick_grid_rank'] or '-'} ({_num(c['pick_grid_metric'])}) | "
            f"{c['compute_ratio']:.3f} ({a['steps_spent']} / {r['grid']['member_steps']}) | "
            f"{a['wall_s']:.1f} / {r['grid']['wall_s']:.1f} |")
    lines += ["", f"Grid: {len(GRID_LRS)} rates log-spaced over 1e-4..1; best rate per optimizer: "
              f"{CRITERION}; the grid's best optimizer is the first of `rank` (mean final metric at "
              "that rate; ranks shared as `=k` where paired comparisons over seeds cannot tell "
              "optimizers apart). Compute in member-steps (runs x steps); wall times on this "
              "machine, meaningless where --db already held the runs.", ""]
    lines += ["| task | optimizer | range-test lr | fastai valley lr | steepest lr | "
              "tournament lr | grid best lr | grid metric there |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        grid = {o["optimizer"]: o for o in r["grid"]["optimizers"]}
        candidates = (r.get("advisor") or {}).get("candidates") or \
            [{"optimizer": name} for name in grid]
        for c in candidates:
            g = grid.get(c["optimizer"])
            edge = {"low": " (bottom)", "high": " (top)"}.get((g or {}).get("edge") or "", "")
            lines.append(
                f"| {r['label']} | {c['optimizer']} | {_lr(c.get('suggested_lr'))} | "
                f"{_lr(c.get('fastai_lr'))} | {_lr(c.get('steep_lr'))} | {_lr(c.get('best_lr'))} | "
                f"{_lr(g['best_lr']) + edge if g else '-'} | {_num(g['mean']) if g else '-'} |")
    lines += ["", "Range-test lr: the advisor's pick on its range test; fastai valley and steepest: "
              "the other two rules on the same curve; tournament lr: the advisor's best rate for "
              "that optimizer (- where it did not reach the final rung); (bottom)/(top): the "
              "grid's best rate is on the grid's edge."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", help="comma-separated tasks (name, name/model, a synthetic "
                        f"task's name or module:function; default {','.join(DEFAULT_TASKS)})")
    parser.add_argument("--steps", type=int, help="steps of every run and of the advice "
                        f"(default 300; {QUICK_STEPS} with --quick)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="mini-batch size of every run (default 100)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the grid and of the "
                        "advisor's final rung")
    parser.add_argument("--evals", type=int, default=20,
                        help="evaluations of every grid run (default 20; fewer for a task whose "
                             "evaluation is slow, char-rnn)")
    parser.add_argument("--optimizers", help="comma-separated candidates (default: the advisor's)")
    parser.add_argument("--db", help="run store file (default: a temporary one)")
    parser.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_STEPS} steps, "
                        f"tasks {','.join(QUICK_TASKS)} (unless --steps/--tasks say otherwise)")
    args = parser.parse_args(argv)
    print(f"cpu: {cpu_description()}", flush=True)

    steps = args.steps if args.steps is not None else QUICK_STEPS if args.quick else 300
    labels = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else \
        list(QUICK_TASKS if args.quick else DEFAULT_TASKS)
    if min(steps, args.seeds, args.batch_size, args.evals) < 1:
        parser.error("--steps, --seeds, --batch-size and --evals must be >= 1")
    if not labels:
        parser.error("--tasks names no task")
    try:
        from optimlab.bench.advisor import candidates
    except ImportError as err:
        parser.error(f"cannot import the advisor (optimlab.bench.advisor): {err}")
    try:
        optimizers = candidates(args.optimizers.split(",") if args.optimizers else None)
        specs = [(label, *parse_task(label)) for label in labels]
        for label, name, model in specs:  # fail on a typo before hours of training
            get(name).make_model(model)
    except ValueError as err:
        parser.error(str(err))

    results = []
    with tempfile.TemporaryDirectory(prefix="optimlab-advisor-vs-grid-") as tmp:
        store = RunStore(args.db or Path(tmp) / "runs.db")
        log(f"{len(specs)} tasks, candidates {', '.join(optimizers)}; {steps} steps, batch "
            f"{args.batch_size}, {args.seeds} seeds; runs in {store.path}")
        start = time.perf_counter()
        for label, name, model in specs:
            grid = run_grid(store, label, name, model, optimizers, steps, args.batch_size,
                            args.seeds, evals=args.evals)
            result = {"label": label, "task": name, "model": model, "grid": grid}
            try:
                result["advisor"] = run_advisor(store, label, name, model, optimizers, steps,
                                                args.batch_size, args.seeds)
                result["comparison"] = compare(grid, result["advisor"])
            except ValueError as err:  # AdvisorError: the advisor cannot answer here
                result["advisor_error"] = " ".join(str(err).split())
                log(f"[{label}] advisor failed: {result['advisor_error']}")
            results.append(result)
        total = time.perf_counter() - start
        store.close()

    print(tables(results))
    log(f"all done in {total:.1f} s")
    if args.json:
        out = {"steps": steps, "batch_size": args.batch_size, "seeds": args.seeds,
               "optimizers": optimizers, "grid_lrs": list(GRID_LRS), "criterion": CRITERION,
               "wall_s": total, "tasks": results}
        Path(args.json).write_text(json.dumps(_finite(out), indent=1) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
