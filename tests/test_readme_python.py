"""Every Python example of the README runs, in order, as a reader would paste it.

The blocks are read from the README itself (``python`` code fences at the start of a line;
the task module indented under a list item is run by ``test_readme_commands``), executed one
after the other in one namespace (the SAM closure uses the model of the block before it), in
a fresh folder (the race writes ``race.png`` and ``race.gif``). One thing differs from a
reader's session, on purpose: the advisor's budget is capped (``steps`` and ``budget`` in
:data:`CAPS`) so the walk takes seconds, not a minute; every other argument is kept.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what the test runs instead of the README's text (the advisor's full budget, ~40 s)
CAPS = {"steps=2000": "steps=200", "budget=50_000": "budget=5_000"}


def readme_python_blocks(text: str) -> list[str]:
    """The ``python`` blocks of the README that start a line, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_its_python_examples():
    blocks = readme_python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    assert any("optimlab.advise(" in b for b in blocks)
    assert all(key in "".join(blocks) for key in CAPS), "a cap no longer matches the README"


def test_every_readme_python_example_runs_in_order(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(readme_python_blocks((ROOT / "README.md").read_text("utf-8"))):
        for text, capped in CAPS.items():
            block = block.replace(text, capped)
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as err:  # name the block, whose first line says which it is
            raise AssertionError(f"README python block {i} ({block.splitlines()[0]!r}) "
                                 f"failed: {type(err).__name__}: {err}") from err
    assert (tmp_path / "race.png").is_file() and (tmp_path / "race.gif").is_file()
    out = capsys.readouterr().out
    assert "final loss" in out and "validation accuracy" in out
    assert namespace["opt"].param_groups[0]["state_precision"] == "int8"
