"""The store file itself: SQLite errors as one-line :class:`StoreError`, damage checks,
read-only opening, and the per-sweep locks.

Errors
    :class:`GuardedConnection` wraps the store's sqlite3 connection (and its cursors) so that
    every ``sqlite3.Error`` met by a read or a write, however late (SQLite reads pages
    lazily, so a damaged page may only show while rows are fetched), comes out as a
    :class:`StoreError` with one line naming the file. Damage (``SQLITE_CORRUPT``,
    ``SQLITE_NOTADB``, text that is not UTF-8) is remembered by the store, which then
    refuses every write.

Damage check on open
    :func:`verify` runs ``PRAGMA quick_check`` when a file store is opened; see its cost
    there.

Read-only files
    :func:`connect_readonly` opens with ``mode=ro``, falling back to ``immutable=1`` where
    SQLite cannot open a WAL database read-only (a clean store in a directory this process
    cannot write: no ``-shm`` file, and none can be created).

Sweep locks
    :class:`SweepLock`: an OS lock (``flock``) on a file ``<store>-sweep<id>.lock`` beside
    the store's file (its path with symlinks resolved: a store reached through a symlink
    takes the same lock), holding the pid and host of the process that trains the sweep.
    The kernel releases it when that process ends in any way (SIGKILL included), so a dead
    process never blocks a resume. A lock file that is a symbolic link, a hard link or no
    regular file is refused, never followed: in a store folder other users may write, such
    a link would have had the lock truncate a file of their choosing.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import stat
import warnings
from datetime import datetime, timezone
from pathlib import Path, PurePath

from .schema import StoreError, StoreWarning, SweepBusy, _one_line

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

__all__ = ["GuardedConnection", "SweepLock", "connect_readonly", "full_disk_hint", "verify",
           "is_busy", "is_empty",
           "wal_size"]

# SQLite's primary result codes (the low byte of an extended code)
_READONLY, _CANTOPEN, _BUSY, _LOCKED, _CORRUPT, _NOTADB = 8, 14, 5, 6, 11, 26
_IOERR, _FULL = 10, 13


def _code(err: BaseException) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    return None if code is None else code & 0xFF


def is_busy(err: BaseException) -> bool:
    """Whether ``err`` is SQLite's "database is locked" (SQLITE_BUSY: another connection holds
    a lock this one needs)."""
    return _code(err) == _BUSY or "database is locked" in str(err)


def damage_reason(err: BaseException) -> str | None:
    """Why ``err`` says the file is damaged (one line), or None if it says something else."""
    text = str(err)
    if "Could not decode to UTF-8" in text:  # raised by Python's sqlite3 on damaged text
        return _one_line(text.split(" with text ")[0], 120)
    if _code(err) in (_CORRUPT, _NOTADB) or "malformed" in text or "not a database" in text:
        return _one_line(text, 200)
    return None


# StoreErrors that are also the sqlite3 error they replace, so that code catching sqlite3's
# classes (sqlite3.IntegrityError for a CHECK constraint, ...) keeps working.
class StoreSQLiteError(StoreError, sqlite3.Error):
    """A :class:`StoreError` raised for a ``sqlite3.Error``."""


class StoreInterfaceError(StoreError, sqlite3.InterfaceError):
    """A :class:`StoreError` raised for a ``sqlite3.InterfaceError``."""


class StoreDatabaseError(StoreError, sqlite3.DatabaseError):
    """A :class:`StoreError` raised for a ``sqlite3.DatabaseError`` (damage among others)."""


class StoreDataError(StoreError, sqlite3.DataError):
    """A :class:`StoreError` raised for a ``sqlite3.DataError``."""


class StoreOperationalError(StoreError, sqlite3.OperationalError):
    """A :class:`StoreError` raised for a ``sqlite3.OperationalError``."""


class StoreIntegrityError(StoreError, sqlite3.IntegrityError):
    """A :class:`StoreError` raised for a ``sqlite3.IntegrityError``."""


class StoreInternalError(StoreError, sqlite3.InternalError):
    """A :class:`StoreError` raised for a ``sqlite3.InternalError``."""


class StoreProgrammingError(StoreError, sqlite3.ProgrammingError):
    """A :class:`StoreError` raised for a ``sqlite3.ProgrammingError``."""


class StoreNotSupportedError(StoreError, sqlite3.NotSupportedError):
    """A :class:`StoreError` raised for a ``sqlite3.NotSupportedError``."""


_AS_STORE_ERROR = {cls.__bases__[1]: cls for cls in (
    StoreSQLiteError, StoreInterfaceError, StoreDatabaseError, StoreDataError,
    StoreOperationalError, StoreIntegrityError, StoreInternalError, StoreProgrammingError,
    StoreNotSupportedError)}


def as_store_error(err: sqlite3.Error, message: str) -> StoreError:
    """A :class:`StoreError` with ``message`` that is also an instance of ``err``'s
    sqlite3 class (its error code and name copied)."""
    cls = next((_AS_STORE_ERROR[c] for c in type(err).__mro__ if c in _AS_STORE_ERROR),
               StoreError)
    new = cls(message)
    for name in ("sqlite_errorcode", "sqlite_errorname"):
        if hasattr(err, name):
            setattr(new, name, getattr(err, name))
    return new


#: the first 16 bytes of every SQLite database file
SQLITE_HEADER = b"SQLite format 3\x00"


def damaged_message(path: str, reason: str) -> str:
    """The one-line message of a damaged store; of a file that is no SQLite database at all
    (a picture, a script: ``--db`` pointed at the wrong file), that it is not one, where
    "restore it from a copy" would be the wrong advice."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError:
        head = SQLITE_HEADER
    if head and head != SQLITE_HEADER:
        return (f"{path} is not a run store: it is not a SQLite database (its first bytes "
                f"are not SQLite's header: another kind of file, or a store overwritten from "
                f"its start), and it is left as it is; point --db at a run store or at a new "
                f"file to make one, or restore the store from a copy")
    return (f"{path} is damaged ({reason}): restore it from a copy or point --db at "
            f"another file")


def error_message(path: str, err: BaseException) -> str:
    """The one-line message of a SQLite error that is not damage."""
    reason = _one_line(err, 200)
    code = _code(err)
    if code == _READONLY or "readonly database" in reason:
        return (f"cannot write to run store {path}: {reason} (the file or its directory is "
                f"read-only: open it with readonly=True to read it)")
    if code in (_BUSY, _LOCKED) or "locked" in reason:
        return (f"run store {path} is busy: {reason} (another process held its lock past "
                f"the timeout)")
    if code in (_FULL, _IOERR):
        return f"cannot write to run store {path}: {reason}{full_disk_hint(path)}"
    return f"cannot use run store {path}: {reason}"


def full_disk_hint(path: str) -> str:
    """``" (the disk is full: ...)"`` where the file system of ``path`` has no space left
    (a full disk shows as SQLite's "database or disk is full" or as a "disk I/O error"),
    else ``""``."""
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".")
    except (OSError, AttributeError):  # pragma: no cover - not POSIX
        return ""
    free = stats.f_bavail * stats.f_frsize
    # SQLite needs room for its journal pages besides the page it writes
    if free >= 1 << 20:
        return ""
    return f" (the disk is full: {free // 1024} KiB left; free space, then go on)"


class GuardedConnection:
    """A sqlite3 connection whose ``execute``/``executemany`` (and the cursors they return)
    raise :class:`StoreError` instead of ``sqlite3.Error``. Other attributes are the
    connection's own."""

    __slots__ = ("_con", "_fail")

    def __init__(self, con: sqlite3.Connection, fail) -> None:
        self._con = con
        self._fail = fail  # sqlite3.Error -> StoreError (the store remembers damage)

    def execute(self, sql: str, parameters=()) -> GuardedCursor:
        """``sqlite3.Connection.execute``, its errors made one-line store errors."""
        try:
            return GuardedCursor(self._con.execute(sql, parameters), self._fail)
        except sqlite3.Error as err:
            raise self._fail(err) from err

    def executemany(self, sql: str, rows) -> GuardedCursor:
        """``sqlite3.Connection.executemany``, its errors made one-line store errors."""
        try:
            return GuardedCursor(self._con.executemany(sql, rows), self._fail)
        except sqlite3.Error as err:
            raise self._fail(err) from err

    @property
    def in_transaction(self) -> bool:
        """Whether the connection is inside a transaction (``sqlite3``'s flag)."""
        return self._con.in_transaction

    def __getattr__(self, name: str):
        return getattr(self._con, name)


class GuardedCursor:
    """A sqlite3 cursor whose fetches raise :class:`StoreError` instead of sqlite3.Error."""

    __slots__ = ("_cur", "_fail")

    def __init__(self, cur: sqlite3.Cursor, fail) -> None:
        self._cur = cur
        self._fail = fail

    def fetchone(self):
        try:
            return self._cur.fetchone()
        except sqlite3.Error as err:
            raise self._fail(err) from err

    def fetchall(self) -> list:
        try:
            return self._cur.fetchall()
        except sqlite3.Error as err:
            raise self._fail(err) from err

    def fetchmany(self, size: int | None = None) -> list:
        try:
            return self._cur.fetchmany(self._cur.arraysize if size is None else size)
        except sqlite3.Error as err:
            raise self._fail(err) from err

    def __iter__(self) -> GuardedCursor:
        return self

    def __next__(self):
        try:
            return next(self._cur)
        except sqlite3.Error as err:
            raise self._fail(err) from err

    @property
    def lastrowid(self):
        return self._cur.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @property
    def description(self):
        return self._cur.description

    def close(self) -> None:
        self._cur.close()


# ----------------------------------------------------------------------------- opening


def wal_size(path: str) -> int:
    """The size of the store's ``-wal`` file (0 when there is none)."""
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0


def is_empty(path: str) -> bool:
    """The file has 0 bytes and no write-ahead log holds commits for it (a store killed
    before its first checkpoint keeps them in ``-wal``: that is not an empty store)."""
    try:
        return os.path.getsize(path) == 0 and wal_size(path) == 0
    except OSError:
        return False


def sqlite_uri(path: PurePath) -> str:
    r"""The ``file:`` URI SQLite opens ``path`` (absolute) by: percent-encoded, with an empty
    authority. ``Path.as_uri()`` puts a Windows share's server there
    (``file://server/share/runs.db``), which SQLite refuses ("invalid uri authority");
    ``file:////server/share/runs.db`` names the same file.

    >>> from pathlib import PurePosixPath, PureWindowsPath
    >>> sqlite_uri(PurePosixPath("/tmp/a b#1.db"))
    'file:///tmp/a%20b%231.db'
    >>> sqlite_uri(PureWindowsPath(r"\\srv\sh\runs.db"))
    'file:////srv/sh/runs.db'
    """
    uri = path.as_uri()
    return uri if uri.startswith("file:///") else "file:////" + uri[len("file://"):]


def connect_readonly(path: str, timeout: float) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection to ``path`` and whether it is ``immutable``.

    ``mode=ro`` first: it reads the WAL too, so a live sweep is seen as committed. SQLite
    cannot open a WAL database that way when its ``-shm`` file is missing and cannot be
    created (the directory is not writable by this process, e.g. a read-only file
    system): then ``immutable=1``, which reads the main file alone without locks. Commits
    still only in a ``-wal`` file are then not seen (a warning says so), and a process
    writing the file meanwhile could show as damage.
    """
    uri = sqlite_uri(Path(path))
    con = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=timeout, isolation_level=None)
    try:
        con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the file
        return con, False
    except sqlite3.Error as err:
        con.close()
        if _code(err) not in (_READONLY, _CANTOPEN) and "readonly" not in str(err) \
                and "unable to open" not in str(err):
            raise
    wal = wal_size(path)
    if wal:
        warnings.warn(f"reading {path} as immutable (its directory is not writable): the "
                      f"{wal} bytes of commits in {path}-wal are not read; copy the store "
                      f"with its -wal file somewhere writable to see them", StoreWarning,
                      stacklevel=3)
    con = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, timeout=timeout,
                          isolation_level=None)
    return con, True


# quick_check verdicts of this process, by file identity: (path, device, inode, size, mtime)
_VERIFIED: dict[tuple, None] = {}


def _identity(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def verify(con: sqlite3.Connection, path: str) -> str | None:
    """Check the file for damage; return the reason (one line) or None when it is sound.

    ``PRAGMA quick_check`` reads every page once and checks the b-trees and record formats
    (not the indexes against their tables, which ``integrity_check`` also does at 4-5x the
    cost). It costs about 6 ms per MB on a busy 2-core machine: a few ms for the store of a
    sweep (thousands of metric points), about 0.5 s for 74 MB (1.2 million points). A
    file found sound is remembered for as long as the main file is unchanged (same inode,
    size and modification time), so reopening it (a report, every request of ``optimlab
    serve``) costs one ``stat``; a live sweep changes the main file only at checkpoints.
    sqlite3 errors (``file is not a database``...) propagate to the caller.
    """
    key = _identity(path)
    if key is not None and key in _VERIFIED:
        return None
    rows = con.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        text = str(rows[0][0]) if rows else "quick_check gave no answer"
        return _one_line(text.replace("*** in database main ***", ""), 200)
    if key is not None:
        if len(_VERIFIED) > 256:
            _VERIFIED.clear()
        _VERIFIED[key] = None
    return None


# ----------------------------------------------------------------------------- sweep locks


def _holder(text: str) -> str:
    """``by process 123 on this machine (since ...)`` from a lock file's contents."""
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit():
        return "by another process"  # it has the lock but has not written its name yet
    pid, host = parts[0], parts[1]
    here = host == socket.gethostname()
    if here and not process_alive(int(pid)):
        # a lock file this process may not write, locked without a new holder line: the
        # line is the one a crashed process left
        return f"by another process (its lock file still names process {pid}, which has ended)"
    where = "this machine" if here else f"host {host}"
    since = f", since {parts[2]}" if len(parts) > 2 else ""
    return f"by process {pid} on {where}{since}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine exists (one of another user counts)."""
    if fcntl is None:  # pragma: no cover - Windows: os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's (EPERM), or a number no pid can be
        return True
    return True


class SweepLock:
    """An exclusive OS lock on ``<store>-sweep<id>.lock``, released by :meth:`release` or
    when the process ends in any way. ``<store>`` is the store's path with symlinks resolved
    (``os.path.realpath``), so that every path to one file (a symlink to it, or through a
    symlinked directory) takes the same lock. (A store file with hard links is refused
    for writing before any lock is taken: see :class:`~.runstore.RunStore`.)

    ``flock`` locks belong to one open file: two :class:`.RunStore` objects, in one process
    or two, exclude each other. Inherited by children forked without exec (they are part
    of the sweep); not by processes started with exec. On NFS, Linux maps ``flock`` to
    NFS byte-range locks, so several hosts exclude each other where the server supports
    them.

    The lock file is opened without following a symbolic link (``O_NOFOLLOW``) and used
    only where it is a regular file with one name: a link planted at its path by another
    user of a shared store folder (to a file of the victim's, or dangling) had the holder
    line truncate that file, or create it.

    Raises:
        SweepBusy: another process (or store object) holds the lock.
        StoreError: the lock file cannot be created (a read-only directory), or its path
            is a symbolic link, a hard link or no regular file.
    """

    def __init__(self, store_path: str, sweep_id: int) -> None:
        self.path = f"{os.path.realpath(store_path)}-sweep{sweep_id}.lock"
        self.sweep_id = sweep_id
        self._fd: int | None = None
        where = f"cannot lock sweep {sweep_id} of {store_path}"
        while True:
            fd, writable = _open_lock_file(self.path, _lock_mode(store_path), where)
            try:
                holder = _lock_or_holder(fd, f"{where} ({self.path})")
                # the holder before us may have deleted the file as it released it: lock anew
                retry = holder is None and fcntl is not None and not _same_file(self.path, fd)
            except BaseException:  # an error, or Ctrl-C: never leave an open (locked) fd
                os.close(fd)
                raise
            if holder is None and not retry and not writable and fcntl is not None:
                # another user's lock file, left by a crashed process: its holder line names
                # that process. Replace it with a file of ours where the directory allows
                # (deleted while locked, as release() does), else keep it locked read-only
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
                else:
                    retry = True
            if holder is None and not retry:
                break
            os.close(fd)
            if holder is not None:
                raise SweepBusy(f"sweep {sweep_id} of {store_path} is being run or resumed "
                                f"{_holder(holder)}") from None
        self._fd = fd
        try:
            # Windows keeps the locked byte unread; a lock file this process may not write
            # (another user's, left by a crashed process) is locked without a holder line
            if fcntl is not None and writable:
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                # a hostname that is not UTF-8 comes back from Python with surrogates
                line = f"{os.getpid()} {socket.gethostname()} {stamp}\n"
                _refuse_unsafe_lock_file(fd, self.path, where)  # once more, just before
                os.ftruncate(fd, 0)
                os.write(fd, line.encode(errors="backslashreplace"))
        except BaseException as err:  # release the lock: a retry must not meet our own pid
            self.release()
            if isinstance(err, OSError):
                raise StoreError(f"{where}: cannot write {self.path}: "
                                 f"{err.strerror or err}") from None
            if isinstance(err, UnicodeError):
                raise StoreError(f"{where}: cannot write {self.path}: "
                                 + _one_line(str(err))) from None
            raise

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (until :meth:`release`)."""
        return self._fd is not None

    def release(self) -> None:
        """Delete the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if fcntl is not None:  # delete while holding it: see the retry in __init__
            try:
                os.unlink(self.path)
            except OSError:
                pass
        os.close(fd)  # releases the lock


def _lock_mode(store_path: str) -> int:
    """The permissions of a new lock file: the store file's own read and write bits (as
    SQLite gives its ``-wal`` and ``-shm`` files), so that every user who may write a
    shared store may lock its sweeps; at least read and write for the owner."""
    try:
        return (os.stat(store_path).st_mode & 0o666) | 0o600
    except OSError:
        return 0o644


#: ``open`` flag that refuses a symbolic link as the last part of the path (POSIX; 0 on Windows)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: and one that keeps opening a FIFO planted there from waiting for a writer (then refused)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _open_lock_file(path: str, mode: int, where: str) -> tuple[int, bool]:
    """Open (or create, with ``mode`` whatever the umask) the lock file: ``(fd, writable)``.

    An existing lock file this process may not write (another user's) is opened read-only:
    ``flock`` needs no write access, only the holder line is then not written. A symbolic
    link is never followed (``O_NOFOLLOW``), and a file that is no regular file, or has a
    second name (a hard link), is refused: see :func:`_refuse_unsafe_lock_file`."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    except FileExistsError:
        pass
    except OSError as err:
        raise StoreError(f"{where}: cannot create {path}: {err.strerror or err}") from None
    else:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits away
        except (OSError, AttributeError):  # pragma: no cover - not POSIX
            pass
        return fd, True
    try:
        fd, writable = os.open(path, os.O_RDWR | _NOFOLLOW | _NONBLOCK), True
    except FileNotFoundError:  # its holder deleted it as it released it
        try:
            # a dangling symbolic link is not followed (and so not made a file) either
            fd, writable = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, mode), True
        except OSError as err:
            _refuse_link(path, where, err)
            raise StoreError(f"{where}: cannot create {path}: {err.strerror or err}") from None
    except PermissionError:
        try:
            fd, writable = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK), False
        except OSError as err:
            _refuse_link(path, where, err)
            raise StoreError(f"{where}: cannot open {path}: {err.strerror or err}") from None
    except OSError as err:
        _refuse_link(path, where, err)
        raise StoreError(f"{where}: cannot open {path}: {err.strerror or err}") from None
    try:
        _refuse_unsafe_lock_file(fd, path, where)
    except BaseException:
        os.close(fd)
        raise
    return fd, writable


def _refuse_link(path: str, where: str, err: OSError) -> None:
    """Raise :class:`StoreError` saying that ``path`` is a symbolic link, where that is why
    opening it with ``O_NOFOLLOW`` failed (``ELOOP``; ``EMLINK`` on FreeBSD); else nothing."""
    if err.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
        raise StoreError(f"{where}: {path} is a symbolic link, not a lock file: refused (a "
                         "link there would have the lock overwrite the file it names; remove "
                         "it if no one should have put it there)") from None


def _refuse_unsafe_lock_file(fd: int, path: str, where: str) -> None:
    """Raise :class:`StoreError` unless the open lock file ``fd`` (at ``path``) is a regular
    file with no other name: a device, a FIFO or a hard link to another file (one another
    user of a shared store folder could plant) is not truncated for the holder line. A
    file with no name left (its holder deleted it as it released it) passes: the caller
    finds that and opens the path anew."""
    try:
        info = os.fstat(fd)
    except OSError as err:
        raise StoreError(f"{where}: cannot open {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{where}: {path} is not a regular file, not a lock file: refused "
                         "(remove it if no one should have put it there)")
    if info.st_nlink > 1:
        raise StoreError(f"{where}: {path} is a hard link (a file with {info.st_nlink} names), "
                         "not a lock file: refused (the lock would overwrite the file it "
                         "shares; remove this name if no one should have put it there)")


def _lock_or_holder(fd: int, where: str) -> str | None:
    """Lock ``fd`` (None), or the text of the lock file where another holds it; StoreError
    where it cannot be locked at all."""
    try:
        _lock(fd)
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise StoreError(f"{where}: {err.strerror or err}") from None
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            return os.read(fd, 200).decode(errors="replace")
        except OSError:  # pragma: no cover - Windows locks bytes against reading
            return ""
    return None


def _same_file(path: str, fd: int) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except OSError:
        return False


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - Windows: a byte-range lock on the first byte
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
