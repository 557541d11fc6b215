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
existing sweep when its key matches (:func:`~.jsonio.sweep_keys`: the configuration's
:func:`canonical_key`, the order of its optimizers and rates and how its model is named
left out), and
:meth:`RunStore.add_runs` returns the existing runs of members already added. A sweep
killed mid-way is finished by doing the same again and training only
:meth:`RunStore.pending_runs`: the runs still ``pending`` plus any left ``running`` by the
killed process. :meth:`RunStore.start_run` redoes such a run from scratch (its partial
metric points are deleted in the same transaction that marks it running again). A process
stopped by an exception or Ctrl-C (not killed) puts the runs it started and did not end back
to ``pending`` itself (:meth:`RunStore.reset_runs`, which deletes their partial points too):
only a killed process leaves runs ``running``.

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

import math
import numbers
import os
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .environment import collect_environment
from .guard import (
    GuardedConnection,
    SweepLock,
    as_store_error,
    connect_readonly,
    damage_reason,
    damaged_message,
    error_message,
    full_disk_hint,
    is_busy,
    is_empty,
    verify,
    wal_size,
)
from .jsonio import _dumps, _loads, canonical_json, canonical_key, json_data, order_free_keys, sweep_keys
from .schema import (
    _ADDED,
    _CHUNK,
    _COLUMNS,
    _OPEN,
    _RUN_COLUMNS,
    _SCHEMA,
    _TABLES,
    DEFAULT_PATH,
    SCHEMA_VERSION,
    STATUSES,
    TERMINAL,
    Run,
    StoreError,
    StoreWarning,
    UnknownId,
    _check_id,
    _check_int,
    _chunks,
    _now,
    _one_line,
    _run_from_row,
)
from .views import DataFrameReaders

__all__ = ["NoStoreYet", "RunStore"]


class NoStoreYet(StoreError):
    """A read-only :class:`RunStore` on a file that holds no store yet: an empty file (0
    bytes) or a database with no tables, as a file is while ``optimlab bench`` creates the
    store in it (the tables come in one transaction). A file that is not a run store (other
    tables, or not a SQLite database) raises a plain :class:`StoreError`."""


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
        raise _argument_error(isinstance(optimizer, str))(
            f"member optimizer must be a non-empty string, got {optimizer!r}")
    hparams = json_data(hparams if hparams is not None else {})
    if not isinstance(hparams, dict):
        raise _argument_error(False)(f"member hparams must be a dict, got {hparams!r}")
    return optimizer, hparams, _check_int(seed, "member seed")


def _argument_error(right_kind: bool) -> type[ValueError]:
    """:func:`optimlab.optim.base.argument_error`, imported when an argument is refused:
    the store reads and writes without torch."""
    from ...optim.base import argument_error

    return argument_error(right_kind)


def _points(run_id: int, step: Any, values: Mapping[str, Any], wall_time: Any,
            path: str) -> list[tuple]:
    """Rows ``(run_id, step, name, value, wall_time)`` of one logged step; None skipped."""
    run_id = _check_id(run_id, "run", path)
    step = _check_int(step, "step")
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a dict of metric name -> number, got {values!r}")
    wall = None if wall_time is None else float(wall_time)
    rows = []
    for name, value in values.items():
        if not isinstance(name, str) or not name:
            raise _argument_error(isinstance(name, str))(
                f"metric names must be non-empty strings, got {name!r}")
        if value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} at step {step} of run {run_id} is not a "
                            f"number: {value!r}") from None
        except OverflowError:
            raise ValueError(f"metric {name!r} at step {step} of run {run_id} is too large "
                             f"for a float: {value!r}") from None
        # NaN as NULL and -0.0 as 0.0, as SQLite keeps them, so that every database holds
        # the same rows
        rows.append((run_id, step, name, None if math.isnan(value) else value + 0.0, wall))
    return rows


def _free_key(config: Any) -> str:
    """The ``free_key`` of a sweep stored with ``config`` (JSON data): its key with the
    order of its optimizers and rates left out (:func:`~.jsonio.order_free_keys`, as
    stored)."""
    (key,) = order_free_keys(config, stored=True)
    return key


def _stored_free_key(text: str | None) -> str:
    """The ``free_key`` of a stored configuration's text: ``''`` (no key finds it) for a
    text no JSON reader takes."""
    try:
        stored = _loads(text)
    except ValueError:  # a config no JSON reader takes: no configuration finds it
        return ""
    return _free_key(stored)


def _fill_free_keys(con) -> None:
    """Write the ``free_key`` of every sweep that lacks one (NULL: stored by an optimlab
    without the column), in chunks of :data:`~.schema._CHUNK` configurations, inside the
    caller's write transaction."""
    last = None
    while True:
        rows = con.execute(
            "SELECT id, config FROM sweeps WHERE free_key IS NULL"
            + ("" if last is None else " AND id > ?") + " ORDER BY id LIMIT ?",
            ([] if last is None else [last]) + [_CHUNK]).fetchall()
        if not rows:
            return
        con.executemany("UPDATE sweeps SET free_key = ? WHERE id = ?",
                        [(_stored_free_key(text), sweep_id) for sweep_id, text in rows])
        last = rows[-1][0]


def _task_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return value["name"]
    return None


def _is_server_url(path: object) -> bool:
    """Whether ``path`` is a URL of a database server (not a file, not ``sqlite://``)."""
    return isinstance(path, str) and "://" in path and not path.startswith("sqlite")


def sqlite_path(path: str | os.PathLike) -> str | os.PathLike:
    """The file of a SQLAlchemy SQLite URL (``sqlite:///runs.db`` is ``runs.db`` in the
    working directory, ``sqlite:////abs/runs.db`` is ``/abs/runs.db``, ``sqlite://`` and
    ``sqlite:///:memory:`` are ``:memory:``); anything else is returned as it is."""
    if not isinstance(path, str) or not path.startswith("sqlite"):
        return path
    scheme, sep, rest = path.partition("://")
    if not sep:
        return path
    if scheme not in ("sqlite", "sqlite+pysqlite"):
        raise StoreError(f"unsupported run store URL {path}: a SQLite store is sqlite:///FILE "
                         f"(the sqlite3 module is its driver)")
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/") or "?" in rest:
        raise StoreError(f"cannot read the run store URL {path}: a SQLite URL is "
                         f"sqlite:///relative/file.db or sqlite:////absolute/file.db, with no "
                         f"host and no query")
    return rest[1:]


def _check_readonly(readonly: Any) -> None:
    """TypeError unless ``readonly`` is a bool: ``readonly="False"`` opened the store read-only
    (a non-empty string is true), and its writes were then refused."""
    if not isinstance(readonly, bool):
        raise TypeError(f"RunStore: readonly must be True or False, got "
                        f"{type(readonly).__name__} {_one_line(repr(readonly), 80)}")


def _check_timeout(timeout: Any) -> None:
    """TypeError unless ``timeout`` is a number, ValueError unless it is finite and >= 0
    (seconds to wait for a lock: a negative or NaN wait was taken without a word, an
    infinite one fails as an OverflowError when the busy timeout is set)."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"RunStore: timeout must be a number of seconds, got "
                        f"{type(timeout).__name__} {_one_line(repr(timeout), 80)}")
    if not (math.isfinite(timeout) and timeout >= 0):
        raise ValueError(f"RunStore: timeout must be a finite number of seconds >= 0, got "
                         f"{timeout!r}")


def check_store(store: Any, who: str) -> None:
    """Raise TypeError (one line) unless ``store`` is a :class:`RunStore`: a path given
    where a store is read fails deep inside otherwise. ``who`` names the reader."""
    if not isinstance(store, RunStore):
        raise TypeError(f"{who} reads a RunStore, not a {type(store).__name__} "
                        f"({_one_line(repr(store), 200)}): open it with RunStore(path)")


def _statuses(status: str | Iterable[str] | None) -> tuple[str, list[str]]:
    """The SQL condition selecting runs of ``status`` (one, several, or None for all) and
    its parameters: ``("status IN (?, ?)", [...])``, or ``("", [])``. ValueError for a
    status that is none of :data:`STATUSES`."""
    if status is None:
        return "", []
    wanted = [status] if isinstance(status, str) else list(status)
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise ValueError(f"unknown run status {bad}; statuses are {STATUSES}")
    return f"status IN ({', '.join('?' * len(wanted))})", wanted


#: the longest name SQLite and the sweep locks give a file beside the store: ``<name>-journal``
#: and ``<name>-sweep<id>.lock`` with an id of up to 6 digits (a store of a million sweeps
#: is beyond any use; a tighter bound would refuse long names that work)
_BESIDE = len("-sweep999999.lock")


def _check_name_length(path: str) -> None:
    """Refuse, before anything is written, a store whose name leaves no room for the files
    kept beside it: a name of 246 bytes made the store and its sweep, then failed on the
    sweep's lock file (a sweep left with no run), and one of 250 left an empty file behind
    an "unable to open database" that did not say why."""
    name = os.fsencode(os.path.basename(path))
    try:
        limit = os.pathconf(os.path.dirname(path) or ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no answer
        limit = 255
    if len(name) + _BESIDE > limit:
        raise StoreError(f"cannot write to run store {path}: its name is {len(name)} bytes, "
                         f"and the files kept beside it (its name + '-journal', '-wal', "
                         f"'-sweep<id>.lock') need {_BESIDE} more, beyond this file "
                         f"system's {limit}: choose a name of at most {limit - _BESIDE} bytes")


class RunStore(DataFrameReaders):
    """Sweeps, runs and metric points in a SQLite file (see :mod:`.schema` for the tables).

    Args:
        path: the database file (created if missing, its directory must exist), or
            ``":memory:"``. Default ``optimlab-runs.db`` in the current directory.
        readonly: open an existing store for reading only (e.g. to watch a live sweep, or
            a store on a read-only file system or in a read-only file); writing methods
            then raise :class:`StoreError`.
        timeout: seconds to wait for another process's write lock before giving up.

    Raises:
        StoreError: the path cannot be opened or written, is not an optimlab store, is
            damaged, or was written by a newer optimlab (unknown schema version). The
            message is one line naming the file.

    What a file is taken for:

    * **A damaged file is refused.** Opening runs SQLite's ``PRAGMA quick_check`` (every
      page read once: a few ms for a sweep's store, about 0.5 s for 74 MB, and remembered
      while the file is unchanged; see :func:`.guard.verify`), and nothing is written to
      a file that fails it. Damage met later, by a read or a write, raises
      :class:`StoreError` too, and the store then refuses every write.
    * **An empty file (0 bytes) is a new store only for a writer that may write it:**
      ``RunStore(path)`` on an empty, writable file creates the tables in it, as in a
      missing file. ``readonly=True`` on an empty file, or a writer on an empty read-only
      file, raises :class:`StoreError`: an empty file is no store to read (often a failed
      copy), and one that cannot be written can never become one.
    * **Another program's database is refused as it was found:** a file holding other
      tables, or a ``schema_version`` table that is not the store's (no integer
      ``version``, no ``sweeps``, ``runs`` and ``metrics`` beside it), raises
      :class:`StoreError`; it is never switched to WAL nor written. So is a path that is
      not a regular file (a device, a pipe).
    * **A read-only file or directory is read, never written:** ``readonly=True`` reads it
      (``mode=ro``; in a directory this process cannot write, where SQLite cannot create
      the ``-shm`` file a WAL reader needs, ``immutable=1``: the main file alone, see
      :func:`.guard.connect_readonly`), while a writer is refused at once with
      :class:`StoreError`.

    Every other SQLite error (a busy lock past ``timeout``...) is a one-line
    :class:`StoreError` too, from any method.

    One store object belongs to one thread (as its sqlite3 connection); other processes
    may open the same file at the same time. Use it as a context manager or call
    :meth:`close`. A sweep is trained by one process at a time: :meth:`lock_sweep`.

    The DataFrame readers :meth:`sweeps`, :meth:`runs` and :meth:`metrics` come from
    :class:`~.views.DataFrameReaders`.
    """

    #: the class a server URL opens: :class:`.server.ServerRunStore`, which sets it when its
    #: module is loaded (the package loads it), so that this module does not import it
    server_class: type | None = None

    # snapshot()'s state (here too for a subclass that sets up its own object)
    _snapshots = 0  # depth of snapshot() blocks
    _read_txn = False  # whether the outermost snapshot() holds a read transaction
    _free_keyed = False  # whether the sweeps table has its free_key column (_add_columns)

    def __new__(cls, path: str | os.PathLike = DEFAULT_PATH, *args, **kwargs):
        # a PostgreSQL URL opens the server store, a subclass of this one
        if cls is RunStore and _is_server_url(path):
            if RunStore.server_class is None:  # pragma: no cover - the package loads it
                raise StoreError(f"no server store is loaded to open {path.split('@')[-1]}")
            return super().__new__(RunStore.server_class)
        return super().__new__(cls)

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH, *, readonly: bool = False,
                 timeout: float = 30.0) -> None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError(f"RunStore: path must be a file path (str or os.PathLike) or "
                            f"':memory:', got {type(path).__name__} {_one_line(repr(path), 80)}")
        _check_timeout(timeout)
        _check_readonly(readonly)
        path = sqlite_path(path)
        self.readonly = readonly
        self.timeout = timeout
        self.memory = str(path) == ":memory:"
        self.path = ":memory:" if self.memory else os.path.abspath(os.fspath(path))
        self.immutable = False  # read through immutable=1 (see connect_readonly)
        self._con: sqlite3.Connection | None = None
        self._guarded: GuardedConnection | None = None
        self._damage: str | None = None  # why the file is damaged, once seen
        self._locks: dict[int, list] = {}  # sweep id -> [SweepLock, depth]
        if not self.memory:
            self._check_file()
        try:
            if self.memory:
                con = sqlite3.connect(":memory:", timeout=timeout, isolation_level=None)
            elif readonly:
                con, self.immutable = connect_readonly(self.path, timeout)
            else:
                con = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise self._fail(e) from e
        self._con = con
        self._guarded = GuardedConnection(con, self._fail)
        try:
            con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            con.execute("PRAGMA foreign_keys = ON")
            if not self.memory:
                # before anything is written: a damaged file is never touched
                damage = verify(con, self.path)
                if damage is not None:
                    self._damage = damage
                    raise StoreError(damaged_message(self.path, damage))
            # WAL mode is set by _check_schema, once the file is known to be a store or empty:
            # a foreign database is refused as it was found
            self._check_schema()
        except StoreError:  # already the one line (and also a sqlite3.Error): as it is
            self.close()
            raise
        except sqlite3.Error as e:
            err = self._fail(e)
            self.close()
            raise err from e
        except BaseException:
            self.close()
            raise

    def _check_file(self) -> None:
        """Refuse, before SQLite sees it, a path that cannot be the store asked for."""
        path = self.path
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise StoreError(f"cannot open run store {path}: directory {parent} does not exist")
        if os.path.isdir(path):
            raise StoreError(f"cannot open run store {path}: it is a directory")
        exists = os.path.exists(path)
        if exists and not os.path.isfile(path):  # SQLite would write a -journal beside it
            raise StoreError(f"cannot open run store {path}: it is not a regular file (a "
                             f"device, a pipe or a socket)")
        if self.readonly and not exists:
            raise StoreError(f"cannot open run store {path} read-only: no such file")
        if exists and is_empty(path):
            if self.readonly:
                raise NoStoreYet(f"{path} is an empty file (0 bytes), not a run store: "
                                 f"nothing to read (a sweep written to it makes it a store)")
            if not os.access(path, os.W_OK):
                raise StoreError(f"{path} is an empty read-only file (0 bytes): it is not a "
                                 f"run store and cannot become one; point --db at another file")
        if self.readonly:
            return
        _check_name_length(path)
        links = os.stat(path).st_nlink if exists else 1
        if links > 1:  # SQLite names its -wal and -shm after the path; the sweep locks too
            raise StoreError(f"cannot write to run store {path}: the file has {links} names "
                             f"(hard links), and SQLite keeps a separate write-ahead log beside "
                             f"each name, so writers through two names could corrupt it and "
                             f"train one sweep twice; write through a copy (cp {path} NEW) or "
                             f"remove the other names, or open it with readonly=True to read it")
        if exists and not os.access(path, os.W_OK):
            raise StoreError(f"cannot write to run store {path}: the file is read-only (open "
                             f"it with readonly=True to read it, or copy it somewhere "
                             f"writable)")
        if not os.access(parent, os.W_OK | os.X_OK):
            name = os.path.basename(path)
            raise StoreError(f"cannot write to run store {path}: its directory {parent} is "
                             f"not writable (SQLite keeps {name}-wal and {name}-shm beside "
                             f"the file); open it with readonly=True to read it")

    def _fail(self, err: sqlite3.Error) -> StoreError:
        """The one-line StoreError for a sqlite3 error; damage is remembered. A StoreError
        (also a sqlite3.Error) is already that line: it is returned as it is."""
        if isinstance(err, StoreError):
            return err
        damage = damage_reason(err)
        if damage is not None:
            if self._damage is None:
                self._damage = damage
            return as_store_error(err, damaged_message(self.path, damage))
        return as_store_error(err, error_message(self.path, err))

    def __repr__(self) -> str:
        mode = ", readonly=True" if self.readonly else ""
        return f"RunStore({self.path!r}{mode})"

    # -------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the connection and release the sweep locks it holds (idempotent)."""
        for lock, _ in self._locks.values():
            lock.release()
        self._locks.clear()
        if self._con is not None:
            try:
                self._con.close()
            except Exception:  # pragma: no cover - the driver's error; nothing left to save
                pass
            self._con = None
            self._guarded = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def con(self) -> GuardedConnection:
        """The store's sqlite3 connection, for ad-hoc SQL (read it, don't write it).

        Its ``execute`` and ``executemany`` (and their cursors) raise :class:`StoreError`
        with one line instead of ``sqlite3.Error``; other attributes are the connection's.
        """
        if self._con is None:
            raise StoreError(f"run store {self.path} is closed")
        return self._guarded

    @property
    def damaged(self) -> str | None:
        """Why the file is damaged (one line) once a check or a read has found it; else
        None. A damaged store refuses every write."""
        return self._damage

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode: ``wal`` for a file store (``memory`` for ``:memory:``)."""
        return self.con.execute("PRAGMA journal_mode").fetchone()[0].lower()

    @property
    def schema_version(self) -> int:
        """The version of the store's tables, as written in the file."""
        return self.con.execute("SELECT version FROM schema_version").fetchone()[0]

    @contextmanager
    def _write(self) -> Iterator[GuardedConnection]:
        """One write transaction: BEGIN IMMEDIATE (take the write lock now), COMMIT or
        ROLLBACK. Refused on a read-only or damaged store."""
        if self.readonly:
            raise StoreError(f"run store {self.path} is open read-only")
        if self._damage is not None:
            raise StoreError(damaged_message(self.path, self._damage))
        if self._read_txn:  # BEGIN IMMEDIATE would fail inside the read transaction
            raise StoreError(f"run store {self.path} cannot be written inside snapshot() (a "
                             f"read transaction): end the snapshot first")
        con = self.con
        self._begin()
        try:
            yield con
        except BaseException:
            self._rollback()
            raise
        try:
            self._commit()
        except BaseException:
            self._rollback()
            raise

    @contextmanager
    def snapshot(self) -> Iterator[RunStore]:
        """A context manager under which every read of this store sees one state of it: one
        read transaction, so that an answer made of several queries (a sweep, its runs, its
        metric points) never mixes states while another process writes the store (a run
        ending between two queries).

        On a file store in WAL mode (every store optimlab writes) it is ``BEGIN``, a first
        read that pins the state, and ``COMMIT`` (``ROLLBACK`` on an exception) as the block
        ends: a WAL reader never blocks a writer, it only keeps the write-ahead log from
        being checkpointed past its state until it ends, so keep the block to the reads. A
        store read as ``immutable`` (a read-only directory: nothing can write it), one not
        in WAL mode (a reader's lock there would stall a writer's commit) and ``:memory:``
        read without a transaction, as outside the block. On a server store it is a
        ``REPEATABLE READ`` transaction. Nested blocks share the outer one's state. Where the
        block holds a read transaction (a WAL file store, a server store), the store cannot
        be written inside it (:class:`StoreError`); elsewhere writes go through as outside.
        """
        self.con  # noqa: B018  (StoreError on a closed store)
        began = self._snapshots == 0 and self._begin_read()
        self._snapshots += 1
        self._read_txn = self._read_txn or began
        try:
            yield self
        except BaseException:
            if began:
                self._rollback()
            raise
        finally:
            self._snapshots -= 1
            if began:
                self._read_txn = False
        if began and self._con is not None:
            try:
                self._commit()
            except BaseException:
                self._rollback()
                raise

    def _begin_read(self) -> bool:
        """Begin the read transaction of :meth:`snapshot` where one is needed (see there);
        whether it began."""
        if self.memory or self.immutable or self.con.in_transaction:
            return False
        mode = self.journal_mode
        if mode == "server":
            self.con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            return True
        if mode != "wal":
            return False
        self.con.execute("BEGIN")
        try:  # a deferred BEGIN reads nothing: the state is the one of its first read
            self.con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except BaseException:
            self._rollback()
            raise
        return True

    def _begin(self) -> None:
        """BEGIN IMMEDIATE: take the file's write lock now (waits up to ``timeout``)."""
        try:
            self._con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if damage_reason(e) is not None:
                raise self._fail(e) from e
            hint = "" if is_busy(e) else full_disk_hint(self.path)
            why = hint or (" (another process holds its write lock, or the file is not "
                           "writable)")
            raise as_store_error(e, f"cannot write to run store {self.path}: {_one_line(e)}"
                                    f"{why}") from e

    def _commit(self) -> None:
        try:
            self._con.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def _rollback(self) -> None:
        raw = self._con
        if raw is not None and raw.in_transaction:
            try:
                raw.execute("ROLLBACK")
            except sqlite3.Error:  # the error that brought us here says more
                pass

    @contextmanager
    def lock_sweep(self, sweep_id: int) -> Iterator[None]:
        """A context manager that holds the sweep's lock for the ``with`` block: only one
        process (or store object) at a time trains a sweep; :func:`~.sweep.run_sweep` takes it.

        The lock is an OS lock (``flock``) on ``<store>-sweep<id>.lock`` beside the store's
        file (symlinks resolved, so that every path to one file takes one lock), holding the
        pid and host of its process; the kernel releases it when the process ends in any
        way, so a killed sweep never blocks its resume. Nested ``with`` blocks on one store
        object share the lock. A ``:memory:`` store has nothing to lock.

        Raises:
            StoreError: another process or store object holds it ("sweep 3 of ... is being
                run or resumed by process 12345 on this machine"), or the store is
                read-only.
            KeyError: no sweep has this id.
        """
        sweep_id = self._require_sweep(sweep_id)
        if self.memory:  # no other process can see it
            yield
            return
        if self.readonly:
            raise StoreError(f"run store {self.path} is open read-only: a sweep cannot be "
                             f"trained in it")
        held = self._locks.get(sweep_id)
        if held is None:
            held = self._locks[sweep_id] = [self._sweep_lock(sweep_id), 0]
        held[1] += 1
        try:
            yield
        finally:
            held[1] -= 1
            if held[1] == 0 and self._locks.get(sweep_id) is held:
                del self._locks[sweep_id]
                held[0].release()

    def _sweep_lock(self, sweep_id: int) -> SweepLock:
        """Take the lock of one sweep (an object with ``release()``), or raise StoreError."""
        return SweepLock(self.path, sweep_id)

    def _tables(self) -> set[str]:
        """The names of the tables (and views) in the store."""
        return {r[0] for r in self.con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}

    def _columns(self, table: str) -> set[str]:
        """The names of one table's columns (lower case); ``table`` is one of the store's."""
        return {r[1].lower() for r in self.con.execute(f'PRAGMA table_info("{table}")')}

    def _schema(self) -> list[str]:
        """The statements that create the tables (SQLite's types; see :mod:`.schema`)."""
        return _SCHEMA

    def _use_wal(self) -> None:
        """WAL mode and ``synchronous=NORMAL``, for a file this store writes (called once it
        is known to be a store, or empty).

        SQLite answers the switch to WAL with SQLITE_BUSY at once, without waiting
        ``busy_timeout``, while another connection writes the file in rollback mode (another
        process creating the same new store): the switch is tried again, after short
        sleeps, until ``timeout`` has passed.
        """
        con = self._con
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                con.execute("PRAGMA journal_mode = WAL").fetchall()
                break
            except sqlite3.OperationalError as err:
                left = deadline - time.monotonic()
                if not is_busy(err) or not left > 0:
                    raise
                time.sleep(min(pause, left))
                pause = min(2 * pause, 0.05)
        con.execute("PRAGMA synchronous = NORMAL")

    def _check_schema(self) -> None:
        """Refuse what is not an optimlab store, or is one of a newer optimlab (one-line
        StoreError); create the tables in a new store. A writer's file is put in WAL mode
        only once it is known to be an optimlab store or to hold nothing: a foreign
        database is never changed."""
        tables = self._tables()
        new = "schema_version" not in tables
        if new:
            if self.immutable and wal_size(self.path):  # its tables are in the -wal
                raise StoreError(f"cannot read run store {self.path}: its last commits are in "
                                 f"{self.path}-wal, which SQLite cannot read without a -shm "
                                 f"file in a directory this process cannot write; copy the "
                                 f"store with its -wal file somewhere writable")
            if self.readonly and not tables:  # an empty database: nothing was stored yet
                raise NoStoreYet(f"no optimlab run store in {self.path} yet (run "
                                 f"`optimlab bench --db ...` first)")
            if self.readonly:
                raise StoreError(f"{self.path} is not an optimlab run store "
                                 f"(no schema_version table)")
            if tables:
                raise StoreError(f"{self.path} is not an optimlab run store: it holds other "
                                 f"tables ({', '.join(sorted(tables))})")
            self._use_wal()
            with self._write() as con:
                # another process may have created it between our look and the lock
                if "schema_version" not in self._tables():
                    for statement in self._schema():
                        con.execute(statement)
                    con.execute("INSERT INTO schema_version (version) VALUES (?)",
                                (SCHEMA_VERSION,))
            tables = self._tables()
        self._check_version(tables)
        if not new and not self.readonly:
            self._use_wal()
        self._add_columns()

    def _add_columns(self) -> None:
        """Bring a store an earlier optimlab wrote up to the columns added to the schema
        since (:data:`~.schema._ADDED`): a writer adds the sweeps' ``free_key`` where it
        lacks and fills it where NULL (sweeps stored by an optimlab without it), in one write
        transaction, once: under the writers' lock it looks again, so two processes opening
        the store at once add it once, and readers see the store before or after, never
        between. A reader does without: :meth:`_find_sweep` then reads the configurations
        instead, as before the column."""
        self._free_keyed = "free_key" in self._columns("sweeps")
        if self.readonly or (self._free_keyed and self.con.execute(
                "SELECT 1 FROM sweeps WHERE free_key IS NULL LIMIT 1").fetchone() is None):
            return
        try:
            with self._write() as con:
                # another process may have added it between our look and the lock
                for table, added in _ADDED.items():
                    columns = self._columns(table)
                    for column, statements in added.items():
                        if column not in columns:
                            for statement in statements:
                                con.execute(statement)
                _fill_free_keys(con)
        except Exception as err:  # noqa: BLE001 - e.g. a PostgreSQL role that may not ALTER
            # the table it writes to: the store works without the column, as before it
            self._free_keyed = "free_key" in self._columns("sweeps")
            if not self._free_keyed:
                warnings.warn(f"{self.path}: the sweeps' free_key column could not be added "
                              f"({type(err).__name__}: {_one_line(err)}); finding a sweep reads "
                              "every stored configuration, as before it", StoreWarning,
                              stacklevel=3)
            return
        self._free_keyed = True

    def _check_version(self, tables: set[str]) -> None:
        """Refuse a file whose ``schema_version`` table is not the store's (no integer
        ``version``), whose version is newer than this optimlab's, that lacks the store's
        other tables, or whose tables lack a column of the schema (extra columns are
        tolerated)."""
        foreign = f"{self.path} is not an optimlab run store"
        if "version" not in self._columns("schema_version"):
            raise StoreError(f"{foreign}: its schema_version table has no version column")
        row = self.con.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if version is None:
            raise StoreError(f"{self.path}: schema_version table is empty")
        if not isinstance(version, int) or isinstance(version, bool):
            raise StoreError(f"{foreign}: its schema_version table holds "
                             f"{_one_line(repr(version), 60)}, not an integer version")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has run-store schema version {version}, newer than "
                             f"this optimlab understands ({SCHEMA_VERSION}): upgrade optimlab")
        if version < SCHEMA_VERSION:
            raise StoreError(f"{self.path} has run-store schema version {version}; this "
                             f"optimlab needs {SCHEMA_VERSION}")
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            raise StoreError(f"{foreign}: it has a schema_version table but no "
                             f"{', '.join(missing)} table{'s' if len(missing) > 1 else ''}")
        for table in (t for t in _TABLES if t != "schema_version"):  # checked above
            columns = self._columns(table)  # a column missing would fail only after training
            lacking = [c for c in _COLUMNS[table]
                       if c not in columns and c not in _ADDED.get(table, ())]
            if lacking:
                raise StoreError(f"{self.path} is not an optimlab run store of schema version "
                                 f"{SCHEMA_VERSION}: table {table} lacks column"
                                 f"{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}")

    # -------------------------------------------------------------- lookups

    def _require_sweep(self, sweep_id: int) -> int:
        """The sweep id as an int; KeyError (one line) when no sweep has it."""
        sweep_id = _check_id(sweep_id, "sweep", self.path)
        if self.con.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone() is None:
            raise UnknownId(f"no sweep with id {sweep_id!r} in {self.path}")
        return sweep_id

    def _status(self, run_id: int) -> str:
        run_id = _check_id(run_id, "run", self.path)
        row = self.con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownId(f"no run with id {run_id!r} in {self.path}")
        return row[0]

    def find_sweep(self, config: Mapping) -> int | None:
        """The id of the sweep with this configuration, or None (creates nothing): looked up
        by each of its :func:`~.jsonio.sweep_keys` in turn, so a sweep stored under the
        key of an earlier optimlab is found too."""
        return self._find_sweep(self.con, config)

    def _find_sweep(self, con, config: Mapping, unkeyed: bool = True,
                    fill: bool = False) -> int | None:
        """The id of the sweep of ``config``: the one stored under the first of its
        :func:`~.jsonio.sweep_keys` (the current key, then an earlier one), or None.

        A sweep an earlier optimlab keyed by its configuration as given (before the order of
        its optimizers and rates was left out of the key) is found by a command that lists
        them in another order too: where no key matches, the first sweep whose stored
        configuration keys alike with the order left out (:func:`~.jsonio.order_free_keys`),
        looked up by its ``free_key`` (indexed: no configuration is read). With ``unkeyed``,
        the configurations of the sweeps without a ``free_key`` are read and compared (every
        sweep's, in a store an earlier optimlab wrote and no writer of this one has opened:
        see :meth:`_add_columns`), once; with ``fill`` (inside a write transaction) their
        ``free_key`` is written, so that none is read twice."""
        for key in sweep_keys(config):
            row = con.execute("SELECT id FROM sweeps WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return row[0]
        wanted = sorted(order_free_keys(config))
        found = []
        if self._free_keyed:
            row = con.execute(f"SELECT MIN(id) FROM sweeps WHERE free_key IN "
                              f"({', '.join('?' * len(wanted))})", wanted).fetchone()
            if row is not None and row[0] is not None:
                found.append(row[0])
        if unkeyed:
            where = " WHERE free_key IS NULL" if self._free_keyed else ""
            keys = []
            for sweep_id, text in con.execute(
                    f"SELECT id, config FROM sweeps{where} ORDER BY id").fetchall():
                keys.append((_stored_free_key(text), sweep_id))
                if keys[-1][0] in wanted:
                    found.append(sweep_id)
                    if not fill:
                        break
            if fill and keys and self._free_keyed:
                con.executemany("UPDATE sweeps SET free_key = ? WHERE id = ?", keys)
        return min(found, default=None)

    def sweep(self, sweep_id: int) -> dict:
        """One sweep as a dict: its columns (``config``, ``environment`` decoded) and
        ``counts``, the number of runs in each status.

        Raises:
            KeyError: no sweep has this id (also one beyond SQLite's integers).
        """
        sweep_id = _check_id(sweep_id, "sweep", self.path)
        row = self.con.execute(
            "SELECT id, key, name, task, model, config, created_at, environment FROM sweeps "
            "WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise UnknownId(f"no sweep with id {sweep_id!r} in {self.path}")
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(self.con.execute(
            "SELECT status, COUNT(*) FROM runs WHERE sweep_id = ? GROUP BY status",
            (sweep_id,)).fetchall())
        return {"sweep_id": row[0], "key": row[1], "name": row[2], "task": row[3],
                "model": row[4], "config": _loads(row[5]), "created_at": row[6],
                "environment": _loads(row[7]), "counts": counts}

    def get_run(self, run_id: int) -> Run:
        """One run. Raises KeyError if no run has this id."""
        run_id = _check_id(run_id, "run", self.path)
        row = self.con.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?",
                               (run_id,)).fetchone()
        if row is None:
            raise UnknownId(f"no run with id {run_id!r} in {self.path}")
        return _run_from_row(row)

    def list_runs(self, sweep_id: int, status: str | Iterable[str] | None = None) -> list[Run]:
        """The runs of a sweep in the order they were added, optionally only those in the
        given status(es). Raises KeyError for an unknown sweep."""
        sweep_id = self._require_sweep(sweep_id)
        where, wanted = _statuses(status)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE sweep_id = ?" + (f" AND {where}" if where else "")
        return [_run_from_row(r) for r in self.con.execute(sql + " ORDER BY id",
                                                           [sweep_id, *wanted])]

    def pending_runs(self, sweep_id: int) -> list[Run]:
        """The runs still to train: ``pending`` ones and ``running`` ones (a killed
        process's: :meth:`start_run` redoes them from scratch), in the order added.

        This only reads: a ``running`` run of a live process would be listed too, which is
        why a sweep is trained under :meth:`lock_sweep` (as :func:`~.sweep.run_sweep` does).
        """
        return self.list_runs(sweep_id, _OPEN)

    def count_runs(self, status: str | Iterable[str] | None = None) -> int:
        """How many runs the whole store holds, every sweep's, optionally only those in the
        given status(es): ``count_runs(TERMINAL)`` counts the runs that ended."""
        where, wanted = _statuses(status)
        sql = "SELECT COUNT(*) FROM runs" + (f" WHERE {where}" if where else "")
        return int(self.con.execute(sql, wanted).fetchone()[0])

    def rates(self, sweep_id: int) -> list[float]:
        """The learning rates of a sweep's runs (their ``lr``: the rates tried or to try,
        a grid's extensions past its edges included), each once, in ascending order; runs
        without a numeric ``lr`` are left out. Raises KeyError for an unknown sweep."""
        sweep_id = self._require_sweep(sweep_id)
        return [row[0] for row in self.con.execute(
            "SELECT DISTINCT lr FROM runs WHERE sweep_id = ? AND lr IS NOT NULL ORDER BY lr",
            (sweep_id,))]

    # -------------------------------------------------------------- writes

    def open_sweep(self, config: Mapping, name: str | None = None,
                   environment: Mapping | None = None) -> int:
        """The id of the sweep with this configuration, created if new.

        ``config`` is everything that defines the sweep (task, model, training settings,
        the grid...); its key finds the sweep again, which is how a resumed sweep gets its
        runs back: :func:`~.jsonio.sweep_keys`, its :func:`canonical_key` with the order of
        its optimizers and rates and how its model is named left out, or the key an earlier
        optimlab stored it under.
        A new sweep is stored with the configuration as given (that order, for reports).
        ``name`` and ``environment`` (default :func:`collect_environment`) are recorded at
        creation only and are not part of the key: reopening keeps the original ones.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"a sweep config is a dict, got {type(config).__name__}")
        config_json = canonical_json(config)
        key = sweep_keys(config)[0]
        # by its keys (indexed) first; the configurations of sweeps without a free_key (an
        # earlier optimlab's) are read once, under the write lock, which fills their key
        found = self._find_sweep(self.con, config, unkeyed=self.readonly)
        if found is not None:
            return found
        env = _dumps(collect_environment() if environment is None else environment)
        with self._write() as con:
            row = self._find_sweep(con, config, fill=True)
            if row is not None:  # created by another process meanwhile
                return row
            columns = "key, name, task, model, config, created_at, environment"
            values = [key, name, _task_name(config.get("task")), _task_name(config.get("model")),
                      config_json, _now(), env]
            if self._free_keyed:
                columns += ", free_key"
                values.append(_free_key(json_data(config)))
            con.execute(f"INSERT INTO sweeps ({columns}) VALUES "
                        f"({', '.join('?' * len(values))})", values)
            # read back rather than lastrowid: the same SQL on every database
            return con.execute("SELECT id FROM sweeps WHERE key = ?", (key,)).fetchone()[0]

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
        sweep_id = _check_id(sweep_id, "sweep", self.path)
        ids = []
        with self._write() as con:
            if con.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone() is None:
                raise UnknownId(f"no sweep with id {sweep_id!r} in {self.path}")
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
        run_id = _check_id(run_id, "run", self.path)
        with self._write() as con:
            status = self._status(run_id)
            if status in TERMINAL:
                raise ValueError(f"run {run_id} is already {status}; it cannot start again")
            con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            con.execute("UPDATE runs SET status = 'running', started_at = ?, finished_at = NULL, "
                        "error = NULL, summary = NULL WHERE id = ?", (_now(), run_id))

    def reset_runs(self, run_ids: Iterable[int]) -> list[int]:
        """Put the runs of ``run_ids`` that are still ``running`` (started, not ended) back to
        ``pending``, as if never started, in one transaction: their partial metric points
        are deleted and ``started_at``, ``summary`` and ``error`` cleared, so a resume
        trains them from scratch and no reader mistakes them for a run training now. Runs
        that ended, or never started, are left as they are. Returns the ids put back.

        For a process stopped while training (Ctrl-C): :func:`~optimlab.bench.sweep.run_sweep`
        calls it with the runs it started and did not end.

        Raises:
            KeyError: no run has one of the ids.
        """
        ids = sorted({_check_id(run_id, "run", self.path) for run_id in run_ids})
        if not ids:
            return []
        back = []
        with self._write() as con:
            found: dict[int, str] = {}
            for chunk in _chunks(ids):
                found.update(con.execute(
                    f"SELECT id, status FROM runs WHERE id IN ({', '.join('?' * len(chunk))})",
                    chunk).fetchall())
            missing = [run_id for run_id in ids if run_id not in found]
            if missing:
                raise UnknownId(f"no run with id {missing[0]!r} in {self.path}")
            back = [run_id for run_id in ids if found[run_id] == "running"]
            for chunk in _chunks(back):
                marks = ", ".join("?" * len(chunk))
                con.execute(f"DELETE FROM metrics WHERE run_id IN ({marks})", chunk)
                con.execute(f"UPDATE runs SET status = 'pending', started_at = NULL, "
                            f"finished_at = NULL, error = NULL, summary = NULL "
                            f"WHERE id IN ({marks}) AND status = 'running'", chunk)
        return back

    def _insert_points(self, con: sqlite3.Connection, rows: list[tuple]) -> None:
        run_ids = sorted({r[0] for r in rows})
        found = {}
        for chunk in _chunks(run_ids):
            found.update(con.execute(
                f"SELECT id, status FROM runs WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk).fetchall())
        for run_id in run_ids:
            if run_id not in found:
                raise UnknownId(f"no run with id {run_id!r} in {self.path}")
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
        rows = _points(run_id, step, values, wall_time, self.path)
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
            points += _points(run_id, step, values, wall_time, self.path)
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
        run_id = _check_id(run_id, "run", self.path)
        rows = []
        for row in points or ():
            try:
                step, values, wall_time = row
            except (TypeError, ValueError):
                raise ValueError(f"points are (step, values, wall_time), got {row!r}") from None
            rows += _points(run_id, step, values, wall_time, self.path)
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
