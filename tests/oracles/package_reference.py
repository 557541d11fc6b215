"""The authors' (or another project's) PyTorch package as the reference, run live.

For the optimizers whose catalog ``reference`` names a class of a PyPI package
(``prodigyopt.Prodigy``, ``dadaptation.DAdaptAdam``, ``pytorch_optimizer.MARS``, ...), the
oracle is that class itself: an implementation optimlab did not write. These packages are
pure Python on top of torch, so they are pinned test dependencies (``pyproject.toml``'s
``test`` extra) and the comparison runs live in CI (``tests/optim/test_package_reference.py``),
in float64 on the shared test problem (:mod:`tests.problems`).

:data:`MAPPINGS` is where a definition that differs from the package's is pinned: each entry
turns one optimlab case's hyperparameters into the package's optimizer that computes the same
update (the optimizer's docstring says so in a ``.. warning::`` where the two differ).

Print the table of worst relative differences (largest absolute difference over the largest
absolute reference value, per parameter, worst over the parameters)::

    python -m tests.oracles.package_reference --table
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import torch

from tests.problems import run_torch

#: Steps of every comparison (as the other oracles).
STEPS = 100


@dataclass(frozen=True)
class Mapping:
    """How one optimlab optimizer's hyperparameters become the package's optimizer.

    ``build(params, **hp)`` constructs the reference optimizer for the case's hyperparameters
    (without ``maximize``: the reference minimizes the un-negated loss). ``rtol`` is the
    float64 agreement the test demands; above 1e-10 ``why`` must say what differs.
    """

    name: str  # "package.Class", as the catalog's ``reference`` names it
    build: Callable[..., torch.optim.Optimizer]
    rtol: float = 1e-10
    why: str = ""
    use_closure: bool = False

    def __post_init__(self) -> None:
        if self.rtol > 1e-10 and not self.why:
            raise ValueError(f"{self.name}: a tolerance above 1e-10 needs a reason (why=)")

    @property
    def package(self) -> str:
        return self.name.split(".")[0]

    def reference_class(self) -> type:
        """The package's optimizer class (imports the package)."""
        module, _, cls = self.name.rpartition(".")
        return getattr(importlib.import_module(module), cls)


def _kron_solve_float64(x, a):
    """pytorch_optimizer's ``solve_triangular_right`` (``x @ inv(a)``, ``a`` upper
    triangular) without its rounding to float32."""
    out = torch.linalg.solve_triangular(a, x.reshape(-1, x.size(-1)), upper=True, left=False)
    return out.reshape_as(x)


class _KronPerTensor:
    """``pytorch_optimizer.Kron``, one instance per tensor, each drawing its noise from its
    own stream of torch's global generator.

    optimlab's PSGDKron gives every tensor its own generator seeded with ``seed``; the
    package draws every tensor's noise from torch's global generator in turn. Here tensor
    ``i``'s optimizer steps with the global generator's state set to tensor ``i``'s stream
    (started as ``torch.manual_seed(seed)`` would), saved after its step; the caller's global
    state is restored. Each tensor's preconditioner is independent in Kron, so one instance
    per tensor computes what one instance over all of them would, given the same noise.
    Float64 tensors solve their triangular systems in float64 (the package rounds them to
    float32 whatever the dtype).
    """

    def __init__(self, optimizers, seed):
        self.optimizers = optimizers
        self.param_groups = [g for opt in optimizers for g in opt.param_groups]
        start = torch.Generator().manual_seed(seed).get_state()
        self.streams = [start.clone() for _ in optimizers]

    def zero_grad(self, set_to_none=True):
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        psgd = importlib.import_module("pytorch_optimizer.optimizer.psgd")
        package_solve = psgd.solve_triangular_right

        def solve(x, a):  # float64 in float64; anything else as the package solves it
            return (_kron_solve_float64 if x.dtype == torch.float64 else package_solve)(x, a)

        outer = torch.get_rng_state()
        try:
            with mock.patch.object(psgd, "solve_triangular_right", solve):
                for i, opt in enumerate(self.optimizers):
                    torch.set_rng_state(self.streams[i])
                    opt.step()
                    self.streams[i] = torch.get_rng_state()
        finally:
            torch.set_rng_state(outer)
        return loss


def _kron(params, *, seed=0, precondition_lr=0.1, precondition_init_scale=1.0, **hp):
    """Kron (pytorch_optimizer 4.1.0) for optimlab's PSGDKron: balancing on every refit
    (``balance_prob=1.0``: optimlab balances deterministically, a rescaling that leaves the
    preconditioner unchanged), the preconditioner in the parameters' dtype
    (``precondition_dtype=None``; the package's default is float32), its two param-group-only
    settings set in the group, and one instance per tensor with its own noise stream."""
    from pytorch_optimizer import Kron

    optimizers = []
    for p in params:
        opt = Kron([p], balance_prob=1.0, precondition_dtype=None, **hp)
        opt.param_groups[0].update(precondition_lr=precondition_lr,
                                   precondition_init_scale=precondition_init_scale)
        optimizers.append(opt)
    return _KronPerTensor(optimizers, seed)


def _prodigy(params, **hp):
    import prodigyopt

    if hp.get("growth_rate") is None:
        hp["growth_rate"] = float("inf")
    return prodigyopt.Prodigy(params, **hp)


def _mars(params, *, lr=3e-3, betas=(0.95, 0.99), gamma=0.025, mars_type="adamw", eps=1e-8,
          weight_decay=0.0, amsgrad=False):
    """pytorch_optimizer.MARS computing optimlab.MARS's update.

    Two pins (both in MARS's ``.. warning::``): ``optimize_1d=True``, so 1-D tensors take the
    MARS step too (its default steps them with AdamW and their own lr_1d, betas_1d and
    weight_decay_1d); and its denominator ``(sqrt(v + 1e-15) + eps) / sqrt(1 - b2^t)``
    divides eps by the bias correction, so a pre-step hook sets its ``eps`` to
    ``eps * sqrt(1 - b2^t)`` for the step about to run, which puts eps outside the corrected
    root as in the paper and the authors' code. Its ``ams_bound`` is ``amsgrad`` here. What
    remains is the 1e-15 it adds to v inside the root (not configurable): up to 5e-11 on
    the cases (1e-16 with it set to 0), more where a coordinate's v falls near 1e-9.
    """
    import pytorch_optimizer

    opt = pytorch_optimizer.MARS(params, lr=lr, betas=betas, gamma=gamma, mars_type=mars_type,
                                 optimize_1d=True, eps=eps, weight_decay=weight_decay,
                                 ams_bound=amsgrad)

    def paper_eps(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            step = group.get("step", 0) + 1  # the package counts the step per group
            group["eps"] = eps * (1 - betas[1] ** step) ** 0.5

    opt.register_step_pre_hook(paper_eps)
    return opt


def _laprop(params, lr=4e-4, betas=(0.9, 0.999), eps=1e-15, weight_decay=0.0,
            decoupled_weight_decay=True, amsgrad=False, cautious=False):
    import math

    from pytorch_optimizer import LaProp

    beta2 = betas[1]
    l2 = 0.0 if decoupled_weight_decay else weight_decay
    # foreach=False: the package's multi-tensor path rounds the step size 1/(1 - b1^t) to
    # float32, which float64 parity would see
    class LaPropWithoutFloor(LaProp):
        # the package adds a constant 1e-15 to v inside the root, which optimlab (and the
        # authors' code) do not: a relative 1e-15/2v that cautious masking, discontinuous
        # where m * g crosses 0, can turn into a different mask; here it is 0
        @staticmethod
        def apply_ams_bound(ams_bound, exp_avg_sq, max_exp_avg_sq, eps, exp_avg_sq_eps=0.0):
            return LaProp.apply_ams_bound(ams_bound, exp_avg_sq, max_exp_avg_sq, eps, 0.0)

    opt = LaPropWithoutFloor(params, lr=lr, betas=betas, eps=eps,
                             weight_decay=weight_decay if decoupled_weight_decay else 0.0,
                             weight_decouple=True, ams_bound=amsgrad, cautious=cautious,
                             foreach=False)

    def before_step(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            # the package adds eps before its bias correction, (sqrt(v) + eps)/sqrt(1 - b2^t);
            # optimlab (the authors' code) after it: the package's eps * sqrt(1 - b2^t) is
            # optimlab's eps (t is the count after this step)
            t = group.get("step", 0) + 1
            group["eps"] = eps * math.sqrt(1 - beta2**t)
            if l2:
                # the package's L2 mode adds wd * p to p.grad after the step has used it (no
                # effect on the update): hand it g + wd * p instead
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.add_(p, alpha=l2)

    opt.register_step_pre_hook(before_step)
    return opt



def _dadapt_adam(params, growth_rate=None, **hp):
    import dadaptation

    # optimlab's growth_rate=None is the package's float("inf"): no limit
    return dadaptation.DAdaptAdam(
        params, growth_rate=float("inf") if growth_rate is None else growth_rate, **hp)


def _dadapt_sgd(params, growth_rate=None, **hp):
    import dadaptation

    return dadaptation.DAdaptSGD(
        params, growth_rate=float("inf") if growth_rate is None else growth_rate, **hp)


def _adam_mini_named(params, partition):
    """Names under which ``adam_mini.Adam_mini`` (1.1.1) gives each tensor optimlab's blocks,
    and the (dim, n_heads) it needs: the package picks a tensor's blocks from its name.

    A name it does not recognise is one block per tensor; ``mlp`` one per row (matrices
    only); ``q_proj`` blocks of ``dim * dim // n_heads`` consecutive elements, one size for
    all such tensors (here dim = n_heads = that size). No name holds "bias", "norm" or "ln",
    for which the package would turn weight decay off (or use plain Adam).
    """
    named, head = [], None
    for i, p in enumerate(params):
        if partition == "tensor" or (partition == "row" and p.dim() <= 1):
            named.append((f"p{i}", p))
        elif partition == "row" and p.dim() == 2:
            named.append((f"mlp{i}", p))
        else:  # "element", "row" of a tensor of 3+ dimensions, n elements per block
            size = {"element": 1, "row": p[0].numel()}.get(partition, partition)
            if head not in (None, size):
                raise ValueError("adam_mini.Adam_mini has one head size for all q_proj "
                                 f"tensors, this case needs {head} and {size}")
            head = size
            named.append((f"q_proj{i}", p))
    head = head or 1
    return named, head, head


def _adam_mini(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               partition="row"):
    from adam_mini import Adam_mini

    named, dim, n_heads = _adam_mini_named(params, partition)
    return Adam_mini(named, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, dim=dim,
                     n_heads=n_heads, verbose=False)


_U64 = 2**64


def _sophia_generator_seed(seed: int, index: int, step: int) -> int:
    """The seed of Sophia's probe generator for parameter ``index`` on its step ``step``:
    splitmix64 folded over ``(seed, index, step)``, each value added to the running state
    with the golden-ratio increment and the state then mixed (Stafford's variant 13, as
    splitmix64 finalizes), the last state halved to fit below 2**63 (torch's seeds)."""
    state = 0
    for value in (seed, index, step):
        state = (state + 0x9E3779B97F4A7C15 + value % _U64) % _U64
        for shift, multiplier in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            state = ((state ^ (state >> shift)) * multiplier) % _U64
        state ^= state >> 31
    return state // 2


def _sophia_probe(p, seed: int, index: int, step: int, distribution: str):
    """The oracle's own probe, as Sophia documents it: drawn from a fresh generator seeded by
    ``(seed, parameter index, step)`` alone, standard normal entries (``torch.randn``) or
    Rademacher ones (fair coin flips, ``bernoulli_(0.5)``, mapped to -1 and +1), shaped and
    typed like ``p``. Written here rather than imported, so that a wrong probe in optimlab
    (scaled, shifted, from another stream) makes the references disagree."""
    generator = torch.Generator(device=p.device)
    generator.manual_seed(_sophia_generator_seed(seed, index, step))
    if distribution == "gaussian":
        return torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    flips = torch.empty(p.shape, dtype=p.dtype, device=p.device)
    flips.bernoulli_(0.5, generator=generator)
    return torch.where(flips == 1, 1.0, -1.0).to(p.dtype)


def _sophia_difference_step(p):
    """The documented finite-difference step sqrt(machine eps) * max(1, rms(p)), a 0-d
    tensor of ``p``'s dtype."""
    rms = p.detach().square().mean().sqrt() if p.numel() else p.new_zeros(())
    return torch.clamp(rms, min=1.0) * torch.finfo(p.dtype).eps ** 0.5


def _sophia(params, *, lr=6e-4, betas=(0.96, 0.99), gamma=0.01, eps=1e-12, weight_decay=0.0,
            update_interval=10, distribution="gaussian", seed=0):
    """pytorch_optimizer.SophiaH computing optimlab.Sophia's update.

    Two pins (both in Sophia's ``.. warning::``). SophiaH writes the paper's first version,
    ``lr' * clip(m / max(h, eps'), p)``: here ``lr' = lr / gamma``, ``p = gamma``,
    ``eps' = eps / gamma`` and ``weight_decay' = weight_decay * gamma`` (its decoupled decay is
    scaled by ``lr'``). And the Hessian estimate: SophiaH differentiates twice (it needs
    ``backward(create_graph=True)``), optimlab differences two gradients; so on each Hessian
    step this wrapper hands SophiaH optimlab's estimate through its own
    ``step(hessian=...)``: the same probes and difference step (the oracle's own
    transcriptions, :func:`_sophia_probe` and :func:`_sophia_difference_step`, of Sophia's
    documented rule), evaluated with the closure.
    """
    import pytorch_optimizer

    class SophiaH(pytorch_optimizer.SophiaH):
        @torch.no_grad()
        def step(self, closure=None):
            with torch.enable_grad():
                loss = closure()
            t = self.param_groups[0].get("step", 0) + 1  # the step about to run
            if (t - 1) % update_interval:
                super().step()
                return loss
            ps = [p for group in self.param_groups for p in group["params"]]
            grads = [p.grad for p in ps]
            origins = [p.detach().clone() for p in ps]
            us = [_sophia_probe(p, seed=seed, index=i, step=t, distribution=distribution)
                  for i, p in enumerate(ps)]
            deltas = [_sophia_difference_step(p) for p in ps]
            for p, u, delta in zip(ps, us, deltas):
                p.add_(u * delta)
                p.grad = None
            with torch.enable_grad():
                closure()
            hessian = [u * (p.grad - g) / delta for p, g, u, delta in zip(ps, grads, us, deltas)]
            for p, origin, g in zip(ps, origins, grads):
                p.copy_(origin)
                p.grad = g
            super().step(hessian=hessian)
            return loss

    return SophiaH(params, lr=lr / gamma, betas=betas, weight_decay=weight_decay * gamma,
                   p=gamma, eps=eps / gamma, update_period=update_interval)


def _soap(params, **hp):
    """pytorch_optimizer.SOAP with its QR in the factors' dtype instead of float32 (its
    ``get_orthogonal_matrix_qr`` casts ``power_iter.to(torch.float32)``, which limits a
    float64 run to ~1e-5 agreement); the method is otherwise the package's, line for line
    (``merge_dims`` and ``data_format`` are not used: optimlab.SOAP has neither)."""
    from pytorch_optimizer import SOAP

    class SOAPNativeQR(SOAP):
        def get_orthogonal_matrix_qr(self, state, max_precondition_dim=10000,
                                     merge_dims=False):
            exp_avg_sq = state["exp_avg_sq"]
            matrices = []
            for ind, (m, o) in enumerate(zip(state["GG"], state["Q"])):
                if len(m) == 0:
                    matrices.append([])
                    continue
                matrix_product = m @ o
                est_eig = (o * matrix_product).sum(dim=0)
                sort_idx = torch.argsort(est_eig, descending=True)
                exp_avg_sq = exp_avg_sq.index_select(ind, sort_idx)
                q, _ = torch.linalg.qr(matrix_product.index_select(1, sort_idx))
                matrices.append(q)
            state["exp_avg_sq"] = exp_avg_sq
            return matrices

    return SOAPNativeQR(params, **hp)


def _shampoo(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-6, graft="adagrad", graft_eps=1e-10,
             weight_decay=0.0, decoupled_weight_decay=False, nesterov=True,
             start_preconditioning_step=5, precondition_frequency=1, max_precondition_dim=4096):
    """pytorch_optimizer.ScalableShampoo as optimlab.Shampoo: roots by SVD (its default,
    a coupled Newton iteration, starts a power iteration from a random vector), no merging
    of small dimensions and no blocks (its defaults merge (4, 3) into one vector, which
    turns its preconditioning off), momentum as a sum (not a moving average), decoupled
    learning rate (its default). Its constructor refuses beta2 = 1 though its code sums the
    statistics then (weight 1), so beta2 is set in the param groups after construction."""
    from pytorch_optimizer import ScalableShampoo
    from pytorch_optimizer.optimizer.utils.graft import LayerWiseGrafting

    grafts = {"adagrad": LayerWiseGrafting.ADAGRAD, "rmsprop": LayerWiseGrafting.RMSPROP,
              "sgd": LayerWiseGrafting.SGD, "none": LayerWiseGrafting.NONE}
    opt = ScalableShampoo(
        params, lr=lr, betas=(betas[0], min(betas[1], 0.5)), weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay, decoupled_learning_rate=True,
        moving_average_for_momentum=False, nesterov=nesterov,
        start_preconditioning_step=start_preconditioning_step,
        preconditioning_compute_steps=precondition_frequency, statistics_compute_steps=1,
        block_size=2**31 - 1, no_preconditioning_for_layers_with_dim_gt=max_precondition_dim,
        skip_preconditioning_rank_lt=1, shape_interpretation=False, inverse_exponent_override=0,
        graft_type=grafts[graft], diagonal_eps=graft_eps, matrix_eps=eps, use_svd=True)
    for group in opt.param_groups:  # read on the first step (statistics and RMSProp graft)
        group["betas"] = tuple(betas)
    return opt


#: optimlab class name -> how its package reference is built.
MAPPINGS: dict[str, Mapping] = {
    "SOAP": Mapping("pytorch_optimizer.SOAP", build=_soap),
    "Shampoo": Mapping("pytorch_optimizer.ScalableShampoo", build=_shampoo),
    "Sophia": Mapping("pytorch_optimizer.SophiaH", build=_sophia, use_closure=True),
    "AdamMini": Mapping("adam_mini.Adam_mini", _adam_mini),

    "DAdaptAdam": Mapping("dadaptation.DAdaptAdam", build=_dadapt_adam),
    "DAdaptSGD": Mapping("dadaptation.DAdaptSGD", build=_dadapt_sgd),
    "LaProp": Mapping("pytorch_optimizer.LaProp", _laprop),
    "MARS": Mapping("pytorch_optimizer.MARS", build=_mars),
    "Prodigy": Mapping("prodigyopt.Prodigy", build=_prodigy),
    "PSGDKron": Mapping("pytorch_optimizer.Kron", build=_kron),
}


def cases() -> list:
    """The test cases (``tests.optim.cases``) of every optimizer in :data:`MAPPINGS`."""
    from tests.optim.cases import CASES

    return [case for name in MAPPINGS for case in CASES[name]]


def runs(case, dtype=torch.float64, steps: int = STEPS):
    """optimlab's and the package's parameters after ``steps`` steps of ``case``."""
    mapping = MAPPINGS[case.cls_name]
    ours = run_torch(case.build, steps, dtype, case.shapes, maximize=case.maximize,
                     use_closure=case.needs_closure)
    theirs = run_torch(lambda ps: mapping.build(ps, **case.reference_hp()), steps, dtype,
                       case.shapes, use_closure=mapping.use_closure)
    return ours, theirs


def worst_relative(ours, theirs) -> float:
    """Largest absolute difference over the largest absolute reference value, worst tensor."""
    return max(float((a.double() - b.double()).abs().max() / b.double().abs().max())
               for a, b in zip(ours, theirs, strict=True))


def table() -> str:
    """Markdown: optimlab against the live package, both in float64 and both in float32."""
    rows = ["| case | reference | steps | float64 | float32 |", "|---|---|---|---|---|"]
    for case in cases():
        worst = [worst_relative(*runs(case, dtype)) for dtype in (torch.float64, torch.float32)]
        rows.append(f"| {case.id} | {MAPPINGS[case.cls_name].name} | {STEPS} | "
                    f"{worst[0]:.1e} | {worst[1]:.1e} |")
    return "\n".join(rows)


def main() -> int:
    if sys.argv[1:] != ["--table"]:
        print("usage: python -m tests.oracles.package_reference --table", file=sys.stderr)
        return 2
    print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
