"""Compile generated C once per machine and keep the shared library on disk.

A kernel is compiled with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``)
into ``$OPTIMLAB_CACHE/kernels`` (default ``~/.cache/optimlab/kernels``) under a name that
hashes the source, the compiler's version, the flags and the CPU the build targets
(:func:`cpu_identity`: ``-march=native`` makes a library specific to one instruction set, and
a cache folder in a network home is shared by machines that differ), so a warm start only
loads the file.
Builds write to a temporary name and rename it into place: a killed process or two processes
building the same kernel never leave a half-written library. Where the cache folder cannot be
written, a per-process temporary folder is used instead.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..._cpuinfo import first_processor

__all__ = ["CompilerUnavailable", "BuildFailed", "compiler", "cpu_identity", "cache_key", "cache_dir", "load"]

#: ``-fno-math-errno`` lets sqrt vectorize; no ``-ffast-math``: NaN and inf keep their meaning
#: ``-ffp-contract=off``: fused multiply-adds only where the generated code asks for one, as
#: torch's kernels do (``add(alpha=)``, ``addcmul``, ``lerp``), so results follow torch's
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fopenmp", "-shared",
         "-fPIC", "-std=gnu11")


class CompilerUnavailable(RuntimeError):
    """No working C compiler with OpenMP was found (the fused path needs one on the CPU)."""


class BuildFailed(CompilerUnavailable):
    """The compiler rejected a generated kernel (remembered per kernel for the process)."""


@functools.lru_cache(maxsize=None)
def compiler() -> tuple[str, str]:
    """The C compiler's path and its version line; raises :class:`CompilerUnavailable`."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            return path, out.stdout.splitlines()[0] if out.stdout else name
    raise CompilerUnavailable(
        "the fused optimizer step needs a C compiler with OpenMP (gcc or clang) on the PATH "
        f"(tried {', '.join(candidates)}); install one, set CC, or pass fused=False")


@functools.lru_cache(maxsize=None)
def cpu_identity() -> str:
    """What ``-march=native`` builds for on this machine, as a short hash (once per process).

    Preferably the compiler's own expansion of ``-march=native`` (``cc -### -E``: gcc's
    ``-march=``, ``-mtune=`` and one ``-m``/``-mno-`` flag per instruction-set extension,
    clang's ``-target-cpu`` and ``-target-feature`` list), so machines whose compiler targets
    the same instruction set share a build and any difference in it makes a new one. Where the
    compiler does not say (or says only ``native``), the first CPU's ``/proc/cpuinfo`` model and
    feature lines, and failing that :func:`platform.processor`, stand in. Costs one compiler
    start (about 20 ms) per process, on the first kernel load.
    """
    cc, _ = compiler()
    parts = _native_target(cc) or _cpuinfo() or [platform.processor(), platform.machine()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _native_target(cc: str) -> list[str]:
    """The options the compiler turns ``-march=native`` into ([] if it does not tell)."""
    try:
        out = subprocess.run([cc, "-march=native", "-###", "-E", "-x", "c", os.devnull],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    target = []
    for line in (out.stderr + out.stdout).splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        for before, word in zip(["", *words], words):
            if before in ("-target-cpu", "-target-feature", "-tune-cpu"):  # clang's cc1
                target.append(f"{before} {word}")
            elif word.startswith("-m") and word != "-march=native":  # gcc's cc1
                target.append(word)
    return target if any(w.startswith(("-march=", "-target-cpu")) for w in target) else []


def _cpuinfo() -> list[str]:
    """The first CPU's model and feature lines of ``/proc/cpuinfo`` ([] where there is none)."""
    keys = {"model name", "flags", "cpu model", "isa", "features", "cpu implementer",
            "cpu architecture", "cpu variant", "cpu part", "vendor_id", "cpu family", "model"}
    return [f"{key}: {value}" for key, value in first_processor().items()
            if key.lower() in keys]


def cache_key(source: str) -> str:
    """The name a build of ``source`` is cached under: the source, the compiler and its
    version, :data:`FLAGS` and the CPU they target (:func:`cpu_identity`)."""
    cc, version = compiler()
    return hashlib.sha256("\n".join([source, cc, version, " ".join(FLAGS), platform.machine(),
                                     cpu_identity()]).encode()).hexdigest()[:24]


def cache_dir() -> Path:
    """Where compiled kernels live (created on demand)."""
    root = os.environ.get("OPTIMLAB_CACHE") or Path.home() / ".cache" / "optimlab"
    return Path(root) / "kernels"


@functools.lru_cache(maxsize=None)
def _fallback_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="optimlab-kernels-"))


def _writable(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return folder
    except OSError:
        return _fallback_dir()


_LOADED: dict[str, ctypes.CDLL] = {}


def load(source: str, symbol: str = "optimlab_step"):
    """Compile ``source`` (or reuse the cached build) and return its C function ``symbol``."""
    cc, _ = compiler()
    key = cache_key(source)
    if key not in _LOADED:
        folder = _writable(cache_dir())
        target = folder / f"step-{key}.so"
        if not target.exists():
            c_file = folder / f"step-{key}.{os.getpid()}.c"
            tmp = folder / f"step-{key}.{os.getpid()}.so.tmp"
            c_file.write_text(source)
            try:
                out = subprocess.run([cc, *FLAGS, str(c_file), "-o", str(tmp), "-lm"],
                                     capture_output=True, text=True, timeout=300)
                if out.returncode != 0:
                    raise BuildFailed(
                        f"{cc} could not build a fused optimizer kernel (pass fused=False to "
                        f"avoid it):\n{out.stderr.strip()[-2000:]}")
                os.replace(tmp, target)
            finally:
                for leftover in (c_file, tmp):
                    leftover.unlink(missing_ok=True)
        _LOADED[key] = ctypes.CDLL(str(target))
    function = getattr(_LOADED[key], symbol)
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_void_p, ctypes.c_int]
    return function
