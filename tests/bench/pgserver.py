"""A throwaway PostgreSQL server for tests of the run store's PostgreSQL backend.

The run store can keep its data in PostgreSQL; SQLite alone cannot show that the SQL we emit works
there (types, locking, transactional DDL, concurrent writers).  This module starts a real server from
the binaries of Debian's ``postgresql`` package (or any PostgreSQL install, see :func:`find_bin_dir`)
in a fresh temporary directory, and removes it again afterwards.

Design choices:

* The server listens on the loopback address ``127.0.0.1`` only, on a free TCP port, plus a unix
  socket inside its own temporary directory; nothing outside the machine can reach it.  Authentication
  is ``trust`` for the superuser ``optimlab``: acceptable only because of that.
* Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``) and the
  cluster is created with ``initdb --no-sync``: the data is thrown away, speed matters.
* PostgreSQL refuses to run as root.  When the tests run as root, ``initdb`` and ``postgres`` run as
  the unprivileged user ``nobody`` (via ``subprocess.Popen(user=..., group=...)``, no su/sudo), and
  the temporary directory is made over to that user.  It is created with :func:`tempfile.mkdtemp`
  rather than under pytest's ``tmp_path``, whose 0700 root-owned parents ``nobody`` cannot traverse.
* The server is stopped with an immediate shutdown, then killed if it lingers; an ``atexit`` hook stops
  any server a test forgot, so none outlives the Python process that started it.

Usage::

    with PostgresServer() as server:
        url = server.create_database()      # postgresql+psycopg://optimlab@127.0.0.1:PORT/t_...
"""

from __future__ import annotations

import atexit
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "optimlab"
HOST = "127.0.0.1"
UNPRIVILEGED_USER = "nobody"
UNPRIVILEGED_GROUP = "nogroup"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
INITDB_TIMEOUT_S = 120.0
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 30

_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _has_binaries(directory: str | os.PathLike[str]) -> bool:
    return all(os.access(os.path.join(directory, name), os.X_OK) for name in _REQUIRED_BINARIES)


def _version_key(name: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return None


def find_bin_dir() -> str | None:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None if there is none.

    Looks, in order, at the environment variable ``OPTIMLAB_PG_BIN`` (returned as given when set, so a
    wrong value fails loudly in :meth:`PostgresServer.start` instead of being skipped silently), at the
    highest version among ``/usr/lib/postgresql/*/bin`` (Debian's layout), and at the directory of
    ``pg_ctl`` on ``PATH``.
    """
    override = os.environ.get("OPTIMLAB_PG_BIN")
    if override:
        return override
    root = Path("/usr/lib/postgresql")
    candidates: list[tuple[tuple[int, ...], Path]] = []
    if root.is_dir():
        for entry in root.iterdir():
            key = _version_key(entry.name)
            if key is not None and _has_binaries(entry / "bin"):
                candidates.append((key, entry / "bin"))
    if candidates:
        return str(max(candidates)[1])
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        directory = os.path.dirname(os.path.realpath(pg_ctl))
        if _has_binaries(directory):
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _unprivileged_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root and there is no user {UNPRIVILEGED_USER!r} to run PostgreSQL as"
        ) from None
    try:
        gid = grp.getgrnam(UNPRIVILEGED_GROUP).gr_gid
    except KeyError:
        gid = entry.pw_gid
    return entry.pw_uid, gid


class PostgresServer:
    """A PostgreSQL server in a temporary directory, listening on 127.0.0.1 only.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.  After :meth:`start`, ``port``
    is the TCP port, ``base_dir`` the temporary directory (data in ``base_dir/data``, unix socket in
    ``base_dir``) and ``log_path`` the server log.
    """

    def __init__(self, bin_dir: str | None = None, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.bin_dir = bin_dir
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self.base_dir: str | None = None
        self.log_path: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ids: tuple[int, int] | None = None

    # -- context manager -----------------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- public API ----------------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create a cluster in a fresh temporary directory and start the server; return self.

        Blocks until the server accepts queries (at most ``start_timeout_s`` seconds).  Raises
        RuntimeError, with the tail of the server log, when that fails; nothing is left behind then.
        """
        if self._proc is not None:
            raise RuntimeError("PostgresServer already started")
        bin_dir = self.bin_dir or find_bin_dir()
        if not bin_dir or not _has_binaries(bin_dir):
            raise RuntimeError(
                f"no PostgreSQL binaries ({', '.join(_REQUIRED_BINARIES)}) found "
                f"(looked in {bin_dir or 'OPTIMLAB_PG_BIN, /usr/lib/postgresql/*/bin, PATH'})"
            )
        self.bin_dir = bin_dir
        atexit.register(self.stop)
        try:
            self._ids = _unprivileged_ids() if os.geteuid() == 0 else None
            self.base_dir = tempfile.mkdtemp(prefix="optimlab-pg-")
            self.log_path = os.path.join(self.base_dir, "server.log")
            Path(self.log_path).touch()
            if self._ids is not None:
                os.chown(self.base_dir, *self._ids)
                os.chown(self.log_path, *self._ids)
            self._initdb()
            for attempt in range(PORT_ATTEMPTS):
                if self._launch_and_wait(last_attempt=attempt == PORT_ATTEMPTS - 1):
                    break
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (immediate shutdown, then kill) and remove its directory.  Idempotent."""
        try:
            self._stop_process()
        finally:
            if self.base_dir is not None:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                self.base_dir = None
            atexit.unregister(self.stop)

    def url(self, dbname: str) -> str:
        """Return the SQLAlchemy URL of database ``dbname`` on this server (psycopg 3 driver)."""
        if self.port is None:
            raise RuntimeError("PostgresServer is not running")
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create a new, empty database (named ``t_<random hex>`` by default) and return its URL."""
        from psycopg import sql

        if name is None:
            name = f"t_{secrets.token_hex(6)}"
        if not _DB_NAME_RE.match(name):
            raise ValueError(f"invalid database name {name!r}")
        with self._connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    # -- internals -----------------------------------------------------------------------------------

    def _connect(self, dbname: str = "postgres", connect_timeout: int = 5):  # -> psycopg.Connection
        import psycopg

        if self.port is None:
            raise RuntimeError("PostgresServer is not running")
        return psycopg.connect(
            host=HOST,
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=connect_timeout,
        )

    def _popen_kwargs(self) -> dict:
        assert self.base_dir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        kwargs: dict = {"cwd": self.base_dir, "env": env, "stdin": subprocess.DEVNULL}
        if self._ids is not None:
            uid, gid = self._ids
            kwargs.update(user=uid, group=gid, extra_groups=[])
            kwargs["env"]["HOME"] = self.base_dir
        return kwargs

    def _log_tail(self) -> str:
        if not self.log_path:
            return "(no log)"
        try:
            lines = Path(self.log_path).read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(log unreadable: {exc})"
        return "\n".join(lines[-LOG_TAIL_LINES:]) or "(log empty)"

    def _fail(self, message: str) -> RuntimeError:
        return RuntimeError(f"{message}; last lines of the server log {self.log_path}:\n{self._log_tail()}")

    def _initdb(self) -> None:
        assert self.base_dir is not None and self.log_path is not None and self.bin_dir is not None
        cmd = [
            os.path.join(self.bin_dir, "initdb"),
            "-D",
            os.path.join(self.base_dir, "data"),
            "--auth=trust",
            f"--username={SUPERUSER}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        with open(self.log_path, "ab") as log:
            try:
                result = subprocess.run(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=INITDB_TIMEOUT_S,
                    **self._popen_kwargs(),
                )
            except subprocess.TimeoutExpired:
                raise self._fail(f"initdb did not finish within {INITDB_TIMEOUT_S:.0f} s") from None
        if result.returncode != 0:
            raise self._fail(f"initdb failed with exit code {result.returncode}")

    def _launch_and_wait(self, last_attempt: bool) -> bool:
        """Start postgres on a fresh port and wait until it answers.

        Returns False (after cleaning up) when the port was taken in the meantime and another attempt is
        allowed; raises RuntimeError on any other failure.
        """
        assert self.base_dir is not None and self.log_path is not None and self.bin_dir is not None
        self.port = _free_port()
        cmd = [
            os.path.join(self.bin_dir, "postgres"),
            "-D",
            os.path.join(self.base_dir, "data"),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"unix_socket_directories={self.base_dir}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=50",
            "-c",
            "shared_buffers=16MB",
            "-c",
            "logging_collector=off",
        ]
        log_start = os.path.getsize(self.log_path)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._popen_kwargs()
            )
        deadline = time.monotonic() + self.start_timeout_s
        last_error: Exception | None = None
        for _ in range(int(self.start_timeout_s / 0.05) + 10):
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                with open(self.log_path, "rb") as log:
                    log.seek(log_start)
                    new_log = log.read().decode(errors="replace")
                if "could not bind" in new_log and not last_attempt:
                    return False
                raise self._fail(f"postgres exited with code {code} during start-up on port {self.port}")
            if time.monotonic() > deadline:
                break
            try:
                with self._connect(connect_timeout=2) as conn:
                    conn.execute("SELECT 1").fetchone()
                return True
            except Exception as exc:  # psycopg.OperationalError while the server starts up
                last_error = exc
                time.sleep(0.05)
        raise self._fail(
            f"postgres did not accept connections on {HOST}:{self.port} within "
            f"{self.start_timeout_s:.0f} s (last error: {last_error})"
        )

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        self.port = None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(signal.SIGQUIT)  # immediate shutdown; the postmaster stops its children
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        if proc.poll() is None or _group_alive(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # postgres runs in its own session/process group
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"postgres (pid {proc.pid}) survived SIGKILL") from None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
