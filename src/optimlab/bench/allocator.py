"""Keep freed memory in the process between training steps (glibc's ``malloc`` only).

A population step allocates and frees a few dozen activations and gradients of megabytes
each (64 members x 100 examples x 100 units of float32 is 2.6 MB). glibc's ``malloc`` gives
the top of its heap back to the operating system once more than its trim threshold is free
there, and that threshold adapts only to twice the largest block freed so far: a few
megabytes, less than a step frees at its end. So each step's memory is returned and then
faulted back in by the next, a page at a time: 550-1000 minor page faults a step for the
MNIST-1D population of ``benchmarks/population_speed.py`` (which prints the count; set
``OPTIMLAB_KEEP_FREED_MEMORY=0`` to see it without this module). Once the heap is kept the
count is about 60 a step over 300 steps, nearly all of them in the first three (the first
evaluation and growing the heap), and a median of 0 a step after them against 593 with
glibc's defaults; the population engine was 1.14x faster for it.

:func:`keep_freed_memory` sets the two thresholds once per process with ``mallopt``, as the
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` environment variables would at start
up: blocks up to :data:`MMAP_THRESHOLD` come from the heap, and up to :data:`TRIM_THRESHOLD`
of free heap is kept for reuse. Both training engines call it, so a comparison between them
runs under the same allocator, and so does the batched evaluation of any stack of weights
(``trainer.population_scores``, a loss landscape's grid). It does nothing where the C
library is not glibc, where the environment already sets either threshold (the variables
above, or ``glibc.malloc.mmap_threshold`` or ``glibc.malloc.trim_threshold`` in
``GLIBC_TUNABLES``), or where ``OPTIMLAB_KEEP_FREED_MEMORY`` is off (``0``, ``false``, ``no``,
``off`` or empty, in any case: :func:`optimlab._env.flag`; unset, it is on).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

from .._env import flag

#: Blocks up to this size are served from the heap rather than by ``mmap`` (glibc's own
#: ceiling for its adaptive threshold on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: At most this much free memory at the top of the heap is kept rather than returned.
TRIM_THRESHOLD = 256 << 20

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's <malloc.h>
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
#: the same two thresholds as ``GLIBC_TUNABLES`` names them (``name=value`` pairs joined by
#: colons), which glibc reads in place of the variables above
_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")


def _thresholds_set_by_environment() -> bool:
    """Whether the environment sets glibc's mmap or trim threshold itself."""
    if any(name in os.environ for name in _ENV):
        return True
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(item.partition("=")[0].strip() in _TUNABLES for item in tunables.split(":"))


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once per process (see the module's docstring).

    Returns whether the thresholds are now set by this module: False where the C library is
    not glibc, the environment sets them itself or opts out with
    ``OPTIMLAB_KEEP_FREED_MEMORY=0`` (or ``false``, ``no``, ``off``: :func:`optimlab._env.flag`).
    """
    if not flag("OPTIMLAB_KEEP_FREED_MEMORY", True) or _thresholds_set_by_environment():
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:  # the process's own symbols: glibc's mallopt, without a search for the library
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success and 0 on error
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
