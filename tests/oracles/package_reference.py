"""The authors' (or another project's) PyTorch package as the reference, run live.

For the optimizers whose catalog ``reference`` names a class of a PyPI package
(``prodigyopt.Prodigy``, ``dadaptation.DAdaptAdam``, ``pytorch_optimizer.MARS``, ...), the
oracle is that class itself: an implementation optimlab did not write. These packages are
pure Python on top of torch, so they are pinned test dependencies (``pyproject.toml``'s
``test`` extra) and the comparison runs live in CI (``tests/optim/test_package_reference.py``),
in float64 on the shared test problem (:mod:`tests.problems`).

:data:`MAPPINGS` is where a definition that differs from the package's is pinned: each entry
turns one optimlab case's hyperparameters into the package's optimizer that computes the same
update (the optimizer's docstring says so in a ``.. warning::`` where the two differ).

Print the table of worst relative differences (largest absolute difference over the largest
absolute reference value, per parameter, worst over the parameters)::

    python -m tests.oracles.package_reference --table
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tests.problems import run_torch

#: Steps of every comparison (as the other oracles).
STEPS = 100


@dataclass(frozen=True)
class Mapping:
    """How one optimlab optimizer's hyperparameters become the package's optimizer.

    ``build(params, **hp)`` constructs the reference optimizer for the case's hyperparameters
    (without ``maximize``: the reference minimizes the un-negated loss). ``rtol`` is the
    float64 agreement the test demands; above 1e-10 ``why`` must say what differs.
    """

    name: str  # "package.Class", as the catalog's ``reference`` names it
    build: Callable[..., torch.optim.Optimizer]
    rtol: float = 1e-10
    why: str = ""
    use_closure: bool = False

    def __post_init__(self) -> None:
        if self.rtol > 1e-10 and not self.why:
            raise ValueError(f"{self.name}: a tolerance above 1e-10 needs a reason (why=)")

    @property
    def package(self) -> str:
        return self.name.split(".")[0]

    def reference_class(self) -> type:
        """The package's optimizer class (imports the package)."""
        module, _, cls = self.name.rpartition(".")
        return getattr(importlib.import_module(module), cls)


#: optimlab class name -> how its package reference is built.
MAPPINGS: dict[str, Mapping] = {}


def cases() -> list:
    """The test cases (``tests.optim.cases``) of every optimizer in :data:`MAPPINGS`."""
    from tests.optim.cases import CASES

    return [case for name in MAPPINGS for case in CASES[name]]


def runs(case, dtype=torch.float64, steps: int = STEPS):
    """optimlab's and the package's parameters after ``steps`` steps of ``case``."""
    mapping = MAPPINGS[case.cls_name]
    ours = run_torch(case.build, steps, dtype, case.shapes, maximize=case.maximize,
                     use_closure=case.needs_closure)
    theirs = run_torch(lambda ps: mapping.build(ps, **case.reference_hp()), steps, dtype,
                       case.shapes, use_closure=mapping.use_closure)
    return ours, theirs


def worst_relative(ours, theirs) -> float:
    """Largest absolute difference over the largest absolute reference value, worst tensor."""
    return max(float((a.double() - b.double()).abs().max() / b.double().abs().max())
               for a, b in zip(ours, theirs, strict=True))


def table() -> str:
    """Markdown: optimlab against the live package, both in float64 and both in float32."""
    rows = ["| case | reference | steps | float64 | float32 |", "|---|---|---|---|---|"]
    for case in cases():
        worst = [worst_relative(*runs(case, dtype)) for dtype in (torch.float64, torch.float32)]
        rows.append(f"| {case.id} | {MAPPINGS[case.cls_name].name} | {STEPS} | "
                    f"{worst[0]:.1e} | {worst[1]:.1e} |")
    return "\n".join(rows)


def main() -> int:
    if sys.argv[1:] != ["--table"]:
        print("usage: python -m tests.oracles.package_reference --table", file=sys.stderr)
        return 2
    print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
