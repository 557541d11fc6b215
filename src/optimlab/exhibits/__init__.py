"""The tutorials' exhibits: small, seeded experiments that each print a table and draw a figure.

Every exhibit is a function returning a result object (a :class:`~.base.Demo`) with the
computed numbers, ``.table()`` (plain text for the terminal) and ``.plot()`` (a matplotlib
``Figure``; matplotlib is imported only there). :data:`DEMOS` maps the names
(:data:`DEMO_NAMES`) to those functions and :func:`run_demo` runs one by name, optionally
writing ``<name>.png``; ``optimlab demo NAME`` is the same from the command line.

===================  =======================  ==================================================
name                 module                   what it shows
===================  =======================  ==================================================
``effective-lr``     :mod:`.schedules`        Adagrad's effective learning rate
                                              :math:`\\gamma/\\sqrt{G_t}` decays as
                                              :math:`1/\\sqrt t` under a constant gradient;
                                              RMSprop's settles.
``ema``              :mod:`.schedules`        exponential moving averages of a noisy series,
                                              with and without the bias correction
                                              :math:`1/(1-\\beta^t)`.
``ill-conditioned``  :mod:`.landscape`        SGD, momentum, RMSprop and Adam on
                                              :math:`\\theta_1^2 + 10\\theta_2^2` and on
                                              the same ravine turned by 45 degrees:
                                              per-coordinate steps fit only the
                                              axis-aligned one.
``saddle``           :mod:`.landscape`        gradient descent is slow to leave a saddle;
                                              momentum, Adam and gradient noise leave it
                                              sooner.
``basins``           :mod:`.basins`           local minima as basins of attraction: the
                                              minimum each optimizer reaches from a grid of
                                              starts on two wells.
``sparse``           :mod:`.sparse_features`  Adagrad gives a rarely active feature a larger
                                              step than a frequent one.
``gd-variants``      :mod:`.batch_sizes`      batch, mini-batch and stochastic gradient descent
                                              on least squares.
===================  =======================  ==================================================

Nothing is typed in: every number comes from running the optimizers of :mod:`optimlab`
(the landscape exhibits through :func:`optimlab.landscapes.race` and
:func:`~optimlab.landscapes.race.run_starts`, the others through
the optimizers or a one-member :class:`~optimlab.optim.population.Population`), and every
exhibit is seeded and runs in a second or two on a laptop CPU.

Dependencies point one way: :mod:`optimlab.optim` <- :mod:`optimlab.landscapes` <- this
package <- the command line, the tour and the playground; nothing in ``landscapes`` imports
the exhibits.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from .._files import save_figure
from ..optim.base import ArgumentTypeError
from .base import Demo, pyplot
from .basins import BasinsDemo, basins
from .batch_sizes import GDRun, GDVariantsDemo, gd_variants
from .landscape import (
    AlignmentDemo,
    IllConditionedDemo,
    SaddleDemo,
    ill_conditioned,
    ravine_alignment,
    saddle,
)
from .schedules import EffectiveLRDemo, EMADemo, effective_lr, ema
from .sparse_features import SparseDemo, sparse

__all__ = [
    "DEMOS",
    "DEMO_NAMES",
    "demo_key",
    "run_demo",
    "effective_lr",
    "ema",
    "ill_conditioned",
    "saddle",
    "basins",
    "ravine_alignment",
    "sparse",
    "gd_variants",
    "Demo",
    "EffectiveLRDemo",
    "EMADemo",
    "IllConditionedDemo",
    "SaddleDemo",
    "BasinsDemo",
    "AlignmentDemo",
    "SparseDemo",
    "GDVariantsDemo",
    "GDRun",
]

#: name -> the function that runs the exhibit (with its defaults: the tutorials' numbers).
DEMOS: dict[str, Callable[..., Demo]] = {
    "effective-lr": effective_lr,
    "ema": ema,
    "ill-conditioned": ill_conditioned,
    "saddle": saddle,
    "basins": basins,
    "sparse": sparse,
    "gd-variants": gd_variants,
}

#: the exhibits' names, in the tutorials' order.
DEMO_NAMES: tuple[str, ...] = tuple(DEMOS)


def demo_key(name: str) -> str:
    """The exhibit ``name`` as :data:`DEMOS` spells it: case-insensitive, ``_`` for ``-``.

    >>> demo_key("Ill_Conditioned")
    'ill-conditioned'
    >>> demo_key("sadle")
    Traceback (most recent call last):
    ValueError: unknown demo 'sadle'; did you mean saddle? (known: ...)
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"a demo's name must be a string such as {next(iter(DEMOS))!r}, "
                                f"got {name!r}")
    key = name.strip().lower().replace("_", "-")
    if key not in DEMOS:
        close = difflib.get_close_matches(key, list(DEMOS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown demo {name!r}{hint} (known: {', '.join(DEMOS)})")
    return key


def run_demo(name: str, out_dir: str | Path | None = None, **kwargs) -> Demo:
    """Run the exhibit ``name`` (see :data:`DEMOS`); write ``<out_dir>/<name>.png`` if given.

    Names are case-insensitive and ``_`` stands for ``-``.

    Raises:
        ValueError: for an unknown name, with close matches and the exhibits' names
            (:func:`demo_key`); ``TypeError`` for a name that is not a string.
    """
    key = demo_key(name)
    result = DEMOS[key](**kwargs)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        fig = result.plot()
        try:
            save_figure(fig, out / f"{key}.png", dpi=100)  # a failed save keeps the old picture
        finally:
            pyplot().close(fig)
    return result
