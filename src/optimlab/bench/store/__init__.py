"""The run store: every sweep, run, configuration and metric point, in one SQLite file
or, for a cluster of machines, in a PostgreSQL database.

``RunStore(path)`` opens (or creates) the store; the default ``optimlab-runs.db`` lies in
the current working directory and ``":memory:"`` gives a throw-away store. A file store
runs in WAL mode (``journal_mode=WAL``, ``synchronous=NORMAL``): readers never block the
writer, so a live sweep can be watched from another process (``RunStore(path,
readonly=True)``), and a commit survives the process being killed at any moment.

``RunStore("postgresql://user@host:5432/optimlab")`` (any SQLAlchemy URL of a PostgreSQL
database; ``sqlite:///runs.db`` is the file) opens the same store on a server, which
several drivers on several machines share: the same tables, queries, readers and resume
semantics (:mod:`.server`).

>>> store = RunStore(":memory:")
>>> sweep = store.open_sweep({"task": "two-moons", "model": "mlp", "steps": 3})
>>> store.open_sweep({"steps": 3, "model": "mlp", "task": "two-moons"}) == sweep
True
>>> run, = store.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.01}, "seed": 0}])
>>> [r.id for r in store.pending_runs(sweep)] == [run]
True
>>> store.start_run(run)
>>> store.log_metrics(run, 0, {"train_loss": 0.7, "test_loss": float("nan")}, wall_time=0.0)
>>> store.finish_run(run, "finished", summary={"final_train_loss": 0.7})
>>> store.pending_runs(sweep)
[]
>>> store.close()

What a file is taken for
------------------------
* A **damaged** file (SQLite's ``PRAGMA quick_check`` fails when it is opened, or a read
  meets a damaged page later) raises :class:`StoreError` with one line naming the file and
  the reason, and is never written: "runs.db is damaged (database disk image is
  malformed): restore it from a copy or point --db at another file".
* An **empty** file (0 bytes, no ``-wal`` beside it) is a new store only when a writer
  opens it and may write it; read-only (``readonly=True``), or not writable, it is refused
  with :class:`StoreError` (an empty file is often a failed copy: nothing to read).
* A **read-only** file or directory (or file system) is read with ``readonly=True``
  (SQLite's ``mode=ro``, or ``immutable=1`` where a WAL reader cannot create its ``-shm``
  file); a writer is refused with :class:`StoreError` when it opens it.
* A store whose tables lack a column of the schema (edited by hand, or by another program)
  is refused with :class:`StoreError` when it is opened, naming the table and column,
  rather than by the first write that needs it; extra columns are tolerated.
* Every SQLite error met later by a read or a write is a one-line :class:`StoreError`; ids
  beyond SQLite's 64-bit integers are unknown ids (:class:`UnknownId`, a ``KeyError`` whose
  message is one unquoted line), never ``OverflowError``.
* One process at a time trains a sweep: :meth:`RunStore.lock_sweep` (an OS lock on
  ``<store>-sweep<id>.lock``, released when its process ends, even by SIGKILL).

Where things are
----------------
``runstore``
    :class:`RunStore`, the store class: opening the file, write transactions, lookups and
    writes; how a killed sweep is resumed and what a commit guarantees.
``schema``
    The tables (version 1, column by column), the run statuses (:data:`STATUSES`,
    :data:`TERMINAL`), :class:`Run` (one row of ``runs``), :class:`StoreError` and
    :class:`UnknownId`.
``guard``
    The file itself: SQLite errors as one-line :class:`StoreError`, the damage check on
    open (``quick_check``, its cost), read-only opening, the per-sweep lock files.
``views``
    The DataFrame readers :meth:`RunStore.sweeps`, :meth:`~RunStore.runs` and
    :meth:`~RunStore.metrics` (pandas, imported when one is called).
``jsonio``
    Canonical JSON of configurations, hyperparameters and summaries:
    :func:`canonical_json`, :func:`canonical_key`, and the JSON columns' encoding.
``server``
    :class:`ServerRunStore`, the store on a PostgreSQL server (SQLAlchemy and psycopg,
    imported when a URL is opened): the server's types, advisory locks for the writers
    and for each sweep.
``environment``
    :func:`collect_environment`: python, platform, machine, host, library versions.

Dependencies point one way, down this list (a module imports only those below it)::

    server       -> runstore, schema        (SQLAlchemy and psycopg when a URL is opened)
    runstore     -> views, guard, schema, jsonio, environment
    views        -> schema, jsonio          (pandas when a reader is called)
    guard        -> schema
    schema       -> jsonio
    jsonio, environment -> the standard library only

The package needs only the standard library (and, for a server, SQLAlchemy and psycopg) and
imports nothing else from optimlab (its
modules import each other relatively), so it can be loaded by path without importing
torch, as the store's kill-and-resume test does.
"""

from __future__ import annotations

from .environment import collect_environment
from .jsonio import canonical_json, canonical_key
from .runstore import RunStore, check_store
from .schema import (
    DEFAULT_PATH,
    SCHEMA_VERSION,
    STATUSES,
    TERMINAL,
    Run,
    StoreError,
    SweepBusy,
    UnknownId,
)
from .server import ServerRunStore

__all__ = ["RunStore", "ServerRunStore", "Run", "StoreError", "SweepBusy", "UnknownId",
           "check_store",
           "canonical_json", "canonical_key", "collect_environment", "SCHEMA_VERSION", "STATUSES",
           "TERMINAL", "DEFAULT_PATH"]
