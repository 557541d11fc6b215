"""NumPy oracle for AdaBelief.

A plain transcription of Algorithm 2 ("AdaBelief Optimizer") of Zhuang et al., "AdaBelief
Optimizer: Adapting Stepsizes by the Belief in Observed Gradients", NeurIPS 2020,
https://arxiv.org/abs/2010.07468, with decoupled (AdamW-style) weight decay applied to
theta before the step, as the authors' package does with ``weight_decouple=True``:

    g_t     = grad f_t(theta_{t-1})
    m_t     = b1 m_{t-1} + (1 - b1) g_t
    s_t     = b2 s_{t-1} + (1 - b2) (g_t - m_t)^2 + eps
    m_hat   = m_t / (1 - b1^t),   s_hat = s_t / (1 - b2^t)
    theta_t = theta_{t-1} (1 - alpha lambda) - alpha m_hat / (sqrt(s_hat) + eps)

with m_0 = s_0 = 0. (The projection Pi onto the feasible set is the identity here.)
Independent of torch.
"""

from __future__ import annotations

import numpy as np


def optimize(params, grad_fn, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-16,
             weight_decay=0.0):
    b1, b2 = betas
    alpha, lam = lr, weight_decay
    theta = [np.array(w, dtype=np.float64, copy=True) for w in params]
    m = [np.zeros_like(w) for w in theta]
    s = [np.zeros_like(w) for w in theta]
    for t in range(1, steps + 1):
        g = grad_fn([w.copy() for w in theta])
        for i in range(len(theta)):
            m[i] = b1 * m[i] + (1.0 - b1) * g[i]
            s[i] = b2 * s[i] + (1.0 - b2) * (g[i] - m[i]) ** 2 + eps
            m_hat = m[i] / (1.0 - b1**t)
            s_hat = s[i] / (1.0 - b2**t)
            theta[i] = theta[i] * (1.0 - alpha * lam) - alpha * m_hat / (np.sqrt(s_hat) + eps)
    return theta
