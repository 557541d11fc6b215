"""Type checkers read optimlab's annotations (PEP 561: the package ships ``py.typed``).

Without the marker, ``mypy`` stops at ``import optimlab`` with ``import-untyped`` in every
project that checks its types. This runs mypy (about 10 s with an empty cache) on two
snippets a user might write: the usual use must pass as it is, and a wrong argument type
must be caught, which shows that mypy read optimlab's annotations rather than skipping it.
The optimizers' constructors are annotated as ``torch.optim``'s are (``params: ParamsT``,
``lr: float | Tensor``, ...): every class's, checked here, and typical constructions must
pass mypy while a wrong argument (``lr="0.1"``) is caught.
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

# typical constructions: an annotation that rejects valid use fails here
params = list(model.parameters())
optimlab.Adam(params, lr=torch.tensor(1e-3), betas=(0.9, 0.999), weight_decay=0.01, foreach=None)
groups = [{"params": [model.weight], "weight_decay": 0.01}, {"params": [model.bias], "weight_decay": 0.0}]
optimlab.AdamW(groups, lr=3e-4, fused=None, skip_nonfinite=True, state_precision="bfloat16")
optimlab.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
optimlab.LAMB(params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
optimlab.Lion(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=1.0)
optimlab.Muon([p for p in model.parameters() if p.ndim == 2], lr=0.02, momentum=0.95)
free = optimlab.ScheduleFreeAdamW(params, lr=2.5e-3, warmup_steps=100)
free.train()
free.eval()
slow = optimlab.Lookahead(optimlab.Adam(params, lr=1e-3), k=5, alpha=0.5)
slow.step()
lbfgs = optimlab.LBFGS(params, lr=1, history_size=10, line_search_fn="strong_wolfe")


def closure() -> torch.Tensor:
    lbfgs.zero_grad()
    loss = model(torch.randn(4, 3)).sum()
    loss.backward()
    return loss


lbfgs.step(closure)
"""

BAD = """\
import torch
import optimlab

optimlab.create(1, torch.nn.Linear(3, 2).parameters())
optimlab.Adam(torch.nn.Linear(3, 2).parameters(), lr="0.1")
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
    assert len(bad) == 2, textwrap.indent(report, "  ")
    assert '"create"' in bad[0] and 'expected "str"' in bad[0], textwrap.indent(report, "  ")
    assert '"lr" to "Adam"' in bad[1] and 'incompatible type "str"' in bad[1], \
        textwrap.indent(report, "  ")


def _optimizer_classes():
    import torch

    import optimlab

    return [(name, getattr(optimlab, name)) for name in sorted(dir(optimlab))
            if isinstance(getattr(optimlab, name), type)
            and issubclass(getattr(optimlab, name), torch.optim.Optimizer)]


def test_every_optimizer_constructor_is_annotated():
    """Each optimizer class's ``__init__`` annotates every parameter and its return, and the
    annotations resolve (``typing.get_type_hints``: no misspelt or missing names)."""
    import inspect
    import typing

    classes = _optimizer_classes()
    assert len(classes) >= 30, [name for name, _ in classes]
    missing = []
    for name, cls in classes:
        signature = inspect.signature(cls.__init__)
        for parameter in list(signature.parameters.values())[1:]:  # all but self
            if parameter.annotation is inspect.Parameter.empty:
                missing.append(f"{name}.__init__({parameter.name})")
        if signature.return_annotation is inspect.Signature.empty:
            missing.append(f"{name}.__init__ -> ?")
        try:
            typing.get_type_hints(cls.__init__)
        except Exception as err:  # noqa: BLE001 (any failure to resolve is the finding)
            missing.append(f"{name}.__init__: get_type_hints raised {err!r}")
    assert not missing, "\n".join(missing)
