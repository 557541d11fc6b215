"""One colour per optimizer everywhere: the catalog's palette and every figure that reads it
(races, training reports, profiles, exhibits, the playground's API)."""

from __future__ import annotations

import itertools
import math
import re

import pytest

import optimlab
from optimlab.optim import palette
from optimlab.optim.registry import available, resolve

HEX = re.compile(r"^#[0-9a-f]{6}$")
NAMES = [entry.name for entry in available()]


# ----------------------------------------------------------------------------- the palette

def test_every_registry_name_has_its_own_colour():
    table = palette.colors()
    assert list(table) != [] and set(table) == set(NAMES)
    assert all(HEX.match(c) for c in table.values())
    assert len(set(table.values())) == len(table)  # no two names share a colour
    for name in NAMES:
        assert palette.color(name) == table[name]
    # the optimizers raced together most often take the first (most distinct) colours
    first = [n for n in palette.COLOR_FIRST if n in NAMES]
    assert [table[n] for n in first] == list(palette.COLORS[:len(first)])


def _lab(color: str) -> tuple[float, float, float]:
    """CIELAB (D65) of ``#rrggbb``, from the sRGB and CIE definitions."""
    rgb = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = ((0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047,
           0.2126729 * r + 0.7151522 * g + 0.0721750 * b,
           (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883)
    fx, fy, fz = (t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
                  for t in xyz)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def test_no_two_colours_can_be_taken_for_each_other():
    """Every pair of the palette (so every pair of optimizers) is at least MIN_DELTA_E apart in
    CIELAB: SGD and Yogi were 9.7 apart, GD and SparseAdam 4.6."""
    assert palette.MIN_DELTA_E >= 20
    assert math.dist(_lab("#ffffff"), _lab("#000000")) == pytest.approx(100, abs=1e-3)
    table = palette.colors()
    for (x, a), (y, b) in itertools.combinations([*table.items(),
                                                  *(("spare", c) for c in palette._spare())], 2):
        assert math.dist(_lab(a), _lab(b)) >= palette.MIN_DELTA_E, (x, a, y, b)


def test_the_most_raced_optimizers_keep_the_colours_the_docs_describe():
    assert {n: palette.color(n) for n in palette.COLOR_FIRST} == {
        "gd": "#1f77b4", "momentum": "#ff7f0e", "adam": "#2ca02c", "rmsprop": "#d62728",
        "adagrad": "#9467bd", "nag": "#8c564b", "sgd": "#e377c2", "adamw": "#7f7f7f",
        "lion": "#bcbd22", "adadelta": "#17becf"}


def test_spellings_and_aliases_go_through_the_registry():
    assert palette.color("Adam") == palette.color(" ADAM ") == palette.color("adam")
    for entry in available():
        # an alias has its own colour; a class's every spelling its class's
        assert palette.color(entry.name.upper()) == palette.color(entry.name)
        assert entry.info.name in NAMES
        if entry.alias_of is not None:
            assert resolve(entry.name).alias_of == entry.alias_of
            assert palette.color(entry.name) != palette.color(entry.alias_of)  # momentum is not sgd
    with pytest.raises(ValueError, match="unknown optimizer"):
        palette.color("adamm")


def test_colors_is_a_copy():
    table = palette.colors()
    table["adam"] = "#ffffff"
    assert palette.color("adam") != "#ffffff" and palette.colors()["adam"] != "#ffffff"


# ----------------------------------------------------------------------------- label_colors

def test_labels_that_are_optimizers_get_their_colour():
    out = palette.label_colors(["adam", "sgd", "Momentum"])
    assert out == {"adam": palette.color("adam"), "sgd": palette.color("sgd"),
                   "Momentum": palette.color("momentum")}
    # a label mapped to a registry name gets that optimizer's colour
    out = palette.label_colors(["sgd, safe", "fast adam"],
                               {"sgd, safe": "sgd", "fast adam": "adam"})
    assert out == {"sgd, safe": palette.color("sgd"), "fast adam": palette.color("adam")}


def test_the_registry_spelling_keeps_the_colour_before_another_spelling():
    """"Adam" sorted before "adam", so the registry's own spelling lost Adam's colour."""
    out = palette.label_colors(["adam", "Adam", "fast adam"], {"fast adam": "adam"})
    assert out["adam"] == palette.color("adam") and len(set(out.values())) == 3
    assert palette.label_colors(["Adam", "fast adam"], {"fast adam": "adam"})["Adam"] == \
        palette.color("adam")  # without it, another spelling of the name keeps it


def test_two_variants_of_one_optimizer_get_two_colours():
    names = {"adam": "adam", "fast adam": "adam", "adam, slow": "adam"}
    out = palette.label_colors(["fast adam", "adam", "adam, slow"], names)
    assert out["adam"] == palette.color("adam")  # the label that is the name keeps it
    assert len(set(out.values())) == 3
    # without the plain label, the first in sorted order keeps the colour
    out = palette.label_colors(["fast adam", "adam, slow"], names)
    assert out["adam, slow"] == palette.color("adam") and out["fast adam"] != out["adam, slow"]
    # a free colour is never one an optimizer of the figure owns
    out = palette.label_colors(["gd", "momentum", "gd + noise"], {"gd + noise": "gd"})
    assert out["gd"] == palette.color("gd") and out["momentum"] == palette.color("momentum")
    assert out["gd + noise"] not in {palette.color("gd"), palette.color("momentum")}


@pytest.mark.parametrize("n", [1, 2, 10, len(palette.COLORS), len(palette.COLORS) + 15])
def test_one_figure_never_repeats_a_colour(n):
    labels = [f"run {i}" for i in range(n)]
    out = palette.label_colors(labels)
    assert list(out) == labels and len(set(out.values())) == n
    assert all(HEX.match(c) for c in out.values())
    if n <= len(palette.COLORS):
        assert set(out.values()) <= set(palette.COLORS)
    # mixed: every registry name plus variants and strangers
    mixed = NAMES + [f"{name} v2" for name in NAMES[:n]] + labels
    out = palette.label_colors(mixed, {f"{name} v2": name for name in NAMES})
    assert len(set(out.values())) == len(set(mixed))
    assert all(out[name] == palette.color(name) for name in NAMES)


def test_label_colors_is_deterministic_in_any_order():
    labels = ["adam", "fast adam", "gd", "my run", "sgd, safe", "zeta"]
    names = {"fast adam": "adam", "sgd, safe": "sgd"}
    first = palette.label_colors(labels, names)
    for shuffled in (labels[::-1], labels[2:] + labels[:2], sorted(labels, key=len)):
        out = palette.label_colors(shuffled, names)
        assert list(out) == shuffled and out == first
    assert palette.label_colors(labels + ["adam"], names) == first  # duplicates: one colour


def test_plots_label_colors_is_the_catalogs():
    from optimlab.landscapes import plots

    labels = ["adam", "fast adam", "other"]
    names = {"fast adam": "adam"}
    assert plots.label_colors(labels, names) == palette.label_colors(labels, names)
    assert plots.label_colors(labels) == palette.label_colors(labels)
    assert plots.PALETTE == palette.COLORS


# ----------------------------------------------------------------------------- consumers

def _gid_colors(fig, prefix: str) -> dict[str, str]:
    from matplotlib.colors import to_hex

    out = {}
    for ax in fig.axes:
        for line in ax.lines:
            gid = line.get_gid() or ""
            if gid.startswith(prefix):
                out[gid[len(prefix):]] = to_hex(line.get_color())
    return out


def test_the_same_optimizer_has_the_same_colour_everywhere():
    pytest.importorskip("matplotlib")
    import numpy as np
    from matplotlib.colors import to_hex

    from optimlab.bench.profile import Profile
    from optimlab.bench.report import _colors, _sensitivity_figure, _Sweep
    from optimlab.bench.store import RunStore
    from optimlab.landscapes import race
    from optimlab.landscapes.plots import plot_race, plt_close, race_colors
    from optimlab.web import api

    want = {name: palette.color(name) for name in ("momentum", "adam", "lion", "sgd")}

    # the playground's optimizer list
    rows = {row["name"]: row["color"] for row in api.optimizers()}
    # (SparseAdam takes sparse gradients only: it is not offered there)
    assert rows == {name: c for name, c in palette.colors().items()
                    if not optimlab.resolve(name).capabilities.sparse_only}
    assert api.colors() == palette.colors() and api.COLORS == palette.COLORS

    # a race plot: labels that are registry names, and one whose name is in race.hparams
    r = race("rosenbrock", {"adam": {"lr": 0.05}, "momentum": {"lr": 1e-3},
                            "sgd, safe": {"name": "sgd", "lr": 1e-4}}, steps=4)
    fig = plot_race(r, resolution=20)
    paths, losses = _gid_colors(fig, "path:"), _gid_colors(fig, "loss:")
    plt_close(fig)
    assert paths == losses == race_colors(r)
    assert paths == {"adam": want["adam"], "momentum": want["momentum"],
                     "sgd, safe": want["sgd"]}

    # a training report's learning-rate sensitivity figure
    store = RunStore(":memory:")
    sweep = store.open_sweep({"task": "pkg.mod:loss", "optimizers": ["momentum", "adam",
                                                                     "lion"]})
    members = [{"optimizer": o, "hparams": {"lr": lr}, "seed": 0}
               for o in ("momentum", "adam", "lion") for lr in (0.01, 0.1)]
    for run, member in zip(store.add_runs(sweep, members), members):
        value = 0.5 + member["hparams"]["lr"]
        store.finish_run(run, "finished", summary={"final_metric": value,
                                                   "final_test_loss": value})
    fig = _sensitivity_figure(_Sweep(store, sweep, None, None))
    best = _gid_colors(fig, "best:")
    plt_close(fig)
    store.close()
    assert best == {n: want[n] for n in ("momentum", "adam", "lion")}
    assert _colors(["lion", "momentum"]) == {"lion": want["lion"], "momentum": want["momentum"]}

    # a performance profile
    taus = np.linspace(1, 4, 5)
    profile = Profile({"w": {"adam": 1.0, "lion": 2.0}}, taus,
                      {"adam": np.ones(5), "lion": np.linspace(0, 1, 5)},
                      {"adam": 1.0, "lion": 0.5})
    fig = profile.plot()
    drawn = {line.get_label().split(" ")[0]: to_hex(line.get_color())
             for line in fig.axes[0].lines}
    plt_close(fig)
    assert drawn == {"adam": want["adam"], "lion": want["lion"]}


def test_the_effective_lr_exhibit_uses_the_catalog_colours():
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_hex

    from optimlab.exhibits.schedules import effective_lr
    from optimlab.landscapes.plots import plt_close

    fig = effective_lr(steps=100, at=(1, 10, 100)).plot()
    drawn = {line.get_label().split(" ")[0]: to_hex(line.get_color())
             for line in fig.axes[0].lines if line.get_label()[:1].isupper()}
    plt_close(fig)
    assert drawn == {"Adagrad": palette.color("adagrad"), "RMSprop": palette.color("rmsprop")}


def test_variants_of_one_optimizer_keep_its_hue():
    """Exhibits draw every run in its optimizer's colour: variants in shades of it, never in
    another optimizer's colour (as label_colors would give them)."""
    import colorsys

    names = {"sgd, near limit": "sgd", "sgd, safe": "sgd", "momentum": "momentum",
             "sgd": "sgd"}
    out = palette.variant_styles(["sgd, near limit", "sgd, safe", "momentum", "sgd"], names)
    assert list(out) == ["sgd, near limit", "sgd, safe", "momentum", "sgd"]
    assert out["sgd"] == (palette.color("sgd"), "-")  # the label that is the name first
    assert out["momentum"] == (palette.color("momentum"), "-")
    shades = [out[k][0] for k in ("sgd", "sgd, near limit", "sgd, safe")]
    assert len(set(shades)) == 3 and [out[k][1] for k in ("sgd, near limit", "sgd, safe")] \
        == ["--", ":"]
    hues = [colorsys.rgb_to_hls(*(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)))[0]
            for c in shades]
    assert max(hues) - min(hues) < 0.01  # one hue, up to 8-bit rounding
    assert not set(shades[1:]) & set(palette.COLORS)
    assert palette.shade("#1f77b4", 0) == "#1f77b4"
    assert palette.shade("#808080", 1) < "#808080" < palette.shade("#808080", 2)


def test_sam_is_not_a_shade_of_sgd():
    """The slices set SAM beside SGD; SAM's magenta (#ee44bb) was 25 from SGD's pink in
    CIELAB and read as a deeper shade of it. The optimizers drawn together in one slice
    (slices.DEFAULT_OPTIMIZERS) are now each at least 40 apart."""
    from optimlab.bench.slices import DEFAULT_OPTIMIZERS

    assert palette.color("sam") == palette.SAM_COLOR
    together = [palette.color(n) for n in DEFAULT_OPTIMIZERS]
    for a, b in itertools.combinations(together, 2):
        assert math.dist(_lab(a), _lab(b)) >= 40, (a, b)
    # ... and not in SGD's hue family at all: hues more than 60 degrees apart
    import colorsys

    def hue(c):
        return colorsys.rgb_to_hls(*(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)))[0] * 360

    gap = abs(hue(palette.color("sam")) - hue(palette.color("sgd"))) % 360
    assert min(gap, 360 - gap) > 60


def test_lines_between_two_optimizers_are_in_no_optimizers_colour():
    labels = [f"{a} -> {b}" for a, b in itertools.combinations(
        ["sgd", "momentum", "adam", "sam", "lion", "gd", "nag"], 2)]
    styles = palette.pair_styles(labels)
    assert list(styles) == labels and len(set(styles.values())) == len(labels)  # 21 pairs
    owned = set(palette.colors().values())
    for colour, marker in styles.values():
        assert colour not in owned and colour[1:3] == colour[3:5] == colour[5:7]  # a grey
        assert marker in palette.PAIR_MARKERS


def test_label_markers_tell_ten_lines_apart_and_leave_the_star_to_best_points():
    from optimlab.optim.palette import LINE_MARKERS, label_markers

    labels = [f"opt{i}" for i in range(12)]
    markers = label_markers(labels + ["opt0"])  # a repeated label keeps its one marker
    assert list(markers) == labels
    assert len(set(list(markers.values())[:10])) == 10 and markers["opt10"] == markers["opt0"]
    assert "*" not in LINE_MARKERS
