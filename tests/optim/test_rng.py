"""The caller's random numbers around the library's probes and traces
(:func:`optimlab.optim.rng.keeping_rng`): a block's own draws are undone, and no other
thread's. ``torch.random.fork_rng`` put the generator back whatever happened meanwhile, so
a first fused step traced in one thread (seconds, on a cold kernel cache) rewound the
draws another thread made: a seeded notebook cell beside the playground's races drew
other numbers (concurrency audit)."""

from __future__ import annotations

import threading

import pytest
import torch

from optimlab.optim.base import RuleOptimizer
from optimlab.optim.capabilities import Capabilities
from optimlab.optim.kernels import codegen
from optimlab.optim.rng import keeping_rng


def _seed_zero(n: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(0))


def _draw_in_another_thread():
    worker = threading.Thread(target=lambda: (torch.manual_seed(0), torch.rand(3)))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()


def test_a_block_that_draws_nothing_leaves_another_threads_draws():
    torch.manual_seed(123)
    with keeping_rng():
        _draw_in_another_thread()  # seeds 0 and draws 3 while the block runs
    assert torch.equal(torch.rand(3), _seed_zero(6)[3:])  # they stand: the next 3 follow


def test_a_block_that_draws_puts_the_generator_back():
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    with keeping_rng():
        torch.randn(5)
        torch.rand(2).bernoulli_()
    assert torch.equal(torch.rand(4), expected)


def test_a_block_that_raises_still_puts_back_what_it_drew():
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    with pytest.raises(KeyError), keeping_rng():
        torch.randn(5)
        raise KeyError("x")
    assert torch.equal(torch.rand(4), expected)


def test_an_accelerators_generator_is_kept_with_the_cpus(monkeypatch):
    """On an accelerator a rule's ``randn_like`` draws from that device's generator: it is
    saved and put back with the CPU's (its index as given, else the current device's).
    Checked with a stand-in device module (no GPU here)."""
    calls = []

    class Module:
        @staticmethod
        def current_device():
            return 2

        @staticmethod
        def get_rng_state(index):
            calls.append(("get", index))
            return f"state {index}"

        @staticmethod
        def set_rng_state(state, index):
            calls.append(("set", state, index))

    monkeypatch.setattr(torch, "get_device_module", lambda kind: Module)
    for device in (torch.device("cuda", 1), "cuda", "xpu:0"):
        with keeping_rng(device):
            torch.rand(1)  # a draw (on the CPU here): the states go back
        with keeping_rng(device):
            pass  # none: nothing is put back
    assert calls == [("get", 1), ("set", "state 1", 1), ("get", 1),
                     ("get", 2), ("set", "state 2", 2), ("get", 2),
                     ("get", 0), ("set", "state 0", 0), ("get", 0)]
    with keeping_rng("meta"):
        torch.rand(1)
    assert len(calls) == 9  # the CPU's alone


class _Fresh(RuleOptimizer):
    """A rule no kernel cache holds (a class of this test's own): its first fused step
    traces it."""

    capabilities = Capabilities(fusable=True)

    @staticmethod
    def init(p, **_):
        return {"m": torch.zeros_like(p)}

    @staticmethod
    def update(p, g, state, *, lr, **_):
        state["m"] = state["m"] * 0.9 + g
        return p - lr * state["m"]

    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr, fused=None, maximize=False))


def test_a_first_fused_step_in_one_thread_leaves_another_threads_draws(monkeypatch):
    """The main thread seeds and draws while another thread's first step is tracing the
    rule (held there by the test until the draws are made): the draws stand."""
    tracing, drawn = threading.Event(), threading.Event()
    trace = codegen.make_fx

    def held_trace(fn):
        def traced(*args):
            tracing.set()
            assert drawn.wait(60)
            return trace(fn)(*args)
        return traced

    monkeypatch.setattr(codegen, "make_fx", held_trace)
    w = torch.ones(3, requires_grad=True)
    w.grad = torch.ones(3)
    opt = _Fresh([w])
    errors = []

    def first_step():
        try:
            opt.step()
        except BaseException as error:  # noqa: BLE001 (reported by the main thread)
            errors.append(error)
            drawn.set()

    worker = threading.Thread(target=first_step)
    worker.start()
    assert tracing.wait(60), "the first step did not trace the rule"
    torch.manual_seed(0)
    first = torch.rand(3)
    drawn.set()
    worker.join(timeout=120)
    assert not worker.is_alive() and not errors, errors
    assert torch.equal(first, _seed_zero(3))
    assert torch.equal(torch.rand(3), _seed_zero(6)[3:])  # not rewound by the trace's end
    assert torch.allclose(w.detach(), torch.full((3,), 0.9))  # it stepped: 1 - 0.1 x 1
