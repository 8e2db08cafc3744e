"""A sweep's state from the store: per phone, how many runs are done / running / queued /
failed, and what each phone is doing now."""

from __future__ import annotations

from pydantic import BaseModel
from sqlmodel import Session

from orchestrator.store import repo, sweep_repo
from orchestrator.store.status import OPEN, RunStatus, SweepState
from orchestrator.store.sweep_repo import SweepItemPublic, SweepPublic
from orchestrator.sweep.owner import driver_alive, me

COUNTED = tuple(s.value for s in RunStatus)


class PhoneStatus(BaseModel):
    device_id: int | None  # None: runs released by a phone that went away, not taken yet
    phone: str
    serial: str | None = None
    counts: dict[str, int]
    current: str | None = None  # the run it is on: `run 12 method2(conv_pw_7) · epoch 1/2`


class SweepStatus(BaseModel):
    sweep: SweepPublic
    experiment: str
    driver: str  # running (a live process drives it) | stalled | idle | workers
    counts: dict[str, int]
    phones: list[PhoneStatus]
    items: list[SweepItemPublic]

    @property
    def done(self) -> bool:
        return not any(self.counts[k] for k in ("running", "queued", "interrupted"))


def _current(item: SweepItemPublic) -> str:
    p = item.progress
    where = ""
    if p.get("epoch") is not None:
        where = f" · epoch {p['epoch']}" + (f" ({p['phase']})" if p.get("phase") else "")
    elif p.get("stage"):
        where = f" · {p['stage']}"
    return f"run {item.run_id} {item.label}{where}"


def sweep_status(*, session: Session, sweep_id: int) -> SweepStatus:
    sweep = sweep_repo.get_sweep(session=session, sweep_id=sweep_id)
    items = sweep_repo.list_items(session=session, sweep_id=sweep_id)
    names = sweep_repo.device_names(session=session,
                                    ids=sorted({i.device_id for i in items if i.device_id}))
    serials = {d: repo.get_device(session=session, device_id=d).serial for d in names}
    phones: dict[int | None, PhoneStatus] = {}
    for item in items:
        row = phones.get(item.device_id)
        if row is None:
            unheld = ("for any worker's phone" if sweep.spec.get("queue") == "workers"
                      else f"released ({item.model or '?'})")
            label = names.get(item.device_id or 0, unheld)
            row = phones[item.device_id] = PhoneStatus(
                device_id=item.device_id, phone=label, serial=serials.get(item.device_id or 0),
                counts=dict.fromkeys(COUNTED, 0))
        row.counts[item.status] = row.counts.get(item.status, 0) + 1
        if item.status == RunStatus.RUNNING and row.current is None:
            row.current = _current(item)
    totals = dict.fromkeys(COUNTED, 0)
    for item in items:
        totals[item.status] = totals.get(item.status, 0) + 1
    open_ = any(totals[k] for k in OPEN)
    if sweep.spec.get("queue") == "workers":
        driver = "workers"  # any number of `orch sweep worker`s, or none right now
    elif sweep.status == SweepState.RUNNING and (sweep.owner == me() or driver_alive(sweep)):
        driver = "running"
    elif sweep.status == SweepState.RUNNING and open_:
        driver = "stalled"
    else:
        driver = "idle"
    exp = next((e.name for e in repo.list_experiments(session=session)
                if e.id == sweep.experiment_id), "?")
    return SweepStatus(sweep=sweep, experiment=exp, driver=driver, counts=totals,
                       phones=list(phones.values()), items=items)
