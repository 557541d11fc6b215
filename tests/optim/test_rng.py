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

from optimlab.optim import kernels
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


def test_an_accelerators_generator_is_kept_where_it_was_drawn_from(monkeypatch):
    """On an accelerator a rule's ``randn_like`` draws from that device's generator: its
    state (at the index given, else the current device's) is saved and put back where the
    block drew on that device, and the CPU's where it drew there, each alone. Checked with
    a stand-in device module (no GPU here)."""
    from optimlab.optim import rng

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
        torch.manual_seed(7)
        expected = torch.rand(2)
        torch.manual_seed(7)
        with keeping_rng(device):
            torch.rand(1)  # a CPU draw: the CPU's state goes back, the device's stays
        assert torch.equal(torch.rand(2), expected)
    assert calls == [("get", 1), ("get", 2), ("get", 0)]
    calls.clear()

    class DrewOnTheDevice(rng._Draws):  # what a draw on a CUDA tensor records
        def __exit__(self, *exc):
            self.drew.add("cuda")
            return super().__exit__(*exc)

    monkeypatch.setattr(rng, "_Draws", DrewOnTheDevice)
    with keeping_rng("cuda:1"):
        _draw_in_another_thread()  # the CPU's generator moves, by a draw this block did not make
    assert calls == [("get", 1), ("set", "state 1", 1)]  # the device's state goes back
    assert torch.equal(torch.rand(3), _seed_zero(6)[3:])  # the CPU's is left where it went


def _fresh_rule():
    """A rule class no kernel cache or probe cache holds (new each call): its first fused
    step traces and probes it."""

    class Fresh(RuleOptimizer):
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

    return Fresh


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
    opt = _fresh_rule()([w])
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


def test_a_draw_from_a_generator_of_ones_own_is_not_undone_nor_undoes_others():
    """The probes make their stand-ins with a generator of their own: such a draw inside the
    block is not a draw from the process's generator, so nothing is put back (the review
    found a first fused step of SGD rewinding another thread's draws so)."""
    torch.manual_seed(123)
    with keeping_rng():
        torch.rand(4, generator=torch.Generator().manual_seed(5))
        torch.ones(3).normal_(generator=torch.Generator())
        _draw_in_another_thread()
    assert torch.equal(torch.rand(3), _seed_zero(6)[3:])


def test_the_kernels_probe_of_a_first_fused_step_leaves_another_threads_draws(monkeypatch):
    """Another thread seeds and draws while the kernel's probe (which slots the rule
    branches on) runs: its draws stand."""
    rebuild, calls = kernels._rebuild, []

    def rebuild_beside_a_draw(*args):
        if not calls:
            _draw_in_another_thread()
        calls.append(1)
        return rebuild(*args)

    monkeypatch.setattr(kernels, "_rebuild", rebuild_beside_a_draw)
    w = torch.ones(3, requires_grad=True)
    w.grad = torch.ones(3)
    torch.manual_seed(123)
    _fresh_rule()([w], lr=0.2).step()  # a rule no probe has seen: its slots are probed
    assert calls, "the probe did not run"
    assert torch.equal(torch.rand(3), _seed_zero(6)[3:])
