"""Fixtures of the playground tests: an app, its test client, and a small run store."""

import json
from pathlib import Path

import pytest

from optimlab.bench.store import RunStore
from optimlab.bench.sweep import SweepSpec, run_sweep
from optimlab.bench.trainer import TrainConfig

#: Where the in-process client says it connects: the server answers loopback names only.
LOCAL = "http://127.0.0.1:8000"

#: Screenshots and other files a person may want to look at after a run.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


@pytest.fixture(scope="session")
def sweep_db(tmp_path_factory):
    """A run store with one real sweep: digits, sgd and adam at two learning rates (one of
    them too large for sgd), two seeds, a handful of steps (a few seconds)."""
    path = tmp_path_factory.mktemp("store") / "runs.db"
    spec = SweepSpec(task="digits", optimizers=("sgd", "adam"),
                     config=TrainConfig(steps=20, batch_size=64, eval_every=5),
                     lrs=(0.05, 50.0), seeds=2, target=0.3)
    with RunStore(path) as store:
        sweep_id = run_sweep(spec, store, name="web-test")
    return path, sweep_id


@pytest.fixture(scope="session")
def slice_dir(tmp_path_factory):
    """A slices folder as ``optimlab slice --out`` leaves it: one real slice of the digits
    MLP (three optimizers, a 6 x 6 grid, a few seconds) two folders down, and a file that is
    not a slice."""
    from optimlab.bench.slices import slice_landscape

    root = tmp_path_factory.mktemp("slices")
    result = slice_landscape("digits", "mlp", {"sgd": {"lr": 0.1}, "momentum": {"lr": 0.02},
                                               "adam": {"lr": 0.003}},
                             steps=30, grid=6, points=6, eval_size=200)
    (root / "runs" / "digits").mkdir(parents=True)
    (root / "runs" / "digits" / "slice.json").write_text(json.dumps(result.to_json()))
    (root / "broken").mkdir()
    (root / "broken" / "slice.json").write_text("{\"task\": 1}")
    return root, result


@pytest.fixture(scope="session")
def client(sweep_db, slice_dir):
    """The app over that store and those slices, in process (its startup warm-up run
    once)."""
    from fastapi.testclient import TestClient

    from optimlab.web.server import create_app

    with TestClient(create_app(sweep_db[0], slices=[slice_dir[0]]), base_url=LOCAL) as test_client:
        yield test_client


def store_copy(source, target, *sql) -> Path:
    """A copy of the run store ``source`` at ``target`` (a file path), with the SQL
    statements ``sql`` run on it (to damage or change it)."""
    import sqlite3

    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    with dst:
        for statement in sql:
            dst.execute(statement)
    dst.close()
    return Path(target)


#: Sweep 1 again as sweep 2 (its config and times, no runs): a store where one sweep can be
#: damaged while another is whole.
SECOND_SWEEP = ("INSERT INTO sweeps (id, key, name, task, model, config, created_at, environment) "
                "SELECT 2, key || '-2', 'second', task, model, config, created_at, environment "
                "FROM sweeps WHERE id = 1")


def fix_hparams(fixed: dict) -> str:
    """SQL setting sweep 1's fixed hyperparameters (``--hp sgd:momentum=0.9``) to ``fixed``."""
    value = json.dumps(fixed).replace("'", "''")
    return f"UPDATE sweeps SET config = json_set(config, '$.hparams', json('{value}')) WHERE id = 1"


def slice_copy(slices_root: Path, folder: Path, change) -> Path:
    """The good slice of :func:`slice_dir` (whose root is ``slices_root``) written to
    ``folder``/slice.json after ``change(data)`` (which edits its content in place)."""
    data = json.loads((slices_root / "runs" / "digits" / "slice.json").read_text())
    change(data)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "slice.json").write_text(json.dumps(data))
    return folder / "slice.json"
