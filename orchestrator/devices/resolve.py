"""`--device NAME` → one attached phone: an alias, a serial, or a model name that matches
exactly one phone (case-insensitive substring of ro.product.model).

`match_device` is pure (tested on lists); `resolve_device` feeds it the adb server's list
and the aliases its caller knows.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence

from adbutils.errors import AdbError

from orchestrator.devices.adb import Attached, list_attached
from orchestrator.devices.address import DeviceAddress
from orchestrator.errors import DeviceAmbiguous, DeviceError, DeviceNotFound, DeviceOffline

USABLE = "device"


def alias_target(name: str, aliases: dict[str, str]) -> str | None:
    """The serial an alias stands for (exact first, then case-insensitive)."""
    if name in aliases:
        return aliases[name]
    return next((s for alias, s in aliases.items() if alias.lower() == name.lower()), None)


def describe(attached: Sequence[Attached]) -> str:
    """`A (Pixel 7), B (SM-A525F, offline)` or `none`."""
    if not attached:
        return "none"
    parts = []
    for a in attached:
        bits = [b for b in (a.model, None if a.state == USABLE else a.state) if b]
        parts.append(f"{a.name} ({', '.join(bits)})" if bits else a.name)
    return ", ".join(parts)


def match_device(
    name: str,
    attached: Sequence[Attached],
    aliases: dict[str, str],
    model_of: Callable[[Attached], str | None] = lambda a: a.model,
) -> Attached:
    """The one attached phone that `name` designates, in this order: alias, serial, model."""
    by_name = {a.name: a for a in attached}
    hint = "See `orch devices list`; name a phone by alias, serial or model."
    target = alias_target(name, aliases)
    if target is not None:
        if target in by_name:
            return _usable(by_name[target], name)
        raise DeviceNotFound(f"Device {name!r} (serial {target}) is not attached; attached: "
                             f"{describe(attached)}.", hint="Plug it in or `adb connect` it.")
    if name in by_name:
        return _usable(by_name[name], name)
    needle = name.lower().replace("_", " ")
    hits = [a for a in attached
            if a.state == USABLE and needle in (model_of(a) or "").lower().replace("_", " ")]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise DeviceAmbiguous(f"{name!r} matches {len(hits)} phones: {describe(hits)}.",
                              hint="Name one by serial, or give it an alias with "
                                   "`orch devices alias NAME SERIAL`.")
    raise DeviceNotFound(f"No attached phone matches {name!r}; attached: {describe(attached)}.",
                         hint=hint)


def _usable(a: Attached, name: str) -> Attached:
    if a.state != USABLE:
        raise DeviceOffline(f"Device {name!r} ({a.name}) is {a.state}.",
                            hint="Unlock it and accept the USB debugging prompt, or re-plug it."
                            if a.state == "unauthorized" else "Re-plug it or `adb reconnect`.")
    return a


def resolve_device(name: str, aliases: dict[str, str], *, wait_s: float = 20.0) -> Attached:
    """Resolve against the live adb server(s): the default one, or the one a
    `SERIAL@HOST:PORT` name (or an alias standing for one) points at.

    `aliases` maps names to serials (`runner.devices.device_aliases`: the store's aliases and
    running virtual phones' names). A network phone (`HOST:PORT` serial)
    the server has forgotten is `adb connect`ed again; one that is `offline` gets `wait_s` to
    come back (adb reconnects network phones itself, with a back-off of several seconds)
    before it is reported offline.
    """
    target = DeviceAddress.parse(alias_target(name, aliases) or name)
    network = _NETWORK_SERIAL.fullmatch(target.serial) is not None
    attached = list_attached(target.server)
    if network and target.name not in {a.name for a in attached}:
        connect(target)
        attached = list_attached(target.server)

    def match(now: list[Attached]) -> Attached:
        if target.server is not None:
            # Remote names are exact: `SERIAL@HOST:PORT` never matches by model.
            return match_device(target.name, now, {})
        return match_device(name, now, aliases, model_of=_model_or_getprop)

    start = time.monotonic()
    nudged = start
    while True:
        try:
            return match(attached)
        except DeviceOffline:
            if time.monotonic() >= start + wait_s:
                raise
        if network and time.monotonic() - nudged > 3.0:
            # adb's own reconnection backs off after failures: reconnect it now.
            connect(target, fresh=True)
            nudged = time.monotonic()
        time.sleep(0.5)
        attached = list_attached(target.server)


_NETWORK_SERIAL = re.compile(r"[A-Za-z0-9.-]+:\d{1,5}")


def connect(target: DeviceAddress, *, fresh: bool = False) -> None:
    """`adb connect` a network phone (after `adb disconnect` when `fresh`); quiet when it
    fails: adb prints "failed to connect" and still succeeds, so only the list counts."""
    from orchestrator.devices.adb import client

    c = client(target.server)
    with contextlib.suppress(AdbError, OSError):
        if fresh:
            c.disconnect(target.serial)
        c.connect(target.serial, timeout=10)


def _model_or_getprop(a: Attached) -> str | None:
    """ro.product.model as the phone says it: adb's listing turns every character that is
    not a letter or digit into '_' ("Nokia 2.3" → "Nokia_2_3")."""
    if a.state != USABLE:
        return a.model
    from orchestrator.devices.adb import Phone

    try:
        return Phone(a.address, timeout=15).run("getprop ro.product.model").strip() or a.model
    except DeviceError:
        return a.model
