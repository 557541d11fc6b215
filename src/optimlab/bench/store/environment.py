"""Where a sweep was created: :func:`collect_environment` (python, platform, machine, the CPU's
model and vector extensions, host, library versions, and CUDA devices when torch already
initialized them).

Timings (a sweep's wall times, the calibrated step costs, the benchmarks' ratios) depend on
the CPU, so the store and the benchmark scripts name it: :func:`cpu_description`.

The run store records it in the ``environment`` column of ``sweeps``
(:meth:`~optimlab.bench.store.RunStore.open_sweep`). Standard library only (with
:mod:`optimlab._cpuinfo`, which is too): versions are read from the installed
distributions, nothing is imported to find them.
"""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import sys
from importlib import metadata
from typing import Any

# absolute: the store also loads by its path alone (the tests' SIGKILLed sweeps do, to skip
# importing torch); ``optimlab`` itself imports nothing heavy
from optimlab._cpuinfo import first_processor

__all__ = ["collect_environment", "cpu_model", "cpu_vector_extensions", "cpu_description"]

#: the vector extensions :func:`cpu_vector_extensions` reports, as ``/proc/cpuinfo`` spells
#: them (x86-64 ``flags``, arm64 ``Features``), widest last within each family
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile",
                     "asimd", "sve", "sve2")


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's marketing name (``model name`` in ``cpuinfo`` on Linux, with the x86 family
    and model numbers: ``AMD EPYC (family 25, model 17)``), else :func:`platform.processor`,
    else :func:`platform.machine`; never empty."""
    return _model(first_processor(cpuinfo))


def _model(fields: dict[str, str]) -> str:
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if fields.get(key):
            name = fields[key]  # whitespace already collapsed by first_processor
            if fields.get("cpu family") and fields.get("model"):
                # a virtual machine may show only "AMD EPYC": the x86 family and model
                # still tell the generations apart (family 25 model 17 is Zen 4)
                name += f" (family {fields['cpu family']}, model {fields['model']})"
            return name
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_vector_extensions(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """Which of :data:`VECTOR_EXTENSIONS` the CPU has, in that order (empty where
    ``cpuinfo`` does not say: not Linux, say)."""
    return _extensions(first_processor(cpuinfo))


def _extensions(fields: dict[str, str]) -> list[str]:
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return [name for name in VECTOR_EXTENSIONS if name in flags]


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """One line naming the CPU for a benchmark's header: model, logical CPUs and vector
    extensions, e.g. ``AMD EPYC (family 25, model 17), 2 logical CPUs, avx2 fma
    avx512f``."""
    fields = first_processor(cpuinfo)  # read once for both
    extensions = _extensions(fields)
    return (f"{_model(fields)}, {os.cpu_count()} logical CPUs"
            + (f", {' '.join(extensions)}" if extensions else ""))


def collect_environment() -> dict:
    """Where this process runs: python, platform, machine, CPU model and vector extensions,
    host and library versions.

    Versions come from the installed distributions (nothing is imported); the CUDA build
    and devices are added only when torch is already imported and CUDA initialized, so
    calling this never starts a GPU context. Extend the dict (e.g. with the device used)
    and pass it to :meth:`RunStore.open_sweep`.
    """
    cpu = first_processor()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _model(cpu),
        "cpu_extensions": _extensions(cpu),
        "host": socket.gethostname(),
        "sqlite": sqlite3.sqlite_version,
    }
    versions = {}
    for dist in ("optimlab", "torch", "numpy", "pandas"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    env["versions"] = versions
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            env["torch_cuda"] = torch.version.cuda
            if torch.cuda.is_initialized():
                env["cuda_devices"] = [torch.cuda.get_device_name(i)
                                       for i in range(torch.cuda.device_count())]
        except Exception:  # pragma: no cover - a broken torch must not stop a sweep
            pass
    return env
