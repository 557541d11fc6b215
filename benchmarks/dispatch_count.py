"""Operations dispatched per ``step()``: does the cost of a step grow with the number of tensors?

On a GPU every aten operation is at least one kernel launch, so an optimizer that loops over
its tensors one by one launches ``ops_per_tensor x tensors`` kernels per step, while a
multi-tensor one (``torch.optim``'s ``foreach``) launches a number that does not depend on
how many tensors the model has. This script counts, for every optimizer in the registry,
the aten operations one steady-state ``step()`` dispatches on parameter-sized tensors, for
a model of 10 and of 1000 tensors, on four paths:

* optimlab plain (``fused=False``: the multi-tensor engine), and fused (the generated C loop,
  where the optimizer has one);
* ``torch.optim``'s ``foreach=True`` and ``fused=True``, where torch has the algorithm and flag.

How it counts: a ``TorchDispatchMode`` sees every aten operation the step dispatches (a
``torch._foreach_*`` operation counts once, whatever the length of its lists; the fused C
kernel is one call outside aten and counts zero). An operation counts when one of its tensor
arguments or results has at least a parameter's size (``--numel``: a parameter, or a flat
buffer of the whole group) or is a list holding one; views
(``view``, ``split``, ``unbind``, ...: they move no data and launch no kernel) are left out
and counted apart, and so are allocations (``empty``: no kernel either, and torch's foreach
operations allocate their results inside, where no dispatch mode sees them; optimlab's
plain path allocates the scratch it does not keep between steps, beyond 16 MiB a group,
in the open, and the script prints those counts below the table). The step measured is the
third (the state exists by then).

It prints one row per optimizer: the counts at 10 and 1000 tensors and the growth ratio of the
plain path, and checks issue 11's acceptance: from 10 to 1000 tensors the plain path's count
grows by at most 1.5x for every elementwise optimizer and LAMB.

    python benchmarks/dispatch_count.py [--small 10] [--large 1000] [--numel 2048]
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import optimlab
from optimlab.cli import render_table
from optimlab.optim.capabilities import Capabilities

#: ``optimlab`` names whose ``torch.optim`` class has the same name, arguments and defaults
TORCH_TWINS = ("SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam",
               "RAdam", "ASGD", "Rprop", "Adafactor", "Muon")


class OpCounter(TorchDispatchMode):
    """Counts aten operations that touch a tensor of ``numel`` elements or more (views apart)."""

    def __init__(self, numel: int):
        super().__init__()
        self.numel, self.ops, self.views, self.allocations = numel, 0, 0, 0
        self.names: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        if any(t.numel() >= self.numel for t in tensors):
            if func.is_view or func.__name__.startswith(("split", "unbind", "alias", "detach")):
                self.views += 1
            elif func.__name__.split(".")[0] in ALLOCATIONS:
                self.allocations += 1
            else:
                self.ops += 1
                name = func.__name__.split(".")[0]
                self.names[name] = self.names.get(name, 0) + 1
        return out


DEVICE = "cpu"
#: operations that only allocate (no data moved, no kernel launched): counted apart
ALLOCATIONS = frozenset({"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided"})


def _model(n_tensors: int, numel: int, matrix: bool) -> list[torch.Tensor]:
    torch.manual_seed(0)
    shape = (16, numel // 16) if matrix else (numel,)
    return [torch.randn(shape, device=DEVICE, requires_grad=True) for _ in range(n_tensors)]


def _count(build, n_tensors: int, numel: int, matrix: bool,
           closure: bool) -> tuple[int, int] | None:
    """(operations, allocations) of one steady-state step, or None where ``build`` refuses."""
    params = _model(n_tensors, numel, matrix)
    try:
        opt = build(params)
    except (ValueError, TypeError, RuntimeError):
        return None

    def loss():
        opt.zero_grad(set_to_none=False)
        value = sum((p * p).sum() for p in params)
        value.backward()
        return value

    for _ in range(2):
        opt.step(loss) if closure else (loss(), opt.step())
    if not closure:
        loss()
    counter = OpCounter(numel)
    with counter:
        if closure:
            # the closure's own forward and backward are the model's cost, not the step's
            opt.step(loss)
        else:
            opt.step()
    return counter.ops, counter.allocations


def _builders(entry) -> dict[str, object]:
    caps: Capabilities = entry.capabilities
    name = entry.name
    hp = {"lr": 1e-3} if name not in ("rprop",) else {}
    if caps.wraps:
        hp = {"lr": 1e-3}
    out = {"optimlab plain": lambda ps: optimlab.create(name, ps, **hp, **(
        {"fused": False} if caps.fusable else {}))}
    if caps.fusable:
        out["optimlab fused"] = lambda ps: optimlab.create(name, ps, **hp, fused=True)
    cls_name = entry.cls.__name__
    if cls_name in TORCH_TWINS and hasattr(torch.optim, cls_name):
        twin = getattr(torch.optim, cls_name)
        out["torch foreach"] = lambda ps: twin(ps, **{**entry.preset, **hp}, foreach=True)
        out["torch fused"] = lambda ps: twin(ps, **{**entry.preset, **hp}, fused=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10, help="tensors in the small model")
    parser.add_argument("--large", type=int, default=1000, help="tensors in the large model")
    parser.add_argument("--numel", type=int, default=2048,
                        help="numbers per tensor (a multiple of 16; Muon's are 16 x numel/16); "
                             "more than --large, so that a vector of one scalar per tensor "
                             "(steps, LAMB's norms) is never taken for a parameter")
    parser.add_argument("--device", default="cpu", help="where the tensors live (cpu, cuda)")
    parser.add_argument("--optimizers", default="",
                        help="comma-separated registry names (default: every class)")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    if args.numel % 16 or args.small < 1 or args.large <= args.small or args.numel <= args.large:
        parser.error("--numel must be a multiple of 16 above --large, and --large > --small >= 1")
    wanted = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    # dense gradients only: SparseAdam (sparse_only) refuses them, as torch's does
    entries = [e for e in optimlab.available(dense=True) if e.alias_of is None
               and (not wanted or e.name in wanted)]
    columns = ["optimlab plain", "optimlab fused", "torch foreach", "torch fused"]
    header = ["optimizer"] + [f"{c} {n}" for c in columns for n in (args.small, args.large)] \
        + ["plain growth"]
    rows, failures, allocated = [], [], []
    for entry in entries:
        caps = entry.capabilities
        matrix, closure = caps.needs_matrix, caps.needs_closure
        counts, allocations = {}, {}
        for label, build in _builders(entry).items():
            both = [_count(build, n, args.numel, matrix, closure) for n in (args.small, args.large)]
            counts[label] = [None if b is None else b[0] for b in both]
            allocations[label] = [None if b is None else b[1] for b in both]
        if any(allocations["optimlab plain"]):
            allocated.append(f"{entry.name} {allocations['optimlab plain'][0]} -> "
                             f"{allocations['optimlab plain'][1]}")
        small, large = counts["optimlab plain"]
        growth = large / small if small else (1.0 if not large else float("inf"))
        elementwise = caps.multi_tensor and caps.batching in ("elementwise", "vmap") \
            and not caps.wraps
        if elementwise and growth > 1.5:
            failures.append(f"{entry.name}: {small} -> {large} ({growth:.2f}x)")
        row = [entry.name + ("" if elementwise else " *")]
        for column in columns:
            for value in counts.get(column, [None, None]):
                row.append("n/a" if value is None else str(value))
        row.append(f"{growth:.2f}x")
        rows.append(row)
        print(" | ".join(row), flush=True)
    print()
    print(render_table(header, rows, markdown=True))
    print()
    print(f"aten operations on parameter-sized tensors in one steady-state step "
          f"(views apart), {args.small} and {args.large} tensors of {args.numel} numbers")
    print("* not held to the 1.5x bound: a rule that reads values per tensor (Adafactor), "
          "needs matrices one at a time (Muon) or wraps another optimizer")
    if allocated:
        print("allocations of parameter-sized scratch by the plain path, counted apart (no "
              "kernel; the scratch beyond what a group keeps between steps, 16 MiB, is "
              f"allocated each step), {args.small} -> {args.large} tensors: "
              + ", ".join(allocated))
    if failures:
        print("FAIL: the plain path grows by more than 1.5x for " + "; ".join(failures))
        return 1
    print(f"PASS: from {args.small} to {args.large} tensors the plain path's count grows by at most 1.5x for "
          "every elementwise optimizer and LAMB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
