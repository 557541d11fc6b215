"""Type checkers read optimlab's annotations (PEP 561: the package ships ``py.typed``).

Without the marker, ``mypy`` stops at ``import optimlab`` with ``import-untyped`` in every
project that checks its types. This runs mypy (about 10 s with an empty cache) on two
snippets a user might write: the usual use must pass as it is, and a wrong argument type
must be caught, which shows that mypy read optimlab's annotations rather than skipping it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

GOOD = """\
import torch
import optimlab

model = torch.nn.Linear(3, 2)
opt = optimlab.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
other = optimlab.create("adamw", model.parameters(), lr=3e-4)
sam = optimlab.SAM(model.parameters(), base_optimizer=optimlab.SGD, rho=0.05, lr=0.1)
opt.zero_grad()
model(torch.randn(4, 3)).sum().backward()
opt.step()
sched.step()
opt.load_state_dict(opt.state_dict())
"""

BAD = """\
import torch
import optimlab

optimlab.create(1, torch.nn.Linear(3, 2).parameters())
"""


def test_mypy_reads_optimlabs_annotations(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
                           "--no-color-output", "good.py", "bad.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = done.stdout + done.stderr
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert "import-untyped" not in report, report
    assert not [e for e in errors if e.startswith("good.py")], report
    bad = [e for e in errors if e.startswith("bad.py")]
    assert len(bad) == 1 and '"create"' in bad[0] and 'expected "str"' in bad[0], \
        textwrap.indent(report, "  ")
