"""Canonical JSON: how the run store writes configurations, hyperparameters, summaries
and environments, and the keys that find sweeps and runs again.

The text is canonical (sorted keys, no spaces; tuples become lists, numpy scalars and
arrays Python numbers and lists, dataclasses dicts) so equal values give equal text and
:func:`canonical_key`, its sha256, is stable across processes and machines. Non-finite
floats are written as Python's ``NaN``, ``Infinity`` and ``-Infinity`` tokens (also JSON5),
which Python reads back exactly.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

__all__ = ["canonical_json", "canonical_key"]


def _plain(obj: Any) -> Any:
    """``obj`` as plain JSON data: dicts with str keys, lists, str, int, float, bool, None."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON keys must be strings, got {k!r} ({type(k).__name__})")
            out[k] = _plain(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return _plain(asdict(obj))
    if hasattr(obj, "tolist"):  # numpy arrays and scalars (np.bool_), torch tensors
        return _plain(obj.tolist())
    raise TypeError(f"cannot store {type(obj).__name__} {obj!r} as JSON")


def _dumps(obj: Any) -> str:
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=True)


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, no spaces, floats as ``repr``.

    Tuples become lists, numpy scalars and arrays Python numbers and lists, dataclasses
    dicts. Floats keep their exact shortest ``repr`` (``0.1``, ``1e-08``), so ``1`` and
    ``1.0`` differ (as do ``True`` and ``1``); non-finite floats are ``NaN``, ``Infinity``,
    ``-Infinity``.

    >>> canonical_json({"b": (0.9, 0.999), "a": 1e-3})
    '{"a":0.001,"b":[0.9,0.999]}'
    """
    return _dumps(obj)


def canonical_key(obj: Any) -> str:
    """A stable key for ``obj``: the sha256 hex digest of :func:`canonical_json`.

    Equal configurations give equal keys whatever the order of their dict entries, across
    processes and machines; it keys sweeps (their configuration) and runs (their member).

    >>> canonical_key({"lr": 0.1, "seed": 0}) == canonical_key({"seed": 0, "lr": 0.1})
    True
    >>> len(canonical_key({}))
    64
    """
    return hashlib.sha256(_dumps(obj).encode()).hexdigest()


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
