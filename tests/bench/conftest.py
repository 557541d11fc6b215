"""Fixtures of the training lab's tests: the run store on SQLite and on a PostgreSQL server.

``store_url`` gives each test a new, empty store, once as a SQLite file and once as a
database on a PostgreSQL server (:mod:`tests.bench.pgserver`: Debian's package, loopback
only, started once per test process and stopped at its end). Where the server's binaries
are missing the PostgreSQL cases skip, unless ``OPTIMLAB_REQUIRE_POSTGRES=1`` (as in
``.ci/run``, which installs the package) makes that a failure.
"""

from __future__ import annotations

import os

import pytest

from .pgserver import PostgresServer, find_bin_dir

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for this test process (skips where none is installed)."""
    if find_bin_dir() is None:
        if os.environ.get("OPTIMLAB_REQUIRE_POSTGRES") == "1":
            pytest.fail("OPTIMLAB_REQUIRE_POSTGRES=1 but no PostgreSQL binaries were found "
                        "(apt-get install postgresql, or set OPTIMLAB_PG_BIN)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError:
        pytest.fail("the PostgreSQL run store needs optimlab[postgres] (SQLAlchemy, psycopg)")
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> str:
    """A new store: a SQLite file in ``tmp_path``, or a new database on the server."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return request.getfixturevalue("pg_server").create_database()
