"""The building blocks of the closed schema in `contract.py`: what may come back from a phone.

Each node admits a value (checking it, and quantizing numbers to the precision orch shows,
so low bits cannot carry data) and says how many distinct values it admits, so the most
information a run can carry out is computable. Null and absent are one value: a field that is
null or missing is left out of what is admitted (except a loss, whose null means NaN).

Limits (`epochs`, `test`, …) are named by attribute and read from a limits object at
admission time: the host's `EgressLimits`. Plain Python, imported by the agent and the host.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

SLOT_MAX = 1_000_000  # largest number a message slot may hold
KNOWN_KEYS: set[str] = set()  # every field name of every schema: the only keys a refusal names


class Violation(Exception):
    """A value outside the schema: `where` names the field, `rule` the broken rule."""

    def __init__(self, where: str, rule: str) -> None:
        super().__init__(f"{where}: {rule}")
        self.where, self.rule = where, rule


@dataclass
class Tally:
    """Information a schema part can hold: bits, and how many numbers and choices in it."""

    bits: float = 0.0
    numbers: int = 0
    choices: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.bits + other.bits, self.numbers + other.numbers,
                     self.choices + other.choices)

    def times(self, n: int) -> Tally:
        return Tally(self.bits * n, self.numbers * n, self.choices * n)


def _limit(lim: Any, v: int | str) -> int:
    return int(getattr(lim, v)) if isinstance(v, str) else v


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Violation(where, "not a number")
    if not math.isfinite(v):
        raise Violation(where, "not a finite number")
    return v


def _values(n: float) -> float:
    """Bits of a field with n admissible values, or absent."""
    return math.log2(n + 1)


class Node:
    keeps_null = False  # a null is a value of its own (a NaN loss), not "absent"

    def admit(self, v: Any, lim: Any, where: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def tally(self, lim: Any) -> Tally:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Node):
    lo: int | str
    hi: int | str

    def admit(self, v: Any, lim: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Violation(where, "not an integer")
        lo, hi = _limit(lim, self.lo), _limit(lim, self.hi)
        if not lo <= v <= hi:
            raise Violation(where, f"out of range [{lo}, {hi}]")
        return v

    def tally(self, lim: Any) -> Tally:
        return Tally(_values(_limit(lim, self.hi) - _limit(lim, self.lo) + 1), numbers=1)


@dataclass(frozen=True)
class Fixed(Node):
    """A number on a fixed grid (seconds to 1 ms, memory to 0.1 MB)."""

    lo: float
    hi: float
    quantum: float

    def admit(self, v: Any, lim: Any, where: str) -> float:
        x = _number(v, where)
        if not self.lo <= x <= self.hi:
            raise Violation(where, f"out of range [{self.lo:g}, {self.hi:g}]")
        digits = max(0, -math.floor(math.log10(self.quantum)))
        return round(round(x / self.quantum) * self.quantum, digits)

    def tally(self, lim: Any) -> Tally:
        return Tally(_values((self.hi - self.lo) / self.quantum + 1), numbers=1)


@dataclass(frozen=True)
class Sig(Node):
    """A non-negative number to `digits` significant digits (a loss); below `tiny` it is 0.
    Null stands for a non-finite value (NaN) and is kept as such."""

    keeps_null = True
    digits: int = 4
    tiny: float = 1e-9
    hi: float = 1e6

    def admit(self, v: Any, lim: Any, where: str) -> float:
        x = _number(v, where)
        if not 0 <= x <= self.hi:
            raise Violation(where, f"out of range [0, {self.hi:g}]")
        return 0.0 if x < self.tiny else float(f"{x:.{self.digits - 1}e}")

    def tally(self, lim: Any) -> Tally:
        decades = math.ceil(math.log10(self.hi / self.tiny)) + 1
        return Tally(_values(decades * 9 * 10 ** (self.digits - 1) + 2), numbers=1)


@dataclass(frozen=True)
class Frac(Node):
    """A share of a known number of images (an accuracy): stored as a count of them."""

    of: str  # the limit naming the denominator

    def admit(self, v: Any, lim: Any, where: str) -> float:
        x = _number(v, where)
        if not 0 <= x <= 1:
            raise Violation(where, "out of range [0, 1]")
        n = max(1, _limit(lim, self.of))
        return round(x * n) / n

    def tally(self, lim: Any) -> Tally:
        return Tally(_values(max(1, _limit(lim, self.of)) + 1), numbers=1)


@dataclass(frozen=True)
class Bool(Node):
    def admit(self, v: Any, lim: Any, where: str) -> bool:
        if not isinstance(v, bool):
            raise Violation(where, "not true or false")
        return v

    def tally(self, lim: Any) -> Tally:
        return Tally(_values(2), choices=1)


@dataclass(frozen=True)
class Enum(Node):
    choices: tuple[str, ...]

    def admit(self, v: Any, lim: Any, where: str) -> str:
        if not isinstance(v, str) or v not in self.choices:
            raise Violation(where, f"not one of {', '.join(self.choices)}")
        return v

    def tally(self, lim: Any) -> Tally:
        return Tally(_values(len(self.choices)), choices=1)


# A name or version may not look like a photo's file name, a camera's naming scheme or a
# folder of the phone's storage (checked after Unicode folding: a full-width "ｊｐｇ" is "jpg").
MEDIA_EXT = ("jpg", "jpeg", "jpe", "jfif", "png", "gif", "bmp", "webp", "heic", "heif", "tif",
             "tiff", "dng", "raw", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "srw", "avif",
             "jxl", "mp4", "mov", "m4v", "3gp", "mkv", "webm", "npy", "npz", "pkl")
_MEDIA_RE = re.compile(
    r"\.(?:" + "|".join(MEDIA_EXT) + r")(?![a-z0-9])|(?:^|[^a-z])(?:img|dsc|pxl|vid|mvimg|"
    r"dcim|camera|screenshot|sdcard|storage|emulated|media)(?![a-z])|\.\.|/",
    re.IGNORECASE)


def media_like(text: str) -> bool:
    """Whether text could name a user's photo, a camera file or a storage folder."""
    return _MEDIA_RE.search(unicodedata.normalize("NFKC", text)) is not None


@dataclass(frozen=True)
class Pattern(Node):
    """A short string of a fixed format (a version, a device name), counted per character."""

    regex: str
    max_len: int
    alphabet: int  # characters the format allows

    def admit(self, v: Any, lim: Any, where: str) -> str:
        if not isinstance(v, str) or len(v) > self.max_len or not v.isascii() \
                or re.fullmatch(self.regex, v) is None:
            raise Violation(where, f"not of the form {self.regex}")
        if media_like(v):
            raise Violation(where, "looks like a file name, camera name or storage path")
        return v

    def tally(self, lim: Any) -> Tally:
        return Tally(self.max_len * math.log2(self.alphabet) + math.log2(self.max_len + 2),
                     choices=1)


@dataclass(frozen=True)
class Obj(Node):
    fields: dict[str, Node]
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        KNOWN_KEYS.update(self.fields)

    def admit(self, v: Any, lim: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise Violation(where, "not an object")
        for k in v:
            if k not in self.fields:
                # A refusal names only keys of the vocabulary: an unknown key is content.
                shown = repr(k) if k in KNOWN_KEYS else "(not shown)"
                raise Violation(where, f"unexpected field {shown}")
        out: dict[str, Any] = {}
        for k, node in self.fields.items():
            x = v.get(k)
            if x is None:
                if k in self.required:
                    raise Violation(where, f"missing field {k!r}")
                if k in v and node.keeps_null:
                    out[k] = None
                continue
            out[k] = node.admit(x, lim, f"{where}.{k}")
        return out

    def tally(self, lim: Any) -> Tally:
        total = Tally()
        for node in self.fields.values():
            total = total + node.tally(lim)
        return total


@dataclass(frozen=True)
class List(Node):
    item: Node
    max_len: int | str

    def admit(self, v: Any, lim: Any, where: str) -> list[Any]:
        n = _limit(lim, self.max_len)
        if not isinstance(v, list):
            raise Violation(where, "not an array")
        if len(v) > n:
            raise Violation(where, f"{len(v)} items, more than this run's {n}")
        return [self.item.admit(x, lim, f"{where}[{i}]") for i, x in enumerate(v)]

    def tally(self, lim: Any) -> Tally:
        n = _limit(lim, self.max_len)
        return Tally(_values(n + 1)) + self.item.tally(lim).times(n)


@dataclass(frozen=True)
class PerClass(Node):
    """One value per class of the run, keyed by the class names the host gave the job."""

    item: Node

    def admit(self, v: Any, lim: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise Violation(where, "not an object")
        out = {}
        for k, x in v.items():
            if k not in lim.classes:
                raise Violation(where, "key is not one of the run's classes")
            if x is not None:
                out[k] = self.item.admit(x, lim, f"{where}.{k}")
        return out

    def tally(self, lim: Any) -> Tally:
        return self.item.tally(lim).times(len(lim.classes))


@dataclass(frozen=True)
class Msg(Node):
    """A message chosen from a catalogue {code: template}; `{0}`, `{1}` … are numeric slots."""

    catalogue: dict[str, str] = field(hash=False)

    def admit(self, v: Any, lim: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict) or set(v) - {"code", "args"}:
            raise Violation(where, "not a {code, args} message")
        code, args = v.get("code"), v.get("args") or []
        if not isinstance(code, str) or code not in self.catalogue:
            raise Violation(f"{where}.code", "not a code of the catalogue")
        if not isinstance(args, list) or len(args) != slots(self.catalogue[code]):
            raise Violation(f"{where}.args", f"not the {slots(self.catalogue[code])} numbers "
                            "its template takes")
        slot = Int(0, SLOT_MAX)
        out: dict[str, Any] = {"code": code}
        if args:
            out["args"] = [slot.admit(a, lim, f"{where}.args[{i}]") for i, a in enumerate(args)]
        return out

    def tally(self, lim: Any) -> Tally:
        count = sum((SLOT_MAX + 1) ** slots(t) for t in self.catalogue.values())
        most = max(slots(t) for t in self.catalogue.values())
        return Tally(_values(count), numbers=most, choices=1)


def slots(template: str) -> int:
    """How many numeric slots a catalogue template has."""
    return len(set(re.findall(r"\{(\d+)\}", template)))


def render(catalogue: dict[str, str], msg: dict[str, Any] | None) -> str | None:
    """A catalogue message as text (the host shows it; the agent never sends text)."""
    if not msg:
        return None
    template = catalogue.get(msg.get("code", ""), msg.get("code", ""))
    return template.format(*(msg.get("args") or []))


def message(catalogue: dict[str, str], code: str, *args: int) -> dict[str, Any]:
    """The agent's side: a catalogue message, unknown codes and bad slots made safe."""
    if code not in catalogue:
        code, args = ("internal" if "internal" in catalogue else list(catalogue)[-1]), ()
    n = slots(catalogue[code])
    nums = [max(0, min(SLOT_MAX, int(a))) for a in args][:n]
    nums += [0] * (n - len(nums))
    return {"code": code, "args": nums} if nums else {"code": code}


def conform(node: Node, v: Any) -> Any:
    """The agent's side: keep only what `node` describes (unknown keys dropped, numbers as
    they are), so what the agent writes is what the host admits."""
    if v is None:
        return None
    if isinstance(node, Obj) and isinstance(v, dict):
        return {k: c for k, x in v.items() if k in node.fields
                and ((c := conform(node.fields[k], x)) is not None or node.fields[k].keeps_null)}
    if isinstance(node, List) and isinstance(v, (list, tuple)):
        return [conform(node.item, x) for x in v]
    if isinstance(node, PerClass) and isinstance(v, dict):
        return {k: conform(node.item, x) for k, x in v.items()}
    if isinstance(node, Fixed) and isinstance(v, (int, float)) and not isinstance(v, bool):
        return round(min(max(v, node.lo), node.hi), 6) if math.isfinite(v) else None
    if isinstance(node, (Int, Enum, Bool, Pattern)):
        try:
            return node.admit(v, _NoLimits(), "")
        except (Violation, AttributeError, TypeError):
            return None
    return v


class _NoLimits:
    """Limits the agent does not know: any bound that names one is taken as unbounded."""

    classes: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> int:
        return 1 << 62
