"""Writing a file atomically, for the caches that several processes (and machines sharing a
folder) read and write: the kernels' sources, the step costs, the tasks' data and the
catalog's answers; and saying why a folder could not be made. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["mkdir_failure", "write_atomically"]


def write_atomically(path: Path, content: str | bytes | Callable[[BinaryIO], None], *,
                     prefix: str | None = None, mode: int | None = 0o644) -> None:
    """Write ``content`` (text as UTF-8, bytes, or a function writing to the open binary
    file) to ``path``, which a reader sees whole or not at all.

    The data go to a temporary file of this write's own in ``path``'s folder (``mkstemp``:
    a name no other writer has, where process ids repeat across containers sharing a
    folder), which is given ``mode`` (mkstemp's 0600 would hide a shared cache from its
    other users; None keeps 0600) and renamed into place. On any failure the temporary file
    is removed and the error raised (``OSError`` for the disk's): callers for which the file
    is optional catch it. The folder must exist."""
    handle, tmp = tempfile.mkstemp(prefix=prefix if prefix is not None else f"{path.name}.",
                                   suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            if callable(content):
                content(out)
            else:
                out.write(content.encode("utf-8") if isinstance(content, str) else content)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
