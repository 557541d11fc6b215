"""Optimizers other packages install: the ``optimlab.optimizers`` entry-point group
(:mod:`optimlab._plugins`, loaded by :mod:`optimlab.optim.registry`).

The installed package is made here: a module and a ``*.dist-info`` folder with its
``entry_points.txt`` in the test's folder, put on ``PYTHONPATH`` of a fresh interpreter, which
is how ``importlib.metadata`` finds any installed distribution. The loader's own rules
(interrupts, threads, a module that registers itself) are checked in this process with
entry points made by hand, and the registry is put back as it was after each.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

import optimlab
from optimlab import _plugins
from optimlab.optim import registry
from optimlab.optim.base import RuleOptimizer
from optimlab.optim.capabilities import Capabilities
from optimlab.optim.registry import PluginWarning
from tests.test_startup import _DRIVER

PLUGIN = textwrap.dedent('''
    """An installed package with optimizers for optimlab."""
    import torch

    import optimlab
    from optimlab.optim.base import RuleOptimizer, check_range
    from optimlab.optim.capabilities import Capabilities


    def _init(p, **_):
        return {"exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format)}


    def _update(p, g, state, *, lr, beta, **_):
        m = state["exp_avg"] = torch.lerp(state["exp_avg"], g, 1 - beta)
        return p - lr * torch.sign(m)


    class SignPlug(RuleOptimizer):
        """Sign descent with momentum, from a plugin."""

        init = staticmethod(_init)
        update = staticmethod(_update)
        capabilities = Capabilities(moments=("exp_avg",), fusable=True)

        def __init__(self, params, lr=1e-2, beta=0.9, *, maximize=False, fused=None):
            check_range("lr", lr, 0.0)
            check_range("beta", beta, 0.0, 1.0)
            super().__init__(params, dict(lr=lr, beta=beta, maximize=maximize, fused=fused))


    def register_all():
        optimlab.register(SignPlug, "signplug_meta", family="sign", year=2025,
                          paper="A plugin's paper")


    NOT_AN_OPTIMIZER = 3
''')

ENTRY_POINTS = """\
[optimlab.optimizers]
signplug = signplug:SignPlug
signplug_meta = signplug:register_all
"""

BROKEN_ENTRY_POINTS = """\
[optimlab.optimizers]
missing = brokenplug_missing:Nope
number = signplug:NOT_AN_OPTIMIZER
adam = signplug:SignPlug
"""


def _distribution(root: Path, name: str, entry_points: str) -> None:
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding the installed ``signplug`` package (module and distribution)."""
    root = tmp_path_factory.mktemp("site")
    (root / "signplug.py").write_text(PLUGIN)
    _distribution(root, "signplug", ENTRY_POINTS)
    return root


@pytest.fixture(scope="module")
def broken_site(site, tmp_path_factory) -> Path:
    """``signplug`` beside ``brokenplug``, whose three entry points cannot be loaded."""
    root = tmp_path_factory.mktemp("broken")
    _distribution(root, "brokenplug", BROKEN_ENTRY_POINTS)
    return root


def _run(code: str, *paths: Path, cache: Path | None = None, disable: bool = False,
         args: list | None = None) -> dict:
    """Run ``code`` in a fresh interpreter with ``paths`` installed; its last line of
    output is JSON."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", _plugins.DISABLE, "OPTIMLAB_DEBUG")}
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    if cache is not None:
        env["OPTIMLAB_CACHE_DIR"] = str(cache)
    if disable:
        env[_plugins.DISABLE] = "1"
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *(args or [])],
                          capture_output=True, text=True, timeout=300, env=env, cwd=paths[0]
                          if paths else None)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    result["stderr"] = done.stderr
    return result


# Runs command lines through optimlab.cli.main (argv lists as JSON in sys.argv[1]) and prints
# each one's exit status and output, as JSON (test_startup's driver).
_CLI = _DRIVER


def _cli(commands: list[list[str]], *paths: Path, cache: Path, disable: bool = False) -> list:
    return _run(_CLI, *paths, cache=cache, disable=disable, args=[json.dumps(commands)])["results"]


# ---------------------------------------------------------------- an installed package


def test_an_installed_plugin_is_known_to_every_consumer_of_the_registry(site):
    """In a fresh process: the first thing asked is the plugin's name (so the registry
    loads the plugins on a name it does not know, not only when listing), then the class
    form and the function form are both listed after the built-ins, with the function's
    catalog data, and the name works in create (plain and fused, same numbers), a
    population, a race and the playground's optimizer list."""
    out = _run("""
        import json, warnings
        warnings.simplefilter("error")
        import torch
        import optimlab
        from optimlab.web import hparams

        torch.manual_seed(0)
        start = torch.randn(5, dtype=torch.float64)
        finals = []
        for fused in (False, True):
            p = start.clone().requires_grad_()
            opt = optimlab.create("signplug", [p], lr=0.1, fused=fused)  # not listed yet
            for _ in range(3):
                opt.zero_grad()
                ((p - 1) ** 2).sum().backward()
                opt.step()
            finals.append(p.detach().tolist())
        expected = start.clone()
        m = torch.zeros_like(expected)
        for _ in range(3):
            m = torch.lerp(m, 2 * (expected - 1), 0.1)
            expected = expected - 0.1 * torch.sign(m)
        names = [e.name for e in optimlab.available()]
        builtin = [e.name for e in optimlab.available(user=False)]
        meta = optimlab.info("signplug_meta")
        members = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
        pop = optimlab.Population("signplug", [members], {"lr": [0.1, 0.2]})
        ((members - 1) ** 2).sum().backward()
        pop.step()
        race = optimlab.race("rosenbrock", {"signplug": {"lr": 0.01}}, steps=20)
        print(json.dumps({
            "finals": finals, "expected": expected.tolist(), "names": names, "builtin": builtin,
            "year": meta.year, "family": meta.family, "paper": meta.paper,
            "cls": optimlab.resolve("signplug_meta").cls.__name__,
            "population": members.detach().tolist(), "raced": race.table(),
            "inner": "signplug" in hparams.inner_names()}))
    """, site)
    assert out["finals"][0] == out["expected"] and out["finals"][1] == out["expected"]
    assert out["names"] == out["builtin"] + ["signplug", "signplug_meta"]
    assert (out["year"], out["family"], out["paper"]) == (2025, "sign", "A plugin's paper")
    assert out["cls"] == "SignPlug"
    assert out["population"] == [[0.1] * 3, [0.2] * 3]  # the sign of a negative gradient
    assert "signplug" in out["raced"]
    assert out["inner"]
    assert "PluginWarning" not in out["stderr"]


def test_the_command_line_lists_explains_and_races_an_installed_plugin(site, tmp_path):
    """The catalog cache, written by a process without the plugin, holds the built-ins; a
    process with it installed answers with it (not from that cache), and leaves the cache
    as it was."""
    cache = tmp_path / "cache"
    (rc, before, _), = _cli([["list"]], cache=cache)
    assert rc == 0 and "signplug" not in before
    stored = (cache / next(os.walk(cache))[2][0]).read_text()
    results = _cli([["list"], ["explain", "signplug_meta"],
                    ["race", "rosenbrock", "--optimizers", "signplug,adam", "--steps", "30"],
                    ["explain", "signplg"]], site, cache=cache)
    (rc1, listed, _), (rc2, explained, _), (rc3, raced, err3), (rc4, _, unknown) = results
    assert rc1 == 0 and "signplug" in listed and "signplug_meta" in listed
    assert rc2 == 0 and "2025" in explained and "A plugin's paper" in explained
    assert rc3 == 0, err3
    assert "signplug" in raced and "adam" in raced
    assert rc4 == 2 and "did you mean signplug" in unknown
    assert (cache / next(os.walk(cache))[2][0]).read_text() == stored
    (rc, after, _), = _cli([["list"]], cache=cache)  # the cache still answers without it
    assert rc == 0 and after == before


def test_a_plugin_that_cannot_be_loaded_is_left_out_with_a_warning(site, broken_site, tmp_path):
    """A missing module, an object that is neither a class nor a function, and a built-in's
    name each give a PluginWarning naming the entry point and its distribution; the other
    plugin and the built-ins work."""
    out = _run("""
        import json, warnings
        import optimlab
        from optimlab.optim.registry import PluginWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = [e.name for e in optimlab.available()]
            again = [e.name for e in optimlab.available()]  # loaded once: no new warnings
        print(json.dumps({"names": names, "again": again, "adam": optimlab.resolve("adam").cls.__module__,
                          "warnings": [[w.category.__name__, str(w.message)] for w in caught]}))
    """, site, broken_site)
    assert out["names"] == out["again"]
    assert "signplug" in out["names"] and "missing" not in out["names"]
    assert out["adam"] == "optimlab.optim.adam"
    kinds = {kind for kind, _ in out["warnings"]}
    messages = "\n".join(text for _, text in out["warnings"])
    assert kinds == {"PluginWarning"} and len(out["warnings"]) == 3, out["warnings"]
    assert "missing = brokenplug_missing:Nope (brokenplug 0.1) was not loaded: " \
           "ModuleNotFoundError" in messages
    assert "number = signplug:NOT_AN_OPTIMIZER (brokenplug 0.1) was not loaded: TypeError: " \
           "signplug:NOT_AN_OPTIMIZER is int, neither an optimizer class" in messages
    assert "adam = signplug:SignPlug (brokenplug 0.1) was not loaded: ValueError: 'adam' is a " \
           "built-in optimizer's name" in messages
    (rc, listed, err), = _cli([["list"]], site, broken_site, cache=tmp_path)
    assert rc == 0 and "signplug" in listed and "the optimizer plugin missing = " in err


def test_the_environment_variable_turns_plugins_off(site, tmp_path):
    out = _run("""
        import json
        import optimlab
        print(json.dumps({"names": [e.name for e in optimlab.available()],
                          "builtin": [e.name for e in optimlab.available(user=False)]}))
    """, site, disable=True)
    assert out["names"] == out["builtin"]
    (rc, listed, _), = _cli([["list"]], site, cache=tmp_path, disable=True)
    assert rc == 0 and "signplug" not in listed


# ------------------------------------------------------------- the loader, in this process


class _Plain(RuleOptimizer):
    """Gradient descent, for the loader's tests."""

    init = staticmethod(lambda p, **_: {})
    update = staticmethod(lambda p, g, state, *, lr, **_: p - lr * g)
    capabilities = Capabilities()

    def __init__(self, params, lr=0.1, *, maximize=False):
        super().__init__(params, dict(lr=lr, maximize=maximize))


class _Other(_Plain):
    """Another class, for a plugin that names a name taken."""


class _EntryPoint:
    """An entry point made by hand: ``load()`` runs ``load``."""

    def __init__(self, name, load, value="tests:made_here"):
        self.name, self.value, self._load, self.dist = name, value, load, None

    def load(self):
        return self._load()


@pytest.fixture
def loader(monkeypatch):
    """The registry as before its plugins were loaded, with entry points of the test's
    choosing (``loader(list_of_entry_points)``); put back as it was afterwards."""
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    monkeypatch.setattr(registry, "_plugins_state", "pending")

    def install(points):
        monkeypatch.setattr(_plugins, "entry_points", lambda: list(points))

    yield install
    monkeypatch.undo()
    registry._changed()  # the caches built from the names above (palette, web) forget them


def test_plugins_load_once_and_a_name_registered_first_stays_the_users(loader):
    """register() does not load the plugins (a plugin module that registers its own class
    at import calls it while the plugins load); the first listing does, once. A plugin
    naming a name the user took first is left out with a warning."""
    calls = []

    def load():
        calls.append(1)
        return _Plain

    loader([_EntryPoint("plainplug", load), _EntryPoint("mine", lambda: _Other)])
    optimlab.register(_Plain, "mine")
    assert calls == []
    with pytest.warns(PluginWarning, match="mine = tests:made_here was not loaded: "
                                           "ValueError: 'mine' is registered already"):
        names = [e.name for e in optimlab.available()]
    assert names[-2:] == ["mine", "plainplug"] and calls == [1]
    assert optimlab.resolve("mine").cls is _Plain
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimlab.resolve("still_unknown")
    assert calls == [1]


def test_a_plugin_module_that_registers_its_class_itself_is_not_refused(loader):
    """The pattern ``optimlab.register(MyOpt)`` at the end of the plugin's module, whose
    class is also the entry point's object: registered once, no warning."""
    def load():
        optimlab.register(_Plain, "selfreg")  # what importing the module does
        return _Plain

    loader([_EntryPoint("selfreg", load)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert optimlab.resolve("selfreg").cls is _Plain


def test_an_interrupt_while_loading_leaves_none_registered_and_loads_again_later(loader):
    state = {"interrupt": True}

    def interrupted():
        if state["interrupt"]:
            raise KeyboardInterrupt
        return _Plain

    loader([_EntryPoint("first", lambda: _Plain), _EntryPoint("second", interrupted)])
    with pytest.raises(KeyboardInterrupt):
        optimlab.available()
    assert registry._plugins_state == "pending"
    assert "first" not in registry._ENTRIES  # read directly: a listing would load again
    state["interrupt"] = False
    assert [e.name for e in optimlab.available()][-2:] == ["first", "second"]


def test_two_threads_that_ask_at_once_both_see_the_plugin(loader):
    """Two threads ask at once while the plugin takes a while to import: both return with
    it registered, once."""
    started = threading.Event()

    def slow():
        started.set()
        time.sleep(0.3)
        return _Plain

    loader([_EntryPoint("slowplug", slow)])
    seen = {}

    def ask(key):
        seen[key] = [e.name for e in optimlab.available()]

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    assert started.wait(10)
    ask("second")  # while the first thread is inside the plugin's import
    first.join(10)
    assert "slowplug" in seen["first"] and "slowplug" in seen["second"]
    assert [e.name for e in optimlab.available()].count("slowplug") == 1


SELF_REGISTERING = """
import time
import optimlab
from tests.test_plugins import _Plain


class SelfReg(_Plain):
    \"\"\"A plugin class its module registers itself, with its catalog data.\"\"\"


time.sleep({delay})  # a module that takes a while to import
optimlab.register(SelfReg, "selfreg", year=2021, paper="Its own paper")
optimlab.available()  # anything that reads the registry at import time
"""


@pytest.fixture
def self_registering(loader, tmp_path, monkeypatch):
    """A module ``selfreg_mod`` on the path that registers its class at import (and lists
    the registry), which an entry point names too; gone from ``sys.modules`` afterwards."""
    def make(delay=0.0):
        (tmp_path / "selfreg_mod.py").write_text(SELF_REGISTERING.format(delay=delay))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "selfreg_mod", raising=False)
        loader([_EntryPoint("selfreg", lambda: importlib.import_module("selfreg_mod").SelfReg,
                            value="selfreg_mod:SelfReg")])
    yield make
    sys.modules.pop("selfreg_mod", None)


def test_importing_a_plugin_module_that_registers_itself_keeps_its_catalog_data(self_registering):
    """The module imported by the user first: its own register() call is not refused by the
    plugins loading inside it, and its year and paper stay."""
    self_registering()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.import_module("selfreg_mod")
        names = [e.name for e in optimlab.available()]
    assert names.count("selfreg") == 1
    assert (optimlab.info("selfreg").year, optimlab.info("selfreg").paper) == (2021, "Its own paper")


def test_a_thread_importing_a_plugin_module_and_one_listing_the_registry_do_not_deadlock(
        self_registering):
    """Thread B imports the plugin's module (which reads the registry at import), thread A
    lists the registry meanwhile, which imports the same module: no lock of the registry is
    held across that import, so both finish."""
    self_registering(delay=0.3)
    done = {}

    def importer():
        importlib.import_module("selfreg_mod")
        done["importer"] = True

    def lister():
        time.sleep(0.1)  # the importer is inside the module by now
        done["lister"] = [e.name for e in optimlab.available()]

    threads = [threading.Thread(target=importer, daemon=True),
               threading.Thread(target=lister, daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads), "deadlock"
    assert done["importer"] and done["lister"].count("selfreg") == 1
