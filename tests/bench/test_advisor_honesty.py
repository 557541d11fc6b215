"""The advisor says what it did: the edge sentence names the rates it tried beyond the pick,
an Adam that could not run is not called diverged (nor trained where it cannot run), equal
means are said to be equal with the rule that picked one, mistakes in the model's output
or labels are told with what to change, and a budget in seconds says what it prices.
Each test failed on the advisor before these fixes (the third audit)."""

import math
import re
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from optimlab.bench import advisor
from optimlab.bench.advice_report import _versus_rows
from optimlab.bench.advisor import AdvisorError, RangeTest, advise, advise_task, make_task, plan
from optimlab.bench.analysis import OptimizerSummary
from optimlab.bench.store import RunStore
from tests.bench.test_advisor import _labels, _linear_task

pytestmark = pytest.mark.filterwarnings("ignore::optimlab.bench.advisor.AdvisorWarning")

GRID = [10.0 ** (e / 2) for e in range(-12, 3)]  # the range test's 1e-6 .. 10, two a decade


def _summary(name, values, lr=0.01):
    finite = [v for v in values if math.isfinite(v)]
    return OptimizerSummary(name, lr, float(np.mean(values)), 0.0, len(values), 0,
                            {lr: float(np.mean(finite)) if finite else -math.inf}, 0.01, None,
                            dict(enumerate(values)))


def _advice(**fields):
    """What the statement and the edge sentence read of an :class:`Advice`."""
    base = dict(optimizer="lion", hparams={"lr": 0.01}, versus={}, ties=[], rungs=[],
                metric={"name": "accuracy", "value": 0.5, "higher_is_better": True},
                candidates=[{"optimizer": "lion", "status": "final", "metric": 0.5}],
                seeds_repeat=None, edge=None, range_tests={},
                plan=SimpleNamespace(range_steps=10))
    return SimpleNamespace(**{**base, **fields})


def _arm(name, lr, score, then="out"):
    return {"optimizer": name, "lr": lr, "score": score, "then": then}


# -- A: the edge sentence names what was tried beyond the pick ------------------------------

def test_a_higher_rate_cut_in_an_early_rung_is_named_not_said_untried():
    """``optimlab advise mnist1d --steps 90``: lion at 0.01, "the highest of lion's rates in
    the final rung; a higher rate may do better, and the advisor did not try one"; lion at
    0.0316 had scored 0.214 against 0.246 in rung 1 and was cut."""
    rungs = [{"horizon": 10, "seeds": 2, "arms": [_arm("lion", 0.01, 0.246, "went on"),
                                                 _arm("lion", 0.0316, 0.214)]},
             {"horizon": 30, "seeds": 2, "arms": [_arm("lion", 0.01, 0.305, "went on")]},
             {"horizon": 90, "seeds": 3, "arms": [_arm("lion", 0.01, 0.505, None),
                                                 _arm("lion", 0.00562, 0.48, None)]}]
    advice = _advice(rungs=rungs, edge={"range_test": None, "final_rung": "top"})
    sentence = advisor._edge_words(advice)
    assert "did not try" not in sentence
    assert sentence == (" At the edge of the search: lr=0.01 is the highest of lion's rates in "
                        "the final rung; the nearest higher rate the advisor tried, 0.0316, "
                        "scored worse in rung 1 (10 steps: 0.214 against 0.246 at lr=0.01) and "
                        "went no further.")
    # a loss: lower is better, so a higher score is worse
    loss = _advice(rungs=rungs, edge={"range_test": None, "final_rung": "top"},
                   metric={"name": "loss", "value": 0.5, "higher_is_better": False})
    assert "0.0316, scored better in rung 1" in advisor._edge_words(loss)
    assert "; a higher rate may do better" in advisor._edge_words(loss)


def test_a_higher_rate_that_did_not_train_in_the_range_test_is_named():
    """Momentum at lr=1 flagged at the top of its final rates, "the advisor did not try
    one", where the range test had tried 3.16 and it did not train (max_stable_lr 1)."""
    losses = [1.13] * 10 + [0.9, 0.7, 0.6, 1.33, math.inf]
    test = RangeTest("momentum", GRID, losses, 1.13, 0.316, None, None, 1.0)
    rungs = [{"horizon": 27, "seeds": 3, "arms": [_arm("momentum", 1.0, 0.78, None),
                                                 _arm("momentum", 0.562, 0.7, None)]}]
    advice = _advice(optimizer="momentum", hparams={"lr": 1.0}, rungs=rungs,
                     range_tests={"momentum": test}, edge={"range_test": None, "final_rung": "top"})
    sentence = advisor._edge_words(advice)
    assert "did not try" not in sentence
    assert sentence.endswith("; the nearest higher rate the advisor tried, 3.16, did not train "
                             "in the range test (10 steps: its loss ended at 1.33, not below "
                             "the initial 1.13).")
    # a rate beyond the grid's top was never tried: then, and only then, it is said so
    top = RangeTest("momentum", GRID, [1.0] * 15, 1.13, 10.0, None, None, 10.0)
    advice = _advice(optimizer="momentum", hparams={"lr": 10.0}, range_tests={"momentum": top},
                     rungs=[{"horizon": 27, "seeds": 3, "arms": [_arm("momentum", 10.0, 0.7)]}],
                     edge={"range_test": "top", "final_rung": "top"})
    assert advisor._edge_words(advice).endswith(
        "; a higher rate may do better, and the advisor did not try one.")


# -- B: a reference that raised could not run; it is not called diverged -------------------

def _failed(seed, lr=0.001):
    return {"optimizer": "adam", "lr": lr, "seed": seed, "metric": None, "score": None,
            "diverged": True, "status": "failed",
            "error": "RuntimeError: Adam does not support sparse gradients"}


def test_a_reference_whose_runs_raised_could_not_run_and_did_not_diverge():
    """"Adam at its default lr diverged on 3 of 3 seeds" where every run of it had raised
    "Adam does not support sparse gradients" (the candidates' table said "cannot run")."""
    pick = _summary("momentum", [0.5, 0.48, 0.51], lr=0.178)
    versus = advisor._versus(pick, [_failed(s) for s in range(3)], True)
    assert versus["reference_failed"] == 3 and versus["reference_diverged"] == 0
    assert versus["better_by"] is None
    assert versus["reference_error"] == "RuntimeError: Adam does not support sparse gradients"
    advice = _advice(optimizer="momentum", hparams={"lr": 0.178},
                     versus={"adam_default": versus})
    statement = advisor._statement(advice, pick)
    assert "diverged" not in statement
    assert statement.endswith("Adam at its default lr could not run on 3 of 3 seeds (lr=0.001; "
                              "RuntimeError: Adam does not support sparse gradients).")
    assert _versus_rows(advice)[0][3] == "could not run on 3 of 3 seeds"
    # one seed raised, one diverged: both said, apart
    diverged = {**_failed(1), "status": "diverged", "error": None}
    versus = advisor._versus(pick, [{**_failed(0), "metric": 0.3, "score": 0.3, "diverged": False,
                                     "status": "finished"}, diverged, _failed(2)], True)
    assert (versus["reference_failed"], versus["reference_diverged"]) == (1, 1)
    assert "could not run on 1 of 3 seeds and diverged on 1 of 3 seeds (lr=0.001; Runtime" in \
        advisor._statement(_advice(versus={"adam_default": versus}), pick)


class _Bag(nn.Module):
    """A sparse embedding (sparse gradients) and a linear head (dense ones)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 4, sparse=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.embed(x).mean(1))


def _bag_data(n=60):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 20, (n, 3), generator=g)
    return x, (x[:, 0] < 10).long()


def test_candidates_that_cannot_take_sparse_gradients_are_not_trained(tmp_path):
    """advise() ran Adam's 18 runs on a sparse embedding, every one raising; the command
    line refuses SparseAdam on a model of dense gradients before any run. Both are now
    "cannot run" before training, and the statement says why Adam is not compared."""
    x, y = _bag_data()
    store = RunStore(tmp_path / "runs.db")
    advice = advise(_Bag(), nn.CrossEntropyLoss(), (x, y), optimizers=["momentum"], steps=9,
                    seeds=1, store=store)
    assert advice.optimizer == "momentum" and advice.runs_failed == 0
    adam = next(c for c in advice.candidates if c["optimizer"] == "adam")
    assert adam["status"] == "cannot run"
    assert adam["error"].startswith("adam steps dense gradients only, and the model's sparse "
                                    "embedding (sparse=True) gives sparse ones")
    assert {r.optimizer for s in advice.sweep_ids for r in store.list_runs(s)} == {"momentum"}
    assert advice.versus == {"adam_default": None, "adam_tuned": None}
    assert "Adam could not run here: adam steps dense gradients only" in advice.statement
    assert "Adam at its default lr" not in advice.statement
    assert _versus_rows(advice)[0][3] == "could not run (the table above says why)"


def test_a_sparse_only_candidate_on_dense_gradients_is_refused_before_any_run(monkeypatch):
    monkeypatch.setattr(advisor._Run, "train", lambda *a, **k: pytest.fail("trained"))
    x, y = _bag_data()
    with pytest.raises(AdvisorError, match=r"^no candidate can run on task 'your model': "
                                           r"sparseadam: sparseadam takes sparse gradients only "
                                           r".* dense gradients to 2 of its 3 trained "
                                           r"parameters, so it was not run; adam: adam steps "
                                           r"dense gradients only"):
        advise(_Bag(), nn.CrossEntropyLoss(), (x, y), optimizers=["sparseadam"], steps=9)


# -- C: equal means are said to be equal, with the rule that picked one ---------------------

def test_equal_means_are_said_equal_and_the_tie_break_named():
    """"momentum has the best mean" where momentum and adam both had 0.7777777910232544, and
    the same paragraph said "the same validation accuracy as tuned Adam"."""
    momentum = _summary("momentum", [0.8, 0.7333333, 0.8])
    adam = _summary("adam", [0.8333333, 0.7, 0.8])
    adam = replace(adam, mean=momentum.mean)
    # the tie-break is the candidates' order, whichever the records listed first
    ranked = advisor._ranked([momentum, adam], True, ["adam", "momentum"])
    assert [s.optimizer for _, s in ranked] == ["adam", "momentum"]
    assert [label for label, _ in ranked] == ["=1", "=1"]
    # equal up to float32 rounding is equal too
    nudged = replace(adam, mean=momentum.mean * (1 + 1e-7))
    assert advisor._ranked([nudged, momentum], True, ["momentum", "adam"])[0][1] is momentum
    rows = [{"optimizer": "adam", "status": "final", "metric": adam.mean},
            {"optimizer": "momentum", "status": "final", "metric": momentum.mean}]
    advice = _advice(optimizer="adam", candidates=rows, ties=["momentum"])
    statement = advisor._statement(advice, adam)
    assert "best mean" not in statement
    assert statement.startswith("adam and momentum cannot be told apart here (validation "
                                "accuracy, paired 95% intervals over 3 seeds): pick either; "
                                "their means are equal, and adam comes first in the "
                                "candidates' order.")
    # one seed: no comparison, and no "best" of equal values either
    one = replace(adam, seeds=1)
    assert advisor._statement(advice, one).startswith(
        "adam and momentum have the same validation accuracy, the best of the 2 finalists "
        "(one seed: no comparison possible); adam comes first in the candidates' order.")


# -- E: common mistakes are told with what to change ---------------------------------------

class _Pair(nn.Module):
    def __init__(self, out="tuple"):
        super().__init__()
        self.linear, self.out = nn.Linear(8, 2), out

    def forward(self, x):
        logits = self.linear(x)
        return (logits, logits.sum()) if self.out == "tuple" else {"logits": logits}


@pytest.mark.parametrize("out, part", [("tuple", "[0]"), ("dict", "['logits']")])
def test_a_model_that_returns_a_tuple_or_dict_is_told_to_return_one_tensor(out, part,
                                                                           monkeypatch):
    """"rejects its data: AttributeError: 'tuple' object has no attribute 'reshape'"."""
    monkeypatch.setattr(advisor._Run, "train", lambda *a, **k: pytest.fail("trained"))
    x, y = _labels()
    with pytest.raises(AdvisorError, match=rf"^the model of task 'your model' returns a {out}, "
                                           r"not a tensor: its forward must return one tensor "
                                           r"of outputs \(the logits, for a cross entropy or "
                                           r"accuracy\); "
                                           r"wrap it in an nn.Module whose forward returns that "
                                           rf"tensor, e.g. return self.model\(x\){re.escape(part)}"):
        advise(_Pair(out), nn.CrossEntropyLoss(), (x, y), optimizers=["adam"], steps=9)
    # a loss of the user's own that reads the tuple is left alone (metric: the loss)
    task = make_task(_Pair(), lambda o, t: F.cross_entropy(o[0], t), (x, y))
    assert task.metric == "loss"
    advisor._check_trainable(task, None)


def test_float_labels_under_a_cross_entropy_are_told_to_pass_long(monkeypatch):
    """Bool labels got "pass y.long()"; float ones torch's "expected target dtype to be Long
    or Byte, but got Float"."""
    monkeypatch.setattr(advisor._Run, "train", lambda *a, **k: pytest.fail("trained"))
    x, y = _labels()
    with pytest.raises(AdvisorError, match=r"^the targets of task 'your model' are float32, but "
                                           r"a cross entropy takes class labels as integers: "
                                           r"pass y.long\(\) for class labels"):
        advise(nn.Linear(8, 2), nn.CrossEntropyLoss(), (x, y.float()), optimizers=["adam"],
               steps=9)
    # class probabilities of the output's shape are a cross entropy's float targets: fine
    task = make_task(nn.Linear(8, 2), nn.CrossEntropyLoss(), (x, F.one_hot(y, 2).float()))
    advisor._check_trainable(task, None)


# -- F: a budget in seconds says what it prices, and the advice how long it took ------------

def test_a_budget_in_seconds_says_it_prices_the_training_steps_alone(tmp_path):
    """``--budget 3s`` took 59 s: the seconds priced the training steps alone, and the
    docstring said the advisor "usually finishes well inside the seconds asked for"."""
    doc = " ".join(advisor.steps_for_seconds.__doc__.split())
    assert "well inside" not in doc and "The seconds price the training steps alone." in doc
    with pytest.raises(AdvisorError, match=r"about [\d.]+ s of training steps alone \(the "
                                           r"evaluations come on top"):
        plan(300, 6, 1000, seconds=2.0)
    advice = advise_task(_linear_task(), optimizers=["adam"], steps=9, batch_size=32, seeds=1,
                         store=RunStore(tmp_path / "runs.db"))
    assert advice.seconds > 0
    assert str(advice).splitlines()[-1] == \
        f"took {advice.seconds:.1f} s (training, evaluating and storing the runs)"


def test_the_code_names_a_registered_class_by_its_own_module():
    """A plugin's or the user's optimizer: the code said ``optimlab.SignPlug(...)``, which
    optimlab does not have; it names the class's own module, and a built-in stays
    ``optimlab.Adam``."""
    from types import SimpleNamespace

    import optimlab
    from optimlab.bench.advisor import Advice

    class MySign(optimlab.SGD):
        """SGD under a name of the user's."""

    optimlab.register(MySign, name="mysign_code")
    try:
        code = Advice.code.fget(SimpleNamespace(optimizer="mysign_code", hparams={"lr": 0.1}))
        assert f"# the same: {__name__}.test_the_code_names_a_registered_class_by_its_own_" \
               "module.<locals>.MySign(model.parameters(), lr=0.1)" in code, code
        code = Advice.code.fget(SimpleNamespace(optimizer="adam", hparams={"lr": 0.01}))
        assert "# the same: optimlab.Adam(model.parameters(), lr=0.01)" in code, code
    finally:
        optimlab.unregister("mysign_code")


def test_the_plan_is_sized_for_the_candidates_that_can_run(tmp_path):
    """Adam refused before training (a sparse embedding): a budget the one runnable
    candidate fits is taken (the plan was sized for both, and refused it as too small for
    two candidates; a review of the change that refuses them), and one candidate's budget
    that is too small is not told to name fewer."""
    from optimlab.bench.advisor import AdvisorError, plan

    least = None
    try:
        plan(9, ["momentum"], 1)
    except AdvisorError as err:
        least = int(re.search(r"the least this advisor spends is (\d+)", str(err)).group(1))
        assert "too small for 1 candidate at" in str(err) and "fewer" not in str(err), err
    assert least is not None
    x, y = _bag_data()
    store = RunStore(tmp_path / "runs.db")
    advice = advise(_Bag(), nn.CrossEntropyLoss(), (x, y), optimizers=["momentum"], steps=9,
                    budget=least, store=store)
    assert advice.optimizer == "momentum" and advice.steps_spent <= least
    # the report states the plan's cost for what it was sized for (it said 220, over the
    # budget, counting refused Adam)
    from optimlab.bench.advice_report import write_advice_report

    page = write_advice_report(advice, store, tmp_path / "out")["report"].read_text(encoding="utf-8")
    assert f"the plan allowed at most {advice.plan.cost(['momentum']):,}" in page
    assert advice.plan.cost(["momentum"]) <= least


def test_the_clear_column_against_tuned_adam_says_when_the_ranking_ties_the_two():
    """Four finalists over four seeds, all ranked =1 (the pairs held to 95% together), while
    the pick's pair with Adam alone excludes zero: the row showed that interval
    ([+0.00164, +0.0144]) beside "no" under a caption saying "clear: whether that interval
    excludes zero". The row now says why, and the caption says what clear holds to."""
    from optimlab.bench.advisor import _ranked, _versus_tuned
    from optimlab.bench.analysis import paired_difference, summarize

    lion = [0.93, 0.95, 0.94, 0.96]
    values = {"lion": lion, "adam": [v - d for v, d in zip(lion, (0.002, 0.01, 0.01, 0.01))],
              "rmsprop": [0.90, 0.97, 0.93, 0.95], "adagrad": [0.92, 0.96, 0.91, 0.955]}
    records = [{"optimizer": name, "lr": 0.01, "seed": seed, "metric": x, "score": x,
                "status": "finished"} for name, xs in values.items() for seed, x in enumerate(xs)]
    summaries = summarize(records, True)
    ranked = _ranked(summaries, True, list(values))
    by = {s.optimizer: s for s in summaries}
    best = ranked[0][1]
    ties = [s.optimizer for label, s in ranked if label == ranked[0][0] and s is not best]
    assert best.optimizer == "lion" and "adam" in ties
    assert paired_difference(by["lion"], by["adam"]).distinct  # the pair alone: apart
    versus = _versus_tuned(best, [r for r in records if r["optimizer"] == "adam"], True,
                           by["adam"], ties)
    assert versus["distinct"] is False and versus["tied_in_ranking"] is True
    advice = SimpleNamespace(metric={"name": "accuracy", "higher_is_better": True,
                                     "value": best.mean},
                             optimizer="lion", versus={"adam_default": None,
                                                       "adam_tuned": versus}, candidates=[])
    row = _versus_rows(advice)[1]
    assert row[0] == "tuned Adam" and row[-1] == "no: tied in the ranking"
    assert row[-2].startswith("[+") and "-" not in row[-2]  # the interval excludes zero
