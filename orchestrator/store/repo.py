"""Data functions of the results store. Keyword-only arguments; they return public models."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from orchestrator.errors import NotFound, TransitionRefused
from orchestrator.store.ids import valid_id
from orchestrator.store.labels import device_labels
from orchestrator.store.public import (
    BoundPublic,
    DeviceBoundTotal,
    DevicePublic,
    ExperimentPublic,
    MetricPublic,
    RunPublic,
    SamplePublic,
    TransferPublic,
)
from orchestrator.store.status import DERIVED, RunStatus, sources
from orchestrator.store.tables import (
    Device,
    DeviceSample,
    EgressBound,
    Experiment,
    Metric,
    Run,
    Transfer,
    utcnow,
)

RUN_STATUSES = tuple(s.value for s in RunStatus)
DERIVED_STATUSES = DERIVED

# ------------------------------------------------------------------ devices


def _upsert(session: Session, table: type[Any], key: str, value: str,
            change: dict[str, Any]) -> Any:
    """The row of `table` whose unique `key` is `value`, created if missing, with `change`
    applied. Two processes creating the same row at once (two `orch run` of one spec on a new
    store) collide on the unique key: the loser reads the winner's row and updates it."""
    for attempt in range(2):
        row = session.exec(select(table).where(getattr(table, key) == value)).first()
        if row is None:
            row = table(**{key: value})
        for field, new in change.items():
            setattr(row, field, new)
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            if attempt:
                raise
            continue
        session.refresh(row)
        return row
    raise AssertionError("unreachable")


def upsert_device(*, session: Session, serial: str, **facts: Any) -> DevicePublic:
    """Create or refresh a device by serial; only the given facts change."""
    change = {k: v for k, v in facts.items() if v is not None}
    row = _upsert(session, Device, "serial", serial, {**change, "last_seen": utcnow()})
    return DevicePublic.model_validate(row)


def set_alias(*, session: Session, serial: str, alias: str) -> DevicePublic:
    for other in session.exec(select(Device).where(Device.alias == alias)).all():
        if other.serial != serial:
            other.alias = None
            session.add(other)
    return upsert_device(session=session, serial=serial, alias=alias)


def list_devices(*, session: Session) -> list[DevicePublic]:
    rows = session.exec(select(Device).order_by(Device.id)).all()
    return [DevicePublic.model_validate(r) for r in rows]


def get_device(*, session: Session, device_id: int) -> DevicePublic:
    row = session.get(Device, device_id) if valid_id(device_id) else None
    if row is None:
        raise NotFound(f"No device {device_id} in the store.", hint="See `orch devices list`.")
    return DevicePublic.model_validate(row)


def find_device(*, session: Session, serial: str) -> DevicePublic | None:
    row = session.exec(select(Device).where(Device.serial == serial)).first()
    return DevicePublic.model_validate(row) if row else None


def alias_map(*, session: Session) -> dict[str, str]:
    """alias → serial for every aliased device."""
    rows = session.exec(select(Device).where(col(Device.alias).is_not(None))).all()
    return {r.alias: r.serial for r in rows if r.alias}


# ------------------------------------------------------------------ experiments


def upsert_experiment(
    *, session: Session, name: str, spec: dict[str, Any], spec_hash: str
) -> ExperimentPublic:
    row = _upsert(session, Experiment, "name", name, {"spec": spec, "spec_hash": spec_hash})
    return ExperimentPublic.model_validate(row)


def list_experiments(*, session: Session) -> list[ExperimentPublic]:
    rows = session.exec(select(Experiment).order_by(Experiment.id)).all()
    return [ExperimentPublic.model_validate(r) for r in rows]


def get_experiment(*, session: Session, name: str) -> ExperimentPublic:
    row = session.exec(select(Experiment).where(Experiment.name == name)).first()
    if row is None:
        known = ", ".join(e.name for e in list_experiments(session=session)) or "none yet"
        raise NotFound(f"No experiment named {name!r} in the store (known: {known}).",
                       hint="Run one with `orch run SPEC --device DEV`.")
    return ExperimentPublic.model_validate(row)


# ------------------------------------------------------------------ runs


def _public_run(session: Session, row: Run, labels: dict[int, str] | None = None) -> RunPublic:
    run = RunPublic.model_validate(row)
    exp = session.get(Experiment, row.experiment_id)
    run.experiment = exp.name if exp else None
    if row.device_id is not None:
        if labels is None:
            labels = device_labels(session=session)
        run.device = labels.get(row.device_id)
    return run


def create_run(
    *,
    session: Session,
    experiment_id: int,
    variant: str,
    device_id: int | None = None,
    params: dict[str, Any] | None = None,
    status: str = RunStatus.QUEUED,
    sweep_id: int | None = None,
    **fields: Any,
) -> RunPublic:
    """A new run in `status` (a new row: no transition to check; later changes go through
    `transition_run`)."""
    row = Run(experiment_id=experiment_id, variant=variant, device_id=device_id,
              params=params or {}, status=RunStatus(status).value, sweep_id=sweep_id,
              **fields)
    session.add(row)
    session.commit()
    session.refresh(row)
    return _public_run(session, row)


def update_run(*, session: Session, run_id: int, **fields: Any) -> RunPublic:
    """Change a run's fields other than its status (`transition_run` changes that)."""
    if "status" in fields:
        raise TypeError("a run's status changes through transition_run, never update_run")
    row = session.get(Run, run_id) if valid_id(run_id) else None
    if row is None:
        raise NotFound(f"No run {run_id} in the store.", hint="See `orch results list`.")
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    session.commit()
    session.refresh(row)
    return _public_run(session, row)


def transition_run(*, session: Session, run_id: int, to: str,
                   only_from: Iterable[str] | None = None, commit: bool = True,
                   **fields: Any) -> RunPublic:
    """Move a run to status `to` (and set `fields`) if the transition table allows it from
    the status it has now (and that status is one of `only_from`, when given); else raise
    TransitionRefused. The check and the write are one UPDATE … WHERE status IN (…), so of
    two writers moving the same run, the second sees the first's status. `commit=False`:
    part of the caller's transaction (the caller commits)."""
    target = RunStatus(to)
    allowed = sources(target)
    if only_from is not None:
        allowed &= {RunStatus(s) for s in only_from}
    res = session.exec(update(Run)
                       .where(col(Run.id) == run_id,
                              col(Run.status).in_(sorted(s.value for s in allowed)))
                       .values(status=target.value, **fields)
                       .execution_options(synchronize_session=False))
    if commit:
        session.commit()
    row = session.get(Run, run_id, populate_existing=True) if valid_id(run_id) else None
    if row is None:
        raise NotFound(f"No run {run_id} in the store.", hint="See `orch results list`.")
    if res.rowcount != 1:
        raise TransitionRefused(run_id=run_id, current=row.status, target=target)
    return _public_run(session, row)


def get_run(*, session: Session, run_id: int) -> RunPublic:
    row = session.get(Run, run_id) if valid_id(run_id) else None
    if row is None:
        raise NotFound(f"No run {run_id} in the store.", hint="See `orch results list`.")
    return _public_run(session, row)


def flagged_runs(*, session: Session, device_id: int, statuses: Iterable[str],
                 flag: str) -> list[RunPublic]:
    """A device's runs in one of `statuses` whose progress sets `flag`."""
    q = select(Run).where(Run.device_id == device_id, col(Run.status).in_(list(statuses)),
                          Run.progress[flag].as_boolean())  # type: ignore[index]
    rows = session.exec(q.order_by(Run.id)).all()
    labels = device_labels(session=session) if rows else {}
    return [_public_run(session, r, labels) for r in rows]


def runs_with_agent(*, session: Session, device_id: int, statuses: Iterable[str],
                    limit: int) -> list[RunPublic]:
    """A device's newest runs in one of `statuses` that have a run folder on the phone."""
    q = (select(Run).where(Run.device_id == device_id, col(Run.status).in_(list(statuses)),
                           col(Run.device_run_dir).is_not(None))
         .order_by(col(Run.id).desc()).limit(limit))
    rows = session.exec(q).all()
    labels = device_labels(session=session) if rows else {}
    return [_public_run(session, r, labels) for r in rows]


def list_runs(
    *,
    session: Session,
    experiment: str | None = None,
    status: str | None = None,
    device_id: int | None = None,
    sweep_id: int | None = None,
    limit: int | None = None,
    variant: str | None = None,
) -> list[RunPublic]:
    q = select(Run).order_by(col(Run.id).desc())
    if variant is not None:
        q = q.where(Run.variant == variant)
    if experiment is not None:
        exp = get_experiment(session=session, name=experiment)
        q = q.where(Run.experiment_id == exp.id)
    if status is not None:
        q = q.where(Run.status == status)
    if device_id is not None:
        q = q.where(Run.device_id == device_id)
    if sweep_id is not None:
        q = q.where(Run.sweep_id == sweep_id)
    if limit is not None:
        q = q.limit(limit)
    rows = session.exec(q).all()
    labels = device_labels(session=session) if any(r.device_id for r in rows) else {}
    return [_public_run(session, r, labels) for r in rows]


# ------------------------------------------------------------------ metrics


def record_metrics(
    *,
    session: Session,
    run_id: int,
    metrics: Iterable[tuple[str, int, float | None]],
    time: datetime | None = None,
) -> int:
    """Append (key, step, value) points; a point already stored is skipped. Returns new count."""
    existing = {
        (k, s)
        for k, s in session.exec(select(Metric.key, Metric.step).where(Metric.run_id == run_id))
    }
    added = 0
    for key, step, value in metrics:
        if (key, step) in existing:
            continue
        is_nan = value is None or (isinstance(value, float) and not math.isfinite(value))
        session.add(Metric(run_id=run_id, key=key, step=step,
                           value=None if is_nan else float(value), is_nan=is_nan,
                           time=time or utcnow()))
        existing.add((key, step))
        added += 1
    session.commit()
    return added


def run_metrics(*, session: Session, run_id: int, key: str | None = None) -> list[MetricPublic]:
    q = select(Metric).where(Metric.run_id == run_id)
    if key is not None:
        q = q.where(Metric.key == key)
    rows = session.exec(q.order_by(Metric.key, Metric.step)).all()
    out = []
    for r in rows:
        m = MetricPublic.model_validate(r)
        if r.is_nan:
            m.value = float("nan")
        out.append(m)
    return out


# ------------------------------------------------------------------ device samples, transfers


def record_sample(
    *,
    session: Session,
    device_id: int,
    run_id: int | None = None,
    step: int | None = None,
    battery: float | None = None,
    temperature: float | None = None,
) -> None:
    session.add(DeviceSample(device_id=device_id, run_id=run_id, step=step,
                             battery=battery, temperature=temperature))
    session.commit()


def run_samples(*, session: Session, run_id: int) -> list[SamplePublic]:
    q = select(DeviceSample).where(DeviceSample.run_id == run_id).order_by(DeviceSample.id)
    return [SamplePublic.model_validate(r) for r in session.exec(q).all()]


def record_transfer(
    *,
    session: Session,
    direction: str,
    kind: str,
    device_path: str,
    nbytes: int = 0,
    sha256: str | None = None,
    run_id: int | None = None,
    device_id: int | None = None,
    launcher: str | None = None,
    reason: str | None = None,
) -> TransferPublic:
    row = Transfer(direction=direction, kind=kind, device_path=device_path, bytes=nbytes,
                   sha256=sha256, run_id=run_id, device_id=device_id, launcher=launcher,
                   reason=reason)
    session.add(row)
    session.commit()
    session.refresh(row)
    return TransferPublic.model_validate(row)


def record_transfers(*, session: Session, rows: list[dict[str, Any]]) -> None:
    """Several `record_transfer` rows (same keyword names) in one commit."""
    for r in rows:
        session.add(Transfer(**{("bytes" if k == "nbytes" else k): v for k, v in r.items()}))
    session.commit()


def record_bound(*, session: Session, run_id: int, device_id: int | None, bits: float,
                 nbytes: int, numbers: int, choices: int) -> BoundPublic:
    """Store (or replace) a run's information bound."""
    row = session.get(EgressBound, run_id) or EgressBound(run_id=run_id)
    row.device_id, row.bits, row.bytes = device_id, bits, nbytes
    row.numbers, row.choices = numbers, choices
    session.add(row)
    session.commit()
    session.refresh(row)
    return BoundPublic.model_validate(row)


def run_bound(*, session: Session, run_id: int) -> BoundPublic | None:
    row = session.get(EgressBound, run_id)
    return None if row is None else BoundPublic.model_validate(row)


def device_bound(*, session: Session, device_id: int | None) -> DeviceBoundTotal:
    """The bounds of every run of a device, summed: the most that could have left it."""
    q = select(func.count(), func.coalesce(func.sum(EgressBound.bytes), 0)).where(
        EgressBound.device_id == device_id)
    runs, total = session.exec(q).one()
    return DeviceBoundTotal(device_id=device_id, runs=int(runs), bytes=int(total))


def run_transfers(*, session: Session, run_id: int) -> list[TransferPublic]:
    q = select(Transfer).where(Transfer.run_id == run_id).order_by(Transfer.id)
    return [TransferPublic.model_validate(r) for r in session.exec(q).all()]
