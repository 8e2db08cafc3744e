"""Pure parsers of what a phone prints: getprop, dumpsys battery, dumpsys thermalservice, df.

No I/O here, so each is tested on captured text. Each parser tolerates vendor additions
(extra lines, other indentation) and returns None for what is absent, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PROP_LINE = re.compile(r"^\[(?P<key>[^\]]+)\]: \[(?P<value>.*)$")


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` output (`[key]: [value]` per line; a value may span lines) → dict."""
    props: dict[str, str] = {}
    key: str | None = None
    buf: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        m = _PROP_LINE.match(line) if key is None else None
        if key is None and not m:
            continue
        if m:
            key, rest = m.group("key"), m.group("value")
        else:
            rest = line
        if rest.endswith("]"):
            buf.append(rest[:-1])
            props[key] = "\n".join(buf)  # type: ignore[index]
            key, buf = None, []
        else:
            buf.append(rest)
    return props


# ------------------------------------------------------------------ dumpsys battery

BATTERY_STATUS = {1: "unknown", 2: "charging", 3: "discharging", 4: "not charging", 5: "full"}


@dataclass(frozen=True)
class BatteryState:
    level_pct: float | None  # level / scale × 100
    temperature_c: float | None  # dumpsys reports tenths of a degree
    status: str | None  # charging, discharging, …
    plugged: bool | None  # any of AC / USB / wireless / dock powered


def _kv_lines(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        key = key.strip().lower()
        if sep and key and key not in out:
            out[key] = value.strip()
    return out


def _num(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def parse_battery(text: str) -> BatteryState:
    """`dumpsys battery` → level %, temperature °C, status, plugged."""
    kv = _kv_lines(text)
    level, scale = _num(kv.get("level")), _num(kv.get("scale")) or 100.0
    level_pct = None if level is None or scale <= 0 else round(100.0 * level / scale, 1)
    tenths = _num(kv.get("temperature"))
    status_code = _num(kv.get("status"))
    powered = [kv[k] for k in kv if k.endswith(" powered")]
    return BatteryState(
        level_pct=level_pct,
        temperature_c=None if tenths is None else tenths / 10.0,
        status=None if status_code is None else BATTERY_STATUS.get(int(status_code), "unknown"),
        plugged=None if not powered else any(v == "true" for v in powered),
    )


# ------------------------------------------------------------------ dumpsys thermalservice

# android.os.Temperature types and PowerManager thermal status names.
TEMPERATURE_TYPES = {-1: "unknown", 0: "cpu", 1: "gpu", 2: "battery", 3: "skin", 4: "usb_port",
                     5: "power_amplifier", 6: "bcl_voltage", 7: "bcl_current",
                     8: "bcl_percentage", 9: "npu"}
_TEMP = re.compile(r"Temperature\{(?P<body>[^}]*)\}")


@dataclass(frozen=True)
class Sensor:
    name: str
    kind: str  # TEMPERATURE_TYPES value
    celsius: float
    status: int


@dataclass(frozen=True)
class ThermalState:
    status: int | None  # 0 none … 6 shutdown; ≥ 1 means the phone is throttling
    sensors: list[Sensor] = field(default_factory=list)

    def hottest(self, kind: str) -> float | None:
        values = [s.celsius for s in self.sensors if s.kind == kind]
        return max(values) if values else None

    @property
    def temperature_c(self) -> float | None:
        """The temperature a user feels: skin, else CPU, else battery (None when unknown)."""
        for kind in ("skin", "cpu", "battery"):
            t = self.hottest(kind)
            if t is not None:
                return t
        return None


def _sensor(body: str) -> Sensor | None:
    fields = dict(part.strip().partition("=")[::2] for part in body.split(","))
    value, kind = _num(fields.get("mValue")), _num(fields.get("mType"))
    # HALs report absent sensors as 0.0, NaN or -99.9: ignore anything outside physics.
    if value is None or kind is None or not (-40.0 < value < 150.0) or value == 0.0:
        return None
    return Sensor(name=fields.get("mName", "?"), kind=TEMPERATURE_TYPES.get(int(kind), "unknown"),
                  celsius=value, status=int(_num(fields.get("mStatus")) or 0))


def parse_thermal(text: str) -> ThermalState:
    """`dumpsys thermalservice` (Android 10+) → thermal status and live sensor readings.

    Live readings ("Current temperatures from HAL") win over the cached block, which can
    hold stale, higher values.
    """
    m = re.search(r"^\s*Thermal Status:\s*(\d+)", text, re.M)
    status = int(m.group(1)) if m else None
    live = text.split("Current temperatures from HAL:", 1)
    if len(live) == 2:
        section = re.split(r"^\S.*:\s*$", live[1], maxsplit=1, flags=re.M)[0]
    else:
        cached = text.split("Cached temperatures:", 1)
        section = re.split(r"^\S.*:\s*$", cached[1], maxsplit=1, flags=re.M)[0] \
            if len(cached) == 2 else ""
    sensors = [s for s in (_sensor(t.group("body")) for t in _TEMP.finditer(section)) if s]
    return ThermalState(status=status, sensors=sensors)


# ------------------------------------------------------------------ df

_SUFFIX = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass(frozen=True)
class DiskUsage:
    filesystem: str
    mount: str
    total_bytes: int
    used_bytes: int
    free_bytes: int


def _size(token: str, unit: int) -> int | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", token)
    if not m:
        return None
    if m.group(2):
        return int(float(m.group(1)) * _SUFFIX[m.group(2)])
    return int(m.group(1)) * unit


def parse_df(text: str) -> list[DiskUsage]:
    """`df -k` (toybox, GNU, busybox; `-P` or not) or old toolbox `df` → usage per mount.

    The unit comes from the header (`1K-blocks`, `1024-blocks`, `512-blocks`); old toolbox
    output (`Size Used Free Blksize`) carries suffixes like 25.5G. A long filesystem name may
    sit alone on its line with the numbers on the next.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = lines[0]
    hm = re.search(r"(\d+)([KkMm]?)-blocks", header)
    unit = int(hm.group(1)) * _SUFFIX[hm.group(2).upper()] if hm else 1024
    toolbox = "Blksize" in header
    out: list[DiskUsage] = []
    pending: str | None = None
    for line in lines[1:]:
        parts = line.split()
        if pending is not None:
            parts = [pending, *parts]
            pending = None
        if len(parts) == 1:
            pending = parts[0]
            continue
        if toolbox:  # Filesystem Size Used Free Blksize
            if len(parts) < 4:
                continue
            sizes = [_size(p, 1) for p in parts[1:4]]
            name, mount = parts[0], parts[0]
        else:  # Filesystem blocks Used Available Use% Mounted-on
            if len(parts) < 6:
                continue
            sizes = [_size(p, unit) for p in parts[1:4]]
            name, mount = parts[0], " ".join(parts[5:])
        if any(s is None for s in sizes):
            continue
        total, used, free = sizes
        out.append(DiskUsage(filesystem=name, mount=mount, total_bytes=total,  # type: ignore[arg-type]
                             used_bytes=used, free_bytes=free))  # type: ignore[arg-type]
    return out
