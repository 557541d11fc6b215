"""NumPy oracle for LAMB.

A plain transcription of Algorithm 2 ("LAMB") of You et al., "Large Batch Optimization for
Deep Learning: Training BERT in 76 minutes", ICLR 2020, https://arxiv.org/abs/1904.00962,
with the scaling function phi the identity. Each array in ``params`` is one layer ``i``:

    m_t = b1 m_{t-1} + (1 - b1) g_t
    v_t = b2 v_{t-1} + (1 - b2) g_t^2
    m_t <- m_t / (1 - b1^t),   v_t <- v_t / (1 - b2^t)
    r_t = m_t / (sqrt(v_t) + eps)
    x_{t+1}^(i) = x_t^(i) - eta * phi(||x_t^(i)||) / ||r_t^(i) + lambda x_t^(i)||
                              * (r_t^(i) + lambda x_t^(i))

where the ratio is taken as 1 when either norm is zero. Independent of torch.
"""

from __future__ import annotations

import numpy as np


def optimize(params, grad_fn, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-6,
             weight_decay=0.0):
    b1, b2 = betas
    lam = weight_decay
    x = [np.array(w, dtype=np.float64, copy=True) for w in params]
    m = [np.zeros_like(w) for w in x]
    v = [np.zeros_like(w) for w in x]
    for t in range(1, steps + 1):
        g = grad_fn([w.copy() for w in x])
        new_x = []
        for i in range(len(x)):
            m[i] = b1 * m[i] + (1.0 - b1) * g[i]
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] ** 2
            m_hat = m[i] / (1.0 - b1**t)
            v_hat = v[i] / (1.0 - b2**t)
            r = m_hat / (np.sqrt(v_hat) + eps)
            direction = r + lam * x[i]
            x_norm = np.sqrt(np.sum(x[i] ** 2))
            d_norm = np.sqrt(np.sum(direction**2))
            ratio = x_norm / d_norm if (x_norm > 0 and d_norm > 0) else 1.0
            new_x.append(x[i] - lr * ratio * direction)
        x = new_x
    return x
