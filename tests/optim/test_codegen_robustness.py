"""The fused kernel generated from a user's rule (optimlab.optim.kernels) on unusual but
contract-conforming code: Python constants at the edges of float64, hyperparameters that are
ints, bools or 0-d tensors, selects, one-sided clamps, comparisons used as numbers, powers,
state and hyperparameter names that are C words. Each rule steps with ``fused=True`` exactly
as with ``fused=False`` (float64, where both compute the same operations), or within a bound
derived below, or is refused: ``fused=None`` steps on the plain path and ``fused=True`` says
why, never a crash from the code generator or the compiler.

Each test reuses one rule (one or two kernels to compile, a second or so each).
"""

from __future__ import annotations

import math

import pytest
import torch

from optimlab.optim import kernels
from optimlab.optim.base import RuleOptimizer
from optimlab.optim.capabilities import Capabilities
from optimlab.optim.rule import nonzero

F64 = torch.float64
EPS = torch.finfo(F64).eps


@pytest.fixture(autouse=True)
def _compiler():
    try:
        kernels.compiler()
    except kernels.CompilerUnavailable:
        pytest.skip("no C compiler")


def _rule(update, init=None, **defaults):
    """A registered-style rule class of ``update`` with ``defaults`` as its hyperparameters."""

    class Rule(RuleOptimizer):
        capabilities = Capabilities(fusable=True)

        def __init__(self, params, *, fused=None, **hp):
            super().__init__(params, {**defaults, **hp, "fused": fused, "maximize": False,
                                      "foreach": None})

    Rule.init = staticmethod(init or (lambda p, **_: {"m": torch.zeros_like(p)}))
    Rule.update = staticmethod(update)
    return Rule


def _steps(cls, fused, dtype=F64, steps=3, size=40, **hp):
    """``steps`` steps of two tensors (gradients with zeros, -0.0, a subnormal, big and small
    values); the parameters and the states after them."""
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(s, dtype=dtype, generator=gen).requires_grad_() for s in [(size,), (2, 3)]]
    opt = cls(params, fused=fused, **hp)
    for step in range(steps):
        grads = torch.Generator().manual_seed(100 + step)
        for p in params:
            g = torch.randn(p.shape, dtype=dtype, generator=grads) * 3
            if p.dim() == 1:
                g[:5] = torch.tensor([0.0, -0.0, 1e-310, -2.5, 4.0], dtype=dtype)
            p.grad = g
        opt.step()
    states = [{k: v.clone() for k, v in opt.state[p].items() if torch.is_tensor(v)} for p in params]
    return [p.detach().clone() for p in params], states


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit, NaN for NaN and the sign of every zero."""
    return a.dtype == b.dtype and a.shape == b.shape and bool(
        (((a == b) & (torch.signbit(a) == torch.signbit(b))) | (a.isnan() & b.isnan())).all())


def _assert_fused_is_plain(cls, dtype=F64, **hp):
    fused, fused_states = _steps(cls, True, dtype, **hp)
    plain, plain_states = _steps(cls, False, dtype, **hp)
    for i, (a, b) in enumerate(zip(fused, plain)):
        assert _same(a, b), f"parameter {i}: fused {a.flatten()[:8]} plain {b.flatten()[:8]}"
    for i, (sa, sb) in enumerate(zip(fused_states, plain_states)):
        assert sa.keys() == sb.keys()
        for key in sb:
            assert _same(sa[key], sb[key]), f"state[{key!r}] of parameter {i}"


def _assert_refused(cls, match, **hp):
    """``fused=True`` raises a RuntimeError saying why; ``fused=None`` steps as the plain path."""
    with pytest.raises(RuntimeError, match=match):
        _steps(cls, True, **hp)
    for a, b in zip(_steps(cls, None, **hp)[0], _steps(cls, False, **hp)[0]):
        assert _same(a, b)


# -- Python constants ---------------------------------------------------------------------------
_CONSTANTS = [math.inf, -math.inf, math.nan, -0.0, 1e-320, 1e308, 1 / 3, 2**60, 2**60 + 1, True,
              False, 0.1]


def _constants_update(p, g, state, *, lr, **_):
    # each constant used elementwise (in the loop) and in a per-tensor scalar (before it);
    # its own state entry keeps it exactly (the emitted literal must round-trip)
    for i, c in enumerate(_CONSTANTS):
        state[f"c{i}"] = g * 0.0 + c
    state["m"] = 0.5 * state["m"] + g * (1 / 3) + (g - 1e-320) * 1e308 + torch.where(
        g > 0, math.inf, -0.0) + g * 2**60 * (lr * 1e-300) + g * True
    big = 1e300 if g.dtype == torch.float64 else 3e38  # torch refuses to round 1e300 to float32
    return p - lr * (1 / 3) * torch.clamp(state["m"], -big, big)


def _constants_init(p, **_):
    return {"m": torch.zeros_like(p), **{f"c{i}": torch.zeros_like(p) for i in range(len(_CONSTANTS))}}


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["float64", "float32"])
def test_python_constants_at_the_edges_reach_the_kernel_exactly(dtype):
    """inf, -inf, nan, -0.0, a subnormal, 1e308, 1/3 (all 17 digits), 2**60 (and 2**60 + 1,
    rounded as torch rounds it), bools: the same bits on both paths, in both dtypes."""
    _assert_fused_is_plain(_rule(_constants_update, _constants_init, lr=0.1), dtype)
    _, (state, _) = _steps(_rule(_constants_update, _constants_init, lr=0.1), True, dtype)
    # g * 0.0 + (-0.0) is -0.0 where g < 0 (g[3] = -2.5), +0.0 had the literal lost its sign
    assert state["c3"][3].item() == 0 and torch.signbit(state["c3"][3])
    assert state["c6"][3].item() == float(torch.tensor(1 / 3, dtype=dtype))
    assert state["c4"][3].item() == float(torch.tensor(1e-320, dtype=dtype))


def test_the_emitted_literals_round_trip():
    """Every finite constant is written with all its digits (``repr``, which reads back to the
    same double), inf and nan by name."""
    from optimlab.optim.kernels.codegen import _literal

    for value in [1 / 3, -0.0, 1e-320, 5e-324, 1e308, 1.7976931348623157e308, 2**60, 2**60 + 1,
                  0.1, -2.5e-310]:
        text = _literal(value)
        assert float(text) == float(value) and math.copysign(1, float(text)) == math.copysign(
            1, float(value)), (value, text)
    assert _literal(math.inf) == "INFINITY" and _literal(-math.inf) == "(-INFINITY)"
    assert _literal(math.nan) == "NAN" and _literal(True) == "1" and _literal(False) == "0"


# -- hyperparameters: ints, bools, 0-d tensors ----------------------------------------------------
def _kinds_update(p, g, state, *, lr, k, flag, d, scale, **_):
    m = state["m"] = 0.5 * state["m"] + g * k + g / d  # d may be 0: inf and nan as torch
    if flag:  # a bool option: structural
        m = m * scale
    return p - lr * torch.clamp(m, min=-1e3)


@pytest.mark.parametrize("hp", [
    dict(lr=1, k=3, flag=True, d=0.0, scale=2),                      # ints, a zero divisor
    dict(lr=0.1, k=-2, flag=False, d=-0.0, scale=0.5),               # divided by -0.0
    dict(lr=torch.tensor(0.1, dtype=F64), k=torch.tensor(2.0, dtype=F64), flag=True,
         d=torch.tensor(4.0, dtype=F64), scale=3),                   # 0-d tensors
], ids=["ints", "negative zero", "tensors"])
def test_int_bool_and_tensor_hyperparameters(hp):
    _assert_fused_is_plain(_rule(_kinds_update, lr=0.1, k=1, flag=False, d=1.0, scale=1.0), **hp)


def _branch_update(p, g, state, *, lr, mu, nu, **_):
    if nonzero(mu):  # a tensor is "maybe nonzero" (rule.nonzero): this branch, whatever its value
        m = state["m"] = mu * state["m"] + g
        if nonzero(nu):
            return p - lr * (m + nu * g)
        return p - lr * m
    return p - 2 * lr * g


def test_a_tensor_hyperparameter_is_never_taken_for_zero():
    """``nonzero()`` says a tensor hyperparameter may be nonzero, so the plain path takes its
    nonzero branch even where the tensor holds 0. The kernel was specialised on the tensor's
    value being 0 (the other branch: -2.85 where the plain path gave -1.65), and kept that
    when the tensor was later set to 0.5 in place; a float ``nu`` behind it was then not
    specialised on being 0 either."""
    cls = _rule(_branch_update, lr=0.1, mu=0.0, nu=0.0)
    _assert_fused_is_plain(cls, mu=torch.tensor(0.0, dtype=F64), nu=0.0)

    def run(fused):
        mu = torch.tensor(0.0, dtype=F64)
        p = torch.linspace(-1, 1, 7, dtype=F64).requires_grad_()
        opt = cls([p], fused=fused, mu=mu, nu=0.0)
        for _ in range(3):
            p.grad = torch.linspace(0.5, 2, 7, dtype=F64)
            opt.step()
            mu.fill_(0.5)  # a schedule writing into the tensor
        return p.detach()

    assert _same(run(True), run(False))


def _named_init(p, **_):
    return {"m": torch.zeros_like(p), "lr": torch.tensor(1.0, dtype=F64)}


def _named_update(p, g, state, *, lr, **_):
    state["lr"] = state["lr"] * 0.5  # scalar state named as a hyperparameter
    state["m"] = g * state["lr"]
    return p - lr * state["m"]


def test_scalar_state_named_as_a_hyperparameter():
    """The kernel's scalar inputs were looked up by name, state and hyperparameters in one
    dict: state["lr"] read the hyperparameter lr (0.1, not 1.0)."""
    _assert_fused_is_plain(_rule(_named_update, _named_init, lr=0.1))


_WORDS = ["int", "float", "double", "restrict", "return", "i", "n", "t", "c", "p", "g", "lo", "hi",
          "keep", "pre", "out", "in", "nt", "NV", "CH", "b0", "v3", "s4", "r0", "größe", "λ"]


def _words_init(p, **_):
    return {**{w: torch.zeros_like(p) for w in _WORDS},
            **{w + "_": torch.tensor(0.5, dtype=F64) for w in _WORDS}}


def _words_update(p, g, state, **hp):
    total = g
    for i, w in enumerate(_WORDS):
        # ``p`` and ``g`` cannot be hyperparameters (update's own arguments): prefixed there
        name = "h_" + w if w in ("p", "g") else w
        state[w] = state[w] * 0.5 + g * hp[name]
        state[w + "_"] = state[w + "_"] * hp[name]
        total = total + state[w] * state[w + "_"] * (i + 1)
    return p - hp["lr"] * total


def test_state_and_hyperparameter_names_that_are_c_words():
    hp = {("h_" + w if w in ("p", "g") else w): 0.1 + 0.01 * i for i, w in enumerate(_WORDS)}
    _assert_fused_is_plain(_rule(_words_update, _words_init, lr=0.1, **hp))


# -- operations ---------------------------------------------------------------------------------
def _ops_update(p, g, state, *, lr, c, **_):
    a = g.abs()
    m = (torch.where(g > 0, 1.0, -0.5) + torch.where(g < -1, g, 0.0)    # scalar branches
         + torch.clamp(g, min=-0.5) + torch.clamp(g, max=c)              # one-sided clamps
         + (g > 0) * 2.0 + (g < 0) * g + ((g > 0) + (p > 0)).to(g.dtype) * c  # bools as numbers
         + a.sqrt() + g.sign() + (a + 1).rsqrt() + torch.exp(-a) + torch.log(a + 1)
         + torch.sqrt(g) * 0 + g.reciprocal() * 1e-3 + g.square()        # nan and inf too
         + torch.maximum(g, state["m"]) + torch.minimum(g, 0.5 * p))
    state["m"] = m
    return p - lr * m


def test_selects_clamps_comparisons_and_unary_functions():
    _assert_fused_is_plain(_rule(_ops_update, lr=0.01, c=0.7))


def _powers_update(p, g, state, *, lr, **_):
    a = g.abs()
    state["m"] = a**3 + a**-2 + a**-0.5 + a**-1 + a**0 + a**2 + a**1
    return p - lr * state["m"]


def test_constant_powers_round_as_torch():
    """torch computes ``x ** 3`` as ``x * x * x``, ``x ** -2`` as ``1 / (x * x)`` and
    ``x ** -0.5`` as ``1 / sqrt(x)``: the kernel called pow(), one ulp off in places."""
    _assert_fused_is_plain(_rule(_powers_update, lr=1e-3), size=2000)


def _other_powers_init(p, **_):
    return {k: torch.zeros_like(p) for k in "abcd"}


def _other_powers_update(p, g, state, **_):
    state["a"], state["b"], state["c"] = g.abs() ** 1.5, g.abs() ** (1 / 3), 2.0**g
    state["d"] = g.abs() ** 0.5  # the kernel's sqrt(); torch._foreach_pow's pow on a group
    return p


def test_other_powers_are_within_two_ulps():
    """Any other power is C's pow() in the kernel (glibc: within an ulp, nearly always
    correctly rounded) and torch's pow on the plain path: std::pow on a few elements, SLEEF's
    vectorized pow (within 1.0 ulp) on more. Two results each within an ulp of the exact
    power are within two ulps of each other: rtol 2 * eps, one step, nothing amplifies it."""
    cls = _rule(_other_powers_update, _other_powers_init, lr=0.0)
    fused = _steps(cls, True, size=2000, steps=1)[1]
    plain = _steps(cls, False, size=2000, steps=1)[1]
    for sf, sp in zip(fused, plain):
        for key in "abcd":
            torch.testing.assert_close(sf[key], sp[key], rtol=2 * EPS, atol=0, msg=key)


def _int_power_update(p, g, state, *, lr, k, **_):
    state["m"] = g**k
    return p - lr * state["m"]


def test_a_power_by_an_int_hyperparameter_is_within_two_ulps():
    """``g ** k`` with ``k = 3`` a hyperparameter: the plain path computes ``g * g * g`` (two
    roundings, within 2**-52 * 1.5 of the exact cube), the kernel, which takes ``k`` as an
    input, C's pow (within one ulp, correctly rounded on glibc). So each element of ``m`` is
    within 2.5 ulps of the other path's: rtol 3 * eps. One step, so nothing amplifies it;
    the parameter ``p - lr * m`` then differs by at most ``lr`` times that (atol)."""
    cls = _rule(_int_power_update, lr=0.1, k=3)
    (fused,), (fused_state,) = zip(*[(x[0], s[0]) for x, s in [_steps(cls, True, steps=1)]])
    (plain,), (plain_state,) = zip(*[(x[0], s[0]) for x, s in [_steps(cls, False, steps=1)]])
    m = plain_state["m"]
    torch.testing.assert_close(fused_state["m"], m, rtol=3 * EPS, atol=0)
    torch.testing.assert_close(fused, plain, rtol=EPS,
                               atol=float(0.1 * 3 * EPS * m.abs().max()) + EPS)


# -- constant tensors and dtypes the kernel does not take ----------------------------------------
def _tensor_constant_update(p, g, state, *, lr, **_):
    third = torch.tensor(1 / 3, dtype=F64)
    tenth = torch.tensor(0.1)  # float32, as torch.tensor makes it
    state["m"] = 0.5 * state["m"] + g * third + g * tenth
    return p - (lr * tenth) * state["m"]  # a float32 scalar, as on the plain path


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["float64", "float32"])
def test_a_zero_dim_constant_tensor_in_a_rule(dtype):
    """``torch.tensor(1/3)`` in a rule is a constant of the traced graph (a ``get_attr``
    node): the generator knew none, and the step crashed with KeyError '_tensor_constant0',
    fused=None included."""
    _assert_fused_is_plain(_rule(_tensor_constant_update, lr=0.1), dtype)


def _vector_constant_update(p, g, state, *, lr, **_):
    state["m"] = 0.5 * state["m"] + g * torch.tensor([2.0], dtype=g.dtype)
    return p - lr * state["m"]


def test_a_constant_tensor_with_a_shape_is_refused():
    _assert_refused(_rule(_vector_constant_update, lr=0.1), "constant tensor")


def _wide_state_init(p, **_):
    return {"m": torch.zeros_like(p, dtype=F64)}


def _wide_state_update(p, g, state, *, lr, **_):
    state["m"] = 0.9 * state["m"] + g
    return p - lr * state["m"]


def test_a_float64_state_beside_a_float32_parameter_is_refused():
    cls = _rule(_wide_state_update, _wide_state_init, lr=0.1)
    # the error says what stopped it: the state's dtype, not the parameter's
    with pytest.raises(RuntimeError, match=r"cannot fuse .*keep an entry of another dtype") as err:
        _steps(cls, True, torch.float32)
    assert "parameters of float32 or float64" not in str(err.value)
    for a, b in zip(_steps(cls, None, torch.float32)[0], _steps(cls, False, torch.float32)[0]):
        assert _same(a, b)


def _bool_times_hp_update(p, g, state, *, lr, c, **_):
    state["m"] = ((g > 0) * c + torch.where(g < 0, c, 0.0)) * g
    return p - lr * state["m"]


def test_a_bool_tensor_times_a_hyperparameter_is_refused():
    """``(g > 0) * c`` with ``c`` a Python float is float32 in torch (the default dtype: c
    rounded to 0.699999988); the traced ``c``, a float64 0-d tensor, made it float64, and
    the kernel's result was 1.2e-8 off the plain path's in a float64 run."""
    _assert_refused(_rule(_bool_times_hp_update, lr=0.1, c=0.7), "bool tensor with a hyper")


def _int_where_update(p, g, state, *, lr, **_):
    state["m"] = torch.where(g > 0, 2, -3) * g  # an int64 select
    return p - lr * state["m"]


def test_an_integer_select_is_refused():
    _assert_refused(_rule(_int_where_update, lr=0.1), "int64")
