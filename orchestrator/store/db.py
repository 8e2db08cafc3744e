"""Opening the store: any SQLAlchemy URL; SQLite gets WAL and a busy timeout (CLI writes while
the dashboard reads)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine

import orchestrator.store.lease  # noqa: F401  (registers the phone leases)
import orchestrator.store.sweep_tables  # noqa: F401  (registers the sweep tables)
from orchestrator.errors import StoreError
from orchestrator.store import tables  # noqa: F401  (registers the tables)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()  # sweeps open the store from a thread per phone


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    """A new engine for `url` with the schema created. `sqlite://` is an in-memory store."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": 10}}
            if not path or path == ":memory:":
                kwargs["poolclass"] = StaticPool  # one shared in-memory database
            engine = create_engine(url, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        SQLModel.metadata.create_all(engine)
        return engine
    except (SQLAlchemyError, OSError) as e:
        raise StoreError(
            f"Cannot open the results store at {url}: {e.__class__.__name__}: {e}".splitlines()[0],
            hint="Check --db / ORCH_DB (any SQLAlchemy URL) and that its folder is writable.",
        ) from None


def get_engine(url: str) -> Engine:
    """The process-wide engine for `url` (one per URL)."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]


def open_session(url: str) -> Session:
    return Session(get_engine(url), expire_on_commit=False)
