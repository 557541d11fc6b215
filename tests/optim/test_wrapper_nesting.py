"""One wrapper inside another: what SAM and Lookahead take as the optimizer they wrap, read from
the capability records (``wraps``, ``needs_closure``), and what they say when they cannot."""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab.cli import main
from optimlab.optim.capabilities import Capabilities

WRAPPER_REFUSED = "SAM cannot wrap {}: it is a wrapper"


#: the catalog commands' cache in a folder of this module's (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("catalog_cache")


def test_sam_refuses_lookahead_as_its_base_optimizer():
    """SAM builds its base optimizer on its parameter groups; Lookahead is built on an
    optimizer instance, so it failed inside with "Lookahead wraps an optimizer instance,
    got list" (a TypeError about a list the caller never passed)."""
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=WRAPPER_REFUSED.format("Lookahead")):
        optimlab.SAM([w], base_optimizer=optimlab.Lookahead, lr=0.1)
    with pytest.raises(ValueError, match=WRAPPER_REFUSED.format("Lookahead")):
        optimlab.create("sam", [w], base_optimizer="lookahead")  # the registry's path


def test_the_refusal_is_read_from_the_capability_record_not_the_name():
    class Around(torch.optim.Optimizer):
        """A wrapper by its record alone, constructible on parameters."""

        capabilities = Capabilities(batching="member", wraps="inner")

        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

    with pytest.raises(ValueError, match=WRAPPER_REFUSED.format("Around")):
        optimlab.SAM([torch.zeros(2, requires_grad=True)], base_optimizer=Around, lr=0.1)


def test_race_hp_sam_over_lookahead_is_one_clear_line(capsys):
    argv = ["race", "booth", "--optimizers", "sam", "--hp", "sam:base_optimizer=lookahead",
            "--steps", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("optimlab: error: --hp sam: " + WRAPPER_REFUSED.format("Lookahead"))
    assert "got list" not in err[0]


def test_race_hp_lookahead_over_sam_is_refused_the_same_way(capsys):
    """The reverse: SAM's record says its step needs a closure, which Lookahead never
    has, so the constructor's check_inner refuses it, as it refuses L-BFGS."""
    for inner, cls in (("sam", "SAM"), ("lbfgs", "LBFGS")):
        argv = ["race", "booth", "--optimizers", "lookahead", "--hp", f"lookahead:inner={inner}",
                "--steps", "2"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"optimlab: error: --hp lookahead: Lookahead cannot wrap {cls}: its step "
                       "needs a closure, and Lookahead is stepped without one (wrap an optimizer "
                       "that steps on the gradient alone)")


def test_lookahead_over_lookahead_still_builds_and_steps():
    """Lookahead takes an optimizer instance, so one Lookahead inside another is fine (its
    state_dict prefixes the outer one's keys): the wrapper rule is SAM's alone."""
    w = torch.tensor([1.5, -2.0], requires_grad=True)
    opt = optimlab.create("lookahead", [w], inner="lookahead", lr=0.1)
    assert type(opt.optimizer) is optimlab.Lookahead
    for _ in range(10):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert float((w.detach() ** 2).sum()) < 1.5 ** 2 + 2.0 ** 2  # it descends


def test_lookahead_step_hands_its_optional_closure_to_the_inner_step_once():
    """As its docstring says: the closure is optional, and an inner optimizer that steps on
    the gradient alone calls it once and returns its loss."""
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = optimlab.Lookahead(optimlab.Adam([w], lr=0.1))
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 5.0 and len(calls) == 1
    assert "passes its closure to the inner optimizer" not in optimlab.Lookahead.__doc__
