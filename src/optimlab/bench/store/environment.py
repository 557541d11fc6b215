"""Where a sweep was created: :func:`collect_environment` (python, platform, machine, host,
library versions, and CUDA devices when torch already initialized them).

The run store records it in the ``environment`` column of ``sweeps``
(:meth:`~optimlab.bench.store.RunStore.open_sweep`). Standard library only: versions are
read from the installed distributions, nothing is imported to find them.
"""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import sys
from importlib import metadata
from typing import Any

__all__ = ["collect_environment"]


def collect_environment() -> dict:
    """Where this process runs: python, platform, machine, host and library versions.

    Versions come from the installed distributions (nothing is imported); the CUDA build
    and devices are added only when torch is already imported and CUDA initialized, so
    calling this never starts a GPU context. Extend the dict (e.g. with the device used)
    and pass it to :meth:`RunStore.open_sweep`.
    """
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
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
