"""Resolving `--device NAME` to a device link and its row in the store.

A phone's launcher (direct, runas, ssh) is stored with it (`orch devices set DEV --launcher
X`, `orch devices setup`, the first `orch devices doctor`); none stored is `direct`, as before
launchers existed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session

from orchestrator.links.base import DeviceLink
from orchestrator.links.local import LocalLink
from orchestrator.links.shell import LAUNCHERS
from orchestrator.settings import OrchSettings
from orchestrator.store import repo
from orchestrator.store.public import DevicePublic

if TYPE_CHECKING:
    from orchestrator.devices.address import DeviceAddress

LOCAL = "local"
DEFAULT_LAUNCHER = "direct"


def open_link(name: str, *, settings: OrchSettings, session: Session | None = None
              ) -> DeviceLink:
    """`local` is this host; anything else is a phone over adb: an alias (from the store),
    a serial (`SERIAL@HOST:PORT` for a remote adb server) or a model name."""
    if name == LOCAL:
        return LocalLink(settings.home / "local-device")
    from orchestrator.devices.resolve import resolve_device

    # The phone's stored launcher (direct, runas, ssh); direct when none is stored.
    return open_device_link(resolve_device(name, device_aliases(session)).address,
                            session=session)


def device_aliases(session: Session | None) -> dict[str, str]:
    """The names `--device` takes besides serials and models, each to its serial: running
    virtual phones' names, and the store's aliases, which win over them."""
    from orchestrator.sim.manager import virtual_phone_names

    stored = repo.alias_map(session=session) if session is not None else {}
    return {**virtual_phone_names(), **stored}


def stored_launcher(session: Session | None, serial: str) -> str | None:
    """The launcher stored for the phone `serial`, or None."""
    if session is None:
        return None
    dev = repo.find_device(session=session, serial=serial)
    return dev.launcher if dev is not None and dev.launcher in LAUNCHERS else None


def open_device_link(address: DeviceAddress, *, session: Session | None = None,
                     launcher: str | None = None) -> DeviceLink:
    """The link for a resolved phone: the given launcher, else the stored one, else direct."""
    from orchestrator.links.make import make_link

    return make_link(address, launcher or stored_launcher(session, address.name)
                     or DEFAULT_LAUNCHER)


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
