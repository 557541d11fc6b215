"""Optimizers whose reference is a PyPI package's class match it, run live, in float64.

The packages (``prodigyopt``, ``dadaptation``, ``adam-mini``, ``pytorch_optimizer``, ...) are
pinned test dependencies; :mod:`tests.oracles.package_reference` maps each optimlab case to
the package's optimizer and says why wherever the agreement demanded is looser than 1e-10.
"""

from __future__ import annotations

import pytest
import torch

from optimlab.optim.catalog import TABLE
from tests.oracles import package_reference
from tests.problems import assert_params_close, initial_arrays

CASES = [pytest.param(case, id=case.id) for case in package_reference.cases()]
PACKAGES = tuple(sorted({m.package + "." for m in package_reference.MAPPINGS.values()}))


def test_every_package_reference_has_a_mapping():
    named = {info.cls.__name__: info.reference for info in TABLE
             if PACKAGES and info.reference.startswith(PACKAGES)}
    assert named == {name: m.name for name, m in package_reference.MAPPINGS.items()}
    for mapping in package_reference.MAPPINGS.values():
        assert issubclass(mapping.reference_class(), torch.optim.Optimizer), mapping.name


@pytest.mark.parametrize("case", CASES)
def test_matches_package(case):
    ours, theirs = package_reference.runs(case, torch.float64)
    start = initial_arrays(case.shapes)
    assert any(abs(b.numpy() - a).max() > 1e-3 for a, b in zip(start, theirs)), "did not move"
    assert_params_close(ours, theirs, package_reference.MAPPINGS[case.cls_name].rtol)


def test_prodigy_in_float16_fails_as_prodigyopt_does_and_not_in_bfloat16():
    """What Prodigy's docstring warns of: in float16 the second moment (d0^2 (1 - beta2)
    g^2 at the start) and d * eps underflow to zero, so the step divides by zero, in
    optimlab and in prodigyopt alike; bfloat16 (float32's exponent range) steps finitely."""
    prodigyopt = pytest.importorskip("prodigyopt")
    import optimlab
    from tests.problems import SHAPES, make_params, train_steps

    for cls in (optimlab.Prodigy, prodigyopt.Prodigy):
        finite = {}
        for dtype in (torch.float16, torch.bfloat16):
            params = make_params(dtype, SHAPES)
            train_steps(cls(params, lr=1.0, d0=1e-3), params, 3)
            finite[dtype] = all(bool(torch.isfinite(p).all()) for p in params)
        assert finite == {torch.float16: False, torch.bfloat16: True}, (cls, finite)


def _two_groups():
    torch.manual_seed(0)
    trained = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    frozen = torch.randn(5, dtype=torch.float64, requires_grad=True)
    return trained, frozen


@pytest.mark.parametrize("name", ["Prodigy", "DAdaptAdam", "DAdaptSGD"])
def test_a_group_with_lr_zero_is_frozen_as_in_the_package(name):
    """A param group with lr 0 (the packages accept it in a group dict; optimlab refused it)
    is left untouched while the other group trains, on the package's path."""
    import optimlab

    mapping = package_reference.MAPPINGS[name]
    pytest.importorskip(mapping.package)
    finals = []
    for build in (getattr(optimlab, name), mapping.build):
        trained, frozen = _two_groups()
        start = frozen.detach().clone()
        opt = build([{"params": [trained]}, {"params": [frozen], "lr": 0.0}], d0=1e-2)
        for _ in range(20):
            opt.zero_grad()
            (((trained - 1) ** 2).sum() + (frozen ** 2).sum()).backward()
            opt.step()
        assert torch.equal(frozen.detach(), start), build
        finals.append(trained.detach())
    assert (finals[0] - _two_groups()[0]).abs().max() > 1e-3  # the other group moved
    torch.testing.assert_close(finals[0], finals[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.0, 0.99)], ids=["momentum", "no-momentum"])
def test_a_prodigyopt_state_dict_continues_its_path_in_optimlab(betas):
    """Prodigy is a drop-in for prodigyopt.Prodigy, its checkpoints included: prodigyopt keeps
    a per-parameter ``step``, a 0-d ``p0`` for an all-zero tensor, and no ``exp_avg`` without
    momentum, which optimlab refused ("was this state_dict saved by a different
    optimizer?"). Loaded, the run continues as prodigyopt's own."""
    import copy

    import optimlab

    prodigyopt = pytest.importorskip("prodigyopt")

    def params():
        torch.manual_seed(0)
        return [torch.randn(4, 3, dtype=torch.float64, requires_grad=True),
                torch.zeros(3, dtype=torch.float64, requires_grad=True)]  # a 0-d p0

    def train(opt, ps, steps):
        for _ in range(steps):
            opt.zero_grad()
            sum(((p - 1) ** 2).sum() for p in ps).backward()
            opt.step()

    hp = dict(lr=1.0, betas=betas, d0=1e-3, slice_p=2)
    ref_params = params()
    ref = prodigyopt.Prodigy(ref_params, **hp)
    train(ref, ref_params, 5)
    assert ref.state[ref_params[1]]["p0"].dim() == 0
    saved = copy.deepcopy(ref.state_dict())
    ours_params = [p.detach().clone().requires_grad_() for p in ref_params]
    ours = optimlab.Prodigy(ours_params, **hp, growth_rate=None)
    ours.load_state_dict(saved)
    train(ref, ref_params, 10)
    train(ours, ours_params, 10)
    for a, b in zip(ours_params, ref_params):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert ours.param_groups[0]["d"] == pytest.approx(ref.param_groups[0]["d"], rel=1e-10)
