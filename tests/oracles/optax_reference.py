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
    python -m tests.oracles.optax_reference --table  # optimlab against the stored file

``--table`` needs only torch: it prints, per case, the worst relative difference (largest
absolute difference over the largest absolute optax value, per parameter) of optimlab's
float64 and float32 runs against optax's stored float64 trajectory.

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


def _yogi(lr=1e-2, betas=(0.9, 0.999), eps=1e-3, initial_accumulator_value=1e-6,
          weight_decay=0.0):
    import optax

    # optax.yogi has no weight decay: optimlab's is L2 added to the gradient before the rule
    b1, b2 = betas
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.scale_by_yogi(b1=b1, b2=b2, eps=eps,
                                           initial_accumulator_value=initial_accumulator_value),
                       optax.scale_by_learning_rate(lr))


def _yogi_fix_state(state, params):
    import jax
    import jax.numpy as jnp

    # optax starts the first moment at initial_accumulator_value too; optimlab (the paper,
    # Adam, TF-Addons) starts it at 0
    decay, yogi, scale = state
    return (decay, yogi._replace(mu=jax.tree.map(jnp.zeros_like, yogi.mu)), scale)


def _ademamix(lr, betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=None, eps=1e-8,
              weight_decay=0.0):
    import jax.numpy as jnp
    import optax

    b1, b2, b3 = betas
    if t_alpha_beta3 is not None:
        # the paper's warm-up (Algorithm 1) at t = count + 1: optax calls a schedule with its
        # count before the step (0 on the first), optimlab and the paper with t = 1
        # (count + 1) / T of optax's int32 count is float32 in JAX: count in float64 first
        def alpha_at(count, alpha=alpha):
            t = jnp.asarray(count, jnp.float64) + 1
            return jnp.minimum(t * alpha / t_alpha_beta3, alpha)

        def b3_at(count, b3=b3):
            s = (jnp.asarray(count, jnp.float64) + 1) / t_alpha_beta3
            ln1, ln3 = jnp.log(b1), jnp.log(b3)
            return jnp.minimum(jnp.exp(ln1 * ln3 / ((1 - s) * ln3 + s * ln1)), b3)

        alpha, b3 = alpha_at, b3_at
    # eps_root=0: eps outside the root, as the paper; the decay is added to the update before
    # the learning rate scales it, which is optimlab's decoupled p * (1 - lr * wd)
    return optax.contrib.ademamix(lr, b1=b1, b2=b2, b3=b3, alpha=alpha, eps=eps, eps_root=0.0,
                                  weight_decay=weight_decay)


def _adopt(lr, betas=(0.9, 0.9999), eps=1e-6, weight_decay=0.0, decoupled=False, clip=True):
    import jax.numpy as jnp
    import optax

    b1, b2 = betas
    # optax's count is the paper's t (0 on the step that only records v_0 = g_0^2), so its
    # default clip_value_fn count ** 0.25 is optimlab's (step - 1) ** 0.25
    adopt = optax.contrib.scale_by_adopt(b1=b1, b2=b2, eps=eps, use_clipping=clip)
    if not decoupled:
        # L2: the decay joins the gradient before ADOPT sees it (v_0 included)
        return optax.chain(optax.add_decayed_weights(weight_decay), adopt,
                           optax.scale_by_learning_rate(lr))
    # decoupled: p <- p * (1 - lr * wd) - lr * m, except on the recording step (count 0),
    # where optimlab (as the authors' package) leaves the weights alone
    return optax.chain(adopt,
                       optax.add_decayed_weights(lambda count: jnp.where(count > 0,
                                                                         weight_decay, 0.0)),
                       optax.scale_by_learning_rate(lr))


def _lars(lr=1.0, momentum=0.9, weight_decay=0.0, trust_coefficient=0.001, eps=0.0,
          nesterov=False):
    import jax
    import jax.numpy as jnp
    import optax

    if weight_decay == 0:
        # without decay the two definitions coincide: optax.lars itself
        return optax.lars(lr, weight_decay=0.0, trust_coefficient=trust_coefficient, eps=eps,
                          momentum=momentum, nesterov=nesterov)

    # With decay, optimlab's ratio has the paper's denominator (eq. 6), ||g|| + wd*||w|| + eps,
    # where optax's scale_by_trust_ratio takes ||g + wd*w|| + eps. The rest of optax.lars's
    # chain (decay added to the gradient, ratio, learning rate, trace) is kept as it is.
    def update_fn(updates, state, params):
        def scale(g, w):
            w_norm = jnp.linalg.norm(w.ravel())
            denom = jnp.linalg.norm(g.ravel()) + weight_decay * w_norm + eps
            ok = jnp.logical_and(w_norm > 0, denom > 0)
            ratio = jnp.where(ok, trust_coefficient * w_norm / jnp.where(ok, denom, 1.0), 1.0)
            return ratio * (g + weight_decay * w)

        return jax.tree.map(scale, updates, params), state

    paper_ratio = optax.GradientTransformation(optax.init_empty_state, update_fn)
    return optax.chain(paper_ratio, optax.scale_by_learning_rate(lr),
                       optax.trace(decay=momentum, nesterov=nesterov))


def _novograd(lr=1e-3, betas=(0.95, 0.98), eps=1e-8, weight_decay=0.0, grad_averaging=False):
    import optax

    b1, b2 = betas
    # optimlab's eps is inside the root, as the authors' code: optax's eps_root, with optax's
    # eps (outside the root) 0
    novograd = optax.scale_by_novograd(b1=b1, b2=b2, eps=0.0, eps_root=eps,
                                       weight_decay=weight_decay)
    # grad_averaging (m = b1*m + (1-b1)*u) is optax's heavy-ball m scaled by 1 - b1
    average = optax.scale(1 - b1) if grad_averaging else optax.identity()
    return optax.chain(novograd, average, optax.scale_by_learning_rate(lr))


#: optimlab class name -> its optax mapping.
MAPPINGS: dict[str, Mapping] = {
    "Signum": Mapping("optax.signum", _signum),
    "Yogi": Mapping("optax.yogi", _yogi, _yogi_fix_state),
    "AdEMAMix": Mapping("optax.contrib.ademamix", _ademamix),
    "ADOPT": Mapping("optax.contrib.adopt", _adopt),
    "LARS": Mapping("optax.lars", _lars),
    "NovoGrad": Mapping("optax.novograd", _novograd),
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


def table() -> str:
    """Markdown: optimlab (float64 and float32) against the stored optax trajectories."""
    import torch

    from tests.problems import run_torch

    data = stored()
    rows = ["| case | reference | steps | float64 | float32 |", "|---|---|---|---|---|"]
    for case in cases():
        theirs = [np.asarray(a) for a in data["cases"][case.id]["params"]]
        worst = {}
        for dtype in (torch.float64, torch.float32):
            ours = run_torch(case.build, STEPS, dtype, case.shapes, maximize=case.maximize)
            worst[dtype] = max(float(np.abs(a.double().numpy() - b).max() / np.abs(b).max())
                               for a, b in zip(ours, theirs))
        rows.append(f"| {case.id} | {data['cases'][case.id]['reference']} | {data['steps']} | "
                    f"{worst[torch.float64]:.1e} | {worst[torch.float32]:.1e} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``--table``: optimlab against the stored file; no argument: rewrite it with optax."""
    argv = sys.argv[1:] if argv is None else argv
    usage = ("usage: python -m tests.oracles.optax_reference [--table]\n"
             "  no argument: run every case through optax and rewrite "
             f"{DATA.name} (needs jax[cpu] and optax)\n"
             "  --table: optimlab's runs against the stored file (needs only torch)")
    if argv in (["-h"], ["--help"]):
        print(usage)
        return 0
    if argv == ["--table"]:
        print(table())
        return 0
    if argv:
        print(f"{usage}\nerror: unknown arguments {' '.join(argv)}", file=sys.stderr)
        return 2
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError as err:
        print(f"error: regenerating {DATA.name} needs JAX's CPU build and optax "
              f'(pip install "jax[cpu]" optax): {err}', file=sys.stderr)
        return 2
    data = generate()
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {len(data['cases'])} cases (optax {data['optax']}, jax {data['jax']}) "
          f"to {DATA}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
