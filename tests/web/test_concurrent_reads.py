"""Reading a run store while another process writes it: one answer from one state of the
store (:meth:`RunStore.snapshot`), and a store being created reads as "no sweeps yet".

The writer is interleaved between the reader's queries deterministically: a hook run in the
middle of an answer (a module function wrapped) commits through a second connection."""

import sqlite3
import threading
import time

import pytest

from optimlab.bench import report
from optimlab.bench.store import RunStore, StoreError
from optimlab.bench.store.runstore import NoStoreYet
from optimlab.web import api

from .conftest import LOCAL, store_copy

#: the runs the tests take back to pending and the hook ends again: adam's at the rate where
#: it finished (so that its best rate appears once they end)
ADAM = "optimizer = 'adam' AND lr = 0.05"


def _half_done(sweep_db, tmp_path):
    """A copy of the web tests' store (WAL mode, as a store optimlab writes) with adam's
    finished runs taken back to pending, and a function that ends them again (as the sweep
    would) through another connection, in one commit."""
    db = store_copy(sweep_db[0], tmp_path / "runs.db")
    with RunStore(db):  # a writer puts it in WAL mode, as every store optimlab writes
        pass
    con = sqlite3.connect(db)
    runs = con.execute(f"SELECT id, status, summary, started_at, finished_at, error FROM runs "
                       f"WHERE {ADAM}").fetchall()
    assert len(runs) == 2 and {r[1] for r in runs} == {"finished"}, runs
    marks = ", ".join("?" * len(runs))
    ids = [r[0] for r in runs]
    points = con.execute(f"SELECT run_id, step, name, value, wall_time FROM metrics "
                         f"WHERE run_id IN ({marks})", ids).fetchall()
    assert points
    with con:
        con.execute(f"DELETE FROM metrics WHERE run_id IN ({marks})", ids)
        con.execute(f"UPDATE runs SET status = 'pending', summary = NULL, started_at = NULL, "
                    f"finished_at = NULL, error = NULL WHERE id IN ({marks})", ids)
    con.close()
    calls = []

    def finish():
        """End the runs again (once), as the sweep's process commits them."""
        if calls:
            return
        calls.append(time.monotonic())
        writer = sqlite3.connect(db, timeout=2.0)  # a reader must not make it wait
        with writer:
            writer.executemany("INSERT INTO metrics (run_id, step, name, value, wall_time) "
                               "VALUES (?, ?, ?, ?, ?)", points)
            writer.executemany("UPDATE runs SET status = ?, summary = ?, started_at = ?, "
                               "finished_at = ?, error = ? WHERE id = ?",
                               [(*r[1:], r[0]) for r in runs])
        writer.close()
        calls.append(time.monotonic())

    return db, finish, calls


def _hooked(monkeypatch, module, name, before):
    """Replace ``module.name`` by a wrapper that calls ``before()`` first."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        before()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


# ----------------------------------------------------------------------------- 1. one state


def test_sweep_detail_is_one_state_of_the_store_while_a_run_ends(sweep_db, tmp_path,
                                                                   monkeypatch):
    """Runs that end between the queries of one answer: the JSON summary said adam had no
    best rate while the text table of the same answer (read later) ranked adam at 0.05.
    The whole answer is now the store as it was when the answer began."""
    db, finish, calls = _half_done(sweep_db, tmp_path)
    before = api.sweep_detail(db, 1)
    adam = next(row for row in before["summary"] if row["optimizer"] == "adam")
    assert adam["best_lr"] is None and "adam" not in before["curves"]
    # the write lands after the JSON summary, before the text table is made
    _hooked(monkeypatch, report, "summary_table", finish)
    during = api.sweep_detail(db, 1)
    assert len(calls) == 2, "the hook did not run"
    assert calls[1] - calls[0] < 1.0  # the reader's transaction did not make the writer wait
    assert api.dumps(during) == api.dumps(before)
    assert during["sweep"]["counts"]["pending"] == 2
    assert "Unfinished: 2 of 8 runs" in during["summary_text"]
    monkeypatch.undo()
    after = api.sweep_detail(db, 1)  # the write is there for the next answer
    adam = next(row for row in after["summary"] if row["optimizer"] == "adam")
    assert adam["best_lr"] == 0.05 and "adam" in after["curves"]
    assert "Unfinished" not in after["summary_text"]


def test_the_sweep_list_is_one_state_of_the_store(sweep_db, tmp_path, monkeypatch):
    """The list's rows and each sweep's counts come from one state (the counts were read
    query by query)."""
    db, finish, calls = _half_done(sweep_db, tmp_path)
    before = api.sweeps(db)
    assert before[0]["counts"]["pending"] == 2
    _hooked(monkeypatch, api, "_sweep_row", finish)  # after the list query, before the counts
    during = api.sweeps(db)
    assert len(calls) == 2, "the hook did not run"
    assert during == before
    monkeypatch.undo()
    assert api.sweeps(db)[0]["counts"]["pending"] == 0


def test_a_report_summary_is_one_state_of_the_store(sweep_db, tmp_path, monkeypatch):
    """The report's reads of one sweep (its runs, then their records) see one state: the
    table no longer ranks runs that its own note calls unfinished."""
    db, finish, calls = _half_done(sweep_db, tmp_path)
    with RunStore(db, readonly=True) as store:
        before = report.summary_table(store, 1)
        assert "Unfinished: 2 of 8 runs" in before
        _hooked(monkeypatch, report, "run_records", finish)  # after list_runs
        during = report.summary_table(store, 1)
        assert len(calls) == 2, "the hook did not run"
        assert during == before
        assert not store.con.in_transaction  # the read transaction ended with the answer
        monkeypatch.undo()
        assert "Unfinished" not in report.summary_table(store, 1)


def test_snapshot_pins_one_state_ends_its_transaction_and_never_blocks_a_writer(sweep_db,
                                                                                 tmp_path):
    db, finish, calls = _half_done(sweep_db, tmp_path)
    pending = "SELECT COUNT(*) FROM runs WHERE status = 'pending'"
    with RunStore(db, readonly=True) as store:
        assert store.journal_mode == "wal"
        with store.snapshot() as same:
            assert same is store and store.con.in_transaction
            finish()  # a writer commits at once, the reader's state stays as it began
            assert store.con.execute(pending).fetchone()[0] == 2
            with store.snapshot():  # nested: the outer state
                assert store.con.execute(pending).fetchone()[0] == 2
            assert store.con.in_transaction
        assert not store.con.in_transaction
        assert store.con.execute(pending).fetchone()[0] == 0
        with pytest.raises(ZeroDivisionError):  # ended on an exception too
            with store.snapshot():
                store.con.execute(pending).fetchone()
                1 / 0
        assert not store.con.in_transaction
    assert calls[1] - calls[0] < 1.0
    with RunStore(db) as writer:  # a writer's reads too; no write inside it
        with writer.snapshot():
            with pytest.raises(StoreError, match="inside snapshot"):
                writer.add_runs(1, [{"optimizer": "sgd", "hparams": {"lr": 1.0}, "seed": 9}])
            assert writer.con.in_transaction
        assert not writer.con.in_transaction
        writer.add_runs(1, [{"optimizer": "sgd", "hparams": {"lr": 1.0}, "seed": 9}])


def test_snapshot_reads_a_store_without_wal_and_an_immutable_one(sweep_db, tmp_path,
                                                                  monkeypatch):
    """No read transaction where none is needed or where it would stall a writer: a store in
    rollback-journal mode and one read ``immutable`` (a read-only directory) still read."""
    plain = store_copy(sweep_db[0], tmp_path / "plain.db", "PRAGMA journal_mode = DELETE")
    with RunStore(plain, readonly=True) as store:
        assert store.journal_mode == "delete"
        with store.snapshot():
            assert not store.con.in_transaction  # no lock held between the reads
            text = report.summary_table(store, 1)
            assert api.sweep_detail(plain, 1)["summary_text"] == text
    from optimlab.bench.store import runstore

    def immutable(path, timeout):
        con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, timeout=timeout,
                              isolation_level=None)
        return con, True

    monkeypatch.setattr(runstore, "connect_readonly", immutable)
    with RunStore(plain, readonly=True) as store:
        assert store.immutable
        with store.snapshot():
            assert report.summary_table(store, 1) == text
    assert api.sweep_detail(plain, 1)["summary_text"] == text
    assert [s["id"] for s in api.sweeps(plain)] == [1]


# ----------------------------------------------------------------------------- 3. new store


def _client(db):
    from fastapi.testclient import TestClient

    from optimlab.web.server import create_app

    return TestClient(create_app(db, warm=False, slices=[]), base_url=LOCAL)


def test_an_empty_store_file_reads_as_no_sweeps_yet(tmp_path):
    """A store file of 0 bytes (as ``optimlab bench`` has just made it) answered 503 "an
    empty file, not a run store"; it is a store with no sweeps yet, as a missing file."""
    db = tmp_path / "new.db"
    db.write_bytes(b"")
    assert api.sweeps(db) == []
    with pytest.raises(api.RequestError) as err:
        api.sweep_detail(db, 1)
    assert err.value.status == 404
    with _client(db) as client:
        answer = client.get("/api/sweeps")
        assert answer.status_code == 200 and answer.json() == [], answer.text
        assert client.get("/api/sweeps/1").status_code == 404
    with pytest.raises(NoStoreYet):  # the store still says why it holds nothing to read
        RunStore(db, readonly=True)


def test_a_store_whose_tables_are_being_created_reads_as_no_sweeps_yet(tmp_path, monkeypatch):
    """Read while ``optimlab bench`` creates the store (its tables in a transaction not yet
    committed): 503 "no optimlab run store in new.db yet (run `optimlab bench` first)" while
    that very command ran; now no sweeps yet."""
    from optimlab.bench.store import runstore

    db = tmp_path / "new.db"
    seen = []
    schema = runstore.RunStore._schema

    def creating(self):
        for i, statement in enumerate(schema(self)):
            if i == 1:  # a table made, uncommitted
                seen.append(api.sweeps(db))
                with pytest.raises(api.RequestError) as err:
                    api.sweep_detail(db, 1)
                seen.append(err.value.status)
                with _client(db) as client:
                    answer = client.get("/api/sweeps")
                    seen.append((answer.status_code, answer.json()))
            yield statement

    monkeypatch.setattr(runstore.RunStore, "_schema", creating)
    RunStore(db).close()
    assert seen == [[], 404, (200, [])]
    monkeypatch.undo()
    assert api.sweeps(db) == []  # made: a store with no sweeps


def test_a_file_that_is_not_a_run_store_is_still_an_error(tmp_path):
    """What is no store being created stays a clear 503: another kind of file, another
    program's database."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all\n" * 200)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (text TEXT)")
    con.commit()
    con.close()
    for path, says in ((junk, "not a SQLite database"), (other, "not an optimlab run store")):
        with pytest.raises(StoreError, match=says) as err:
            api.sweeps(path)
        assert not isinstance(err.value, NoStoreYet)
        with _client(path) as client:
            answer = client.get("/api/sweeps")
            assert answer.status_code == 503 and says in answer.json()["message"], answer.text


# ----------------------------------------------------------------------------- 4. answers kept


def test_an_ended_sweep_is_read_once_and_requests_together_share_the_read(sweep_db, tmp_path,
                                                                          monkeypatch):
    """A sweep of 64 runs x 100,000 steps took 6-16 s to read, and four requests for it at
    once all answered 503 at the 30 s deadline (an audit). A sweep whose runs have all ended
    is now read once: requests that come while it is read wait for that answer, later ones
    get it kept. A change to its runs (a run added, pending) reads it afresh, each time
    while a run has not ended."""
    db = store_copy(sweep_db[0], tmp_path / "kept.db")
    reads, gate = [], threading.Event()
    content = api._sweep_content

    def counted(*args):
        reads.append(1)
        gate.wait(5.0)  # the first read held until the others have asked
        return content(*args)

    monkeypatch.setattr(api, "_sweep_content", counted)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(api.sweep_detail_json(db, 1)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    gate.set()
    for thread in threads:
        thread.join(20.0)
    assert len(answers) == 4 and len(set(answers)) == 1
    assert len(reads) == 1
    assert api.sweep_detail_json(db, 1) == answers[0] and len(reads) == 1
    with RunStore(db) as writer:
        writer.add_runs(1, [{"optimizer": "sgd", "hparams": {"lr": 1.0}, "seed": 9}])
    first, second = api.sweep_detail(db, 1), api.sweep_detail(db, 1)
    assert len(reads) == 3  # not kept while a run has not ended
    assert first == second and first["sweep"]["counts"]["pending"] == 1
    assert api.dumps(first) != answers[0]
