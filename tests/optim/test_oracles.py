"""Each optimizer matches an independent NumPy transcription of its paper (tests/oracles).

The oracles never import torch or optimlab: they are the papers' algorithm boxes written
out in NumPy, so agreement to float64 rounding means the torch code does what the paper
says. The classics (GD, momentum, NAG, Adagrad, RMSProp, Adam) are there as the
educational reference; the algorithms torch lacks (LAMB, Lion, AdaBelief, SAM, Lookahead)
have no other reference.
"""

import pytest
import torch

from optimlab.optim.catalog import TABLE
from tests.optim.cases import CASES
from tests.oracles import adabelief, classic, lamb, lion, lookahead, sam
from tests.problems import assert_params_close, grad_np, initial_arrays, run_torch

ORACLES = {
    "SGD": classic.sgd,
    "Adagrad": classic.adagrad,
    "RMSprop": classic.rmsprop,
    "Adam": classic.adam,
    "AdamW": classic.adamw,
    "LAMB": lamb.optimize,
    "Lion": lion.optimize,
    "AdaBelief": adabelief.optimize,
    "SAM": sam.optimize,
    "Lookahead": lookahead.optimize,
}
# 100 steps exercise bias correction, momentum, the trust ratio and the Lookahead syncs.
# Later, near the minimum, RMSprop's and SAM's normalised steps are driven by rounding noise:
# an ulp of difference (torch fuses multiply-adds, NumPy cannot) grows to 1e-4 by step 300,
# as it does between two NumPy runs whose starts differ by one ulp.
STEPS = 100
ORACLE_CASES = [pytest.param(case, id=case.id) for name in ORACLES for case in CASES[name]]


def test_every_oracle_algorithm_is_covered():
    needs_oracle = {info.cls.__name__ for info in TABLE if info.reference == "oracle"}
    assert needs_oracle <= set(ORACLES)


@pytest.mark.parametrize("case", ORACLE_CASES)
def test_matches_oracle(case):
    ours = run_torch(case.build, STEPS, torch.float64, case.shapes, maximize=case.maximize,
                     use_closure=case.needs_closure)
    oracle = ORACLES[case.cls_name](initial_arrays(case.shapes), grad_np, STEPS,
                                    **case.reference_hp())
    start = initial_arrays(case.shapes)
    assert any(abs(a.numpy() - b).max() > 1e-3 for a, b in zip(ours, start)), "did not move"
    assert_params_close(ours, oracle, 1e-10)
