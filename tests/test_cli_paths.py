"""`optimlab` output paths (a folder gets a named file; the printed path is the one written)
and the size bounds (named in the error, lifted by --no-limits)."""

from __future__ import annotations

import os
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
    from optimlab.landscapes.race import TUNE_MOST_RATES

    assert TUNE_MOST_RATES * 6 * 501 * 2 <= cli.RACE_MAX_VALUES  # six tuned optimizers, 500 steps


# --------------------------------------------------------------------------------------
# Unwritable outputs: refused before the work, not after it
# --------------------------------------------------------------------------------------

def _read_only(monkeypatch, folder: Path) -> None:
    """Make ``folder`` read-only as the write probe sees it (tests may run as root, whom
    chmod does not stop): no file can be made in it, as on a read-only disk."""
    import errno
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).absolute() == folder.absolute():
            raise OSError(errno.EROFS, "Read-only file system", str(folder))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _never(*args, **kwargs):
    raise AssertionError("the work ran before the output was checked")


@pytest.mark.parametrize("argv, heavy", [
    (RACE + ["--out", "{ro}/r.png"], "optimlab.landscapes.race"),
    (RACE + ["--surface", "{ro}/"], "optimlab.landscapes.race"),
    (RACE + ["--gif", "{ro}/r.gif"], "optimlab.landscapes.race"),
    (["bench", "digits", "--optimizers", "adam", "--steps", "3", "--db", "{tmp}/r.db", "--out",
      "{ro}/report"], "optimlab.bench.sweep.run_sweep"),
    (["slice", "digits", "--steps", "3", "--out", "{ro}"], "optimlab.bench.slices.slice_landscape"),
    (["advise", "digits", "--steps", "30", "--db", "{tmp}/r.db", "--out", "{ro}/advice"],
     "optimlab.bench.advisor.advise_task"),
    (["advise", "digits", "--steps", "30", "--db", "{tmp}/r.db", "--out", "{tmp}/advice",
      "--json", "{ro}/a.json"], "optimlab.bench.advisor.advise_task"),
    (["demo", "ema", "--out", "{ro}/"], "optimlab.exhibits.run_demo"),
    (["demo", "--out", "{ro}/new"], "optimlab.exhibits.run_demo"),
    (["tour", "--out", "{ro}/tour"], "optimlab.bench.tour.run_tour"),
    (["docs", "--out", "{ro}/docs"], "optimlab.web.docs.write_docs"),
    (["report", "1", "--db", "{tmp}/r.db", "--out", "{ro}/report"], "optimlab.cli._read_store"),
    (["profile", "1", "--db", "{tmp}/r.db", "--out", "{ro}/p.png"], "optimlab.cli._read_store"),
])
def test_an_unwritable_output_folder_is_refused_before_the_work(argv, heavy, tmp_path, capsys,
                                                                  monkeypatch):
    """`race ... --tune --out /read-only/r.png` raced for minutes, then said only that it
    could not write: every output option is probed up front now."""
    pytest.importorskip("matplotlib")
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    monkeypatch.setattr(heavy, _never)
    argv = [a.format(ro=ro, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("optimlab: error: cannot write") and \
        err.endswith(f"{ro} is not writable (Read-only file system)"), err
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a POSIX system's permissions")
def test_a_folder_without_write_permission_is_refused(tmp_path, monkeypatch):
    """A folder whose mode forbids writing (chmod 0o555): refused before the race. chmod does
    not stop root, and tests (CI's too) may run as root: there the command runs in a forked
    child that gives up root for the unprivileged user ``nobody`` first, in a folder that
    user can reach."""
    import json
    import tempfile

    # imported here, as root: the unprivileged child cannot write matplotlib's caches in
    # root's home, and imports nothing it needs afterwards
    pytest.importorskip("matplotlib.backend_bases")
    base = Path(tempfile.mkdtemp(prefix="optimlab-perm-"))
    try:
        base.chmod(0o755)  # reachable by anyone, writable by its owner only
        folder = base / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        monkeypatch.setattr("optimlab.landscapes.race", _never)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the command, unprivileged; its exit status and stderr go back
            code = 70
            try:
                import contextlib
                import io

                os.close(read)
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    code = main(RACE + ["--out", str(folder / "r.png")])
                os.write(write, json.dumps([code, err.getvalue()]).encode())
            finally:
                os._exit(code if isinstance(code, int) else 70)
        os.close(write)
        with os.fdopen(read) as pipe:
            answer = pipe.read()
        _, status = os.waitpid(child, 0)
        assert answer, f"the child died (status {status}) before answering"
        code, err = json.loads(answer)
        assert (code, os.waitstatus_to_exitcode(status)) == (2, 2), err
        assert "is not writable" in err and not os.listdir(folder)
    finally:
        import shutil

        if (base / "locked").exists():
            (base / "locked").chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


def test_the_race_table_is_printed_when_a_picture_cannot_be_written(tmp_path, capsys,
                                                                     monkeypatch):
    """A write that still fails after the probe (the disk filled up) keeps the race's
    results: the table is printed, then the one error line."""
    import errno

    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full)
    assert main(RACE + ["--out", str(tmp_path / "r.png")]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("rosenbrock from (") and "adam" in out
    assert err.strip() == f"optimlab: error: cannot write {tmp_path / 'r.png'}: No space left on device"


def test_a_picture_below_a_file_says_the_file_is_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("optimlab.landscapes.race", _never)
    (tmp_path / "race.png").write_text("x")
    for name in ("race.png/x.png", "race.png/x/", "race.png/deeper/x.png"):
        assert main(RACE + ["--out", str(tmp_path / name)]) == 2
        (err,) = capsys.readouterr().err.strip().splitlines()
        assert err.endswith(f"{tmp_path / 'race.png'} is a file, not a folder"), err
        assert "does not exist" not in err


def test_an_mp4_without_ffmpeg_says_only_the_gif_was_written(tmp_path, capsys, monkeypatch):
    import shutil

    pytest.importorskip("matplotlib")
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "ffmpeg"
                        else real(name, *a, **k))
    assert main(RACE + ["--gif", str(tmp_path / "x.mp4")]) == 0
    out, err = capsys.readouterr()
    assert _written(out) == [str(tmp_path / "x.gif")]
    assert "optimlab: note: no MP4 written: it needs ffmpeg" in err
    assert main(RACE + ["--gif", str(tmp_path / "y.gif")]) == 0  # no MP4 asked for: no note
    assert "MP4" not in capsys.readouterr().err


def test_pgf_is_offered_only_where_its_tex_program_is_installed(tmp_path, capsys, monkeypatch):
    """A .pgf picture needs xelatex: without it `race --out r.pgf` raced to the end, then
    failed as an internal error. It is refused up front there, offered where TeX is."""
    import shutil

    pytest.importorskip("matplotlib")
    from optimlab.cli import _figure_suffixes

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if "tex" in name
                        else real(name, *a, **k))
    monkeypatch.setattr("optimlab.landscapes.race", _never)
    assert ".pgf" not in _figure_suffixes()
    assert main(RACE + ["--out", str(tmp_path / "r.pgf")]) == 2
    assert "cannot write .pgf files" in capsys.readouterr().err
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}")
    assert ".pgf" in _figure_suffixes()


@pytest.mark.parametrize("argv", [["demo", "saddle"], ["tour", "--quick"], ["docs"]])
def test_a_folder_option_given_a_file_name_is_refused(argv, tmp_path, capsys, monkeypatch):
    """`demo saddle --out fig.png` made a folder fig.png holding saddle.png: a new folder
    named as a picture, page or table file is refused before any work."""
    monkeypatch.setattr("optimlab.exhibits.run", _never, raising=False)
    monkeypatch.setattr("optimlab.bench.tour.run_tour", _never)
    monkeypatch.setattr("optimlab.web.docs.write_docs", _never)
    for name in ("fig.png", "page.HTML"):
        assert main(argv + ["--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert "--out takes a folder" in err and f"{tmp_path / name} is named as a " in err
    assert list(tmp_path.iterdir()) == []


def test_an_error_line_keeps_the_paths_spaces_and_its_reason():
    """Error lines collapsed every run of whitespace ("a  b.db" shown as "a b.db", another
    file's name) and cut a long message at its end, where the reason is."""
    assert cli._one_line(OSError("no run store at /tmp/a  b.db")) == "no run store at /tmp/a  b.db"
    assert cli._one_line(ValueError("first\n    second\tthird")) == "first second third"
    long = "cannot open " + "/p" * 500 + ": the reason"
    line = cli._one_line(ValueError(long))
    assert len(line) == 600 and line.startswith("cannot open /p/p") and \
        line.endswith("/p: the reason") and " ... " in line


def test_a_file_that_is_no_database_is_not_called_damaged(tmp_path, capsys):
    """``--db`` pointed at a picture: "damaged ... restore it from a copy" was wrong advice."""
    picture = tmp_path / "curves.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    before = picture.read_bytes()
    assert main(["runs", "--db", str(picture)]) == 2
    err = capsys.readouterr().err
    assert "is not a run store: it is not a SQLite database" in err and "damaged" not in err
    assert picture.read_bytes() == before


def test_a_store_name_with_no_room_for_its_side_files_is_refused_before_anything(tmp_path,
                                                                                  capsys):
    """A name of 246 bytes made the store and a sweep, then failed on the sweep's lock file
    (its name + "-sweep1.lock" beyond 255 bytes), leaving a sweep with no run. The bound
    leaves room for "-sweep999999.lock" (17 bytes): a name of 238 bytes still works."""
    import os

    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    db = tmp_path / ("d" * (limit - 12) + ".db")  # 3 bytes over the bound
    argv = ["bench", "digits", "--model", "logreg", "--optimizers", "adam", "--lrs", "0.01",
            "--seeds", "1", "--steps", "5", "--db"]
    assert main([*argv, str(db)]) == 2
    err = capsys.readouterr().err
    assert f"its name is {limit - 9} bytes" in err and f"at most {limit - 17} bytes" in err
    assert list(tmp_path.iterdir()) == []
    longest = tmp_path / ("d" * (limit - 20) + ".db")  # at the bound: trains
    assert main([*argv, str(longest)]) == 0
    assert longest.is_file()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
@pytest.mark.parametrize("argv, heavy", [
    (["tour", "--out", "{link}"], "optimlab.bench.tour.run_tour"),
    (["bench", "digits", "--optimizers", "adam", "--steps", "3", "--db", "{tmp}/r.db", "--out",
      "{link}"], "optimlab.bench.sweep.run_sweep"),
    (["advise", "digits", "--steps", "30", "--db", "{tmp}/r.db", "--out", "{link}"],
     "optimlab.bench.advisor.advise_task"),
    (["demo", "--out", "{link}"], "optimlab.exhibits.run_demo"),
    (["docs", "--out", "{link}"], "optimlab.web.docs.write_docs"),
])
def test_a_link_to_a_missing_folder_is_named_as_such(argv, heavy, tmp_path, capsys, monkeypatch):
    """`--out link` where the link's target is gone: mkdir said "File exists", where nothing
    seemed to be; the error names the link and its target, before the work starts."""
    pytest.importorskip("matplotlib")
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    monkeypatch.setattr(heavy, _never)
    argv = [a.format(link=link, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("optimlab: error: cannot") and \
        f"{link} is a symbolic link to {tmp_path / 'gone'}, which does not exist" in err, err
    assert not (tmp_path / "gone").exists()


def test_a_line_break_in_an_output_name_keeps_each_wrote_line_whole(tmp_path, capsys):
    """`--out $'a\\nb.png'` printed "wrote .../a" and "b.png" on two lines, as if two files
    were written: a name that would not print as one line is quoted with escapes."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "a\nb.png"
    assert main(RACE + ["--out", str(out)]) == 0
    wrote = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote")]
    assert wrote == [f"wrote {str(out)!r}"] and out.is_file()
