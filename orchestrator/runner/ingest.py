"""Ingestion: admitted events and results (as the egress guard quantized them) → the store,
idempotently. Catalogue messages (errors, delegate reasons) are stored as the host renders
them; the agent sends only their codes and numbers.

`Run.events_seen` is the highest event seq ingested, so reading the same events again (a
resumed run re-reads its events file from the start) stores nothing twice; metrics are also
unique per (run, key, step).

The status is not written here: what the agent reports (`done`, `error`, result.json) is
stored as `progress.terminal` and the run's fields, and the pipeline's verdict, which also
weighs how the agent exited, moves the run once (runner/pipeline.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from device_agent import contract
from device_agent.schema import render
from orchestrator.links.base import HealthSample
from orchestrator.store import repo
from orchestrator.store.public import RunPublic

# The `phase` metric: 0 head, 1 fine-tune.
PHASE_STEP = {phase: i for i, phase in enumerate(contract.PHASES)}
EPOCH_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


@dataclass
class Ingested:
    """What one batch of events changed: for progress display and the follow loop."""

    new: list[dict[str, Any]] = field(default_factory=list)
    terminal: str | None = None  # finished | cancelled | failed, once a done/error arrived
    run: RunPublic | None = None


def _when(t: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(t), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def epoch_metrics(ev: dict[str, Any]) -> list[tuple[str, int, float | None]]:
    """One epoch event (or result.epochs item) → (key, step, value) points."""
    step = int(ev["epoch"])
    points: list[tuple[str, int, float | None]] = [
        (k, step, ev.get(k)) for k in EPOCH_METRICS if k in ev]
    if ev.get("phase") in PHASE_STEP:
        points.append(("phase", step, float(PHASE_STEP[ev["phase"]])))
    if "seconds" in ev:
        points.append(("epoch_seconds", step, ev["seconds"]))
    return points


@dataclass
class _Fold:
    """What a batch of events changes: run fields, progress, metric points, epochs seen."""

    run: RunPublic
    progress: dict[str, Any]
    out: Ingested = field(default_factory=Ingested)
    fields: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[str, int, float | None]] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)


def _on_start(f: _Fold, ev: dict[str, Any]) -> None:
    f.fields.update(agent_version=ev.get("agent_version"), interpreter=ev.get("interpreter"))
    if f.run.started is None:
        f.fields["started"] = _when(ev["t"])


def _on_stage(f: _Fold, ev: dict[str, Any]) -> None:
    f.progress.update(stage=ev["stage"], done=ev.get("done"), total=ev.get("total"))


def _on_delegate(f: _Fold, ev: dict[str, Any]) -> None:
    f.fields.update(delegate_requested=ev.get("requested"), delegate_used=ev.get("used"),
                    delegate_reason=render(contract.REASONS, ev.get("reason")),
                    delegate_info=ev.get("info") or {})


def _on_epoch(f: _Fold, ev: dict[str, Any]) -> None:
    f.metrics += epoch_metrics(ev)
    f.epochs.append(int(ev["epoch"]))
    f.progress.update(epoch=ev["epoch"], phase=ev.get("phase"), test_acc=ev.get("test_acc"))


def _on_checkpoint(f: _Fold, ev: dict[str, Any]) -> None:
    f.progress["checkpoint"] = ev["epoch"]


def _on_done(f: _Fold, ev: dict[str, Any]) -> None:
    f.out.terminal = f.progress["terminal"] = ev["status"]
    f.fields["finished"] = _when(ev["t"])
    if ev.get("accuracy") is not None:
        f.fields["accuracy"] = ev["accuracy"]


def _on_error(f: _Fold, ev: dict[str, Any]) -> None:
    f.out.terminal = f.progress["terminal"] = "failed"
    code = ev["code"]
    f.fields.update(finished=_when(ev["t"]), error=f"{code}: {render(contract.ERRORS, ev)}")


# What each event kind changes: one entry per kind of the contract.
_ON_EVENT: dict[str, Callable[[_Fold, dict[str, Any]], None]] = contract.event_table({
    "start": _on_start, "stage": _on_stage, "delegate": _on_delegate, "epoch": _on_epoch,
    "checkpoint": _on_checkpoint, "done": _on_done, "error": _on_error})


def ingest_events(
    *,
    session: Session,
    run_id: int,
    events: Iterable[dict[str, Any]],
    device_id: int | None = None,
    sample_health: Callable[[], HealthSample | None] | None = None,
) -> Ingested:
    """Store the events not stored yet; sample device health for each new epoch (once per
    call: epochs that arrive together share the sample)."""
    run = repo.get_run(session=session, run_id=run_id)
    seen = run.events_seen
    fold = _Fold(run=run, progress=dict(run.progress))
    out = fold.out
    for ev in sorted(events, key=lambda e: e["seq"]):
        if ev["seq"] <= seen:
            continue
        seen = ev["seq"]
        out.new.append(ev)
        handle = _ON_EVENT.get(ev["kind"])  # the guard admitted only the contract's kinds
        if handle is not None:
            handle(fold, ev)
    fields, progress, metrics, epochs = fold.fields, fold.progress, fold.metrics, fold.epochs
    if not out.new:
        out.run = run
        return out
    if metrics:
        repo.record_metrics(session=session, run_id=run_id, metrics=metrics)
    out.run = repo.update_run(session=session, run_id=run_id, events_seen=seen,
                              progress=progress, **fields)
    # After events_seen is stored: a crash in between loses a sample, never doubles one.
    # Epochs read together ended moments apart: one sample serves them all.
    health = sample_health() if sample_health is not None and device_id is not None \
        and epochs else None
    if health is not None:
        for epoch in epochs:
            repo.record_sample(session=session, device_id=device_id, run_id=run_id,
                               step=epoch, battery=health.battery,
                               temperature=health.temperature)
    return out


def ingest_result(
    *, session: Session, run_id: int, result: dict[str, Any], host_timing: dict[str, float]
) -> RunPublic:
    """Store an admitted result.json: accuracy, timing (+ host-side), versions, delegate (its
    status is weighed by the pipeline's verdict)."""
    run = repo.get_run(session=session, run_id=run_id)
    epochs = result.get("epochs") or []
    if epochs:
        repo.record_metrics(session=session, run_id=run_id,
                            metrics=[p for e in epochs for p in epoch_metrics(e)])
    timing = {**run.timing, **(result.get("timing") or {}), **host_timing}
    versions = result.get("versions") or {}
    fields: dict[str, Any] = {
        "result": result, "timing": timing,
        "accuracy": result.get("accuracy", run.accuracy),
        "agent_version": versions.get("agent") or run.agent_version,
        "interpreter": versions.get("interpreter") or run.interpreter,
    }
    delegate = result.get("delegate") or {}
    if delegate:
        fields.update(delegate_requested=delegate.get("requested") or run.delegate_requested,
                      delegate_used=delegate.get("used") or run.delegate_used,
                      delegate_reason=render(contract.REASONS, delegate.get("reason")),
                      delegate_info=delegate.get("info") or run.delegate_info)
    return repo.update_run(session=session, run_id=run_id, **fields)
