"""One thread per phone: take the phone's next queued run, pass the health gates, run it on
the single-run path (`run_queued`, or `run_experiment(resume_run_id=…)` for a run a stopped
host or a lost link left behind), and handle what goes wrong.

- The phone goes away: wait for it and resume the run from the agent's checkpoint; after
  `reassign_after_s`, if a phone of the same model is in the sweep, release the phone's
  runs to it (a moved run starts afresh there, in a new Run row).
- The run fails: try again (a new Run row; an interrupted agent resumes from its
  checkpoint) until `max_attempts`, then leave it failed with its reason and go on. An
  error that is not an expected failure (a bug) would fail every attempt the same way: the
  run is left failed with it at once.
Each thread has its own database session; what the threads share is changed under the
runtime's lock.
"""

from __future__ import annotations

import contextlib
import enum
import posixpath
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from orchestrator.devices.resolve import resolve_device
from orchestrator.errors import (
    DeviceError,
    OrchError,
    RunError,
    RunInterrupted,
    TransitionRefused,
)
from orchestrator.links.base import DeviceLink, HealthSample
from orchestrator.runner.follow import Progress
from orchestrator.runner.orphans import flag_left_running
from orchestrator.runner.phone_lease import hold_phone
from orchestrator.runner.pipeline import Builder, Standby, run_experiment, run_queued
from orchestrator.runner.staging import AGENT_PACKAGE
from orchestrator.spec import ExperimentSpec
from orchestrator.store import repo, sweep_repo
from orchestrator.store.db import open_session
from orchestrator.store.public import DevicePublic, RunPublic
from orchestrator.store.status import OPEN, RunStatus, SweepState
from orchestrator.store.sweep_repo import SweepItemPublic
from orchestrator.store.tables import utcnow
from orchestrator.sweep.agents import close_link, open_phone_link, stop_agent, stop_leftovers
from orchestrator.sweep.health import unmet, wait_until_ready

SayFn = Callable[[str, str], None]  # (phone label, text)
ProgressFactory = Callable[[str, str], Callable[[Progress], None]]  # (phone, run label)
# Failures another attempt may not meet: orch's expected ones, a busy or lost store, the
# host's I/O. Anything else is a bug.
RETRIED = (OrchError, OperationalError, OSError)


class Outcome(enum.Enum):
    """How a sweep item's turn on this phone ended."""

    FINISHED = "finished"  # the run finished
    GAVE_UP = "gave up"  # failed `max_attempts` times, or by a bug: left failed
    CANCELLED = "cancelled"  # the sweep was cancelled
    HELD_BACK = "held back"  # a health gate failed the run
    REQUEUED = "requeued"  # the host is stopping: the run waits in the queue for the next one
    LEFT = "left"  # the phone went away (its runs released to another), or the host stops
    ENDED_ELSEWHERE = "ended elsewhere"  # another process ended the run first


@dataclass
class SweepRuntime:
    """What every phone thread of one driven sweep shares."""

    sweep_id: int
    url: str
    reassign_after_s: float
    max_attempts: int
    say: SayFn
    progress: ProgressFactory
    builder: Builder | None = None
    agent_package: Path = AGENT_PACKAGE
    poll_s: float = 0.5  # following an agent
    idle_s: float = 1.0  # a phone with nothing to do looks again after this
    reconnect_s: float = 2.0  # a phone that went away is looked for this often
    health_poll_s: float = 5.0
    warm_agent: bool = True  # keep one agent waiting per phone for its next run
    standby_s: float = 600.0  # how long a waiting agent waits before it leaves by itself
    standbys: dict[int, Standby] = field(default_factory=dict)  # device id → waiting agent
    cancelled: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    away: dict[int, bool] = field(default_factory=dict)  # device id → gone right now
    models: dict[int, str | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def halted(self) -> bool:
        return self.cancelled.is_set() or self.stopping.is_set()

    def set_away(self, device_id: int, away: bool) -> None:
        with self.lock:
            self.away[device_id] = away

    def add_phone(self, device: DevicePublic) -> None:
        with self.lock:
            self.models[device.id] = device.model

    def has_equivalent(self, device_id: int) -> bool:
        """Is another phone of the same model here and reachable?"""
        with self.lock:
            model = self.models.get(device_id)
            return model is not None and any(
                m == model and d != device_id and not self.away.get(d, False)
                for d, m in self.models.items())


def _label(device: DevicePublic) -> str:
    name = device.alias or device.model or device.serial
    return name if name == device.serial else f"{name} {device.serial}"


class PhoneWorker(threading.Thread):
    def __init__(self, rt: SweepRuntime, device: DevicePublic) -> None:
        super().__init__(name=f"sweep-{rt.sweep_id}-{device.serial}", daemon=True)
        self.rt = rt
        self.device = device
        self.label = _label(device)
        self.error: BaseException | None = None
        rt.add_phone(device)

    def say(self, text: str) -> None:
        self.rt.say(self.label, text)

    def run(self) -> None:
        try:
            with open_session(self.rt.url) as session:
                self._loop(session)
        except BaseException as e:  # a bug: report it; the sweep stays resumable
            self.error = e
            self.say(f"stopped by an unexpected error: {type(e).__name__}: {e}")
            traceback.print_exc()
        finally:
            drop_standby(self.rt, self.device)

    # ------------------------------------------------------------------ the queue

    def _loop(self, s: Session) -> None:
        rt = self.rt
        while not rt.halted():
            item = sweep_repo.claim_next(session=s, sweep_id=rt.sweep_id,
                                         device_id=self.device.id, phone=self.device.serial,
                                         model=self.device.model)
            if item is None:
                if not sweep_repo.may_need(session=s, sweep_id=rt.sweep_id,
                                           device_id=self.device.id, model=self.device.model):
                    return
                rt.stopping.wait(rt.idle_s)
                continue
            if sweep_repo.get_sweep(session=s, sweep_id=rt.sweep_id).status == SweepState.CANCELLED:
                rt.cancelled.set()
            if rt.cancelled.is_set():
                self._cancel_run(s, item.run_id)
                return
            self._execute(s, item)

    def _cancel_run(self, s: Session, run_id: int) -> Outcome:
        """Record the end of a run the cancel could not reach through its agent."""
        run = repo.get_run(session=s, run_id=run_id)
        if run.device_run_dir and run.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
            try:
                stop_agent(self.device.serial, run.device_run_dir, session=s)
            except DeviceError:  # the phone is away: its next run stops the agent
                flag_left_running(session=s, run_id=run.id)
        with contextlib.suppress(TransitionRefused):  # it had ended
            repo.transition_run(session=s, run_id=run.id, to=RunStatus.CANCELLED,
                                only_from=OPEN, error="the sweep was cancelled",
                                finished=utcnow())
        return Outcome.CANCELLED

    def _execute(self, s: Session, item: SweepItemPublic) -> Outcome:
        """Work on the item until it ends here (see Outcome)."""
        try:
            return self._work_on(s, item)
        except TransitionRefused as e:  # e.g. a cancel from another process, just now
            self.say(f"run {e.run_id}: {e.message} Going on.")
            return Outcome.ENDED_ELSEWHERE

    def _work_on(self, s: Session, item: SweepItemPublic) -> Outcome:
        run = repo.get_run(session=s, run_id=item.run_id)
        if run.device_id not in (None, self.device.id):
            run = self._move_here(s, item, run)
        spec = ExperimentSpec.model_validate(item.spec)
        while not self.rt.halted():
            try:
                ended = self._attempt(s, item, run, spec)
            except (RunInterrupted, DeviceError) as e:
                run = self._current(s, item)  # an attempt may have moved to a new row
                if not self._await_return(s, run, e):
                    return self._cancel_run(s, run.id) if self.rt.cancelled.is_set() \
                        else Outcome.LEFT
                run = self._resumable(s, run)
                continue
            except RETRIED as e:  # one failed attempt
                s.rollback()  # a failed store write may have left the session unusable
                ended = self._failed_by(s, self._current(s, item), e)
            except Exception as e:  # a bug: every attempt would meet it
                traceback.print_exc()
                s.rollback()
                return self._give_up(s, item, self._failed_by(s, self._current(s, item), e),
                                     attempts=sweep_repo.get_item(
                                         session=s, item_id=item.id).attempts + 1,
                                     why="not tried again: an unexpected error")
            if isinstance(ended, Outcome):
                return ended
            after = self._after(s, item, ended)
            if isinstance(after, Outcome):
                return after
            run = after
        return Outcome.LEFT

    def _current(self, s: Session, item: SweepItemPublic) -> RunPublic:
        return repo.get_run(session=s,
                            run_id=sweep_repo.get_item(session=s, item_id=item.id).run_id)

    def _attempt(self, s: Session, item: SweepItemPublic, run: RunPublic,
                 spec: ExperimentSpec) -> RunPublic | Outcome:
        """One try at the run on this phone: resume what the device holds, else start it
        once the health gates pass. The run as it ended, or why it did not start."""
        # The phone's lease covers the health gates too: no other run starts meanwhile.
        with hold_phone(session=s, device=self.device, purpose="sweep", label=run.variant,
                        run_id=run.id, say=self.say, should_stop=self.rt.halted):
            return self._attempt_held(s, item, run, spec)

    def _attempt_held(self, s: Session, item: SweepItemPublic, run: RunPublic,
                      spec: ExperimentSpec) -> RunPublic | Outcome:
        link = open_phone_link(self.device.serial, session=s)
        progress = self.rt.progress(self.label, run.variant)
        try:
            if run.device_run_dir and run.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
                self.say(f"run {run.id} {run.variant}: resuming")
                try:
                    (done,) = run_experiment(spec=None, variants=[], link=link, session=s,
                                             device=self.device, resume_run_id=run.id,
                                             on_progress=progress, builder=self.rt.builder,
                                             agent_package=self.rt.agent_package,
                                             poll_s=self.rt.poll_s)
                    return done
                except RunInterrupted:
                    raise
                except RunError as e:  # nothing on the phone to resume from
                    self.say(f"run {run.id}: {e.message} Starting it again.")
                    run = self._restart(s, item, run, reason=e.message)
            held = self._gate(s, item, run, link, spec)
            if held is not None:
                return held
            self.say(f"run {run.id} {run.variant}: starting")
            with self.rt.lock:
                standby = self.rt.standbys.pop(self.device.id, None)
            started: list[bool] = []

            def agent_ended(ended: RunPublic) -> None:
                # The next agent's Python start overlaps collecting this run and the host's
                # work before the next one.
                self._start_standby(link, ended)
                started.append(True)

            done = run_queued(spec=spec, variant=item.variant, run_id=run.id, link=link,
                              session=s, device=self.device, on_progress=progress,
                              builder=self.rt.builder, agent_package=self.rt.agent_package,
                              poll_s=self.rt.poll_s, standby=standby,
                              on_agent_ended=agent_ended)
            if standby is not None and done.device_run_dir != standby.run_dir:
                _stop_standby(link, standby)  # not taken (it had left, or old agent code)
            if not started:
                self._start_standby(link, done)
            return done
        finally:
            close_link(link)

    def _start_standby(self, link: DeviceLink, done: RunPublic) -> None:
        """Start the phone's next agent now, warm and waiting, so that its Python start-up
        overlaps the host's work between runs instead of adding to the next run."""
        agent = done.params.get("agent")
        if not self.rt.warm_agent or self.rt.halted() or not agent:
            return
        run_dir = posixpath.join(link.root, "runs", f"s-{secrets.token_hex(4)}")
        standby = Standby(run_dir=run_dir, agent_dir=posixpath.join(link.root, "agent", agent))
        with contextlib.suppress(DeviceError):  # gone: the next run starts cold
            link.mkdirs(run_dir)
            link.start_agent(agent_dir=standby.agent_dir, run_dir=run_dir, resume=False,
                             standby_s=self.rt.standby_s)
            with self.rt.lock:
                self.rt.standbys[self.device.id] = standby

    def _after(self, s: Session, item: SweepItemPublic, run: RunPublic) -> RunPublic | Outcome:
        """Decide what follows a run that ended: the run to try next, or how the item
        ended."""
        item = sweep_repo.get_item(session=s, item_id=item.id)
        if run.status == RunStatus.FINISHED:
            self.say(f"run {run.id} {run.variant}: finished, accuracy "
                     f"{'—' if run.accuracy is None else f'{100 * run.accuracy:.2f} %'}")
            return Outcome.FINISHED
        if run.status == RunStatus.CANCELLED or self.rt.cancelled.is_set():
            with contextlib.suppress(TransitionRefused):  # cancelled, or finished, already
                repo.transition_run(session=s, run_id=run.id, to=RunStatus.CANCELLED,
                                    error="the sweep was cancelled", finished=utcnow())
            return Outcome.CANCELLED
        attempts = item.attempts + 1
        why = run.error or f"the run ended {run.status}"
        if attempts >= self.rt.max_attempts:
            return self._give_up(s, item, run, attempts=attempts,
                                 why=f"gave up after {attempts} failed attempts")
        sweep_repo.update_item(session=s, item_id=item.id, attempts=attempts)
        if run.status == RunStatus.INTERRUPTED and run.device_run_dir:
            self.say(f"run {run.id} {run.variant}: {why}; resuming from its checkpoint")
            return run
        self.say(f"run {run.id} {run.variant}: failed ({why}); trying again")
        return self._restart(s, item, run, reason=why)

    def _give_up(self, s: Session, item: SweepItemPublic, run: RunPublic, *, attempts: int,
                 why: str) -> Outcome:
        """Leave the item's run failed with its reason, and the item noted."""
        reason = run.error or f"the run ended {run.status}"
        sweep_repo.update_item(session=s, item_id=item.id, attempts=attempts,
                               note=f"{why}: {reason}")
        with contextlib.suppress(TransitionRefused):  # failed (or ended) already
            repo.transition_run(session=s, run_id=run.id, to=RunStatus.FAILED, error=reason,
                                finished=run.finished or utcnow())
        self.say(f"run {run.id} {run.variant}: failed ({reason}); {why}")
        return Outcome.GAVE_UP

    def _failed_by(self, s: Session, run: RunPublic, err: Exception) -> RunPublic:
        """The run failed by an error raised out of its attempt (unless it ended already)."""
        why = f"{type(err).__name__}: {err}".splitlines()[0]
        try:
            failed = repo.transition_run(session=s, run_id=run.id, to=RunStatus.FAILED,
                                         error=why, finished=utcnow())
        except TransitionRefused:  # it had failed (or ended) already
            return repo.get_run(session=s, run_id=run.id)
        self.say(f"run {run.id}: unexpected error ({why})")
        return failed

    # ------------------------------------------------------------------ health gates

    def _gate(self, s: Session, item: SweepItemPublic, run: RunPublic, link: DeviceLink,
              spec: ExperimentSpec) -> Outcome | None:
        """Wait for cool-down, battery and temperature; record the wait and the samples.
        None when the phone is ready, else why the run does not start."""
        since = self._since_last_run(s)
        announced = False

        def on_sample(h: HealthSample) -> None:
            repo.record_sample(session=s, device_id=self.device.id, run_id=run.id, step=0,
                               battery=h.battery, temperature=h.temperature)

        def sample() -> HealthSample | None:
            nonlocal announced
            h = link.sample_health()
            why = unmet(spec.health, h)
            if why and not announced:
                self.say(f"run {run.id}: waiting for the phone ({why})")
                announced = True
            return h

        gate = wait_until_ready(health=spec.health, sample=sample, since_last_run_s=since,
                                on_sample=on_sample, should_stop=self.rt.halted,
                                poll_s=self.rt.health_poll_s)
        item = sweep_repo.update_item(session=s, item_id=item.id,
                                      health_wait=round(item.health_wait + gate.waited_s, 3))
        timing = repo.get_run(session=s, run_id=run.id).timing
        repo.update_run(session=s, run_id=run.id, timing={
            **timing, "health_wait": round(timing.get("health_wait", 0) + gate.waited_s, 3),
            "cooldown": round(timing.get("cooldown", 0) + gate.cooldown_s, 3)})
        if gate.ok:
            return None
        if gate.reason == "stopped":
            if self.rt.cancelled.is_set():
                return self._cancel_run(s, run.id)
            # The host is stopping: the run waits in the queue for the next driver.
            with contextlib.suppress(TransitionRefused):  # a cancel ended it meanwhile
                repo.transition_run(session=s, run_id=run.id, to=RunStatus.QUEUED)
            return Outcome.REQUEUED
        why = f"health gate: {gate.reason}"
        sweep_repo.update_item(session=s, item_id=item.id, note=why)
        with contextlib.suppress(TransitionRefused):
            repo.transition_run(session=s, run_id=run.id, to=RunStatus.FAILED, error=why,
                                finished=utcnow())
        return Outcome.HELD_BACK

    def _since_last_run(self, s: Session) -> float | None:
        """Seconds since a run last ended on this phone (from the store: survives restarts)."""
        last = sweep_repo.last_run_end(session=s, device_id=self.device.id)
        if last is None:
            return None
        last = last if last.tzinfo else last.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - last).total_seconds())

    # ------------------------------------------------------------------ lost phones, moves

    def _phone_back(self) -> bool:
        try:
            resolve_device(self.device.serial, {}, wait_s=0)
            return True
        except DeviceError:
            return False

    def _await_return(self, s: Session, run: RunPublic, err: Exception) -> bool:
        """Wait for the phone. True: it is back, carry on with the run; False: stop here (the
        runs were released to an equivalent phone, or the sweep is stopping)."""
        rt = self.rt
        if repo.get_run(session=s, run_id=run.id).status != RunStatus.INTERRUPTED:
            with contextlib.suppress(TransitionRefused):  # it ended (finished, cancelled)
                repo.transition_run(session=s, run_id=run.id, to=RunStatus.INTERRUPTED,
                                    error=getattr(err, "message", str(err)), finished=None)
        rt.set_away(self.device.id, True)
        self.say(f"run {run.id}: lost the phone ({getattr(err, 'message', err)}); waiting "
                 f"for it")
        start = time.monotonic()
        released = False
        try:
            while not rt.halted():
                if self._phone_back():
                    self.say("the phone is back")
                    if released:  # a run moved away may still train here: stop it now
                        self._stop_leftovers(s)
                    return not released
                away = time.monotonic() - start
                if not released and away >= rt.reassign_after_s and \
                        rt.has_equivalent(self.device.id):
                    n = sweep_repo.release_items(
                        session=s, sweep_id=rt.sweep_id, device_id=self.device.id,
                        note=f"{self.label} was away for {away:.0f} s")
                    self.say(f"away for {away:.0f} s: {n} runs released to another "
                             f"{self.device.model}")
                    released = True
                if released and not sweep_repo.may_need(
                        session=s, sweep_id=rt.sweep_id, device_id=self.device.id,
                        model=self.device.model):
                    return False
                rt.stopping.wait(rt.reconnect_s)
            return False
        finally:
            rt.set_away(self.device.id, False)

    def _stop_leftovers(self, s: Session) -> None:
        with contextlib.suppress(DeviceError):  # gone again: its next run stops them
            stop_leftovers(self.device.serial, session=s, device_id=self.device.id,
                           say=self.say)

    def _resumable(self, s: Session, run: RunPublic) -> RunPublic:
        """After the phone came back: a run failed by the lost link is taken up again."""
        run = repo.get_run(session=s, run_id=run.id)
        with contextlib.suppress(TransitionRefused):  # neither: it stays as it is
            run = repo.transition_run(
                session=s, run_id=run.id, finished=None, error=None,
                to=RunStatus.INTERRUPTED if run.device_run_dir else RunStatus.RUNNING,
                only_from=(RunStatus.FAILED, RunStatus.INTERRUPTED))
        return run

    def _restart(self, s: Session, item: SweepItemPublic, old: RunPublic, *,
                 reason: str) -> RunPublic:
        """A fresh start of the item: in the same row if nothing ran yet, else a new one."""
        if old.events_seen == 0:
            return repo.transition_run(session=s, run_id=old.id, to=RunStatus.RUNNING,
                                       device_run_dir=None, error=None, finished=None)
        new = repo.create_run(session=s, experiment_id=old.experiment_id, variant=old.variant,
                              device_id=self.device.id, params=_sweep_params(old.params),
                              status=RunStatus.RUNNING, sweep_id=old.sweep_id)
        with contextlib.suppress(TransitionRefused):  # it had ended (failed, cancelled)
            repo.transition_run(session=s, run_id=old.id, to=RunStatus.FAILED, error=reason,
                                only_from=OPEN, finished=old.finished or utcnow())
        sweep_repo.switch_run(session=s, item_id=item.id, run_id=new.id)
        return new

    def _move_here(self, s: Session, item: SweepItemPublic, old: RunPublic) -> RunPublic:
        """A run released by another phone starts afresh here: in its own row when it never
        started there, else in a new one (the old row says where it went)."""
        if old.events_seen == 0 and not old.device_run_dir:
            self.say(f"run {old.id} {old.variant} taken over")
            return repo.transition_run(session=s, run_id=old.id, to=RunStatus.RUNNING,
                                       device_id=self.device.id, error=None, finished=None)
        new = repo.create_run(session=s, experiment_id=old.experiment_id, variant=old.variant,
                              device_id=self.device.id, params=_sweep_params(old.params),
                              status=RunStatus.RUNNING, sweep_id=old.sweep_id)
        with contextlib.suppress(TransitionRefused):  # it had ended
            repo.transition_run(session=s, run_id=old.id, to=RunStatus.CANCELLED,
                                only_from=OPEN, finished=utcnow(),
                                error=f"moved to run {new.id} on {self.label} ({item.note})")
            # Its agent may still train on the phone that went away: stopped when it is next
            # used (orphans.py).
            flag_left_running(session=s, run_id=old.id)
        sweep_repo.switch_run(session=s, item_id=item.id, run_id=new.id)
        self.say(f"run {old.id} {old.variant} moved here as run {new.id}")
        return new


SWEEP_PARAMS = ("sweep_point", "repetition")


def _sweep_params(params: dict) -> dict:
    """What a new Run of the same item keeps: the point; the rest comes from its own run."""
    return {k: v for k, v in params.items() if k in SWEEP_PARAMS}


def _stop_standby(link: DeviceLink, standby: Standby) -> None:
    with contextlib.suppress(DeviceError):
        link.stop_agent(standby.run_dir)
        link.remove(standby.run_dir)


def drop_standby(rt: SweepRuntime, device: DevicePublic) -> None:
    """Stop the phone's waiting agent, if any, and remove its folder."""
    with rt.lock:
        standby = rt.standbys.pop(device.id, None)
    if standby is None:
        return
    with contextlib.suppress(DeviceError):
        link = open_phone_link(device.serial, session=None)
        try:
            _stop_standby(link, standby)
        finally:
            close_link(link)
