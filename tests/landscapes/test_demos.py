"""The tutorials' exhibits: their numbers (computed, never typed in) and their figures."""

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

import optimlab
from optimlab.landscapes import demos
from optimlab.landscapes.demos import DEMOS, run_demo

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "demos"


@functools.cache
def result(name):
    """Each demo runs once per session; the tests below only read its numbers."""
    return DEMOS[name]()


def test_registry_names():
    assert list(DEMOS) == ["effective-lr", "ema", "ill-conditioned", "saddle", "sparse",
                           "gd-variants"]


# -- effective-lr ---------------------------------------------------------------------------


def test_effective_lr_numbers_of_the_tutorial():
    demo = result("effective-lr")
    shown = [f"{demo.value('adagrad', t):.4f}" for t in demo.at]
    assert demo.at == (1, 10, 100, 1000, 10000)
    assert shown == ["0.0200", "0.0063", "0.0020", "0.0006", "0.0002"]
    # RMSprop (alpha 0.9) starts higher (v_t is still small) and settles at lr/|g| = 0.0200
    assert demo.value("rmsprop", 1) > 0.06
    assert [f"{demo.value('rmsprop', t):.4f}" for t in (100, 1000, 10000)] == ["0.0200"] * 3
    assert demo.rmsprop[-1] == pytest.approx(0.02, rel=1e-6)
    assert np.all(np.diff(demo.adagrad) < 0)  # Adagrad's rate only ever shrinks
    # and as 1/sqrt(t): lr / (|g| sqrt(t))
    t = np.arange(1, len(demo.adagrad) + 1)
    np.testing.assert_allclose(demo.adagrad, 0.01 / (0.5 * np.sqrt(t)), rtol=1e-8)
    table = demo.table()
    for text in ("0.0200", "0.0063", "0.0020", "0.0006", "0.0002", "10000"):
        assert text in table


@pytest.mark.parametrize("cls, hp", [(optimlab.Adagrad, {"lr": 0.01, "eps": 1e-10}),
                                     (optimlab.RMSprop, {"lr": 0.01, "alpha": 0.9, "eps": 1e-8})])
def test_effective_lr_is_what_the_optimizer_does(cls, hp):
    """The fast rule-driven measurement equals stepping the real optimizer."""
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
    np.testing.assert_allclose(rates, expected[:50], rtol=1e-12)


def test_effective_lr_rejects_steps_outside_the_run():
    with pytest.raises(ValueError):
        demos.effective_lr(steps=10, at=(1, 100))


# -- ema ------------------------------------------------------------------------------------


def test_ema_bias_correction():
    demo = result("ema")
    x = demo.series
    assert demo.betas == (0.5, 0.9, 0.98)
    for b in demo.betas:
        # the corrected first value is the first sample; the uncorrected one is (1-b) x_1
        assert demo.corrected[b][0] == pytest.approx(x[0], rel=1e-12)
        assert demo.raw[b][0] == pytest.approx((1 - b) * x[0], rel=1e-12)
        # the recurrence equals the closed form (1-b) sum_i b^(t-i) x_i
        t = np.arange(len(x))
        weights = (1 - b) * b ** (t[:, None] - t[None, :]) * (t[:, None] >= t[None, :])
        np.testing.assert_allclose(demo.raw[b], weights @ x, rtol=1e-10)
        np.testing.assert_allclose(demo.corrected[b], demo.raw[b] / (1 - b ** (t + 1)),
                                   rtol=1e-12)
    # with beta 0.98 the uncorrected average starts near zero, far below the samples,
    assert demo.raw[0.98][:5].max() < 0.2 * x[:5].min()
    # while the corrected one tracks the series from the start
    assert abs(demo.corrected[0.98][:5] - x[:5].mean()).max() < 1.0
    # and the correction fades: 1 - 0.5^t is 1 in double precision long before t = 100
    assert demo.corrected[0.5][-1] == pytest.approx(demo.raw[0.5][-1], rel=1e-12)
    assert "corrected" in demo.table() and f"{x[0]:.3f}" in demo.table()


# -- ill-conditioned ------------------------------------------------------------------------


def test_ill_conditioned_landscape_is_exactly_the_tutorials():
    land = demos.RAVINE
    x = torch.tensor([[5.0, 5.0], [1.0, -2.0], [0.0, 0.0]], dtype=torch.float64)
    assert land(x).tolist() == [25.0 + 250.0, 1.0 + 40.0, 0.0]


def test_ill_conditioned_ordering():
    demo = result("ill-conditioned")
    race = demo.race
    m = race.metrics
    assert not any(v.diverged for v in m.values())
    # every SGD learning rate is below the stability limit 2/20 = 0.1
    assert all(hp["lr"] < 0.1 for hp in race.hparams.values() if hp["name"] == "sgd")
    # Adam reaches f < 1e-3
    assert m["adam"].steps_to_tol is not None
    # near the limit SGD zig-zags across the steep direction every step; Adam does not
    assert demo.flips["sgd, near limit"] == demo.window
    assert demo.flips["adam"] == 0
    # at a safe rate SGD settles theta2 long before theta1: the shallow direction lags
    assert demo.lag["sgd, safe"] > 10 * demo.lag["adam"]
    assert m["sgd, safe"].steps_to_tol > m["adam"].steps_to_tol
    assert "steps to f<0.001" in demo.table()


# -- saddle ---------------------------------------------------------------------------------


def test_saddle_gd_stalls_longest():
    demo = result("saddle")
    esc = demo.escape
    assert set(esc) == {"gd", "momentum", "adam", "gd + noise"}
    assert all(v is not None for v in esc.values())
    for other in ("momentum", "adam", "gd + noise"):
        assert esc["gd"] > esc[other]
    # GD stalls: for 30 steps it stays within 1e-3 of the saddle's line y = 0
    gd_path = demo.races[0].paths["gd"]
    assert np.abs(gd_path[:31, 1]).max() < 1e-3
    assert demo.races[1].noise == pytest.approx(demo.noise)
    # near the saddle the landscape is x^2 - y^2
    x = torch.tensor([0.3, 0.01], dtype=torch.float64)
    assert float(demos.SADDLE(x)) == pytest.approx(0.09 - 1e-4, abs=1e-8)


# -- sparse ---------------------------------------------------------------------------------


def test_sparse_adagrad_favours_the_rare_feature():
    demo = result("sparse")
    assert demo.features == ("frequent", "rare")
    assert demo.presence[1] < 0.05 < 0.5 < demo.presence[0]
    ada = {f: demo.final_eff_lr("adagrad", f) for f in demo.features}
    sgd = {f: demo.final_eff_lr("sgd", f) for f in demo.features}
    assert ada["rare"] > ada["frequent"]
    assert sgd["rare"] == sgd["frequent"] == demo.lr
    # the effective rate is Adagrad's own accumulator at work: lr / (sqrt(G) + eps)
    assert ada["rare"] > demo.lr > ada["frequent"]
    # and the rare weight ends closer to the truth than with SGD
    err = {opt: abs(demo.final_weight(opt, "rare") - demo.true_w[1]) for opt in ("sgd", "adagrad")}
    assert err["adagrad"] < err["sgd"]
    table = demo.table()
    assert "rare" in table and "frequent" in table


# -- gd-variants ----------------------------------------------------------------------------


def test_gd_variants_orderings():
    demo = result("gd-variants")
    runs = demo.runs
    assert [r.batch for r in runs.values()] == [demo.n, 32, 1]
    # the same number of samples processed by all
    assert {int(r.samples[-1]) for r in runs.values()} == {demo.n * demo.epochs}
    # all stable: they end near the least-squares minimum
    for r in runs.values():
        assert r.loss[-1] < 1.1 * demo.optimum
    # per gradient evaluation the small batches are ahead, per update the full batch is
    evals = [demo.evals_to_target(k) for k in ("stochastic", "mini-batch", "batch")]
    updates = [demo.updates_to_target(k) for k in ("batch", "mini-batch", "stochastic")]
    assert None not in evals and None not in updates
    assert evals == sorted(evals) and len(set(evals)) == 3
    assert updates == sorted(updates) and len(set(updates)) == 3
    # the noise floor of a constant lr: stochastic ends above the full batch
    assert runs["stochastic"].loss[-1] > runs["batch"].loss[-1]


# -- figures and run_demo -------------------------------------------------------------------


def _check_png(path):
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as img:
        img.load()
        assert img.width > 300 and img.height > 200
        pixels = np.asarray(img.convert("RGB"), dtype=float)
    assert pixels.std() > 10  # not blank
    rgb = pixels.astype(np.int64) @ np.array([65536, 256, 1])
    assert len(np.unique(rgb)) > 50  # lines, text, colours


@pytest.mark.parametrize("name", list(DEMOS))
def test_plot_is_a_valid_figure(name):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    demo = result(name)
    fig = demo.plot()
    try:
        assert isinstance(fig, Figure)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / f"{name}.png"
        fig.savefig(target, dpi=100)
    finally:
        plt.close(fig)
    _check_png(target)
    assert isinstance(demo.table(), str) and demo.table().count("\n") >= 2
    assert demo.title in str(demo)


def test_run_demo_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "figs"
    demo = run_demo("ema", out_dir=out)
    assert isinstance(demo, demos.EMADemo)
    assert sorted(p.name for p in out.iterdir()) == ["ema.png"]
    _check_png(out / "ema.png")


def test_run_demo_without_out_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = run_demo("EMA")  # names are case-insensitive; "_" stands for "-"
    assert isinstance(demo, demos.EMADemo)
    assert list(tmp_path.iterdir()) == []


def test_unknown_demo():
    with pytest.raises(ValueError, match="unknown demo 'nope'") as err:
        run_demo("nope")
    for name in DEMOS:
        assert name in str(err.value)
