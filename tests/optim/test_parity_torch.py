"""Every optimizer torch also has must follow torch's path: float64 to 1e-10, float32 as
accurately as torch's own float32 run.

The reference runs torch's class on the plain loss; a ``maximize=True`` case runs optimlab on
the negated loss, which must give the identical path. optimlab runs its plain path, the rule
operation by operation as torch's code runs it, so on one machine the runs are bit for bit
the same (every case, both dtypes, on the 2-core Intel Xeon on 2026-12-06). The bounds
allow for a machine whose torch kernels round differently from one build to another:

- float64 to 1e-10 (relative): a rounding difference amplified over 300 steps as the worst
  case in float32 amplifies its (centered RMSprop started one ulp away ends 235 float32 ulps
  from the exact result, ``test_fused.py``) is 235 * 2.2e-16, about 5e-14: three orders
  below the bound, while a wrong coefficient moves the result by 1e-4 or more;
- float32: where the runs are not identical, optimlab's run must be as close to the exact
  result (torch's float64 run) as torch's float32 runs are, started at the point and one
  ulp either side of it (:func:`tests.problems.assert_as_accurate_as`).

The fused path (the default on CPU) is held to the plain one by ``test_fused.py`` the same
way.
"""

import pytest
import torch

from optimlab.optim.catalog import TABLE
from tests.optim.cases import CASES
from tests.problems import assert_as_accurate_as, assert_params_close, run_torch

STEPS = 300
TORCH_CASES = [
    pytest.param(case, case.checked_against, id=case.id)
    for info in TABLE
    for case in CASES[info.cls.__name__]
    if case.checked_against.startswith("torch.optim.")
]


def runs(case, reference: str, dtype, default_path: bool = False, ulps: int = 0):
    """Our run of ``case`` and torch's class ``reference`` (``torch.optim.X``), STEPS steps.
    Ours takes the plain path (``fused=False``), or with ``default_path`` the default one
    (fused on a CPU where the rule can be); ``ulps``: both start that many ulps away
    (:func:`tests.problems.nudge`)."""
    torch_cls = getattr(torch.optim, reference.removeprefix("torch.optim."))
    plain = {"fused": False} if case.capabilities.fusable and not default_path else {}
    ours = run_torch(lambda ps: case.build(ps, **plain), STEPS, dtype, case.shapes,
                     maximize=case.maximize, use_closure=case.needs_closure, ulps=ulps)
    theirs = run_torch(lambda ps: torch_cls(ps, **case.reference_hp()), STEPS, dtype,
                       case.shapes, use_closure=case.needs_closure,
                       sparse=case.capabilities.sparse_only, ulps=ulps)
    return ours, theirs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case, reference", TORCH_CASES)
def test_matches_torch(case, reference, dtype):
    ours, theirs = runs(case, reference, dtype)
    start = run_torch(case.build, 0, dtype, case.shapes)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(ours, start)), "did not move"
    if dtype == torch.float64:
        assert_params_close(ours, theirs, 1e-10)
    elif not all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True)):
        exact = runs(case, reference, torch.float64)[1]
        nudged = [runs(case, reference, dtype, ulps=n)[1] for n in (1, -1)]
        assert_as_accurate_as(ours, [theirs, *nudged], exact, ("optimlab run", "torch run"))
