"""Schema versions: a store made before versions upgrades in place (SQLite from a real
dump, PostgreSQL by the same steps), a store newer than orch is refused, a forgotten step
is named, and the upgrade steps add what the table classes declare."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, Table, inspect, text
from sqlmodel import Session
from store_backends import backend_url

from orchestrator.errors import StoreError
from orchestrator.store import repo, schema, sweep_repo
from orchestrator.store.db import make_engine

V1_DUMP = Path(__file__).parent / "data" / "store_v1.sql"


def _version(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version FROM schema_version")).scalar_one()


def test_a_sqlite_store_from_before_versions_upgrades_in_place(tmp_path):
    """The dump of a store made by orch before versions opens at the newest version with
    its rows intact, the new table and column added, and its sweep queue still claimable."""
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(V1_DUMP.read_text())
    runs_before = con.execute("SELECT count(*) FROM run").fetchone()[0]
    con.close()

    engine = make_engine(f"sqlite:///{path}")

    assert _version(engine) == schema.HEAD
    cols = {c["name"] for c in inspect(engine).get_columns("sweepitem")}
    assert "worker_id" in cols and inspect(engine).has_table("worker")
    with Session(engine, expire_on_commit=False) as s:
        assert len(repo.list_runs(session=s)) == runs_before
        (sw,) = sweep_repo.list_sweeps(session=s)
        items = sweep_repo.list_items(session=s, sweep_id=sw.id)
        assert [i.point for i in items] == [{"i": 0}, {"i": 1}]
        dev = repo.find_device(session=s, serial="SER1")
        got = sweep_repo.claim_next(session=s, sweep_id=sw.id, device_id=dev.id,
                                    phone=dev.serial, model=dev.model)
        assert got is not None and got.status == "running" and got.worker_id is None
    engine.dispose()
    assert _version(make_engine(f"sqlite:///{path}")) == schema.HEAD  # idempotent


def _columns(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    tables = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = {t: [tuple(r[1:]) for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}
    con.close()
    return out


def test_a_new_store_has_the_columns_of_an_upgraded_old_one(tmp_path):
    """Every table of a new SQLite store has the columns (name, type, null, default, key)
    an old store has after its upgrade: the table classes and the steps agree exactly."""
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    con = sqlite3.connect(old)
    con.executescript(V1_DUMP.read_text())
    con.close()
    for path in (old, new):
        make_engine(f"sqlite:///{path}").dispose()

    assert _columns(new) == _columns(old)
    assert "params" in {c[0] for c in _columns(new)["run"]}


def _make_v1(url: str) -> None:
    """Turn a new store back into version 1: drop what steps 2… added and the versions."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_sweepitem_worker_id"))
        conn.execute(text("DROP INDEX ix_run_cell"))
        conn.execute(text("ALTER TABLE sweepitem DROP COLUMN worker_id"))
        conn.execute(text("DROP TABLE worker"))
        conn.execute(text("DROP TABLE schema_version"))
    with Session(engine, expire_on_commit=False) as s:
        exp = repo.upsert_experiment(session=s, name="e", spec={}, spec_hash="h")
        repo.create_run(session=s, experiment_id=exp.id, variant="method1")
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite-file", "postgresql"])
def test_a_version_1_store_upgrades_on_both_databases(kind, tmp_path):
    """The same upgrade steps bring a version-1 store up on SQLite and PostgreSQL."""
    with backend_url(kind, tmp_path) as url:
        _make_v1(url)
        engine = make_engine(url)
        assert _version(engine) == schema.HEAD
        with engine.connect() as conn:
            assert schema.missing(conn) == []
            assert "ix_run_cell" in {i["name"] for i in inspect(conn).get_indexes("run")}
        with Session(engine) as s:
            assert [r.variant for r in repo.list_runs(session=s)] == ["method1"]
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite-file", "postgresql"])
def test_a_new_step_adds_its_table_and_column(kind, tmp_path):
    """A step appended with add_table / add_column brings an existing store up to it (a
    table and a NOT NULL column with a plain default, declared only in the test)."""
    from sqlmodel import SQLModel

    with backend_url(kind, tmp_path) as url:
        make_engine(url).dispose()
        extra = Table("lease_probe", SQLModel.metadata, Column("id", Integer, primary_key=True))
        run = SQLModel.metadata.tables["run"]
        col = Column("probe_count", Integer, nullable=False, default=7)
        run.append_column(col)
        try:
            steps = (*schema.STEPS, schema.Step(schema.HEAD + 1, "probe", (
                schema.add_table("lease_probe"), schema.add_column("run", "probe_count"))))
            engine = make_engine_raw(url)
            assert schema.upgrade(engine, steps=steps) == schema.HEAD + 1
            with engine.connect() as conn:
                assert schema.missing(conn) == []
            engine.dispose()
        finally:
            run._columns.remove(col)
            SQLModel.metadata.remove(extra)


def make_engine_raw(url: str):
    """An engine without the automatic upgrade (to pass other steps)."""
    from sqlalchemy import create_engine

    from orchestrator.store.db import driver_url

    return create_engine(driver_url(url))


def test_a_store_newer_than_orch_is_refused(tmp_path):
    """A store stamped with a version this orch does not know is a one-line StoreError."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    make_engine(url).dispose()
    con = sqlite3.connect(tmp_path / "new.db")
    con.execute("UPDATE schema_version SET version = ?", (schema.HEAD + 5,))
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=f"version {schema.HEAD + 5}"):
        make_engine(url)


def test_a_forgotten_step_is_named(tmp_path):
    """A column declared in the classes but added by no step makes opening fail, naming it."""
    url = f"sqlite:///{tmp_path / 'gap.db'}"
    make_engine(url).dispose()
    con = sqlite3.connect(tmp_path / "gap.db")
    con.execute("DROP INDEX ix_sweepitem_worker_id")
    con.execute("ALTER TABLE sweepitem DROP COLUMN worker_id")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="sweepitem.worker_id") as err:
        make_engine(url)
    assert "upgrade step" in err.value.hint
