"""NumPy oracle for Lion.

A plain transcription of Algorithm 2 ("Lion Optimizer (ours)") of Chen et al., "Symbolic
Discovery of Optimization Algorithms", NeurIPS 2023, https://arxiv.org/abs/2302.06675:

    g_t     = grad f(theta_{t-1})
    c_t     = b1 m_{t-1} + (1 - b1) g_t
    theta_t = theta_{t-1} - eta_t (sign(c_t) + lambda theta_{t-1})
    m_t     = b2 m_{t-1} + (1 - b2) g_t

with m_0 = 0 and sign(0) = 0 (NumPy's np.sign). Independent of torch.
"""

from __future__ import annotations

import numpy as np


def optimize(params, grad_fn, steps, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
    b1, b2 = betas
    lam = weight_decay
    theta = [np.array(w, dtype=np.float64, copy=True) for w in params]
    m = [np.zeros_like(w) for w in theta]
    for _ in range(steps):
        g = grad_fn([w.copy() for w in theta])
        for i in range(len(theta)):
            c = b1 * m[i] + (1.0 - b1) * g[i]
            theta[i] = theta[i] - lr * (np.sign(c) + lam * theta[i])
            m[i] = b2 * m[i] + (1.0 - b2) * g[i]
    return theta
