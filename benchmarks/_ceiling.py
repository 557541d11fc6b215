"""What the population and end-to-end scripts share: the population they time
(:func:`adam_population`), what its matrix products alone would cost, and what moving the
optimizer step's bytes costs (:func:`copy_rate`).

The population engine's work is mostly batched matrix products. :func:`product_flops` counts
the floating-point operations of a call's products (``torch.utils.flop_counter``) and
:func:`product_rate` measures the rate this CPU reaches on the MNIST-1D MLP's largest batched
product; their quotient is a time no float32 implementation of that call can beat here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch


def adam_population(n: int = 64) -> list:
    """The population ``population_speed.py`` and ``population_breakdown.py`` time: ``n`` Adam
    members of the MNIST-1D MLP, 8 learning rates from 10^-3.5 to 10^-1.5 for each seed
    ``0 .. n // 8``."""
    from optimlab.bench.trainer import Member

    lrs = np.logspace(-3.5, -1.5, 8)
    return [Member("adam", {"lr": float(lrs[i % 8])}, seed=i // 8) for i in range(n)]


def product_flops(run: Callable[[], object]) -> float:
    """Floating-point operations of the matrix products ``run()`` dispatches (forward and
    backward), as ``torch.utils.flop_counter.FlopCounterMode`` counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())


def _median_seconds(run: Callable[[], object], repeats: int, warmup: int = 20) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def product_rate(members: int, size: int = 100, repeats: int = 200) -> float:
    """FLOP/s of this CPU on ``[members, size, size] @ [members, size, size]`` (the MNIST-1D
    MLP's largest product at batch 100), median of ``repeats`` after a warm-up."""
    a, b = torch.randn(members, size, size), torch.randn(members, size, size)
    return 2 * members * size ** 3 / _median_seconds(lambda: torch.bmm(a, b), repeats)


def copy_rate(nbytes: int, repeats: int = 200) -> float:
    """Bytes per second (read plus written) of ``torch.Tensor.copy_`` between two float32
    buffers that together hold ``nbytes``, median of ``repeats`` after a warm-up: what
    moving an optimizer step's bytes costs here at the least, warm in cache."""
    source = torch.randn(max(nbytes // 8, 1))
    dest = torch.empty_like(source)
    return 2 * source.numel() * 4 / _median_seconds(lambda: dest.copy_(source), repeats)
