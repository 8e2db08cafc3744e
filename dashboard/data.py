"""What each page shows, read from the store in a fixed number of statements.

The JSON API returns these models as they are; the HTML pages render them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from dashboard import views
from orchestrator.audit import AuditVerdict, audit_verdict
from orchestrator.store import queries, repo
from orchestrator.store.ids import valid_id
from orchestrator.store.lease import mark_orphans
from orchestrator.store.public import (
    CompareRow,
    DevicePublic,
    ExperimentPublic,
    RunPublic,
    SamplePublic,
    TransferPublic,
)
from orchestrator.store.queries import CellStats, DeviceSummary, Series

MAX_COMPARE = 12
# Cell statistics per (store, experiment), kept with the fingerprint of the finished runs
# they were computed from (queries.finished_fingerprint): reused while it is unchanged.
_STATS: dict[tuple[str, int], tuple[tuple[Any, ...], list[CellStats]]] = {}
_STATS_MAX = 64


class ExperimentDetail(BaseModel):
    experiment: ExperimentPublic
    table: list[CompareRow]
    stats: list[CellStats]


class RunDetail(BaseModel):
    run: RunPublic
    device: DevicePublic | None
    metrics: Series
    samples: list[SamplePublic]
    transfers: list[TransferPublic]
    audit: AuditVerdict


class RunLive(BaseModel):
    """What a run page redraws while the run is going."""

    id: int
    status: str
    events_seen: int
    progress: dict[str, Any] | None
    charts: dict[str, Any]


class LiveRow(BaseModel):
    """A run's status and progress bar ({label, value, max}), for lists that follow runs."""

    id: int
    status: str
    accuracy: float | None
    events_seen: int
    bar: dict[str, Any] | None


def live_rows(session: Session, run_ids: list[int]) -> list[LiveRow]:
    return [LiveRow(id=p.id, status=p.status, accuracy=p.accuracy, events_seen=p.events_seen,
                    bar=views.progress_view(p))
            for p in queries.run_progress(session=session,
                                          run_ids=[i for i in run_ids if valid_id(i)])]


class CompareResult(BaseModel):
    runs: list[RunPublic]
    metrics: dict[int, Series]


class DeviceDetail(BaseModel):
    summary: DeviceSummary
    samples: list[SamplePublic]


def experiment_detail(session: Session, experiment_id: int) -> ExperimentDetail:
    exp = queries.get_experiment_by_id(session=session, experiment_id=experiment_id)
    return ExperimentDetail(
        experiment=exp,
        table=queries.table1(session=session, experiment=exp.name),
        stats=cell_stats(session, experiment_id),
    )


def cell_stats(session: Session, experiment_id: int) -> list[CellStats]:
    """`queries.cell_stats`, computed again only when the experiment's finished runs changed
    (it reads every finished run; the fingerprint reads an index)."""
    key = (str(session.get_bind().engine.url), experiment_id)
    fingerprint = queries.finished_fingerprint(session=session, experiment_id=experiment_id)
    hit = _STATS.get(key)
    if hit is not None and hit[0] == fingerprint:
        return hit[1]
    stats = queries.cell_stats(session=session, experiment_id=experiment_id)
    if len(_STATS) >= _STATS_MAX:
        _STATS.pop(next(iter(_STATS)))
    _STATS[key] = (fingerprint, stats)
    return stats


def run_detail(session: Session, run_id: int) -> RunDetail:
    (run,) = mark_orphans(session=session, runs=[repo.get_run(session=session, run_id=run_id)])
    device = (repo.get_device(session=session, device_id=run.device_id)
              if run.device_id is not None else None)
    transfers = repo.run_transfers(session=session, run_id=run_id)
    metrics = queries.metric_series(session=session, run_id=run_id)
    return RunDetail(run=run, device=device, metrics=metrics,
                     samples=repo.run_samples(session=session, run_id=run_id),
                     transfers=transfers,
                     audit=audit_verdict(transfers, repo.run_bound(session=session,
                                                                   run_id=run_id)))


def run_charts(run: RunPublic, metrics: Series,
               samples: list[SamplePublic]) -> dict[str, dict[str, Any]]:
    """Every chart of a run page, by name."""
    live = run.status not in views.TERMINAL
    charts = views.epoch_charts(metrics, run.result or {},
                                views.planned_epochs(run) if live else None)
    timing = views.timing_view(run.timing or {})
    charts["timing"] = views.timing_chart(timing)
    boundary = views.phase_boundary(metrics, run.result or {})
    charts["per_epoch"] = views.per_epoch_chart(timing, boundary)
    charts.update(views.health_charts(samples))
    return charts


def run_live(session: Session, run_id: int) -> RunLive:
    run = repo.get_run(session=session, run_id=run_id)
    metrics = queries.metric_series(session=session, run_id=run_id)
    samples = repo.run_samples(session=session, run_id=run_id)
    return RunLive(id=run.id, status=run.status, events_seen=run.events_seen,
                   progress=views.progress_view(run),
                   charts=run_charts(run, metrics, samples))


def compare(session: Session, run_ids: list[int]) -> CompareResult:
    runs = queries.runs_by_ids(session=session, run_ids=run_ids[:MAX_COMPARE])
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "phase")
    series = queries.metric_series_many(session=session, run_ids=[r.id for r in runs],
                                        keys=keys)
    return CompareResult(runs=runs, metrics=series)


def device_detail(session: Session, device_id: int) -> DeviceDetail:
    found = (queries.device_summaries(session=session, device_ids=[device_id])
             if valid_id(device_id) else [])
    if not found:
        repo.get_device(session=session, device_id=device_id)  # raises NotFound
    return DeviceDetail(summary=found[0],
                        samples=queries.device_samples(session=session, device_id=device_id))

