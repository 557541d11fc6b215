"""Evaluations before the last read a fixed subset; the last reads every example.

``TrainConfig.eval_subset`` examples of the train set and as many of the test set, the same
ones (:func:`eval_indices`) for every member, engine and evaluation; the last evaluation reads
both whole sets, so final metrics are exact; ``eval_subset=None`` reads everything every time.
At the end: the cached MNIST-1D is read without importing ``mnist1d.data``.
"""

import math
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optimlab.bench import trainer
from optimlab.bench.trainer import (
    Member,
    TrainConfig,
    eval_indices,
    train_population,
    train_sequential,
)
from tests.bench.toy import ToyTask

CURVES = ("train_loss", "test_loss", "test_metric")


def Task(loss: str | None = "cross_entropy") -> ToyTask:  # noqa: N802 (reads as a class)
    """A seeded 3-class task large enough for a subset (300 train, 200 test examples), on
    the population engine's cross-entropy path by default (``loss=None``: its vmap path)."""
    return ToyTask(seed=1, examples=500, train=300, activation=nn.ReLU, loss=loss)


def _manual(task, model, x, y):
    with torch.no_grad():
        out = model(x)
        loss = task.loss_fn(out, y)
        return float(loss), float((out.argmax(-1) == y).float().mean())


def test_eval_indices_are_a_fixed_sorted_sample():
    idx = eval_indices(300, 50)
    assert idx.shape == (50,) and torch.equal(idx, eval_indices(300, 50))
    assert torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == 50
    assert 0 <= int(idx.min()) and int(idx.max()) < 300
    assert not torch.equal(idx, torch.arange(50))  # drawn, not the first 50
    assert eval_indices(300, 300) is None and eval_indices(300, 1000) is None
    assert eval_indices(300, None) is None


@pytest.mark.parametrize("value", [0, -1, 2.5, "100"])
def test_bad_eval_subset(value):
    with pytest.raises(ValueError, match="eval_subset"):
        TrainConfig(eval_subset=value)


@pytest.mark.parametrize("engine", [train_population, train_sequential])
def test_intermediate_points_read_the_subset_and_the_last_every_example(engine):
    """With lr 0 the weights never move: every point evaluates the initial model, on the
    subset before the last point and on the whole sets at the last."""
    task = Task()
    config = TrainConfig(steps=6, batch_size=16, eval_every=2, eval_subset=50)
    members = [Member("sgd", {"lr": 0.0}, seed) for seed in (0, 1)]
    for member, run in zip(members, engine(task, config, members)):
        assert run.steps == [0, 2, 4, 6] and run.full_eval == [False, False, False, True]
        torch.manual_seed(member.seed)
        model = task.make_model()
        tr, te = eval_indices(300, 50), eval_indices(200, 50)
        sub_train, _ = _manual(task, model, task.x_train[tr], task.y_train[tr])
        sub_test, sub_acc = _manual(task, model, task.x_test[te], task.y_test[te])
        full_train, _ = _manual(task, model, task.x_train, task.y_train)
        full_test, full_acc = _manual(task, model, task.x_test, task.y_test)
        for i in range(3):
            assert run.train_loss[i] == pytest.approx(sub_train, rel=1e-12)
            assert run.test_loss[i] == pytest.approx(sub_test, rel=1e-12)
            assert run.test_metric[i] == pytest.approx(sub_acc, rel=1e-12)
        assert run.train_loss[-1] == pytest.approx(full_train, rel=1e-12)
        assert run.test_loss[-1] == pytest.approx(full_test, rel=1e-12)
        assert run.test_metric[-1] == pytest.approx(full_acc, rel=1e-12)
        assert sub_train != pytest.approx(full_train, rel=1e-6)  # the subset is not the set


@pytest.mark.parametrize("loss", ["cross_entropy", None], ids=["per-chunk CE", "vmap loss"])
@pytest.mark.parametrize("rows", [None, 44], ids=["one chunk", "chunks of 11 examples"])
def test_both_engines_read_the_same_subset(loss, rows, monkeypatch):
    if rows is not None:  # 4 members: chunks of 11 examples, the last one shorter
        monkeypatch.setattr(trainer, "EVAL_ROWS", rows)
        monkeypatch.setattr(trainer, "EVAL_MIN_EXAMPLES", 1)
    task = Task(loss=loss)
    config = TrainConfig(steps=20, batch_size=16, eval_every=5, eval_subset=64,
                         schedule="cosine")
    members = [Member("adam", {"lr": lr}, seed) for lr in (1e-2, 3e-2) for seed in (0, 1)]
    for a, b in zip(train_population(task, config, members),
                    train_sequential(task, config, members)):
        assert a.steps == b.steps == [0, 5, 10, 15, 20]
        assert a.full_eval == b.full_eval == [False] * 4 + [True]
        for curve in CURVES:
            assert getattr(a, curve) == pytest.approx(getattr(b, curve), rel=1e-9, abs=1e-12)


def test_the_subset_changes_only_the_points_before_the_last():
    """Evaluating does not touch training: the final point is the same with or without a
    subset, and eval_subset=None reads every example at every point."""
    task = Task()
    members = [Member("adam", {"lr": 3e-2}, 0), Member("adam", {"lr": 1e-2}, 1)]
    runs = {size: train_population(task, TrainConfig(steps=20, batch_size=16, eval_every=5,
                                                     eval_subset=size), members)
            for size in (None, 64, 300)}
    for k in range(len(members)):
        full, sub, whole = runs[None][k], runs[64][k], runs[300][k]
        assert full.full_eval == [True] * 5 and whole.full_eval == [True] * 5
        for curve in CURVES:
            # a subset as large as the train set reads every example: the same as None
            assert getattr(whole, curve) == getattr(full, curve)
            assert getattr(sub, curve)[-1] == pytest.approx(getattr(full, curve)[-1],
                                                            rel=1e-12)
        assert all(a != pytest.approx(b, rel=1e-9)
                   for a, b in zip(sub.train_loss[:-1], full.train_loss[:-1]))


def test_mnist1d_engines_agree_on_the_subset():
    """The built-in path (stacked linear layers, transposed logits) in float32."""
    from optimlab.bench.tasks import get

    task = get("mnist1d")
    config = TrainConfig(steps=6, batch_size=100, eval_every=3, model="mlp", eval_subset=300)
    members = [Member("adam", {"lr": lr}, seed) for lr in (1e-3, 1e-2) for seed in (0, 1)]
    for a, b in zip(train_population(task, config, members),
                    train_sequential(task, config, members)):
        assert a.full_eval == b.full_eval == [False, False, True]
        for curve in ("train_loss", "test_loss"):
            assert getattr(a, curve) == pytest.approx(getattr(b, curve), rel=1e-4)
        # an argmax may flip at a float32 near-tie: at most one example of 300 (or 1000)
        assert a.test_metric == pytest.approx(b.test_metric, abs=1.5 / 300)


# --------------------------------------------------------------------------------------
# The rest of the end-to-end path of ``optimlab bench mnist1d``: reading the cached data
# set does not import mnist1d.data (SciPy and Matplotlib, 1.5 s)
# --------------------------------------------------------------------------------------

def test_mnist1d_default_args_are_the_installed_releases():
    data = pytest.importorskip("mnist1d.data")
    from optimlab.bench import tasks

    assert tasks._mnist1d_default_args() == data.get_dataset_args(as_dict=True)


def test_a_cached_mnist1d_is_read_without_importing_mnist1d_data(tmp_path, monkeypatch):
    pytest.importorskip("mnist1d.data")
    from importlib.metadata import version

    from optimlab.bench import tasks

    if version("mnist1d") not in tasks._MNIST1D_DEFAULT_ARGS:
        pytest.skip(f"mnist1d {version('mnist1d')}: add its defaults to _MNIST1D_DEFAULT_ARGS")
    first = tasks.get("mnist1d", data_dir=tmp_path, num_samples=100, seed=3)  # generated
    tasks._mnist1d_arrays.cache_clear()
    for name in ("mnist1d.data", "mnist1d.utils", "mnist1d.transform"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    again = tasks.get("mnist1d", data_dir=tmp_path, num_samples=100, seed=3)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    tasks._mnist1d_arrays.cache_clear()


@pytest.mark.parametrize("loss", ["cross_entropy", None], ids=["per-chunk CE", "vmap loss"])
@pytest.mark.parametrize("minimum, expected", [(1, [6, 6, 6, 2]), (8, [8, 8, 4])],
                         ids=["rows bound", "examples floor"])
def test_chunks_count_positions_of_sequence_examples(loss, minimum, expected, monkeypatch):
    """A sequence example of T targets is T rows: 2 members x 6 examples x 5 positions fit
    in 64 rows, 7 do not (counting examples, 32 of them would go at once); a chunk holds at
    least EVAL_MIN_EXAMPLES examples however many rows that makes."""
    monkeypatch.setattr(trainer, "EVAL_ROWS", 64)
    monkeypatch.setattr(trainer, "EVAL_MIN_EXAMPLES", minimum)
    k, n, length, classes = 2, 20, 5, 3
    seen = []

    def shared(weights, x):
        seen.append(len(x))
        return torch.zeros(k, len(x), length, classes)

    task = SimpleNamespace(loss=loss, metric="accuracy",
                           loss_fn=lambda out, y: F.cross_entropy(out.reshape(-1, classes),
                                                                  y.reshape(-1)))
    y = torch.zeros(n, length, dtype=torch.long)
    loss_value, accuracy = trainer._population_scores(task, shared, [], torch.zeros(n, length),
                                                      y, k)
    assert seen == expected
    assert loss_value.shape == accuracy.shape == (k,)
    assert torch.allclose(loss_value, torch.full((k,), math.log(classes)))
    assert torch.equal(accuracy, torch.ones(k))


@pytest.mark.parametrize("loss", ["cross_entropy", None], ids=["per-chunk CE", "vmap loss"])
def test_population_accuracy_is_argmax_member_by_member_ties_included(loss):
    """The predicted class is the first of equal maxima, as ``argmax`` (logits drawn from
    {0, 1, 2}, so most rows tie, NaNs and infinities among them); ``metric=False`` gives the
    same loss and no metric (the train curve's evaluation)."""
    k, n, classes = 3, 200, 5
    gen = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, (k, n, classes), generator=gen).float()
    logits[torch.rand(logits.shape, generator=gen) < 0.03] = float("inf")
    logits[torch.rand(logits.shape, generator=gen) < 0.03] = float("nan")
    # the stacked model's layout: classes x examples contiguous, viewed as examples x classes
    stacked = logits.transpose(1, 2).contiguous().transpose(1, 2)
    y = torch.randint(0, classes, (n,), generator=gen)

    def shared(weights, x):
        return stacked[:, x.long()]

    task = SimpleNamespace(loss=loss, metric="accuracy",
                           loss_fn=lambda out, y: F.cross_entropy(out, y))
    x = torch.arange(n).float()
    loss_value, accuracy = trainer._population_scores(task, shared, [], x, y, k)
    want = torch.stack([(logits[m].argmax(-1) == y).float().mean() for m in range(k)])
    assert torch.equal(accuracy, want)
    assert 0 < want.min() and want.max() < 1  # the ties are not all won or all lost
    loss_only, none = trainer._population_scores(task, shared, [], x, y, k, metric=False)
    assert none is None
    torch.testing.assert_close(loss_only, loss_value, rtol=0, atol=0, equal_nan=True)
