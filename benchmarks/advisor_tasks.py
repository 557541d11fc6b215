"""Three synthetic training-lab tasks whose best optimizer family is known by construction.

They are the advisor's answer key (``src/optimlab/bench/advisor.py``,
``benchmarks/advisor_vs_grid.py``): each is a small linear model on data generated from a
fixed seed, built so that one family of the advisor's default candidates ("momentum",
"adam", "adamw", "lion", "rmsprop", "adagrad") wins for a reason its docstring spells out.

=================  ===============================================  =====================
task               construction                                     best by construction
=================  ===============================================  =====================
scaled_features    least squares, feature scales over 4 decades,    per-coordinate
                   every feature equally important                  adaptive (Adagrad,
                                                                    Adam, AdamW)
underdetermined    least squares, 500 weights (490 faint nuisance   momentum SGD
                   features), 100 noise-free examples
sign_friendly      separable classification with a margin, true     Lion (sign momentum)
                   weights all +-1 (a corner of the cube)
=================  ===============================================  =====================

Load one as a training-lab task from the repository root (which must be on ``sys.path``)::

    from optimlab.bench.tasks import get
    task = get("benchmarks.advisor_tasks:scaled_features")          # or seed=1, ...
    python -m optimlab bench benchmarks.advisor_tasks:underdetermined --optimizers momentum,adam

Each function takes keyword arguments (``get(name, seed=1)`` passes them through) and
returns the dict :func:`optimlab.bench.tasks.get` accepts: a model factory (seeded by the
trainer, so seeds vary the initial weights; plain ``nn.Linear``, fine under ``vmap``), the
four tensors, the loss, the metric, a name and a description. The training targets of the
regressions are noisy or exact as stated; their test targets are always noise-free, so the
test loss is the excess risk. ``tests/bench/test_advisor_tasks.py`` checks the constructed
properties and, cheaply, each claimed winner against a claimed loser;
``benchmarks/advisor_vs_grid.py`` measures the full grid.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["scaled_features", "underdetermined", "sign_friendly", "TASKS"]

#: the tasks of this module, in the order of its table
TASKS = ("scaled_features", "underdetermined", "sign_friendly")


def _linear(n_in: int, n_out: int, init_scale: float = 1.0, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` with its default (seeded) initial weights multiplied by ``init_scale``."""
    layer = nn.Linear(n_in, n_out, bias=bias)
    if init_scale != 1.0:
        with torch.no_grad():
            layer.weight.mul_(init_scale)
            if bias:
                layer.bias.mul_(init_scale)
    return layer


def _check(**conditions: bool) -> None:
    bad = [name for name, ok in conditions.items() if not ok]
    if bad:
        raise ValueError(f"invalid task argument(s): {', '.join(bad)}")


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def scaled_features(*, d: int = 32, low: float = -2.5, decades: float = 4.0, noise: float = 0.1,
                    n_train: int = 2000, n_test: int = 1000, seed: int = 0) -> dict:
    """Least squares with axis-aligned ill-conditioning: per-coordinate adaptive methods win.

    Feature ``i`` is ``x_i = s_i z_i`` (``z ~ N(0, I)``), the scales ``s_i`` log-spaced over
    ``decades`` from ``10^low`` (default 10^-2.5 .. 10^1.5), and ``y = sum_i u_i z_i``
    (``u ~ N(0, I)``, unit variance; train targets plus ``N(0, noise^2)``): every feature
    carries the same share of the target, the true weight is ``w*_i ~ u_i / s_i``. The
    MSE's Hessian ``2 diag(s_i^2)`` spans 8 decades along the axes. Heavy ball is stable only
    for ``lr < 2 (1 + beta) / (2 s_max^2)`` (about 2e-3), where weight ``i`` converges at a
    rate ``~ 2 lr s_i^2 / (1 - beta)`` per step: in 300 steps it fits only the features with
    ``s_i >~ 1`` (measured test MSE 0.45). Adam, AdamW, RMSprop and Adagrad divide each
    coordinate's gradient by its own running RMS (``~ s_i``), the diagonal preconditioner
    this conditioning calls for, and move every weight at about ``lr`` per step: measured
    0.017 (Adagrad, whose decaying steps also average the label noise out) to 0.1.
    """
    _check(**{"d >= 2": d >= 2, "decades > 0": decades > 0, "noise >= 0": noise >= 0,
              "n_train >= 1": n_train >= 1, "n_test >= 1": n_test >= 1})
    rng = np.random.default_rng(seed)
    scales = rng.permutation(np.logspace(low, low + decades, d))
    u = rng.standard_normal(d)
    z = rng.standard_normal((n_train + n_test, d))
    x = z * scales
    y = z @ u
    y = y / y.std()
    y_train = y[:n_train] + noise * rng.standard_normal(n_train)
    return {
        "name": "scaled_features",
        "model": lambda: _linear(d, 1),
        "x_train": _f32(x[:n_train]), "y_train": _f32(y_train[:, None]),
        "x_test": _f32(x[n_train:]), "y_test": _f32(y[n_train:, None]),
        "loss": "mse", "metric": "loss",
        "description": (
            f"Synthetic least squares (seed {seed}): {d} Gaussian features scaled by factors "
            f"log-spaced over {decades:g} decades ({scales.min():.3g}..{scales.max():.3g}), "
            "each carrying the same share of the unit-variance target (true weight ~ 1/scale); "
            f"train targets + N(0, {noise:g}^2) noise, test targets noise-free (test MSE is the "
            f"excess risk). Model Linear({d}, 1); {n_train} train / {n_test} test. Axis-aligned "
            "ill-conditioning (Hessian 2 diag(scale^2)): per-coordinate adaptive methods "
            "(Adagrad, Adam, RMSprop) beat momentum SGD, whose stable rate is set by the largest "
            "scale."),
    }


def underdetermined(*, d: int = 500, k: int = 10, nuisance_scale: float = 0.1, n_train: int = 100,
                    n_test: int = 1000, init_scale: float = 0.01, seed: int = 0) -> dict:
    """Underdetermined least squares with many faint nuisance features: momentum SGD wins.

    ``n`` = 100 noise-free examples (one batch of 100 is the whole training set), ``d`` = 500
    Gaussian features: ``k`` = 10 signal features of unit scale, and 490 nuisance features of
    scale ``sigma`` = 0.1 that the target ``y = x_signal . u`` (unit variance) ignores; a
    linear model without bias started near 0. With ``d > n`` every ``w_min + v``, ``X v = 0``,
    fits the training set exactly, and the test MSE ``(w - w*)^T Sigma (w - w*)`` decides
    among them. SGD and heavy ball only add gradients ``X^T r``, so they converge to the fit
    nearest the start, the minimum-norm ``X^+ y``; since ``X X^T ~ X_s X_s^T + (d - k)
    sigma^2 I``, that is ridge regression on the signal features with ``lambda ~ 4.9`` against
    ``X_s^T X_s ~ 100 I``: test MSE about 0.0015 (at every rate from 0.01 to 1). Adam, AdamW,
    RMSprop, Adagrad and Lion rescale each coordinate by its own gradient size (``g / sqrt(v)``,
    ``sign(m)``), so the nuisance weights, whose gradients are ``sigma`` times smaller, move as
    fast as the signal weights; 490 of them fit the 100 residuals cheaply, and their exact fit
    leaves the signal weights short and adds ``sigma^2 |w_nuisance|^2``: test MSE 0.35 or more
    (cf. Wilson et al. 2017, "The marginal value of adaptive gradient methods").
    """
    _check(**{"d > n_train >= 1": d > n_train >= 1, "1 <= k < d": 1 <= k < d,
              "nuisance_scale >= 0": nuisance_scale >= 0, "n_test >= 1": n_test >= 1,
              "init_scale >= 0": init_scale >= 0})
    rng = np.random.default_rng(seed)
    signal = rng.permutation(np.arange(d) < k)  # which columns carry the target
    scales = np.where(signal, 1.0, nuisance_scale)
    w = np.where(signal, rng.standard_normal(d), 0.0)
    x = rng.standard_normal((n_train + n_test, d)) * scales
    y = x @ w
    y = y / y.std()
    return {
        "name": "underdetermined",
        "model": lambda: _linear(d, 1, init_scale, bias=False),
        "x_train": _f32(x[:n_train]), "y_train": _f32(y[:n_train, None]),
        "x_test": _f32(x[n_train:]), "y_test": _f32(y[n_train:, None]),
        "loss": "mse", "metric": "loss",
        "description": (
            f"Synthetic underdetermined least squares (seed {seed}): {d} Gaussian features, {k} "
            f"of unit scale carrying the unit-variance target and {d - k} nuisance features of "
            f"scale {nuisance_scale:g} with true weight 0; {n_train} noise-free train examples "
            f"(fewer than weights: many exact fits), {n_test} test. Model Linear({d}, 1, "
            f"bias=False), initial weights x {init_scale:g}. Gradient methods converge to the "
            "minimum-norm fit, which barely uses the nuisance features; coordinate-wise "
            "rescaling (Adam, RMSprop, Adagrad, Lion) inflates them and generalizes far worse: "
            "momentum SGD wins."),
    }


def sign_friendly(*, d: int = 128, margin: float = 0.1, n_train: int = 2000, n_test: int = 1000,
                  init_scale: float = 0.1, seed: int = 0) -> dict:
    """Separable classification toward a +-1 weight vector: Lion (sign momentum) wins.

    Labels ``t = sign(x . w*)`` with ``w* = (+-1, ..., +-1) / sqrt(d)`` (a corner of the
    cube) and Gaussian ``x`` kept only where ``|x . w*| >= margin``: separable with that
    margin; the metric is the test cross entropy. (1) By symmetry the expected gradient at
    any ``v`` on the ray through ``w*`` is ``-E[t x sigma(-t v.x)] = -c w*``, so
    ``sign(-g) = sign(w*)``, which is ``w*``'s own direction: Lion's step ``lr sign(m)``
    (steepest descent in the max norm) moves along ``w*`` by ``lr`` per weight from the
    first step. (2) Along ``w*`` the loss is at most ``log(1 + exp(-margin |v|))`` and the
    gradient vanishes with it: momentum SGD and Adagrad (steps ~ ``g``) and Adam/RMSprop
    (steps ~ ``g`` / RMS of past ``g``, which remembers the large early gradients) slow
    down, Lion does not. Measured: Lion below 1e-3 at every rate from 0.01 to 0.2 (best
    ~1e-10), the others 0.012 or more. With a Gaussian ``w*`` (``sign(w*)`` no longer its
    direction) Lion came last: the +-1 target is what makes the sign step right.
    """
    _check(**{"d >= 2": d >= 2, "margin >= 0": margin >= 0, "n_train >= 1": n_train >= 1,
              "n_test >= 1": n_test >= 1, "init_scale >= 0": init_scale >= 0})
    rng = np.random.default_rng(seed)
    w = rng.choice([-1.0, 1.0], d) / np.sqrt(d)
    n = n_train + n_test
    kept, count = [], 0
    while count < n:  # rejection sampling: P(|N(0,1)| >= margin) is large for small margins
        z = rng.standard_normal((2 * n, d))
        z = z[np.abs(z @ w) >= margin]
        kept.append(z)
        count += len(z)
    x = np.concatenate(kept)[:n]
    y = (x @ w > 0).astype(np.int64)
    return {
        "name": "sign_friendly",
        "model": lambda: _linear(d, 2, init_scale),
        "x_train": _f32(x[:n_train]), "y_train": torch.from_numpy(y[:n_train]),
        "x_test": _f32(x[n_train:]), "y_test": torch.from_numpy(y[n_train:]),
        "loss": "cross_entropy", "metric": "loss",
        "description": (
            f"Synthetic separable classification (seed {seed}): {d} Gaussian features, labels "
            f"[x.w* > 0] with w* = +-1/sqrt({d}) (a cube corner), examples with |x.w*| < "
            f"{margin:g} dropped (margin {margin:g}); {n_train} train / {n_test} test. Model "
            f"Linear({d}, 2), initial weights x {init_scale:g}; metric: test cross entropy, "
            "which keeps falling as the weights grow along w*. sign(gradient) = sign(w*) and "
            "the gradient vanishes as the loss does, so Lion's constant-size sign steps win."),
    }
