"""Pictures of races: contours with one path per optimizer, loss panel, GIF/MP4, 3-D surface.

Built on hand-made landscapes and races (no optimizers run), so these test only the drawing.
Every PNG/GIF made here is also saved under ``test-artifacts/landscapes/`` for a look.
"""

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402  (comes with matplotlib)

from optimlab.landscapes.base import Landscape  # noqa: E402
from optimlab.landscapes.result import Race, RaceMetrics  # noqa: E402

plots = pytest.importorskip("optimlab.landscapes.plots")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "landscapes"
RES = 40  # contour grid resolution: small keeps the tests fast


# --------------------------------------------------------------------------- fakes

def _bowl(dim=2, log_scale=False):
    scales = torch.linspace(1.0, 5.0, dim, dtype=torch.float64)
    return Landscape(
        name=f"bowl{dim}d" if dim != 2 else "bowl", dim=dim,
        f=lambda x: (scales.to(x) * x**2).sum(-1),
        domain=((-3.0, 3.0),) * dim, minima=((0.0,) * dim,), min_value=0.0,
        challenges=("ill-conditioned",), start=(-2.5, 2.0) + (1.0,) * (dim - 2),
        description="a quadratic bowl", log_scale=log_scale)


def _steep():
    """exp(|x|^2): values span about eight decades on its domain, log_scale not set."""
    return Landscape(name="steep", dim=2, f=lambda x: torch.exp((x**2).sum(-1)),
                     domain=((-3.0, 3.0), (-3.0, 3.0)), minima=((0.0, 0.0),), min_value=1.0,
                     challenges=("ravine",), start=(2.0, 2.0), description="steep walls")


HPARAMS = {"gd": {"name": "sgd", "lr": 0.1},
           "adam": {"name": "adam", "lr": 0.05, "betas": (0.9, 0.999)},
           "gd-big": {"name": "sgd", "lr": 1.5}}


def _race(landscape=None, steps=30, noise=0.0):
    """Three hand-made paths: straight in, a spiral in, and one that diverges to inf/nan."""
    landscape = landscape or _bowl()
    dim = landscape.dim
    start = np.asarray(landscape.start, dtype=float)
    t = np.linspace(0.0, 1.0, steps + 1)[:, None]
    straight = start * (1 - t) ** 2
    angle = 6 * np.pi * t[:, 0]
    spiral = start * (1 - t)
    spiral[:, 0] += 0.8 * np.sin(angle) * (1 - t[:, 0])
    spiral[:, 1] += 0.8 * np.cos(angle) * (1 - t[:, 0]) - 0.8 * (1 - t[:, 0])
    spiral[0] = start
    k = np.arange(steps + 1.0).clip(max=500)  # spirals out of the domain, then inf/nan
    grow = np.linalg.norm(start[:2]) * 1.6**k[:, None] * np.stack(
        [np.cos(2.5 + 0.7 * k), np.sin(2.5 + 0.7 * k)] + [np.ones_like(k)] * (dim - 2), axis=1)
    grow[0] = start
    grow[steps // 2:] = np.inf
    grow[-1, 0] = np.nan
    paths = {"gd": straight, "adam": spiral, "gd-big": grow}
    losses = {}
    for label, p in paths.items():
        with np.errstate(all="ignore"):
            losses[label] = landscape.f(torch.from_numpy(p)).numpy()
    metrics = {label: RaceMetrics(label, HPARAMS[label]["name"], float(losses[label][-1]),
                                  float(losses[label][-1]), 0.0, None, label == "gd-big")
               for label in paths}
    return Race(landscape, start, steps, paths, losses, dict(HPARAMS), metrics, 1e-6,
                noise=noise)


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def save(tmp_path):
    """Save a figure as PNG in tmp_path and in test-artifacts/landscapes/; returns the path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def _save(fig, name):
        out = tmp_path / f"{name}.png"
        fig.savefig(out, dpi=60)
        shutil.copy(out, ARTIFACTS / out.name)
        plots.plt_close(fig)
        return out

    return _save


def _check_image(path, frames=False):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 0 and im.size[1] > 0
        n = getattr(im, "n_frames", 1)
        pixels = np.asarray(im.convert("RGB"), dtype=float)
    assert pixels.std() > 0, f"{path} is blank"
    return n


def _lines(ax, prefix):
    return {line.get_gid().split(":", 1)[1]: line for line in ax.lines
            if (line.get_gid() or "").startswith(prefix)}


def _panel(fig, prefix):
    axes = [ax for ax in fig.axes if _lines(ax, prefix)]
    assert len(axes) == 1, f"expected one axes with {prefix} lines, got {len(axes)}"
    return axes[0]


def _legend_texts(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


# --------------------------------------------------------------------------- plot_race

def test_race_plot_has_one_path_per_optimizer_and_a_loss_panel(save):
    race = _race()
    fig = plots.plot_race(race, resolution=RES)
    contour = _panel(fig, "path:")
    paths = _lines(contour, "path:")
    assert sorted(paths) == sorted(race.labels)
    assert sum((line.get_gid() or "").startswith("path:") for line in contour.lines) == 3
    # paths leaving the domain are clipped by the axes, which stay on the domain
    assert contour.get_xlim() == (-3.0, 3.0) and contour.get_ylim() == (-3.0, 3.0)
    for line in paths.values():
        assert np.isfinite(np.asarray(line.get_xydata())).all()  # inf/nan points dropped
    assert paths["gd-big"].get_linestyle() == "--" and paths["gd"].get_linestyle() == "-"
    assert len(_lines(contour, "end:")) == 3
    assert {line.get_gid() for line in contour.lines} >= {"minima", "start"}

    texts = _legend_texts(fig)
    assert "adam (lr=0.05, betas=(0.9, 0.999))" in texts
    assert "gd (lr=0.1)" in texts
    assert "gd-big (lr=1.5) (diverged)" in texts
    assert {"start", "minimum"} <= set(texts)

    loss = _panel(fig, "loss:")
    assert loss is not contour
    assert sorted(_lines(loss, "loss:")) == sorted(race.labels)
    assert loss.get_ylabel() == "f - f*" and loss.get_yscale() == "log"
    for label in race.labels:  # one colour per optimizer in both panels
        assert paths[label].get_color() == _lines(loss, "loss:")[label].get_color()
    assert "bowl" in fig._suptitle.get_text() and "30 steps" in fig._suptitle.get_text()
    assert _check_image(save(fig, "race_bowl")) == 1


def test_colours_stay_with_the_label_across_figures():
    a = plots.plot_race(_race(), resolution=RES)
    race = _race()
    race.paths = {k: race.paths[k] for k in ("gd-big", "adam", "gd")}  # another order
    b = plots.plot_race(race, resolution=RES)
    ca = {k: v.get_color() for k, v in _lines(_panel(a, "path:"), "path:").items()}
    cb = {k: v.get_color() for k, v in _lines(_panel(b, "path:"), "path:").items()}
    assert ca == cb and len(set(ca.values())) == 3
    plots.plt_close(a)
    plots.plt_close(b)
    ten = plots.label_colors([f"opt{i}" for i in range(10)])
    assert len(set(ten.values())) == 10
    assert set(ten.values()) <= set(plots.PALETTE)


def test_race_plot_with_noise_and_log_landscape(save):
    race = _race(_bowl(log_scale=True), noise=0.1)
    fig = plots.plot_race(race, resolution=RES, show_loss=False)
    assert "noise 0.1" in fig._suptitle.get_text()
    assert not any(_lines(ax, "loss:") for ax in fig.axes)
    assert _check_image(save(fig, "race_bowl_log_noise")) == 1


def test_non_2d_race_draws_only_the_loss_panel(save):
    race = _race(_bowl(dim=3))
    fig = plots.plot_race(race, resolution=RES)
    assert not any(_lines(ax, "path:") for ax in fig.axes)
    loss = _panel(fig, "loss:")
    assert sorted(_lines(loss, "loss:")) == sorted(race.labels)
    assert "loss only" in fig._suptitle.get_text()
    assert any("(diverged)" in t for t in _legend_texts(fig))
    assert _check_image(save(fig, "race_bowl3d")) == 1


def test_an_n_d_title_says_its_dimension_once():
    from optimlab.landscapes import get, race
    from optimlab.landscapes.plots import plt_close

    fig = plots.plot_race(race(get("rosenbrock_nd", dim=5), {"adam": {"lr": 0.01}}, steps=5))
    title = fig._suptitle.get_text()
    plt_close(fig)
    assert title.count("dim=5") == 1 and "loss only" in title


def test_race_whose_every_point_is_non_finite_does_not_crash():
    race = _race()
    race.paths["gd-big"] = np.full_like(race.paths["gd-big"], np.nan)
    race.losses["gd-big"] = np.full_like(race.losses["gd-big"], np.inf)
    fig = plots.plot_race(race, resolution=16)
    assert len(_lines(_panel(fig, "path:"), "path:")["gd-big"].get_xydata()) == 0
    fig.canvas.draw()
    plots.plt_close(fig)


def test_repr_png_is_a_png():
    data = _race()._repr_png_()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


# --------------------------------------------------------------------------- plot_landscape

def test_landscape_plot_marks_minima_and_start(save):
    from matplotlib.colors import LogNorm
    from matplotlib.contour import ContourSet

    for landscape, log in ((_bowl(), False), (_bowl(log_scale=True), True), (_steep(), True)):
        fig = plots.plot_landscape(landscape, resolution=RES, levels=12)
        ax = fig.axes[0]
        gids = {line.get_gid(): line for line in ax.lines}
        assert gids["minima"].get_marker() == "*" and "start" in gids
        filled = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
        assert len(filled) == 1 and isinstance(filled[0].norm, LogNorm) is log, landscape.name
        assert ax.get_xlim() == landscape.domain[0]
        assert _check_image(save(fig, f"landscape_{landscape.name}_{'log' if log else 'lin'}")) == 1


def test_landscape_plot_into_given_axes():
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2)
    assert plots.plot_landscape(_bowl(), ax=right, resolution=RES) is fig
    assert any(line.get_gid() == "minima" for line in right.lines) and not left.lines
    plots.plt_close(fig)


def test_only_2d_landscapes_have_contours_and_surfaces():
    with pytest.raises(ValueError, match="2-D.*dim=3"):
        plots.plot_landscape(_bowl(dim=3))
    with pytest.raises(ValueError, match="2-D.*dim=3"):
        plots.plot_surface(_bowl(dim=3))


# --------------------------------------------------------------------------- surface

def test_surface_with_race_paths(save):
    race = _race(_bowl(log_scale=True))
    fig = plots.plot_surface(race.landscape, race=race, resolution=24)
    ax = fig.axes[0]
    assert ax.name == "3d"
    assert sorted(_lines(ax, "path:")) == sorted(race.labels)
    assert "log10" in ax.get_zlabel()
    assert _check_image(save(fig, "surface_bowl_log")) == 1
    fig = race.landscape.plot_surface(resolution=16, log=False)
    assert fig.axes[0].get_zlabel() == "f"
    plots.plt_close(fig)


# --------------------------------------------------------------------------- animation

_WHICH = shutil.which


def _no_ffmpeg(monkeypatch, instead: str | None = None) -> None:
    """Hide ffmpeg from the animation (or put ``instead`` in its place), and nothing else:
    hiding every command hid the C compiler from a race's fused step too, whose lack the
    process remembers, so later tests in the same worker stepped on the plain path."""
    monkeypatch.setattr(plots.shutil, "which", lambda name, *args, **kwargs:
                        instead if name == "ffmpeg" else _WHICH(name, *args, **kwargs))


def test_animation_writes_a_growing_gif(tmp_path, monkeypatch):
    _no_ffmpeg(monkeypatch)  # no MP4 here
    race = _race(steps=20)
    written = race.animate(tmp_path / "race.gif", frames=6, fps=10, dpi=40, resolution=20)
    assert written == [tmp_path / "race.gif"]
    assert 1 < _check_image(written[0]) <= 6
    with Image.open(written[0]) as im:  # the paths grow: first and last frames differ
        first = np.asarray(im.convert("RGB"), dtype=float)
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB"), dtype=float)
    assert np.abs(first - last).sum() > 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(written[0], ARTIFACTS / "race_bowl.gif")
    # a notebook shows the returned list as the GIF itself, read when shown
    import base64

    page = written._repr_html_()
    assert page.startswith('<img src="data:image/gif;base64,')
    inlined = page.split("base64,", 1)[1].split('"', 1)[0]
    assert base64.b64decode(inlined) == written[0].read_bytes()
    assert 'alt="race.gif: an optimizer race, step by step"' in page
    written[0].unlink()
    assert "race.gif: cannot be read now" in written._repr_html_()
    assert plots.Animation([tmp_path / "r.mp4"])._repr_html_().startswith("<p>[")


def test_every_frame_of_the_gif_has_the_legends_colours(tmp_path, monkeypatch):
    """One palette for every frame, from the last: the first frame, where the paths are
    still points, drew the legend's swatches grey when Pillow chose its colours alone."""
    from optimlab.landscapes import race as run_race
    from optimlab.optim.palette import color

    _no_ffmpeg(monkeypatch)
    result = run_race("rosenbrock", {name: {} for name in ("sgd", "momentum", "adam", "lion")},
                      steps=30)
    (gif,) = result.animate(tmp_path / "race.gif", frames=4, fps=10, dpi=80, resolution=30)
    with Image.open(gif) as im:
        im.seek(0)
        first = np.asarray(im.convert("RGB"), dtype=int)
    for name in ("sgd", "momentum", "adam", "lion"):
        rgb = np.array([int(color(name)[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(first - rgb).sum(-1) <= 12).sum() >= 5, name  # its legend swatch


def test_animation_of_a_non_2d_race(tmp_path, monkeypatch):
    _no_ffmpeg(monkeypatch)
    written = plots.animate_race(_race(_bowl(dim=3), steps=10), tmp_path / "r3", frames=4, dpi=30)
    assert written == [tmp_path / "r3.gif"] and _check_image(written[0]) > 1


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")
def test_animation_also_writes_mp4_with_ffmpeg(tmp_path):
    written = plots.animate_race(_race(steps=10), tmp_path / "race.gif", frames=4, dpi=40,
                                 resolution=20)
    assert written == [tmp_path / "race.gif", tmp_path / "race.mp4"]
    assert (tmp_path / "race.mp4").stat().st_size > 0


def test_animation_to_an_unwritable_place_names_it(tmp_path):
    target = tmp_path / "missing" / "race.gif"
    with pytest.raises(OSError, match=re.escape(str(target))):
        plots.animate_race(_race(steps=4), target, frames=2)
    assert not target.parent.exists()


# --------------------------------------------------------------------------- optional matplotlib

def test_module_imports_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    spec = importlib.util.spec_from_file_location("plots_without_matplotlib", plots.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    with pytest.raises(ImportError, match=r"pip install 'optimlab\[lab\]'"):
        module.plot_landscape(_bowl())


def test_agg_only_when_no_backend_was_chosen():
    import matplotlib
    from matplotlib import rcsetup

    before = matplotlib.get_backend()
    try:
        dict.__setitem__(matplotlib.rcParams, "backend", rcsetup._auto_backend_sentinel)
        plots._pyplot()
        assert matplotlib.get_backend().lower() == "agg"
        matplotlib.use("pdf")  # a choice is kept
        plots._pyplot()
        assert matplotlib.get_backend().lower() == "pdf"
    finally:
        matplotlib.use(before)


def test_a_saddle_loss_axis_says_f_not_f_minus_fstar():
    import matplotlib

    matplotlib.use("Agg")
    import optimlab

    fig = optimlab.race("saddle", {"adam": {"lr": 0.05}}, steps=20).plot()
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "f" in labels and "f - f*" not in labels
    fig = optimlab.race("rosenbrock", {"adam": {"lr": 0.05}}, steps=20).plot()
    assert "f - f*" in [ax.get_ylabel() for ax in fig.axes]


def test_a_landscape_plot_refuses_an_f_of_the_wrong_shape():
    scalar = Landscape(name="mine", dim=2, f=lambda x: (x**2).sum(),
                       domain=((-2.0, 2.0), (-2.0, 2.0)), minima=((0.0, 0.0),), min_value=0.0,
                       challenges=(), start=(1.0, 1.0), description="")
    with pytest.raises(ValueError, match=r"mine: f must map \[\.\.\., dim\] to \[\.\.\.\].* "
                                         r"returned shape \[\]"):
        plots.plot_landscape(scalar, resolution=RES)


def test_the_landscape_legend_covers_neither_start_nor_minima():
    """Styblinski-Tang starts in the upper right, where the legend used to be."""
    from optimlab.landscapes import names
    from optimlab.landscapes.functions import get

    for name in names():
        land = get(name)
        if land.dim != 2:
            continue
        fig = plots.plot_landscape(land, resolution=RES)
        try:
            fig.canvas.draw()
            ax = fig.axes[0]
            box = ax.get_legend().get_window_extent()
            points = [land.start, *land.minima]
            for point in ax.transData.transform(np.asarray(points, dtype=float)):
                assert not box.contains(*point), (name, point)
        finally:
            plots.plt_close(fig)


def test_titles_say_the_parameters_a_landscape_was_built_with():
    from optimlab.landscapes import get, race
    from optimlab.landscapes.plots import plt_close

    land = get("quadratic", kappa=100)
    assert land.title == "quadratic (kappa=100)" and get("rosenbrock").title == "rosenbrock"
    result = race(land, {"adam": {"lr": 0.1}}, steps=5)
    fig = plots.plot_race(result, resolution=RES)
    assert fig._suptitle.get_text().startswith("quadratic (kappa=100): 5 steps")
    plt_close(fig)
    fig = plots.plot_landscape(land, resolution=RES)
    assert fig.axes[0].get_title() == "quadratic (kappa=100)"
    plt_close(fig)
    assert repr(result).startswith("Race on quadratic (kappa=100) from")


def test_the_loss_panel_shows_a_race_whose_every_run_diverged_and_one_of_zero_steps():
    """Both were an empty panel: the climb of runs that all diverged was cut to the start
    value's range, and a 0-step race's one point sat on the axis with no marker."""
    from optimlab.landscapes import race
    from optimlab.landscapes.plots import plt_close

    diverged = race("rosenbrock", {"sgd": {"lr": 1.0}}, steps=30)
    assert diverged.metrics["sgd"].diverged
    fig = plots.plot_race(diverged, resolution=RES)
    (loss_ax,) = [ax for ax in fig.axes if ax.get_title() == "loss"]
    low, high = loss_ax.get_ylim()
    assert loss_ax.get_yscale() == "log" and high > 1e100 and low < 24.2
    plt_close(fig)
    still = race("rosenbrock", {"adam": {"lr": 0.1}}, steps=0)
    fig = plots.plot_race(still, resolution=RES)
    (loss_ax,) = [ax for ax in fig.axes if ax.get_title() == "loss"]
    line = _lines(loss_ax, "loss:")["adam"]
    low, high = loss_ax.get_xlim()
    assert line.get_marker() == "o" and low < 0 < high
    plt_close(fig)


def test_a_race_whose_every_run_overflows_saves_as_png_and_gif(tmp_path, monkeypatch):
    """SGD at lr 1e3 on the quadratic climbs to about 1e308 before it is infinite: the loss
    panel's limits (lo / 2, hi * 2) overflowed to infinity, and saving raised OverflowError
    (``optimlab race quadratic --optimizers sgd --lr sgd=1000 --out q.png``)."""
    from optimlab.landscapes import race
    from optimlab.landscapes.plots import plt_close

    _no_ffmpeg(monkeypatch)  # no MP4 here
    diverged = race("quadratic", {"sgd": {"lr": 1e3}}, steps=50)
    assert diverged.metrics["sgd"].diverged
    fig = diverged.plot()
    (loss_ax,) = [ax for ax in fig.axes if ax.get_title() == "loss"]
    low, high = loss_ax.get_ylim()
    assert np.isfinite([low, high]).all() and 0 < low < 14.4 and high > 1e100
    fig.savefig(tmp_path / "q1.png", dpi=40)
    plt_close(fig)
    _check_image(tmp_path / "q1.png")
    written = diverged.animate(tmp_path / "q1.gif", frames=3, fps=5, dpi=30, resolution=20)
    assert _check_image(written[0]) > 1


# --------------------------------------------------------------------------- where and how animate writes

@pytest.mark.parametrize("name, written", [
    ("race", "race.gif"),
    ("race.GIF", "race.GIF"),  # kept as spelled, not lower-cased
    ("race.Gif", "race.Gif"),
    ("race.mp4", "race.gif"),  # the suffix is replaced, not added to (race.mp4.gif)
    ("race-lr0.1", "race-lr0.1.gif"),  # a dot in the name is no suffix (lr 0.1 and 0.2 clashed)
    ("adam.v2", "adam.v2.gif"),
])
def test_the_gif_is_the_path_with_its_suffix_replaced(tmp_path, monkeypatch, name, written):
    _no_ffmpeg(monkeypatch)
    assert plots.animate_race(_race(steps=4), tmp_path / name, frames=2, dpi=20,
                              resolution=10) == [tmp_path / written]
    assert sorted(p.name for p in tmp_path.iterdir()) == [written]


def test_a_folder_gets_race_and_the_landscape_name_inside_it(tmp_path, monkeypatch):
    """As ``optimlab race --gif FOLDER`` names it; it used to write FOLDER.gif beside it."""
    _no_ffmpeg(monkeypatch)
    folder = tmp_path / "out"
    folder.mkdir()
    for given in (folder, f"{folder}/"):
        assert plots.animate_race(_race(steps=4), given, frames=2, dpi=20, resolution=10) \
            == [folder / "race-bowl.gif"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    new = f"{tmp_path / 'new'}/"  # ending with a separator: created, as the CLI creates it
    assert plots.animate_race(_race(steps=4), new, frames=2, dpi=20, resolution=10) \
        == [tmp_path / "new" / "race-bowl.gif"]
    with pytest.raises(OSError, match="missing"):
        plots.animate_race(_race(steps=4), f"{tmp_path / 'missing' / 'deeper'}/", frames=2)


@pytest.mark.parametrize("kwargs, match", [
    ({"fps": 0}, r"^fps must be an integer >= 1, got 0$"),  # was ZeroDivisionError
    ({"fps": -5}, r"^fps must be an integer >= 1, got -5$"),  # was OverflowError
    ({"fps": 2.5}, r"^fps must be an integer >= 1, got 2.5$"),
    ({"fps": True}, r"^fps must be"),
    ({"dpi": 0}, r"^dpi must be an integer >= 1, got 0$"),  # was ZeroDivisionError
    ({"dpi": "80"}, r"^dpi must be"),
    ({"frames": 0}, r"^frames must be an integer >= 2, got 0$"),
    ({"frames": 1}, r"^frames must be an integer >= 2, got 1$"),
])
def test_animation_settings_are_checked_before_anything_is_written(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.animate_race(_race(steps=4), tmp_path / "race.gif", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_animation_takes_numpy_integers(tmp_path, monkeypatch):
    _no_ffmpeg(monkeypatch)
    written = plots.animate_race(_race(steps=4), tmp_path / "r.gif", fps=np.int64(5),
                                 frames=np.int64(3), dpi=np.int64(20), resolution=10)
    assert written == [tmp_path / "r.gif"] and _check_image(written[0]) > 1


def test_race_labels_is_documented():
    assert "order" in Race.labels.__doc__
    assert _race().labels == ["gd", "adam", "gd-big"]


# --------------------------------------------------------------------------- argument checks

def test_plot_surface_refuses_a_race_that_is_not_one():
    """land.plot_surface(5) was AttributeError: 'int' object has no attribute 'labels'."""
    with pytest.raises(TypeError, match=r"^race must be a Race .*or None, got int$"):
        _bowl().plot_surface(5)
    with pytest.raises(TypeError, match=r"^race must be a Race"):
        plots.plot_surface(_bowl(), race={"adam": [0.0]})


@pytest.mark.parametrize("resolution", ["x", 1, 0, 2.5, True, 10**7, None])
@pytest.mark.parametrize("draw", ["plot_race", "plot_landscape", "plot_surface", "animate"])
def test_resolution_is_checked_naming_it(draw, resolution, tmp_path):
    """race.plot(resolution="x") was int()'s ValueError, which did not name resolution."""
    race = _race(steps=4)
    calls = {"plot_race": lambda: race.plot(resolution=resolution),
             "plot_landscape": lambda: race.landscape.plot(resolution=resolution),
             "plot_surface": lambda: race.landscape.plot_surface(race, resolution=resolution),
             "animate": lambda: race.animate(tmp_path / "r.gif", frames=2,
                                             resolution=resolution)}
    plt = plots._pyplot()
    before = plt.get_fignums()
    with pytest.raises(ValueError, match=r"^resolution must be an integer in \[2, \d+\], got "):
        calls[draw]()
    assert plt.get_fignums() == before  # refused before a figure was made
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", [5, None, b"race.gif", ["race.gif"]])
def test_animate_refuses_a_path_that_is_not_one(path, tmp_path, monkeypatch):
    """race.animate(5) was a TypeError from deep inside pathlib."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=r"^path must be a str or os\.PathLike .*got "):
        _race(steps=4).animate(path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("when", ["as the figure is made", "before the frames", "while writing"])
def test_an_interrupted_animation_keeps_the_file_already_there(tmp_path, monkeypatch, when):
    """Ctrl-C during an animation used to delete the GIF the user already had (it was
    opened for writing, emptied, then removed): the file is rendered beside it and moved
    over it only when complete, so an interrupt leaves it whole and nothing else behind.
    One that came as the figure was made, after the temporary file was, left the
    temporary behind (the SIGTERM test of tests/test_cli_signals.py failed now and then)."""
    _no_ffmpeg(monkeypatch)
    target = tmp_path / "keep.gif"
    target.write_bytes(b"GIF89a-previous-good-animation")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if when == "as the figure is made":
        import matplotlib.pyplot as plt

        monkeypatch.setattr(plt, "figure", interrupt)
    elif when == "before the frames":
        monkeypatch.setattr(plots, "_freeze_background", interrupt)
    else:
        from matplotlib import animation

        monkeypatch.setattr(animation.PillowWriter, "grab_frame", interrupt)
    with pytest.raises(KeyboardInterrupt):
        plots.animate_race(_race(steps=4), target, frames=2, dpi=20, resolution=10)
    assert target.read_bytes() == b"GIF89a-previous-good-animation"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gif"]


def test_an_animation_replaces_the_file_already_there(tmp_path, monkeypatch):
    """A finished animation takes the place of an older file, with the mode a new file
    gets, and leaves no temporary file."""
    _no_ffmpeg(monkeypatch)
    target = tmp_path / "race.gif"
    target.write_bytes(b"old")
    assert plots.animate_race(_race(steps=4), target, frames=2, dpi=20, resolution=10) \
        == [target]
    assert _check_image(target) > 1 and sorted(p.name for p in tmp_path.iterdir()) == ["race.gif"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_saddle_loss_panel_shows_the_escape():
    """The tour's saddle: runs that escape fall to -1e80, and on a linear axis with a 1e80
    offset every other run lay flat at 0. The axis now ends a window below the escape line
    (min_value, drawn), and a landscape with a minimum keeps its panel."""
    import matplotlib

    matplotlib.use("Agg")
    from optimlab.landscapes import race
    from optimlab.landscapes.plots import plt_close

    ran = race("saddle", {"sgd": {"lr": 1.0}, "momentum": {"lr": 1.78, "momentum": 0.9},
                          "adam": {"lr": 3.16}}, steps=60)
    assert min(ran.metrics[k].final_loss for k in ran.metrics) < -1e50
    fig = plots.plot_race(ran, resolution=RES)
    (loss_ax,) = [ax for ax in fig.axes if ax.get_title() == "loss"]
    low, high = loss_ax.get_ylim()
    assert loss_ax.get_yscale() == "linear" and -100 < low < -4 < 3.24 <= high < 100
    (escape,) = [line for line in loss_ax.lines if line.get_gid() == "escape"]
    assert set(escape.get_ydata()) == {-4.0}
    for label, line in _lines(loss_ax, "loss:").items():  # each run crosses it in view
        y, at = np.asarray(line.get_ydata()), ran.metrics[label].steps_to_escape
        assert low < y[at - 1] and y[at] < -4, label
    plt_close(fig)
    fig = plots.plot_race(race("rosenbrock", {"adam": {"lr": 0.05}}, steps=20), resolution=RES)
    (loss_ax,) = [ax for ax in fig.axes if ax.get_title() == "loss"]
    assert not [line for line in loss_ax.lines if line.get_gid() == "escape"]
    plt_close(fig)


@pytest.mark.parametrize("name", ["race.png", "race.webp", "race.PNG", "race.svg", "race.jpg"])
def test_animate_refuses_another_pictures_suffix(tmp_path, monkeypatch, name):
    """race.webp wrote race.gif, silently; animations are GIF (and MP4)."""
    _no_ffmpeg(monkeypatch)
    with pytest.raises(ValueError, match=r"animations are written as GIF \(and MP4"):
        plots.animate_race(_race(steps=4), tmp_path / name, frames=2, dpi=20, resolution=10)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- a failing ffmpeg

def test_a_failing_ffmpeg_leaves_the_gif_and_warns(tmp_path, monkeypatch):
    """An ffmpeg without an h264 encoder raised CalledProcessError through animate_race
    (``optimlab race --gif``: an internal error, though the GIF was written)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    fake.write_text("#!/bin/sh\ncat > /dev/null\necho 'Unknown encoder libx264' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    _no_ffmpeg(monkeypatch, instead=str(fake))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.warns(UserWarning, match=r"^no MP4 written: ffmpeg failed: Unknown encoder") as got:
        written = plots.animate_race(_race(steps=6), out / "race.gif", frames=3, dpi=20,
                                     resolution=10)
    assert any(w.category.__name__ == "PlotWarning" for w in got)
    assert written == [out / "race.gif"] and _check_image(written[0]) > 1
    assert sorted(p.name for p in out.iterdir()) == ["race.gif"]  # no MP4, no partial file


# --------------------------------------------------------------------------- GIF colours and timing

def test_the_gif_keeps_the_optimizers_exact_colours(tmp_path, monkeypatch):
    """The palette was a median cut of the last frame: sgd's #1f77b4 came out #41789a."""
    from matplotlib import animation

    _no_ffmpeg(monkeypatch)
    grabbed = []
    grab = animation.PillowWriter.grab_frame

    def keep(self, **kwargs):
        grab(self, **kwargs)
        grabbed.append(self._frames[-1].convert("RGB").copy())

    monkeypatch.setattr(animation.PillowWriter, "grab_frame", keep)
    race = _race(steps=30)
    (gif,) = race.animate(tmp_path / "race.gif", frames=6, fps=10, dpi=80, resolution=30)
    source = np.asarray(grabbed[-1], dtype=int)
    with Image.open(gif) as im:
        im.seek(im.n_frames - 1)
        written = np.asarray(im.convert("RGB"), dtype=int)
    for label, hexcolour in plots.race_colors(race).items():
        rgb = np.array([int(hexcolour[i:i + 2], 16) for i in (1, 3, 5)])
        exact = (source == rgb).all(-1)
        assert exact.sum() >= 5, label  # the path is drawn in its colour
        assert (written[exact] == rgb).all(), (label, hexcolour)


def test_gif_frame_delays_keep_the_frame_rate(tmp_path, monkeypatch):
    """int(1000 / fps) truncated: 30 fps played at 30 ms a frame, 10% fast."""
    _no_ffmpeg(monkeypatch)
    race = _race(steps=20)
    for fps in (30, 20, 7):
        (gif,) = race.animate(tmp_path / f"r{fps}.gif", frames=12, fps=fps, dpi=20,
                              resolution=10)
        delays = []
        with Image.open(gif) as im:
            for k in range(im.n_frames):
                im.seek(k)
                delays.append(im.info["duration"])
        grabbed = len(plots._frame_steps(race.steps, 12)) + max(1, fps // 2)
        assert all(d % 10 == 0 and d >= 20 for d in delays), (fps, delays)
        assert abs(sum(delays) - 1000 * grabbed / fps) < 10, (fps, delays)
    assert plots._gif_delays(6, 30) == [30, 40, 30, 30, 40, 30]


@pytest.mark.parametrize("fps", [51, 60, 100])
def test_animation_refuses_fps_a_gif_cannot_show(tmp_path, fps):
    with pytest.raises(ValueError, match=r"^fps must be an integer in \[1, 50\], got "):
        plots.animate_race(_race(steps=4), tmp_path / "race.gif", fps=fps)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- plot_landscape settings

@pytest.mark.parametrize("kwargs, error", [
    ({"levels": 0}, r"^levels must be an integer in \[2, 1000\], got 0$"),
    ({"levels": -3}, r"^levels must be an integer in \[2, 1000\], got -3$"),
    ({"levels": 1}, r"^levels must be an integer in \[2, 1000\], got 1$"),
    ({"levels": 2.5}, r"^levels must be an integer in \[2, 1000\], got 2.5$"),
    ({"levels": True}, r"^levels must be an integer"),
    ({"cmap": "viridiss"}, r"^cmap 'viridiss' is no matplotlib colour map \(did you mean 'viridis'"),
    ({"cmap": 3}, r"^cmap must be a colour map's name or a matplotlib Colormap, got int$"),
])
def test_plot_landscape_checks_levels_and_cmap_before_making_a_figure(kwargs, error):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    with pytest.raises(ValueError, match=error):
        plots.plot_landscape(_bowl(), resolution=RES, **kwargs)
    assert plt.get_fignums() == before


def test_plot_landscape_takes_a_colormap_and_numpy_levels():
    from matplotlib import colormaps

    fig = plots.plot_landscape(_bowl(), resolution=RES, levels=np.int64(5),
                               cmap=colormaps["magma"])
    plots.plt_close(fig)


def test_each_racers_path_and_loss_curve_carry_a_marker_of_their_own():
    """Besides its colour (WCAG 1.4.1): a dashed line already means a diverged run, so a
    racer is told apart by its marker, on the path, at its end and on its loss curve."""
    from optimlab.landscapes import race
    from optimlab.landscapes.plots import plt_close

    raced = race("rosenbrock", {"sgd": {"lr": 1e-3}, "adam": {"lr": 0.05},
                                "rmsprop": {"lr": 0.01}}, steps=40)
    fig = plots.plot_race(raced, resolution=RES)
    markers = {}
    for prefix in ("path:", "end:", "loss:"):
        for label, line in _lines(_panel(fig, prefix), prefix).items():
            markers.setdefault(label, set()).add(line.get_marker())
    plt_close(fig)
    assert all(len(m) == 1 for m in markers.values()) and len(markers) == 3
    assert len({m for ms in markers.values() for m in ms} - {"None", ""}) == 3


def test_the_switches_of_the_pictures_are_bools(tmp_path):
    """race.plot(show_loss="no") drew for 0.3 s and failed in int(); plot_surface(log="yes")
    and optimlab.available(dense="yes") took any value for true."""
    import optimlab
    from optimlab.optim.base import ArgumentTypeError

    race = _race(steps=5)
    with pytest.raises(ArgumentTypeError, match=r"^show_loss must be a bool, got 'no'$"):
        race.plot(show_loss="no")
    with pytest.raises(ArgumentTypeError, match=r"^show_loss must be a bool, got 1$"):
        race.animate(tmp_path / "r.gif", show_loss=1)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ArgumentTypeError, match=r"^log must be a bool, got 'yes'$"):
        race.landscape.plot_surface(race, log="yes")
    with pytest.raises(ArgumentTypeError, match=r"^dense must be a bool, got 'yes'$"):
        optimlab.available(dense="yes")
