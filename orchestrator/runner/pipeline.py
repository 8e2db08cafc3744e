"""The run pipeline: per variant build → stage → job → launch → follow → collect → store.

Everything device-side goes through a `DeviceLink`; everything read back goes through the
egress guard. A failure keeps the metrics stored so far and marks the run failed (or
interrupted, when `orch run --resume RUN` can continue it from the agent's checkpoint).
"""

from __future__ import annotations

import json
import posixpath
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from device_agent import contract
from orchestrator.egress import EgressGuard, information_bound, limits_from_params
from orchestrator.errors import (
    DeviceBusy,
    DeviceError,
    EgressRefused,
    OrchError,
    RunError,
    RunInterrupted,
    TransitionRefused,
)
from orchestrator.links.base import DeviceLink
from orchestrator.links.local import file_sha256
from orchestrator.runner.follow import (
    FollowOutcome,
    Progress,
    ProgressFn,
    drain,
    follow_agent,
)
from orchestrator.runner.ingest import ingest_result
from orchestrator.runner.job import make_job, run_params
from orchestrator.runner.ledger import PushLedger
from orchestrator.runner.orphans import detached_agents, stop_left_running
from orchestrator.runner.phone_lease import POLL_S, PhoneHold, hold_phone
from orchestrator.runner.recover import discard_damaged_tail
from orchestrator.runner.signals import HostStopped
from orchestrator.runner.staging import (
    AGENT_PACKAGE,
    BuiltModel,
    StageTally,
    host_images,
    push_text,
    stage_agent,
    stage_data,
    stage_model,
)
from orchestrator.spec import ExperimentSpec, spec_hash
from orchestrator.store import repo
from orchestrator.store.public import DevicePublic, RunPublic
from orchestrator.store.runtime_info import planned_epochs
from orchestrator.store.status import ENDED, RunStatus
from orchestrator.store.tables import utcnow

Builder = Callable[[ExperimentSpec, str], BuiltModel]


@dataclass(frozen=True)
class Standby:
    """A warm agent started in a run folder of its own, waiting for the next run's job.json
    (device_agent/standby.py); a fresh run that gets one pushes its job there instead of
    starting Python on the phone."""

    run_dir: str
    agent_dir: str
# Asked on Ctrl-C: True stops the agent on the device, False leaves it running.
InterruptFn = Callable[[RunPublic], bool]

EXIT_NAMES = {contract.EXIT_ERROR: "error", contract.EXIT_BAD_JOB: "bad job",
              contract.EXIT_DATA: "data problem", contract.EXIT_CANCELLED: "cancelled",
              contract.EXIT_DISK_FULL: "disk full"}


def default_builder(cache_dir: Path | None = None) -> Builder:
    """Builds with `models/` (TensorFlow, imported only when a build is needed), cached in
    `<cache_dir>/models/HASH/`, by default orch's cache, which `orch model build` fills."""
    if cache_dir is None:
        from orchestrator.settings import get_settings

        cache_dir = get_settings().cache_dir

    def build(spec: ExperimentSpec, variant: str) -> BuiltModel:
        from orchestrator.model_config import build_variant

        return build_variant(spec, variant, cache_dir=cache_dir)

    return build


@dataclass
class _Ctx:
    link: DeviceLink
    session: Session
    device: DevicePublic
    on_progress: ProgressFn
    on_interrupt: InterruptFn | None
    poll_s: float
    agent_package: Path
    wait: bool = True  # for a busy phone; False: refuse at once (DeviceBusy)
    hold: PhoneHold | None = None
    # Called once the agent reported its end, before its result is collected and stored.
    on_agent_ended: Callable[[RunPublic], None] | None = None

    def say(self, variant: str, text: str, run_id: int | None = None) -> None:
        self.on_progress(Progress(variant, "note", run_id, text=text))

    def hold_phone(self, label: str, run_id: int | None = None):
        return hold_phone(session=self.session, device=self.device, purpose="run",
                          label=label, run_id=run_id, wait=self.wait,
                          say=lambda text: self.say(label, text, run_id))

    def ledger(self, run_id: int | None) -> PushLedger:
        return PushLedger(self.session, run_id, self.device.id, self.link.launcher)

    def update(self, run_id: int, **fields: Any) -> RunPublic:
        return repo.update_run(session=self.session, run_id=run_id, **fields)

    def move(self, run_id: int, to: RunStatus, **fields: Any) -> RunPublic:
        """Change the run's status (store/status.py); TransitionRefused when it may not."""
        return repo.transition_run(session=self.session, run_id=run_id, to=to, **fields)

    def end(self, run_id: int, to: RunStatus, **fields: Any) -> RunPublic:
        """Record how the run ended. When another process ended it first (a sweep's cancel,
        the successor of a worker taken for dead), its record stands and is returned."""
        try:
            return self.move(run_id, to, **fields)
        except TransitionRefused as e:
            run = repo.get_run(session=self.session, run_id=run_id)
            self.say(run.variant, f"run {run_id} was already {e.current}: not recorded as "
                     f"{e.target}", run_id)
            return run


def _guard(ctx: _Ctx, run: RunPublic) -> EgressGuard:
    assert run.device_run_dir is not None
    limits = limits_from_params(run.params)
    bound = information_bound(limits)
    repo.record_bound(session=ctx.session, run_id=run.id, device_id=ctx.device.id,
                      bits=round(bound.bits, 1), nbytes=bound.bytes, numbers=bound.numbers,
                      choices=bound.choices)
    return EgressGuard(link=ctx.link, session=ctx.session, run_id=run.id,
                       run_dir=run.device_run_dir,
                       run_key=posixpath.basename(run.device_run_dir), limits=limits,
                       device_id=ctx.device.id)


def run_experiment(
    *,
    spec: ExperimentSpec | None,
    variants: list[str],
    link: DeviceLink,
    session: Session,
    device: DevicePublic,
    on_progress: ProgressFn | None = None,
    resume_run_id: int | None = None,
    builder: Builder | None = None,
    on_interrupt: InterruptFn | None = None,
    agent_package: Path = AGENT_PACKAGE,
    poll_s: float = 0.5,
    wait: bool = True,
) -> list[RunPublic]:
    """Run `variants` of `spec` on the device behind `link` (or resume one run); returns the
    stored runs. Each holds the phone's lease: a busy phone is waited for (`wait`), else
    DeviceBusy. Raises RunInterrupted when the user or a signal interrupts, or the device
    goes away."""
    ctx = _Ctx(link, session, device, on_progress or (lambda _p: None), on_interrupt, poll_s,
               agent_package, wait)
    if resume_run_id is not None:
        run = repo.get_run(session=session, run_id=resume_run_id)
        with ctx.hold_phone(run.variant, run.id) as ctx.hold:
            run = repo.get_run(session=session, run_id=resume_run_id)
            if run.id in ctx.hold.waited_for and run.status in ENDED:
                # Another host followed it to its end while this one waited.
                ctx.say(run.variant, f"run {run.id} was followed to its end by another orch "
                        f"process: {run.status}", run.id)
                return [run]
            return [_resume(ctx, resume_run_id)]
    if spec is None:
        raise ValueError("a spec is needed unless resuming a run")
    if spec.data.kind == "host":
        host_images(spec.data, spec.head.classes)  # a missing class folder: say so before building
    if builder is None:
        builder = default_builder()
    exp = repo.upsert_experiment(session=session, name=spec.name,
                                 spec=spec.model_dump(mode="json"), spec_hash=spec_hash(spec))
    out = []
    for v in variants:
        with ctx.hold_phone(v) as ctx.hold:
            out.append(_continue_or_fresh(ctx, spec, v, exp.id, builder))
    return out


def _continue_or_fresh(ctx: _Ctx, spec: ExperimentSpec, variant: str, experiment_id: int,
                       builder: Builder) -> RunPublic:
    """The same command after an interruption resumes the interrupted run (reattach.py)."""
    from orchestrator.runner.reattach import interrupted_twin

    twin = interrupted_twin(session=ctx.session, spec=spec, variant=variant,
                            experiment_id=experiment_id, device_id=ctx.device.id,
                            model_hash=lambda: builder(spec, variant).hash)
    if twin is not None and not ctx.link.exists(
            posixpath.join(twin.device_run_dir or "", contract.JOB_FILE)):
        twin = None  # its folder is gone from the device (cleaned): start over
    if twin is None:
        return _fresh(ctx, spec, variant, experiment_id, builder)
    ctx.on_progress(Progress(variant, "note", twin.id, text=f"run {twin.id} was interrupted "
                             "with these settings on this device: resuming it"))
    if ctx.hold is not None:
        ctx.hold.attach_run(twin.id)
    return _resume(ctx, twin.id)


def run_queued(
    *,
    spec: ExperimentSpec,
    variant: str,
    run_id: int,
    link: DeviceLink,
    session: Session,
    device: DevicePublic,
    on_progress: ProgressFn | None = None,
    builder: Builder | None = None,
    agent_package: Path = AGENT_PACKAGE,
    poll_s: float = 0.5,
    standby: Standby | None = None,
    on_agent_ended: Callable[[RunPublic], None] | None = None,
) -> RunPublic:
    """Run a Run row created up front (a sweep's queue) on the fresh-run path, holding the
    phone's lease. `variant` is the spec's key; the row keeps its own variant label and
    params. `standby`: a warm agent to hand the job to, if it is still there and runs the
    staged agent code. `on_agent_ended(run)`: called as soon as the agent reported its end,
    while its result is still to be collected (a sweep starts the phone's next agent there)."""
    ctx = _Ctx(link, session, device, on_progress or (lambda _p: None), None, poll_s,
               agent_package, on_agent_ended=on_agent_ended)
    if builder is None:
        builder = default_builder()
    queued = repo.get_run(session=session, run_id=run_id)
    with ctx.hold_phone(queued.variant, queued.id) as ctx.hold:
        return _fresh(ctx, spec, variant, queued.experiment_id, builder, queued=queued,
                      standby=standby)


# ---------------------------------------------------------------- one fresh run


def _fresh(ctx: _Ctx, spec: ExperimentSpec, variant: str, experiment_id: int,
           builder: Builder, *, queued: RunPublic | None = None,
           standby: Standby | None = None) -> RunPublic:
    """A new run (or a queued one): start its agent, then follow it and collect."""
    _wait_for_detached(ctx, variant)
    run = _fresh_row(ctx, spec, variant, experiment_id, queued)
    t0 = time.monotonic()
    try:
        run = _start(ctx, spec, variant, run, builder, standby, t0)
    except (KeyboardInterrupt, Exception) as e:
        return _not_started(ctx, variant, run, e)
    return _follow_and_collect(ctx, run, t0)


def _fresh_row(ctx: _Ctx, spec: ExperimentSpec, variant: str, experiment_id: int,
               queued: RunPublic | None) -> RunPublic:
    """The run's row: the queued one with this phone's settings, else a new one."""
    params = {**(queued.params if queued else {}), **run_params(spec, variant)}
    if queued is not None:
        return ctx.update(queued.id, device_id=ctx.device.id, params=params,
                          launcher=ctx.link.launcher, delegate_requested=spec.delegate)
    run = repo.create_run(session=ctx.session, experiment_id=experiment_id,
                          variant=variant, device_id=ctx.device.id, params=params,
                          launcher=ctx.link.launcher, delegate_requested=spec.delegate)
    if ctx.hold is not None:
        ctx.hold.attach_run(run.id)
    return run


@dataclass(frozen=True)
class _Staged:
    """What staging put on the phone for one run."""

    agent_dir: str
    agent_hash: str
    run_dir: str
    data_root: str
    data_hash: str
    threads: int
    warm: bool  # the job went to a warm agent's folder: pushing it started the run
    seconds: float


def _start(ctx: _Ctx, spec: ExperimentSpec, variant: str, run: RunPublic, builder: Builder,
           standby: Standby | None, t0: float) -> RunPublic:
    """Build, stage, mark the run `running` in its folder, start its agent."""
    _stop_left_running(ctx, variant, run.id)
    build, t_build = _build(ctx, spec, variant, run.id, builder, t0)
    staged = _stage(ctx, spec, variant, run.id, build, standby)
    try:
        run = ctx.move(
            run.id, RunStatus.RUNNING, device_run_dir=staged.run_dir,
            frozen_hash=_sha_or_none(build.dir, "frozen.tflite"),
            train_hash=_sha_or_none(build.dir, "train.tflite"),
            params={**run.params, "model_hash": build.hash, "agent": staged.agent_hash,
                    "data_hash": staged.data_hash, "data_root": staged.data_root,
                    "threads": staged.threads},
            timing={**run.timing, "build": round(t_build, 3),
                    "stage": round(staged.seconds, 3)})
    except TransitionRefused:  # ended meanwhile (a sweep's cancel): no agent for it
        if staged.warm:
            ctx.link.stop_agent(staged.run_dir)
        raise
    _launch(ctx, variant, run.id, staged)
    return run


def _build(ctx: _Ctx, spec: ExperimentSpec, variant: str, run_id: int, builder: Builder,
           t0: float) -> tuple[BuiltModel, float]:
    """The variant's models (from the cache when built before); seconds since `t0`."""
    ctx.on_progress(Progress(variant, "build", run_id, text="building models"))
    build = builder(spec, variant)
    t_build = time.monotonic() - t0
    ctx.on_progress(Progress(variant, "build", run_id, done=1, total=1,
                             text=f"models {build.hash} ("
                                  + ("cached)" if build.cache_hit
                                     else f"built in {t_build:.1f} s)")))
    return build, t_build


def _stage(ctx: _Ctx, spec: ExperimentSpec, variant: str, run_id: int, build: BuiltModel,
           standby: Standby | None) -> _Staged:
    """Push the agent, the models, the data and the job (each skipped when already there);
    the job goes to a warm agent's folder when that agent waits and runs the staged code."""
    link = ctx.link
    t1 = time.monotonic()
    ledger = ctx.ledger(run_id)
    tally = StageTally(on_change=lambda t: ctx.on_progress(
        Progress(variant, "stage", run_id, done=t.pushed + t.skipped)))
    ctx.on_progress(Progress(variant, "stage", run_id, text="staging"))
    agent_dir, agent_hash = stage_agent(link, ledger, tally, ctx.agent_package)
    models = stage_model(link, ledger, tally, build)
    data_root, data_hash = stage_data(link, ledger, tally, spec.data, spec.head.classes)
    warm = (standby is not None and standby.agent_dir == agent_dir
            and link.agent_alive(standby.run_dir))
    run_key = (posixpath.basename(standby.run_dir) if warm and standby
               else f"{run_id}-{secrets.token_hex(4)}")
    run_dir = posixpath.join(link.root, "runs", run_key)
    threads = int(ctx.device.facts.get("cpus") or 4)
    job = make_job(run_key=run_key, spec=spec, variant=variant, models=models,
                   data_root=data_root, threads=threads)
    link.mkdirs(run_dir)
    push_text(link, ledger, json.dumps(job, indent=1),
              posixpath.join(run_dir, contract.JOB_FILE), "job")
    staged = _Staged(agent_dir, agent_hash, run_dir, data_root, data_hash, threads, warm,
                     time.monotonic() - t1)
    files = tally.pushed + tally.skipped
    ctx.on_progress(Progress(variant, "stage", run_id, done=files, total=files,
                             text=f"staged {tally.pushed} files "
                                  f"({tally.pushed_bytes / 1e6:.1f} MB), "
                                  f"{tally.skipped} already there"))
    return staged


def _launch(ctx: _Ctx, variant: str, run_id: int, staged: _Staged) -> None:
    if staged.warm:  # the job.json just pushed sets it going
        ctx.on_progress(Progress(variant, "launch", run_id,
                                 text=f"job handed to the warm agent in {staged.run_dir}"))
        return
    ctx.link.start_agent(agent_dir=staged.agent_dir, run_dir=staged.run_dir, resume=False)
    ctx.on_progress(Progress(variant, "launch", run_id,
                             text=f"agent started in {staged.run_dir}"))


def _not_started(ctx: _Ctx, variant: str, run: RunPublic,
                 err: KeyboardInterrupt | Exception) -> RunPublic:
    """Record why the run ended before its agent started. An expected failure is the run's
    result; a lost phone (the other variants would fail the same way) and a bug (with its
    traceback) are raised on; Ctrl-C becomes RunInterrupted."""
    if isinstance(err, KeyboardInterrupt):
        ctx.end(run.id, RunStatus.INTERRUPTED, error="stopped before the agent started",
                finished=utcnow())
        raise RunInterrupted(f"Run {run.id} ({variant}) stopped before the agent started.",
                             run_id=None, hint="Start it again with `orch run SPEC`.") from None
    why = err.one_line() if isinstance(err, OrchError) else \
        f"{type(err).__name__}: {err}".splitlines()[0]
    failed = ctx.end(run.id, RunStatus.FAILED, error=why, finished=utcnow())
    if isinstance(err, OrchError) and not isinstance(err, DeviceError):
        return failed
    raise err


def _sha_or_none(folder: Path, name: str) -> str | None:
    p = Path(folder) / name
    return file_sha256(p) if p.is_file() else None


# ---------------------------------------------------------------- resume


def _wait_for_detached(ctx: _Ctx, variant: str) -> None:
    """An agent no host follows (its host was stopped) still trains on the phone: wait for
    it to end, or refuse (`--no-wait`); `orch run --resume RUN` is how to follow it."""
    said = None
    while found := detached_agents(link=ctx.link, session=ctx.session,
                                   device_id=ctx.device.id):
        run_id, other = found[0]
        text = (f"{ctx.device.label} is busy: run {run_id} ({other}) still trains on it, "
                "with no host following it")
        hint = f"`orch run --resume {run_id}` follows it to its end."
        if not ctx.wait:
            raise DeviceBusy(text + ".", run_id=run_id, hint=hint)
        if text != said:
            ctx.say(variant, f"{text}; waiting for it ({hint})")
            said = text
        time.sleep(POLL_S)


def _stop_left_running(ctx: _Ctx, variant: str, run_id: int) -> None:
    """Agents of ended runs still training on this phone would slow this run down."""
    stop_left_running(link=ctx.link, session=ctx.session, device_id=ctx.device.id,
                      say=lambda text: ctx.on_progress(Progress(variant, "note", run_id,
                                                                text=text)))


def _resume(ctx: _Ctx, run_id: int) -> RunPublic:
    link = ctx.link
    run = repo.get_run(session=ctx.session, run_id=run_id)
    _stop_left_running(ctx, run.variant, run.id)
    if run.status == RunStatus.FINISHED:
        raise RunError(f"Run {run_id} already finished.", hint=f"See `orch results show {run_id}`.")
    if not run.device_run_dir or not link.exists(
            posixpath.join(run.device_run_dir, contract.JOB_FILE)):
        raise RunError(f"Run {run_id} has nothing on the device to resume from.",
                       hint="Start it again with `orch run SPEC --device DEV`.")
    t0 = time.monotonic()
    run_dir = run.device_run_dir
    if link.agent_alive(run_dir):
        ctx.on_progress(Progress(run.variant, "launch", run.id,
                                 text="the agent is still running: reattaching"))
    else:
        # It may have finished while no host was following: then collect, do not rerun.
        guard = _guard(ctx, run)
        try:
            terminal = _read_all(ctx, run, guard)
        except EgressRefused as e:
            at = discard_damaged_tail(session=ctx.session, guard=guard, err=e,
                                      device_id=ctx.device.id)
            if at is None:
                raise
            ctx.say(run.variant, f"{contract.EVENTS_FILE} was written by two agents at once: "
                    f"its first {at} bytes are kept, the rest discarded (see `orch audit "
                    f"{run.id}`); training goes on from the last checkpoint", run.id)
            terminal = None
        if terminal == RunStatus.FINISHED:
            ctx.on_progress(Progress(run.variant, "launch", run.id,
                                     text="the agent finished while detached: collecting"))
            run = ctx.move(run.id, RunStatus.RUNNING, error=None, finished=None)
            return _follow_and_collect(ctx, run, t0, guard=guard, terminal=terminal)
        ledger, tally = ctx.ledger(run.id), StageTally()
        agent_dir, agent_hash = stage_agent(link, ledger, tally, ctx.agent_package)
        if agent_hash != run.params.get("agent"):
            ctx.on_progress(Progress(run.variant, "note", run.id,
                                     text=f"agent code changed since the run started "
                                          f"({run.params.get('agent')} → {agent_hash})"))
        link.start_agent(agent_dir=agent_dir, run_dir=run_dir, resume=True)
        ctx.on_progress(Progress(run.variant, "launch", run.id,
                                 text="agent restarted from its last checkpoint"))
    run = ctx.move(run.id, RunStatus.RUNNING, error=None, finished=None)
    return _follow_and_collect(ctx, run, t0)


# ---------------------------------------------------------------- follow + collect


def _read_all(ctx: _Ctx, run: RunPublic, guard: EgressGuard) -> str | None:
    """Every event the run folder holds, through the guard; the terminal status, if any."""
    terminal = drain(guard=guard, session=ctx.session, run_id=run.id, device_id=ctx.device.id,
                     link=ctx.link, variant=run.variant, epochs=planned_epochs(run.params) or 0,
                     on_progress=ctx.on_progress)
    # Or one stored by an earlier host process that then stopped before collecting.
    return terminal or repo.get_run(session=ctx.session, run_id=run.id).progress.get("terminal")


def _follow_and_collect(ctx: _Ctx, run: RunPublic, t0: float, *,
                        guard: EgressGuard | None = None,
                        terminal: str | None = None) -> RunPublic:
    """Follow the agent (unless `terminal` says it already ended), then collect its result."""
    link, run_dir = ctx.link, run.device_run_dir
    assert run_dir is not None
    guard = guard or _guard(ctx, run)
    wall_before = float(run.timing.get("wall", 0.0))
    ended = ctx.on_agent_ended

    def wall() -> dict[str, float]:
        return {"wall": round(wall_before + time.monotonic() - t0, 3)}

    try:
        if terminal is not None:
            out = FollowOutcome(terminal, link.agent_exit_code(run_dir))
        else:
            out = follow_agent(link=link, guard=guard, session=ctx.session, run_id=run.id,
                               device_id=ctx.device.id, variant=run.variant,
                               epochs=planned_epochs(run.params) or 0,
                               on_progress=ctx.on_progress, poll_s=ctx.poll_s,
                               on_terminal=(lambda: ended(run)) if ended else None)
        result = guard.read_result()
    except KeyboardInterrupt as stop:
        _interrupted_by_user(ctx, run, wall, stop)
    except EgressRefused as e:
        link.stop_agent(run_dir)  # nothing it sends can be admitted any more
        return ctx.end(run.id, RunStatus.FAILED, error=e.one_line(), finished=utcnow(),
                       timing={**_timing(ctx, run.id), **wall()})
    except DeviceError as e:
        ctx.end(run.id, RunStatus.INTERRUPTED, error=e.one_line(),
                timing={**_timing(ctx, run.id), **wall()})
        raise RunInterrupted(f"Run {run.id} ({run.variant}) lost its device: {e.message}",
                             run_id=run.id) from None

    if result is not None:
        run = ingest_result(session=ctx.session, run_id=run.id, result=result,
                            host_timing=wall())
    else:
        run = ctx.update(run.id, timing={**_timing(ctx, run.id), **wall()})
    status, error = _verdict(out.terminal, out.exit_code, result, run)
    return ctx.end(run.id, status, error=error, finished=utcnow())


def _timing(ctx: _Ctx, run_id: int) -> dict[str, Any]:
    return dict(repo.get_run(session=ctx.session, run_id=run_id).timing)


def _verdict(terminal: str | None, exit_code: int | None, result: dict | None,
             run: RunPublic) -> tuple[RunStatus, str | None]:
    """Final status and one-line error from what the agent reported and how it ended."""
    where = f" at epoch {run.progress['epoch']}" if run.progress.get("epoch") else ""
    if terminal == RunStatus.FAILED:
        return RunStatus.FAILED, run.error or "the agent reported an error"
    if terminal is None:
        if exit_code == contract.EXIT_CANCELLED:
            return RunStatus.CANCELLED, "the agent was cancelled"
        if exit_code == 0:
            return RunStatus.FAILED, (f"the agent exited{where} without reporting done or an "
                                      "error")
        if exit_code is not None and exit_code > 0:
            name = EXIT_NAMES.get(exit_code, "error")
            return RunStatus.FAILED, (f"the agent exited with code {exit_code} ({name})"
                                      f"{where} without reporting why")
        how = f"killed by signal {-exit_code}" if exit_code else "it stopped"
        return RunStatus.INTERRUPTED, (f"the agent stopped before finishing{where} ({how}); "
                                       f"`orch run --resume {run.id}` continues from its "
                                       "checkpoint")
    if result is None:
        return RunStatus.FAILED, "the agent reported done but wrote no result.json"
    return RunStatus(result.get("status") or terminal), None


def _interrupted_by_user(ctx: _Ctx, run: RunPublic, wall: Callable[[], dict],
                         why: KeyboardInterrupt) -> None:
    assert run.device_run_dir is not None
    ctx.session.rollback()  # the interruption may have cut a store write short
    if isinstance(why, HostStopped):  # no one to ask: the agent keeps training
        error = (f"the host was stopped ({why.name}); the agent keeps running on the device: "
                 f"`orch run --resume {run.id}` follows it to the end")
        ctx.end(run.id, RunStatus.INTERRUPTED, error=error,
                timing={**_timing(ctx, run.id), **wall()})
        raise RunInterrupted(f"Run {run.id} ({run.variant}) interrupted: the host was "
                             f"stopped ({why.name}); the agent keeps running on the device.",
                             run_id=run.id, hint=f"`orch run --resume {run.id}` follows it "
                                                 "to the end.") from None
    stop = ctx.on_interrupt(run) if ctx.on_interrupt else False
    if stop:
        ctx.link.stop_agent(run.device_run_dir)
        error = "stopped by the user"
        hint = f"`orch run --resume {run.id}` continues from the last checkpoint."
    else:
        error = "the host stopped following; the agent keeps running on the device"
        hint = f"`orch run --resume {run.id}` reattaches and collects the result."
    ctx.end(run.id, RunStatus.INTERRUPTED, error=error,
            timing={**_timing(ctx, run.id), **wall()})
    raise RunInterrupted(f"Run {run.id} ({run.variant}) interrupted: {error}.", run_id=run.id,
                         hint=hint) from None
