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
from optimlab._env import usable_cpus

__all__ = ["collect_environment", "cpu_model", "cpu_vector_extensions", "cpu_description",
           "usable_cpu_count"]

#: cgroup v2's CPU bandwidth limit of this process's cgroup (``"<quota> <period>"`` or
#: ``"max <period>"``), as a container sees it
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"

#: names for the ``CPU implementer`` and ``CPU part`` of arm64 cores met in servers and
#: laptops (from the Linux kernel's ``cputype.h``); other values are shown as hex alone
ARM_IMPLEMENTERS = {"0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu",
                    "0x48": "HiSilicon", "0x4e": "NVIDIA", "0x50": "APM", "0x51": "Qualcomm",
                    "0x61": "Apple", "0xc0": "Ampere"}
ARM_PARTS = {("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd07"): "Cortex-A57",
             ("0x41", "0xd08"): "Cortex-A72", ("0x41", "0xd0b"): "Cortex-A76",
             ("0x41", "0xd0c"): "Neoverse-N1", ("0x41", "0xd40"): "Neoverse-V1",
             ("0x41", "0xd49"): "Neoverse-N2", ("0x41", "0xd4f"): "Neoverse-V2",
             ("0x41", "0xd8e"): "Neoverse-N3", ("0x41", "0xd84"): "Neoverse-V3",
             ("0xc0", "0xac3"): "Ampere-1", ("0xc0", "0xac4"): "Ampere-1a",
             ("0x48", "0xd01"): "TaiShan v110", ("0x4e", "0x004"): "Carmel"}

#: the vector extensions :func:`cpu_vector_extensions` reports, as ``/proc/cpuinfo`` spells
#: them (x86-64 ``flags``, arm64 ``Features``), widest last within each family
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile",
                     "asimd", "sve", "sve2")


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's marketing name (``model name`` in ``cpuinfo`` on Linux, with the x86 family
    and model numbers: ``AMD EPYC (family 25, model 17)``; on arm64, which has no name there,
    its implementer and part: ``ARM Neoverse-N1 (implementer 0x41, part 0xd0c)``; POWER's
    ``cpu`` and RISC-V's ``uarch`` lines), else :func:`platform.processor`, else
    :func:`platform.machine`; never empty."""
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
    arm = _arm_model(fields)
    if arm:
        return arm
    for key in ("Processor", "cpu", "uarch"):  # 32-bit arm / old arm64, POWER, RISC-V
        if fields.get(key):
            return fields[key]
    return _sysctl_brand() or platform.processor() or platform.machine() or "unknown CPU"


def _sysctl_brand() -> str:
    """macOS's name for its CPU (``sysctl -n machdep.cpu.brand_string``: "Apple M2 Pro",
    "Intel(R) Core(TM) i7-9750H ..."), "" elsewhere or where it does not answer. Without it
    every Apple Silicon Mac was "arm" (``platform.processor()``), so step costs measured on
    one chip were taken for another's (:mod:`optimlab.bench.cost` keys them by this name)."""
    if platform.system() != "Darwin":
        return ""
    import subprocess

    try:
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return " ".join(out.stdout.split()) if out.returncode == 0 else ""


def _arm_model(fields: dict[str, str]) -> str:
    """arm64's ``CPU implementer`` and ``CPU part``, named where :data:`ARM_PARTS` knows
    them (the hex numbers are kept: they alone tell every core apart)."""
    implementer = fields.get("CPU implementer", "").lower()
    part = fields.get("CPU part", "").lower()
    if not implementer and not part:
        return ""
    ids = ", ".join(f"{what} {value}" for what, value in
                    (("implementer", implementer), ("part", part)) if value)
    vendor = ARM_IMPLEMENTERS.get(implementer, "ARM")
    core = ARM_PARTS.get((implementer, part))
    return f"{vendor} {core} ({ids})" if core else f"{vendor} ({ids})"


def cpu_vector_extensions(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """Which of :data:`VECTOR_EXTENSIONS` the CPU has, in that order (empty where
    ``cpuinfo`` does not say: not Linux, say)."""
    return _extensions(first_processor(cpuinfo))


def _extensions(fields: dict[str, str]) -> list[str]:
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return [name for name in VECTOR_EXTENSIONS if name in flags]


def usable_cpu_count() -> int | None:
    """How many CPUs this process may run on: those of its affinity mask
    (``os.sched_getaffinity``, where the platform has it, else :func:`os.cpu_count`), at
    most the cgroup's CPU quota (:data:`CGROUP_CPU_MAX`, rounded up); None where unknown."""
    cpus = usable_cpus()
    count = len(cpus) if cpus else None
    quota = _cgroup_cpu_limit()
    if quota is not None and (count is None or quota < count):
        count = quota
    return count or None


def _cgroup_cpu_limit(path: str | None = None) -> int | None:
    """The CPUs the cgroup's bandwidth limit allows, rounded up (None: no limit, or none
    that can be read)."""
    try:
        with open(path or CGROUP_CPU_MAX, encoding="ascii") as file:
            quota, period = file.read().split()[:2]
        quota_us, period_us = int(quota), int(period)
    except (OSError, ValueError, UnicodeError):  # "max": no limit; no cgroup v2: none known
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, -(-quota_us // period_us))


def _cpu_counts() -> str:
    """``2 logical CPUs``, or ``2 logical CPUs (1 usable)`` where the affinity or the cgroup
    allows fewer."""
    total, usable = os.cpu_count(), usable_cpu_count()
    text = f"{total} logical CPUs" if total else "an unknown number of logical CPUs"
    return text + (f" ({usable} usable)" if usable and usable != total else "")


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """One line naming the CPU for a benchmark's header: model, logical CPUs (and how many
    of them this process may use, where fewer) and vector extensions, e.g. ``AMD EPYC
    (family 25, model 17), 2 logical CPUs, avx2 fma avx512f``."""
    fields = first_processor(cpuinfo)  # read once for both
    extensions = _extensions(fields)
    return (f"{_model(fields)}, {_cpu_counts()}"
            + (f", {' '.join(extensions)}" if extensions else ""))


def collect_environment() -> dict:
    """Where this process runs: python, platform, machine, CPU count (``cpu_count``, the
    machine's, and ``cpu_usable``, this process's: :func:`usable_cpu_count`), model and
    vector extensions, host and library versions.

    Versions come from the installed distributions (nothing is imported); the CUDA build
    and devices are added only when torch is already imported and CUDA initialized, so
    calling this never starts a GPU context. Extend the dict (e.g. with the device used)
    and pass it to :meth:`.RunStore.open_sweep`.
    """
    cpu = first_processor()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),  # all of the machine's (None where unknown)
        "cpu_usable": usable_cpu_count(),  # those this process may run on
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
