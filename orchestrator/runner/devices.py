"""Resolving `--device NAME` to a device link and its row in the store."""

from __future__ import annotations

from sqlmodel import Session

from orchestrator.runner.link import DeviceLink
from orchestrator.runner.local_link import LocalLink
from orchestrator.settings import OrchSettings
from orchestrator.store import repo
from orchestrator.store.public import DevicePublic

LOCAL = "local"


def open_link(name: str, *, settings: OrchSettings, session: Session | None = None
              ) -> DeviceLink:
    """`local` is this host; anything else is a phone over adb: an alias (from the store),
    a serial (`SERIAL@HOST:PORT` for a remote adb server) or a model name."""
    if name == LOCAL:
        return LocalLink(settings.home / "local-device")
    from orchestrator.devices.resolve import resolve_device
    from orchestrator.launchers.choose import open_device_link

    aliases = repo.alias_map(session=session) if session is not None else {}
    # The phone's stored launcher (direct, runas, ssh); direct when none is stored.
    return open_device_link(resolve_device(name, aliases).address, session=session)


def register_device(*, session: Session, link: DeviceLink) -> DevicePublic:
    """Record (or refresh) the link's device in the store."""
    facts = link.facts()
    return repo.upsert_device(session=session, serial=facts.serial, **facts.store_fields())


def device_name_of_run(*, session: Session, run_id: int) -> str | None:
    """The `--device` name to resume a run on, when it can be told from the store."""
    run = repo.get_run(session=session, run_id=run_id)
    if run.launcher == "local":
        return LOCAL
    if run.device_id is None:
        return None
    dev = repo.get_device(session=session, device_id=run.device_id)
    return dev.alias or dev.serial
