"""optimlab._files: write_atomically (a reader sees the old file or the new one, never a part)
and mkdir_failure (why a folder could not be made)."""

import os

import pytest

from optimlab._files import mkdir_failure, write_atomically


def test_a_write_replaces_the_file_whole_with_the_mode_asked(tmp_path):
    path = tmp_path / "cache.json"
    path.write_text("old")
    write_atomically(path, "néw")
    assert path.read_bytes() == "néw".encode() and path.stat().st_mode & 0o777 == 0o644
    write_atomically(path, b"\x00\x01", mode=None)  # mkstemp's own 0600
    assert path.read_bytes() == b"\x00\x01" and path.stat().st_mode & 0o777 == 0o600
    write_atomically(path, lambda out: out.write(b"written"), prefix=".x-")
    assert path.read_bytes() == b"written" and os.listdir(tmp_path) == ["cache.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "cache.npz"
    path.write_text("old")

    def fail(out):
        out.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["cache.npz"]
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "no-folder" / "x", "text")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
def test_a_link_to_a_missing_folder_is_named_where_mkdir_says_file_exists(tmp_path):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    for path in (link, link / "a" / "b"):  # the link itself, or a folder above
        with pytest.raises(OSError) as caught:
            path.mkdir(parents=True, exist_ok=True)
        assert mkdir_failure(path, caught.value) == (
            f"{link} is a symbolic link to {tmp_path / 'gone'}, which does not exist (create "
            "that folder, or remove the link)")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError) as caught:
        (blocker / "sub").mkdir(parents=True)
    assert mkdir_failure(blocker / "sub", caught.value) == caught.value.strerror


def test_a_user_file_gets_a_new_files_mode_under_the_umask(tmp_path):
    from optimlab._files import NEW_FILE

    old = os.umask(0o027)
    try:
        write_atomically(tmp_path / "report.html", "<p>", mode=NEW_FILE)
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o640


def test_a_figure_that_fails_to_draw_leaves_the_old_picture(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optimlab._files import save_figure

    path = tmp_path / "race.svg"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, path)
    good = path.read_bytes()
    assert good.lstrip().startswith(b"<?xml") and os.listdir(tmp_path) == ["race.svg"]
    ax.set_title("$\\frac{broken$")  # mathtext fails while the figure is drawn
    with pytest.raises(ValueError):
        save_figure(fig, path)
    plt.close(fig)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["race.svg"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
def test_a_user_file_keeps_its_mode_and_its_link(tmp_path):
    """Written in place, a report the user made private stayed private and a link stayed a
    link; a rename must keep both (the temporary file takes the old file's mode, and the
    link's target is the file replaced)."""
    from optimlab._files import NEW_FILE

    private = tmp_path / "results.csv"
    private.write_text("old")
    private.chmod(0o600)
    write_atomically(private, "new", mode=NEW_FILE)
    assert private.read_text() == "new" and private.stat().st_mode & 0o777 == 0o600
    target = tmp_path / "kept" / "report.html"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "report.html"
    link.symlink_to(target)
    write_atomically(link, "new", mode=NEW_FILE)
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(os.listdir(target.parent)) == ["report.html"]


def test_an_error_names_the_file_asked_for_not_the_temporary_one(tmp_path):
    """A write that fails names the caller's path, as ``Path.write_text`` would have, not
    the temporary file beside it (the CLI's "cannot write ... to PATH" quotes it)."""
    from optimlab._files import NEW_FILE

    missing = tmp_path / "no-folder" / "advice.json"
    with pytest.raises(FileNotFoundError) as caught:
        write_atomically(missing, "{}", mode=NEW_FILE)
    assert (caught.value.filename, caught.value.filename2) == (str(missing), None)
    folder = tmp_path / "advice.json"
    folder.mkdir()  # a folder where the file should be: the rename fails
    with pytest.raises(IsADirectoryError) as caught:
        write_atomically(folder, "{}")
    assert (caught.value.filename, caught.value.filename2) == (str(folder), None)
    assert os.listdir(tmp_path) == ["advice.json"]


def test_signals_deferred_holds_sigterm_until_the_block_ends():
    """A temporary file is made and its name kept with SIGINT and SIGTERM held back (a
    SIGTERM just after ``race --gif`` made its .part.gif left the file behind, once in a
    loaded test suite): the handler runs when the block ends, not inside it."""
    import os
    import signal

    from optimlab._files import signals_deferred

    seen = []
    before = signal.signal(signal.SIGTERM, lambda *_: seen.append("handled"))
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # bytecodes where Python would run a pending handler
                pass
            seen.append("block ends")
        for _ in range(1000):
            pass
    finally:
        signal.signal(signal.SIGTERM, before)
    assert seen == ["block ends", "handled"]
