"""The package itself (:mod:`optimlab.exhibits`): the names, ``run_demo``, the layering."""

import ast
from pathlib import Path

import pytest

import optimlab
from optimlab import exhibits
from optimlab.exhibits import DEMO_NAMES, DEMOS, run_demo
from tests.exhibits.figures import check_png


def test_registry_names():
    assert list(DEMOS) == ["effective-lr", "ema", "ill-conditioned", "saddle", "basins",
                           "sparse", "gd-variants"]
    assert DEMO_NAMES == tuple(DEMOS)
    assert optimlab.exhibits is exhibits
    # each name is the function of that name in its topic's module
    for name, fn in DEMOS.items():
        assert fn.__name__ == name.replace("-", "_")
        assert fn.__module__.startswith("optimlab.exhibits.")


def test_run_demo_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "figs"
    demo = run_demo("ema", out_dir=out)
    assert isinstance(demo, exhibits.EMADemo)
    assert sorted(p.name for p in out.iterdir()) == ["ema.png"]
    check_png(out / "ema.png")


def test_run_demo_without_out_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = run_demo("EMA")  # names are case-insensitive; "_" stands for "-"
    assert isinstance(demo, exhibits.EMADemo)
    assert list(tmp_path.iterdir()) == []


def test_run_demo_passes_arguments():
    demo = run_demo("effective_lr", steps=5, at=(1, 5))
    assert isinstance(demo, exhibits.EffectiveLRDemo) and demo.adagrad.shape == (5,)


def test_unknown_demo():
    with pytest.raises(ValueError, match="unknown demo 'nope'") as err:
        run_demo("nope")
    for name in DEMOS:
        assert name in str(err.value)


def test_a_misspelt_demo_gets_close_matches_and_a_non_string_a_type_error():
    # the Python function says what `optimlab demo` says (one check, exhibits.demo_key)
    with pytest.raises(ValueError, match="unknown demo 'sadle'; did you mean saddle\\?"):
        run_demo("sadle")
    with pytest.raises(TypeError, match="a demo's name must be a string"):
        run_demo(5)  # it ran str(5) and said "unknown demo '5'"
    assert exhibits.demo_key(" Effective_LR ") == "effective-lr"


def _imports(package: Path):
    """(module file, absolute module imported) for every import in the package's files."""
    for path in sorted(package.glob("*.py")):
        pkg = f"optimlab.{package.name}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path.name, alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                yield path.name, module
                if not node.module:  # "from .. import exhibits"
                    for alias in node.names:
                        yield path.name, f"{module}.{alias.name}"


def test_dependencies_point_one_way():
    """optim <- landscapes <- exhibits <- cli/bench/web: nothing below imports what is above."""
    root = Path(exhibits.__file__).resolve().parents[1]
    above_landscapes = ("optimlab.exhibits", "optimlab.cli", "optimlab.bench", "optimlab.web")
    for name, module in _imports(root / "landscapes"):
        assert not module.startswith(above_landscapes), f"landscapes/{name} imports {module}"
    for name, module in _imports(root / "exhibits"):
        assert not module.startswith(above_landscapes[1:]), f"exhibits/{name} imports {module}"
