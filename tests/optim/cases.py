"""The capability table the optimizer tests run from (in the spirit of torch's OptimizerInfo).

Each optimizer in the catalog gets a list of hyperparameter settings that together exercise
every option it has. The parity, oracle, state_dict, scheduler, dtype and property tests all
iterate over this table, so a new optimizer gets the whole test matrix by adding its line;
``test_catalog.py`` fails if a catalog entry has no line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optimlab
from tests.problems import MATRIX_SHAPES, SHAPES


@dataclass(frozen=True)
class Case:
    """One optimizer with one set of hyperparameters."""

    cls_name: str
    hp: dict = field(default_factory=dict)
    #: what this case is checked against where it is not the class's catalog reference: a
    #: setting ``torch.optim`` lacks (``cautious=True``) is checked against the NumPy oracle
    reference: str | None = None

    @property
    def id(self) -> str:
        parts = [f"{k}={v}" for k, v in self.hp.items() if k != "inner"]
        if "inner" in self.hp:
            parts.insert(0, f"inner={self.hp['inner'][0]}")
        return f"{self.cls_name}[{','.join(parts)}]"

    @property
    def checked_against(self) -> str:
        """The reference this case is compared with (``torch.optim.Adam``, ``oracle``, ...)."""
        if self.reference is not None:
            return self.reference
        from optimlab.optim.catalog import TABLE

        return next(info.reference for info in TABLE if info.cls.__name__ == self.cls_name)

    @property
    def maximize(self) -> bool:
        return bool(self.hp.get("maximize", False))

    @property
    def capabilities(self):
        """The optimizer's capability record (what the tests read instead of its name)."""
        return getattr(optimlab, self.cls_name).capabilities

    @property
    def shapes(self):
        return MATRIX_SHAPES if self.capabilities.needs_matrix else SHAPES

    @property
    def needs_closure(self) -> bool:
        return self.capabilities.needs_closure

    def build(self, params, **overrides):
        """Construct the optimlab optimizer for ``params``."""
        hp = {**self.hp, **overrides}
        if self.cls_name == "Lookahead":
            inner_name, inner_hp = hp.pop("inner")
            inner = getattr(optimlab, inner_name)(params, **inner_hp)
            return optimlab.Lookahead(inner, **hp)
        if self.cls_name == "SAM" and isinstance(hp.get("base_optimizer"), str):
            hp["base_optimizer"] = getattr(optimlab, hp["base_optimizer"])
        return getattr(optimlab, self.cls_name)(params, **hp)

    def reference_hp(self) -> dict:
        """The hyperparameters for an oracle, which minimizes the un-negated loss."""
        return {k: v for k, v in self.hp.items() if k != "maximize"}


def _cases(cls_name, *hps):
    return [Case(cls_name, hp) for hp in hps]


def _oracle_cases(cls_name, *hps):
    """Settings of a ``torch.optim`` class that torch lacks: checked against the NumPy oracle."""
    return [Case(cls_name, hp, reference="oracle") for hp in hps]


CASES: dict[str, list[Case]] = {
    "SGD": _cases(
        "SGD",
        dict(lr=0.05),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.01),
        dict(lr=0.05, momentum=0.5, dampening=0.3, maximize=True),
    ),
    "Adagrad": _cases(
        "Adagrad",
        dict(lr=0.1),
        dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
        dict(lr=0.1, eps=1e-6, maximize=True),
    ),
    "Adadelta": _cases(
        "Adadelta",
        dict(lr=1.0),
        dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.01),
        dict(maximize=True),
    ),
    "RMSprop": _cases(
        "RMSprop",
        dict(lr=0.01),
        dict(lr=0.01, momentum=0.5),
        dict(lr=0.01, alpha=0.9, centered=True, momentum=0.9, weight_decay=0.01),
        dict(lr=0.005, centered=True, maximize=True),
    ),
    "Adam": _cases(
        "Adam",
        dict(lr=0.01),
        dict(lr=0.01, amsgrad=True, weight_decay=0.01),
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, decoupled_weight_decay=True, weight_decay=0.1),
        dict(lr=0.01, amsgrad=True, maximize=True),
    ) + _oracle_cases(
        "Adam",
        dict(lr=0.01, cautious=True),
        dict(lr=0.02, amsgrad=True, weight_decay=0.01, cautious=True, maximize=True),
    ),
    "AdamW": _cases(
        "AdamW",
        dict(lr=0.01),
        dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True),
    ) + _oracle_cases("AdamW", dict(lr=0.01, weight_decay=0.1, cautious=True)),
    "Adamax": _cases(
        "Adamax",
        dict(lr=0.02),
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
        dict(maximize=True),
    ),
    "NAdam": _cases(
        "NAdam",
        dict(lr=0.01),
        dict(lr=0.01, momentum_decay=0.01, weight_decay=0.01),
        dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1, maximize=True),
    ),
    "RAdam": _cases(
        "RAdam",
        dict(lr=0.01),
        dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
        dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1, maximize=True),
    ),
    "Adafactor": _cases(
        "Adafactor",
        dict(lr=0.01),
        dict(lr=0.01, beta2_decay=-0.5, d=2.0, weight_decay=0.01),
        dict(eps=(1e-30, 1e-3), maximize=True),
    ),
    "ASGD": _cases(
        "ASGD",
        dict(lr=0.01),
        dict(lr=0.01, lambd=1e-3, alpha=0.5, t0=50, weight_decay=0.01),
        dict(t0=100, maximize=True),
    ),
    "Rprop": _cases(
        "Rprop",
        dict(lr=0.01),
        dict(lr=0.01, etas=(0.4, 1.1), step_sizes=(1e-5, 1.0)),
        dict(maximize=True),
    ),
    "Muon": _cases(
        "Muon",
        dict(lr=0.02),
        dict(lr=0.02, weight_decay=0.01, momentum=0.9, nesterov=False),
        dict(lr=0.02, adjust_lr_fn="match_rms_adamw", maximize=True),
    ),
    "LAMB": _cases(
        "LAMB",
        # LAMB's step is lr * ||w|| however close to the minimum, so it never settles: with
        # lr=0.01 rounding differences grow to 1e-5 within 300 steps even between two runs of
        # the NumPy oracle. These rates keep the path stable enough for float64 parity.
        dict(lr=3e-3),
        dict(lr=2e-3, betas=(0.8, 0.99), weight_decay=0.1),
        dict(lr=3e-3, maximize=True),
    ),
    "Lion": _cases(
        "Lion",
        dict(lr=1e-3),
        dict(lr=3e-3, betas=(0.95, 0.98), weight_decay=0.1),
        dict(lr=1e-3, maximize=True),
        dict(lr=1e-3, cautious=True),
        dict(lr=3e-3, weight_decay=0.1, cautious=True, maximize=True),
    ),
    "LBFGS": _cases(
        "LBFGS",
        dict(lr=0.1, max_iter=3, history_size=5),
        dict(lr=1.0, max_iter=4, line_search_fn="strong_wolfe"),
        dict(lr=0.5, max_iter=2, history_size=3, tolerance_grad=1e-3, tolerance_change=1e-6),
        dict(lr=0.1, max_iter=3, maximize=True),
    ),
    "SparseAdam": _cases(
        "SparseAdam",
        dict(lr=0.01),
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6),
        dict(lr=0.01, maximize=True),
    ),
    "Yogi": _cases(
        "Yogi",
        dict(lr=0.01),
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, initial_accumulator_value=0.1,
             weight_decay=0.01),
        dict(lr=0.02, betas=(0.5, 0.9), initial_accumulator_value=0.0),
        dict(lr=0.01, maximize=True),
    ),
    "AdEMAMix": _cases(
        "AdEMAMix",
        dict(lr=0.01),
        dict(lr=0.01, t_alpha_beta3=50, weight_decay=0.1),
        dict(lr=0.02, betas=(0.8, 0.99, 0.995), alpha=2.0, t_alpha_beta3=30, eps=1e-6,
             weight_decay=0.01),
        dict(lr=0.01, alpha=8.0, t_alpha_beta3=20, maximize=True),
    ),
    "ADOPT": _cases(
        "ADOPT",
        dict(lr=0.01),
        # decoupled decay; eps large enough that the floor max(sqrt(v), eps) acts
        dict(lr=0.01, betas=(0.8, 0.99), eps=0.3, weight_decay=0.1, decoupled=True,
             clip=False),
        # L2 decay; the clip t^(1/4) acts on most steps (and pins t = step - 1)
        dict(lr=0.05, betas=(0.5, 0.999), weight_decay=0.05),
        dict(lr=0.01, maximize=True),
    ),
    "LARS": _cases(
        "LARS",
        dict(lr=1.0),
        dict(lr=2.0, momentum=0.5, weight_decay=0.1, trust_coefficient=0.002, eps=1e-3),
        dict(lr=1.0, weight_decay=0.01, nesterov=True),
        dict(lr=1.0, maximize=True),
    ),
    "Signum": _cases(
        "Signum",
        dict(lr=1e-3),
        dict(lr=3e-3, momentum=0.5, weight_decay=0.1),
        dict(lr=1e-3, momentum=0.0),  # signSGD
        dict(lr=1e-3, maximize=True),
    ),
    "AdaBelief": _cases(
        "AdaBelief",
        dict(lr=0.01),
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-12, weight_decay=0.01),
        dict(lr=0.01, maximize=True),
        # an eps large enough that both of its places (inside s_t and in the denominator)
        # move the path past the tolerance: at 1e-16 and 1e-12 dropping either went unseen
        dict(lr=0.01, eps=1e-4, weight_decay=0.01),
    ),
    "SAM": _cases(
        "SAM",
        dict(base_optimizer="SGD", lr=0.05, rho=0.05),
        dict(base_optimizer="SGD", lr=0.05, momentum=0.9, rho=0.1, adaptive=True),
        dict(base_optimizer="Adam", lr=0.01, rho=0.05, maximize=True),
    ),
    "Lookahead": _cases(
        "Lookahead",
        dict(inner=("SGD", dict(lr=0.05, momentum=0.9)), k=5, alpha=0.5),
        dict(inner=("Adam", dict(lr=0.01)), k=3, alpha=0.8),
    ),
    "ScheduleFreeAdamW": _cases(
        "ScheduleFreeAdamW",
        dict(lr=0.01),
        dict(lr=0.01, warmup_steps=10, weight_decay=0.01, r=0.5, weight_lr_power=1.0),
        dict(lr=0.01, betas=(0.8, 0.99), maximize=True),
    ),
    "ScheduleFreeSGD": _cases(
        "ScheduleFreeSGD",
        dict(lr=0.05),
        dict(lr=0.05, momentum=0.8, warmup_steps=10, weight_decay=0.01, r=0.5,
             weight_lr_power=1.0),
        dict(lr=0.02, momentum=0.95, maximize=True),
        dict(lr=0.03, warmup_steps=20, weight_lr_power=0.0, r=1.0),
    ),
    "PSGDKron": _cases(
        "PSGDKron",
        # the defaults: triangular factors for the matrix and the 3-D tensor, a diagonal one
        # for the vector, a refit every step (the schedule is flat for 500 steps)
        dict(lr=0.01),
        # L2 decay in the gradient; a refit every 4th step (1/0.3); the largest dimension
        # diagonal; fitted to the raw gradient; another seed
        dict(lr=0.01, momentum=0.5, weight_decay=0.01, weight_decouple=False,
             pre_conditioner_update_probability=0.3, memory_save_mode="one_diag",
             momentum_into_precondition_update=False, precondition_lr=0.2, seed=1),
        # decoupled decay; the vector gets a triangular factor (min_ndim_triangular=1), the
        # matrix's 4-row dimension a diagonal one (max_size_triangular=3, and
        # smart_one_diag would too), a smaller start
        dict(lr=0.01, weight_decay=0.1, min_ndim_triangular=1, max_size_triangular=3,
             memory_save_mode="smart_one_diag", precondition_init_scale=0.5),
        dict(lr=0.01, memory_save_mode="all_diag", pre_conditioner_update_probability=0.5,
             maximize=True),
    ),
    "Prodigy": _cases(
        "Prodigy",
        dict(lr=1.0, d0=1e-3),
        # coupled (L2) decay, bias correction, beta3, and d estimated from every 2nd entry
        dict(lr=1.0, d0=1e-2, weight_decay=0.01, decouple=False, use_bias_correction=True,
             beta3=0.99, slice_p=2),
        # no first moment (the beta1 = 0 step), decoupled decay, safeguard warmup, a
        # limited growth rate and d_coef
        dict(lr=0.5, betas=(0.0, 0.99), d0=1e-2, weight_decay=0.1, safeguard_warmup=True,
             d_coef=0.5, growth_rate=1.05),
        dict(lr=1.0, d0=1e-3, maximize=True),
    ),
    "MARS": _cases(
        "MARS",
        dict(lr=0.01),
        # amsgrad, decoupled decay, a stronger correction, eps large enough to matter
        dict(lr=0.01, betas=(0.9, 0.99), gamma=0.1, eps=1e-3, weight_decay=0.1, amsgrad=True),
        # MARS-Lion: the sign of the corrected momentum
        dict(lr=3e-3, betas=(0.9, 0.99), gamma=0.05, mars_type="lion", weight_decay=0.1),
        dict(lr=0.01, betas=(0.9, 0.99), gamma=0.0, maximize=True),  # AdamW on the clipped g
    ),
    "LaProp": _cases(
        "LaProp",
        dict(lr=0.01),
        # decoupled decay (after the step); eps large enough to matter
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        # L2 decay through the gradient, with the running maximum of v
        dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=False, amsgrad=True),
        dict(lr=0.02, betas=(0.5, 0.99), eps=1e-8, maximize=True),
        dict(lr=0.01, amsgrad=True, cautious=True),
    ),
    "NovoGrad": _cases(
        "NovoGrad",
        dict(lr=0.01),
        # eps large enough to matter inside the root; a fast-forgetting second moment
        dict(lr=0.01, betas=(0.9, 0.5), eps=1e-3, weight_decay=0.1),
        dict(lr=0.05, grad_averaging=True, weight_decay=0.01),
        dict(lr=0.005, betas=(0.8, 0.9), maximize=True),
    ),

    "DAdaptAdam": _cases(
        "DAdaptAdam",
        dict(lr=0.25, d0=1e-2),
        dict(lr=0.5, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, d0=1e-3, log_every=25),
        dict(decouple=True, weight_decay=0.1, use_bias_correction=True, growth_rate=1.5,
             d0=1e-2),
        dict(lr=0.5, d0=1e-3, growth_rate=2.0, maximize=True),
    ),
    "DAdaptSGD": _cases(
        "DAdaptSGD",
        dict(lr=0.5, d0=1e-2),
        dict(momentum=0.9, d0=1e-2),
        dict(lr=0.5, momentum=0.5, weight_decay=0.01, growth_rate=1.5, d0=1e-2, log_every=25),
        dict(momentum=0.9, d0=1e-2, maximize=True),
    ),
    "AdamMini": _cases(
        "AdamMini",
        # the default partition: rows of the matrix, slices along the first axis of the
        # 3-D tensor, the whole vector
        dict(lr=0.01),
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, partition="tensor"),
        dict(lr=0.01, weight_decay=0.01, partition="element"),  # AdamW
        # blocks of n elements (n must divide every tensor: 12, 3 and 8 elements here)
        dict(lr=0.01, partition=1, maximize=True),
    ),
    "Sophia": _cases(
        "Sophia",
        dict(lr=3e-3),
        # Rademacher probes, an estimate every 3 steps, a fast Hessian average, decay, and an
        # eps large enough that the floor max(gamma*h, eps) acts on the early steps
        dict(lr=0.01, betas=(0.9, 0.9), gamma=0.1, eps=1e-2, weight_decay=0.1,
             update_interval=3, distribution="rademacher"),
        # an estimate on every step, another seed
        dict(lr=0.01, gamma=0.05, update_interval=1, seed=7),
        dict(lr=3e-3, maximize=True),
    ),
    "SOAP": _cases(
        "SOAP",
        dict(lr=0.01),
        dict(lr=0.01, betas=(0.9, 0.99), shampoo_beta=0.8, eps=1e-6, weight_decay=0.0,
             precondition_frequency=3, correct_bias=False),
        # vectors rotated too; the (4, 3) matrix's rows (4 > 3) stay unrotated
        dict(lr=0.02, precondition_1d=True, max_precondition_dim=3, weight_decay=0.1),
        dict(lr=0.01, maximize=True),
    ),
    "Shampoo": _cases(
        "Shampoo",
        dict(lr=0.05),
        dict(lr=0.05, graft="sgd", betas=(0.5, 0.9), weight_decay=0.01,
             start_preconditioning_step=1),
        dict(lr=0.005, graft="rmsprop", eps=1e-4, graft_eps=1e-8, weight_decay=0.1,
             decoupled_weight_decay=True, nesterov=False, precondition_frequency=3),
        # the 2018 algorithm (sums, no graft, no momentum); the (4, 3) matrix (4 > 3) takes
        # the graft's (here the plain gradient's) step
        dict(lr=0.01, graft="none", betas=(0.0, 1.0), start_preconditioning_step=1,
             max_precondition_dim=3, maximize=True),
    ),
}

ALL_CASES: list[Case] = [case for cases in CASES.values() for case in cases]
#: the cases whose optimizer takes dense gradients (all but SparseAdam's): what tests built on
#: dense gradients (populations, clipping, loss scaling, SWA, hypothesis) run
DENSE_CASES: list[Case] = [case for case in ALL_CASES if not case.capabilities.sparse_only]
