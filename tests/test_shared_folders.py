"""Folders other users may write: a run store's folder (the sweep and tour locks) and the
kernel cache (``$OPTIMLAB_CACHE``).

A sweep lock opened through a symbolic link (or a hard link) planted at its path truncated
the file it named and wrote the holder line into it; a dangling link had it created. The
kernel cache trusted whatever its folder held: a kept C source (compiled and loaded as it
is) or a library planted under its computable name. Now a lock file is never followed
through a link, and a cache is used only where it is the user's own and no one else can
write it (else a private temporary folder, with a warning).

The kernel tests build two tiny libraries once for the module and copy them where a test
needs them; one test builds a real optimizer's kernel (a trace and a compile).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import optimlab
from optimlab.bench import tour
from optimlab.bench.store import RunStore, StoreError
from optimlab.optim import kernels
from optimlab.optim.kernels import build

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid") or not hasattr(os, "symlink"),
                                reason="POSIX owners, modes and links")

CONFIG = {"task": "two-moons", "model": "mlp", "train": {"steps": 100, "batch_size": 32}}
PRECIOUS = "IMPORTANT DATA, a thesis\n" * 3


# ----------------------------------------------------------------------------- sweep locks


def _store_and_sweep(folder: Path) -> tuple[Path, int]:
    path = folder / "runs.db"
    with RunStore(path) as store:
        sweep = store.open_sweep(CONFIG)
    return path, sweep


def _take_lock(path: Path, sweep: int) -> None:
    with RunStore(path) as store, store.lock_sweep(sweep):
        pass


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_link_planted_at_the_sweep_lock_is_refused_and_its_target_untouched(tmp_path, link):
    """Another user of a group-writable store folder plants ``runs.db-sweep1.lock`` as a link
    to a file of the victim's: taking the lock truncated it and wrote the holder line in."""
    shared = tmp_path / "shared"
    shared.mkdir()
    path, sweep = _store_and_sweep(shared)
    victim = tmp_path / "precious.txt"
    victim.write_text(PRECIOUS)
    lock = shared / f"runs.db-sweep{sweep}.lock"
    if link == "symbolic":
        os.symlink(victim, lock)
    else:
        os.link(victim, lock)
    with pytest.raises(StoreError) as err:
        _take_lock(path, sweep)
    message = str(err.value)
    assert str(lock) in message
    assert ("is a symbolic link" if link == "symbolic" else "is a hard link") in message
    assert "\n" not in message
    assert victim.read_text() == PRECIOUS
    assert lock.is_symlink() == (link == "symbolic")


def test_a_dangling_link_at_the_sweep_lock_does_not_create_its_target(tmp_path):
    path, sweep = _store_and_sweep(tmp_path)
    target = tmp_path / "elsewhere" / "created-by-the-victim"
    target.parent.mkdir()
    lock = tmp_path / f"runs.db-sweep{sweep}.lock"
    os.symlink(target, lock)
    with pytest.raises(StoreError, match="is a symbolic link"):
        _take_lock(path, sweep)
    assert not target.exists() and lock.is_symlink()


def test_a_stale_regular_lock_file_is_still_taken_over(tmp_path):
    """A lock file left by a killed process (naming it) is a regular file: locked and given
    this process's holder line, as before; removed when released."""
    path, sweep = _store_and_sweep(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    lock = tmp_path / f"runs.db-sweep{sweep}.lock"
    lock.write_text(f"{child.pid} {socket.gethostname()} 2026-01-01T00:00:00Z\n")
    with RunStore(path) as store, store.lock_sweep(sweep):
        assert lock.read_text().split()[0] == str(os.getpid())
    assert not lock.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="the tour locks with fcntl")
def test_a_dangling_link_at_the_tour_lock_is_refused(tmp_path):
    target = tmp_path / "created-by-the-victim"
    os.symlink(target, tmp_path / tour.TOUR_LOCK)
    with pytest.raises(OSError, match="symbolic link"):
        with tour._one_tour_at_a_time(tmp_path):
            pass
    assert not target.exists()


# ----------------------------------------------------------------------------- kernel cache


def source(value: int) -> str:
    """A kernel with the fused step's signature that returns ``value``."""
    return ("#include <stdint.h>\nint optimlab_step(int64_t nt, const int64_t *n, "
            f"void *const *p, const double *i, double *o, int t) {{ return {value}; }}\n")


def call(function) -> int:
    return function(0, None, None, None, None, 1)


GOOD = source(21)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory) -> dict[str, Path]:
    """Two libraries built once: the victim's own kernel (returns 21) and one an attacker
    would plant under its name (returns 666)."""
    try:
        build.compiler()
    except build.CompilerUnavailable:
        pytest.skip("no C compiler")
    folder = tmp_path_factory.mktemp("libraries")
    flags = build.flag_sets()[0]
    built = {}
    for name, text in [("good", GOOD), ("evil", source(666))]:
        built[name] = folder / f"{name}.so"
        build._build(text, folder, built[name], flags)
    return built


@pytest.fixture
def fresh(monkeypatch):
    """No kernel loaded in this 'process' yet, nothing said about the cache yet, and a
    private temporary folder of the test's own (removed after it)."""
    monkeypatch.setattr(build, "_LOADED", {})
    monkeypatch.setattr(kernels, "_KERNELS", {})
    monkeypatch.setattr(build, "_SAID", set(), raising=False)
    build._fallback_dir.cache_clear()
    yield
    if build._fallback_dir.cache_info().currsize:
        shutil.rmtree(build._fallback_dir(), ignore_errors=True)
        build._fallback_dir.cache_clear()


def _planted(cache: Path, libraries: dict[str, Path]) -> Path:
    """The attacker's library where the victim's build of GOOD would be cached."""
    (cache / "kernels").mkdir(parents=True, exist_ok=True)
    planted = cache / "kernels" / f"step-{build.cache_key(GOOD)}.so"
    shutil.copyfile(libraries["evil"], planted)
    os.chmod(planted, 0o644)
    return planted


def _load_recording_builds(monkeypatch, libraries) -> tuple[int, list[Path], list[str]]:
    """``load(GOOD)`` called, its builds copying the prebuilt good library: the kernel's
    result, the folders built in and the warnings said."""
    folders: list[Path] = []

    def fake_build(text, folder, target, flags):
        assert text == GOOD
        folders.append(Path(folder))
        shutil.copyfile(libraries["good"], target)

    monkeypatch.setattr(build, "_build", fake_build)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call(build.load(GOOD))
    return result, folders, [str(w.message) for w in caught]


def test_a_cache_others_may_write_is_not_used(tmp_path, monkeypatch, libraries, fresh):
    """The cache folder writable by all (a cache a team "shares"): a library planted there
    was loaded. It is not used: the kernel is built in a private folder of the process,
    and a warning names what was refused."""
    cache = tmp_path / "shared-cache"
    monkeypatch.setenv("OPTIMLAB_CACHE", str(cache))
    _planted(cache, libraries)
    os.chmod(cache, 0o777)
    result, folders, said = _load_recording_builds(monkeypatch, libraries)
    assert result == 21  # not the planted 666
    assert len(folders) == 1 and cache not in folders[0].parents and folders[0] != cache
    assert [s for s in said if str(cache) in s and "can be written by users other than its owner"
            in s and "private temporary folder" in s], said


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="giving a file to another user needs root")
def test_a_library_another_user_planted_in_a_kernels_folder_others_could_write_is_not_used(
        tmp_path, monkeypatch, libraries, fresh):
    """This user's ``kernels`` folder writable by all: its write bits are taken away, and
    a library someone else put there (theirs, as anything they create is) is not loaded."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OPTIMLAB_CACHE", str(cache))
    planted = _planted(cache, libraries)
    os.chmod(cache / "kernels", 0o777)
    os.chown(planted, os.getuid() + 1, -1)
    result, folders, said = _load_recording_builds(monkeypatch, libraries)
    assert result == 21
    assert len(folders) == 1 and cache not in folders[0].parents
    assert [s for s in said if str(planted) in s and "belongs to another user" in s], said
    assert (cache / "kernels").stat().st_mode & 0o022 == 0


def test_an_older_optimlabs_cache_left_writable_is_repaired_not_refused(
        tmp_path, monkeypatch, libraries, fresh):
    """optimlab before 2026-12-07 made its folders and libraries as the umask said (0o775
    under 0o002): they were refused, and rebuilt in a temporary folder, in every process.
    This user's own are repaired: the folder loses its write bits, and the library (its
    content not to be trusted) is built again in its place; the next process loads it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OPTIMLAB_CACHE", str(cache))
    (cache / "kernels").mkdir(parents=True)
    old = cache / "kernels" / f"step-{build.cache_key(GOOD)}.so"
    shutil.copyfile(libraries["evil"], old)  # what a group member could have written there
    os.chmod(old, 0o775)
    os.chmod(cache / "kernels", 0o775)
    result, folders, said = _load_recording_builds(monkeypatch, libraries)
    assert result == 21 and folders == [cache / "kernels"] and not said
    assert (cache / "kernels").stat().st_mode & 0o777 == 0o755
    assert old.stat().st_mode & 0o022 == 0
    monkeypatch.setattr(build, "_LOADED", {})  # a new process: the library is cached
    result, folders, said = _load_recording_builds(monkeypatch, libraries)
    assert result == 21 and folders == [] and not said


def test_a_cache_of_another_user_is_not_used(tmp_path, monkeypatch, libraries, fresh):
    """A cache folder another user made (mode 0o755, say): its libraries are theirs to
    choose. (Running as one user, the other is played by a changed ``os.getuid``.)"""
    cache = tmp_path / "their-cache"
    monkeypatch.setenv("OPTIMLAB_CACHE", str(cache))
    _planted(cache, libraries)
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)
    result, folders, said = _load_recording_builds(monkeypatch, libraries)
    assert result == 21
    assert len(folders) == 1 and cache not in folders[0].parents
    assert [s for s in said if "belongs to another user" in s and str(cache) in s], said


def test_a_private_cache_is_created_private_and_used(tmp_path, monkeypatch, libraries, fresh):
    cache = tmp_path / "new" / "cache"
    monkeypatch.setenv("OPTIMLAB_CACHE", str(cache))
    result, folders, said = _load_recording_builds(monkeypatch, libraries)
    assert result == 21 and folders == [cache / "kernels"] and not said
    for folder in (cache / "kernels", cache):
        assert folder.stat().st_mode & 0o777 == 0o700, (folder, oct(folder.stat().st_mode))
    monkeypatch.setattr(build, "_LOADED", {})  # a new process: the library is cached
    result, folders, said = _load_recording_builds(monkeypatch, libraries)
    assert result == 21 and folders == [] and not said


def test_a_cache_folder_its_group_may_write_still_holds_a_private_kernels_folder(
        tmp_path, monkeypatch, libraries, fresh):
    """The cache folder made 0o775 under the common umask 0o002 (by the command line's
    catalog, say, which comes first): its ``kernels`` folder, created 0o700, is still used."""
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o775)
    monkeypatch.setenv("OPTIMLAB_CACHE", str(cache))
    result, folders, said = _load_recording_builds(monkeypatch, libraries)
    assert result == 21 and folders == [cache / "kernels"] and not said
    assert (cache / "kernels").stat().st_mode & 0o777 == 0o700


def _adamax_step() -> None:
    """One fused Adamax step (float64), as a new process would take it."""
    p = torch.nn.Parameter(torch.linspace(-1, 1, 40, dtype=torch.float64))
    p.grad = torch.linspace(1, 2, 40, dtype=torch.float64)
    optimlab.Adamax([p], lr=0.01, fused=True).step()


def test_a_kept_source_others_may_write_is_not_compiled(tmp_path, monkeypatch, fresh):
    """A kept C source (compiled and loaded as it is) writable by the group: a member could
    have put code there. It is traced again instead (and kept anew, the user's alone); a
    private cache is still used, neither traced nor compiled when warm."""
    try:
        build.compiler()
    except build.CompilerUnavailable:
        pytest.skip("no C compiler")
    cache = tmp_path / "cache"
    monkeypatch.setenv("OPTIMLAB_CACHE", str(cache))
    traced, loaded, compiled = [], [], []
    real_trace, real_load, real_build = kernels.trace_rule, kernels.load, build._build
    monkeypatch.setattr(kernels, "trace_rule", lambda *a: traced.append(1) or real_trace(*a))
    monkeypatch.setattr(kernels, "load", lambda text, *a: loaded.append(text) or real_load(text, *a))
    monkeypatch.setattr(build, "_build", lambda *a: compiled.append(1) or real_build(*a))

    def run() -> tuple[int, int, list[str]]:
        """A step in a fresh 'process': rules traced, kernels compiled, warnings said."""
        monkeypatch.setattr(kernels, "_KERNELS", {})
        monkeypatch.setattr(build, "_LOADED", {})
        traced.clear(), loaded.clear(), compiled.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _adamax_step()
        return len(traced), len(compiled), [str(w.message) for w in caught]

    assert run()[:2] == (1, 1)  # cold: traced, compiled, kept
    (kept,) = (cache / "kernel-sources").glob("*.json")
    assert run() == (0, 0, [])  # warm and private: neither traced nor compiled
    kept.write_text(kept.read_text().replace("#include", "/* planted */\\n#include", 1))
    assert "planted" in kept.read_text()
    os.chmod(kept, 0o664)
    n_traced, n_compiled, said = run()
    assert not [text for text in loaded if "planted" in text]
    assert (n_traced, n_compiled) == (1, 0)  # traced again; its library still cached
    assert not said  # this user's own file: replaced, as an older optimlab left it
    assert "planted" not in kept.read_text() and kept.stat().st_mode & 0o022 == 0  # kept anew
    assert (cache / "kernel-sources").stat().st_mode & 0o777 == 0o700  # created private
