"""Sweeps: every member stored, resume trains only what is missing, SIGKILL loses nothing."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from optimlab.bench.analysis import summarize
from optimlab.bench.executors import GroupsLost, LocalExecutor, Outcome
from optimlab.bench.store import RunStore, StoreError
from optimlab.bench.sweep import SweepSpec, auto_lrs, run_records, run_sweep
from optimlab.bench.trainer import TrainConfig
from tests.bench.toy import ToyTask

CONFIG = TrainConfig(steps=30, batch_size=64, eval_every=10)


def _spec(**kwargs):
    base = dict(task="digits", optimizers=("sgd", "adam"), config=CONFIG, lrs=(0.01, 0.1),
                seeds=2, hparams={"sgd": {"momentum": 0.9}}, target=0.5)
    spec = {**base, **kwargs}
    if "hparams" not in kwargs:  # the default's only for an sgd of the sweep
        spec["hparams"] = {k: v for k, v in base["hparams"].items() if k in spec["optimizers"]}
    return SweepSpec(**spec)


def test_sweep_stores_every_member_and_resume_repeats_nothing(store_url):
    store = RunStore(store_url)
    spec = _spec()
    sweep = run_sweep(spec, store)
    runs = store.list_runs(sweep)
    assert len(runs) == 8 and {r.status for r in runs} == {"finished"}
    assert {(r.optimizer, r.hparams["lr"], r.seed) for r in runs} == {
        (o, lr, s) for o in ("sgd", "adam") for lr in (0.01, 0.1) for s in (0, 1)}
    assert all(r.hparams.get("momentum") == 0.9 for r in runs if r.optimizer == "sgd")
    metrics = store.metrics(sweep)
    assert len(metrics) == 8 * 4 * 3  # runs x evaluations x (train, test loss, metric)
    before = [(r.id, r.started_at, r.finished_at) for r in runs]
    assert run_sweep(spec, store) == sweep
    assert [(r.id, r.started_at, r.finished_at) for r in store.list_runs(sweep)] == before
    best = {s.optimizer: s for s in summarize(run_records(store, sweep))}
    assert set(best) == {"sgd", "adam"} and all(0 < s.mean <= 1 for s in best.values())
    # each run's summary holds its last test metric point (step 30, as stored in the
    # metrics table: the same float, so equal exactly), an accuracy in [0, 1]
    last = metrics[(metrics.step == CONFIG.steps) & (metrics.name == "test_metric")]
    stored = dict(zip(last.run_id, last.value, strict=True))
    assert sorted(stored) == sorted(r.id for r in runs)
    assert all(r.summary["final_metric"] == stored[r.id] and 0 <= stored[r.id] <= 1
               for r in runs)


def _curves(store, sweep) -> list[tuple]:
    """Every stored point of ``sweep``: ((optimizer, lr, seed, step, name), value), sorted."""
    m = store.metrics(sweep)
    return sorted(((o, lr, s, step, name), value) for o, lr, s, step, name, value in zip(
        m.optimizer, m.lr, m.seed, m.step, m.name, m.value, strict=True))


def test_sequential_engine_gives_the_same_results(tmp_path):
    """Every stored point of the two engines' sweeps, on the float64 toy task: the engines
    differ in batching only, so they agree to the rel=1e-9 of tests/bench/test_trainer.py
    (float64 rounding of their different summation orders: 2.6e-16 relative, measured).
    On digits (float32) that rounding was 2.3e-7 (measured), a bound set by the CPU's
    kernels rather than by the engines, which would need a tolerance tuned to it."""
    spec = _spec(task="toy", optimizers=("adam",), lrs=(0.01,), seeds=2)
    a_store, b_store = RunStore(tmp_path / "a.db"), RunStore(tmp_path / "b.db")
    a_sweep = run_sweep(spec, a_store, task=ToyTask())
    b_sweep = run_sweep(spec, b_store, engine="sequential", task=ToyTask())
    a, b = run_records(a_store, a_sweep), run_records(b_store, b_sweep)
    assert len(a) == len(b) == 2 and {r["status"] for r in a + b} == {"finished"}
    a_points, b_points = _curves(a_store, a_sweep), _curves(b_store, b_sweep)
    assert len(a_points) == len(b_points) == 2 * 4 * 3  # runs x evaluations x curves
    for (key, x), (key2, y) in zip(a_points, b_points, strict=True):
        assert key == key2 and x == pytest.approx(y, rel=1e-9, abs=1e-12), key
    for x, y in zip(a, b, strict=True):  # the summaries, from those curves
        assert x["seed"] == y["seed"]
        assert x["final_test_loss"] == pytest.approx(y["final_test_loss"], rel=1e-9, abs=1e-12)
    # the pairing matters: seed 0's first point is not seed 1's (other initial weights)
    assert a_points[0][0][2:] == (0, 0, "test_loss") and a_points[12][0][2:] == (1, 0, "test_loss")
    assert a_points[0][1] != pytest.approx(a_points[12][1], rel=1e-6)


def test_a_broken_group_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    spec = _spec(optimizers=("muon", "adam"), hparams={})  # Muon refuses the model's biases
    from optimlab.bench.sweep import EngineWarning

    with pytest.warns(EngineWarning, match="^muon: "):  # each member tried alone, each failing
        sweep = run_sweep(spec, store)
    status = {(r.optimizer, r.status) for r in store.list_runs(sweep)}
    assert status == {("muon", "failed"), ("adam", "finished")}
    assert "2-D" in next(r.error for r in store.list_runs(sweep) if r.status == "failed")


def test_bad_specs():
    with pytest.raises(ValueError, match="unknown optimizer"):
        _spec(optimizers=("adamm",))
    with pytest.raises(ValueError, match="learning rates"):
        _spec(lrs=())
    with pytest.raises(ValueError, match="seeds"):
        _spec(seeds=0)
    # what the command line refuses, the Python API refuses too, before anything trains
    for kwargs, message in [
        (dict(optimizers=("adam", "adam")), "optimizers names adam more than once"),
        (dict(optimizers="adam"), "a sequence of registry names"),
        (dict(lrs=(float("inf"), 0.01)), "finite numbers > 0"),
        (dict(lrs=("0.1",)), "finite numbers > 0"),
        (dict(target="0.5"), "target must be a finite number"),
        (dict(target=float("nan")), "target must be a finite number"),
        (dict(seeds=True), "seeds"),
        (dict(config={"steps": 3}), "config must be a TrainConfig"),
        (dict(hparams={"sgdd": {"momentum": 0.9}}), "'sgdd', which is not among"),
        (dict(hparams={"adam": {"foo": 1}}), r"hparams\['adam'\]"),
        (dict(hparams={"adam": {"betas": 0.9}}), r"hparams\['adam'\]: betas"),
        (dict(hparams={"adam": {"lr": 0.1}}), "sets lr"),
    ]:
        with pytest.raises(ValueError, match=message):
            _spec(**kwargs)
    with pytest.raises(ValueError, match="engine"):
        run_sweep(_spec(), RunStore(":memory:"), engine="fast")
    assert len(auto_lrs("adam")) == 7 and min(auto_lrs("adam")) < 1e-3 < max(auto_lrs("adam"))


def test_a_task_that_is_no_name_is_refused_when_the_spec_is_made():
    """task=5 and task="" made a spec and failed only in run_sweep; the spec's own check
    now refuses them. A name it cannot look up yet (a module:function, a task loaded by
    the caller and given to run_sweep) is still taken."""
    for task, error, match in [
            (5, TypeError, r"^task must be a task name \(a str .*\), got int 5$"),
            (None, TypeError, r"^task must be a task name .*got NoneType None$"),
            ("", ValueError, r"^task must name a task \(one of digits, .*\), got ''$"),
            ("  ", ValueError, r"^task must name a task .*got '  '$")]:
        with pytest.raises(error, match=match):
            _spec(task=task)
    assert _spec(task="mytasks:blobs").task == "mytasks:blobs"
    assert _spec(task="toy").task == "toy"


@pytest.mark.parametrize("name", [5, b"sweep", ["a"]])
def test_a_sweep_name_that_is_not_text_is_refused(name):
    """run_sweep(..., name=5) stored the int as the sweep's name; train_members too."""
    from optimlab.bench.sweep import train_members
    from optimlab.bench.trainer import Member

    store = RunStore(":memory:")
    with pytest.raises(TypeError, match=rf"^name must be a str \(the sweep's name\) or None, "
                                        rf"got {type(name).__name__} "):
        run_sweep(_spec(), store, name=name)
    with pytest.raises(TypeError, match=r"^name must be a str"):
        train_members(store, ToyTask(), CONFIG, [Member("sgd", {"lr": 0.1})], name=name)
    assert store.sweeps().empty  # refused before the sweep was opened


def test_a_sweep_being_run_elsewhere_is_refused_up_front(tmp_path, store_url):
    """Two runs (or --resume runs) of one sweep at once: the second raises a one-line
    StoreError before it adds, starts or trains any run, and works once the first ends."""
    from optimlab.bench.tasks import get as get_task

    spec = _spec(optimizers=("sgd",), lrs=(0.1,), seeds=1,
                 config=TrainConfig(steps=5, batch_size=64, eval_every=5))
    db = store_url
    first, second = RunStore(db), RunStore(db)
    sweep = first.open_sweep(spec.stored_config(get_task(spec.task)))
    with first.lock_sweep(sweep):  # as run_sweep holds it while it trains
        with pytest.raises(StoreError, match=rf"sweep {sweep} of .* is being run or "
                                             rf"resumed by process {os.getpid()} on this "
                                             rf"machine") as err:
            run_sweep(spec, second)
        assert "\n" not in str(err.value)
        assert second.list_runs(sweep) == []  # refused before adding a run
    assert run_sweep(spec, second) == sweep
    assert [r.status for r in second.list_runs(sweep)] == ["finished"]
    assert not (tmp_path / f"runs.db-sweep{sweep}.lock").exists()  # released at the end
    first.close()
    second.close()


SCRIPT = textwrap.dedent("""
    import sys
    from optimlab.bench.store import RunStore, StoreError
    from optimlab.bench.sweep import SweepSpec, run_sweep
    from optimlab.bench.trainer import TrainConfig
    spec = SweepSpec(task="digits", optimizers=("sgd", "adam", "rmsprop", "adagrad"),
                     config=TrainConfig(steps=400, batch_size=64, eval_every=100),
                     lrs=(0.01, 0.03), seeds=2)
    run_sweep(spec, RunStore(sys.argv[1]))
""")


def test_sigkill_half_way_then_resume(tmp_path, store_url):
    db = store_url
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(db)], env=env)
    deadline = time.monotonic() + 120
    finished = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                reader = RunStore(db, readonly=True)
            except StoreError:  # created but still empty: the writer is setting it up
                continue
            with reader:
                sweeps = reader.sweeps()
                if len(sweeps):
                    runs = reader.list_runs(int(sweeps["sweep_id"].iloc[0]))
                    finished = sum(r.status == "finished" for r in runs)
                    if 4 <= finished < len(runs):
                        break
        assert proc.poll() is None, "the sweep ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = RunStore(db)
    sweep = int(store.sweeps()["sweep_id"].iloc[0])
    killed = {r.id: r for r in store.list_runs(sweep)}
    done = {i: r for i, r in killed.items() if r.status == "finished"}
    assert 4 <= len(done) < 16
    points = store.metrics(sweep).groupby("run_id").size()
    assert all(points[i] == 5 * 3 for i in done)  # complete curves for every finished run

    namespace = {}
    exec(SCRIPT.replace("run_sweep(spec, RunStore(sys.argv[1]))", ""), namespace)
    run_sweep(namespace["spec"], store)
    after = {r.id: r for r in store.list_runs(sweep)}
    assert {r.status for r in after.values()} == {"finished"} and len(after) == 16
    for i, r in done.items():  # finished runs were not trained again
        assert (after[i].started_at, after[i].finished_at) == (r.started_at, r.finished_at)
    points = store.metrics(sweep).groupby("run_id").size()
    assert (points == 5 * 3).all() and len(points) == 16
    assert store.sweep(sweep)["config"]["seeds"] == 2


def test_an_automatic_grid_is_extended_past_the_edge_its_best_rate_sits_on(tmp_path):
    # Adam on the digits' logistic regression in 30 steps: its automatic grid (3e-5..1e-2
    # around its default) is too timid, so the best rate is the top edge (measured: 0.79
    # accuracy at 1e-2, 0.93 at 0.18 after two extensions, 0.89 at 0.46)
    from optimlab.bench import sweep as sweep_module

    spec = SweepSpec(task="digits", optimizers=("adam",),
                     config=TrainConfig(steps=30, batch_size=64, eval_every=10,
                                        model="logreg"), lrs=None, seeds=1)
    grid = auto_lrs("adam")
    store = RunStore(tmp_path / "runs.db")
    sweep = run_sweep(spec, store)
    lrs = sorted({r.hparams["lr"] for r in store.list_runs(sweep)})
    assert lrs[:len(grid)] == pytest.approx(grid) and len(lrs) > len(grid)
    assert lrs[-1] > max(grid)
    assert len(lrs) <= len(grid) + 2 * sweep_module.MAX_EXTENSIONS
    (s,) = summarize(run_records(store, sweep))
    if len(lrs) < len(grid) + 2 * sweep_module.MAX_EXTENSIONS:
        assert s.edge is None  # it stopped because the best rate is inside now
    assert {r.status for r in store.list_runs(sweep)} <= {"finished", "diverged"}
    # an explicit grid is not extended, but the edge is flagged
    fixed = run_sweep(SweepSpec(**{**spec.__dict__, "lrs": (1e-3, 1e-2)}), store)
    assert len(store.list_runs(fixed)) == 2
    (s,) = summarize(run_records(store, fixed))
    assert s.edge == "high"
    from optimlab.bench.report import summary_table
    assert "(top of grid)" in summary_table(store, fixed)
    assert "the optimum may lie outside the grid" in summary_table(store, fixed)
    # ... unless asked: extend=True extends a given grid at its own spacing there (x10)
    extended = run_sweep(SweepSpec(**{**spec.__dict__, "lrs": (1e-3, 1e-2), "extend": True}),
                         store)
    assert extended != fixed
    tried = sorted({r.hparams["lr"] for r in store.list_runs(extended)})
    assert tried[:4] == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    (s,) = summarize(run_records(store, extended))
    assert s.best_lr > 1e-2  # measured above: 0.18 beats 1e-2 by far
    assert s.edge is None or len(tried) == 2 + 2 * sweep_module.MAX_EXTENSIONS
    # the tables say which rates the edge added; the automatic grid's too
    extra = ", ".join(f"{lr:.3g}" for lr in tried[2:])
    assert f"so {extra} were tried too" in summary_table(store, extended)
    assert "were tried too" in summary_table(store, sweep)
    assert "were tried too" not in summary_table(store, fixed)


def test_a_sweep_of_listed_members_names_no_extension(tmp_path):
    # the advisor's sweeps list their members (each optimizer at rates of its own) and store
    # lrs None: their rates off the automatic grid were chosen, not added by an edge
    from optimlab.bench.report import summary_table
    from optimlab.bench.sweep import train_members
    from optimlab.bench.tasks import get
    from optimlab.bench.trainer import Member

    store = RunStore(tmp_path / "runs.db")
    config = TrainConfig(steps=2, batch_size=64, eval_every=1, model="logreg")
    members = [Member("adam", {"lr": lr}, 0) for lr in (0.0123, 0.0456)]
    sweep = train_members(store, get("digits"), config, members)
    assert len(store.list_runs(sweep)) == 2
    assert "were tried too" not in summary_table(store, sweep)


def test_extend_is_stored_only_where_it_departs_from_the_default():
    config = TrainConfig(steps=3)
    base = dict(task="digits", optimizers=("adam",), config=config)
    auto, fixed = SweepSpec(**base), SweepSpec(**base, lrs=(1e-3, 1e-2))
    assert auto.extends and not fixed.extends
    # sweeps stored before ``extend`` existed keep their identity
    assert "extend" not in auto.to_config() and "extend" not in fixed.to_config()
    assert SweepSpec(**base, extend=True).to_config() == auto.to_config()
    assert SweepSpec(**base, lrs=(1e-3,), extend=True).to_config()["extend"] is True
    assert SweepSpec(**base, extend=False).to_config()["extend"] is False
    with pytest.raises(ValueError, match="extend must be True, False or None"):
        SweepSpec(**base, extend="yes")


class _LosesAGroup(LocalExecutor):
    """Trains every group here but reports the first one's workers as dead."""

    def map(self, calls, started, progress=None):
        for index, outcome in super().map(calls, started, progress):
            yield index, Outcome("lost", message="WorkerCrashedError: killed") if index == 0 \
                else outcome


def test_a_group_lost_by_its_workers_stays_unfinished_for_resume(tmp_path):
    spec = _spec(lrs=(0.1,), seeds=1, config=TrainConfig(steps=5, batch_size=64, eval_every=5))
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(GroupsLost, match=r"^1 group lost .* sgd \(1 run\): WorkerCrashedError"):
        run_sweep(spec, store, executor=_LosesAGroup())
    statuses = {r.optimizer: r.status for r in store.list_runs(1)}
    # the other group is stored; the lost one is pending (nothing trains it now), not running
    assert statuses == {"sgd": "pending", "adam": "finished"}
    finished = store.list_runs(1, "finished")
    run_sweep(spec, store)  # resume: only the lost group trains
    assert {r.status for r in store.list_runs(1)} == {"finished"}
    assert [r for r in store.list_runs(1) if r.optimizer == "adam"] == finished  # not redone


class _WorkerWithoutPlugin(LocalExecutor):
    """Runs each group as a Ray worker would (``executors._remote_call``) in a process whose
    registry lacks the optimizer ``name`` (a plugin the cluster's nodes do not have)."""

    def __init__(self, name, cls):
        self.name_missing, self.cls = name, cls

    def map(self, calls, started, progress=None):
        import optimlab
        from optimlab.bench import executors

        for index, call in enumerate(calls):
            started(index)
            optimlab.unregister(self.name_missing)
            try:
                outcome = executors._remote_call(call.fn, *call.args)
            finally:
                optimlab.register(self.cls, name=self.name_missing)
            yield index, outcome


def test_a_worker_checks_the_optimizer_a_wrapper_wraps_too():
    """Lookahead or SAM over a plugin the worker lacks raised "unknown optimizer" inside the
    run (stored as failed, counted as diverged) where the wrapper itself was known."""
    from optimlab.bench.executors import unknown_optimizers
    from optimlab.bench.trainer import Member

    members = [Member("adam", {"lr": 0.1}), Member("lookahead", {"inner": "nosuch", "lr": 0.1}),
               Member("sam", {"base_optimizer": "sgd", "lr": 0.1}), Member("zzz", {"lr": 0.1})]
    assert unknown_optimizers(("task", "config", members)) == ["nosuch", "zzz"]


def test_a_group_whose_optimizer_the_worker_lacks_stays_unfinished_for_resume(tmp_path):
    """A plugin installed where the sweep runs but not on the Ray cluster's nodes: its runs
    were stored as failed ("unknown optimizer", counted under diverged) and a resume never
    trained them. Now they are left for --resume, which trains them where the optimizer is
    known; the other optimizer's group is stored as ever."""
    import optimlab

    class DriverOnly(optimlab.SGD):
        """SGD under a name only the driver knows."""

    optimlab.register(DriverOnly, name="driver_only")
    try:
        spec = _spec(optimizers=("driver_only", "adam"), lrs=(0.1,), seeds=1, hparams={},
                     config=TrainConfig(steps=5, batch_size=64, eval_every=5))
        store = RunStore(tmp_path / "runs.db")
        with pytest.raises(GroupsLost, match=r"driver_only \(1 run\): the Ray worker on .* "
                                             r"does not know the optimizer 'driver_only'"):
            run_sweep(spec, store, executor=_WorkerWithoutPlugin("driver_only", DriverOnly))
        statuses = {r.optimizer: r.status for r in store.list_runs(1)}
        assert statuses == {"driver_only": "pending", "adam": "finished"}
        run_sweep(spec, store)  # resume, the optimizer known: it trains
        assert {r.status for r in store.list_runs(1)} == {"finished"}
    finally:
        optimlab.unregister("driver_only")


def test_a_sweep_of_other_data_is_a_sweep_of_its_own(tmp_path):
    """The same spec on other data (another --data-dir, an edited task module) must not find
    the first data's stored results: the data's digest is part of the sweep's identity."""
    import dataclasses

    from optimlab.bench.sweep import data_digest
    from optimlab.bench.tasks import get as get_task

    task = get_task("digits")
    changed = task.x_train.clone()
    changed[0, 0] += 1.0
    other = dataclasses.replace(task, x_train=changed)
    assert data_digest(task) == data_digest(get_task("digits"))
    assert data_digest(other) != data_digest(task)
    spec = _spec(optimizers=("adam",), lrs=(0.01,), seeds=1)
    assert spec.stored_config(task) != spec.stored_config(other)
    store = RunStore(tmp_path / "runs.db")
    sweep = run_sweep(spec, store)
    assert store.find_sweep(spec.stored_config(task)) == sweep
    assert store.find_sweep(spec.stored_config(other)) is None


def test_a_sweep_of_another_network_under_the_same_name_is_a_sweep_of_its_own():
    """An edited task module whose model changed (same name, same data) read back the first
    model's stored results; the architecture's digest is now part of the sweep's identity.
    It reads no initial values (a model drawn from another random source could never be
    resumed) and leaves the caller's random stream alone."""
    import dataclasses

    from torch import nn

    from optimlab.bench.sweep import model_digest
    from optimlab.bench.tasks import get as get_task

    task = get_task("digits")
    wider = dataclasses.replace(task, models={**task.models, "mlp": lambda: nn.Sequential(
        nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 10))})
    spec = _spec(optimizers=("adam",), lrs=(0.01,), seeds=1,
                 config=dataclasses.replace(CONFIG, model="mlp"))
    assert model_digest(task, "mlp") == model_digest(get_task("digits"), "mlp")
    assert model_digest(wider, "mlp") != model_digest(task, "mlp")
    assert spec.stored_config(wider) != spec.stored_config(task)
    torch.manual_seed(123)
    model_digest(task, "mlp")
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))


def test_a_built_in_task_is_one_sweep_however_its_name_is_spelled(tmp_path):
    """tasks.get reads built-in names case-insensitively, with '_' or spaces for '-': the
    sweep's identity keeps the catalog name, so ``Fashion_MNIST`` and ``fashion-mnist`` are
    one sweep (trained once; --resume finds it under either spelling). The catalog spelling
    is stored as before (sweeps already stored under it still match), and a module:function
    name is kept as given."""
    base = dict(optimizers=("adam",), config=TrainConfig(steps=3))
    for typed, stored in [("Fashion_MNIST", "fashion-mnist"), (" fashion mnist ", "fashion-mnist"),
                          ("fashion-mnist", "fashion-mnist"), ("SPARSE_LOGREG", "sparse-logreg"),
                          ("digits", "digits"), ("mytasks:Good_Task", "mytasks:Good_Task")]:
        assert SweepSpec(task=typed, **base).to_config()["task"] == stored, typed
    assert SweepSpec(task="Fashion_MNIST", **base).to_config() == \
        SweepSpec(task="fashion-mnist", **base).to_config()
    store = RunStore(tmp_path / "runs.db")
    config = TrainConfig(steps=3, batch_size=64, eval_every=3)
    typed = _spec(task="Digits", optimizers=("adam",), lrs=(0.01,), seeds=1, config=config)
    sweep = run_sweep(typed, store)
    assert store.sweep(sweep)["config"]["task"] == "digits"
    before = store.list_runs(sweep)
    canonical = _spec(task="digits", optimizers=("adam",), lrs=(0.01,), seeds=1, config=config)
    assert run_sweep(canonical, store) == sweep and store.list_runs(sweep) == before  # not redone


TINY = TrainConfig(steps=5, batch_size=64, eval_every=5)


def _ended(store, sweep) -> dict:
    """Each run's (optimizer, lr, seed) -> (id, status, finished_at): what a resume that
    trains nothing again leaves as it was."""
    return {(r.optimizer, r.hparams["lr"], r.seed): (r.id, r.status, r.finished_at)
            for r in store.list_runs(sweep)}


def test_a_lost_group_the_store_cannot_put_back_still_lets_the_others_train(tmp_path,
                                                                              monkeypatch):
    """The store refuses the write that puts a lost group's runs back to pending (a lock, a
    server gone as workers are lost): the other groups still train, and the sweep ends in
    GroupsLost saying the runs stay running (which a resume trains too)."""
    import sqlite3

    spec = _spec(lrs=(0.1,), seeds=1, config=TrainConfig(steps=5, batch_size=64, eval_every=5))
    store = RunStore(tmp_path / "runs.db")

    def locked(ids):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "reset_runs", locked)
    with pytest.raises(GroupsLost) as caught:
        run_sweep(spec, store, executor=_LosesAGroup())
    assert any("left 'running'" in note and "database is locked" in note
               for note in caught.value.__notes__)
    assert {r.optimizer: r.status for r in store.list_runs(1)} == {"sgd": "running",
                                                                   "adam": "finished"}


def test_the_order_of_the_optimizers_and_rates_is_no_part_of_a_sweeps_identity(tmp_path):
    """sgd,adam and adam,sgd (and rates 0.01,0.1 and 0.1,0.01) train the same runs: one
    sweep, so a resume in another order trains only the runs left unfinished, and the
    same command again trains nothing. The stored configuration keeps the first order,
    which reports list the optimizers in."""
    from optimlab.bench.tasks import get as get_task

    task = get_task("digits")
    store = RunStore(tmp_path / "runs.db")
    first = _spec(optimizers=("sgd", "adam"), lrs=(0.01, 0.1), seeds=1, config=TINY)
    with pytest.raises(GroupsLost):  # sgd's group lost: left to a resume
        run_sweep(first, store, executor=_LosesAGroup())
    sweep = store.find_sweep(first.stored_config(task))
    before = _ended(store, sweep)
    # pending, not running: nothing trains it now (a report or a second look would take it
    # for a run in progress)
    assert {k[0]: v[1] for k, v in before.items()} == {"sgd": "pending", "adam": "finished"}
    for optimizers, lrs in [(("adam", "sgd"), (0.1, 0.01)), (("sgd", "adam"), (0.1, 0.01)),
                            (("adam", "sgd"), (0.01, 0.1))]:
        other = _spec(optimizers=optimizers, lrs=lrs, seeds=1, config=TINY)
        assert store.find_sweep(other.stored_config(task)) == sweep, (optimizers, lrs)
    resumed = _spec(optimizers=("adam", "sgd"), lrs=(0.1, 0.01), seeds=1, config=TINY)
    assert run_sweep(resumed, store) == sweep
    after = _ended(store, sweep)
    assert after.keys() == before.keys() and {v[1] for v in after.values()} == {"finished"}
    assert {k: v for k, v in after.items() if k[0] == "adam"} == \
        {k: v for k, v in before.items() if k[0] == "adam"}  # not trained again
    assert run_sweep(first, store) == sweep and _ended(store, sweep) == after
    assert len(store.sweeps()) == 1
    config = store.sweep(sweep)["config"]
    assert config["optimizers"] == ["sgd", "adam"] and config["lrs"] == [0.01, 0.1]


def test_a_model_left_out_and_the_default_named_are_one_sweep(tmp_path):
    """digits' default model is mlp: leaving --model out and naming mlp train the same
    network, one sweep (trained once). The name is shown as given by the command that
    stored the sweep; another model is another sweep."""
    from optimlab.bench.tasks import get as get_task

    task = get_task("digits")
    assert task.default_model == "mlp"
    store = RunStore(tmp_path / "runs.db")
    left_out = _spec(optimizers=("adam",), lrs=(0.01,), seeds=1, config=TINY)
    named = _spec(optimizers=("adam",), lrs=(0.01,), seeds=1,
                  config=TrainConfig(steps=5, batch_size=64, eval_every=5, model="mlp"))
    assert left_out.stored_config(task)["train"]["model"] == "mlp"  # the model that trains
    sweep = run_sweep(left_out, store)
    ended = _ended(store, sweep)
    assert store.find_sweep(named.stored_config(task)) == sweep
    assert run_sweep(named, store) == sweep and _ended(store, sweep) == ended
    assert store.sweep(sweep)["model"] is None  # as the first command gave it
    other = _spec(optimizers=("adam",), lrs=(0.01,), seeds=1,
                  config=TrainConfig(steps=5, batch_size=64, eval_every=5, model="logreg"))
    assert store.find_sweep(other.stored_config(task)) is None
    # and the other way round: stored naming the default, found leaving it out
    store = RunStore(tmp_path / "named.db")
    sweep = run_sweep(named, store)
    ended = _ended(store, sweep)
    assert run_sweep(left_out, store) == sweep and _ended(store, sweep) == ended
    assert store.sweep(sweep)["model"] == "mlp"


@pytest.mark.parametrize("model", [None, "mlp"])
def test_a_sweep_stored_under_the_earlier_key_is_found_by_the_spec_that_stored_it(tmp_path,
                                                                                model):
    """Before the key left out the grid's order and how the model is named, a sweep was
    keyed by its configuration as given, with train's model as given (None for the
    default): the spec that stored it still finds it, and resumes it."""
    import sqlite3

    from optimlab.bench.store import canonical_json, canonical_key
    from optimlab.bench.tasks import get as get_task

    task = get_task("digits")
    config = TrainConfig(steps=5, batch_size=64, eval_every=5, model=model)
    spec = _spec(optimizers=("sgd", "adam"), lrs=(0.1, 0.01), seeds=1, config=config)
    stored = spec.stored_config(task)
    earlier = {**stored, "train": {**stored["train"], "model": model}}  # as stored before
    db = tmp_path / "runs.db"
    with RunStore(db) as store:  # killed before training anything
        sweep = store.open_sweep(earlier)
        store.add_runs(sweep, [{"optimizer": m.optimizer, "hparams": m.hparams, "seed": m.seed}
                               for m in spec.members()])
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE sweeps SET key = ?, config = ? WHERE id = ?",
                    (canonical_key(earlier), canonical_json(earlier), sweep))
    con.close()
    store = RunStore(db)
    assert store.find_sweep(stored) == sweep
    assert run_sweep(spec, store) == sweep and len(store.sweeps()) == 1
    assert len(store.list_runs(sweep)) == 4 and not store.pending_runs(sweep)
    ended = _ended(store, sweep)
    assert run_sweep(spec, store) == sweep and _ended(store, sweep) == ended
    assert store.sweep(sweep)["key"] == canonical_key(earlier)  # left as it was


def test_the_command_line_finds_a_sweep_given_in_another_order(tmp_path, capsys):
    """An interrupted adam,sgd sweep: sgd,adam without --resume is refused as that sweep
    (not trained anew), and with --resume trains only the runs adam,sgd left."""
    from optimlab.cli import main

    db = tmp_path / "runs.db"
    store = RunStore(db)
    spec = SweepSpec(task="digits", optimizers=("adam", "sgd"), lrs=(0.01, 0.1), seeds=1,
                     config=TINY)
    with pytest.raises(GroupsLost):  # adam's group lost: left to a resume
        run_sweep(spec, store, executor=_LosesAGroup())
    (sweep,) = store.sweeps()["sweep_id"]
    before = _ended(store, sweep)
    store.close()
    argv = ["bench", "digits", "--optimizers", "sgd,adam", "--lrs", "0.1,0.01", "--seeds", "1",
            "--steps", "5", "--batch-size", "64", "--eval-every", "5", "--model", "mlp",
            "--db", str(db)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"sweep {sweep} in" in err and "same configuration and 2 unfinished runs" in err
    assert main(argv + ["--resume"]) == 0
    store = RunStore(db)
    after = _ended(store, sweep)
    assert len(store.sweeps()) == 1 and {v[1] for v in after.values()} == {"finished"}
    assert {k: v for k, v in after.items() if k[0] == "sgd"} == \
        {k: v for k, v in before.items() if k[0] == "sgd"}
    assert main(argv) == 0 and f"nothing trained: sweep {sweep}" in capsys.readouterr().out


def test_a_model_factory_returning_no_module_is_a_user_error():
    """model_digest (part of every sweep's identity, computed before anything trains) read
    .named_parameters() of whatever the factory returned: an AttributeError, which the
    command line reports as an internal error. It is a ValueError naming the task and model."""
    import dataclasses

    from optimlab.bench.sweep import model_digest
    from optimlab.bench.tasks import get as get_task

    task = get_task("digits")
    broken = dataclasses.replace(task, models={**task.models, "mlp": lambda: "hi"})
    with pytest.raises(ValueError, match=r"^task 'digits', model 'mlp': the model factory "
                                         r"returned str 'hi', not a torch.nn.Module"):
        model_digest(broken, "mlp")
    spec = _spec(optimizers=("adam",), lrs=(0.01,), seeds=1,
                 config=TrainConfig(steps=3, model="mlp"))
    with pytest.raises(ValueError, match="not a torch.nn.Module"):
        spec.stored_config(broken)


@pytest.fixture
def cost_cache(tmp_path, monkeypatch):
    from optimlab.bench import cost as cost_module

    folder = tmp_path / "step-costs"
    monkeypatch.setattr(cost_module, "cache_dir", lambda: folder)
    return folder


def _measured(monkeypatch) -> list:
    """Each step-cost request of the sweep, as (optimizers, recalibrate)."""
    from optimlab.bench import sweep as sweep_module

    calls = []
    real = sweep_module.step_costs

    def spy(task, model, batch_size, optimizers, recalibrate=False, **kwargs):
        calls.append((sorted(optimizers), recalibrate))
        return real(task, model, batch_size, optimizers, recalibrate=recalibrate, **kwargs)

    monkeypatch.setattr(sweep_module, "step_costs", spy)
    return calls


def _fake_cpu_clock(monkeypatch, seconds: float = 0.25) -> float:
    """The calibration's CPU clock (``time.thread_time`` in optimlab.bench.cost) made a fake
    one that moves ``seconds`` at each read: a timed block (two reads) takes ``seconds``,
    so every block is sized to one step and every optimizer measures ``seconds`` a step,
    exactly (0.25 and its quarters are exact in binary)."""
    from types import SimpleNamespace

    from optimlab.bench import cost as cost_module

    now = [0.0]

    def thread_time():
        now[0] += seconds
        return now[0]

    monkeypatch.setattr(cost_module, "time", SimpleNamespace(thread_time=thread_time))
    return seconds


STORED_COST = {"seconds_per_step": 0.5, "gradients_per_step": 1.0, "cost_spread": 0.02,
               "cost_noisy": False}
SMALL = TrainConfig(steps=5, batch_size=64, eval_every=5)


def _half_done(store, spec) -> int:
    """The sweep of ``spec`` with adam's seed 0 ended, stored with a step cost of 0.5 s (as
    a sweep killed after it, on a machine that measured that)."""
    from optimlab.bench.tasks import get

    sweep = store.open_sweep(spec.stored_config(get(spec.task)))
    store.add_runs(sweep, [{"optimizer": m.optimizer, "hparams": m.hparams, "seed": m.seed}
                           for m in spec.members()])
    (run,) = [r for r in store.pending_runs(sweep) if r.optimizer == "adam" and r.seed == 0]
    store.finish_run(run.id, "finished", summary={"final_metric": 0.9, "score": 0.9,
                                                  "steps_to_target": 4, "cost_to_target": 2.0,
                                                  **STORED_COST})
    return sweep


def test_a_resumed_sweep_keeps_the_step_costs_its_ended_runs_hold(tmp_path, cost_cache,
                                                                  monkeypatch):
    """Resume measured the pending optimizers again (or read another cache), so one sweep
    mixed calibrations: adam's seed 0 at one cost, its seed 1 at another."""
    spec = _spec(lrs=(0.1,), config=SMALL)
    store = RunStore(tmp_path / "runs.db")
    sweep = _half_done(store, spec)
    calls = _measured(monkeypatch)
    measured = _fake_cpu_clock(monkeypatch)  # what a calibration now measures: not 0.5
    run_sweep(spec, store)
    summaries = {(r.optimizer, r.seed): r.summary for r in store.list_runs(sweep)}
    assert summaries[("adam", 1)]["seconds_per_step"] == 0.5  # adam's one calibration
    assert summaries[("sgd", 0)]["seconds_per_step"] == measured  # sgd's, measured now
    assert summaries[("sgd", 1)]["seconds_per_step"] == summaries[("sgd", 0)]["seconds_per_step"]
    assert calls == [(["sgd"], False)]  # only the optimizer with no cost in the sweep


def test_recalibrating_a_finished_sweep_measures_again_and_says_what_it_cannot_rewrite(
        tmp_path, cost_cache, monkeypatch):
    """--recalibrate on a finished sweep measured nothing and said nothing."""
    from optimlab.bench.sweep import CalibrationWarning

    spec = _spec(lrs=(0.1,), seeds=1, config=SMALL)
    store = RunStore(tmp_path / "runs.db")
    sweep = run_sweep(spec, store)
    before = [r.summary for r in store.list_runs(sweep)]
    calls = _measured(monkeypatch)
    with pytest.warns(CalibrationWarning, match=r"^sweep 1: the step costs of sgd, adam were "
                      r"measured again and cached, but the ended runs of adam, sgd keep the "
                      r"costs they were stored with \(the store does not rewrite an ended "
                      r"run\)"):
        assert run_sweep(spec, store, recalibrate=True) == sweep
    assert calls == [(["adam", "sgd"], True)]  # all the sweep's optimizers, together
    assert [r.summary for r in store.list_runs(sweep)] == before


def test_recalibrating_on_resume_measures_every_optimizer_and_keeps_one_cost_each(
        tmp_path, cost_cache, monkeypatch):
    from optimlab.bench.sweep import CalibrationWarning

    spec = _spec(lrs=(0.1,), config=SMALL)
    store = RunStore(tmp_path / "runs.db")
    sweep = _half_done(store, spec)
    calls = _measured(monkeypatch)
    measured = _fake_cpu_clock(monkeypatch)  # what a calibration now measures: not 0.5
    with pytest.warns(CalibrationWarning, match=r"the ended runs of adam keep .* and so do "
                      r"the runs of adam trained now; sgd take the new costs, so this sweep "
                      r"mixes two calibrations"):
        run_sweep(spec, store, recalibrate=True)
    assert calls == [(["adam", "sgd"], True)]
    summaries = {(r.optimizer, r.seed): r.summary for r in store.list_runs(sweep)}
    assert summaries[("adam", 1)]["seconds_per_step"] == 0.5  # the ended run's, kept
    assert summaries[("sgd", 1)]["seconds_per_step"] == measured  # the new calibration


class _GuardedToy(ToyTask):
    """A task whose loss raises once it is out of bounds, as a user's guarded loss may
    (under vmap the check itself raises: a batched group fails whole)."""

    def loss_fn(self, output, target):
        loss = super().loss_fn(output, target)
        if float(loss.detach()) >= 100:
            raise FloatingPointError("loss out of bounds")
        return loss


@pytest.mark.parametrize("engine", ["population", "sequential"])
def test_a_member_that_raises_fails_alone(tmp_path, engine):
    """One member's error must not cost the others of its optimizer their runs: the
    sequential engine guards each member, and a batched group that raises is trained again
    one member at a time."""
    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="toy", optimizers=("sgd",), lrs=(0.1, 1e30), seeds=2,
                     config=TrainConfig(steps=20, batch_size=32, eval_every=10))
    if engine == "population":  # said, since the runs come from the other engine
        from optimlab.bench.sweep import EngineWarning

        # the error that stopped the group is said (a group too big for memory is trained
        # apart too, and only this line would say why): here the guard's float() under vmap
        with pytest.warns(EngineWarning, match=r"^sgd: an error stopped the batched group, so "
                                               r"its 4 runs are trained again one at a time .*"
                                               r"the error, sgd's: RuntimeError: vmap: "):
            sweep = run_sweep(spec, store, engine=engine, task=_GuardedToy())
    else:
        sweep = run_sweep(spec, store, engine=engine, task=_GuardedToy())
    runs = store.list_runs(sweep)
    assert {(r.hparams["lr"], r.status) for r in runs} == {(0.1, "finished"), (1e30, "failed")}
    assert all("FloatingPointError: loss out of bounds" in r.error
               for r in runs if r.status == "failed")
    assert all(len(store.metrics(sweep, run_ids=[r.id])) > 0 for r in runs if r.status == "finished")


def test_a_batched_group_trained_again_apart_tells_the_progress_bar(tmp_path):
    """The retry of a batched group that raised trains its members one at a time: a progress
    callback with ``extend`` hears of the added calls first (steps times members, the runs)
    and then ticks through them, so its bar neither stalls nor ends short."""
    from optimlab.bench.sweep import EngineWarning

    class Recorder:
        def __init__(self):
            self.ticks, self.extended, self.after = 0, [], None

        def __call__(self, n):
            self.ticks += n

        def extend(self, groups, note):
            self.extended.append((groups, note))
            self.after = self.ticks

    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="toy", optimizers=("sgd",), lrs=(0.1, 1e30), seeds=2,
                     config=TrainConfig(steps=20, batch_size=32, eval_every=10))
    progress = Recorder()
    with pytest.warns(EngineWarning, match="trained again one at a time"):
        run_sweep(spec, store, engine="population", task=_GuardedToy(), progress=progress)
    assert progress.extended == [([(80, 4)], "4 runs trained again one at a time")]
    assert progress.ticks - progress.after == 80  # 4 members x 20 steps, one after another


def test_a_sequential_sweep_stopped_mid_way_keeps_every_run_that_ended(tmp_path):
    """The sequential engine trains and stores one run at a time: a Ctrl-C in the third run
    keeps the two before it (they were lost with their optimizer's whole group), and resume
    trains the rest."""
    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="toy", optimizers=("sgd", "adam"), lrs=(0.1,), seeds=2,
                     config=TrainConfig(steps=10, batch_size=32, eval_every=5))
    ticks = [0]

    def interrupt(n):
        ticks[0] += n
        if ticks[0] >= 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, store, engine="sequential", task=ToyTask(), progress=interrupt)
    (sweep,) = store.sweeps()["sweep_id"]
    status = [(r.optimizer, r.seed, r.status) for r in store.list_runs(int(sweep))]
    # adam's first run was training: put back to pending, as never started
    assert sorted(status) == [("adam", 0, "pending"), ("adam", 1, "pending"),
                              ("sgd", 0, "finished"), ("sgd", 1, "finished")]
    run_sweep(spec, store, engine="sequential", task=ToyTask())
    assert {r.status for r in store.list_runs(int(sweep))} == {"finished"}


def test_a_grid_is_extended_at_most_max_extensions_times_in_all(tmp_path, monkeypatch):
    """Running a finished sweep again (or resuming it) counts the extensions it made
    already: the same command gave another table each time (it extended the grid again)."""
    from optimlab.bench import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "MAX_EXTENSIONS", 1)
    spec = SweepSpec(task="digits", optimizers=("adam",), lrs=(1e-4, 1e-3), extend=True,
                     seeds=1, config=TrainConfig(steps=30, batch_size=64, eval_every=10,
                                                 model="logreg"))
    store = RunStore(tmp_path / "runs.db")
    sweep = run_sweep(spec, store)
    tried = sorted({r.hparams["lr"] for r in store.list_runs(sweep)})
    assert tried == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])  # one extension, two rates
    (s,) = summarize(run_records(store, sweep))
    assert s.edge == "high"  # still on the edge: a second extension would be asked for
    ended = [(r.id, r.finished_at) for r in store.list_runs(sweep)]
    assert run_sweep(spec, store) == sweep
    assert [(r.id, r.finished_at) for r in store.list_runs(sweep)] == ended


def test_a_spec_spells_optimizers_as_the_registry_and_takes_any_sequence_of_rates():
    import numpy as np

    spec = _spec(optimizers=("Adam ", "SGD"), hparams={"SGD": {"momentum": 0.9}},
                 lrs=np.logspace(-3, -1, 3))
    assert spec.optimizers == ("adam", "sgd") and spec.hparams == {"sgd": {"momentum": 0.9}}
    assert spec.lrs == pytest.approx((1e-3, 1e-2, 1e-1)) and type(spec.lrs[0]) is float
    assert spec.to_config() == _spec(optimizers=("adam", "sgd"), lrs=[0.001, 0.01, 0.1],
                                     hparams={"sgd": {"momentum": 0.9}}).to_config()
    assert _spec(lrs=(1,)).to_config() == _spec(lrs=(1.0,)).to_config()
    with pytest.raises(ValueError, match="optimizers names adam more than once"):
        _spec(optimizers=("adam", "Adam"), hparams={})
    with pytest.raises(ValueError, match="learning rates must be finite numbers > 0"):
        _spec(lrs=np.array([]))
    with pytest.raises(ValueError, match="learning rates must be finite numbers > 0"):
        _spec(lrs=0.1)
    spec = SweepSpec(task="digits", optimizers=(n for n in ["Adam", "sgd"]), lrs=(0.1,))
    assert spec.optimizers == ("adam", "sgd")  # a generator is read once


def test_train_members_respells_its_optimizers_and_trains_them(tmp_path):
    from optimlab.bench.sweep import train_members
    from optimlab.bench.tasks import get
    from optimlab.bench.trainer import Member

    store = RunStore(tmp_path / "runs.db")
    sweep = train_members(store, get("digits"), TrainConfig(steps=3, batch_size=32, eval_every=3,
                                                            model="logreg"),
                          [Member("Adam", {"lr": 1e-3}, 0)], engine="sequential")
    assert [(r.optimizer, r.status) for r in store.list_runs(sweep)] == [("adam", "finished")]


def test_run_sweep_and_auto_lrs_check_their_arguments(tmp_path):
    with pytest.raises(TypeError, match=r"^run_sweep reads a RunStore, not a str"):
        run_sweep(_spec(), str(tmp_path / "runs.db"))
    with pytest.raises(TypeError, match=r"^spec must be a SweepSpec, got dict$"):
        run_sweep({"task": "digits"}, RunStore(tmp_path / "runs.db"))
    with pytest.raises(ValueError, match=r"^count must be an integer >= 1, got -3$"):
        auto_lrs("adam", -3)
    with pytest.raises(ValueError, match=r"^count must be an integer >= 1, got 0$"):
        auto_lrs("adam", 0)
    # the callbacks, the executor and the task, before the sweep is stored (executor=5 and
    # task="digits" raised AttributeErrors after its runs were added)
    store = RunStore(tmp_path / "checked.db")
    for kwargs, message in (({"progress": 5}, r"^progress must be a callable"),
                            ({"executor": 5}, r"^executor must be an executor of "),
                            ({"task": "digits"}, r"^task must be a Task, not the name 'digits'")):
        with pytest.raises(TypeError, match=message):
            run_sweep(_spec(), store, **kwargs)
    assert store.con.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 0


def test_run_sweep_refuses_an_optimizer_of_sparse_gradients_on_a_dense_model(tmp_path):
    """SparseAdam on the digits MLP: `optimlab bench` refused it up front, run_sweep stored a
    sweep whose every run failed. The check is the sweep's now, which the command reads."""
    store = RunStore(tmp_path / "runs.db")
    for engine in ("population", "sequential"):
        with pytest.raises(ValueError, match=r"^sparseadam takes sparse gradients only "
                                             r"\(nn\.Embedding\(sparse=True\)\); races, the "
                                             r"playground and populations give dense ones, and so "
                                             r"does model mlp of task digits$"):
            run_sweep(_spec(optimizers=("sparseadam",)), store, engine=engine)
    assert store.con.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 0


def test_an_error_in_the_progress_callback_stops_the_sweep_and_fails_no_run(tmp_path):
    """progress=lambda: None (a callback of the wrong signature) raised in every group's
    first tick, which the trainer stored as each run's failure: the sweep returned as if it
    had run, every run failed for good, and running it again trained none of them. The
    callback is the caller's code: its error comes out of run_sweep, and the runs it
    stopped are pending, so the same call with a good callback trains them."""
    store = RunStore(tmp_path / "runs.db")
    for engine in ("population", "sequential"):
        with pytest.raises(TypeError, match=r"takes 0 positional arguments but 1 was given"):
            run_sweep(_spec(), store, engine=engine, progress=lambda: None)
        assert {r.status for r in store.list_runs(1)} == {"pending"}
    ticks = []
    run_sweep(_spec(), store, progress=ticks.append)
    assert {r.status for r in store.list_runs(1)} == {"finished"} and sum(ticks) > 0


def test_a_model_of_given_weights_is_told_apart_by_them():
    """advise(model) trains copies of the model's current weights: the same model with other
    weights must be another sweep (it read back the first's runs and gave its answer), while
    a model drawn at random from the seed keeps a digest of its architecture alone."""
    from torch import nn

    from optimlab.bench.advisor import make_task
    from optimlab.bench.sweep import model_digest

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    data = (torch.randn(20, 4), torch.randint(0, 3, (20,)))
    first = model_digest(make_task(model, nn.CrossEntropyLoss(), data))
    assert model_digest(make_task(model, nn.CrossEntropyLoss(), data)) == first
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5)
    assert model_digest(make_task(model, nn.CrossEntropyLoss(), data)) != first


def test_a_batch_of_at_least_the_train_set_is_stored_as_the_full_batch(tmp_path):
    """Batches of 64 and of 1000 on 50 training examples both read the whole set every
    step: one sweep, stored as full-batch (each had been a sweep of its own, reported with
    the batch it never had)."""
    store = RunStore(tmp_path / "runs.db")
    task = ToyTask(examples=80, train=50)
    ids = []
    for batch in (64, 1000, None):
        spec = _spec(optimizers=("sgd",), lrs=(0.1,), seeds=1,
                     config=TrainConfig(steps=3, batch_size=batch, eval_every=3))
        assert spec.stored_config(task)["train"]["batch_size"] is None
        ids.append(run_sweep(spec, store, task=task))
    assert ids == [ids[0]] * 3
    # a batch smaller than the train set is stored as asked
    spec = _spec(optimizers=("sgd",), lrs=(0.1,), seeds=1,
                 config=TrainConfig(steps=3, batch_size=49, eval_every=3))
    assert spec.stored_config(task)["train"]["batch_size"] == 49


def test_a_summary_keeps_the_calibrations_rounds_and_a_diverged_runs_first_reach():
    """The rounds of a step cost are, with its spread, the uncertainty that profiles tie
    costs by (analysis.costs_tie); a summary without them keeps the spreads' rule. A run
    that reached the target at step 10 and diverged later keeps step 10: AlgoPerf's time to
    result is the first time the target is reached."""
    from optimlab.bench.cost import StepCost
    from optimlab.bench.sweep import _summary
    from optimlab.bench.trainer import Member, RunResult

    nan = float("nan")
    result = RunResult(Member("sgd", {"lr": 1.0}), steps=[0, 10, 20, 30],
                       train_loss=[1.0, 0.5, nan, nan], test_loss=[1.0, 0.5, nan, nan],
                       test_metric=[0.1, 0.9, nan, nan], wall_time=[0.0, 0.1, 0.2, 0.3],
                       diverged=True)
    summary = _summary(result, 0.8, True, StepCost("sgd", 0.001, 0.05, 2.0, 15))
    assert summary["steps_to_target"] == 10 and summary["gradients_to_target"] == 20
    assert summary["cost_to_target"] == pytest.approx(0.01) and summary["cost_rounds"] == 15
    # a cost taken from ended runs that do not say their rounds (StepCost rounds 0)
    assert "cost_rounds" not in _summary(result, 0.8, True, StepCost("sgd", 0.001, 0.05, 2.0, 0))


def test_a_cost_taken_from_ended_runs_keeps_their_rounds(tmp_path):
    """A resumed sweep times its new runs at the cost its ended runs stored: with the rounds
    that cost is the median of, so the new runs store them too (they had 0, and so fell
    back to the spreads' rule of ties)."""
    from optimlab.bench.sweep import _stored_costs

    store = RunStore(tmp_path / "runs.db")
    sweep = run_sweep(_spec(optimizers=("sgd",), lrs=(0.1,), seeds=1,
                            config=TrainConfig(steps=3, batch_size=64, eval_every=3,
                                               model="logreg")), store)
    (run,) = store.list_runs(sweep)
    assert run.summary["cost_rounds"] >= 2
    assert _stored_costs(store, sweep)["sgd"].rounds == run.summary["cost_rounds"]


def test_a_metric_exactly_at_the_target_reaches_it():
    """288/360 correct is exactly the 0.8 target in floating point: reached, at its step."""
    from types import SimpleNamespace

    from optimlab.bench.sweep import _reached

    run = SimpleNamespace(steps=[0, 5, 10], test_metric=[0.1, 288 / 360, 0.9],
                          wall_time=[0.0, 1.0, 2.0])
    assert 288 / 360 == 0.8 and _reached(run, 0.8, True) == (5, 1.0)
    loss = SimpleNamespace(steps=[0, 5, 10], test_metric=[2.0, 0.5, 0.4], wall_time=[0, 1, 2])
    assert _reached(loss, 0.5, False) == (5, 1)


def test_extensions_count_whole_extensions_on_each_side():
    """Rates outside the base grid (0.01, 0.1): one below (an extension cut short by the
    bounds, counted whole) and two above (one extension): 2, whatever the counting's
    rounding; at most MAX_EXTENSIONS in all rests on it."""
    from optimlab.bench.sweep import SweepSpec, _extensions

    spec = SweepSpec(task="digits", optimizers=("sgd",), lrs=(0.01, 0.1), target=0.8,
                     extend=True)
    assert _extensions(spec, "sgd", {0.001, 0.01, 0.1, 1.0, 10.0}) == 2
    assert _extensions(spec, "sgd", {1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0}) == 3
    assert _extensions(spec, "sgd", {0.01, 0.1}) == 0


def test_a_loss_is_told_apart_by_its_settings_where_its_name_does_not():
    """A task's loss was digested by module and name only: every functools.partial was
    "functools.partial", nn.CrossEntropyLoss(label_smoothing=0.3) the default's, two lambdas
    one loss; so a sweep with another loss read back the first's stored results. A plain
    function, and a loss module at its defaults, keep the digest they had."""
    import dataclasses
    import functools

    import torch.nn.functional as F
    from torch import nn

    from optimlab.bench.sweep import _loss_identity, model_digest
    from optimlab.bench.tasks import get as get_task

    task = get_task("digits")

    def digest(loss):
        return model_digest(dataclasses.replace(task, loss=loss), "mlp")

    def told_apart(*losses):
        return len({digest(loss) for loss in losses}) == len(losses)

    assert told_apart(functools.partial(F.cross_entropy, label_smoothing=0.0),
                      functools.partial(F.cross_entropy, label_smoothing=0.3),
                      functools.partial(F.nll_loss))
    assert told_apart(nn.CrossEntropyLoss(), nn.CrossEntropyLoss(label_smoothing=0.3),
                      nn.CrossEntropyLoss(weight=torch.ones(10)))
    assert told_apart(lambda o, t: F.cross_entropy(o, t), lambda o, t: 2 * F.cross_entropy(o, t))
    # the same settings, the same loss; names alone as before
    assert digest(functools.partial(F.cross_entropy, label_smoothing=0.3)) == \
        digest(functools.partial(F.cross_entropy, label_smoothing=0.3))
    assert _loss_identity(F.cross_entropy) == "loss:torch.nn.functional.cross_entropy"
    assert _loss_identity(nn.CrossEntropyLoss()) == "loss:torch.nn.modules.loss.CrossEntropyLoss"
