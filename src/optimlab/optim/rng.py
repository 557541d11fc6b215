"""The caller's random numbers, left where they were around the library's own probes and
traces of a rule (a population's first step, a fused kernel's build).

A probe runs a rule on stand-ins, and a rule may draw random numbers (a noisy rule's
``randn_like``); such a draw must not move the process's generator, or a seeded script's
dropout masks would depend on whether a kernel was built before. ``torch.random.fork_rng``
keeps it so by saving the generator's state and putting it back at the end, whatever
happened meanwhile; but the generator is the process's, shared by its threads, so a probe
in one thread (a first fused step takes about 2 s to trace) rewound the draws another
thread made meanwhile: a notebook's seeded cell beside the playground's races drew other
numbers. :func:`keeping_rng` puts the state back only where the block itself drew, which
it learns from a dispatch mode (thread-local, as torch's modes are). None of optimlab's
own rules draws, so their probes never touch the generator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["keeping_rng", "draws"]


def draws(func) -> bool:
    """Whether the aten operation ``func`` draws random numbers (torch tags them
    ``nondeterministic_seeded``: ``randn_like``, ``bernoulli``, ``normal_``, ...)."""
    return torch.Tag.nondeterministic_seeded in getattr(func, "tags", ())


class _Draws(TorchDispatchMode):
    """Notes whether an operation that draws random numbers ran under it, in this thread."""

    def __init__(self) -> None:
        super().__init__()
        self.drew = False

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as probe.NotElementwise: True would import torch._dynamo (about 2 s)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if draws(func):
            self.drew = True
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def keeping_rng(device: torch.device | str = "cpu") -> Iterator[None]:
    """The block's own draws undone, and no one else's: the CPU generator's state (and
    ``device``'s, where it is an accelerator: CUDA, XPU, ...) is saved, and put back at the
    end only where an operation in the block drew random numbers. A block that draws
    nothing (every optimlab rule's probe) leaves the generator alone, so another thread's
    draws made meanwhile stand.

    A block that does draw rewinds the generator to where it was, as
    ``torch.random.fork_rng`` does, and with it any draw another thread made meanwhile:
    torch has one generator per device, not one per thread.
    """
    device = torch.device(device)
    accelerator = None
    if device.type not in ("cpu", "meta"):
        accelerator = torch.get_device_module(device.type)
        index = device.index if device.index is not None else accelerator.current_device()
    cpu_state = torch.get_rng_state()
    device_state = None if accelerator is None else accelerator.get_rng_state(index)
    watch = _Draws()
    try:
        with watch:
            yield
    finally:
        if watch.drew:
            torch.set_rng_state(cpu_state)
            if accelerator is not None:
                accelerator.set_rng_state(device_state, index)
