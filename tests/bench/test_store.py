"""The run store: schema, keys, idempotent sweeps and runs, metrics, readers, and a sweep
killed with SIGKILL that resumes without retraining what it finished."""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from optimlab.bench import store as store_module
from optimlab.bench.store import (
    SCHEMA_VERSION,
    RunStore,
    StoreError,
    canonical_json,
    canonical_key,
)

CONFIG = {"task": "two-moons", "model": "mlp", "train": {"steps": 100, "batch_size": 32}}
MEMBERS = [
    {"optimizer": "adam", "hparams": {"lr": 1e-3, "betas": (0.9, 0.999)}, "seed": 0},
    {"optimizer": "adam", "hparams": {"lr": 1e-2, "betas": (0.9, 0.999)}, "seed": 0},
    {"optimizer": "sgd", "hparams": {"lr": 0.1, "momentum": 0.9}, "seed": 1},
]


@pytest.fixture
def store(store_url):
    """A new store, on SQLite and on PostgreSQL (``store_url``, tests/bench/conftest.py)."""
    with RunStore(store_url) as s:
        yield s


def _rows(s: RunStore, run_id: int) -> list[tuple]:
    return s.con.execute("SELECT step, name, value, wall_time FROM metrics WHERE run_id = ? "
                         "ORDER BY step, name", (run_id,)).fetchall()


# ----------------------------------------------------------------------------- keys


def test_canonical_json_and_key_are_stable():
    config = {"b": (0.9, 0.999), "a": 1e-3, "nested": {"z": 1, "y": [1.5, None, True]}}
    text = '{"a":0.001,"b":[0.9,0.999],"nested":{"y":[1.5,null,true],"z":1}}'
    assert canonical_json(config) == text
    # pinned: changing the key derivation would orphan every stored sweep on resume
    assert canonical_key(config) == hashlib.sha256(text.encode()).hexdigest()
    assert canonical_key({"x": 1, "y": 2}) == canonical_key({"y": 2, "x": 1})
    assert canonical_key({"b": (1, 2)}) == canonical_key({"b": [1, 2]})
    assert canonical_key({"lr": np.float64(0.1), "s": np.int64(3)}) == canonical_key(
        {"lr": 0.1, "s": 3})
    # types are kept: 1, 1.0 and True are different configurations
    assert len({canonical_key({"v": v}) for v in (1, 1.0, True)}) == 3
    assert canonical_json({"v": 0.1 + 0.2}) == '{"v":0.30000000000000004}'
    assert canonical_json({"v": float("inf"), "w": float("nan")}) == '{"v":Infinity,"w":NaN}'
    with pytest.raises(TypeError, match="keys must be strings"):
        canonical_key({1: "a"})
    with pytest.raises(TypeError, match="cannot store"):
        canonical_key({"f": object()})


def test_a_sweeps_key_leaves_out_the_order_of_its_grid_and_how_its_model_is_named(tmp_path):
    """optimizers sgd,adam and adam,sgd, rates 0.1,0.01 and 0.01,0.1, a model left out (the
    top-level model None, train's the default's name) and the default named are one sweep,
    stored as first given. A configuration without a grid keeps its canonical key, and a
    sweep stored under the key of an earlier optimlab (the configuration as given, train
    naming the model as the top-level entry) is found by that configuration."""
    from optimlab.bench.store.jsonio import sweep_keys

    config = {"task": "digits", "model": None, "optimizers": ["sgd", "adam"],
              "lrs": [0.1, 0.01], "train": {"steps": 5, "model": "mlp"}}
    same = [{**config, "optimizers": ["adam", "sgd"]}, {**config, "lrs": [0.01, 0.1]},
            {**config, "model": "mlp"}]
    db = tmp_path / "runs.db"
    with RunStore(db) as s:
        sweep = s.open_sweep(config)
        assert [s.open_sweep(c) for c in same] == [sweep] * 3
        assert [s.find_sweep(c) for c in same] == [sweep] * 3
        assert s.sweep(sweep)["config"] == config and s.sweep(sweep)["model"] is None
        assert s.find_sweep({**config, "train": {"steps": 5, "model": "cnn"}}) is None
        assert s.find_sweep({**config, "lrs": [0.1, 0.03]}) is None
    assert sweep_keys(CONFIG) == [canonical_key(CONFIG)]  # pinned, as stored before
    given = {**config, "train": {"steps": 5, "model": None}}  # as an earlier optimlab stored it
    assert sweep_keys(config)[1] == canonical_key(given)
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE sweeps SET key = ?, config = ? WHERE id = ?",
                    (canonical_key(given), canonical_json(given), sweep))
    con.close()
    with RunStore(db) as s:
        assert s.find_sweep(config) == sweep and s.open_sweep(config) == sweep
        assert len(s.sweeps()) == 1  # found, not stored again


# ----------------------------------------------------------------------------- schema


def test_schema_version_and_wal_on_a_file(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 1
        assert s.journal_mode == "wal"
        assert s.con.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert s.con.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        tables = {r[0] for r in s.con.execute("SELECT name FROM sqlite_master "
                                              "WHERE type='table'")}
        assert tables == {"schema_version", "sweeps", "runs", "metrics"}
        s.open_sweep(CONFIG)
    # reopening keeps the data and does not recreate anything
    with RunStore(path) as s:
        assert s.con.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
        assert s.find_sweep(CONFIG) == 1
    # the WAL mode is persistent: a plain connection sees it too
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = 2")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"schema version 2, newer"):
        RunStore(path)
    with pytest.raises(StoreError, match="newer"):
        RunStore(path, readonly=True)


def test_bad_paths_and_foreign_files_are_named(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "runs.db"
    with pytest.raises(StoreError, match=str(missing.parent)):
        RunStore(missing)
    with pytest.raises(StoreError, match="is a directory"):
        RunStore(tmp_path)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all, not even close" * 100)
    with pytest.raises(StoreError, match=str(garbage)):
        RunStore(garbage)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE runs (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not an optimlab run store"):
        RunStore(other)
    with pytest.raises(StoreError, match="no such file"):
        RunStore(tmp_path / "absent.db", readonly=True)


def _foreign_db(path, *statements) -> bytes:
    """A SQLite file of another program (rollback journal, the default), closed; its bytes."""
    con = sqlite3.connect(path)
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()
    return Path(path).read_bytes()


def _journal_mode(path) -> str:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()


def test_a_foreign_database_is_refused_as_it_was_found(tmp_path):
    """A writer opening another program's database (journal_mode delete) refuses it without
    switching it to WAL or writing anything; WAL is set only for a new store or a store."""
    cases = {
        "app.db": ("CREATE TABLE users (name TEXT)", "INSERT INTO users VALUES ('ada')"),
        "versioned.db": ("CREATE TABLE schema_version (version INTEGER)",
                         "INSERT INTO schema_version VALUES (1)"),
    }
    for name, statements in cases.items():
        path = tmp_path / name
        raw = _foreign_db(path, *statements)
        with pytest.raises(StoreError, match="is not an optimlab run store") as err:
            RunStore(path)
        _one_line_naming(err, path)
        assert _journal_mode(path) == "delete", name
        assert path.read_bytes() == raw
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(name)) == [name]
    # a store found in rollback mode (copied with .backup, say) is a store: WAL again
    store_path = tmp_path / "runs.db"
    RunStore(store_path).close()
    con = sqlite3.connect(store_path)
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    with RunStore(store_path) as s:
        assert s.journal_mode == "wal"
    assert _journal_mode(store_path) == "wal"


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_a_new_store_waits_for_another_creator(tmp_path, kind, monkeypatch):
    """Another connection writing the new file in rollback mode (a second process creating
    the same store at the same instant) makes SQLite refuse the switch to WAL at once,
    without its busy handler: the store tries again until ``timeout``, then gives up with
    the one-line busy error. On a fake clock (the ``time.monotonic`` and ``time.sleep`` the
    store reads): the other writer lets go during the store's third sleep."""
    from types import SimpleNamespace

    from optimlab.bench.store import runstore

    paths = {name: tmp_path / name for name in ("runs.db", "held.db")}
    if kind == "empty":
        for path in paths.values():
            path.write_bytes(b"")
    others = {name: sqlite3.connect(path, isolation_level=None, check_same_thread=False)
              for name, path in paths.items()}
    now, reads, sleeps, released = [0.0], [], [], []

    def monotonic():
        reads.append(now[0])
        return now[0]

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == 3 and not released:  # runs.db's other writer lets go
            others["runs.db"].execute("ROLLBACK")
            released.append(len(sleeps))

    monkeypatch.setattr(runstore, "time", SimpleNamespace(monotonic=monotonic, sleep=sleep))
    try:
        for other in others.values():
            other.execute("BEGIN IMMEDIATE")  # the write lock of a rollback-mode file
        with RunStore(paths["runs.db"], timeout=10) as s:
            # it was refused while the other writer held the file, slept (doubling pauses)
            # and switched to WAL only once the writer had let go: after the third sleep
            assert released == [3] and sleeps == [0.001, 0.002, 0.004]
            assert s.journal_mode == "wal" and s.schema_version == SCHEMA_VERSION
            assert s.open_sweep(CONFIG) == 1
        now[0], reads[:], sleeps[:] = 0.0, [], []
        with pytest.raises(StoreError, match="is busy: database is locked") as err:
            RunStore(paths["held.db"], timeout=0.3)  # held.db's writer never lets go
        # reads[0] set the deadline (0.0 + 0.3, as the store computes it); each later read
        # after a refusal: every one but the last left time to wait, so it gave up at the
        # timeout, not before (and slept no longer than the 0.05 s pause cap)
        assert reads[0] == 0.0 and len(reads) == len(sleeps) + 2
        assert [0.0 + 0.3 - r > 0 for r in reads[1:]] == [True] * len(sleeps) + [False]
        assert sleeps[:7] == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.05]
        assert all(0 < t <= 0.05 for t in sleeps)
        _one_line_naming(err, paths["held.db"])
    finally:
        for other in others.values():
            other.close()


@pytest.mark.parametrize("table, row, match", [
    ("schema_version (version TEXT)", "'1.2.0'", r"holds '1\.2\.0', not an integer version"),
    ("schema_version (v INTEGER)", "1", "its schema_version table has no version column"),
    ("schema_version (version INTEGER)", "1", "has a schema_version table but no sweeps, "
                                               "runs, metrics tables"),
])
def test_a_foreign_schema_version_table_is_refused_in_one_line(tmp_path, table, row, match):
    """Another program's ``schema_version`` table: a one-line StoreError naming the file once
    (not a TypeError, not the prefix twice, not accepted to fail at the first query)."""
    path = tmp_path / "other.db"
    raw = _foreign_db(path, f"CREATE TABLE {table}", f"INSERT INTO schema_version VALUES ({row})")
    for readonly in (False, True):
        with pytest.raises(StoreError, match=match) as err:
            RunStore(path, readonly=readonly)
        message = _one_line_naming(err, path)
        assert message.startswith(f"{path} is not an optimlab run store: ")
        assert message.count(str(path)) == 1, message
    assert path.read_bytes() == raw and _journal_mode(path) == "delete"


def test_a_fresh_store_has_every_column_of_the_schema(store):
    """The columns a store is checked for on opening are exactly those it is created with."""
    from optimlab.bench.store.schema import _COLUMNS, _TABLES

    assert set(_COLUMNS) == set(_TABLES)
    for table, columns in _COLUMNS.items():
        assert store._columns(table) == set(columns), table


@pytest.mark.parametrize("table, columns", [
    ("metrics", ["wall_time"]), ("runs", ["error"]), ("runs", ["summary"]),
    ("runs", ["finished_at"]), ("runs", ["error", "summary"]),
])
def test_a_store_lacking_a_column_is_refused_on_opening(store_url, table, columns):
    """A table without one of the schema's columns is refused in one line when the store is
    opened (before anything trains), not by the first write that needs it, after training,
    leaving the run ``running``; a column the schema does not have is tolerated."""
    with RunStore(store_url) as s:
        path = s.path
        s.open_sweep(CONFIG)
        s.con.execute("ALTER TABLE runs ADD COLUMN note TEXT")
    with RunStore(store_url) as s:  # an extra column is tolerated
        for column in columns:
            s.con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    for readonly in (False, True):
        with pytest.raises(StoreError) as err:
            RunStore(store_url, readonly=readonly)
        assert str(err.value) == (f"{path} is not an optimlab run store of schema version "
                                  f"{SCHEMA_VERSION}: table {table} lacks column"
                                  f"{'s' if len(columns) > 1 else ''} {', '.join(columns)}")


def test_a_store_error_is_never_wrapped_twice(tmp_path):
    """A StoreError met while opening (it is also a sqlite3.Error) comes out as it is."""
    path = tmp_path / "view.db"
    _foreign_db(path, "CREATE VIEW schema_version AS SELECT version FROM gone")
    for readonly in (False, True):
        with pytest.raises(StoreError, match="no such table: main.gone") as err:
            RunStore(path, readonly=readonly)
        assert _one_line_naming(err, path).count("cannot use run store") == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path):
    """A pipe or a device (``/dev/null``) is refused before SQLite opens it (which would
    write a ``-journal`` file beside it)."""
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    for readonly in (False, True):
        with pytest.raises(StoreError, match="it is not a regular file") as err:
            RunStore(fifo, readonly=readonly)
        _one_line_naming(err, fifo)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.db"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes anywhere")
def test_unwritable_directory_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=str(locked / "runs.db")):
            RunStore(locked / "runs.db")
    finally:
        locked.chmod(0o700)


def test_default_path_is_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with RunStore() as s:
        assert s.path == str(tmp_path / "optimlab-runs.db")
    assert (tmp_path / "optimlab-runs.db").exists()


def test_memory_store_and_readonly_store(tmp_path):
    with RunStore(":memory:") as s:
        sweep = s.open_sweep(CONFIG)
        assert s.add_runs(sweep, MEMBERS) == [1, 2, 3]
    path = tmp_path / "runs.db"
    with RunStore(path) as s:
        sweep = s.open_sweep(CONFIG)
        s.add_runs(sweep, MEMBERS)
    with RunStore(path, readonly=True) as ro:
        assert [r.id for r in ro.pending_runs(sweep)] == [1, 2, 3]
        with pytest.raises(StoreError, match="read-only"):
            ro.start_run(1)
        with pytest.raises(StoreError, match="read-only"):
            ro.open_sweep({"other": 1})
    s = RunStore(path)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.sweep(sweep)


# ----------------------------------------------------------------------------- damaged files


def _filled_store(path) -> bytes:
    """A real store (a sweep, 20 runs, 4000 metric points), closed; its bytes."""
    with RunStore(path) as s:
        sweep = s.open_sweep({**CONFIG, "name": "a-marker-to-damage"})
        ids = s.add_runs(sweep, [{"optimizer": "adam", "hparams": {"lr": 0.1 * i}, "seed": i}
                                 for i in range(20)])
        for i in ids:
            s.start_run(i)
        s.log_many([(i, step, {"train_loss": 0.1, "test_loss": 0.2}, 1.0)
                    for i in ids for step in range(100)])
    assert not os.path.exists(f"{path}-wal")  # the last close checkpointed everything
    return path.read_bytes()


def _one_line_naming(err, path) -> str:
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.mark.parametrize("damage", ["overwritten", "truncated", "garbage"])
def test_a_damaged_store_is_refused_and_never_written(tmp_path, damage):
    path = tmp_path / "runs.db"
    raw = _filled_store(path)
    page = len(raw) // 4096 // 2 * 4096
    raw = {"overwritten": raw[:page] + b"\xa5" * 4096 + raw[page + 4096:],  # a page in the middle
           "truncated": raw[:len(raw) // 2 + 123],
           "garbage": b"this is not a database, whatever its name says " * 200}[damage]
    path.write_bytes(raw)
    reason = "file is not a database" if damage == "garbage" else "database disk image is malformed"
    for readonly in (False, True):
        with pytest.raises(StoreError) as err:
            RunStore(path, readonly=readonly)
        message = _one_line_naming(err, path)
        if damage == "garbage":  # no SQLite header: said so, not "damaged"
            assert "is not a run store: it is not a SQLite database" in message
            assert "restore the store from a copy" in message
        else:
            assert "is damaged" in message
            assert f"({reason})" in message and "restore it from a copy" in message
    assert path.read_bytes() == raw  # nothing was written to the damaged file
    assert not os.path.exists(f"{path}-wal") or os.path.getsize(f"{path}-wal") == 0


def test_damage_found_by_a_later_read_stops_every_write(tmp_path):
    """Damage quick_check cannot see (text that is not UTF-8) shows when it is read: a
    one-line StoreError, from the store's readers and from ad-hoc SQL alike, and from then
    on the store refuses to write."""
    path = tmp_path / "runs.db"
    raw = _filled_store(path)
    marker = b"a-marker-to-damage"
    assert raw.count(marker) == 1
    raw = raw.replace(marker, b"\xff" * len(marker))
    path.write_bytes(raw)
    with RunStore(path) as s:  # quick_check passes: the b-trees are sound
        assert s.damaged is None
        assert len(s.list_runs(1)) == 20  # what is sound still reads
        for read in (lambda: s.sweep(1), lambda: s.sweeps(),
                     lambda: s.con.execute("SELECT config FROM sweeps").fetchall(),
                     lambda: list(s.con.execute("SELECT config FROM sweeps"))):
            with pytest.raises(StoreError, match=r"is damaged \(Could not decode to UTF-8"):
                read()
        assert "UTF-8" in s.damaged
        writes = [lambda: s.open_sweep({"other": 1}), lambda: s.add_runs(1, MEMBERS),
                  lambda: s.start_run(1), lambda: s.log_metrics(1, 0, {"a": 1.0}),
                  lambda: s.finish_run(1, "finished")]
        for write in writes:
            with pytest.raises(StoreError, match="is damaged") as err:
                write()
            _one_line_naming(err, path)
    assert path.read_bytes() == raw


def test_sqlite_errors_after_opening_are_one_line_store_errors(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as s, RunStore(path, timeout=0.05) as other:
        sweep = s.open_sweep(CONFIG)
        with pytest.raises(StoreError, match="no such table: nowhere") as err:
            s.con.execute("SELECT * FROM nowhere")
        _one_line_naming(err, path)
        s.con.execute("BEGIN IMMEDIATE")  # hold the write lock
        try:
            with pytest.raises(StoreError, match="database is locked") as err:
                other.add_runs(sweep, MEMBERS)
            _one_line_naming(err, path)
        finally:
            s.con.execute("ROLLBACK")
        assert other.damaged is None and other.add_runs(sweep, MEMBERS) == [1, 2, 3]


def test_quick_check_is_remembered_while_the_file_is_unchanged(tmp_path, monkeypatch):
    """The damage check runs once per file version: a file with the same inode, size and
    modification time is not read again (what makes reopening cheap), a changed one is."""
    from optimlab.bench.store import guard

    monkeypatch.setattr(guard, "_VERIFIED", {})
    path = tmp_path / "runs.db"
    raw = _filled_store(path)
    RunStore(path, readonly=True).close()
    assert guard._identity(str(path)) in guard._VERIFIED
    stat = path.stat()
    page = len(raw) // 4096 // 2 * 4096
    with open(path, "r+b") as f:  # damage in place: same inode and size
        f.seek(page)
        f.write(b"\xa5" * 4096)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    RunStore(path, readonly=True).close()  # the remembered verdict: not read again
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(StoreError, match="is damaged"):
        RunStore(path, readonly=True)  # a changed file is checked again


# ----------------------------------------------------------------------------- empty files


def test_an_empty_file_is_a_new_store_only_for_a_writer(tmp_path):
    """Decision: a 0-byte file becomes a new store when a writer opens it and may write it;
    a reader is refused (an empty file is often a failed copy: there is nothing to read),
    and the file stays as it was."""
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match=r"is an empty file \(0 bytes\), not a run store") as err:
        RunStore(empty, readonly=True)
    _one_line_naming(err, empty)
    assert empty.read_bytes() == b""
    with RunStore(empty) as s:
        assert s.schema_version == SCHEMA_VERSION and s.open_sweep(CONFIG) == 1
    with RunStore(empty, readonly=True) as ro:
        assert ro.find_sweep(CONFIG) == 1
    # a file whose commits are all still in its -wal is not empty (a writer killed early)
    assert store_module.guard.is_empty(str(empty)) is False


# ----------------------------------------------------------------------------- read-only files


def _as_another_user(fn):
    """Run ``fn()`` where file permissions apply: in this process when it is not root; as
    root (which writes anywhere), in a forked child that became ``nobody`` (uid 65534).
    Returns fn's result; re-raises its failure as an AssertionError with the child's
    traceback."""
    if os.geteuid() != 0:
        return fn()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, only the store and the OS
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = ("ok", fn(), [str(w.message) for w in caught])
        except BaseException:
            out = ("error", traceback.format_exc(), [])
        try:
            os.write(write, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    if not data:
        pytest.fail("the child running as nobody died without an answer")
    kind, value, caught = pickle.loads(data)
    if kind == "error":
        raise AssertionError(f"as uid 65534:\n{value}")
    for message in caught:
        warnings.warn(message)
    return value


@pytest.fixture
def shared_dir(tmp_path):
    """A folder another user can reach (pytest's own tmp folders are 0o700 under root);
    made writable again and removed at the end."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    folder = tempfile.mkdtemp(prefix="optimlab-ro-")
    os.chmod(folder, 0o755)
    try:
        yield Path(folder)
    finally:
        for root, dirs, _ in os.walk(folder):
            os.chmod(root, 0o755)
        shutil.rmtree(folder, ignore_errors=True)


def _make_readonly(folder) -> None:
    for f in folder.iterdir():
        f.chmod(0o444)
    folder.chmod(0o555)


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(os, "geteuid"), reason="POSIX only")
def test_a_store_in_a_readonly_directory_is_read_and_not_written(shared_dir):
    """File 0o444 in a directory 0o555 (as on a read-only file system): readonly=True reads
    it, a writer is refused in one line, and nothing is created or changed beside it.
    Under root the checks run in a child that became ``nobody``, where chmod applies."""
    folder = shared_dir / "ro"
    folder.mkdir()
    path = folder / "runs.db"
    with RunStore(path) as s:
        sweep = s.open_sweep(CONFIG)
        s.add_runs(sweep, MEMBERS)
        s.start_run(1)
        s.log_metrics(1, 0, {"train_loss": 0.5})
    (folder / "empty.db").write_bytes(b"")
    _make_readonly(folder)
    before = {f.name: f.read_bytes() for f in folder.iterdir()}

    def check():
        with RunStore(path, readonly=True) as ro:
            # a clean WAL store with no -shm, which cannot be created here: immutable=1
            assert ro.immutable
            assert [r.status for r in ro.list_runs(sweep)] == ["running", "pending", "pending"]
            assert ro.sweep(sweep)["counts"]["pending"] == 2
            assert ro.con.execute("SELECT COUNT(*) FROM metrics").fetchone() == (1,)
            with pytest.raises(StoreError, match="read-only"):
                ro.start_run(2)
        messages = []
        for target, match in [(path, "the file is read-only"),
                              (folder / "empty.db", r"empty read-only file \(0 bytes\)"),
                              (folder / "new.db", "its directory .* is not writable")]:
            with pytest.raises(StoreError, match=match) as err:
                RunStore(target)
            messages.append(_one_line_naming(err, target))
        return messages

    messages = _as_another_user(check)
    assert len(messages) == 3
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(os, "geteuid"), reason="POSIX only")
def test_a_readonly_directory_with_a_wal_is_read_through_it(shared_dir):
    """A store left with -wal and -shm (its writer killed) in a read-only directory: mode=ro
    reads the commits that are still only in the -wal."""
    folder, copy = shared_dir / "ro", shared_dir / "copy"
    folder.mkdir()
    copy.mkdir()
    path = folder / "runs.db"
    with RunStore(path) as s:
        s.open_sweep(CONFIG)
        with RunStore(path) as live:
            live.open_sweep({"second": True})  # only in the -wal while both are open
            for f in folder.iterdir():  # the files as a SIGKILL would leave them
                shutil.copyfile(f, copy / f.name)
    assert {f.name for f in copy.iterdir()} == {"runs.db", "runs.db-wal", "runs.db-shm"}
    _make_readonly(copy)

    def check():
        with RunStore(copy / "runs.db", readonly=True) as ro:
            return ro.immutable, ro.find_sweep({"second": True})

    assert _as_another_user(check) == (False, 2)


# ----------------------------------------------------------------------------- sweep locks


def test_a_sweep_is_trained_under_one_lock_at_a_time(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as a, RunStore(path) as b:
        sweep = a.open_sweep(CONFIG)
        other = a.open_sweep({"other": 1})
        lock_file = tmp_path / f"runs.db-sweep{sweep}.lock"
        with a.lock_sweep(sweep):
            assert lock_file.read_text().split()[:2] == [str(os.getpid()), socket.gethostname()]
            with pytest.raises(StoreError, match=rf"sweep {sweep} of .* is being run or resumed "
                                                 rf"by process {os.getpid()} on this machine"
                               ) as err:
                with b.lock_sweep(sweep):
                    pass
            _one_line_naming(err, path)
            with a.lock_sweep(sweep):  # nested on the same store object: shared
                pass
            with pytest.raises(StoreError, match="is being run or resumed"):
                with b.lock_sweep(sweep):  # still held by the outer block
                    pass
            with b.lock_sweep(other):  # another sweep of the same store is free
                pass
        assert not lock_file.exists()  # released and removed
        with b.lock_sweep(sweep):
            with pytest.raises(StoreError, match="is being run or resumed"):
                with a.lock_sweep(sweep):
                    pass
        with pytest.raises(KeyError, match="no sweep with id 99"):
            with a.lock_sweep(99):
                pass
        with pytest.raises(KeyError, match="no sweep with id"):
            with a.lock_sweep(2**70):
                pass
    with RunStore(path, readonly=True) as ro:
        with pytest.raises(StoreError, match="read-only"):
            with ro.lock_sweep(sweep):
                pass
    with RunStore(":memory:") as m:  # nothing to lock: no other process sees it
        with m.lock_sweep(m.open_sweep(CONFIG)), m.lock_sweep(1):
            pass
    b = RunStore(path)
    b.lock_sweep(sweep).__enter__()
    b.close()  # closing the store releases its locks
    with RunStore(path) as a, a.lock_sweep(sweep):
        pass


LOCK_SCRIPT = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("_store_under_test", sys.argv[1])
    store_module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = store_module
    spec.loader.exec_module(store_module)
    store = store_module.RunStore(sys.argv[2])
    with store.lock_sweep(1):
        print("LOCKED", flush=True)
        time.sleep(300)  # the parent kills us here
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_a_sweep_lock_held_by_another_process_refuses_and_dies_with_it(tmp_path, store_url):
    path = store_url
    on_file = not store_url.startswith("postgresql")  # the file lock leaves its file behind
    with RunStore(path) as s:
        s.open_sweep(CONFIG)
    script = tmp_path / "lock.py"
    script.write_text(LOCK_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), store_module.__file__, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "LOCKED", proc.stderr.read()
        with RunStore(path) as s:
            with pytest.raises(StoreError, match=rf"sweep 1 of .* is being run or resumed by "
                                                 rf"process {proc.pid} on this machine") as err:
                with s.lock_sweep(1):
                    pass
            _one_line_naming(err, path)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
            # its lock file is left behind, holding the dead pid, and blocks nothing
            if on_file:
                assert (tmp_path / "runs.db-sweep1.lock").read_text().split()[0] == str(
                    proc.pid)
            # the server sees the connection close a moment after the kill
            deadline = time.monotonic() + 30
            while True:
                try:
                    with s.lock_sweep(1):
                        if on_file:
                            assert (tmp_path / "runs.db-sweep1.lock").read_text().split()[
                                0] == str(os.getpid())
                    break
                except StoreError:
                    if on_file or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_every_path_to_one_store_takes_the_same_sweep_lock(tmp_path):
    """A symlink to the store file, or a path through a symlinked directory, is the same
    store: its sweeps are locked by the lock file beside the real file."""
    real = tmp_path / "sub" / "runs.db"
    real.parent.mkdir()
    (tmp_path / "sub" / "link.db").symlink_to("runs.db")
    (tmp_path / "lnk").symlink_to("sub")
    with RunStore(real) as a:
        sweep = a.open_sweep(CONFIG)
        for other in (tmp_path / "sub" / "link.db", tmp_path / "lnk" / "runs.db"):
            with RunStore(other) as b:
                with a.lock_sweep(sweep):
                    assert (tmp_path / "sub" / f"runs.db-sweep{sweep}.lock").exists()
                    with pytest.raises(StoreError, match="is being run or resumed") as err:
                        with b.lock_sweep(sweep):
                            pass
                    _one_line_naming(err, other)  # the message names the path it was given
                with b.lock_sweep(sweep):  # and it takes the lock once a has let go
                    with pytest.raises(StoreError, match="is being run or resumed"):
                        with a.lock_sweep(sweep):
                            pass
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["link.db", "runs.db"]


@pytest.mark.skipif(not hasattr(os, "link"), reason="needs hard links")
def test_a_store_with_two_names_is_refused_for_writing_and_read_through_either(tmp_path):
    """A hard link is a second name SQLite would keep a second write-ahead log beside, and
    a second sweep lock: writing through either name is refused, untouched; reading is not."""
    with RunStore(tmp_path / "runs.db") as a:
        a.open_sweep(CONFIG)
    os.link(tmp_path / "runs.db", tmp_path / "twin.db")
    before = (tmp_path / "runs.db").read_bytes()
    for name in ("runs.db", "twin.db"):
        with pytest.raises(StoreError, match="has 2 names .hard links.") as err:
            RunStore(tmp_path / name)
        _one_line_naming(err, tmp_path / name)
        with RunStore(tmp_path / name, readonly=True) as r:
            assert r.find_sweep(CONFIG) is not None
    assert (tmp_path / "runs.db").read_bytes() == before
    assert not list(tmp_path.glob("*.lock"))
    os.unlink(tmp_path / "twin.db")  # one name again: writable
    with RunStore(tmp_path / "runs.db") as a:
        assert a.open_sweep(CONFIG) == a.find_sweep(CONFIG)


# ----------------------------------------------------------------------------- ids


@pytest.mark.parametrize("bad", [2**63, 2**70, -2**63 - 1])
def test_ids_beyond_sqlite_integers_are_unknown_ids_not_overflow(store, bad):
    """Every public method that takes a sweep or run id: KeyError in one line (as for an
    unknown id), never OverflowError from binding the number."""
    sweep = store.open_sweep(CONFIG)
    run, = store.add_runs(sweep, MEMBERS[:1])
    store.start_run(run)
    calls = {
        "sweep": lambda: store.sweep(bad), "get_run": lambda: store.get_run(bad),
        "list_runs": lambda: store.list_runs(bad), "pending_runs": lambda: store.pending_runs(bad),
        "runs": lambda: store.runs(bad), "metrics": lambda: store.metrics(bad),
        "metrics(run_ids)": lambda: store.metrics(run_ids=[run, bad]),
        "add_runs": lambda: store.add_runs(bad, MEMBERS), "start_run": lambda: store.start_run(bad),
        "log_metrics": lambda: store.log_metrics(bad, 0, {"a": 1.0}),
        "log_many": lambda: store.log_many([(run, 0, {"a": 1.0}, 0.0), (bad, 0, {"a": 1.0}, 0.0)]),
        "finish_run": lambda: store.finish_run(bad, "finished"),
        "lock_sweep": lambda: store.lock_sweep(bad).__enter__(),
    }
    for name, call in calls.items():
        with pytest.raises(KeyError, match=f"no (sweep|run) with id {bad} in ") as err:
            call()
        assert "\n" not in str(err.value), name
    # other integers the store keeps: steps and seeds
    with pytest.raises(ValueError, match=f"step {bad} is out of range"):
        store.log_metrics(run, bad, {"a": 1.0})
    with pytest.raises(ValueError, match=f"member seed {bad} is out of range"):
        store.add_runs(sweep, [{"optimizer": "adam", "seed": bad}])
    assert store.metrics(sweep).empty  # nothing of the refused calls was written
    # numpy integers are ids too; other things are not
    assert store.sweep(np.int64(sweep))["sweep_id"] == sweep
    assert store.get_run(np.int32(run)).id == run
    with pytest.raises(TypeError, match="a sweep id is an integer"):
        store.sweep("1")


# ----------------------------------------------------------------------------- sweeps, runs


def test_an_unknown_id_says_so_in_one_unquoted_line(store):
    """store.runs(999) raised KeyError('no sweep with id 999 in ...'), which prints quoted;
    the error is still a KeyError (and a LookupError) but reads as the sentence it is."""
    from optimlab.bench.store import UnknownId

    sweep = store.open_sweep(CONFIG)
    calls = {"runs": lambda: store.runs(999), "metrics": lambda: store.metrics(999),
             "sweep": lambda: store.sweep(999), "list_runs": lambda: store.list_runs(999),
             "get_run": lambda: store.get_run(999), "beyond SQLite": lambda: store.runs(2**70),
             "metrics(run_ids)": lambda: store.metrics(sweep, run_ids=[2**70])}
    for name, call in calls.items():
        with pytest.raises(UnknownId) as err:
            call()
        assert isinstance(err.value, KeyError) and isinstance(err.value, LookupError), name
        text = str(err.value)
        assert text.startswith("no ") and "\n" not in text, (name, text)
        assert not text.startswith(("'", '"')), (name, text)
    with pytest.raises(KeyError, match=r"^no sweep with id 999 in "):
        store.runs(999)


@pytest.mark.parametrize("path", [5, None, 1.5, ["runs.db"]])
def test_a_store_path_of_the_wrong_kind_is_refused(path):
    with pytest.raises(TypeError, match=rf"^RunStore: path must be a file path \(str or "
                                        rf"os.PathLike\) or ':memory:', got "
                                        rf"{type(path).__name__} "):
        RunStore(path)


@pytest.mark.parametrize("timeout, error, match", [
    (-1, ValueError, r"must be a finite number of seconds >= 0, got -1$"),
    (math.nan, ValueError, r"must be a finite number of seconds >= 0, got nan$"),
    (math.inf, ValueError, r"must be a finite number of seconds >= 0, got inf$"),
    ("30", TypeError, r"must be a number of seconds, got str '30'$"),
    (True, TypeError, r"must be a number of seconds, got bool True$")])
def test_a_timeout_that_is_no_wait_is_refused(tmp_path, timeout, error, match):
    """timeout=-1 was taken without a word (and inf failed as OverflowError)."""
    with pytest.raises(error, match=r"^RunStore: timeout " + match):
        RunStore(tmp_path / "runs.db", timeout=timeout)
    assert not (tmp_path / "runs.db").exists()  # refused before the file was made
    for fine in (0, 0.5, 30):
        RunStore(tmp_path / "runs.db", timeout=fine).close()
    # the server store too, before it tries to connect (nothing listens on port 1)
    with pytest.raises(error, match=r"^RunStore: timeout " + match):
        RunStore("postgresql://optimlab@127.0.0.1:1/runs", timeout=timeout)


@pytest.mark.parametrize("readonly", ["False", 1, None])
def test_readonly_is_a_bool(tmp_path, readonly):
    """readonly="False" opened the store read-only (a non-empty string is true), and its
    writes were refused."""
    with pytest.raises(TypeError, match=r"^RunStore: readonly must be True or False, got "):
        RunStore(tmp_path / "runs.db", readonly=readonly)
    with pytest.raises(TypeError, match=r"^RunStore: readonly must be True or False, got "):
        RunStore("postgresql://optimlab@127.0.0.1:1/runs", readonly=readonly)


def test_open_sweep_is_idempotent(store):
    a = store.open_sweep(CONFIG, name="first", environment={"machine": "test"})
    reordered = {"train": {"batch_size": 32, "steps": 100}, "model": "mlp", "task": "two-moons"}
    assert store.open_sweep(reordered, name="renamed") == a
    b = store.open_sweep({**CONFIG, "model": "cnn"})
    assert b != a
    assert store.open_sweep({**CONFIG, "model": "cnn"}) == b
    assert store.find_sweep(CONFIG) == a and store.find_sweep({"x": 1}) is None
    info = store.sweep(a)
    assert info["name"] == "first"  # recorded at creation, not changed by reopening
    assert info["task"] == "two-moons" and info["model"] == "mlp"
    assert info["config"] == CONFIG and info["environment"] == {"machine": "test"}
    assert info["sweep_id"] == a and info["key"] == canonical_key(CONFIG)
    assert info["counts"] == dict.fromkeys(store_module.STATUSES, 0)
    env = store.sweep(b)["environment"]  # collected by default
    assert env["python"] and env["machine"] and "torch" in env["versions"]
    with pytest.raises(KeyError, match="no sweep with id 99"):
        store.sweep(99)
    with pytest.raises(KeyError, match="99"):
        store.pending_runs(99)


@dataclass(frozen=True)
class _Member:
    optimizer: str
    hparams: dict
    seed: int = 0


def test_add_runs_is_idempotent(store):
    sweep = store.open_sweep(CONFIG)
    ids = store.add_runs(sweep, MEMBERS)
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert store.add_runs(sweep, MEMBERS) == ids
    assert store.add_runs(sweep, MEMBERS[::-1]) == ids[::-1]
    # a grown grid adds only the new member; objects with the attributes work too
    new = _Member("lion", {"lr": 1e-4}, seed=2)
    more = store.add_runs(sweep, [*MEMBERS, new, MEMBERS[0]])
    assert more[:3] == ids and more[4] == ids[0] and more[3] not in ids
    assert store.con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 4
    # the same member in another sweep is another run
    other = store.open_sweep({"task": "other"})
    assert set(store.add_runs(other, MEMBERS)).isdisjoint(ids)
    run = store.get_run(ids[0])
    assert run.member == {"optimizer": "adam", "hparams": {"lr": 1e-3, "betas": [0.9, 0.999]},
                          "seed": 0}
    assert run.status == "pending" and run.started_at is None
    assert store.con.execute("SELECT lr FROM runs WHERE id = ?", (ids[2],)).fetchone()[0] == 0.1
    assert store.add_runs(sweep, [{"optimizer": "sgd"}]) == store.add_runs(
        sweep, [{"optimizer": "sgd", "hparams": {}, "seed": 0}])
    with pytest.raises(ValueError, match="unknown member fields"):
        store.add_runs(sweep, [{"optimizer": "sgd", "lr": 0.1}])
    with pytest.raises(ValueError, match="seed"):
        store.add_runs(sweep, [{"optimizer": "sgd", "seed": 1.5}])
    with pytest.raises(KeyError, match="no sweep with id 42"):
        store.add_runs(42, MEMBERS)


def test_two_connections_share_one_sweep(store_url):
    path = store_url
    with RunStore(path) as a, RunStore(path) as b:
        assert a.open_sweep(CONFIG) == b.open_sweep(CONFIG)
        assert a.add_runs(1, MEMBERS) == b.add_runs(1, MEMBERS)
        a.start_run(1)
        assert b.get_run(1).status == "running"


# ----------------------------------------------------------------------------- lifecycle


def test_status_transitions(store):
    sweep = store.open_sweep(CONFIG)
    r1, r2, r3 = store.add_runs(sweep, MEMBERS)
    with pytest.raises(ValueError, match="pending, not running"):
        store.log_metrics(r1, 0, {"train_loss": 1.0}, 0.0)
    store.start_run(r1)
    first_start = store.get_run(r1).started_at
    store.log_metrics(r1, 0, {"train_loss": 1.0}, 0.0)
    # a running run left by a killed process starts again from scratch
    store.start_run(r1)
    assert _rows(store, r1) == [] and store.get_run(r1).started_at > first_start
    store.log_metrics(r1, 0, {"train_loss": 1.0}, 0.0)
    store.finish_run(r1, "finished", summary={"final_train_loss": 1.0})
    run = store.get_run(r1)
    assert run.status == "finished" and run.finished_at >= run.started_at
    assert run.summary == {"final_train_loss": 1.0} and run.error is None
    for call in (lambda: store.start_run(r1), lambda: store.finish_run(r1, "failed"),
                 lambda: store.log_metrics(r1, 1, {"train_loss": 0.5}, 1.0)):
        with pytest.raises(ValueError, match="finished"):
            call()
    assert _rows(store, r1) == [(0, "train_loss", 1.0, 0.0)]
    # a run may fail before it starts; diverged runs carry their reason
    store.finish_run(r2, "failed", error="ValueError: bad lr")
    store.start_run(r3)
    store.finish_run(r3, "diverged", summary={"final_train_loss": math.inf},
                     error="train loss became inf at step 3")
    assert [(r.status, r.error) for r in store.list_runs(sweep)] == [
        ("finished", None), ("failed", "ValueError: bad lr"),
        ("diverged", "train loss became inf at step 3")]
    assert store.pending_runs(sweep) == []
    assert store.sweep(sweep)["counts"] == {"pending": 0, "running": 0, "finished": 1,
                                            "diverged": 1, "failed": 1}
    with pytest.raises(ValueError, match="finishes as one of"):
        store.finish_run(r1, "done")
    with pytest.raises(ValueError, match="unknown run status"):
        store.list_runs(sweep, "done")
    with pytest.raises(KeyError, match="no run with id 77"):
        store.start_run(77)
    with pytest.raises(KeyError, match="no run with id 77"):
        store.log_metrics(77, 0, {"x": 1.0}, 0.0)
    # the CHECK constraint guards raw SQL too (on SQLite the error is also sqlite3's class)
    with pytest.raises(StoreError, match="(?i)check constraint") as err:
        store.con.execute("UPDATE runs SET status = 'bogus' WHERE id = ?", (r1,))
    assert isinstance(err.value, sqlite3.IntegrityError) == store.path.endswith(".db")


def test_pending_runs_lists_pending_and_running_in_order(store):
    sweep = store.open_sweep(CONFIG)
    r1, r2, r3 = store.add_runs(sweep, MEMBERS)
    store.start_run(r2)
    store.start_run(r3)
    store.finish_run(r3, "finished")
    assert [(r.id, r.status) for r in store.pending_runs(sweep)] == [(r1, "pending"),
                                                                     (r2, "running")]


# ----------------------------------------------------------------------------- metrics


def test_metrics_round_trip_non_finite_values(store):
    sweep = store.open_sweep(CONFIG)
    run, other = store.add_runs(sweep, MEMBERS[:2])
    store.start_run(run)
    store.start_run(other)
    values = {"train_loss": math.inf, "test_loss": math.nan, "test_metric": -math.inf,
              "tiny": 5e-324, "neg_zero": -0.0, "f32": np.float32(0.1), "skip": None}
    store.log_metrics(run, 0, values, wall_time=0.25)
    store.log_metrics(run, 1, {"train_loss": 2.0}, wall_time=0.5)
    store.log_metrics(run, 1, {"train_loss": 1.5}, wall_time=0.75)  # same point: last wins
    rows = {(step, name): (value, wall) for step, name, value, wall in _rows(store, run)}
    assert rows[(0, "train_loss")] == (math.inf, 0.25)
    assert rows[(0, "test_loss")] == (None, 0.25)  # SQLite keeps NaN as NULL
    assert rows[(0, "test_metric")][0] == -math.inf
    assert rows[(0, "tiny")][0] == 5e-324
    assert rows[(0, "neg_zero")][0] == 0.0  # SQLite drops the sign of -0.0
    assert rows[(0, "f32")][0] == float(np.float32(0.1))
    assert rows[(1, "train_loss")] == (1.5, 0.75)
    assert (0, "skip") not in rows and len(rows) == 7
    # log_many writes all rows or none
    not_started, = store.add_runs(sweep, MEMBERS[2:])
    with pytest.raises(ValueError, match="not running"):
        store.log_many([(other, 0, {"train_loss": 3.0}, 0.1),
                        (not_started, 0, {"train_loss": 3.0}, 0.1)])
    with pytest.raises(KeyError, match="no run with id 99"):
        store.log_many([(other, 0, {"train_loss": 3.0}, 0.1), (99, 0, {"x": 1.0}, 0.1)])
    assert _rows(store, other) == []
    store.log_many([(other, s, {"train_loss": 3.0 - s, "test_loss": math.nan}, 0.1 * s)
                    for s in range(3)])
    assert len(_rows(store, other)) == 6
    with pytest.raises(TypeError, match="not a number"):
        store.log_metrics(run, 2, {"train_loss": "low"}, 1.0)
    with pytest.raises(ValueError, match="step must be an integer"):
        store.log_metrics(run, 2.5, {"train_loss": 1.0}, 1.0)
    # the last points may travel with the finish, in its transaction
    store.finish_run(run, "diverged", summary={"final": math.nan, "best": -math.inf},
                     points=[(2, {"train_loss": math.nan}, 1.0)])
    assert _rows(store, run)[-1] == (2, "train_loss", None, 1.0)
    summary = store.get_run(run).summary
    assert math.isnan(summary["final"]) and summary["best"] == -math.inf


def test_metrics_dataframe_gives_nan_back(store):
    pd = pytest.importorskip("pandas")
    sweep = store.open_sweep(CONFIG)
    run, = store.add_runs(sweep, MEMBERS[:1])
    store.start_run(run)
    store.log_metrics(run, 0, {"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.0}, 0.0)
    df = store.metrics(sweep)
    assert df["value"].dtype == np.float64
    got = dict(zip(df["name"], df["value"]))
    assert math.isnan(got["a"]) and got["b"] == math.inf and got["c"] == -math.inf
    assert got["d"] == 1.0
    assert isinstance(df, pd.DataFrame)


# ----------------------------------------------------------------------------- readers


def test_dataframe_readers(store):
    pd = pytest.importorskip("pandas")
    # empty store: empty frames with their columns
    assert store.sweeps().empty and "sweep_id" in store.sweeps().columns
    assert store.runs().empty and "run_id" in store.runs().columns
    assert list(store.metrics().columns)[:3] == ["run_id", "sweep_id", "optimizer"]

    sweep = store.open_sweep(CONFIG, name="demo")
    ids = store.add_runs(sweep, MEMBERS)
    other = store.open_sweep({"task": "other"})
    other_run, = store.add_runs(other, MEMBERS[:1])
    for i, run in enumerate(ids[:2]):
        store.start_run(run)
        store.log_many([(run, s, {"train_loss": 1.0 / (s + 1), "test_metric": 0.5 + i},
                         0.1 * s) for s in range(3)])
        store.finish_run(run, "finished", summary={"final_train_loss": 1 / 3,
                                                   "steps_to_target": 2 if i else None})
    store.start_run(other_run)
    store.log_metrics(other_run, 0, {"train_loss": 9.0}, 0.0)

    sweeps = store.sweeps()
    assert list(sweeps.columns) == [
        "sweep_id", "key", "name", "task", "model", "created_at", "n_runs", "n_pending",
        "n_running", "n_finished", "n_diverged", "n_failed", "config", "environment"]
    first = sweeps.set_index("sweep_id").loc[sweep]
    assert first["name"] == "demo" and first["task"] == "two-moons"
    assert (first["n_runs"], first["n_finished"], first["n_pending"]) == (3, 2, 1)
    assert first["config"] == CONFIG
    assert isinstance(first["created_at"], pd.Timestamp)

    runs = store.runs(sweep)
    assert list(runs["run_id"]) == ids
    for col in ("sweep_id", "optimizer", "lr", "seed", "status", "error", "started_at",
                "finished_at", "member_key", "hparams", "summary", "hp_lr", "hp_betas",
                "hp_momentum", "summary_final_train_loss", "summary_steps_to_target"):
        assert col in runs.columns, col
    assert list(runs["lr"]) == [1e-3, 1e-2, 0.1] and list(runs["hp_lr"]) == [1e-3, 1e-2, 0.1]
    assert runs["hp_betas"][0] == [0.9, 0.999] and math.isnan(runs["hp_momentum"][0])
    assert list(runs["status"]) == ["finished", "finished", "pending"]
    assert pd.isna(runs["started_at"][2]) and runs["summary"][2] is None
    assert runs["summary_final_train_loss"][0] == pytest.approx(1 / 3)
    assert len(store.runs()) == 4

    m = store.metrics(sweep)
    assert list(m.columns) == ["run_id", "sweep_id", "optimizer", "lr", "seed", "status",
                               "step", "name", "value", "wall_time"]
    assert len(m) == 2 * 3 * 2 and set(m["run_id"]) == set(ids[:2])
    row = m[(m["run_id"] == ids[1]) & (m["step"] == 2) & (m["name"] == "train_loss")].iloc[0]
    assert (row["optimizer"], row["lr"], row["seed"], row["status"]) == ("adam", 1e-2, 0,
                                                                         "finished")
    assert row["value"] == pytest.approx(1 / 3) and row["wall_time"] == pytest.approx(0.2)
    assert len(store.metrics()) == 13
    assert set(store.metrics(run_ids=[other_run])["status"]) == {"running"}
    assert store.metrics(sweep, run_ids=[other_run]).empty
    joined = m.merge(runs[["run_id", "hp_momentum"]], on="run_id")
    assert len(joined) == len(m)
    wide = m.pivot_table(index=["run_id", "step"], columns="name", values="value")
    assert wide.shape == (6, 2)
    with pytest.raises(KeyError, match="no sweep with id 5"):
        store.runs(5)
    with pytest.raises(KeyError, match="no sweep with id 5"):
        store.metrics(5)


# ----------------------------------------------------------------------------- the server store


class _FakeServer:
    """A psycopg connection (autocommit) as the server store uses it, without a server: its
    transaction status as PostgreSQL keeps it, a wait for the writers' lock that may fail
    (``lock_error``, raised as the driver would), and an aborted transaction that refuses
    every statement but ROLLBACK."""

    def __init__(self) -> None:
        from psycopg.pq import TransactionStatus

        self.status = TransactionStatus
        self.transaction_status = TransactionStatus.IDLE
        self.lock_error: BaseException | None = None
        self.sent: list[str] = []

    @property
    def info(self):
        return self

    def cursor(self):
        return self

    def execute(self, sql, params=()):
        import psycopg

        self.sent.append(sql)
        if sql in ("ROLLBACK", "COMMIT"):
            self.transaction_status = self.status.IDLE
            return self
        if self.transaction_status == self.status.INERROR:
            raise psycopg.errors.InFailedSqlTransaction(
                "current transaction is aborted, commands ignored until end of transaction "
                "block")
        if sql == "BEGIN":
            self.transaction_status = self.status.INTRANS
        elif "pg_advisory_xact_lock" in sql and self.lock_error is not None:
            self.transaction_status = self.status.INERROR
            raise self.lock_error
        return self

    def fetchone(self):
        return None  # no row: "no sweep with id ..."

    def fetchall(self):
        return []  # no sweep stored


def test_a_server_write_that_times_out_on_the_lock_rolls_back():
    """The writers' lock wait past ``lock_timeout`` aborts the transaction on the server:
    the store rolls it back before raising, so the connection's next write works (left
    open, every later statement would fail with "current transaction is aborted")."""
    psycopg = pytest.importorskip("psycopg")
    from optimlab.bench.store.server import ServerConnection, ServerRunStore

    fake = _FakeServer()
    store = object.__new__(ServerRunStore)  # as its __init__ leaves it, on a fake connection
    store.readonly, store.memory, store.immutable, store.timeout = False, False, False, 1.0
    store._damage, store._locks = None, {}
    store.path = "postgresql+psycopg://optimlab@db.example:5432/runs"
    store._con = fake
    store._guarded = ServerConnection(fake, store._fail)
    fake.lock_error = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    with pytest.raises(StoreError, match="lock timeout") as err:
        store.add_runs(1, MEMBERS)
    message = _one_line_naming(err, store.path)
    assert message == (f"cannot write to run store {store.path}: canceling statement due to "
                       f"lock timeout (another writer held its write lock past the timeout)")
    assert fake.sent[-1] == "ROLLBACK" and fake.transaction_status == fake.status.IDLE
    fake.lock_error = None
    with pytest.raises(KeyError, match="no sweep with id 1"):  # the write got the lock
        store.add_runs(1, MEMBERS)
    # any other failure of the lock statement (a lost connection, Ctrl-C) rolls back too
    fake.lock_error = psycopg.OperationalError("server closed the connection unexpectedly")
    with pytest.raises(StoreError, match=r"/runs: server closed the connection unexpectedly$"):
        store.open_sweep(CONFIG, environment={})
    assert fake.sent[-1] == "ROLLBACK" and fake.transaction_status == fake.status.IDLE
    fake.lock_error = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        store.open_sweep(CONFIG, environment={})
    assert fake.sent[-1] == "ROLLBACK" and fake.transaction_status == fake.status.IDLE


class _ClosedServer:
    """A psycopg connection the server has closed: every cursor raises."""

    closed = True

    def cursor(self):
        import psycopg

        raise psycopg.OperationalError("the connection is closed")


def test_a_connection_the_server_closed_is_a_store_error_and_frees_the_sweep_lock():
    """The server stopped mid-sweep: the first statement failed as a StoreError, every later
    one raised psycopg's OperationalError from ``cursor()`` (outside the driver-error
    conversion), and the sweep lock's release in a ``finally`` replaced the sweep's error
    with it: "internal error ... (please report it)" (an audit of the server store)."""
    pytest.importorskip("psycopg")
    from optimlab.bench.store.server import ServerConnection, ServerRunStore, _AdvisoryLock

    store = object.__new__(ServerRunStore)
    store.path = "postgresql+psycopg://optimlab@db.example:5432/runs"
    store._con = _ClosedServer()
    store._guarded = ServerConnection(store._con, store._fail)
    for call in (lambda: store.con.execute("SELECT 1"),
                 lambda: store.con.executemany("SELECT ?", [(1,)])):
        with pytest.raises(StoreError, match=r"/runs: the connection is closed$"):
            call()
    lock = object.__new__(_AdvisoryLock)
    lock.store, lock.key, lock.held = store, 7, True
    lock.release()  # the lock went with the connection: nothing raised
    assert not lock.held


def test_a_server_url_with_a_second_at_sign_is_refused_without_echoing_the_password():
    """A password with an '@' not written %40 made SQLAlchemy take what follows the first
    '@' for the host, and the driver's error echoed it ("failed to resolve host 'ss'"; an
    audit of the server store): such a URL is refused, saying how to write it."""
    pytest.importorskip("sqlalchemy")
    from optimlab.bench.store.server import _url

    with pytest.raises(StoreError) as err:
        _url("postgresql://alice:p@ss/w:rd@127.0.0.1:5432/runs")
    message = str(err.value)
    assert "more than one '@'" in message and "%40" in message
    assert "ss" not in message.replace("password", "").replace("postgresql", "")
    assert _url("postgresql://alice:p%40ss@127.0.0.1:5432/runs").host == "127.0.0.1"


def test_nan_is_null_in_every_database():
    """The store turns NaN into None before a database sees it (what the server module's
    text says, and test_metrics_round_trip_non_finite_values checks on both)."""
    from optimlab.bench.store import server

    assert store_module.runstore._points(1, 0, {"a": math.nan}, None, "runs.db") == [
        (1, 0, "a", None, None)]
    text = " ".join(server.__doc__.split())
    assert "NaN metric values are stored as NULL" in text and "server's NaN" not in text


# ----------------------------------------------------------------------------- SIGKILL

N_MEMBERS, STEPS, NAMES = 20, 5, ("test_loss", "test_metric", "train_loss")

# The fake sweep, run as its own process. It loads store.py by path so that it does not
# pay for importing torch (through the optimlab package) on a loaded machine.
SWEEP_SCRIPT = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("_store_under_test", sys.argv[1])
    store_module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = store_module
    spec.loader.exec_module(store_module)

    db, hang_after, pause = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    N_MEMBERS, STEPS = {n_members}, {steps}
    CONFIG = {{"task": "fake", "model": "none", "steps": STEPS}}
    MEMBERS = [{{"optimizer": ("adam", "sgd")[i % 2], "hparams": {{"lr": 10.0 ** -(i % 4)}},
                "seed": i // 4}} for i in range(N_MEMBERS)]

    def values(run_id, step):
        return {{"train_loss": 1.0 / (run_id + step + 1), "test_loss": 2.0 / (run_id + step + 1),
                "test_metric": run_id * 100.0 + step}}

    with store_module.RunStore(db, timeout=60) as store:
        sweep = store.open_sweep(CONFIG, name="kill-test", environment={{"fake": True}})
        store.add_runs(sweep, MEMBERS)
        trained = 0
        for run in store.pending_runs(sweep):
            store.start_run(run.id)
            t0 = time.perf_counter()
            for step in range(STEPS):
                if trained == hang_after and step == 2:
                    time.sleep(300)  # the parent kills us here, mid-run
                store.log_metrics(run.id, step, values(run.id, step), time.perf_counter() - t0)
                time.sleep(pause)
            store.finish_run(run.id, "finished", summary={{"wall_time": time.perf_counter() - t0}})
            trained += 1
    print("TRAINED", trained, flush=True)
""").format(n_members=N_MEMBERS, steps=STEPS)


def _expected(run_id: int, step: int) -> dict:
    return {"train_loss": 1.0 / (run_id + step + 1), "test_loss": 2.0 / (run_id + step + 1),
            "test_metric": run_id * 100.0 + step}


def _start_sweep(tmp_path, db, hang_after: int, pause: float, tag: str):
    script = tmp_path / "fake_sweep.py"
    script.write_text(SWEEP_SCRIPT)
    out = open(tmp_path / f"{tag}.out", "w")
    err = open(tmp_path / f"{tag}.err", "w")
    proc = subprocess.Popen([sys.executable, str(script), store_module.__file__, str(db),
                             str(hang_after), str(pause)], stdout=out, stderr=err)
    out.close()
    err.close()
    return proc


def _run_sweep(tmp_path, db, tag: str) -> int:
    """Run the fake sweep to the end in a new process; return how many runs it trained."""
    proc = _start_sweep(tmp_path, db, hang_after=-1, pause=0.0, tag=tag)
    try:
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = (tmp_path / f"{tag}.out").read_text()
    assert rc == 0, (tmp_path / f"{tag}.err").read_text()
    return int(out.split()[-1])


def _poll(db, proc, tmp_path, tag: str, done, deadline_s: float = 90.0,
          may_end: bool = False):
    """Poll the store read-only until ``done(counts, store)`` (or, with ``may_end``, until
    the sweep process ended well); fail early if it dies or the deadline passes (generous:
    only reached when something is wrong)."""
    deadline = time.monotonic() + deadline_s
    while True:
        if proc.poll() == 0 and may_end:
            return
        if proc.poll() is not None:
            pytest.fail(f"the sweep process exited early ({proc.returncode}): "
                        f"{(tmp_path / f'{tag}.err').read_text()}")
        if time.monotonic() > deadline:
            pytest.fail("the sweep process made no progress in time")
        try:
            with RunStore(db, readonly=True, timeout=10) as ro:
                sweep = ro.find_sweep({"task": "fake", "model": "none", "steps": STEPS})
                if sweep is not None and done(ro.sweep(sweep)["counts"], ro):
                    return
        except (StoreError, sqlite3.OperationalError):  # no file or schema yet, or busy
            pass
        time.sleep(0.02)


def _kill(proc) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    return proc.wait(timeout=30)


def _snapshot(db) -> dict:
    """run id -> (status, started_at, finished_at, its metric rows)."""
    with RunStore(db, readonly=True) as s:
        return {r.id: (r.status, r.started_at, r.finished_at, _rows(s, r.id))
                for r in s.list_runs(1)}


def _assert_complete(rows: list[tuple], run_id: int) -> None:
    """Exactly one full curve: every step once with every metric, the expected values."""
    assert [(step, name) for step, name, _, _ in rows] == [
        (s, n) for s in range(STEPS) for n in NAMES], f"run {run_id}"
    for step, name, value, wall in rows:
        assert value == _expected(run_id, step)[name] and wall >= 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkilled_sweep_keeps_finished_runs_and_resumes(tmp_path, store_url):
    db = store_url
    half = N_MEMBERS // 2
    # the process finishes `half` runs, starts the next, logs two of its points, then hangs
    proc = _start_sweep(tmp_path, db, hang_after=half, pause=0.002, tag="killed")
    try:
        def hung(counts, ro):
            if counts["finished"] != half or counts["running"] != 1:
                return False
            running, = ro.list_runs(1, "running")
            return len(_rows(ro, running.id)) == 2 * len(NAMES)

        _poll(db, proc, tmp_path, "killed", hung)
    finally:
        rc = _kill(proc)
    assert rc == -signal.SIGKILL

    before = _snapshot(db)
    assert len(before) == N_MEMBERS
    statuses = [status for status, *_ in before.values()]
    assert statuses == ["finished"] * half + ["running"] + ["pending"] * (N_MEMBERS - half - 1)
    for run_id, (status, started, finished, rows) in before.items():
        if status == "finished":
            assert started and finished
            _assert_complete(rows, run_id)
        elif status == "running":
            interrupted = run_id
            assert started and finished is None
            assert [(s, n) for s, n, _, _ in rows] == [(s, n) for s in (0, 1) for n in NAMES]
        else:
            assert started is None and rows == []

    # resume: the same sweep in a new process trains only the pending and running runs
    assert _run_sweep(tmp_path, db, "resumed") == N_MEMBERS - half
    after = _snapshot(db)
    assert set(after) == set(before)
    for run_id, (status, started, finished, rows) in after.items():
        assert status == "finished"
        _assert_complete(rows, run_id)
        if before[run_id][0] == "finished":
            assert after[run_id] == before[run_id], f"finished run {run_id} was retrained"
    assert after[interrupted][1] > before[interrupted][1]  # redone from scratch
    with RunStore(db, readonly=True) as s:
        assert s.con.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 1
        assert s.con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == (
            N_MEMBERS * STEPS * len(NAMES))
    # a third pass finds nothing to do
    assert _run_sweep(tmp_path, db, "again") == 0
    assert _snapshot(db) == after


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_at_any_moment_leaves_a_consistent_store(tmp_path, store_url):
    """Killed at an arbitrary moment (maybe mid-commit): whatever ended is complete, at
    most one run is partial, and the resume trains exactly the rest."""
    db = store_url
    proc = _start_sweep(tmp_path, db, hang_after=-1, pause=0.008, tag="killed")
    try:
        # on a starved machine the sweep may even end first: the checks below still hold
        _poll(db, proc, tmp_path, "killed", lambda counts, ro: counts["finished"] >= 3,
              may_end=True)
    finally:
        rc = _kill(proc)
    assert rc in (0, -signal.SIGKILL), (tmp_path / "killed.err").read_text()

    before = _snapshot(db)
    finished = {i for i, (status, *_) in before.items() if status == "finished"}
    running = [i for i, (status, *_) in before.items() if status == "running"]
    assert len(finished) >= 3 and len(running) <= 1
    for run_id, (status, started, _, rows) in before.items():
        if status == "finished":
            _assert_complete(rows, run_id)
        elif status == "pending":
            assert started is None and rows == []
    assert _run_sweep(tmp_path, db, "resumed") == N_MEMBERS - len(finished)
    after = _snapshot(db)
    for run_id, (status, _, _, rows) in after.items():
        assert status == "finished"
        _assert_complete(rows, run_id)
        if run_id in finished:
            assert after[run_id] == before[run_id]



# ------------------------------------------------------- sweep locks: failures after flock


def _two_stores(tmp_path):
    path = tmp_path / "runs.db"
    a = RunStore(path)
    return path, a, RunStore(path), a.open_sweep(CONFIG)


def test_a_hostname_that_is_not_utf8_still_takes_the_lock(tmp_path, monkeypatch):
    from optimlab.bench.store import guard

    # what Python returns for a hostname with the byte 0xff
    monkeypatch.setattr(guard.socket, "gethostname", lambda: "box-\udcff")
    path, a, b, sweep = _two_stores(tmp_path)
    with a, b:
        with a.lock_sweep(sweep):
            text = (tmp_path / f"runs.db-sweep{sweep}.lock").read_text()
            assert text.split()[:2] == [str(os.getpid()), "box-\\udcff"]  # escaped
            with pytest.raises(store_module.SweepBusy, match="is being run or resumed"):
                with b.lock_sweep(sweep):
                    pass
        with b.lock_sweep(sweep):  # released: not busy with our own pid
            pass


@pytest.mark.parametrize("fail", ["write", "ftruncate"])
def test_a_failure_writing_the_holder_releases_the_lock(tmp_path, monkeypatch, fail):
    import errno

    path, a, b, sweep = _two_stores(tmp_path)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    with a, b:
        with monkeypatch.context() as m:
            m.setattr(os, fail, full)  # the disk fills up as the holder line is written
            with pytest.raises(StoreError, match="No space left on device") as err:
                with a.lock_sweep(sweep):
                    pass
        assert not isinstance(err.value, store_module.SweepBusy)
        _one_line_naming(err, path)
        with a.lock_sweep(sweep):  # the same process tries again: not busy with itself
            with pytest.raises(store_module.SweepBusy):
                with b.lock_sweep(sweep):
                    pass
        with b.lock_sweep(sweep):
            pass


def test_ctrl_c_while_the_holder_is_written_releases_the_lock(tmp_path, monkeypatch):
    path, a, b, sweep = _two_stores(tmp_path)

    def interrupt(*args):
        raise KeyboardInterrupt

    with a, b:
        with monkeypatch.context() as m:
            m.setattr(os, "ftruncate", interrupt)
            with pytest.raises(KeyboardInterrupt):  # as it is, not a StoreError
                with a.lock_sweep(sweep):
                    pass
        with b.lock_sweep(sweep):
            pass
        with a.lock_sweep(sweep):
            pass


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_the_lock_file_has_the_permissions_of_a_shared_store(tmp_path):
    path, a, b, sweep = _two_stores(tmp_path)
    os.chmod(path, 0o666)
    old = os.umask(0o022)
    try:
        with a, b, a.lock_sweep(sweep):
            mode = os.stat(tmp_path / f"runs.db-sweep{sweep}.lock").st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o666, oct(mode)


def _unwritable_lock_file(monkeypatch, lock: str, readable: bool = True) -> None:
    """Open ``lock`` (which exists) as a user who may not write it: another user's file
    (as root, chmod would not stop this process). O_EXCL still meets EEXIST first."""
    real = os.open

    def fake(file, flags, *args, **kwargs):
        if os.fspath(file) == lock and not flags & os.O_EXCL and \
                ((flags & os.O_ACCMODE) != os.O_RDONLY or not readable):
            raise PermissionError(13, "Permission denied", file)
        return real(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake)


@pytest.mark.skipif(not hasattr(os, "O_ACCMODE"), reason="POSIX open flags")
def _ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_lock_file_left_by_another_user_is_locked_read_only(tmp_path, monkeypatch):
    path, a, b, sweep = _two_stores(tmp_path)
    lock = os.path.realpath(path) + f"-sweep{sweep}.lock"
    # left by a crashed process of another user (root), naming that process
    stale = f"{_ended_pid()} {socket.gethostname()} 2026-01-01T00:00:00Z\n"
    Path(lock).write_text(stale)
    with a, b:
        # where the directory lets this process delete it, the file is replaced by one of
        # its own, which names this process
        with monkeypatch.context() as m:
            _unwritable_lock_file(m, lock)
            with a.lock_sweep(sweep):
                with pytest.raises(store_module.SweepBusy,
                                   match=f"by process {os.getpid()} on this machine"):
                    with b.lock_sweep(sweep):
                        pass
                assert Path(lock).read_text().split()[0] == str(os.getpid())
            with b.lock_sweep(sweep):  # released
                pass
        # where it may not (a sticky /tmp), the file stays, locked read-only; a second
        # store is not told that the ended process holds it
        Path(lock).write_text(stale)
        real_unlink = os.unlink
        with monkeypatch.context() as m:
            _unwritable_lock_file(m, lock)

            def no_unlink(file, *args, **kwargs):
                if os.fspath(file) == lock:
                    raise PermissionError(1, "Operation not permitted", file)
                return real_unlink(file, *args, **kwargs)

            m.setattr(os, "unlink", no_unlink)
            with a.lock_sweep(sweep):
                with pytest.raises(store_module.SweepBusy) as busy:
                    with b.lock_sweep(sweep):
                        pass
                assert Path(lock).read_text() == stale  # no holder line: it may not write it
            pid = stale.split()[0]
            assert f"by another process (its lock file still names process {pid}, which " \
                "has ended)" in str(busy.value)
            with b.lock_sweep(sweep):  # released
                pass
        Path(lock).write_text("")
        with monkeypatch.context() as m:
            _unwritable_lock_file(m, lock, readable=False)
            with pytest.raises(StoreError, match=r"cannot open .*sweep\d+\.lock: Permission") as err:
                with a.lock_sweep(sweep):
                    pass
            assert "cannot create" not in str(err.value)
            _one_line_naming(err, path)


def test_metrics_read_one_state_while_another_connection_ends_a_run(tmp_path, monkeypatch):
    """metrics() reads the points, then their runs' columns: a run that ended between the two
    showed "finished" without its last points, where a finished run's points are complete.
    Under one snapshot it shows the state before: running, with the points it had."""
    from optimlab.bench.store import views

    path = tmp_path / "runs.db"
    writer = RunStore(path)
    sweep = writer.open_sweep({"task": "t"})
    (run,) = writer.add_runs(sweep, [{"optimizer": "sgd", "hparams": {"lr": 0.1}, "seed": 0}])
    writer.start_run(run)
    writer.log_metrics(run, 0, {"loss": 1.0})
    reader = RunStore(path, readonly=True)
    points = views._point_columns

    def the_run_ends_meanwhile(*args, **kwargs):
        out = points(*args, **kwargs)
        if writer.get_run(run).status == "running":
            writer.finish_run(run, "finished", summary={}, points=[(1, {"loss": 0.5}, None)])
        return out

    monkeypatch.setattr(views, "_point_columns", the_run_ends_meanwhile)
    during = reader.metrics(sweep)
    assert list(during.status) == ["running"] and list(during.step) == [0]
    monkeypatch.setattr(views, "_point_columns", points)
    after = reader.metrics(sweep)
    assert list(after.status) == ["finished", "finished"] and list(after.step) == [0, 1]
    reader.close()
    writer.close()
