"""Agents the store gave up on while their phone was out of reach, and agents no host
follows any more (their host was stopped).

A sweep that moves a run off a phone that went away (or a cancel that cannot reach it)
ends the run in the store, but its agent may still be training on that phone, using the CPU
a later run's timing is measured on. Such runs are flagged, and the next run started on the
phone first stops what is still alive there.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session, col, select

from orchestrator.links.base import DeviceLink
from orchestrator.store import repo
from orchestrator.store.lease import live_run_ids
from orchestrator.store.status import ENDED, OPEN
from orchestrator.store.tables import LEFT_RUNNING, Run

DETACHED_CHECKED = 10  # newest open runs of a phone whose agent is looked for


def flag_left_running(*, session: Session, run_id: int) -> None:
    run = repo.get_run(session=session, run_id=run_id)
    if run.device_run_dir:
        repo.update_run(session=session, run_id=run_id,
                        progress={**run.progress, LEFT_RUNNING: True})


def stop_left_running(*, link: DeviceLink, session: Session, device_id: int | None,
                      say: Callable[[str], None], dry_run: bool = False) -> list[int]:
    """Stop the flagged agents still alive on this phone; the runs whose agent was stopped
    (`dry_run`: would be, and nothing changes)."""
    if device_id is None:
        return []
    flagged = session.exec(
        select(Run.id, Run.status, Run.error, Run.device_run_dir, Run.progress)
        .where(Run.device_id == device_id, col(Run.status).in_(sorted(ENDED)),
               Run.progress[LEFT_RUNNING].as_boolean())  # type: ignore[index]
    ).all()
    stopped = []
    for run_id, status, error, run_dir, progress in flagged:
        if run_dir and link.agent_alive(run_dir):
            if not dry_run:
                link.stop_agent(run_dir)
            stopped.append(run_id)
            say(f"{'would stop' if dry_run else 'stopped'} the agent of run {run_id} "
                f"({status}: {error or 'ended'}), still running on the phone")
        if dry_run:
            continue
        repo.update_run(session=session, run_id=run_id,
                        progress={k: v for k, v in (progress or {}).items() if k != LEFT_RUNNING})
    return stopped


def detached_agents(*, link: DeviceLink, session: Session,
                    device_id: int | None) -> list[tuple[int, str]]:
    """(run id, variant) of this phone's open runs whose agent still trains while no live
    host follows it (no lease names the run): the phone is busy with them."""
    if device_id is None:
        return []
    rows = session.exec(
        select(Run.id, Run.variant, Run.device_run_dir)
        .where(Run.device_id == device_id, col(Run.status).in_(sorted(OPEN)),
               col(Run.device_run_dir).is_not(None))
        .order_by(col(Run.id).desc()).limit(DETACHED_CHECKED)).all()
    followed = live_run_ids(session=session) if rows else set()
    return [(run_id, variant) for run_id, variant, run_dir in rows
            if run_id not in followed and link.agent_alive(run_dir)]
