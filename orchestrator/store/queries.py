"""Read-only queries for lists and pages: joins and grouped counts, never one query per row.

`repo.py` holds the data functions the pipeline writes with; these read what lists need in a
constant number of statements, whatever the number of runs (the dashboard's p95 budget).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import case
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, func, select

from orchestrator.errors import NotFound
from orchestrator.store.ids import valid_id
from orchestrator.store.labels import device_labels, label_of
from orchestrator.store.lease import mark_orphans
from orchestrator.store.public import (
    CompareRow,
    DevicePublic,
    ExperimentPublic,
    RunPublic,
    SamplePublic,
)
from orchestrator.store.repo import get_experiment
from orchestrator.store.status import RunStatus
from orchestrator.store.tables import Device, DeviceSample, Experiment, Metric, Run

Series = dict[str, list[tuple[int, float | None]]]
SortKey = Literal["id", "created", "experiment", "variant", "device", "status", "accuracy",
                  "train", "total"]
SORT_KEYS: tuple[str, ...] = SortKey.__args__  # type: ignore[attr-defined]


class ExperimentSummary(BaseModel):
    id: int
    name: str
    description: str = ""
    created: datetime
    runs: int
    finished: int
    running: int
    failed: int
    devices: list[str]
    best_accuracy: float | None
    best_run_id: int | None
    last_activity: datetime | None


class RunPage(BaseModel):
    """One page of a runs list. Its runs leave `result` empty: result.json is the largest
    column and no list shows it (read one run for it)."""

    total: int
    limit: int
    offset: int
    runs: list[RunPublic]


class DeviceSummary(BaseModel):
    device: DevicePublic
    label: str
    runs: int
    running: int
    best_accuracy: float | None
    last_run: datetime | None
    latest: SamplePublic | None


class CellStats(BaseModel):
    """Spread of the finished runs of one Table 1 cell (variant × device)."""

    variant: str
    device: str
    finished: int
    accuracy_min: float | None
    accuracy_max: float | None
    accuracy_mean: float | None
    train_min: float | None
    train_max: float | None


class RunProgress(BaseModel):
    id: int
    status: str
    accuracy: float | None
    progress: dict[str, Any]
    params: dict[str, Any]
    events_seen: int


def _label() -> ColumnElement:
    """A device's plain name in SQL, to sort by (shown names come from `device_labels`)."""
    return func.coalesce(Device.alias, Device.model, Device.serial)


def _train() -> ColumnElement:
    return Run.timing["train"].as_float()  # type: ignore[index]


def _total() -> ColumnElement:
    return Run.timing["total"].as_float()  # type: ignore[index]


# ------------------------------------------------------------------ experiments


def experiments_summary(*, session: Session) -> list[ExperimentSummary]:
    """Every experiment with its run counts, devices and best accuracy (three statements)."""
    finished = func.sum(case((Run.status == RunStatus.FINISHED, 1), else_=0))
    running = func.sum(case((Run.status == RunStatus.RUNNING, 1), else_=0))
    failed = func.sum(case(
        (col(Run.status).in_((RunStatus.FAILED, RunStatus.INTERRUPTED)), 1), else_=0))
    last = func.max(func.coalesce(Run.finished, Run.started, Run.created))
    rows = session.exec(
        select(Experiment, func.count(col(Run.id)), finished, running, failed,
               func.max(Run.accuracy), last)
        .join(Run, col(Run.experiment_id) == Experiment.id, isouter=True)
        .group_by(col(Experiment.id))
        .order_by(col(Experiment.id))
    ).all()
    rank = func.row_number().over(partition_by=Run.experiment_id,
                                  order_by=(col(Run.accuracy).desc(), col(Run.id).desc()))
    ranked = (select(Run.experiment_id, Run.id.label("run_id"), rank.label("rk"))  # type: ignore[union-attr]
              .where(col(Run.accuracy).is_not(None)).subquery())
    best = dict(session.exec(select(ranked.c.experiment_id, ranked.c.run_id)
                             .where(ranked.c.rk == 1)).all())
    labels = device_labels(session=session)
    devices: dict[int, set[str]] = {}
    for exp_id, device_id in session.exec(
        select(Run.experiment_id, Run.device_id).distinct()
    ).all():
        devices.setdefault(exp_id, set()).add(label_of(labels, device_id))
    out = []
    for exp, n, fin, run, fail, acc, last_at in rows:
        out.append(ExperimentSummary(
            id=exp.id, name=exp.name, description=str((exp.spec or {}).get("description") or ""),
            created=exp.created, runs=n or 0, finished=fin or 0, running=run or 0,
            failed=fail or 0, devices=sorted(devices.get(exp.id, ())), best_accuracy=acc,
            best_run_id=best.get(exp.id), last_activity=last_at,
        ))
    return out


def get_experiment_by_id(*, session: Session, experiment_id: int) -> ExperimentPublic:
    row = session.get(Experiment, experiment_id) if valid_id(experiment_id) else None
    if row is None:
        raise NotFound(f"No experiment {experiment_id} in the store.",
                       hint="See `orch results list`.")
    return ExperimentPublic.model_validate(row)


def table1(*, session: Session, experiment: str) -> list[CompareRow]:
    """The paper's Table 1: the latest finished run per (variant, device), else the latest,
    for the CLI and the dashboard alike.

    Each variant × device cell shows its newest finished run, else its newest run; the
    choice and the counts come from the `ix_run_cell` index (two statements), so only the
    chosen rows are read and their JSON fields parsed.
    """
    exp = get_experiment(session=session, name=experiment)
    # Per cell, from the index alone: its runs, its newest run and newest finished run; the
    # chosen rows' wide columns are then read for those few ids only.
    cells = session.exec(
        select(Run.variant, Run.device_id, func.count(), func.max(Run.id),
               func.max(case((Run.status == RunStatus.FINISHED, Run.id), else_=None)),
               func.min(Run.id))
        .where(Run.experiment_id == exp.id)
        .group_by(Run.variant, Run.device_id)
    ).all()
    chosen = {fin or last: n for _v, _d, n, last, fin, _f in cells}
    firsts: dict[str, int] = {}
    for variant, _d, _n, _l, _fin, lo in cells:
        firsts[variant] = min(lo, firsts.get(variant, lo))
    picked = session.exec(
        select(Run.id, Run.variant, Run.status, Run.accuracy,
               Run.params["finetune_from"].as_string(),  # type: ignore[index]
               _train(), _total(), Run.delegate_requested, Run.delegate_used, Run.device_id)
        .where(col(Run.id).in_(list(chosen)))
    ).all() if chosen else []
    rows = [(*r, chosen[r[0]], firsts[r[1]]) for r in picked]
    labels = device_labels(session=session)
    first = {r[1]: r[-1] for r in rows}
    out = [
        CompareRow(variant=variant, device=label_of(labels, device_id), finetune_from=ff,
                   run_id=run_id,
                   runs=n, accuracy=acc, train_seconds=train, total_seconds=total,
                   delegate_requested=req, delegate_used=used, status=status)
        for run_id, variant, status, acc, ff, train, total, req, used, device_id, n, _ in rows
    ]
    return sort_compare_rows(out, exp.spec, first)


def sort_compare_rows(rows: list[CompareRow], spec: dict[str, Any] | None,
                      first: dict[str, int]) -> list[CompareRow]:
    """The spec's variants in its order, then the others (a sweep's points) in the order
    they were queued, which is the order the sweep file lists its values in; then device."""
    order = list((spec or {}).get("variants", {}))
    return sorted(rows, key=lambda c: (order.index(c.variant) if c.variant in order
                                       else len(order), first.get(c.variant, 0), c.device))


def cell_stats(*, session: Session, experiment_id: int) -> list[CellStats]:
    """Min / max / mean over the finished runs of each variant × device (one statement)."""
    rows = session.exec(
        select(Run.variant, Run.device_id, func.count(), func.min(Run.accuracy),
               func.max(Run.accuracy), func.avg(Run.accuracy), func.min(_train()),
               func.max(_train()))
        .where(Run.experiment_id == experiment_id, Run.status == RunStatus.FINISHED)
        .group_by(Run.variant, Run.device_id)
    ).all()
    labels = device_labels(session=session)
    return [CellStats(variant=v, device=label_of(labels, d), finished=n, accuracy_min=a0,
                      accuracy_max=a1, accuracy_mean=am, train_min=t0, train_max=t1)
            for v, d, n, a0, a1, am, t0, t1 in rows]


def finished_fingerprint(*, session: Session, experiment_id: int) -> tuple[Any, ...]:
    """What `cell_stats` depends on, from the `ix_run_cell` index alone: a finished run's
    numbers never change, so the same finished runs (count, ids, accuracies) mean the same
    statistics, and a cached copy can be used."""
    return tuple(session.exec(
        select(func.count(), func.sum(Run.id), func.max(Run.id), func.sum(Run.accuracy))
        .where(Run.experiment_id == experiment_id, Run.status == "finished")
    ).one())


# ------------------------------------------------------------------ runs


def _run_filters(
    *,
    experiment_id: int | None,
    statuses: Sequence[str] | None,
    variant: str | None,
    device_id: int | None,
    sweep_id: int | None,
    ids: Sequence[int] | None,
) -> list[ColumnElement]:
    where: list[ColumnElement] = []
    if experiment_id is not None:
        where.append(col(Run.experiment_id) == experiment_id)
    if statuses:
        where.append(col(Run.status).in_(list(statuses)))
    if variant:
        where.append(col(Run.variant) == variant)
    if device_id is not None:
        where.append(col(Run.device_id) == device_id)
    if sweep_id is not None:
        where.append(col(Run.sweep_id) == sweep_id)
    if ids is not None:
        where.append(col(Run.id).in_(list(ids)))
    return where


def _sort_expr(sort: str) -> ColumnElement:
    return {
        "id": col(Run.id), "created": col(Run.created), "experiment": col(Experiment.name),
        "variant": col(Run.variant), "device": _label(), "status": col(Run.status),
        "accuracy": col(Run.accuracy), "train": _train(), "total": _total(),
    }[sort]


def _public_rows(rows: Iterable[Any], labels: dict[int, str]) -> list[RunPublic]:
    out = []
    for run, exp_name in rows:
        pub = RunPublic.model_validate(run)
        pub.experiment = exp_name
        pub.device = labels.get(run.device_id) if run.device_id is not None else None
        out.append(pub)
    return out


# Every column of a run but result.json, plus the names a list shows.
_LIST_COLUMNS = [c for c in Run.__table__.columns if c.name != "result"]  # type: ignore[attr-defined]


def _list_rows(rows: Iterable[Any], labels: dict[int, str]) -> list[RunPublic]:
    out = []
    for r in rows:
        pub = RunPublic.model_validate(dict(r._mapping))
        pub.device = labels.get(pub.device_id) if pub.device_id is not None else None
        out.append(pub)
    return out


def runs_page(
    *,
    session: Session,
    experiment_id: int | None = None,
    statuses: Sequence[str] | None = None,
    variant: str | None = None,
    device_id: int | None = None,
    sweep_id: int | None = None,
    sort: str = "id",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> RunPage:
    """One page of runs with experiment and device names joined in (two statements)."""
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; one of {', '.join(SORT_KEYS)}")
    where = _run_filters(experiment_id=experiment_id, statuses=statuses, variant=variant,
                         device_id=device_id, sweep_id=sweep_id, ids=None)
    total = session.exec(select(func.count()).select_from(Run).where(*where)).one()
    key = _sort_expr(sort)
    by_id = col(Run.id).desc() if descending else col(Run.id).asc()
    # Missing values (no accuracy yet, no timing) sort last in either direction.
    order = [by_id] if sort == "id" else [
        key.is_(None), key.desc() if descending else key.asc(), by_id]
    # Sort narrow rows (ids) and read the wide columns of the page's rows only.
    page = (select(col(Run.id).label("page_id"))
            .join(Experiment, col(Run.experiment_id) == Experiment.id)
            .join(Device, col(Run.device_id) == Device.id, isouter=True)
            .where(*where).order_by(*order).limit(limit).offset(offset)).subquery()
    q = (select(*_LIST_COLUMNS, col(Experiment.name).label("experiment"))
         .join(page, col(Run.id) == page.c.page_id)
         .join(Experiment, col(Run.experiment_id) == Experiment.id)
         .join(Device, col(Run.device_id) == Device.id, isouter=True)
         .order_by(*order))
    runs = _list_rows(session.exec(q).all(), device_labels(session=session))
    return RunPage(total=total, limit=limit, offset=offset,
                   runs=mark_orphans(session=session, runs=runs))


def runs_by_ids(*, session: Session, run_ids: Sequence[int]) -> list[RunPublic]:
    """The given runs, in the given order (unknown ids are left out), in one statement."""
    run_ids = [i for i in run_ids if valid_id(i)]
    if not run_ids:
        return []
    q = (select(Run, Experiment.name)
         .join(Experiment, col(Run.experiment_id) == Experiment.id)
         .where(col(Run.id).in_(list(run_ids))))
    labels = device_labels(session=session)
    found = {r.id: r for r in _public_rows(session.exec(q).all(), labels)}
    return [found[i] for i in dict.fromkeys(run_ids) if i in found]


def run_variants(*, session: Session, experiment_id: int | None = None) -> list[str]:
    q = select(Run.variant).distinct().order_by(Run.variant)
    if experiment_id is not None:
        q = q.where(Run.experiment_id == experiment_id)
    return list(session.exec(q).all())


def run_progress(*, session: Session, run_ids: Sequence[int]) -> list[RunProgress]:
    """Status and progress of the given runs, for live updates (one small statement)."""
    if not run_ids:
        return []
    rows = session.exec(
        select(Run.id, Run.status, Run.accuracy, Run.progress, Run.params, Run.events_seen)
        .where(col(Run.id).in_(list(run_ids))).order_by(Run.id)
    ).all()
    return mark_orphans(session=session, runs=[
        RunProgress(id=i, status=s, accuracy=a, progress=p or {}, params=pa or {},
                    events_seen=e or 0)
        for i, s, a, p, pa, e in rows])


# ------------------------------------------------------------------ metrics


def metric_series_many(
    *, session: Session, run_ids: Sequence[int], keys: Sequence[str] | None = None
) -> dict[int, Series]:
    """{run: {key: [(step, value)]}} for several runs in one statement; NaN stays NaN."""
    out: dict[int, Series] = {i: {} for i in run_ids}
    if not run_ids:
        return out
    q = select(Metric.run_id, Metric.key, Metric.step, Metric.value, Metric.is_nan).where(
        col(Metric.run_id).in_(list(run_ids)))
    if keys is not None:
        q = q.where(col(Metric.key).in_(list(keys)))
    for run_id, key, step, value, is_nan in session.exec(
        q.order_by(Metric.run_id, Metric.key, Metric.step)
    ).all():
        out[run_id].setdefault(key, []).append((step, math.nan if is_nan else value))
    return out


def metric_series(*, session: Session, run_id: int) -> Series:
    """One run's {key: [(step, value)]}, as `metric_series_many` reads it."""
    return metric_series_many(session=session, run_ids=[run_id])[run_id]


# ------------------------------------------------------------------ devices


def latest_samples(*, session: Session) -> dict[int, SamplePublic]:
    """The latest health sample of every device (one statement)."""
    newest = (select(func.max(DeviceSample.id).label("id"))
              .group_by(DeviceSample.device_id).subquery())
    rows = session.exec(select(DeviceSample).join(newest, col(DeviceSample.id) == newest.c.id))
    return {r.device_id: SamplePublic.model_validate(r) for r in rows.all()}


def device_summaries(
    *, session: Session, device_ids: Sequence[int] | None = None
) -> list[DeviceSummary]:
    """Every device (or the given ones) with its run counts and latest health (three statements)."""
    q = select(Device).order_by(col(Device.last_seen).desc(), col(Device.id))
    running = func.sum(case((Run.status == RunStatus.RUNNING, 1), else_=0))
    stats_q = (select(Run.device_id, func.count(), running,
                      func.max(Run.accuracy), func.max(Run.created))
               .where(col(Run.device_id).is_not(None)).group_by(Run.device_id))
    if device_ids is not None:
        q = q.where(col(Device.id).in_(list(device_ids)))
        stats_q = stats_q.where(col(Run.device_id).in_(list(device_ids)))
    devices = [DevicePublic.model_validate(d) for d in session.exec(q).all()]
    stats = {d: (n, r, a, c) for d, n, r, a, c in session.exec(stats_q).all()}
    latest = latest_samples(session=session)
    labels = device_labels(session=session)
    out = []
    for d in devices:
        n, running, acc, last = stats.get(d.id, (0, 0, None, None))
        out.append(DeviceSummary(device=d, label=labels.get(d.id, d.label), runs=n,
                                 running=running or 0, best_accuracy=acc, last_run=last,
                                 latest=latest.get(d.id)))
    return out


def device_samples(*, session: Session, device_id: int, limit: int = 500) -> list[SamplePublic]:
    """The device's most recent health samples, oldest first."""
    q = (select(DeviceSample).where(DeviceSample.device_id == device_id)
         .order_by(col(DeviceSample.id).desc()).limit(limit))
    rows = [SamplePublic.model_validate(r) for r in session.exec(q).all()]
    return rows[::-1]

