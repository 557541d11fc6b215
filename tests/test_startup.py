"""Start-up in proportion to the command: ``import optimlab`` and ``optimlab list`` /
``explain`` / ``compare`` / ``landscapes`` (from the catalog cache) do not import torch.

Wall-clock times are not asserted (they depend on the machine); what is checked is what gets
imported, that cached answers are exactly the computed ones, and that a stale, damaged or
unwritable cache is never used and never an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import optimlab
from optimlab import _catalog_cache, cli
from optimlab.cli import main

# Runs command lines through optimlab.cli.main in a fresh interpreter and prints, as JSON,
# each one's exit status, stdout and stderr, then whether torch got imported.
_DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys
    from optimlab.cli import main

    results = []
    for argv in json.loads(sys.argv[1]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
        results.append([rc, out.getvalue(), err.getvalue()])
    print(json.dumps({"results": results, "torch": "torch" in sys.modules}))
""")

COMMANDS = [["list"], ["list", "--markdown"], ["explain", "adam"], ["explain", " NAG "],
            ["compare", "sgd", "Adam", "momentum"], ["compare", "lion", "adam", "--markdown"],
            ["landscapes"], ["explain", "adamm"], ["compare", "sgd", "nope"], ["explain", ""]]


def _env(cache) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OPTIMLAB_DEBUG"}
    env["OPTIMLAB_CACHE_DIR"] = str(cache)
    return env


def _drive(commands, cache) -> dict:
    done = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(commands)],
                          capture_output=True, text=True, timeout=300, env=_env(cache))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder of this test's own, for in-process and child processes."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("OPTIMLAB_CACHE_DIR", str(folder))
    return folder


def _computed(argv, capsys, monkeypatch):
    """What ``main(argv)`` gives without any cache: computed from the registry."""
    with monkeypatch.context() as patch:
        patch.setattr(cli, "_cached_catalog", lambda: None)
        rc = main(argv)
    captured = capsys.readouterr()
    return [rc, captured.out, captured.err]


# --------------------------------------------------------------------------------------
# import optimlab
# --------------------------------------------------------------------------------------

def test_import_optimlab_loads_torch_only_when_asked():
    out = _python("""
        import sys
        import optimlab, optimlab.cli
        steps = ["torch" in sys.modules]
        assert optimlab.__version__ == "0.1.0"
        assert {"Adam", "create", "race", "exhibits", "landscapes"} <= set(dir(optimlab))
        steps.append("torch" in sys.modules)
        assert optimlab.Adam.__name__ == "Adam"
        steps.append("torch" in sys.modules)
        print(steps)
    """)
    assert out.split() == ["[False,", "False,", "True]"]


def test_the_lazy_names_are_the_eager_ones():
    out = _python("""
        import optimlab
        import optimlab.optim as optim
        from optimlab import *
        from optimlab import landscapes as lands
        assert optimlab.__all__ == list(optim.__all__) + ["exhibits", "landscapes", "race",
                                                          "advise"]
        for name in optim.__all__:
            assert getattr(optimlab, name) is getattr(optim, name) is globals()[name], name
        assert race is optimlab.race is lands.race and landscapes is lands
        assert exhibits is optimlab.exhibits and callable(optimlab.exhibits.run_demo)
        from optimlab.bench.advisor import advise as the_advisor
        assert advise is optimlab.advise is the_advisor
        import torch
        assert type(optimlab.create("adam", [torch.zeros(2, requires_grad=True)])) is Adam
        try:
            optimlab.no_such_thing
        except AttributeError as err:
            assert "no_such_thing" in str(err)
        else:
            raise AssertionError("no AttributeError")
        import optimlab.bench.store  # submodules import as before
        print("ok")
    """)
    assert out.strip() == "ok"


def test_the_written_out_optimizer_names_match_the_package():
    import optimlab.optim

    assert list(optimlab._OPTIM_ALL) == list(optimlab.optim.__all__)


# --------------------------------------------------------------------------------------
# The catalog cache
# --------------------------------------------------------------------------------------

def test_warm_cache_answers_exactly_and_without_torch(cache, capsys, monkeypatch):
    expected = [_computed(argv, capsys, monkeypatch) for argv in COMMANDS]
    assert [r[0] for r in expected] == [0] * 7 + [2] * 3
    cold = _drive([["list"], ["explain", "adam"]], cache)  # the cold run writes the cache
    assert cold["torch"] and cold["results"] == expected[:1] + expected[2:3]
    assert _catalog_cache.cache_file().is_file()
    warm = _drive(COMMANDS, cache)
    assert not warm["torch"], "a warm catalog command imported torch"
    for argv, got, want in zip(COMMANDS, warm["results"], expected):
        assert got == want, argv


def test_an_unknown_name_is_the_registrys_error(cache):
    from optimlab.optim.registry import resolve

    data = cli._catalog_data()
    for name in ("adamm", "", "  ", "ADAMM ", "x" * 5000, "sgd ", "lookahed", "\udcff"):
        try:
            resolve(name)
        except ValueError as err:
            want = str(err)
        else:
            want = None
        for table in ("explain", "compare"):
            try:
                cli._cached_entry(data, table, name)
            except ValueError as err:
                assert str(err) == want, name
            else:
                assert want is None, name


def _write_cache(text: str) -> None:
    path = _catalog_cache.cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_stale_cache_is_not_used(cache, capsys, monkeypatch):
    want = _computed(["list"], capsys, monkeypatch)
    data = cli._catalog_data()
    data["list"] = "STALE"
    _write_cache(json.dumps({"format": _catalog_cache.FORMAT, "fingerprint": "0" * 64,
                             "data": data}))
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    assert [0, captured.out, captured.err] == want
    stored = json.loads(_catalog_cache.cache_file().read_text())  # rebuilt, for this source
    assert stored["fingerprint"] == _catalog_cache.fingerprint()
    assert stored["data"]["list"] != "STALE"
    # the same data under the right fingerprint is used: the cache is what answers
    stored["data"]["list"] = "FROM THE CACHE"
    _write_cache(json.dumps(stored))
    assert main(["list"]) == 0
    assert capsys.readouterr().out == "FROM THE CACHE\n"


@pytest.mark.parametrize("text", [
    "",
    "{",
    "\x00\xff garbage",
    "[]",
    '{"format": 1, "fingerprint": "FP", "data": {"list": 3}}',
    '{"format": 1, "fingerprint": "FP", "data": {"list": "a", "list_markdown": "b", '
    '"landscapes": "c", "names": ["adam"], "explain": {}, "compare": {}}}',
    '{"format": 999, "fingerprint": "FP", "data": {}}',
], ids=["empty", "truncated", "binary", "list", "wrong-type", "missing-entry", "format"])
def test_a_corrupt_cache_falls_back(text, cache, capsys, monkeypatch):
    for argv in (["list"], ["explain", "adam"], ["explain", "adamm"]):
        want = _computed(argv, capsys, monkeypatch)
        _write_cache(text.replace("FP", _catalog_cache.fingerprint()))
        rc = main(argv)
        captured = capsys.readouterr()
        assert [rc, captured.out, captured.err] == want, argv
        # rewritten whole
        assert _catalog_cache.load(_catalog_cache.fingerprint()) is not None


def test_an_unwritable_cache_is_silent(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("OPTIMLAB_CACHE_DIR", str(blocker / "cache"))
    want = _computed(["explain", "adam"], capsys, monkeypatch)
    assert main(["explain", "adam"]) == 0
    captured = capsys.readouterr()
    assert [0, captured.out, captured.err] == want
    assert not _catalog_cache.save("key", {"list": "x"})
    assert _catalog_cache.load("key") is None


def test_a_source_edit_changes_the_fingerprint(tmp_path, monkeypatch):
    copy = tmp_path / "optimlab"
    shutil.copytree(_catalog_cache.PACKAGE, copy,
                    ignore=shutil.ignore_patterns("__pycache__", "static", "*.pyc"))
    monkeypatch.setattr(_catalog_cache, "PACKAGE", copy)
    first = _catalog_cache.fingerprint()
    assert _catalog_cache.fingerprint() == first  # stable
    for name in ("optim/catalog.py", "optim/wrappers/sam.py", "landscapes/functions.py",
                 "cli.py"):
        path = copy / name
        original = path.read_bytes()
        path.write_bytes(original.replace(b"\n", b"\r\n", 1))  # the same size + 1 byte
        assert _catalog_cache.fingerprint() != first, name
        path.write_bytes(original)
        assert _catalog_cache.fingerprint() == first, name
    (copy / "optim" / "new_rule.py").write_text("")
    assert _catalog_cache.fingerprint() != first
    monkeypatch.setattr(optimlab, "__version__", "9.9.9")
    (copy / "optim" / "new_rule.py").unlink()
    assert _catalog_cache.fingerprint() != first
    assert _catalog_cache.cache_file().name == "catalog-9.9.9.json"


def test_the_cache_folder(monkeypatch, tmp_path):
    for name in ("OPTIMLAB_CACHE_DIR", "OPTIMLAB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _catalog_cache.cache_dir() == tmp_path / ".cache" / "optimlab" / "cli"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _catalog_cache.cache_dir() == tmp_path / "xdg" / "optimlab" / "cli"
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path / "lab"))
    assert _catalog_cache.cache_dir() == tmp_path / "lab" / "cli"
    monkeypatch.setenv("OPTIMLAB_CACHE_DIR", str(tmp_path / "mine"))
    assert _catalog_cache.cache_dir() == tmp_path / "mine"


def test_command_freezes_the_heap_before_exit():
    """``python -m optimlab`` and the console script end through ``cli.entry``: main's exit
    code, with the heap frozen so that shutting down skips a full collection (atexit
    handlers still run: the one registered here reports the freeze)."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import atexit, gc
        from optimlab import cli
        cli.main = lambda argv=None: 3
        atexit.register(lambda: print("frozen objects:", gc.get_freeze_count()))
        cli.entry()
        """)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 3, out.stderr
    assert int(out.stdout.split("frozen objects:")[1]) > 1000
    module = subprocess.run([sys.executable, "-m", "optimlab", "explain", "nope"],
                            capture_output=True, text=True, timeout=300)
    assert module.returncode == 2 and "optimlab: error:" in module.stderr
    scripts = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'optimlab = "optimlab.cli:entry"' in scripts  # no tomllib before Python 3.11


def test_long_command_freezes_its_imports_only_in_the_command_process():
    """A long command (here a 5-step race) freezes the heap once torch and the lab are
    imported, before its work, when it runs as the ``optimlab`` command (``cli.entry``); run
    through ``cli.main``, as a process that goes on would, it freezes nothing."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import gc, sys
        from optimlab import cli
        seen = []
        done = cli._imports_done
        cli._imports_done = lambda: (done(), seen.append(
            (gc.get_freeze_count(), "torch" in sys.modules)))
        cli.main(["race", "rosenbrock", "--optimizers", "sgd", "--steps", "5"])
        print("through main:", seen)
        sys.argv = ["optimlab", "race", "rosenbrock", "--optimizers", "sgd", "--steps", "5"]
        seen.clear()
        import atexit
        atexit.register(lambda: print("through entry:", seen))
        cli.entry()
        """)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    through_main = out.stdout.split("through main:")[1].splitlines()[0]
    assert through_main.strip() == "[(0, True)]"
    count, torch_loaded = eval(out.stdout.split("through entry:")[1].strip())[0]
    assert torch_loaded and count > 50_000
