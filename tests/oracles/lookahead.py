"""NumPy oracle for Lookahead (Zhang et al., NeurIPS 2019, https://arxiv.org/abs/1907.08610).

Algorithm 1 of the paper with the inner optimizer's step from ``classic.py``:

    phi <- w_0                                   (slow weights)
    for t = 1, 2, ...:
        w <- inner_step(w, grad f(w))            (fast weights; inner state persists)
        if t mod k == 0:  phi <- phi + alpha (w - phi);  w <- phi

Independent of torch.
"""

from __future__ import annotations

import numpy as np

from tests.oracles.classic import Runner


def optimize(params, grad_fn, steps, inner=("SGD", {}), k=5, alpha=0.5):
    name, hp = inner
    ws = [np.array(w, dtype=np.float64, copy=True) for w in params]
    slow = [w.copy() for w in ws]
    runner = Runner(name, dict(hp))
    for t in range(1, steps + 1):
        ws = runner.step(ws, grad_fn([w.copy() for w in ws]))
        if t % k == 0:
            slow = [s + alpha * (w - s) for s, w in zip(slow, ws)]
            ws = [s.copy() for s in slow]
    return ws
