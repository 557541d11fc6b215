"""L-BFGS: limited-memory BFGS with an optional strong-Wolfe line search (Liu & Nocedal 1989).

Every quantity lives in one flat vector over all parameters (under FSDP2, each process's
vector holds its own shards, and reductions over it are summed over the processes:
:class:`_Space`). Each :meth:`LBFGS.step` runs up
to ``max_iter`` quasi-Newton iterations: a search direction from the two-loop recursion over
the stored curvature pairs, then either a fixed step or a strong-Wolfe line search (bracketing
and zoom with cubic interpolation). The floating-point operations and their order are those
of ``torch.optim.LBFGS``, so the two agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from .base import (
    TorchOptimizer,
    check_bool,
    check_int,
    check_range,
    check_saved_groups,
    check_saved_name,
    check_state_dict,
    saved_name,
    saved_shape,
)
from .capabilities import Capabilities

__all__ = ["LBFGS"]

#: sufficient-decrease (Armijo) constant of the strong-Wolfe conditions
_C1 = 1e-4
#: curvature constant of the strong-Wolfe conditions
_C2 = 0.9
#: the zoom stops once the bracket is this short, measured along the largest coordinate of
#: the direction (fixed: the group's ``tolerance_change`` does not reach the line search)
_BRACKET_TOL = 1e-9
#: a curvature pair (s, y) is stored only when y's exceeds this, which keeps H positive definite
_CURVATURE_MIN = 1e-10
#: the keys of the optimizer state (kept on the first parameter, as torch does, so that
#: ``load_state_dict`` casts it); the same names as ``torch.optim.LBFGS``, so the two load each
#: other's state_dicts
_STATE_KEYS = ("func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
               "prev_flat_grad", "prev_loss")


# -- the flat vector ---------------------------------------------------------------------------
def _flat_grad(params: list[Tensor], negate: bool) -> Tensor:
    """All gradients as one new real vector (zeros for a parameter without one; a complex
    gradient as its real and imaginary parts, as torch lays them out)."""
    return _flat([(p.grad, p) for p in params], negate)


def _flat(pairs: list[tuple[Tensor | None, Tensor]], negate: bool) -> Tensor:
    """``(gradient or None, parameter)`` pairs as one new real vector (see
    :func:`_flat_grad`)."""
    pieces = []
    for g, p in pairs:
        if g is None:
            g = p.new_zeros(p.numel())
        elif g.is_sparse:
            g = g.to_dense()
        pieces.append(torch.view_as_real(g).reshape(-1) if torch.is_complex(g)
                      else g.reshape(-1))
    flat = torch.cat(pieces, 0)
    return flat.neg() if negate else flat


def _move(params: list[Tensor], step: float | Tensor, direction: Tensor) -> None:
    """theta <- theta + step * direction, slice by slice of the flat direction."""
    start = 0
    for p in params:
        if torch.is_complex(p):
            p = torch.view_as_real(p)
        size = p.numel()
        p.add_(direction[start:start + size].view_as(p), alpha=step)
        start += size


def _local(t: Tensor) -> Tensor:
    """What this process holds of ``t``: a DTensor's local tensor (a view: writing it writes
    ``t``), else ``t``."""
    return t.to_local() if hasattr(t, "to_local") else t


def _own_part(p: Tensor) -> Tensor:
    """:func:`_local` of ``p``, a complex one as its real view (its entries in the vector)."""
    local = _local(p)
    return torch.view_as_real(local) if torch.is_complex(local) else local


class _Space:
    """The flat vector L-BFGS works in, and its reductions (dot products, the l1 norm, the
    largest magnitude).

    Without DTensors it is torch's vector (every gradient flattened, concatenated) and each
    reduction is the tensor method torch calls, so the two agree bit for bit. Where
    parameters are DTensors (FSDP2's ``fully_shard``), each process's vector holds what it
    holds of each parameter (its shards, and the whole of a plain or replicated one), never
    gathered: torch 2.13 cannot flatten a DTensor sharded unevenly (a ``Linear(4, 3)`` on
    two processes), and the vector needs no more. A reduction then sums (or takes the
    largest of) the shards' part over the process groups of the mesh dimensions they are
    sharded along, one ``all_reduce`` per such set of groups, and adds the part every
    process holds whole once. Every process issues the same collectives in the same
    order: the parameters' order, the same everywhere.
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.distributed = any(hasattr(p, "device_mesh") for p in params)
        if not self.distributed:
            return
        spans: dict[tuple, list[list[int]]] = {}
        self.groups: dict[tuple, tuple] = {}
        start = 0
        for p in params:
            groups = ()
            if hasattr(p, "device_mesh"):
                if any(pl.is_partial() for pl in p.placements):
                    raise ValueError("LBFGS: a parameter with a Partial placement has no "
                                     "values of its own; redistribute it first")
                groups = tuple(p.device_mesh.get_group(dim)
                               for dim, pl in enumerate(p.placements) if pl.is_shard())
            key = tuple(id(g) for g in groups)
            self.groups[key] = groups
            end = start + _own_part(p).numel()
            ranges = spans.setdefault(key, [])
            if ranges and ranges[-1][1] == start:
                ranges[-1][1] = end  # next to the last range of the same groups: one slice
            else:
                ranges.append([start, end])
            start = end
        self.spans = [(key, [(a, b) for a, b in ranges]) for key, ranges in spans.items()]

    def flat_grad(self, negate: bool) -> Tensor:
        """The gradients as this process's vector (see the class), negated for maximize."""
        if not self.distributed:
            return _flat_grad(self.params, negate)
        return _flat([(None if p.grad is None else _local(p.grad), _local(p))
                      for p in self.params], negate)

    def move(self, step: float | Tensor, direction: Tensor) -> None:
        """theta <- theta + step * direction, each process on what it holds."""
        _move([_local(p) for p in self.params] if self.distributed else self.params,
              step, direction)

    def size(self) -> int:
        """The length of this process's vector."""
        return sum(_own_part(p).numel() for p in self.params)

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        """a . b over the whole (never gathered) vector."""
        if not self.distributed:
            return a.dot(b)
        return self._reduce(lambda lo, hi: a[lo:hi].dot(b[lo:hi]), max_=False)

    def abs_sum(self, a: Tensor) -> Tensor:
        """||a||_1 over the whole vector."""
        if not self.distributed:
            return a.abs().sum()
        return self._reduce(lambda lo, hi: a[lo:hi].abs().sum(), max_=False)

    def abs_max(self, a: Tensor) -> Tensor:
        """max_j |a_j| over the whole vector (0 for an empty one)."""
        if not self.distributed:
            return a.abs().max()
        return self._reduce(lambda lo, hi: a[lo:hi].abs().max() if hi > lo
                            else a.new_zeros(()), max_=True)

    def _reduce(self, part: Callable[[int, int], Tensor], max_: bool) -> Tensor:
        import torch.distributed as dist

        op = dist.ReduceOp.MAX if max_ else dist.ReduceOp.SUM
        total = None
        for key, ranges in self.spans:
            value = None
            for lo, hi in ranges:
                piece = part(lo, hi)
                value = piece if value is None else (
                    torch.maximum(value, piece) if max_ else value + piece)
            value = value.clone()  # all_reduce writes in place
            for group in self.groups[key]:
                dist.all_reduce(value, op=op, group=group)
            total = value if total is None else (
                torch.maximum(total, value) if max_ else total + value)
        return total


def _is_stationary(grad: Tensor, tolerance_grad: float, space: _Space) -> Tensor:
    """First-order optimality: every gradient entry within ``tolerance_grad`` of zero."""
    return space.abs_max(grad) <= tolerance_grad


class _Objective:
    """The closure seen as f(theta) and its flat gradient, negated for ``maximize``."""

    def __init__(self, closure: Callable[[], Any], params: list[Tensor], maximize: bool) -> None:
        self.closure = closure
        self.params = params
        self.maximize = maximize
        self.space = _Space(params)

    def __call__(self) -> tuple[Any, float, Tensor]:
        """Evaluate at the current parameters: (what the closure returned, f, grad f)."""
        with torch.enable_grad():
            returned = self.closure()
        value = float(returned)
        if self.maximize:
            value = -value
        return returned, value, self.space.flat_grad(self.maximize)

    def along(self, origin: list[Tensor], direction: Tensor) -> Callable:
        """phi(t) = f(origin + t direction) and its gradient; leaves the parameters at origin."""

        def phi(step: float | Tensor) -> tuple[float, Tensor]:
            self.space.move(step, direction)
            _, value, grad = self()
            for p, x in zip(self.params, origin):
                p.copy_(x)
            return value, grad

        return phi


# -- the quasi-Newton direction ----------------------------------------------------------------
def _remember(memory: tuple, y: Tensor, s: Tensor, history_size: int, space: _Space) -> tuple:
    """Add the curvature pair (s, y) to ``memory = (ys, ss, rhos, gamma)`` unless y's is too
    small (the pair would break positive definiteness); keep the newest ``history_size``.

    ``gamma = s'y / y'y`` scales the initial inverse Hessian :math:`H^0 = \\gamma I`.
    """
    ys, ss, rhos, gamma = memory
    curvature = space.dot(y, s)
    if not curvature > _CURVATURE_MIN:
        return memory
    drop = max(0, len(ys) + 1 - history_size)
    return (ys[drop:] + [y], ss[drop:] + [s], rhos[drop:] + [1.0 / curvature],
            curvature / space.dot(y, y))


def _two_loop(grad: Tensor, memory: tuple, space: _Space) -> Tensor:
    """The direction -H grad by the two-loop recursion (Nocedal & Wright, Algorithm 7.4)."""
    ys, ss, rhos, gamma = memory
    alphas: list[Any] = [None] * len(ys)
    q = grad.neg()
    for i in reversed(range(len(ys))):  # newest pair first
        alphas[i] = space.dot(ss[i], q) * rhos[i]
        q.add_(ys[i], alpha=-alphas[i])
    r = torch.mul(q, gamma)
    for i in range(len(ys)):  # oldest pair first
        beta = space.dot(ys[i], r) * rhos[i]
        r.add_(ss[i], alpha=alphas[i] - beta)
    return r


def _first_step_size(grad: Tensor, lr: float | Tensor, space: _Space) -> float | Tensor:
    """The very first step has no curvature yet: at most lr, and lr / ||g||_1 when larger."""
    return min(1.0, 1.0 / space.abs_sum(grad)) * lr


# -- the strong-Wolfe line search --------------------------------------------------------------
@dataclass(frozen=True)
class _Trial:
    """One point of the line search phi(t) = f(theta + t d)."""

    step: Any  # a Python number or a 0-dim tensor
    value: float  # phi(t)
    grad: Tensor  # grad f(theta + t d)
    slope: Tensor  # phi'(t) = grad . d


def _cubic_minimizer(a: _Trial, b: _Trial, bounds: tuple | None = None) -> Any:
    """The minimizer of the cubic through phi and phi' at ``a`` and ``b`` (Nocedal & Wright,
    eq. 3.59), clamped to ``bounds`` (default: between the two steps); the middle of the
    bounds when the cubic has no minimizer."""
    if bounds is None:
        bounds = (a.step, b.step) if a.step <= b.step else (b.step, a.step)
    low, high = bounds
    d1 = a.slope + b.slope - 3 * (a.value - b.value) / (a.step - b.step)
    discriminant = d1**2 - a.slope * b.slope
    if not discriminant >= 0:
        return (low + high) / 2.0
    d2 = discriminant.sqrt()
    left, right = (a, b) if a.step <= b.step else (b, a)
    minimizer = right.step - (right.step - left.step) * (
        (right.slope + d2 - d1) / (right.slope - left.slope + 2 * d2))
    return min(max(minimizer, low), high)


def _sufficient_decrease(start: _Trial, trial: _Trial) -> bool:
    """Armijo: phi(t) <= phi(0) + c1 t phi'(0)."""
    return not trial.value > (start.value + _C1 * trial.step * start.slope)


def _flat_enough(start: _Trial, trial: _Trial) -> bool:
    """Strong curvature condition: |phi'(t)| <= c2 |phi'(0)| (phi'(0) < 0)."""
    return abs(trial.slope) <= -_C2 * start.slope


def _bracket(phi: Callable, start: _Trial, step: Any, direction: Tensor,
             budget: int, space: _Space) -> tuple[list[_Trial], bool, int]:
    """Phase one (Nocedal & Wright, Algorithm 3.5): lengthen the step until it is acceptable
    (returns ``[trial], True``) or two trials bracket an acceptable step (``[a, b], False``).

    Returns the trials, whether the step is accepted, and the iterations used (evaluations
    minus one). Past ``budget`` iterations the bracket is [0, last trial].
    """
    value, grad = phi(step)
    trial = _Trial(step, value, grad, space.dot(grad, direction))
    previous = start
    used = 0
    while used < budget:
        if not _sufficient_decrease(start, trial) or (used > 1 and trial.value >= previous.value):
            return [previous, trial], False, used
        if _flat_enough(start, trial):
            return [trial], True, used
        if trial.slope >= 0:  # walked past a minimum
            return [previous, trial], False, used
        # extrapolate: a cubic step, at least 1% beyond the last one and at most 10 times it
        shortest = trial.step + 0.01 * (trial.step - previous.step)
        longest = trial.step * 10
        step = _cubic_minimizer(previous, trial, bounds=(shortest, longest))
        previous = trial
        value, grad = phi(step)
        trial = _Trial(step, value, grad, space.dot(grad, direction))
        used += 1
    return [start, trial], False, used


def _keep_off_ends(step: Any, ends: list[_Trial], stalled: bool) -> tuple[Any, bool]:
    """Safeguard a zoom trial: within 10% of the bracket's ends counts as slow progress; twice
    in a row (or outside the bracket) it moves to 10% inside the nearer end.

    Returns the step and whether this trial made slow progress.
    """
    right = max(ends[0].step, ends[1].step)
    left = min(ends[0].step, ends[1].step)
    margin = 0.1 * (right - left)
    if not min(right - step, step - left) < margin:
        return step, False
    if not (stalled or step >= right or step <= left):
        return step, True
    return (right - margin if abs(step - right) < abs(step - left) else left + margin), False


def _zoom(phi: Callable, start: _Trial, ends: list[_Trial], direction: Tensor,
          used: int, budget: int, space: _Space) -> tuple[_Trial, int]:
    """Phase two (Nocedal & Wright, Algorithm 3.6): shrink the bracket ``ends`` around an
    acceptable step by safeguarded cubic interpolation. Returns the best trial and the
    iterations used in all."""
    reach = space.abs_max(direction)
    low = 0 if ends[0].value <= ends[-1].value else 1
    stalled = False
    while used < budget:
        if abs(ends[1].step - ends[0].step) * reach < _BRACKET_TOL:
            break
        step = _cubic_minimizer(ends[0], ends[1])
        step, stalled = _keep_off_ends(step, ends, stalled)
        value, grad = phi(step)
        trial = _Trial(step, value, grad, space.dot(grad, direction))
        used += 1
        high = 1 - low
        if not _sufficient_decrease(start, trial) or trial.value >= ends[low].value:
            ends[high] = trial  # the new point is the high end
            low = 0 if ends[0].value <= ends[1].value else 1
            continue
        accepted = _flat_enough(start, trial)
        if not accepted and trial.slope * (ends[high].step - ends[low].step) >= 0:
            ends[high] = ends[low]  # keep the minimum between the ends
        ends[low] = trial
        if accepted:
            break
    return ends[low], used


def _strong_wolfe(phi: Callable, step: Any, direction: Tensor, value: float, grad: Tensor,
                  slope: Tensor, budget: int, space: _Space) -> tuple[float, Tensor, Any, int]:
    """A step satisfying the strong Wolfe conditions along ``direction`` from phi(0) = value,
    starting from ``step``, with at most ``budget`` + 1 evaluations of phi.

    Returns phi and the gradient at the chosen step, the step, and the evaluations spent.
    """
    start = _Trial(0, value, grad.clone(memory_format=torch.contiguous_format), slope)
    ends, accepted, used = _bracket(phi, start, step, direction, budget, space)
    if accepted:
        best = ends[0]
    else:
        best, used = _zoom(phi, start, ends, direction, used, budget, space)
    return best.value, best.grad, best.step, used + 1


# -- the optimizer -----------------------------------------------------------------------------
_RULE = r"""
    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, m \text{ (history\_size)}, \theta_0,
            f(\theta) \ (-f \text{ if maximize}), g_k = \nabla f(\theta_k)\\
       &\textbf{memory}: s_i = \theta_{i+1} - \theta_i,\ y_i = g_{i+1} - g_i,\
            \rho_i = 1 / (y_i^\top s_i), \text{ the newest } m \text{ pairs with }
            y_i^\top s_i > 10^{-10}\\
       &\textbf{two-loop recursion}: d_k = -H_k g_k\\
       &\quad q \leftarrow -g_k\\
       &\quad \textbf{for}\ i = k-1, \ldots, k-m:\quad
            \alpha_i \leftarrow \rho_i\, s_i^\top q,\quad q \leftarrow q - \alpha_i y_i\\
       &\quad r \leftarrow \gamma_k q, \quad
            \gamma_k = \frac{s_j^\top y_j}{y_j^\top y_j}\ (j \text{ the newest pair})\\
       &\quad \textbf{for}\ i = k-m, \ldots, k-1:\quad
            \beta \leftarrow \rho_i\, y_i^\top r,\quad r \leftarrow r + (\alpha_i - \beta) s_i\\
       &\quad d_k \leftarrow r \qquad (d_0 = -g_0)\\
       &\textbf{update}: \theta_{k+1} \leftarrow \theta_k + t_k d_k, \quad
            t_k = \begin{cases}
            \gamma \min(1, 1 / \lVert g_0 \rVert_1) & k = 0\\
            \gamma & k > 0
            \end{cases}\\
       &\quad \text{or, with a line search, the } t_k \text{ found from that start with }
            f(\theta_k + t_k d_k) \le f(\theta_k) + c_1 t_k g_k^\top d_k,\
            |\nabla f(\theta_k + t_k d_k)^\top d_k| \le c_2 |g_k^\top d_k|
       \end{aligned}
"""


def _as_scalar(value: float | Tensor) -> float | Tensor:
    """A 1-element tensor as a 0-dim tensor (what torch does with a tensor ``lr``)."""
    if isinstance(value, Tensor) and value.dim() != 0:
        return value.squeeze()
    return value


class LBFGS(TorchOptimizer):
    __doc__ = rf"""Limited-memory BFGS, with an optional strong-Wolfe line search.

    Drop-in for ``torch.optim.LBFGS``: same arguments and defaults, the same state keys
    (the two load each other's state_dicts), and the same floating-point operations in the
    same order, so the parameters agree bit for bit. L-BFGS approximates the inverse Hessian
    from the last ``history_size`` pairs of parameter and gradient differences and applies it
    to the gradient by the two-loop recursion, without ever forming a matrix:
{_RULE}
    Each :meth:`step` runs up to ``max_iter`` such iterations and needs a closure that zeroes
    the gradients, computes the loss, calls ``backward()`` and returns the loss; it returns
    the loss the closure gave on its first call. The iterations of a step stop early when
    every gradient entry is within ``tolerance_grad`` of zero, when :math:`d_k` is no longer
    a descent direction (:math:`g_k^\top d_k > -` ``tolerance_change``), when
    :math:`\max_j |t_k d_{{k,j}}|` or the change of the loss falls below
    ``tolerance_change``, or after ``max_eval`` evaluations of the closure. The memory
    carries over from one step to the next.

    .. note::
       What differs from the textbook algorithm (Nocedal & Wright, Algorithms 7.4, 7.5, 3.5
       and 3.6): all parameters form one flat vector, so the memory holds about
       :math:`2m + 3` vectors of the parameters' total size; a :meth:`step` is a fixed budget of
       ``max_iter`` iterations (``max_eval`` closure calls), not a run to convergence, and
       without a line search the last of them does not evaluate the closure again at the new
       point. A curvature pair with :math:`y^\top s \le 10^{{-10}}` is skipped (the memory
       and :math:`\gamma_k` stay as they were) rather than damped. The line search uses
       :math:`c_1 = 10^{{-4}}`, :math:`c_2 = 0.9`; its extrapolation is a cubic step
       clamped to :math:`[t + 0.01 (t - t_{{prev}}), 10 t]`; its zoom moves a trial that falls
       within 10% of the bracket's length of an end to 10% inside the bracket when it lies
       outside it or the previous trial came that close too, and stops once the bracket is
       shorter than :math:`10^{{-9}}` along the largest coordinate of :math:`d_k` (whatever
       ``tolerance_change`` is); after the evaluation budget it takes the lower end of its
       bracket.

    Args:
        params (iterable): the parameters to optimize, real tensors on one device, in a single
            group (L-BFGS has no per-parameter options).
        lr (float or Tensor, optional): learning rate :math:`\gamma`: the step length, or the
            line search's first trial step (default: 1).
        max_iter (int, optional): the most L-BFGS iterations per :meth:`step`, at least 1
            (default: 20).
        max_eval (int, optional): the most closure evaluations per :meth:`step`, at least 1
            (default: ``max_iter * 5 // 4``).
        tolerance_grad (float, optional): stop once every gradient entry has magnitude at most
            this (default: 1e-7).
        tolerance_change (float, optional): stop once the directional derivative, the largest
            coordinate of the step or the change of the loss falls below this (default: 1e-9).
        history_size (int, optional): :math:`m`, the number of curvature pairs kept, at least
            1 (default: 100).
        line_search_fn (str, optional): ``"strong_wolfe"`` for the line search, or None for
            the fixed step (default: None).
        maximize (bool, optional): maximize the objective: L-BFGS minimizes :math:`-f` (the
            loss and gradients the closure produces are negated inside; :meth:`step` still
            returns what the closure returned) (default: False).

    Reference: Liu & Nocedal, "On the limited memory BFGS method for large scale
    optimization", Mathematical Programming 45, 1989, https://doi.org/10.1007/BF01589116.

    Example:
        >>> import torch, optimlab
        >>> w = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
        >>> opt = optimlab.LBFGS([w], line_search_fn="strong_wolfe")
        >>> def closure():  # Rosenbrock, minimum at (1, 1)
        ...     opt.zero_grad()
        ...     loss = (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2
        ...     loss.backward()
        ...     return loss
        >>> for _ in range(5):
        ...     loss = opt.step(closure)
        >>> bool(torch.allclose(w, torch.ones(2, dtype=torch.float64)))
        True
    """

    #: one torch-style optimizer per population member; a step calls the closure many times.
    #: Sparse gradients are made dense into the flat vector, as torch.optim.LBFGS makes them
    capabilities = Capabilities(needs_closure=True, multi_tensor=False, batching="member",
                                single_group=True, sparse=True)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float | Tensor = 1e-7,
        tolerance_change: float | Tensor = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_int("max_iter", max_iter, 1)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        check_int("max_eval", max_eval, 1)
        check_range("tolerance_grad", tolerance_grad, None)
        check_range("tolerance_change", tolerance_change, None)
        check_int("history_size", history_size, 1)
        check_bool("maximize", maximize)
        if line_search_fn not in (None, "strong_wolfe"):
            # torch raises this at the first step; here it is a bad argument, said at once
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got "
                             f"{line_search_fn!r}")
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn,
                        maximize=bool(maximize))  # np.bool_ as Python's
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add the (single) parameter group; a second one raises ``ValueError``."""
        if self.param_groups:
            raise ValueError("LBFGS takes a single parameter group (it has no per-parameter "
                             "options), as torch.optim.LBFGS")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations.

        Args:
            closure (Callable): zeroes the gradients, re-evaluates the model, calls
                ``backward()`` and returns the loss.

        Returns:
            what the closure returned on its first call (the loss before the step).

        Where anything raises during the step (the closure on a later evaluation, a
        ``KeyboardInterrupt``), the parameters and the optimizer's state are put back as the
        step found them and the error goes on: a retried step is the one that would have
        been taken. This costs one copy of the parameters per step (taken after the first
        evaluation, where the step iterates at all), beside the ``history_size`` pairs of
        such vectors the memory holds; the gradients are left as the closure left them.
        """
        if closure is None:
            raise TypeError("LBFGS.step() needs a closure that zeroes the gradients, computes "
                            "the loss, calls backward() and returns the loss")
        group = self.param_groups[0]
        if group["line_search_fn"] not in (None, "strong_wolfe"):  # changed in the group
            raise RuntimeError(f"line_search_fn must be None or 'strong_wolfe', got "
                               f"{group['line_search_fn']!r}")
        params = group["params"]
        maximize = bool(group.get("maximize", self.defaults.get("maximize", False)))
        objective = _Objective(closure, params, maximize)
        first = params[0]
        # the state as the step found it (no entry of it is changed in place: the step
        # replaces them), put back if the step raises
        kept = dict(self.state[first]) if first in self.state else None
        state = self.state[first]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        origin = None
        try:
            returned, value, grad = objective()
            state["func_evals"] += 1
            if _is_stationary(grad, group["tolerance_grad"], objective.space):
                return returned
            # the point the step starts from (the first evaluation moved nothing)
            origin = [p.detach().clone() for p in params]
            self._iterate(group, state, objective, value, grad, origin)
        except BaseException:
            self._put_back(first, kept, params, origin)
            raise
        return returned

    def _put_back(self, first: Tensor, kept: dict | None, params: list[Tensor],
                  origin: list[Tensor] | None) -> None:
        """After a step that raised: the parameters at ``origin`` (where the step started)
        and the state as it was (``kept``; None: the step found none)."""
        if origin is not None:
            for p, x in zip(params, origin):
                p.copy_(x)
        if kept is None:
            self.state.pop(first, None)
        else:
            state = self.state[first]
            state.clear()
            state.update(kept)

    def _iterate(self, group: dict, state: dict, objective: _Objective, value: float,
                 grad: Tensor, start: list[Tensor]) -> None:
        """The inner iterations of one step, from f = ``value`` and gradient ``grad`` at the
        parameters ``start`` (a copy the line search reads as its first origin, never
        writes)."""
        lr = _as_scalar(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        params, space = objective.params, objective.space
        evals = 1
        direction, step = state.get("d"), state.get("t")
        memory = (state.get("old_dirs"), state.get("old_stps"), state.get("ro"),
                  state.get("H_diag"))
        prev_grad, prev_value = state.get("prev_flat_grad"), state.get("prev_loss")

        for iteration in range(1, max_iter + 1):
            state["n_iter"] += 1
            first_ever = state["n_iter"] == 1
            if first_ever:  # steepest descent, empty memory, H0 = I
                memory = ([], [], [], 1)
                direction = grad.neg()
            else:
                memory = _remember(memory, grad.sub(prev_grad), direction.mul(step),
                                   group["history_size"], space)
                direction = _two_loop(grad, memory, space)
            prev_grad = grad.clone(memory_format=torch.contiguous_format)
            prev_value = value

            step = _first_step_size(grad, lr, space) if first_ever else lr
            slope = space.dot(grad, direction)
            if slope > -tolerance_change:  # not a descent direction (any more)
                break

            if group["line_search_fn"] is not None:
                # the step's own copy of where it started serves the first search
                origin = start if iteration == 1 else [
                    p.clone(memory_format=torch.contiguous_format) for p in params]
                value, grad, step, spent = _strong_wolfe(
                    objective.along(origin, direction), step, direction, value, grad, slope,
                    budget=max_eval - evals, space=space)
                space.move(step, direction)
                stationary = _is_stationary(grad, tolerance_grad, space)
            else:
                space.move(step, direction)
                if iteration == max_iter:  # the next step evaluates the new point anyway
                    break
                _, value, grad = objective()
                spent = 1
                stationary = _is_stationary(grad, tolerance_grad, space)
            evals += spent
            state["func_evals"] += spent

            if iteration == max_iter or evals >= max_eval or stationary:
                break
            if space.abs_max(direction.mul(step)) <= tolerance_change:  # the step is tiny
                break
            if abs(value - prev_value) < tolerance_change:  # the loss stalls
                break

        ys, ss, rhos, gamma = memory
        state.update({"d": direction, "t": step, "old_dirs": ys, "old_stps": ss, "ro": rhos,
                      "H_diag": gamma, "prev_flat_grad": prev_grad, "prev_loss": prev_value})

    # -- state_dict ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Torch's state_dict (the memory is kept on the first parameter) plus an ``optimlab``
        entry naming the optimizer and the parameter shapes.

        The memory lists are copied, so later steps leave a saved state_dict as it was (no
        tensor of the state is ever changed in place).
        """
        sd = super().state_dict()
        sd["state"] = {key: {name: list(v) if isinstance(v, list) else v
                             for name, v in entry.items()}
                       for key, entry in sd["state"].items()}
        sd["optimlab"] = {
            "optimizer": saved_name(self),
            "param_shapes": [[saved_shape(p) for p in g["params"]] for g in self.param_groups],
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict of this class or of ``torch.optim.LBFGS``, refusing one saved by
        another optimizer or for another model."""
        check_state_dict(state_dict)
        tag = state_dict.get("optimlab")
        check_saved_name(self, tag)
        params = self.param_groups[0]["params"]
        check_saved_groups(self, state_dict, (tag or {}).get("param_shapes"))
        size = None  # this process's vector (its shards under FSDP2), read where a state is
        for entry in state_dict["state"].values():
            for key in ("d", "prev_flat_grad"):
                value = entry.get(key)
                if isinstance(value, Tensor) and size is None:
                    size = _Space(params).size()
                if isinstance(value, Tensor) and value.numel() != size:
                    raise ValueError(f"state '{key}' has {value.numel()} entries but the "
                                     f"parameters have {size}: was this state_dict saved for "
                                     "another model?")
        super().load_state_dict(state_dict)
