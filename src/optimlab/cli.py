"""The ``optimlab`` command.

    optimlab list [--markdown]           the catalog, one line per optimizer
    optimlab explain NAME                one entry: paper, update rule, defaults, advice
    optimlab compare NAME NAME ... [--markdown]
                                         the side-by-side table tutorials draw
    optimlab landscapes                  the test functions
    optimlab race LANDSCAPE --optimizers sgd,momentum,adam [--lr adam=0.05] [--steps 500]
                  [--start -1.5,2] [--noise 0.1] [--seed 0] [--tune] [--param kappa=100]
                  [--out race.png] [--gif race.gif] [--surface surface.png]
    optimlab demo [NAME] [--out DIR]     the tutorials' exhibits
    optimlab bench TASK --optimizers sgd,adagrad,rmsprop,adam [--model NAME] [--lrs auto|1e-4:1e-1:8]
                  [--seeds 3] [--epochs N | --steps N] [--batch-size B|full] [--schedule cosine]
                  [--clip 1.0] [--average ema|swa] [--target T] [--sequential] [--db runs.db]
                  [--out DIR] [--resume]
    optimlab runs [--db runs.db]         the stored sweeps
    optimlab report SWEEP_ID --out DIR [--db runs.db]
    optimlab tour [--out DIR] [--quick]  the tutorials' story end to end, as one HTML page
    optimlab profile SWEEP_ID [SWEEP_ID ...] [--out profile.png] [--db runs.db]
                                         AlgoPerf performance profile across sweeps
    optimlab serve [--host 127.0.0.1] [--port 8000] [--db runs.db]
                                         the playground: a local web page (needs the web extra)

Bad input (an unknown optimizer, say) prints one ``optimlab: error: ...`` line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from ._table import text_table
from .optim.registry import available, resolve


class CLIError(Exception):
    """A user error: reported as one line, exit code 2."""


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 widths: Sequence[int | None] | None = None, markdown: bool = False) -> str:
    """A plain-text (wrapped columns) or Markdown table."""
    if markdown:
        def cell(text):
            return str(text).replace("|", "\\|").replace("\n", " ")
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)
    return text_table(headers, rows, widths)


def catalog_table(markdown: bool = False) -> str:
    """The catalog as a table (the README's algorithm list is this, in Markdown)."""
    headers = ["name", "class", "family", "year", "extra memory", "paper"]
    rows = []
    for entry in available():
        if entry.alias_of is not None:
            continue
        aliases = [e.name for e in available() if e.alias_of == entry.name]
        name = entry.name + (f" ({', '.join(aliases)})" if aliases else "")
        link = f"[{entry.paper}]({entry.info.url})" if markdown else entry.paper
        rows.append([name, entry.cls.__name__, entry.family, str(entry.year),
                     entry.info.memory_note, link])
    return render_table(headers, rows, [22, 18, 12, 4, 24, 60], markdown)


def compare_table(names: Sequence[str], markdown: bool = False) -> str:
    """Year, adaptive rate, momentum, memory, bias correction, sparse data, typical use."""
    headers = ["optimizer", "year", "adaptive lr", "momentum", "extra memory",
               "bias correction", "sparse data", "typical use"]
    rows = []
    for name in names:
        entry = resolve(name)
        info = entry.info
        rows.append([entry.name, str(info.year), _yes(info.adaptive), _yes(info.momentum),
                     info.memory_note, _yes(info.bias_correction), info.sparse,
                     info.typical_use])
    return render_table(headers, rows, [12, 4, 8, 8, 14, 10, 22, 34], markdown)


def explain(name: str) -> str:
    """Everything the catalog knows about one optimizer, as text."""
    entry = resolve(name)
    info = entry.info
    aliases = [e.name for e in available() if e.alias_of == info.name]
    defaults = {**info.defaults, **entry.preset}
    lines = [f"{entry.name}: optimlab.{entry.cls.__name__}"
             + (f" with {entry.preset}" if entry.preset else "")]
    if entry.summary:
        lines.append(entry.summary)
    fields = [
        ("paper", f"{info.paper}, {info.url}"),
        ("year", str(info.year)),
        ("family", info.family),
        ("aliases", ", ".join(aliases) or "-"),
        ("update", info.rule_text),
        ("defaults", ", ".join(f"{k}={v!r}" for k, v in defaults.items())),
        ("extra memory", info.memory_note),
        ("adaptive lr", _yes(info.adaptive)),
        ("momentum", _yes(info.momentum)),
        ("bias corr.", _yes(info.bias_correction)),
        ("weight decay", info.decoupled_weight_decay),
        ("sparse data", info.sparse),
        ("tuning", info.tuning),
        ("strengths", info.strengths),
        ("weaknesses", info.weaknesses),
        ("typical use", info.typical_use),
        ("checked vs", info.reference),
    ]
    for label, text in fields:
        wrapped = textwrap.wrap(text, 76, break_long_words=False) or ["-"]
        lines.append(f"{label:>13}: {wrapped[0]}")
        lines += [" " * 15 + more for more in wrapped[1:]]
    if info.rule_latex:
        lines += ["", "LaTeX:", textwrap.indent(info.rule_latex, "  ")]
    return "\n".join(lines)


def _parse_pairs(items: Sequence[str], what: str) -> dict[str, float]:
    """``["adam=0.05", "sgd=1e-3,lion=1e-4"]`` -> ``{"adam": 0.05, ...}``."""
    pairs = {}
    for item in items:
        for part in filter(None, item.split(",")):
            key, sep, value = part.partition("=")
            try:
                if not sep or not key.strip():
                    raise ValueError
                pairs[key.strip()] = float(value)
            except ValueError:
                raise CLIError(f"{what} takes NAME=NUMBER, got {part!r}") from None
    return pairs


def _parse_point(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise CLIError(f"--start takes comma-separated numbers such as -1.5,2, got {text!r}") \
            from None


def landscapes_table() -> str:
    """The landscape catalog as a table."""
    from .landscapes import get, names

    rows = []
    for name in names():
        land = get(name)
        rows.append([name, str(land.dim), f"{land.min_value:.6g}", ", ".join(land.challenges),
                     land.description])
    return render_table(["name", "dim", "minimum", "challenges", "description"], rows,
                        [16, 3, 9, 22, 70])


def run_race(args: argparse.Namespace) -> str:
    """``optimlab race``: the metrics table, and the pictures asked for."""
    from .landscapes import get, race

    if args.steps < 0:
        raise CLIError(f"--steps must be >= 0, got {args.steps}")
    landscape = get(args.landscape, **_parse_pairs(args.param, "--param"))
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    if not names:
        raise CLIError("--optimizers needs at least one name, e.g. sgd,momentum,adam")
    lrs = _parse_pairs(args.lr, "--lr")
    unknown = set(lrs) - set(names)
    if unknown:
        raise CLIError(f"--lr names {sorted(unknown)}, which are not in --optimizers")
    spec = {name: ({"lr": lrs[name]} if name in lrs else {}) for name in names}
    start = _parse_point(args.start) if args.start else None
    result = race(landscape, spec, start=start, steps=args.steps, noise=args.noise,
                  seed=args.seed, tune=args.tune)
    lines = [f"{landscape.name} from {tuple(float(v) for v in result.start)}, "
             f"{args.steps} steps" + (f", noise {args.noise:g}" if args.noise else "")
             + (", learning rates tuned on a log grid" if args.tune else ""),
             result.table()]
    def save(figure, path):
        from .landscapes.plots import plt_close

        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt_close(figure)
        return [path]

    outputs = [(args.out, lambda path: save(result.plot(), path)),
               (args.surface, lambda path: save(landscape.plot_surface(result), path)),
               (args.gif, result.animate)]
    for path, write in outputs:
        if path:
            try:
                lines += [f"wrote {item}" for item in write(path)]
            except OSError as err:
                raise CLIError(f"cannot write {path}: {err.strerror or err}") from None
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> str:
    """``optimlab demo [NAME]``: list the exhibits, or run one."""
    from .exhibits import DEMO_NAMES
    from .exhibits import run_demo as run

    if not args.name:
        return "demos: " + ", ".join(DEMO_NAMES) + "\nrun one with: optimlab demo NAME [--out DIR]"
    try:
        result = run(args.name, out_dir=args.out)
    except OSError as err:
        raise CLIError(f"cannot write to {args.out}: {err.strerror or err}") from None
    text = result.table()
    if args.out:
        text += f"\nwrote {args.out}/{result.name}.png"  # the exhibit's name: EMA -> ema
    return text


DEFAULT_DB = "optimlab-runs.db"


def _open_store(path: str, must_exist: bool = False):
    from pathlib import Path

    from .bench.store import RunStore, StoreError

    if must_exist and not Path(path).exists():
        raise CLIError(f"no run store at {path} (run `optimlab bench` first, or pass --db)")
    try:
        return RunStore(path)
    except (OSError, StoreError) as err:
        raise CLIError(f"cannot open the run store {path}: {err}") from None


def run_bench(args: argparse.Namespace) -> str:
    """``optimlab bench``: a sweep trained as batched populations, stored, summarised."""
    from .bench.analysis import parse_lrs
    from .bench.report import summary_table, write_report
    from .bench.sweep import SweepSpec, run_sweep
    from .bench.tasks import get as get_task
    from .bench.trainer import TrainConfig

    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    if not names:
        raise CLIError("--optimizers needs at least one name, e.g. sgd,adagrad,rmsprop,adam")
    lrs = None if args.lrs == "auto" else tuple(parse_lrs(args.lrs))
    if args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {args.seeds}")
    batch = None if args.batch_size == "full" else _positive_int(args.batch_size, "--batch-size")
    task = get_task(args.task, data_dir=args.data_dir)
    if args.model is not None and args.model not in task.models:
        raise CLIError(f"task {task.name} has no model {args.model!r} "
                       f"(models: {', '.join(task.models)})")
    if args.epochs is not None:
        per_epoch = 1 if batch is None else max(1, len(task.x_train) // batch)
        steps = _positive_int(args.epochs, "--epochs") * per_epoch
    else:
        steps = _positive_int(args.steps, "--steps")
    config = TrainConfig(steps=steps, batch_size=batch, schedule=args.schedule,
                         clip_norm=args.clip, eval_every=args.eval_every or max(1, steps // 20),
                         model=args.model, averaging=args.average)
    spec = SweepSpec(task=args.task, optimizers=tuple(names), config=config, lrs=lrs,
                     seeds=args.seeds, target=args.target)
    store = _open_store(args.db)
    existing = store.find_sweep(spec.stored_config(task))
    if existing is not None and store.pending_runs(existing) and not args.resume:
        raise CLIError(f"sweep {existing} in {args.db} has the same configuration and "
                       f"{len(store.pending_runs(existing))} unfinished runs: pass --resume "
                       "to finish it")
    engine = "sequential" if args.sequential else "population"
    total = len(spec.members()) * steps if args.sequential else len(names) * steps
    with _progress(total, f"{task.name}: {len(spec.members())} runs") as tick:
        sweep_id = run_sweep(spec, store, engine=engine, data_dir=args.data_dir, progress=tick)
    lines = [f"sweep {sweep_id} in {args.db}: {task.name}, {engine} engine, {steps} steps",
             summary_table(store, sweep_id)]
    if args.out:
        try:
            written = write_report(store, sweep_id, args.out)
        except OSError as err:
            raise CLIError(f"cannot write the report to {args.out}: {err.strerror or err}") \
                from None
        lines += [f"wrote {path}" for path in written.values()]
    return "\n".join(lines)


def _positive_int(value, flag: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CLIError(f"{flag} takes a whole number, got {value!r}") from None
    if number < 1:
        raise CLIError(f"{flag} must be >= 1, got {number}")
    return number


class _progress:
    """A tqdm progress bar on stderr (silent when stderr is not a terminal or in CI)."""

    def __init__(self, total: int, desc: str):
        import os

        from tqdm import tqdm

        quiet = not sys.stderr.isatty() or bool(os.environ.get("CI"))
        self.bar = tqdm(total=total, desc=desc, unit="step", disable=quiet, file=sys.stderr)

    def __enter__(self):
        return self.bar.update

    def __exit__(self, *exc):
        self.bar.close()


def run_runs(args: argparse.Namespace) -> str:
    from .bench.report import list_sweeps

    return list_sweeps(_open_store(args.db, must_exist=True))


def run_report(args: argparse.Namespace) -> str:
    from .bench.report import summary_table, write_report

    store = _open_store(args.db, must_exist=True)
    try:
        store.sweep(args.sweep_id)
    except KeyError:
        raise CLIError(f"no sweep {args.sweep_id} in {args.db} (see `optimlab runs`)") from None
    try:
        written = write_report(store, args.sweep_id, args.out)
    except OSError as err:
        raise CLIError(f"cannot write the report to {args.out}: {err.strerror or err}") from None
    return "\n".join([summary_table(store, args.sweep_id)]
                     + [f"wrote {path}" for path in written.values()])


def run_profile(args: argparse.Namespace) -> str:
    from .bench.profile import build_profile

    store = _open_store(args.db, must_exist=True)
    for sweep_id in args.sweep_ids:
        try:
            store.sweep(sweep_id)
        except KeyError:
            raise CLIError(f"no sweep {sweep_id} in {args.db} (see `optimlab runs`)") from None
    profile = build_profile(store, args.sweep_ids)
    text = profile.table()
    if args.out:
        from .landscapes.plots import plt_close

        fig = profile.plot()
        try:
            fig.savefig(args.out, dpi=110, bbox_inches="tight")
        except OSError as err:
            raise CLIError(f"cannot write {args.out}: {err.strerror or err}") from None
        finally:
            plt_close(fig)
        text += f"\nwrote {args.out}"
    return text


def run_tour(args: argparse.Namespace) -> str:
    from .bench.tour import run_tour as tour

    try:
        page = tour(args.out, quick=args.quick, say=lambda text: print(text, file=sys.stderr))
    except OSError as err:
        raise CLIError(f"cannot write the tour to {args.out}: {err.strerror or err}") from None
    return f"wrote {page}"


def run_serve(args: argparse.Namespace) -> str:
    """``optimlab serve``: the playground on uvicorn, until interrupted."""
    import socket
    from pathlib import Path

    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be from 0 to 65535, got {args.port}")
    db = Path(args.db)
    if db.exists():  # a store that cannot be read is an error now, not on the Runs tab
        from .bench.store import RunStore, StoreError

        try:
            RunStore(db, readonly=True).close()
        except (OSError, StoreError) as err:
            raise CLIError(f"cannot read the run store {args.db}: {err}") from None
    elif not db.absolute().parent.is_dir():
        raise CLIError(f"cannot use the run store {args.db}: its directory does not exist")
    try:
        from .web.server import serve
    except ImportError as err:
        raise CLIError(f"optimlab serve needs the web extra: pip install 'optimlab[web]' "
                       f"({err})") from None
    try:  # say so in one line rather than in uvicorn's traceback
        with socket.create_server((args.host, args.port)):
            pass
    except OSError as err:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") \
            from None
    print(f"optimlab playground: http://{args.host}:{args.port}/ (run store {db.absolute()}; "
          "Ctrl-C stops it)", file=sys.stderr)
    serve(host=args.host, port=args.port, db_path=db)
    return "playground stopped"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optimlab", description=(
        "Gradient-based optimizers you can use, see, trust and choose."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="list every optimizer in the catalog")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p = sub.add_parser("explain", help="explain one optimizer")
    p.add_argument("name")
    p = sub.add_parser("compare", help="compare optimizers side by side")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    sub.add_parser("landscapes", help="list the test functions")
    p = sub.add_parser("race", help="race optimizers on a landscape")
    p.add_argument("landscape")
    p.add_argument("--optimizers", required=True, help="comma-separated registry names")
    p.add_argument("--lr", action="append", default=[], metavar="NAME=LR",
                   help="learning rate of one optimizer (repeat, or comma-separate)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--start", help="start point, e.g. -1.5,2 (default: the landscape's)")
    p.add_argument("--noise", type=float, default=0.0, help="gradient noise std")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--tune", action="store_true", help="tune each lr on a log grid first")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="landscape parameter, e.g. kappa=100 for quadratic")
    p.add_argument("--out", help="write the race plot (PNG/SVG/PDF)")
    p.add_argument("--gif", help="write an animation (GIF, and MP4 when ffmpeg exists)")
    p.add_argument("--surface", help="write a 3-D surface plot with the paths")
    p = sub.add_parser("demo", help="the tutorials' exhibits")
    p.add_argument("name", nargs="?")
    p.add_argument("--out", help="folder for the demo's PNG")
    p = sub.add_parser("bench", help="compare optimizers on a training task (a stored sweep)")
    p.add_argument("task")
    p.add_argument("--optimizers", required=True, help="comma-separated registry names")
    p.add_argument("--model", help="the task's model (default: its default model)")
    p.add_argument("--lrs", default="auto",
                   help="auto, LOW:HIGH:COUNT (log grid) or a comma-separated list")
    p.add_argument("--seeds", type=int, default=3)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", help="training budget in epochs")
    budget.add_argument("--steps", default="1000", help="training budget in steps (default 1000)")
    p.add_argument("--batch-size", default="100", help="mini-batch size, 1 (SGD) or 'full'")
    p.add_argument("--schedule", default="constant",
                   choices=["constant", "step", "cosine", "onecycle", "warmup-cosine"])
    p.add_argument("--clip", type=float, help="clip each run's gradient norm to this value")
    p.add_argument("--average", choices=["ema", "swa"],
                   help="evaluate an EMA (decay 0.99) or SWA (last 25%%) of the weights")
    p.add_argument("--eval-every", type=int, help="evaluate every N steps (default: 20 points)")
    p.add_argument("--target", type=float, help="test metric to reach, for time-to-target")
    p.add_argument("--sequential", action="store_true", help="train runs one by one")
    p.add_argument("--data-dir", help="folder of the IDX files (mnist, fashion-mnist)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"run store (default {DEFAULT_DB})")
    p.add_argument("--out", help="folder for the report (curves, sensitivity, HTML, CSV)")
    p.add_argument("--resume", action="store_true", help="finish a killed sweep")
    p = sub.add_parser("runs", help="list the stored sweeps")
    p.add_argument("--db", default=DEFAULT_DB)
    p = sub.add_parser("tour", help="the tutorials' story end to end, as one HTML page")
    p.add_argument("--out", default="optimlab-tour", help="folder (default optimlab-tour)")
    p.add_argument("--quick", action="store_true", help="tiny budgets (seconds, for a check)")
    p = sub.add_parser("profile", help="AlgoPerf performance profile across sweeps")
    p.add_argument("sweep_ids", nargs="+", type=int, metavar="SWEEP_ID")
    p.add_argument("--out", help="write the profile plot (PNG)")
    p.add_argument("--db", default=DEFAULT_DB)
    p = sub.add_parser("serve", help="the playground: race optimizers in a local web page")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--db", default=DEFAULT_DB,
                   help=f"run store shown on the Runs tab (default {DEFAULT_DB})")
    p = sub.add_parser("report", help="rebuild a sweep's report")
    p.add_argument("sweep_id", type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--db", default=DEFAULT_DB)
    return parser


def _run(args: argparse.Namespace) -> str:
    if args.command == "list":
        return catalog_table(args.markdown)
    if args.command == "explain":
        return explain(args.name)
    if args.command == "compare":
        return compare_table(args.names, args.markdown)
    if args.command == "landscapes":
        return landscapes_table()
    if args.command == "race":
        return run_race(args)
    if args.command == "demo":
        return run_demo(args)
    if args.command == "bench":
        return run_bench(args)
    if args.command == "runs":
        return run_runs(args)
    if args.command == "report":
        return run_report(args)
    if args.command == "tour":
        return run_tour(args)
    if args.command == "profile":
        return run_profile(args)
    if args.command == "serve":
        return run_serve(args)
    raise CLIError(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optimlab`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        print(_run(args))
    except (CLIError, ValueError) as err:
        print(f"optimlab: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
