"""The files a command leaves its user are replaced whole or not at all.

A tour re-run in a folder and interrupted used to move the previous tour's store aside and
write over its reports, under a page that still described them; a full disk left a report
truncated at its final path, over a good one. A tour is now built in a staging folder and
moved into place once it has completed, and each file is written atomically.

One real quick tour runs here (its rerun is interrupted early); the other tours replace
their steps with small fakes that write into the folder they are given, as the real ones do.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from optimlab.bench import tour
from optimlab.bench.store import RunStore
from tests.disk import fill_disk

ENOSPC = OSError(errno.ENOSPC, "No space left on device")
#: the staging folder a tour is built in (``tour.STAGING``), spelled out here so that these
#: tests also read a tour that has none
STAGING = ".tour-new"


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (the lock file aside) by its relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != tour.TOUR_LOCK}


def _leftovers(folder: Path) -> list[str]:
    """The temporary files of a write and the staging folder, where any remain."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.name.endswith(".tmp") or p.name == STAGING)


def _fill_the_disk_for_figures(monkeypatch) -> None:
    """``savefig`` writes the start of a picture, then the disk is full: to a path (as
    matplotlib opens one) or to the file it is given."""
    from matplotlib.figure import Figure

    def savefig(self, fname, **kwargs):
        start = b"\x89PNG\r\n\x1a\n and then the disk was full"
        if isinstance(fname, (str, os.PathLike)):
            with open(fname, "wb") as out:
                out.write(start)
        else:
            fname.write(start)
        raise OSError(ENOSPC.errno, ENOSPC.strerror)

    monkeypatch.setattr(Figure, "savefig", savefig)


# ----------------------------------------------------------------------------- the tour


def test_an_interrupted_rerun_of_the_tour_leaves_the_previous_tour_whole(tmp_path):
    """The audit's case: a complete quick tour, then the same tour interrupted once its
    reports were (re)written: the first tour's page, store, reports and slice are as they
    were, byte for byte, and nothing of the rerun is left."""
    out = tmp_path / "tour1"
    page = tour.run_tour(out, quick=True, say=lambda text: None)
    assert page == out / "tour.html"
    before = _snapshot(out)
    for name in ("tour.html", "tour-runs.db", "mnist1d/report.html", "digits/report.html",
                 "sparse-logreg/results.csv", "mnist1d-gru/curves.png", "slice/slice.json"):
        assert name in before, name
    # what the tour shows names the folder it was asked for, never the one it was built in
    assert not _leftovers(out)
    for name, data in before.items():
        assert STAGING.encode() not in data, name
    assert f"Store: {out.resolve() / 'tour-runs.db'}, sweep key".encode() \
        in before["mnist1d/report.html"]

    def interrupted(*args, **kwargs):  # the GRU, after the other three reports
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tour, "_races", lambda quick, say: [])  # (sooner to the reports)
        patch.setattr(tour, "_recurrent", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tour.run_tour(out, quick=True, say=lambda text: None)
    assert _snapshot(out) == before
    assert not (out / tour.PREVIOUS).exists()
    assert not _leftovers(out)


class _Fakes:
    """The tour's steps, small: each writes what the real one does into the folder it is
    given (a sweep in the store, a report, the slice), marked with the run's ``label``."""

    def __init__(self, label: str):
        self.label = label

    def _report(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        (folder / "report.html").write_text(f"{folder.name}'s report of {self.label}")

    def section(self, name: str):
        return tour._Section(name, f"{name} of {self.label}", [])

    def mnist1d(self, store, out, quick, say):
        sweep = store.open_sweep({"task": "mnist1d", "tour": self.label})
        self._report(out / "mnist1d")
        return self.section("mnist1d"), sweep

    def profile(self, store, sweep_id, out, quick, say):
        self._report(out / "digits")
        return self.section("across"), [sweep_id], None, {}

    def recurrent(self, store, out, quick, say):
        self._report(out / "mnist1d-gru")
        return self.section("gru"), 1

    def slice(self, out, quick, say):
        (out / "slice").mkdir(exist_ok=True)
        (out / "slice" / "slice.json").write_text(f'{{"tour": "{self.label}"}}')
        return self.section("slice")

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(tour, "_races", lambda quick, say: [])
        monkeypatch.setattr(tour, "_mnist1d", self.mnist1d)
        monkeypatch.setattr(tour, "_profile", self.profile)
        monkeypatch.setattr(tour, "_recurrent", self.recurrent)
        monkeypatch.setattr(tour, "_slice", self.slice)
        monkeypatch.setattr(tour, "_variants", lambda say: self.section("variants"))
        monkeypatch.setattr(tour, "_evidence", lambda *args, **kwargs: self.section("evidence"))


def _fake_tour(out: Path, label: str, monkeypatch) -> Path:
    with monkeypatch.context() as patch:
        _Fakes(label).install(patch)
        return tour.run_tour(out, say=lambda text: None)


def test_a_completed_rerun_replaces_the_tour_and_keeps_the_previous_store(tmp_path,
                                                                            monkeypatch):
    """As the README says: each tour starts its store afresh (its sweeps from 1) and keeps
    the one before as tour-runs.previous.db. The store moves first, the page last; a staging
    folder left by a killed tour is removed, not published; a user's own file in a report
    folder stays."""
    assert getattr(tour, "STAGING", STAGING) == STAGING
    out = tmp_path / "tour"
    _fake_tour(out, "run 1", monkeypatch)
    first_store = (out / "tour-runs.db").read_bytes()
    (out / "mnist1d" / "notes.txt").write_text("the user's")
    stale = out / STAGING / "digits"  # a tour killed while it built its reports
    stale.mkdir(parents=True)
    (stale / "report.html").write_text("a killed tour's report")
    (stale / "stale.png").write_bytes(b"a killed tour's picture")
    moved = []
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        moved.append(Path(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    assert _fake_tour(out, "run 2", monkeypatch) == out / "tour.html"
    monkeypatch.undo()
    assert (out / "tour-runs.previous.db").read_bytes() == first_store
    store = RunStore(out / "tour-runs.db")
    assert store.sweep(1)["config"]["tour"] == "run 2"
    store.close()
    assert (out / "digits" / "report.html").read_text() == "digits's report of run 2"
    assert (out / "mnist1d-gru" / "report.html").read_text() == "mnist1d-gru's report of run 2"
    assert (out / "slice" / "slice.json").read_text() == '{"tour": "run 2"}'
    assert (out / "mnist1d" / "notes.txt").read_text() == "the user's"
    assert not (out / "digits" / "stale.png").exists()
    page = (out / "tour.html").read_text()
    assert "mnist1d of run 2" in page and "is kept as tour-runs.previous.db" in page
    assert STAGING not in page
    assert not _leftovers(out)
    # the store was moved in before the reports, the page after everything
    placed = [p for p in moved if p.parent in (out, *(out / d for d in
                                                     ("mnist1d", "digits", "mnist1d-gru",
                                                      "slice")))]
    assert placed[-1] == out / "tour.html"
    assert placed.index(out / "tour-runs.previous.db") < placed.index(out / "tour-runs.db") \
        < placed.index(out / "mnist1d" / "report.html")


def test_a_tour_whose_page_cannot_be_written_leaves_the_previous_one(tmp_path, monkeypatch):
    """The disk fills up as the page is written: the previous page is whole, its store is not
    moved aside, its reports are as they were, and nothing of the failed tour is left; the
    error says the disk's reason, as before."""
    out = tmp_path / "tour"
    _fake_tour(out, "run 1", monkeypatch)
    before = _snapshot(out)
    real_page = tour._page

    def page(*args, **kwargs):  # the page is ready: its write meets a full disk
        fill_disk(monkeypatch)
        return real_page(*args, **kwargs)

    with monkeypatch.context() as patch:
        _Fakes("run 2").install(patch)
        patch.setattr(tour, "_page", page)
        with pytest.raises(OSError) as failed:
            tour.run_tour(out, say=lambda text: None)
    monkeypatch.undo()
    assert failed.value.errno == errno.ENOSPC
    assert failed.value.strerror == "No space left on device"
    assert _snapshot(out) == before
    assert not _leftovers(out)


def test_a_report_write_that_fails_in_the_staging_folder_names_the_tours_folder(tmp_path,
                                                                                  monkeypatch):
    """A report's "cannot write ...: No space left on device" names the file where the tour
    was to leave it, not the staging folder the user never asked for."""
    from optimlab.bench import report

    out = tmp_path / "tour"
    fakes = _Fakes("run 1")

    def mnist1d(store, stage, quick, say):
        (stage / "mnist1d").mkdir()
        report._write(stage / "mnist1d" / "report.html", b"<html>")
        return fakes.mnist1d(store, stage, quick, say)

    with monkeypatch.context() as patch:
        fakes.install(patch)
        patch.setattr(tour, "_mnist1d", mnist1d)
        fill_disk(patch)
        with pytest.raises(OSError) as failed:
            tour.run_tour(out, say=lambda text: None)
    assert str(failed.value) == (f"cannot write {out / 'mnist1d' / 'report.html'}: "
                                 "No space left on device")
    assert not _leftovers(out) and not (out / "mnist1d").exists()


def test_a_running_tours_staging_folder_is_not_touched_by_a_second(tmp_path):
    """The folder's lock refuses a second tour before it removes anything: the staging
    folder it would take for a killed tour's is the running tour's."""
    import fcntl

    out = tmp_path / "tour"
    (out / STAGING).mkdir(parents=True)
    (out / STAGING / "tour-runs.db").write_text("the running tour's store")
    fd = os.open(out / tour.TOUR_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OSError, match="another tour is running"):
            tour.run_tour(out, say=lambda text: None)
    finally:
        os.close(fd)
    assert (out / STAGING / "tour-runs.db").read_text() == "the running tour's store"


# ----------------------------------------------------------------------------- single files


def test_a_report_on_a_full_disk_leaves_the_previous_report(tmp_path, monkeypatch):
    """A full disk left report.html truncated at its final path: the previous report's files
    are now whole, the error names the file as before, and no temporary file is left."""
    from optimlab.bench.report import write_report
    from optimlab.bench.sweep import SweepSpec, run_sweep
    from optimlab.bench.trainer import TrainConfig

    store = RunStore(tmp_path / "runs.db")
    spec = SweepSpec(task="digits", optimizers=("sgd",), lrs=(0.1,), seeds=1,
                     config=TrainConfig(steps=4, batch_size=32, eval_every=2))
    sweep = run_sweep(spec, store)
    paths = write_report(store, sweep, tmp_path / "out")
    before = _snapshot(tmp_path / "out")
    assert len(before) == 4
    with monkeypatch.context() as patch:
        fill_disk(patch)
        with pytest.raises(OSError) as failed:
            write_report(store, sweep, tmp_path / "out")
    store.close()
    assert str(failed.value) == f"cannot write {paths['results']}: No space left on device"
    assert _snapshot(tmp_path / "out") == before
    assert not _leftovers(tmp_path)


def _tiny_slice():
    from optimlab.bench import slices

    def path(name, coords):
        coords = np.asarray(coords, dtype=float)
        return slices.Path(name, {}, list(range(len(coords))), coords, np.zeros(len(coords)),
                           1.0, 0.5, 0.5, 0.9, None, False, None)

    grid = np.linspace(-1, 1, 3)
    curve = {"alpha": [0.0, 0.5, 1.0], "train_loss": [1.0, 0.5, 0.2],
             "test_loss": [1.1, 0.6, 0.3]}
    return slices.Slice("t", "m", "accuracy", 2, "random", (), grid, grid,
                        np.add.outer(grid, grid) ** 2 + 0.1, "train",
                        [path("sgd", [[0, 0], [0.5, 0.2]]), path("adam", [[0, 0], [0.1, 0.3]])],
                        interpolation={"init -> sgd": curve, "sgd -> adam": curve})


def test_pictures_on_a_full_disk_leave_the_previous_pictures(tmp_path, monkeypatch):
    """The slice's two pictures and an exhibit's: a save that fails part way (the disk full)
    leaves the picture that was there, and no temporary file."""
    from optimlab.bench.slices import plot_interpolation, plot_slice
    from optimlab.exhibits import run_demo

    result = _tiny_slice()
    plot_slice(result, tmp_path / "slice.png")
    plot_interpolation(result, tmp_path / "interpolation.png")
    run_demo("ema", tmp_path)
    before = _snapshot(tmp_path)
    assert sorted(before) == ["ema.png", "interpolation.png", "slice.png"]
    assert all(data.startswith(b"\x89PNG") for data in before.values())
    with monkeypatch.context() as patch:
        _fill_the_disk_for_figures(patch)
        for draw in (lambda: plot_slice(result, tmp_path / "slice.png"),
                     lambda: plot_interpolation(result, tmp_path / "interpolation.png"),
                     lambda: run_demo("ema", tmp_path)):
            with pytest.raises(OSError, match="No space left on device"):
                draw()
    assert _snapshot(tmp_path) == before
    assert not _leftovers(tmp_path)


def test_the_reference_on_a_full_disk_leaves_the_previous_pages(tmp_path, monkeypatch):
    """``optimlab docs`` over a previous reference: a full disk leaves every page, the style,
    the script and the vendored KaTeX as they were."""
    from optimlab.web.docs import write_docs

    write_docs(tmp_path / "docs")
    before = _snapshot(tmp_path / "docs")
    assert "index.html" in before and "style.css" in before and "adam.html" in before
    with monkeypatch.context() as patch:
        fill_disk(patch)
        with pytest.raises(OSError, match="No space left on device"):
            write_docs(tmp_path / "docs")
    assert _snapshot(tmp_path / "docs") == before
    assert not _leftovers(tmp_path)


def test_a_copy_to_another_disk_that_fills_it_replaces_nothing(tmp_path, monkeypatch):
    """Report folders linked to another disk get copies of the new files; a full disk there
    stopped the move half way (new store and some reports, old page). Every copy is now made
    before the first rename: the previous tour is whole, and no copy or staging is left."""
    out = tmp_path / "tour"
    _fake_tour(out, "run 1", monkeypatch)
    before = _snapshot(out)
    real_ready = tour._ready_beside

    def ready(built, place):  # as if each place were on another disk, the page's full
        if place.name == "tour.html":
            raise OSError(ENOSPC.errno, ENOSPC.strerror)
        copy = place.parent / f".{place.name}.copy.tmp"
        copy.write_bytes(built.read_bytes())
        return copy

    monkeypatch.setattr(tour, "_ready_beside", ready)
    with pytest.raises(OSError) as failed:
        _fake_tour(out, "run 2", monkeypatch)
    monkeypatch.setattr(tour, "_ready_beside", real_ready)
    assert failed.value.errno == errno.ENOSPC
    assert _snapshot(out) == before and not _leftovers(out)


def test_a_rename_that_fails_part_way_says_so_and_keeps_what_was_not_moved(tmp_path,
                                                                           monkeypatch):
    """A rename can still fail (a file another program holds open on Windows): the folder
    then mixes two tours, which the error says, and the files not moved stay in the staging
    folder rather than being deleted with it."""
    out = tmp_path / "tour"
    _fake_tour(out, "run 1", monkeypatch)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == out / "digits" / "report.html":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="failed part way: Permission denied") as failed:
        _fake_tour(out, "run 2", monkeypatch)
    monkeypatch.setattr(os, "replace", real_replace)
    assert "now mixes the two tours" in str(failed.value) and STAGING in str(failed.value)
    assert (out / STAGING / "digits" / "report.html").read_text() == "digits's report of run 2"
    assert (out / "digits" / "report.html").read_text() == "digits's report of run 1"


def test_a_ctrl_c_while_the_tour_moves_into_place_waits_for_the_move(tmp_path, monkeypatch):
    """Stopped between two renames, the folder mixed two tours: Ctrl-C is held while the
    files are renamed, then delivered. The tour is whole, the interrupt still comes."""
    import signal

    out = tmp_path / "tour"
    _fake_tour(out, "run 1", monkeypatch)
    real_keep = tour._keep_previous

    def keep(folder):  # the first rename of the move (not the build's fresh store)
        if folder == out:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C is pressed now
        real_keep(folder)

    monkeypatch.setattr(tour, "_keep_previous", keep)
    with pytest.raises(KeyboardInterrupt):
        _fake_tour(out, "run 2", monkeypatch)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert "mnist1d of run 2" in (out / "tour.html").read_text()
    assert (out / "digits" / "report.html").read_text() == "digits's report of run 2"
    assert not _leftovers(out)
