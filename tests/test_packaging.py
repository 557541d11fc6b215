"""The wheel a user installs holds every file of the package, not only the Python ones.

The tests run on the editable install ``make setup`` makes, which reads the source tree, so
a file that ``[tool.setuptools.package-data]`` leaves out (a new script of the playground, a
KaTeX font) would pass here and be missing after ``pip install optimlab``. This builds the
wheel from the checkout and compares it with what git tracks under ``src/optimlab``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked() -> set[str]:
    """The package's files git tracks, as paths inside the wheel (``optimlab/...``)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout")
    out = subprocess.run(["git", "ls-files", "src/optimlab"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return {line.removeprefix("src/") for line in out.splitlines() if line}


def test_the_wheel_holds_every_tracked_file_of_the_package(tmp_path):
    pytest.importorskip("setuptools", minversion="68")  # pyproject's build-system needs it
    tracked = _tracked()
    assert any(not name.endswith(".py") for name in tracked)  # the playground's page, KaTeX
    # built from a copy, so that the checkout gets no build/ or egg-info; no build isolation:
    # setuptools is already here, and the build needs no network
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("optimlab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("optimlab/")}
    missing = sorted(tracked - shipped)
    assert not missing, f"files the wheel leaves out (add them to package-data): {missing}"
    assert "optimlab/web/static/vendor/katex/fonts/KaTeX_Main-Regular.woff2" in shipped
