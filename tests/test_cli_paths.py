"""`optimlab` output paths (a folder gets a named file; the printed path is the one written)
and the size bounds (named in the error, lifted by --no-limits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optimlab import cli
from optimlab.cli import CLIError, db_path, main, out_file, out_folder

RACE = ["race", "rosenbrock", "--optimizers", "adam", "--steps", "3"]
PNG = (".png", ".svg", ".pdf")


def _written(out: str) -> list[str]:
    return [line[len("wrote "):] for line in out.splitlines() if line.startswith("wrote ")]


# --------------------------------------------------------------------------------------
# The rule, unit by unit
# --------------------------------------------------------------------------------------

def test_out_file_puts_a_named_file_in_a_folder(tmp_path):
    assert out_file(str(tmp_path), "--out", "race-x", PNG) == tmp_path / "race-x.png"
    assert out_file(f"{tmp_path}/", "--out", "race-x", PNG) == tmp_path / "race-x.png"
    assert out_file(str(tmp_path / "a.svg"), "--out", "race-x", PNG) == tmp_path / "a.svg"
    assert out_file(str(tmp_path / "a"), "--out", "race-x", PNG) == tmp_path / "a.png"
    assert out_file(str(tmp_path / "a.PNG"), "--out", "race-x", PNG) == tmp_path / "a.PNG"
    # a new folder named with a trailing separator is made, as README and --help say
    assert out_file(f"{tmp_path}/new/", "--out", "race-x", PNG) == tmp_path / "new" / "race-x.png"
    assert (tmp_path / "new").is_dir()


@pytest.mark.parametrize("name, message", [
    ("nodir/deeper/", "its folder .* does not exist"),
    ("nodir/a.png", "does not exist"),
    (".png", "names a suffix"),
    ("a.xyz", "cannot write .xyz files"),
])
def test_out_file_refusals(tmp_path, name, message):
    with pytest.raises(CLIError, match=message):
        out_file(f"{tmp_path}/{name}", "--out", "race-x", PNG)
    assert list(tmp_path.iterdir()) == []


def test_out_folder_and_db_path(tmp_path):
    (tmp_path / "file").write_text("x")
    assert out_folder(str(tmp_path / "new"), "--out", "the report") == tmp_path / "new"
    with pytest.raises(CLIError, match="not a folder"):
        out_folder(str(tmp_path / "file"), "--out", "the report")
    with pytest.raises(CLIError, match="does not exist"):
        out_folder(str(tmp_path / "no" / "new"), "--out", "the report")
    assert db_path(str(tmp_path / "r.db")) == str(tmp_path / "r.db")
    assert db_path(":memory:") == ":memory:"
    with pytest.raises(CLIError, match="is a folder"):
        db_path(str(tmp_path))
    with pytest.raises(CLIError, match="no run store"):
        db_path(str(tmp_path / "r.db"), must_exist=True)
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]


# --------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------

def test_race_pictures_into_a_folder(tmp_path, capsys):
    """An existing folder, with or without a trailing /, gets race-NAME.png and friends."""
    pytest.importorskip("matplotlib")
    folder = str(tmp_path)
    assert main(RACE + ["--out", folder, "--gif", folder + "/", "--surface", folder + "/"]) == 0
    written = _written(capsys.readouterr().out)
    png, surface, gif = (tmp_path / f"{stem}-rosenbrock.{ext}" for stem, ext in
                         (("race", "png"), ("surface", "png"), ("race", "gif")))
    assert written[:3] == [str(png), str(surface), str(gif)]
    for path in written:
        assert Path(path).stat().st_size > 0
    names = {p.name for p in tmp_path.iterdir()}
    assert not any(name.startswith(".") for name in names), names  # no hidden .png / .gif
    assert not (tmp_path.parent / f"{tmp_path.name}.gif").exists()  # not dir.gif beside it


def test_race_names_without_a_suffix_get_one(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(RACE + ["--out", "plot"]) == 0
    assert _written(capsys.readouterr().out) == ["plot.png"]
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_a_bad_output_path_is_refused_before_the_race_runs(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the race ran")

    monkeypatch.setattr("optimlab.landscapes.race", never)
    for extra in (["--out", f"{tmp_path}/no/x.png"], ["--gif", f"{tmp_path}/no/deeper/"],
                  ["--surface", f"{tmp_path}/x.txt"]):
        assert main(RACE + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("optimlab: error: "), err
    assert list(tmp_path.iterdir()) == []


def test_demo_prints_the_file_it_wrote(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "EMA", "--out", f"{tmp_path}/figures/"]) == 0
    (written,) = _written(capsys.readouterr().out)
    assert written == str(tmp_path / "figures" / "ema.png")
    assert (tmp_path / "figures" / "ema.png").stat().st_size > 0


def test_bench_checks_its_report_folder_before_training(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the sweep ran")

    monkeypatch.setattr("optimlab.bench.sweep.run_sweep", never)
    (tmp_path / "file").write_text("x")
    argv = ["bench", "digits", "--optimizers", "adam", "--steps", "3", "--db",
            str(tmp_path / "r.db"), "--out"]
    assert main(argv + [str(tmp_path / "file")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(argv + [str(tmp_path / "no" / "report")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no store created


# --------------------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, bound", [
    (["race", "rosenbrock", "--optimizers", "adam", "--steps", "20000000"],
     cli.RACE_MAX_STEPS),
    (["bench", "digits", "--optimizers", "adam", "--lrs", "1e-3:1e-1:1000000"],
     cli.BENCH_MAX_LRS),
    (["bench", "digits", "--optimizers", "adam", "--seeds", "5000"], cli.BENCH_MAX_SEEDS),
    (["bench", "digits", "--optimizers", "adam", "--steps", "20000000"], cli.BENCH_MAX_STEPS),
])
def test_a_bound_names_itself_and_the_flag_that_lifts_it(argv, bound, capsys):
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"bound of {bound:,}" in line and "--no-limits" in line, line


def test_no_limits_lifts_the_bounds(tmp_path, capsys, monkeypatch):
    # past the bound, --no-limits lets the command go on to the next check, which fails
    monkeypatch.setattr("optimlab.landscapes.race", lambda *a, **k: pytest.fail("ran"))
    argv = ["race", "rosenbrock", "--optimizers", "adam", "--steps", "100001", "--lr",
            "sgd=0.1"]
    assert main(argv) == 2
    assert "bound of 100,000" in capsys.readouterr().err
    assert main(argv + ["--no-limits"]) == 2
    assert "not in --optimizers" in capsys.readouterr().err
    argv = ["bench", "digits", "--optimizers", "adam", "--lrs", "1e-3:1e-1:1001", "--seeds",
            "1", "--model", "resnet", "--db", str(tmp_path / "r.db")]
    assert main(argv) == 2
    assert "bound of 1,000" in capsys.readouterr().err
    assert main(argv + ["--no-limits"]) == 2
    assert "no model 'resnet'" in capsys.readouterr().err


def test_the_bounds_are_generous_for_real_use():
    """The README's own commands pass every bound (checked up to the training itself)."""
    from optimlab.cli import build_parser

    args = build_parser().parse_args(
        "bench mnist1d --optimizers sgd,adagrad,rmsprop,adam --lrs 1e-3:1e-1:5 --seeds 3 "
        "--steps 2000 --batch-size 100 --target 0.6".split())
    members = 4 * 5 * 3
    assert members <= cli.BENCH_MAX_MEMBERS and args.steps <= cli.BENCH_MAX_STEPS
    assert members * (args.steps // 100 + 1) <= cli.BENCH_MAX_POINTS
    assert 5 * 3 * args.steps * 100 <= cli.BENCH_MAX_INDICES
    assert 17 * 6 * 501 * 2 <= cli.RACE_MAX_VALUES  # six tuned optimizers, 500 steps
