"""What an optimizer is thinking, step by step, on a 2-D landscape: at every step the point,
the loss, the gradient it was given, each entry of its state (momentum, first and second
moments, accumulators...) and the step it actually took.

:func:`inspect_steps` runs the optimizer through its ordinary ``torch.optim`` front end (the
one engine, as every consumer) on one 2-vector parameter, and reads ``optimizer.state``
after each step: an entry with one number per coordinate is recorded as a vector, a single
number (a step count, Prodigy's ``d``) as a scalar; other entries are left out. What an
entry *is* is read from its values, not from its name: a vector entry that is never
negative over the run is reported as a ``"scale"`` (second moments, accumulators: their
square root is the per-coordinate scale a step is divided by), any other vector as a
``"direction"`` (momentum, first moments).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..optim.base import check_int
from ..optim.population import has_eval_mode
from ..optim.registry import create, resolve
from .base import Landscape
from .race import _check_hparams, _landscape, _start

__all__ = ["inspect_steps"]


def inspect_steps(landscape: Landscape | str, name: str,
                  hparams: Mapping[str, Any] | None = None, start=None, steps: int = 100) -> dict:
    """Run ``name`` with ``hparams`` from ``start`` (default: the landscape's) for ``steps``
    steps and record what it sees and does (see the module's text).

    Gradient noise is the landscape's own (:meth:`Landscape.with_noise`), the same sequence
    a race uses. Returns a dict of NumPy arrays: ``points`` ``[steps + 1, 2]``, ``loss``
    ``[steps + 1]``, ``grad`` and ``update`` ``[steps, 2]`` (the gradient at each step's
    point, and the point's change), ``state``: entry name -> ``{"kind": "direction" |
    "scale" | "scalar", "values": [steps, 2] or [steps]}`` (after each step), and
    ``diverged`` (a non-finite point or loss; recording stops there). The last point is
    where the run ends as a race ends it: for a schedule-free optimizer its average
    :math:`x` (its ``eval()``), so there the last ``update`` is the move of the gradient
    point, not ``points[-1] - points[-2]``.

    ``landscape`` is a :class:`Landscape` or a catalog name (``"rosenbrock"``), as in
    :func:`~optimlab.landscapes.race.race`.

    Raises:
        ValueError: an unknown landscape or optimizer, hyperparameters it refuses,
            ``steps`` < 1, or a start that is not ``landscape.dim`` finite numbers inside
            ``landscape.domain``.
    """
    landscape = _landscape(landscape)
    check_int("steps", steps, 1)
    steps = int(steps)
    entry = resolve(name)
    dim = landscape.dim
    x0 = _start(landscape, start)
    _check_hparams(name, entry.name, dict(hparams or {}), where="inspect_steps")
    shape = (1, dim) if entry.capabilities.needs_matrix else (dim,)
    p = x0.clone().reshape(shape).requires_grad_()
    opt = create(entry.name, [p], **dict(hparams or {}))
    noise = landscape.noise_sequence(steps)
    needs_closure = entry.info.needs_closure
    points, losses, grads, updates = [x0.clone()], [], [], []
    vectors: dict[str, list] = {}
    scalars: dict[str, list] = {}
    diverged = False
    for t in range(steps):
        def closure(t=t):
            opt.zero_grad()
            value = landscape.values(p.reshape(dim)) + p.reshape(dim) @ noise[t]
            value.backward()
            return value

        before = p.detach().reshape(dim).clone()
        with torch.enable_grad():
            loss = closure()
        grads.append(p.grad.detach().reshape(dim).clone())
        losses.append(float(landscape.f(before)))
        if needs_closure:
            opt.step(closure)
        else:
            opt.step()
        after = p.detach().reshape(dim).clone()
        updates.append(after - before)
        points.append(after)
        for key, value in opt.state[p].items():
            if not torch.is_tensor(value):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    scalars.setdefault(key, []).append(float(value))
                continue
            if value.numel() == dim:
                vectors.setdefault(key, []).append(value.detach().reshape(dim).double().clone())
            elif value.numel() == 1:
                scalars.setdefault(key, []).append(float(value))
        if not (torch.isfinite(after).all() and math.isfinite(float(loss.detach()))):
            diverged = True
            break
    if not diverged and has_eval_mode(opt):
        # a schedule-free run ends at its average x, where its users evaluate it (and where
        # a race ends), not at its last gradient point
        opt.eval()
        points[-1] = p.detach().reshape(dim).clone()
    losses.append(float(landscape.f(points[-1])))
    state = {}
    done = len(updates)
    for key, values in vectors.items():
        if len(values) != done:  # appeared late (lazy state): pad the first steps with NaN
            values = [torch.full((dim,), math.nan, dtype=torch.float64)] * (done - len(values)) \
                + values
        array = torch.stack(values).numpy()
        kind = "scale" if np.nanmin(array) >= 0 else "direction"
        state[key] = {"kind": kind, "values": array}
    for key, values in scalars.items():
        if len(values) == done:
            state[key] = {"kind": "scalar", "values": np.asarray(values)}
    return {"points": torch.stack(points).numpy(), "loss": np.asarray(losses),
            "grad": torch.stack(grads).numpy(), "update": torch.stack(updates).numpy(),
            "state": state, "diverged": diverged}
