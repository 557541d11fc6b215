"""The population engine and the sequential engine produce the same curves for the same seeds.

Run in float64 so that "the same" can mean 1e-9: the engines differ only in batching
(vmap'd matrix products, tensor hyperparameters), not in what they compute.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from optimlab.bench.trainer import (
    Member,
    TrainConfig,
    batch_indices,
    schedule_factor,
    train_population,
    train_sequential,
)
from optimlab.optim.catalog import TABLE
from tests.bench.toy import ToyTask

CASES = [
    ("sgd", [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.3, "momentum": 0.5}], {}),
    ("adam", [{"lr": 1e-2}, {"lr": 3e-2}], {"schedule": "cosine", "clip_norm": 0.5}),
    ("lamb", [{"lr": 1e-2}, {"lr": 3e-2}], {"schedule": "warmup-cosine"}),
    ("sam", [{"lr": 0.1, "rho": 0.05}, {"lr": 0.2, "rho": 0.1}], {"clip_value": 0.5}),
    ("lookahead", [{"inner": "adam", "lr": 1e-2}, {"inner": "adam", "lr": 3e-2}], {}),
    ("nag", [{"lr": 0.05}, {"lr": 0.1}], {"averaging": "ema", "ema_decay": 0.9}),
    ("rmsprop", [{"lr": 1e-2}, {"lr": 3e-3}], {"averaging": "swa", "swa_start": 0.5}),
]


@pytest.mark.parametrize("name, hps, options", CASES, ids=[c[0] for c in CASES])
def test_population_matches_sequential(name, hps, options):
    task = ToyTask()
    config = TrainConfig(steps=40, batch_size=16, eval_every=10, **options)
    members = [Member(name, hp, seed) for hp in hps for seed in (0, 1)]
    together = train_population(task, config, members)
    one_by_one = train_sequential(task, config, members)
    assert len(together) == len(one_by_one) == len(members)  # a run per member, in both
    for a, b in zip(together, one_by_one, strict=True):
        assert a.member == b.member and a.steps == b.steps == [0, 10, 20, 30, 40]
        for curve in ("train_loss", "test_loss", "test_metric"):
            assert getattr(a, curve) == pytest.approx(getattr(b, curve), rel=1e-9, abs=1e-12)
        assert a.train_loss[-1] < a.train_loss[0] and not a.diverged


@pytest.mark.parametrize("name, hps", [
    ("adam", [{"weight_decay": 0.0}, {"weight_decay": 0.01}]),  # lr left at Adam's default
    ("lookahead", [{"inner": "adam", "alpha": 0.5}, {"inner": "adam", "alpha": 0.8}]),
])
def test_a_schedule_scales_the_default_rate_in_both_engines(name, hps):
    """Members that leave lr at the optimizer's default: the sequential engine scheduled it
    (it reads param_groups) and the population engine trained at the constant default."""
    task = ToyTask()
    config = TrainConfig(steps=20, batch_size=16, eval_every=10, schedule="step")
    members = [Member(name, hp, 0) for hp in hps]
    together = train_population(task, config, members)
    one_by_one = train_sequential(task, config, members)
    assert len(together) == len(one_by_one) == len(members)  # a run per member, in both
    for a, b in zip(together, one_by_one, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-9, abs=1e-12)


#: registry names whose path is not continuous in the gradients' rounding, so a population
#: (batched matrix products) and the sequential runs part after the first step: SOAP's first
#: eigenbasis of a rank-deficient factor (the 16 x 8 layer's 16 x 16 G G^T has an
#: 8-dimensional null space) is set by rounding noise, as in its reference implementation
ROUNDING_SENSITIVE = {"soap"}


@pytest.mark.parametrize("name", [i.name for i in TABLE if not (
    i.capabilities.sparse_only or i.capabilities.needs_matrix)])
def test_every_optimizer_trains_in_a_population_sweep(name):
    """Each registry class trains two members of a population, equal to its sequential runs:
    the population sweep covers every optimizer (but SparseAdam, which takes sparse
    gradients only, and Muon, which takes a model of matrices only: its populations are
    checked in tests/optim/test_population.py)."""
    task = ToyTask()
    config = TrainConfig(steps=6, batch_size=16, eval_every=3)
    members = [Member(name, {"lr": lr}, 0) for lr in (1e-3, 1e-2)]
    together = train_population(task, config, members)
    one_by_one = train_sequential(task, config, members)
    assert len(together) == len(one_by_one) == len(members)  # a run per member, in both
    for a, b in zip(together, one_by_one, strict=True):
        rel = 1e-2 if name in ROUNDING_SENSITIVE else 1e-9
        assert a.train_loss[0] == pytest.approx(b.train_loss[0], rel=1e-9, abs=1e-12)
        assert a.train_loss == pytest.approx(b.train_loss, rel=rel, abs=1e-12)
        assert all(math.isfinite(v) for v in a.train_loss + a.test_loss)


def test_members_differ_by_seed_and_lr():
    task = ToyTask()
    config = TrainConfig(steps=20, batch_size=16, eval_every=20)
    runs = train_population(task, config, [Member("adam", {"lr": 1e-2}, 0),
                                           Member("adam", {"lr": 1e-2}, 1),
                                           Member("adam", {"lr": 1e-1}, 0)])
    losses = [r.train_loss[-1] for r in runs]
    assert len(set(losses)) == 3


def test_divergence_is_recorded_not_raised():
    task = ToyTask()
    config = TrainConfig(steps=30, batch_size=None, eval_every=10)
    runs = train_population(task, config, [Member("sgd", {"lr": 1e6}, 0),
                                           Member("sgd", {"lr": 0.1}, 0)])
    assert runs[0].diverged and not runs[1].diverged
    assert math.isfinite(runs[1].test_loss[-1])


def test_a_full_batch_population_keeps_no_indices_per_step(monkeypatch):
    """At full batch every member reads every example at every step: the population keeps
    one row of indices (a view), not a steps x members x examples copy (1000 steps of 64
    members on 60,000 examples made 29 GiB of them), and trains as the sequential engine."""
    from optimlab.bench import trainer

    task, steps = ToyTask(), 40
    members = [Member("sgd", {"lr": lr}, seed) for lr, seed in ((0.1, 0), (0.05, 1), (0.1, 2))]
    largest, stack = [0], torch.stack

    def spy(tensors, *args, **kwargs):
        out = stack(tensors, *args, **kwargs)
        if not out.is_floating_point():  # integer stacks: indices
            largest[0] = max(largest[0], out.numel())
        return out

    monkeypatch.setattr(trainer.torch, "stack", spy)
    config = TrainConfig(steps=steps, batch_size=None, eval_every=steps)
    together = train_population(task, config, members)
    monkeypatch.undo()
    assert largest[0] < steps * len(members) * len(task.x_train)
    alone = train_sequential(task, config, members)
    assert len(together) == len(alone) == len(members)
    for a, b in zip(together, alone, strict=True):
        # float64 toy task: the engines agree to rounding (3e-16 measured), as above
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-9, abs=1e-12)


def test_batch_indices_give_the_three_gradient_descent_variants():
    full = batch_indices(10, None, 0, 3)
    assert full.shape == (3, 10) and (full == torch.arange(10)).all()
    sgd = batch_indices(10, 1, 0, 25)
    assert sgd.shape == (25, 1) and sorted(sgd[:10, 0].tolist()) == list(range(10))
    mini = batch_indices(10, 4, 0, 5)
    assert mini.shape == (5, 4) and len(set(mini[:2].flatten().tolist())) == 8
    assert torch.equal(batch_indices(10, 4, 7, 5), batch_indices(10, 4, 7, 5))


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle",
                                      "warmup-cosine"])
def test_schedules(schedule):
    config = TrainConfig(steps=100, schedule=schedule)
    factors = [schedule_factor(config, t) for t in range(100)]
    assert all(0 < f <= 1 for f in factors)
    if schedule != "constant":
        assert factors[-1] < 0.2


def test_schedules_take_the_values_their_docstring_gives():
    def at(schedule, *steps, **kw):
        config = TrainConfig(steps=100, schedule=schedule, **kw)
        return [schedule_factor(config, t) for t in steps]
    assert at("step", 0, 49, 50, 74, 75, 99) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert at("cosine", 0, 50) == pytest.approx([1, 0.5])
    assert at("onecycle", 0, 30) == pytest.approx([0.04, 1])
    assert at("onecycle", 99)[0] < 1e-3
    assert at("warmup-cosine", 0, 4, 5) == pytest.approx([0.2, 1, 1])
    assert at("warmup-cosine", 9, warmup_steps=10) == pytest.approx([1])
    # the floor at the last step, whatever the budget (it ran at 6x the floor at 100 steps,
    # 126x at 20)
    for steps in (20, 100, 7):
        config = TrainConfig(steps=steps, schedule="onecycle")
        assert schedule_factor(config, steps - 1) == pytest.approx(1e-4)


@pytest.mark.parametrize("kwargs, match", [
    ({"schedule": "cosine", "warmup_steps": 10}, r"^warmup_steps applies to "
                                                 r"schedule='warmup-cosine' only, got "
                                                 r"warmup_steps=10 with schedule='cosine'$"),
    ({"schedule": "warmup-cosine", "steps": 10, "warmup_steps": 10},
     r"^warmup_steps must be below steps \(10\), got 10: the warm-up would never reach"),
])
def test_a_warmup_no_schedule_reads_is_refused(kwargs, match):
    """warmup_steps with another schedule was dropped without a word (and made a sweep of
    its own), and one as long as the run never reached the peak rate."""
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_numbers_of_other_kinds_are_taken_as_floats():
    """A Fraction passed the checks, then failed inside the step (lerp_, clamp)."""
    from fractions import Fraction

    config = TrainConfig(steps=3, batch_size=16, averaging="ema", ema_decay=Fraction(1, 2),
                         clip_norm=Fraction(1, 2), clip_value=np.float32(2))
    assert (config.ema_decay, config.clip_norm) == (0.5, 0.5)
    assert type(config.ema_decay) is float and type(config.clip_value) is float
    result = train_sequential(ToyTask(), config, [Member("sgd", {"lr": 0.1})])[0]
    assert result.error is None and len(result.train_loss) == 2


def test_swa_averages_the_iterates_from_its_start_on():
    """swa_start 0.5 of 4 steps: the mean of the iterates after steps 2, 3 and 4 (it left the
    one after step 2 out), the same in both engines."""
    task = ToyTask()
    config = TrainConfig(steps=4, batch_size=16, eval_every=4, averaging="swa", swa_start=0.5)
    member = [Member("sgd", {"lr": 0.5}, 0)]
    iterates = []
    plain = TrainConfig(steps=4, batch_size=16, eval_every=4)
    train_sequential(task, plain, member,
                     observe=lambda k, step, params: iterates.append([p.detach().clone()
                                                                      for p in params]))
    assert len(iterates) == 5  # the start and the iterate after each of the 4 steps
    model = task.make_model()
    mean = [torch.stack([it[i] for it in iterates[2:]]).mean(0) for i in range(len(iterates[0]))]
    with torch.no_grad():
        for p, m in zip(model.parameters(), mean):
            p.copy_(m)
        want = float(task.loss_fn(model(task.x_train), task.y_train))  # float64
    for train in (train_sequential, train_population):
        got = train(task, config, member)[0].train_loss[-1]
        assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps"), ({"batch_size": 0}, "batch_size"), ({"eval_every": 0}, "eval"),
    ({"schedule": "linear"}, "schedule"), ({"clip_norm": -1.0}, "clip_norm"),
    ({"eval_subset": 0}, "eval_subset"),
    ({"divergence_factor": float("nan")}, r"^divergence_factor must be a number >= 1"),
    ({"divergence_factor": -1}, r"^divergence_factor must be a number >= 1"),
    ({"divergence_factor": 0.5}, r"^divergence_factor must be a number >= 1"),
    ({"divergence_factor": float("inf")}, r"^divergence_factor must be a number >= 1"),
    ({"warmup_steps": -5}, r"^warmup_steps must be an integer >= 0, got -5$"),
    ({"warmup_steps": 2.5}, r"^warmup_steps must be an integer >= 0, got 2.5$"),
    ({"model": 3}, r"^model must be None .* got 3$"),
    ({"ema_decay": "0.9"}, r"^ema_decay must be a number in \[0, 1\), got '0.9'$"),
    ({"swa_start": float("nan")}, r"^swa_start must be a number in \[0, 1\), got nan$"),
    ({"clip_norm": "1"}, r"^clip_norm must be a number > 0, got '1'$"),
    ({"clip_value": float("nan")}, r"^clip_value must be a number > 0, got nan$"),
    ({"clip_value": True}, r"^clip_value must be a number > 0, got True$"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_population_needs_one_optimizer():
    with pytest.raises(ValueError, match="one optimizer"):
        train_population(ToyTask(), TrainConfig(steps=1), [Member("sgd", {"lr": 0.1}),
                                                          Member("adam", {"lr": 0.1})])


def test_shared_buffers_are_supported():
    """quadratic-deep keeps its Hessian in a buffer, the same for every member."""
    from optimlab.bench.tasks import get

    task = get("quadratic-deep")
    # in float64, as the module's other comparisons (see its docstring): the float32 task's
    # engines part by a few float32 roundings of their different summation orders (1.5e-7
    # relative, measured), a bound the CPU's kernels set; in float64 that rounding is ~3e-16
    # (measured), so the module's 1e-9 holds with a margin of 10^6, far below what a wrong
    # buffer (the Hessian of another member, or none) or learning rate would move
    make = task.models[task.default_model]
    assert task.models == {task.default_model: make}  # the one model converted below
    task = dataclasses.replace(
        task, **{key: getattr(task, key).double() for key in ("x_train", "y_train", "x_test",
                                                              "y_test")},
        models={task.default_model: lambda: make().double()})
    assert [b.dtype for b in task.make_model().buffers()] == [torch.float64]  # the Hessian's
    config = TrainConfig(steps=20, batch_size=128, eval_every=10)
    members = [Member("sgd", {"lr": 0.01}, 0), Member("sgd", {"lr": 0.02}, 1)]
    together = train_population(task, config, members)
    one_by_one = train_sequential(task, config, members)
    assert len(together) == len(one_by_one) == len(members)  # a run per member, in both
    for a, b in zip(together, one_by_one, strict=True):
        assert a.member == b.member and a.steps == b.steps == [0, 10, 20]
        for curve in ("train_loss", "test_loss", "test_metric"):
            assert getattr(a, curve) == pytest.approx(getattr(b, curve), rel=1e-9, abs=1e-12)
        assert a.test_loss[-1] < a.test_loss[0]
    assert together[0].test_loss[-1] != pytest.approx(together[1].test_loss[-1], rel=1e-6)


@pytest.mark.parametrize("averaging", ["ema", "swa"])
def test_averaging_changes_what_is_evaluated(averaging):
    task = ToyTask()
    plain = TrainConfig(steps=40, batch_size=16, eval_every=10)
    averaged = TrainConfig(steps=40, batch_size=16, eval_every=10, averaging=averaging,
                           ema_decay=0.9, swa_start=0.5)
    member = [Member("sgd", {"lr": 0.3}, 0)]
    a = train_population(task, plain, member)[0]
    b = train_population(task, averaged, member)[0]
    assert a.train_loss[0] == b.train_loss[0]  # both start from the same weights
    if averaging == "swa":  # SWA starts at step 20: evaluations before are the iterates
        assert a.train_loss[:3] == b.train_loss[:3]
    assert a.train_loss[-1] != b.train_loss[-1]


@pytest.mark.parametrize("kwargs", [{"averaging": "polyak"}, {"ema_decay": 1.0},
                                    {"swa_start": 1.0}])
def test_bad_averaging(kwargs):
    with pytest.raises(ValueError, match="averaging|ema_decay|swa_start"):
        TrainConfig(**kwargs)


def test_stacked_forward_is_used_only_where_it_equals_vmap():
    """Linear layers as batched products where the model broadcasts over members, else vmap."""
    from torch.func import functional_call

    from optimlab.bench.trainer import _stacked_forward

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 16)

        def forward(self, x):
            h = self.a(x).relu()
            return h + self.b(h).tanh()

    from optimlab.bench.tasks import GRU

    x = torch.randn(3, 5, 8, dtype=torch.float64)
    models = {
        "residual": (Residual, True, x),
        "flatten first": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(8, 4)), False, x),
        "conv": (lambda: nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 2, 3)), False, x),
        # members x batch x time x features: the input's middle axes go into the product
        "gru": (lambda: GRU(2, 3, bidirectional=True), True,
                torch.randn(3, 5, 4, 2, dtype=torch.float64)),
    }
    for label, (make, expected, x) in models.items():
        members = [make().double() for _ in range(3)]
        names = [n for n, _ in members[0].named_parameters()]
        params = [torch.stack([dict(m.named_parameters())[n].detach() for m in members])
                  for n in names]
        reference = torch.vmap(lambda p, x_: functional_call(members[0], dict(zip(names, p)), (x_,)))
        forward = _stacked_forward(members[0], names, params, x, reference)
        assert (forward is not None) == expected, label
        if forward is not None:
            torch.testing.assert_close(forward(params, x), reference(params, x), rtol=1e-12, atol=1e-12)


def test_linear_layers_are_swapped_for_stacked_ones_only_where_they_hold_every_parameter():
    """The fast stacked forward binds each call's weights to stacked copies of the model's
    ``nn.Linear`` layers; a parameter elsewhere (the GRU's own, a LayerNorm's) or one Linear
    weight shared by two layers leaves it to ``functional_call``."""
    from torch.func import functional_call

    from optimlab.bench.tasks import GRU
    from optimlab.bench.trainer import _swapped_linears

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x).relu())

    def mlp():
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4, bias=False))

    cases = {"mlp": (mlp, True), "tied": (Tied, False), "gru": (lambda: GRU(2, 3), False),
             "layer norm": (lambda: nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8)), False)}
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    for label, (make, expected) in cases.items():
        members = [make().double() for _ in range(3)]
        names = [n for n, _ in members[0].named_parameters()]
        forward = _swapped_linears(members[0], names)
        assert (forward is not None) == expected, label
        if forward is None:
            continue
        reference = torch.vmap(lambda p, x_: functional_call(members[0], dict(zip(names, p)), (x_,)))
        params = [torch.stack([dict(m.named_parameters())[n].detach() for m in members])
                  for n in names]
        for weights in (params, [2 * p for p in params]):  # each call binds its own weights
            torch.testing.assert_close(forward(weights, x), reference(weights, x),
                                       rtol=1e-12, atol=1e-12)
        # the swap is made on a copy: the template keeps its layers and parameters
        assert sum(type(m) is nn.Linear for m in members[0].modules()) == 2
        assert [n for n, _ in members[0].named_parameters()] == names


def test_per_member_cross_entropy_equals_the_vmapped_task_loss():
    from optimlab.bench.tasks import get
    from optimlab.bench.trainer import _cross_entropy_per_member

    loss_fn = get("digits").loss_fn  # mean cross entropy over every position
    gen = torch.Generator().manual_seed(0)
    for shape in ((4, 7, 10), (4, 3, 5, 6)):  # members x batch [x time] x classes
        output = torch.randn(*shape, generator=gen, dtype=torch.float64)
        target = torch.randint(0, shape[-1], shape[:-1], generator=gen)
        torch.testing.assert_close(_cross_entropy_per_member(output, target),
                                   torch.vmap(loss_fn)(output, target), rtol=1e-12, atol=1e-12)


def test_rows_gathers_what_indexing_gathers():
    """The population engine's one-``index_select`` gather is ``data[idx]`` exactly, for the
    index shapes it uses (``[K, B]``, and ``[B]``) and data of any rank or dtype."""
    from optimlab.bench.trainer import _rows

    gen = torch.Generator().manual_seed(0)
    for data in (torch.randn(50, 7, generator=gen), torch.randint(0, 9, (50,), generator=gen),
                 torch.randn(50, 2, 3, 4, generator=gen).transpose(1, 3)):
        for shape in ((4, 6), (6,)):
            idx = torch.randint(0, 50, shape, generator=gen)
            got = _rows(data, idx)
            assert got.shape == data[idx].shape and torch.equal(got, data[idx])


@pytest.mark.parametrize("engine", [train_population, train_sequential])
def test_wall_time_counts_training_not_evaluations(engine, monkeypatch):
    """Evaluations are the lab's cost, not the optimizer's: six that each take 100 s add
    nothing to the wall time, which grows with the steps. On a fake clock (the
    ``time.perf_counter`` the trainer's clock reads), where a training step (its one loss
    evaluation) takes 1 s and the evaluation sets' ``at`` 100 s, so the times are exact."""
    from types import SimpleNamespace

    from optimlab.bench import trainer

    now = [0.0]
    monkeypatch.setattr(trainer, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    class OneSecondSteps(ToyTask):
        def loss_fn(self, output, target):  # once a training step, in both engines
            now[0] += 1.0  # (and in the evaluations, whose time must not count either)
            return super().loss_fn(output, target)

    at = trainer._EvalSets.at

    def slow(self, step):
        now[0] += 100.0
        return at(self, step)

    monkeypatch.setattr(trainer._EvalSets, "at", slow)
    config = TrainConfig(steps=10, batch_size=16, eval_every=2)
    (run,) = engine(OneSecondSteps(), config, [Member("adam", {"lr": 1e-2}, 0)])
    assert run.steps == [0, 2, 4, 6, 8, 10]
    # the steps before each point, one second each; none of the 600 s evaluated
    assert run.wall_time == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0], run.wall_time
    assert now[0] > 600  # the evaluations did move the clock


def test_the_sequential_engine_evaluates_in_eval_mode():
    """Dropout off and BatchNorm on its running statistics while evaluating, as
    Task.evaluate does: with lr 0 nothing trains, so every point must be the same (in train
    mode dropout made the test metric wander), and training still sees dropout."""

    class DropoutToy(ToyTask):
        def make_model(self, name=None):
            return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 3)).double()

    config = TrainConfig(steps=6, batch_size=16, eval_every=2)
    (run,) = train_sequential(DropoutToy(), config, [Member("sgd", {"lr": 0.0}, 0)])
    assert len(set(run.test_metric)) == 1 and len(set(run.test_loss)) == 1, run.test_loss
    assert len(set(run.train_loss)) == 1


def _linear_task(loss, y, outputs, model=None):
    from optimlab.bench.tasks import Task
    x = torch.randn(len(y), 5, generator=torch.Generator().manual_seed(0))
    return Task("linear", x, y, x, y, {"linear": model or (lambda: nn.Linear(5, outputs))}, "linear",
                loss, "accuracy" if loss == "cross_entropy" else "loss", "")


@pytest.mark.parametrize("train", [train_population, train_sequential])
@pytest.mark.parametrize("loss, y, outputs, match", [
    ("cross_entropy", torch.arange(12) % 11, 10, "y_train holds the label 10 but the model has 10 "
     r"outputs \(labels 0..9\)"),
    ("mse", torch.randn(12), 1, r"output of two examples has shape \[2, 1\] but their targets "
     r"\[2\].*unsqueeze"),
    ("mse", torch.randn(12, 3), 2, r"shape \[2, 2\] but their targets \[2, 3\]"),
])
def test_a_model_whose_output_does_not_fit_the_targets_is_refused_before_training(
        train, loss, y, outputs, match):
    # without the check: "Target 10 is out of bounds" mid-run, or an mse loss broadcast
    # [N, 1] against [N] into [N, N] with only a warning
    with pytest.raises(ValueError, match=match):
        train(_linear_task(loss, y, outputs), TrainConfig(steps=2, batch_size=4),
              [Member("adam", {"lr": 1e-3})])


def test_a_model_whose_output_fits_trains():
    results = train_sequential(_linear_task("mse", torch.randn(12, 2), 2),
                               TrainConfig(steps=2, batch_size=4), [Member("adam", {"lr": 1e-3})])
    assert len(results[0].steps) == 2 and not results[0].diverged


@pytest.mark.parametrize("args, match", [
    (("adam", 1e-3), "hparams must be a dict"), ((3, {}), "registry name"),
    (("adam", {"lr": 1e-3}, 1.5), "seed must be a whole number"),
    (("adam", {1: 1e-3}), "hparams must be a dict"),
])
def test_a_member_with_arguments_of_the_wrong_kind_is_refused(args, match):
    with pytest.raises(TypeError, match=match):
        Member(*args)


def test_a_member_seed_torch_cannot_take_is_refused():
    """A seed beyond torch.manual_seed's range failed once the member's model was drawn,
    as torch's "Overflow when unpacking long long"; now when the member is made. Negative
    seeds (torch wraps them) and the largest unsigned 64-bit seed are still taken."""
    for seed in (2**64, 2**70, -2**63 - 1):
        with pytest.raises(ValueError, match=rf"^Member: seed must be an integer in "
                                             rf"\[-9223372036854775808, "
                                             rf"18446744073709551615\], got {seed}$"):
            Member("adam", {"lr": 1e-3}, seed)
    for seed in (-1, -2**63, 2**64 - 1):
        assert Member("adam", {"lr": 1e-3}, seed).seed == seed
    (run,) = train_sequential(ToyTask(), TrainConfig(steps=2, batch_size=16, eval_every=2),
                              [Member("sgd", {"lr": 0.1}, 2**64 - 1)])
    assert len(run.steps) == 2


@pytest.mark.parametrize("train", [train_population, train_sequential])
@pytest.mark.parametrize("change, error, match", [
    ({"task": "digits"}, TypeError,
     r"^task must be a Task, not the name 'digits': build it with "
     r"optimlab\.bench\.tasks\.get\('digits'\)$"),
    ({"task": 5}, TypeError, r"^task must be a Task \(.*\), got int 5, which has no make_model"),
    ({"config": {"steps": 2}}, TypeError, r"^config must be a TrainConfig, got dict"),
    ({"members": Member("sgd", {"lr": 0.1})}, TypeError,
     r"^members must be a list of Member, got Member .*\(a single member: pass \[member\]\)$"),
    ({"members": [("sgd", {"lr": 0.1})]}, TypeError, r"^members\[0\] must be a Member, got tuple"),
    ({"progress": 5}, TypeError, r"^progress must be a callable .*got int$"),
])
def test_arguments_of_the_wrong_kind_are_refused_before_training(train, change, error, match,
                                                                 monkeypatch):
    """A task name, a config dict, one member alone or a progress that cannot be called
    failed as an AttributeError or a TypeError deep in the engine (the last one after the
    first step); now one line naming the argument, before any model is built."""
    from optimlab.bench import trainer

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the arguments were checked")

    monkeypatch.setattr(trainer, "_init_model", no_model)
    arguments = {"task": ToyTask(), "config": TrainConfig(steps=2, batch_size=16, eval_every=2),
                 "members": [Member("sgd", {"lr": 0.1}, 0)], **change}
    with pytest.raises(error, match=match) as err:
        train(**arguments)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("middle, refused", [
    (lambda: nn.BatchNorm1d(8), "running_mean"), (lambda: nn.Dropout(0.3), "random"),
    (nn.Tanh, None)])
def test_population_refusal_says_why_a_model_cannot_be_batched(middle, refused, tmp_path):
    from optimlab.bench.store import RunStore
    from optimlab.bench.sweep import train_members
    from optimlab.bench.trainer import population_refusal

    task = _linear_task("cross_entropy", torch.arange(40) % 3, 3,
                        model=lambda: nn.Sequential(nn.Linear(5, 8), middle(), nn.Linear(8, 3)))
    reason = population_refusal(task)
    assert reason is None if refused is None else refused in reason
    # the automatic engine trains it either way: batched, or one member at a time
    store = RunStore(tmp_path / "runs.db")
    sweep = train_members(store, task, TrainConfig(steps=3, batch_size=8),
                          [Member("adam", {"lr": 1e-2}, s) for s in (0, 1)], engine="auto")
    runs = store.list_runs(sweep)
    assert [r.status for r in runs] == ["finished", "finished"]
    assert all(len(store.metrics(sweep, run_ids=[r.id])) == 2 * 3 for r in runs)
    # a model whose output does not fit is an error whatever the engine, not a refusal
    with pytest.raises(ValueError, match="label 2 but the model has 2 outputs"):
        population_refusal(_linear_task("cross_entropy", torch.arange(40) % 3, 2))


class _NotAModule:
    def __repr__(self):
        return "<not a module>"


class _TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 3)

    def forward(self, x):
        return self.linear(x), x


@pytest.mark.parametrize("train", [train_population, train_sequential])
@pytest.mark.parametrize("model, x_dtype, match", [
    (lambda: nn.Linear(7, 3), torch.float32, r"the model fails on 2 training examples \(input "
     r"\[2, 5\] float32; parameters float32\): RuntimeError: mat1 and mat2 shapes"),
    (lambda: nn.Linear(5, 3).double(), torch.float32, r"the model fails on 2 training examples "
     r"\(input \[2, 5\] float32; parameters float64\): RuntimeError: .*dtype"),
    (lambda: nn.Linear(5, 3), torch.float64, r"the model fails on 2 training examples \(input "
     r"\[2, 5\] float64; parameters float32\)"),
    (lambda: nn.Linear(5, 3), torch.int64, r"the model fails on 2 training examples \(input "
     r"\[2, 5\] int64; parameters float32\)"),
    (lambda: nn.Linear(5, 3).to("meta"), torch.float32, r"the model fails on 2 training examples "
     r"\(input \[2, 5\] float32; parameters float32 on meta\)"),
    (_TwoOutputs, torch.float32, "the model returned tuple on 2 training examples; "
     "cross_entropy needs a tensor"),
    (lambda: "hi", torch.float32, r"the model factory returned str 'hi', not a torch.nn.Module"),
    (_NotAModule, torch.float32, r"the model factory returned _NotAModule <not a module>, not a "
     r"torch.nn.Module"),
], ids=["wrong-size", "double-model", "float64-inputs", "int-inputs", "meta-device", "tuple-output",
        "factory-returns-str", "factory-returns-object"])
def test_a_model_that_fails_on_the_data_is_a_user_error_before_training(train, model, x_dtype, match):
    """A model that cannot run on the task's data (a layer of the wrong size, parameters of
    another dtype or device than the inputs) or a factory that returns no module is refused
    with one ValueError line naming the task and the model (the command line's "optimlab:
    error"), not torch's RuntimeError or an AttributeError (its "internal error")."""
    from optimlab.bench.tasks import Task

    x = (torch.randn(12, 5, generator=torch.Generator().manual_seed(0)) * 3).to(x_dtype)
    y = torch.arange(12) % 3
    task = Task("broken", x, y, x, y, {"net": model}, "net", "cross_entropy", "accuracy", "")
    with pytest.raises(ValueError, match=r"^task 'broken', model 'net': " + match) as info:
        train(task, TrainConfig(steps=2, batch_size=4), [Member("adam", {"lr": 1e-3})])
    assert "\n" not in str(info.value)


def test_population_refusal_checks_the_model_before_it_probes_batching():
    """A model that fails on the data raises the model's error, not a refusal ("the
    population engine cannot batch this model") that would send it to the sequential
    engine to fail there."""
    from optimlab.bench.trainer import population_refusal

    task = _linear_task("cross_entropy", torch.arange(40) % 3, 3, model=lambda: nn.Linear(7, 3))
    with pytest.raises(ValueError, match="model 'linear': the model fails on 2 training"):
        population_refusal(task)
    task = _linear_task("cross_entropy", torch.arange(40) % 3, 3, model=lambda: None)
    with pytest.raises(ValueError, match="model factory returned NoneType None"):
        population_refusal(task)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", nn.functional.cross_entropy],
                         ids=["cross_entropy", "mse", "loss-function"])
def test_the_sequential_engine_evaluates_in_chunks_with_the_one_pass_metrics(loss):
    """60,000 MNIST images through the CNN at once peaked at 4.4 GB: the sequential engine
    evaluates in chunks (of the population engine's size, trainer._eval_chunk), summing the
    loss and the correct predictions. A test set larger than a chunk must never reach the
    model whole, and the metrics must be the one-pass ones."""
    from optimlab.bench import trainer
    from optimlab.bench.tasks import Task

    chunk = trainer._eval_chunk(1, torch.zeros(1, 3 if loss == "mse" else 1))
    toy = ToyTask(examples=120 + chunk + 500, train=120)
    y_train, y_test = toy.y_train, toy.y_test
    if loss == "mse":  # regression targets of the model's output shape
        y_train, y_test = (nn.functional.one_hot(y, 3).double() for y in (y_train, y_test))
    batches = []

    def model():
        net = toy.make_model()
        net.register_forward_hook(lambda module, args, out: batches.append(len(args[0])))
        return net

    task = Task("toy", toy.x_train, y_train, toy.x_test, y_test, {"mlp": model}, "mlp", loss,
                "loss" if loss == "mse" else "accuracy", "")
    config = TrainConfig(steps=1, batch_size=16, eval_every=1)
    # lr 0: the last evaluation reads the member's initial weights, rebuilt below
    (run,) = train_sequential(task, config, [Member("sgd", {"lr": 0.0}, 0)])
    assert len(task.x_test) > chunk and max(batches) == chunk, (chunk, max(batches))
    torch.manual_seed(0)
    net = toy.make_model()
    with torch.no_grad():
        out = net(task.x_test)
        want_test = float(task.loss_fn(out, task.y_test))
        want_train = float(task.loss_fn(net(task.x_train), task.y_train))
    # only the order of the float64 sums differs (chunk sums added, then divided, against
    # one pass's sum): a relative error of at most about n * 2**-53 for n ~ 10**4 terms,
    # ~1e-12; 1e-10 leaves room and is still far below any difference in what is computed
    assert run.test_loss[-1] == pytest.approx(want_test, rel=1e-10, abs=0)
    assert run.train_loss[-1] == pytest.approx(want_train, rel=1e-10, abs=0)
    if loss == "mse":  # the metric is the loss
        assert run.test_metric[-1] == run.test_loss[-1]
    else:  # counts of correct predictions: exact
        assert run.test_metric[-1] == float((out.argmax(-1) == task.y_test).float().mean())


def test_a_config_takes_numpy_integers_and_refuses_bools():
    """TrainConfig(steps=True) trained one step (a bool is an int to isinstance); NumPy's
    integers, which a grid built with NumPy gives, are numbers of steps."""
    import numpy as np

    for key in ("steps", "eval_every"):
        with pytest.raises(ValueError, match=rf"^{key} must be an integer >= 1, got True$"):
            TrainConfig(**{key: True})
        assert getattr(TrainConfig(**{key: np.int64(5)}), key) == 5


def test_numpy_integers_become_pythons_in_the_config_and_a_bool_batch_is_refused():
    """A NumPy integer kept as such failed later, where the config is written as JSON; a
    bool batch size (True: one example) was taken."""
    import json

    import numpy as np

    config = TrainConfig(steps=np.int64(5), batch_size=np.int64(64), eval_every=np.int32(2),
                         eval_subset=np.int64(100))
    assert all(type(getattr(config, k)) is int
               for k in ("steps", "batch_size", "eval_every", "eval_subset"))
    json.dumps(dataclasses.asdict(config))
    for key, says in (("batch_size", "the full batch"), ("eval_subset", "every example")):
        says = rf"^{key} must be an integer >= 1, got True \(or None: {says}\)$"
        with pytest.raises(ValueError, match=says):
            TrainConfig(**{key: True})


def test_train_sequential_raises_or_isolates_a_member_that_raises():
    """By default a member's error is raised; ``isolate=True`` keeps it with that member's
    result and trains the others (what a sweep stores)."""
    members = [Member("sgd", {"lr": 0.1}), Member("sgd", {"lr": 0.1, "momentum": -1.0}),
               Member("sgd", {"lr": 0.05})]
    config = TrainConfig(steps=3, batch_size=16, eval_every=3)
    with pytest.raises(ValueError, match="momentum"):
        train_sequential(ToyTask(), config, members)
    ticks = []
    results = train_sequential(ToyTask(), config, members, progress=ticks.append, isolate=True)
    assert [r.error is None for r in results] == [True, False, True]
    assert "ValueError" in results[1].error and "momentum" in results[1].error
    assert results[0].steps == results[2].steps == [0, 3] and results[1].steps == []
    assert sum(ticks) == 3 * len(members)  # the failed member's steps still move the bar


@pytest.mark.parametrize("name, cls, hp", [("schedulefreeadamw", "ScheduleFreeAdamW", {"lr": 0.01}),
                                           ("schedulefreesgd", "ScheduleFreeSGD", {"lr": 0.5})])
def test_schedule_free_runs_are_evaluated_at_their_average(name, cls, hp):
    """A schedule-free optimizer takes gradients at y and is meant to be evaluated at its
    average x (``opt.eval()``): both engines reported y's loss (0.1799 against x's 0.1902
    for ScheduleFreeAdamW here). A hand loop with torch and the optimizer's own ``eval()``
    is the reference; the training after an evaluation goes on from y, unchanged."""
    import optimlab
    from optimlab.bench.tasks import get

    task = get("digits")
    config = TrainConfig(steps=60, batch_size=64, eval_every=30)
    member = [Member(name, hp, 0)]
    torch.manual_seed(0)
    model = task.make_model()
    opt = getattr(optimlab, cls)(model.parameters(), **hp)
    index = batch_indices(len(task.x_train), 64, 0, 60)
    for t in range(60):
        opt.zero_grad()
        task.loss_fn(model(task.x_train[index[t]]), task.y_train[index[t]]).backward()
        opt.step()
    with torch.no_grad():
        at_y = float(task.loss_fn(model(task.x_train), task.y_train))
        opt.eval()
        at_x = float(task.loss_fn(model(task.x_train), task.y_train))
    assert abs(at_x - at_y) > 1e-3  # the two points differ enough to tell apart
    for train in (train_sequential, train_population):
        got = train(task, config, member)[0].train_loss[-1]
        assert got == pytest.approx(at_x, rel=1e-4), (train.__name__, got, at_x, at_y)


@pytest.mark.parametrize("averaging", ["ema", "swa"])
def test_an_average_does_not_hide_iterates_that_blew_up(averaging):
    """SGD at lr 0.0385 on the DeepOBS quadratic: the iterates blow up (train loss 424 to
    6e5 in 100 steps) while their average stays near its start, so a divergence judged on
    the recorded (averaged) loss missed it. Judged on the iterates, both engines flag it;
    a stable rate stays unflagged."""
    from optimlab.bench.tasks import get

    task = get("quadratic-deep")
    config = TrainConfig(steps=100, batch_size=None, eval_every=25, averaging=averaging)
    for train in (train_sequential, train_population):
        blown = train(task, config, [Member("sgd", {"lr": 0.0385}, 0)])[0]
        assert blown.train_loss[-1] < 10 * blown.train_loss[0]  # the average looks fine
        assert blown.iterate_loss > 1e3 * blown.train_loss[0] and blown.diverged
        stable = train(task, config, [Member("sgd", {"lr": 0.01}, 0)])[0]
        assert not stable.diverged and stable.iterate_loss < stable.train_loss[0]
    plain = train_population(task, TrainConfig(steps=100, batch_size=None, eval_every=25),
                             [Member("sgd", {"lr": 0.01}, 0)])[0]
    assert plain.iterate_loss is None  # no average: the curve is the iterates'


def test_accuracy_under_a_loss_of_ones_own_needs_class_logits():
    """A binary model with one logit per example under ``binary_cross_entropy_with_logits``
    and metric 'accuracy': the metric took argmax over a single column (class 0 everywhere)
    and the table said 0. Such a model is refused before training, naming the fix; two
    logits per example pass."""
    from torch.nn import functional as F

    from optimlab.bench.tasks import Task
    from optimlab.bench.trainer import check_output

    x = torch.randn(8, 4)
    y = torch.tensor([0, 1] * 4)

    def bce(out, target):
        return F.binary_cross_entropy_with_logits(out, target.to(out.dtype))

    def task(model):
        return Task(name="binary", x_train=x, y_train=y, x_test=x, y_test=y,
                    models={"m": model}, default_model="m", loss=bce, metric="accuracy",
                    description="")

    one = task(lambda: nn.Sequential(nn.Linear(4, 1), nn.Flatten(0)))
    with pytest.raises(ValueError, match=r"metric 'accuracy' reads the class as the argmax of "
                                         r"logits \[\.\.\., classes >= 2\] over the labels' "
                                         r"shape; two examples gave \[2\] for labels \[2\]"):
        check_output(one, one.make_model())
    two = task(lambda: nn.Linear(4, 2))
    check_output(two, two.make_model())
    with pytest.raises(ValueError, match="metric 'accuracy'"):
        train_sequential(one, TrainConfig(steps=2, batch_size=4), [Member("sgd", {"lr": 0.1})])


class _FirstLayerFrozen(ToyTask):
    """The toy MLP with its first layer frozen (``requires_grad=False``)."""

    def make_model(self, name=None):
        model = super().make_model(name)
        model[0].requires_grad_(False)
        return model


@pytest.mark.parametrize("loss", [None, "cross_entropy"])
def test_frozen_parameters_stay_fixed_in_both_engines(loss):
    """The population engine stacked and trained every parameter (a frozen layer trained);
    the sequential engine took the gradient of a frozen one and raised "One of the
    differentiated Tensors does not require grad"."""
    config = TrainConfig(steps=20, batch_size=16, eval_every=10)
    members = [Member("adam", {"lr": 1e-2}, seed) for seed in (0, 1)]
    seen = {}

    def observe(k, step, params):
        seen[k, step] = [p.detach().clone() for p in params]

    task = _FirstLayerFrozen(loss=loss)
    one_by_one = train_sequential(task, config, members, observe=observe)
    for k in range(2):  # layer 0 (weight, bias) never moves; layer 2 trains
        assert all(torch.equal(a, b) for a, b in zip(seen[k, 0][:2], seen[k, 20][:2]))
        assert not torch.equal(seen[k, 0][2], seen[k, 20][2])
    together = train_population(task, config, members)  # the same runs, batched
    assert len(together) == len(one_by_one) == len(members)  # a run per member, in both
    for a, b in zip(together, one_by_one, strict=True):
        for curve in ("train_loss", "test_loss", "test_metric"):
            assert getattr(a, curve) == pytest.approx(getattr(b, curve), rel=1e-9, abs=1e-12)
    free = train_population(ToyTask(loss=loss), config, members)
    assert free[0].train_loss[-1] != pytest.approx(together[0].train_loss[-1], rel=1e-6)


def test_a_model_with_nothing_to_train_is_refused_by_both_engines():
    class AllFrozen(ToyTask):
        def make_model(self, name=None):
            return super().make_model(name).requires_grad_(False)

    config = TrainConfig(steps=2, batch_size=16, eval_every=1)
    for train in (train_population, train_sequential):
        with pytest.raises(ValueError, match="no trainable parameters"):
            train(AllFrozen(), config, [Member("adam", {"lr": 1e-2}, 0)])


def test_every_entry_point_that_seeds_the_generator_holds_the_lab_lock_throughout():
    """population_refusal seeds torch's generator (its model's weights) and then probes a
    population step: each piece took the lock, but another thread could run between them
    when a helper inserted above it took its decorator (forty-first session). The lab's
    entry points are one_at_a_time's wrapper itself."""
    from optimlab.bench import trainer

    wrapper = trainer.one_at_a_time(len).__code__
    for fn in (trainer.population_refusal, trainer.check_model, trainer.train_population,
               trainer.train_sequential):
        assert fn.__code__ is wrapper, fn.__name__


def test_training_calls_from_two_threads_take_turns():
    """The lab seeds torch's process-wide generator per run: two sweeps in two threads of
    one process drew from each other's streams and stored other numbers than alone. A
    second thread's training now waits while the first trains (its progress callback holds
    it here), then gives the numbers it gives alone."""
    import threading

    task = ToyTask()
    config = TrainConfig(steps=4, batch_size=16, eval_every=2)
    members = [Member("adam", {"lr": 0.01}, seed) for seed in (0, 1)]
    alone = train_sequential(task, config, members)
    inside, release = threading.Event(), threading.Event()

    def hold(_):
        inside.set()
        release.wait(timeout=30)

    results = {}
    first = threading.Thread(target=lambda: results.update(
        first=train_population(task, config, members, progress=hold)))
    second = threading.Thread(target=lambda: results.update(
        second=train_sequential(task, config, members)))
    first.start()
    assert inside.wait(timeout=30)
    second.start()
    second.join(timeout=2)  # it would have ended by now (4 steps of 2 members) if not held
    waited = second.is_alive()
    release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert waited and "second" in results and "first" in results
    for a, b in zip(results["second"], alone, strict=True):
        assert a.test_loss == b.test_loss


class _UnusedHead(nn.Module):
    """A linear model with a second layer its forward never calls (an unused head)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(5, 3)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("clip", [{}, {"clip_norm": 0.5, "clip_value": 0.1}])
def test_a_parameter_the_forward_never_uses_is_skipped_in_both_engines(clip):
    """Its gradient is None and the optimizer skips it, as torch's do after
    ``loss.backward()``; every run raised "appears to not have been used in the graph" (an
    audit of the advisor, whose users bring such models). Both engines give the same runs."""
    task = _linear_task("cross_entropy", torch.arange(12) % 3, 3, model=_UnusedHead)
    config = TrainConfig(steps=4, batch_size=4, eval_every=2, **clip)
    members = [Member("adamw", {"lr": 1e-2, "weight_decay": 0.1}, seed) for seed in (0, 1)]
    seen = {}
    for train in (train_population, train_sequential):
        runs = train(task, config, members)
        assert all(not r.diverged and len(r.steps) == 3 for r in runs)
        seen[train.__name__] = [r.train_loss for r in runs]
        assert runs[0].train_loss[-1] < runs[0].train_loss[0]
    np.testing.assert_allclose(seen["train_population"], seen["train_sequential"], rtol=1e-5)


def test_an_unused_parameter_keeps_its_value_and_the_clipped_norm_leaves_it_out():
    """The trainer leaves an unused parameter's grad None: a population (as the trainer
    steps) leaves it bit for bit, weight decay included, and clipping skips it."""
    from optimlab import Population
    from optimlab.bench.trainer import _clip

    used, unused = torch.ones(2, 3, requires_grad=True), torch.ones(2, 4, requires_grad=True)
    for name in ("adamw", "sgd", "lion"):
        pop = Population(name, [used, unused], {"lr": [0.1, 0.2], "weight_decay": 0.1})
        used.grad, unused.grad = torch.ones(2, 3), None
        before = unused.detach().clone()
        pop.step()
        assert torch.equal(unused.detach(), before), name

    g = [torch.full((2,), 3.0), None, torch.full((2,), 4.0)]
    clipped = _clip(g, TrainConfig(steps=1, clip_norm=1.0, clip_value=10.0), batched=False)
    assert clipped[1] is None
    total = torch.cat([clipped[0], clipped[2]]).norm()
    assert abs(float(total) - 1.0) < 1e-5


@pytest.mark.parametrize("train", [train_population, train_sequential])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_model_is_scored_in_float32(train, dtype):
    """Its accuracy on 300 examples is a count over 300 (it came in bfloat16's steps of
    1/256 near 0.5: differences under 0.004 between finalists vanished) and its loss is the
    float32 mean of its float32-widened outputs."""
    from optimlab.bench.tasks import Task

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=gen).to(dtype)
    y = torch.randint(0, 3, (300,), generator=gen)
    task = Task("half", x, y, x, y, {"linear": lambda: nn.Linear(5, 3).to(dtype)}, "linear",
                "cross_entropy", "accuracy", "")
    (run,) = train(task, TrainConfig(steps=2, batch_size=50, eval_every=1),
                   [Member("sgd", {"lr": 0.1})])
    counts = [a * 300 for a in run.test_metric]
    assert all(abs(c - round(c)) < 1e-3 for c in counts), run.test_metric
    assert all(isinstance(v, float) and math.isfinite(v) for v in run.test_loss)


def test_a_population_lets_its_members_modules_go_once_their_parameters_are_stacked(
        monkeypatch):
    """Each member's module was kept through the whole run beside the stacked parameters:
    a second copy of every member's weights (+25% of an Adam population's memory). While
    the population trains, only the template (the first member's module, for the forwards)
    is alive."""
    import gc
    import weakref

    from optimlab.bench import trainer

    made = []
    original = trainer._init_model
    monkeypatch.setattr(trainer, "_init_model",
                        lambda *a: made.append(weakref.ref(m := original(*a))) or m)
    alive = []

    def count(*_):
        gc.collect()
        alive.append(sum(ref() is not None for ref in made))

    task = ToyTask()
    members = [Member("adam", {"lr": 1e-2}, seed) for seed in range(4)]
    train_population(task, TrainConfig(steps=4, batch_size=16, eval_every=2), members,
                     progress=count)
    assert len(made) == 4 and alive and set(alive) == {1}
