"""Every Sphinx cross-reference in optimlab's docstrings names something that exists.

A docstring that says :func:`sweeps_json` after the function became ``sweeps`` sends its
reader looking for a name that is gone. This test imports every module of the package,
collects the roles ``:func:``, ``:meth:``, ``:class:``, ``:mod:``, ``:data:``, ``:attr:``,
``:exc:`` and ``:obj:`` from the docstrings of its modules, classes, functions, methods and
properties (as Python holds them, formatted: what ``help()`` and the docs pages show), and
resolves each target the way Sphinx's Python domain would:

* ``~`` only shortens the displayed text, ``()`` after a name is dropped, ``!`` turns the
  link off (nothing to check), ``title <target>`` checks the target;
* ``optimlab.bench.sweep.sweeps``, ``torch.optim.Optimizer``, ``numpy.ndarray``,
  ``collections.OrderedDict``: absolute, the top-level module imported, then read attribute
  by attribute (at a package, its attribute or else its submodule of that name);
* ``.store.RunStore.snapshot``: relative, tried under the current class, the current module
  and then each package above it (Sphinx's own search finds the same objects);
* ``snapshot``, ``RunStore.snapshot``, ``ValueError``, ``np.ndarray``: bare, looked up in
  the current class (and its bases), then the module's globals (imports included, and the
  names its ``if TYPE_CHECKING:`` block imports), then the builtins, then as an absolute
  name (``np.`` standing for ``numpy.``); in a package, also as one of its submodules.

Reading an attribute off a class also finds what the class only declares: annotated fields
(dataclasses, NamedTuples), ``__slots__``, and instance attributes set as ``self.name = ...``
in its methods (``torch.optim.Optimizer.param_groups``). What a name resolves to must be of
its role's kind: a module for ``:mod:``, a class for ``:class:`` (an exception for ``:exc:``),
something callable for ``:func:`` and ``:meth:``.

Literals that spell a whole dotted name under optimlab, torch or numpy (``optimlab.optim.SGD``,
``torch.compile()``) are resolved the same way. Only the standard library, optimlab, torch
and numpy are imported, and the extras' packages (pandas, matplotlib...) where a name is in
one; an extra that is not installed leaves its names unchecked. Nothing is fetched.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import types

import pytest

import optimlab

ROLES = ("func", "meth", "class", "mod", "data", "attr", "exc", "obj")
ROLE = re.compile(r":(?:py:)?(" + "|".join(ROLES) + r"):`([^`]+)`")
#: a literal that is a whole dotted name under optimlab, torch or numpy, ``optimlab.optim.SGD``
#: or ``torch.compile()`` (a bare ``name()`` literal is left alone: most are methods of a
#: local variable, ``path.mkdir()``, or generic calls, ``backward()``, not references)
CODE = re.compile(r"``((?:optimlab|torch|numpy|np)(?:\.[A-Za-z_]\w*)+)(?:\(\))?``")

#: top-level names beside the standard library's that a reference may import; ``this`` and
#: ``antigravity`` are standard library modules whose import does something (prints, opens a
#: browser), never a reference's target
_IMPORTABLE = {"optimlab", "torch", "numpy"} | (set(sys.stdlib_module_names) - {"this", "antigravity"})
#: the packages optimlab's extras install (pyproject.toml): a name in one is checked where it
#: is installed, and taken as it is where not (as a module that needs it is skipped)
_EXTRAS = {"matplotlib", "sklearn", "mnist1d", "scipy", "pandas", "tqdm", "fastapi", "uvicorn",
           "starlette", "plotly", "pydantic", "sqlalchemy", "psycopg", "ray"}
_UNCHECKED = object()
_ALIASES = {"np": "numpy"}


# --- the modules and their docstrings ------------------------------------------------------------

@functools.cache
def _modules() -> tuple[tuple[types.ModuleType, ...], tuple[str, ...]]:
    """Every importable module of optimlab, and those left out for a missing optional package
    (``"optimlab.x (needs y)"``)."""
    modules, skipped = [optimlab], []
    for info in pkgutil.walk_packages(optimlab.__path__, "optimlab."):
        if info.name.endswith("__main__"):
            continue  # running it runs the command line; its docstring is checked below
        try:
            modules.append(importlib.import_module(info.name))
        except ModuleNotFoundError as error:
            if (error.name or "optimlab").partition(".")[0] == "optimlab":
                raise
            skipped.append(f"{info.name} (needs {error.name})")
    return tuple(modules), tuple(skipped)


def _defined_in(obj, module: types.ModuleType) -> bool:
    return getattr(obj, "__module__", None) == module.__name__


def _documented(module: types.ModuleType):
    """``(where, class or None, docstring)`` for the module and everything defined in it
    (``where``: ``module:qualified.name``; the class: the one the docstring is in)."""
    yield module.__name__, None, module.__doc__
    seen: set[int] = set()

    def walk_class(cls: type):
        if id(cls) in seen:
            return
        seen.add(id(cls))
        yield f"{cls.__module__}:{cls.__qualname__}", cls, vars(cls).get("__doc__")
        for key, value in vars(cls).items():
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, (property, functools.cached_property)):
                yield f"{cls.__module__}:{cls.__qualname__}.{key}", cls, value.__doc__
            elif inspect.isclass(value) and value.__qualname__.startswith(cls.__qualname__ + "."):
                yield from walk_class(value)
            elif inspect.isroutine(value) and _defined_in(value, module) and id(value) not in seen:
                seen.add(id(value))
                yield f"{cls.__module__}:{value.__qualname__}", cls, value.__doc__

    for value in list(vars(module).values()):
        if not _defined_in(value, module):
            continue
        if inspect.isclass(value):
            yield from walk_class(value)
        elif inspect.isroutine(value) and id(value) not in seen:
            seen.add(id(value))
            yield f"{module.__name__}:{value.__qualname__}", None, value.__doc__


def _main_module_doc() -> str | None:
    """``optimlab.__main__``'s docstring, read from its source: importing it runs the CLI."""
    path = optimlab.__path__[0] + "/__main__.py"
    with open(path, encoding="utf-8") as file:
        return ast.get_docstring(ast.parse(file.read()), clean=False)


def _docstrings():
    for module in _modules()[0]:
        yield from ((module, *rest) for rest in _documented(module))
    yield types.ModuleType("optimlab.__main__"), "optimlab.__main__", None, _main_module_doc()


@functools.cache
def references() -> tuple[tuple, ...]:
    """``(module, class or None, where, role, text)`` for every role in every docstring."""
    return tuple((module, cls, where, role, " ".join(text.split()))
                 for module, where, cls, doc in _docstrings()
                 for role, text in ROLE.findall(doc or ""))


@functools.cache
def literals() -> tuple[tuple, ...]:
    """``(module, class or None, where, name)`` for every dotted-name literal (:data:`CODE`)."""
    return tuple((module, cls, where, name) for module, where, cls, doc in _docstrings()
                 for name in CODE.findall(doc or ""))


# --- resolving a target --------------------------------------------------------------------------

_MISSING = object()


@functools.cache
def _import(name: str):
    if name.partition(".")[0] not in _IMPORTABLE | _EXTRAS:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@functools.cache
def _parsed(path: str) -> ast.Module | None:
    try:
        with open(path, encoding="utf-8") as file:
            return ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return None


@functools.cache
def _class_nodes(path: str) -> dict[str, ast.ClassDef]:
    """``{qualified name: class statement}`` for the classes of a source file."""
    found: dict[str, ast.ClassDef] = {}

    def visit(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                found.setdefault(prefix + child.name, child)
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, f"{prefix}{child.name}.<locals>.")
            else:
                visit(child, prefix)

    tree = _parsed(path)
    if tree is not None:
        visit(tree, "")
    return found


def _source_path(obj) -> str | None:
    try:
        return inspect.getsourcefile(obj)
    except TypeError:
        return None


@functools.cache
def _self_attributes(cls: type) -> frozenset[str]:
    """The names a class's methods assign as ``self.name = ...`` (instance attributes)."""
    path = _source_path(cls)
    node = _class_nodes(path).get(cls.__qualname__) if path else None
    if node is None:
        return frozenset()
    names = set()
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
                and isinstance(sub.value, ast.Name) and sub.value.id == "self"):
            names.add(sub.attr)
    return frozenset(names)


def _declares(cls: type, name: str) -> bool:
    """Whether ``cls`` declares ``name`` without holding it as a class attribute."""
    for klass in inspect.getmro(cls):
        if (name in vars(klass).get("__annotations__", {})
                or name in (getattr(klass, "__slots__", None) or ())
                or name in getattr(klass, "__dataclass_fields__", {})
                or name in _self_attributes(klass)):
            return True
    return False


def _attributes(obj, name: str):
    """What ``obj.name`` may name: the attribute, and for a package also its submodule of that
    name (``optimlab.landscapes.race`` is both the function the package exports and the module
    it comes from); ``None`` for an attribute a class only declares (it ends the chain)."""
    if inspect.ismodule(obj):
        value = getattr(obj, name, _MISSING)
        if value is not _MISSING:
            yield value
        if hasattr(obj, "__path__"):
            submodule = _import(f"{obj.__name__}.{name}")
            if submodule is not None and submodule is not value:
                yield submodule
        return
    try:
        value = inspect.getattr_static(obj, name)
    except AttributeError:
        if inspect.isclass(obj) and _declares(obj, name):
            yield None
        return
    yield getattr(obj, name, value)


def _chain(obj, parts: list[str]):
    """What ``obj.a.b...`` may name (``None``: an attribute a class only declares)."""
    if not parts:
        yield obj
        return
    for value in _attributes(obj, parts[0]):
        if value is None:
            if len(parts) == 1:
                yield None
        else:
            yield from _chain(value, parts[1:])


def _absolute(name: str):
    """What a dotted name may name, from its top-level module down, attribute by attribute."""
    parts = name.split(".")
    top = _import(_ALIASES.get(parts[0], parts[0]))
    if top is not None:
        yield from _chain(top, parts[1:])
    elif parts[0] in _EXTRAS and importlib.util.find_spec(parts[0]) is None:
        yield _UNCHECKED  # an extra that is not installed


@functools.cache
def _type_checking_imports(module_name: str) -> dict[str, str]:
    """``{name: dotted target}`` for the imports of a module's ``if TYPE_CHECKING:`` blocks."""
    module = sys.modules[module_name]
    path = getattr(module, "__file__", None)
    tree = _parsed(path) if path else None
    if tree is None:
        return {}
    package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
    names = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")):
            continue
        for stmt in (sub for top in node.body for sub in ast.walk(top)):
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    top_name = alias.name.partition(".")[0]
                    names[alias.asname or top_name] = alias.name if alias.asname else top_name
            elif isinstance(stmt, ast.ImportFrom):
                base = stmt.module or ""
                if stmt.level:
                    anchor = package.rsplit(".", stmt.level - 1)[0] if stmt.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in stmt.names:
                    if alias.name != "*":
                        names[alias.asname or alias.name] = f"{base}.{alias.name}"
    return names


def _class_scopes(module: types.ModuleType, cls: type | None) -> list[type]:
    """The current class, then the classes it is nested in (innermost first)."""
    scopes = []
    if cls is not None:
        qual = cls.__qualname__.split(".")
        for i in range(len(qual), 0, -1):
            scopes += [obj for obj in _chain(module, qual[:i]) if inspect.isclass(obj)]
    return scopes or ([cls] if cls is not None else [])


def target_of(text: str) -> str | None:
    """The dotted name a role's text links to (``None``: ``!`` turns the link off)."""
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1:-1]  # ``title <target>``
    text = text.strip()
    if text.startswith("!"):
        return None
    text = text.lstrip("~")
    return text[:-2] if text.endswith("()") else text


def lookup(target: str, module: types.ModuleType, cls: type | None):
    """The objects a role's target may name, as Sphinx would look it up from ``module`` (and
    ``cls``, the class whose docstring, or whose method's, it is in), nearest scope first;
    ``None`` for an attribute a class only declares. Nothing where the name names nothing."""
    if not target or target == ".":
        return
    if target.startswith("."):
        relative = target[1:]
        prefixes = [f"{c.__module__}.{c.__qualname__}" for c in _class_scopes(module, cls)]
        package = module.__name__
        while package:
            prefixes.append(package)
            package = package.rpartition(".")[0]
        for prefix in prefixes:
            yield from _absolute(f"{prefix}.{relative}")
        return

    parts = target.split(".")
    for scope in _class_scopes(module, cls):
        yield from _chain(scope, parts)
    hidden = _type_checking_imports(module.__name__) if module.__name__ in sys.modules else {}
    if parts[0] in vars(module):
        yield from _chain(vars(module)[parts[0]], parts[1:])
    elif parts[0] in hidden:
        yield from _absolute(".".join([hidden[parts[0]], *parts[1:]]))
    elif hasattr(builtins, parts[0]):
        yield from _chain(builtins, parts)
    else:
        yield from _absolute(target)
    if hasattr(module, "__path__"):  # a package's submodule (and what the package exports)
        yield from _absolute(f"{module.__name__}.{target}")


def _fits(role: str, obj) -> bool:
    """Whether what a name resolved to is the kind of object its role says: a module for
    ``:mod:``, a class for ``:class:`` and ``:exc:``, something callable (or a property) for
    ``:func:`` and ``:meth:``; the other roles take anything."""
    if obj is _UNCHECKED:
        return True
    if obj is None:
        return role not in ("mod", "class", "exc")  # a declared attribute, no value to test
    if role == "mod":
        return inspect.ismodule(obj)
    if role == "exc":
        return inspect.isclass(obj) and issubclass(obj, BaseException)
    if role == "class":
        return inspect.isclass(obj)
    if role in ("func", "meth"):
        return callable(obj) or isinstance(obj, (property, functools.cached_property))
    return True


def resolves(text: str, module: types.ModuleType, cls: type | None, role: str = "obj") -> bool:
    """Whether a role's text names an object of the role's kind (see :func:`lookup`)."""
    target = target_of(text)
    if target is None:
        return True  # not a link
    return any(_fits(role, found) for found in lookup(target, module, cls))


def unresolved() -> list[str]:
    """``module:object: role target`` for every reference that names nothing (or something
    of another kind than its role says)."""
    return sorted({f"{where}: :{role}:`{text}`" for module, cls, where, role, text in references()
                   if not resolves(text, module, cls, role)})


# --- the tests -----------------------------------------------------------------------------------

def test_every_docstring_reference_resolves():
    found = references()
    assert len(found) > 500, "the collector found too few references to be walking the package"
    missing = unresolved()
    assert not missing, f"{len(missing)} of {len(found)} references name nothing:\n" + "\n".join(missing)


def test_every_dotted_literal_names_something():
    """``optimlab.bench.sweep.sweeps`` written as code is read as a name too."""
    found = literals()
    assert len(found) > 100, "the collector found too few literals to be walking the package"
    missing = sorted({f"{where}: ``{name}``" for module, cls, where, name in found
                      if not resolves(name, module, cls)})
    assert not missing, f"{len(missing)} of {len(found)} literals name nothing:\n" + "\n".join(missing)


def test_every_module_is_checked():
    """The check above covers every module; one left out for a missing optional package (an
    extra not installed) is named here as a skip rather than failing."""
    skipped = _modules()[1]
    if skipped:
        pytest.skip("not checked, an optional package is missing: " + ", ".join(skipped))


@pytest.mark.parametrize(("module", "role", "text", "expected"), [
    ("optimlab.optim", "class", "optimlab.optim.base.RuleOptimizer", True),
    ("optimlab.optim", "meth", "~optimlab.optim.base.RuleOptimizer.step", True),
    ("optimlab.optim", "attr", "torch.optim.Optimizer.param_groups", True),  # set in __init__
    ("optimlab.bench.analysis", "class", "np.ndarray", True),
    ("optimlab.optim", "exc", "ValueError", True),
    ("optimlab.optim", "class", "collections.OrderedDict", True),
    ("optimlab.optim.sgd", "class", ".base.RuleOptimizer", True),  # relative to the package
    ("optimlab.optim", "func", "the text <optimlab.optim.registry.create>", True),
    ("optimlab.optim", "func", "available()", True),  # a name imported into optimlab.optim
    ("optimlab.landscapes.base", "class", "Race", True),  # imported under TYPE_CHECKING
    ("optimlab.landscapes", "func", "race", True),  # the function the package exports...
    ("optimlab.landscapes", "mod", "race", True),  # ...and the submodule it comes from
    ("optimlab.optim", "func", "!no_such_function", True),  # not a link
    ("optimlab.optim", "mod", "optimlab.optim.SGD", False),  # a class, not a module
    ("optimlab.optim", "exc", "optimlab.optim.SGD", False),
    ("optimlab.optim", "class", "optimlab.optim.base.NoSuchThing", False),
    ("optimlab.optim", "func", "no_such_function", False),
    ("optimlab.optim", "mod", ".no_such_module", False),
    ("optimlab.optim", "func", "torch.no_such_thing", False),
    ("optimlab.optim", "class", "pandas.NoSuchThing", importlib.util.find_spec("pandas") is None),
])
def test_the_resolver(module, role, text, expected):
    assert resolves(text, importlib.import_module(module), None, role) is expected
