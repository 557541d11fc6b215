"""NumPy oracle for Lion.

A plain transcription of Algorithm 2 ("Lion Optimizer (ours)") of Chen et al., "Symbolic
Discovery of Optimization Algorithms", NeurIPS 2023, https://arxiv.org/abs/2302.06675:

    g_t     = grad f(theta_{t-1})
    c_t     = b1 m_{t-1} + (1 - b1) g_t
    theta_t = theta_{t-1} - eta_t (sign(c_t) + lambda theta_{t-1})
    m_t     = b2 m_{t-1} + (1 - b2) g_t

with m_0 = 0 and sign(0) = 0 (NumPy's np.sign). Independent of torch.

cautious (C-Lion, Liang et al., "Cautious Optimizers", 2024, https://arxiv.org/abs/2411.16085,
with the scale d / (nnz + 1) of the authors' code; the decay is not masked):

    u = sign(c_t);   phi = 1[u * g_t > 0];   u <- u * phi * d / (sum(phi) + 1)
    theta_t = theta_{t-1} - eta_t (u + lambda theta_{t-1})
"""

from __future__ import annotations

import numpy as np


def optimize(params, grad_fn, steps, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0,
             cautious=False):
    b1, b2 = betas
    lam = weight_decay
    theta = [np.array(w, dtype=np.float64, copy=True) for w in params]
    m = [np.zeros_like(w) for w in theta]
    for _ in range(steps):
        g = grad_fn([w.copy() for w in theta])
        for i in range(len(theta)):
            c = b1 * m[i] + (1.0 - b1) * g[i]
            u = np.sign(c)
            if cautious:
                phi = (u * g[i] > 0).astype(u.dtype)
                u = u * phi * (u.size / (phi.sum() + 1.0))
            theta[i] = theta[i] - lr * (u + lam * theta[i])
            m[i] = b2 * m[i] + (1.0 - b2) * g[i]
    return theta
