"""Phone leases: one row per phone that a host process is using, so one run at a time trains
on it, whichever host, command or sweep started it.

Taking a lease is one atomic statement in plain SQL (SQLite and PostgreSQL alike): an INSERT
(the primary key refuses a second holder), else an UPDATE guarded by the token seen, taken only
when that holder's lease expired or its process is known to be dead. Times are unix seconds,
so comparisons need no database-specific date arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from orchestrator.store.public import _Public


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
