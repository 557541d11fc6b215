"""Deterministic test problems shared by the optimizer tests and the NumPy oracles.

The loss is separable and smooth, with a different curvature per coordinate and a quartic
term, so that every optimizer moves every coordinate differently and a wrong coefficient
shows up within a few steps:

    L(w) = sum_i sum( 0.5 * c_i * (w_i - t_i)^2 + 0.05 * w_i^4 )

Its gradient has a closed form, which the NumPy oracles use (they never touch torch).
"""

from __future__ import annotations

import numpy as np
import torch

SHAPES = [(4, 3), (3,), (2, 2, 2)]
MATRIX_SHAPES = [(4, 3), (3, 5)]


def _coefficients(shape, index):
    n = int(np.prod(shape))
    c = np.linspace(0.5, 3.0, n).reshape(shape) * (1 + 0.25 * index)
    t = 0.5 * np.cos(np.arange(n) + index).reshape(shape)
    return c, t


def initial_arrays(shapes=SHAPES, seed=0) -> list[np.ndarray]:
    """Starting points, as float64 NumPy arrays."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for shape in shapes]


def make_params(dtype=torch.float64, shapes=SHAPES, seed=0) -> list[torch.Tensor]:
    """Fresh leaf tensors at the starting point."""
    return [torch.tensor(a, dtype=dtype).requires_grad_() for a in initial_arrays(shapes, seed)]


def loss_fn(params) -> torch.Tensor:
    """The torch loss (autograd gives the gradient)."""
    total = 0.0
    for i, p in enumerate(params):
        c, t = _coefficients(tuple(p.shape), i)
        c = torch.as_tensor(c, dtype=p.dtype)
        t = torch.as_tensor(t, dtype=p.dtype)
        total = total + (0.5 * c * (p - t) ** 2 + 0.05 * p**4).sum()
    return total


def grad_np(params: list[np.ndarray]) -> list[np.ndarray]:
    """The analytic gradient of :func:`loss_fn`, in NumPy."""
    grads = []
    for i, w in enumerate(params):
        c, t = _coefficients(w.shape, i)
        grads.append(c * (w - t) + 0.2 * w**3)
    return grads


def sparsify(params) -> None:
    """Replace each gradient by its sparse form (every entry stored): the test problem's
    gradients as an optimizer that takes sparse gradients only (SparseAdam) is fed them."""
    for p in params:
        if p.grad is not None:
            p.grad = p.grad.to_sparse()


def train_steps(opt, params, steps, sign=1.0, use_closure=False, sparse=None, loss=None):
    """Take ``steps`` optimizer steps on ``sign * loss(params)`` (``loss``: :func:`loss_fn`).

    ``sparse``: hand the gradients over in sparse form (None: where the optimizer takes
    sparse gradients only, ``capabilities.sparse_only``; a torch class has no record, so
    its comparison passes the case's).
    """

    objective = loss or loss_fn

    def closure():
        opt.zero_grad()
        value = sign * objective(params)
        value.backward()
        return value

    if sparse is None:
        sparse = getattr(getattr(opt, "capabilities", None), "sparse_only", False)
    for _ in range(steps):
        if use_closure:
            opt.step(closure)
        else:
            closure()
            if sparse:
                sparsify(params)
            opt.step()


def run_torch(opt_factory, steps, dtype=torch.float64, shapes=SHAPES, maximize=False,
              use_closure=False, sparse=None, ulps=0):
    """Run ``steps`` steps of ``opt_factory(params)``; return the final parameters.

    With ``maximize`` the objective is negated, so a correct ``maximize=True`` optimizer
    follows exactly the same path as the minimizer. ``sparse`` as in :func:`train_steps`;
    ``ulps``: start that many ulps (-1 or 1) away from the starting point (:func:`nudge`).
    """
    params = make_params(dtype, shapes)
    if ulps:
        nudge(params, ulps)
    train_steps(opt_factory(params), params, steps, -1.0 if maximize else 1.0, use_closure,
                sparse)
    return [p.detach().clone() for p in params]


def assert_params_close(actual, expected, rtol):
    """Relative agreement, measured against the size of the expected parameters."""
    for a, e in zip(actual, expected, strict=True):
        a = torch.as_tensor(a, dtype=torch.float64)
        e = torch.as_tensor(e, dtype=torch.float64)
        scale = max(e.abs().max().item(), 1e-12)
        torch.testing.assert_close(a, e, rtol=rtol, atol=rtol * scale)


# -- float32 agreement within a measured rounding error -------------------------------------
# Two float32 runs of the same rule (optimlab's and torch's, or the fused and the plain path)
# each round every operation once, but torch's CPU kernels are compiled per instruction set
# (AVX2, AVX-512) and may fuse a multiply-add where another build does not, so the runs can
# differ by a rounding that the steps then amplify. A fixed tolerance tuned on one machine
# fails on another; instead a run's distance from the exact result (the float64 run, whose
# own rounding is about 1e9 times smaller) must be about the reference run's distance.
#: err_run <= ROUNDING_FACTOR * err_reference + ...: a run whose roundings fall unluckily can
#: be a few times further off than one whose roundings fall luckily; 4 leaves room for that,
#: while a wrong rule (a wrong constant, a missed term, a stale buffer) is orders of
#: magnitude above the rounding of 100-300 steps
ROUNDING_FACTOR = 4
#: ... + FLOOR_ULPS * eps (errors are relative to the tensor's largest value, so this is a few
#: ulps of it): where the reference happens to land almost on the exact result (its error can
#: be below one ulp), the run is still allowed the few ulps that rounding the parameter and
#: its inputs on the last steps leaves
FLOOR_ULPS = 4


def rounding_error(run, exact) -> list[float]:
    """Per tensor, ``max|run - exact|`` relative to the tensor's largest exact value."""
    errors = []
    for a, e in zip(run, exact, strict=True):
        a, e = torch.as_tensor(a), torch.as_tensor(e)
        if a.is_complex():
            a, e = torch.view_as_real(a), torch.view_as_real(e)
        a, e = a.detach().double(), e.detach().double()
        errors.append((a - e).abs().max().item() / max(e.abs().max().item(), 1e-12))
    return errors


def assert_as_accurate_as(run, references, exact, what=("run", "reference")) -> None:
    """``run`` is within ``ROUNDING_FACTOR`` times the references' largest error (plus a
    floor of ``FLOOR_ULPS`` ulps) of ``exact``, tensor by tensor.

    ``run`` and each of ``references`` hold the same tensors in the same low precision
    (float32, complex64, bfloat16: the floor follows each tensor's dtype). Several references
    (the same run started one ulp away) sample how far rounding alone carries a run: the
    largest of their errors is the one allowed. ``what`` names the two in the message.
    """
    err_run = rounding_error(run, exact)
    err_ref = [max(errors) for errors in zip(*[rounding_error(r, exact) for r in references])]
    for i, (r, p, er, ep) in enumerate(zip(run, references[0], err_run, err_ref)):
        assert r.dtype == p.dtype, (r.dtype, p.dtype)
        eps = torch.finfo(torch.as_tensor(r).real.dtype).eps
        bound = ROUNDING_FACTOR * ep + FLOOR_ULPS * eps
        assert er <= bound, (
            f"tensor {i} ({r.dtype}): the {what[0]} is {er:.3g} (relative) from the float64 "
            f"result, the {what[1]} {ep:.3g}; allowed {ROUNDING_FACTOR} * {ep:.3g} + "
            f"{FLOOR_ULPS} eps = {bound:.3g}")


def nudge(params, ulps: int) -> None:
    """Move every element of ``params`` (leaf tensors) ``ulps`` (-1 or 1) ulps, in place."""
    with torch.no_grad():
        for p in params:
            p.copy_(torch.nextafter(p, torch.full_like(p, float("inf") if ulps > 0 else -float("inf"))))
