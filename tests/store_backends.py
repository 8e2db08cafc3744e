"""The results store's backends for tests: SQLite in memory, SQLite in a file, PostgreSQL.

The PostgreSQL leg needs a server: ORCH_TEST_PG_URL (`.ci/run` starts one with
scripts/test_postgres.sh); without it that leg is skipped with the reason. Each use gets a
database of its own, dropped afterwards.

    from store_backends import BACKENDS, backend_url

    @pytest.fixture(params=BACKENDS)
    def url(request, tmp_path):
        with backend_url(request.param, tmp_path) as u:
            yield u
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BACKENDS = ["sqlite-memory", "sqlite-file", "postgresql"]
PG_ENV = "ORCH_TEST_PG_URL"


def pg_server_url() -> str:
    """The test server's URL, or skip the test saying how to get one."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (`eval \"$(bash "
                    "scripts/test_postgres.sh start)\"`)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'orch[postgres]'")
    return url


def _admin(url: str):
    import psycopg

    from orchestrator.store.db import driver_url

    plain = driver_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(plain, autocommit=True)


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh, empty database on the test server; its URL. Dropped afterwards."""
    server = pg_server_url()
    name = f"orch_t_{uuid.uuid4().hex[:12]}"
    with _admin(server) as con:
        con.execute(f"CREATE DATABASE {name}")
    base, _, _ = server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        from orchestrator.store import db

        with db._engines_lock:  # engines cached by open_session hold connections
            for key in [k for k in db._engines if k.endswith(f"/{name}")]:
                db._engines.pop(key).dispose()
        with _admin(server) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def backend_url(kind: str, folder: Path) -> Iterator[str]:
    """A URL of an empty store of `kind` (one of BACKENDS)."""
    if kind == "sqlite-memory":
        yield "sqlite://"
    elif kind == "sqlite-file":
        yield f"sqlite:///{folder / 'store.db'}"
    elif kind == "postgresql":
        with pg_database() as url:
            yield url
    else:
        raise ValueError(kind)
