"""The ``effective-lr`` and ``ema`` exhibits: their numbers (computed, never typed in)."""

import functools

import numpy as np
import pytest
import torch

import optimlab
from optimlab.exhibits import schedules
from tests.exhibits.figures import check_figure


@functools.cache
def result(name):
    """Each exhibit runs once per session; the tests below only read its numbers."""
    return {"effective-lr": schedules.effective_lr, "ema": schedules.ema}[name]()


# -- effective-lr ---------------------------------------------------------------------------


def test_effective_lr_numbers_of_the_tutorial():
    demo = result("effective-lr")
    shown = [f"{demo.value('adagrad', t):.4f}" for t in demo.at]
    assert demo.at == (1, 10, 100, 1000, 10000)
    assert shown == ["0.0200", "0.0063", "0.0020", "0.0006", "0.0002"]
    # RMSprop (alpha 0.9) starts higher (v_t is still small) and settles at lr/|g| = 0.0200
    assert demo.value("rmsprop", 1) > 0.06
    assert [f"{demo.value('rmsprop', t):.4f}" for t in (100, 1000, 10000)] == ["0.0200"] * 3
    # lr / (|g| + eps) = 0.02 / (1 + 2e-8): eps / |g| = 2e-8 below (measured 2.0e-8);
    # rel 1e-6 leaves 50x
    assert demo.rmsprop[-1] == pytest.approx(0.02, rel=1e-6)
    assert np.all(np.diff(demo.adagrad) < 0)  # Adagrad's rate only ever shrinks
    # and as 1/sqrt(t): lr / (|g| sqrt(t))
    t = np.arange(1, len(demo.adagrad) + 1)
    # the formula leaves out eps: eps / (|g| sqrt(t)) <= 1e-10 / 0.5 = 2e-10 relative
    # (measured 2.0e-10 at t = 1); rtol 1e-8 leaves 50x
    np.testing.assert_allclose(demo.adagrad, 0.01 / (0.5 * np.sqrt(t)), rtol=1e-8)
    table = demo.table()
    for text in ("0.0200", "0.0063", "0.0020", "0.0006", "0.0002", "10000"):
        assert text in table


@pytest.mark.parametrize("cls, hp", [(optimlab.Adagrad, {"lr": 0.01, "eps": 1e-10}),
                                     (optimlab.RMSprop, {"lr": 0.01, "alpha": 0.9, "eps": 1e-8})])
def test_effective_lr_is_what_the_optimizer_does(cls, hp):
    """The measurement (a one-member Population) equals stepping the real optimizer."""
    demo = result("effective-lr")
    expected = demo.adagrad if cls is optimlab.Adagrad else demo.rmsprop
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = cls([p], **hp)
    rates = []
    for _ in range(50):
        before = p.item()
        p.grad = torch.full_like(p, 0.5)
        opt.step()
        rates.append((before - p.item()) / 0.5)
    # measured bit-equal; the Population and torch's optimizer are different code, where a
    # fused multiply-add may round an ulp (1e-16) apart a step: 50 steps, rtol 1e-12 leaves
    # 200x
    np.testing.assert_allclose(rates, expected[:50], rtol=1e-12)


def test_effective_lr_follows_its_arguments():
    demo = schedules.effective_lr(lr=0.1, grad=-2.0, alpha=0.5, steps=20, at=(1, 20))
    assert demo.adagrad.shape == demo.rmsprop.shape == (20,)
    # a negative gradient gives the same rates: the step follows the gradient's sign
    t = np.arange(1, 21)
    # eps left out: eps / (|g| sqrt(t)) <= 1e-10 / 2 = 5e-11 (measured 5.0e-11); 200x room
    np.testing.assert_allclose(demo.adagrad, 0.1 / (2.0 * np.sqrt(t)), rtol=1e-8)
    # v_20 = g^2 (1 - 0.5^20): the rate is 1 / sqrt(1 - 2^-20), 4.8e-7 above lr/|g|
    # (measured 4.7e-7); rel 1e-5 leaves 20x
    assert demo.value("rmsprop", 20) == pytest.approx(0.1 / 2.0, rel=1e-5)


def test_effective_lr_rejects_steps_outside_the_run():
    with pytest.raises(ValueError):
        schedules.effective_lr(steps=10, at=(1, 100))


def test_effective_lr_figure():
    check_figure(result("effective-lr"))


# -- ema ------------------------------------------------------------------------------------


def test_ema_bias_correction():
    demo = result("ema")
    x = demo.series
    assert demo.betas == (0.5, 0.9, 0.98)
    for b in demo.betas:
        # the corrected first value is the first sample: ((1-b) x_1) / (1-b), two roundings,
        # at most 2 ulps (4.4e-16 relative; measured 0); rel 1e-12 leaves 2000x
        assert demo.corrected[b][0] == pytest.approx(x[0], rel=1e-12)
        # the uncorrected one is (1-b) x_1: b * 0 + (1-b) x_1, the same product, exactly
        assert demo.raw[b][0] == (1 - b) * x[0]
        # the recurrence equals the closed form (1-b) sum_i b^(t-i) x_i: 100 terms summed
        # in another order, about 100 ulps at most (2e-14); measured 6e-16, rtol 1e-10
        # leaves 4 orders of room
        t = np.arange(len(x))
        weights = (1 - b) * b ** (t[:, None] - t[None, :]) * (t[:, None] >= t[None, :])
        np.testing.assert_allclose(demo.raw[b], weights @ x, rtol=1e-10)
        # the exhibit's own formula, the same numpy operations: exact
        np.testing.assert_array_equal(demo.corrected[b], demo.raw[b] / (1 - b ** (t + 1)))
    # with beta 0.98 the uncorrected average starts near zero, far below the samples,
    assert demo.raw[0.98][:5].max() < 0.2 * x[:5].min()
    # while the corrected one tracks the series from the start
    assert abs(demo.corrected[0.98][:5] - x[:5].mean()).max() < 1.0
    # and the correction fades: 1 - 0.5^t is 1 in double precision long before t = 100
    # (1 - 0.5^100 rounds to 1.0, and m / 1.0 is m: exact)
    assert demo.corrected[0.5][-1] == demo.raw[0.5][-1]
    assert "corrected" in demo.table() and f"{x[0]:.3f}" in demo.table()


def test_ema_rejects_a_beta_outside_0_1():
    with pytest.raises(ValueError, match="beta"):
        schedules.ema(betas=(0.9, 1.0))


def test_ema_figure():
    check_figure(result("ema"))


def test_the_ema_lines_wear_no_optimizers_colour():
    """The betas' lines are not optimizers: they were drawn C0, C1, C2, which are gd's,
    momentum's and adam's colours in the palette every figure shares."""
    from matplotlib.colors import to_hex

    from optimlab.optim.palette import COLORS

    fig = result("ema").plot()
    try:
        lines = [line for ax in fig.axes for line in ax.get_lines()
                 if line.get_label().startswith("beta=")]
        assert lines and not {to_hex(line.get_color()) for line in lines} & set(COLORS)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
