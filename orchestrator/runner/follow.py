"""Following a launched agent: poll its events through the egress guard, store them, report
progress, until it reports done/error or stops."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from device_agent import contract
from orchestrator.egress import EVENTS_CHUNK, EgressGuard
from orchestrator.links.base import DeviceLink
from orchestrator.runner.ingest import ingest_events


@dataclass
class Progress:
    """One progress update for the display. `kind`: build | stage | launch | agent (a stage
    of the agent: decode, features, …) | epoch | delegate | note."""

    variant: str
    kind: str
    run_id: int | None = None
    stage: str | None = None
    done: int | None = None
    total: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    test_acc: float | None = None
    text: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass
class FollowOutcome:
    terminal: str | None  # finished | cancelled | failed from the agent; None: it just stopped
    exit_code: int | None  # when the link knows it


def _stage(ev: dict, variant: str, run_id: int, epochs: int) -> Progress:
    return Progress(variant, "agent", run_id, stage=ev["stage"], done=ev.get("done"),
                    total=ev.get("total"))


def _epoch(ev: dict, variant: str, run_id: int, epochs: int) -> Progress:
    return Progress(variant, "epoch", run_id, epoch=ev["epoch"], epochs=epochs,
                    test_acc=ev.get("test_acc"), text=ev.get("phase") or "")


def _delegate(ev: dict, variant: str, run_id: int, epochs: int) -> Progress:
    why = f" ({ev['reason']})" if ev.get("reason") else ""
    return Progress(variant, "delegate", run_id,
                    text=f"delegate {ev.get('requested')} → {ev.get('used')}{why}")


def _start(ev: dict, variant: str, run_id: int, epochs: int) -> Progress:
    return Progress(variant, "note", run_id, text=f"agent {ev.get('agent_version')} "
                    f"started ({ev.get('interpreter') or 'interpreter unknown'})")


# What the display shows of an event, for the kinds it shows.
_SHOWN: dict[str, Callable[[dict, str, int, int], Progress]] = contract.event_table(
    {"stage": _stage, "epoch": _epoch, "delegate": _delegate, "start": _start}, every=False)


def _report(ev: dict, variant: str, run_id: int, epochs: int, on_progress: ProgressFn) -> None:
    show = _SHOWN.get(ev["kind"])
    if show is not None:
        on_progress(show(ev, variant, run_id, epochs))


def drain(*, guard: EgressGuard, session: Session, run_id: int, device_id: int | None,
          link: DeviceLink, variant: str, epochs: int, on_progress: ProgressFn) -> str | None:
    """Read and store every complete event available now; returns a terminal status if seen."""
    terminal = None
    while True:
        start = guard.events_offset
        events = guard.read_events()
        if events:
            got = ingest_events(session=session, run_id=run_id, events=events,
                                device_id=device_id, sample_health=link.sample_health)
            for ev in got.new:
                _report(ev, variant, run_id, epochs, on_progress)
            terminal = got.terminal or terminal
        # A read shorter than a chunk reached the end of the file: nothing more to ask for.
        if not events or guard.events_offset + len(guard.tail) - start < EVENTS_CHUNK:
            return terminal


def follow_agent(
    *,
    link: DeviceLink,
    guard: EgressGuard,
    session: Session,
    run_id: int,
    device_id: int | None,
    variant: str,
    epochs: int,
    on_progress: ProgressFn,
    poll_s: float = 0.5,
    exit_grace_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    tail_poll_s: float = 0.1,
    tail_window_s: float = 30.0,
    on_terminal: Callable[[], None] | None = None,
) -> FollowOutcome:
    """Poll the agent's events until it reports its end or stops; `on_terminal` is called as
    soon as it reported its end, before waiting for it to exit."""
    # After the last epoch only the final evaluation and result.json remain: poll faster
    # for a while, so the run is collected soon after it ends without a busy poll throughout.
    last_epoch_at: list[float] = []

    def watch(p: Progress) -> None:
        if p.kind == "epoch" and p.epoch is not None and p.epoch >= epochs and not last_epoch_at:
            last_epoch_at.append(time.monotonic())
        on_progress(p)

    def step() -> str | None:
        return drain(guard=guard, session=session, run_id=run_id, device_id=device_id,
                     link=link, variant=variant, epochs=epochs, on_progress=watch)

    def quiet_interval(quiet_for: int) -> float:
        # Events come in bursts (stages, then an epoch's lines): right after some, and near
        # the end, look again soon; the longer the agent is quiet, the slower the polls,
        # up to poll_s.
        near_end = last_epoch_at and time.monotonic() - last_epoch_at[0] < tail_window_s
        if near_end:
            return min(poll_s, tail_poll_s)
        return min(poll_s, tail_poll_s * 1.5 ** quiet_for)

    quiet_for = 0
    sign_of_life = time.monotonic()  # the agent was started, or wrote, or answered, then
    while True:
        offset = guard.events_offset
        terminal = step()
        if terminal:
            break
        now = time.monotonic()
        if guard.events_offset != offset:
            quiet_for, sign_of_life = 0, now
        else:
            quiet_for += 1
            # New lines say the agent was alive a moment ago: ask the phone only after it
            # was quiet for poll_s (a round trip less on the other polls).
            if now - sign_of_life >= poll_s:
                if not link.agent_alive(guard.run_dir):
                    terminal = step()  # its last lines, written just before it exited
                    break
                sign_of_life = time.monotonic()
        sleep(min(poll_s, tail_poll_s) if quiet_for == 0 else quiet_interval(quiet_for))
    if terminal:
        if on_terminal is not None:
            on_terminal()
        # result.json is written before the done event; the agent exits right after it.
        deadline = time.monotonic() + exit_grace_s
        while link.agent_alive(guard.run_dir) and time.monotonic() < deadline:
            sleep(min(poll_s, 0.05))
    return FollowOutcome(terminal, link.agent_exit_code(guard.run_dir))
