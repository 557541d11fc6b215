"""Property tests over shapes, dtypes and hyperparameters (hypothesis).

For every optimizer in the case table: no crash and no NaN from finite input, and the same
result whether the parameters sit in one group or are split across groups.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.optim.cases import DENSE_CASES
from tests.problems import train_steps

dims = st.integers(1, 4)
any_shape = st.lists(dims, min_size=0, max_size=3).map(tuple)
matrix_shape = st.tuples(dims, dims)
dtypes = st.sampled_from([torch.float32, torch.float64])


def _loss(params, targets):
    return sum(((p - t) ** 2).sum() + 0.1 * (p**4).sum() for p, t in zip(params, targets))


def _run(case, groups_of, shapes, dtype, seed, lr_scale, steps=5):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
              for s in shapes]
    targets = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]
    hp = dict(case.hp)
    if "lr" in hp:
        hp["lr"] = hp["lr"] * lr_scale
    from tests.optim.cases import Case

    case = Case(case.cls_name, hp)
    groups = [{"params": params[i:j]} for i, j in groups_of(len(params))]
    if case.cls_name == "Lookahead":
        import optimlab

        name, inner_hp = hp["inner"]
        opt = optimlab.Lookahead(getattr(optimlab, name)(groups, **inner_hp), k=hp["k"],
                                 alpha=hp["alpha"])
    else:
        opt = case.build(groups)
    train_steps(opt, params, steps, -1.0 if case.maximize else 1.0, case.needs_closure,
                loss=lambda ps: _loss(ps, targets))
    return [p.detach() for p in params]


def _one_group(n):
    return [(0, n)]


def _split(n):
    return [(i, i + 1) for i in range(n)]


@pytest.mark.parametrize("case", [c for c in DENSE_CASES if not c.capabilities.single_group],
                         ids=lambda c: c.id)
@given(data=st.data(), dtype=dtypes, seed=st.integers(0, 2**16),
       lr_scale=st.sampled_from([0.1, 1.0, 3.0]))
def test_finite_and_group_split_invariant(case, data, dtype, seed, lr_scale):
    shape = matrix_shape if case.capabilities.needs_matrix else any_shape
    shapes = data.draw(st.lists(shape, min_size=1, max_size=3))
    together = _run(case, _one_group, shapes, dtype, seed, lr_scale)
    apart = _run(case, _split, shapes, dtype, seed, lr_scale)
    for a, b in zip(together, apart):
        assert torch.isfinite(a).all() and torch.isfinite(b).all()
        if not case.capabilities.group_coupled:  # a group-wide d changes when split
            assert torch.equal(a, b)
