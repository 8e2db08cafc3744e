"""Driving a sweep: become its one driver, start a thread per phone, keep a heartbeat,
watch for `orch sweep cancel` (from any process) and stop the phones' agents when it comes,
and close the sweep when every phone is done.

A stopped driver (Ctrl-C, kill -9, a crash) leaves the queue in the store and the agents
training on the phones; `orch sweep resume ID` drives it again from there.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from orchestrator.errors import BuildError, DeviceError, RunError, RunInterrupted
from orchestrator.runner.pipeline import Builder, default_builder
from orchestrator.runner.staging import AGENT_PACKAGE, BuiltModel
from orchestrator.spec import ExperimentSpec
from orchestrator.store import repo, sweep_repo
from orchestrator.store.db import open_session
from orchestrator.store.public import DevicePublic
from orchestrator.store.status import SWEEP_ENDED, RunStatus, SweepState
from orchestrator.store.tables import utcnow
from orchestrator.sweep.agents import stop_agent
from orchestrator.sweep.display import SweepDisplay
from orchestrator.sweep.owner import driver_alive, me
from orchestrator.sweep.status import SweepStatus, sweep_status
from orchestrator.sweep.worker import PhoneWorker, SweepRuntime

HEARTBEAT_S = 2.0


@dataclass
class DriveOptions:
    builder: Builder | None = None
    agent_package: Path = AGENT_PACKAGE
    poll_s: float = 0.5
    idle_s: float = 1.0
    reconnect_s: float = 2.0
    health_poll_s: float = 5.0
    reassign_after_s: float | None = None  # default: the sweep's own
    warm_agent: bool = True  # one agent waiting per phone for its next run (standby.py)


def _model_key(spec: ExperimentSpec, variant: str) -> str:
    """What a build depends on (models/ ModelConfig's fields), as text."""
    t = spec.training
    return json.dumps([spec.model.model_dump(mode="json"), spec.head.model_dump(mode="json"),
                       t.batch_size, t.optimizer, t.momentum,
                       spec.variants[variant].finetune_from], sort_keys=True)


def _one_build_at_a_time(builder: Builder | None) -> Builder:
    """Phones that need the same models wait for one build (then hit the cache) instead of
    running TensorFlow side by side on the same config; a config that failed to build
    fails the same way on every phone, so it is not built again in this sweep."""
    if builder is None:
        builder = default_builder()
    lock = threading.Lock()
    inner = builder
    failed: dict[str, BaseException] = {}

    def build(spec: ExperimentSpec, variant: str) -> BuiltModel:
        key = _model_key(spec, variant)
        with lock:
            if key in failed:
                why = f"{type(failed[key]).__name__}: {failed[key]}".splitlines()[0]
                raise BuildError(f"These models failed to build earlier in this sweep ({why}).",
                                 hint="Fix the build (`orch model build SPEC` shows why), "
                                      "then `orch sweep resume ID --retry-failed`.")
            try:
                return inner(spec, variant)
            except Exception as e:
                failed[key] = e
                raise

    return build


def _phones(session: Session, sweep_id: int, serials: list[str]) -> list[DevicePublic]:
    """The sweep's phones from the store: those it was created with, plus any an item
    names (a phone that took released runs)."""
    ids = {i.device_id for i in sweep_repo.list_items(session=session, sweep_id=sweep_id)
           if i.device_id is not None}
    out: dict[int, DevicePublic] = {}
    for serial in serials:
        dev = repo.find_device(session=session, serial=serial)
        if dev is not None:
            out[dev.id] = dev
    for device_id in ids - set(out):
        out[device_id] = repo.get_device(session=session, device_id=device_id)
    return list(out.values())


def _claim(session: Session, sweep_id: int) -> None:
    sweep = sweep_repo.get_sweep(session=session, sweep_id=sweep_id)
    if sweep.status in SWEEP_ENDED:
        raise RunError(f"Sweep {sweep_id} is {sweep.status}; nothing to run.",
                       hint=f"See `orch sweep status {sweep_id}`; `orch sweep resume "
                            f"{sweep_id} --retry-failed` runs its failed runs again.")
    if sweep.spec.get("queue") == "workers":
        raise RunError(f"Sweep {sweep_id} is queued for workers, not for one driver.",
                       hint="Run `orch sweep worker --db …` on the hosts of its phones.")
    if driver_alive(sweep):
        raise RunError(f"Sweep {sweep_id} is being driven by {sweep.owner}.",
                       hint=f"Watch it with `orch sweep status {sweep_id} --watch`, or stop "
                            "that process first.")
    if not sweep_repo.take_ownership(session=session, sweep_id=sweep_id, owner=me(),
                                     expected=sweep.owner):
        raise RunError(f"Another process took sweep {sweep_id} just now.",
                       hint=f"See `orch sweep status {sweep_id}`.")
    sweep_repo.update_sweep(session=session, sweep_id=sweep_id, status=SweepState.RUNNING,
                            started=sweep.started or utcnow(), finished=None, error=None)


def _stop_agents(session: Session, sweep_id: int, stopped: set[int],
                 display: SweepDisplay) -> None:
    """Ask every agent of a cancelled sweep to stop (SIGTERM: it checkpoints and exits)."""
    for item in sweep_repo.open_runs(session=session, sweep_id=sweep_id):
        if item.run_id in stopped or not item.device_run_dir or item.status != RunStatus.RUNNING:
            continue
        stopped.add(item.run_id)
        try:
            stop_agent(item.phone, item.device_run_dir, session=session)
        except DeviceError as e:
            display.say(item.phone, f"run {item.run_id}: could not stop its agent ({e.message})")


def _release_crashed(session: Session, sweep_id: int, workers: list[PhoneWorker],
                     crashed: set[int], display: SweepDisplay) -> None:
    """A phone whose thread died of a bug hands its runs to phones of the same model, so
    they neither wait for it forever nor lose the runs (resume retries the rest)."""
    for w in workers:
        if w.error is not None and w.device.id not in crashed:
            crashed.add(w.device.id)
            w.rt.set_away(w.device.id, True)
            n = sweep_repo.release_items(session=session, sweep_id=sweep_id,
                                         device_id=w.device.id,
                                         note=f"{w.label} stopped by an error")
            if n:
                display.say(w.label, f"{n} runs released to phones of the same model")


def drive(*, url: str, sweep_id: int, display: SweepDisplay,
          options: DriveOptions | None = None) -> SweepStatus:
    """Run the sweep's queue to the end on its phones; returns its final status."""
    opts = options or DriveOptions()
    with open_session(url) as session:
        _claim(session, sweep_id)
        sweep = sweep_repo.get_sweep(session=session, sweep_id=sweep_id)
        spec = sweep.spec
        rt = SweepRuntime(
            sweep_id=sweep_id, url=url,
            reassign_after_s=float(opts.reassign_after_s if opts.reassign_after_s is not None
                                   else spec.get("reassign_after_s", 300)),
            max_attempts=int(spec.get("max_attempts", 2)), say=display.say,
            progress=display.progress, builder=_one_build_at_a_time(opts.builder),
            agent_package=opts.agent_package, poll_s=opts.poll_s, idle_s=opts.idle_s,
            reconnect_s=opts.reconnect_s, health_poll_s=opts.health_poll_s,
            warm_agent=opts.warm_agent)
        workers = [PhoneWorker(rt, d) for d in _phones(session, sweep_id,
                                                        spec.get("devices", []))]
        stopped: set[int] = set()
        crashed: set[int] = set()
        try:
            for w in workers:
                w.start()
            while any(w.is_alive() for w in workers):
                _release_crashed(session, sweep_id, workers, crashed, display)
                now = sweep_repo.update_sweep(session=session, sweep_id=sweep_id,
                                              heartbeat=utcnow())
                if now.status == SweepState.CANCELLED:
                    rt.cancelled.set()
                    _stop_agents(session, sweep_id, stopped, display)
                display.refresh(sweep_status(session=session, sweep_id=sweep_id))
                deadline = time.monotonic() + HEARTBEAT_S
                for w in workers:
                    w.join(max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:
            rt.stopping.set()
            sweep_repo.update_sweep(session=session, sweep_id=sweep_id,
                                    status=SweepState.INTERRUPTED, owner=None,
                                    error="the driving process was interrupted")
            raise RunInterrupted(
                f"Sweep {sweep_id} interrupted; agents already started keep training.",
                hint=f"`orch sweep resume {sweep_id}` continues it.") from None
        return _close(session, sweep_id, workers)


def _close(session: Session, sweep_id: int, workers: list[PhoneWorker]) -> SweepStatus:
    status = sweep_status(session=session, sweep_id=sweep_id)
    crashed = [w for w in workers if w.error is not None]
    if status.sweep.status == SweepState.CANCELLED:
        final, error = SweepState.CANCELLED, status.sweep.error
    elif status.done:
        final, error = SweepState.FINISHED, None
    else:
        final = SweepState.INTERRUPTED
        error = (f"{crashed[0].label}: {type(crashed[0].error).__name__}: {crashed[0].error}"
                 if crashed else "runs are left that no phone of the sweep can take")
    sweep_repo.update_sweep(session=session, sweep_id=sweep_id, status=final, owner=None,
                            finished=utcnow() if final in SWEEP_ENDED else None, error=error)
    return sweep_status(session=session, sweep_id=sweep_id)
