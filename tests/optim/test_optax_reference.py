"""Optimizers whose reference is optax match its stored trajectories (tests/oracles/data).

optax runs on JAX's CPU build, which is too heavy for CI, so its float64 results on the test
problem are stored (``tests/oracles/optax_reference.py`` writes them) and compared here.
The live comparison, which reruns optax and checks the stored file too, is opt-in: it runs
where optax and JAX are importable and ``OPTIMLAB_LIVE_ORACLES=1``.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from optimlab.optim.catalog import TABLE
from tests.oracles import optax_reference
from tests.problems import assert_params_close, initial_arrays, run_torch

STORED = optax_reference.stored()
CASES = [pytest.param(case, id=case.id) for case in optax_reference.cases()]
LIVE = os.environ.get("OPTIMLAB_LIVE_ORACLES") == "1" \
    and importlib.util.find_spec("optax") is not None \
    and importlib.util.find_spec("jax") is not None


def test_every_optax_reference_has_a_mapping_and_stored_cases():
    named = {info.cls.__name__: info.reference for info in TABLE
             if info.reference.startswith("optax.")}
    assert named == {name: m.name for name, m in optax_reference.MAPPINGS.items()}
    assert set(STORED["cases"]) == {case.id for case in optax_reference.cases()}, \
        "regenerate: python -m tests.oracles.optax_reference"
    assert STORED["steps"] == optax_reference.STEPS


@pytest.mark.parametrize("case", CASES)
def test_matches_stored_optax(case):
    ours = run_torch(case.build, optax_reference.STEPS, torch.float64, case.shapes,
                     maximize=case.maximize)
    theirs = [np.asarray(a) for a in STORED["cases"][case.id]["params"]]
    start = initial_arrays(case.shapes)
    assert any(abs(a - b).max() > 1e-3 for a, b in zip(theirs, start)), "did not move"
    assert_params_close(ours, theirs, 1e-10)


@pytest.mark.skipif(not LIVE, reason="opt-in: OPTIMLAB_LIVE_ORACLES=1 with jax and optax")
@pytest.mark.parametrize("case", CASES)
def test_stored_trajectories_are_optax_output(case):
    mapping = optax_reference.MAPPINGS[case.cls_name]
    live = optax_reference.run(mapping, case.reference_hp(), case.shapes)
    stored = [np.asarray(a) for a in STORED["cases"][case.id]["params"]]
    for a, b in zip(live, stored):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["-h"], 0), (["--tabel"], 2)])
def test_the_regeneration_command_reads_its_arguments_first(argv, code, monkeypatch, capsys):
    """``--help`` fell through to regenerating the stored file (with JAX installed it would
    have rewritten it); an unknown argument is a usage error, not a regeneration."""
    monkeypatch.setattr(optax_reference, "generate", lambda: pytest.fail("regenerated"))
    assert optax_reference.main(argv) == code
    out = capsys.readouterr()
    assert "usage:" in (out.out if code == 0 else out.err)
