"""What a member's run depends on, and what the population engine holds while it trains.

* A member's evaluated losses and metrics are the same numbers, bit for bit, whether it
  trains alone or with other members: the evaluation's chunk of examples depends on how
  many members are evaluated together, and so did the order in which a chunk's losses were
  summed (an ulp between ``--seeds 1`` and ``--seeds 2``).
* The engines draw each step's mini-batches as they go, an epoch at a time, not every
  step's up front (an int64 ``[steps, members, batch]`` tensor: 64 members x batch 100 x
  10,000 steps, 488 MiB), and draw the same examples as :func:`batch_indices`.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from optimlab.bench import trainer
from optimlab.bench.trainer import (
    Member,
    TrainConfig,
    batch_indices,
    train_population,
    train_sequential,
)
from tests.bench.toy import ToyTask

CURVES = ("train_loss", "test_loss", "test_metric")


def _digits():
    pytest.importorskip("sklearn")
    from optimlab.bench.tasks import get

    return get("digits")


def _toy_cross_entropy():
    return ToyTask(seed=2, examples=400, train=300, loss="cross_entropy")


def _toy_vmap():
    return ToyTask(seed=2, examples=400, train=300)


@pytest.mark.parametrize("rows", [None, 256], ids=["default chunks", "small chunks"])
@pytest.mark.parametrize("make_task", [_digits, _toy_cross_entropy, _toy_vmap],
                         ids=["digits", "toy cross-entropy", "toy loss function"])
def test_a_members_evaluations_do_not_depend_on_the_others(make_task, rows, monkeypatch):
    """The same member alone, with one other member and with five others: the same curves,
    bit for bit (training was already the same; the evaluations differed by an ulp)."""
    if rows is not None:  # chunks of 256 // k examples: several per set, fewer the more k
        monkeypatch.setattr(trainer, "EVAL_ROWS", rows)
    task = make_task()
    config = TrainConfig(steps=12, batch_size=32, eval_every=4, eval_subset=200)
    me = Member("adam", {"lr": 1e-2}, 0)
    others = [Member("adam", {"lr": lr}, seed) for lr in (1e-3, 1e-2, 3e-2) for seed in (1, 2)]
    runs = [train_population(task, config, [me, *group])[0]
            for group in ([], others[:1], others[:5])]
    runs.append(train_population(task, config, [*others[:3], me, *others[3:5]])[3])
    alone = runs[0]
    assert alone.full_eval == [False, False, False, True] or all(alone.full_eval)
    for run in runs[1:]:
        for curve in CURVES:
            assert getattr(run, curve) == getattr(alone, curve), curve


def test_both_engines_evaluate_the_same_weights_to_the_same_numbers(monkeypatch):
    """With lr 0 both engines evaluate the initial weights at every point. Where the two
    forwards give the same outputs (digits' MLP in float32; not the toy's float64 MLP, whose
    ``addmm`` and the population's ``baddbmm`` differ by an ulp), so do the evaluations,
    bit for bit, though the population's chunks are smaller than the sequential engine's."""
    monkeypatch.setattr(trainer, "EVAL_ROWS", 256)
    task = _digits()
    config = TrainConfig(steps=2, batch_size=32, eval_every=1, eval_subset=200)
    members = [Member("sgd", {"lr": 0.0}, seed) for seed in range(3)]
    for a, b in zip(train_population(task, config, members),
                    train_sequential(task, config, members)):
        for curve in CURVES:
            assert getattr(a, curve) == getattr(b, curve), curve


class _IndexWatch(TorchDispatchMode):
    """Records the largest integer tensor any operation makes (views left out: a full
    batch's one row of every example, expanded to every step, holds no more than the row),
    and the rows of the training inputs ``x`` gathered (``index_select`` or indexing)."""

    def __init__(self, x):
        super().__init__()
        self.x, self.largest, self.gathered = x, 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dtype == torch.int64 and not func.is_view:
                self.largest = max(self.largest, t.numel())
        if args and args[0] is self.x:
            if func is torch.ops.aten.index_select.default:
                self.gathered.append(args[2].clone())
            elif func is torch.ops.aten.index.Tensor:
                self.gathered.append(args[1][0].clone())
        return out


@pytest.mark.parametrize("engine", [train_population, train_sequential])
@pytest.mark.parametrize("batch", [16, 1, None], ids=["mini-batch", "sgd", "full batch"])
def test_the_engines_draw_batches_as_they_go(engine, batch):
    """300 steps of batch 16 on 120 examples (7 steps an epoch), 3 members: the steps'
    indices made up front were 300 x 3 x 16 int64 (the sequential engine's 300 x 16 a
    member); no integer tensor now holds more than an epoch's of every member, and each
    step reads the rows batch_indices gives its member."""
    task = ToyTask()
    n, steps = len(task.x_train), 300
    members = [Member("sgd", {"lr": 0.05}, seed) for seed in (0, 1, 7)]
    config = TrainConfig(steps=steps, batch_size=batch, eval_every=steps)
    watch = _IndexWatch(task.x_train)
    with watch:
        engine(task, config, members)
    assert watch.largest <= len(members) * n, watch.largest
    want = [batch_indices(n, batch, m.seed, steps) for m in members]
    if engine is train_population:  # [K * B] a step, after one warm-up step (the first)
        got = torch.stack(watch.gathered[1:]).view(steps, len(members), -1)
        for k in range(len(members)):
            assert torch.equal(got[:, k], want[k])
    else:  # the members one after another, a step at a time
        assert torch.equal(torch.stack(watch.gathered), torch.cat(want))
