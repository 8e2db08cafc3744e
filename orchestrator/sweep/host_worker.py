"""`orch sweep worker`: a long-running process beside one host's phones that claims queued
runs of workers' sweeps (`orch sweep FILE --queue-only`) from the shared store, one thread
per phone its own adb server reaches, and runs each as a sweep's phone thread would
(health gates, retries, a lost phone awaited; worker.PhoneWorker).

It holds a lease it renews every `heartbeat_s`; each heartbeat also hands back the runs of
workers whose lease ran out (worker_repo.hand_back_expired), so a host that goes down
stops no sweep: its runs are queued again for the others. Hosts need clocks in step (NTP):
leases are compared in UTC wall-clock time, with seconds to spare.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from orchestrator.errors import DeviceError, RunError
from orchestrator.runner.pipeline import Builder
from orchestrator.runner.staging import AGENT_PACKAGE
from orchestrator.store import sweep_repo, worker_repo
from orchestrator.store.db import open_session
from orchestrator.store.public import DevicePublic
from orchestrator.store.status import RunStatus
from orchestrator.store.sweep_repo import SweepPublic
from orchestrator.sweep.agents import stop_agent
from orchestrator.sweep.display import SweepDisplay
from orchestrator.sweep.driver import _one_build_at_a_time
from orchestrator.sweep.owner import me
from orchestrator.sweep.phones import choose_phones, matches
from orchestrator.sweep.spec import DeviceSelector
from orchestrator.sweep.worker import PhoneWorker, SweepRuntime, drop_standby


@dataclass
class WorkerOptions:
    devices: list[str] | DeviceSelector | None = None  # default: every phone attached
    lease_s: float = 30.0
    heartbeat_s: float | None = None  # default: a third of the lease
    idle_s: float = 2.0  # a phone with nothing to do asks the queue again after this
    exit_when_idle: bool = False  # leave once no workers' sweep has open runs
    builder: Builder | None = None
    agent_package: Path = AGENT_PACKAGE
    poll_s: float = 0.5
    reconnect_s: float = 2.0
    health_poll_s: float = 5.0
    warm_agent: bool = True
    stop: threading.Event = field(default_factory=threading.Event)  # set: leave


class WorkerSummary(BaseModel):
    worker_id: int
    name: str
    phones: list[str]
    runs: int  # runs this worker took from the queue
    handed_back: int  # runs of dead workers it queued again
    lost_lease: bool = False


def _eligible(sweep: SweepPublic, device: DevicePublic) -> bool:
    """May this phone take the sweep's unbound runs (its selector, if any, matches)?"""
    sel = sweep.spec.get("selector")
    return sel is None or matches(DeviceSelector.model_validate(sel), device)


class HostWorker:
    def __init__(self, *, url: str, display: SweepDisplay, options: WorkerOptions) -> None:
        self.url, self.display, self.opts = url, display, options
        self.name = me()
        self.builder = _one_build_at_a_time(options.builder)
        self.runtimes: dict[int, SweepRuntime] = {}
        self.lock = threading.Lock()
        self.idle: dict[int, bool] = {}
        self.taken = 0
        self.worker_id = 0

    def say(self, phone: str, text: str) -> None:
        self.display.say(phone, text)

    def runtime(self, sweep: SweepPublic) -> SweepRuntime:
        """The shared state of one sweep's phone threads in this process."""
        with self.lock:
            rt = self.runtimes.get(sweep.id)
            if rt is None:
                o = self.opts
                rt = self.runtimes[sweep.id] = SweepRuntime(
                    sweep_id=sweep.id, url=self.url,
                    reassign_after_s=float(sweep.spec.get("reassign_after_s", 300)),
                    max_attempts=int(sweep.spec.get("max_attempts", 2)), say=self.say,
                    progress=self.display.progress, builder=self.builder,
                    agent_package=o.agent_package, poll_s=o.poll_s, idle_s=o.idle_s,
                    reconnect_s=o.reconnect_s, health_poll_s=o.health_poll_s,
                    warm_agent=o.warm_agent)
                if o.stop.is_set():
                    rt.stopping.set()
            return rt

    # ------------------------------------------------------------------ one phone

    def phone_loop(self, device: DevicePublic) -> None:
        label = device.alias or device.serial
        try:
            with open_session(self.url) as s:
                while not self.opts.stop.is_set():
                    sweeps = [sw for sw in worker_repo.pool_sweeps(session=s)
                              if _eligible(sw, device)]
                    try:
                        item = worker_repo.claim(session=s, worker_id=self.worker_id,
                                                 sweep_ids=[sw.id for sw in sweeps],
                                                 device_id=device.id, phone=device.serial,
                                                 model=device.model)
                    except OperationalError as e:  # the store is busy or away: ask again
                        s.rollback()
                        self.say(label, f"could not claim a run: {str(e).splitlines()[0]}")
                        self.opts.stop.wait(self.opts.idle_s)
                        continue
                    if item is None:
                        for sw in sweeps:
                            worker_repo.close_if_done(session=s, sweep_id=sw.id)
                        self.idle[device.id] = True
                        self.opts.stop.wait(self.opts.idle_s)
                        continue
                    self.idle[device.id] = False
                    self.taken += 1
                    sweep = next(sw for sw in sweeps if sw.id == item.sweep_id)
                    self.say(label, f"sweep {sweep.id} {sweep.name}: took run {item.run_id} "
                                    f"{item.label}")
                    PhoneWorker(self.runtime(sweep), device)._execute(s, item)
                    worker_repo.close_if_done(session=s, sweep_id=sweep.id)
        except BaseException as e:  # a bug: say so; the lease hands the runs back
            self.say(label, f"stopped by an unexpected error: {type(e).__name__}: {e}")
            traceback.print_exc()
        finally:
            self.idle[device.id] = True
            for rt in list(self.runtimes.values()):
                drop_standby(rt, device)

    # ------------------------------------------------------------------ the process

    def _watch_cancels(self, s) -> None:
        """Cancelled sweeps: stop their agents on this worker's phones, and the threads."""
        for sweep_id, rt in list(self.runtimes.items()):
            if rt.cancelled.is_set():
                continue
            if sweep_repo.get_sweep(session=s, sweep_id=sweep_id).status != "cancelled":
                continue
            rt.cancelled.set()
            for item in sweep_repo.open_runs(session=s, sweep_id=sweep_id):
                if item.worker_id == self.worker_id and item.device_run_dir \
                        and item.status == RunStatus.RUNNING:
                    with contextlib.suppress(DeviceError):
                        stop_agent(item.phone, item.device_run_dir, session=s)

    def serve(self) -> WorkerSummary:
        o = self.opts
        beat = o.heartbeat_s or o.lease_s / 3
        with open_session(self.url) as s:
            phones = choose_phones(o.devices or DeviceSelector(), session=s)
            w = worker_repo.register(session=s, name=self.name, host=socket.gethostname(),
                                     devices=[d.serial for d in phones], lease_s=o.lease_s)
            self.worker_id = w.id
            self.say("worker", f"{self.name} (worker {w.id}) serving "
                               f"{', '.join(d.serial for d in phones)}")
            threads = [threading.Thread(target=self.phone_loop, args=(d,), daemon=True,
                                        name=f"worker-{d.serial}") for d in phones]
            for d in phones:
                self.idle[d.id] = False
            handed = 0
            lost = False
            try:
                for t in threads:
                    t.start()
                while not o.stop.is_set():
                    try:
                        if not worker_repo.heartbeat(session=s, worker_id=w.id,
                                                     lease_s=o.lease_s):
                            lost = True
                            self.say("worker", "lease lost: the other workers took this one "
                                               "for dead and queued its runs again; leaving")
                            break
                        for name, n in worker_repo.hand_back_expired(session=s):
                            handed += n
                            self.say("worker", f"{name} lost its lease: {n} runs queued "
                                               "again")
                        self._watch_cancels(s)
                    except OperationalError as e:  # busy or away: the next beat tries again
                        s.rollback()
                        self.say("worker", f"store: {str(e).splitlines()[0]}")
                    if o.exit_when_idle and all(self.idle.values()) and \
                            not worker_repo.pool_sweeps(session=s):
                        break
                    o.stop.wait(beat)
            finally:
                o.stop.set()
                for rt in self.runtimes.values():
                    rt.stopping.set()
                if not lost:
                    worker_repo.stop(session=s, worker_id=w.id)
            for t in threads:
                t.join(5)
        if lost:
            raise RunError(f"Worker {self.name} lost its lease; its runs were queued again.",
                           hint="Give it a longer --lease, or check the store's reachability "
                                "and this host's clock.")
        return WorkerSummary(worker_id=w.id, name=self.name,
                             phones=[d.serial for d in phones], runs=self.taken,
                             handed_back=handed)


def serve(*, url: str, display: SweepDisplay, options: WorkerOptions) -> WorkerSummary:
    """Serve the queue until `options.stop` is set (or, with exit_when_idle, it is empty)."""
    return HostWorker(url=url, display=display, options=options).serve()
