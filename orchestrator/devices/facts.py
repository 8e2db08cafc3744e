"""What a phone is, from its properties: model, Android version, SoC, ABI (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# SoC name: Android 12+ has ro.soc.model; older phones only name the board or chip.
_SOC_KEYS = ("ro.soc.model", "ro.hardware.chipname", "ro.board.platform", "ro.hardware")


@dataclass(frozen=True)
class DeviceFacts:
    model: str | None
    manufacturer: str | None
    sdk: int | None
    release: str | None
    soc: str | None
    abi: str | None
    product: str | None
    fingerprint: str | None

    def store_fields(self) -> dict[str, Any]:
        """The columns of the devices table, plus the rest as `facts`."""
        d = asdict(self)
        extra = {"product": d.pop("product"), "fingerprint": d.pop("fingerprint")}
        return {**d, "facts": {k: v for k, v in extra.items() if v}}


def _get(props: dict[str, str], *keys: str) -> str | None:
    for k in keys:
        v = props.get(k, "").strip()
        if v:
            return v
    return None


def facts_from_props(props: dict[str, str]) -> DeviceFacts:
    sdk = _get(props, "ro.build.version.sdk")
    return DeviceFacts(
        model=_get(props, "ro.product.model", "ro.product.vendor.model"),
        manufacturer=_get(props, "ro.product.manufacturer", "ro.product.vendor.manufacturer"),
        sdk=int(sdk) if sdk and sdk.isdigit() else None,
        release=_get(props, "ro.build.version.release"),
        soc=_get(props, *_SOC_KEYS),
        abi=_get(props, "ro.product.cpu.abi"),
        product=_get(props, "ro.product.name"),
        fingerprint=_get(props, "ro.build.fingerprint"),
    )
