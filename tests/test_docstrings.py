"""Every public function, class and method of optimlab says what it does.

Public: a name in a module's ``__all__`` defined in that module, and the methods and
properties of such a class not starting with ``_``. A method that overrides a documented
one (torch's ``state_dict``, an exhibit's ``table``) inherits its text, as ``help()`` shows
it; a property inherits its base class's.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import optimlab


def _public_modules():
    for info in pkgutil.walk_packages(optimlab.__path__, "optimlab."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def _doc_of(cls: type, name: str, value) -> str | None:
    if isinstance(value, property):
        return value.__doc__ or next((getattr(base, name).__doc__ for base in cls.__mro__[1:]
                                      if isinstance(getattr(base, name, None), property)), None)
    return inspect.getdoc(getattr(cls, name))


def undocumented() -> list[str]:
    """The dotted names of public objects without a docstring."""
    missing = []
    for module in _public_modules():
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if getattr(obj, "__module__", None) != module.__name__:
                continue  # re-exported: checked where it is defined
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not (obj.__doc__ or "").strip():
                missing.append(f"{module.__name__}.{name}")
            if not inspect.isclass(obj):
                continue
            for key, value in vars(obj).items():
                function = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                if key.startswith("_") or not inspect.isfunction(function):
                    continue
                if not (_doc_of(obj, key, value) or "").strip():
                    missing.append(f"{module.__name__}.{name}.{key}")
    return missing


def test_every_public_object_has_a_docstring():
    assert undocumented() == []


def test_every_rules_two_functions_say_what_they_are():
    """``help(optimlab.Adam)`` lists ``init`` and ``update``, the rule's two functions: each
    says what it is, where its module gives it no docstring of its own."""
    from optimlab.optim.base import RuleOptimizer

    classes = [getattr(optimlab, name) for name in optimlab.optim.__all__
               if inspect.isclass(getattr(optimlab, name, None))
               and issubclass(getattr(optimlab, name), RuleOptimizer)]
    assert len(classes) > 30
    for cls in classes:
        for name in ("init", "update"):
            assert (inspect.getdoc(getattr(cls, name)) or "").strip(), f"{cls.__name__}.{name}"
