"""One phone, one run at a time: hold the phone's lease (store/lease.py) while using it.

A run, a sweep's turn on a phone, `orch devices clean` and the doctor take the lease first;
whoever finds it taken waits, saying what it waits for, or is refused (`--no-wait`). A
heartbeat thread keeps the lease while the host works; a host that dies stops renewing it,
so the lease expires (at once for a dead process on this host). A process holds a phone
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
from pathlib import Path

from sqlmodel import Session

from orchestrator.errors import DeviceBusy
from orchestrator.store import lease as store
from orchestrator.store import repo
from orchestrator.store.lease import LeasePublic
from orchestrator.store.public import DevicePublic

TTL_S = float(os.environ.get("ORCH_LEASE_TTL_S", "60"))  # a silent holder loses the phone
HEARTBEAT_S = TTL_S / 4
POLL_S = 2.0  # a waiting host looks again this often
REPEAT_S = 60.0  # an unchanged waiting message is repeated this often


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")  # a zombie is dead


def holder_dead(holder: str) -> bool:
    """Is the holder a process of this host that no longer runs? (Others: by expiry.)"""
    host, _, pid = holder.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def is_live(lease: LeasePublic, now: float | None = None) -> bool:
    return lease.expires >= (time.time() if now is None else now) and \
        not holder_dead(lease.holder)


def live_run_ids(*, session: Session) -> set[int]:
    """Runs a live host is following right now (their phone's lease names them)."""
    now = time.time()
    return {x.run_id for x in store.all_leases(session=session)
            if x.run_id is not None and is_live(x, now)}


def _left(session: Session, run_id: int) -> str:
    """`, about 3 min left` from the run's epochs so far (nothing when unknown)."""
    run = repo.get_run(session=session, run_id=run_id)
    seconds = [v for _, v in repo.metric_series(session=session, run_id=run_id)
               .get("epoch_seconds", []) if v is not None]
    p = run.params
    planned = int(p.get("head_epochs", 0)) + (
        int(p.get("finetune_epochs", 0)) if p.get("finetune_from") is not None else 0)
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
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"lease-{self.device_id}")
        self._thread.start()

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with Session(self.engine) as s:  # type: ignore[arg-type]
            store.release(session=s, device_id=self.device_id, token=self.token)


_held: dict[int, PhoneHold] = {}  # device id → this process's hold
_held_lock = threading.Lock()


@contextlib.contextmanager
def hold_phone(*, session: Session, device: DevicePublic, purpose: str, label: str = "",
               run_id: int | None = None, wait: bool = True,
               say: Callable[[str], None] = lambda _t: None,
               should_stop: Callable[[], bool] = lambda: False,
               poll_s: float = POLL_S) -> Iterator[PhoneHold]:
    """Hold `device` for the block: wait while another holds it (saying why), or raise
    DeviceBusy at once when `wait` is False."""
    with _held_lock:
        outer = _held.get(device.id)
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
        _held[device.id] = hold
    hold.start()
    try:
        yield hold
    finally:
        with _held_lock:
            _held.pop(device.id, None)
        hold.end()


def _acquire(session: Session, device: DevicePublic, purpose: str, label: str,
             run_id: int | None, wait: bool, say: Callable[[str], None],
             should_stop: Callable[[], bool], poll_s: float) -> PhoneHold:
    token = secrets.token_hex(16)
    hold = PhoneHold(engine=session.get_bind(), device_id=device.id, token=token,
                     run_id=run_id)
    said, said_at = None, 0.0
    while True:
        held = store.try_acquire(session=session, device_id=device.id, token=token,
                                 holder=me(), purpose=purpose, run_id=run_id, label=label,
                                 now=time.time(), ttl_s=TTL_S, holder_dead=holder_dead)
        if held is None:
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
