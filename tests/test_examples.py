"""The scripts under ``examples/`` run: the README sends newcomers to
``python examples/quickstart.py``, which no README block runs (it is named in prose), so
this is its only check. Budgets are cut (20 steps, not 500) so it takes a second."""

from __future__ import annotations

import functools
import math
import runpy
from pathlib import Path

import torch

import optimlab

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _quickstart() -> dict:
    return runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="quickstart")


def test_every_quickstart_setting_trains():
    """Each name and its hyperparameters build an optimizer (``optimlab.create`` refuses an
    unknown name or argument) that lowers the loss in 20 steps."""
    module = _quickstart()
    start = {}
    for name, hparams in module["SETTINGS"].items():
        for steps in (0, 20):
            start[name, steps] = module["train"](name, hparams, seed=0, steps=steps)
        assert math.isfinite(start[name, 20]) and start[name, 20] < start[name, 0], name


def test_quickstart_prints_a_line_per_optimizer(capsys):
    module = _quickstart()
    threads = torch.get_num_threads()
    train = module["train"]
    module["main"].__globals__["train"] = functools.partial(train, steps=10)
    try:
        module["main"]()
    finally:
        module["main"].__globals__["train"] = train
        torch.set_num_threads(threads)  # main() takes one thread, as its comment says why
    out = capsys.readouterr().out
    assert f"{len(optimlab.available())} registry names" in out
    for name, hparams in module["SETTINGS"].items():
        (line,) = [row for row in out.splitlines() if row.startswith(f"{name} ")]
        mean, sd = (float(v) for v in line.split()[2:5:2])
        assert math.isfinite(mean) and sd >= 0 and line.endswith("s"), line
