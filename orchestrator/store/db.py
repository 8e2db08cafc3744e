"""Opening the store: any SQLAlchemy URL; SQLite gets WAL and a busy timeout (CLI writes while
the dashboard reads), PostgreSQL goes through psycopg 3 (`pip install 'orch[postgres]'`) in
UTC. Opening creates or upgrades the schema (schema.py)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

import orchestrator.store.lease  # noqa: F401  (registers the phone leases)
import orchestrator.store.sweep_tables  # noqa: F401  (registers the sweep tables)
import orchestrator.store.worker_tables  # noqa: F401  (registers the workers table)
from orchestrator.errors import StoreError
from orchestrator.store import tables  # noqa: F401  (registers the tables)
from orchestrator.store.schema import upgrade

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()  # sweeps open the store from a thread per phone


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def driver_url(url: str) -> str:
    """`postgresql://…` (and `postgres://…`) through psycopg 3, SQLAlchemy's default being
    psycopg2; a URL naming its driver is kept."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


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
        elif url.startswith("postgres"):
            # Times are stored without a zone: the session's zone must be UTC everywhere.
            engine = create_engine(driver_url(url), pool_pre_ping=True,
                                   connect_args={"options": "-c timezone=UTC"})
        else:
            engine = create_engine(url, pool_pre_ping=True)
        upgrade(engine)
        return engine
    except ImportError as e:
        raise missing_driver(url, e) from None
    except (SQLAlchemyError, OSError) as e:
        raise StoreError(
            f"Cannot open the results store at {shown_url(url)}: "
            f"{e.__class__.__name__}: {e}".splitlines()[0].rstrip("."),
            hint="Check --db / ORCH_DB (any SQLAlchemy URL) and that its folder is writable.",
        ) from None


def shown_url(url: str) -> str:
    """`url` without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def missing_driver(url: str, e: ImportError) -> StoreError:
    """The store's database driver is not installed: name the extra (or module) to install."""
    if url.startswith(("postgresql", "postgres")):
        hint = "Install the PostgreSQL driver: pip install 'orch[postgres]'."
    else:
        hint = f"Install the Python module {e.name or 'the URL names'} for this database."
    return StoreError(f"Cannot open the results store at {shown_url(url)}: its database "
                      f"driver ({e.name or 'a module'}) is not installed.", hint=hint)


def store_error(e: BaseException) -> StoreError | None:
    """A database failure that escaped a command (a full disk, a read-only file, a lost
    server) as one StoreError line; None when `e` is not one."""
    import sqlite3

    if not isinstance(e, (SQLAlchemyError, sqlite3.Error)):
        return None
    cause = getattr(e, "orig", None) or e
    text = (str(cause).splitlines() or [cause.__class__.__name__])[0].rstrip(".")
    return StoreError(f"The results store failed: {text}.",
                      hint="Check that the store (--db / ORCH_DB) is writable and its disk "
                      "has room, then run the command again.")


def get_engine(url: str) -> Engine:
    """The process-wide engine for `url` (one per URL)."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]


def open_session(url: str) -> Session:
    return Session(get_engine(url), expire_on_commit=False)
