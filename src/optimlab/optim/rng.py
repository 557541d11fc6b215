"""The caller's random numbers, left where they were around the library's own probes and
traces of a rule (a population's first step, a fused kernel's build).

A probe runs a rule on stand-ins, and a rule may draw random numbers (a noisy rule's
``randn_like``); such a draw must not move the process's generator, or a seeded script's
dropout masks would depend on whether a kernel was built before. ``torch.random.fork_rng``
keeps it so by saving the generator's state and putting it back at the end, whatever
happened meanwhile; but the generator is the process's, shared by its threads, so a probe
in one thread (a first fused step takes about 2 s to trace) rewound the draws another
thread made meanwhile: a notebook's seeded cell beside the playground's races drew other
numbers. :func:`keeping_rng` puts the state back only where the block itself drew from it,
which it learns from a dispatch mode (thread-local, as torch's modes are). None of
optimlab's own rules draws, and the probes make their stand-ins with a generator of their
own, so their probes never touch the process's generator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.utils import _pytree
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["keeping_rng", "draws"]


def draws(func) -> bool:
    """Whether the aten operation ``func`` draws random numbers (torch tags them
    ``nondeterministic_seeded``: ``randn_like``, ``bernoulli``, ``normal_``, ...)."""
    return torch.Tag.nondeterministic_seeded in getattr(func, "tags", ())


def _own_generator(func, args: tuple, kwargs: dict) -> bool:
    """Whether the draw ``func(*args, **kwargs)`` comes from a generator of the caller's own
    (``torch.rand(4, generator=gen)``), not a device's default one that the process shares."""
    generator = kwargs.get("generator")
    if generator is None:
        names = [argument.name for argument in func._schema.arguments]
        if "generator" in names and names.index("generator") < len(args):
            generator = args[names.index("generator")]
    if generator is None:
        return False
    device = generator.device
    if device.type == "cpu":
        return generator is not torch.default_generator
    module = torch.get_device_module(device.type)
    defaults = getattr(module, "default_generators", ())
    return all(generator is not default for default in defaults)


class _Draws(TorchDispatchMode):
    """Notes the device types whose default generator an operation drew from under it, in
    this thread (a draw from a generator of one's own is not one)."""

    def __init__(self) -> None:
        super().__init__()
        self.drew: set[str] = set()

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as probe.NotElementwise: True would import torch._dynamo (about 2 s)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if draws(func) and not _own_generator(func, args, kwargs):
            # the device the numbers were drawn on: the result's (an in-place draw's too)
            self.drew.update(t.device.type for t in _pytree.tree_leaves(out)
                             if isinstance(t, torch.Tensor))
        return out


@contextlib.contextmanager
def keeping_rng(device: torch.device | str = "cpu") -> Iterator[None]:
    """The block's own draws undone, and no one else's: the CPU generator's state (and
    ``device``'s, where it is an accelerator: CUDA, XPU, ...) is saved, and each is put back
    at the end only where an operation in the block drew from it. A block that draws
    nothing from them (every optimlab rule's probe; a draw from a generator of the block's
    own does not count) leaves them alone, so another thread's draws made meanwhile stand.

    A generator the block did draw from is rewound to where it was, as
    ``torch.random.fork_rng`` does, and with it any draw another thread made from it
    meanwhile: torch has one default generator per device, not one per thread.
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
        if "cpu" in watch.drew:
            torch.set_rng_state(cpu_state)
        if accelerator is not None and device.type in watch.drew:
            accelerator.set_rng_state(device_state, index)
