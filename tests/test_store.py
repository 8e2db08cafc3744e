"""Results store contract, run on SQLite in memory, on a file, and on PostgreSQL."""

from __future__ import annotations

import math
import sqlite3

import pytest
from sqlmodel import Session
from store_backends import BACKENDS, backend_url

from orchestrator.errors import NotFound
from orchestrator.store import queries, repo
from orchestrator.store.db import make_engine


@pytest.fixture(params=BACKENDS)
def session(request, tmp_path):
    with backend_url(request.param, tmp_path) as url:
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as s:
            yield s
        engine.dispose()


def _run(session, variant="method1", device="SER1"):
    exp = repo.upsert_experiment(session=session, name="exp", spec={"variants": {
        "method1": {}, "method2": {}}}, spec_hash="h")
    dev = repo.upsert_device(session=session, serial=device, model="Pixel 7")
    return repo.create_run(session=session, experiment_id=exp.id, variant=variant,
                           device_id=dev.id, params={"finetune_from": None})


def test_metrics_are_idempotent_and_keep_nan(session):
    """The same event ingested twice is stored once; NaN survives the round trip."""
    run = _run(session)
    pts = [("train_loss", 1, float("nan")), ("test_acc", 1, 0.5)]
    assert repo.record_metrics(session=session, run_id=run.id, metrics=pts) == 2
    assert repo.record_metrics(session=session, run_id=run.id, metrics=pts) == 0
    series = queries.metric_series(session=session, run_id=run.id)
    assert math.isnan(series["train_loss"][0][1])
    assert series["test_acc"] == [(1, 0.5)]


def test_compare_prefers_finished_runs(session):
    """Table 1 shows the latest finished run of each variant × device."""
    done = _run(session)
    repo.transition_run(session=session, run_id=done.id, to="running")
    repo.transition_run(session=session, run_id=done.id, to="finished", accuracy=0.9,
                        timing={"train": 3.0, "total": 5.0}, delegate_used="cpu")
    failed = _run(session)
    repo.transition_run(session=session, run_id=failed.id, to="failed")
    other = _run(session, variant="method2")
    rows = queries.table1(session=session, experiment="exp")
    assert [(r.variant, r.run_id, r.runs) for r in rows] == [
        ("method1", done.id, 2), ("method2", other.id, 1)]
    assert rows[0].accuracy == 0.9 and rows[0].train_seconds == 3.0


def test_transfers_ledger(session):
    """Transfers are recorded per run, in order."""
    run = _run(session)
    repo.record_transfer(session=session, run_id=run.id, direction="push", kind="model",
                         device_path="/data/local/tmp/orch/m", nbytes=10, sha256="ab")
    repo.record_transfer(session=session, run_id=run.id, direction="refused", kind="other",
                         device_path="/x.jpg", reason="not an allowed file")
    rows = repo.run_transfers(session=session, run_id=run.id)
    assert [r.direction for r in rows] == ["push", "refused"]


def test_unknown_ids_raise_not_found(session):
    """Asking for what is not there names it."""
    with pytest.raises(NotFound):
        repo.get_run(session=session, run_id=999)
    with pytest.raises(NotFound, match="nope"):
        repo.get_experiment(session=session, name="nope")


def test_alias_moves_between_devices(session):
    """An alias names one device at a time."""
    repo.upsert_device(session=session, serial="A")
    repo.upsert_device(session=session, serial="B")
    repo.set_alias(session=session, serial="A", alias="pixel7")
    repo.set_alias(session=session, serial="B", alias="pixel7")
    assert repo.alias_map(session=session) == {"pixel7": "B"}


def test_file_store_uses_wal(tmp_path):
    """A file store runs in WAL mode so the dashboard can read while the CLI writes."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect():
        pass
    con = sqlite3.connect(tmp_path / "w.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    engine.dispose()


@pytest.mark.parametrize("kind", [b for b in BACKENDS if b != "sqlite-memory"])
@pytest.mark.parametrize("upsert", ["experiment", "device"])
def test_a_row_created_meanwhile_by_another_process_is_updated_not_an_error(
        kind, upsert, tmp_path):
    """Two `orch run` of one spec on a new store: both find no experiment (or device) row
    and create it; the one that commits second gets the other's row, updated, not a
    unique-constraint error. The other process's insert is forced between the look-up and
    the commit."""
    with backend_url(kind, tmp_path) as url:
        engine = make_engine(url)
        with Session(engine) as mine, Session(engine) as other:
            def call(session):
                if upsert == "experiment":
                    return repo.upsert_experiment(session=session, name="exp", spec={},
                                                  spec_hash="theirs" if session is other
                                                  else "mine")
                return repo.upsert_device(session=session, serial="SER1",
                                          model="theirs" if session is other else "mine")

            real_exec, raced = mine.exec, []

            def exec_then_race(statement, *a, **kw):
                result = real_exec(statement, *a, **kw)
                if not raced:  # the look-up found nothing; now the other process commits
                    raced.append(call(other))
                return result

            mine.exec = exec_then_race  # type: ignore[method-assign]
            got = call(mine)
            assert raced and got.id == raced[0].id
            field = "spec_hash" if upsert == "experiment" else "model"
            assert getattr(got, field) == "mine"
            rows = (repo.list_experiments(session=other) if upsert == "experiment"
                    else repo.list_devices(session=other))
            assert len(rows) == 1
        engine.dispose()
