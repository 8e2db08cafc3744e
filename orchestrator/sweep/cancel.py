"""`orch sweep cancel`: queued runs are cancelled at once; running agents are asked to stop
(SIGTERM: each checkpoints and reports `cancelled`). Works from any process: a live driver
sees the sweep's status and stops its phones too; without one, this records the end."""

from __future__ import annotations

from pydantic import BaseModel
from sqlmodel import Session

from orchestrator.errors import DeviceError, TransitionRefused
from orchestrator.runner.orphans import flag_left_running
from orchestrator.store import repo, sweep_repo
from orchestrator.store.status import SWEEP_ENDED, RunStatus, SweepState
from orchestrator.store.tables import utcnow
from orchestrator.sweep.agents import stop_agent
from orchestrator.sweep.owner import driver_alive

REASON = "the sweep was cancelled"


class CancelResult(BaseModel):
    sweep_id: int
    already: str | None = None  # the sweep had ended: its status
    queued: list[int] = []  # runs cancelled before they started
    stopped: list[int] = []  # runs whose agent was asked to stop
    unreachable: dict[int, str] = {}  # run → why its agent could not be asked
    driver: str | None = None  # the live process that will record the running ones


def cancel_sweep(*, session: Session, sweep_id: int) -> CancelResult:
    sweep = sweep_repo.get_sweep(session=session, sweep_id=sweep_id)
    out = CancelResult(sweep_id=sweep_id)
    if sweep.status in SWEEP_ENDED:
        out.already = sweep.status
        return out
    live = driver_alive(sweep)
    out.driver = sweep.owner if live else None
    sweep_repo.update_sweep(session=session, sweep_id=sweep_id, status=SweepState.CANCELLED,
                            finished=utcnow(), error="cancelled by the user")
    for item in sweep_repo.open_runs(session=session, sweep_id=sweep_id):
        queued = item.status == RunStatus.QUEUED
        if queued or not item.device_run_dir:
            # Only from the status seen: a phone that took the run just now records its end.
            if (queued or not live) and _cancel(session, item.run_id, item.status):
                out.queued.append(item.run_id)
            continue
        try:
            stop_agent(item.phone, item.device_run_dir, session=session)
            out.stopped.append(item.run_id)
        except DeviceError as e:
            out.unreachable[item.run_id] = e.message
            flag_left_running(session=session, run_id=item.run_id)
        if not live:  # nobody follows it: record the end here
            _cancel(session, item.run_id, item.status)
    if not live:
        sweep_repo.update_sweep(session=session, sweep_id=sweep_id, owner=None)
    return out


def _cancel(session: Session, run_id: int, seen: str) -> bool:
    """Cancel the run if it is still in the status seen; whether it was."""
    try:
        repo.transition_run(session=session, run_id=run_id, to=RunStatus.CANCELLED,
                            only_from=(seen,), error=REASON, finished=utcnow())
    except TransitionRefused:
        return False
    return True
