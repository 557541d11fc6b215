"""Canonical JSON: how the run store writes configurations, hyperparameters, summaries
and environments, and the keys that find sweeps and runs again.

The text is canonical (sorted keys, no spaces; tuples become lists, numpy scalars and
arrays Python numbers and lists, dataclasses dicts) so equal values give equal text and
:func:`canonical_key`, its sha256, is stable across processes and machines. Non-finite
floats are written as Python's ``NaN``, ``Infinity`` and ``-Infinity`` tokens (also JSON5),
which Python reads back exactly. What leaves optimlab for other readers (the advisor's
answer, the playground's API) is :func:`strict_json`, where they are null.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

__all__ = ["canonical_json", "canonical_key", "config_differences", "is_json_number", "json_data",
           "order_free_keys", "strict_json", "sweep_keys"]


def json_data(obj: Any, *, finite: bool = False, fallback: Callable[[Any], Any] | None = None) -> Any:
    """``obj`` as plain JSON data: dicts with str keys, lists, str, int, float, bool, None.

    Tuples become lists, numpy scalars and arrays (and torch tensors) Python numbers and
    lists, dataclasses dicts. ``finite=True`` writes each non-finite float as None, as
    strict JSON wants (it has no ``NaN`` or ``Infinity``; ``JSON.parse`` and ``jq`` refuse
    them). A value of no such kind is handed to ``fallback`` (its result converted in turn),
    or refused.

    >>> json_data({"b": (0.9, float("inf"))}, finite=True)
    {'b': [0.9, None]}

    Raises:
        TypeError: a key that is not a string, or a value of no JSON kind and no ``fallback``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return None if finite and not math.isfinite(value) else value
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON keys must be strings, got {k!r} ({type(k).__name__})")
            out[k] = json_data(v, finite=finite, fallback=fallback)
        return out
    if isinstance(obj, (list, tuple)):
        return [json_data(v, finite=finite, fallback=fallback) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return json_data(asdict(obj), finite=finite, fallback=fallback)
    if hasattr(obj, "tolist") and not isinstance(obj, type):  # numpy (np.bool_ too), torch
        return json_data(obj.tolist(), finite=finite, fallback=fallback)
    if fallback is not None:
        return json_data(fallback(obj), finite=finite)
    raise TypeError(f"cannot store {type(obj).__name__} {obj!r} as JSON")


def is_json_number(value: Any, null: bool = False) -> bool:
    """Whether ``value``, read from JSON, is a number (not a bool; an integer a float can
    hold), or null where ``null`` allows it."""
    if value is None:
        return null
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not isinstance(value, int) or abs(value) <= 1e300


def strict_json(obj: Any, *, indent: int | None = None) -> str:
    """JSON text of ``obj`` that every reader accepts: :func:`json_data` with non-finite
    floats as null; compact, or indented by ``indent``.

    >>> strict_json({"loss": float("nan"), "lr": 0.1})
    '{"loss":null,"lr":0.1}'
    """
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(json_data(obj, finite=True), indent=indent, separators=separators,
                      allow_nan=False)


def _dumps(obj: Any) -> str:
    return json.dumps(json_data(obj), sort_keys=True, separators=(",", ":"), allow_nan=True)


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


def sweep_keys(config: Any) -> list[str]:
    """The keys that find the sweep of ``config`` in a store: its key, then (where it
    differs) the key the store gave the same configuration before.

    A sweep is what trains, so its key (:func:`canonical_key` of a normal form of
    ``config``) leaves out what does not change that: the order of its ``optimizers`` and of
    its ``lrs`` (lists of names or numbers, sorted for the key: ``sgd,adam`` and
    ``adam,sgd`` train the same runs), and the name given as the top-level ``model`` (None
    for the task's default), for which the key takes ``train``'s ``model``, the model that
    trains (:meth:`optimlab.bench.sweep.SweepSpec.stored_config` names the default there).
    The stored configuration keeps them as given: listings and reports show that order and
    that name.

    Sweeps stored before were keyed by their configuration as given, whose ``train`` named
    the model as the top-level ``model`` did: that key comes second, so the command that
    stored such a sweep still finds it (and a configuration without those entries keeps
    its :func:`canonical_key`).

    >>> given = {"optimizers": ["sgd", "adam"], "lrs": [0.1, 0.01]}
    >>> key, before = sweep_keys(given)
    >>> key == sweep_keys({"optimizers": ["adam", "sgd"], "lrs": [0.01, 0.1]})[0]
    True
    >>> before == canonical_key(given)
    True
    """
    data = json_data(config)
    if not isinstance(data, dict):
        return [canonical_key(data)]
    normal, before = _forms(data)
    keys = [canonical_key(normal), canonical_key(before)]
    return keys[:1] if keys[0] == keys[1] else keys


def order_free_keys(config: Any, stored: bool = False) -> set[str]:
    """The keys of ``config`` with the order of its ``optimizers`` and ``lrs`` left out, in
    each form :func:`sweep_keys` keys it by (``stored=False``: a configuration a command
    gives), or as stored (``stored=True``: a stored configuration, in the form an earlier
    optimlab keyed it by). A stored sweep whose key is one of a given configuration's is
    that configuration's sweep, whatever order either lists its optimizers and rates in.

    >>> given = order_free_keys({"optimizers": ["a", "b"]})
    >>> order_free_keys({"optimizers": ["b", "a"]}, stored=True) == given
    True
    """
    data = json_data(config)
    if not isinstance(data, dict):
        return {canonical_key(data)}
    forms = [data] if stored else list(_forms(data))
    return {canonical_key(_order_free(form)) for form in forms}


def _forms(data: dict) -> tuple[dict, dict]:
    """``(normal, before)``: the form :func:`sweep_keys` keys a configuration by now (its
    optimizers and rates sorted, ``model`` the one that trains) and the form an earlier
    optimlab keyed it by (as given, ``train`` naming the model as the top-level one)."""
    normal = _order_free(data)
    before = data
    train = data.get("train")
    if isinstance(train, dict) and "model" in train and "model" in data:
        normal["model"] = train["model"]
        before = {**data, "train": {**train, "model": data["model"]}}
    return normal, before


def config_differences(stored: Any, given: Any) -> list[str]:
    """How the configuration ``given`` differs from a sweep's ``stored`` one, entry by
    entry (dotted paths into nested dicts, the order of ``optimizers`` and ``lrs`` left out
    as :func:`sweep_keys` leaves it out), in words: ``"train.batch_size (stored 64, given
    100)"``; an entry the stored one lacks is ``"architecture (not stored: an older
    optimlab did not record it)"``. Empty where the two key alike.

    >>> config_differences({"seeds": 2, "lrs": [0.1, 0.01]}, {"seeds": 3, "lrs": [0.01, 0.1], "data": "ab"})
    ['data (not stored: an older optimlab did not record it)', 'seeds (stored 2, given 3)']
    """
    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key in value:
                out.update(flat(value[key], f"{prefix}{key}."))
            return out or {prefix[:-1]: {}}
        return {prefix[:-1]: value}

    def normal(config: Any) -> dict[str, Any]:
        data = json_data(config)
        if not isinstance(data, dict):
            return {"": data}
        return flat(_order_free(data))

    def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        words = []
        for path in sorted(old.keys() | new.keys()):
            if path not in old:
                words.append(f"{path} (not stored: an older optimlab did not record it)")
            elif path not in new:
                words.append(f"{path} (stored {_dumps(old[path])}, not given)")
            elif _dumps(old[path]) != _dumps(new[path]):
                words.append(f"{path} (stored {_dumps(old[path])}, given {_dumps(new[path])})")
        return words

    old, new = json_data(stored), json_data(given)
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return differences(normal(old), normal(new))
    # in each form sweep_keys keys a configuration by: both now (the model that trains
    # named at the top), or the stored one as it is against the form an earlier optimlab
    # keyed by; the closer one
    return min(differences(normal(_forms(old)[0]), normal(_forms(new)[0])),
               differences(normal(old), normal(_forms(new)[1])), key=len)


def _order_free(data: dict) -> dict:
    """``data`` with its ``optimizers`` and ``lrs`` sorted (:func:`_sorted`): the order a
    sweep's key leaves out."""
    return {**data, **{name: _sorted(data[name]) for name in ("optimizers", "lrs") if name in data}}


def _sorted(value: Any) -> Any:
    """A list of strings, or of numbers, sorted; anything else as it is."""
    if isinstance(value, list) and (all(isinstance(v, str) for v in value) or all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
            for v in value)):
        return sorted(value)
    return value


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
