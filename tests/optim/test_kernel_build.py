"""Building and loading fused kernels (optimlab.optim.kernels.build): a shared cache folder,
broken cached libraries, an unwritable cache and ``$CC`` command lines.

Each test builds at most one or two small kernels (a second or so each) into its own
``OPTIMLAB_CACHE``.
"""

import ctypes
import os
import re
import shutil

import pytest

from optimlab.optim import kernels
from optimlab.optim.kernels import build


def source(value: int) -> str:
    """A kernel with the fused step's signature that returns ``value`` (a C expression)."""
    return ("#include <stdint.h>\nint optimlab_step(int64_t nt, const int64_t *n, "
            f"void *const *p, const double *i, double *o, int t) {{ return {value}; }}\n")


def call(function) -> int:
    return function(0, None, None, None, None, 1)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """The kernels' folder of an empty cache; no library loaded yet in this 'process'."""
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(build, "_LOADED", {})
    try:
        build.compiler()
    except build.CompilerUnavailable:
        pytest.skip("no C compiler")
    return tmp_path / "kernels"


@pytest.fixture
def fresh_compiler():
    """compiler() and cpu_identity() looked up again, for this test's $CC and after it."""
    build.compiler.cache_clear()
    build.cpu_identity.cache_clear()
    yield
    build.compiler.cache_clear()
    build.cpu_identity.cache_clear()


def test_builds_sharing_a_process_id_leave_each_others_files_alone(cache):
    """Containers sharing a cache folder often run their builds under the same process id:
    one build's temporaries must not be the other's (it overwrote, renamed away and removed
    them: FileNotFoundError at the rename, or a half-written library loaded)."""
    text = source(11)
    key = build.cache_key(text)
    cache.mkdir(parents=True)
    pid = os.getpid()
    others = {cache / f"step-{key}.{pid}.c": "another process's source",
              cache / f"step-{key}.{pid}.so.tmp": "another process's half-written library"}
    for path, content in others.items():
        path.write_text(content)
    assert call(build.load(text)) == 11
    assert {path: path.read_text() for path in others} == others
    assert sorted(cache.iterdir()) == sorted([*others, cache / f"step-{key}.so"])  # no leftovers


def test_a_build_that_loses_the_rename_race_loads_the_winners_library(cache, monkeypatch):
    """Where the rename into place fails because another process's library is already there,
    that library is loaded: it only ever appears complete."""
    text = source(12)
    target = cache / f"step-{build.cache_key(text)}.so"
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst) != os.fspath(target):
            return real_replace(src, dst)
        shutil.copyfile(src, dst)  # the other process's build, renamed into place first
        raise PermissionError(13, "the target is busy", os.fspath(dst))

    monkeypatch.setattr(build.os, "replace", replace)
    assert call(build.load(text)) == 12


def test_a_broken_cached_library_is_built_again(cache):
    """A cached library truncated by a full disk made every step raise OSError, even with the
    default fused=None; it is removed and built once more."""
    text = source(13)
    target = cache / f"step-{build.cache_key(text)}.so"
    cache.mkdir(parents=True)
    target.write_bytes(b"")
    assert call(build.load(text)) == 13
    assert target.stat().st_size > 0


def test_a_library_that_never_loads_is_a_failed_build(cache, monkeypatch):
    """A library that does not load even when freshly built is BuildFailed, which the fused
    path's callers take as "use the plain path" (an OSError crashed fused=None), once every
    set of flags was built and failed so (a set whose library does not load gives way to
    the next); and no set is given up for the process's other kernels."""
    text = source(14)
    real_cdll = ctypes.CDLL
    opened = []

    def cdll(name, *args, **kwargs):
        if os.fspath(name).startswith(os.fspath(cache)):
            opened.append(name)
            raise OSError(f"{name}: file too short")
        return real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(build.ctypes, "CDLL", cdll)
    monkeypatch.setattr(build, "_UNUSABLE", set())
    with pytest.raises(build.BuildFailed, match="does not load even after a rebuild"):
        build.load(text)
    # each set's library, then one rebuild of it
    sets = build.flag_sets()
    assert len(opened) == 2 * len(sets) and len(set(opened)) == len(sets)
    assert not build._UNUSABLE  # the source's trouble, not the flags': none given up


def test_keeping_a_source_is_best_effort_where_the_cache_is_a_file(monkeypatch, tmp_path):
    """OPTIMLAB_CACHE naming a regular file: keeping a generated source fails, and so did the
    cleanup after it (NotADirectoryError), which crashed even fused=None."""
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path / "afile"))
    kernels._keep_source("identity", "int optimlab_step;", 1)  # no error
    assert kernels._cached_source("identity") is None


def test_a_kept_source_is_read_back_and_readable_by_others(monkeypatch, tmp_path):
    """Written under a temporary name of its own (not the process id, which repeats across
    containers sharing a cache), renamed into place, readable by a shared cache's users."""
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(os, "getpid", lambda: 1)
    stale = kernels._sources_dir() / "identity.1.tmp"  # the old name, another process's
    stale.parent.mkdir(parents=True)
    stale.write_text("half written")
    kernels._keep_source("identity", "int optimlab_step;", 1)
    assert kernels._cached_source("identity") == ("int optimlab_step;", 1)
    assert stale.read_text() == "half written"  # left alone
    kept = kernels._sources_dir() / "identity.json"
    assert kept.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in kept.parent.iterdir()) == ["identity.1.tmp", "identity.json"]


@pytest.mark.parametrize("cc_line", ["{cc} -DOPTIMLAB_RESULT=15", "env {cc} -DOPTIMLAB_RESULT=15"])
def test_cc_is_a_command_line(cc_line, cache, monkeypatch, fresh_compiler):
    """``CC="ccache gcc"`` or ``CC="gcc -m64"``, as make takes them: the first word is the
    program, the other words go before the flags (the whole line was looked up as one name,
    so such a CC counted as no compiler)."""
    cc, _ = build.compiler()
    words = cc_line.format(cc=cc).split()
    monkeypatch.setenv("CC", " ".join(words))
    build.compiler.cache_clear()
    assert build.compiler()[0] == shutil.which(words[0])
    assert build.command() == [shutil.which(words[0]), *words[1:]]
    assert call(build.load(source("OPTIMLAB_RESULT"))) == 15


def test_a_cc_whose_program_is_missing_is_no_compiler(monkeypatch, tmp_path, fresh_compiler):
    missing = f"{tmp_path / 'no-such-cc'} gcc"
    monkeypatch.setenv("CC", missing)
    with pytest.raises(build.CompilerUnavailable, match=re.escape(f"tried {missing}")):
        build.compiler()
