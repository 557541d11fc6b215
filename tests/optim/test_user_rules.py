"""Optimizers a user writes: a :class:`RuleOptimizer` subclass with its own ``init`` and
``update`` (written as ``lion.py`` is), or a subclass of a built-in. Each rule steps the same
on every path (fused, multi-tensor, per-tensor, a group of one tensor) as a hand-written
reference, or is refused clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import optimlab
from optimlab.optim import adam as adam_mod
from optimlab.optim import kernels
from optimlab.optim import rule as rule_mod
from optimlab.optim.base import RuleOptimizer
from optimlab.optim.capabilities import Capabilities, hyperparameters
from optimlab.optim.rule import nonzero
from tests.optim.ddp_worker import ONE_RANK_GLOO

F64 = torch.float64
SHAPES = [(5,), (2, 3)]
#: the paths every rule is run on: keyword arguments and how many tensors the group holds
PATHS = {
    "fused": (dict(fused=True), 2),
    "plain": (dict(fused=False), 2),
    "per-tensor": (dict(fused=False, foreach=False), 2),
    "one tensor": (dict(), 1),  # the default flags: fused where it can be
    "one tensor, plain": (dict(fused=False), 1),
}


def _compiler() -> bool:
    try:
        kernels.compiler()
    except kernels.CompilerUnavailable:
        return False
    return True


def _skip_without_compiler(kw: dict) -> None:
    if kw.get("fused") is True and not _compiler():
        pytest.skip("no C compiler")


def _params(n: int, shapes=SHAPES) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(s, dtype=F64, generator=gen).requires_grad_() for s in shapes[:n]]


def _grads(step: int, params) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, dtype=F64, generator=gen) for p in params]


def _run(opt, params, steps: int = 3) -> None:
    """Steps with gradients written by backward into the same ``.grad`` tensors
    (``zero_grad(set_to_none=False)``), as a training loop does."""
    for step in range(steps):
        opt.zero_grad(set_to_none=False)
        sum((c * p).sum() for c, p in zip(_grads(step, params), params)).backward()
        opt.step()


def _reference(update, init, params, hp: dict, steps: int = 3):
    """The rule by hand: each tensor alone, on fresh copies, its state copied every step."""
    out, states = [], []
    for i, p0 in enumerate(params):
        p = p0.detach().clone()
        state = init(p)
        for step in range(steps):
            g = _grads(step, params)[i]
            new_state = dict(state)
            p = update(p.clone(), g.clone(), new_state, step=step + 1, **hp).clone()
            state = {k: v.clone() for k, v in new_state.items()}
        out.append(p)
        states.append(state)
    return out, states


def _check(cls, hp: dict, path: str, update=None, init=None, steps: int = 3) -> None:
    kw, n = PATHS[path]
    _skip_without_compiler(kw)
    if kw.get("fused") is True and not cls.capabilities.fusable:
        pytest.skip("a rule that is not fusable has no fused path")
    params = _params(n)
    expected, expected_states = _reference(update or cls.update, init or cls.init, params, hp,
                                           steps)
    opt = cls(params, **hp, **kw)
    _run(opt, params, steps)
    for p, want, want_state in zip(params, expected, expected_states):
        torch.testing.assert_close(p.detach(), want, rtol=1e-12, atol=1e-12)
        for key, value in want_state.items():
            torch.testing.assert_close(opt.state[p][key], value, rtol=1e-12, atol=1e-12,
                                       msg=f"state[{key!r}]")


class _LrRule(RuleOptimizer):
    """A user rule's front end taking ``lr`` and the driver's path flags (the rules below
    set ``init``, ``update`` and ``capabilities``)."""

    def __init__(self, params, lr=0.1, *, foreach=None, fused=None):
        super().__init__(params, dict(lr=lr, foreach=foreach, fused=fused, maximize=False))


# -- 1. one value kept under two names (fused path) --------------------------------------------
def _dup_init(p, **_):
    return {"a": torch.zeros_like(p), "b": torch.zeros_like(p)}


def _dup_update(p, g, state, *, lr, **_):
    new = 0.9 * state["a"] + g
    state["a"] = new
    state["b"] = new  # a kept copy of the momentum
    return p - lr * (state["a"] + state["b"])


class DupState(_LrRule):
    """One traced value is two state entries."""

    init = staticmethod(_dup_init)
    update = staticmethod(_dup_update)
    capabilities = Capabilities(fusable=True)


def _last_init(p, **_):
    return {"last": torch.zeros_like(p)}


def _last_update(p, g, state, *, lr, **_):
    new = p - lr * g
    state["last"] = new  # keep the parameter this step produced
    return new


class KeepNewParam(_LrRule):
    """One traced value is the new parameter and a state entry."""

    init = staticmethod(_last_init)
    update = staticmethod(_last_update)
    capabilities = Capabilities(fusable=True)


def _normed_init(p, **_):
    return {"m": torch.zeros_like(p), "u": torch.zeros_like(p), "u2": torch.zeros_like(p)}


def _normed_update(p, g, state, *, lr, **_):
    m = state["m"] = 0.9 * state["m"] + g
    u = m / (torch.linalg.vector_norm(m) + 1.0)  # after the norm: the kernel's second pass
    state["u"] = u
    state["u2"] = u
    return p - lr * u


class DupAfterNorm(_LrRule):
    """One value of the second pass (after a norm) is two state entries."""

    init = staticmethod(_normed_init)
    update = staticmethod(_normed_update)
    capabilities = Capabilities(fusable=True)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cls", [DupState, KeepNewParam, DupAfterNorm])
def test_one_value_in_two_places_is_written_to_both(cls, path):
    """A fused kernel wrote such a value to one of its outputs only: DupState's ``a`` stayed
    0, KeepNewParam's parameter did not move (and ``fused=None``, the CPU default, took it)."""
    _check(cls, dict(lr=0.1), path)


# -- 2. the gradient or the parameter kept in the state (per-tensor path) ---------------------
def _prev_init(p, **_):
    return {"prev_g": torch.zeros_like(p), "prev_p": p.clone()}


def _prev_update(p, g, state, *, lr, **_):
    out = p - lr * (2 * g - state["prev_g"]) + 0.5 * (p - state["prev_p"])
    state["prev_g"] = g  # Adan, MARS: the previous gradient
    state["prev_p"] = p  # the previous parameter
    return out


class KeepPrevious(_LrRule):
    """Keeps ``g`` and ``p`` themselves in its state."""

    init = staticmethod(_prev_init)
    update = staticmethod(_prev_update)
    capabilities = Capabilities(fusable=True)


class KeepPreviousTensorByTensor(KeepPrevious):
    """The same rule, stepped tensor by tensor only."""

    capabilities = Capabilities(multi_tensor=False, fusable=False)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cls", [KeepPrevious, KeepPreviousTensorByTensor])
def test_state_keeping_g_or_p_is_a_copy(cls, path):
    """On the per-tensor path the state shared the memory of ``.grad`` (zeroed and written
    by the next backward) and of the parameter (overwritten by the step's result)."""
    _check(cls, dict(lr=0.1), path)


def test_a_zero_dim_parameter_keeps_a_copy_of_g_and_p():
    """A 0-d parameter always steps alone (the per-tensor path), even in a larger group."""
    params = [torch.tensor(1.5, dtype=F64, requires_grad=True),
              torch.ones(3, dtype=F64, requires_grad=True)]
    expected, _ = _reference(_prev_update, _prev_init, params, dict(lr=0.1))
    opt = KeepPrevious(params, fused=False)
    _run(opt, params)
    for p, want in zip(params, expected):
        torch.testing.assert_close(p.detach(), want, rtol=1e-12, atol=1e-12)
        assert opt.state[p]["prev_g"].untyped_storage().data_ptr() \
            != p.grad.untyped_storage().data_ptr()


@pytest.mark.parametrize("fused", [False, True])
def test_a_population_of_a_rule_keeping_g_and_p_steps_each_member_as_alone(fused):
    """A registered rule reaches populations (optimlab.register): their plain path kept
    state["prev_g"] = g as the stacked gradient itself (1.6 off after four steps)."""
    optimlab.register(KeepPrevious, name="keepprevious_population_test")
    try:
        lrs = [0.1, 0.2, 0.3]
        stacked = torch.ones(3, 4, dtype=F64, requires_grad=True)
        pop = optimlab.Population("keepprevious_population_test", [stacked],
                                  {"lr": lrs, "fused": fused})
        alone = [torch.ones(4, dtype=F64, requires_grad=True) for _ in lrs]
        opts = [KeepPrevious([w], lr=lr, fused=False) for w, lr in zip(alone, lrs)]
        for step in range(4):
            pop.zero_grad(set_to_none=False)
            ((stacked - 2) ** 2 * (step + 1)).sum().backward()
            pop.step()
            for w, opt in zip(alone, opts):
                opt.zero_grad(set_to_none=False)
                ((w - 2) ** 2 * (step + 1)).sum().backward()
                opt.step()
        torch.testing.assert_close(stacked.detach(), torch.stack([w.detach() for w in alone]),
                                   rtol=1e-12, atol=1e-12)
    finally:
        optimlab.unregister("keepprevious_population_test")


# -- 3. nonzero() on a value computed from a hyperparameter (fused path) ----------------------
def _mu_init(p, **_):
    return {"m": torch.zeros_like(p)}


def _derived_update(p, g, state, *, lr, mu, **_):
    if nonzero(mu * 1.0):  # a derived value (as nonzero(1 - beta), nonzero(lr * wd))
        m = state["m"] = mu * state["m"] + g
        return p - lr * m
    return p - 2 * lr * g  # a branch that differs where mu == 0


def _raw_update(p, g, state, *, lr, mu, **_):
    if nonzero(mu):  # the hyperparameter itself, as the contract asks
        m = state["m"] = mu * state["m"] + g
        return p - lr * m
    return p - 2 * lr * g


class DerivedBranch(RuleOptimizer):
    init = staticmethod(_mu_init)
    update = staticmethod(_derived_update)
    capabilities = Capabilities(fusable=True)

    def __init__(self, params, lr=0.1, mu=0.0, *, foreach=None, fused=None):
        super().__init__(params, dict(lr=lr, mu=mu, foreach=foreach, fused=fused,
                                      maximize=False))


class RawBranch(DerivedBranch):
    update = staticmethod(_raw_update)


@pytest.mark.parametrize("mu", [0.0, 0.5])
@pytest.mark.parametrize("path", PATHS)
def test_nonzero_on_a_derived_value_runs_the_plain_path(path, mu):
    """The kernel took the "nonzero" branch where ``mu`` is 0 (plain -0.20, fused -0.10): it
    is refused now, so ``fused=None`` steps on the plain path and ``fused=True`` says why."""
    if PATHS[path][0].get("fused") is True:
        _skip_without_compiler(PATHS[path][0])
        params = _params(2)
        opt = DerivedBranch(params, mu=mu, fused=True)
        with pytest.raises(RuntimeError, match=r"nonzero\(\) on a value computed"):
            _run(opt, params, steps=1)
        return
    _check(DerivedBranch, dict(lr=0.1, mu=mu), path)


@pytest.mark.parametrize("mu", [0.0, 0.5])
@pytest.mark.parametrize("path", PATHS)
def test_nonzero_on_a_hyperparameter_itself_still_fuses(path, mu):
    _check(RawBranch, dict(lr=0.1, mu=mu), path)


# -- 4. a built-in subclassed to take one more hyperparameter ---------------------------------
class ClipAdam(optimlab.Adam):
    """Adam on clipped gradients, a hyperparameter added the torch way."""

    @staticmethod
    def update(p, g, state, *, clip=1.0, **hp):
        return adam_mod.update(p, torch.clamp(g, -clip, clip), state, **hp)

    def __init__(self, params, lr=1e-3, *, clip=1.0, **kw):
        super().__init__(params, lr=lr, **kw)
        self.defaults["clip"] = clip
        for group in self.param_groups:
            group.setdefault("clip", clip)


@pytest.mark.parametrize("path", PATHS)
def test_a_subclass_adding_a_hyperparameter_takes_group_overrides(path):
    """``add_param_group`` checks a group that overrides anything by running the subclass's
    constructor on a bare probe, which went on past ``super().__init__()`` into the user's
    code: AttributeError 'param_groups'."""
    kw, n = PATHS[path]
    _skip_without_compiler(kw)
    params = _params(n)
    others = [torch.ones(3, dtype=F64, requires_grad=True)]
    opt = ClipAdam([{"params": params, "lr": 0.05}, {"params": others, "clip": 0.1}],
                   clip=0.5, **kw)
    assert [g["clip"] for g in opt.param_groups] == [0.5, 0.1]
    assert ClipAdam.checked_defaults(lr=0.01)["lr"] == 0.01
    reference = optimlab.Adam([p.detach().clone().requires_grad_() for p in params], lr=0.05,
                              fused=False)
    for step in range(3):
        opt.zero_grad(set_to_none=False)
        sum((c * p).sum() for c, p in zip(_grads(step, params), params)).backward()
        opt.step()
        for q, g in zip(reference.param_groups[0]["params"], _grads(step, params)):
            q.grad = torch.clamp(g, -0.5, 0.5)
        reference.step()
    for p, q in zip(params, reference.param_groups[0]["params"]):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-12)


# -- 5. a subclass passing **kwargs on keeps its parent's checks ------------------------------
class NotedAdam(optimlab.Adam):
    def __init__(self, params, lr=1e-3, *, extra_note="x", **kw):
        super().__init__(params, lr=lr, **kw)


class KwargsRule(RuleOptimizer):
    init = staticmethod(_mu_init)
    update = staticmethod(_raw_update)
    capabilities = Capabilities(fusable=True)

    def __init__(self, params, lr=0.1, mu=0.5, *, foreach=None, fused=None, **kw):
        super().__init__(params, dict(lr=lr, mu=mu, foreach=foreach, fused=fused,
                                      maximize=False), **kw)


def test_hyperparameters_follow_kwargs_to_the_parent():
    names = hyperparameters(NotedAdam)
    assert {"lr", "betas", "eps", "weight_decay", "amsgrad"} <= set(names)
    assert names["betas"] == (0.9, 0.999) and names["lr"] == 1e-3
    # up to the base that takes a ``defaults`` dict, not into it
    assert set(hyperparameters(KwargsRule)) == {"lr", "mu"}


@pytest.mark.parametrize("path", PATHS)
def test_a_kwargs_subclass_checks_its_groups_as_its_parent(path):
    """``betas=(1.5, .999)`` in a group was accepted (and stepped with) by the subclass."""
    kw, n = PATHS[path]
    _skip_without_compiler(kw)
    params, other = _params(n), [torch.ones(2, dtype=F64, requires_grad=True)]
    with pytest.raises(ValueError, match="param group 1: betas"):
        NotedAdam([{"params": params}, {"params": other, "betas": (1.5, 0.999)}], **kw)
    opt = NotedAdam([{"params": params, "betas": (0.8, 0.99)}], lr=0.01, **kw)
    reference = optimlab.Adam([p.detach().clone().requires_grad_() for p in params], lr=0.01,
                              betas=(0.8, 0.99), fused=False)
    _run(opt, params)
    _run(reference, reference.param_groups[0]["params"])
    for p, q in zip(params, reference.param_groups[0]["params"]):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-12)


# -- 6. contract errors over a group, and the written contract --------------------------------
def _max_update(p, g, state, *, lr, **_):
    state["m"] = 0.9 * state["m"] + g
    return p - lr * state["m"] / (g.abs().max() + 1)  # a reduction a group does not offer


class MaxRule(_LrRule):
    init = staticmethod(_mu_init)
    update = staticmethod(_max_update)
    capabilities = Capabilities()


class MaxRuleTensorByTensor(MaxRule):
    capabilities = Capabilities(multi_tensor=False, fusable=False)


def test_a_group_wide_contract_error_says_what_a_rule_may_use():
    params = _params(2)
    opt = MaxRule(params, fused=False)
    with pytest.raises(AttributeError, match="'TensorList' object has no attribute 'max'") \
            as raised:
        _run(opt, params, steps=1)
    message = str(raised.value)
    assert "optimlab.optim.rule" in message and "multi_tensor=False" in message
    assert "vector_norm" in message


@pytest.mark.parametrize("path", PATHS)
def test_a_tensor_by_tensor_rule_may_reduce(path):
    """What the message points to: ``Capabilities(multi_tensor=False, fusable=False)``."""
    _check(MaxRuleTensorByTensor, dict(lr=0.1), path)


def test_the_contract_is_written_down():
    doc = rule_mod.__doc__
    for words in ("vector_norm", ".item()", "nonzero(1 - beta)", 'state["prev_g"] = g',
                  "multi_tensor=False", "pure function"):
        assert words in doc, words


_SHARDED_USER_RULES = ONE_RANK_GLOO + """
from optimlab.optim.base import RuleOptimizer
from optimlab.optim.capabilities import Capabilities


def _make(update):
    class Rule(RuleOptimizer):
        init = staticmethod(lambda p, **_: {})
        capabilities = Capabilities()  # the default record: "elementwise", shards

        def __init__(self, params, lr=0.1, *, maximize=False):
            super().__init__(params, dict(lr=lr, maximize=maximize))
    Rule.update = staticmethod(update)
    return Rule


Normed = _make(lambda p, g, state, *, lr, **_: p - lr * g / (torch.linalg.vector_norm(g) + 1e-12))
Plain = _make(lambda p, g, state, *, lr, **_: p - lr * g)
w = torch.nn.Parameter(distribute_tensor(torch.ones(4, 2), init_device_mesh("cpu", (1,)), [Shard(0)]))
try:
    Normed([w])
    print("normed: taken")
except ValueError as err:
    print("normed: refused:", "cannot step the sharded parameter" in str(err))
opt = Plain([w])
w.grad = torch.ones_like(w)
opt.step()
print("plain:", round(float(w.to_local()[0, 0]), 6))
dist.destroy_process_group()
"""


def test_a_user_rule_that_takes_a_norm_is_refused_for_sharded_parameters():
    """A user's rule under the default Capabilities (which says it steps shards) that takes
    a norm would take it over one process's shard under FSDP2: the probe step sees the
    norm and the front end refuses the sharded parameter, as it refuses LAMB's; an
    elementwise user rule steps the shard."""
    pytest.importorskip("torch.distributed.tensor")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not built")
    done = subprocess.run([sys.executable, "-c", _SHARDED_USER_RULES], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["normed: refused: True", "plain: 0.9"], done.stdout
