"""The command under signals and closed streams: a closed stderr (``2>&-``) still runs it; a
closed stdout (``>&-``) is an error before any work; a reader gone (``| head -1``) ends it
quietly with 141, never as a folder's error; SIGTERM stops every command as Ctrl-C does
(exit 143, nothing left marked running, no lock or partial file); a second Ctrl-C does not
cut the cleanup short; and the files a command leaves the user are written whole or not at
all."""

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimlab import cli
from optimlab.cli import main
from tests.disk import fill_disk

pytestmark = pytest.mark.usefixtures("catalog_cache")

#: one command's wait, at most (a start imports torch: seconds on a busy 2-core machine)
WAIT = 120


def _optimlab(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optimlab", *argv], text=True, **kwargs)


def _closing(fd: int):
    """A ``preexec_fn`` closing the child's descriptor ``fd`` (``>&-`` or ``2>&-``)."""
    return lambda: os.close(fd)


def _until(found, proc: subprocess.Popen, what: str, limit: float = WAIT) -> None:
    """Wait, polling, until ``found()``; fails if ``proc`` ended first or ``limit`` passed."""
    deadline = time.monotonic() + limit
    while not found():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended (exit {proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"no {what} after {limit} s")
        time.sleep(0.05)


def _terminated_once(found, proc: subprocess.Popen, what: str) -> tuple[str, str]:
    """SIGTERM to ``proc`` once ``found()`` (:func:`_until`); its stdout and stderr."""
    try:
        _until(found, proc, what)
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=WAIT)
    finally:
        proc.kill()


# -- a closed stderr or stdout ---------------------------------------------------------------

def test_an_ascii_stdout_shows_the_tables_signs_escaped(tmp_path):
    """Under ``PYTHONIOENCODING=ascii`` (or the C locale without UTF-8 mode) a table's '±'
    failed the command with a codec error after its files were written; it is escaped."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    code = "import sys; from optimlab import cli; sys.argv = ['optimlab', 'explain', 'adam']; " \
           "cli.main = lambda: print('0.97 \u00b1 0.01') or 0; cli.entry()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=WAIT)
    assert done.returncode == 0 and done.stdout == "0.97 \\xb1 0.01\n", done


def test_a_closed_stderr_still_runs_the_command():
    """faulthandler.enable() raised RuntimeError (no sys.stderr): every command exited 1
    having printed nothing."""
    done = subprocess.run([sys.executable, "-m", "optimlab", "list"], stdout=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, preexec_fn=_closing(2),
                          timeout=WAIT)
    assert done.returncode == 0 and "adam" in done.stdout
    # an error still exits 2, and its line goes nowhere rather than to stdout
    done = subprocess.run([sys.executable, "-m", "optimlab", "explain", "adamm"],
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                          preexec_fn=_closing(2), timeout=WAIT)
    assert (done.returncode, done.stdout) == (2, "")


def test_a_closed_stdout_is_an_error_before_any_work(tmp_path):
    """print() with no sys.stdout drops everything: `optimlab list >&-` exited 0."""
    done = subprocess.run([sys.executable, "-m", "optimlab", "race", "rosenbrock", "--optimizers",
                           "adam", "--steps", "3", "--out", str(tmp_path / "r.png")],
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                          preexec_fn=_closing(1), timeout=WAIT)
    assert done.returncode == 2
    assert done.stderr == ("optimlab: error: standard output is closed; redirect it to "
                           "/dev/null to discard it\n")
    assert list(tmp_path.iterdir()) == []  # nothing ran


# -- a reader gone ---------------------------------------------------------------------------

class _GoneReader(io.StringIO):
    """A stdout whose reader has gone, as a pipe to `head` that ended."""

    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_a_reader_gone_exits_141_quietly(monkeypatch):
    """A broken pipe exited 0, as if the output had been read (and closed stderr)."""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", _GoneReader())
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["list"]) == 141
    assert not err.closed and err.getvalue() == ""


def test_a_broken_pipe_is_not_the_folders_error(monkeypatch, capsys, tmp_path):
    """The tour's progress on a pipe whose reader had gone was reported as "cannot write
    the tour to DIR: Broken pipe" (exit 2)."""
    def tour(out, quick, say):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr("optimlab.bench.tour.run_tour", tour)
    assert main(["tour", "--quick", "--out", str(tmp_path / "t")]) == 141
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("before", [False, True])
def test_an_interrupted_tour_says_what_was_kept(monkeypatch, capsys, tmp_path, before):
    """An interrupted tour said only "optimlab: interrupted": now what it kept (the previous
    tour's page, or nothing) and that the next run starts over."""
    out = tmp_path / "t"
    if before:
        out.mkdir()
        (out / "tour.html").write_text("an earlier tour")

    def tour(out, quick, say):
        raise KeyboardInterrupt

    monkeypatch.setattr("optimlab.bench.tour.run_tour", tour)
    assert main(["tour", "--quick", "--out", str(out)]) == 130
    kept = "the previous tour there is as it was" if before else "nothing was written there"
    assert capsys.readouterr().err == (
        f"optimlab: interrupted: the tour was not completed: {kept} ({out}); its work so far "
        "is dropped, and the next `optimlab tour` starts over\n")


def test_demo_piped_into_head_stops_with_141(tmp_path):
    """`optimlab demo | head -1` stopped after its first exhibit and exited 0."""
    proc = _optimlab("demo", "--out", str(tmp_path / "dm"), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().startswith("[1/")
        proc.stdout.close()  # the reader goes, as `head -1` does
        err = proc.stderr.read()
        assert proc.wait(timeout=WAIT) == 141, err[-2000:]
    finally:
        proc.kill()
    assert err == ""  # no second error, no traceback


def test_the_tours_progress_piped_into_head_stops_quietly(tmp_path):
    """A broken pipe on the tour's progress (stderr) ended as a "cannot write the tour"
    error, printed to the same broken stderr: a second BrokenPipeError, exit 1."""
    proc = _optimlab("tour", "--quick", "--out", str(tmp_path / "tp"), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stderr.readline().startswith("race: ")
        proc.stderr.close()
        out = proc.stdout.read()
        assert proc.wait(timeout=WAIT) == 141
    finally:
        proc.kill()
    assert out == ""  # no "wrote", and no error line sent to stdout instead


# -- SIGTERM ---------------------------------------------------------------------------------

def test_sigterm_stops_advise_as_ctrl_c_does(tmp_path):
    """advise died by SIGTERM's default action: runs left 'running', the sweep's lock file
    left, no word said."""
    from optimlab.bench.store import RunStore

    db = tmp_path / "runs.db"
    proc = _optimlab("advise", "digits", "--optimizers", "momentum,adam", "--steps", "300",
                     "--batch-size", "64", "--seeds", "2", "--db", str(db), "--out",
                     str(tmp_path / "a"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     stdin=subprocess.DEVNULL)
    out, err = _terminated_once(lambda: list(tmp_path.glob("*-sweep*.lock")), proc,
                                "a sweep training")
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("optimlab: terminated")
    assert "Traceback" not in err and out == ""
    assert not list(tmp_path.glob("*.lock"))
    with RunStore(db, readonly=True) as store:
        assert store.count_runs(("running",)) == 0


def test_sigterm_while_a_race_writes_its_gif_leaves_no_partial_file(tmp_path):
    """race --gif died by SIGTERM with a 0-byte .part.gif beside the picture asked for."""
    proc = _optimlab("race", "rosenbrock", "--optimizers", "sgd,adam", "--steps", "2000",
                     "--gif", str(tmp_path / "g.gif"), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out, err = _terminated_once(lambda: list(tmp_path.glob(".*.part.gif")), proc,
                                "the GIF being written")
    assert proc.returncode == 143, err[-2000:]
    assert err == "optimlab: terminated\n"
    assert out.startswith("rosenbrock from (")  # the race's table all the same
    assert list(tmp_path.iterdir()) == []


def test_the_signal_handlers_are_the_commands_only(monkeypatch):
    """main() holds its handlers while a command runs and gives Python's back."""
    seen = []
    monkeypatch.setattr(cli, "_run", lambda args: seen.append(
        (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))) or "")
    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["list"]) == 0
    if sigint is signal.default_int_handler and sigterm is signal.SIG_DFL:
        assert seen == [(cli._interrupt, cli._sigterm_stops.stop)]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (sigint, sigterm)


# -- a second Ctrl-C -------------------------------------------------------------------------

@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
                    reason="needs Python's own SIGINT handler in this process")
def test_a_second_ctrl_c_does_not_cut_the_cleanup_short(monkeypatch, capsys):
    """A second Ctrl-C while the stores closed raised out of main(), with a traceback."""
    closed = []

    def command(args):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # the KeyboardInterrupt comes first
        return "not interrupted"

    def close_stores():
        os.kill(os.getpid(), signal.SIGINT)  # pressed again while the command cleans up
        time.sleep(0.05)
        closed.append(True)

    monkeypatch.setattr(cli, "_run", command)
    monkeypatch.setattr(cli, "_close_stores", close_stores)
    try:
        code = main(["list"])
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C raised out of main()")
    assert (code, closed) == (130, [True])
    assert capsys.readouterr().err == "optimlab: interrupted\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


def test_a_third_ctrl_c_stops_a_command_whose_first_was_swallowed(monkeypatch, capsys):
    """A first KeyboardInterrupt raised inside code that swallows it (a finalizer, a callback
    Python reports as "Exception ignored") left every later Ctrl-C and SIGTERM ignored: only
    SIGKILL stopped the command. The second is still ignored (it may be cutting a cleanup
    short), the third stops it."""
    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the KeyboardInterrupt comes first
        except KeyboardInterrupt:
            pass  # swallowed, as a finalizer's would be
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)  # the second: ignored
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the third stops the command
        return "not stopped"

    monkeypatch.setattr(cli, "_run", command)
    began = time.monotonic()
    assert main(["list"]) == 130 and time.monotonic() - began < 8
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_another_threads_command_leaves_the_main_threads_count(monkeypatch):
    """A command run in another thread (a program's, a test's) installs no handler; it
    reset the module's "a signal has stopped the command" state, re-arming Ctrl-C in the
    middle of the main thread's cleanup."""
    import threading

    monkeypatch.setattr(cli, "_run", lambda args: "done")
    monkeypatch.setattr(cli, "_STOPS", 1)  # the main thread's command is cleaning up
    worker = threading.Thread(target=main, args=(["list"],))
    worker.start()
    worker.join(WAIT)
    assert cli._STOPS == 1


def test_a_second_ctrl_c_while_the_process_shuts_down_is_ignored():
    """After a command stopped by Ctrl-C, another one while the interpreter shut down (an
    atexit callback, a thread joined) printed a KeyboardInterrupt traceback."""
    code = ("import atexit, os, signal, sys, time\nfrom optimlab import cli\n"
            "sys.argv = ['optimlab', 'list']\n"
            "def later():\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(0.05)\n"
            "    print('shut down', flush=True)\n"
            "atexit.register(later)\n"
            "def command(args):\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(30)\n"
            "cli._run = command\ncli.entry()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=WAIT)
    assert (done.returncode, done.stdout, done.stderr) == (130, "shut down\n",
                                                           "optimlab: interrupted\n")


# -- files written whole or not at all -------------------------------------------------------

def _disk_full_for(monkeypatch, path: Path) -> None:
    """Every file opened for writing as ``path``, or as a temporary file beside it named
    after it (``<name>.<random>.tmp``), fills the disk (:func:`tests.disk.fill_disk`)."""
    fill_disk(monkeypatch, lambda name: name.parent.resolve() == path.parent.resolve()
              and (name.name == path.name or name.name.startswith(path.name + ".")))


def _kept(path: Path, before: bytes) -> None:
    """``path`` holds ``before`` still, and no temporary file is left beside it."""
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


@needs_proc
def test_a_race_picture_that_fills_the_disk_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    png = tmp_path / "pics" / "r.png"
    png.parent.mkdir()
    png.write_bytes(b"the previous picture")
    _disk_full_for(monkeypatch, png)
    assert main(["race", "rosenbrock", "--optimizers", "adam", "--steps", "3", "--out",
                 str(png)]) == 2
    assert capsys.readouterr().err == (f"optimlab: error: cannot write {png}: No space left "
                                       "on device\n")
    _kept(png, b"the previous picture")


@needs_proc
def test_a_profile_that_fills_the_disk_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    class Profile:
        def table(self):
            return "the profile's table"

        def plot(self):
            fig = Figure()
            fig.add_subplot().plot([0, 1], [0, 1])
            return fig

    monkeypatch.setattr(cli, "_read_store", lambda args: (None, "r.db"))
    monkeypatch.setattr(cli, "_sweep", lambda *args: None)
    monkeypatch.setattr("optimlab.bench.profile.build_profile", lambda store, ids: Profile())
    png = tmp_path / "pics" / "p.png"
    png.parent.mkdir()
    png.write_bytes(b"the previous profile")
    _disk_full_for(monkeypatch, png)
    assert main(["profile", "1", "--out", str(png)]) == 2
    out, err = capsys.readouterr()
    assert out == "the profile's table\n"
    assert err == f"optimlab: error: cannot write {png}: No space left on device\n"
    _kept(png, b"the previous profile")


@needs_proc
def test_a_slice_json_that_fills_the_disk_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    from optimlab.bench import slices

    result = SimpleNamespace(
        seconds={"grid": 0.0, "train": 0.0, "interpolation": 0.0, "sharpness": 0.0},
        task="digits", model="mlp", steps=2, plane="random", through=(), on="train",
        table=lambda: "the slice's table", to_json=lambda: {"loss": [[1.0, 2.0]]})
    monkeypatch.setattr(slices, "slice_landscape", lambda *args, **kwargs: result)
    monkeypatch.setattr(slices, "plot_slice", lambda result, path: None)
    monkeypatch.setattr(slices, "plot_interpolation", lambda result, path: None)
    out = tmp_path / "s"
    out.mkdir()
    (out / "slice.json").write_text('{"the previous": "slice"}')
    _disk_full_for(monkeypatch, out / "slice.json")
    assert main(["slice", "digits", "--steps", "2", "--grid", "2", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"optimlab: error: cannot write the slice to {out}: No "
                                       "space left on device\n")
    _kept(out / "slice.json", b'{"the previous": "slice"}')


@needs_proc
def test_advise_json_that_fills_the_disk_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    answer = tmp_path / "answers" / "advice.json"
    answer.parent.mkdir()
    answer.write_text('{"the previous": "answer"}')
    _disk_full_for(monkeypatch, answer)
    assert main(["advise", "digits", "--optimizers", "adam", "--steps", "9", "--batch-size", "64",
                 "--seeds", "1", "--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "a"),
                 "--json", str(answer)]) == 2
    out, err = capsys.readouterr()
    assert "recommendation: adam" in out
    assert err == ("optimlab: error: cannot write the advice: No space left on device (the same "
                   "command again reads the answer back from the store)\n")
    _kept(answer, b'{"the previous": "answer"}')


@pytest.mark.parametrize("raised, next_code", [
    # Ray's wait turns the handler's exception into a plain KeyboardInterrupt: a Ray sweep
    # stopped by SIGTERM said "interrupted" and exited 130, not 143
    (KeyboardInterrupt, 130),
    # Pillow's C code, interrupted by SIGTERM as it opened a GIF's encoder, raised
    # ValueError("initialization failed"): race --gif said "optimlab: error: initialization
    # failed" and exited 2 (a fresh-clone CI run caught it)
    (lambda: ValueError("initialization failed"), 2),
], ids=["as-ctrl-c", "as-an-error"])
def test_sigterm_is_reported_as_such_whatever_a_library_raises_in_its_place(monkeypatch, capsys,
                                                                            raised, next_code):
    """A library catches the handler's exception and raises something else: the first
    signal's kind is what the command reports; the next command's own exception is its
    own (a Ctrl-C 130, an error 2)."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM has a handler of the test runner's: the command leaves it alone")

    def catches_the_stop(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises in here
        except KeyboardInterrupt:
            raise raised() from None  # what the library raises instead
        raise AssertionError("SIGTERM's handler did not run")

    monkeypatch.setattr(cli, "run_list", catches_the_stop)
    assert cli.main(["list"]) == 143
    assert capsys.readouterr().err.strip() == "optimlab: terminated"
    monkeypatch.setattr(cli, "run_list", lambda args: (_ for _ in ()).throw(raised()))
    assert cli.main(["list"]) == next_code
