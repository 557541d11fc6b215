"""The environment variables optimlab reads, read the same way by every part of it.

- :func:`flag` reads an on/off switch (``OPTIMLAB_DEBUG``, ``OPTIMLAB_DISABLE_PLUGINS``,
  ``OPTIMLAB_KEEP_FREED_MEMORY``, ``CI``): unset is the switch's default; ``1``, ``true``,
  ``yes``, ``on`` are on and ``0``, ``false``, ``no``, ``off`` or the empty string off (in
  any case, spaces around ignored); any other value is on, as a variable that is set always
  read, with a warning naming the variable and these words (:class:`EnvironmentWarning`).
- :func:`cache_root` is optimlab's cache folder (``$OPTIMLAB_CACHE``, else an absolute
  ``$XDG_CACHE_HOME``'s ``optimlab``, else ``~/.cache/optimlab``), under which the fused
  kernels, the step costs, mnist1d's data and the catalog commands' answers are kept.

Standard library only; importing this module is cheap (the command line reads it at start).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ON = ("1", "true", "yes", "on")
"""The values of a switch that turn it on (compared in lower case, stripped)."""

OFF = ("", "0", "false", "no", "off")
"""The values of a switch that turn it off (compared in lower case, stripped)."""

CACHE_ROOT_TEXT = ("$OPTIMLAB_CACHE, else $XDG_CACHE_HOME/optimlab where XDG_CACHE_HOME is an "
                   "absolute path, else ~/.cache/optimlab")
"""Where :func:`cache_root` looks, in words, for help texts."""


class EnvironmentWarning(UserWarning):
    """An on/off environment variable holds a value that is none of the accepted words
    (:data:`ON`, :data:`OFF`); it is read as on."""


#: the (variable, value) pairs warned about in this process (each said once)
_warned: set[tuple[str, str]] = set()


def flag(name: str, default: bool, *, warn: bool = True) -> bool:
    """The on/off environment variable ``name``: ``default`` where it is not set; False
    for a value in :data:`OFF` and True for one in :data:`ON` (in any case, with spaces
    around it ignored); any other value is on (the variable is set, as these variables
    always read), with an :class:`EnvironmentWarning` naming the variable and the accepted
    values, once per process for each value. ``warn=False`` reads other values as on
    silently: for a variable that other programs set with values of their own (``CI``,
    which Woodpecker sets to ``woodpecker``). Where warnings are errors the warning is
    dropped: reading a switch never raises."""
    value = os.environ.get(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in OFF:
        return False
    if word in ON:
        return True
    if warn and (name, value) not in _warned:
        _warned.add((name, value))
        try:
            warnings.warn(f"{name}={value!r} is not one of 1, true, yes, on (on) or 0, false, "
                          f"no, off, empty (off), in any case; read as on", EnvironmentWarning,
                          stacklevel=2)
        except Warning:
            pass
    return True


def cache_root() -> Path:
    """optimlab's cache folder (not created here): ``$OPTIMLAB_CACHE`` with a leading ``~``
    expanded (a value quoted in a Dockerfile or an ``.env`` file reaches the process
    unexpanded), else ``$XDG_CACHE_HOME/optimlab`` where ``XDG_CACHE_HOME`` is an absolute
    path (the XDG Base Directory specification ignores a relative one), else
    ``~/.cache/optimlab``.

    Raises :class:`RuntimeError` where the folder would be under a home folder that cannot
    be found (``$HOME`` unset and a user id without a passwd entry, or ``~user`` of an
    unknown user): callers choose their own way on (a temporary folder, no cache), where a
    folder named ``~`` in the working directory was made before.
    """
    root = os.environ.get("OPTIMLAB_CACHE")
    if root:
        expanded = os.path.expanduser(root)
        if expanded.startswith("~"):
            raise RuntimeError(f"OPTIMLAB_CACHE={root!r}: no home folder to expand "
                               f"{root.split(os.sep)[0]} to")
        return Path(expanded)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "optimlab"
    return Path.home() / ".cache" / "optimlab"  # RuntimeError where no home can be found


#: the variables by which a user chooses how OpenMP's idle threads wait (GNU's and Intel's
#: runtimes); :func:`wait_passively_when_busy` leaves the choice alone where one is set
OPENMP_WAIT = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def others_running(samples: int = 3, gap_s: float = 0.005) -> int:
    """How many other tasks are running or waiting for a CPU now: the fewest of ``samples``
    readings of the kernel's count of runnable tasks (Linux's ``/proc/loadavg``, less this
    process), ``gap_s`` apart, so a process that only passes by is not counted. 0 where the
    count cannot be read (another system)."""
    import time

    counts = []
    for i in range(max(1, samples)):
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(running - 1)  # (this process, reading)
        if i + 1 < samples:
            time.sleep(gap_s)
    return max(0, min(counts))


def usable_cpus() -> set[int] | None:
    """The CPUs this process may run on: its affinity mask (``os.sched_getaffinity``), or
    where the platform has none, all of :func:`os.cpu_count`'s; None where that is unknown
    too. (A cgroup's CPU quota is :func:`optimlab.bench.store.environment.usable_cpu_count`'s
    to apply.)"""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count()
        return set(range(count)) if count else None


def _torch_threads(cpus: set[int], environ) -> int:
    """How many threads torch's parallel regions will use: ``OMP_NUM_THREADS`` where it is a
    whole number >= 1, else (torch's default) the physical cores among ``cpus``, read from
    ``/proc/cpuinfo`` (all of ``cpus`` where it does not say)."""
    try:
        threads = int(environ.get("OMP_NUM_THREADS", ""))
        if threads >= 1:
            return min(threads, len(cpus))
    except ValueError:
        pass
    cores, cpu, socket = set(), None, None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    cpu, socket = int(value), None
                elif key == "physical id":
                    socket = value
                elif key == "core id" and cpu in cpus:
                    cores.add((socket, value))
    except (OSError, ValueError):
        return len(cpus)
    return len(cores) or len(cpus)


def wait_passively_when_busy(environ: dict | None = None) -> bool:
    """Before torch is imported: where more other processes are running now
    (:func:`others_running`) than the CPUs torch's threads leave free (its threads: the
    physical cores this process may use, or ``OMP_NUM_THREADS``; on a 2-core machine, one
    other process), and no :data:`OPENMP_WAIT` variable is set, set
    ``OMP_WAIT_POLICY=PASSIVE``, so that torch's idle OpenMP threads sleep instead of
    spinning. Spinning threads take the CPU
    from the process that holds the other one, and each parallel region then waits for a
    thread the system has put aside: ``optimlab bench digits --optimizers sgd,adam --lrs
    1e-3:1e-1:4 --seeds 2 --steps 400`` took 19 and 53 s spinning, 5.0 s passive, on a
    2-core machine beside two busy processes. On a quiet machine spinning is faster
    (``optimlab tour --quick``: 19.4 s spinning, 26.7 s passive), so the default stays
    there. The count is the whole system's (a container sees its host's). The policy
    changes wall times only: the step costs that rank optimizers are calibrated on one
    thread, which has no idle threads to wait. Returns
    whether it set the policy; a no-op once torch is imported (the runtime read its
    variables when it loaded)."""
    import sys

    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or any(name in environ for name in OPENMP_WAIT):
        return False
    cpus = usable_cpus() or {0}
    if others_running() <= len(cpus) - _torch_threads(cpus, environ):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
