"""The first processor's block of ``/proc/cpuinfo``, for the two places that name the CPU.

:func:`optimlab.optim.kernels.build.cpu_identity` hashes its model and feature lines into a
compiled kernel's cache key; :mod:`optimlab.bench.store.environment` records the model and
vector extensions with a sweep and prints them in the benchmarks' headers. Standard library
only, so neither pulls in torch to read it.
"""

from __future__ import annotations

__all__ = ["first_processor"]


def first_processor(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The ``key: value`` lines of the first processor's block of ``path``, keys stripped
    and values with their whitespace collapsed, in file order (empty where the file cannot
    be read: not Linux, say)."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if not line.strip():
                    if fields:
                        break  # the first processor's block has ended
                    continue
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), " ".join(value.split()))
    except OSError:
        return {}
    return fields
