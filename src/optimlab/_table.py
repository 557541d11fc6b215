"""Plain text for the terminal, shared by the CLI, races, exhibits, reports and the training
lab: tables, and messages cut to one line. (The run store keeps its own copy of
:func:`one_line`: it imports nothing else from optimlab, so that it loads by path.)"""

from __future__ import annotations

import re
import textwrap
import traceback
from collections.abc import Sequence

__all__ = ["text_table", "one_line", "visible", "describe_error", "count", "listed"]


def count(n: int, noun: str) -> str:
    """``n`` of ``noun``, singular or plural: ``"1 seed"``, ``"3 seeds"`` (a noun whose
    plural adds an s).

    >>> count(1, "seed"), count(3, "workload"), count(0, "run")
    ('1 seed', '3 workloads', '0 runs')
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"


def listed(names: Sequence[str]) -> str:
    """``names`` in words (at least one).

    >>> listed(["a"]), listed(["a", "b"]), listed(["a", "b", "c"])
    ('a', 'a and b', 'a, b and c')
    """
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


#: the control characters a terminal acts on rather than shows: C0 but tab and line feed
#: (which the callers lay out), DEL, and C1 (``\x9b`` is an escape sequence's start, CSI)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: object) -> str:
    r"""``text`` with its control characters written as escapes, ``\x1b`` for ESC, so that
    printing it cannot move the cursor, clear the screen, set the terminal's title or colour
    what follows (a run store's names and errors are anyone's text). Tabs and line feeds
    are kept for the callers that lay them out; a carriage return, which would overwrite a
    line, is escaped.

    >>> visible("ok\x1b[2Jred\x07\x9b;\ttab")
    'ok\\x1b[2Jred\\x07\\x9b;\ttab'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def one_line(text: object, limit: int = 300) -> str:
    r"""``text`` as one line (whitespace runs collapsed, control characters escaped by
    :func:`visible`), cut to ``limit`` characters.

    >>> one_line("a   b  c", limit=5)
    'a b c'
    >>> one_line("a\x1b]0;title\x07 b")
    'a\\x1b]0;title\\x07 b'
    """
    line = visible(" ".join(str(text).split()))
    return line if len(line) <= limit else line[:limit - 3] + "..."


def describe_error(err: BaseException) -> str:
    """``err`` as a stored run's error reads: ``"ValueError: lr must be positive"``.

    >>> describe_error(ValueError("lr must be positive"))
    'ValueError: lr must be positive'
    """
    return "".join(traceback.format_exception_only(type(err), err)).strip()


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
               widths: Sequence[int | None] | None = None) -> str:
    """Columns padded to their widest cell, a dashed rule under the headers.

    A column given a width in ``widths`` wraps its cells onto more lines instead. Control
    characters in a header or cell are written as escapes (:func:`visible`).
    """
    headers = [visible(h) for h in headers]
    rows = [[visible(c) for c in row] for row in rows]
    widths = list(widths or [None] * len(headers))
    for i, header in enumerate(headers):
        if widths[i] is None:
            widths[i] = max([len(header)] + [len(str(row[i])) for row in rows])
    lines = []
    for index, row in enumerate([list(headers)] + [list(map(str, r)) for r in rows]):
        wrapped = [textwrap.wrap(text, width, break_long_words=False) or [""]
                   for text, width in zip(row, widths)]
        for k in range(max(len(w) for w in wrapped)):
            parts = [(w[k] if k < len(w) else "").ljust(width) for w, width in zip(wrapped, widths)]
            lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
