"""One phone, one run at a time: hold the phone's lease (store/lease.py) while using it.

A run, a sweep's turn on a phone, `orch devices clean` and the doctor take the lease first;
whoever finds it taken waits, saying what it waits for, or is refused (`--no-wait`). A
heartbeat thread keeps the lease while the host works; a host that dies stops renewing it,
so the lease expires (at once for a dead process on this host). A thread holds a phone
once: nested holds (a sweep's turn around its run) share the outer lease.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlmodel import Session

from orchestrator.errors import DeviceBusy, TransitionRefused
from orchestrator.store import lease as store
from orchestrator.store import queries, repo
from orchestrator.store.lease import LeasePublic, holder_dead, is_live, orphan_hint
from orchestrator.store.public import DevicePublic
from orchestrator.store.runtime_info import planned_epochs
from orchestrator.store.status import RunStatus

TTL_S = 60.0  # a holder silent this long loses the phone
HEARTBEAT_S = TTL_S / 4
POLL_S = 2.0  # a waiting host looks again this often
REPEAT_S = 60.0  # an unchanged waiting message is repeated this often


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _left(session: Session, run_id: int) -> str:
    """`, about 3 min left` from the run's epochs so far (nothing when unknown)."""
    run = repo.get_run(session=session, run_id=run_id)
    seconds = [v for _, v in queries.metric_series(session=session, run_id=run_id)
               .get("epoch_seconds", []) if v is not None]
    planned = planned_epochs(run.params) or 0
    done = int(run.progress.get("epoch") or 0)
    if not seconds or planned <= done:
        return ""
    left = sum(seconds) / len(seconds) * (planned - done)
    if left < 1:
        return ""
    return f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"


def describe(session: Session, phone: str, held: LeasePublic) -> str:
    """`pixel7 is busy: run 12 (method2), about 3 min left`."""
    if held.run_id is not None:
        label = f" ({held.label})" if held.label else ""
        return f"{phone} is busy: run {held.run_id}{label}{_left(session, held.run_id)}"
    what = {"clean": "`orch devices clean`", "doctor": "`orch devices doctor`"}.get(
        held.purpose, f"a {held.purpose} ({held.label})" if held.label else held.purpose)
    return f"{phone} is busy: {what} on {held.holder}"


def _interrupt_lapsed(session: Session, run_id: int) -> None:
    """The phone was taken from a host that stopped while following this run: say so."""
    with contextlib.suppress(TransitionRefused):  # it ended, or its host marked it
        repo.transition_run(session=session, run_id=run_id, to=RunStatus.INTERRUPTED,
                            only_from=(RunStatus.RUNNING,), error=orphan_hint(run_id))


@dataclass
class PhoneHold:
    """A held lease: `attach_run` names the run now training, for whoever waits."""

    engine: object
    device_id: int
    token: str
    run_id: int | None = None
    waited_for: set[int] = field(default_factory=set)  # runs this hold waited on
    lost: bool = False
    depth: int = 1
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def attach_run(self, run_id: int) -> None:
        self.run_id = run_id
        with Session(self.engine) as s:  # type: ignore[arg-type]
            self.lost = not store.renew(session=s, device_id=self.device_id, token=self.token,
                                        now=time.time(), ttl_s=TTL_S, run_id=run_id)

    def _beat(self) -> None:
        with Session(self.engine) as s:  # type: ignore[arg-type]
            while not self._stop.wait(HEARTBEAT_S):
                with contextlib.suppress(Exception):  # a busy database: try at the next beat
                    if not store.renew(session=s, device_id=self.device_id, token=self.token,
                                       now=time.time(), ttl_s=TTL_S):
                        self.lost = True
                        return

    def start(self) -> None:
        url = getattr(self.engine, "url", None)
        if url is not None and url.get_backend_name() == "sqlite" and \
                url.database in (None, "", ":memory:"):
            return  # one connection shared by every thread, and no other process to tell
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"lease-{self.device_id}")
        self._thread.start()

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with Session(self.engine) as s:  # type: ignore[arg-type]
            store.release(session=s, device_id=self.device_id, token=self.token)


_held: dict[tuple[int, int], PhoneHold] = {}  # (thread, device id) → that thread's hold
_held_lock = threading.Lock()


@contextlib.contextmanager
def hold_phone(*, session: Session, device: DevicePublic, purpose: str, label: str = "",
               run_id: int | None = None, wait: bool = True,
               say: Callable[[str], None] = lambda _t: None,
               should_stop: Callable[[], bool] = lambda: False,
               poll_s: float = POLL_S) -> Iterator[PhoneHold]:
    """Hold `device` for the block: wait while another holds it (saying why), or raise
    DeviceBusy at once when `wait` is False."""
    key = (threading.get_ident(), device.id)
    with _held_lock:
        outer = _held.get(key)
        if outer is not None:
            outer.depth += 1
    if outer is not None:
        try:
            if run_id is not None:
                outer.attach_run(run_id)
            yield outer
        finally:
            with _held_lock:
                outer.depth -= 1
        return
    hold = _acquire(session, device, purpose, label, run_id, wait, say, should_stop, poll_s)
    with _held_lock:
        _held[key] = hold
    hold.start()
    try:
        yield hold
    finally:
        with _held_lock:
            _held.pop(key, None)
        hold.end()


def _acquire(session: Session, device: DevicePublic, purpose: str, label: str,
             run_id: int | None, wait: bool, say: Callable[[str], None],
             should_stop: Callable[[], bool], poll_s: float) -> PhoneHold:
    token = secrets.token_hex(16)
    hold = PhoneHold(engine=session.get_bind(), device_id=device.id, token=token,
                     run_id=run_id)
    said, said_at = None, 0.0
    while True:
        before = store.current(session=session, device_id=device.id)
        held = store.try_acquire(session=session, device_id=device.id, token=token,
                                 holder=me(), purpose=purpose, run_id=run_id, label=label,
                                 now=time.time(), ttl_s=TTL_S, holder_dead=holder_dead)
        if held is None:
            if before is not None and before.run_id is not None and not is_live(before):
                _interrupt_lapsed(session, before.run_id)
            return hold
        text = describe(session, device.label, held)
        if not wait:
            hint = (f"See `orch results show {held.run_id}`; without --no-wait orch waits "
                    "for the phone." if held.run_id is not None
                    else "Without --no-wait orch waits for the phone.")
            raise DeviceBusy(text + ".", run_id=held.run_id, hint=hint)
        if held.run_id is not None:
            hold.waited_for.add(held.run_id)
        who = (held.holder, held.run_id)  # said again when the holder changes, or after a while
        if who != said or time.monotonic() - said_at > REPEAT_S:
            say(f"{text}; waiting for it")
            said, said_at = who, time.monotonic()
        if should_stop():
            raise DeviceBusy(text + ".", run_id=held.run_id)
        time.sleep(poll_s)


@contextlib.contextmanager
def hold_for_command(*, session: Session, serial: str, purpose: str, wait: bool = True,
                     say: Callable[[str], None] = lambda _t: None) -> Iterator[PhoneHold]:
    """`orch devices clean` / `doctor`: hold the phone (known to the store by `serial`, or
    recorded now) while the command works on it, so no run is measured meanwhile."""
    dev = repo.find_device(session=session, serial=serial) or \
        repo.upsert_device(session=session, serial=serial)
    with hold_phone(session=session, device=dev, purpose=purpose, label=purpose, wait=wait,
                    say=say) as hold:
        yield hold
