"""What every exhibit shares: the result base class, pyplot on demand, table text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..optim.base import check_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Demo", "check_seed", "pyplot", "steps_text"]


def check_seed(seed: Any) -> int:
    """``seed`` as an ``int``, or ``ValueError`` naming it unless it is an integer (Python's
    or NumPy's, not a bool) in [0, 2**63) (:func:`~optimlab.optim.base.check_int`'s rule),
    so every exhibit that draws data (``ema``, ``sparse``, ``gd-variants``, ``saddle``)
    refuses a bad seed alike rather than failing inside ``torch.Generator.manual_seed``.

    >>> check_seed(-1)
    Traceback (most recent call last):
    ValueError: seed must be an integer >= 0, got -1
    """
    check_int("seed", seed)
    return int(seed)


def pyplot():
    """``matplotlib.pyplot``, on the Agg backend when no backend has been chosen.

    Imported only when a figure is drawn, so the exhibits run without matplotlib.
    """
    from ..landscapes.plots import _pyplot

    return _pyplot()


def steps_text(value: int | None) -> str:
    """A step count for a table: the number, or ``"never"`` for None."""
    return "never" if value is None else str(value)


class Demo:
    """What every exhibit's result shares: a name, a title and a printable table.

    Subclasses (dataclasses holding the computed numbers) implement :meth:`table` (plain
    text for the terminal) and :meth:`plot` (a matplotlib ``Figure``).
    """

    name: str = ""
    title: str = ""

    def table(self) -> str:  # pragma: no cover - overridden
        """The exhibit's numbers as a plain-text table for the terminal."""
        raise NotImplementedError

    def plot(self) -> Figure:  # pragma: no cover - overridden
        """The exhibit's picture, a matplotlib ``Figure`` (the caller saves or closes it)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return f"{self.title}\n{self.table()}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>\n{self}"
