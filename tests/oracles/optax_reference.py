"""optax as the reference: its trajectories on the test problem, stored and regenerated here.

For the optimizers whose catalog ``reference`` is an optax name, the oracle is optax itself
(an implementation optimlab did not write), run on JAX's CPU build in float64 on the same
separable test problem as every other oracle (:mod:`tests.problems`), with the gradient from
:func:`tests.problems.grad_np`. JAX is too heavy a test dependency, so its results are stored
in ``tests/oracles/data/optax.json`` and CI compares against them; the live comparison is
opt-in (``tests/optim/test_optax_reference.py``). Regenerate after changing a case or the
problem, in an environment with JAX's CPU build and optax::

    pip install "jax[cpu]" optax
    python -m tests.oracles.optax_reference          # rewrites tests/oracles/data/optax.json

:data:`MAPPINGS` is where a definition that differs from optax's is pinned: each entry turns
one optimlab case's hyperparameters into the optax transformation that computes the same
update, and may adjust optax's initial state (``fix_state``) where the two start from
different values (the optimizer's docstring says so in a ``.. warning::``).

This module imports JAX and optax only inside functions, so the tests can read the stored
trajectories without them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.problems import grad_np, initial_arrays

DATA = Path(__file__).resolve().parent / "data" / "optax.json"
#: Steps of every stored trajectory (the NumPy oracles' count: bias corrections, momentum
#: warm-up and any schedule inside the rule are well exercised by then).
STEPS = 100


@dataclass(frozen=True)
class Mapping:
    """How one optimlab optimizer's hyperparameters become an optax transformation.

    ``build(**hp)`` returns the transformation for the case's hyperparameters (without
    ``maximize``: the oracle minimizes the un-negated loss). ``fix_state(state, params)``,
    when given, edits optax's initial state to optimlab's starting values.
    """

    name: str  # the optax function, as the catalog's ``reference`` names it
    build: Callable[..., Any]
    fix_state: Callable[[Any, list], Any] | None = None


def _signum(lr, momentum=0.9, weight_decay=0.0):
    import optax

    # optimlab's decoupled decay is p <- p - lr * (sign(m) + wd * p): optax's signum chain
    # with the decayed weights added before the learning rate scales the update
    return optax.chain(optax.ema(momentum, debias=False), optax.scale_by_sign(),
                       optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(lr))


#: optimlab class name -> its optax mapping.
MAPPINGS: dict[str, Mapping] = {
    "Signum": Mapping("optax.signum", _signum),
}


def run(mapping: Mapping, hp: dict, shapes, steps: int = STEPS) -> list[np.ndarray]:
    """optax's parameters after ``steps`` steps from :func:`initial_arrays`, in float64."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    tx = mapping.build(**hp)
    params = [jnp.asarray(a, dtype=jnp.float64) for a in initial_arrays(shapes)]
    state = tx.init(params)
    if mapping.fix_state is not None:
        state = mapping.fix_state(state, params)
    for _ in range(steps):
        grads = [jnp.asarray(g) for g in grad_np([np.asarray(p) for p in params])]
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return [np.asarray(p, dtype=np.float64) for p in params]


def cases() -> list:
    """The test cases (``tests.optim.cases``) of every optimizer in :data:`MAPPINGS`."""
    from tests.optim.cases import CASES

    return [case for name in MAPPINGS for case in CASES[name]]


def generate() -> dict:
    """Run every case through optax; the stored file's content."""
    import jax
    import optax

    out: dict[str, Any] = {"optax": optax.__version__, "jax": jax.__version__, "steps": STEPS,
                           "cases": {}}
    for case in cases():
        final = run(MAPPINGS[case.cls_name], case.reference_hp(), case.shapes)
        out["cases"][case.id] = {"reference": MAPPINGS[case.cls_name].name,
                                 "params": [a.tolist() for a in final]}
    return out


def stored() -> dict:
    """The stored trajectories (``{"cases": {case id: {"params": [...]}}, ...}``)."""
    return json.loads(DATA.read_text())


def main() -> int:
    data = generate()
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {len(data['cases'])} cases (optax {data['optax']}, jax {data['jax']}) "
          f"to {DATA}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
