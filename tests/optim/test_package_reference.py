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
