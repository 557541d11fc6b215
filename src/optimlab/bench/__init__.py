"""The training lab: tasks, batched sweeps, the run store and reports."""

#: the submodules, each imported on first use (``optimlab.bench.tasks.get`` after a plain
#: ``import optimlab``), so importing the package imports none of them
_LAZY = ("advice_report", "advisor", "allocator", "analysis", "cost", "executors", "profile",
         "report", "slices", "store", "sweep", "tasks", "tour", "trainer")


def __getattr__(name: str):
    """A submodule named as an attribute (``optimlab.bench.tasks``) is imported on first use."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
