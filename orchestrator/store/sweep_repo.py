"""Data functions of sweeps and their queue. Keyword-only arguments; public models out.

Claims are conditional UPDATEs, so two workers (threads, or processes on other hosts sharing
the database) never take the same item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from orchestrator.errors import NotFound, TransitionRefused
from orchestrator.store import repo, status
from orchestrator.store.ids import valid_id
from orchestrator.store.labels import device_labels
from orchestrator.store.sweep_tables import Sweep, SweepItem
from orchestrator.store.tables import Run, utcnow

OPEN = tuple(sorted(status.OPEN))  # run statuses of an item still to do


class SweepPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    experiment_id: int
    spec: dict[str, Any] = {}
    status: str
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    owner: str | None = None
    heartbeat: datetime | None = None
    error: str | None = None


class SweepItemPublic(BaseModel):
    """A queue item with the state of its current run."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sweep_id: int
    run_id: int
    run_ids: list[int] = []
    label: str
    variant: str
    point: dict[str, Any] = {}
    repetition: int = 0
    spec: dict[str, Any] = {}
    device_id: int | None = None
    phone: str
    model: str | None = None
    attempts: int = 0
    health_wait: float = 0.0
    note: str | None = None
    worker_id: int | None = None
    # From the run:
    status: str = "queued"
    error: str | None = None
    accuracy: float | None = None
    progress: dict[str, Any] = {}
    run_device_id: int | None = None
    device_run_dir: str | None = None
    events_seen: int = 0


# ------------------------------------------------------------------ sweeps


def create_sweep(*, session: Session, name: str, experiment_id: int,
                 spec: dict[str, Any]) -> SweepPublic:
    row = Sweep(name=name, experiment_id=experiment_id, spec=spec)
    session.add(row)
    session.commit()
    session.refresh(row)
    return SweepPublic.model_validate(row)


def get_sweep(*, session: Session, sweep_id: int) -> SweepPublic:
    row = session.get(Sweep, sweep_id) if valid_id(sweep_id) else None
    if row is None:
        raise NotFound(f"No sweep {sweep_id} in the store.", hint="See `orch sweep list`.")
    session.refresh(row)  # another thread or process may have changed it
    return SweepPublic.model_validate(row)


def list_sweeps(*, session: Session, limit: int | None = None) -> list[SweepPublic]:
    q = select(Sweep).order_by(col(Sweep.id).desc())
    if limit is not None:
        q = q.limit(limit)
    return [SweepPublic.model_validate(r) for r in session.exec(q).all()]


def update_sweep(*, session: Session, sweep_id: int, **fields: Any) -> SweepPublic:
    row = session.get(Sweep, sweep_id) if valid_id(sweep_id) else None
    if row is None:
        raise NotFound(f"No sweep {sweep_id} in the store.", hint="See `orch sweep list`.")
    if fields.get("status", status.SweepState.QUEUED) not in set(status.SweepState):
        raise ValueError(f"unknown sweep status {fields['status']!r}")
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    session.commit()
    session.refresh(row)
    return SweepPublic.model_validate(row)


def take_ownership(*, session: Session, sweep_id: int, owner: str,
                   expected: str | None) -> bool:
    """Become the sweep's driver if its owner is still `expected` (compare-and-set)."""
    cond = (col(Sweep.owner).is_(None) if expected is None else Sweep.owner == expected)
    res = session.exec(update(Sweep).where(Sweep.id == sweep_id, cond)
                       .values(owner=owner, heartbeat=utcnow()))
    session.commit()
    return res.rowcount == 1


# ------------------------------------------------------------------ items


def add_item(*, session: Session, sweep_id: int, run_id: int, label: str, variant: str,
             point: dict[str, Any], repetition: int, spec: dict[str, Any], device_id: int | None,
             phone: str, model: str | None) -> None:
    """Queue one point × phone (committed by `commit_items`, so a sweep appears whole)."""
    session.add(SweepItem(sweep_id=sweep_id, run_id=run_id, run_ids=[run_id], label=label,
                          variant=variant, point=point, repetition=repetition, spec=spec,
                          device_id=device_id, phone=phone, model=model))


def commit_items(*, session: Session) -> None:
    session.commit()


def public_item(item: SweepItem, run: Run | None) -> SweepItemPublic:
    pub = SweepItemPublic.model_validate(item)
    if run is not None:
        pub.status, pub.error, pub.accuracy = run.status, run.error, run.accuracy
        pub.progress = dict(run.progress or {})
        pub.run_device_id, pub.device_run_dir = run.device_id, run.device_run_dir
        pub.events_seen = run.events_seen
    return pub


def get_item(*, session: Session, item_id: int) -> SweepItemPublic:
    item = session.get(SweepItem, item_id) if valid_id(item_id) else None
    if item is None:
        raise NotFound(f"No sweep item {item_id} in the store.")
    session.refresh(item)
    run = session.get(Run, item.run_id)
    if run is not None:
        session.refresh(run)
    return public_item(item, run)


def list_items(*, session: Session, sweep_id: int) -> list[SweepItemPublic]:
    rows = session.exec(
        select(SweepItem, Run).join(Run, col(SweepItem.run_id) == Run.id)
        .where(SweepItem.sweep_id == sweep_id).order_by(SweepItem.id)
        .execution_options(populate_existing=True)).all()
    return [public_item(item, run) for item, run in rows]


def update_item(*, session: Session, item_id: int, **fields: Any) -> SweepItemPublic:
    item = session.get(SweepItem, item_id) if valid_id(item_id) else None
    if item is None:
        raise NotFound(f"No sweep item {item_id} in the store.")
    for key, value in fields.items():
        setattr(item, key, value)
    session.add(item)
    session.commit()
    return get_item(session=session, item_id=item_id)


def switch_run(*, session: Session, item_id: int, run_id: int) -> SweepItemPublic:
    """Point the item at a new Run (a retry, or a move to another phone)."""
    item = session.get(SweepItem, item_id) if valid_id(item_id) else None
    if item is None:
        raise NotFound(f"No sweep item {item_id} in the store.")
    item.run_id = run_id
    item.run_ids = [*item.run_ids, run_id]
    session.add(item)
    session.commit()
    return get_item(session=session, item_id=item_id)


def _open_items(session: Session, sweep_id: int):
    return (select(SweepItem, Run).join(Run, col(SweepItem.run_id) == Run.id)
            .where(SweepItem.sweep_id == sweep_id, col(Run.status).in_(OPEN))
            .order_by(SweepItem.id).execution_options(populate_existing=True))


def claim_next(*, session: Session, sweep_id: int, device_id: int, phone: str,
               model: str | None) -> SweepItemPublic | None:
    """The next item for this phone, claimed: first its own runs a stopped host left
    running or interrupted (to resume), then its own queued ones, then items released by a
    phone of the same model. The claimed item's run is `running`. One worker per phone:
    its own runs are only ever claimed by it."""
    rows = session.exec(_open_items(session, sweep_id)).all()
    mine = [(i, r) for i, r in rows if i.device_id == device_id]
    stale = [(i, r) for i, r in mine if r.status != status.RunStatus.QUEUED]
    queued = [(i, r) for i, r in mine if r.status == status.RunStatus.QUEUED]
    released = [(i, r) for i, r in rows
                if i.device_id is None and model is not None and i.model == model]
    for item, run in stale:
        return public_item(item, run)
    for item, run in queued:
        try:
            repo.transition_run(session=session, run_id=run.id or 0,
                                to=status.RunStatus.RUNNING,
                                only_from=(status.RunStatus.QUEUED,))
        except TransitionRefused:  # another process moved it first
            continue
        return get_item(session=session, item_id=item.id or 0)
    for item, _run in released:
        res = session.exec(update(SweepItem)
                           .where(SweepItem.id == item.id, col(SweepItem.device_id).is_(None))
                           .values(device_id=device_id, phone=phone))
        session.commit()
        if res.rowcount == 1:
            return get_item(session=session, item_id=item.id or 0)
    return None


def may_need(*, session: Session, sweep_id: int, device_id: int, model: str | None) -> bool:
    """Could this phone still get work: open items of its own, released ones of its model,
    or open ones of an equivalent phone (which may be released to it later)?"""
    for item, _run in session.exec(_open_items(session, sweep_id)).all():
        if item.device_id == device_id:
            return True
        if model is not None and item.model == model:
            return True
    return False


def release_items(*, session: Session, sweep_id: int, device_id: int, note: str) -> int:
    """Hand this phone's open items to any phone of the same model; how many."""
    n = 0
    for item, _run in session.exec(_open_items(session, sweep_id)).all():
        if item.device_id == device_id:
            item.device_id = None
            item.worker_id = None
            item.note = note
            session.add(item)
            n += 1
    session.commit()
    return n


def open_runs(*, session: Session, sweep_id: int) -> list[SweepItemPublic]:
    return [public_item(i, r) for i, r in session.exec(_open_items(session, sweep_id)).all()]


def last_run_end(*, session: Session, device_id: int) -> datetime | None:
    """When a run last ended on this phone (any sweep or single run)."""
    return session.exec(select(func.max(Run.finished)).where(Run.device_id == device_id)).one()


def device_names(*, session: Session, ids: list[int]) -> dict[int, str]:
    """device id → its display name (see `labels.device_labels`)."""
    labels = device_labels(session=session)
    return {i: labels[i] for i in ids if i in labels}
