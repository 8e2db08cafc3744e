"""Data functions of sweep workers: register, heartbeat, claim queued runs, and hand back
the runs of a worker whose lease ran out. Keyword-only arguments; public models out.

A claim is one short write transaction that locks the item it takes: `SELECT … FOR UPDATE
SKIP LOCKED` on PostgreSQL (workers on many hosts skip each other's rows instead of waiting),
`BEGIN IMMEDIATE` on SQLite (one writer at a time; the busy timeout queues the others).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import or_, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from orchestrator.errors import TransitionRefused
from orchestrator.store import repo, sweep_repo
from orchestrator.store.status import SWEEP_OPEN, RunStatus, SweepState
from orchestrator.store.sweep_repo import OPEN, SweepItemPublic
from orchestrator.store.sweep_tables import Sweep, SweepItem
from orchestrator.store.tables import LEFT_RUNNING, Run, utcnow
from orchestrator.store.worker_tables import Worker

POOL = "workers"  # Sweep.spec["queue"] of a sweep run by workers, not by one driver


class WorkerPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    host: str
    devices: list[str] = []
    started: datetime
    heartbeat: datetime
    lease_until: datetime
    state: str


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def begin_write(session: Session, *, patience_s: float = 120.0) -> None:
    """Start a write transaction that serializes with other writers: SQLite takes its
    write lock now (BEGIN IMMEDIATE), so a claim's read and write see the same state. Its
    busy timeout is no queue (many waiters can starve one): a refused lock is asked for
    again, after a random pause, for up to `patience_s`."""
    session.commit()
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return
    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            session.rollback()
            time.sleep(random.uniform(0.01, 0.1))
            conn = session.connection()


def register(*, session: Session, name: str, host: str, devices: list[str],
             lease_s: float) -> WorkerPublic:
    now = utcnow()
    row = Worker(name=name, host=host, devices=devices, started=now, heartbeat=now,
                 lease_until=now + timedelta(seconds=lease_s))
    session.add(row)
    session.commit()
    session.refresh(row)
    return WorkerPublic.model_validate(row)


def heartbeat(*, session: Session, worker_id: int, lease_s: float) -> bool:
    """Renew the lease; False when the others already took this worker for dead."""
    now = utcnow()
    res = session.exec(update(Worker).where(Worker.id == worker_id, Worker.state == "alive")
                       .values(heartbeat=now, lease_until=now + timedelta(seconds=lease_s)))
    session.commit()
    return res.rowcount == 1


def stop(*, session: Session, worker_id: int) -> None:
    """Say goodbye: the lease ends now, so the next live worker hands its runs back."""
    session.exec(update(Worker).where(Worker.id == worker_id, Worker.state == "alive")
                 .values(lease_until=utcnow()))
    session.commit()


def list_workers(*, session: Session) -> list[WorkerPublic]:
    rows = session.exec(select(Worker).order_by(col(Worker.id))
                        .execution_options(populate_existing=True)).all()
    return [WorkerPublic.model_validate(r) for r in rows]


def pool_sweeps(*, session: Session) -> list[sweep_repo.SweepPublic]:
    """Open sweeps queued for workers (`orch sweep FILE --queue-only`)."""
    rows = session.exec(select(Sweep).where(col(Sweep.status).in_(sorted(SWEEP_OPEN)))
                        .order_by(col(Sweep.id)).execution_options(populate_existing=True))
    return [sweep_repo.SweepPublic.model_validate(r) for r in rows.all()
            if (r.spec or {}).get("queue") == POOL]


def claim(*, session: Session, worker_id: int, sweep_ids: Sequence[int], device_id: int,
          phone: str, model: str | None) -> SweepItemPublic | None:
    """Take the oldest queued run of these sweeps that this phone may do (its own, or one no
    phone holds, of any model or of its model), for this worker; None if there is none."""
    if not sweep_ids:
        return None
    begin_write(session)
    q = (select(SweepItem.id, SweepItem.run_id, SweepItem.sweep_id)
         .join(Run, col(Run.id) == SweepItem.run_id)
         .where(col(SweepItem.sweep_id).in_(sweep_ids), col(SweepItem.worker_id).is_(None),
                Run.status == RunStatus.QUEUED,
                or_(SweepItem.device_id == device_id,
                    (col(SweepItem.device_id).is_(None)
                     & or_(col(SweepItem.model).is_(None), SweepItem.model == model))))
         .order_by(col(SweepItem.id)).limit(1)
         .with_for_update(skip_locked=True, of=SweepItem))
    row = session.exec(q).first()
    if row is None:
        session.rollback()
        return None
    item_id, run_id, sweep_id = row
    try:  # PostgreSQL locks the item, not the run: a cancel may have ended it meanwhile
        repo.transition_run(session=session, run_id=run_id, to=RunStatus.RUNNING,
                            only_from=(RunStatus.QUEUED,), commit=False, device_id=device_id)
    except TransitionRefused:
        session.rollback()
        return None
    session.exec(update(SweepItem).where(SweepItem.id == item_id)
                 .values(worker_id=worker_id, device_id=device_id, phone=phone))
    session.exec(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == SweepState.QUEUED)
                 .values(status=SweepState.RUNNING, started=utcnow()))
    session.commit()
    item, run = session.exec(
        select(SweepItem, Run).join(Run, col(Run.id) == SweepItem.run_id)
        .where(SweepItem.id == item_id).execution_options(populate_existing=True)).one()
    return sweep_repo.public_item(item, run)


def hand_back_expired(*, session: Session, now: datetime | None = None
                      ) -> list[tuple[str, int]]:
    """Take every worker whose lease ran out for dead, and hand its open runs back to the
    queue; [(worker name, runs handed back)]. Safe with many workers doing it at once: the
    worker rows, then each item, are locked while they change.

    A run that never started on its phone is queued again as it is; one that started gets
    a new queued Run row and the old one is cancelled, saying why and where it went (its
    agent, maybe still training on a phone nobody drives, is flagged to be stopped when
    that phone is next used)."""
    now = now or utcnow()
    begin_write(session)
    alive = session.exec(select(Worker).where(Worker.state == "alive")
                         .with_for_update(skip_locked=True)).all()
    for w in alive:
        if _aware(w.lease_until) < now:
            w.state = "expired"
            session.add(w)
    session.commit()
    expired = {w.id: w.name for w in session.exec(
        select(Worker).where(Worker.state == "expired")).all()}
    if not expired:
        return []
    held = session.exec(
        select(SweepItem.id, SweepItem.worker_id).join(Run, col(Run.id) == SweepItem.run_id)
        .where(col(SweepItem.worker_id).in_(list(expired)), col(Run.status).in_(OPEN))).all()
    counts: dict[str, int] = {}
    for item_id, worker_id in held:
        name = expired[worker_id]
        counts[name] = counts.get(name, 0) + _hand_back(
            session, item_id, worker_id, f"worker {name} lost its lease")
    return [(k, v) for k, v in counts.items() if v]


def _hand_back(session: Session, item_id: int, worker_id: int, why: str) -> int:
    """One item of a dead worker back to the queue, in one locked transaction; 1 if it was
    still open and held by that worker, else 0 (someone else did it, or it was done)."""
    begin_write(session)
    item = session.exec(select(SweepItem).where(SweepItem.id == item_id,
                                                SweepItem.worker_id == worker_id)
                        .with_for_update().execution_options(populate_existing=True)).first()
    run = item and session.exec(select(Run).where(Run.id == item.run_id).with_for_update()
                                .execution_options(populate_existing=True)).first()
    if item is None or run is None or run.status not in OPEN:
        session.rollback()  # done already (it keeps its worker), or handed back by another
        return 0
    item.worker_id = None
    pool = _is_pool(session, item.sweep_id)
    device_id = None if pool else run.device_id
    if run.events_seen == 0 and not run.device_run_dir:
        repo.transition_run(session=session, run_id=run.id or 0, to=RunStatus.QUEUED,
                            commit=False, error=None, device_id=device_id)
    else:
        new = Run(experiment_id=run.experiment_id, variant=run.variant,
                  device_id=device_id, params=_item_params(run.params),
                  status=RunStatus.QUEUED, sweep_id=run.sweep_id,
                  delegate_requested=run.delegate_requested)
        session.add(new)
        session.flush()
        progress = ({**(run.progress or {}), LEFT_RUNNING: True} if run.device_run_dir
                    else run.progress)
        repo.transition_run(session=session, run_id=run.id or 0, to=RunStatus.CANCELLED,
                            commit=False, finished=utcnow(), progress=progress,
                            error=f"{why}; queued again as run {new.id}")
        item.run_id = new.id or 0
        item.run_ids = [*item.run_ids, new.id or 0]
    item.note = why
    if pool:
        item.device_id = None
    session.add(item)
    session.commit()
    return 1


def _item_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k in ("sweep_point", "repetition")}


def _is_pool(session: Session, sweep_id: int) -> bool:
    sweep = session.get(Sweep, sweep_id)
    return sweep is not None and (sweep.spec or {}).get("queue") == POOL


def close_if_done(*, session: Session, sweep_id: int) -> bool:
    """Mark a workers' sweep finished once no run of it is open; True if it is done."""
    if sweep_repo.open_runs(session=session, sweep_id=sweep_id):
        return False
    session.exec(update(Sweep).where(Sweep.id == sweep_id,
                                     col(Sweep.status).in_(sorted(SWEEP_OPEN)))
                 .values(status=SweepState.FINISHED, finished=utcnow()))
    session.commit()
    return True
