"""Which phones a sweep runs on: named ones (alias, serial, model, `SERIAL@HOST:PORT`), or
every attached phone a selector matches, on the local adb server and/or other hosts' ones.

`matches` is pure; `choose_phones` asks the adb servers and records each phone in the store.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Sequence

from sqlmodel import Session

from orchestrator.devices.adb import Attached, list_attached
from orchestrator.devices.address import AdbServer
from orchestrator.devices.resolve import USABLE, describe, resolve_device
from orchestrator.errors import DeviceNotFound, SpecError, SpecProblem
from orchestrator.runner.devices import device_aliases, register_device
from orchestrator.store.public import DevicePublic
from orchestrator.sweep.agents import close_link
from orchestrator.sweep.spec import LOCAL_SERVER, SDK_RULE, DeviceSelector

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "=": operator.eq, None: operator.eq}


def sdk_matches(rule: str, sdk: int | None) -> bool:
    m = SDK_RULE.match(rule)
    if m is None or sdk is None:
        return False
    return _OPS[m.group(1)](sdk, int(m.group(2)))


def _glob(pattern: str, value: str | None) -> bool:
    return value is not None and fnmatch.fnmatch(value.lower(), pattern.lower())


def matches(selector: DeviceSelector, device: DevicePublic) -> bool:
    """Does the phone satisfy every field the selector sets?"""
    if selector.model is not None and not _glob(selector.model, device.model):
        return False
    if selector.manufacturer is not None and not _glob(selector.manufacturer,
                                                       device.manufacturer):
        return False
    return selector.sdk is None or sdk_matches(selector.sdk, device.sdk)


def describe_selector(selector: DeviceSelector) -> str:
    parts = [f"{k}: {v}" for k, v in (("model", selector.model),
                                      ("manufacturer", selector.manufacturer),
                                      ("sdk", selector.sdk)) if v is not None]
    if selector.servers != [LOCAL_SERVER]:
        parts.append(f"servers: {', '.join(selector.servers)}")
    return "{" + ", ".join(parts) + "}" if parts else "all"


def parse_cli_devices(values: Sequence[str]) -> list[str] | DeviceSelector:
    """`--devices` values: `all`, selector fields (`model=Pixel*`, `sdk=>=30`,
    `servers=local,HOST:PORT`) or phone names (comma-separated or repeated)."""
    fields: dict[str, object] = {}
    names: list[str] = []
    for value in values:
        key, sep, rest = value.partition("=")
        if value.strip() == "all":
            fields.setdefault("servers", [LOCAL_SERVER])
        elif sep and key.strip() in ("model", "manufacturer", "sdk", "servers"):
            k = key.strip()
            fields[k] = [s.strip() for s in rest.split(",") if s.strip()] if k == "servers" \
                else rest.strip()
        else:
            names += [n.strip() for n in value.split(",") if n.strip()]
    if fields and names:
        raise SpecError([SpecProblem("--devices", "give phone names or a selector "
                                     "(all, model=…, sdk=…), not both")])
    if names:
        return names
    try:
        return DeviceSelector.model_validate(fields)
    except ValueError as e:
        raise SpecError([SpecProblem("--devices", str(e).splitlines()[-1].strip())]) from None


def _server(text: str) -> AdbServer | None:
    if text == LOCAL_SERVER:
        return None
    host, _, port = text.rpartition(":")
    return AdbServer(host, int(port))


def _register(session: Session, attached: Attached) -> DevicePublic:
    """Record the phone, through its stored launcher (so that stays what it is)."""
    from orchestrator.runner.devices import open_device_link

    link = open_device_link(attached.address, session=session)
    try:
        return register_device(session=session, link=link)
    finally:
        close_link(link)


def choose_phones(devices: list[str] | DeviceSelector, *, session: Session
                  ) -> list[DevicePublic]:
    """The sweep's phones, each recorded in the store (its `serial` is the name to reach it
    by). A name that resolves to no phone, or a selector that matches none, is an error."""
    chosen: dict[str, DevicePublic] = {}
    if isinstance(devices, list):
        aliases = device_aliases(session)
        for name in devices:
            dev = _register(session, resolve_device(name, aliases, wait_s=5.0))
            chosen.setdefault(dev.serial, dev)
        return list(chosen.values())
    seen: list[Attached] = []
    for server in devices.servers:
        attached = list_attached(_server(server))
        seen += attached
        for a in attached:
            if a.state != USABLE or a.name in chosen:
                continue
            dev = _register(session, a)
            if matches(devices, dev):
                chosen[dev.serial] = dev
    if not chosen:
        raise DeviceNotFound(f"No attached phone matches the sweep's devices "
                             f"{describe_selector(devices)}; attached: {describe(seen)}.",
                             hint="See `orch devices list`; loosen the selector or name "
                                  "phones with --devices.")
    return list(chosen.values())
