"""Schema versions of the results store, the same on SQLite and PostgreSQL: a one-row table
`schema_version` and ordered upgrade steps, applied in one locked transaction when a store
is opened, then checked against the table classes.

- A new store is created whole from the table classes and stamped with the newest version.
- An older one gets each missing step in order. A store from before versions (a `run` table
  but no `schema_version`) is version 1.
- After upgrading, every table and column the classes declare must exist; otherwise opening
  fails with one line naming what is missing (a step was forgotten).
- A store newer than this orch is refused rather than guessed at.

Adding a table or a column:
1. Declare it in the table classes (a new table in its own module under `store/`,
   imported by `store/db.py` so it registers). A new column must be nullable, or have a
   plain default (written into the DDL) or a `server_default`.
2. Append one step with the next number; the definition is taken from the classes:
       Step(3, "phone leases", (add_table("phonelease"),)),
       Step(4, "energy per run", (add_column("run", "energy_j"),)),
   Anything else (an index, a data fix) is a function `(connection) -> None`.
3. Released steps are never edited or reordered. `tests/test_store_schema.py` upgrades a
   store made before versions existed and checks the result on both databases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Integer, MetaData, Table, inspect, literal, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateColumn
from sqlmodel import SQLModel

from orchestrator.errors import StoreError

Action = Callable[[Connection], None]

VERSIONS = Table("schema_version", MetaData(), Column("version", Integer, nullable=False))
_PG_LOCK = 0x6F726368  # "orch": one upgrader at a time on a shared PostgreSQL


@dataclass(frozen=True)
class Step:
    version: int
    what: str
    actions: tuple[Action, ...]


def add_table(name: str) -> Action:
    """Create the table `name` as the classes declare it, with its indexes."""

    def act(conn: Connection) -> None:
        SQLModel.metadata.tables[name].create(conn, checkfirst=True)

    act.__name__ = f"add_table({name})"
    return act


def add_column(table: str, column: str) -> Action:
    """Add `table.column` as the classes declare it, with its indexes."""

    def act(conn: Connection) -> None:
        t = SQLModel.metadata.tables[table]
        c = t.c[column]
        ddl = str(CreateColumn(c).compile(dialect=conn.dialect))
        if not c.nullable and c.server_default is None:
            value = getattr(c.default, "arg", None)
            if value is None or callable(value):
                raise StoreError(f"Column {table}.{column} is NOT NULL without a plain "
                                 "default, so existing rows cannot get it.",
                                 hint="Make it nullable or give it a default.")
            ddl += " DEFAULT " + str(literal(value).compile(
                dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        prep = conn.dialect.identifier_preparer
        conn.exec_driver_sql(f"ALTER TABLE {prep.quote(table)} ADD COLUMN {ddl}")
        for index in t.indexes:
            if c in index.columns.values():
                index.create(conn, checkfirst=True)

    act.__name__ = f"add_column({table}.{column})"
    return act


def add_index(table: str, name: str) -> Action:
    """Create the index `name` of `table` as the classes declare it."""

    def act(conn: Connection) -> None:
        (index,) = [i for i in SQLModel.metadata.tables[table].indexes if i.name == name]
        index.create(conn, checkfirst=True)

    act.__name__ = f"add_index({table}.{name})"
    return act


# Version 1 is the store as it was before versions: devices, experiments, runs, metrics,
# device samples, transfers, sweeps and their items.
STEPS: tuple[Step, ...] = (
    Step(2, "sweep workers and their queue claims",
         (add_table("worker"), add_column("sweepitem", "worker_id"))),
    Step(3, "phone leases (one run at a time per phone)", (add_table("phone_lease"),)),
    Step(4, "the information bound of each run", (add_table("egressbound"),)),
    Step(5, "an index over Table 1's cells", (add_index("run", "ix_run_cell"),)),
)
HEAD = max((s.version for s in STEPS), default=1)


def _begin_locked(conn: Connection) -> None:
    """Start the transaction holding the schema lock until commit."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})


def current_version(conn: Connection) -> int | None:
    """The store's version: None for an empty database, 1 for one from before versions."""
    names = set(inspect(conn).get_table_names())
    if VERSIONS.name in names:
        return conn.execute(select(VERSIONS.c.version)).scalar_one()
    return 1 if "run" in names else None


def missing(conn: Connection) -> list[str]:
    """Tables and columns the classes declare that the store lacks."""
    insp = inspect(conn)
    names = set(insp.get_table_names())
    out: list[str] = []
    for name, table in SQLModel.metadata.tables.items():
        if name not in names:
            out.append(name)
            continue
        have = {c["name"] for c in insp.get_columns(name)}
        out += [f"{name}.{c.name}" for c in table.columns if c.name not in have]
    return out


def upgrade(engine: Engine, *, steps: tuple[Step, ...] = STEPS) -> int:
    """Create or upgrade the store's schema to the newest version; returns that version."""
    head = max((s.version for s in steps), default=1)
    with engine.connect() as conn:
        _begin_locked(conn)
        version = current_version(conn)
        if version is None:
            SQLModel.metadata.create_all(conn)
            VERSIONS.create(conn)
            conn.execute(VERSIONS.insert().values(version=head))
            version = head
        elif version > head:
            raise StoreError(f"The results store is at schema version {version}; this orch "
                             f"knows versions up to {head}.",
                             hint="Upgrade orch on this host to the version the others use.")
        else:
            if not inspect(conn).has_table(VERSIONS.name):
                VERSIONS.create(conn)
                conn.execute(VERSIONS.insert().values(version=version))
            for step in sorted(steps, key=lambda s: s.version):
                if step.version <= version:
                    continue
                for action in step.actions:
                    action(conn)
                conn.execute(VERSIONS.update().values(version=step.version))
                version = step.version
        lacking = missing(conn)
        if lacking:
            conn.rollback()
            raise StoreError(f"The results store at version {version} lacks "
                             f"{', '.join(lacking)}.",
                             hint="Add an upgrade step for them (see orchestrator/store/"
                                  "schema.py).")
        conn.commit()
    return version
