"""What every exhibit's figure and table must be (shared by the tests of this folder)."""

import contextlib
from pathlib import Path

import numpy as np
import pytest

#: Every exhibit's figure is also saved here for a look.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "exhibits"


def check_png(path):
    """A real picture: big enough, not blank, with lines, text and colours."""
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as img:
        img.load()
        assert img.width > 300 and img.height > 200
        pixels = np.asarray(img.convert("RGB"), dtype=float)
    assert pixels.std() > 10  # not blank
    rgb = pixels.astype(np.int64) @ np.array([65536, 256, 1])
    assert len(np.unique(rgb)) > 50  # lines, text, colours


@contextlib.contextmanager
def drawn(demo):
    """``demo.plot()``'s figure, closed when the block ends (the test is skipped without
    matplotlib)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = demo.plot()
    try:
        yield fig
    finally:
        plt.close(fig)


def lines_by_gid(fig) -> dict:
    """``gid -> line`` of the lines of ``fig`` that have a gid."""
    return {line.get_gid(): line for ax in fig.axes for line in ax.lines if line.get_gid()}


def check_figure(demo):
    """``demo.plot()`` is a Figure (saved as ``<name>.png``); its table and title print."""
    with drawn(demo) as fig:
        from matplotlib.figure import Figure

        assert isinstance(fig, Figure)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / f"{demo.name}.png"
        fig.savefig(target, dpi=100)
    check_png(target)
    assert isinstance(demo.table(), str) and demo.table().count("\n") >= 2
    assert demo.title in str(demo)


def drawn_styles(fig, prefix: str) -> dict:
    """``gid suffix -> (colour, line style)`` of the lines of ``fig`` whose gid starts with
    ``prefix``."""
    from matplotlib.colors import to_hex

    return {line.get_gid()[len(prefix):]: (to_hex(line.get_color()), line.get_linestyle())
            for ax in fig.axes for line in ax.lines
            if (line.get_gid() or "").startswith(prefix)}


def hue(color: str) -> float:
    """The HLS hue of ``#rrggbb`` (0..1)."""
    import colorsys

    return colorsys.rgb_to_hls(*(int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)))[0]


def same_hue(a: str, b: str) -> bool:
    """Whether two colours are shades of one hue (up to 8-bit rounding)."""
    d = abs(hue(a) - hue(b))
    return min(d, 1 - d) < 0.01
