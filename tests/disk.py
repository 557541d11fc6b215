"""A disk that fills up, for the tests of files written whole or not at all
(``tests/bench/test_output_atomic.py``, ``tests/test_cli_signals.py``)."""

from __future__ import annotations

import builtins
import errno
import io
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["FullDisk", "fill_disk"]


class FullDisk:
    """A file opened for writing on a disk that fills up: half of the first write lands,
    then every write raises ``ENOSPC``."""

    def __init__(self, file) -> None:
        self.file = file

    def write(self, data):
        self.file.write(data[:len(data) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def fill_disk(monkeypatch, which: Callable[[Path], bool] | None = None) -> None:
    """From now on, every file opened for writing (``open``, ``io.open``: ``Path.write_text``
    and ``write_bytes``, ``os.fdopen``) whose path ``which`` accepts (every one by default)
    runs out of space part way (:class:`FullDisk`). A file opened by descriptor is named by
    the path ``/proc`` gives it."""
    real = io.open

    def opened(file, mode="r", *args, **kwargs):
        handle = real(file, mode, *args, **kwargs)
        if not any(c in mode for c in "wax+"):
            return handle
        if which is not None:
            name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file)
            if not which(Path(os.fsdecode(name))):
                return handle
        return FullDisk(handle)

    monkeypatch.setattr(io, "open", opened)
    monkeypatch.setattr(builtins, "open", opened)
