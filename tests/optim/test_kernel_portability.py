"""The fused kernels' build where the compiler or the machine is not Linux with gcc: a compiler
without OpenMP (Apple's clang), one that rejects ``-march=native`` (GCC on POWER), no
compiler at all, and no home folder (containers under an arbitrary user id).

The compilers here are shell scripts in ``tmp_path`` (``$CC``) that reject a flag, log their
calls and hand the rest to the real compiler. Each test keeps its own ``OPTIMLAB_CACHE`` and
builds at most two generated kernels (a second or so each).
"""

import os
import pathlib
import shlex
import shutil
import tempfile
import warnings

import pytest
import torch

import optimlab
from optimlab.bench import cost
from optimlab.optim import kernels
from optimlab.optim.kernels import build
from tests.problems import assert_params_close, make_params, train_steps

#: what the warning says when fused=None falls back for want of a kernel
UNAVAILABLE = "fused optimizer step is unavailable"


def source(value: int) -> str:
    """A kernel with the fused step's signature that returns ``value``."""
    return ("#include <stdint.h>\nint optimlab_step(int64_t nt, const int64_t *n, "
            f"void *const *p, const double *i, double *o, int t) {{ return {value}; }}\n")


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A process as it starts: an empty cache of the test's own, no compiler looked for, no
    kernel built or refused, no warning given yet (and the same again afterwards)."""
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "_KERNELS", {})
    monkeypatch.setattr(kernels, "_WARNED", False, raising=False)
    monkeypatch.setattr(build, "_LOADED", {})
    monkeypatch.setattr(build, "_UNUSABLE", set(), raising=False)
    build.compiler.cache_clear()
    build.cpu_identity.cache_clear()
    yield tmp_path / "cache" / "kernels"
    build.compiler.cache_clear()
    build.cpu_identity.cache_clear()


@pytest.fixture
def real_cc():
    """The real compiler's path (looked for before a test sets ``$CC``)."""
    try:
        return build.compiler()[0]
    except build.CompilerUnavailable:
        pytest.skip("no C compiler")


def fake_compiler(tmp_path, monkeypatch, real: str | None, rejects=()) -> pathlib.Path:
    """Set ``$CC`` to a script that logs each call's arguments (one line), fails on any of
    the ``rejects`` flags as a compiler that does not know them, and runs ``real`` on the
    rest (fails on everything without one). Returns the log."""
    log, script = tmp_path / "cc.log", tmp_path / "fakecc"
    lines = ["#!/bin/sh", f'echo "$*" >> {shlex.quote(str(log))}']
    if rejects:
        lines += ['for a in "$@"; do',
                  f'  case "$a" in {"|".join(rejects)}) echo "error: unknown option $a" >&2; exit 1;; esac',
                  "done"]
    lines.append(f'exec {shlex.quote(real)} "$@"' if real else "exit 1")
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o755)
    log.write_text("")
    monkeypatch.setenv("CC", str(script))
    build.compiler.cache_clear()  # looked for again, as in a new process
    build.cpu_identity.cache_clear()
    return log


def calls(log: pathlib.Path, flag: str = "") -> int:
    """The compiler calls logged (that pass ``flag``)."""
    return sum(1 for line in log.read_text().splitlines() if flag in line.split() or not flag)


def builds(log: pathlib.Path) -> int:
    """The compiler calls that built a kernel (not the version or CPU queries)."""
    return sum(1 for line in log.read_text().splitlines() if "-shared" in line.split())


@pytest.mark.parametrize("system, machine, cpu, openmp", [
    ("Linux", "x86_64", "-march=native", True),
    ("Linux", "aarch64", "-mcpu=native", True),
    ("Linux", "ppc64le", "-mcpu=native", True),
    ("Darwin", "arm64", "-mcpu=native", False),
    ("Darwin", "x86_64", "-march=native", False),
])
def test_the_flags_tried_suit_the_platform(monkeypatch, system, machine, cpu, openmp):
    """GCC on POWER and older clang on 64-bit ARM take ``-mcpu=native``, not
    ``-march=native``; macOS never gets ``-fopenmp`` (Apple's clang rejects it, a Homebrew
    clang's runtime beside torch's libomp aborts the process). Each set of flags is tried
    once, best first, down to neither flag."""
    monkeypatch.setattr(build.platform, "system", lambda: system)
    monkeypatch.setattr(build.platform, "machine", lambda: machine)
    sets = build.flag_sets()
    assert len(set(sets)) == len(sets)
    assert sets[0] == tuple(cpu if f == "-march=native" else f for f in build.FLAGS
                            if openmp or f != "-fopenmp")
    assert {flag for s in sets for flag in s if flag.endswith("=native")} == {cpu}
    assert any("-fopenmp" in s for s in sets) == openmp
    assert not {"-fopenmp", cpu} & set(sets[-1])  # the last resort: neither
    assert all(set(build.FLAGS) - {"-march=native", "-fopenmp"} <= set(s) for s in sets)


def test_a_compiler_without_openmp_builds_a_serial_kernel(fresh, real_cc, tmp_path, monkeypatch):
    """Apple's clang rejects ``-fopenmp``, and the generated C included ``omp.h``: the fused
    path never built on a stock Mac, and fused=None stepped on the plain path, tracing every
    rule again in every process. Now the kernel builds without OpenMP and steps the same
    (threads only share out the chunks), with no warning; the next kernel of the process
    does not try ``-fopenmp`` again."""
    log = fake_compiler(tmp_path, monkeypatch, real_cc, rejects=["-fopenmp"])
    shapes = [(40_000,), (3,)]  # the first tensor is two chunks of work
    params, plain = make_params(torch.float64, shapes), make_params(torch.float64, shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a kernel that builds says nothing
        train_steps(optimlab.LAMB(params, lr=0.01, fused=True), params, 4)
        train_steps(optimlab.LAMB(plain, lr=0.01, fused=False), plain, 4)
    assert_params_close(params, plain, 1e-10)  # the parity the threaded kernel is held to
    (kernel,) = [k for k in kernels._KERNELS.values() if isinstance(k, kernels.Kernel)]
    serial = [flags for flags in build.flag_sets() if "-fopenmp" not in flags][0]
    assert sorted(p.name for p in fresh.glob("step-*.so")) == [
        f"step-{build.cache_key(kernel.source, serial)}.so"]  # named by the flags it was built with
    assert (calls(log, "-fopenmp"), builds(log)) == (1, 2)
    train_steps(optimlab.Adam(params, lr=0.01, fused=True), params, 1)  # another kernel
    assert (calls(log, "-fopenmp"), builds(log)) == (1, 3)  # -fopenmp not tried again


def test_a_compiler_that_rejects_the_cpu_flag_builds_without_it(fresh, real_cc, tmp_path,
                                                                 monkeypatch):
    """GCC on POWER rejects ``-march=native`` (and older clang on ARM64 ``-mcpu=native``):
    every build failed. Now the kernel builds without the CPU flag, cached under a name of
    those flags (never another set's), which a new process loads once the compiler has
    refused the better flags again (two quick refusals per process, not per kernel: a
    failure for a passing reason must not keep every later process on plainer flags)."""
    log = fake_compiler(tmp_path, monkeypatch, real_cc, rejects=["-march=native", "-mcpu=native"])
    assert build.load(source(7))(0, None, None, None, None, 1) == 7
    portable = [flags for flags in build.flag_sets() if build.cpu_flag() not in flags][0]
    assert "-fopenmp" in portable or build.platform.system() == "Darwin"
    keys = [build.cache_key(source(7), flags) for flags in build.flag_sets()]
    assert len(set(keys)) == len(keys) and keys[0] == build.cache_key(source(7))
    assert sorted(p.name for p in fresh.glob("step-*.so")) == [
        f"step-{build.cache_key(source(7), portable)}.so"]
    assert builds(log) == 3  # the CPU flag with OpenMP and without, then OpenMP alone
    assert build.load(source(8))(0, None, None, None, None, 1) == 8
    assert builds(log) == 4  # the CPU flag is not tried again in this process
    monkeypatch.setattr(build, "_LOADED", {})  # a new process: the library is on disk
    monkeypatch.setattr(build, "_UNUSABLE", set(), raising=False)
    assert build.load(source(7))(0, None, None, None, None, 1) == 7
    assert builds(log) == 6  # the two sets with the CPU flag refused again, none built
    assert build.load(source(8))(0, None, None, None, None, 1) == 8
    assert builds(log) == 6  # and not tried again in this process


def test_no_compiler_is_looked_for_once_and_said_once(fresh, tmp_path, monkeypatch):
    """Without a compiler every optimizer ran the compiler search again (``cc``, ``gcc``,
    ``clang --version``; on a Mac without the Command Line Tools ``cc`` is a stub that offers
    to install them) and traced its rule first, and fused=None fell back without a word.
    Now the search runs once a process, before any tracing, and one warning says why the
    plain path steps."""
    log = fake_compiler(tmp_path, monkeypatch, None)
    traced, trace = [], kernels.trace_rule
    monkeypatch.setattr(kernels, "trace_rule", lambda *a: traced.append(a) or trace(*a))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for cls in (optimlab.Adam, optimlab.Adam, optimlab.SGD, optimlab.RMSprop):
            params, plain = make_params(torch.float32), make_params(torch.float32)
            train_steps(cls(params, lr=0.01), params, 2)
            train_steps(cls(plain, lr=0.01, fused=False), plain, 2)
            assert all(torch.equal(a, b) for a, b in zip(params, plain, strict=True))
    said = [w for w in caught if UNAVAILABLE in str(w.message)]
    assert len(said) == 1 and said[0].category is kernels.FusedUnavailableWarning
    assert issubclass(kernels.FusedUnavailableWarning, UserWarning)
    assert "needs a C compiler" in str(said[0].message)
    assert calls(log) == 1 and traced == []
    with pytest.raises(RuntimeError, match="needs a C compiler"):
        params = make_params(torch.float32)
        train_steps(optimlab.Adam(params, lr=0.01, fused=True), params, 1)
    assert calls(log) == 1


@pytest.fixture
def no_home(monkeypatch, tmp_path):
    """``$HOME`` unset and a user id without a passwd entry: :meth:`pathlib.Path.home` raises.
    The per-process fallback folder goes in ``tmp_path``."""
    for name in ("OPTIMLAB_CACHE", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)

    def home(cls=None):
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(pathlib.Path, "home", classmethod(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    build._fallback_root.cache_clear()  # this test's folder, and none of it left for others
    yield tmp_path
    build._fallback_root.cache_clear()


def test_without_a_home_folder_the_caches_go_to_a_temporary_folder(no_home, monkeypatch):
    """Containers run under an arbitrary user id have no home folder: the kernel cache's
    ``Path.home()`` raised and so did ``optimlab.Adam([p]).step()``."""
    root = build.cache_root()
    assert root.parent == no_home and root.is_dir()  # the process's own (not a guessable name)
    assert build.cache_dir() == root / "kernels" and cost.cache_dir() == root / "step-costs"
    monkeypatch.setattr(kernels, "_KERNELS", {})
    p = torch.nn.Parameter(torch.ones(5))
    p.grad = torch.ones(5)
    optimlab.Adam([p], lr=0.1).step()
    torch.testing.assert_close(p.detach(), torch.full((5,), 0.9))
    if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"):
        assert list((root / "kernel-sources").glob("*.json"))  # the kernel's source kept there


def test_xdg_cache_home_is_honoured(monkeypatch, tmp_path):
    """As the catalog commands' cache does: ``$OPTIMLAB_CACHE`` first, then
    ``$XDG_CACHE_HOME/optimlab`` (an absolute path; the XDG spec ignores a relative one),
    then ``~/.cache/optimlab``, for the kernels and the step costs alike."""
    monkeypatch.delenv("OPTIMLAB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build.cache_dir() == tmp_path / "xdg" / "optimlab" / "kernels"
    assert cost.cache_dir() == tmp_path / "xdg" / "optimlab" / "step-costs"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert build.cache_dir() == tmp_path / "home" / ".cache" / "optimlab" / "kernels"
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path / "mine"))
    assert cost.cache_dir() == tmp_path / "mine" / "step-costs"


def test_a_passing_failure_does_not_keep_later_processes_on_a_plainer_kernel(
        fresh, real_cc, tmp_path, monkeypatch):
    """A compile that fails for a passing reason (a full temporary disk, a compiler out of
    memory) looks like a rejected flag: the plainer set's library was cached, and every later
    process, finding it, loaded it without trying the better flags again. A new process now
    builds with the best flags the compiler takes, cached beside the plainer one."""
    best, plainer = build.flag_sets()[:2]
    log = fake_compiler(tmp_path, monkeypatch, real_cc, rejects=["-fopenmp"])  # fails once
    assert build.load(source(7))(0, None, None, None, None, 0) == 7
    assert (fresh / f"step-{build.cache_key(source(7), plainer)}.so").exists()
    # a new process, whose compiler works
    monkeypatch.setattr(build, "_LOADED", {})
    monkeypatch.setattr(build, "_UNUSABLE", set())
    log = fake_compiler(tmp_path, monkeypatch, real_cc)
    assert build.load(source(7))(0, None, None, None, None, 0) == 7
    assert (fresh / f"step-{build.cache_key(source(7), best)}.so").exists()
    assert builds(log) == 1 and calls(log, "-fopenmp") >= 1
    # and the process after it loads that build, with no compile
    monkeypatch.setattr(build, "_LOADED", {})
    log = fake_compiler(tmp_path, monkeypatch, real_cc)
    assert build.load(source(7))(0, None, None, None, None, 0) == 7 and builds(log) == 0


def test_warnings_as_errors_do_not_cut_a_step_in_half(fresh, tmp_path, monkeypatch):
    """Under ``-W error`` the one warning that the fused path is unavailable was raised from
    the middle of the first step (its state made, its parameters not moved), which then
    stepped differently from every later one; it is dropped there, and the steps are the
    plain path's."""
    fake_compiler(tmp_path, monkeypatch, None)
    params, plain = make_params(torch.float32), make_params(torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_steps(optimlab.Adam(params, lr=0.01), params, 3)
    train_steps(optimlab.Adam(plain, lr=0.01, fused=False), plain, 3)
    assert all(torch.equal(a, b) for a, b in zip(params, plain, strict=True))


def test_the_fallback_cache_folder_goes_with_its_process(tmp_path):
    """Without a home folder each process makes a cache folder of its own in the temporary
    folder, which nothing else can use: it is removed at exit (every process of such a
    container had left one behind)."""
    import subprocess
    import sys

    script = ("import os, pathlib, sys, tempfile\n"
              "def home(cls=None): raise RuntimeError('no home')\n"
              "pathlib.Path.home = classmethod(home)\n"
              "tempfile.tempdir = sys.argv[1]\n"
              "from optimlab.optim.kernels import build\n"
              "root = build.cache_root(); (root / 'kernels').mkdir(parents=True)\n"
              "print(root)\n")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OPTIMLAB_CACHE", "XDG_CACHE_HOME")}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert pathlib.Path(done.stdout.strip()).parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_a_build_that_does_not_load_gives_way_to_the_next_flags(fresh, real_cc, tmp_path,
                                                                 monkeypatch):
    """A compiler whose OpenMP builds link a runtime the loader cannot find (MinGW's
    libgomp on Windows, a clang's libomp off the library path): the -fopenmp library
    compiled, failed to load, was rebuilt with the same flags and the fused path given up
    (a warning, the plain path, a broken library left in the cache). Now the next set,
    without -fopenmp, builds a kernel that loads, and no warning is given."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    lib = tmp_path / "empty.c"
    lib.write_text("int optimlab_fake_omp(void) { return 0; }\n")
    assert os.system(f"{shlex.quote(real_cc)} -shared -fPIC {shlex.quote(str(lib))} -o "
                     f"{shlex.quote(str(hidden / 'libfakeomp.so'))}") == 0
    log, script = tmp_path / "cc.log", tmp_path / "ompcc"
    script.write_text("\n".join([
        "#!/bin/sh", f'echo "$*" >> {shlex.quote(str(log))}',
        'for a in "$@"; do [ "$a" = "-fopenmp" ] && exec '
        f'{shlex.quote(real_cc)} "$@" -Wl,--no-as-needed -L{shlex.quote(str(hidden))} -lfakeomp; done',
        f'exec {shlex.quote(real_cc)} "$@"']) + "\n")
    script.chmod(0o755)
    log.write_text("")
    monkeypatch.setenv("CC", str(script))
    build.compiler.cache_clear()
    build.cpu_identity.cache_clear()
    if not any("-fopenmp" in flags for flags in build.flag_sets()):
        pytest.skip("no -fopenmp set on this platform")
    params, plain = make_params(torch.float64), make_params(torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FusedUnavailableWarning
        train_steps(optimlab.Adam(params, lr=0.01, fused=True), params, 2)
        train_steps(optimlab.Adam(plain, lr=0.01, fused=False), plain, 2)
    assert_params_close(params, plain, 1e-10)
    (kernel,) = [k for k in kernels._KERNELS.values() if isinstance(k, kernels.Kernel)]
    serial = [flags for flags in build.flag_sets() if "-fopenmp" not in flags][0]
    # the OpenMP build was tried twice (built, then rebuilt once), then the serial one
    assert (calls(log, "-fopenmp"), builds(log)) == (2, 3)
    # the broken library removed, the working one kept, named by its flags
    assert sorted(p.name for p in fresh.glob("step-*.so")) == [
        f"step-{build.cache_key(kernel.source, serial)}.so"]
    train_steps(optimlab.Adam(params, lr=0.01, fused=True), params, 1)  # the same kernel
    assert (calls(log, "-fopenmp"), builds(log)) == (2, 3)


def test_cc_naming_a_compilers_path_with_a_backslash_or_a_space_is_one_word(fresh, real_cc,
                                                                            tmp_path, monkeypatch):
    """Every Windows path has backslashes, which POSIX splitting takes for escapes:
    ``C:\\msys64\\mingw64\\bin\\gcc.exe`` became ``C:msys64mingw64bingcc.exe`` and no compiler
    was found. A $CC that is a file is that file."""
    folder = tmp_path / "dir with\\back"
    folder.mkdir()
    (folder / "gcc").symlink_to(real_cc)
    monkeypatch.setenv("CC", str(folder / "gcc"))
    build.compiler.cache_clear()
    assert build.compiler()[0] == str(folder / "gcc")
    assert build.command() == [str(folder / "gcc")]
    # a command line still splits as a shell's; Windows' rules keep backslashes, not quotes
    assert build._cc_words('ccache "/opt/my cc/gcc" -m64') == ["ccache", "/opt/my cc/gcc", "-m64"]
    monkeypatch.setattr(os, "name", "nt")
    assert build._cc_words('"C:\\my cc\\gcc.exe" -m64') == ["C:\\my cc\\gcc.exe", "-m64"]
