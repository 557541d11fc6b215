"""A disk cache of the catalog commands' answers, so that ``optimlab list``, ``explain``,
``compare`` and ``landscapes`` answer without importing torch.

The catalog lives in modules that import torch (2 s of a 2.6 s ``optimlab list``). The first
catalog command computes every answer those four commands can give (the ``list`` tables,
each registry name's ``explain`` text and ``compare`` row, the registry's names for the
unknown-name error, the ``landscapes`` table) and writes them to one JSON file; later
commands read that file and never import torch.

The file is ``catalog-<version>.json`` in :func:`cache_dir` and holds a fingerprint: the
package version, the Python version and a hash of the source files the answers come from
(:data:`SOURCES`: ``optim/`` and ``landscapes/`` whole, the command line and the table
code). A fingerprint that differs (a source file edited, another version installed) means
the file is stale and is rebuilt. Nothing here ever raises: a cache that cannot be read,
is damaged or cannot be written is ignored and the answer computed as without it.

Standard library only; importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

FORMAT = 1
"""The layout of the cached data; raise it when :func:`valid` changes."""

PACKAGE = Path(__file__).resolve().parent

SOURCES = ("optim", "landscapes", "__init__.py", "_catalog_cache.py", "_table.py", "cli.py")
"""What the cached answers are computed from, relative to the package: folders (every
``.py`` file under them) and files."""


def cache_dir() -> Path:
    """``$OPTIMLAB_CACHE_DIR`` (a leading ``~`` expanded), else ``cli`` in optimlab's cache
    folder (:func:`optimlab._env.cache_root`, which the fused kernels' cache uses too:
    ``$OPTIMLAB_CACHE``, else an absolute ``$XDG_CACHE_HOME``'s ``optimlab``, else
    ``~/.cache/optimlab``). Raises :class:`RuntimeError` where there is no home folder to
    put it in (:func:`load` and :func:`save` then do without the cache)."""
    from ._env import cache_root

    if os.environ.get("OPTIMLAB_CACHE_DIR"):
        return Path(os.path.expanduser(os.environ["OPTIMLAB_CACHE_DIR"]))
    return cache_root() / "cli"


def cache_file() -> Path:
    from . import __version__

    return cache_dir() / f"catalog-{__version__}.json"


def _source_files() -> list[Path]:
    files = []
    for name in SOURCES:
        path = PACKAGE / name
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                files += [Path(root) / n for n in sorted(names) if n.endswith(".py")]
        else:
            files.append(path)
    return files


def fingerprint() -> str:
    """A hash of the version, the Python version and the source files' contents (a
    millisecond for the ~45 files); a file that cannot be read counts as missing."""
    from . import __version__

    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0{sys.version}\0".encode())
    for path in _source_files():
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            digest.update(b"missing")
    return digest.hexdigest()


def _strings(value, kind=str) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) for v in value)


def valid(data) -> bool:
    """Whether ``data`` has the cached answers' shape (a damaged file may be valid JSON)."""
    if not isinstance(data, dict):
        return False
    if not all(isinstance(data.get(k), str) for k in ("list", "list_markdown", "landscapes")):
        return False
    names, explain, compare = data.get("names"), data.get("explain"), data.get("compare")
    if not (_strings(names) and names and isinstance(explain, dict)
            and isinstance(compare, dict)):
        return False
    return all(isinstance(explain.get(n), str) and _strings(compare.get(n)) for n in names)


def load(key: str) -> dict | None:
    """The cached answers if the file exists, is whole and matches ``key``; else None."""
    try:
        with open(cache_file(), encoding="utf-8") as file:
            stored = json.load(file)
        if (isinstance(stored, dict) and stored.get("format") == FORMAT
                and stored.get("fingerprint") == key and valid(stored.get("data"))):
            return stored["data"]
    except Exception:  # missing, unreadable, not JSON, not UTF-8: compute the answer instead
        pass
    return None


def save(key: str, data: dict) -> bool:
    """Write the answers for ``key`` (atomically: a reader sees the old file or the new
    one); False, silently, when the folder cannot be written."""
    from ._files import write_atomically

    try:
        path = cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "fingerprint": key, "data": data},
                          ensure_ascii=False)
        write_atomically(path, text, prefix=".catalog-", mode=None)  # the user's own: 0600
        return True
    except Exception:  # read-only disk, no home folder, a file where the folder should be
        return False
