"""The run store's tables: their SQL (:data:`_SCHEMA`, version :data:`SCHEMA_VERSION`),
the run statuses, :class:`Run` (one row of ``runs``), :class:`StoreError`, and the small
helpers every query shares (timestamps, ``IN (...)`` chunks).

Schema (version 1)
------------------
All timestamps are ISO 8601 UTC text (``2025-01-31T12:00:00.123456+00:00``); JSON columns
hold canonical JSON (sorted keys; tuples become lists; numpy scalars become Python
numbers); non-finite floats inside JSON are written as Python's ``NaN``, ``Infinity`` and
``-Infinity`` tokens (also JSON5), which Python reads back exactly.

``schema_version``
    ``version INTEGER``: one row, the schema version of the file (1). A store written by a
    newer optimlab with an unknown version is refused with :class:`StoreError`.

``sweeps``: one row per sweep configuration.
    ``id INTEGER PRIMARY KEY``; ``key TEXT UNIQUE``: the key (:func:`~.jsonio.sweep_keys`) of the
    configuration, how a resumed sweep finds its row; ``name TEXT``: a free label given at
    creation (NULL if none; not part of the key); ``task TEXT``, ``model TEXT``: copied from
    the configuration's ``"task"`` and ``"model"`` entries when they are strings (or dicts
    with a ``"name"``), for filtering; ``config TEXT``: the configuration as canonical JSON;
    ``created_at TEXT``; ``environment TEXT``: JSON of where the sweep was created
    (:func:`.collect_environment` by default: python, platform, machine, host, library
    versions); ``free_key TEXT`` (indexed): :func:`~.jsonio.order_free_keys` of the stored
    configuration, how a sweep keyed by an earlier optimlab is found with its optimizers and
    rates in another order without reading every stored configuration (``''`` for a
    configuration no JSON reader takes; NULL for a sweep an optimlab without the column
    wrote: added to such a store, and filled, by the first writer of this one that opens
    it, see :data:`_ADDED`). Like ``key``, it is derived from ``config`` by the store: SQL
    that rewrites a ``config`` by hand should set it NULL, and the store derives it again.

``runs``: one row per member of a sweep (an optimizer, its hyperparameters, a seed).
    ``id INTEGER PRIMARY KEY`` (in the order members were added);
    ``sweep_id INTEGER`` references ``sweeps(id)``; ``member_key TEXT``:
    :func:`.canonical_key` of ``{"optimizer", "hparams", "seed"}``, unique within its sweep;
    ``optimizer TEXT``: registry name; ``hparams TEXT``: JSON object of hyperparameters;
    ``lr REAL``: ``hparams["lr"]`` when it is a number, else NULL (a convenience copy for
    SQL); ``seed INTEGER``; ``status TEXT``: one of ``pending`` (added, not started),
    ``running`` (started, not finished: live, or its process was killed), ``finished``,
    ``diverged``, ``failed`` (the last three are terminal); ``error TEXT``: why a run failed
    (or diverged), NULL otherwise; ``summary TEXT``: JSON object of final results (final
    metrics, steps to target, wall time...: whatever the trainer records), NULL until the
    run ends; ``started_at TEXT``, ``finished_at TEXT``: NULL until then.

``metrics``: one row per (run, step, metric name), long format.
    ``run_id INTEGER`` references ``runs(id)``; ``step INTEGER``; ``name TEXT`` (e.g.
    ``train_loss``, ``test_loss``, ``test_metric``); ``value REAL``; ``wall_time REAL``:
    seconds since the run started when the point was taken. Primary key ``(run_id, step,
    name)``: logging the same point twice keeps the last value. SQLite stores a NaN as
    NULL, so ``value`` NULL means NaN (a metric not measured at a step has no row at all;
    ``None`` values passed to :meth:`~.RunStore.log_metrics` are skipped); infinities are
    stored as they are (a ``-0.0`` comes back as ``0.0``). The readers give NaN back.

The SQL is plain (no SQLite-only column types or ``WITHOUT ROWID``; upserts use
``ON CONFLICT``) so the same schema can later live in a server database.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from .jsonio import _loads

__all__ = ["Run", "StoreError", "StoreWarning", "UnknownId", "SCHEMA_VERSION", "STATUSES",
           "TERMINAL", "DEFAULT_PATH"]

SCHEMA_VERSION = 1
DEFAULT_PATH = "optimlab-runs.db"
STATUSES = ("pending", "running", "finished", "diverged", "failed")
TERMINAL = ("finished", "diverged", "failed")
_OPEN = ("pending", "running")
_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit
_TABLES = ("schema_version", "sweeps", "runs", "metrics")  # the tables of _SCHEMA

#: finds a sweep by the key of its configuration with the order of its grid left out
_FREE_KEY_INDEX = "CREATE INDEX sweeps_free_key ON sweeps (free_key)"

_SCHEMA = [
    """CREATE TABLE schema_version (
        version INTEGER NOT NULL
    )""",
    """CREATE TABLE sweeps (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        name TEXT,
        task TEXT,
        model TEXT,
        config TEXT NOT NULL,
        created_at TEXT NOT NULL,
        environment TEXT,
        free_key TEXT
    )""",
    _FREE_KEY_INDEX,
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        sweep_id INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
        member_key TEXT NOT NULL,
        optimizer TEXT NOT NULL,
        hparams TEXT NOT NULL,
        lr REAL,
        seed INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'running', 'finished', 'diverged', 'failed')),
        error TEXT,
        summary TEXT,
        started_at TEXT,
        finished_at TEXT,
        UNIQUE (sweep_id, member_key)
    )""",
    "CREATE INDEX runs_status ON runs (sweep_id, status)",
    """CREATE TABLE metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL,
        wall_time REAL,
        PRIMARY KEY (run_id, step, name)
    )""",
]


def _table_columns(schema: list[str]) -> dict[str, tuple[str, ...]]:
    """Each table's columns in ``schema``'s CREATE TABLE statements, in order: the lines
    of a table's body that begin with a lower-case name (constraints begin with a keyword)."""
    tables = {}
    for statement in schema:
        head = re.match(r"CREATE TABLE (\w+) \(", statement)
        if head:
            body = statement[head.end():].splitlines()
            tables[head.group(1)] = tuple(m.group(1) for line in body
                                          if (m := re.match(r"\s*([a-z_]+)\s", line)))
    return tables


#: the columns of each table of :data:`_SCHEMA` (a store's tables must have them all, but
#: those of :data:`_ADDED`)
_COLUMNS = _table_columns(_SCHEMA)

#: columns added to the tables of version 1 after it first shipped, each with the statements
#: that add it to a store written before. Such a store is still of version 1: an optimlab
#: without the column reads and writes it as before (extra columns are tolerated; the rows
#: it adds leave the column NULL), a writer of this one adds what it lacks and fills it when
#: it opens the store (:meth:`.RunStore._add_columns`), a reader does without it.
_ADDED = {"sweeps": {"free_key": ("ALTER TABLE sweeps ADD COLUMN free_key TEXT",
                                  _FREE_KEY_INDEX)}}


class StoreWarning(UserWarning):
    """Something about a store the reader should know, which does not stop the reading (a
    store read as immutable, whose write-ahead log is left unread)."""


class StoreError(RuntimeError):
    """The store file cannot be opened or used: its path, permissions (a read-only file or
    directory), schema version, damage (a corrupt file is refused, never written), a lock
    held by another process, or any SQLite error met while reading or writing it.

    The message is always one line naming the file and what to do. One raised for a
    ``sqlite3.Error`` is also an instance of that error's class (``sqlite3.IntegrityError``
    for a constraint broken by ad-hoc SQL, ``sqlite3.OperationalError`` for a busy lock...),
    so code that catches sqlite3's exceptions keeps working.
    """


class UnknownId(KeyError):
    """No sweep or run has the id asked for (or none could: beyond SQLite's integers).

    A :class:`KeyError`, as a missing key of a mapping is, so ``except KeyError`` and
    ``except LookupError`` still catch it; but its message reads as a sentence, not as a
    quoted key (``no sweep with id 999 in runs.db``, not ``'no sweep with id 999 in
    runs.db'``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class SweepBusy(StoreError):
    """Another process (or store object) is training the sweep: it holds the sweep's lock.
    ``held_by`` says so without the advice (``"sweep 3 of runs.db is being run or resumed by
    process 12345 on this machine"``), for a caller whose advice differs."""

    def __init__(self, held_by: str) -> None:
        super().__init__(f"{held_by}: wait for it to end (or stop it), then resume")
        self.held_by = held_by


# SQLite's INTEGER is a signed 64-bit number: larger Python ints cannot even be bound
_ID_MIN, _ID_MAX = -2**63, 2**63 - 1


def _one_line(text: object, limit: int = 300) -> str:
    """``text`` as one line (whitespace runs collapsed), cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _sqlite_int(value: object) -> tuple[int | None, bool]:
    """``value`` as an int (numpy integers accepted) and whether SQLite can store it; ``(None,
    False)`` when it is not an integer at all."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None, False
    value = int(value)
    return value, _ID_MIN <= value <= _ID_MAX


def _check_int(value: object, what: str) -> int:
    """``value`` as an int SQLite can store (numpy integers accepted), else ValueError."""
    number, fits = _sqlite_int(value)
    if number is None:
        raise ValueError(f"{what} must be an integer, got {_one_line(repr(value), 80)}")
    if not fits:
        raise ValueError(f"{what} {number} is out of range: SQLite integers go from -2**63 "
                         f"to 2**63-1")
    return number


def _check_id(value: object, kind: str, path: str) -> int:
    """A sweep or run id as an int: :class:`UnknownId` (a KeyError, one line) when it cannot
    be the id of any row (out of SQLite's integer range), TypeError when it is not an integer
    at all."""
    number, fits = _sqlite_int(value)
    if number is None:
        raise TypeError(f"a {kind} id is an integer, got {_one_line(repr(value), 80)}")
    if not fits:
        raise UnknownId(f"no {kind} with id {number} in {path}: ids are SQLite integers, "
                       f"from -2**63 to 2**63-1")
    return number


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Run:
    """One row of ``runs``: a member of a sweep and where it stands."""

    id: int
    sweep_id: int
    optimizer: str
    hparams: dict
    seed: int
    status: str
    member_key: str
    error: str | None = None
    summary: dict | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def member(self) -> dict:
        """``{"optimizer", "hparams", "seed"}``, as given to :meth:`.RunStore.add_runs`."""
        return {"optimizer": self.optimizer, "hparams": self.hparams, "seed": self.seed}


_RUN_COLUMNS = ("id, sweep_id, optimizer, hparams, seed, status, member_key, error, summary, "
                "started_at, finished_at")


def _run_from_row(row: tuple) -> Run:
    (id_, sweep_id, optimizer, hparams, seed, status, member_key, error, summary,
     started_at, finished_at) = row
    return Run(id_, sweep_id, optimizer, _loads(hparams), seed, status, member_key, error,
               _loads(summary), started_at, finished_at)


def _chunks(ids: list, n: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(ids), n):
        yield ids[i:i + n]
