"""Compile generated C once per machine and keep the shared library on disk.

A kernel is compiled with the system C compiler (``$CC``, a command line such as ``ccache gcc``
or ``gcc -m64``, else ``cc``, ``gcc`` or ``clang``) into ``$OPTIMLAB_CACHE/kernels`` (default
``$XDG_CACHE_HOME/optimlab/kernels``, else ``~/.cache/optimlab/kernels``: :func:`cache_root`)
under a name that hashes the source, the compiler's command line and version, the flags and
the CPU the build targets (:func:`cpu_identity`: ``-march=native`` makes a library specific to
one instruction set, and a cache folder in a network home is shared by machines that differ),
so a warm start only loads the file.
Not every compiler takes every flag: Apple's clang has no ``-fopenmp``, GCC on POWER no
``-march=native``. :func:`flag_sets` lists the flags to try, best first (OpenMP threads and
the CPU's own instruction set, then without one or both); the first set that builds is the
one used, and its library is named by those flags. The generated C runs serially where it
is built without OpenMP, with the same results (threads only share out the elements).
Builds write to a temporary folder of their own and rename the library into place: a killed
process or two processes building the same kernel (containers sharing the cache often have the
same process id) never leave a half-written library or remove each other's files. A cached
library that does not load (truncated by a full disk, say) is removed and built once more.
Where the cache folder cannot be written, a per-process temporary folder is used instead.

A cache is used only where the current user owns it and no one else can write it
(:func:`untrusted`): whoever can write a cache folder can have every process that uses it
compile and load code of theirs. Its folders are created private (mode 0o700); a folder
or a cached file that belongs to another user, or that its group or others may write, is
not used: the process builds in a private temporary folder of its own instead and says
so once (:class:`UntrustedCacheWarning`). (The cache folder above ``kernels`` may be its
group's to write, as a umask of 0o002 leaves it, but not everyone's.) So a cache folder is
not shared between users.
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
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

from ... import _env
from ..._cpuinfo import first_processor
from ..._files import process_folder

__all__ = ["CompilerUnavailable", "BuildFailed", "compiler", "command", "cpu_flag", "flag_sets",
           "cpu_identity", "cache_key", "cache_root", "cache_dir", "load", "untrusted",
           "UntrustedCacheWarning"]

#: the flags of the best build (:func:`flag_sets` lists those tried, this one first).
#: ``-fno-math-errno`` lets sqrt vectorize; no ``-ffast-math``: NaN and inf keep their meaning.
#: ``-ffp-contract=off``: fused multiply-adds only where the generated code asks for one, as
#: torch's kernels do (``add(alpha=)``, ``addcmul``, ``lerp``), so results follow torch's.
#: ``-march=native`` stands for :func:`cpu_flag`; ``-fopenmp`` makes the loops parallel.
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fopenmp", "-shared",
         "-fPIC", "-std=gnu11")


def cpu_flag() -> str:
    """The flag that builds for this machine's own CPU: GCC takes ``-march=native`` on x86-64
    but wants ``-mcpu=native`` on POWER, and clang on 64-bit ARM took only ``-mcpu=native``
    before version 15 (a compiler that takes neither builds without, see :func:`flag_sets`)."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64", "ppc64le", "ppc64", "powerpc64le", "powerpc64"):
        return "-mcpu=native"
    return "-march=native"


def flag_sets() -> list[tuple[str, ...]]:
    """The flags a kernel is built with, best first; :func:`load` uses the first that builds.

    :data:`FLAGS` (with :func:`cpu_flag`), then without ``-fopenmp`` (clang without
    ``libomp``: a serial kernel), without the CPU flag (a portable one), without both. On
    macOS ``-fopenmp`` is never passed: Apple's clang rejects it, and a Homebrew clang's would
    load a second OpenMP runtime beside the ``libomp`` torch ships, which aborts the process
    ("OMP: Error #15").
    """
    cpu = cpu_flag()
    best = tuple(cpu if flag == "-march=native" else flag for flag in FLAGS)
    dropped = [(), ("-fopenmp",), (cpu,), (cpu, "-fopenmp")]
    if platform.system() == "Darwin":
        dropped = [drop for drop in dropped if "-fopenmp" in drop]
    return [tuple(flag for flag in best if flag not in drop) for drop in dropped]


class CompilerUnavailable(RuntimeError):
    """No working C compiler was found (the fused path needs one on the CPU)."""


class BuildFailed(CompilerUnavailable):
    """The compiler rejected a generated kernel (remembered per kernel for the process)."""


class _Rejected(BuildFailed):
    """The compiler ran and rejected the source with these flags (another set may build)."""


def compiler() -> tuple[str, str]:
    """The C compiler's path and its version line; raises :class:`CompilerUnavailable`.

    ``$CC`` is a command line, as make reads it: its first word is looked up on the PATH and
    the other words (:func:`command`) go before the flags, so ``ccache gcc`` or ``gcc -m64``
    is a compiler too. Looked for once per process, and so is the lack of one: every
    optimizer asked again (``cc``, ``gcc`` and ``clang --version`` each time), and on a Mac
    without the Command Line Tools ``cc`` is a stub that offers to install them.
    ``compiler.cache_clear()`` looks again (for another ``$CC``).
    """
    found = _find_compiler()
    if isinstance(found, CompilerUnavailable):
        raise CompilerUnavailable(*found.args)
    return found


def _cc_words(cc: str) -> list[str]:
    """``$CC`` as words: a command line (``ccache gcc``, ``"/opt/my cc/gcc" -m64``) split as
    a POSIX shell splits it; but a value that is itself a compiler's path is one word,
    whatever it holds (a Windows path's backslashes, which the shell's rules would eat:
    ``C:\\msys64\\mingw64\\bin\\gcc.exe``; a space). An unbalanced quote: no words."""
    if os.path.isfile(cc) or (os.sep not in cc and "/" not in cc and shutil.which(cc)):
        return [cc]
    try:
        words = shlex.split(cc, posix=os.name != "nt")
    except ValueError:  # an unbalanced quote: no command line at all
        return []
    # Windows' rules keep a quoted word's quotes ("C:\\my cc\\gcc.exe"): dropped
    return [w[1:-1] if len(w) > 1 and w[0] == w[-1] and w[0] in "\"'" else w for w in words]


@functools.lru_cache(maxsize=None)
def _find_compiler() -> tuple[str, str] | CompilerUnavailable:
    """:func:`compiler`'s answer, the error returned (an lru_cache does not keep a raise)."""
    cc = os.environ.get("CC", "")
    candidates = [_cc_words(cc)] if cc else [["cc"], ["gcc"], ["clang"]]
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
    return CompilerUnavailable(
        "the fused optimizer step needs a C compiler (gcc or clang) on the PATH "
        f"(tried {tried}); install one, set CC, or pass fused=False")


compiler.cache_clear = _find_compiler.cache_clear  # type: ignore[attr-defined]


def command() -> list[str]:
    """The compiler's command line before the flags: :func:`compiler`'s path, then the words
    ``$CC`` has after its first (``ccache gcc`` runs ``/usr/bin/ccache gcc``)."""
    path, _ = compiler()
    cc = os.environ.get("CC", "")
    return [path, *_cc_words(cc)[1:]] if cc else [path]


@functools.lru_cache(maxsize=None)
def cpu_identity() -> str:
    """What the CPU flag (:func:`cpu_flag`, ``-march=native``) builds for on this machine, as a
    short hash (once per process).

    Preferably the compiler's own expansion of the flag (``cc -### -E``: gcc's ``-march=`` or
    ``-mcpu=``, ``-mtune=`` and one ``-m``/``-mno-`` flag per instruction-set extension,
    clang's ``-target-cpu`` and ``-target-feature`` list), so machines whose compiler targets
    the same instruction set share a build and any difference in it makes a new one. Where the
    compiler does not say (or says only ``native``), the first CPU's ``/proc/cpuinfo`` model and
    feature lines, and failing that :func:`platform.processor`, stand in. Costs one compiler
    start (about 20 ms) per process, on the first kernel load.
    """
    parts = _native_target(command()) or _cpuinfo() or [platform.processor(), platform.machine()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _native_target(cc: list[str]) -> list[str]:
    """The options the compiler (its :func:`command`) turns the CPU flag into ([] if it does
    not tell, or rejects the flag)."""
    flag = cpu_flag()
    try:
        out = subprocess.run([*cc, flag, "-###", "-E", "-x", "c", os.devnull],
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
            elif word.startswith("-m") and word != flag:  # gcc's cc1
                target.append(word)
    return target if any(w.startswith(("-march=", "-mcpu=", "-target-cpu")) for w in target) else []


def _cpuinfo() -> list[str]:
    """The first CPU's model and feature lines of ``/proc/cpuinfo`` ([] where there is none)."""
    keys = {"model name", "flags", "cpu model", "isa", "features", "cpu implementer",
            "cpu architecture", "cpu variant", "cpu part", "vendor_id", "cpu family", "model"}
    return [f"{key}: {value}" for key, value in first_processor().items()
            if key.lower() in keys]


def cache_key(source: str, flags: tuple[str, ...] | None = None) -> str:
    """The name a build of ``source`` with ``flags`` (default: the first of :func:`flag_sets`)
    is cached under: the source, the compiler and its version, the flags and the CPU they
    target (:func:`cpu_identity`). A library built without OpenMP or the CPU flag has a name
    of its own, never loaded for another set of flags."""
    _, version = compiler()
    flags = flag_sets()[0] if flags is None else flags
    return hashlib.sha256("\n".join([source, " ".join(command()), version, " ".join(flags),
                                     platform.machine(), cpu_identity()]).encode()).hexdigest()[:24]


def cache_root() -> Path:
    """optimlab's cache folder (:func:`optimlab._env.cache_root`: ``$OPTIMLAB_CACHE``, a
    leading ``~`` expanded, else ``$XDG_CACHE_HOME/optimlab`` for an absolute
    ``XDG_CACHE_HOME``, else ``~/.cache/optimlab``); where there is no home either (``$HOME``
    unset and a user id without a passwd entry, as containers run under an arbitrary id), a
    temporary folder of this process's (:func:`pathlib.Path.home` raises there, and a step
    raised with it)."""
    try:
        return _env.cache_root()
    except (RuntimeError, KeyError, OSError):
        return _fallback_root()


@functools.lru_cache(maxsize=None)
def _fallback_root() -> Path:
    # a folder of this process's own: a fixed name in the shared temporary folder could be
    # created by another user first, who could then plant a library for this one to load;
    # removed when the process ends, as nothing else can use it (every process of such a
    # container had left one behind)
    return process_folder("optimlab-cache-")


def cache_dir() -> Path:
    """Where compiled kernels live (created on demand): ``kernels`` in :func:`cache_root`."""
    return cache_root() / "kernels"


@functools.lru_cache(maxsize=None)
def _fallback_dir() -> Path:
    """This process's own kernel folder, where the cache cannot be written or trusted:
    removed when the process ends."""
    return process_folder("optimlab-kernels-")


class UntrustedCacheWarning(UserWarning):
    """A cache folder or file that another user could have written (another user's, or
    writable by its group or others) is not used: kernels are built in a private temporary
    folder of the process instead (see :func:`untrusted`). Said once per folder or file."""


def untrusted(path: Path, folder: bool = False) -> str | None:
    """Why the cached file (or, with ``folder``, the cache folder) at ``path`` may not be
    used, or None where it may: it must belong to this process's user (``os.getuid()``) and
    be writable by no one else (no group or other write bit), and a file must be a regular
    file of its own, not a symbolic link. Whoever could write it could have this process
    compile or load code of theirs. A folder's symbolic link is followed (the folder it
    names is checked). Always None where there are no user ids (Windows)."""
    return _untrusted(path, folder, 0o022)


def _untrusted(path: Path, folder: bool, writers: int) -> str | None:
    """:func:`untrusted`, with the write bits (of ``0o022``) that refuse ``path``."""
    if not hasattr(os, "getuid"):  # pragma: no cover - Windows
        return None
    try:
        info = os.stat(path) if folder else os.lstat(path)
    except OSError as error:
        return f"{path} cannot be examined: {error.strerror or error}"
    if folder and not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a folder"
    if not folder and stat.S_ISLNK(info.st_mode):
        return f"{path} is a symbolic link"
    if not folder and not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if info.st_uid != os.getuid():
        return f"{path} belongs to another user (user id {info.st_uid}, not {os.getuid()})"
    if info.st_mode & writers:
        return (f"{path} can be written by users other than its owner "
                f"(mode {oct(stat.S_IMODE(info.st_mode))})")
    return None


def _untrusted_folder(folder: Path) -> str | None:
    """:func:`untrusted` for a folder of the cache (``kernels``, ``kernel-sources``), and in
    part for the cache folder above it (:func:`cache_root`), whose writers could put a
    folder of theirs in the other's place: that one must be this user's and not writable
    by all. Its group may write it: other parts of optimlab (the command line's catalog,
    the step costs) create it as the umask says, 0o775 under the common 0o002, and a folder
    of the group's put in place of ``kernels`` is not this user's, so refused."""
    return untrusted(folder, folder=True) or _untrusted(folder.parent, True, 0o002)


#: what :func:`_distrusted` has said in this process (each said once)
_SAID: set[str] = set()


def _distrusted(reason: str) -> None:
    """Warn, once per process for each ``reason``, that a cache folder or file is not used
    because of it. Where warnings are errors, the raised warning is dropped: the private
    folder is a safe way on, and a step must not stop half done (as with the warning that
    the fused path is unavailable)."""
    if reason in _SAID:
        return
    _SAID.add(reason)
    try:
        warnings.warn(f"optimlab does not use its kernel cache there: {reason}; another user "
                      "could have put code there for this process to run. Kernels are built "
                      "in a private temporary folder instead (said once per process). A cache "
                      "is used only where it belongs to you and no one else can write it "
                      "(chmod go-w; or set OPTIMLAB_CACHE to a folder of your own)",
                      UntrustedCacheWarning, stacklevel=3)
    except Warning:
        pass


def _make_private(folder: Path) -> None:
    """Create ``folder`` and any missing folder above it with mode 0o700 (``mkdir -p`` would
    give the ones above the umask's mode: 0o775 under a umask of 0o002). An existing folder
    of this user's that its group or others may write (as optimlab before 2026-12-07 made
    it under such a umask) loses those write bits: what is in it is still checked file by
    file (:func:`untrusted`), and :func:`_discard_loose` drops this user's loose files."""
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except FileNotFoundError:
        if folder.parent == folder:
            raise
        _make_private(folder.parent)
        folder.mkdir(mode=0o700, exist_ok=True)
    if hasattr(os, "getuid"):
        info = os.stat(folder)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o022:
            os.chmod(folder, stat.S_IMODE(info.st_mode) & ~0o022)


def _discard_loose(path: Path) -> bool:
    """Remove ``path`` where it is a regular file of this user's that its group or others
    may write (a library or kept source an older optimlab left under a umask of 0o002):
    its content is not to be trusted, and being this user's own it is rebuilt in its place
    instead of refused on every run. True where it was removed."""
    if not hasattr(os, "getuid"):  # pragma: no cover - Windows
        return False
    try:
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o022:
            os.unlink(path)
            return True
    except OSError:
        pass
    return False


def _writable(folder: Path) -> Path:
    """``folder`` where it can be written and may be trusted (:func:`_untrusted_folder`),
    else this process's own temporary folder (after a warning where it may not be)."""
    try:
        _make_private(folder)
    except OSError:
        return _fallback_dir()
    reason = _untrusted_folder(folder)
    if reason is not None:
        _distrusted(reason)
        return _fallback_dir()
    try:
        handle, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)  # unique, as in load()
        os.close(handle)
        os.unlink(probe)
        return folder
    except OSError:
        return _fallback_dir()


_LOADED: dict[str, ctypes.CDLL] = {}
#: flag sets the compiler rejected where a later set built the same source (so the flags
#: were the trouble, not the source): later kernels of the process skip them
_UNUSABLE: set[tuple] = set()


def load(source: str, symbol: str = "optimlab_step"):
    """Compile ``source`` (or reuse the cached build) and return its C function ``symbol``.

    The library is that of the first of :func:`flag_sets` that builds: for each set in
    order, its cached build if there is one, else a build, the next set only where the
    compiler rejects this one. A process tries the better sets again before it takes a
    plainer cached build (one compile that failed for a passing reason, a full disk or a
    compiler out of memory, would otherwise have kept every later process on a serial
    kernel); a set the compiler rejected where a later one built the same source is not
    tried again in this process. A cached library that does not load or lacks ``symbol``
    (truncated, half-copied) is removed and built once more with the same flags; if that
    one does not load either, it is removed and the next set is tried, as if the compiler
    had rejected this one (a build with ``-fopenmp`` whose runtime the loader cannot find);
    where none loads, :class:`BuildFailed`, which the fused path's callers take as "use the
    plain path", as they take a source the compiler rejects with every set.
    """
    _, version = compiler()
    compiler_id = (tuple(command()), version)
    candidates = [(flags, cache_key(source, flags)) for flags in flag_sets()
                  if (compiler_id, flags) not in _UNUSABLE]
    key = next((key for _, key in candidates if key in _LOADED), None)
    unloadable: list[tuple[str, ...]] = []
    while key is None:
        folder = _writable(cache_dir())
        flags, key, folder = _build_first(source, folder, candidates, compiler_id)
        target = folder / f"step-{key}.so"
        try:
            library = _open(target, symbol)
        except (OSError, AttributeError):
            with contextlib.suppress(OSError):
                target.unlink()
            if not target.exists():  # another process may have rebuilt it meanwhile
                _build(source, folder, target, flags)
            try:
                library = _open(target, symbol)
            except (OSError, AttributeError) as error:
                # built but not loadable with these flags (an OpenMP runtime the loader
                # does not find: MinGW's libgomp, a clang's libomp off the library path):
                # the next, plainer set is tried; where one loads, this one is not tried
                # again in this process (where none does, the source's own trouble: no set
                # is given up for the other kernels)
                with contextlib.suppress(OSError):
                    target.unlink()
                unloadable.append(flags)
                candidates = [(f, k) for f, k in candidates if f != flags]
                if not candidates:
                    raise BuildFailed(f"the fused optimizer kernel {target} does not load even "
                                      f"after a rebuild (pass fused=False to avoid it): "
                                      f"{error}") from error
                key = None
                continue
        _UNUSABLE.update((compiler_id, bad) for bad in unloadable)
        _LOADED[key] = library
    function = getattr(_LOADED[key], symbol)
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_void_p, ctypes.c_int]
    return function


def _build_first(source: str, folder: Path, candidates: list[tuple[tuple[str, ...], str]],
                 compiler_id: tuple) -> tuple[tuple[str, ...], str, Path]:
    """The first of ``candidates`` (flags and cache key) that is cached in ``folder`` or
    that the compiler builds there; returns it and the folder its library is in. A cached
    library that may not be trusted (:func:`untrusted`) is not used: the process's own
    temporary folder takes the place of ``folder``. Raises the last set's
    :class:`BuildFailed` if none builds (the plainest flags: the source's own trouble), or
    any other failure at once."""
    rejected: list[tuple[str, ...]] = []
    last = BuildFailed("no flags left to build a fused optimizer kernel with")
    for flags, key in candidates:
        target = folder / f"step-{key}.so"
        _discard_loose(target)  # this user's own, left writable by an older optimlab: rebuilt
        reason = untrusted(target) if target.exists() else None
        if reason is not None:
            _distrusted(reason)
            folder = _fallback_dir()
            target = folder / target.name
        if not target.exists():
            try:
                _build(source, folder, target, flags)
            except _Rejected as error:
                rejected.append(flags)
                last = error
                continue
        _UNUSABLE.update((compiler_id, bad) for bad in rejected)
        return flags, key, folder
    raise BuildFailed(*last.args) from last


def _open(path: Path, symbol: str) -> ctypes.CDLL:
    """The library at ``path``, once it is known to have ``symbol`` (else AttributeError).
    A cached one was checked (:func:`untrusted`) by :func:`_build_first`."""
    library = ctypes.CDLL(str(path))
    getattr(library, symbol)
    return library


def _build(source: str, folder: Path, target: Path, flags: tuple[str, ...]) -> None:
    """Compile ``source`` with ``flags`` into ``target``, which appears only once complete
    (atomic rename); :class:`_Rejected` if the compiler says no.

    The source and the library are written in a folder of this build's own (``mkdtemp``: a
    name no other process has, where a process id repeats in the next container that shares
    the cache) and the folder is removed afterwards. The library keeps the permissions the
    linker gives it less the group's and others' write bits (a umask of 0o002 left them),
    which :func:`untrusted` would refuse.
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
        out = subprocess.run([*cc, *flags, str(c_file), "-o", str(built), "-lm"],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise _Rejected(
                f"{shlex.join(cc)} could not build a fused optimizer kernel with {' '.join(flags)} "
                f"(pass fused=False to avoid it):\n{out.stderr.strip()[-2000:]}")
        os.chmod(built, stat.S_IMODE(os.stat(built).st_mode) & ~0o022)
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
