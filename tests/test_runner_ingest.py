"""Ingestion of admitted events and results into a real SQLite store: idempotent, complete."""

from __future__ import annotations

import pytest

from orchestrator.links.base import HealthSample
from orchestrator.runner.ingest import ingest_events, ingest_result
from orchestrator.store import queries, repo
from orchestrator.store.db import open_session


def ev(seq: int, kind: str, **fields) -> dict:
    return {"seq": seq, "t": 1.7e9 + seq, "kind": kind, **fields}


def epoch(seq: int, n: int, phase: str, acc: float) -> dict:
    return ev(seq, "epoch", phase=phase, epoch=n, train_loss=0.5, train_acc=acc,
              test_loss=0.6, test_acc=acc, seconds=1.5)


EVENTS = [
    ev(1, "start", agent_version="0.1.0", interpreter="ai_edge_litert", pid=10),
    ev(2, "delegate", requested="nnapi", used="cpu", reason={"code": "nnapi_no_plan"},
       info={"threads": 2}),
    ev(3, "stage", stage="features", done=16, total=16),
    epoch(4, 1, "head", 0.6),
    ev(5, "checkpoint", epoch=1),
    epoch(6, 2, "finetune", 0.8),
    ev(7, "checkpoint", epoch=2),
]


@pytest.fixture
def store(tmp_path):
    session = open_session(f"sqlite:///{tmp_path / 'orch.db'}")
    exp = repo.upsert_experiment(session=session, name="e", spec={}, spec_hash="x")
    dev = repo.upsert_device(session=session, serial="local:test")
    run = repo.create_run(session=session, experiment_id=exp.id, variant="method2",
                          device_id=dev.id, status="running")
    yield session, run.id, dev.id
    session.close()


def test_events_read_twice_are_stored_once(store):
    """Re-ingesting the same events (a resumed run re-reads its file) adds nothing."""
    session, run_id, dev_id = store
    health = iter([HealthSample(81, 35.5)])

    first = ingest_events(session=session, run_id=run_id, events=EVENTS, device_id=dev_id,
                          sample_health=lambda: next(health))
    again = ingest_events(session=session, run_id=run_id, events=EVENTS[2:], device_id=dev_id,
                          sample_health=lambda: pytest.fail("no new epoch, no sample"))

    assert len(first.new) == len(EVENTS) and again.new == []
    metrics = repo.run_metrics(session=session, run_id=run_id)
    keys = {(m.key, m.step) for m in metrics}
    assert len(keys) == len(metrics) == 2 * 6  # six keys per epoch, each once
    assert queries.metric_series(session=session, run_id=run_id)["phase"] == [(1, 0.0), (2, 1.0)]
    run = repo.get_run(session=session, run_id=run_id)
    assert run.events_seen == 7 and run.progress["checkpoint"] == 2
    assert (run.delegate_requested, run.delegate_used) == ("nnapi", "cpu")
    assert run.agent_version == "0.1.0" and run.started is not None
    samples = repo.run_samples(session=session, run_id=run_id)
    # Both epochs came in one read: one health sample, stored for each.
    assert [(s.step, s.battery) for s in samples] == [(1, 81), (2, 81)]


def test_error_event_records_the_failure_and_keeps_metrics(store):
    """An error event records `failed` and its catalogue message; earlier epochs stay (the
    status is the pipeline's verdict, written once)."""
    session, run_id, _ = store
    out = ingest_events(session=session, run_id=run_id, events=[
        *EVENTS[:4], ev(5, "error", code="disk_full")])

    assert out.terminal == "failed"
    run = repo.get_run(session=session, run_id=run_id)
    assert run.status == "running" and run.error == "disk_full: the phone's storage is full"
    assert run.progress["terminal"] == "failed"
    assert len(repo.run_metrics(session=session, run_id=run_id, key="test_acc")) == 1


def test_null_loss_is_stored_as_nan(store):
    """The agent sends a non-finite loss as null; the store keeps it as NaN, not as a gap."""
    session, run_id, _ = store
    ingest_events(session=session, run_id=run_id,
                  events=[ev(1, "epoch", phase="head", epoch=1, train_loss=None, test_acc=0.5)])
    (m,) = repo.run_metrics(session=session, run_id=run_id, key="train_loss")
    assert m.value != m.value  # NaN


def test_result_sets_accuracy_timing_and_fills_missing_epochs(store):
    """result.json adds accuracy, agent timing + host timing, and epochs not seen as events."""
    session, run_id, _ = store
    ingest_events(session=session, run_id=run_id, events=EVENTS[:4])
    result = {"schema": 1, "run_key": "1-x", "status": "finished", "accuracy": 0.8,
              "epochs": [{k: v for k, v in e.items() if k not in ("seq", "t", "kind")}
                         for e in (EVENTS[3], EVENTS[5])],
              "timing": {"train": 3.0, "total": 9.0},
              "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert"},
              "delegate": {"requested": "nnapi", "used": "cpu",
                           "reason": {"code": "nnapi_no_plan"}}}

    run = ingest_result(session=session, run_id=run_id, result=result,
                        host_timing={"wall": 12.5})

    assert run.status == "running" and run.accuracy == 0.8  # the verdict moves it
    assert run.timing == {"train": 3.0, "total": 9.0, "wall": 12.5}
    assert run.interpreter == "ai_edge_litert" and run.result["accuracy"] == 0.8
    steps = [s for s, _ in queries.metric_series(session=session, run_id=run_id)["test_acc"]]
    assert steps == [1, 2]
