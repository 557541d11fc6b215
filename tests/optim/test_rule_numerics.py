"""Rules that round where torch rounds in the cases the parity table does not run (a float32
``lr`` tensor on float64 parameters, bfloat16 and float16 parameters, 0-d parameters), and
the step counter's errors when a user edits it."""

import math
import warnings

import pytest
import torch

import optimlab
from optimlab.optim.catalog import TABLE
from tests.optim.cases import CASES

#: the optimlab paths: the default (fused where it can), the plain multi-tensor and the
#: plain per-tensor one
MODES = [{}, {"fused": False}, {"fused": False, "foreach": False}]
MODE_IDS = ["default", "plain", "per-tensor"]


def _run(make, dtype, steps):
    """Two parameters (so the multi-tensor path batches them) after ``steps`` steps."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(*shape, dtype=dtype, generator=gen).requires_grad_()
              for shape in ((7, 5), (33,))]
    opt = make(params)
    for i in range(steps):
        for j, p in enumerate(params):
            # float32 draws, rounded once to the parameter's dtype: the same for both runs
            p.grad = torch.randn(p.shape, generator=gen.manual_seed(100 * i + j)).to(dtype)
        opt.step()
    return params, opt


def _assert_same(ours, theirs):
    (ps, opt), (tps, topt) = ours, theirs
    for p, t in zip(ps, tps):
        assert torch.equal(p, t), (p.float() - t.float()).abs().max().item()
        for key, value in topt.state[t].items():
            assert torch.equal(opt.state[p][key], value), key


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("param_dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("hp", [{}, {"weight_decay": 0.1},
                                {"weight_decay": 0.1, "decoupled_weight_decay": True}],
                         ids=["plain", "l2", "decoupled"])
def test_nadam_with_a_float32_lr_tensor_is_torchs(hp, param_dtype, mode):
    """torch's single-tensor NAdam (the CPU default) forms ``-lr * (1 - mu) / (1 - Pi)`` in
    the dtype of a tensor ``lr``, float32 here even on float64 parameters; forming it in
    float64 was 5.7e-10 off after 3 steps."""
    if param_dtype == torch.float32 and mode == {}:
        pytest.skip("the fused kernel on float32 is held to the plain path by test_fused.py")

    def run(make):
        return _run(make, param_dtype, 6)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fused=None may say it stepped on the plain path
        ours = run(lambda ps: optimlab.NAdam(ps, lr=torch.tensor(0.0123), **hp, **mode))
    theirs = run(lambda ps: torch.optim.NAdam(ps, lr=torch.tensor(0.0123), foreach=False, **hp))
    _assert_same(ours, theirs)


NARROW_CASES = [
    # momentum's intermediate (buf * momentum, a weight-decayed gradient) is a flat buffer on
    # the multi-tensor path: add(..., alpha=) on it ran at the buffer's positions, whose
    # vectorized body and remainder are not a tensor's (1-8 elements 1 ulp off)
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.5,
                 "weight_decay": 0.01}),
    ("Adamax", {"lr": 0.02}),
    ("Adamax", {"lr": 0.02, "betas": (0.8, 0.99), "weight_decay": 0.01}),
    ("Adagrad", {"lr": 0.05}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01}),
    ("Adagrad", {"lr": 0.05, "initial_accumulator_value": 0.1, "eps": 1e-6}),
    ("Adadelta", {"lr": 1.0}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.01}),
    ("NAdam", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01, "betas": (0.8, 0.99), "momentum_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.01, "momentum_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("ASGD", {"lr": 0.1}),
    # t0=3: the average starts within the 8 steps; lambd large enough that the decay factor
    # 1 - lambd * eta is not rounded away in bfloat16/float16
    ("ASGD", {"lr": 0.1, "lambd": 0.05, "alpha": 0.5, "t0": 3, "weight_decay": 0.01}),
    # decoupled decay p * (1 - lr * wd): as _foreach_mul_ with a number it rounded the number
    # to float16 (15 and 5 elements off)
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
]


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name, hp", NARROW_CASES,
                         ids=[f"{n}-{'-'.join(hp)}" for n, hp in NARROW_CASES])
def test_narrow_dtypes_round_as_torch_does(name, hp, dtype, mode):
    """In bfloat16/float16 torch's ``addcmul_``/``addcdiv_`` with ``value=`` round once (the
    CPU computes them in float32); written as ``a * b + c`` each operation rounded to the
    narrow dtype and RMSprop's parameter was 7.8e-3 off after 4 steps. Bit for bit."""
    ours = _run(lambda ps: getattr(optimlab, name)(ps, **hp, **mode), dtype, 8)
    theirs = _run(lambda ps: getattr(torch.optim, name)(ps, **hp, foreach=False), dtype, 8)
    _assert_same(ours, theirs)


def _stepped_adam(mode):
    params = [torch.ones(3, 4, dtype=torch.float64, requires_grad=True),
              torch.ones(5, dtype=torch.float64, requires_grad=True)]
    opt = optimlab.Adam(params, lr=0.01, **mode)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    return opt, params


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_a_deleted_step_counter_is_a_key_error_as_in_torch(mode):
    opt, params = _stepped_adam(mode)
    del opt.state[params[0]]["step"]
    with pytest.raises(KeyError, match="'step'"):
        opt.step()


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("value", [1.0, 3])
def test_a_step_counter_that_is_not_a_tensor_is_named(mode, value):
    opt, params = _stepped_adam(mode)
    opt.state[params[0]]["step"] = value
    with pytest.raises(TypeError, match=rf"state\['step'\] is {type(value).__name__} {value}, "
                                        "not the step counter, a 0-d tensor"):
        opt.step()


@pytest.mark.parametrize("fused", [False, None])
def test_sophia_steps_finite_float32_parameters_beyond_the_squares_range(fused):
    """Entries of 1e20 (finite in float32, their squares not): the finite-difference step
    came out inf, the Hessian estimate inf / inf and the parameter NaN after one step."""
    from optimlab.optim.sophia import difference_step

    x = torch.full((4,), 1e20, requires_grad=True)
    delta = difference_step(x.detach())
    assert delta.dtype == torch.float32
    assert delta.item() == pytest.approx(1e20 * torch.finfo(torch.float32).eps ** 0.5, rel=1e-6)
    opt = optimlab.Sophia([x], lr=0.1, fused=fused)

    def closure():
        opt.zero_grad()
        loss = ((1e-30 * x) * x).sum()  # 4e10, gradient 2e-10: both finite
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    assert torch.isfinite(x).all() and torch.isfinite(opt.state[x]["hessian"]).all()


def _scalar_run(case, shape, dtype):
    """``case`` on one parameter of ``shape`` filled with 1.5, six steps of a cubic, on the
    plain per-tensor path; the parameter's values, flattened."""
    w = torch.nn.Parameter(torch.full(shape, 1.5, dtype=dtype))
    opt = case.build([w], **({"fused": False} if case.capabilities.fusable else {}))
    for i in range(6):
        def closure(i=i):
            opt.zero_grad()
            loss = ((w - 0.3) ** 2).sum() * (0.7 + 0.1 * i) + (w ** 3).sum() * 0.1
            loss.backward()
            return loss
        if case.capabilities.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
    return w.detach().reshape(-1)


SCALAR_CASES = [pytest.param(case, id=case.id) for info in TABLE
                for case in CASES[info.cls.__name__]
                if not case.capabilities.needs_matrix and not case.capabilities.sparse_only]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", SCALAR_CASES)
def test_a_0d_parameter_steps_as_a_one_element_one_does(case, dtype):
    """A scalar ``nn.Parameter`` and the same number shaped ``(1,)`` step alike on the plain
    path, bit for bit (torch's do). NAdam's float64 coefficients are 0-d tensors: against a
    0-d float32 parameter they promoted its step to float64 (two 0-d tensors promote to the
    wider dtype), one ulp off torch's step after three steps
    (:func:`optimlab.optim.ops._coefficient`). The fused kernel (the CPU default) lays a 0-d
    parameter's scalar state out as parameter-shaped and is held to its float32 accuracy
    bound instead (``test_fused.py::test_zero_dim_parameters_fuse``), as on any shape."""
    assert torch.equal(_scalar_run(case, (), dtype), _scalar_run(case, (1,), dtype))


@pytest.mark.parametrize("entry", [math.inf, math.nan, 1e20], ids=["inf", "nan", "1e20"])
@pytest.mark.parametrize("name, what", [("Shampoo", "the SVD"), ("SOAP", "eigh")])
def test_a_preconditioner_factor_that_is_not_finite_is_said_to_be_so(name, what, entry):
    """An inf or NaN gradient, or finite entries whose products overflow float32 (1e20 each:
    G G^T holds 1.2e40), filled the factor with inf/NaN and LAPACK's words came out: "failed
    to converge because the input matrix is ill-conditioned". The error (of the same kind)
    now says why and what to do; with ``skip_nonfinite`` a non-finite gradient is skipped."""
    w = torch.nn.Parameter(torch.ones(4, 3))
    opt = getattr(optimlab, name)([w], lr=0.01)
    w.grad = torch.full((4, 3), entry)
    with pytest.raises(torch.linalg.LinAlgError,
                       match=rf"^{what} of a preconditioner factor failed: the factor holds inf "
                             r"or NaN, .* overflow float32, this step's or an earlier one's "
                             r"\(the factor keeps it until the parameter's state is reset: del "
                             r"opt\.state\[p\]\)\. skip_nonfinite=True skips"):
        opt.step()
    assert torch.equal(w, torch.ones(4, 3))
    if not math.isfinite(entry):
        guarded = getattr(optimlab, name)([w], lr=0.01, skip_nonfinite=True)
        guarded.step()
        assert torch.equal(w, torch.ones(4, 3))


def test_a_failed_decomposition_of_a_finite_factor_keeps_its_own_error():
    from optimlab.optim.shampoo import raise_for_factor

    err = torch.linalg.LinAlgError("did not converge")
    with pytest.raises(torch.linalg.LinAlgError) as raised:
        raise_for_factor(torch.eye(3), err, "the SVD")
    assert raised.value is err


@pytest.mark.parametrize("dtype, nesterov", [(torch.float16, True), (torch.float16, False),
                                             (torch.bfloat16, True)],
                         ids=["fp16", "fp16-no-nesterov", "bf16"])
def test_muon_on_narrow_parameters_is_torchs(dtype, nesterov):
    """torch adds Muon's bfloat16 update to a float16 parameter in float32 (the two promote
    to it) and rounds once; optimlab cast the update to float16 first, and an entry below
    float16's normal range lost bits: 9 of 256 entries 1 ulp off after 4 steps (the
    numerical audit). (bfloat16 without nesterov differs by design: see
    :func:`optimlab.optim.muon.zeropower_via_newtonschulz`.)"""
    def run(make):
        gen = torch.Generator().manual_seed(0)
        params = [torch.randn(16, 8, generator=gen).to(dtype).requires_grad_() for _ in range(2)]
        opt = make(params)
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(16, 8, generator=gen).to(dtype)
            opt.step()
        return params

    ours = run(lambda ps: optimlab.Muon(ps, lr=0.02, nesterov=nesterov))
    theirs = run(lambda ps: torch.optim.Muon(ps, lr=0.02, nesterov=nesterov))
    for p, q in zip(ours, theirs):
        assert p.dtype == dtype and torch.equal(p, q), int((p != q).sum())
