"""Every optimizer torch also has must follow torch's path: float64 to 1e-10, float32 to 1e-5.

The reference runs torch's class on the plain loss; a ``maximize=True`` case runs optimlab on
the negated loss, which must give the identical path. optimlab runs its plain path, the rule
operation by operation as torch's code runs it; the fused path (the default on CPU) is held
to the plain one by ``test_fused.py``, in float32 within a bound derived from each run's own
rounding error.
"""

import pytest
import torch

from optimlab.optim.catalog import TABLE
from tests.optim.cases import CASES
from tests.problems import assert_params_close, run_torch

STEPS = 300
TORCH_CASES = [
    pytest.param(case, case.checked_against, id=case.id)
    for info in TABLE
    for case in CASES[info.cls.__name__]
    if case.checked_against.startswith("torch.optim.")
]


def runs(case, reference: str, dtype, default_path: bool = False):
    """Our run of ``case`` and torch's class ``reference`` (``torch.optim.X``), STEPS steps.
    Ours takes the plain path (``fused=False``), or with ``default_path`` the default one
    (fused on a CPU where the rule can be)."""
    torch_cls = getattr(torch.optim, reference.removeprefix("torch.optim."))
    plain = {"fused": False} if case.capabilities.fusable and not default_path else {}
    ours = run_torch(lambda ps: case.build(ps, **plain), STEPS, dtype, case.shapes,
                     maximize=case.maximize, use_closure=case.needs_closure)
    theirs = run_torch(lambda ps: torch_cls(ps, **case.reference_hp()), STEPS, dtype,
                       case.shapes, use_closure=case.needs_closure,
                       sparse=case.capabilities.sparse_only)
    return ours, theirs


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("case, reference", TORCH_CASES)
def test_matches_torch(case, reference, dtype, rtol):
    ours, theirs = runs(case, reference, dtype)
    start = run_torch(case.build, 0, dtype, case.shapes)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(ours, start)), "did not move"
    assert_params_close(ours, theirs, rtol)
