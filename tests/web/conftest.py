"""Fixtures of the playground tests: an app, its test client, and a small run store."""

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
    import json

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
