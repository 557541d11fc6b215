"""What the exhibits refuse and how they word their results: one seed rule for every exhibit
that draws data, a tie in the ravine findings said as one, and a count of 1 in the singular
in the race header the command line prints."""

from __future__ import annotations

import re

import numpy as np
import pytest

from optimlab.cli import main
from optimlab.exhibits import DEMOS, run_demo

#: the exhibits that take a seed, with arguments that keep a good seed's run short
SEEDED = {"ema": {"n": 10}, "sparse": {"n": 20}, "gd-variants": {"n": 8, "epochs": 1},
          "saddle": {"steps": 2}}

#: check_int's rule, naming the upper bound only to an integer beyond it
SEED_RULE = "seed must be an integer >= 0, got "


#: the catalog commands' cache in a folder of this module's (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("catalog_cache")


def test_every_exhibit_with_a_seed_is_checked_here():
    import inspect

    seeded = {name for name, run in DEMOS.items() if "seed" in inspect.signature(run).parameters}
    assert seeded == set(SEEDED)


@pytest.mark.parametrize("name", sorted(SEEDED))
@pytest.mark.parametrize("seed, shown", [(1.5, "1.5"), ("x", "'x'"), (2**64, str(2**64)),
                                         (-1, "-1"), (True, "True"), (None, "None")])
def test_a_bad_seed_is_a_value_error_naming_seed(name, seed, shown):
    """ema, sparse and gd-variants handed the seed to torch.Generator.manual_seed: a float
    or a string was torch's RuntimeError ("manual_seed expected a long"), 2**64 an
    OverflowError-like ValueError without the argument's name, and -1 was taken. Each
    now names the argument, the rule and the value."""
    rule = "seed must be an integer in [0, 2**63), got " if seed == 2**64 else SEED_RULE
    with pytest.raises(ValueError, match=re.escape(rule + shown) + "$") as info:
        run_demo(name, seed=seed, **SEEDED[name])
    assert str(info.value).startswith("seed must be")


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_a_good_seed_runs_and_numpy_integers_count(name):
    a = run_demo(name, seed=np.int64(3), **SEEDED[name])
    b = run_demo(name, seed=3, **SEEDED[name])
    c = run_demo(name, seed=2**63 - 1, **SEEDED[name])  # the largest the rule takes
    assert a.table() == b.table() and c.table()


def test_equal_final_losses_up_to_rounding_are_a_tie_not_better():
    """At steps=0 every rule ends where it started, on both ravines: final losses 275 and
    275.0000000000001 (rounding in the turned coordinates) were called "better aligned"."""
    demo = run_demo("ill-conditioned", steps=0)
    lines = [line for line in demo.findings() if line.startswith("f<")]
    verdicts = [line.rsplit(": ", 1)[1] for line in lines if line.count(": ") == 2]
    assert verdicts and verdicts == ["the same on both"] * len(verdicts)
    assert not any("better" in line for line in lines)


def test_a_real_difference_is_still_called():
    demo = run_demo("ill-conditioned", steps=200)
    findings = "\n".join(demo.findings())
    assert "rmsprop in 8 steps" in findings
    assert [line for line in demo.findings() if line.startswith("f<0.001, axis-aligned vs "
                                                               "rotated: rmsprop")][0] \
        .endswith(": better aligned")


@pytest.mark.parametrize("steps, said", [("1", "1 step"), ("2", "2 steps")])
def test_race_header_says_one_step_in_the_singular(steps, said, capsys):
    assert main(["race", "rosenbrock", "--optimizers", "sgd", "--steps", steps]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == f"rosenbrock from (-1.2, 1), {said}"
