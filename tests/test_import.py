"""Importing optimlab is cheap and inert: no autograd runs, no private torch engine API."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Run in a fresh interpreter: this one has imported optimlab long ago. Autograd at import
# would show as a tensor saved for a backward pass (any recorded graph that a backward could
# run on saves some) or as a call of one of the public entry points into the engine.
_WATCH_IMPORT = textwrap.dedent("""
    import importlib.util, json, sys
    import torch
    import torch.autograd.graph

    events = []

    def watch(owner, name):
        original = getattr(owner, name)
        def watched(*args, **kwargs):
            events.append(name)
            return original(*args, **kwargs)
        setattr(owner, name, watched)

    watch(torch.autograd, "grad")
    watch(torch.autograd, "backward")
    watch(torch.Tensor, "backward")

    def pack(tensor):
        events.append("saved for backward")
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        import optimlab
        import optimlab.landscapes
        import optimlab.landscapes.race
        if importlib.util.find_spec("fastapi") is not None:  # the playground's races
            import optimlab.web.server
    assert "optimlab.landscapes.race" in sys.modules
    print(json.dumps(events))
""")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_watch_sees_autograd():
    """The check below is live: a gradient taken at import time is seen."""
    line = "    import optimlab\n"
    assert _WATCH_IMPORT.count(line) == 1
    code = _WATCH_IMPORT.replace(line, line + "    p = torch.ones(2, requires_grad=True)\n"
                                              "    torch.autograd.grad((p ** 3).sum(), p)\n")
    events = json.loads(_run(code).splitlines()[-1])
    assert "grad" in events and "saved for backward" in events


def test_import_runs_no_autograd():
    events = json.loads(_run(_WATCH_IMPORT).splitlines()[-1])
    assert events == [], f"importing optimlab ran autograd: {events}"


def test_no_private_autograd_engine_in_src():
    """The race's gradient goes through torch.autograd.grad, not the engine behind it."""
    hits = [str(path.relative_to(SRC)) for path in SRC.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
            and b"_execution_engine" in path.read_bytes()]
    assert hits == []


def test_bench_is_reached_lazily_from_optimlab():
    """``optimlab.bench`` (as the README writes ``optimlab.bench.tasks.get``) was
    AttributeError after ``import optimlab``; it loads on first access, not at import."""
    out = _run(textwrap.dedent("""
        import sys
        import optimlab
        assert "optimlab.bench" not in sys.modules and "torch" not in sys.modules
        assert "bench" in dir(optimlab) and "bench" not in optimlab.__all__
        bench = optimlab.bench
        assert bench is sys.modules["optimlab.bench"]
        assert "torch" not in sys.modules  # the package itself is cheap
        import optimlab.bench.tasks
        assert callable(optimlab.bench.tasks.get)
        print("ok")
    """))
    assert out.strip() == "ok"


def test_the_readmes_dotted_names_reach_their_submodules():
    """The README writes ``optimlab.bench.tasks.get``, ``optimlab.optim.palette.color`` and
    ``optimlab.landscapes.suggest.suggest_lrs`` after a plain ``import optimlab``: each
    raised AttributeError (the submodules were not imported by their packages)."""
    code = ("import optimlab\n"
            "print(optimlab.bench.tasks.get('digits').name, optimlab.bench.slices.__name__,\n"
            "      optimlab.optim.palette.color('adam'),\n"
            "      optimlab.landscapes.suggest.suggest_lrs.__name__)\n"
            "try:\n"
            "    optimlab.optim.nope\n"
            "except AttributeError as err:\n"
            "    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    task, module, colour, function = out[0].split()
    assert (task, module, function) == ("digits", "optimlab.bench.slices", "suggest_lrs")
    assert colour.startswith("#") and len(colour) == 7
    assert out[1] == "module 'optimlab.optim' has no attribute 'nope'"
