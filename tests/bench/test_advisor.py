"""The advisor: its range-test rule against fastai's and the steepest slope on the same
curves, its plan under a budget, and whole advice on small problems (batched and not, a
plain ``nn.Module`` with a ``DataLoader``, models that cannot train)."""

import functools
import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from optimlab.bench import advisor
from optimlab.bench.advisor import (
    AdvisorError,
    RangeTest,
    advise,
    advise_task,
    candidates,
    difference_words,
    fastai_valley,
    make_task,
    plan,
    steepest,
    suggest_lr,
)
from optimlab.bench.store import RunStore
from optimlab.bench.tasks import Task
from optimlab.optim.registry import work_weight

LRS = [10.0 ** e for e in range(-6, 2)]  # 1e-6 .. 10, one a decade: 8 rates

# the small validation sets here are on purpose (test_a_small_validation_set_is_warned_of)
pytestmark = pytest.mark.filterwarnings("ignore::optimlab.bench.advisor.AdvisorWarning")


# -- the range test's rules ---------------------------------------------------------------

def test_the_rule_picks_the_lowest_loss_that_trained():
    losses = [2.30, 2.29, 2.2, 1.6, 0.9, 0.5, 3.0, math.inf]
    assert suggest_lr(LRS, losses, initial=2.30) == 1e-1
    # the steepest fall is at 1e-3..1e-2 (a decade before the best loss), as fastai's
    # steepest-slope pick is known to be: it suggests a rate still on the way down
    assert steepest(LRS, losses) < 1e-1


def test_an_early_noisy_point_fools_the_steepest_slope_not_the_rule():
    """A lucky low loss at one tiny rate (a noisy evaluation) makes the steepest fall at the
    start of the curve; the running median removes it."""
    losses = [2.30, 0.6, 2.28, 2.2, 1.6, 0.9, 0.4, math.inf]
    assert steepest(LRS, losses) == 1e-6  # fooled: the drop 2.30 -> 0.6 is the steepest
    assert suggest_lr(LRS, losses, initial=2.31) == 1.0


def test_one_run_that_blew_up_does_not_end_the_curve():
    """fastai's stop rule ends the raw curve at the first spike; the smoothed one goes on."""
    losses = [2.3, 2.2, 1.9, math.inf, 1.0, 0.6, 0.5, math.inf]
    assert suggest_lr(LRS, losses, initial=2.31) == 1.0
    assert fastai_valley(LRS, losses) <= 1e-4  # its curve ends at the spike (1e-3)


def test_nothing_below_the_initial_loss_means_no_suggestion():
    assert suggest_lr(LRS, [2.4, 2.5, 2.6, math.inf, math.inf, math.inf, math.inf, math.inf],
                      initial=2.3) is None
    assert suggest_lr(LRS, [math.inf] * 8, initial=2.3) is None


def test_fastai_valley_by_hand():
    """fastai's valley: the longest decreasing run 2.3 > 2.0 > 1.5 > 1.0 > 0.8 > 0.7 spans
    indices 0..5 (length 6: max_end 5, max_start 5 - 6 = -1); sections = 6/3 = 2; index
    -1 + 2 + 1 = 2."""
    losses = [2.3, 2.0, 1.5, 1.0, 0.8, 0.7, 5.0, 9.0]
    assert fastai_valley(LRS, losses) == LRS[2]
    # a run of two from the first point: fastai's index is -1, which must not wrap round to
    # the highest rate (the worst loss here) but stay at the run's first rate
    assert fastai_valley(LRS, [2.3, 2.2, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9]) == LRS[0]
    assert fastai_valley(LRS[:3], [2.3, 2.2, 2.4]) == LRS[0]


def test_range_test_from_records():
    records = [{"optimizer": "adam", "lr": lr, "seed": 0, "diverged": lr >= 1.0,
                "final_train_loss": loss, "initial_train_loss": 2.3}
               for lr, loss in zip(LRS, [2.3, 2.2, 2.0, 1.2, 0.5, 0.6, 9.0, math.nan])]
    test = RangeTest.of("adam", records)
    assert test.losses[-2:] == [math.inf, math.inf]  # diverged runs count as infinite
    assert test.suggested_lr == 1e-2 and test.max_stable == 1e-1
    assert test.initial_loss == 2.3


# -- the plan ----------------------------------------------------------------------------

def test_the_plan_shrinks_to_the_budget_and_says_the_least_it_needs():
    full = plan(300, 6)
    assert full.horizons == (33, 100, 300) and len(full.range_lrs) == 15
    for budget in (full.cost(6), 9000, 6000):
        assert plan(300, 6, budget).cost(6) <= budget
    with pytest.raises(AdvisorError, match=r"too small .* least this advisor spends is \d+"):
        plan(300, 6, 1000)
    # a budget given in seconds is answered in seconds: 1000 member-steps in 2 s, so the
    # least plan's member-steps at 500 a second
    least = int(re.search(r"spends is (\d+)", str(pytest.raises(AdvisorError, plan, 300, 6,
                                                                1000).value)).group(1))
    with pytest.raises(AdvisorError, match=rf"a budget of 2 s \(1000 member-steps at the "
                       rf"calibrated step cost\) is too small .* is {least} member-steps, "
                       rf"about {least / 500:.3g} s"):
        plan(300, 6, 1000, seconds=2.0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        plan(0, 6)
    with pytest.raises(ValueError, match="budget must be"):
        plan(300, 6, -5)
    assert plan(5, 2).horizons == (5,)


# -- whole advice ----------------------------------------------------------------------------

def _regression(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.01 * torch.randn(n, 1, generator=g)
    return x, y


def _linear_task() -> Task:
    x, y = _regression()
    return Task(name="linear", x_train=x[:192], y_train=y[:192], x_test=x[192:],
                y_test=y[192:], models={"linear": lambda: nn.Linear(8, 1)},
                default_model="linear", loss="mse", metric="loss", description="test")


def _trained_member_steps(store: RunStore, sweep_ids) -> int:
    """The member-steps of the stored runs that trained to the end (finished or diverged),
    each run's steps weighted by its optimizer's work."""
    total = 0.0
    for sweep_id in sweep_ids:
        horizon = store.sweep(sweep_id)["config"]["train"]["steps"]
        total += sum(horizon * work_weight(r.optimizer, r.hparams)
                     for r in store.list_runs(sweep_id, ("finished", "diverged")))
    return int(round(total))


def test_advice_on_a_small_task_is_complete_stored_and_resumable(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    ticks, groups = [], []

    def on_stage(label, horizon, members):  # each optimizer's population: members x steps
        for name in {m.optimizer for m in members}:
            groups.append(sum(m.optimizer == name for m in members) * horizon)

    advice = advise_task(_linear_task(), optimizers=["momentum", "adam"], steps=27,
                         batch_size=32, seeds=2, store=store, progress=ticks.append,
                         on_stage=on_stage)
    # the plan's bound on one optimizer's population holds every stage
    assert groups and max(groups) <= advice.plan.largest_group()
    assert advice.optimizer in ("momentum", "adam")
    assert advice.metric["name"] == "loss" and advice.metric["higher_is_better"] is False
    # Adam's default rate barely moves in 27 steps (the loss starts near 9.7): a tuned
    # optimizer ends far below it
    assert advice.metric["value"] < advice.versus["adam_default"]["value"] / 5
    better = advice.versus["adam_default"]["better_by"]  # a loss: the pick's is lower
    assert f"{better:.3g} lower validation loss than Adam at its default lr (lr=0.001" in advice.statement
    assert 0 < advice.steps_spent <= advice.plan.cost(2)
    assert sum(ticks) > 0
    answer = json.loads(json.dumps(advice.to_json()))  # machine-readable as it says
    assert {"optimizer", "hparams", "metric", "steps_spent", "candidates"} <= set(answer)
    assert answer["hparams"]["lr"] > 0
    assert {c["optimizer"] for c in answer["candidates"]} == {"momentum", "adam"}
    assert all(c["suggested_lr"] for c in answer["candidates"])
    assert advice.versus["adam_default"]["lr"] == 1e-3
    assert f"optimlab.create({advice.optimizer!r}" in advice.code
    # every stage is a stored sweep; the range test holds diverged runs (lr up to 10)
    assert len(advice.sweep_ids) >= 2
    range_runs = store.list_runs(advice.sweep_ids[0])
    assert {r.status for r in range_runs} >= {"finished", "diverged"}
    assert advice.steps_spent == _trained_member_steps(store, advice.sweep_ids)
    # the same request again trains nothing: every run is read back, and the compute spent
    # says so (it counted every member-step of the evidence again)
    ticks.clear()
    again = advise_task(_linear_task(), optimizers=["momentum", "adam"], steps=27,
                        batch_size=32, seeds=2, store=store, progress=ticks.append)
    assert ticks == [] and again.to_json()["optimizer"] == advice.optimizer
    assert again.steps_spent == 0
    assert advice.runs_trained > 0 and advice.runs_read_back == advice.runs_failed == 0
    assert again.runs_trained == 0
    assert again.runs_read_back == advice.runs_trained
    assert again.steps_read_back == advice.steps_spent
    assert again.to_json()["runs_read_back"] == again.runs_read_back
    assert (f"compute spent: 0 member-steps: nothing trained, every run "
            f"({again.runs_read_back:,}, {advice.steps_spent:,} member-steps) read back from "
            "the store") in str(again)


def test_a_difference_is_said_by_its_direction():
    """``better_by`` is positive when the pick is better; the words say which way the metric
    moved, so a lower loss never reads as "+289 loss"."""
    assert difference_words(289.4, "loss", higher_is_better=False) == "289 lower loss"
    assert difference_words(-0.02, "loss", higher_is_better=False) == "0.02 higher loss"
    assert difference_words(0.05, "accuracy", higher_is_better=True) == "0.05 higher accuracy"
    assert difference_words(-0.004, "accuracy", True) == "0.004 lower accuracy"
    assert difference_words(0.0, "loss", False) == "the same loss"


def test_a_single_candidate_is_called_the_only_one(tmp_path):
    advice = advise_task(_linear_task(), optimizers=["adam"], steps=27, batch_size=32,
                         seeds=2, store=RunStore(tmp_path / "runs.db"))
    assert advice.optimizer == "adam" and len(advice.candidates) == 1
    assert advice.statement.startswith("adam was the only candidate. ")
    assert "clear leader" not in advice.statement and "+" not in advice.statement
    default = advice.versus["adam_default"]
    assert default["better_by"] > 0  # tuned Adam beats Adam at 1e-3 in 27 steps
    assert (f"only candidate. {default['better_by']:.3g} lower validation loss than Adam at its default "
            f"lr (lr=0.001") in advice.statement
    assert advice.to_json()["statement"] == advice.statement


def test_a_candidate_that_cannot_run_says_why(tmp_path):
    """Muon steps 2-D parameters only: on a model with a bias every run of it raises, which
    the answer reports as such (with the error), not as a loss that never fell."""
    from optimlab.bench.sweep import EngineWarning

    store = RunStore(tmp_path / "runs.db")
    with pytest.warns(EngineWarning, match="^muon: "):  # its members tried alone too
        advice = advise_task(_linear_task(), optimizers=["muon", "adam"], steps=27,
                             batch_size=32, seeds=2, store=store)
    by_name = {c["optimizer"]: c for c in advice.candidates}
    assert by_name["muon"]["status"] == "cannot run"
    assert "Muon only optimizes real 2-D parameters" in by_name["muon"]["error"]
    assert by_name["adam"]["error"] is None and advice.optimizer == "adam"
    assert advice.statement.startswith("adam was the only candidate that could train here.")
    # muon's runs raised: they are not in the compute spent, which is adam's alone
    assert advice.steps_spent == _trained_member_steps(store, advice.sweep_ids)
    assert advice.runs_failed == len(advice.plan.range_lrs)
    assert f"; {advice.runs_failed} runs raised an error (not counted)" in str(advice)
    # when no candidate can run at all, the error says why for each
    x, y = _regression(64)

    def picky(out, t):  # fine on the advisor's two-example probe, raises in training
        if len(t) > 2:
            raise ValueError("a loss that refuses batches of more than two")
        return ((out - t) ** 2).mean()

    with pytest.raises(AdvisorError, match="no candidate can run on task .*adam: "
                                           "ValueError: a loss that refuses"):
        advise(nn.Linear(8, 1), picky, (x, y), optimizers=["adam"], steps=9, store=store)


class _Normed(nn.Module):
    """BatchNorm keeps running statistics: the population engine cannot batch it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                  nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)


def test_a_module_and_dataloader_the_population_engine_cannot_batch(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(240, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=40)
    model = _Normed()
    before = [p.detach().clone() for p in model.parameters()]
    store = RunStore(tmp_path / "runs.db")
    advice = advise(model, nn.CrossEntropyLoss(), loader, optimizers=["adam"], steps=12,
                    store=store)
    assert advice.metric["name"] == "accuracy" and 0 <= advice.metric["value"] <= 1
    assert advice.batch_size == 40  # the loader's
    runs = [r for s in advice.sweep_ids for r in store.list_runs(s)]
    assert runs and not [r for r in runs if r.status == "failed"]  # trained one at a time
    # ... because the population engine refuses this model (running statistics in place)
    from optimlab.bench.trainer import Member, TrainConfig, train_population
    task = make_task(_Normed(), nn.CrossEntropyLoss(), loader)
    with pytest.raises(RuntimeError, match="running_mean"):
        train_population(task, TrainConfig(steps=2, batch_size=40, eval_every=1),
                         [Member("adam", {"lr": 1e-3}, 0), Member("adam", {"lr": 1e-2}, 1)])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # untouched


def test_a_custom_loss_function_and_held_out_validation():
    x, y = _regression(100)
    task = make_task(nn.Linear(8, 1), lambda out, t: ((out - t) ** 2).mean(), (x, y))
    assert task.metric == "loss" and len(task.x_test) == 20 and len(task.x_train) == 80
    torch.manual_seed(0)
    model = task.make_model()
    assert task.loss_fn(model(task.x_train), task.y_train).dim() == 0


def test_models_that_cannot_train_get_a_clear_error(tmp_path):
    x, y = _regression(64)
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(AdvisorError, match="no trainable parameters"):
        advise(nn.Identity(), nn.MSELoss(), (x, y), store=store)
    with pytest.raises(AdvisorError, match=r"rejects its data: RuntimeError"):
        advise(nn.Linear(3, 1), nn.MSELoss(), (x, y), store=store)
    with pytest.raises(AdvisorError, match="no candidate trains"):
        advise(nn.Linear(8, 1), lambda out, t: (out * math.nan).mean(), (x, y),
               optimizers=["adam"], steps=10, store=store)
    with pytest.raises(AdvisorError, match="must be an nn.Module"):
        advise("model", nn.MSELoss(), (x, y))
    with pytest.raises(AdvisorError, match="accuracy' needs integer class labels"):
        make_task(nn.Linear(8, 1), nn.MSELoss(), (x, y), metric="accuracy")


def test_inputs_and_targets_of_different_lengths_are_refused(monkeypatch):
    """Fewer targets than inputs failed as an IndexError inside make_task; more inputs than
    targets were trained with the extra inputs' labels silently dropped. Now one line
    naming the data and both lengths, before anything trains; for a DataLoader too."""
    monkeypatch.setattr(advisor, "advise_task", lambda *a, **k: pytest.fail("trained"))
    x, y = _regression(64)
    for train, val, what, nx, ny in [((x, y[:50]), None, "train_data", 64, 50),
                                     ((x[:40], y), None, "train_data", 40, 64),
                                     ((x, y), (x[:20], y[:10]), "val_data", 20, 10)]:
        with pytest.raises(AdvisorError, match=rf"^{what} has {nx} inputs and {ny} targets "
                                               r"\(along the first axis\)"):
            make_task(nn.Linear(8, 1), nn.MSELoss(), train, val)
        with pytest.raises(AdvisorError, match=rf"^{what} has {nx} inputs and {ny} targets"):
            advise(nn.Linear(8, 1), nn.MSELoss(), train, val, steps=10)
    # batches of (input, target), as a DataLoader gives them: the last one a label short
    loader = [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:10], y[8:9])]
    with pytest.raises(AdvisorError, match=r"^train_data has 10 inputs and 9 targets"):
        make_task(nn.Linear(8, 1), nn.MSELoss(), loader)


@pytest.mark.parametrize("store", ["adv.db", 5])
def test_a_store_that_is_not_a_run_store_is_refused_up_front(store, monkeypatch):
    """A path given for the store failed as an AttributeError eight frames deep, after the
    data were read; advise and advise_task now refuse it as run_sweep does."""
    monkeypatch.setattr(advisor, "make_task", lambda *a, **k: pytest.fail("data read"))
    monkeypatch.setattr(advisor, "_advise_task", lambda *a, **k: pytest.fail("task read"))
    x, y = _regression(16)
    with pytest.raises(TypeError, match=rf"^advise reads a RunStore, not a "
                                        rf"{type(store).__name__} .*RunStore\(path\)$"):
        advise(nn.Linear(8, 1), nn.MSELoss(), (x, y), steps=10, store=store)
    with pytest.raises(TypeError, match=rf"^advise_task reads a RunStore, not a "
                                        rf"{type(store).__name__}"):
        advise_task("digits", steps=10, store=store)


def test_a_budget_in_seconds_is_converted_with_the_calibrated_step_cost(monkeypatch):
    from optimlab.bench import cost
    from optimlab.bench.advisor import steps_for_seconds

    seen = {}

    def fake_costs(task, model, batch_size, optimizers, **kwargs):
        seen.update(optimizers)
        return {n: cost.StepCost(n, 0.002 if n == "adam" else 0.004, 0.0, 1, 5)
                for n in optimizers}

    monkeypatch.setattr(cost, "step_costs", fake_costs)
    # mean cost 3 ms a member-step: 30 s buy 10,000 member-steps
    assert steps_for_seconds(_linear_task(), None, 32, ["adam", "lion"], 30.0) == 10000
    assert set(seen) == {"adam", "lion"} and seen["adam"] == {"lr": 1e-3}
    with pytest.raises(ValueError, match="in seconds must be > 0"):
        steps_for_seconds(_linear_task(), None, 32, ["adam"], 0)
    with pytest.raises(ValueError, match="not both"):
        advise_task(_linear_task(), budget=100, budget_seconds=1.0)


# -- defects found by the audit -------------------------------------------------------------

class _Frozen(nn.Module):
    """A parameter that cannot change the output: no rate can train this model."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.randn(8, 3, generator=torch.Generator().manual_seed(5)))
        self.b = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return x @ self.w + 0.0 * self.b


def test_the_range_test_compares_the_loss_on_the_same_examples(tmp_path):
    """1,200 train examples: the evaluations before the last read 1,000 of them
    (``TrainConfig.eval_subset``). The 200 others are made easy, so the loss on the whole
    set is lower than on the subset: read at step 0 on the subset and at the end on the
    whole set, a model that cannot change its output looked as if it trained."""
    from optimlab.bench.trainer import eval_indices

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 8, generator=g)
    y = torch.randint(0, 3, (1200,), generator=g)
    model = _Frozen()
    inside = torch.zeros(1200, dtype=torch.bool)
    inside[eval_indices(1200, 1000)] = True
    with torch.no_grad():
        y[~inside] = model(x[~inside]).argmax(-1)
        assert F.cross_entropy(model(x), y) < F.cross_entropy(model(x[inside]), y[inside]) - 0.3
    with pytest.raises(AdvisorError, match="no candidate trains"):
        advise(model, nn.CrossEntropyLoss(), (x, y), val_data=(x[:50], y[:50]),
               optimizers=["adam"], steps=9, store=RunStore(tmp_path / "runs.db"))


def test_a_cross_entropy_with_options_is_scored_by_accuracy_and_a_sum_is_refused():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 8, generator=g)
    y = (x[:, 0] > 0).long()
    for loss in (nn.CrossEntropyLoss(), F.cross_entropy, nn.CrossEntropyLoss(label_smoothing=0.1),
                 nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0])),
                 functools.partial(F.cross_entropy, label_smoothing=0.1)):
        task = make_task(nn.Linear(8, 2), loss, (x, y))
        assert task.metric == "accuracy", loss
    # the options are kept: not the plain cross entropy's fast path
    assert make_task(nn.Linear(8, 2), nn.CrossEntropyLoss(label_smoothing=0.1), (x, y)).loss \
        != "cross_entropy"
    assert make_task(nn.Linear(8, 2), nn.MSELoss(), (x, x[:, :2])).metric == "loss"
    # a summed loss would make the validation loss a sum (and the rates another loss's)
    for loss, target in ((nn.CrossEntropyLoss(reduction="sum"), y),
                         (functools.partial(F.cross_entropy, reduction="sum"), y),
                         (nn.MSELoss(reduction="sum"), x[:, :2])):
        with pytest.raises(AdvisorError, match="reduction='sum': the advisor needs the mean"):
            make_task(nn.Linear(8, 2), loss, (x, target))


def test_another_loss_on_the_same_model_and_data_is_another_sweep(tmp_path):
    """The stored sweeps hold the loss: advising with another loss trains again instead of
    reading back the first loss's runs; the same loss again reads them back."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 8, generator=g)
    y = (x[:, 0] > 0).long()
    model = nn.Linear(8, 2)
    store = RunStore(tmp_path / "runs.db")
    kw = dict(optimizers=["adam"], steps=9, seeds=1, store=store)
    first = advise(model, nn.CrossEntropyLoss(label_smoothing=0.1), (x, y), **kw)
    ticks = []
    other = advise(model, nn.CrossEntropyLoss(label_smoothing=0.3), (x, y), progress=ticks.append,
                   **kw)
    assert ticks and not set(first.sweep_ids) & set(other.sweep_ids)
    assert first.answer_sweep_id != other.answer_sweep_id
    assert other.runs_read_back == 0 and other.runs_trained == first.runs_trained
    same = advise(model, nn.CrossEntropyLoss(label_smoothing=0.3), (x, y), **kw)
    assert same.runs_trained == 0 and same.sweep_ids == other.sweep_ids
    # what tells losses apart
    from optimlab.bench.advisor import loss_description

    assert "label_smoothing=0.1" in loss_description(nn.CrossEntropyLoss(label_smoothing=0.1))
    assert loss_description(nn.CrossEntropyLoss(weight=torch.ones(2))) != \
        loss_description(nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0])))
    squared, absolute = (lambda o, t: ((o - t) ** 2).mean()), (lambda o, t: (o - t).abs().mean())
    assert loss_description(squared) != loss_description(absolute)
    assert loss_description(F.l1_loss).startswith("torch.nn.functional.l1_loss")
    assert loss_description("cross_entropy") == "cross_entropy"


def test_member_steps_are_weighted_by_the_optimizers_work(tmp_path):
    """An L-BFGS step evaluates the closure up to 20 times: it counts its work weight in the
    plan's budget and in the compute spent, not one member-step."""
    store = RunStore(tmp_path / "runs.db")
    advice = advise_task(_linear_task(), optimizers=["lbfgs"], steps=3, batch_size=32,
                         seeds=1, store=store)
    trained = _trained_member_steps(store, advice.sweep_ids)
    lbfgs_runs = sum(r.optimizer == "lbfgs" and r.status != "failed"
                     for s in advice.sweep_ids for r in store.list_runs(s))
    assert lbfgs_runs and advice.steps_spent >= lbfgs_runs * 3 * work_weight("lbfgs")
    assert advice.steps_spent == trained <= advice.plan.cost(["lbfgs", "adam"])
    full = plan(27, 2)
    assert full.cost(["momentum", "adam"]) == full.cost(2)
    heavy = work_weight("lbfgs") - 1
    assert heavy > 10
    assert full.cost(["lbfgs", "adam"]) >= full.cost(2) + heavy * len(full.range_lrs) * \
        full.range_steps
    # a budget that the unweighted plan fits is too small once L-BFGS is weighted
    assert plan(27, 2, full.cost(2)) == full
    with pytest.raises(AdvisorError, match="too small"):
        plan(27, ["lbfgs", "adam"], full.cost(2))


def test_finalists_that_all_raised_are_reported_with_the_first_error(tmp_path, monkeypatch):
    """Every final-rung run raises (simulated: the final rung's records say so): the error
    quotes the first one, as the range test does, rather than saying they diverged."""
    train = advisor._Run.train

    def final_rung_fails(self, label, horizon, members, **kwargs):
        records = train(self, label, horizon, members, **kwargs)
        if label.startswith("rung") and horizon == 9:
            return [{**r, "status": "failed", "diverged": True, "metric": math.nan,
                     "score": math.nan, "error": "RuntimeError: CUDA out of memory"}
                    for r in records]
        return records

    monkeypatch.setattr(advisor._Run, "train", final_rung_fails)
    with pytest.raises(AdvisorError, match=r"every finalist raised an error on task 'linear' "
                                           r"at 9 steps; the first error: RuntimeError: CUDA "
                                           r"out of memory"):
        advise_task(_linear_task(), optimizers=["adam"], steps=9, batch_size=32, seeds=1,
                    store=RunStore(tmp_path / "runs.db"))


def test_arguments_are_checked_before_anything_trains(tmp_path):
    x, y = _regression(64)
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(ValueError, match="optimizers is empty"):
        candidates([])
    with pytest.raises(ValueError, match="optimizers is empty"):
        advise(nn.Linear(8, 1), nn.MSELoss(), (x, y), optimizers=[], steps=9, store=store)
    with pytest.raises(ValueError, match="registry names"):
        candidates([3])
    assert candidates("adam") == ["adam"] and candidates("lion") == ["lion", "adam"]
    for name, value in (("steps", True), ("seeds", True), ("budget", True),
                        ("batch_size", True), ("steps", 9.0)):
        with pytest.raises(ValueError, match=f"{name} must be"):
            advise(nn.Linear(8, 1), nn.MSELoss(), (x, y), optimizers=["adam"], store=store,
                   **{"steps": 9, name: value})
        with pytest.raises(ValueError, match=f"{name} must be"):
            advise_task(_linear_task(), optimizers=["adam"], store=store,
                        **{"steps": 9, name: value})
    for kwargs, message in (({"executor": 5}, r"^executor must be an executor of "),
                            ({"on_stage": 5}, r"^on_stage must be a callable"),
                            ({"task": 5}, r"^task must be a task's name \(optimlab\.bench\.tasks\."
                                          r"names\(\)\), 'package\.module:function' or a Task, got int")):
        # AttributeErrors and a bare "'int' object is not callable" until the forty-first session
        with pytest.raises(TypeError, match=message):
            advise_task(**{"task": _linear_task(), "optimizers": ["adam"], "store": store,
                           "steps": 9, **kwargs})
    with pytest.raises(ValueError, match="steps must be"):
        plan(True, 2)
    with pytest.raises(ValueError, match="seeds must be"):
        plan(27, 2, seeds=False)
    with pytest.raises(KeyError):  # nothing was stored
        store.sweep(1)


def test_a_loss_class_given_for_a_loss_is_said_so(tmp_path):
    """advise(model, nn.CrossEntropyLoss, ...) (the class, no parentheses) said "the model
    ... rejects its data: RuntimeError: Boolean value of Tensor ..."."""
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    with pytest.raises(AdvisorError, match=r"^loss_fn is the class CrossEntropyLoss, not a "
                                           r"loss: pass an instance, CrossEntropyLoss\(\)$"):
        advise(nn.Linear(4, 2), nn.CrossEntropyLoss, (x, y), optimizers=["adam"], steps=9,
               store=RunStore(tmp_path / "runs.db"))
    with pytest.raises(AdvisorError, match=r"^loss_fn must be callable"):
        advise(nn.Linear(4, 2), None, (x, y), optimizers=["adam"], steps=9,
               store=RunStore(tmp_path / "runs.db"))


def test_the_callers_random_state_is_left_alone(tmp_path):
    x, y = _regression(64)
    model, store = nn.Linear(8, 1), RunStore(tmp_path / "runs.db")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    advise(model, nn.MSELoss(), (x, y), optimizers=["adam"], steps=9, seeds=1, store=store)
    assert torch.equal(torch.rand(3), expected)  # the caller's stream, as if nothing ran


# -- labels, shuffled loaders and float64 models ---------------------------------------------

def test_int8_labels_are_class_labels_and_bool_labels_are_refused():
    """int8 labels were left out of the integer dtypes: the metric became "loss" and the
    cross entropy failed later in an error blaming the model. bool labels are refused with
    what to pass instead."""
    x, _ = _regression(40)
    y = (x[:, 0] > 0).long()
    for dtype in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64):
        task = make_task(nn.Linear(8, 2), nn.CrossEntropyLoss(), (x, y.to(dtype)))
        assert task.metric == "accuracy" and task.loss == "cross_entropy", dtype
        assert task.y_train.dtype == torch.int64 and task.y_test.dtype == torch.int64
    with pytest.raises(AdvisorError, match=r"^the targets of train_data are bool: pass y.long\(\) "
                                           r"for class labels .* or y.float\(\)"):
        make_task(nn.Linear(8, 2), nn.CrossEntropyLoss(), (x, y.bool()))
    with pytest.raises(AdvisorError, match=r"^the targets of val_data are bool"):
        make_task(nn.Linear(8, 2), nn.CrossEntropyLoss(), (x, y), (x[:5], y[:5].bool()))


def test_a_shuffled_dataloader_is_read_in_the_same_order_every_time():
    """advise(model, loss, DataLoader(ds, shuffle=True)) read the loader in its shuffled
    order: the held-out split and the data digest changed on every call (other advice, and
    nothing read back from the store). The loader's dataset is read in order, with its
    collate_fn and batch size."""
    x, y = _regression(50)
    dataset = torch.utils.data.TensorDataset(x, y)
    seen = []

    def collate(batch):
        seen.append(len(batch))
        return torch.utils.data.default_collate(batch)

    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, collate_fn=collate)
    first = make_task(nn.Linear(8, 1), nn.MSELoss(), loader)
    torch.manual_seed(1)  # another shuffle, were it used
    second = make_task(nn.Linear(8, 1), nn.MSELoss(), loader)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(first, key), getattr(second, key)), key
    assert seen == [16, 16, 16, 2] * 2  # the loader's collate_fn and batch size
    in_order = make_task(nn.Linear(8, 1), nn.MSELoss(), (x, y))
    assert torch.equal(first.x_train, in_order.x_train)
    assert torch.equal(first.x_test, in_order.x_test)
    # a SubsetRandomSampler: its examples, in order
    subset = torch.utils.data.DataLoader(
        dataset, batch_size=8, sampler=torch.utils.data.SubsetRandomSampler([7, 3, 40, 12]))
    picked = advisor._tensors(subset, "train_data")
    assert torch.equal(picked[0], x[[3, 7, 12, 40]]) and torch.equal(picked[1], y[[3, 7, 12, 40]])
    assert torch.equal(advisor._tensors(subset, "train_data")[0], picked[0])


def test_a_float64_model_takes_float64_data():
    """make_task made the inputs float32 whatever the model: a .double() model failed with
    "mat1 and mat2 must have the same dtype". The inputs take the dtype of the model's
    parameters when they are all one floating dtype; float32 otherwise."""
    x, _ = _regression(60)
    y = (x[:, 0] > 0).long()
    task = make_task(nn.Linear(8, 2).double(), nn.CrossEntropyLoss(), (x.double(), y))
    assert task.x_train.dtype == torch.float64 and task.x_test.dtype == torch.float64
    assert make_task(nn.Linear(8, 2).double(), nn.CrossEntropyLoss(), (x, y)).x_train.dtype \
        == torch.float64
    assert make_task(nn.Linear(8, 2), nn.CrossEntropyLoss(), (x.double(), y)).x_train.dtype \
        == torch.float32
    mixed = nn.Sequential(nn.Linear(8, 2), nn.Linear(2, 2).double())
    assert make_task(mixed, nn.CrossEntropyLoss(), (x.double(), y)).x_train.dtype == torch.float32
    advice = advise(nn.Linear(8, 2).double(), nn.CrossEntropyLoss(), (x.double(), y),
                    optimizers=["adam"], steps=10, seeds=1)
    assert advice.metric["name"] == "accuracy" and 0 <= advice.metric["value"] <= 1


# -- defects found by the second audit --------------------------------------------------------

def _mlp(batch_norm: bool = False) -> nn.Module:
    torch.manual_seed(1)
    middle = [nn.BatchNorm1d(16)] if batch_norm else []
    return nn.Sequential(nn.Linear(8, 16), *middle, nn.ReLU(), nn.Linear(16, 2))


def _labels(n: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] > 0).long()


@pytest.mark.parametrize("batch_norm", [False, True], ids=["population", "sequential"])
def test_a_frozen_layer_stays_frozen_and_is_another_sweep(batch_norm, tmp_path):
    """Layer 0 frozen: the population engine trained it anyway (the same advice as
    unfrozen, read back from the store), the sequential engine (BatchNorm) failed every run
    ("One of the differentiated Tensors does not require grad")."""
    x, y = _labels()
    model, store = _mlp(batch_norm), RunStore(tmp_path / "runs.db")
    kw = dict(optimizers=["adam"], steps=9, seeds=1, store=store)
    free = advise(model, nn.CrossEntropyLoss(), (x, y), **kw)
    model[0].requires_grad_(False)
    frozen = advise(model, nn.CrossEntropyLoss(), (x, y), **kw)
    assert frozen.runs_failed == 0 and frozen.runs_read_back == 0 and frozen.runs_trained > 0
    assert not set(frozen.sweep_ids) & set(free.sweep_ids)
    assert frozen.range_tests["adam"].losses != free.range_tests["adam"].losses
    assert model[0].weight.requires_grad is False  # the user's model is left as it was


def test_the_final_rung_trains_seeds_the_earlier_stages_did_not(tmp_path):
    """The final rung reused seeds 0 and 1, on which the early rungs had chosen the
    finalists; and every figure is on the validation set, which the answer says."""
    store = RunStore(tmp_path / "runs.db")
    advice = advise_task(_linear_task(), optimizers=["momentum", "adam"], steps=27,
                         batch_size=32, seeds=2, store=store)
    early = {r.seed for s in advice.sweep_ids[:-1] for r in store.list_runs(s)}
    final = {r["seed"] for r in advice.final_records}
    assert early == {0, 1} and final == set(advice.plan.final_seeds) == {2, 3}
    assert [r["seed_list"] for r in advice.rungs[:-1]] == [[0, 1]] * (len(advice.rungs) - 1)
    assert advice.rungs[-1]["seed_list"] == [2, 3] and len(advice.rungs) >= 2
    answer = advice.to_json()
    assert "validation" in answer["metric"]["set"] and answer["final_seeds"] == [2, 3]
    assert "validation loss" in advice.statement and "validation loss" in str(advice)


def test_a_rate_at_the_edge_of_the_search_is_flagged(tmp_path):
    """Targets of size 1000 x a sum: Adam's loss still falls at lr=10, the top of the range
    test and of its final rates; the answer recommended it without a word."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 20, generator=g)
    torch.manual_seed(0)
    advice = advise(nn.Linear(20, 1), nn.MSELoss(), (x, 1000 * x.sum(1, keepdim=True)),
                    optimizers=["adam"], steps=27, store=RunStore(tmp_path / "runs.db"))
    assert advice.hparams["lr"] == 10.0
    assert advice.edge == {"range_test": "top", "final_rung": "top"}
    assert advice.range_tests["adam"].edge == "top"
    assert "At the edge of the search: the range test's suggestion (10) is the top of its " \
           "grid and lr=10 is the highest of adam's rates in the final rung; a higher rate " \
           "may do better" in advice.statement
    answer = advice.to_json()
    json.dumps(answer, allow_nan=False)  # strict JSON as it is (no Infinity, tuples as lists)
    assert isinstance(answer["plan"]["range_lrs"], list)
    assert answer["edge"]["range_test"] == "top" and answer["range_tests"]["adam"]["edge"] == "top"
    assert answer["candidates"][0]["range_edge"] == answer["candidates"][0]["final_edge"] == "top"
    assert RangeTest("adam", LRS, [1.0] * 8, 2.0, 1e-3, None, None, 10.0).edge is None


def test_seeds_that_repeat_one_run_are_trained_once_and_said_so(tmp_path):
    """A batch of 500 on 40 training examples is the full batch; from the model's own
    weights every seed is one run: "accuracy 0.6 ± 0 (3 seeds)" at 3x the compute, and the
    batch stored as 500."""
    x, y = _labels(50)
    store = RunStore(tmp_path / "runs.db")
    with pytest.warns(advisor.AdvisorWarning, match=r"^the validation data held out of "
                      r"train_data \(val_data=None: 20% of it\) holds 10 examples, fewer than "
                      r"100: .* 0.5/sqrt\(10\) = 0.16"):
        advice = advise(_mlp(), nn.CrossEntropyLoss(), (x, y), optimizers=["adam"], steps=27,
                        batch_size=500, store=store)
    assert advice.seeds_repeat.startswith("full batch from the model's own initial weights")
    assert advice.plan.seeds == advice.plan.early_seeds == 1 and advice.metric["seeds"] == 1
    assert advice.batch_size is None and advice.validation_examples == 10
    assert all(store.sweep(s)["config"]["train"]["batch_size"] is None for s in advice.sweep_ids)
    assert "(no spread: the seeds repeat one run" in advice.statement
    assert "± 0" not in str(advice) and "no spread: the seeds repeat one run" in str(advice)
    # dropout draws from the seed: seeds differ, even at full batch from given weights
    task = make_task(nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 2)),
                     nn.CrossEntropyLoss(), (x, y))
    assert advisor._seeds_repeat(task, None, None) is None
    assert advisor._seeds_repeat(make_task(_mlp(), nn.CrossEntropyLoss(), (x, y)), None, 20) \
        is None
    # after the fact: seeds that ended identically on every arm
    rec = {"optimizer": "adam", "lr": 0.1, "metric": 0.6, "final_train_loss": 0.5,
           "diverged": False}
    assert advisor._repeated_seeds([rec, {**rec, "seed": 1}])
    assert not advisor._repeated_seeds([rec, {**rec, "metric": 0.65}])


def _advised_within_the_plans_cost(tmp_path, seeds: int):
    """Momentum and Adam advised on the linear task (27 steps) under a budget of exactly
    the plan's own cost: the advice and that budget."""
    names = candidates(["momentum", "adam"])
    budget = plan(27, names, seeds=seeds).cost(names)
    advice = advise_task(_linear_task(), optimizers=["momentum", "adam"], steps=27,
                         batch_size=32, seeds=seeds, budget=budget,
                         store=RunStore(tmp_path / "runs.db"))
    return advice, budget


def test_a_tie_at_a_cut_is_broken_by_the_smaller_rate_within_the_budget(tmp_path, monkeypatch):
    """Arms tied at a cut all went on (8 of 8, then 17 arms in the final rung): 1,410
    member-steps spent under a budget of 876, the plan's own cost. The smaller rates go
    on, exactly as many as the plan counts, and the rest are out, marked so."""
    scores = advisor._arm_scores  # every early-rung arm (seeds 0 and 1) scores the same
    monkeypatch.setattr(advisor, "_arm_scores", lambda records, higher: {
        a: 1.0 for a in scores(records, higher)} if records[0]["seed"] < 2 and
        len({r["optimizer"] for r in records}) > 1 else scores(records, higher))
    monkeypatch.setattr(advisor, "_clear_leader", lambda *a: False)
    advice, budget = _advised_within_the_plans_cost(tmp_path, seeds=2)
    assert advice.steps_spent <= budget
    first = advice.rungs[0]["arms"]
    assert len(first) == 8
    went = [a for a in first if a["then"] == "went on (tied at the cut: a smaller rate)"]
    out = [a for a in first if a["then"] == "out (tied at the cut: a larger rate)"]
    assert len(went) == 3 and max(a["lr"] for a in went) <= min(a["lr"] for a in out)
    assert {a["then"] for a in first} - {"went on as tuned Adam (the reference)"} == \
        {"went on (tied at the cut: a smaller rate)", "out (tied at the cut: a larger rate)"}
    assert len(advice.rungs[1]["arms"]) <= 4  # the 3 kept and tuned Adam


def test_a_clear_leader_skips_with_no_more_arms_than_the_plan_costed(tmp_path, monkeypatch):
    """A clear leader after the first rung took its best third (3 arms) and tuned Adam,
    doubled by the lower rates, straight to the final rung, where the plan had costed the
    fewer arms left after the rung it skipped: 1,806 member-steps under a budget of 1,740."""
    monkeypatch.setattr(advisor, "_clear_leader", lambda *a: True)
    advice, budget = _advised_within_the_plans_cost(tmp_path, seeds=6)
    assert len(advice.rungs) == 2 and advice.rungs[0]["clear_leader"]
    assert advice.steps_spent <= budget


def test_the_answer_in_words_says_its_set_selected_it(tmp_path):
    advice = advise_task(_linear_task(), optimizers=["adam"], steps=9, batch_size=32, seeds=2,
                         store=RunStore(tmp_path / "runs.db"))
    assert "steps; on the set that selected it, so optimistic)" in str(advice).splitlines()[0]
    # a notebook shows the words as the cell's value, not the repr of every field (9 KB)
    shown = []
    advice._repr_pretty_(type("Printer", (), {"text": lambda self, t: shown.append(t)})(), False)
    assert shown == [str(advice)]


def test_one_seed_says_no_comparison_and_caps_the_early_seeds(tmp_path):
    assert plan(27, 2, seeds=1).early_seeds == 1 and plan(27, 2, seeds=1).final_seeds == range(1, 2)
    advice = advise_task(_linear_task(), optimizers=["momentum", "adam"], steps=27,
                         batch_size=32, seeds=1, store=RunStore(tmp_path / "runs.db"))
    assert all(r["seeds"] == 1 for r in advice.rungs)
    assert "one seed: no comparison possible" in advice.statement
    assert "over 1 seeds" not in advice.statement and "interval" not in advice.statement.split(
        "no comparison possible")[0]


def test_float_rounding_is_the_same_not_a_difference():
    """"9.93e-09 lower accuracy" and "the same accuracy than"."""
    from optimlab.bench.analysis import OptimizerSummary

    assert difference_words(-9.93e-09, "accuracy", True, scale=0.926) == "the same accuracy"
    assert advisor.versus_words(0.0, "accuracy", True, "tuned Adam") == \
        "the same accuracy as tuned Adam"
    assert advisor.versus_words(0.05, "accuracy", True, "tuned Adam") == \
        "0.05 higher accuracy than tuned Adam"

    def summary(name, values):
        return OptimizerSummary(name, 0.01, float(np.mean(values)), 0.0, len(values), 0,
                                {0.01: float(np.mean(values))}, 0.01, None,
                                dict(enumerate(values)))

    pick = summary("adam", [0.9263888895511627, 0.93, 0.92])
    other = summary("adamw", [0.9263888895511627 + 9.93e-09, 0.93, 0.92])
    assert advisor._versus(pick, None, True, other)["better_by"] == 0.0


def test_a_reference_that_diverged_on_a_seed_is_stated_not_left_out():
    """Adam at its default rate diverged on one seed of three: the paired difference is not
    finite and the statement left the comparison out; it now says so, in the statement and
    the report's table."""
    from optimlab.bench.advice_report import _versus_rows
    from optimlab.bench.analysis import OptimizerSummary

    def summary(name, values):
        finite = [v for v in values if math.isfinite(v)]
        return OptimizerSummary(name, 0.01, float(np.mean(values)), 0.0, len(values), 0,
                                {0.01: float(np.mean(finite))}, 0.01, None,
                                dict(enumerate(values)))

    pick = summary("sgd", [0.9, 0.91, 0.92])
    adam = summary("adam", [0.8, -math.inf, 0.82])
    versus = advisor._versus(pick, None, True, adam)
    assert versus["better_by"] is None and versus["reference_diverged"] == 1
    assert versus["seeds"] == 3
    advice = SimpleNamespace(versus={"adam_default": versus}, optimizer="sgd",
                             metric={"name": "accuracy", "value": pick.mean,
                                     "higher_is_better": True}, hparams={"lr": 0.01},
                             candidates=[{"status": "final"}], seeds_repeat=None, ties=[],
                             rungs=[], edge=None, range_tests={})
    assert advisor._statement(advice, pick) == \
        "sgd was the only candidate. Adam at its default lr diverged on 1 of 3 seeds (lr=0.01)."
    rows = _versus_rows(advice)
    assert rows[0][0] == "Adam at its default lr" and rows[0][3] == "diverged on 1 of 3 seeds"


@pytest.mark.parametrize("train, val, message", [
    ("x", ("x7", "y"), r"^val_data and train_data differ in their inputs' shape: val_data "
                       r"\[50, 7\], train_data \[120, 8\]"),
    ("x", ("x", "y5"), r"^val_data holds the label 5 \(example 7\) but the model has 2 outputs"),
    ("y150", None, r"^train_data holds the label 5 but the model has 2 outputs: labels must be "
                   r"0 \.\. 1"),
])
def test_data_the_model_cannot_take_are_refused_naming_the_argument(train, val, message,
                                                                   monkeypatch):
    """A validation set of 7 features for 8 failed as a ValueError naming x_test; a label out of
    range past the first two examples, inside the range test as "no candidate can run"."""
    monkeypatch.setattr(advisor, "_advise_task", lambda *a, **k: pytest.fail("trained"))
    x, y = _labels()
    y150, y5 = y.clone(), y[:50].clone()
    y150[100], y5[7] = 5, 5
    data = {"x": (x, y), "y150": (x, y150), "x7": x[:50, :7], "y": y[:50], "y5": y5}
    train_data = data[train]
    val_data = None if val is None else (data[val[0]] if val[0] != "x" else x[:50], data[val[1]])
    with pytest.raises(AdvisorError, match=message):
        advise(nn.Linear(8, 2), nn.CrossEntropyLoss(), train_data, val_data, steps=9)


def test_targets_of_another_shape_than_the_output_are_refused_up_front(monkeypatch):
    monkeypatch.setattr(advisor, "_advise_task", lambda *a, **k: pytest.fail("trained"))
    x, _ = _regression(64)
    for loss in (nn.MSELoss(), nn.L1Loss(), F.mse_loss):
        with pytest.raises(AdvisorError, match=r"^train_data's targets are \[51\] but the "
                                               r"model's output for two examples is \[2, 1\]"
                                               r".*y.unsqueeze\(-1\)"):
            advise(nn.Linear(8, 1), loss, (x, x[:, 0]), steps=9)


def test_a_run_stored_without_a_score_is_ranked_by_its_final_metric():
    """Runs stored before the score existed come back with ``score: None``: the advisor
    scored them as diverged (the worst value), where the tables fall back to their final
    metric."""
    def rec(lr, seed, metric, score):
        return {"optimizer": "adam", "lr": lr, "seed": seed, "metric": metric,
                "score": score, "diverged": False}

    records = [rec(0.01, s, 0.9, None) for s in range(2)] + \
        [rec(0.1, s, 0.5, 0.5) for s in range(2)]
    scores = advisor._arm_scores(records, higher_is_better=True)
    assert scores == {("adam", 0.01): 0.9, ("adam", 0.1): 0.5}
    ordered = sorted(scores, key=lambda arm: -scores[arm])
    records = [rec(0.01, s, 0.9 + 0.01 * s, None) for s in range(2)] + \
        [rec(0.1, s, 0.5, 0.5) for s in range(2)]
    assert advisor._clear_leader(records, ordered, higher_is_better=True)


# ------------------------------------------------- the tournament's rules, one by one
# Each pins a rule a one-token mutant broke with no test failing; expected values by hand.


def _rec(name, lr, seed, score, diverged=False):
    return {"optimizer": name, "lr": lr, "seed": seed, "score": score, "metric": score,
            "diverged": diverged}


def test_a_diverged_arm_scores_worst_in_either_direction():
    from optimlab.bench.advisor import _arm_scores

    records = [_rec("adam", 0.1, 0, math.nan, diverged=True), _rec("adam", 0.1, 1, 0.9),
               _rec("sgd", 0.01, 0, 0.7), _rec("sgd", 0.01, 1, 0.7)]
    assert _arm_scores(records, True) == {("adam", 0.1): -math.inf, ("sgd", 0.01): 0.7}
    assert _arm_scores(records[:1], False) == {("adam", 0.1): math.inf}
    # the mean over seeds, not the median: [0.9, 0.9, 0.0] is 0.6, below a steady 0.7
    steady = [_rec("a", 0.1, s, v) for s, v in enumerate([0.9, 0.9, 0.0])] + \
        [_rec("b", 0.1, s, 0.7) for s in range(3)]
    assert _arm_scores(steady, True) == pytest.approx({("a", 0.1): 0.6, ("b", 0.1): 0.7})


def test_a_leader_is_clear_only_when_better_on_every_seed():
    from optimlab.bench.advisor import _clear_leader

    arms = [("a", 0.01), ("b", 0.1)]
    tie = [_rec("a", 0.01, 0, 0.9), _rec("a", 0.01, 1, 0.9),
           _rec("b", 0.1, 0, 0.9), _rec("b", 0.1, 1, 0.8)]
    assert not _clear_leader(tie, arms, True)  # a tie on seed 0 is no lead
    clear = [_rec("a", 0.01, 0, 0.9), _rec("a", 0.01, 1, 0.9),
             _rec("b", 0.1, 0, 0.8), _rec("b", 0.1, 1, 0.8)]
    assert _clear_leader(clear, arms, True)
    # an arm that diverged on one seed and beat the leader on the other still counts
    partly = [_rec("a", 0.01, 0, 0.9), _rec("a", 0.01, 1, 0.8),
              _rec("b", 0.1, 0, math.nan, diverged=True), _rec("b", 0.1, 1, 0.85)]
    assert not _clear_leader(partly, arms, True)
    # one seed is no evidence of a clear lead
    single = [_rec("a", 0.01, 0, 0.9), _rec("b", 0.1, 0, 0.8)]
    assert not _clear_leader(single, arms, True)


def test_the_range_test_rule_needs_a_rate_whose_own_run_ends_below_the_start():
    """By the smoothed loss first, the raw one second, and only rates whose own run ended
    below the initial loss 2.3 (1e-2 ends at 2.5: its smoothed loss is low, it is out)."""
    from optimlab.bench.advisor import suggest_lr

    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert suggest_lr(lrs, [2.0, 1.0, 2.5, 1.1, 2.2], 2.3) == 1e-3
    assert suggest_lr(lrs, [2.0, 1.0, 1.2, 0.9, 2.2], 2.3) == 1e-2
