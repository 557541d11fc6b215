"""NumPy oracle for SAM (Foret et al., ICLR 2021, https://arxiv.org/abs/2010.01412) and
ASAM (Kwon et al., ICML 2021, https://arxiv.org/abs/2102.11600).

Algorithm 1 of the SAM paper with the base optimizer's step from ``classic.py``:

    g   = grad f(w)
    T   = |w| (elementwise; adaptive) or 1
    e   = rho T^2 g / (||T g||_2 + 1e-12)      (the norm runs over all arrays together)
    w  <- base_step(w, grad f(w + e))

Independent of torch.
"""

from __future__ import annotations

import numpy as np

from tests.oracles.classic import Runner


def optimize(params, grad_fn, steps, base_optimizer="SGD", rho=0.05, adaptive=False, **base_hp):
    ws = [np.array(w, dtype=np.float64, copy=True) for w in params]
    base = Runner(base_optimizer, base_hp)
    for _ in range(steps):
        gs = grad_fn([w.copy() for w in ws])
        scales = [np.abs(w) if adaptive else np.ones_like(w) for w in ws]
        norm = np.sqrt(sum(np.sum((t * g) ** 2) for t, g in zip(scales, gs)))
        e = [rho * t * t * g / (norm + 1e-12) for t, g in zip(scales, gs)]
        gs_adv = grad_fn([w + e_i for w, e_i in zip(ws, e)])
        ws = base.step(ws, gs_adv)
    return ws
