"""The playground's learning rates per landscape: a table computed once, shipped as JSON.

A library default (Adam's 0.001) hardly moves on a 2-D test function, so the page starts
each optimizer at the rate :func:`optimlab.landscapes.suggest.suggest_lrs` picks for the
chosen landscape (its default parameters and start). Computing them takes tens of seconds
per landscape, so they are computed here once and stored in ``lrs.json`` beside this file;
``python -m optimlab.web.lrs`` rebuilds it (the tests fail, naming this command, when a
landscape or an optimizer is missing from it).

One exception: an optimizer whose population runs member by member with a closure (L-BFGS:
up to 20 closure calls per member per step, each a separate evaluation) would take about
500 s per landscape on 2 cores for the rule's 75 runs, so it keeps its library rate (1 for
L-BFGS, whose quasi-Newton step is already scaled by the curvature it has seen).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

__all__ = ["LRS_FILE", "table", "rates_for", "lr_names", "build", "main"]

LRS_FILE = Path(__file__).with_name("lrs.json")


def _member_closure(name: str) -> bool:
    """Whether ``name``'s population steps member by member through a closure (L-BFGS)."""
    from ..optim.registry import resolve

    caps = resolve(name).capabilities
    return caps.needs_closure and not caps.two_phase


def lr_names() -> list[str]:
    """Every registry name the playground shows that takes a numeric ``lr``."""
    from . import hparams as hp

    return [e.name for e in hp.offered()
            if isinstance(lr := hp.defaults(e.name).get("lr"), (int, float))
            and not isinstance(lr, bool)]


@functools.lru_cache(maxsize=1)
def table() -> dict:
    """The stored table: ``{"rule": ..., "steps": ..., "grid": [...], "lrs": {landscape:
    {name: lr}}}`` (empty ``lrs`` when the file is missing)."""
    try:
        return json.loads(LRS_FILE.read_text())
    except FileNotFoundError:
        return {"rule": "", "steps": 0, "grid": [], "lrs": {}}


def rates_for(landscape: str) -> dict[str, float]:
    """``{registry name: lr}`` for one landscape (empty for one the table lacks)."""
    return dict(table()["lrs"].get(landscape, {}))


def build(landscapes: list[str] | None = None, say=print) -> dict:
    """Compute the table for ``landscapes`` (default: every 2-D landscape of the catalog)."""
    from ..landscapes import get, names
    from ..landscapes.suggest import SUGGEST_GRID, SUGGEST_STEPS, suggest_lrs
    from . import hparams as hp

    chosen = landscapes or [n for n in names() if get(n).dim == 2]
    every = lr_names()
    optimizers = [n for n in every if not _member_closure(n)]
    kept = {n: float(hp.defaults(n)["lr"]) for n in every if _member_closure(n)}
    lrs = {}
    for name in chosen:
        began = time.perf_counter()
        # three significant digits: what the page shows and the URL carries
        lrs[name] = {k: float(f"{v:.3g}") for k, v in suggest_lrs(name, optimizers).items()}
        lrs[name].update(kept)
        say(f"{name}: {len(optimizers)} optimizers x {len(SUGGEST_GRID)} rates in "
            f"{time.perf_counter() - began:.1f} s")
    return {"rule": "optimlab.landscapes.suggest.suggest_lrs", "steps": SUGGEST_STEPS,
            "grid": list(SUGGEST_GRID), "library_rate": sorted(kept), "lrs": lrs}


def main(argv: list[str] | None = None) -> int:
    """``python -m optimlab.web.lrs [LANDSCAPE ...]``: rebuild ``lrs.json`` (only the named
    landscapes' rows, when some are named)."""
    import argparse

    from ..landscapes import get, names

    two_d = [n for n in names() if get(n).dim == 2]
    parser = argparse.ArgumentParser(
        prog="python -m optimlab.web.lrs",
        description=f"Rebuild the playground's learning-rate table {LRS_FILE.name} (tens of "
                    "seconds per landscape): every 2-D landscape's rows, or only the named "
                    "ones' (the others kept).")
    parser.add_argument("landscapes", nargs="*", metavar="LANDSCAPE",
                        help=f"a 2-D landscape: {', '.join(two_d)} (default: all)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    unknown = [n for n in args.landscapes if n not in two_d]
    if unknown:
        parser.error(f"unknown or not 2-D landscape {unknown[0]!r} (known: {', '.join(two_d)})")
    argv = args.landscapes
    old = table() if argv else {"lrs": {}}
    new = build(argv or None, say=lambda line: print(line, file=sys.stderr))
    new["lrs"] = {**old.get("lrs", {}), **new["lrs"]}
    LRS_FILE.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
    table.cache_clear()
    print(f"wrote {LRS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
