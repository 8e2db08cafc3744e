"""Phone leases: one row per phone that a host process is using, so one run at a time trains
on it, whichever host, command or sweep started it.

Taking a lease is one atomic statement in plain SQL (SQLite and PostgreSQL alike): an INSERT
(the primary key refuses a second holder), else an UPDATE guarded by the token seen, taken only
when that holder's lease expired or its process is known to be dead. Times are unix seconds,
so comparisons need no database-specific date arithmetic.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from orchestrator.store.public import _Public
from orchestrator.store.status import DERIVED, RunStatus

ORPHANED = DERIVED[0]  # shown, never stored: a `running` run that no live host follows


class PhoneLease(SQLModel, table=True):
    __tablename__ = "phone_lease"

    device_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    token: str  # the holder's secret: only it renews or releases the lease
    holder: str  # HOST:PID of the process holding the phone
    purpose: str = "run"  # run | sweep | clean | doctor
    run_id: int | None = None  # the run training on the phone, once there is one
    label: str = ""  # what the holder does, for whoever waits (a variant, a command)
    acquired: float = 0.0  # unix seconds
    expires: float = 0.0  # unix seconds: renewed by the holder's heartbeat


class LeasePublic(_Public):
    device_id: int
    holder: str
    purpose: str
    run_id: int | None = None
    label: str = ""
    acquired: float
    expires: float


# Plain SQL statements, not ORM objects: another process changes these rows at any time, so
# nothing is cached in the session.
_TABLE = PhoneLease.__table__  # type: ignore[attr-defined]


def _read(session: Session, device_id: int) -> dict | None:
    row = session.execute(select(_TABLE).where(_TABLE.c.device_id == device_id)).mappings()
    found = row.first()
    session.commit()  # end the read transaction: the next read sees other writers
    return dict(found) if found is not None else None


def current(*, session: Session, device_id: int) -> LeasePublic | None:
    row = _read(session, device_id)
    return None if row is None else LeasePublic.model_validate(row)


def try_acquire(*, session: Session, device_id: int, token: str, holder: str, purpose: str,
                run_id: int | None, label: str, now: float, ttl_s: float,
                holder_dead: Callable[[str], bool] = lambda _h: False) -> LeasePublic | None:
    """Take the phone's lease; None when taken, else the lease that holds it. A lease held
    by this token, an expired one, or one whose holder is known dead (`holder_dead(HOST:PID)`)
    is taken over, guarded by the token read, so two takers cannot both win."""
    fields = dict(token=token, holder=holder, purpose=purpose, run_id=run_id, label=label,
                  acquired=now, expires=now + ttl_s)
    for _ in range(3):  # the row may vanish between the INSERT and the read
        try:
            session.execute(insert(_TABLE).values(device_id=device_id, **fields))
            session.commit()
            return None
        except IntegrityError:
            session.rollback()
        row = _read(session, device_id)
        if row is None:
            continue
        held = LeasePublic.model_validate(row)
        if row["token"] != token and held.expires >= now and not holder_dead(held.holder):
            return held
        res = session.execute(update(PhoneLease).where(
            PhoneLease.device_id == device_id, PhoneLease.token == row["token"]).values(**fields))
        session.commit()
        if res.rowcount == 1:  # type: ignore[attr-defined]
            return None
    return current(session=session, device_id=device_id)


def renew(*, session: Session, device_id: int, token: str, now: float, ttl_s: float,
          run_id: int | None = None) -> bool:
    """Push the expiry on (and record the run, once known); False: the lease is lost."""
    values: dict = {"expires": now + ttl_s}
    if run_id is not None:
        values["run_id"] = run_id
    res = session.execute(update(PhoneLease).where(
        PhoneLease.device_id == device_id, PhoneLease.token == token).values(**values))
    session.commit()
    return res.rowcount == 1  # type: ignore[attr-defined]


def release(*, session: Session, device_id: int, token: str) -> None:
    session.execute(delete(PhoneLease).where(PhoneLease.device_id == device_id,
                                             PhoneLease.token == token))
    session.commit()


def all_leases(*, session: Session) -> list[LeasePublic]:
    rows = session.execute(select(_TABLE)).mappings().all()
    session.commit()
    return [LeasePublic.model_validate(dict(r)) for r in rows]


# ------------------------------------------------------------------ who is alive


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc/self").exists()  # no /proc (macOS): cannot tell, count it alive
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")  # a zombie is dead


def holder_dead(holder: str) -> bool:
    """Is the holder a process of this host that no longer runs? (Others: by expiry.)"""
    host, _, pid = holder.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def is_live(lease: LeasePublic, now: float | None = None) -> bool:
    return lease.expires >= (time.time() if now is None else now) and \
        not holder_dead(lease.holder)


def live_run_ids(*, session: Session) -> set[int]:
    """Runs a live host is following right now (their phone's lease names them)."""
    now = time.time()
    return {x.run_id for x in all_leases(session=session)
            if x.run_id is not None and is_live(x, now)}


def lapsed_run_ids(*, session: Session) -> set[int]:
    """Runs whose host stopped without letting the phone go: their lease expired (or its
    process died) and no one took the phone since."""
    now = time.time()
    return {x.run_id for x in all_leases(session=session)
            if x.run_id is not None and not is_live(x, now)}


def orphan_hint(run_id: int) -> str:
    return (f"no host follows it any more (its host stopped); `orch run --resume {run_id}` "
            "follows it to the end")


R = TypeVar("R")


def mark_orphans(*, session: Session, runs: Sequence[R]) -> list[R]:
    """The runs as shown: a `running` one whose lease lapsed is `orphaned`, with the resume
    command as its error (the stored row is left as it is; the next host to take the phone
    marks it interrupted)."""
    if not any(getattr(r, "status", None) == RunStatus.RUNNING for r in runs):
        return list(runs)
    lapsed = lapsed_run_ids(session=session)
    out = []
    for r in runs:
        rid = r.id
        if r.status == RunStatus.RUNNING and rid in lapsed:
            fields = {"status": ORPHANED}
            if hasattr(r, "error"):
                fields["error"] = orphan_hint(rid)
            r = r.model_copy(update=fields)  # type: ignore[attr-defined]
        out.append(r)
    return out
