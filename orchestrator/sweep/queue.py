"""Creating a sweep: plan its runs, choose its phones, and queue every point × phone as a
Run row (status `queued`, `sweep_id` set) before anything runs, so the queue outlives the
host process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from orchestrator.runner.job import run_params
from orchestrator.spec import spec_hash
from orchestrator.store import repo, sweep_repo
from orchestrator.store.status import RunStatus, SweepState
from orchestrator.store.sweep_repo import SweepPublic
from orchestrator.sweep.phones import choose_phones
from orchestrator.sweep.plan import PlannedRun, Planner
from orchestrator.sweep.spec import DeviceSelector, read_sweep


def plan_sweep(path: Path, *, cli_sets: list[str]) -> tuple[Planner, list[PlannedRun]]:
    """The sweep file checked and expanded; nothing is stored or asked of any phone."""
    sweep, text = read_sweep(path)
    planner = Planner(sweep, sweep_text=text, sweep_path=Path(path), cli_sets=cli_sets)
    return planner, planner.plan()


class SweepPreview(BaseModel):
    """What `orch sweep FILE --dry-run` shows: the points and phones, nothing queued."""

    name: str
    experiment: str
    points: list[str]  # run labels (repetitions once)
    repetitions: int
    phones: list[str]  # names to reach them by
    runs: int


def preview_sweep(*, session: Session, path: Path, cli_sets: list[str],
                  devices: list[str] | DeviceSelector | None = None) -> SweepPreview:
    planner, planned = plan_sweep(path, cli_sets=cli_sets)
    sweep = planner.sweep
    phones = choose_phones(devices if devices is not None else sweep.devices, session=session)
    labels = list(dict.fromkeys(p.label for p in planned))
    return SweepPreview(name=sweep.name or Path(path).stem, experiment=planner.base.name,
                        points=labels, repetitions=sweep.repetitions,
                        phones=[d.serial for d in phones], runs=len(planned) * len(phones))


def create_sweep(*, session: Session, path: Path, cli_sets: list[str],
                 devices: list[str] | DeviceSelector | None = None,
                 reassign_after_s: float | None = None) -> SweepPublic:
    """Plan, choose phones (`devices` overrides the file's), and queue every run."""
    planner, planned = plan_sweep(path, cli_sets=cli_sets)
    sweep = planner.sweep
    phones = choose_phones(devices if devices is not None else sweep.devices, session=session)
    base = planner.base
    exp = repo.upsert_experiment(session=session, name=base.name,
                                 spec=base.model_dump(mode="json"), spec_hash=spec_hash(base))
    chosen = devices if devices is not None else sweep.devices
    record: dict[str, Any] = {
        "file": str(Path(path).resolve()),
        "base": str(planner.base_path),
        "sweep": sweep.model_dump(mode="json", by_alias=True),
        "set": list(cli_sets),
        "devices_asked": chosen if isinstance(chosen, list) else chosen.model_dump(),
        "devices": [d.serial for d in phones],
        "reassign_after_s": sweep.reassign_after_s if reassign_after_s is None
        else reassign_after_s,
        "max_attempts": sweep.max_attempts,
        "points": len({p.label for p in planned}),
    }
    row = sweep_repo.create_sweep(session=session, name=sweep.name or Path(path).stem,
                                  experiment_id=exp.id, spec=record)
    for p in planned:
        for dev in phones:
            params = {**run_params(p.spec, p.variant), "sweep_point": p.point,
                      "repetition": p.repetition}
            run = repo.create_run(session=session, experiment_id=exp.id, variant=p.label,
                                  device_id=dev.id, params=params, status=RunStatus.QUEUED,
                                  sweep_id=row.id, delegate_requested=p.spec.delegate)
            sweep_repo.add_item(session=session, sweep_id=row.id, run_id=run.id,
                                label=p.label, variant=p.variant, point=p.point,
                                repetition=p.repetition,
                                spec=p.spec.model_dump(mode="json"), device_id=dev.id,
                                phone=dev.serial, model=dev.model)
    sweep_repo.commit_items(session=session)
    return row


def requeue_failed(*, session: Session, sweep_id: int) -> int:
    """Give every failed run of a sweep a fresh queued Run (the failed ones stay as they
    were) and its attempts back; how many. The sweep can then be driven again."""
    n = 0
    for item in sweep_repo.list_items(session=session, sweep_id=sweep_id):
        if item.status != RunStatus.FAILED:
            continue
        old = repo.get_run(session=session, run_id=item.run_id)
        new = repo.create_run(session=session, experiment_id=old.experiment_id,
                              variant=old.variant, device_id=item.device_id,
                              params=old.params, status=RunStatus.QUEUED, sweep_id=sweep_id,
                              delegate_requested=old.delegate_requested)
        sweep_repo.switch_run(session=session, item_id=item.id, run_id=new.id)
        sweep_repo.update_item(session=session, item_id=item.id, attempts=0, note=None)
        n += 1
    if n:
        sweep_repo.update_sweep(session=session, sweep_id=sweep_id, status=SweepState.QUEUED,
                                finished=None)
    return n


def queue_for_workers(*, session: Session, path: Path, cli_sets: list[str],
                      devices: list[str] | DeviceSelector | None = None,
                      reassign_after_s: float | None = None) -> SweepPublic:
    """Queue a sweep for `orch sweep worker`s, asking no phone (they may be on other hosts).
    Named phones get every point each, bound to them by serial; with a selector (the
    default: any phone) each point is queued once, for the first matching phone free."""
    from orchestrator.store.worker_repo import POOL

    planner, planned = plan_sweep(path, cli_sets=cli_sets)
    sweep = planner.sweep
    base = planner.base
    chosen = devices if devices is not None else sweep.devices
    named = chosen if isinstance(chosen, list) else []
    phones = [repo.upsert_device(session=session, serial=n) for n in named] or [None]
    exp = repo.upsert_experiment(session=session, name=base.name,
                                 spec=base.model_dump(mode="json"), spec_hash=spec_hash(base))
    record: dict[str, Any] = {
        "file": str(Path(path).resolve()), "base": str(planner.base_path),
        "sweep": sweep.model_dump(mode="json", by_alias=True), "set": list(cli_sets),
        "devices_asked": chosen if isinstance(chosen, list) else chosen.model_dump(),
        "devices": named, "queue": POOL,
        "selector": None if named else chosen.model_dump(),  # type: ignore[union-attr]
        "reassign_after_s": sweep.reassign_after_s if reassign_after_s is None
        else reassign_after_s,
        "max_attempts": sweep.max_attempts, "points": len({p.label for p in planned}),
    }
    row = sweep_repo.create_sweep(session=session, name=sweep.name or Path(path).stem,
                                  experiment_id=exp.id, spec=record)
    for p in planned:
        for dev in phones:
            params = {**run_params(p.spec, p.variant), "sweep_point": p.point,
                      "repetition": p.repetition}
            run = repo.create_run(session=session, experiment_id=exp.id, variant=p.label,
                                  device_id=dev.id if dev else None, params=params,
                                  status=RunStatus.QUEUED, sweep_id=row.id,
                                  delegate_requested=p.spec.delegate)
            sweep_repo.add_item(session=session, sweep_id=row.id, run_id=run.id,
                                label=p.label, variant=p.variant, point=p.point,
                                repetition=p.repetition, spec=p.spec.model_dump(mode="json"),
                                device_id=dev.id if dev else None,
                                phone=dev.serial if dev else "", model=None)
    sweep_repo.commit_items(session=session)
    return row
