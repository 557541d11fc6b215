"""NumPy oracles for the classic optimizers: GD, momentum, NAG, Adagrad, RMSprop, Adam.

Plain transcriptions of the textbook rules, written in the form torch.optim uses (the
hyperparameter names match the optimlab classes). Independent of torch.

* SGD (Robbins & Monro 1951) with heavy-ball momentum (Polyak 1964) in torch's form
  (the buffer starts at the first gradient, the lr multiplies the buffer):

      g <- g + wd w
      b <- g (t = 1),  b <- mu b + (1 - dampening) g (t > 1)
      w <- w - lr (g + mu b)   if nesterov (Sutskever et al. 2013, torch's form)
      w <- w - lr b            otherwise

* Adagrad (Duchi, Hazan & Singer, JMLR 2011):

      g <- g + wd w;   clr = lr / (1 + (t - 1) lr_decay)
      s <- s + g^2 (s_0 = initial_accumulator_value);   w <- w - clr g / (sqrt(s) + eps)

* RMSprop (Hinton, Coursera lecture 6e, 2012; centered: Graves 2013):

      g <- g + wd w;   v <- alpha v + (1 - alpha) g^2
      centered: m <- alpha m + (1 - alpha) g,  d = sqrt(v - m^2) + eps;  else d = sqrt(v) + eps
      momentum > 0: b <- mu b + g / d,  w <- w - lr b;   else w <- w - lr g / d

* Adam (Kingma & Ba, ICLR 2015; AMSGrad: Reddi et al. 2018; decoupled decay: Loshchilov &
  Hutter 2019):

      decoupled: w <- w (1 - lr wd);  else g <- g + wd w
      m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2;   amsgrad: v <- max(v_max, v)
      w <- w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

  cautious (C-AdamW, Algorithm 1 of Liang et al., "Cautious Optimizers", 2024,
  https://arxiv.org/abs/2411.16085, with the scale d / (nnz + 1) of the authors' code):

      u = m / (1 - b1^t) / (sqrt(v) / sqrt(1 - b2^t) + eps);   phi = 1[u * g > 0]
      w <- w - lr * u * phi * d / (sum(phi) + 1)        (d: the array's size)

Each rule is a small class with ``init(w) -> state`` and ``step(w, g, state, t) -> new w``
(``state`` is updated in place, ``w`` is not), so the wrapper oracles (``sam.py``,
``lookahead.py``) reuse the single step. The module-level functions ``sgd``, ``gd``,
``momentum``, ``nag``, ``adagrad``, ``rmsprop`` and ``adam`` follow the oracle API
``f(params, grad_fn, steps, **hp) -> list[np.ndarray]`` (float64, inputs not mutated).
"""

from __future__ import annotations

import numpy as np


class SGDRule:
    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        self.lr, self.mu, self.tau, self.wd, self.nesterov = lr, momentum, dampening, weight_decay, nesterov

    def init(self, w):
        return {"b": None}

    def step(self, w, g, state, t):
        g = g + self.wd * w
        if self.mu != 0:
            if state["b"] is None:
                state["b"] = g.copy()
            else:
                state["b"] = self.mu * state["b"] + (1.0 - self.tau) * g
            g = g + self.mu * state["b"] if self.nesterov else state["b"]
        return w - self.lr * g


class AdagradRule:
    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        self.lr, self.lr_decay, self.wd = lr, lr_decay, weight_decay
        self.s0, self.eps = initial_accumulator_value, eps

    def init(self, w):
        return {"s": np.full_like(w, self.s0)}

    def step(self, w, g, state, t):
        g = g + self.wd * w
        clr = self.lr / (1.0 + (t - 1) * self.lr_decay)
        state["s"] = state["s"] + g * g
        return w - clr * g / (np.sqrt(state["s"]) + self.eps)


class RMSpropRule:
    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        self.lr, self.alpha, self.eps, self.wd = lr, alpha, eps, weight_decay
        self.mu, self.centered = momentum, centered

    def init(self, w):
        return {"v": np.zeros_like(w), "m": np.zeros_like(w), "b": np.zeros_like(w)}

    def step(self, w, g, state, t):
        a = self.alpha
        g = g + self.wd * w
        state["v"] = a * state["v"] + (1.0 - a) * g * g
        if self.centered:
            state["m"] = a * state["m"] + (1.0 - a) * g
            d = np.sqrt(state["v"] - state["m"] ** 2) + self.eps
        else:
            d = np.sqrt(state["v"]) + self.eps
        if self.mu > 0:
            state["b"] = self.mu * state["b"] + g / d
            return w - self.lr * state["b"]
        return w - self.lr * g / d


class AdamRule:
    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 decoupled_weight_decay=False, cautious=False):
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.amsgrad, self.decoupled, self.cautious = amsgrad, decoupled_weight_decay, cautious

    def init(self, w):
        return {"m": np.zeros_like(w), "v": np.zeros_like(w), "v_max": np.zeros_like(w)}

    def step(self, w, g, state, t):
        b1, b2 = self.b1, self.b2
        if self.decoupled:
            w = w * (1.0 - self.lr * self.wd)
        else:
            g = g + self.wd * w
        state["m"] = b1 * state["m"] + (1.0 - b1) * g
        state["v"] = b2 * state["v"] + (1.0 - b2) * g * g
        v = state["v"]
        if self.amsgrad:
            v = state["v_max"] = np.maximum(state["v_max"], v)
        denom = np.sqrt(v) / np.sqrt(1.0 - b2**t) + self.eps
        u = state["m"] / (1.0 - b1**t) / denom
        if self.cautious:
            phi = (u * g > 0).astype(u.dtype)
            u = u * phi * (u.size / (phi.sum() + 1.0))
        return w - self.lr * u


class AdamWRule(AdamRule):
    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)


#: optimlab class name -> oracle rule class (used by the wrapper oracles).
RULES = {
    "SGD": SGDRule,
    "Adagrad": AdagradRule,
    "RMSprop": RMSpropRule,
    "Adam": AdamRule,
    "AdamW": AdamWRule,
}


class Runner:
    """A rule applied to a list of arrays: ``init`` once, then ``step(ws, gs)``."""

    def __init__(self, name, hp):
        self.rule = RULES[name](**hp)
        self.states = None
        self.t = 0

    def step(self, ws, gs):
        if self.states is None:
            self.states = [self.rule.init(w) for w in ws]
        self.t += 1
        return [self.rule.step(w, g, s, self.t) for w, g, s in zip(ws, gs, self.states)]


def run(name, params, grad_fn, steps, **hp):
    """``steps`` steps of the named rule from ``params`` (float64 copies)."""
    ws = [np.array(w, dtype=np.float64, copy=True) for w in params]
    runner = Runner(name, hp)
    for _ in range(steps):
        ws = runner.step(ws, grad_fn([w.copy() for w in ws]))
    return ws


def sgd(params, grad_fn, steps, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
        nesterov=False):
    return run("SGD", params, grad_fn, steps, lr=lr, momentum=momentum, dampening=dampening,
               weight_decay=weight_decay, nesterov=nesterov)


def gd(params, grad_fn, steps, lr=1e-3):
    """Plain gradient descent."""
    return sgd(params, grad_fn, steps, lr=lr)


def momentum(params, grad_fn, steps, lr=1e-3, momentum=0.9):
    """Heavy-ball momentum, torch form."""
    return sgd(params, grad_fn, steps, lr=lr, momentum=momentum)


def nag(params, grad_fn, steps, lr=1e-3, momentum=0.9):
    """Nesterov momentum, torch form."""
    return sgd(params, grad_fn, steps, lr=lr, momentum=momentum, nesterov=True)


def adagrad(params, grad_fn, steps, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
            initial_accumulator_value=0.0, eps=1e-10):
    return run("Adagrad", params, grad_fn, steps, lr=lr, lr_decay=lr_decay,
               weight_decay=weight_decay, initial_accumulator_value=initial_accumulator_value,
               eps=eps)


def rmsprop(params, grad_fn, steps, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
            momentum=0.0, centered=False):
    return run("RMSprop", params, grad_fn, steps, lr=lr, alpha=alpha, eps=eps,
               weight_decay=weight_decay, momentum=momentum, centered=centered)


def adam(params, grad_fn, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
         amsgrad=False, decoupled_weight_decay=False, cautious=False):
    return run("Adam", params, grad_fn, steps, lr=lr, betas=betas, eps=eps,
               weight_decay=weight_decay, amsgrad=amsgrad,
               decoupled_weight_decay=decoupled_weight_decay, cautious=cautious)


def adamw(params, grad_fn, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
          amsgrad=False, cautious=False):
    return adam(params, grad_fn, steps, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                amsgrad=amsgrad, decoupled_weight_decay=True, cautious=cautious)


#: optimlab class name -> oracle function.
ORACLES = {"SGD": sgd, "Adagrad": adagrad, "RMSprop": rmsprop, "Adam": adam, "AdamW": adamw}
