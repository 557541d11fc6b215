"""Every command of the README's quick start and command-line sections runs, in order.

The commands are read from the README itself (the ``bash`` blocks under the headings in
:data:`SECTIONS`), so a command added there is run here, and one that stops working fails CI.
They run in a fresh folder, one after the other (``optimlab report 1`` needs the sweep that
``optimlab bench`` stored before it), through ``optimlab.cli.main`` in this process (the
console script is that function), ``python ...`` lines as real subprocesses.

Three things differ from a reader's terminal, each on purpose:

- ``make test`` is not run: it is the command running this test.
- ``make demo`` runs what its Makefile target runs after the setup CI has already done,
  ``optimlab tour --out optimlab-tour``, with ``--quick`` budgets.
- Training and race budgets are capped (``--steps`` at :data:`MAX_STEPS`, the tour
  ``--quick``) so the whole walk takes about a minute, not ten; every other flag is kept.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from optimlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: the README sections whose commands are run
SECTIONS = ("Quick start", "From the command line", "The landscape lab", "The training lab",
            "The advisor: `optimlab advise`")
MAX_STEPS = 30


def readme_commands(text: str) -> list[str]:
    """The commands of the ``bash`` blocks under :data:`SECTIONS`, in order: continuation
    lines joined, comments dropped."""
    commands, section = [], None
    blocks = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    for part in blocks:
        heading = re.match(r"#{2,3} (.*)", part)
        if heading:
            section = heading.group(1).strip()
            continue
        if section not in SECTIONS:
            continue
        for block in re.findall(r"```bash\n(.*?)```", part, re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
                if line:
                    commands.append(line)
    return commands


def _capped(argv: list[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--steps" and int(out[i + 1]) > MAX_STEPS:
            out[i + 1] = str(MAX_STEPS)
    if out[:1] == ["tour"] and "--quick" not in out:
        out.append("--quick")
    return out


def test_the_readme_lists_the_commands_it_promises():
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "make demo" in commands and "make test" in commands
    for prefix in ("optimlab list", "optimlab explain", "optimlab race", "optimlab demo",
                   "optimlab bench", "optimlab runs", "optimlab report", "optimlab profile",
                   "optimlab tour", "optimlab advise"):
        assert any(c.startswith(prefix) for c in commands), prefix


def test_every_readme_command_runs_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "figures").mkdir()  # the README's `--out figures/` names an existing folder
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    ran = []
    for command in commands:
        argv = shlex.split(command)
        if argv == ["make", "test"]:
            continue
        if argv == ["make", "demo"]:
            argv = ["optimlab", "tour", "--out", "optimlab-tour"]
        if argv[0] == "optimlab":
            code = main(_capped(argv[1:]))
            out, err = capsys.readouterr()
            assert code == 0, f"{command!r} exited {code}: {err.strip()[-800:]}"
        elif argv[0] == "python":
            done = subprocess.run([sys.executable, *(str(ROOT / a) if a.endswith(".py") else a
                                                     for a in argv[1:])],
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"{command!r}: {done.stderr[-800:]}"
        else:
            pytest.fail(f"the README's {command!r} is not a command this test knows how to run")
        ran.append(command)
        for flag in ("--out", "--gif", "--surface"):  # what a command writes is there
            if flag in argv:
                target = tmp_path / argv[argv.index(flag) + 1]
                assert target.exists(), f"{command!r} did not write {target}"
    assert len(ran) >= 12, ran
    assert (tmp_path / "optimlab-tour" / "tour.html").exists()


def test_the_readmes_task_module_trains_with_the_command_it_gives(tmp_path, monkeypatch, capsys):
    """The README's example of a task of your own (a ``python`` block starting
    ``# mytasks.py``) is written to a folder and trained by the command its first line gives."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S)
                 if b.lstrip().startswith("# mytasks.py"))
    source = "\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines())
    command = source.splitlines()[0].split(": ", 1)[1]
    assert command.startswith("optimlab bench mytasks:")
    module = "readme_mytasks"  # a name no other test imports
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, module, raising=False)
    argv = shlex.split(command.replace("mytasks:", f"{module}:"))[1:]
    assert main([*argv, "--steps", "20", "--seeds", "1", "--lrs", "0.01", "--db", "runs.db"]) == 0, \
        capsys.readouterr().err
    assert f"{module}:" in capsys.readouterr().out
