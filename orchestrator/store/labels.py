"""Device names for tables and pages: alias, else model, else serial, and never ambiguous.

Two phones of one model without aliases would otherwise share a name, and a comparison
table would show two "Pixel 7" columns (or merge them). A name several devices would share
gets the serial appended: "Pixel 7 (R5CT1)". Names are chosen over every known device, so a
device is called the same on every page.
"""

from __future__ import annotations

from collections import Counter

from sqlmodel import Session, select

from orchestrator.store.tables import Device

LOCAL = "local"  # runs on the host (`--device local`) have no device row


def device_labels(*, session: Session) -> dict[int, str]:
    """device id → its unique display name."""
    rows = session.exec(select(Device.id, Device.alias, Device.model, Device.serial)).all()
    plain = {i: alias or model or serial for i, alias, model, serial in rows}
    taken = Counter(plain.values())
    out = {}
    for i, alias, _model, serial in rows:
        name = plain[i]
        out[i] = name if alias or name == serial or taken[name] == 1 else f"{name} ({serial})"
    return out


def find_device_id(*, session: Session, name: str) -> int:
    """The stored device called `name`: its alias, serial or shown name (any case)."""
    from orchestrator.errors import NotFound

    labels = device_labels(session=session)
    want = name.casefold()
    for i, alias, serial in session.exec(select(Device.id, Device.alias, Device.serial)).all():
        if want in {(alias or "").casefold(), serial.casefold(), labels[i].casefold()}:
            return i
    known = ", ".join(sorted(labels.values())) or "none yet"
    raise NotFound(f"No device {name!r} in the store (known: {known}).",
                   hint="Name it by alias, serial or the name `orch results list` shows.")


def label_of(labels: dict[int, str], device_id: int | None) -> str:
    """The name for a run's device id; `local` for host runs."""
    return labels.get(device_id, LOCAL) if device_id is not None else LOCAL
