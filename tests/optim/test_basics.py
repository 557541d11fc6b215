"""Param groups, skipped parameters, dtypes, argument checks and the non-finite guard."""

import collections.abc
import inspect
import math
import os
import re
import textwrap

import numpy as np
import pytest
import torch

import optimlab
from optimlab.optim.capabilities import hyperparameters
from optimlab.optim.catalog import TABLE
from tests.optim.cases import ALL_CASES, CASES
from tests.problems import assert_params_close, loss_fn, make_params, sparsify, train_steps

ELEMENTWISE = [c for c in ALL_CASES if c.cls_name not in ("SAM",)]



def _sign(case):
    return -1.0 if case.maximize else 1.0


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_per_group_hyperparameters(case):
    """Two groups with different lrs behave like the group's lr applied on its own."""
    if case.capabilities.two_phase:
        pytest.skip("groups interact by design: SAM's perturbation uses the global norm, "
                    "Sophia's probes depend on each parameter's index in the optimizer")
    sign = _sign(case)
    params = make_params(torch.float64, case.shapes)
    if case.capabilities.single_group:  # LBFGS: one curvature model, as torch's
        with pytest.raises(ValueError, match="single parameter group"):
            case.build([{"params": params[:1]}, {"params": params[1:], "lr": 0.01}])
        return
    base_lr = case.hp.get("lr", case.hp.get("inner", (None, {}))[1].get("lr", 0.01))
    if case.cls_name == "Lookahead":
        inner_name, inner_hp = case.hp["inner"]
        inner = getattr(optimlab, inner_name)(
            [{"params": params[:1]}, {"params": params[1:], "lr": base_lr / 2}], **inner_hp)
        opt = optimlab.Lookahead(inner, k=case.hp["k"], alpha=case.hp["alpha"])
    else:
        opt = case.build([{"params": params[:1]}, {"params": params[1:], "lr": base_lr / 2}])
    assert opt.param_groups[1]["lr"] == base_lr / 2
    train_steps(opt, params, 20, sign, case.needs_closure)

    expected = make_params(torch.float64, case.shapes)
    first = case.build(expected[:1])
    if case.cls_name == "Lookahead":
        inner_name, inner_hp = case.hp["inner"]
        second = optimlab.Lookahead(
            getattr(optimlab, inner_name)(expected[1:], **{**inner_hp, "lr": base_lr / 2}),
            k=case.hp["k"], alpha=case.hp["alpha"])
    else:
        second = case.build(expected[1:], lr=base_lr / 2)
    for _ in range(20):
        for opt_k in (first, second):
            opt_k.zero_grad()
        (sign * loss_fn(expected)).backward()
        if case.capabilities.sparse_only:
            sparsify(expected)
        first.step()
        second.step()
    for a, b in zip(params, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: c.id)
def test_add_param_group_and_skip_missing_grads(case):
    params = make_params(torch.float64, case.shapes)
    frozen, late = params[0], params[-1]
    opt = case.build(params[:-1])
    if case.capabilities.single_group:  # LBFGS, as torch's
        with pytest.raises(ValueError, match="single parameter group"):
            opt.add_param_group({"params": [late]})
        return
    opt.add_param_group({"params": [late]})
    frozen_before = frozen.detach().clone()
    late_before = late.detach().clone()
    for _ in range(3):
        def closure():
            opt.zero_grad()
            loss = _sign(case) * loss_fn(params)
            loss.backward()
            frozen.grad = None
            if case.capabilities.sparse_only:
                sparsify(params)
            return loss

        if case.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
    assert torch.equal(frozen, frozen_before)
    state = opt.state if case.cls_name != "Lookahead" else opt.optimizer.state
    assert not state.get(frozen)
    assert not torch.equal(late, late_before)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if not c.capabilities.sparse_only],
                         ids=lambda c: c.id)
def test_an_empty_parameter_steps_and_changes_nothing_else(case):
    """A parameter with no elements (a zero-width layer) is stepped without error, and the
    others step exactly as they do without it. torch's Adafactor divides by its size and
    fails; Adafactor here leaves it be. The empty parameter comes last: Sophia seeds each
    parameter's probes by its index."""
    params = make_params(torch.float64, case.shapes)
    alone = [p.detach().clone().requires_grad_() for p in params]
    empty = torch.zeros((0, 3) if case.capabilities.needs_matrix else (0,),
                        dtype=torch.float64, requires_grad=True)
    train_steps(case.build(params + [empty]), params + [empty], 5, sign=_sign(case),
                use_closure=case.needs_closure)
    train_steps(case.build(alone), alone, 5, sign=_sign(case), use_closure=case.needs_closure)
    assert empty.shape[0] == 0
    for a, b in zip(params, alone):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_bfloat16_smoke(case):
    params = make_params(torch.bfloat16, case.shapes)
    start = loss_fn(params).item()
    opt = case.build(params)
    train_steps(opt, params, 20, _sign(case), case.needs_closure)
    assert all(p.dtype == torch.bfloat16 and torch.isfinite(p).all() for p in params)
    assert loss_fn(params).item() < start


def _bad_values(info):
    """Out-of-range hyperparameters for every argument the class has."""
    defaults = info.defaults
    bad = {"lr": -1.0, "eps": -1.0, "weight_decay": -0.5, "momentum": -0.1, "rho": -0.1,
           "alpha": -0.5, "lambd": -1.0, "lr_decay": -1.0, "momentum_decay": -1.0,
           "initial_accumulator_value": -1.0, "k": 0, "warmup_steps": -1, "ns_steps": 100}
    cases = [(k, v) for k, v in bad.items() if k in defaults]
    if "betas" in defaults:
        cases += [("betas", (1.0, 0.999)), ("betas", (0.9, -0.1))]
    if "etas" in defaults:
        cases += [("etas", (1.5, 1.2))]
    return cases


def _construct(info, **kwargs):
    name = info.cls.__name__
    params = make_params(torch.float64, CASES[name][0].shapes)
    if name == "Lookahead":
        return optimlab.Lookahead(optimlab.SGD(params, lr=0.1), **kwargs)
    return info.cls(params, **kwargs)


BAD = [pytest.param(info, k, v, id=f"{info.cls.__name__}-{k}={v}")
       for info in TABLE for k, v in _bad_values(info)]


@pytest.mark.parametrize("info, arg, value", BAD)
def test_bad_hyperparameters_name_the_argument(info, arg, value):
    with pytest.raises(ValueError, match=arg):
        _construct(info, **{arg: value})


def _wrong_kinds(info):
    """(argument, value of the wrong kind) for each number, pair and switch of a class."""
    out = []
    for name, default in hyperparameters(info.cls).items():
        if isinstance(default, bool):
            out.append((name, 1))  # a switch given an int
        elif isinstance(default, (int, float)):
            out.append((name, str(default)))  # a number given as text (a config file's)
        elif isinstance(default, tuple) and len(default) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in default):
            out.append((name, default[0]))  # a pair given one number
    return out


WRONG_KIND = [pytest.param(info, k, v, id=f"{info.cls.__name__}-{k}={v!r}")
              for info in TABLE for k, v in _wrong_kinds(info)]


@pytest.mark.parametrize("info, arg, value", WRONG_KIND)
def test_an_argument_of_the_wrong_kind_is_a_type_error_and_a_value_error(info, arg, value):
    """Python's convention: the wrong kind of argument is a TypeError (torch.optim fails
    with one on such input); optimlab raised ValueError before, so the error is both, and
    code catching either keeps working."""
    with pytest.raises(TypeError, match=arg) as raised:
        _construct(info, **{arg: value})
    assert isinstance(raised.value, ValueError)


OUT_OF_RANGE = [p for p in BAD  # of the right kind: a pair for a pair (Adafactor's eps)
                if isinstance(hyperparameters(p.values[0].cls).get(p.values[1]), tuple)
                == isinstance(p.values[2], tuple)]


@pytest.mark.parametrize("info, arg, value", OUT_OF_RANGE)
def test_a_value_out_of_range_is_a_value_error_only(info, arg, value):
    """A number of the right kind in the wrong place is a ValueError, not a TypeError."""
    with pytest.raises(ValueError, match=arg) as raised:
        _construct(info, **{arg: value})
    assert not isinstance(raised.value, TypeError), raised.value


GROUP_BAD = [p for p in BAD
             if issubclass(p.values[0].cls, optimlab.optim.base.RuleOptimizer)]


@pytest.mark.parametrize("info, arg, value", GROUP_BAD)
def test_a_param_group_with_a_bad_hyperparameter_is_refused_as_the_argument_is(info, arg, value):
    """A group dict carries hyperparameters too: the same value the constructor refuses is
    refused by add_param_group, naming the group and the argument, and the group is not
    added (it would fail, or step wrongly, later)."""
    opt = _construct(info)
    extra = make_params(torch.float64, CASES[info.cls.__name__][0].shapes)[:1]
    with pytest.raises(ValueError, match=f"param group 1: .*{arg}"):
        opt.add_param_group({"params": extra, arg: value})
    assert len(opt.param_groups) == 1


def test_every_class_rejects_a_negative_lr():
    assert {p.values[0].cls.__name__ for p in BAD if p.values[1] == "lr"} >= {
        info.cls.__name__ for info in TABLE if "lr" in info.defaults}


GUARDED = [c for c in ALL_CASES
           if "skip_nonfinite" in inspect.signature(getattr(optimlab, c.cls_name)).parameters]


@pytest.mark.parametrize("case", GUARDED, ids=lambda c: c.id)
def test_nonfinite_guard_skips_and_counts(case):
    params = make_params(torch.float64, case.shapes)
    opt = case.build(params, skip_nonfinite=True)
    train_steps(opt, params, 2, _sign(case), case.needs_closure)
    before = [p.detach().clone() for p in params]

    def poisoned():
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        params[0].grad[0] = float("nan")
        return loss

    if case.needs_closure:
        opt.step(poisoned)
    else:
        poisoned()
        opt.step()
    assert opt.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    train_steps(opt, params, 2, _sign(case), case.needs_closure)
    assert all(torch.isfinite(p).all() for p in params)
    assert opt.state_dict()["optimlab"]["skipped_steps"] == 1


def test_nonfinite_gradients_flow_through_by_default():
    """torch-compatible default: a NaN gradient reaches the parameter, as in torch.optim."""
    params = make_params()
    for opt in (optimlab.Adam(params, lr=0.1), torch.optim.Adam(params, lr=0.1)):
        opt.zero_grad()
        loss_fn(params).backward()
        params[0].grad[0] = float("nan")
        opt.step()
        assert torch.isnan(params[0][0]).all()
        with torch.no_grad():
            params[0].copy_(make_params()[0])


def test_sparse_gradients_are_refused_where_unsupported():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = optimlab.Adam(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_sparse_adagrad_matches_torch():
    torch.manual_seed(0)
    ours, theirs = torch.nn.Embedding(20, 4, sparse=True), torch.nn.Embedding(20, 4, sparse=True)
    theirs.load_state_dict(ours.state_dict())
    opt_a = optimlab.Adagrad(ours.parameters(), lr=0.1, lr_decay=0.01, eps=1e-8)
    opt_b = torch.optim.Adagrad(theirs.parameters(), lr=0.1, lr_decay=0.01, eps=1e-8)
    for step in range(30):
        idx = torch.tensor([step % 7, (3 * step) % 11, 5])
        for emb, opt in ((ours, opt_a), (theirs, opt_b)):
            opt.zero_grad()
            (emb(idx) ** 2).sum().backward()
            opt.step()
    # bit for bit: the sparse path runs torch's operations on the same rows in the same order
    assert torch.equal(ours.weight, theirs.weight)
    untouched = [i for i in range(20) if i not in {5} | {s % 7 for s in range(30)}
                 | {(3 * s) % 11 for s in range(30)}]
    assert untouched and torch.equal(ours.weight[untouched], theirs.weight[untouched])


@pytest.mark.parametrize("info", [i for i in TABLE if not i.capabilities.complex],
                         ids=lambda i: i.name)
def test_classes_without_complex_support_refuse_complex_parameters(info):
    """The capability record decides (``complex=False``), in the base class, for every
    class alike: a ValueError at construction that names the class."""
    w = torch.zeros(3, 2, dtype=torch.complex64, requires_grad=True)
    with pytest.raises(ValueError, match=f"{info.cls.__name__} does not support complex"):
        info.cls([w])


def test_complex_parameters_match_torch():
    torch.manual_seed(0)
    w0 = torch.randn(3, 2, dtype=torch.complex128)
    results = []
    for cls in (optimlab.Adam, torch.optim.Adam):
        w = w0.clone().requires_grad_()
        opt = cls([w], lr=0.05)
        for _ in range(50):
            opt.zero_grad()
            ((w - 1j).abs() ** 2).sum().backward()
            opt.step()
        results.append(w.detach())
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-12)


# -- tensor betas, as torch.optim takes them ----------------------------------------------
# torch.optim.Adam and AdamW (2.13) check the range of each beta, then require the two to
# be of one kind: "betas must be either both floats or both Tensors" (ValueError), under
# every foreach/fused/capturable setting; with foreach=True (not capturable) they also
# refuse tensor betas. NAdam, RAdam and Adamax take a mixed pair. The cases below are
# decided by torch itself, so optimlab takes exactly what torch takes. Not compared:
# foreach=True (optimlab's plain path ignores it and takes tensor lr and betas there) and
# capturable (optimlab has none).
_T = torch.tensor
BETAS = {
    "floats": (0.9, 0.99),
    "float list": [0.9, 0.99],
    "0-d tensors": (_T(0.9), _T(0.99)),
    "1-element tensors": (_T([0.9]), _T([0.99])),
    "float64 tensors": (_T(0.9, dtype=torch.float64), _T(0.99, dtype=torch.float64)),
    "float, tensor": (0.9, _T(0.99)),
    "tensor, float": (_T(0.9), 0.99),
    "float, 1-element tensor": (0.9, _T([0.99])),
    "tensor list, mixed": [0.9, _T(0.99)],
    "tensor beta1 = 1": (_T(1.0), _T(0.99)),
    "tensor beta2 > 1": (_T(0.9), _T(1.5)),
    "mixed, out of range": (0.9, _T(1.5)),
    "negative tensor": (_T(-0.1), _T(0.99)),
}
_SETTINGS = [pytest.param(name, kwargs,
                          id="-".join([name, *(f"{k}={v}" for k, v in kwargs.items())]))
             for name in ("Adam", "AdamW", "NAdam", "RAdam", "Adamax")
             for kwargs in ({}, {"foreach": False}, {"fused": False})
             if name in ("Adam", "AdamW") or "fused" not in kwargs]  # torch: no fused NAdam...


def _torch_verdict(torch_cls, betas, **kwargs):
    try:
        torch_cls([torch.zeros(2, requires_grad=True)], betas=betas, **kwargs)
    except ValueError as err:
        return str(err)
    return None


@pytest.mark.parametrize("label", list(BETAS))
@pytest.mark.parametrize("name, kwargs", _SETTINGS)
def test_tensor_betas_are_taken_as_torch_takes_them(name, kwargs, label):
    betas = BETAS[label]
    refused = _torch_verdict(getattr(torch.optim, name), betas, **kwargs)
    params = [torch.zeros(2, requires_grad=True)]
    if refused is None:
        getattr(optimlab, name)(params, betas=betas, **kwargs)
    else:
        match = "both floats or both Tensors" if "both floats" in refused else "betas"
        with pytest.raises(ValueError, match=match):
            getattr(optimlab, name)(params, betas=betas, **kwargs)


def test_torch_refuses_a_mixed_pair_for_adam():
    """What the test above leans on (torch 2.13): pin it, so a change in torch shows."""
    for cls in (torch.optim.Adam, torch.optim.AdamW):
        for betas in ((0.9, _T(0.99)), (_T(0.9), 0.99)):
            assert _torch_verdict(cls, betas) == "betas must be either both floats or both Tensors"
        assert _torch_verdict(cls, (_T(0.9), _T(0.99))) is None
    assert _torch_verdict(torch.optim.NAdam, (0.9, _T(0.99))) is None


@pytest.mark.parametrize("cls", [optimlab.Adam, optimlab.AdamW])
def test_bad_betas_are_a_value_error(cls):
    """Where torch fails another way (a 2-element tensor: RuntimeError, one beta:
    IndexError), optimlab says what is wrong with a ValueError."""
    params = [torch.zeros(2, requires_grad=True)]
    for betas in ((_T([0.9, 0.8]), _T(0.99)), (0.9,), (0.9, 0.99, 0.999), 0.9):
        with pytest.raises(ValueError, match="betas"):
            cls(params, betas=betas)


@pytest.mark.parametrize("cls", [optimlab.Adam, optimlab.AdamW])
def test_whole_number_betas_are_accepted(cls):
    """A deliberate difference: torch.optim.Adam refuses ints (0 is not a float), optimlab
    takes any real number; the playground's JSON sends beta1 = 0 as the int 0."""
    assert _torch_verdict(torch.optim.Adam, (0, 0.99)) is not None
    opt = cls([torch.zeros(2, requires_grad=True)], betas=(0, 0.99))
    assert opt.param_groups[0]["betas"] == (0, 0.99)


#: numbers no hyperparameter can mean: not finite, beyond float32, beyond a float
_MEANINGLESS = [math.inf, -math.inf, math.nan, 1e39, -1e39, 10**400]


def _numeric_hyperparameters(info):
    """(name, default) of every hyperparameter whose default is a number or a pair of them."""
    out = []
    for name, default in hyperparameters(info.cls).items():
        if isinstance(default, bool):
            continue
        if isinstance(default, (int, float)) or (
                isinstance(default, tuple) and all(isinstance(v, (int, float)) for v in default)):
            out.append((name, default))
    return out


MEANINGLESS = [
    pytest.param(info, name, value, id=f"{info.cls.__name__}-{name}={value!s:.12}")
    for info in TABLE for name, default in _numeric_hyperparameters(info)
    for value in (
        _MEANINGLESS if not isinstance(default, tuple) else
        [tuple(v if j != i else bad for j, v in enumerate(default))
         for i in range(len(default)) for bad in [*_MEANINGLESS, None]])
]


@pytest.mark.parametrize("info, arg, value", MEANINGLESS)
def test_meaningless_numbers_are_a_value_error_naming_the_argument(info, arg, value):
    """inf, nan, numbers beyond float32 or beyond a float, and None inside a pair: refused
    up front with ValueError, never accepted (they would only produce NaN weights) and never
    an OverflowError or TypeError from deep inside."""
    with pytest.raises(ValueError, match=arg) as raised:
        _construct(info, **{arg: value})
    assert "\n" not in str(raised.value)


def test_every_class_has_its_numbers_checked():
    checked = {p.values[0].cls.__name__ for p in MEANINGLESS}
    assert checked == {info.cls.__name__ for info in TABLE if _numeric_hyperparameters(info)}


def _numpy_scalars(value):
    """``value`` with its numbers as NumPy scalars: float32 where that is exact, else
    float64; ints as int64 (bools and strings as they are)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, tuple)):
        return value
    if isinstance(value, tuple):
        return tuple(_numpy_scalars(v) for v in value)
    if isinstance(value, int):
        return np.int64(value)
    return np.float32(value) if float(np.float32(value)) == value else np.float64(value)


def _same_run(case, given: dict, plain: dict):
    """Four float64 steps of ``case``'s optimizer built with ``given`` and with ``plain``:
    the parameters end equal, bit for bit; the optimizer built with ``given``."""
    runs = []
    for values in (given, plain):
        params = make_params(torch.float64, case.shapes)
        opt = getattr(optimlab, case.cls_name)(params, **values)
        train_steps(opt, params, 4, sign=_sign(case), use_closure=case.needs_closure)
        runs.append((params, opt))
    (given_params, opt), (plain_params, _) = runs
    for a, b in zip(given_params, plain_params):
        assert torch.equal(a, b)
    return opt


@pytest.mark.parametrize("case", [c for c in ALL_CASES if "inner" not in c.hp
                                  and not isinstance(c.hp.get("base_optimizer"), str)],
                         ids=lambda c: c.id)
def test_numpy_scalar_hyperparameters_are_taken_as_python_numbers(case):
    """``lr=np.float32(1e-3)`` and friends (what a sweep built with NumPy hands over) are
    accepted, as ``torch.optim`` accepts them, and stored as the Python numbers they equal:
    the run is the one with those numbers, bit for bit, and the groups and the checkpoint
    hold no NumPy types (before, ``np.float32`` was refused and a ``np.int64`` seed
    overflowed Sophia's probe hash)."""
    hp = {k: _numpy_scalars(v) for k, v in case.hp.items()}
    hp.setdefault("lr", np.float32(0.5) if case.cls_name == "LBFGS" else np.float32(1e-3))
    plain = {k: (v.item() if isinstance(v, np.generic) else
                 tuple(x.item() if isinstance(x, np.generic) else x for x in v)
                 if isinstance(v, tuple) else v) for k, v in hp.items()}
    opt = _same_run(case, hp, plain)
    groups = opt.state_dict()["param_groups"]
    leaves = [x for g in groups for v in g.values()
              for x in (v if isinstance(v, (tuple, list)) else [v])]
    assert not any(isinstance(x, np.generic) for x in leaves), groups


class _ListConfig(collections.abc.Sequence):
    """A sequence that is neither a tuple nor a list, as OmegaConf's ``ListConfig`` (what
    Hydra's ``instantiate`` passes for a YAML list) is."""

    def __init__(self, items):
        self.items = list(items)

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


_SEQUENCE_CASES = [c for c in ALL_CASES if any(isinstance(v, tuple) for v in c.hp.values())
                   and "inner" not in c.hp and not isinstance(c.hp.get("base_optimizer"), str)]


@pytest.mark.parametrize("as_sequence", [_ListConfig, lambda t: np.array(t)],
                         ids=["ListConfig", "ndarray"])
@pytest.mark.parametrize("case", _SEQUENCE_CASES, ids=lambda c: c.id)
def test_sequence_hyperparameters_may_be_any_sequence(case, as_sequence):
    """``betas`` (``etas``, ``eps``, ...) given as any sequence or a 1-D NumPy array, and
    ``lr`` as a 0-d array, as ``torch.optim`` takes them: the same run bit for bit as with
    tuples, and the groups hold plain lists, which a checkpoint pickles without OmegaConf
    (before, anything but a tuple or a list was refused with ValueError)."""
    hp = {k: as_sequence(v) if isinstance(v, tuple) else v for k, v in case.hp.items()}
    hp["lr"] = np.array(case.hp.get("lr", 0.5 if case.cls_name == "LBFGS" else 1e-3))
    opt = _same_run(case, hp, {**case.hp, "lr": float(hp["lr"])})
    group = opt.param_groups[0]
    assert all(type(group[k]) is list for k, v in case.hp.items() if isinstance(v, tuple))
    assert type(group["lr"]) is float


def test_a_compiled_step_runs_eagerly_as_the_step_does():
    """``torch.compile(opt.step)`` (torch's recipe for compiling an optimizer) calls
    optimlab's step through ``torch._dynamo.disable``: the same numbers as the eager step,
    bit for bit, and dynamo neither recompiles through the engine nor warns about what it
    cannot trace (before, it did both: 8 recompilations of the deferred graph's operations
    on the plain path, ``posix.lstat`` from the kernel cache on the fused one). In a child
    process, so that this one does not import ``torch._dynamo``."""
    import subprocess
    import sys

    code = textwrap.dedent("""
        import torch, optimlab
        torch.manual_seed(0)
        X = torch.randn(32, 10)
        builds = {
            "adam fused": lambda p: optimlab.Adam(p, lr=1e-2),
            "adam plain": lambda p: optimlab.Adam(p, lr=1e-2, fused=False),
            "rmsprop plain": lambda p: optimlab.RMSprop(p, lr=1e-2, momentum=0.9, fused=False),
            "sam": lambda p: optimlab.SAM(p, optimlab.SGD, lr=0.1, momentum=0.9),
        }
        for name, build in builds.items():
            models = [torch.nn.Linear(10, 10) for _ in range(2)]
            models[1].load_state_dict(models[0].state_dict())
            opts = [build(list(m.parameters())) for m in models]
            steps = [torch.compile(opts[0].step), opts[1].step]
            for _ in range(6):
                for model, opt, step in zip(models, opts, steps):
                    def closure(model=model, opt=opt):
                        opt.zero_grad()
                        loss = model(X).pow(2).mean()
                        loss.backward()
                        return loss
                    step(closure)
            same = all(torch.equal(a, b) for a, b in
                       zip(models[0].parameters(), models[1].parameters()))
            print(name, same)
    """)
    # dynamo logs every recompilation (one per class came from the wrapper's cache read)
    env = {**os.environ, "TORCH_LOGS": "recompiles"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["adam", "fused", "True", "adam", "plain", "True",
                                  "rmsprop", "plain", "True", "sam", "True"], out.stdout
    # the only recompilations are for each new optimizer object, as torch.optim's ("...
    # got deallocated"); a guard on optimlab's own state (its cache of eager steps, read
    # in the traced wrapper) recompiled every class once more
    reasons = [line for line in out.stderr.splitlines()
               if re.search(r"\[__recompiles\]\s+- \d+/\d+: ", line)]
    assert all("got deallocated" in line for line in reasons), out.stderr
    assert "does not know how to trace" not in out.stderr, out.stderr


def test_optimizers_do_not_import_dynamo_until_something_has():
    """Building, stepping, zeroing and checkpointing optimlab's optimizers (rule-based, L-BFGS
    and both wrappers) runs torch's own bookkeeping methods without their
    ``torch._disable_dynamo`` wrapper, whose first call imports ``torch._dynamo`` (about 1 s
    of start-up); once something has imported dynamo the wrapped methods are used. In a child
    process, so that this one's modules do not decide the answer."""
    import subprocess
    import sys

    code = textwrap.dedent("""
        import sys, torch
        import optimlab
        from optimlab.optim import base
        p = [torch.zeros(3, requires_grad=True)]
        # the plain path: generating a fused kernel on a cold cache traces the rule, and
        # tracing imports dynamo (the kernels' docstring); a warm cache would hide it
        built = [optimlab.Adam(p, fused=False), optimlab.LBFGS(p),
                 optimlab.SAM(p, optimlab.SGD, lr=0.1, fused=False),
                 optimlab.Lookahead(optimlab.SGD(p, lr=0.1, fused=False))]
        def closure():  # recomputes the gradient, as SAM's second pass needs
            p[0].grad = None
            loss = (p[0] ** 2).sum()
            loss.backward()
            return loss
        for opt in built:
            p[0].grad = torch.ones(3)
            opt.step(closure)
            opt.zero_grad()
            opt.load_state_dict(opt.state_dict())
        names = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
        unwrapped = all(base._torch_method(name) is getattr(torch.optim.Optimizer, name).__wrapped__
                        for name in names)
        print("torch._dynamo" in sys.modules, unwrapped)
        import torch._dynamo
        print(all(base._torch_method(name) is getattr(torch.optim.Optimizer, name)
                  for name in names))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"]


#: the optimizers torch.optim also has (catalog rows whose reference is torch's class)
TWINS = sorted({info.cls.__name__ for info in TABLE
                if info.reference == f"torch.optim.{info.cls.__name__}"})


@pytest.mark.parametrize("name", TWINS)
def test_a_twin_takes_every_argument_torchs_class_takes(name):
    """Code written for ``torch.optim.X`` runs with ``optimlab.X``: every argument name of
    torch's constructor is one of ours (``capturable`` and ``differentiable`` included,
    taken at False), and the flags torch keeps in its groups are kept in ours."""
    ours = inspect.signature(getattr(optimlab, name).__init__).parameters
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    assert set(theirs) - set(ours) == set(), sorted(set(theirs) - set(ours))
    # in torch's order where torch takes them by position (RMSprop's capturable, foreach,
    # maximize, differentiable after centered; ASGD's foreach, maximize, differentiable,
    # capturable): a call with torch's positional arguments means the same here
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    their_order = [k for k, v in theirs.items() if v.kind is positional]
    our_order = [k for k, v in ours.items() if v.kind is positional]
    assert our_order[:len(their_order)] == their_order, (our_order, their_order)
    for flag in ("capturable", "differentiable"):
        if flag not in theirs:
            continue
        assert ours[flag].default is False
        p = [torch.zeros(3, requires_grad=True)]
        opt = getattr(optimlab, name)(p, **{flag: False})
        assert opt.param_groups[0][flag] is False
        assert getattr(torch.optim, name)(p, **{flag: False}).param_groups[0][flag] is False
        with pytest.raises(ValueError, match=rf"{name}\({flag}=True\) is not supported.*"
                                             rf"torch\.optim\.{name}"):
            getattr(optimlab, name)(p, **{flag: True})
        with pytest.raises(ValueError, match=f"{flag} must be a bool"):
            getattr(optimlab, name)(p, **{flag: 1})


def test_schedule_free_adamw_refuses_a_zero_interpolation():
    """eval() recovers x from y and z by dividing by beta1, so 0 is refused up front (it
    raised ZeroDivisionError at eval() after training)."""
    with pytest.raises(ValueError, match=r"betas\[0\] must be in \(0, 1\)"):
        optimlab.ScheduleFreeAdamW([torch.zeros(2, requires_grad=True)], betas=(0.0, 0.999))


RULE_CLASSES = [info for info in TABLE
                if issubclass(info.cls, optimlab.optim.base.RuleOptimizer)]


#: the switches, which took any value: every constructor argument whose default is a bool
#: (maximize everywhere, a driver flag; amsgrad, nesterov, centered, ...)
SWITCHES = [pytest.param(info, name, id=f"{info.cls.__name__}-{name}")
            for info in RULE_CLASSES
            for name, arg in inspect.signature(info.cls.__init__).parameters.items()
            if isinstance(arg.default, bool)
            and name not in ("skip_nonfinite", "capturable", "differentiable")]  # torch's flags


def test_every_rule_optimizer_takes_maximize():
    assert sum(p.values[1] == "maximize" for p in SWITCHES) == len(RULE_CLASSES)


@pytest.mark.parametrize("info, name", SWITCHES)
def test_a_switch_is_a_bool(info, name):
    """``maximize="False"`` maximized, as did ``amsgrad="no"``, ``nesterov="no"``,
    ``centered="no"``... (a non-empty string is true): every bool argument refuses what is
    no bool, in the constructor and in a param group, and takes NumPy's bool, stored as
    Python's."""
    for bad in ("False", 1):
        with pytest.raises(ValueError, match=rf"^{name} must be a bool, got"):
            _construct(info, **{name: bad})
    opt = _construct(info)
    extra = make_params(torch.float64, CASES[info.cls.__name__][0].shapes)[:1]
    with pytest.raises(ValueError, match=rf"^param group 1: {name} must be a bool, got 'no'$"):
        opt.add_param_group({"params": extra, name: "no"})
    assert len(opt.param_groups) == 1
    default = inspect.signature(info.cls.__init__).parameters[name].default
    opt.add_param_group({"params": extra, name: np.bool_(default)})
    assert type(opt.param_groups[1][name]) is bool


@pytest.mark.parametrize("cls, name", [(optimlab.LBFGS, "maximize"), (optimlab.Adam, "skip_nonfinite")])
def test_the_other_switches_are_bools_too(cls, name):
    """L-BFGS (no RuleOptimizer) took maximize="no" for true, and every optimizer its
    skip_nonfinite="no" (which may also be a process group: tests/optim/test_distributed.py)."""
    for bad in ("no", 1):
        with pytest.raises(ValueError, match=rf"^{name} must be a bool(?: or a torch\.distributed "
                                             rf"ProcessGroup)?, got"):
            cls([torch.zeros(2, requires_grad=True)], **{name: bad})
    cls([torch.zeros(2, requires_grad=True)], **{name: np.bool_(True)})


def test_muon_momentum_must_be_below_one():
    """momentum 1.5 diverges (the buffer grows by 1.5 a step) and 1 never forgets: Muon
    refuses both, in the words of LARS and PSGD-Kron."""
    w = [torch.zeros(3, 2, requires_grad=True)]
    for bad in (1.5, 1.0):
        with pytest.raises(ValueError, match=r"^momentum must be in \[0, 1\), got"):
            optimlab.Muon(w, momentum=bad)
    optimlab.Muon(w, momentum=0.0)


def test_shampoo_rmsprop_graft_sums_when_beta2_is_one():
    """beta2 = 1 sums the statistics, and RMSProp's graft too: it weighted g^2 by
    1 - beta2 = 0, so its sum of squares stayed 0 and the first step was g / graft_eps
    (about 1e9). It is now AdaGrad's sum, so the two grafts take the same step."""
    steps = {}
    for graft in ("adagrad", "rmsprop"):
        torch.manual_seed(0)
        w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        start = w.detach().clone()
        opt = optimlab.Shampoo([w], lr=0.01, betas=(0.9, 1.0), graft=graft)
        ((w - 1) ** 2).sum().backward()
        opt.step()
        steps[graft] = w.detach() - start
    assert steps["rmsprop"].abs().max() < 0.1
    torch.testing.assert_close(steps["rmsprop"], steps["adagrad"], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["Prodigy", "DAdaptAdam", "DAdaptSGD"])
def test_a_group_with_its_own_d0_starts_its_estimate_there(name):
    """``[{"params": [w], "d0": 1e-3}]`` steps as ``([w], d0=1e-3)``: Prodigy's group took
    its d and d_max from the constructor's d0 (1e-6), so the group's d0 was ignored."""
    runs = []
    for grouped in (False, True):
        w = torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
        cls = getattr(optimlab, name)
        opt = cls([{"params": [w], "d0": 1e-3}]) if grouped else cls([w], d0=1e-3)
        for _ in range(5):
            opt.zero_grad()
            (w ** 2).sum().backward()
            opt.step()
        runs.append((w.detach(), opt.param_groups[0]["d"]))
    (w_ctor, d_ctor), (w_group, d_group) = runs
    assert torch.equal(w_ctor, w_group)
    assert d_ctor == d_group > 1e-3 * 0.999


@pytest.mark.parametrize("name", ["Prodigy", "DAdaptAdam", "DAdaptSGD"])
def test_a_group_with_lr_zero_is_frozen_and_the_constructor_still_wants_a_positive_lr(name):
    """The docstrings promise that a group whose lr is 0 is left untouched (as the packages
    do, and accept it in a group dict); the group check refused it, with the constructor's
    'lr must be in (0, inf)'. The constructor's own lr stays positive, as the packages'."""
    cls = getattr(optimlab, name)
    a = torch.tensor([1.5, -2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)
    frozen = b.detach().clone()
    opt = cls([{"params": [a]}, {"params": [b], "lr": 0.0}], d0=1e-2)
    for _ in range(10):
        opt.zero_grad()
        ((a ** 2).sum() + (b ** 2).sum()).backward()
        opt.step()
    assert torch.equal(b.detach(), frozen)
    assert not torch.equal(a.detach(), torch.tensor([1.5, -2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^lr must be in \(0, inf\), got 0"):
        cls([a], lr=0.0)
    with pytest.raises(ValueError, match=r"^param group 2: lr must be in \[0, inf\), got -1"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "lr": -1.0})


def test_prodigy_in_bfloat16_never_grows_d_as_documented():
    """Prodigy's docstring recommended bfloat16 parameters, in which the first steps round
    away and d stays at d0; it now says so (and recommends float32 masters or a larger d0),
    as the catalog does."""
    d = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        w = torch.randn(16, 8).to(dtype).requires_grad_()
        opt = optimlab.Prodigy([w])
        for _ in range(30):
            opt.zero_grad()
            ((w.float() - 1) ** 2).sum().backward()
            opt.step()
        d[dtype] = opt.param_groups[0]["d"]
    assert d[torch.float32] > 1e-2 and d[torch.bfloat16] == 1e-6
    doc = " ".join(optimlab.Prodigy.__doc__.split())
    assert "Keep float32 or bfloat16" not in doc
    assert ":math:`d` never grows" in doc and "Keep float32 parameters" in doc


def test_nadam_and_radam_say_what_the_other_implementations_do():
    """Two corrected claims: Keras's Nadam has Dozat's momentum schedule too (only optax's
    nadam has none), and RAdam's threshold is torch's rho_t > 5 where the authors' code
    has rho_t >= 5."""
    nadam = " ".join(optimlab.NAdam.__doc__.split())
    assert "Keras and optax use a constant" not in nadam
    assert "Keras's ``Nadam`` follows Dozat's schedule too" in nadam
    assert "optax's ``nadam`` has none" in nadam
    radam = " ".join(optimlab.RAdam.__doc__.split())
    assert "as in torch and the authors' code" not in radam
    assert r"needs :math:`\rho_t > 5`, as in torch" in radam
    assert r"authors' code takes it from :math:`\rho_t \ge 5`" in radam


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_a_step_leaves_the_global_random_numbers_alone(case, monkeypatch):
    """``torch.optim``'s steps never draw from the process's generator, so a seeded script's
    dropout masks and shuffles do not depend on the optimizer. optimlab's first step builds
    a fused kernel (probing and tracing the rule on example tensors): with the caches
    emptied, every case builds its kernels here and must still leave the generator as it
    was."""
    from optimlab.optim import kernels

    monkeypatch.setattr(kernels, "_KERNELS", {})
    monkeypatch.setattr(kernels, "_PROBES", {})
    monkeypatch.setattr(kernels, "_cached_source", lambda identity: None)  # trace again
    for dtype in (torch.float32, torch.float64):
        params = make_params(dtype, case.shapes)
        opt = case.build(params)
        torch.manual_seed(1234)
        before = torch.get_rng_state()
        train_steps(opt, params, 3, _sign(case), case.needs_closure)
        assert torch.equal(torch.get_rng_state(), before), (case.id, dtype)


def test_a_groups_own_initial_accumulator_value_starts_its_adagrad_sums():
    """The README's one deliberate difference from torch.optim.Adagrad, which starts every
    group's sums at the constructor's value."""
    sums = {}
    for module in (optimlab, torch.optim):
        a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
        opt = module.Adagrad([{"params": [a]}, {"params": [b], "initial_accumulator_value": 0.5}],
                             lr=0.1)
        a.grad, b.grad = torch.ones(2), torch.ones(2)
        opt.step()
        sums[module.__name__] = (opt.state[a]["sum"].tolist(), opt.state[b]["sum"].tolist())
    assert sums["optimlab"] == ([1.0, 1.0], [1.5, 1.5])
    assert sums["torch.optim"] == ([1.0, 1.0], [1.0, 1.0])


def _hogwild_step(opt, params):
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()


@pytest.mark.parametrize("mode", [{}, {"fused": False}, {"foreach": False, "fused": False}],
                         ids=["default", "plain", "per-tensor"])
def test_adagrad_share_memory_lets_another_process_update_the_sums(mode):
    """torch.optim.Adagrad.share_memory (Hogwild training) puts the sums in shared memory;
    optimlab's Adagrad lacked the method. A forked process's step must reach the parent's
    sums and parameters, on every path, and the sums stay the state's own tensors."""
    import multiprocessing

    params = [torch.zeros(3, requires_grad=True), torch.zeros(2, 2, requires_grad=True)]
    for p in params:
        p.data.share_memory_()
    opt = optimlab.Adagrad(params, lr=0.1, **mode)
    opt.share_memory()
    sums = [opt.state[p]["sum"] for p in params]
    assert all(s.is_shared() for s in sums)
    child = multiprocessing.get_context("fork").Process(target=_hogwild_step, args=(opt, params))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert all(torch.equal(s, torch.ones_like(s)) for s in sums)  # the child's step
    assert all(torch.allclose(p, torch.full_like(p, -0.1)) for p in params)
    _hogwild_step(opt, params)  # and the parent's own steps keep the shared tensors
    assert [opt.state[p]["sum"] for p in params] == sums and all(s.is_shared() for s in sums)
    assert all(torch.equal(s, torch.full_like(s, 2.0)) for s in sums)


def test_adagrad_share_memory_refuses_compact_sums():
    opt = optimlab.Adagrad([torch.zeros(3, requires_grad=True)], state_precision="bfloat16")
    with pytest.raises(ValueError, match="full precision"):
        opt.share_memory()


@pytest.mark.parametrize("kwargs", [{}, {"fused": True}, {"fused": False}, {"foreach": False}],
                         ids=["default", "fused", "plain", "per-tensor"])
def test_asgd_takes_a_1_element_tensor_lr_as_torch_does(kwargs):
    """torch.optim.ASGD steps with ``lr=torch.tensor([0.01])`` and keeps a 0-d ``eta``; the
    fused path failed on the (1,)-shaped eta the state began with (it packs 0-d scalars)."""
    runs = []
    for cls, extra in ((torch.optim.ASGD, {}), (optimlab.ASGD, kwargs)):
        torch.manual_seed(0)
        params = [torch.randn(3, dtype=torch.float64, requires_grad=True),
                  torch.randn(2, dtype=torch.float64, requires_grad=True)]
        opt = cls(params, lr=_T([0.01], dtype=torch.float64), t0=1, **extra)
        for _ in range(4):
            for p in params:
                p.grad = torch.sin(3 * p.detach())
            opt.step()
        assert all(opt.state[p]["eta"].shape == () for p in params)
        runs.append([p.detach() for p in params])
    if kwargs.get("fused") is False or "foreach" in kwargs:  # torch's own operations
        assert all(torch.equal(a, b) for a, b in zip(runs[1], runs[0]))
    else:  # the kernel: float64, a few ulps from torch's rounding after 4 steps
        assert_params_close(runs[1], runs[0], rtol=1e-12)


def test_dtensor_is_found_where_torch_2_4_kept_it(monkeypatch):
    """torch 2.4 (the oldest torch the package takes) has DTensor in
    ``torch.distributed._tensor`` only; FSDP2's parameters are DTensors there too."""
    import sys
    import types

    import torch.distributed._tensor as old  # 2.13 still keeps the old name (imported now)
    import torch.distributed.tensor as public

    from optimlab.optim import base

    package = types.ModuleType("torch.distributed.tensor")  # as 2.4's: no DTensor in it
    package.__path__ = public.__path__
    monkeypatch.setitem(sys.modules, "torch.distributed.tensor", package)
    assert base._dtensor_class() is old.DTensor is public.DTensor
