"""Optimizers seen through a proxy, as PyTorch Lightning hands them to a LightningModule.

``self.optimizers()`` returns a ``LightningOptimizer``: an object whose class is made on the
fly, ``Lightning<Cls>``, a subclass of Lightning's wrapper and of the optimizer's class, whose
``optimizer`` property returns the optimizer it wraps and whose ``step`` hands the step to
that optimizer. The optimizer's methods (``state_dict``, ``eval``, ...) run with ``self`` the
proxy: what they read comes from the optimizer (Lightning up to 2.0 copied its ``__dict__``
into the proxy; 2.1 on forward each missing attribute), what they set lands on the proxy
alone. An audit found optimlab's state_dicts tagged ``LightningAdam`` (and refused by the
optimizer itself), Lookahead reading ``self.optimizer`` (the proxy's property: the Lookahead
itself), schedule-free ``eval()`` keeping the gradient points on the proxy (missing from the
checkpoint Lightning takes of the optimizer), and SAM stepping as its base optimizer alone
with the do-nothing closure Lightning passes for ``opt.step()``. These tests need no
Lightning: the proxies below are made as Lightning makes them.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

import optimlab
from optimlab.optim.schedule_free import TRAIN_POINT
from optimlab.optim.wrappers.lookahead import Lookahead


def _do_nothing() -> None:
    return None


class _Proxy:
    """What both of Lightning's ``LightningOptimizer`` forms share: the optimizer kept, the
    class swapped for one made on the fly (``Lightning<Cls>``, a subclass of the proxy's and
    the optimizer's), ``optimizer`` a property, and a step that calls the optimizer's own."""

    def _wrap(self, optimizer: torch.optim.Optimizer) -> None:
        self._optimizer = optimizer
        self._strategy = None
        self._on_before_step = _do_nothing
        self._on_after_step = _do_nothing
        self.__class__ = type("Lightning" + optimizer.__class__.__name__,
                              (self.__class__, optimizer.__class__), {})

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    def step(self, closure=None, **kwargs):
        # Lightning's strategy calls the optimizer's own step, with a closure that does
        # nothing where none is given (manual optimization's ``opt.step()``)
        return self._optimizer.step(closure if closure is not None else _do_nothing, **kwargs)


class CopyingProxy(_Proxy):
    """Lightning's ``LightningOptimizer`` up to 2.0: the optimizer's ``__dict__`` copied
    (shallow: the same ``state`` and ``param_groups`` objects), then the class swapped."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.__dict__ = {k: v for k, v in optimizer.__dict__.items() if k not in ("step", "__del__")}
        self._wrap(optimizer)


class ForwardingProxy(_Proxy):
    """Lightning's ``LightningOptimizer`` from 2.1 on (2.6 included): the class swapped, each
    attribute the proxy lacks read from the optimizer (``__getattr__``)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self._wrap(optimizer)

    def __getattr__(self, item):
        return getattr(self._optimizer, item)


PROXIES = pytest.mark.parametrize("proxy", [CopyingProxy, ForwardingProxy],
                                  ids=["copying", "forwarding"])

#: registry names and hyperparameters: a rule optimizer with state, one without momentum
#: state at first, one that needs a closure, the two wrappers, a schedule-free one
HPARAMS = {
    "adam": {"lr": 0.01},
    "sgd": {"lr": 0.05, "momentum": 0.9},
    "lbfgs": {"lr": 0.5, "history_size": 4},
    "sam": {"lr": 0.05, "rho": 0.1, "momentum": 0.9},
    "lookahead": {"lr": 0.01, "k": 2},
    "schedulefreeadamw": {"lr": 0.01},
}
STEPS, SAVED_AT = 6, 3


def _params(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=gen).requires_grad_(),
            torch.randn(4, generator=gen).requires_grad_()]


def _copies(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_() for p in params]


def _closure(params: list[torch.Tensor], step: int):
    gen = torch.Generator().manual_seed(100 + step)
    x, y = torch.randn(8, 3, generator=gen), torch.randn(8, 4, generator=gen)

    def closure():
        for p in params:
            p.grad = None
        w, b = params
        loss = ((x @ w.T + b - y) ** 2).mean()
        loss.backward()
        return loss
    return closure


def _run(opt, params, steps) -> None:
    for step in steps:
        opt.step(_closure(params, step))


def _checkpoint(state_dict: dict) -> dict:
    """``state_dict`` through torch.save and torch.load, as a new process gets it."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _same(a, b, where: str = "") -> None:
    """Assert two state_dicts equal: the same keys, values and tensors bit for bit."""
    assert type(a) is type(b) or (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))), \
        f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def _continued(name: str, checkpoint: dict, saved_params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Fresh weights (a copy of ``saved_params``) and a fresh plain optimizer that loads
    ``checkpoint`` and takes the steps after SAVED_AT."""
    params = _copies(saved_params)
    opt = optimlab.create(name, params, **HPARAMS[name])
    opt.load_state_dict(_checkpoint(checkpoint))  # a copy: a load may keep the tensors it gets
    _run(opt, params, range(SAVED_AT, STEPS))
    return params


@PROXIES
@pytest.mark.parametrize("name", sorted(HPARAMS))
def test_a_state_dict_through_a_proxy_is_the_optimizers_and_loads_both_ways(name, proxy):
    """What ``self.optimizers().state_dict()`` gives is the optimizer's own state_dict; a
    plain optimizer loads it, the proxy of a fresh one loads the plain one's, and runs that
    go on from either are bit-identical to the run that never stopped."""
    params = _params()
    opt = optimlab.create(name, params, **HPARAMS[name])
    wrapped = proxy(opt)  # made before any step, as Lightning makes it
    _run(wrapped, params, range(SAVED_AT))
    through_proxy, own = wrapped.state_dict(), opt.state_dict()
    _same(through_proxy, own)
    cls_name = type(opt).__name__
    assert through_proxy["optimlab"]["optimizer"] == cls_name  # not "Lightning" + cls_name
    saved_params = [p.detach().clone() for p in params]
    checkpoint, own = _checkpoint(through_proxy), _checkpoint(own)  # before the state moves on
    _run(wrapped, params, range(SAVED_AT, STEPS))  # the run that never stopped

    # proxy -> plain optimizer
    resumed = _continued(name, checkpoint, saved_params)
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)

    # plain optimizer -> proxy: loaded (no refusal of its own class), and what the proxy
    # then saves is the same state, which goes on as the uninterrupted run
    fresh = proxy(optimlab.create(name, _copies(saved_params), **HPARAMS[name]))
    fresh.load_state_dict(own)
    again = _checkpoint(fresh.state_dict())
    _same(again, checkpoint)
    resumed = _continued(name, again, saved_params)
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)


def _build(cls: type, params: list[torch.Tensor]):
    if issubclass(cls, Lookahead):
        return cls(optimlab.Adam(params, lr=0.01), k=2)
    return cls(params, lr=0.05)


@pytest.mark.parametrize("base", [optimlab.Adam, optimlab.SGD, optimlab.LBFGS, optimlab.SAM,
                                  Lookahead, optimlab.ScheduleFreeAdamW],
                         ids=lambda cls: cls.__name__)
def test_a_subclass_loads_its_bases_state_and_the_base_its_subclasses(base):
    """A user's ``class MyAdam(optimlab.Adam)`` (to log, say) is still Adam to a state_dict:
    it loads Adam's, Adam loads its, both go on as Adam would; torch.optim does the same."""
    sub = type("My" + base.__name__, (base,), {})
    params = _params()
    opt = _build(base, params)
    _run(opt, params, range(SAVED_AT))
    saved_params = [p.detach().clone() for p in params]
    checkpoint = _checkpoint(opt.state_dict())
    _run(opt, params, range(SAVED_AT, STEPS))

    mine_params = _copies(saved_params)
    mine = _build(sub, mine_params)
    mine.load_state_dict(_checkpoint(checkpoint))
    assert mine.state_dict()["optimlab"]["optimizer"] == base.__name__
    _run(mine, mine_params, range(SAVED_AT, STEPS))
    for a, b in zip(params, mine_params):
        assert torch.equal(a, b)

    other_params = _copies(saved_params)
    other = _build(sub, other_params)
    other.load_state_dict(_checkpoint(checkpoint))
    back_params = _copies(saved_params)
    back = _build(base, back_params)
    back.load_state_dict(_checkpoint(other.state_dict()))  # the subclass's, into the base
    _run(back, back_params, range(SAVED_AT, STEPS))
    for a, b in zip(params, back_params):
        assert torch.equal(a, b)
    # the name earlier versions gave a subclass's state loads into that subclass still
    legacy = copy.deepcopy(checkpoint)
    legacy["optimlab"]["optimizer"] = sub.__name__
    _build(sub, _copies(saved_params)).load_state_dict(legacy)


@PROXIES
def test_another_optimizers_state_is_still_refused(proxy):
    """What the name check is for: Adam's state does not load into SGD, nor AdamW's into
    Adam (a subclass optimlab defines is an optimizer of its own), through a proxy or not;
    nor a wrapper's over another inner optimizer."""
    params = _params()
    adam = optimlab.Adam(params, lr=0.01)
    _run(adam, params, range(2))
    saved = adam.state_dict()
    sgd = optimlab.SGD(_params(), lr=0.1, momentum=0.9)
    for target in (sgd, proxy(sgd)):
        with pytest.raises(ValueError, match=r"saved by optimlab\.Adam, it cannot be loaded into "
                                             r"optimlab\.SGD$"):
            target.load_state_dict(saved)
    for source, target in ((optimlab.AdamW, optimlab.Adam), (optimlab.Adam, optimlab.AdamW)):
        ps = _params()
        first = source(ps, lr=0.01)
        _run(first, ps, range(1))
        with pytest.raises(ValueError, match=f"saved by optimlab.{source.__name__},"):
            target(_params(), lr=0.01).load_state_dict(first.state_dict())

    ps = _params()
    over_adam = optimlab.SAM(ps, base_optimizer=optimlab.Adam, lr=0.01)
    _run(over_adam, ps, range(1))
    with pytest.raises(ValueError, match="saved by SAM over Adam, this SAM wraps SGD"):
        proxy(optimlab.SAM(_params(), lr=0.01)).load_state_dict(over_adam.state_dict())
    ps = _params()
    look = Lookahead(optimlab.Adam(ps, lr=0.01))
    _run(look, ps, range(1))
    with pytest.raises(ValueError, match="saved by Lookahead over Adam, this Lookahead wraps SGD"):
        proxy(Lookahead(optimlab.SGD(_params(), lr=0.01))).load_state_dict(look.state_dict())
    with pytest.raises(ValueError, match=r"saved by optimlab\.Lookahead, it cannot be loaded into "
                                         r"optimlab\.Adam"):
        proxy(optimlab.Adam(_params())).load_state_dict(look.state_dict())


@PROXIES
def test_lookahead_through_a_proxy_saves_what_it_saves_itself(proxy):
    """The proxy's ``optimizer`` property (the Lookahead) is not taken for the inner
    optimizer: the state_dict is one Lookahead over SGD, its step counter the one the steps
    counted, and ``lookahead.optimizer`` is the inner optimizer still."""
    params = _params()
    inner = optimlab.SGD(params, lr=0.05, momentum=0.9)
    look = Lookahead(inner, k=3)
    wrapped = proxy(look)
    _run(wrapped, params, range(4))
    assert look.optimizer is inner and look.wrapped is inner and wrapped.optimizer is look
    saved = wrapped.state_dict()
    _same(saved, look.state_dict())
    assert saved["optimlab"]["optimizer"] == "Lookahead"
    assert saved["optimlab"]["inner_optimizer"] == "SGD"
    assert saved["param_groups"][0]["lookahead_steps"] == 4
    assert not any(key.startswith("outer_") for key in saved["param_groups"][0])
    assert sorted(saved["state"][0]) == ["lookahead_slow_param", "momentum_buffer"]
    wrapped.zero_grad()
    assert all(p.grad is None for p in params)


def test_lookahead_copies_and_earlier_pickles_keep_their_inner_optimizer():
    """The inner optimizer and the cycle now live in ``_inner`` and ``_cycle``: copies keep
    them, and the attributes an earlier version pickled (``optimizer``, ``k``, ``alpha``,
    ``la_steps``) are read back into them."""
    params = _params()
    look = Lookahead(optimlab.Adam(params, lr=0.01), k=3, alpha=0.25)
    _run(look, params, range(2))
    for copied in (copy.deepcopy(look), pickle.loads(pickle.dumps(look))):
        assert isinstance(copied.optimizer, optimlab.Adam) and copied.optimizer is not look.optimizer
        assert (copied.k, copied.alpha, copied.la_steps) == (3, 0.25, 2)
        assert copied.param_groups is copied.optimizer.param_groups
    state = look.__getstate__()
    cycle = state.pop("_cycle")
    state.update(optimizer=state.pop("_inner"), k=cycle["k"], alpha=cycle["alpha"],
                 la_steps=cycle["steps"])
    old = Lookahead.__new__(Lookahead)
    old.__setstate__(state)
    assert old.optimizer is look.optimizer and (old.k, old.alpha, old.la_steps) == (3, 0.25, 2)
    old.la_steps += 1
    assert old.la_steps == 3 and look.la_steps == 2


def _sam_and_point():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    return w, optimlab.SAM([w], lr=0.1, rho=0.5)


@PROXIES
def test_sam_refuses_a_closure_that_computes_nothing(proxy):
    """Lightning's manual optimization calls the optimizer with a do-nothing closure for
    ``opt.step()``: SAM said nothing and stepped as plain SGD. It now refuses, leaving the
    parameters where they were; a closure that does its work but returns None (as other
    SAM packages allow) still steps."""
    w, opt = _sam_and_point()
    (w ** 2).sum().backward()
    with pytest.raises(RuntimeError, match="second evaluation left every gradient as its first"):
        opt.step(lambda: None)
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0]))
    with pytest.raises(RuntimeError, match="second evaluation left every gradient as its first"):
        proxy(opt).step()  # manual optimization's opt.step() without a closure
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0]))

    def works_returns_none():
        opt.zero_grad()
        (w ** 2).sum().backward()

    assert opt.step(works_returns_none) is None
    assert not torch.equal(w.detach(), torch.tensor([1.0, -2.0]))


def test_sam_refuses_a_closure_whose_second_pass_recomputes_nothing():
    """A loss computed before the step, handed back by the closure: the second pass leaves
    the first pass's gradient, so SAM would step as its base optimizer. Refused, the
    parameters put back, nothing stepped."""
    w, opt = _sam_and_point()
    loss = (w ** 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second evaluation left every gradient as its first"):
        opt.step(lambda: loss)
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0])) and not opt.state
    assert not opt.base_optimizer.state  # nothing stepped


def test_sams_closure_checks_refuse_no_closure_that_does_its_work():
    """No false alarm: gradients zeroed in place and accumulated again, or written where no
    version counter sees it (as a CUDA graph replays into them), step as the usual closure;
    with ``rho=0`` nothing moves, and a closure that leaves the gradient is SAM's right
    answer (the base optimizer's step), so it is taken."""
    def run(write: str, rho: float = 0.5):
        w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
        opt = optimlab.SAM([w], lr=0.1, rho=rho, momentum=0.9)
        for _ in range(3):
            def closure():
                loss = (w ** 4).sum()
                if write == "fresh":
                    opt.zero_grad()
                    loss.backward()
                elif write == "in place":
                    opt.zero_grad(set_to_none=False)
                    loss.backward()
                else:  # untracked: the same tensor, its version counter unchanged
                    (grad,) = torch.autograd.grad(loss, [w])
                    if w.grad is None:
                        w.grad = grad
                    else:
                        w.grad.data.copy_(grad)
                return loss.detach()
            opt.step(closure)
        return w.detach()

    expected = run("fresh")
    assert torch.equal(run("in place"), expected)
    assert torch.equal(run("untracked"), expected)

    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = optimlab.SAM([w], lr=0.1, rho=0.0)
    loss = (w ** 2).sum()
    loss.backward()
    opt.step(lambda: loss)  # rho 0: the point does not move, the gradient is the one there
    assert torch.equal(w.detach(), torch.tensor([0.8, -1.6]))


@PROXIES
@pytest.mark.parametrize("name", ["schedulefreeadamw", "schedulefreesgd"])
def test_schedule_free_eval_through_a_proxy_then_the_optimizers_checkpoint_resumes_exactly(
        name, proxy):
    """Lightning's usual schedule-free pattern: ``self.optimizers().eval()`` before
    validation, a checkpoint of the optimizer itself (``trainer.optimizers[0]``, what
    Lightning saves) taken there, ``.train()`` after. The gradient points eval() keeps are
    the optimizer's, so the checkpoint carries them and a resumed run is bit-identical."""
    lr = {"schedulefreeadamw": 0.01, "schedulefreesgd": 0.1}[name]
    params = _params()
    opt = optimlab.create(name, params, lr=lr)
    wrapped = proxy(opt)
    _run(wrapped, params, range(SAVED_AT))
    wrapped.eval()
    assert not any(group["train_mode"] for group in opt.param_groups)
    saved = opt.state_dict()
    assert all(TRAIN_POINT in entry for entry in saved["state"].values())
    _same(wrapped.state_dict(), saved)
    checkpoint = _checkpoint({"model": [p.detach().clone() for p in params], "opt": saved})
    wrapped.train()
    _run(wrapped, params, range(SAVED_AT, STEPS))

    fresh = _copies(checkpoint["model"])
    resumed = optimlab.create(name, fresh, lr=lr)
    resumed.load_state_dict(checkpoint["opt"])
    proxy(resumed).train()
    _run(proxy(resumed), fresh, range(SAVED_AT, STEPS))
    for a, b in zip(params, fresh):
        assert torch.equal(a, b)


def test_a_mixin_with_rule_pieces_does_not_name_the_optimizer():
    """``class MyAdam(Pieces, optimlab.Adam)`` where the mixin defines ``update``: the state
    was saved as "Pieces", which any optimizer with the same mixin would have loaded."""
    from optimlab.optim.base import saved_name

    class Pieces:
        def update(self, *args, **kwargs):  # pragma: no cover - never called here
            raise AssertionError

    class MyAdam(Pieces, optimlab.Adam):
        pass

    assert saved_name(MyAdam([torch.nn.Parameter(torch.zeros(2))])) == "Adam"
