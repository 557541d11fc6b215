"""The ``optimlab`` command.

    optimlab list [--markdown]           the catalog, one line per optimizer
    optimlab explain NAME                one entry: paper, update rule, defaults, advice
    optimlab compare NAME NAME ... [--markdown]
                                         the side-by-side table tutorials draw
    optimlab landscapes                  the test functions
    optimlab race LANDSCAPE --optimizers sgd,momentum,adam [--lr adam=0.05] [--steps 500]
                  [--start=-1.5,2] [--noise 0.1] [--seed 0] [--tune] [--param kappa=100]
                  [--out race.png] [--gif race.gif] [--surface surface.png]
    optimlab demo [NAME] [--out DIR] [--list]
                                         the tutorials' exhibits: every one (pictures in
                                         optimlab-demos/), or one; --list names them
    optimlab bench TASK --optimizers sgd,adagrad,rmsprop,adam [--model NAME] [--lrs auto|1e-4:1e-1:8]
                  [--extend] [--seeds 3] [--epochs N | --steps N] [--batch-size B|full] [--schedule cosine]
                  [--clip 1.0] [--average ema|swa] [--target T] [--sequential] [--db runs.db]
                  [--out DIR] [--resume] [--recalibrate] [--executor local|ray [--address HOST:PORT]]
    optimlab slice TASK [--optimizers sgd,momentum,adam,sam] [--lr adam=0.003] [--steps 1000]
                  [--grid 41] [--plane endpoints|random] [--on train|test] [--out DIR]
    optimlab advise TASK [--optimizers a,b] [--model NAME] [--steps 300] [--batch-size 100]
                  [--budget STEPS|SECONDSs] [--seeds 3] [--json FILE] [--out DIR] [--db runs.db]
                                         which optimizer and learning rate, with evidence
    optimlab runs [--db runs.db]         the stored sweeps
    optimlab report SWEEP_ID --out DIR [--db runs.db]
    optimlab tour [--out DIR] [--quick]  the tutorials' story end to end, as one HTML page
    optimlab docs [--out DIR]            the optimizer reference: a static HTML page each
    optimlab profile SWEEP_ID [SWEEP_ID ...] [--out profile.png] [--db runs.db]
                                         AlgoPerf performance profile across sweeps
    optimlab serve [--host 127.0.0.1] [--port 8000] [--db runs.db]
                                         the playground: a local web page (needs the web extra)

Bad input (an unknown optimizer, say) prints one ``optimlab: error: ...`` line and exits 2;
malformed flags get argparse's usage line and one ``error:`` line, also with exit 2. No
Python traceback reaches the terminal: an unexpected failure is one ``internal error`` line
and exit 1 (``OPTIMLAB_DEBUG=1`` shows its traceback).

Signals and streams: Ctrl-C exits 130 and SIGTERM 143, each command stopping as it would on
Ctrl-C (what a sweep or ``advise`` kept, and how to go on, on the one line); a second one
while it cleans up is ignored. Output whose reader has gone (``| head -1``) ends the command
quietly with 141, as a shell reports SIGPIPE; a closed stdout (``>&-``) is an error before
any work; a closed stderr (``2>&-``) changes nothing but the messages, which are lost.

Sizes are bounded (see :data:`LIMITS`): ``race``, ``bench``, ``advise`` and ``slice`` refuse work
beyond them with a line naming the bound, and ``--no-limits`` lifts them on purpose.

Start-up: this module imports no torch. ``list``, ``explain``, ``compare`` and
``landscapes`` answer from a cache of the catalog (:mod:`optimlab._catalog_cache`, written
by the first of them, which imports torch) in a tenth of a second; the other commands import
what they need when they run. Shut-down: the ``optimlab`` command (:func:`entry`) freezes the
garbage collector's heap before the interpreter exits, so that ending a process that imported
torch takes a tenth of a second rather than a third to two thirds of one.

Run stores: ``runs``, ``report`` and ``profile`` read ``--db``, by default
``optimlab-runs.db``; without ``--db``, when that store does not exist but the tour's
(``optimlab-tour/tour-runs.db``, left by ``optimlab tour`` and ``make demo``) does, they read
the tour's and say so on stderr; a sweep missing from the default store but in the tour's
is an error naming the ``--db`` to add.

Output paths: a path that is an existing folder, or ends with ``/``, gets a named file
inside it (``race-rosenbrock.png``, ``profile.png``...); the folder a file or report goes
to must exist (a report folder itself is created) and be writable, checked before any work;
the path printed after ``wrote`` is the one written. A FIFO, a device or an open descriptor
(``/dev/fd/3``, ``/dev/null``) is written as given, in place, never suffixed. ``advise --json
-`` (or ``/dev/stdout``) writes the JSON alone on standard output, the rest on standard error;
pictures and report folders refuse ``-``.

Environment: ``OPTIMLAB_DEBUG``, ``CI`` (no progress bars), ``OPTIMLAB_DISABLE_PLUGINS`` and
``OPTIMLAB_KEEP_FREED_MEMORY`` are on for ``1``, ``true``, ``yes``, ``on`` and off for ``0``,
``false``, ``no``, ``off`` or empty (:func:`optimlab._env.flag`). Where matplotlib's
configuration folder cannot be made (a read-only home), ``MPLCONFIGDIR`` is pointed at a
private temporary folder for the command (:func:`_matplotlib_folder`).
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import gc
import math
import os
import re
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from . import _env
from ._table import count as _count
from ._table import text_table, visible

# Nothing at module level imports torch: `optimlab list`, `explain`, `compare` and
# `landscapes` answer from a cache (see _catalog_cache) without it, and the other commands
# import what they need inside their functions.


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
    from .optim.registry import available

    headers = ["name", "class", "family", "year", "extra memory", "paper"]
    rows = []
    for entry in available():
        if entry.alias_of is not None:
            continue
        aliases = [e.name for e in available() if e.alias_of == entry.name]
        name = entry.name + (f" ({', '.join(aliases)})" if aliases else "")
        link = f"[{entry.paper}]({entry.info.url})" if markdown else entry.paper
        rows.append([name, entry.cls.__name__, entry.family, _year(entry),
                     entry.info.memory_note, link])
    return render_table(headers, rows, [22, 18, 12, 4, 24, 60], markdown)


def _year(entry) -> str:
    """An entry's year as the tables show it ("-" for an optimizer registered without one)."""
    return "-" if entry.year is None else str(entry.year)


def _class_path(cls: type) -> str:
    """How ``explain`` names a class: ``optimlab.Adam`` for optimlab's own, the module path
    of an optimizer registered from elsewhere (``optimlab.register``)."""
    if cls.__module__.startswith("optimlab."):
        return f"optimlab.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


_COMPARE_HEADERS = ["optimizer", "year", "adaptive lr", "momentum", "extra memory",
                    "bias correction", "sparse data", "typical use"]
_COMPARE_WIDTHS = [12, 4, 8, 8, 14, 10, 22, 34]


def _setting(key: str, value) -> str:
    """``momentum=0.9``, ``amsgrad=True``: one hyperparameter as a note shows it."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"{key}={value:g}" if number else f"{key}={value}"


def _preset_note(entry) -> str:
    """What an alias sets on its class, as ``" (here amsgrad=True)"``: its preset, and its
    ``momentum``, preset or default (``gd`` is SGD with none: ``" (here momentum=0)"``);
    empty for a class's own entry. The class's rows (update rule, extra memory) cover every
    setting; the note says which one applies."""
    if entry.alias_of is None:
        return ""
    settings = dict(entry.preset)
    value = {**entry.info.defaults, **entry.preset}.get("momentum")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        settings = {"momentum": value, **settings}
    if not settings:
        return ""
    return f" (here {', '.join(_setting(k, v) for k, v in settings.items())})"


def _momentum_and_memory(entry) -> tuple[str, str]:
    """The momentum and extra-memory cells of ``entry``: its class's, except where a
    ``momentum`` number says otherwise: an alias's own, preset or default (``gd`` is SGD
    with none: "no"), and a class whose momentum is off by default ("optional (default 0)":
    SGD and RMSprop, which ``sgd`` and ``rmsprop`` build without it); an alias's memory note
    says which case of the class's applies (:func:`_preset_note`), unless the alias names
    its own memory (``momentum``: 1 buffer, where SGD's row says 0)."""
    info = entry.info
    value = {**info.defaults, **entry.preset}.get("momentum")
    own = entry.alias_memory_note is not None
    memory = entry.memory_note + ("" if own else _preset_note(entry))
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return _yes(info.momentum), memory
    if entry.alias_of is None:
        return ("optional (default 0)" if info.momentum and value == 0
                else _yes(info.momentum)), memory
    return _yes(value > 0), memory


def _traits(entry) -> tuple[str, str, str, str]:
    """The adaptive-rate, momentum, extra-memory and bias-correction cells of ``entry``. A
    wrapper (Lookahead, SAM) steps with the optimizer it wraps, so its adaptive, momentum
    and bias cells are that one's, by default ("as adam: yes")."""
    from .optim.registry import resolve, wrapped_name

    info = entry.info
    momentum, memory = _momentum_and_memory(entry)
    cells = [_yes(info.adaptive), momentum, _yes(info.bias_correction)]
    inner = wrapped_name(entry.name) if entry.capabilities.wraps else None
    if inner is not None:
        adaptive, momentum, _, bias = _traits(resolve(inner))
        cells = [f"as {inner}: {cell}" for cell in (adaptive, momentum, bias)]
    return cells[0], cells[1], memory, cells[2]


def _compare_row(entry) -> list[str]:
    info = entry.info
    adaptive, momentum, memory, bias = _traits(entry)
    return [entry.name, _year(entry), adaptive, momentum, memory, bias, info.sparse,
            info.typical_use]


def compare_table(names: Sequence[str], markdown: bool = False) -> str:
    """Year, adaptive rate, momentum, memory, bias correction, sparse data, typical use."""
    from .optim.registry import resolve

    rows = [_compare_row(resolve(name)) for name in names]
    return render_table(_COMPARE_HEADERS, rows, _COMPARE_WIDTHS, markdown)


def explain(name: str) -> str:
    """Everything the catalog knows about one optimizer, as text."""
    from .optim.registry import available, resolve, wrapped_name

    entry = resolve(name)
    info = entry.info
    defaults = {**info.defaults, **entry.preset}
    shown = {key: repr(value) for key, value in defaults.items()}
    wraps, inner = entry.capabilities.wraps, wrapped_name(entry.name)
    if wraps and inner is not None:  # a registry name, as --hp takes it, not a class
        shown = {wraps: inner, **{k: v for k, v in shown.items() if k != wraps}}
    if entry.alias_of is not None:
        preset = ", ".join(_setting(k, v) for k, v in entry.preset.items())
        aliases = f"alias of {entry.alias_of}" + (f" (preset {preset})" if preset else
                                                  f" (with {entry.alias_of}'s defaults)")
    else:
        aliases = ", ".join(e.name for e in available() if e.alias_of == entry.name) or "-"
    adaptive, momentum, memory, bias = _traits(entry)
    lines = [f"{entry.name}: {_class_path(entry.cls)}"
             + (f" with {entry.preset}" if entry.preset else "")]
    if entry.summary:
        lines.append(entry.summary)
    fields = [
        ("paper", entry.paper if entry.alias_paper
         else ", ".join(text for text in (info.paper, info.url) if text) or "-"),
        ("year", _year(entry)),
        ("family", info.family),
        ("aliases", aliases),
        ("update", info.rule_text + _preset_note(entry)),
        ("defaults", ", ".join(f"{k}={v}" for k, v in shown.items())),
    ]
    if wraps and inner is not None:
        fields.append(("wraps", f"{inner} by default; --hp {entry.name}:{wraps}=NAME wraps "
                                "another (a registry name)"))
    fields += [
        ("extra memory", memory),
        ("adaptive lr", adaptive),
        ("momentum", momentum),
        ("bias corr.", bias),
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


# --------------------------------------------------------------------------------------
# The catalog commands from the cache: list, explain, compare, landscapes without torch
# --------------------------------------------------------------------------------------

def _catalog_data() -> dict:
    """Every answer the catalog commands can give (what :mod:`._catalog_cache` stores)."""
    from .optim.registry import available

    entries = available()
    return {"names": [entry.name for entry in entries],
            "list": catalog_table(markdown=False),
            "list_markdown": catalog_table(markdown=True),
            "explain": {entry.name: explain(entry.name) for entry in entries},
            "compare": {entry.name: _compare_row(entry) for entry in entries},
            "landscapes": landscapes_table()}


def _cached_catalog() -> dict | None:
    """The catalog commands' answers: from the cache when it is fresh, else computed (this
    imports torch) and cached; None when they cannot be computed together (the command
    then computes its own answer, and reports what fails)."""
    from . import _catalog_cache as cache
    from . import _plugins

    registry = sys.modules.get("optimlab.optim.registry")  # not loaded: nothing registered
    if registry is not None and len(registry.available()) != len(registry.available(user=False)):
        # optimizers registered in this process (optimlab.register): answers computed here,
        # with them, and never cached, as the cache serves other processes, which have none
        return None
    if _plugins.entry_points():
        # installed plugins: the registry loads them, so the answers are computed with
        # them (the cache holds the built-ins alone, and a plugin's code may change)
        return None
    try:
        key = cache.fingerprint()
    except Exception:  # pragma: no cover - fingerprint reads files and never raises
        return None
    data = cache.load(key)
    if data is None:
        try:
            data = _catalog_data()
        except Exception:
            return None
        cache.save(key, data)
    return data


def _cached_entry(data: dict, table: str, name: str):
    """``data[table]`` for the registry name ``name``, found as
    :func:`optimlab.optim.registry.resolve` finds it, and failing with its error."""
    key = name.strip().lower()
    if key in data[table]:
        return data[table][key]
    import difflib

    names = data["names"]
    close = difflib.get_close_matches(key, list(names), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown optimizer {name!r}{hint} (known: {', '.join(names)})")


def run_list(args: argparse.Namespace) -> str:
    """``optimlab list``."""
    data = _cached_catalog()
    if data is None:
        return catalog_table(args.markdown)
    return data["list_markdown" if args.markdown else "list"]


def run_explain(args: argparse.Namespace) -> str:
    """``optimlab explain NAME``."""
    data = _cached_catalog()
    return explain(args.name) if data is None else _cached_entry(data, "explain", args.name)


def run_compare(args: argparse.Namespace) -> str:
    """``optimlab compare NAME ...``."""
    data = _cached_catalog()
    if data is None:
        return compare_table(args.names, args.markdown)
    rows = [_cached_entry(data, "compare", name) for name in args.names]
    return render_table(_COMPARE_HEADERS, rows, _COMPARE_WIDTHS, args.markdown)


def run_landscapes(args: argparse.Namespace) -> str:
    """``optimlab landscapes``."""
    data = _cached_catalog()
    return landscapes_table() if data is None else data["landscapes"]


# --------------------------------------------------------------------------------------
# Bounds: what one command may ask for unless --no-limits lifts them
# --------------------------------------------------------------------------------------

INT64_MAX = 2**63 - 1  # SQLite's largest integer: sweep ids and every stored count
SEED_MAX = 2**32 - 1

RACE_MAX_STEPS = 100_000
"""``race --steps``: a few minutes for a dozen optimizers on two cores."""
RACE_MAX_DIM = 10_000
"""``race --param dim=N`` (rosenbrock_nd, rastrigin_nd)."""
RACE_MAX_VALUES = 50_000_000
"""``race``: path values kept, (steps + 1) x runs x dim (400 MB of float64); a run is one
optimizer, or with ``--tune`` one of the most rates an optimizer's grid may run (the 17
grid points, and 12 more its extension may add: ``landscapes.race.TUNE_MOST_RATES``)."""
BENCH_MAX_STEPS = 100_000
"""``bench --steps`` (or ``--epochs`` times the steps of an epoch)."""
BENCH_MAX_LRS = 1_000
"""``bench --lrs``: points of the learning-rate grid."""
BENCH_MAX_SEEDS = 1_000
"""``bench --seeds``."""
BENCH_MAX_MEMBERS = 10_000
"""``bench``: runs of a sweep, optimizers x learning rates x seeds."""
BENCH_MAX_POINTS = 10_000_000
"""``bench``: metric points stored, runs x evaluations (``--eval-every``)."""
ADVISE_MAX_STEPS = BENCH_MAX_STEPS
"""``advise --steps``: the horizon the recommendation is for."""
ADVISE_MAX_SEEDS = 100
"""``advise --seeds``: seeds of the final rung (each finalist trains this many)."""

SLICE_MAX_GRID = 201
"""``slice --grid``: points per axis of the plane (its loss is evaluated grid x grid times)."""
SLICE_MAX_STEPS = 100_000
"""``slice --steps``: training steps of each optimizer."""

LIMITS: dict[str, int] = {
    "race --steps": RACE_MAX_STEPS,
    "race --param dim": RACE_MAX_DIM,
    "race path values ((steps+1) x runs x dim)": RACE_MAX_VALUES,
    "bench --steps (or --epochs x steps per epoch)": BENCH_MAX_STEPS,
    "bench --lrs points": BENCH_MAX_LRS,
    "bench --seeds": BENCH_MAX_SEEDS,
    "bench runs (optimizers x lrs x seeds)": BENCH_MAX_MEMBERS,
    "bench metric points (runs x evaluations)": BENCH_MAX_POINTS,
    "advise --steps": ADVISE_MAX_STEPS,
    "advise --seeds": ADVISE_MAX_SEEDS,
    "slice --steps": SLICE_MAX_STEPS,
    "slice --grid": SLICE_MAX_GRID,
}
"""Every bound, by what it bounds; ``--no-limits`` on ``race``, ``bench``, ``advise`` and
``slice`` lifts them."""

_NO_LIMITS_HELP = "lift the bounds on sizes (listed below) on purpose"


def _within(value: int, bound: int, what: str, args: argparse.Namespace, fix: str) -> None:
    """Refuse ``value`` above ``bound`` unless ``--no-limits`` was given."""
    if value > bound and not args.no_limits:
        raise CLIError(f"{what} is {value:,}, over the bound of {bound:,}: {fix}, or pass "
                       "--no-limits to lift the bounds on purpose")


def _shown(text: str, limit: int = 40) -> str:
    """``repr(text)``, cut short: messages echo what was typed, not 10,000 digits of it."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


# --------------------------------------------------------------------------------------
# Argument types: argparse reports a bad value in one line (see _Parser.error)
# --------------------------------------------------------------------------------------

def _whole(low: int, high: int = INT64_MAX):
    """An argparse type: a whole number from ``low`` to ``high``."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is not None and low <= value <= high:
            return value
        if value is None:
            need = "a whole number"
        elif high != INT64_MAX:
            need = f"a whole number from {low} to {high}"
        elif value < low:
            need = f"a whole number >= {low}"
        else:
            need = f"a whole number up to {INT64_MAX:,} (SQLite's largest integer)"
        raise argparse.ArgumentTypeError(f"takes {need}, got {_shown(text)}")
    return whole


def _finite(low: float | None = None, strictly: bool = False):
    """An argparse type: a finite number, ``>= low`` (``> low`` when ``strictly``)."""
    def finite(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes a number, got {_shown(text)}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"takes a finite number, got {_shown(text)}")
        if low is not None and (value < low or (strictly and value == low)):
            raise argparse.ArgumentTypeError(
                f"takes a number {'>' if strictly else '>='} {low:g}, got {_shown(text)}")
        return value
    return finite


#: the built-in tasks (bench.tasks.names(), which imports torch; a test holds them equal)
TASK_NAMES = ("digits", "mnist1d", "sparse-logreg", "char-rnn", "quadratic-deep", "mnist", "fashion-mnist")
_TASK_HELP = (f"a built-in task ({', '.join(TASK_NAMES)}) or package.module:function, "
              "a function of yours returning a Task, a dict with model (a function making the "
              "network), x_train, y_train, x_test, y_test and optionally loss, or a tuple of "
              "those six in that order")
_DATA_DIR_HELP = ("data folder: the IDX files of mnist and fashion-mnist; the cache mnist1d "
                  f"writes its generated data to (default {_env.CACHE_ROOT_TEXT}); passed as "
                  "data_dir to a task function of yours")


def _text(what: str):
    """An argparse type: non-empty text without NUL characters (``what`` names it)."""
    def text(value: str) -> str:
        if not value.strip() or "\0" in value:
            raise argparse.ArgumentTypeError(f"takes {what}, got {_shown(value)}")
        return value
    return text


#: the longest ``optimlab bench --name``: a label a table shows in one cell
SWEEP_NAME_MAX = 80


def _label(value: str) -> str:
    """An argparse type: a sweep's name, one line of printable text of at most
    :data:`SWEEP_NAME_MAX` characters, without its outer spaces."""
    text = value.strip()
    if not text or not text.isprintable() or len(text) > SWEEP_NAME_MAX:
        raise argparse.ArgumentTypeError(
            f"takes one line of printable text of 1 to {SWEEP_NAME_MAX} characters, got "
            f"{_shown(value)}")
    return text


def _engines_text(counts: dict[str, int], engine: str) -> str:
    """Which engine trained a sweep's ended runs, as its heading says it: ``population
    engine``, or with both ``population engine (30 runs) and sequential engine (6 runs)``;
    ``engine`` (this command's) where no run says (ended before runs recorded it).

    >>> _engines_text({"population": 30, "sequential": 6}, "sequential")
    'population engine (30 runs) and sequential engine (6 runs)'
    >>> _engines_text({"population": 4}, "sequential"), _engines_text({}, "sequential")
    ('population engine', 'sequential engine')
    """
    if len(counts) > 1:
        return " and ".join(f"{name} engine ({_count(n, 'run')})" for name, n in sorted(
            counts.items(), key=lambda item: item[0] != "population"))
    return f"{next(iter(counts), engine)} engine"


def _number(text: str) -> int | float:
    """``"50"`` -> 50, ``"0.5"`` -> 0.5; ValueError unless finite (an integer beyond int64
    is read as a float)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is not None and abs(value) <= INT64_MAX:
        return value
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _point_text(point, most: int = 6) -> str:
    """``(-1.2, 1)`` as the command shows a point: each coordinate in at most 6
    significant digits, and the first ``most`` of a longer one (``(1, 2, 3, ... 100
    coordinates)``)."""
    values = [f"{float(v):.6g}" for v in point]
    if len(values) > most:
        return f"({', '.join(values[:most - 1])}, ... {len(values)} coordinates)"
    return f"({', '.join(values)})"


def _as_listed(name: str, names: Sequence[str]) -> str:
    """``name`` as ``--optimizers`` lists it (:func:`_names`: the registry's spelling, so
    ``SGD`` is ``sgd``) when it resolves to one of ``names``; else as given (stripped), for
    the caller to refuse as not in ``--optimizers``."""
    from .optim.registry import resolve

    try:
        key = resolve(name).name
    except ValueError:
        return name.strip()
    return key if key in names else name.strip()


def _hp_listed(item: str, names: Sequence[str]) -> str:
    """One ``--hp NAME:KEY=VALUE`` with its NAME as ``--optimizers`` lists it
    (:func:`_as_listed`); an item without a colon as it is (refused by the parser)."""
    name, sep, rest = item.partition(":")
    return f"{_as_listed(name, names)}{sep}{rest}" if sep and name.strip() else item


def _parse_pairs(items: Sequence[str], what: str, positive: bool = False,
                 key: Callable[[str], str] | None = None) -> dict[str, int | float]:
    """``["adam=0.05", "sgd=1e-3,lion=1e-4"]`` -> ``{"adam": 0.05, ...}``; every value
    finite; ``positive`` values (learning rates) are floats > 0, others keep whole numbers
    as ``int`` (``dim=50``). ``key``, if given, maps each name before it is stored (and
    before a name given twice is told apart: ``SGD=0.1,sgd=0.2`` is sgd twice)."""
    pairs = {}
    for item in items:
        for part in filter(None, item.split(",")):
            key_text, sep, value = part.partition("=")
            name = key_text if key is None or not key_text.strip() else key(key_text)
            try:
                if not sep or not name.strip():
                    raise ValueError
                number = _number(value)
            except ValueError:
                raise CLIError(f"{what} takes NAME=NUMBER with a finite number, got "
                               f"{_shown(part)}") from None
            if positive and not number > 0:
                raise CLIError(f"{what} takes NAME=NUMBER with a number > 0, got "
                               f"{_shown(part)}")
            number = float(number) if positive else number
            if pairs.get(name.strip(), number) != number:
                raise CLIError(f"{what} sets {name.strip()} twice ({pairs[name.strip()]:g} and "
                               f"{number:g}); give it once")
            pairs[name.strip()] = number
    return pairs


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses and brackets (``"betas=(0.9,0.99),
    eps=1e-6"`` is two parts)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _hp_value(text: str):
    """One ``--hp`` value: a number, ``true``/``false``/``none`` (any case), a tuple of
    numbers such as ``(0.9,0.99)``, or a word (``match_rms_adamw``). ValueError otherwise,
    and for a number that is not finite."""
    import ast
    import re

    text = text.strip()
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    try:  # true/false/none in any case inside a tuple too: (none,1e-3)
        value = ast.literal_eval(re.sub(r"\b(true|false|none)\b",
                                        lambda m: m.group(1).capitalize(), text,
                                        flags=re.IGNORECASE))
    except (ValueError, SyntaxError):
        if text.replace("_", "").replace("-", "").isalnum() and not text[0].isdigit():
            return text  # a word: an option's name
        raise ValueError(text) from None
    if isinstance(value, list):
        value = tuple(value)
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if not isinstance(item, (int, float)) or not math.isfinite(item):
            raise ValueError(text)
    return value


_HP_HELP = ("fixed hyperparameters of one of --optimizers, e.g. adamw:weight_decay=0.1 or "
            "\"adam:betas=(0.9,0.99),eps=1e-6\"")


def _hp_kind(default) -> str:
    """What a hyperparameter whose default is ``default`` takes, in words."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a finite number"
    if isinstance(default, tuple):
        shown = ",".join("none" if v is None else f"{v:g}" if isinstance(v, (int, float))
                         else str(v) for v in default)
        return f"a tuple of {len(default)} such as ({shown})"
    return "a finite number, true/false, a tuple such as (0.9,0.99), a word or none"


def _hp_fits(value, default) -> bool:
    """Whether a parsed ``--hp`` value is of the kind (:func:`_hp_kind`) of ``default``."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return number(value)
    if isinstance(default, tuple):  # of numbers (Adafactor's eps may hold None)
        return isinstance(value, tuple) and all(v is None or number(v) for v in value)
    return value is None or isinstance(value, (bool, str, tuple)) or number(value)


def _parse_hparams(items: Sequence[str], names: Sequence[str],
                   rate: str = "--lrs sweeps it") -> dict[str, dict]:
    """``--hp NAME:KEY=VALUE[,KEY=VALUE...]`` (repeatable): fixed hyperparameters per
    optimizer of ``--optimizers``, each a hyperparameter of its class (not ``lr``: ``rate``
    says which option sets it), checked up front by building the optimizer once with them."""
    from .optim.capabilities import hyperparameters
    from .optim.registry import probe, resolve, wrapped_class

    out: dict[str, dict] = {}
    for item in items:
        name, sep, rest = item.partition(":")
        name = name.strip()
        if not sep or not name or not rest.strip():
            raise CLIError(f"--hp takes NAME:KEY=VALUE[,KEY=VALUE...], e.g. "
                           f"adamw:weight_decay=0.1, got {_shown(item)}")
        if name not in names:
            raise CLIError(f"--hp names {name!r}, which is not in --optimizers "
                           f"({','.join(names)})")
        entry = resolve(name)
        parts = []
        for part in _split_top(rest):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise CLIError(f"--hp {name}: takes KEY=VALUE, got {_shown(part)}")
            parts.append((key, value))
        allowed = hyperparameters(entry.cls)
        wraps = entry.capabilities.wraps
        if wraps:  # a wrapper: the optimizer it wraps (a registry name) and that one's own
            inner = {key: value.strip() for key, value in parts if key == wraps}
            if inner:
                try:
                    resolve(inner[wraps])
                except ValueError as err:
                    raise CLIError(f"--hp {name}: {wraps}: {err}") from None
            cls = wrapped_class(entry.name, inner)
            allowed = {wraps: "", **allowed, **(hyperparameters(cls) if cls else {})}
        for key, value in parts:
            if key == "lr":
                raise CLIError(f"--hp {name}: not lr: {rate}")
            if key not in allowed:
                import difflib

                what = entry.cls.__name__ + (f" with {cls.__name__}" if wraps and cls else "")
                close = difflib.get_close_matches(key, [k for k in allowed if k != "lr"], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise CLIError(f"--hp {name}: {key!r} is not a hyperparameter of "
                               f"{what} (it takes "
                               f"{', '.join(k for k in allowed if k != 'lr')}{hint})")
            try:
                parsed = _hp_value(value)
                fits = _hp_fits(parsed, allowed[key])
            except ValueError:
                fits = False
            if not fits:
                raise CLIError(f"--hp {name}: {key} takes {_hp_kind(allowed[key])}, got "
                               f"{_shown(value)}")
            if key in out.get(name, {}) and out[name][key] != parsed:
                raise CLIError(f"--hp {name}: {key} is given twice ({out[name][key]!r} and "
                               f"{parsed!r}); give it once")
            out.setdefault(name, {})[key] = parsed
    for name, hp in out.items():
        try:  # the optimizer's own checks, before anything trains
            probe(name, **hp)
        except (ValueError, TypeError) as err:
            raise CLIError(f"--hp {name}: {' '.join(str(err).split())}") from None
    return out


def _parse_point(text: str) -> tuple[float, ...]:
    """``"-1.5,2"`` -> ``(-1.5, 2.0)``, every coordinate finite."""
    try:
        point = tuple(float(v) for v in text.split(","))
    except ValueError:
        point = ()
    if not point or not all(math.isfinite(v) for v in point):
        raise CLIError(f"--start takes comma-separated finite numbers such as --start=-1.5,2, "
                       f"got {_shown(text)}")
    return point


def _names(text: str, example: str) -> list[str]:
    """The registry names of ``--optimizers``: at least one, each once, each known."""
    from .optim.registry import resolve

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CLIError(f"--optimizers needs at least one name, e.g. {example}")
    seen: list[str] = []
    for name in names:
        key = resolve(name).name  # an unknown name fails here, with suggestions
        if key in seen:
            raise CLIError(f"--optimizers names {name!r} twice: name each optimizer once")
        seen.append(key)
    return seen  # as the registry spells them, as a sweep stores them


# --------------------------------------------------------------------------------------
# Output paths
# --------------------------------------------------------------------------------------

_SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)


def _no_nul(text: str | None, flag: str) -> str:
    if text is None or not text.strip() or "\0" in text:
        raise CLIError(f"{flag} needs a path, got {_shown(text or '')}")
    return text


def _figure_suffixes() -> tuple[str, ...]:
    """The file suffixes matplotlib can save here, ``.png`` first: ``.pgf`` only where its
    TeX program (``rcParams["pgf.texsystem"]``, xelatex by default) is installed, since
    matplotlib needs it to write one (a race then ran to the end before failing)."""
    import shutil

    try:
        import matplotlib
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CLIError("pictures need matplotlib: pip install 'optimlab[lab]'") from None
    kinds = sorted(FigureCanvasBase.get_supported_filetypes())
    if not shutil.which(str(matplotlib.rcParams.get("pgf.texsystem", "xelatex"))):
        kinds = [kind for kind in kinds if kind != "pgf"]
    return (".png",) + tuple(f".{kind}" for kind in kinds if kind != "png")


#: the path an output flag reads as standard output (``advise --json -``)
STDOUT = "-"

#: a path naming an open file descriptor: ``/dev/fd/N``, ``/proc/self/fd/N``
_DESCRIPTOR = re.compile(r"/(?:dev/fd|proc/(self|thread-self|\d+)/fd)/(\d+)")


def _descriptor(path: str | os.PathLike) -> int | None:
    """The file descriptor of this process that ``path`` names, its symbolic links followed
    one at a time (``/dev/stdout`` -> ``/proc/self/fd/1``: 1; ``/dev/fd/63``, a shell's
    ``>(...)``: 63), or None: a path of another kind, or another process's descriptor."""
    current = os.path.abspath(path)
    for _ in range(40):  # a loop of links ends here
        match = _DESCRIPTOR.fullmatch(current)
        if match:
            pid = match[1]
            return int(match[2]) if pid is None or not pid.isdigit() \
                or int(pid) == os.getpid() else None
        try:
            target = os.readlink(current)
        except (OSError, ValueError):  # not a link, or nothing there
            return None
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return None


def to_stdout(text: str) -> bool:
    """Whether an output flag's ``text`` names standard output: ``-``, or a path naming
    descriptor 1 (``/dev/stdout``, ``/dev/fd/1``)."""
    return text == STDOUT or ("\0" not in text and _descriptor(text) == 1)


def _special_file(path: Path) -> bool:
    """Whether ``path`` is written in place, as given, never suffixed nor replaced by a
    renamed file: an open descriptor of this process (``/dev/stderr``, ``/dev/fd/3``), or
    an existing file that is neither a regular file nor a folder (a FIFO, a character
    device such as ``/dev/null``)."""
    import stat

    if _descriptor(path) is not None:
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _file_stem(stem: str) -> str:
    """``stem`` (a landscape's or task's name in it: one of yours may be anything) as one
    file name on any system: path separators, the characters Windows refuses in a name
    (``<>:"|?*``: a colon there writes an NTFS stream) and control characters become ``-``.

    >>> _file_stem("race-my/bowl:v2")
    'race-my-bowl-v2'
    """
    return "".join("-" if ch in '<>:"/\\|?*' or ord(ch) < 32 else ch for ch in stem)


def out_file(text: str, flag: str, stem: str, suffixes: Sequence[str],
             in_place: bool = True) -> Path:
    """The file a flag such as ``--out`` writes.

    ``text`` that is an existing folder, or ends with a path separator, gets
    ``<text>/<stem><suffixes[0]>`` inside it, the stem made one file name
    (:func:`_file_stem`; a new folder ending with a separator is created, in a folder that
    exists, as ``report --out`` creates its own); otherwise
    ``text`` is the file, with ``suffixes[0]`` added when it has no suffix. A FIFO, a
    device or an open descriptor (:func:`_special_file`: ``/dev/fd/3``, ``/dev/null``) is
    the file as given, written in place (:func:`_write_text`, :func:`_save_picture`); with
    ``in_place`` False (an output that writes more than one file) it is refused. Standard
    output (``-``, ``/dev/stdout``: :func:`to_stdout`) is refused: the command's own
    output goes there (a caller that can send a text output there checks it first). Raises
    :class:`CLIError` for these, a folder whose parent does not exist (or is a file), a
    folder in which no file can be made (checked up front, so that no work is lost to it),
    a suffix not in ``suffixes``, or a name that is only a suffix (``.png``).
    """
    path = Path(_no_nul(text, flag))
    if to_stdout(text):
        raise CLIError(f"{flag} {text}: {flag} does not write to standard output (the "
                       f"command prints its own output there); pass a file such as "
                       f"{stem}{suffixes[0]} (./- for a file named -)")
    if _special_file(path):
        if not in_place:
            raise CLIError(f"cannot write {flag} {text}: it is not a regular file, and {flag} "
                           "writes files of its own; pass a file or a folder")
        if not os.access(path, os.W_OK):
            raise CLIError(f"cannot write {flag} {text}: " + (
                "it is not writable" if os.path.exists(path) else "no such open descriptor"))
        return path
    if text.endswith(_SEPARATORS) or path.is_dir():
        if not path.is_dir():
            if not path.exists() and not path.absolute().parent.is_dir():
                _not_a_folder(path.absolute().parent, f"{flag} {text}")
            if path.exists() or not path.absolute().parent.is_dir():
                raise CLIError(f"cannot write {flag} {text}: "
                               + ("it is a file, not a folder" if path.exists() else
                                  f"its folder {path.absolute().parent} does not exist "
                                  "(create it first, or name a file)"))
            try:
                path.mkdir()
            except OSError as err:
                from ._files import mkdir_failure

                raise CLIError(f"cannot create {flag} {text}: {mkdir_failure(path, err)}") from None
        _check_writable(path, f"{flag} {text}")
        return path / f"{_file_stem(stem)}{suffixes[0]}"
    folder = path.absolute().parent
    if not folder.is_dir():
        _not_a_folder(folder, f"{flag} {text}")
        raise CLIError(f"cannot write {text}: its folder {folder} does not exist (create it "
                       f"first, or pass another {flag})")
    if path.name.startswith(".") and f".{path.name[1:].lower()}" in suffixes:
        raise CLIError(f"{flag} {text} names a suffix, not a file: pass a file such as "
                       f"{stem}{suffixes[0]}, or a folder")
    if not path.suffix:
        path = path.with_name(path.name + suffixes[0])
    elif path.suffix.lower() not in suffixes:
        raise CLIError(f"{flag} {text}: cannot write {path.suffix} files; use one of "
                       f"{', '.join(suffixes)}")
    _check_writable_file(path, f"{flag} {text}")
    return path


#: suffixes of the files a folder ``--out`` gets (pictures, pages, tables): a new folder
#: named with one is a file name given where a folder was asked for
_FILE_SUFFIXES = frozenset({".png", ".svg", ".pdf", ".jpg", ".jpeg", ".gif", ".webp", ".html",
                            ".htm", ".csv", ".json"})


def out_folder(text: str, flag: str, what: str) -> Path:
    """The folder a flag such as ``report --out`` writes several files into: an existing
    folder, or a new one (created by the writer) in an existing folder. Raises
    :class:`CLIError` for a file, a folder whose parent does not exist, or a folder (the
    new one's parent) in which no file can be made, checked up front; and a new folder
    named like a file the command writes (``demo --out fig.png`` made a folder ``fig.png``
    holding the picture)."""
    path = Path(_no_nul(text, flag))
    if text == STDOUT:
        raise CLIError(f"{flag} takes a folder ({what} is written inside it), not standard "
                       "output (-): pass a folder (./- for a folder named -)")
    if not path.exists() and path.suffix.lower() in _FILE_SUFFIXES:
        raise CLIError(f"{flag} takes a folder ({what} is written inside it), and {text} is "
                       f"named as a {path.suffix} file: pass a folder")
    if path.exists() and not path.is_dir():
        raise CLIError(f"cannot write {what} to {text}: it is a file, not a folder (pass a "
                       f"folder to {flag})")
    if path.is_symlink() and not path.exists():  # mkdir would say "File exists"
        from ._files import mkdir_failure

        raise CLIError(f"cannot write {what} to {text}: "
                       f"{mkdir_failure(path, FileExistsError())}")
    parent = path.absolute().parent
    if not path.exists() and parent.exists() and not parent.is_dir():
        raise CLIError(f"cannot write {what} to {text}: {parent} is a file, not a folder")
    if not path.exists() and not parent.is_dir():
        raise CLIError(f"cannot write {what} to {text}: the folder {parent} does not exist "
                       "(create it first)")
    _check_writable(path if path.exists() else parent, f"{what} to {text}")
    return path


def _write_text(path: Path, text: str) -> None:
    """Write the text output ``path`` (from :func:`out_file`): a FIFO, a device or an open
    descriptor (:func:`_special_file`) in place, appended to (``/dev/stderr`` redirected
    to a file keeps what is there); a file whole or not at all (a full disk or an interrupt
    keeps the file that was there)."""
    if _special_file(path):
        with open(path, "a", encoding="utf-8") as out:
            out.write(text)
        return
    from ._files import NEW_FILE, write_atomically

    write_atomically(path, text, mode=NEW_FILE)


def _save_picture(figure, path: Path, **kwargs) -> None:
    """Save ``figure`` to the picture ``path`` (from :func:`out_file`) with ``savefig``'s
    ``kwargs``: a FIFO, a device or an open descriptor in place (in the format its suffix
    names, else PNG: ``/dev/fd/63``), a file whole or not at all
    (:func:`optimlab._files.save_figure`)."""
    if _special_file(path):
        kind = path.suffix[1:].lower()
        if kind not in figure.canvas.get_supported_filetypes():
            kind = "png"
        with open(path, "ab") as out:
            figure.savefig(out, format=kind, **kwargs)
        return
    from ._files import save_figure

    save_figure(figure, path, **kwargs)


def _check_writable(folder: Path, what: str) -> None:
    """Refuse, before any work, a ``folder`` in which no file can be made (a read-only disk,
    another user's folder): a file is created in it and removed. ``what`` names the output
    in the message (``--out race.png``)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".optimlab-probe-", dir=folder)
    except OSError as err:
        raise CLIError(f"cannot write {what}: {folder} is not writable "
                       f"({err.strerror or err})") from None
    os.close(fd)
    try:
        os.remove(probe)
    except OSError:  # pragma: no cover - made but not removable: the folder is writable
        pass


def _check_writable_file(path: Path, what: str) -> None:
    """Refuse, before any work, a file ``path`` that cannot be written: its folder takes no
    new file (:func:`_check_writable`), or it exists read-only."""
    _check_writable(path.absolute().parent, what)
    if path.is_file() and not os.access(path, os.W_OK):
        raise CLIError(f"cannot write {what}: {path} is read-only")


def _not_a_folder(folder: Path, what: str) -> None:
    """Refuse a path below a file (``race.png/x.png``), naming the file, where the folder
    it would go to does not exist."""
    for above in (folder, *folder.parents):
        if above.exists():
            if not above.is_dir():
                raise CLIError(f"cannot write {what}: {above} is a file, not a folder")
            return


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


#: a race's progress bar shows only once it has run this long (most races end sooner)
RACE_PROGRESS_DELAY = 1.0


def _race_progress(landscape: str, steps: int, runs: int):
    """A race's progress bar on a terminal (steps of the batched run, rounds a tuned
    grid's edge adds growing its total), after :data:`RACE_PROGRESS_DELAY` seconds:
    L-BFGS's inner iterations make a tuned race of it take minutes. A context whose callback
    does nothing where tqdm (the bench extra) is not installed."""
    import contextlib
    import importlib.util

    if importlib.util.find_spec("tqdm") is None:
        return contextlib.nullcontext(None)
    return _progress(f"race on {landscape}", [(steps, runs)], delay=RACE_PROGRESS_DELAY)


def run_race(args: argparse.Namespace) -> str:
    """``optimlab race``: the metrics table, and the pictures asked for."""
    from .landscapes import TUNE_GRID, get, race
    from .landscapes.race import TUNE_MOST_RATES

    _imports_done()
    _within(args.steps, RACE_MAX_STEPS, "--steps", args, "lower --steps")
    params = _parse_pairs(args.param, "--param")
    if isinstance(params.get("dim"), int):
        _within(params["dim"], RACE_MAX_DIM, "--param dim", args, "lower dim")
    if ":" in args.landscape:  # a function of yours: refused, not imported, where it is Python's
        _check_not_stdlib(args.landscape, args.landscape.partition(":")[0].strip().split(".")[0],
                          "package.module:function (a function of yours that returns a "
                          "Landscape)", what="landscape")
    landscape = get(args.landscape, **params)
    names = _names(args.optimizers, "sgd,momentum,adam")
    # --lr and --hp name optimizers as --optimizers does, in any case (SGD=0.01 is sgd's)
    listed = functools.partial(_as_listed, names=names)
    hparams = _parse_hparams([_hp_listed(item, names) for item in args.hp], names,
                             "--lr sets it, or --tune")
    lrs = _parse_pairs(args.lr, "--lr", positive=True, key=listed)
    unknown = set(lrs) - set(names)
    if unknown:
        raise CLIError(f"--lr names {', '.join(sorted(unknown))}, not in --optimizers")
    if lrs and args.tune:
        raise CLIError("--lr and --tune do not go together: --tune picks each learning rate "
                       "from a grid; drop one of them")
    runs = len(names) * (len(TUNE_GRID) if args.tune else 1)
    most = len(names) * (TUNE_MOST_RATES if args.tune else 1)  # a grid with its extensions
    _within((args.steps + 1) * most * landscape.dim, RACE_MAX_VALUES,
            f"the race's path values, (--steps + 1) x runs x dim (with --tune {TUNE_MOST_RATES} "
            "runs an optimizer: its grid and the extension's rates),", args,
            "lower --steps, race fewer optimizers or drop --tune")
    if args.surface and landscape.dim != 2:
        raise CLIError(f"--surface needs a 2-D landscape; {landscape.name} has "
                       f"dim={landscape.dim}")
    start = None if args.start is None else _parse_point(args.start)
    pictures = {}  # every path is checked before the race runs
    for flag, value, stem in (("--out", args.out, "race"), ("--surface", args.surface,
                                                             "surface")):
        if value is not None:
            pictures[flag] = out_file(value, flag, f"{stem}-{landscape.name}",
                                      _figure_suffixes())
    gif = None if args.gif is None else out_file(args.gif, "--gif", f"race-{landscape.name}",
                                                 (".gif", ".mp4"), in_place=False)
    _distinct_outputs({**pictures, **({"--gif": gif} if gif is not None else {})})
    spec = {name: {**hparams.get(name, {}), **({"lr": lrs[name]} if name in lrs else {})}
            for name in names}
    try:
        with _race_progress(landscape.name, args.steps, runs) as tick:
            result = race(landscape, spec, start=start, steps=args.steps, noise=args.noise,
                          seed=args.seed, tune=args.tune, progress=tick)
    except Exception as err:
        if not isinstance(err, _user_errors()):
            _unbuilt_plugin(spec)
        raise
    lines = [f"{landscape.name} from {_point_text(result.start)}, {_count(args.steps, 'step')}"
             + (f", noise {args.noise:g}" if args.noise else "")
             + (", learning rates tuned on a log grid" if args.tune else ""),
             result.table()]

    def save(figure, path):
        from .landscapes.plots import plt_close

        try:  # whole or not at all: a failed or interrupted save keeps the file that was there
            _save_picture(figure, path, dpi=110, bbox_inches="tight")
        finally:
            plt_close(figure)
        return [path]

    outputs = [(pictures.get("--out"), lambda path: save(result.plot(), path)),
               (pictures.get("--surface"), lambda path: save(landscape.plot_surface(result),
                                                             path)),
               (gif, result.animate)]
    for path, write in outputs:
        if path is not None:
            try:
                lines += [f"wrote {_path_shown(item)}" for item in write(path)]
            except (Exception, KeyboardInterrupt) as err:
                # the race's results are not lost with a picture, whatever stops it; the
                # error is then main's one line
                print(_printable("\n".join(lines)), flush=True)
                if isinstance(err, OSError) and not isinstance(err, BrokenPipeError):
                    raise CLIError(f"cannot write {path}: {err.strerror or err}") from None
                raise
    if gif is not None and gif.suffix.lower() == ".mp4" \
            and f"wrote {_path_shown(gif)}" not in lines:
        print("optimlab: note: no MP4 written: it needs ffmpeg, which is not on PATH; the "
              "animation is the GIF only", file=sys.stderr)
    return "\n".join(lines)


def _unbuilt_plugin(spec: dict[str, dict]) -> None:
    """After a race failed with an error that is not the user's: raise a :class:`CLIError`
    naming the first registered optimizer of ``spec`` (a plugin's: not a built-in) that
    cannot be built with its hyperparameters, whatever it raises (the plugin's failure, not
    optimlab's); nothing where each one builds."""
    from .optim.registry import is_builtin, origin, probe, resolve

    for name, hparams in spec.items():
        entry = resolve(name)
        if is_builtin(entry.name):
            continue
        try:
            probe(entry.name, **hparams)
        except Exception as err:
            where = origin(entry.name)
            raise CLIError(f"optimizer {entry.name} ({where}) could not be built: "
                           f"{type(err).__name__}: {_one_line(err)}") from None


def _distinct_outputs(paths: dict[str, Path]) -> None:
    """Refuse, before any work, two flags (``--out``, ``--surface``, ``--gif``) whose
    files are one: the second picture would overwrite the first."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        key = Path(os.path.realpath(path))
        if key in seen:
            raise CLIError(f"{seen[key]} and {flag} both write {path}: give each its own "
                           "file (or the same folder, where each gets its own name)")
        seen[key] = flag


DEMO_DIR = "optimlab-demos"
"""Where ``optimlab demo`` (every exhibit) writes the pictures unless ``--out`` says."""


def run_demo(args: argparse.Namespace) -> str:
    """``optimlab demo [NAME]``: run every exhibit (or one), or ``--list`` their names."""
    from .exhibits import DEMO_NAMES, demo_key
    from .exhibits import run_demo as run

    _imports_done()
    if args.list:
        if args.name:
            raise CLIError("demo --list takes no NAME: it lists every exhibit")
        return "\n".join(DEMO_NAMES)
    if args.name is None:
        return _run_every_demo(args, DEMO_NAMES, run)
    if not args.name.strip():  # an unset shell variable, most likely: not "every exhibit"
        raise CLIError(f"demo takes an exhibit's name ({', '.join(DEMO_NAMES)}), got an empty "
                       "one; leave NAME out to run every exhibit")
    try:
        demo_key(args.name)  # before the folder is made
    except ValueError as err:
        raise CLIError(str(err)) from None
    folder = None if args.out is None else out_folder(args.out, "--out", "the demo's picture")
    try:
        result = run(args.name, out_dir=folder)
    except BrokenPipeError:  # the output's reader has gone, not the folder: main() says nothing
        raise
    except OSError as err:
        raise CLIError(f"cannot write to {args.out}: {err.strerror or err}") from None
    # the title carries the set-up (rates, batch, start) the table leaves out
    text = (f"{result.name}: {result.title}\n" if result.title else "") + result.table()
    if folder is not None:
        text += f"\nwrote {_path_shown(folder / (result.name + '.png'))}"  # the exhibit's name: EMA -> ema
    return text


def _run_every_demo(args: argparse.Namespace, names: Sequence[str], run) -> str:
    """Every exhibit of the registry in turn, each printed as it ends, its picture in
    ``--out`` (default :data:`DEMO_DIR`)."""
    _figure_suffixes()  # pictures need matplotlib: say so before running anything
    text = DEMO_DIR if args.out is None else args.out
    folder = out_folder(text, "--out", "the demos' pictures")
    for number, name in enumerate(names, 1):
        try:
            result = run(name, out_dir=folder)
        except BrokenPipeError:  # the output's reader has gone, not the folder (see main)
            raise
        except OSError as err:
            raise CLIError(f"cannot write to {folder}: {err.strerror or err}") from None
        title = f" {result.title}" if result.title else ""
        print(_printable(f"[{number}/{len(names)}] {result.name}:{title}\n{result.table()}\n"
                         f"wrote {_path_shown(folder / (result.name + '.png'))}\n"), flush=True)
    return f"ran {len(names)} exhibits; their pictures are in {folder}"


DEFAULT_DB = "optimlab-runs.db"


def db_path(text: str, must_exist: bool = False, verb: str = "use") -> str:
    """The run store file of ``--db``, checked: not a folder, in a folder that exists (and
    existing itself when ``must_exist``); ``:memory:`` is a throw-away store, and a URL
    (``postgresql://user@host/db``, ``sqlite:///file.db``) is passed on as it is: the store
    reads and checks it."""
    if text == ":memory:" or "://" in text:
        return text
    path = Path(_no_nul(text, "--db"))
    if text.endswith(_SEPARATORS) or path.is_dir():
        raise CLIError(f"cannot {verb} the run store {text}: it is a folder, not a store file "
                       f"(pass e.g. --db {path / DEFAULT_DB})")
    if must_exist and not path.exists():
        # the tour's store is made by the tour (the README's `profile` example reads it)
        tour = path.resolve() == Path(TOUR_DB).resolve()
        raise CLIError(f"no run store at {path} (run `optimlab {'tour' if tour else 'bench'}` "
                       "first, or pass --db)")
    if not path.absolute().parent.is_dir():
        raise CLIError(f"cannot {verb} the run store {text}: its directory does not exist "
                       f"({path.absolute().parent}); create it first")
    return str(path)


def _masked(db: str | os.PathLike) -> str:
    """``--db`` as messages show it: a URL's password as ``***``
    (``postgresql://u:***@host/db``), so it lands in no terminal, log or CI output."""
    from .bench.store.server import masked_url

    # the password runs from "://user:" to the last "@" before the host (a "/", ":" or an
    # unencoded "@" in it is the password's)
    return masked_url(os.fspath(db))


#: the run stores this command opened (:func:`_open_store`), closed when it ends
#: (:func:`main`): closing the last connection folds SQLite's ``-wal`` file into the store,
#: so the ``.db`` file alone, copied or moved, holds every run
_OPEN_STORES: list = []


def _open_store(path: str, must_exist: bool = False):
    import sqlite3

    from .bench.store import RunStore, StoreError

    path = db_path(path, must_exist)
    try:
        # a store that must exist is only read (runs, report, profile): opened read-only, so
        # a store on a read-only disk or of another user is still readable
        store = RunStore(path, readonly=must_exist)
    except (OSError, StoreError, sqlite3.Error) as err:
        text = str(err)
        # a message of the store's that names it already: once is enough
        if text.startswith(("cannot connect to run store ", "no optimlab run store in ")):
            raise CLIError(text) from None
        raise CLIError(f"cannot open the run store {_masked(path)}: {text}") from None
    _OPEN_STORES.append(store)
    return store


def _close_stores() -> None:
    """Close the run stores the command opened (each close is idempotent)."""
    while _OPEN_STORES:
        _OPEN_STORES.pop().close()


def _lrs(text: str, args: argparse.Namespace) -> tuple[float, ...] | None:
    """``--lrs``: None for auto, else the grid, its size bounded before it is built, each rate
    finite and at most float32's largest number (what the optimizers take)."""
    from .bench.analysis import parse_lrs
    from .optim.base import LARGEST

    text = text.strip()
    if text.lower() == "auto":
        return None
    parts = text.split(":")
    for part in parts[:2] if len(parts) == 3 else parts[0].split(","):
        try:
            value = float(part)
        except ValueError:
            continue  # parse_lrs says what is wrong
        if not (math.isfinite(value) and value <= LARGEST):
            raise CLIError(f"--lrs takes finite learning rates > 0 and at most {LARGEST:.4g} "
                           f"(float32's largest), got {_shown(part.strip())}")
    if len(parts) == 3:
        try:
            count = int(parts[2])
        except ValueError:
            count = None  # parse_lrs says what is wrong
        if count is not None:
            _within(count, BENCH_MAX_LRS, "the --lrs grid's COUNT", args, "lower COUNT")
    else:
        _within(len(parts[0].split(",")), BENCH_MAX_LRS, "the --lrs list's length", args,
                "list fewer rates")
    # a log-spaced grid's last point may round a hair past a HIGH at the bound
    return tuple(min(lr, LARGEST) for lr in parse_lrs(text))


def _get_task(name: str, data_dir: str | None):
    """``bench.tasks.get``, with ``package.module:function`` checked to be a task first and
    whatever that function raises reported in one line."""
    from .bench.tasks import get as get_task

    if ":" not in name:
        return get_task(name, data_dir=data_dir)
    _check_user_task(name, data_dir)
    try:
        return get_task(name, data_dir=data_dir)
    except ValueError:
        raise
    except (Exception, SystemExit) as err:  # the user's code: anything at all
        raise CLIError(f"the task function {name} failed: {type(err).__name__}: {err}") \
            from None


def _in_stdlib(path: str | None) -> bool:
    """Whether ``path`` (a module's file; None for a built-in one) is Python's standard
    library's, not a package installed beside it."""
    import sysconfig

    if not path:
        return True
    path = os.path.realpath(path)
    paths = sysconfig.get_paths()
    inside = [os.path.realpath(paths[key]) + os.sep for key in ("stdlib", "platstdlib")]
    installed = [os.path.realpath(paths[key]) + os.sep for key in ("purelib", "platlib")]
    return any(path.startswith(p) for p in inside) and not any(path.startswith(p) for p in installed)


def _check_not_stdlib(spec: str, top: str, shape: str, what: str = "task") -> None:
    """Refuse, without importing it (``antigravity`` opens a browser, ``os:abort`` ends the
    process), a ``what`` (task or landscape) module that would be Python's standard
    library's; a file of yours that shares a standard module's name (``profile.py``) is
    imported, unless the standard one was imported first and would be read in its place."""
    if top not in sys.stdlib_module_names:
        return
    import importlib.machinery

    found = importlib.machinery.PathFinder.find_spec(top, [os.getcwd(), *sys.path])
    origin = found.origin if found is not None and found.has_location else None
    if origin is None or _in_stdlib(origin):
        raise CLIError(f"{spec} is in Python's standard library, not a {what}: pass {shape}")
    loaded = sys.modules.get(top)
    if loaded is not None and _in_stdlib(getattr(loaded, "__file__", None)):
        raise CLIError(f"{spec}: your {os.path.relpath(origin)} has the name of Python's standard "
                       f"module {top!r}, which optimlab imported before it; rename your file")


def _check_user_task(spec: str, data_dir: str | None) -> None:
    """Refuse a ``module:function`` that cannot be a task, before calling it."""
    import inspect

    module_name, _, function_name = spec.partition(":")
    shape = "package.module:function (a function of yours that returns a Task)"
    if not module_name.strip() or not function_name.isidentifier():
        raise CLIError(f"a task of your own is {shape}, got {_shown(spec)}")
    _check_not_stdlib(spec, module_name.split(".")[0], shape)
    from ._userfunc import import_from_here

    try:
        module = import_from_here(module_name)  # the current folder first, as python -m
    except Exception as err:  # ImportError, and whatever the module raises on import
        raise CLIError(f"cannot import the task module {module_name!r}: "
                       f"{type(err).__name__}: {err}") from None
    function = getattr(module, function_name, None)
    if function is None:
        import difflib

        names = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
        near = difflib.get_close_matches(function_name, names, n=1)
        raise CLIError(f"module {module_name} has no function {function_name!r}"
                       + (f" (did you mean {near[0]}?)" if near else f": pass {shape}"))
    if not callable(function) or inspect.isclass(function):
        raise CLIError(f"{module_name}.{function_name} is not a function: pass {shape}")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise CLIError(f"cannot tell which arguments {spec} takes: pass {shape}") from None
    required = [p.name for p in signature.parameters.values() if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and not (p.name == "data_dir" and data_dir is not None)]
    if required:
        hint = " (pass --data-dir)" if required == ["data_dir"] else ""
        raise CLIError(f"{spec} needs the arguments {', '.join(required)}{hint}; a task "
                       "function takes none but data_dir")


def _task_with_model(args: argparse.Namespace):
    """The task of ``TASK`` (with a note on a terminal), its ``--model`` checked."""
    _say(f"optimlab: loading task {args.task}...")
    task = _get_task(args.task, args.data_dir)
    if args.model is not None and args.model not in task.models:
        raise CLIError(f"task {task.name} has no model {args.model!r} "
                       f"(models: {', '.join(task.models)})")
    return task


def _check_executor(args: argparse.Namespace) -> None:
    """``--executor`` and ``--address`` checked before anything is trained or stored:
    ``--address`` only with Ray, and Ray installed (one line saying what to install)."""
    if args.address is not None and args.executor != "ray":
        raise CLIError("--address is the Ray cluster's: it needs --executor ray")
    if args.executor == "ray":
        # found, not imported: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when imported, and
        # the executor sets it first for a loopback --address (keep_on_loopback)
        from .bench.executors import ray_installed

        if not ray_installed():
            raise CLIError("--executor ray needs Ray: pip install 'optimlab[ray]'")


def _executor(args: argparse.Namespace):
    """The executor of ``--executor`` and ``--address``, connected (a one-line CLIError if
    its cluster cannot be reached)."""
    from .bench.executors import make_executor

    try:
        return make_executor(args.executor, args.address)
    except (RuntimeError, ValueError) as err:
        raise CLIError(str(err)) from None


def _add_executor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where the groups train: here (default), or as tasks on a Ray "
                        "cluster, each optimizer's runs one task (pip install 'optimlab[ray]')")
    p.add_argument("--address", type=_text("a Ray address"),
                   help="the Ray cluster's head, HOST:PORT (default: $RAY_ADDRESS where it is "
                        "set, else a Ray instance started on this machine for the run)")


def _check_target(target: float | None, task) -> None:
    """Refuse a ``--target`` the task's test metric can never reach: an accuracy outside
    [0, 1], negative bits per character. A loss (the task's own function) may be anything."""
    if target is None:
        return
    if task.metric == "accuracy" and not 0 <= target <= 1:
        raise CLIError(f"--target {target:g} is out of reach: task {task.name}'s metric is "
                       "accuracy, from 0 to 1 (e.g. --target 0.9)")
    if task.metric == "bits_per_char" and target < 0:
        raise CLIError(f"--target {target:g} is out of reach: task {task.name}'s metric, bits "
                       "per character, is never below 0")


def _check_dense(names: Sequence[str], task, args: argparse.Namespace) -> None:
    """Refuse, before anything trains, an optimizer that takes sparse gradients only
    (``Capabilities.sparse_only``: SparseAdam), as ``race`` refuses it: the population engine
    gives dense gradients, and so does a model without a sparse embedding on either engine,
    where every run would fail the same way. A model whose sparse embeddings hold only some
    of its trained parameters fails every run too (the others' gradients are dense), on the
    sequential engine as well: ``--sequential`` is suggested only where every parameter
    belongs to a sparse embedding."""
    from .bench.sweep import check_sparse_only

    try:
        check_sparse_only(names, task, args.model, args.sequential, "pass --sequential")
    except ValueError as err:
        raise CLIError(str(err)) from None


def run_bench(args: argparse.Namespace) -> str:
    """``optimlab bench``: a sweep trained as batched populations, stored, summarised."""
    from .bench.executors import GroupsLost
    from .bench.report import summary_table, sweep_options, write_report
    from .bench.store import StoreError, SweepBusy
    from .bench.sweep import SweepSpec, auto_lrs, default_eval_every, run_sweep, trained_by
    from .bench.trainer import TrainConfig, full_batch

    _imports_done()
    _check_executor(args)

    names = _names(args.optimizers, "sgd,adagrad,rmsprop,adam")
    hparams = _parse_hparams([_hp_listed(item, names) for item in args.hp], names)
    lrs = _lrs(args.lrs, args)
    _within(args.seeds, BENCH_MAX_SEEDS, "--seeds", args, "lower --seeds")
    grid = {name: len(lrs) if lrs else len(auto_lrs(name)) for name in names}
    members = sum(grid.values()) * args.seeds
    _within(members, BENCH_MAX_MEMBERS, "the sweep's runs, optimizers x learning rates x "
            "seeds,", args, "use fewer --optimizers, --lrs or --seeds")
    if args.epochs is None:
        _within(args.steps, BENCH_MAX_STEPS, "--steps", args, "lower --steps")
    batch = _batch(args.batch_size)
    out = None if args.out is None else out_folder(args.out, "--out", "the report")
    db = db_path(args.db)
    task = _task_with_model(args)
    _check_target(args.target, task)
    _check_dense(names, task, args)
    examples = len(task.x_train)
    if args.epochs is not None:
        per_epoch = 1 if batch is None else max(1, examples // batch)
        steps = args.epochs * per_epoch
        _within(steps, BENCH_MAX_STEPS, f"--epochs {args.epochs} x {_count(per_epoch, 'step')} per "
                "epoch", args, "lower --epochs")
    else:
        steps = args.steps
    eval_every = args.eval_every or default_eval_every(steps)
    _within(members * (steps // eval_every + 1), BENCH_MAX_POINTS, "the metric points to "
            "store, runs x evaluations,", args, "raise --eval-every or lower --steps")
    config = TrainConfig(steps=steps, batch_size=batch, schedule=args.schedule,
                         clip_norm=args.clip, eval_every=eval_every,
                         model=args.model, averaging=args.average)
    spec = SweepSpec(task=args.task, optimizers=tuple(names), config=config, lrs=lrs,
                     seeds=args.seeds, hparams=hparams, target=args.target,
                     extend=True if args.extend else None)
    if args.resume:
        _check_resumable(db)  # before _open_store, which would create the store
    store = _open_store(db)
    stored = spec.stored_config(task)
    existing = store.find_sweep(stored)
    if existing is None and lrs is not None and ":" in args.lrs:
        # a range's grid as optimlab built it before its rates lost np.logspace's drift
        # (9.999999999999999e-06 for 1e-05): a sweep stored then is the same sweep
        import dataclasses

        from .bench.analysis import parse_lrs
        from .optim.base import LARGEST

        drifted = tuple(min(lr, LARGEST) for lr in parse_lrs(args.lrs.strip(), exact=False))
        if drifted != lrs:
            before = dataclasses.replace(spec, lrs=drifted)
            found = store.find_sweep(before.stored_config(task))
            if found is not None:
                spec, stored, existing = before, before.stored_config(task), found
    if existing is not None and store.pending_runs(existing):
        try:  # a sweep another process is training now: say so, not "pass --resume"
            with store.lock_sweep(existing):
                pass
        except SweepBusy as err:
            raise _busy(err) from None
    if existing is not None and store.pending_runs(existing) and not args.resume:
        raise CLIError(f"sweep {existing} in {_masked(db)} has the same configuration and "
                       f"{_count(len(store.pending_runs(existing)), 'unfinished run')}: pass "
                       "--resume to finish it")
    if existing is None and args.resume and \
            store.con.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 0:
        # a command stopped after it made the store, before it stored its sweep: nothing
        # trained, so nothing to resume (not a mistake in the arguments)
        raise CLIError(f"--resume: {_masked(db)} holds no sweep yet (the command was stopped "
                       "before it stored its sweep: nothing was trained); leave out --resume")
    if existing is None and args.resume:
        raise CLIError(f"--resume: no sweep in {_masked(db)} has this configuration (task, model, "
                       "optimizers, rates, seeds, steps and training options must be the ones "
                       "of the killed run; `optimlab runs` lists the sweeps"
                       f"{_closest_sweep(store, stored)}); leave out --resume to start a new one")
    if existing is None:
        older = _nearest(store, stored)
        if older is not None and older[1] and all(_OLDER in d for d in older[1]):
            # the same command as a stored sweep but for what an older optimlab did not
            # record: trained again as a new sweep, which a reader of `optimlab runs` would
            # otherwise take for a duplicate
            print(f"optimlab: sweep {older[0]} in {_masked(db)} has this configuration as an "
                  f"older optimlab stored it (without {', '.join(d.split(' (')[0] for d in older[1])}"
                  f"), which this one cannot check, so this command trains a new sweep; "
                  f"`optimlab report {older[0]}` still reads the old one", file=sys.stderr)
    if existing is not None and args.name is not None:
        kept = store.sweep(existing)["name"]
        if kept != args.name:  # a name is given at creation; the sweep found again keeps its own
            print(f"optimlab: note: sweep {existing} in {_masked(db)} keeps "
                  + (f"its name {kept!r}" if kept else "no name") + f", not {args.name!r}: a "
                  "sweep is named when it is created", file=sys.stderr)
    engine = "sequential" if _one_by_one(task, args.model, args.sequential) else "population"
    if existing is not None:  # resumed (or ended): only its unfinished runs train
        pending = [run.optimizer for run in store.pending_runs(existing)]
        counts = {name: pending.count(name) for name in names}
    else:
        counts = {name: grid[name] * args.seeds for name in names}
    # the progress callback ticks once per training step: of a whole population (one per
    # optimizer, its runs ending together) or of one run (sequential)
    groups = ([(steps, 1)] * sum(counts.values()) if engine == "sequential"
              else [(steps, counts[name]) for name in names if counts[name]])
    import signal

    # SIGTERM's handler before this command starts Ray (ray.init installs one of its own)
    sigterm_before = signal.getsignal(signal.SIGTERM)
    executor = _executor(args)
    where = "" if executor.name == "local" else f" on Ray ({executor.address or 'this machine'})"
    # a sweep that had ended every run: what it holds now, to tell whether anything trained
    runs_before = sum(store.sweep(existing)["counts"].values()) \
        if existing is not None and not store.pending_runs(existing) else None
    if existing is not None and runs_before is None:
        other = sorted(set(trained_by(store, existing)) - {engine})
        if other:  # a resume on the other engine: its runs will not match the ended ones bit for bit
            print(f"optimlab: note: sweep {existing} in {_masked(db)} has runs the {other[0]} "
                  f"engine trained; its unfinished runs train on the {engine} engine, which "
                  "agrees with it to rounding, not bit for bit (the stored runs say which "
                  "engine trained each)", file=sys.stderr)
    try:
        with _progress(f"{task.name}, {engine} engine{where}", groups) as tick, \
                _sigterm_stops(sigterm_before):
            sweep_id = run_sweep(spec, store, engine=engine, data_dir=args.data_dir,
                                 name=args.name, progress=tick, recalibrate=args.recalibrate,
                                 executor=executor, task=task, stored_config=stored)
    except GroupsLost as err:
        raise CLIError(f"{err}; run the same command with --resume") from None
    except KeyboardInterrupt as err:  # Ctrl-C (or SIGTERM): what was kept, how to go on
        raise _stopped(err, store, stored, db) from None
    except SweepBusy as err:
        # the same sweep started by another command at the same moment (before it stored
        # runs, so the check above saw none to train): that one trains them, nothing of
        # this one was lost, and --resume now would be refused the same way
        raise _busy(err) from None
    except StoreError as err:  # a full disk, say: what was kept, how to go on once mended
        kept = _kept(store, stored, db)
        raise CLIError(f"{err}" + (f"; {kept}" if kept else "")) from None
    finally:
        executor.close()
    from .bench.analysis import fixed_line

    # as `optimlab report` heads the same sweep: the options that tell it apart, then the
    # fixed hyperparameters
    options = sweep_options(stored)
    fixed = fixed_line(hparams)
    lines = [f"sweep {sweep_id} in {_masked(db)}: {task.name}, "
             f"{_engines_text(trained_by(store, sweep_id), engine)}{where}, "
             f"{_count(steps, 'step')}"
             + (f", {options}" if options else "") + (f"; {fixed}" if fixed else ""),
             summary_table(store, sweep_id)]
    if batch is not None and full_batch(batch, examples):
        lines.insert(1, f"--batch-size {batch} is at least the task's {examples} training "
                        "examples: every step read the whole train set (stored as full batch)")
    if runs_before is not None and sum(store.sweep(sweep_id)["counts"].values()) == runs_before:
        # the same command again: its results were stored already (the sweep's identity
        # holds its configuration and data, not the optimizers' code)
        lines.insert(1, f"nothing trained: sweep {sweep_id} had ended every run of this "
                        "configuration already, so these are its stored results (another "
                        "--db, or deleting the sweep's store, trains them again)")
    if out is not None:
        try:
            written = write_report(store, sweep_id, out)
        except BrokenPipeError:  # the output's reader has gone, not the folder (see main)
            raise
        except OSError as err:
            print(_printable("\n".join(lines)))  # the results, which are stored all the same
            raise CLIError(f"cannot write the report to {out}: {err.strerror or err} (the "
                           f"sweep is stored: `optimlab report {sweep_id} --db {_masked(db)} --out "
                           "FOLDER` writes it)") from None
        lines += [f"wrote {_path_shown(path)}" for path in written.values()]
    counts = store.sweep(sweep_id)["counts"]
    if counts["failed"] and counts["failed"] == sum(counts.values()):
        # every run raised: say so in the exit status too, so a script can tell
        print(_printable("\n".join(lines)))
        # --sequential helps only where batching itself failed (vmap's errors), not where
        # the optimizer refused the model (Muon on biases), which it does on either engine
        errors = [run.error or "" for run in store.list_runs(sweep_id, "failed")]
        batching = engine == "population" and any(
            word in error.lower() for error in errors for word in ("vmap", "batched", "batching"))
        hint = ("; a model the population engine cannot batch (BatchNorm, dropout) trains "
                "with --sequential") if batching else ""
        raise CLIError(f"every run of sweep {sweep_id} failed (the notes above quote the "
                       f"errors){hint}")
    return "\n".join(lines)


def _check_resumable(db: str) -> None:
    """``--resume`` with a ``--db`` store file that does not exist, or is empty (0 bytes): no
    sweep to finish there, refused before opening it, which would create the store (a
    server's URL and ``:memory:`` are asked by the sweep's lookup instead)."""
    from .bench.store import StoreError
    from .bench.store.guard import is_empty
    from .bench.store.runstore import sqlite_path

    if db == ":memory:" or ("://" in db and not db.startswith("sqlite")):
        return
    try:
        path = sqlite_path(db)
    except StoreError:  # a malformed sqlite:// URL: opening it says what is wrong
        return
    if path == ":memory:":
        return
    if not os.path.exists(path):
        why = "there is no run store there (and none was created)"
    elif os.path.isfile(path) and is_empty(path):
        why = "it is an empty file (0 bytes), not a run store yet"
    else:
        return
    raise CLIError(f"--resume: no sweep in {_masked(db)}: {why}; leave out --resume to start a "
                   "new sweep (or pass the --db of the stopped one)")


def _nearest(store, config: dict) -> tuple[int, list[str]] | None:
    """The stored sweep of ``config``'s task whose configuration differs from it in the
    fewest entries, and those entries (:func:`~optimlab.bench.store.jsonio.config_differences`);
    None where no sweep of the task is stored."""
    import json

    from .bench.store.jsonio import config_differences

    best = None
    for sweep_id, text in store.con.execute("SELECT id, config FROM sweeps ORDER BY id").fetchall():
        try:
            stored = json.loads(text) if text is not None else None
        except ValueError:
            continue
        if not isinstance(stored, dict) or stored.get("task") != config.get("task"):
            continue
        differences = config_differences(stored, config)
        if best is None or len(differences) < len(best[1]):
            best = (sweep_id, differences)
    return best


#: how :func:`~optimlab.bench.store.jsonio.config_differences` names an entry a sweep stored
#: by an older optimlab lacks
_OLDER = "not stored: an older optimlab"


def _closest_sweep(store, config: dict) -> str:
    """For a refused ``--resume``: the nearest stored sweep (:func:`_nearest`) and the
    entries it differs in (at most four), as ``"; the nearest, sweep 3, differs in
    train.steps (stored 300, given 200)"``; a sweep stored by an older optimlab lacks
    entries it did not record, and cannot be resumed. Empty where no sweep of the task is
    stored."""
    best = _nearest(store, config)
    if best is None or not best[1]:
        return ""
    sweep_id, differences = best
    shown = ", ".join(differences[:4]) + (f" and {len(differences) - 4} more"
                                           if len(differences) > 4 else "")
    older = any(_OLDER in d for d in differences)
    return (f"; the nearest, sweep {sweep_id}, differs in {shown}"
            + ("; a sweep an older optimlab stored cannot be resumed by this one: "
               f"`optimlab report {sweep_id}` still reads it" if older else ""))


class _Terminated(KeyboardInterrupt):
    """SIGTERM while a command runs (:func:`_sigterm_stops`): the command stops as on
    Ctrl-C (a sweep puts the runs it started back to pending and says what it kept), and
    exits 143."""


#: how many Ctrl-C or SIGTERM signals have come while :func:`main` runs its command
#: (:func:`_stop_once`); back to 0 when it returns
_STOPS = 0
#: the first of them (``KeyboardInterrupt`` or :class:`_Terminated`), None before any: what
#: the command reports, where a library turned the raised one into a plain
#: ``KeyboardInterrupt`` on its way out (``ray.wait`` does)
_FIRST_STOP: type[KeyboardInterrupt] | None = None


def _stop_once(stop: type[KeyboardInterrupt]) -> None:
    """Raise ``stop`` for the first Ctrl-C or SIGTERM of a command; ignore the second, and
    raise again from the third on. The first one's ``KeyboardInterrupt`` unwinds through
    the cleanup (a sweep's runs put back to pending, its lock file removed, a half-written
    file deleted, the stores closed), which a second Ctrl-C would cut short, with a
    traceback (from ``RunStore.close``, ``threading`` or an ``atexit`` callback) and what it
    had not done yet left undone. A third is the user insisting, or the first was swallowed
    (raised inside a finalizer or a callback that ignores exceptions, which Python reports
    as "Exception ignored"): the command must still be stoppable without SIGKILL. Only
    :func:`main`'s handlers call it."""
    global _STOPS, _FIRST_STOP
    _STOPS += 1
    if _STOPS == 1:
        _FIRST_STOP = stop
    if _STOPS != 2:
        raise stop()


def _stopped_by() -> type[KeyboardInterrupt] | None:
    """The first stop (``KeyboardInterrupt`` or :class:`_Terminated`) that came while the
    command now running in the main thread ran, or None: what an error raised meanwhile
    really was, where a library caught the stop and raised an error of its own."""
    import threading

    if _STOPS and threading.current_thread() is threading.main_thread():
        return _FIRST_STOP
    return None


def _interrupt(signum, frame) -> None:
    """SIGINT's handler while :func:`main` runs a command: ``KeyboardInterrupt``, as
    Python's own handler raises, once (:func:`_stop_once`)."""
    _stop_once(KeyboardInterrupt)


class _sigterm_stops:
    """While a command runs: SIGTERM raises :class:`_Terminated` (a ``KeyboardInterrupt``),
    once (:func:`_stop_once`), so the command stops as on Ctrl-C (a sweep puts the runs it
    started back to pending and says what it kept; a picture being written is removed)
    rather than dying with them marked running. Only in the main thread and where SIGTERM
    had its default action, or this handler already (:func:`main` holds it around every
    command, a sweep again around its training): a handler of the caller's is left alone.

    ``before`` is SIGTERM's handler before the command started its executor: a handler set
    since then is the executor's (``ray.init`` installs one that exits with 1 and says only
    that it got SIGTERM), replaced while the sweep trains and put back after it. On exit,
    the handler found is put back only where this one is still in place: one set meanwhile
    (the executor's, put back by a sweep's own ``_sigterm_stops``) stays, as it did when
    only the sweep held this handler."""

    _UNSET = object()

    def __init__(self, before=_UNSET) -> None:
        self.before = before

    def __enter__(self):
        import signal
        import threading

        self.signal = signal
        self.previous = signal.getsignal(signal.SIGTERM)
        caller = self.previous if self.before is self._UNSET else self.before
        self.installed = (threading.current_thread() is threading.main_thread()
                          and (caller is signal.SIG_DFL or caller is _sigterm_stops.stop))
        if self.installed:
            signal.signal(signal.SIGTERM, self.stop)
        return self

    @staticmethod
    def stop(signum, frame) -> None:
        _stop_once(_Terminated)

    def __exit__(self, *exc) -> None:
        if self.installed and self.signal.getsignal(self.signal.SIGTERM) is _sigterm_stops.stop:
            self.signal.signal(self.signal.SIGTERM, self.previous)  # SIG_DFL, or the executor's


class _signals_stop:
    """:func:`main`'s handlers while a command runs: Ctrl-C (SIGINT) raises
    ``KeyboardInterrupt`` and SIGTERM :class:`_Terminated`, the first of them only
    (:func:`_stop_once`: the cleanup it starts is not cut short by another), for every
    command (``advise``, ``tour``, ``race`` and ``demo`` died by SIGTERM's default action,
    leaving runs marked running, a sweep's lock file and a 0-byte GIF). Installed in the
    main thread only, each over Python's default (a caller's handler, a notebook's, is left
    alone), and put back when the command returns: a program that calls the library keeps
    Python's behaviour."""

    def __enter__(self):
        import signal
        import threading

        global _STOPS, _FIRST_STOP
        self.signal = signal
        # the count is the main thread's: a command run by another thread (a program's, a
        # test's) installs no handler and leaves it alone
        self.main = threading.current_thread() is threading.main_thread()
        if self.main:
            _STOPS, _FIRST_STOP = 0, None
        self.sigint = self.main and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        self.sigterm = _sigterm_stops()
        try:
            if self.sigint:
                signal.signal(signal.SIGINT, _interrupt)
            self.sigterm.__enter__()
        except BaseException:  # a Ctrl-C between the two: put back what was installed
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        global _STOPS
        if getattr(self.sigterm, "installed", False):
            self.sigterm.__exit__(*exc)
        if self.sigint and self.signal.getsignal(self.signal.SIGINT) is _interrupt:
            # the optimlab process (entry) ends next: after a stop, a Ctrl-C while it shuts
            # down (its threads joined, its atexit callbacks) is ignored too
            stopped = _COMMAND_PROCESS and _STOPS > 0
            self.signal.signal(self.signal.SIGINT, self.signal.SIG_IGN if stopped
                               else self.signal.default_int_handler)
        if self.main:
            _STOPS = 0


def _busy(err) -> CLIError:
    """What ``optimlab bench`` says when another process trains its sweep (a
    :class:`~optimlab.bench.store.SweepBusy`): the store's own advice ends "then resume",
    but the other process may well finish the sweep, so this command's advice replaces it."""
    return CLIError(f"{err.held_by}: wait for it to end (or stop it) before running this "
                    "command again")


def _kept(store, stored: dict, db: str) -> str | None:
    """``sweep N in DB: K of M runs kept; run the same command with --resume to train the
    rest`` for the sweep of ``stored`` (its runs ended out of all: the sweep put those it had
    started back to pending), or None where the store cannot say or holds no run of it."""
    try:
        sweep_id = store.find_sweep(stored)
        counts = None if sweep_id is None else store.sweep(sweep_id)["counts"]
    except Exception:  # the store cannot say
        return None
    total = sum(counts.values()) if counts else 0
    if not total:
        return None
    left = counts["pending"] + counts["running"]
    where = f"sweep {sweep_id} in {_masked(db)}"
    return (f"{where}: {total - left} of {_count(total, 'run')} kept; run the same command "
            "with --resume to train the rest") if left else \
        f"{where}: all {_count(total, 'run')} kept; run the same command to finish it"


def _stopped(err: KeyboardInterrupt, store, stored: dict, db: str) -> KeyboardInterrupt:
    """The interrupt that stopped ``optimlab bench``, as :func:`main` prints it: with the
    runs of the sweep kept and how to train the rest (:func:`_kept`); else as it was."""
    message = _kept(store, stored, db)
    return err if message is None else type(err)(message)


def _advise_stopped(err: KeyboardInterrupt, store, ended_before: int,
                    db: str) -> KeyboardInterrupt:
    """The interrupt that stopped ``optimlab advise``, as :func:`main` prints it: with the
    runs that ended before it (kept in the store, which the same command reads back instead
    of training them again: the runs it had started were put back to pending); else as it
    was."""
    from .bench.store import TERMINAL

    try:
        kept = store.count_runs(TERMINAL) - ended_before
    except Exception:  # the store cannot say: the interrupt alone
        return err
    if kept <= 0:
        return err
    return type(err)(f"{_count(kept, 'run')} ended before it, kept in {_masked(db)}; run the "
                     "same command again to read them back and train the rest")


SLICE_DIR = "optimlab-slice"


def run_slice(args: argparse.Namespace) -> str:
    """``optimlab slice``: several optimizers' paths on one plane of a real network's loss
    landscape, the interpolation between their solutions, and their sharpness."""
    from .bench.slices import DEFAULT_OPTIMIZERS, plot_interpolation, plot_slice, slice_landscape

    _imports_done()
    names = (_names(args.optimizers, "sgd,momentum,adam,sam") if args.optimizers
             else list(DEFAULT_OPTIMIZERS))
    if args.plane == "endpoints" and len(names) < 2:
        raise CLIError("the endpoints plane needs at least two --optimizers (or pass "
                       "--plane random)")
    _within(args.steps, SLICE_MAX_STEPS, "--steps", args, "lower --steps")
    _within(args.grid, SLICE_MAX_GRID, "--grid", args, "lower --grid")  # >= 2: its type's
    # --lr names optimizers as --optimizers does, in any case (Adam=0.01 is adam's), as race's
    lrs = _parse_pairs(args.lr, "--lr", positive=True,
                       key=functools.partial(_as_listed, names=names))
    unknown = sorted(set(lrs) - set(names))
    if unknown:
        raise CLIError(f"--lr names {', '.join(unknown)}, not among the optimizers "
                       f"({', '.join(names)})")
    optimizers = {}
    for name in names:
        hp = dict(DEFAULT_OPTIMIZERS.get(name, {}))
        if name in lrs:
            hp["lr"] = lrs[name]
        optimizers[name] = hp
    out = out_folder(args.out, "--out", "the slice")
    task = _task_with_model(args)
    batch = _batch(args.batch_size)
    with _progress(f"slice {task.name}: training", [(args.steps, 1)] * len(names)) as tick:
        result = slice_landscape(task, args.model, optimizers, steps=args.steps,
                                 batch_size=batch, seed=args.seed, grid=args.grid,
                                 plane=args.plane, on=args.on, progress=tick)
    s = result.seconds
    lines = [
        f"{result.task} {result.model}, {_count(result.steps, 'step')} from one initialisation; plane: "
        + (f"through the {' and '.join(result.through)} endpoints" if result.plane ==
           "endpoints" else "filter-normalised random directions"),
        result.table(),
        f"grid {args.grid} x {args.grid} over {result.on} examples: {s['grid']:.1f} s "
        f"(training {s['train']:.1f} s, interpolation {s['interpolation']:.1f} s, "
        f"sharpness {s['sharpness']:.1f} s)"]
    try:
        out.mkdir(exist_ok=True)
        plot_slice(result, out / "slice.png")
        plot_interpolation(result, out / "interpolation.png")
        # strict JSON: a diverged path's non-finite numbers as null (read back as NaN)
        from ._files import NEW_FILE, write_atomically
        from .bench.store.jsonio import strict_json

        # whole or not at all, as the pictures: a full disk keeps the previous slice.json
        write_atomically(out / "slice.json", strict_json(result.to_json()), mode=NEW_FILE)
    except BrokenPipeError:  # the output's reader has gone, not the folder (see main)
        raise
    except OSError as err:
        print(_printable("\n".join(lines)))  # the slice's results are not lost with it
        raise CLIError(f"cannot write the slice to {out}: {err.strerror or err}") from None
    return "\n".join(lines + [f"wrote {_path_shown(out / name)}"
                              for name in ("slice.png", "interpolation.png", "slice.json")])


ADVICE_DIR = "optimlab-advice"


def _budget(text: str | None) -> tuple[int | None, float | None]:
    """``--budget``: member-steps (``20000``) or seconds (``90s``); None: the full plan."""
    if text is None:
        return None, None
    raw = text.strip().lower().replace("_", "").replace(",", "")
    try:
        if raw.endswith("s"):
            seconds = float(raw[:-1])
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError
            return None, seconds
        steps = int(raw)
        if steps < 1:
            raise ValueError
        return steps, None
    except ValueError:
        raise CLIError(f"--budget takes member-steps (a whole number from 1, e.g. 20000) or "
                       f"seconds (e.g. 90s), got {_shown(text)}") from None


def run_advise(args: argparse.Namespace) -> str:
    """``optimlab advise``: which optimizer and learning rate for a task, with evidence.

    With ``--json -`` (or ``/dev/stdout``: :func:`to_stdout`) the JSON answer alone is the
    command's standard output, for a pipe (``| python -m json.tool``): what it prints
    there otherwise (the answer in words, the table, the ``wrote`` lines) goes to standard
    error."""
    if args.json is None or not to_stdout(args.json):
        return _advise(args, json_to_stdout=False)
    import contextlib

    with contextlib.redirect_stdout(sys.stderr):  # anything printed on the way: stderr
        return _advise(args, json_to_stdout=True)


def _advise(args: argparse.Namespace, json_to_stdout: bool) -> str:
    """:func:`run_advise`'s work: the text to print, or with ``json_to_stdout`` the JSON
    answer, the text printed (to ``sys.stdout``, which the caller points at stderr)."""
    from .bench.advisor import DEFAULT_CANDIDATES, advise_task, candidates
    from .bench.executors import GroupsLost
    from .bench.report import quoted_error
    from .bench.store import TERMINAL
    from .bench.trainer import full_batch

    _imports_done()
    _check_executor(args)
    names = candidates(_names(args.optimizers, "adam,lion") if args.optimizers
                       else DEFAULT_CANDIDATES)
    _within(args.steps, ADVISE_MAX_STEPS, "--steps", args, "lower --steps")
    _within(args.seeds, ADVISE_MAX_SEEDS, "--seeds", args, "lower --seeds")
    batch = _batch(args.batch_size)
    budget, seconds = _budget(args.budget)
    out = out_folder(args.out, "--out", "the report")
    # a folder (or a path ending with /) gets advice.json inside, as every --out does
    # (checked writable here, before the training, not after it)
    json_path = None if args.json is None or json_to_stdout else \
        out_file(args.json, "--json", "advice", (".json",))
    db = db_path(args.db)
    task = _task_with_model(args)
    one_by_one = _one_by_one(task, args.model)
    # an optimizer of sparse gradients only trains on the sequential engine and a sparse
    # embedding; refused before any run, as bench refuses it
    _check_dense(names, task, argparse.Namespace(model=args.model, sequential=one_by_one))
    store = _open_store(db)
    bars: list = []

    def on_stage(label: str, horizon: int, members) -> None:
        if bars:
            bars.pop().bar.close()
        groups = len({m.optimizer for m in members})
        # a tick per step: of a population (its runs end together) or of one run
        sizes = [(horizon, 1)] * len(members) if one_by_one else \
            [(horizon, len(members) // groups)] * groups
        bars.append(_progress(f"advise: {label}", sizes))

    def tick(n: int = 1) -> None:
        if bars:
            bars[-1].tick(n)

    def extend(groups, note: str) -> None:  # a stage's batched group trained again apart
        if bars:
            bars[-1].extend(groups, note)

    tick.extend = extend

    import signal

    # SIGTERM's handler before this command starts Ray (ray.init installs one of its own),
    # put back while the advisor trains, as bench does
    sigterm_before = signal.getsignal(signal.SIGTERM)
    executor = _executor(args)
    ended_before = store.count_runs(TERMINAL)
    try:
        with _sigterm_stops(sigterm_before):
            # the engine this command found above: each stage's groups need not ask again
            advice = advise_task(task, model=args.model, optimizers=names, steps=args.steps,
                                 batch_size=batch, budget=budget, budget_seconds=seconds,
                                 seeds=args.seeds, store=store, progress=tick,
                                 on_stage=on_stage, executor=executor,
                                 engine="sequential" if one_by_one else "population")
    except GroupsLost as err:
        raise CLIError(f"{err}; run the same command again to finish") from None
    except KeyboardInterrupt as err:  # Ctrl-C (or SIGTERM): what was kept, how to go on
        raise _advise_stopped(err, store, ended_before, db) from None
    finally:
        executor.close()
        while bars:
            bars.pop().bar.close()
    from .optim.registry import work_weight

    # the grid a sweep of every candidate would train, member-steps weighted as the advisor
    # weighs them (an L-BFGS step counts its closure evaluations)
    weight = sum(work_weight(name, {}) for name in names)
    grid = round(weight * 13 * args.seeds * args.steps)

    def lr(value) -> str:
        return "-" if value is None else f"{value:.3g}"

    rows = []
    for c in advice.candidates:
        metric = "-" if c["metric"] is None else f"{c['metric']:#.4g}" + (
            f" ± {c['ci']:.2g}" if c["ci"] is not None and math.isfinite(c["ci"]) else "")
        rows.append([c["optimizer"], lr(c["suggested_lr"]), lr(c["fastai_lr"]),
                     lr(c["steep_lr"]), lr(c["best_lr"]), metric, c["rank"] or "-",
                     c["status"]])
    m = advice.metric
    ci = f" ± {m['ci']:.2g}" if math.isfinite(m["ci"]) else ""
    if advice.seeds_repeat:  # full batch from the model's own weights: one run, repeated
        ci, seeds = "", "no spread: the seeds repeat one run"
    else:
        seeds = "one seed, no interval" if m["seeds"] == 1 else \
            f"mean of {m['seeds']} seeds" + (", 95% interval" if ci else "")
    # a batch of at least the training set reads all of it every step (stored as full)
    full = full_batch(batch, len(task.x_train))
    lines = [
        f"{task.name}: {_count(len(names), 'candidate')}, {_count(args.steps, 'step')}, batch "
        f"{'full' if full else batch}",
        f"recommendation: {advice.optimizer}, lr={advice.hparams['lr']:.3g}: validation "
        f"{m['name']} {m['value']:.4g}{ci} ({seeds}; on the set that selected it, so optimistic)",
        advice.statement,
        # the answer's whole cost (trained now and read back) against a grid's
        f"compute: {advice.compute} "
        f"({'all told, ' if advice.steps_read_back else ''}"
        f"{(advice.steps_spent + advice.steps_read_back) / grid:.0%} of a grid of "
        f"{_count(len(names), 'optimizer')} x 13 rates x {_count(args.seeds, 'seed')} x "
        f"{_count(args.steps, 'step')}, {grid:,}"
        + (", weighted by each optimizer's work per step)" if weight != len(names) else ")"),
        "",
        text_table(["optimizer", "range test", "fastai", "steepest", "tournament lr",
                    f"validation {m['name']}", "rank", "status"], rows),
        "range test: our rule, fastai's valley and the steepest slope on the same curve "
        "(see optimlab.bench.advisor)",
        # refused before training (its error says why), or every run of it raised
        *[f"{c['optimizer']}: cannot run here"
          + (", every run raised" if getattr(advice.range_tests.get(c["optimizer"]), "lrs", None)
             else "")
          + f": {quoted_error(c['error'])}" for c in advice.candidates if c.get("error")],
        "",
        advice.code,
        "",
        f"stored in {_masked(db)} (sweeps {', '.join(map(str, advice.sweep_ids))}; the answer: sweep "
        f"{advice.answer_sweep_id})",
    ]
    from .bench.advice_report import advice_json, write_advice_report

    try:
        written = write_advice_report(advice, store, out)
        if json_path is not None:
            # whole or not at all: a full disk or an interrupt keeps the file that was there
            _write_text(json_path, advice_json(advice))
    except BrokenPipeError:  # the output's reader has gone, not the folder (see main)
        raise
    except OSError as err:
        print(_printable("\n".join(lines)))  # the answer, which is not lost with the files
        where = "" if err.filename is None else f" to {err.filename}"
        raise CLIError(f"cannot write the advice{where}: {err.strerror or _one_line(err)} (the "
                       "same command again reads the answer back from the store)") from None
    lines += [f"wrote {_path_shown(path)}" for path in written.values()]
    if json_path is not None:
        lines.append(f"wrote {_path_shown(json_path)}")
    if json_to_stdout:
        print(_printable("\n".join(lines)), flush=True)  # to stderr (run_advise)
        return advice_json(advice)
    return "\n".join(lines)


def _one_by_one(task, model: str | None, sequential: bool = False) -> bool:
    """Whether ``task``'s model trains one run at a time: asked for (``sequential``), or
    because the population engine cannot batch it
    (:func:`optimlab.bench.trainer.population_refusal`), said on stderr once. Either way a
    model no engine can train (:func:`optimlab.bench.trainer.check_model`: it fails on two
    examples, or its output does not fit the data) is a CLIError first, so no sweep of runs
    that all fail with it is stored."""
    from .bench.trainer import check_model, population_refusal

    try:
        if sequential:
            check_model(task, model)
            return True
        refusal = population_refusal(task, model)  # checks the model first
    except ValueError as err:
        raise CLIError(" ".join(str(err).split())) from None
    if refusal is not None:  # BatchNorm, dropout, a module vmap cannot batch
        why = refusal if len(refusal) <= 160 else refusal[:160] + "..."
        print(f"optimlab: the population engine cannot batch this model ({why}); its runs "
              "train one by one (the sequential engine)", file=sys.stderr)
    return refusal is not None


def _batch(text: str) -> int | None:
    """``--batch-size``: ``full`` (None) or a whole number from 1."""
    if text.strip().lower() == "full":
        return None
    try:
        return _whole(1)(text)
    except argparse.ArgumentTypeError as err:
        raise CLIError(f"--batch-size takes 'full' or a whole number from 1, got "
                       f"{_shown(text)}") from err


def _live() -> bool:
    """Whether progress is shown: stderr is a terminal and ``CI`` is not on (unset, empty,
    ``0``, ``false``, ``no`` or ``off``: :func:`optimlab._env.flag`; any other value, as CI
    services set it, ``true`` or ``woodpecker``, is on)."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced, or closed
        tty = False
    return tty and not _env.flag("CI", False, warn=False)


def _say(text: str) -> None:
    """A progress note on stderr, only when progress is shown (see :func:`_live`)."""
    if _live():
        print(text, file=sys.stderr, flush=True)


class _progress:
    """A tqdm progress bar on stderr: training steps done, steps/s, time left, and runs done
    (silent when stderr is not a terminal or ``CI`` is on: :func:`_live`).

    ``groups`` lists, in training order, each training call's steps and the runs that end
    with it: ``(steps, runs of the optimizer)`` for a population, ``(steps, 1)`` per run
    for the sequential engine. The object ``with`` gives is the callback, ticking one step
    at a time; :meth:`extend` adds calls nobody planned (a batched group that raised,
    trained again one run at a time). Steps past the planned ones (a grid extended past
    its edge) grow the total and say so. ``delay`` (seconds) keeps the bar hidden for work
    that ends sooner.
    """

    def __init__(self, desc: str, groups: Sequence[tuple[int, int]], delay: float = 0.0) -> None:
        from tqdm import tqdm

        self.groups = [(int(ticks), int(runs)) for ticks, runs in groups]
        self.runs = sum(runs for _, runs in self.groups)
        self.steps = 0
        self.done = 0  # runs ended
        self.index = 0  # the group training now
        self.edge = self.groups[0][0] if self.groups else 0  # steps at which it ends
        self.note = ""  # what was added to the plan (extend)
        self.bar = tqdm(total=sum(ticks for ticks, _ in self.groups), desc=desc, unit="step",
                        disable=not _live(), file=sys.stderr, dynamic_ncols=True,
                        postfix=self.postfix(), delay=delay)

    def postfix(self) -> str:
        return f"runs done {self.done}/{self.runs}" + (f"; {self.note}" if self.note else "")

    def extend(self, groups: Sequence[tuple[int, int]], note: str) -> None:
        """Add training calls to the plan, ``(steps, runs)`` as in ``groups``, saying why
        (``note``) beside the runs done: the total, the time left and the run count grow
        with them."""
        added = [(int(ticks), int(runs)) for ticks, runs in groups]
        if self.index >= len(self.groups) and added:  # every planned call ended: start anew
            self.edge = self.steps + added[0][0]
        self.groups += added
        self.runs += sum(runs for _, runs in added)
        self.bar.total += sum(ticks for ticks, _ in added)
        self.note = note
        self.bar.set_postfix_str(self.postfix(), refresh=True)

    def tick(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > self.bar.total:  # unplanned steps: the grid was extended
            self.bar.total = self.steps
            self.bar.set_postfix_str(f"{self.postfix()}; extending the grid past an edge",
                                     refresh=False)
        ended = False
        while self.index < len(self.groups) and self.steps >= self.edge:
            self.done += self.groups[self.index][1]
            self.index += 1
            if self.index < len(self.groups):
                self.edge += self.groups[self.index][0]
            ended = True
        if ended:
            self.bar.set_postfix_str(self.postfix(), refresh=False)
        self.bar.update(n)

    __call__ = tick

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


TOUR_DIR = "optimlab-tour"
TOUR_DB = os.path.join(TOUR_DIR, "tour-runs.db")
"""Where ``optimlab tour`` (and so ``make demo``) keeps its sweeps, from the folder it ran in."""

_LIST_DB_HELP = (f"run store (default {DEFAULT_DB}; when there is none here but there is "
                 f"{TOUR_DB}, left by `optimlab tour` or `make demo`, that one, with a note")
_READ_DB_HELP = (_LIST_DB_HELP + "; a sweep that only the tour's store holds is an error naming "
                 "the --db to add)")
_LIST_DB_HELP += ")"


def _read_store(args: argparse.Namespace):
    """The store ``runs``, ``report`` and ``profile`` read, and its path: ``--db``, or
    :data:`DEFAULT_DB`; without ``--db``, when :data:`DEFAULT_DB` does not exist but the
    tour's store :data:`TOUR_DB` does, the tour's (a note on stderr says so)."""
    db = args.db
    if db is None:
        db = DEFAULT_DB
        if not os.path.exists(DEFAULT_DB) and os.path.isfile(TOUR_DB):
            print(f"optimlab: note: no {DEFAULT_DB} here; reading the tour's sweeps in "
                  f"{TOUR_DB} (pass --db to choose a store)", file=sys.stderr)
            db = TOUR_DB
    return _open_store(db, must_exist=True), db


def _tour_has(sweep_id: int) -> bool:
    """Whether the tour's store exists here and holds ``sweep_id`` (False when unreadable)."""
    if not os.path.isfile(TOUR_DB):
        return False
    try:
        from .bench.store import RunStore

        store = RunStore(TOUR_DB, readonly=True)
        try:
            store.sweep(sweep_id)
        finally:
            store.close()
    except Exception:
        return False
    return True


def run_runs(args: argparse.Namespace) -> str:
    """``optimlab runs``: the stored sweeps as a table, each sweep's optimizers cut to
    :data:`RUNS_OPTIMIZERS_WIDTH` characters (``sgd,adam,... (+39)``)."""
    from .bench.report import list_sweeps

    store, _ = _read_store(args)
    return list_sweeps(store, optimizers_width=RUNS_OPTIMIZERS_WIDTH)


#: the widest optimizers cell of ``optimlab runs`` (42 optimizers took 466 characters)
RUNS_OPTIMIZERS_WIDTH = 64


def _sweep(store, sweep_id: int, db: str, args: argparse.Namespace) -> None:
    try:
        store.sweep(sweep_id)
    except KeyError:
        if args.db is None and db != TOUR_DB and _tour_has(sweep_id):
            raise CLIError(f"no sweep {sweep_id} in {_masked(db)}; the tour's sweeps are in {TOUR_DB}: "
                           f"add --db {TOUR_DB}") from None
        raise CLIError(f"no sweep {sweep_id} in {_masked(db)} (see `optimlab runs`)") from None


def run_report(args: argparse.Namespace) -> str:
    """``optimlab report``: rebuild a stored sweep's report in a folder."""
    from .bench.report import read_sweep, summary_table, sweep_heading, write_report

    out = out_folder(args.out, "--out", "the report")
    store, db = _read_store(args)
    _sweep(store, args.sweep_id, db, args)
    # the files and the table printed from one state of the store, though a sweep writes it
    with store.snapshot():
        try:
            written = write_report(store, args.sweep_id, out)
        except BrokenPipeError:  # the output's reader has gone, not the folder (see main)
            raise
        except OSError as err:
            raise CLIError(f"cannot write the report to {out}: {err.strerror or err}") from None
        sweep = read_sweep(store, args.sweep_id)  # once, for the heading and the table
        heading = f"sweep {args.sweep_id} in {_masked(db)}: " + sweep_heading(sweep)
        table = summary_table(sweep)
    return "\n".join([heading, table] + [f"wrote {_path_shown(path)}" for path in written.values()])


def run_profile(args: argparse.Namespace) -> str:
    """``optimlab profile``: the AlgoPerf performance profile of stored sweeps."""
    from .bench.profile import build_profile

    out = None if args.out is None else out_file(args.out, "--out", "profile",
                                                 _figure_suffixes())
    store, db = _read_store(args)
    for sweep_id in args.sweep_ids:
        _sweep(store, sweep_id, db, args)
    profile = build_profile(store, args.sweep_ids)
    text = profile.table()
    if out is not None:
        from .landscapes.plots import plt_close

        fig = profile.plot()
        try:  # whole or not at all: a failed save keeps the previous profile
            _save_picture(fig, out, dpi=110, bbox_inches="tight")
        except BrokenPipeError:  # the output's reader has gone, not the folder (see main)
            raise
        except OSError as err:
            print(_printable(text))  # the profile's table all the same
            raise CLIError(f"cannot write {out}: {err.strerror or err}") from None
        finally:
            plt_close(fig)
        text += f"\nwrote {_path_shown(out)}"
    return text


def run_tour(args: argparse.Namespace) -> str:
    """``optimlab tour``: the tutorials' story as one HTML page in a folder."""
    from .bench.tour import run_tour as tour

    _imports_done()
    out = out_folder(args.out, "--out", "the tour")
    try:
        page = tour(out, quick=args.quick, say=lambda text: print(text, file=sys.stderr))
    except BrokenPipeError:  # its progress's reader has gone (`2>&1 | head`), not the folder
        raise
    except KeyboardInterrupt as err:  # what was kept, and what the next run does
        kept = "the previous tour there is as it was" if (Path(out) / "tour.html").exists() \
            else "nothing was written there"
        raise type(err)(f"the tour was not completed: {kept} ({_path_shown(out)}); its work "
                        "so far is dropped, and the next `optimlab tour` starts over") from None
    except OSError as err:
        raise CLIError(f"cannot write the tour to {out}: {err.strerror or err}") from None
    return f"wrote {_path_shown(page)}"


DOCS_DIR = "optimlab-docs"


def run_docs(args: argparse.Namespace) -> str:
    """``optimlab docs``: the optimizer reference, one static HTML page per algorithm."""
    from .optim.catalog import TABLE
    from .web.docs import write_docs

    out = out_folder(args.out, "--out", "the reference")
    try:
        index = write_docs(out)
    except BrokenPipeError:  # the output's reader has gone, not the folder (see main)
        raise
    except OSError as err:
        raise CLIError(f"cannot write the reference to {out}: {err.strerror or err}") from None
    return f"wrote {_path_shown(index)} and a page for each of the {len(TABLE)} optimizers"


def run_serve(args: argparse.Namespace) -> str:
    """``optimlab serve``: the playground on uvicorn, until interrupted. A port taken on any
    address of ``--host`` (``localhost``: 127.0.0.1 and ::1) is one error line."""
    import errno
    import socket

    named = args.db is not None  # a store named is said missing; the default one need not be
    if args.db is None:  # as runs, report and profile read it: the tour's, where only it is here
        args.db = DEFAULT_DB
        if not os.path.exists(DEFAULT_DB) and os.path.isfile(TOUR_DB):
            print(f"optimlab: note: no {DEFAULT_DB} here; showing the tour's sweeps in "
                  f"{TOUR_DB} (pass --db to choose a store)", file=sys.stderr)
            args.db = TOUR_DB
    if "://" in args.db:  # the Runs tab reads a store file; a URL became a bogus path
        raise CLIError(f"optimlab serve reads a run store file, not a URL "
                       f"({_masked(args.db)}); pass the .db file (for a server store, "
                       "`optimlab runs` and `optimlab report` read it)")
    db = Path(db_path(args.db, verb="read"))
    if db.exists():  # a store that cannot be read is an error now, not on the Runs tab
        import sqlite3

        from .bench.store import RunStore, StoreError

        try:
            RunStore(db, readonly=True).close()
        except (OSError, StoreError, sqlite3.Error) as err:
            raise CLIError(f"cannot read the run store {_masked(db)}: {err}") from None
    try:
        from .web.server import serve
    except ImportError as err:
        raise CLIError(f"optimlab serve needs the web extra: pip install 'optimlab[web]' "
                       f"({err})") from None
    for folder in args.slices or []:  # the defaults may not exist yet; a folder given must
        if not Path(folder).is_dir():
            raise CLIError(f"--slices {folder}: " + ("not a folder" if Path(folder).exists()
                                                     else "no such folder"))
    try:  # say so in one line rather than in uvicorn's traceback
        # what uvicorn binds: IPv6 where the host has a colon (::1), as the server listens
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.create_server((args.host.strip("[]"), args.port), family=family) as probe:
            port = probe.getsockname()[1]  # --port 0: the free port the system picked
            # every other address of the name (localhost: [::1] too, which uvicorn does not
            # bind): a server already there would get the browser's requests for this URL
            for family, kind, proto, _, address in socket.getaddrinfo(
                    args.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
                if address[0] == probe.getsockname()[0] and family == probe.family:
                    continue
                with socket.socket(family, kind, proto) as other:
                    if family == socket.AF_INET6:
                        other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        other.bind(address)
                        other.listen()
                    except OSError as err:  # (an address this machine lacks: nobody is there)
                        if err.errno == errno.EADDRINUSE:
                            shown = f"[{address[0]}]" if family == socket.AF_INET6 else address[0]
                            raise CLIError(f"cannot listen on {args.host}:{port}: {shown}:{port}, "
                                           f"an address of {args.host}, is already in use (a "
                                           f"browser may reach that server for this URL)") from None
    except (OSError, OverflowError, UnicodeError, TypeError) as err:  # TypeError: an odd host name
        raise CLIError(f"cannot listen on {args.host}:{args.port}: "
                       f"{getattr(err, 'strerror', None) or err}") from None
    folders = args.slices or [SLICE_DIR, TOUR_DIR]
    if named and not db.exists():  # a mistyped --db served an empty Runs tab without a word
        print(f"optimlab: note: no run store at {db} yet; the Runs tab is empty until a "
              "sweep writes it (`optimlab bench ... --db` that file)", file=sys.stderr)
    from .web.server import browser_url

    # the address a browser opens: bracketed where it is IPv6 (http://[::1]:8000/)
    print(f"optimlab playground: {browser_url(args.host, port)} (run store {db.absolute()}; "
          f"slices from {', '.join(folders)}; Ctrl-C stops it)", file=sys.stderr)
    serve(host=args.host, port=port, db_path=db, slices=folders)
    stop = _stopped_by()
    if stop is not None:
        # uvicorn shut down on Ctrl-C (or SIGTERM) and swallowed the KeyboardInterrupt that
        # our handler raised when it passed the signal on: exit 130 (143) as every command
        raise stop("playground stopped")
    return "playground stopped"


class _Parser(argparse.ArgumentParser):
    """argparse, reporting a malformed command line in one line (exit 2), with a pointer to
    ``--help`` in place of the usage block."""

    def error(self, message: str):
        """Print ``<prog>: error: <message>`` as one line and exit with status 2."""
        message = _printable(" ".join(message.split()))
        if len(message) > 600:
            message = message[:597] + "..."
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


_RACE_BOUNDS = (f"Bounds: --steps <= {RACE_MAX_STEPS:,}; --param dim <= {RACE_MAX_DIM:,}; "
                f"(steps + 1) x runs x dim <= {RACE_MAX_VALUES:,} path values (a run is an "
                "optimizer, or with --tune each of its 17 grid points and the 12 rates its "
                "grid's extension may add). --no-limits lifts "
                "them. --out, --surface and --gif take a file, or a folder (an existing one, "
                "or a path ending with /) to write race-LANDSCAPE.png (.gif) or "
                "surface-LANDSCAPE.png in.")
_BENCH_BOUNDS = (f"Bounds: --steps (or --epochs x steps per epoch) <= {BENCH_MAX_STEPS:,}; "
                 f"--lrs <= {BENCH_MAX_LRS:,} points; --seeds <= {BENCH_MAX_SEEDS:,}; "
                 f"optimizers x lrs x seeds <= {BENCH_MAX_MEMBERS:,} runs; runs x "
                 f"evaluations <= {BENCH_MAX_POINTS:,} metric points. --no-limits lifts "
                 "them.")


#: ``--extend``'s help; its numbers are :data:`optimlab.bench.sweep.MAX_EXTENSIONS` and
#: :data:`~optimlab.bench.sweep.LR_BOUNDS` (that module imports torch, which building the
#: parser must not: ``tests/test_cli.py`` holds the two to each other)
_EXTEND_HELP = ("with a given --lrs grid, train two more rates past the edge an optimizer's best "
                "rate sits on, up to 3 times, as --lrs auto does, never below 1e-07 nor above "
                "100 (without it the edge is flagged in the tables). --extend is part of the "
                "sweep's identity: the command of a stored sweep plus --extend is a new sweep, "
                "which trains the whole grid again")


def build_parser() -> argparse.ArgumentParser:
    """The ``optimlab`` argument parser, one subparser per command."""
    from . import __version__

    parser = _Parser(prog="optimlab", description=(
        "Gradient-based optimizers you can use, see, trust and choose."))
    parser.add_argument("--version", action="version", version=f"optimlab {__version__}",
                        help="print optimlab's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do (`optimlab COMMAND --help` for its options)")

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        # `optimlab NAME --help` opens with the line `optimlab --help` gives the command
        text = kwargs["help"]
        kwargs.setdefault("description", text[:1].upper() + text[1:] + ".")
        return sub.add_parser(name, **kwargs)

    p = command("list", help="list every optimizer in the catalog")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p = command("explain", help="explain one optimizer")
    p.add_argument("name", metavar="NAME",
                   help="a registry name, e.g. adam or momentum (see `optimlab list`)")
    p = command("compare", help="compare optimizers side by side")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="registry names, e.g. sgd adagrad rmsprop adam")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    command("landscapes", help="list the test functions")
    p = command("race", help="race optimizers on a landscape", epilog=_RACE_BOUNDS)
    p.add_argument("landscape", metavar="LANDSCAPE",
                   help="a test function, e.g. rosenbrock (see `optimlab landscapes`), or one of "
                        "yours: package.module:function returning an optimlab.landscapes.Landscape "
                        "(--param pairs are its keyword arguments)")
    p.add_argument("--optimizers", required=True, help="comma-separated registry names")
    p.add_argument("--lr", action="append", default=[], metavar="NAME=LR",
                   help="learning rate (> 0) of one optimizer (repeat, or comma-separate; "
                        "default: each optimizer's own default rate)")
    p.add_argument("--steps", type=_whole(1), default=500,
                   help=f"steps (default 500, at most {RACE_MAX_STEPS:,})")
    p.add_argument("--start", help="start point, e.g. --start=-1.5,2 (with '=' where it begins "
                   "with a minus sign; default: the landscape's)")
    p.add_argument("--noise", type=_finite(0.0), default=0.0,
                   help="gradient noise std (>= 0; default 0, exact gradients)")
    p.add_argument("--seed", type=_whole(0, SEED_MAX), default=0,
                   help=f"seed of the noise (0 to {SEED_MAX}; default 0)")
    p.add_argument("--tune", action="store_true", help="tune each lr on a log grid first")
    p.add_argument("--hp", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help=_HP_HELP + " (repeatable; the rate is --lr's or --tune's)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="landscape parameter, e.g. kappa=100 for quadratic")
    p.add_argument("--out", help="write the race plot (PNG/SVG/PDF; a folder: race-LANDSCAPE.png)")
    p.add_argument("--gif", help="write an animation (GIF, and MP4 when ffmpeg exists)")
    p.add_argument("--surface", help="write a 3-D surface plot with the paths")
    p.add_argument("--no-limits", action="store_true", help=_NO_LIMITS_HELP)
    p = command("demo", help="run the tutorials' exhibits (all of them, or one)",
                       description="Run every exhibit of the tutorials, printing each one's "
                       f"table and writing its picture into --out (default {DEMO_DIR}/), or "
                       "run the one NAME (its picture only with --out). --list names them.")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="the exhibit to run, e.g. effective-lr (default: every exhibit)")
    p.add_argument("--out", help=f"folder for the PNGs (created; default {DEMO_DIR}/ when "
                                 "running every exhibit, none for one)")
    p.add_argument("--list", action="store_true", help="list the exhibits' names and exit")
    p = command("bench", help="compare optimizers on a training task (a stored sweep)",
                       epilog=_BENCH_BOUNDS)
    p.add_argument("task", type=_text("a task name, or package.module:function"),
                   metavar="TASK",
                   help=_TASK_HELP)
    p.add_argument("--optimizers", required=True, help="comma-separated registry names")
    p.add_argument("--model", help="the task's model (default: its default model)")
    p.add_argument("--lrs", default="auto",
                   help=f"auto (the default: 7 rates per optimizer on a log grid from its "
                        f"default rate / 32 to x10, extended past an edge the best rate sits "
                        f"on), LOW:HIGH:COUNT (log grid) or a comma-separated list (at most "
                        f"{BENCH_MAX_LRS:,} rates)")
    p.add_argument("--hp", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help=_HP_HELP + " (repeatable; not lr, which --lrs sweeps)")
    p.add_argument("--extend", action="store_true", help=_EXTEND_HELP)
    p.add_argument("--seeds", type=_whole(1), default=3,
                   help=f"seeds per learning rate (default 3, at most {BENCH_MAX_SEEDS:,})")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=_whole(1), help="training budget in epochs")
    budget.add_argument("--steps", type=_whole(1), default=1000,
                        help=f"training budget in steps (default 1000, at most "
                             f"{BENCH_MAX_STEPS:,})")
    p.add_argument("--batch-size", default="100",
                   help="mini-batch size, 1 (SGD) or 'full' (default 100)")
    p.add_argument("--schedule", default="constant",
                   choices=["constant", "step", "cosine", "onecycle", "warmup-cosine"],
                   help="learning-rate schedule (default constant): step divides the rate by 10 at 50%% and "
                        "75%% of the steps; cosine decays to 0; onecycle warms up over 30%% then "
                        "decays; warmup-cosine warms up over a twentieth, then decays")
    p.add_argument("--clip", type=_finite(0.0, strictly=True),
                   help="clip each run's gradient norm to this value (> 0)")
    p.add_argument("--average", choices=["ema", "swa"],
                   help="evaluate an EMA (decay 0.99) or SWA (last 25%%) of the weights")
    p.add_argument("--eval-every", type=_whole(1),
                   help="evaluate every N steps (default: steps // 20, about 20 evaluations; "
                        "every step for runs under 40 steps)")
    p.add_argument("--target", type=_finite(), help="test metric to reach, for time-to-target")
    p.add_argument("--sequential", action="store_true", help="train runs one by one")
    p.add_argument("--data-dir", type=_text("a folder"), help=_DATA_DIR_HELP)
    p.add_argument("--db", default=DEFAULT_DB,
                   help=f"run store: a SQLite file (default {DEFAULT_DB}) or a SQLAlchemy URL, "
                        "e.g. postgresql://user@host/optimlab for a store several machines share")
    p.add_argument("--out", help="folder for the report (curves, sensitivity, HTML, CSV)")
    p.add_argument("--resume", action="store_true",
                   help="finish a killed sweep of this same configuration (refused if none)")
    p.add_argument("--name", type=_label,
                   help=f"a label for a new sweep, shown by `optimlab runs`, `optimlab report` and "
                        f"the playground (one line, at most {SWEEP_NAME_MAX} characters; not part "
                        "of the sweep's identity: a sweep found again keeps the name it was "
                        "given)")
    _add_executor_arguments(p)
    p.add_argument("--recalibrate", action="store_true",
                   help="measure the optimizers' step costs again (they are measured once "
                   "per machine and model, cached, and turn steps to --target into seconds)")
    p.add_argument("--no-limits", action="store_true", help=_NO_LIMITS_HELP)
    p = command("slice", help="several optimizers' paths on one plane of a real "
                                     "network's loss landscape, with sharpness",
                       epilog=f"--steps <= {SLICE_MAX_STEPS:,}, --grid <= {SLICE_MAX_GRID}; "
                              "--no-limits lifts them.")
    p.add_argument("task", type=_text("a task name, or package.module:function"),
                   metavar="TASK", help=_TASK_HELP)
    p.add_argument("--model", help="the task's model (default: its default model)")
    p.add_argument("--optimizers",
                   help="comma-separated registry names (default sgd,momentum,adam,sam); "
                        "sgd, momentum, adam and sam train at the slice's preset rates "
                        "(0.1, 0.02 with momentum 0.9, 0.003, 0.1 with rho 0.05), others at "
                        "their defaults, unless --lr says otherwise")
    p.add_argument("--lr", action="append", default=[], metavar="NAME=LR",
                   help="an optimizer's learning rate, e.g. adam=0.001 (repeatable)")
    p.add_argument("--steps", type=_whole(1), default=1000,
                   help="training steps of every optimizer (default 1000)")
    p.add_argument("--batch-size", default="100", help="mini-batch size or 'full' (default 100)")
    p.add_argument("--seed", type=_whole(0), default=0,
                   help="the shared initialisation and batches (default 0)")
    p.add_argument("--grid", type=_whole(2), default=41,
                   help="grid points per axis, at least 2 (default 41)")
    p.add_argument("--plane", choices=["endpoints", "random"], default="endpoints",
                   help="through the initialisation and two endpoints (default), or "
                        "filter-normalised random directions (Li et al. 2018)")
    p.add_argument("--on", choices=["train", "test"], default="train",
                   help="the grid's loss over training (default) or test examples")
    p.add_argument("--data-dir", type=_text("a folder"), help=_DATA_DIR_HELP)
    p.add_argument("--out", default=SLICE_DIR,
                   help=f"folder for slice.png, interpolation.png, slice.json "
                        f"(default {SLICE_DIR}/)")
    p.add_argument("--no-limits", action="store_true", help=_NO_LIMITS_HELP)
    p = command("advise", help="which optimizer and learning rate for a task, with "
                                      "evidence (range tests, a tournament, a report)",
                       epilog=f"--steps <= {ADVISE_MAX_STEPS:,}; --seeds <= {ADVISE_MAX_SEEDS:,}; "
                              f"--no-limits lifts them.")
    p.add_argument("task", type=_text("a task name, or package.module:function"),
                   metavar="TASK",
                   help=_TASK_HELP)
    p.add_argument("--optimizers",
                   help="comma-separated candidates (default momentum,adam,adamw,lion,"
                        "rmsprop,adagrad; adam, the reference, is always added)")
    p.add_argument("--model", help="the task's model (default: its default model)")
    p.add_argument("--steps", type=_whole(1), default=300,
                   help="the training you plan, in steps: the advice is for this horizon "
                        "(default 300)")
    p.add_argument("--batch-size", default="100",
                   help="the mini-batch you plan: a whole number or 'full' (default 100)")
    p.add_argument("--budget",
                   help="what the advisor may spend: member-steps summed over every run "
                        "(e.g. 20000) or seconds (e.g. 90s); default: its full plan")
    p.add_argument("--seeds", type=_whole(1), default=3,
                   help="seeds of the final rung (default 3)")
    p.add_argument("--json", help="write the answer as JSON to this file (- for standard "
                   "output, the rest of the output then on standard error)")
    _add_executor_arguments(p)
    p.add_argument("--out", default=ADVICE_DIR,
                   help=f"folder for the HTML report and its pictures (default {ADVICE_DIR})")
    p.add_argument("--db", default=DEFAULT_DB, help=f"run store (default {DEFAULT_DB})")
    p.add_argument("--data-dir", type=_text("a folder"), help=_DATA_DIR_HELP)
    p.add_argument("--no-limits", action="store_true", help=_NO_LIMITS_HELP)
    p = command("runs", help="list the stored sweeps")
    p.add_argument("--db", help=_LIST_DB_HELP)
    p = command("tour", help="the tutorials' story end to end, as one HTML page")
    p.add_argument("--out", default=TOUR_DIR, help=f"folder (default {TOUR_DIR})")
    p.add_argument("--quick", action="store_true", help="tiny budgets (about 20 s on 2 cores, for a check)")
    p = command("docs", help="the optimizer reference: a static HTML page per optimizer "
                                    "(update rule, arguments, what it can do), offline")
    p.add_argument("--out", default=DOCS_DIR, help=f"folder (default {DOCS_DIR})")
    p = command("profile", help="AlgoPerf performance profile across sweeps")
    p.add_argument("sweep_ids", nargs="+", type=_whole(1), metavar="SWEEP_ID",
                   help="sweeps of one store with a --target each (see `optimlab runs`)")
    p.add_argument("--out", help="write the profile plot (PNG; a folder: profile.png)")
    p.add_argument("--db", help=_READ_DB_HELP)
    p = command("serve", help="the playground: race optimizers in a local web page")
    p.add_argument("--host", default="127.0.0.1", type=_text("an address"),
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_whole(0, 65535), default=8000, help="port (default 8000)")
    p.add_argument("--db", help=f"run store shown on the Runs tab (default {DEFAULT_DB}; when "
                                f"there is none here but there is {TOUR_DB}, left by "
                                f"`optimlab tour` or `make demo`, that one, with a note)")
    p.add_argument("--slices", action="append", type=_text("a folder"), metavar="FOLDER",
                   help=f"folder whose slice.json files (optimlab slice --out) the Slices "
                        f"tab shows; repeatable (default {SLICE_DIR} and the tour's "
                        f"{TOUR_DIR})")
    p = command("report", help="rebuild a sweep's report")
    p.add_argument("sweep_id", type=_whole(1), metavar="SWEEP_ID", help="the sweep (see `optimlab runs`)")
    p.add_argument("--out", required=True, help="folder for the report")
    p.add_argument("--db", help=_READ_DB_HELP)
    parser.commands = sub.choices  # each command's parser, by name (main's errors)
    return parser


#: the module each optional dependency brings -> its extra (pyproject.toml)
_EXTRA_OF = {"tqdm": "bench", "pandas": "bench", "sklearn": "bench", "mnist1d": "bench",
             "scipy": "bench", "matplotlib": "lab", "fastapi": "web", "uvicorn": "web",
             "plotly": "web", "pydantic": "web", "ray": "ray", "sqlalchemy": "postgres",
             "psycopg": "postgres"}
#: what a long command needs from the start, checked before any work (a tour stopped for
#: want of matplotlib after its first race, a sweep wrote its report's pictures last)
_NEEDS = {"bench": ("tqdm", "pandas", "matplotlib"), "advise": ("tqdm", "pandas", "matplotlib"),
          "slice": ("tqdm", "pandas", "matplotlib"),
          "tour": ("tqdm", "pandas", "matplotlib", "sklearn", "mnist1d")}


def _missing_extra(command: str, module: str) -> str:
    """The one-line error for a missing optional ``module``, naming the extra to install."""
    extra = _EXTRA_OF.get(module.partition(".")[0])
    where = f"pip install 'optimlab[{extra}]'" if extra else f"pip install {module}"
    return f"optimlab {command} needs {module.partition('.')[0]}: {where}"


def _check_needs(command: str) -> None:
    """CLIError, before any work, where ``command`` lacks a module it will need."""
    import importlib.util

    for module in _NEEDS.get(command, ()):
        if importlib.util.find_spec(module) is None:
            raise CLIError(_missing_extra(command, module))


#: the commands that train (or race): where the machine is busy, torch's OpenMP threads
#: wait passively in them (:func:`optimlab._env.wait_passively_when_busy`)
TRAINING_COMMANDS = frozenset({"race", "demo", "bench", "advise", "slice", "tour"})


def _run(args: argparse.Namespace) -> str:
    _check_needs(args.command)
    if args.command in TRAINING_COMMANDS:
        _env.wait_passively_when_busy()
    if args.command == "list":
        return run_list(args)
    if args.command == "explain":
        return run_explain(args)
    if args.command == "compare":
        return run_compare(args)
    if args.command == "landscapes":
        return run_landscapes(args)
    if args.command == "race":
        return run_race(args)
    if args.command == "demo":
        return run_demo(args)
    if args.command == "bench":
        return run_bench(args)
    if args.command == "advise":
        return run_advise(args)
    if args.command == "slice":
        return run_slice(args)
    if args.command == "runs":
        return run_runs(args)
    if args.command == "report":
        return run_report(args)
    if args.command == "tour":
        return run_tour(args)
    if args.command == "docs":
        return run_docs(args)
    if args.command == "profile":
        return run_profile(args)
    if args.command == "serve":
        return run_serve(args)
    raise CLIError(f"unknown command {args.command!r}")


def _path_shown(path: object) -> str:
    """A path for a "wrote ..." line: as it is, or quoted with escapes where it holds a line
    break or another character that would not print (``'a\\nb.png'``), so that each file
    takes one line."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _printable(text: str) -> str:
    """``text`` with what no terminal can encode (the surrogates of undecodable bytes in a
    path or argument) and what a terminal acts on (control characters, from a run store's
    text, say: :func:`~optimlab._table.visible`) written as escapes, so printing it cannot
    fail or move the cursor."""
    return visible(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def _one_line(err: BaseException, limit: int = 600) -> str:
    """An exception's message as one printable line of at most ``limit`` characters.

    Line breaks and tabs (with the indentation around them) become one space; other spaces
    are kept, so a path with two spaces in its name is shown as it is. A message too long is
    cut in the middle, where a long path sits, so its start and its reason (at the end)
    both show."""
    text = re.sub(r"[ ]*[\r\n\t\v\f][\s]*", " ", str(err)).strip() or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text += f": {err.filename}"
    text = _printable(text)
    if len(text) <= limit:
        return text
    head = (limit - 5) // 2
    return text[:head] + " ... " + text[len(text) - (limit - 5 - head):]


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a bad command line or a bad file can raise: one line, exit 2."""
    errors: list[type[BaseException]] = [CLIError, ValueError, OverflowError, OSError,
                                         ImportError]
    # an error of a module that was never imported cannot have been raised: asking only
    # the loaded ones keeps `optimlab explain adamm` from importing sqlite3 and the store
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None:
        errors.append(sqlite3.Error)
    store = sys.modules.get("optimlab.bench.store")
    if store is not None:
        errors.append(store.StoreError)
    return tuple(errors)


def _more_names(command: argparse.ArgumentParser | None, args: argparse.Namespace,
                extra: list[str]) -> list[str]:
    """``extra`` less the names that belong to ``command``'s list of names (``compare``'s
    optimizers, ``profile``'s sweep ids) but came after an option (``compare adam --markdown
    sgd``): argparse ends a ``nargs="+"`` positional at the first option and leaves the rest
    unrecognized. Each is read as the list reads its names (its ``type``); what is left is
    returned, for the command's own error."""
    if command is None or not extra or any(token.startswith("-") for token in extra):
        return extra
    lists = [action for action in command._actions  # argparse has no public list of them
             if not action.option_strings and action.nargs in ("+", "*")]
    if len(lists) != 1:
        return extra
    (names,) = lists
    convert = names.type or str
    try:
        more = [convert(token) for token in extra]
    except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
        command.error(f"argument {names.metavar}: {err}")
    setattr(args, names.dest, [*getattr(args, names.dest), *more])
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optimlab`` command; returns the exit code.

    Malformed arguments return 2 (argparse's checks, one line), as do errors in what they
    ask for (an unknown optimizer, a bound passed, an unwritable path, a
    damaged run store): each prints one ``optimlab: error: ...`` line on stderr. Anything
    else is an internal error: one line and exit 1 (``OPTIMLAB_DEBUG=1`` re-raises it,
    traceback and all). Ctrl-C exits 130 (``optimlab: interrupted``, and for a sweep or
    ``advise`` what it kept and how to go on); SIGTERM stops a command alike, exit 143
    (``optimlab: terminated``); a second Ctrl-C or SIGTERM does not cut the cleanup short
    (:class:`_signals_stop`). Output whose reader has gone (``optimlab demo | head -1``)
    ends the command quietly with 141, as a shell reports a process killed by SIGPIPE; a
    standard output closed from the start (``optimlab list >&-``) is the console script's
    error (:func:`entry`), exit 2, before any work: its output would be lost while the
    command says it succeeded (a program calling ``main`` without a ``sys.stdout``, under
    ``pythonw``, runs the command: its files are what it asked for).
    """
    with _signals_stop():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    """:func:`main`'s work, its signal handlers in place."""
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        extra = _more_names(parser.commands.get(args.command), args, extra)
        if extra:  # the command's own options are in its --help, not the top one's
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as done:  # --help (0), or a malformed command line (2), already printed
        try:  # argparse drops a write that fails: --help piped into `head` fails on this flush
            sys.stdout.flush()
        except BrokenPipeError:
            _drop_broken_output()
            return EXIT_BROKEN_PIPE
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    try:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
                print(_printable(_run(args)))
                # the output is sent now, so that a reader gone shows here, not in the
                # interpreter's last flush, after the exit status was chosen
                sys.stdout.flush()
        finally:  # an interrupt while they close is the command's, reported below
            _close_stores()
    except BrokenPipeError:  # output piped into `head` and the like: its reader has gone
        _drop_broken_output()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as err:
        # SIGTERM's, though Ray's wait raised it again as a plain KeyboardInterrupt
        terminated = isinstance(err, _Terminated) or _FIRST_STOP is _Terminated
        said = _one_line(err) if str(err) else ""
        _tell(f"optimlab: {'terminated' if terminated else 'interrupted'}"
              + (f": {said}" if said else ""))
        return 143 if terminated else 130
    except Exception as err:
        stop = _stopped_by()
        if stop is not None:
            # the stop came inside a library that turned it into an error of its own
            # (Pillow's C code, interrupted by SIGTERM as it opened a GIF's encoder, raised
            # "initialization failed"): the command was stopped, and says so
            terminated = stop is _Terminated
            _tell(f"optimlab: {'terminated' if terminated else 'interrupted'}")
            return 143 if terminated else 130
        if isinstance(err, ModuleNotFoundError) and err.name \
                and err.name.partition(".")[0] in _EXTRA_OF:  # an extra not installed
            _tell(f"optimlab: error: {_missing_extra(args.command, err.name)}")
            return 2
        if isinstance(err, _user_errors()):
            _tell(f"optimlab: error: {_one_line(err)}")
            return 2
        with warnings.catch_warnings():  # a value it does not know: one warning line
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            debug = _env.flag("OPTIMLAB_DEBUG", False)
        if debug:
            raise
        _tell(f"optimlab: internal error: {type(err).__name__}: {_one_line(err)} (please "
              "report it; OPTIMLAB_DEBUG=1 shows the traceback)")
        return 1
    return 0


#: the exit status of a command whose output's reader went away: 128 + SIGPIPE, what a
#: shell reports for a process SIGPIPE killed (and ``set -o pipefail`` passes on), so that
#: output lost to a closed pipe does not look like success
EXIT_BROKEN_PIPE = 141


def _tell(text: str) -> None:
    """One line on stderr; where stderr's reader has gone too (``2>&1 | head -1``), nothing,
    and the exit status stays the one the line was for. With no stderr at all (a caller's
    ``sys.stderr = None``), nothing: ``print`` would write the line to stdout."""
    if sys.stderr is None:
        return
    try:
        print(text, file=sys.stderr, flush=True)
    except BrokenPipeError:
        _drop_broken_output()


def _drop_broken_output() -> None:
    """After a ``BrokenPipeError``: point stdout and stderr, where their reader has gone
    (what they still hold cannot be flushed), at ``os.devnull``, as Python's documentation
    advises (the signal module's note on SIGPIPE), so that the interpreter's last flush does
    not fail again with a second error and a traceback on the way out (nobody sees them;
    they only change the exit status)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
            continue
        except (AttributeError, ValueError):  # none, or closed
            continue
        except OSError:
            pass
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())
            finally:
                os.close(devnull)
        except (AttributeError, OSError, ValueError):  # no descriptor (a test's stream)
            pass


def _show_warning(previous, message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` while a command runs: a warning of optimlab's own (its
    category is optimlab's: where a warning was raised cannot tell, torch's C++ warnings are
    laid at the Python line that called it) is one ``optimlab: warning:`` line on stderr,
    not Python's two lines of file, line number and source; others as Python shows them
    (``previous``)."""
    if category.__module__.startswith("optimlab"):
        print(f"optimlab: warning: {_one_line(message)}", file=sys.stderr if file is None else file)
    else:  # its text escaped: matplotlib names a missing glyph by the character itself
        previous(visible(str(message)), category, filename, lineno, file, line)


#: set by :func:`entry`: this process is the ``optimlab`` command and ends with it
_COMMAND_PROCESS = False


def _imports_done() -> None:
    """Called by the long commands (``bench``, ``tour``, ``race``, ``demo``, ``advise``,
    ``slice``) once their imports are loaded: in the ``optimlab`` process, every object alive
    now (torch's and the lab's modules: about 170,000) is frozen out of the garbage collector's
    reach, so the full collections a long run triggers do not walk them again. For
    ``optimlab bench mnist1d`` (64 members, 300 steps) the unfrozen heap made 3 full
    collections cost 0.16 s with the population engine and 5 cost 0.39 s with
    ``--sequential``. Where :func:`main` is called by a process that goes on (a test, a
    notebook) nothing is frozen."""
    if _COMMAND_PROCESS:
        gc.freeze()


def entry() -> None:
    """The ``optimlab`` console command and ``python -m optimlab``: :func:`main`, then exit.

    Before the interpreter shuts down, every object still alive is moved out of the garbage
    collector's reach (``gc.freeze``). Shutting down otherwise runs a full collection over
    them, and once torch is imported they are about 170,000: on a 2-core AMD EPYC, exiting
    after ``import torch`` took 0.28-0.65 s over two sets of runs, against 0.09-0.11 s frozen
    (timed from the script's last line to the process's end). Reference counting still
    frees them as the modules are torn down; only reference cycles among them are left to
    the operating system, whose finalizers Python does not promise to run at exit anyway
    (``atexit`` handlers still run). ``faulthandler`` is on where there is a stderr: a fatal
    signal prints the Python stack on it. A standard input or error closed by the caller
    (``2>&-``) is opened on ``os.devnull`` (:func:`_hold_standard_descriptors`), and the
    command runs as usual. After a command stopped by Ctrl-C or SIGTERM, another Ctrl-C
    while the interpreter shuts down (its threads joined, its ``atexit`` callbacks) is
    ignored, as it was while the command cleaned up (:class:`_signals_stop`).
    The long commands also freeze the heap once their imports are loaded
    (:func:`_imports_done`). :func:`main` itself does not freeze: tests and programs call it
    in a process that goes on.
    """
    global _COMMAND_PROCESS
    _COMMAND_PROCESS = True
    _hold_standard_descriptors()
    # a crash in native code (a compiled kernel, torch, Ray's core) prints the Python stack
    # it happened under on stderr, for the bug report, instead of a bare exit by signal;
    # with no stderr (`2>&-`) enable() raised RuntimeError and every command failed silently
    if _has_descriptor(sys.stderr):
        faulthandler.enable()
    if sys.stderr is None:  # print(file=None) would write the notes and errors to stdout
        sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
    # an output encoding without the tables' signs ('±', '—' under LC_ALL=C without UTF-8
    # mode, or PYTHONIOENCODING=ascii) shows them escaped: strict errors failed the command
    # after its files were written, with an error about a codec
    if sys.stdout is not None and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    if sys.stdout is None:  # Python found no file descriptor 1: print() would drop it all
        _tell("optimlab: error: standard output is closed; redirect it to /dev/null to "
              "discard it")
        sys.exit(2)
    _matplotlib_folder()
    code = main()
    gc.freeze()
    sys.exit(code)


def _matplotlib_folder() -> None:
    """Where ``MPLCONFIGDIR`` is not set and matplotlib's configuration folder cannot be
    created or written (a read-only home folder, ``$HOME`` under a file, no home at all),
    set it to a private temporary folder, removed at exit: matplotlib would otherwise say
    so in two warning lines on stderr (``mkdir -p failed``, ``Matplotlib created a
    temporary cache directory``) for any command that draws, and make such a folder itself.
    The folder is the one matplotlib computes (``$XDG_CONFIG_HOME/matplotlib``, else
    ``~/.config/matplotlib`` on Linux and FreeBSD; ``~/.matplotlib`` elsewhere), checked
    with :func:`os.access` on it or the nearest folder above it that exists, without
    importing matplotlib. A configuration folder that works is left alone, even where
    matplotlib's cache folder does not (its warning then stands: the user's settings are
    not lost to a temporary folder)."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    try:
        home: Path | None = Path.home()
    except (RuntimeError, KeyError, OSError):  # no $HOME and no passwd entry
        home = None
    if sys.platform.startswith(("linux", "freebsd")):
        base = os.environ.get("XDG_CONFIG_HOME") or (home and home / ".config")
        folder = None if not base else Path(base) / "matplotlib"
    else:
        folder = home and home / ".matplotlib"
    if folder is not None and _can_make(folder):
        return
    from ._files import process_folder

    try:
        private = process_folder("optimlab-matplotlib-")
    except OSError:  # no writable temporary folder either: matplotlib says what it can
        return
    os.environ["MPLCONFIGDIR"] = str(private)


def _can_make(folder: Path) -> bool:
    """Whether ``folder`` is a folder this process can write, or can be created: the
    nearest path of it and the folders above it that exists is a folder it may write in."""
    for above in (folder, *folder.parents):
        if os.path.exists(above):
            return os.path.isdir(above) and os.access(above, os.W_OK | os.X_OK)
    return False


def _has_descriptor(stream) -> bool:
    """Whether ``stream`` is a file with a working file descriptor (not None, not closed)."""
    try:
        os.fstat(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return True


def _hold_standard_descriptors() -> None:
    """Open standard input and error on ``os.devnull`` where the caller closed them
    (``<&-``, ``2>&-``): the next file opened would take the number, and what writes to
    descriptor 2 (a native library's warning, a compiler's errors in a child process) would
    land in a run store or a picture. Standard output closed is :func:`main`'s error."""
    for fd in (0, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:  # pragma: no cover - no /dev/null: leave it closed
                continue
            if null != fd:  # fd 1 was free too: moved to ``fd``, fd 1 stays closed for main()
                os.dup2(null, fd)
                os.close(null)


if __name__ == "__main__":
    entry()
