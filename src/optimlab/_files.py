"""Writing a file atomically, for the caches that several processes (and machines sharing a
folder) read and write (the kernels' sources, the step costs, the tasks' data and the
catalog's answers) and for the files a command leaves the user (reports, pictures, JSON),
which an interrupted or failed write must not leave half written over a good one; and
saying why a folder could not be made. Standard library only (matplotlib is asked for by
the figures :func:`save_figure` is given).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["NEW_FILE", "mkdir_failure", "new_file_mode", "process_folder", "save_figure",
           "signals_deferred", "write_atomically"]

#: ``mode`` for :func:`write_atomically`: the mode any new file gets, 0o666 less the umask
#: (for the files a command writes for its user, as ``open(path, "w")`` would make them)
NEW_FILE = "new file"


def _umask() -> int:
    """This process's umask, read without changing it where Linux tells it (``os.umask``
    sets while it reads, which another thread could see); 0o022 if neither says."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        return mask
    except OSError:  # pragma: no cover - umask does not fail on POSIX
        return 0o022


def process_folder(prefix: str) -> Path:
    """A new folder of this process's own in the temporary folder (``mkdtemp``: mode 0o700,
    a name no other process has, so no other user can have made it first and planted
    files in it), removed when the process ends: where a cache of optimlab's cannot be
    used, or matplotlib has no configuration folder. Raises :class:`OSError` where no
    folder can be made there."""
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file here: 0o666 less the umask."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def signals_deferred():
    """SIGINT and SIGTERM held back while the block runs, then handled as they would have
    been: for making a temporary file and keeping its name where the clean-up will find it,
    so that an interrupt never comes between the two (a SIGTERM just after ``race --gif``
    made its file left it behind, once in a test suite run on a loaded machine), or for
    renames that must all be done or none (the tour's files). Their
    handlers are replaced by one that notes them, and the first signal noted is raised
    again once the handlers are back; on a thread other than the main one (which alone may set
    handlers, and alone runs them) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    kinds = [kind for kind in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if kind is not None]
    before = {kind: signal.signal(kind, lambda signum, _frame: caught.append(signum))
              for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in before.items():
            signal.signal(kind, handler)
        if caught:  # the first, through the handler it was meant for (one stop, not two)
            signal.raise_signal(caught[0])


def write_atomically(path: Path, content: str | bytes | Callable[[BinaryIO], None], *,
                     prefix: str | None = None, mode: int | str | None = 0o644) -> None:
    """Write ``content`` (text as UTF-8, bytes, or a function writing to the open binary
    file) to ``path``, which a reader sees whole or not at all.

    The data go to a temporary file of this write's own in ``path``'s folder (``mkstemp``:
    a name no other writer has, where process ids repeat across containers sharing a
    folder), which is given ``mode`` (mkstemp's 0600 would hide a shared cache from its
    other users; None keeps 0600) and renamed into place. On any failure the temporary file
    is removed and the error raised (``OSError`` for the disk's): callers for which the file
    is optional catch it. The folder must exist.

    :data:`NEW_FILE` is for a file a command leaves its user, which should end as writing it
    in place would have left it: a new file gets 0o666 less the umask; a file that exists
    keeps its mode (a report the user made private stays private); a symbolic link is
    followed, the file it names replaced (the link stays a link). A hard link is the one
    thing a rename cannot keep: the other names keep the old content.

    An error that names a file names ``path`` as given, not the temporary file the data went
    to first (what a failed ``Path.write_text`` would have said)."""
    given = path = Path(path)
    keep = None
    if mode == NEW_FILE:
        path = Path(os.path.realpath(path))
        try:
            keep = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:  # a new file
            keep = new_file_mode()
    tmp = None
    try:
        with signals_deferred():  # its name kept before an interrupt can come
            try:
                handle, tmp = tempfile.mkstemp(
                    prefix=prefix if prefix is not None else f"{path.name}.", suffix=".tmp",
                    dir=path.parent)
            except OSError as err:
                raise _naming(err, given)
        with os.fdopen(handle, "wb") as out:
            if callable(content):
                content(out)
            else:
                out.write(content.encode("utf-8") if isinstance(content, str) else content)
        if mode is not None:
            os.chmod(tmp, keep if mode == NEW_FILE else mode)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(err, OSError):
            raise _naming(err, given)
        raise


def _naming(err: OSError, path: Path) -> OSError:
    """``err``, where it names a file, naming ``path`` (the file the caller asked for) alone."""
    if err.filename is not None:
        err.filename, err.filename2 = str(path), None
    return err


def save_figure(fig: Any, path: Path, **kwargs: Any) -> None:
    """``fig.savefig`` to ``path`` atomically (:func:`write_atomically`, a new file's mode):
    a figure whose drawing fails or is interrupted leaves the file that was there. The
    format is read from ``path``'s suffix, as ``savefig`` reads it from a path (the
    temporary file's name ends ``.tmp``); keyword arguments go to ``savefig``."""
    path = Path(path)
    fmt = path.suffix[1:].lower() or None
    write_atomically(path, lambda out: fig.savefig(out, format=fmt, **kwargs), mode=NEW_FILE)


def mkdir_failure(path: Path, err: OSError) -> str:
    """Why ``path.mkdir()`` failed with ``err``, in words for an error line.

    A symbolic link to a missing folder makes ``mkdir`` say "File exists", where nothing
    seems to be: the link and its target are named instead.
    """
    path = Path(path)
    for link in (path, *path.parents):
        if link.is_symlink() and not link.exists():
            return (f"{link} is a symbolic link to {os.readlink(link)}, which does not exist "
                    "(create that folder, or remove the link)")
    return err.strerror or str(err)
