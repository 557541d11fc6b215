"""One colour per optimizer, everywhere: races, animations, training plots, profiles and the
playground all read it from here.

Every registry name (classes and aliases: ``gd``, ``momentum`` and ``sgd`` are three
optimizers on a race plot, so three colours) owns one colour of :data:`COLORS`, no two the
same. The optimizers raced together most often (:data:`COLOR_FIRST`) take the first, most
distinct colours; the rest follow in registry (catalog) order, and the optimizers
:func:`~optimlab.optim.registry.register` adds come after them (the table is built again
when it adds one, so no built-in's colour moves). Spellings go through the
registry's :func:`~optimlab.optim.registry.resolve` (``"Adam"`` and ``" adam "`` are
``adam``), so :func:`color` of an alias is the alias's own, distinct from its class's.

:func:`label_colors` colours the lines of one figure: a label that is a registry name (or is
mapped to one by ``names``) gets its optimizer's colour; labels that would repeat a colour
(``"adam"`` and ``"fast adam"``, both Adam) and labels that are no optimizer take free
colours, so one figure never shows two lines in one colour.

This module stands above the registry: it reads the registry's names, and neither the
registry nor the catalog imports it.
"""
from __future__ import annotations

import colorsys
import functools
import itertools
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from .registry import _on_change, available, resolve

__all__ = ["COLORS", "COLOR_FIRST", "LINE_MARKERS", "LINE_STYLES", "MIN_DELTA_E", "PAIR_GREYS",
           "PAIR_MARKERS", "PALETTE", "SAM_COLOR", "color", "colors", "label_colors",
           "label_markers", "pair_styles", "shade", "variant_styles"]

#: The palette: matplotlib's ``tab10`` first, then darker and other distinct shades, one for
#: every registry name and a few to spare. Any two differ by at least :data:`MIN_DELTA_E`
#: (CIE76, the distance in CIELAB), so no two optimizers' lines can be taken for each other;
#: none has a relative luminance above 0.62 (lines stay visible on the light
#: contours, and the basins' pastel fills stay lighter than every optimizer).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#0077ff", "#990099", "#dd0077",
          "#883300", "#dd77ff", "#7b4173", "#637939", "#4433aa", "#000000", "#005533",
          "#b8860b", "#008080", "#9c9ede", "#00bb99", "#ccaa88", "#882244", "#668800",
          "#d6616b", "#88aa88", "#006611", "#e7969c", "#3399ff", "#ff3366", "#74c476",
          "#6baed6", "#8c6d31", "#225566", "#b5cf6b", "#554455", "#ff7755", "#990022",
          "#fdae6b", "#990066", "#ee44bb", "#cc7755", "#997799", "#8866ee")

#: The least CIE76 distance (Euclidean in CIELAB, D65) between two colours of :data:`COLORS`:
#: about 2.3 is the least an eye tells apart side by side; at 20 two thin lines on a plot are
#: told apart at a glance (``tests/optim/test_palette.py`` checks every pair).
MIN_DELTA_E = 20.0

#: SAM's colour is the palette's dark slate, set apart from SGD's pink on purpose: the slices
#: draw the two side by side (SAM's flatter minimum beside SGD's), and the magenta it had
#: before, though 25 apart in CIELAB, read as a deeper shade of SGD's.
SAM_COLOR = "#225566"

#: Lines that stand for two optimizers at once (the straight line between two solutions):
#: greys, each with a marker, so that no such line can be read as one optimizer's; none of
#: these greys is an optimizer's colour (:func:`pair_styles`).
PAIR_GREYS = ("#1a1a1a", "#5e5e5e", "#a0a0a0")
#: the markers of :func:`pair_styles`, one per pair with the greys: 24 pairs told apart
PAIR_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

#: the same tuple under the name the plotting module has always used
PALETTE = COLORS

#: Who gets the first (most distinct) colours: the optimizers most often raced together;
#: the rest follow in registry order.
COLOR_FIRST = ("gd", "momentum", "adam", "rmsprop", "adagrad", "nag", "sgd", "adamw", "lion",
               "adadelta")


def _extra() -> Iterator[str]:
    """Colours past the palette (a registry or a figure larger than it): golden-angle hues
    at three lightnesses, deterministic and never one of :data:`COLORS`."""
    seen = set(COLORS)
    i = 0
    while True:
        hue = (i * 0.618033988749895) % 1.0
        value, saturation = ((0.85, 0.75), (0.6, 0.85), (0.95, 0.45))[(i // 7) % 3]
        r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
        hexa = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
        i += 1
        if hexa not in seen:
            seen.add(hexa)
            yield hexa


@functools.cache
def _table() -> MappingProxyType:
    """Registry name -> colour for every registry name, in colour order (built once)."""
    names = [entry.name for entry in available()]
    order = [n for n in COLOR_FIRST if n in names] + [n for n in names if n not in COLOR_FIRST]
    extra = _extra()
    return MappingProxyType({name: COLORS[i] if i < len(COLORS) else next(extra)
                             for i, name in enumerate(order)})


# built again when register() or unregister() changes the names: the registered ones come
# after the built-ins, so every built-in keeps its colour
_on_change(_table.cache_clear)


def _spare() -> list[str]:
    """The palette's colours no registry name owns."""
    owned = set(_table().values())
    return [c for c in COLORS if c not in owned]


def colors() -> dict[str, str]:
    """The colour of every registry name (classes and aliases), no two the same."""
    return dict(_table())


def _lookup(name) -> str | None:
    """The colour of registry name ``name`` in any spelling, or None if it is none."""
    if not isinstance(name, str):
        return None
    try:
        entry = resolve(name)
    except ValueError:
        return None
    return _table()[entry.name]


def color(name: str) -> str:
    """The colour (``"#rrggbb"``) of registry name ``name``, in any spelling the registry
    accepts; ``ValueError`` (the registry's, with suggestions) if it is no optimizer."""
    return _table()[resolve(name).name]


def label_colors(labels: Iterable, names: Mapping | None = None) -> dict:
    """A colour per label of one figure, no two the same.

    A label that is a registry name, or whose ``names[label]`` is one (a race's
    ``{"fast adam": "adam"}``), gets that optimizer's :func:`color`. When labels would share
    a colour, a label that is itself the name keeps it (the registry's own spelling before
    another: ``"adam"`` before ``"Adam"``), else the first in sorted order. The
    others, and labels that are no optimizer, take in sorted order colours no label of the
    figure uses: the palette's spare colours, then those of the least raced optimizers (the
    end of the palette), then generated ones, so any number of labels get distinct colours.
    Deterministic: the same labels get the same colours in any order.
    """
    labels = list(labels)
    names = names or {}
    unique = sorted(set(labels), key=str)
    own = {label: _lookup(names.get(label, label)) for label in unique}
    itself = {label: own[label] is not None and _lookup(label) == own[label] for label in unique}
    out: dict = {}
    used: set[str] = set()
    # the optimizers' own colours: the label that is the name first (spelled as the
    # registry spells it before another spelling: "adam" before "Adam"), then sorted order
    table = _table()
    for label in sorted(unique, key=lambda lab: (not itself[lab], not (
            isinstance(lab, str) and lab in table), str(lab))):
        if own[label] is not None and own[label] not in used:
            out[label] = own[label]
            used.add(own[label])
    # the rest, in sorted order: free colours, those of the least raced optimizers first
    free = (c for c in itertools.chain(_spare(), reversed(_table().values()), _extra())
            if c not in used)
    for label in unique:
        if label not in out:
            out[label] = next(free)
            used.add(out[label])
    return {label: out[label] for label in labels}


#: Markers that tell a figure's lines apart without their colours (:func:`label_markers`):
#: a reader who cannot tell two hues apart matches a line to its legend entry by its marker
#: (WCAG 2.1, 1.4.1 "use of color"). No ``*``: figures mark a best point with a star.
LINE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def label_markers(labels: Iterable) -> dict:
    """A marker of :data:`LINE_MARKERS` per label, in the order given (the figure's legend
    order), no two the same up to ten labels; the colours stay :func:`label_colors`'."""
    labels = list(dict.fromkeys(labels))
    return {label: LINE_MARKERS[i % len(LINE_MARKERS)] for i, label in enumerate(labels)}


#: Line styles of the variants of one optimizer in one figure (:func:`variant_styles`).
LINE_STYLES = ("-", "--", ":", "-.")


def shade(hexa: str, k: int) -> str:
    """Shade ``k`` of colour ``hexa``: the colour itself for 0, then, for 1, 2, 3, ...,
    the same hue alternately darker and lighter (HLS lightness moved by 0.15, 0.30, ...
    towards black or white, saturation kept)."""
    if k == 0:
        return hexa
    r, g, b = (int(hexa[i:i + 2], 16) / 255 for i in (1, 3, 5))
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    step = 0.15 * ((k + 1) // 2)
    light = max(0.0, light - step) if k % 2 else min(1.0, light + step)
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def pair_styles(labels: Iterable) -> dict:
    """``(colour, marker)`` per label of a line that joins two optimizers' solutions
    (``"sgd -> adam"``), in the order given: a grey of :data:`PAIR_GREYS` and a marker of
    :data:`PAIR_MARKERS`, no two labels the same up to 24; a line in an optimizer's colour
    would be read as that optimizer's."""
    labels = list(dict.fromkeys(labels))
    return {label: (PAIR_GREYS[i % len(PAIR_GREYS)], PAIR_MARKERS[i % len(PAIR_MARKERS)])
            for i, label in enumerate(labels)}


def variant_styles(labels: Iterable, names: Mapping) -> dict:
    """``(colour, line style)`` per label of a figure whose labels are runs of optimizers,
    ``names[label]`` each one's registry name: every run in its optimizer's :func:`color`.
    Variants of one optimizer (``"sgd, near limit"`` and ``"sgd, safe"``) keep that hue, and
    are told apart by :func:`shade` and :data:`LINE_STYLES`: the first (the label that is the
    name itself, else the first given) the colour itself with a solid line, the next a darker
    shade, dashed, and so on. Unlike :func:`label_colors`, a variant never takes the colour of
    another optimizer."""
    labels = list(dict.fromkeys(labels))
    seen: dict[str, int] = {}
    out = {}
    ordered = sorted(labels, key=lambda lab: _lookup(lab) is None
                     or _lookup(lab) != _lookup(names[lab]))
    for label in ordered:
        base = color(names[label])
        k = seen[base] = seen.get(base, -1) + 1
        out[label] = (shade(base, k), LINE_STYLES[k % len(LINE_STYLES)])
    return {label: out[label] for label in labels}
