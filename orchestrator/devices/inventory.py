"""What `orch devices list/info` show: each attached phone's facts and health, refreshed in
the store (repo.upsert_device) as a side effect of looking."""

from __future__ import annotations

from pydantic import BaseModel
from sqlmodel import Session

from orchestrator.devices.adb import Attached, Phone
from orchestrator.devices.facts import DeviceFacts, facts_from_props
from orchestrator.devices.health import HealthSample, sample_health
from orchestrator.devices.parsers import parse_df, parse_getprop
from orchestrator.devices.resolve import USABLE
from orchestrator.errors import DeviceError
from orchestrator.store import repo
from orchestrator.store.public import DevicePublic

STAGING_ROOT = "/data/local/tmp/orch"


class DeviceView(BaseModel):
    serial: str
    alias: str | None = None
    state: str
    model: str | None = None
    manufacturer: str | None = None
    release: str | None = None
    sdk: int | None = None
    soc: str | None = None
    abi: str | None = None
    battery: float | None = None
    temperature: float | None = None
    thermal_status: int | None = None
    plugged: bool | None = None
    free_bytes: int | None = None  # on the partition holding STAGING_ROOT (info only)
    error: str | None = None  # why facts could not be read


def read_facts(phone: Phone) -> DeviceFacts:
    return facts_from_props(parse_getprop(phone.getprop()))


def free_bytes(phone: Phone, path: str = "/data/local/tmp") -> int | None:
    usage = parse_df(phone.run(f"df -k {path}", timeout=30))
    return usage[-1].free_bytes if usage else None


def remember(session: Session, serial: str, facts: DeviceFacts) -> DevicePublic:
    """Upsert the phone's facts; `facts` JSON is merged so others' keys (launcher…) stay."""
    fields = facts.store_fields()
    known = repo.find_device(session=session, serial=serial)
    fields["facts"] = {**(known.facts if known else {}), **fields["facts"]}
    return repo.upsert_device(session=session, serial=serial, **fields)


def look(a: Attached, *, session: Session | None, aliases: dict[str, str],
         with_disk: bool = False) -> DeviceView:
    """Read one phone's facts and health; record the facts in the store when given one."""
    alias = next((k for k, v in aliases.items() if v == a.name), None)
    view = DeviceView(serial=a.name, alias=alias, state=a.state, model=a.model)
    if a.state != USABLE:
        return view
    try:
        phone = Phone(a.address, timeout=30)
        facts = read_facts(phone)
        health: HealthSample = sample_health(phone)
        view = view.model_copy(update={
            "model": facts.model, "manufacturer": facts.manufacturer, "release": facts.release,
            "sdk": facts.sdk, "soc": facts.soc, "abi": facts.abi, "battery": health.battery,
            "temperature": health.temperature, "thermal_status": health.thermal_status,
            "plugged": health.plugged,
        })
        if with_disk:
            view.free_bytes = free_bytes(phone)
    except DeviceError as e:
        return view.model_copy(update={"error": e.one_line()})
    if session is not None:
        dev = remember(session, a.name, facts)
        repo.record_sample(session=session, device_id=dev.id, battery=health.battery,
                           temperature=health.temperature)
    return view
