"""How a population batches a rule, and what it refuses where its members could not follow
their own runs.

1. A rule whose ``update`` reduces over a tensor (a norm, a sum, a mean, a max) but whose
   class says ``batching="elementwise"`` (the default of a ``Capabilities`` record, which a
   registered optimizer of one's own has) was called on the stacked ``[K, ...]`` tensor on
   the plain path, its reduction taking every member's values at once (13-18% of max|p|
   off after 20 steps). It is now mapped with vmap, or refused where vmap cannot run it.
   The built-ins declare their batching by hand: their modes stay as declared.
2. A member's ``momentum`` changed from 0 to nonzero with ``set_hparam``: the optimizer
   alone (and ``torch.optim.SGD``) starts its buffer afresh (or, for RMSprop, raises
   ``KeyError``), where the population's stacked buffer had been stepped for every member,
   so the member resumed from a stale row. Such a change is now refused once the
   population holds the buffer, and taken where it is exact.

Tolerances: a vmapped reduction may add in another order than the single tensor's, so a
member is compared with the optimizer alone within the rounding of the reduction. A sum of
n terms is within ``n * eps`` relative of any other order's (the recursive summation
bound); a norm, a mean or a step's division and subtraction add a few roundings more, so
one step's change (at most ``lr`` in norm here, the rules dividing by the reduction) is
within ``(n + 4) * eps * lr`` of the other's, and the parameter within that plus one
rounding of ``max|p|`` per step: after T steps ``T * ((n + 4) * lr + 2 * max|p|) * eps``,
with ``eps = 2**-52`` (float64). The old code missed by 1e-2 and more.
"""

import gc
import weakref

import pytest
import torch

import optimlab
from optimlab import Population
from optimlab.optim.base import RuleOptimizer
from optimlab.optim.capabilities import Capabilities
from optimlab.optim.registry import available
from optimlab.optim.rule import nonzero

F64 = torch.float64
EPS64 = 2.0 ** -52
K, STEPS = 3, 20
SHAPES = [(K, 3, 4), (K, 5)]


# -- rules of one's own ----------------------------------------------------------------------
def _m_init(p, **_):
    return {"m": torch.zeros_like(p)}


def _reduction(kind):
    """A whole-tensor reduction of ``m`` that is positive (so the rule may divide by it)."""
    return {
        "norm": lambda m: torch.linalg.vector_norm(m),
        "sum": lambda m: (m * m).sum(),
        "mean": lambda m: m.abs().mean(),
        "amax": lambda m: m.abs().amax(),
    }[kind]


def _rule(kind):
    reduce = _reduction(kind)

    def rule_update(p, g, state, *, lr, beta, **_):
        m = state["m"] = beta * state["m"] + g
        return p - lr * m / (reduce(m) + 1e-8)
    return rule_update


def _class(kind, caps):
    class Reducing(RuleOptimizer):
        """Momentum divided by a whole-tensor reduction of itself."""

        init = staticmethod(_m_init)
        update = staticmethod(_rule(kind))
        capabilities = caps

        def __init__(self, params, lr=1e-2, beta=0.9, *, maximize=False, fused=None):
            super().__init__(params, dict(lr=lr, beta=beta, maximize=maximize, fused=fused))

    return Reducing


@pytest.fixture
def registered():
    """Register classes under fresh names for one test; unregister them after it."""
    names = []

    def register(cls, name):
        optimlab.register(cls, name=name)
        names.append(name)
        return name
    yield register
    for name in names:
        optimlab.unregister(name)


def _start(dtype=F64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x0 = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES] for _ in range(STEPS)]
    return x0, grads


def _against_alone(name, hp, *, fused, transpose=False, steps=STEPS, dtype=F64):
    """Step a population and each member's optimizer alone on the same gradients; the
    population's parameters, each member's, and the largest |p| seen."""
    x0, grads = _start(dtype)
    if transpose:  # stacked parameters that are not contiguous: the plain path under None
        pp = [x.transpose(0, -1).contiguous().transpose(0, -1).requires_grad_() for x in x0]
        assert not pp[0].is_contiguous()
    else:
        pp = [x.clone().requires_grad_() for x in x0]
    pop = Population(name, pp, {**hp, "fused": fused})
    alone = []
    for k in range(K):
        ps = [x[k].clone().requires_grad_() for x in x0]
        alone.append((ps, optimlab.create(name, ps, fused=fused, **{
            a: (v[k] if isinstance(v, list) else v) for a, v in hp.items()})))
    for gs in grads[:steps]:
        for p, g in zip(pp, gs):
            p.grad = g.clone()
        pop.step()
        for k, (ps, opt) in enumerate(alone):
            for p, g in zip(ps, gs):
                p.grad = g[k].clone()
            opt.step()
    top = max(float(p.detach().abs().max()) for p in pp)
    return pop, pp, [ps for ps, _ in alone], top


def _assert_members_close(pp, alone, atol):
    for i, p in enumerate(pp):
        for k, ps in enumerate(alone):
            torch.testing.assert_close(p.detach()[k], ps[i].detach(), rtol=0, atol=atol,
                                       msg=lambda m, i=i, k=k: f"parameter {i} member {k}: {m}")


def _bound(lr, top, n=12):
    """See the module docstring: ``n`` the largest tensor's elements per member."""
    return STEPS * ((n + 4) * lr + 2 * top) * EPS64


LRS = [0.01, 0.05, 0.1]


#: the audit's rule with the default record, fusable or not, and the reductions the contract
#: leaves to a rule stepped tensor by tensor
CAPS = {
    "norm-fusable": Capabilities(moments=("m",), fusable=True),
    "norm": Capabilities(moments=("m",)),
    "sum": Capabilities(moments=("m",), multi_tensor=False),
    "mean": Capabilities(moments=("m",), multi_tensor=False),
    "amax": Capabilities(moments=("m",), multi_tensor=False),
}


@pytest.mark.parametrize("case", list(CAPS))
@pytest.mark.parametrize("fused, transpose", [(False, False), (None, True)])
def test_a_reducing_rule_of_ones_own_steps_each_member_as_alone(registered, case, fused,
                                                                 transpose):
    """The audit's rule (``p - lr*m/(vector_norm(m)+eps)``, default ``Capabilities``) and
    other reductions, on the plain path: ``fused=False``, or the default where the plain
    path runs (stacked parameters that are not contiguous), or a class that cannot fuse."""
    caps = CAPS[case]
    if not caps.fusable:
        fused = False
    name = registered(_class(case.split("-")[0], caps), f"reducing_{case.replace('-', '_')}")
    pop, pp, alone, top = _against_alone(name, {"lr": LRS, "beta": [0.9, 0.5, 0.0]},
                                         fused=fused, transpose=transpose)
    _assert_members_close(pp, alone, _bound(max(LRS), top))
    assert pop.mode == "vmap"


def test_a_reducing_rule_fused_is_unchanged(registered):
    """The fused path took norms per member already (each member's slice is a kernel
    tensor); it stays bit for bit."""
    name = registered(_class("norm", Capabilities(moments=("m",), fusable=True)), "reducing_f")
    pop, pp, alone, _ = _against_alone(name, {"lr": LRS, "beta": 0.9}, fused=True)
    _assert_members_close(pp, alone, 0.0)


def test_an_elementwise_rule_of_ones_own_stays_elementwise(registered):
    def rule_update(p, g, state, *, lr, beta, **_):
        m = state["m"] = torch.lerp(state["m"], g, 1 - beta)
        return p - lr * torch.sign(m)

    class SignMomentum(RuleOptimizer):
        """Sign descent with momentum (README's)."""

        init = staticmethod(_m_init)
        update = staticmethod(rule_update)
        capabilities = Capabilities(moments=("m",), fusable=True)

        def __init__(self, params, lr=1e-2, beta=0.9, *, maximize=False, fused=None):
            super().__init__(params, dict(lr=lr, beta=beta, maximize=maximize, fused=fused))

    name = registered(SignMomentum, "signmomentum_batching_test")
    pop, pp, alone, _ = _against_alone(name, {"lr": LRS}, fused=False)
    assert pop.mode == "elementwise"
    _assert_members_close(pp, alone, 0.0)  # elementwise: the same operations, bit for bit


def test_a_reduction_behind_a_switch_maps_only_where_the_switch_is_on(registered):
    """The answer is per class and switches: one class, two modes."""
    def rule_update(p, g, state, *, lr, beta, normalize, **_):
        m = state["m"] = beta * state["m"] + g
        if normalize:
            m = m / (torch.linalg.vector_norm(m) + 1e-8)
        return p - lr * m

    class Maybe(RuleOptimizer):
        """Momentum, normalised where asked."""

        init = staticmethod(_m_init)
        update = staticmethod(rule_update)
        capabilities = Capabilities(moments=("m",))

        def __init__(self, params, lr=1e-2, beta=0.9, normalize=False, *, maximize=False,
                     fused=None):
            super().__init__(params, dict(lr=lr, beta=beta, normalize=normalize,
                                          maximize=maximize, fused=fused))

    name = registered(Maybe, "maybe_normalised")
    plain, *_ = _against_alone(name, {"lr": LRS, "normalize": False}, fused=None, steps=1)
    assert plain.mode == "elementwise"
    normalised, pp, alone, top = _against_alone(name, {"lr": LRS, "normalize": True},
                                                fused=None)
    _assert_members_close(pp, alone, _bound(max(LRS), top))
    assert normalised.mode == "vmap"


def test_a_reducing_rule_vmap_cannot_run_is_refused(registered):
    """``.item()`` of a norm: vmap cannot map it; on the stacked tensor it read one number
    for all members (silently wrong before)."""
    def rule_update(p, g, state, *, lr, beta, **_):
        m = state["m"] = beta * state["m"] + g
        return p - lr * m / (torch.linalg.vector_norm(m).item() + 1e-8)

    class ItemRule(RuleOptimizer):
        """Reads a norm as a Python number."""

        init = staticmethod(_m_init)
        update = staticmethod(rule_update)
        capabilities = Capabilities(multi_tensor=False)

        def __init__(self, params, lr=1e-2, beta=0.9, *, maximize=False, fused=None):
            super().__init__(params, dict(lr=lr, beta=beta, maximize=maximize, fused=fused))

    name = registered(ItemRule, "itemrule_batching_test")
    with pytest.raises(ValueError, match=r"reduces over a tensor.*vmap.*batching='member'"):
        Population(name, [torch.zeros(K, 4, dtype=F64, requires_grad=True)], {"lr": LRS})

    class ItemRuleByMember(ItemRule):
        """The same, declaring what its message asks."""

        capabilities = Capabilities(multi_tensor=False, batching="member")

    name = registered(ItemRuleByMember, "itemrule_member_test")
    pop, pp, alone, _ = _against_alone(name, {"lr": LRS}, fused=None)
    assert pop.mode == "member"
    _assert_members_close(pp, alone, 0.0)


def test_a_reducing_init_is_refused(registered):
    def rule_init(p, **_):
        return {"m": torch.zeros_like(p), "scale": torch.linalg.vector_norm(p) + torch.zeros_like(p)}

    def rule_update(p, g, state, *, lr, **_):
        return p - lr * state["scale"] * g

    class ScaledInit(RuleOptimizer):
        """Steps scaled by the parameter's first norm."""

        init = staticmethod(rule_init)
        update = staticmethod(rule_update)
        capabilities = Capabilities()

        def __init__(self, params, lr=1e-2, *, maximize=False):
            super().__init__(params, dict(lr=lr, maximize=maximize))

    name = registered(ScaledInit, "scaledinit_batching_test")
    with pytest.raises(ValueError, match="init reduces over a tensor"):
        Population(name, [torch.ones(K, 4, dtype=F64, requires_grad=True)], {"lr": LRS})


def _builtin_cases():
    return [e.name for e in available(dense=True, user=False)]


@pytest.mark.parametrize("name", _builtin_cases())
@pytest.mark.parametrize("per_member", [False, True])
def test_builtins_keep_the_batching_they_declare(name, per_member):
    """Every built-in's mode is its ``Capabilities.batching_for`` (``"member"`` for a class
    that is no rule), with one value for all and with per-member rates."""
    entry = optimlab.resolve(name)
    p = torch.zeros(K, 4, 5, dtype=F64, requires_grad=True)
    hp = {}
    if per_member and "lr" in {**entry.info.defaults, **entry.preset}:
        hp["lr"] = [1e-3, 2e-3, 3e-3]
    pop = Population(name, [p], hp)
    declared = entry.capabilities.batching_for(pop.member_hparams[0])
    if not issubclass(entry.cls, RuleOptimizer):
        declared = "member"
    assert pop.mode == declared


@pytest.mark.parametrize("name, hp", [
    ("adam", {"amsgrad": True}), ("adamw", {"cautious": True}), ("sgd", {"nesterov": True,
                                                                      "momentum": 0.9}),
    ("rmsprop", {"centered": True, "momentum": [0.0, 0.5, 0.9]}),
    ("ademamix", {"t_alpha_beta3": 100}), ("lion", {"cautious": True})])
def test_builtins_with_their_switches_keep_the_batching_they_declare(name, hp):
    entry = optimlab.resolve(name)
    try:
        pop = Population(name, [torch.zeros(K, 4, 5, dtype=F64, requires_grad=True)], hp)
    except (TypeError, ValueError) as err:  # a switch this optimizer does not have
        pytest.skip(str(err))
    assert pop.mode == entry.capabilities.batching_for(pop.member_hparams[0])


# -- 2. a momentum from 0 to nonzero ---------------------------------------------------------
def _momentum_run(name, start, change, *, at=2, steps=5, fused=None, dampening=None):
    """A population of ``name`` and each member alone (and ``torch.optim``'s optimizer for
    member 0), ``momentum`` set to ``change`` before step ``at``."""
    torch.manual_seed(0)
    x0 = torch.randn(2, 4, dtype=F64)
    gs = [torch.randn(2, 4, dtype=F64) for _ in range(steps)]
    extra = {} if dampening is None else {"dampening": dampening}
    p = x0.clone().requires_grad_()
    pop = Population(name, [p], {"lr": 0.1, "momentum": start, "fused": fused, **extra})
    starts = start if isinstance(start, list) else [start] * 2
    changes = change if isinstance(change, list) else [change] * 2
    alone = []
    for k in range(2):
        q = x0[k].clone().requires_grad_()
        alone.append((q, optimlab.create(name, [q], lr=0.1, momentum=starts[k], fused=fused,
                                         **extra)))
    ref_cls = torch.optim.SGD if name == "sgd" else torch.optim.RMSprop
    r = x0[0].clone().requires_grad_()
    ref = ref_cls([r], lr=0.1, momentum=starts[0], **extra)
    for t, g in enumerate(gs):
        if t == at:
            pop.set_hparam("momentum", change)
            for k, (_, opt) in enumerate(alone):
                opt.param_groups[0]["momentum"] = changes[k]
            ref.param_groups[0]["momentum"] = changes[0]
        p.grad = g.clone()
        pop.step()
        for k, (q, opt) in enumerate(alone):
            q.grad = g[k].clone()
            opt.step()
        r.grad = g[0].clone()
        ref.step()
    return p.detach(), [q.detach() for q, _ in alone], r.detach()


@pytest.mark.parametrize("fused", [None, False])
def test_sgd_momentum_from_zero_to_nonzero_after_steps_is_refused(fused):
    """The audit's case: momentum [0, 0.9], then [0.5, 0.9] after 2 steps. Alone (and
    torch.optim.SGD) member 0's buffer starts as its gradient; the population's row held
    the last steps' gradients (1e-1 off after 4 steps). Refused, leaving the population
    as it was."""
    p = torch.zeros(2, 4, dtype=F64, requires_grad=True)
    pop = Population("sgd", [p], {"lr": 0.1, "momentum": [0.0, 0.9], "fused": fused})
    for _ in range(2):
        p.grad = torch.ones(2, 4, dtype=F64)
        pop.step()
    before = pop.hparams["momentum"].clone()
    with pytest.raises(ValueError, match=r"member 0: momentum cannot change from 0\.0 to 0\.5"
                                         r".*'momentum_buffer'"):
        pop.set_hparam("momentum", [0.5, 0.9])
    assert torch.equal(pop.hparams["momentum"], before)
    assert [hp["momentum"] for hp in pop.member_hparams] == [0.0, 0.9]
    pop.set_hparam("momentum", [0.0, 0.5])  # nonzero to nonzero, 0 kept: taken
    p.grad = torch.ones(2, 4, dtype=F64)
    pop.step()


@pytest.mark.parametrize("fused", [None, False])
def test_sgd_momentum_nonzero_to_zero_and_back_is_refused(fused):
    """Alone, a buffer kept while momentum is 0 is resumed as it was; the population's row
    went on being overwritten."""
    p = torch.zeros(2, 4, dtype=F64, requires_grad=True)
    pop = Population("sgd", [p], {"lr": 0.1, "momentum": [0.9, 0.8], "fused": fused})
    p.grad = torch.ones(2, 4, dtype=F64)
    pop.step()
    pop.set_hparam("momentum", [0.0, 0.8])  # to 0: taken (the buffer is not read at 0)
    p.grad = torch.ones(2, 4, dtype=F64)
    pop.step()
    with pytest.raises(ValueError, match="member 0: momentum cannot change from 0"):
        pop.set_hparam("momentum", [0.9, 0.8])


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("start, change, at", [
    (0.0, [0.5, 0.9], 2),          # every member at 0 so far: no buffer, each starts afresh
    ([0.0, 0.9], [0.5, 0.9], 0),   # before the first step: no state yet
    ([0.7, 0.9], [0.0, 0.9], 2),   # nonzero to 0: the buffer is not read while 0
    ([0.7, 0.9], [0.3, 0.6], 2),   # nonzero to nonzero
])
def test_sgd_momentum_changes_that_are_taken_follow_sgd_alone(fused, start, change, at):
    """The changes still taken are exact: every member as SGD alone and torch.optim.SGD."""
    pop, alone, ref = _momentum_run("sgd", start, change, at=at, fused=fused)
    for k in range(2):
        assert torch.equal(pop[k], alone[k]), k
    assert torch.equal(alone[0], ref)


def test_sgd_momentum_with_dampening_from_zero_is_refused_too():
    p = torch.zeros(2, 4, dtype=F64, requires_grad=True)
    pop = Population("sgd", [p], {"lr": 0.1, "momentum": [0.0, 0.9], "dampening": 0.5})
    p.grad = torch.ones(2, 4, dtype=F64)
    pop.step()
    with pytest.raises(ValueError, match="momentum cannot change from 0"):
        pop.set_hparam("momentum", 0.9)


@pytest.mark.parametrize("fused", [None, False])
def test_rmsprop_momentum_from_zero_is_refused(fused):
    """RMSprop alone (and torch.optim.RMSprop) built with momentum 0 keeps no buffer and
    raises KeyError once momentum turns nonzero; a population with a member at 0 had a
    buffer and stepped on silently. Both are refused at set_hparam, saying why."""
    p = torch.zeros(2, 4, dtype=F64, requires_grad=True)
    pop = Population("rmsprop", [p], {"lr": 0.01, "momentum": [0.0, 0.9], "fused": fused})
    p.grad = torch.ones(2, 4, dtype=F64)
    pop.step()
    with pytest.raises(ValueError, match="member 0: momentum cannot change from 0"):
        pop.set_hparam("momentum", [0.5, 0.9])
    shared = Population("rmsprop", [p], {"lr": 0.01, "momentum": 0.0, "fused": fused})
    shared.step()
    with pytest.raises(ValueError, match=r"no 'momentum_buffer'.*KeyError"):
        shared.set_hparam("momentum", [0.5, 0.9])
    shared.step()  # unchanged: it steps on with momentum 0


def test_rmsprop_momentum_from_zero_before_the_first_step_follows_rmsprop_alone():
    pop, alone, ref = _momentum_run("rmsprop", [0.0, 0.9], [0.5, 0.9], at=0)
    for k in range(2):
        assert torch.equal(pop[k], alone[k]), k
    torch.testing.assert_close(alone[0], ref, rtol=0, atol=1e-15)  # torch's own rounding


def test_a_gate_of_ones_own_rule_is_seen(registered):
    """Which hyperparameter gates which state is seen in the rule, not named: a rule of
    one's own whose ``betas[0]`` of 0 leaves its first moment alone."""
    def rule_init(p, **_):
        return {"m": torch.zeros_like(p)}

    def rule_update(p, g, state, *, lr, betas, **_):
        beta1, _ = betas
        if nonzero(beta1):
            state["m"] = torch.lerp(state["m"], g, 1 - beta1)
            g = state["m"]
        return p - lr * g

    class Gated(RuleOptimizer):
        """Momentum where beta1 is nonzero."""

        init = staticmethod(rule_init)
        update = staticmethod(rule_update)
        capabilities = Capabilities(moments=("m",), fusable=True)

        def __init__(self, params, lr=1e-2, betas=(0.9, 0.99), *, maximize=False, fused=None):
            super().__init__(params, dict(lr=lr, betas=betas, maximize=maximize, fused=fused))

    name = registered(Gated, "gated_batching_test")
    p = torch.zeros(2, 4, dtype=F64, requires_grad=True)
    pop = Population(name, [p], {"betas": [(0.0, 0.99), (0.9, 0.99)]})
    assert pop.mode == "elementwise"
    p.grad = torch.ones(2, 4, dtype=F64)
    pop.step()
    with pytest.raises(ValueError, match=r"betas\[0\] cannot change from 0\.0 to 0\.5"):
        pop.set_hparam("betas", [(0.5, 0.99), (0.9, 0.99)])
    pop.set_hparam("betas", [(0.0, 0.9), (0.9, 0.9)])  # the other component: taken


# -- 3. what the docstring says --------------------------------------------------------------
def test_asgd_and_nadam_fused_true_says_why():
    for name in ("asgd", "nadam"):
        p = torch.zeros(2, 4, requires_grad=True)
        pop = Population(name, [p], {"lr": [0.01, 0.02], "fused": True})
        p.grad = torch.ones(2, 4)
        with pytest.raises(RuntimeError, match="one value per member"):
            pop.step()
    doc = optimlab.optim.population.__doc__
    assert "NAdam\nand ASGD with ``fused=None``" in doc


def test_float32_plain_path_with_betas_near_one_keeps_the_stated_bound():
    """The module docstring's bound ``T * (2**-23 * max|p| + rho * max|step|)``, ``rho =
    2**-25 / (1 - beta)``, on the audit's case (which was 286 times ``T * 2**-23 *
    max|p|``)."""
    torch.manual_seed(0)
    steps, alphas = 20, [0.99999, 0.9999]
    x0 = torch.randn(2, 64)
    grads = [torch.randn(2, 64) for _ in range(steps)]
    p = x0.clone().requires_grad_()
    pop = Population("rmsprop", [p], {"lr": 0.01, "alpha": alphas, "fused": False})
    alone = [(q, optimlab.create("rmsprop", [q], lr=0.01, alpha=a, fused=False))
             for q, a in zip((x0[k].clone().requires_grad_() for k in range(2)), alphas)]
    largest_step = largest_p = 0.0
    for g in grads:
        p.grad = g.clone()
        pop.step()
        for k, (q, opt) in enumerate(alone):
            before = q.detach().clone()
            q.grad = g[k].clone()
            opt.step()
            largest_step = max(largest_step, float((q.detach() - before).abs().max()))
            largest_p = max(largest_p, float(before.abs().max()), float(q.detach().abs().max()))
    rho = 2.0 ** -25 / (1 - max(alphas))
    bound = steps * (2.0 ** -23 * largest_p + rho * largest_step)
    diff = max(float((p.detach()[k] - q.detach()).abs().max()) for k, (q, _) in enumerate(alone))
    assert diff <= bound


def test_nadam_members_with_their_own_betas_stay_within_float64_rounding():
    """Per-member betas reach NAdam's rule as a [K, 1, ...] column standing for Python
    floats: not torch's tensor-beta1 arithmetic (float32 momentum products), which put
    members 1.45e-10 off the optimizer alone after 20 steps in float64. Bound: the bias
    corrections round apart by a few float64 spacings per step (the module docstring), so
    after T steps within T * 4 spacings of max|p|."""
    torch.manual_seed(0)
    start = torch.randn(3, 6, 7, dtype=torch.float64)
    grads = [torch.randn(3, 6, 7, dtype=torch.float64) for _ in range(20)]
    betas = [(0.9, 0.999), (0.8, 0.99), (0.95, 0.9999)]
    pop = optimlab.Population("nadam", [start.clone()], {"lr": 1e-2, "betas": betas})
    for g in grads:
        pop.step(grads=[g])
    for k, pair in enumerate(betas):
        alone = torch.nn.Parameter(start[k].clone())
        opt = optimlab.create("nadam", [alone], lr=1e-2, betas=pair)
        for g in grads:
            alone.grad = g[k].clone()
            opt.step()
        bound = len(grads) * 4 * 2.0 ** -52 * float(start.abs().max())
        assert float((alone.detach() - pop.params[0][k]).abs().max()) <= bound


def _masked_update(p, g, state, *, lr, beta, **_):
    m = state["m"] = beta * state["m"] + g
    u = m.clone()
    u[u.abs() < 0.05] = 0  # a write through a mask of the tensor's own shape: elementwise
    return p - lr * u


class _Masked(RuleOptimizer):
    """Momentum with its small entries zeroed through a boolean mask."""

    init = staticmethod(_m_init)
    update = staticmethod(_masked_update)
    capabilities = Capabilities(multi_tensor=False, fusable=False)

    def __init__(self, params, lr=1e-2, beta=0.9, *, maximize=False):
        super().__init__(params, dict(lr=lr, beta=beta, maximize=maximize))


def test_a_masked_write_is_elementwise_and_steps_each_member_as_alone():
    """``u[u.abs() < eps] = 0`` (aten.index_put_ through one boolean mask of u's shape)
    treats every element apart: the rule stays "elementwise" (vmap cannot run a
    data-dependent mask, and refused it) and each member steps as alone, bit for bit."""
    torch.manual_seed(0)
    start = torch.randn(K, 4, 5, dtype=F64)
    grads = [0.2 * torch.randn(K, 4, 5, dtype=F64) for _ in range(5)]
    optimlab.register(_Masked, "masked_for_test")
    try:
        pop = Population("masked_for_test", [start.clone()], {"lr": [1e-2, 2e-2, 3e-2]})
        assert pop.mode == "elementwise"
        for g in grads:
            pop.step(grads=[g])
    finally:
        optimlab.unregister("masked_for_test")
    for k, lr in enumerate([1e-2, 2e-2, 3e-2]):
        alone = torch.nn.Parameter(start[k].clone())
        opt = _Masked([alone], lr=lr)
        for g in grads:
            alone.grad = g[k].clone()
            opt.step()
        assert torch.equal(alone.detach(), pop.params[0][k])


# -- what the probe steps leave behind ---------------------------------------------------------
def test_a_rule_class_is_not_kept_alive_by_the_caches_of_its_probe(registered):
    """The probe's answers (:func:`optimlab.optim.probe.rule_traits`) and the classes'
    hyperparameter names and switches are cached by class, weakly: a rule made in a
    function (a test's, a sweep's generated one) is freed with its last optimizer."""
    for fused in (False, True):
        cls = _class("norm", Capabilities(moments=("m",), fusable=True))
        ref = weakref.ref(cls)
        name = f"freed_rule_{fused}"
        optimlab.register(cls, name=name)
        pp = [torch.zeros(K, 4, requires_grad=True)]
        pop = Population(name, pp, {"lr": LRS, "fused": fused})
        pp[0].grad = torch.ones(K, 4)
        pop.step()
        q = [torch.zeros(4, requires_grad=True)]
        opt = optimlab.create(name, q, lr=0.1, fused=fused)
        q[0].grad = torch.ones(4)
        opt.step()
        del pop, opt, cls
        optimlab.unregister(name)
        gc.collect()
        assert ref() is None, f"fused={fused}: {gc.get_referrers(ref())}"


class _Noisy(RuleOptimizer):
    """Gradient descent with Gaussian noise (Langevin's, a user's rule that draws)."""

    init = staticmethod(lambda p, **_: {})
    capabilities = Capabilities(fusable=True)

    @staticmethod
    def update(p, g, state, *, lr, **_):
        return p - lr * g + 1e-3 * torch.randn_like(p)

    def __init__(self, params, lr=1e-2, *, maximize=False, fused=None):
        super().__init__(params, dict(lr=lr, maximize=maximize, fused=fused))


def _noisy_step(fused):
    """One step of :class:`_Noisy` from seed 0: the parameters, then the generator's next
    number."""
    ps = [torch.zeros(3, requires_grad=True), torch.zeros(2, 2, requires_grad=True)]
    opt = _Noisy(ps, lr=0.1, fused=fused)
    torch.manual_seed(0)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    return [p.detach().clone() for p in ps], torch.rand(1)


def test_a_rule_that_draws_draws_the_same_numbers_on_the_default_path():
    """fused=None tries a kernel first: the probes of the rule (which branches it takes) and
    its trace ran it on real tensors and moved the generator, so a noisy rule's first step
    drew other numbers than on fused=False (and than a loop over the tensors, drawn here)."""
    torch.manual_seed(0)
    expected = [-0.1 + 1e-3 * torch.randn(3), -0.1 + 1e-3 * torch.randn(2, 2)]
    after = torch.rand(1)
    for fused in (False, None):
        params, following = _noisy_step(fused)
        for p, e in zip(params, expected):
            torch.testing.assert_close(p, e, rtol=0, atol=1e-9)
        assert torch.equal(following, after), fused


def test_a_rule_that_draws_is_refused_by_a_batched_population_and_runs_member_by_member(
        registered):
    """One draw for the stacked members is not the draws each member makes alone: refused,
    saying so (it was called a reduction of ``aten.randn_like``, which vmap then refused);
    a probe step leaves the caller's generator where it was; ``batching="member"`` runs."""
    name = registered(_Noisy, "noisy_probe")
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"draws random numbers \(aten.randn_like\).*"
                                         r"batching='member'"):
        Population(name, [torch.zeros(K, 4, requires_grad=True)], {"lr": LRS})
    assert torch.equal(torch.rand(4), expected)

    class MemberNoisy(_Noisy):
        """The same, one optimizer per member."""

        capabilities = Capabilities(batching="member")

    member = registered(MemberNoisy, "noisy_member")
    pp = [torch.zeros(K, 4, requires_grad=True)]
    pop = Population(member, pp, {"lr": LRS})
    assert pop.mode == "member"
    pp[0].grad = torch.ones(K, 4)
    torch.manual_seed(0)
    pop.step()
    torch.manual_seed(0)
    for k, lr in enumerate(LRS):  # member by member, in order, as K optimizers alone
        torch.testing.assert_close(pp[0].detach()[k], -lr + 1e-3 * torch.randn(4),
                                   rtol=0, atol=1e-9)

