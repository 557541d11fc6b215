"""The store class, :class:`RunStore`: opening the SQLite file, its write transactions, the
lookups and the writes (sweeps, runs, metric points), and the checks of what is written.

``RunStore(path)`` opens (or creates) the store; the default ``optimlab-runs.db`` lies in
the current working directory and ``":memory:"`` gives a throw-away store. A file store
runs in WAL mode (``journal_mode=WAL``, ``synchronous=NORMAL``): readers never block the
writer, so a live sweep can be watched from another process (``RunStore(path,
readonly=True)``), and a commit survives the process being killed at any moment.

Resuming a sweep
----------------
The sweep is found again by its configuration: :meth:`RunStore.open_sweep` returns the
existing sweep when :func:`canonical_key` of the configuration matches, and
:meth:`RunStore.add_runs` returns the existing runs of members already added. A sweep
killed mid-way is finished by doing the same again and training only
:meth:`RunStore.pending_runs`: the runs still ``pending`` plus any left ``running`` by the
killed process. :meth:`RunStore.start_run` redoes such a run from scratch (its partial
metric points are deleted in the same transaction that marks it running again).

Transactions
------------
Metric points are written incrementally, each :meth:`~RunStore.log_metrics` or
:meth:`~RunStore.log_many` call in its own transaction, while the run stays ``running``;
its terminal status (``finished``, ``diverged`` or ``failed``) and summary are committed by
:meth:`~RunStore.finish_run` in one later transaction, which may also carry the last
points (``points=``, e.g. all of them when the trainer only has the curves at the end).
Since SQLite commits in order, a terminal status is never on disk without every metric
point logged before it, whether the process is killed (SIGKILL, OOM) or the machine loses
power (WAL with ``synchronous=NORMAL`` may then lose the last commits, never reorder
them). A run's metrics are therefore complete exactly when its status is terminal; the
points of a ``running`` run are partial (progress of a live run, or debris of a killed
one). Terminal runs are never written again: logging to them, starting or finishing them
raises :class:`ValueError`.

The tables are described in :mod:`.schema`; the DataFrame readers live in :mod:`.views`.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .environment import collect_environment
from .jsonio import _dumps, _loads, _plain, canonical_json, canonical_key
from .schema import (
    _OPEN,
    _RUN_COLUMNS,
    _SCHEMA,
    DEFAULT_PATH,
    SCHEMA_VERSION,
    STATUSES,
    TERMINAL,
    Run,
    StoreError,
    _chunks,
    _now,
    _run_from_row,
)
from .views import DataFrameReaders

__all__ = ["RunStore"]


def _member(m: Any) -> tuple[str, dict, int]:
    """(optimizer, hparams, seed) of a member dict (or object with those attributes)."""
    if isinstance(m, Mapping):
        unknown = set(m) - {"optimizer", "hparams", "seed"}
        if unknown:
            raise ValueError(f"unknown member fields {sorted(unknown)}: a member is "
                             f"{{'optimizer', 'hparams', 'seed'}}, got {dict(m)!r}")
        if "optimizer" not in m:
            raise ValueError(f"a member needs an 'optimizer', got {dict(m)!r}")
        optimizer, hparams, seed = m["optimizer"], m.get("hparams", {}), m.get("seed", 0)
    elif all(hasattr(m, a) for a in ("optimizer", "hparams", "seed")):
        optimizer, hparams, seed = m.optimizer, m.hparams, m.seed
    else:
        raise TypeError(f"a member is a dict with 'optimizer', 'hparams', 'seed', got {m!r}")
    if not isinstance(optimizer, str) or not optimizer:
        raise ValueError(f"member optimizer must be a non-empty string, got {optimizer!r}")
    hparams = _plain(hparams if hparams is not None else {})
    if not isinstance(hparams, dict):
        raise ValueError(f"member hparams must be a dict, got {hparams!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"member seed must be an integer, got {seed!r}")
    return optimizer, hparams, int(seed)


def _points(run_id: int, step: Any, values: Mapping[str, Any], wall_time: Any) -> list[tuple]:
    """Rows ``(run_id, step, name, value, wall_time)`` of one logged step; None skipped."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValueError(f"step must be an integer, got {step!r}")
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a dict of metric name -> number, got {values!r}")
    wall = None if wall_time is None else float(wall_time)
    rows = []
    for name, value in values.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric names must be non-empty strings, got {name!r}")
        if value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} at step {step} of run {run_id} is not a "
                            f"number: {value!r}") from None
        rows.append((int(run_id), int(step), name, value, wall))
    return rows


def _task_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return value["name"]
    return None


class RunStore(DataFrameReaders):
    """Sweeps, runs and metric points in a SQLite file (see :mod:`.schema` for the tables).

    Args:
        path: the database file (created if missing, its directory must exist), or
            ``":memory:"``. Default ``optimlab-runs.db`` in the current directory.
        readonly: open an existing store for reading only (e.g. to watch a live sweep);
            writing methods then raise :class:`StoreError`.
        timeout: seconds to wait for another process's write lock before giving up.

    Raises:
        StoreError: the path cannot be opened or written, is not an optimlab store, or was
            written by a newer optimlab (unknown schema version).

    One store object belongs to one thread (as its sqlite3 connection); other processes
    may open the same file at the same time. Use it as a context manager or call
    :meth:`close`.

    The DataFrame readers :meth:`sweeps`, :meth:`runs` and :meth:`metrics` come from
    :class:`~.views.DataFrameReaders`.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH, *, readonly: bool = False,
                 timeout: float = 30.0) -> None:
        self.readonly = readonly
        self.memory = str(path) == ":memory:"
        self.path = ":memory:" if self.memory else os.path.abspath(os.fspath(path))
        self._con: sqlite3.Connection | None = None
        if not self.memory:
            parent = os.path.dirname(self.path)
            if not os.path.isdir(parent):
                raise StoreError(f"cannot open run store {self.path}: directory {parent} "
                                 f"does not exist")
            if os.path.isdir(self.path):
                raise StoreError(f"cannot open run store {self.path}: it is a directory")
            if readonly and not os.path.exists(self.path):
                raise StoreError(f"cannot open run store {self.path} read-only: no such file")
        try:
            if readonly and not self.memory:
                uri = Path(self.path).as_uri() + "?mode=ro"
                con = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
            else:
                con = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open run store {self.path}: {e}") from e
        self._con = con
        try:
            con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            con.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                con.execute("PRAGMA journal_mode = WAL")
                con.execute("PRAGMA synchronous = NORMAL")
            self._check_schema()
        except sqlite3.Error as e:
            self.close()
            raise StoreError(f"cannot use run store {self.path}: {e}") from e
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        mode = ", readonly=True" if self.readonly else ""
        return f"RunStore({self.path!r}{mode})"

    # -------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def con(self) -> sqlite3.Connection:
        """The underlying sqlite3 connection, for ad-hoc SQL (read it, don't write it)."""
        if self._con is None:
            raise StoreError(f"run store {self.path} is closed")
        return self._con

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode: ``wal`` for a file store (``memory`` for ``:memory:``)."""
        return self.con.execute("PRAGMA journal_mode").fetchone()[0].lower()

    @property
    def schema_version(self) -> int:
        return self.con.execute("SELECT version FROM schema_version").fetchone()[0]

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE (take the write lock now), COMMIT or
        ROLLBACK."""
        if self.readonly:
            raise StoreError(f"run store {self.path} is open read-only")
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreError(f"cannot write to run store {self.path}: {e} (another process "
                             f"holds its write lock, or the file is not writable)") from e
        try:
            yield con
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    def _check_schema(self) -> None:
        con = self.con
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" not in tables:
            if self.readonly:
                raise StoreError(f"{self.path} is not an optimlab run store "
                                 f"(no schema_version table)")
            if tables:
                raise StoreError(f"{self.path} is not an optimlab run store: it holds other "
                                 f"tables ({', '.join(sorted(tables))})")
            with self._write() as con:
                # another process may have created it between our look and the lock
                if con.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                               "name='schema_version'").fetchone() is None:
                    for statement in _SCHEMA:
                        con.execute(statement)
                    con.execute("INSERT INTO schema_version (version) VALUES (?)",
                                (SCHEMA_VERSION,))
        row = con.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if version is None:
            raise StoreError(f"{self.path}: schema_version table is empty")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has run-store schema version {version}, newer than "
                             f"this optimlab understands ({SCHEMA_VERSION}): upgrade optimlab")
        if version < SCHEMA_VERSION:  # pragma: no cover - no older versions exist yet
            raise StoreError(f"{self.path} has run-store schema version {version}; this "
                             f"optimlab needs {SCHEMA_VERSION}")

    # -------------------------------------------------------------- lookups

    def _require_sweep(self, sweep_id: int) -> None:
        if self.con.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone() is None:
            raise KeyError(f"no sweep with id {sweep_id!r} in {self.path}")

    def _status(self, run_id: int) -> str:
        row = self.con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id!r} in {self.path}")
        return row[0]

    def find_sweep(self, config: Mapping) -> int | None:
        """The id of the sweep with this configuration, or None (creates nothing)."""
        row = self.con.execute("SELECT id FROM sweeps WHERE key = ?",
                               (canonical_key(config),)).fetchone()
        return None if row is None else row[0]

    def sweep(self, sweep_id: int) -> dict:
        """One sweep as a dict: its columns (``config``, ``environment`` decoded) and
        ``counts``, the number of runs in each status.

        Raises:
            KeyError: no sweep has this id.
        """
        row = self.con.execute(
            "SELECT id, key, name, task, model, config, created_at, environment FROM sweeps "
            "WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise KeyError(f"no sweep with id {sweep_id!r} in {self.path}")
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(self.con.execute(
            "SELECT status, COUNT(*) FROM runs WHERE sweep_id = ? GROUP BY status",
            (sweep_id,)).fetchall())
        return {"sweep_id": row[0], "key": row[1], "name": row[2], "task": row[3],
                "model": row[4], "config": _loads(row[5]), "created_at": row[6],
                "environment": _loads(row[7]), "counts": counts}

    def get_run(self, run_id: int) -> Run:
        """One run. Raises KeyError if no run has this id."""
        row = self.con.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?",
                               (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id!r} in {self.path}")
        return _run_from_row(row)

    def list_runs(self, sweep_id: int, status: str | Iterable[str] | None = None) -> list[Run]:
        """The runs of a sweep in the order they were added, optionally only those in the
        given status(es). Raises KeyError for an unknown sweep."""
        self._require_sweep(sweep_id)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE sweep_id = ?"
        params: list = [sweep_id]
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            bad = [s for s in wanted if s not in STATUSES]
            if bad:
                raise ValueError(f"unknown run status {bad}; statuses are {STATUSES}")
            sql += f" AND status IN ({', '.join('?' * len(wanted))})"
            params += wanted
        return [_run_from_row(r) for r in self.con.execute(sql + " ORDER BY id", params)]

    def pending_runs(self, sweep_id: int) -> list[Run]:
        """The runs still to train: ``pending`` ones and ``running`` ones (a killed
        process's: :meth:`start_run` redoes them from scratch), in the order added.

        This only reads: with several processes training one sweep (not supported yet), a
        live run would be listed too.
        """
        return self.list_runs(sweep_id, _OPEN)

    # -------------------------------------------------------------- writes

    def open_sweep(self, config: Mapping, name: str | None = None,
                   environment: Mapping | None = None) -> int:
        """The id of the sweep with this configuration, created if new.

        ``config`` is everything that defines the sweep (task, model, training settings,
        the grid...); its :func:`canonical_key` finds the sweep again, which is how a
        resumed sweep gets its runs back. ``name`` and ``environment`` (default
        :func:`collect_environment`) are recorded at creation only and are not part of the
        key: reopening keeps the original ones.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"a sweep config is a dict, got {type(config).__name__}")
        config_json = canonical_json(config)
        key = hashlib.sha256(config_json.encode()).hexdigest()  # canonical_key(config)
        found = self.con.execute("SELECT id FROM sweeps WHERE key = ?", (key,)).fetchone()
        if found is not None:
            return found[0]
        env = _dumps(collect_environment() if environment is None else environment)
        with self._write() as con:
            row = con.execute("SELECT id FROM sweeps WHERE key = ?", (key,)).fetchone()
            if row is not None:  # created by another process meanwhile
                return row[0]
            cur = con.execute(
                "INSERT INTO sweeps (key, name, task, model, config, created_at, environment) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, name, _task_name(config.get("task")), _task_name(config.get("model")),
                 config_json, _now(), env))
            return cur.lastrowid

    def add_runs(self, sweep_id: int, members: Iterable[Any]) -> list[int]:
        """Add members (dicts ``{"optimizer", "hparams", "seed"}``, or objects with those
        attributes) to a sweep and return their run ids, in order.

        Idempotent: a member already in the sweep (same :func:`canonical_key` of optimizer,
        hparams and seed) keeps its run, whatever its status. ``hparams`` default to ``{}``
        and ``seed`` to 0.
        """
        rows = []
        for m in members:
            optimizer, hparams, seed = _member(m)
            key = canonical_key({"optimizer": optimizer, "hparams": hparams, "seed": seed})
            lr = hparams.get("lr")
            lr = float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None
            rows.append((key, optimizer, _dumps(hparams), lr, seed))
        ids = []
        with self._write() as con:
            if con.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone() is None:
                raise KeyError(f"no sweep with id {sweep_id!r} in {self.path}")
            for key, optimizer, hparams, lr, seed in rows:
                con.execute(
                    "INSERT INTO runs (sweep_id, member_key, optimizer, hparams, lr, seed, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending') "
                    "ON CONFLICT (sweep_id, member_key) DO NOTHING",
                    (sweep_id, key, optimizer, hparams, lr, seed))
                ids.append(con.execute("SELECT id FROM runs WHERE sweep_id = ? AND member_key = ?",
                                       (sweep_id, key)).fetchone()[0])
        return ids

    def start_run(self, run_id: int) -> None:
        """Mark a run ``running`` (from ``pending``, or ``running`` left by a killed
        process: its partial metric points are deleted in the same transaction).

        Raises:
            KeyError: no such run.
            ValueError: the run already ended (finished, diverged or failed).
        """
        with self._write() as con:
            status = self._status(run_id)
            if status in TERMINAL:
                raise ValueError(f"run {run_id} is already {status}; it cannot start again")
            con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            con.execute("UPDATE runs SET status = 'running', started_at = ?, finished_at = NULL, "
                        "error = NULL, summary = NULL WHERE id = ?", (_now(), run_id))

    def _insert_points(self, con: sqlite3.Connection, rows: list[tuple]) -> None:
        run_ids = sorted({r[0] for r in rows})
        found = {}
        for chunk in _chunks(run_ids):
            found.update(con.execute(
                f"SELECT id, status FROM runs WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk).fetchall())
        for run_id in run_ids:
            if run_id not in found:
                raise KeyError(f"no run with id {run_id!r} in {self.path}")
            if found[run_id] != "running":
                raise ValueError(f"run {run_id} is {found[run_id]}, not running: metric points "
                                 f"go to a started, unfinished run (start_run first)")
        con.executemany(
            "INSERT INTO metrics (run_id, step, name, value, wall_time) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, step, name) DO UPDATE SET value = excluded.value, "
            "wall_time = excluded.wall_time", rows)

    def log_metrics(self, run_id: int, step: int, values: Mapping[str, Any],
                    wall_time: float | None = None) -> None:
        """Record the metrics of a running run at one step, in one transaction.

        ``values`` maps metric names to numbers (floats, numpy or 0-d torch scalars); NaN
        and infinities are kept, ``None`` values are skipped. ``wall_time`` is the seconds
        since the run started.
        """
        rows = _points(run_id, step, values, wall_time)
        with self._write() as con:
            self._insert_points(con, rows)

    def log_many(self, rows: Iterable[tuple]) -> None:
        """Record many points in one transaction: ``rows`` of ``(run_id, step, values,
        wall_time)`` as :meth:`log_metrics` takes them, e.g. one per member of a batched
        group at each evaluation, or a whole curve. All or none are written."""
        points = []
        for row in rows:
            try:
                run_id, step, values, wall_time = row
            except (TypeError, ValueError):
                raise ValueError(f"log_many rows are (run_id, step, values, wall_time), got "
                                 f"{row!r}") from None
            points += _points(run_id, step, values, wall_time)
        if points:
            with self._write() as con:
                self._insert_points(con, points)

    def finish_run(self, run_id: int, status: str, summary: Mapping | None = None,
                   error: str | None = None,
                   points: Iterable[tuple] | None = None) -> None:
        """End a run: ``finished``, ``diverged`` or ``failed`` (with ``error``, the reason).

        ``summary`` (final metrics, steps to target, wall time...) is stored as JSON.
        ``points``, rows ``(step, values, wall_time)``, are metric points written in the
        same transaction as the status. A ``pending`` run may end directly (e.g. failed
        before its first step).

        Raises:
            KeyError: no such run.
            ValueError: unknown status, or the run already ended.
        """
        if status not in TERMINAL:
            raise ValueError(f"a run finishes as one of {TERMINAL}, got {status!r}")
        if summary is not None and not isinstance(summary, Mapping):
            raise TypeError(f"summary must be a dict, got {summary!r}")
        summary_json = None if summary is None else _dumps(summary)
        rows = []
        for row in points or ():
            try:
                step, values, wall_time = row
            except (TypeError, ValueError):
                raise ValueError(f"points are (step, values, wall_time), got {row!r}") from None
            rows += _points(run_id, step, values, wall_time)
        with self._write() as con:
            current = self._status(run_id)
            if current in TERMINAL:
                raise ValueError(f"run {run_id} is already {current}; it cannot finish again")
            if rows:
                if current != "running":
                    raise ValueError(f"run {run_id} is {current}: points need a started run")
                self._insert_points(con, rows)
            con.execute("UPDATE runs SET status = ?, summary = ?, error = ?, finished_at = ? "
                        "WHERE id = ?",
                        (status, summary_json, None if error is None else str(error), _now(),
                         run_id))
