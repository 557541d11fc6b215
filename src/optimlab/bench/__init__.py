"""The training lab: tasks, batched sweeps, the run store and reports."""

from .._lazy import submodule_access

#: the submodules, each imported on first use (``optimlab.bench.tasks.get`` after a plain
#: ``import optimlab``), so importing the package imports none of them
_LAZY = ("advice_report", "advisor", "allocator", "analysis", "cost", "executors", "profile",
         "report", "slices", "store", "sweep", "tasks", "tour", "trainer")

__getattr__, __dir__ = submodule_access(__name__, _LAZY)
