"""Device links for a sweep's phones: through the launcher stored for each phone (direct,
runas, ssh), as `orch run` does, and closed whatever kind they are."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session

from orchestrator.devices.address import DeviceAddress
from orchestrator.links.base import DeviceLink


def open_phone_link(name: str, *, session: Session | None) -> DeviceLink:
    """The link to the phone named `name` (serial or SERIAL@HOST:PORT)."""
    from orchestrator.runner.devices import open_device_link

    return open_device_link(DeviceAddress.parse(name), session=session)


def close_link(link: DeviceLink) -> None:
    """End the link's sessions: adb sync, and a Termux link's shell (ssh)."""
    for part in (link, getattr(link, "shell", None)):
        close = getattr(part, "close", None)
        if callable(close):
            close()


def stop_leftovers(name: str, *, session: Session, device_id: int,
                   say: Callable[[str], None], dry_run: bool = False) -> list[int]:
    """Stop the agents of runs the store ended while this phone was away
    (runner/orphans.py); DeviceError if the phone cannot be reached."""
    from orchestrator.runner.orphans import stop_left_running

    link = open_phone_link(name, session=session)
    try:
        return stop_left_running(link=link, session=session, device_id=device_id, say=say,
                                 dry_run=dry_run)
    finally:
        close_link(link)


def stop_agent(name: str, run_dir: str, *, session: Session | None) -> None:
    """SIGTERM the run's agent on the phone (it checkpoints and reports `cancelled`);
    DeviceError if the phone cannot be reached."""
    link = open_phone_link(name, session=session)
    try:
        link.stop_agent(run_dir)
    finally:
        close_link(link)
