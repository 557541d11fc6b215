"""Compile generated C once per machine and keep the shared library on disk.

A kernel is compiled with the system C compiler (``$CC``, a command line such as ``ccache gcc``
or ``gcc -m64``, else ``cc``, ``gcc`` or ``clang``) into ``$OPTIMLAB_CACHE/kernels`` (default
``~/.cache/optimlab/kernels``) under a name that hashes the source, the compiler's command
line and version, the flags and the CPU the build targets
(:func:`cpu_identity`: ``-march=native`` makes a library specific to one instruction set, and
a cache folder in a network home is shared by machines that differ), so a warm start only
loads the file.
Builds write to a temporary folder of their own and rename the library into place: a killed
process or two processes building the same kernel (containers sharing the cache often have the
same process id) never leave a half-written library or remove each other's files. A cached
library that does not load (truncated by a full disk, say) is removed and built once more.
Where the cache folder cannot be written, a per-process temporary folder is used instead.
"""

from __future__ import annotations

import contextlib
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

__all__ = ["CompilerUnavailable", "BuildFailed", "compiler", "command", "cpu_identity", "cache_key",
           "cache_dir", "load"]

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
    """The C compiler's path and its version line; raises :class:`CompilerUnavailable`.

    ``$CC`` is a command line, as make reads it: its first word is looked up on the PATH and
    the other words (:func:`command`) go before the flags, so ``ccache gcc`` or ``gcc -m64``
    is a compiler too.
    """
    cc = os.environ.get("CC", "")
    try:
        words = shlex.split(cc)
    except ValueError:  # an unbalanced quote: no command line at all
        words = []
    candidates = [words] if cc else [["cc"], ["gcc"], ["clang"]]
    for first, *rest in filter(None, candidates):
        path = shutil.which(first)
        if path is None:
            continue
        try:
            out = subprocess.run([path, *rest, "--version"], capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            return path, out.stdout.splitlines()[0] if out.stdout else first
    tried = cc if cc else ", ".join(name for name, in candidates)
    raise CompilerUnavailable(
        "the fused optimizer step needs a C compiler with OpenMP (gcc or clang) on the PATH "
        f"(tried {tried}); install one, set CC, or pass fused=False")


def command() -> list[str]:
    """The compiler's command line before the flags: :func:`compiler`'s path, then the words
    ``$CC`` has after its first (``ccache gcc`` runs ``/usr/bin/ccache gcc``)."""
    path, _ = compiler()
    cc = os.environ.get("CC", "")
    try:
        return [path, *shlex.split(cc)[1:]]
    except ValueError:  # compiler() found no $CC in it: one of its defaults
        return [path]


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
    parts = _native_target(command()) or _cpuinfo() or [platform.processor(), platform.machine()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _native_target(cc: list[str]) -> list[str]:
    """The options the compiler (its :func:`command`) turns ``-march=native`` into ([] if it
    does not tell)."""
    try:
        out = subprocess.run([*cc, "-march=native", "-###", "-E", "-x", "c", os.devnull],
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
    _, version = compiler()
    return hashlib.sha256("\n".join([source, " ".join(command()), version, " ".join(FLAGS),
                                     platform.machine(), cpu_identity()]).encode()).hexdigest()[:24]


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
        handle, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)  # unique, as in load()
        os.close(handle)
        os.unlink(probe)
        return folder
    except OSError:
        return _fallback_dir()


_LOADED: dict[str, ctypes.CDLL] = {}


def load(source: str, symbol: str = "optimlab_step"):
    """Compile ``source`` (or reuse the cached build) and return its C function ``symbol``.

    A cached library that does not load or lacks ``symbol`` (truncated, half-copied) is
    removed and built once more; if that one does not load either, :class:`BuildFailed`, which
    the fused path's callers take as "use the plain path", as they take a rejected source.
    """
    key = cache_key(source)
    if key not in _LOADED:
        folder = _writable(cache_dir())
        target = folder / f"step-{key}.so"
        if not target.exists():
            _build(source, folder, target)
        try:
            library = _open(target, symbol)
        except (OSError, AttributeError):
            with contextlib.suppress(OSError):
                target.unlink()
            if not target.exists():  # another process may have rebuilt it meanwhile
                _build(source, folder, target)
            try:
                library = _open(target, symbol)
            except (OSError, AttributeError) as error:
                raise BuildFailed(f"the fused optimizer kernel {target} does not load even after a "
                                  f"rebuild (pass fused=False to avoid it): {error}") from error
        _LOADED[key] = library
    function = getattr(_LOADED[key], symbol)
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_void_p, ctypes.c_int]
    return function


def _open(path: Path, symbol: str) -> ctypes.CDLL:
    """The library at ``path``, once it is known to have ``symbol`` (else AttributeError)."""
    library = ctypes.CDLL(str(path))
    getattr(library, symbol)
    return library


def _build(source: str, folder: Path, target: Path) -> None:
    """Compile ``source`` into ``target``, which appears only once complete (atomic rename).

    The source and the library are written in a folder of this build's own (``mkdtemp``: a
    name no other process has, where a process id repeats in the next container that shares
    the cache) and the folder is removed afterwards; the linker creates the library there
    with the usual permissions, so other users of a shared cache can load it.
    """
    cc = command()
    try:
        work = Path(tempfile.mkdtemp(prefix=f"{target.stem}.", dir=folder))
    except OSError as error:
        raise BuildFailed(f"could not write a fused optimizer kernel to {folder} (pass "
                          f"fused=False to avoid it): {error}") from error
    try:
        c_file, built = work / "step.c", work / "step.so"
        c_file.write_text(source)
        out = subprocess.run([*cc, *FLAGS, str(c_file), "-o", str(built), "-lm"],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise BuildFailed(
                f"{shlex.join(cc)} could not build a fused optimizer kernel (pass fused=False "
                f"to avoid it):\n{out.stderr.strip()[-2000:]}")
        try:
            os.replace(built, target)
        except OSError:
            if not target.exists():  # else another process's complete build is in place
                raise
    except (OSError, subprocess.SubprocessError) as error:
        raise BuildFailed(f"could not build a fused optimizer kernel in {folder} (pass "
                          f"fused=False to avoid it): {error}") from error
    finally:
        shutil.rmtree(work, ignore_errors=True)

