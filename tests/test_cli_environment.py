"""The command line and its environment: ``-`` and special files as outputs, optimlab's
cache folder (``OPTIMLAB_CACHE``, ``XDG_CACHE_HOME``), on/off switches read one way
(``CI``, ``OPTIMLAB_DEBUG``, ``OPTIMLAB_DISABLE_PLUGINS``, ``OPTIMLAB_KEEP_FREED_MEMORY``),
a home folder matplotlib cannot write, and ``--version``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
import warnings
from pathlib import Path

import pytest

import optimlab
from optimlab import cli
from optimlab.cli import CLIError, main

#: the catalog commands' cache in a folder of this module's (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("catalog_cache")

RACE = ["race", "rosenbrock", "--optimizers", "sgd", "--steps", "5"]
ADVISE = ["advise", "digits", "--optimizers", "adam", "--steps", "3", "--batch-size", "full",
          "--seeds", "1"]
CACHE_VARIABLES = ("OPTIMLAB_CACHE", "OPTIMLAB_CACHE_DIR", "XDG_CACHE_HOME")


# --------------------------------------------------------------------------------------
# `-` and special files as outputs
# --------------------------------------------------------------------------------------

def test_json_to_standard_output_is_the_json_alone(tmp_path, monkeypatch, capsys):
    """`advise --json -` wrote a file named `-.json`; now the JSON alone is the command's
    stdout (`| python -m json.tool` reads it) and the rest goes to stderr."""
    monkeypatch.chdir(tmp_path)
    argv = ADVISE + ["--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "a")]
    assert main(argv + ["--json", "-"]) == 0
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["optimizer"] == "adam" and "hparams" in answer
    assert "recommendation: adam" in err and f"wrote {tmp_path / 'a' / 'advice.json'}" in err
    assert not list(tmp_path.glob("-*"))  # no file named after the dash


@pytest.mark.parametrize("flag", ["--out", "--surface", "--gif"])
@pytest.mark.parametrize("target", ["-", "/dev/fd/1"])
def test_pictures_refuse_standard_output(flag, target, tmp_path, monkeypatch, capsys):
    """A picture to `-` wrote `-.png`; standard output carries the table: refused, one line,
    exit 2, before the race."""
    if target != "-" and not os.path.exists(target):
        pytest.skip(f"no {target} here")
    monkeypatch.chdir(tmp_path)
    assert main(RACE + [flag, target]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and "standard output" in lines[0], err
    assert not list(tmp_path.iterdir())


def test_report_folders_refuse_standard_output(tmp_path, monkeypatch):
    """`demo --out -` made a folder named `-`."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CLIError, match=r"not standard output \(-\)"):
        cli.out_folder("-", "--out", "the report")
    assert cli.out_folder("./-", "--out", "the report") == Path("-")  # a folder named -


def test_standard_output_names():
    assert cli.to_stdout("-")
    if os.path.exists("/dev/stdout"):
        assert cli.to_stdout("/dev/stdout") and cli.to_stdout("/dev/fd/1")
        assert not cli.to_stdout("/dev/stderr")
    assert not cli.to_stdout("./-") and not cli.to_stdout("out.json")


def test_a_descriptor_is_written_as_given_never_suffixed(tmp_path):
    """`--json /dev/stderr` became `/dev/stderr.json` (a regular file in /dev, as root)."""
    if not os.path.exists("/dev/stderr"):
        pytest.skip("no /dev/stderr here")
    assert cli.out_file("/dev/stderr", "--json", "advice", (".json",)) == Path("/dev/stderr")
    assert not os.path.exists("/dev/stderr.json")


def test_a_fifo_is_written_in_place(tmp_path, capsys):
    """A FIFO (a shell's `>(...)` is one too) got `.png` added, and the picture went to a new
    regular file beside it: now the picture goes into the FIFO, and no file is made."""
    fifo = tmp_path / "picture"
    os.mkfifo(fifo)
    assert cli.out_file(str(fifo), "--json", "advice", (".json",)) == fifo
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    holder = os.open(fifo, os.O_WRONLY)  # a writer held open: reads wait instead of ending
    os.set_blocking(reader, True)
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(reader, 1 << 16):
            chunks.append(chunk)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        code = main(RACE + ["--out", str(fifo)])
    finally:
        os.close(holder)
        thread.join(30)
        os.close(reader)
    assert code == 0 and f"wrote {fifo}" in capsys.readouterr().out
    assert b"".join(chunks).startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture"]


# --------------------------------------------------------------------------------------
# optimlab's cache folder
# --------------------------------------------------------------------------------------

def _cache_folders() -> dict[str, Path]:
    """Where each user of the cache folder puts its files, by user."""
    from optimlab import _catalog_cache
    from optimlab.bench import cost, tasks
    from optimlab.optim.kernels import build

    return {"kernels": build.cache_dir(), "catalog": _catalog_cache.cache_dir(),
            "step costs": cost.cache_dir(), "mnist1d": tasks._cache_root(None)}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A home folder of the test's, and a working folder beside it as the current one."""
    for name in CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "home"


def test_a_tilde_in_optimlab_cache_is_the_home_folder(home, tmp_path, monkeypatch):
    """`OPTIMLAB_CACHE='~/x'` (quoted in a Dockerfile or an .env file) made a folder named
    `~` in the working folder for the kernels and the catalog, while mnist1d expanded it."""
    from optimlab import _catalog_cache

    monkeypatch.setenv("OPTIMLAB_CACHE", "~/x")
    assert _cache_folders() == {"kernels": home / "x" / "kernels", "catalog": home / "x" / "cli",
                                "step costs": home / "x" / "step-costs", "mnist1d": home / "x"}
    assert _catalog_cache.save("key", {"list": ""})
    assert (home / "x" / "cli").is_dir() and not (tmp_path / "work" / "~").exists()


def test_a_relative_xdg_cache_home_is_ignored_by_every_user(home, monkeypatch):
    """The XDG spec ignores a relative XDG_CACHE_HOME; the kernels did, the catalog did not."""
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    root = home / ".cache" / "optimlab"
    assert _cache_folders() == {"kernels": root / "kernels", "catalog": root / "cli",
                                "step costs": root / "step-costs", "mnist1d": root}
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg"))  # an absolute one counts
    assert _cache_folders()["catalog"] == home / "xdg" / "optimlab" / "cli"


def test_the_data_dir_help_says_where_the_cache_is(capsys):
    assert main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "XDG_CACHE_HOME" in text and "~/.cache/optimlab" in text


# --------------------------------------------------------------------------------------
# on/off switches
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (None, "default"),
    ("", False), ("0", False), ("false", False), ("FALSE", False), (" no ", False),
    ("Off", False), ("off\n", False),
    ("1", True), ("true", True), ("True", True), ("yes", True), (" ON ", True),
])
@pytest.mark.parametrize("default", [False, True])
def test_a_switch_reads_these_words(value, expected, default, monkeypatch):
    from optimlab._env import flag

    if value is None:
        monkeypatch.delenv("OPTIMLAB_TEST_SWITCH", raising=False)
    else:
        monkeypatch.setenv("OPTIMLAB_TEST_SWITCH", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an accepted value warns of nothing
        assert flag("OPTIMLAB_TEST_SWITCH", default) is (default if expected == "default"
                                                         else expected)


def test_another_value_is_on_with_one_warning(monkeypatch):
    from optimlab._env import EnvironmentWarning, flag

    monkeypatch.setenv("OPTIMLAB_TEST_OTHER", "maybe")
    with pytest.warns(EnvironmentWarning, match=r"OPTIMLAB_TEST_OTHER='maybe' is not one of 1, "
                      r"true, yes, on \(on\) or 0, false, no, off, empty \(off\)"):
        assert flag("OPTIMLAB_TEST_OTHER", False) is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert flag("OPTIMLAB_TEST_OTHER", False) is True  # said once
        monkeypatch.setenv("OPTIMLAB_TEST_OTHER", "whatever")
        assert flag("OPTIMLAB_TEST_OTHER", True, warn=False) is True


class _Terminal:
    """A stderr that is a terminal."""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("value, live", [
    (None, True), ("0", True), ("false", True), ("", True), ("1", False), ("true", False),
    ("woodpecker", False),  # a CI service's own value: on, without a warning
])
def test_ci_off_keeps_the_progress_bars(value, live, monkeypatch):
    """`CI=false` or `CI=0` turned the progress bars off, as any value did."""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli._live() is live


@pytest.mark.parametrize("value, raises", [("0", False), ("false", False), ("", False),
                                           ("1", True), ("yes", True)])
def test_optimlab_debug_zero_shows_no_traceback(value, raises, monkeypatch, capsys):
    """`OPTIMLAB_DEBUG=0` re-raised an internal error, traceback and all."""
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_run", broken)
    monkeypatch.setenv("OPTIMLAB_DEBUG", value)
    if raises:
        with pytest.raises(RuntimeError, match="boom"):
            main(["landscapes"])
    else:
        assert main(["landscapes"]) == 1
        assert "internal error: RuntimeError: boom" in capsys.readouterr().err


@pytest.mark.parametrize("value, loaded", [(None, True), ("0", True), ("off", True), ("", True),
                                           ("1", False), ("TRUE", False)])
def test_plugins_are_disabled_only_by_an_on_value(value, loaded, monkeypatch):
    """`OPTIMLAB_DISABLE_PLUGINS=0` disabled the plugins."""
    import importlib.metadata

    from optimlab import _plugins

    plugin = types.SimpleNamespace(name="fake", value="fake.module:Fake")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [plugin])
    if value is None:
        monkeypatch.delenv(_plugins.DISABLE, raising=False)
    else:
        monkeypatch.setenv(_plugins.DISABLE, value)
    assert _plugins.entry_points() == ([plugin] if loaded else [])


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no", " 0 "])
def test_keeping_freed_memory_is_turned_off_by_any_off_value(value, monkeypatch):
    """Only exactly `0` opted out: `OPTIMLAB_KEEP_FREED_MEMORY=false` kept the memory."""
    from optimlab.bench import allocator

    monkeypatch.setenv("OPTIMLAB_KEEP_FREED_MEMORY", value)
    assert allocator.keep_freed_memory.__wrapped__() is False  # past the per-process cache


# --------------------------------------------------------------------------------------
# matplotlib and an unwritable home folder; --version
# --------------------------------------------------------------------------------------

def _environment(**changes) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "OPTIMLAB_DEBUG", "CI")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(optimlab.__file__).parents[1]),
                                                      os.environ.get("PYTHONPATH")]))
    env.update(changes)
    return env


def test_an_unwritable_home_gives_no_matplotlib_warning(tmp_path):
    """A home folder matplotlib cannot make its folder in (here under a regular file: mkdir
    fails with ENOTDIR, whoever runs it) printed two warning lines for any picture."""
    (tmp_path / "file").write_text("not a folder\n")
    (tmp_path / "tmp").mkdir()
    env = _environment(HOME=str(tmp_path / "file" / "home"), TMPDIR=str(tmp_path / "tmp"))
    done = subprocess.run([sys.executable, "-m", "optimlab", *RACE, "--out",
                           str(tmp_path / "race.png")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "matplotlib" not in done.stderr.lower() and "mkdir" not in done.stderr, done.stderr
    assert (tmp_path / "race.png").stat().st_size > 0
    assert not list((tmp_path / "tmp").glob("optimlab-matplotlib-*"))  # removed at exit


def test_matplotlib_gets_a_private_folder_only_where_its_own_cannot_be_made(tmp_path,
                                                                              monkeypatch):
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cli._matplotlib_folder()
    assert "MPLCONFIGDIR" not in os.environ  # ~/.config/matplotlib can be made
    (tmp_path / "file").write_text("not a folder\n")
    monkeypatch.setenv("HOME", str(tmp_path / "file" / "home"))
    cli._matplotlib_folder()
    private = Path(os.environ["MPLCONFIGDIR"])
    assert private.is_dir() and os.access(private, os.W_OK)
    assert private.name.startswith("optimlab-matplotlib-")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mine"))  # one set is left alone
    cli._matplotlib_folder()
    assert os.environ["MPLCONFIGDIR"] == str(tmp_path / "mine")


def test_version(capsys):
    """`optimlab --version` was refused: the following arguments are required: COMMAND."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"optimlab {optimlab.__version__}\n"
    done = subprocess.run([sys.executable, "-m", "optimlab", "--version"], capture_output=True,
                          text=True, env=_environment(), timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"optimlab {optimlab.__version__}\n",
                                                          "")
