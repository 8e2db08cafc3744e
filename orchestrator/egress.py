"""The egress guard: the ONLY code that reads anything back from a device.

It admits the run's own `events.jsonl` and `result.json` (contract.EGRESS_ALLOWED) and
nothing else, admits them only as small UTF-8 JSON of the contract's shape carrying aggregate
metrics, and writes every read and every refusal to the transfer ledger. What smuggled data
would look like, and is refused: binary bytes (an image renamed to result.json), long
strings of base64 or hex, file names of images or paths into the phone's storage, arrays or
dicts longer than the run's epochs or classes can explain (a feature map, per-image
predictions), deep nesting, more numbers than the run's aggregates need, stage progress
that goes back or changes its total within a stage, and a flood of log lines.
Refusal reasons name the field and the rule, never the refused content.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from sqlmodel import Session

from device_agent import contract
from orchestrator.errors import EgressRefused
from orchestrator.store import repo

if TYPE_CHECKING:
    from orchestrator.runner.link import DeviceLink

EVENTS_CHUNK = 256 * 1024  # most bytes pulled from events.jsonl per read
LINE_MAX = 8 * 1024  # longest admissible event line
TORN_MAX = 16  # event lines cut short by a killed agent that a run may skip
_TORN_RE = re.compile(rb'^\{\s*"seq"\s*:\s*\d+\s*[,}]')
SNIFF = 64  # bytes read first, so a binary file is refused after a few bytes, not all of it
TEXT_MAX = 300  # longest admissible free text (a reason, an error message)
WORD_MAX = 64  # longest admissible short text (a version, an interpreter name)

# Platform folders whose paths say nothing about the user (e.g. a missing NNAPI library).
SYSTEM_PREFIXES = ("/system/", "/vendor/", "/apex/", "/product/", "/odm/", "/proc/", "/sys/",
                   "/dev/")
_MEDIA_EXT = ("jpg", "jpeg", "jpe", "jfif", "png", "gif", "bmp", "webp", "heic", "heif", "tif",
              "tiff", "dng", "raw", "avif", "jxl", "mp4", "mov", "m4v", "3gp", "mkv", "webm",
              "npy", "npz", "pkl", "pickle")
_FILE_NAME_RE = re.compile(r"[^\s/\\'\"]+\.(?:" + "|".join(_MEDIA_EXT) + r")(?!\w)", re.IGNORECASE)
_ABS_PATH_RE = re.compile(r"(?<![\w.])~?/[^\s'\"(),;]+")
_MEDIA_DIR_RE = re.compile(r"\b(?:DCIM|sdcard|Pictures|Camera|Download|Screenshots|WhatsApp|"
                           r"emulated|storage)/")
_BLOB_RE = re.compile(r"[A-Za-z0-9+/_=-]{40,}")
_IDENT_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,48}$")
_HASH_RE = re.compile(r"^[0-9a-f]{8,64}$")


class _Refusal(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EgressLimits:
    """What one run can legitimately send back: its epochs and classes bound every array."""

    epochs: int
    classes: tuple[str, ...]
    allowed_prefixes: tuple[str, ...] = ()  # device folders a message may name (orch's root)

    @property
    def max_numbers(self) -> int:
        """Numbers a result may hold: per-epoch metrics, per-class figures, a few totals."""
        return 64 + 12 * self.epochs + 8 * len(self.classes)


# ---------------------------------------------------------------------------------------------
# Content rules (pure)


@dataclass
class _Checker:
    limits: EgressLimits
    max_numbers: int
    numbers: int = field(default=0)

    def fail(self, where: str, rule: str) -> NoReturn:
        raise _Refusal(f"{where}: {rule}")

    def count(self, where: str) -> None:
        self.numbers += 1
        if self.numbers > self.max_numbers:
            self.fail(where, f"more than {self.max_numbers} numbers (not aggregate metrics)")

    def num(self, v: Any, where: str, *, lo: float | None = None, hi: float | None = None,
            null: bool = True, nan: bool = False) -> None:
        if v is None:
            if not null:
                self.fail(where, "required number is null")
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(where, "not a number")
        self.count(where)
        if not math.isfinite(v):
            if not nan:
                self.fail(where, "not a finite number")
            return
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(where, f"out of range [{lo}, {hi}]")

    def int_(self, v: Any, where: str, *, lo: int = 0, hi: int | None = None,
             null: bool = False) -> None:
        if v is None and null:
            return
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(where, "not an integer")
        self.num(v, where, lo=lo, hi=hi)

    def text(self, v: Any, where: str, *, max_len: int = TEXT_MAX, null: bool = True) -> None:
        if v is None:
            if not null:
                self.fail(where, "required text is null")
            return
        if not isinstance(v, str):
            self.fail(where, "not a string")
        if len(v) > max_len:
            self.fail(where, f"text longer than {max_len} characters")
        if not v.isprintable():
            self.fail(where, "control characters in text")
        if _FILE_NAME_RE.search(v):
            self.fail(where, "text names an image or array file")
        if _MEDIA_DIR_RE.search(v):
            self.fail(where, "text names a media folder")
        allowed = SYSTEM_PREFIXES + tuple(p.rstrip("/") + "/" for p in self.limits.allowed_prefixes)
        for m in _ABS_PATH_RE.finditer(v):
            if not (m.group(0) + "/").startswith(allowed):
                self.fail(where, "text names a path outside orch's folders")
        # Split allowed paths into their parts, so only a blob inside one is caught below.
        for m in _BLOB_RE.finditer(_ABS_PATH_RE.sub(lambda m: m.group(0).replace("/", " "), v)):
            tok = m.group(0)
            hexlike = re.fullmatch(r"[0-9a-fA-F]+", tok) is not None
            mixed = (any(c.isdigit() for c in tok) and any(c.isupper() for c in tok)
                     and any(c.islower() for c in tok))
            if hexlike or mixed or len(tok) > 80:
                self.fail(where, "text carries an encoded blob")

    def ident(self, v: Any, where: str, *, null: bool = False) -> None:
        if v is None and null:
            return
        if not isinstance(v, str) or not _IDENT_RE.match(v):
            self.fail(where, "not a short identifier")

    def enum(self, v: Any, where: str, choices: tuple[str, ...], *, null: bool = False) -> None:
        if v is None and null:
            return
        if v not in choices:
            self.fail(where, f"not one of {', '.join(choices)}")

    def obj(self, v: Any, where: str, allowed: tuple[str, ...],
            required: tuple[str, ...] = ()) -> dict:
        if not isinstance(v, dict):
            self.fail(where, "not an object")
        extra = [k for k in v if k not in allowed]
        if extra:
            self.fail(where, f"unexpected field {extra[0]!r}" if _IDENT_RE.match(str(extra[0]))
                      else "unexpected field")
        missing = [k for k in required if k not in v]
        if missing:
            self.fail(where, f"missing field {missing[0]!r}")
        return v

    def seq(self, v: Any, where: str, max_len: int) -> list:
        if not isinstance(v, list):
            self.fail(where, "not an array")
        if len(v) > max_len:
            self.fail(where, f"array of {len(v)} items, more than this run's {max_len}")
        return v

    def per_class(self, v: Any, where: str, item: Callable[[Any, str], None]) -> None:
        """Per-class figures: {class: x} over the run's classes, or a list of one per class."""
        if isinstance(v, dict):
            for k, x in v.items():
                if k not in self.limits.classes:
                    self.fail(where, "key is not one of the run's classes")
                item(x, f"{where}.{k}")
        else:
            for i, x in enumerate(self.seq(v, where, len(self.limits.classes))):
                item(x, f"{where}[{i}]")

    def free(self, v: Any, where: str, depth: int = 0) -> None:
        """Small free-form diagnostics (delegate info): scalars, short lists, shallow dicts."""
        if isinstance(v, (dict, list)) and depth > 2:
            self.fail(where, "nested too deeply")
        if isinstance(v, dict):
            if len(v) > 32:
                self.fail(where, "more than 32 fields")
            for k, x in v.items():
                self.ident(k, f"{where} key")
                if k.endswith("hash") and isinstance(x, str) and _HASH_RE.match(x):
                    continue  # a model or plan hash names host-built bytes, nothing of the user
                self.free(x, f"{where}.{k}", depth + 1)
        elif isinstance(v, list):
            for i, x in enumerate(self.seq(v, where, 16)):
                self.free(x, f"{where}[{i}]", depth + 1)
        elif isinstance(v, str):
            self.text(v, where)
        elif v is not None and not isinstance(v, bool):
            self.num(v, where, nan=True)


PHASES = ("head", "finetune")
DELEGATES = ("nnapi", "gpu", "xnnpack", "cpu")
DELEGATION_FIELDS = ("delegate", "delegated_nodes", "total_nodes")
MAX_NODES = 100_000
EPOCH_FIELDS = ("phase", "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


def _check_epoch_fields(c: _Checker, e: dict, where: str) -> None:
    c.enum(e.get("phase"), f"{where}.phase", PHASES)
    c.int_(e.get("epoch"), f"{where}.epoch", lo=1, hi=c.limits.epochs)
    for k in ("train_loss", "test_loss"):
        c.num(e.get(k), f"{where}.{k}", lo=0, nan=True)
    for k in ("train_acc", "test_acc"):
        c.num(e.get(k), f"{where}.{k}", lo=0, hi=1)
    c.num(e.get("seconds"), f"{where}.seconds", lo=0)


def _check_delegate(c: _Checker, d: dict, where: str) -> None:
    c.enum(d.get("requested"), f"{where}.requested", DELEGATES, null=True)
    c.ident(d.get("used"), f"{where}.used", null=True)
    c.text(d.get("reason"), f"{where}.reason")
    c.free(d.get("info"), f"{where}.info")


def check_event(ev: Any, limits: EgressLimits, last_seq: int) -> None:
    """Refuse an event that is not the contract's shape or carries more than progress."""
    c = _Checker(limits, max_numbers=64)
    base = ("seq", "t", "kind")
    if not isinstance(ev, dict):
        c.fail("event", "not an object")
    for k in base:
        if k not in ev:
            c.fail("event", f"missing field {k!r}")
    if isinstance(ev["seq"], bool) or not isinstance(ev["seq"], int) or ev["seq"] <= last_seq:
        c.fail("event.seq", f"not an integer above the previous seq {last_seq}")
    c.num(ev["t"], "event.t", lo=0, null=False)
    kind = ev["kind"]
    c.enum(kind, "event.kind", contract.EVENT_KINDS)
    w = f"{kind} event"
    if kind == "start":
        c.obj(ev, w, (*base, "agent_version", "interpreter", "pid", "python"))
        c.text(ev.get("agent_version"), f"{w}.agent_version", max_len=WORD_MAX)
        c.text(ev.get("interpreter"), f"{w}.interpreter", max_len=WORD_MAX)
        c.text(ev.get("python"), f"{w}.python", max_len=WORD_MAX)
        c.int_(ev.get("pid"), f"{w}.pid", null=True)
    elif kind == "stage":
        c.obj(ev, w, (*base, "stage", "done", "total"), required=("stage",))
        c.ident(ev["stage"], f"{w}.stage")
        c.int_(ev.get("done"), f"{w}.done", null=True)
        c.int_(ev.get("total"), f"{w}.total", null=True)
        if isinstance(ev.get("done"), int) and isinstance(ev.get("total"), int) \
                and ev["done"] > ev["total"]:
            c.fail(w, "done exceeds total")
    elif kind == "delegate":
        c.obj(ev, w, (*base, "requested", "used", "reason", "info"))
        _check_delegate(c, ev, w)
    elif kind == "epoch":
        c.obj(ev, w, (*base, *EPOCH_FIELDS), required=("phase", "epoch"))
        _check_epoch_fields(c, ev, w)
    elif kind == "checkpoint":
        c.obj(ev, w, (*base, "epoch"), required=("epoch",))
        c.int_(ev["epoch"], f"{w}.epoch", lo=0, hi=limits.epochs)
    elif kind == "done":
        c.obj(ev, w, (*base, "status", "accuracy"), required=("status",))
        c.enum(ev["status"], f"{w}.status", ("finished", "cancelled"))
        c.num(ev.get("accuracy"), f"{w}.accuracy", lo=0, hi=1)
    elif kind == "error":
        c.obj(ev, w, (*base, "code", "message"), required=("message",))
        c.ident(ev.get("code"), f"{w}.code", null=True)
        c.text(ev["message"], f"{w}.message", null=False)
    elif kind == "log":
        c.obj(ev, w, (*base, "level", "message"), required=("message",))
        c.ident(ev.get("level"), f"{w}.level", null=True)
        c.text(ev["message"], f"{w}.message", null=False)


LOG_EVENTS_MAX = 256  # free-text log lines a run may send (the agent sends none today)


@dataclass
class StreamState:
    """What the events so far allow next: progress only moves forward within a stage, so a
    long stream of stage events carries progress, not a payload in its numbers."""

    stages: dict[str, tuple[int | None, int]] = field(default_factory=dict)  # total, done
    logs: int = 0


def check_stream(ev: dict, state: StreamState) -> None:
    """Rules across events (after `check_event`); updates `state`. An agent (re)start begins
    its stages afresh."""
    kind = ev["kind"]
    w = f"{kind} event"
    if kind == "start":
        state.stages.clear()
    elif kind == "stage":
        total, done = ev.get("total"), ev.get("done") or 0
        seen = state.stages.get(ev["stage"])
        if seen is not None:
            if total != seen[0]:
                raise _Refusal(f"{w}.total: changed within the stage")
            if done < seen[1]:
                raise _Refusal(f"{w}.done: went back within the stage")
        state.stages[ev["stage"]] = (total, done)
    elif kind == "log":
        state.logs += 1
        if state.logs > LOG_EVENTS_MAX:
            raise _Refusal(f"{w}: more than {LOG_EVENTS_MAX} log lines in one run")


def check_result(res: Any, limits: EgressLimits, run_key: str) -> None:
    """Refuse a result that is not the contract's shape or carries more than aggregates."""
    c = _Checker(limits, max_numbers=limits.max_numbers)
    c.obj(res, "result", contract.RESULT_KEYS, required=("schema", "run_key", "status"))
    c.int_(res["schema"], "result.schema", lo=1, hi=100)
    if res["run_key"] != run_key:
        c.fail("result.run_key", "belongs to another run")
    c.enum(res["status"], "result.status", ("finished", "cancelled", "failed"))
    c.num(res.get("accuracy"), "result.accuracy", lo=0, hi=1)
    if res.get("per_class_accuracy") is not None:
        c.per_class(res["per_class_accuracy"], "result.per_class_accuracy",
                    lambda x, w: c.num(x, w, lo=0, hi=1))
    for i, e in enumerate(c.seq(res.get("epochs") or [], "result.epochs", limits.epochs)):
        c.obj(e, f"result.epochs[{i}]", EPOCH_FIELDS, required=("phase", "epoch"))
        _check_epoch_fields(c, e, f"result.epochs[{i}]")
    timing = res.get("timing") or {}
    if not isinstance(timing, dict) or len(timing) > 16:
        c.fail("result.timing", "not an object of at most 16 timings")
    for k, v in timing.items():
        c.ident(k, "result.timing key")
        if k == "train_per_epoch":
            for i, x in enumerate(c.seq(v, "result.timing.train_per_epoch", limits.epochs)):
                c.num(x, f"result.timing.train_per_epoch[{i}]", lo=0)
        else:
            c.num(v, f"result.timing.{k}", lo=0)
    c.num(res.get("peak_memory_mb"), "result.peak_memory_mb", lo=0)
    if res.get("delegate") is not None:
        c.obj(res["delegate"], "result.delegate", ("requested", "used", "reason", "info"))
        _check_delegate(c, res["delegate"], "result.delegate")
    delegation = res.get("delegation")
    if delegation is not None:
        c.obj(delegation, "result.delegation", ("frozen", "train"))
        for model, d in delegation.items():
            w = f"result.delegation.{model}"
            c.obj(d, w, DELEGATION_FIELDS, required=("delegate",))
            c.enum(d["delegate"], f"{w}.delegate", ("xnnpack", "nnapi", "gpu", "none"))
            for k in DELEGATION_FIELDS[1:]:
                c.int_(d.get(k), f"{w}.{k}", hi=MAX_NODES, null=True)
    versions = res.get("versions") or {}
    if not isinstance(versions, dict) or len(versions) > 8:
        c.fail("result.versions", "not an object of at most 8 versions")
    for k, v in versions.items():
        c.ident(k, "result.versions key")
        c.text(v, f"result.versions.{k}", max_len=WORD_MAX)
    phases = res.get("phases")
    if phases is not None:
        c.obj(phases, "result.phases", PHASES)
        for name, ph in phases.items():
            w = f"result.phases.{name}"
            c.obj(ph, w, ("epochs", "ran", "skipped"))
            c.int_(ph.get("epochs"), f"{w}.epochs", hi=limits.epochs, null=True)
            c.int_(ph.get("ran"), f"{w}.ran", hi=limits.epochs, null=True)
            c.text(ph.get("skipped"), f"{w}.skipped")
    counts = res.get("counts")
    if counts is not None:
        skips = ("skipped_corrupt", "skipped_too_large", "skipped_unsupported")
        c.obj(counts, "result.counts", ("train", "test", *skips, "per_class_train",
                                        "per_class_test"))
        for k in ("train", "test", *skips):
            c.int_(counts.get(k), f"result.counts.{k}", null=True)
        for k in ("per_class_train", "per_class_test"):
            if counts.get(k) is not None:
                c.per_class(counts[k], f"result.counts.{k}",
                            lambda x, w: c.int_(x, w, null=True))


    data = res.get("data")
    if data is not None:
        c.obj(data, "result.data", ("decode", "orientation", "max_pixels"))
        c.enum(data.get("decode"), "result.data.decode", ("fast", "exact"), null=True)
        c.enum(data.get("orientation"), "result.data.orientation", ("exif", "ignore"),
               null=True)
        c.int_(data.get("max_pixels"), "result.data.max_pixels", lo=1, null=True)


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refusal("a key appears twice")
        out[k] = v
    return out


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def parse_json(raw: bytes) -> Any:
    """Decode admitted bytes: UTF-8 text, one JSON value, no duplicate keys, shallow."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refusal("not UTF-8 text") from None
    try:
        value = json.loads(text, object_pairs_hook=_strict_pairs)
    except ValueError:
        raise _Refusal("not valid JSON") from None
    if _depth(value) > 6:
        raise _Refusal("JSON nested too deeply")
    return value


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# The guard


class EgressGuard:
    """Reads one run's events and result back from a device; refuses and records the rest."""

    def __init__(
        self,
        *,
        link: DeviceLink,
        session: Session,
        run_id: int | None,
        run_dir: str,
        run_key: str,
        limits: EgressLimits,
        device_id: int | None = None,
    ) -> None:
        runs = posixpath.join(link.root, "runs")
        if posixpath.normpath(run_dir) != run_dir or posixpath.dirname(run_dir) != runs:
            raise ValueError(f"run folder {run_dir} is not a run folder under {runs}")
        self.link = link
        self.session = session
        self.run_id = run_id
        self.device_id = device_id
        self.run_dir = run_dir
        self.run_key = run_key
        self.limits = limits
        self.events_offset = 0
        self.last_seq = 0
        self.torn = 0
        self.stream = StreamState()
        # Byte offset of the first event line whose seq does not go up (two agents wrote the
        # file at once), once a read was refused for it; runner/recover.py acts on it.
        self.order_break_at: int | None = None

    @property
    def events_path(self) -> str:
        return posixpath.join(self.run_dir, contract.EVENTS_FILE)

    @property
    def result_path(self) -> str:
        return posixpath.join(self.run_dir, contract.RESULT_FILE)

    # -------------------------------------------------------------- public reads

    def read(self, device_path: str) -> Any:
        """Read any device path through the guard: only this run's two files are admitted."""
        if device_path == self.result_path:
            return self.read_result()
        if device_path == self.events_path:
            return self.read_events()
        self._fetch(device_path, 0, 1)  # refuses (and records) every other path
        raise AssertionError("unreachable: every other path is refused")

    def read_result(self) -> dict | None:
        """result.json, checked; None when the agent has not written it."""
        path = self.result_path
        raw = self._fetch(path, 0, contract.EGRESS_ALLOWED[contract.RESULT_FILE])
        if raw is None:
            return None
        try:
            value = parse_json(raw)
            check_result(value, self.limits, self.run_key)
        except _Refusal as r:
            self._refuse(path, "metrics", len(raw), _sha(raw), r.reason)
        self._record("pull", path, len(raw), _sha(raw))
        return value

    def read_events(self) -> list[dict]:
        """The events appended since the last read (complete lines only), checked."""
        path = self.events_path
        raw = self._fetch(path, self.events_offset, EVENTS_CHUNK)
        if not raw:
            return []
        end = raw.rfind(b"\n") + 1
        events: list[dict] = []
        last, torn = self.last_seq, self.torn
        start = after = 0  # where the current line begins in `raw`, where the next does
        try:
            if end == 0 and len(raw) >= LINE_MAX:
                raise _Refusal(f"an event line longer than {LINE_MAX} bytes")
            for n, line in enumerate(raw[:end].splitlines(), start=1):
                where = f"line {n} after byte {self.events_offset}"
                start, after = after, after + len(line) + 1
                if len(line) > LINE_MAX:
                    raise _Refusal(f"{where}: an event line longer than {LINE_MAX} bytes")
                try:
                    ev = parse_json(line)
                except _Refusal as r:
                    # A killed agent can leave a cut line; on resume it ends it and goes on.
                    if r.reason == "not valid JSON" and _TORN_RE.match(line) and torn < TORN_MAX:
                        torn += 1
                        continue
                    raise _Refusal(f"{where}: {r.reason}") from None
                if isinstance(ev, dict) and type(ev.get("seq")) is int and ev["seq"] <= last:
                    self.order_break_at = self.events_offset + start
                try:
                    check_event(ev, self.limits, last)
                    check_stream(ev, self.stream)
                except _Refusal as r:
                    raise _Refusal(f"{where}: {r.reason}") from None
                last = ev["seq"]
                events.append(ev)
        except _Refusal as r:
            self._refuse(path, "metrics", len(raw), _sha(raw), r.reason)
        # Every byte that crossed counts, the partial last line included (it is read again).
        note = f"{torn - self.torn} cut-short event line(s) skipped" if torn > self.torn else None
        self._record("pull", path, len(raw), _sha(raw), note)
        self.torn = torn
        self.events_offset += end
        self.last_seq = last
        return events

    # -------------------------------------------------------------- internals

    def _path_problem(self, path: str) -> str | None:
        if not path.startswith("/") or posixpath.normpath(path) != path:
            return "not a plain absolute path"
        if posixpath.dirname(path) != self.run_dir:
            return "outside this run's folder"
        if posixpath.basename(path) not in contract.EGRESS_ALLOWED:
            return "not one of the files a run may send back (events.jsonl, result.json)"
        return None

    def _fetch(self, path: str, offset: int, max_bytes: int) -> bytes | None:
        """Checked raw read: path, file type, symlinks and size first, then the bytes."""
        problem = self._path_problem(path)
        kind = "other" if problem else "metrics"
        if problem:
            self._refuse(path, kind, 0, None, problem)
        st = self.link.stat(path)
        if st is None:
            return None
        if st.is_symlink:
            self._refuse(path, kind, 0, None, "a symlink")
        if not st.is_file:
            self._refuse(path, kind, 0, None, "not a regular file")
        if st.real_path != path:
            self._refuse(path, kind, 0, None, "reached through a symlinked folder")
        cap = contract.EGRESS_ALLOWED[posixpath.basename(path)]
        if st.size > cap:
            self._refuse(path, kind, 0, None, f"{st.size} bytes, over its {cap}-byte cap")
        want = min(max_bytes, st.size - offset)
        if want <= 0:
            return b""
        head = self.link.read_file(path, min(SNIFF, want), offset)
        if head.lstrip()[:1] not in (b"{", b""):
            self._refuse(path, kind, len(head), _sha(head), "not JSON text (binary content?)")
        rest = b""
        if len(head) == SNIFF and want > SNIFF:
            rest = self.link.read_file(path, want - len(head), offset + len(head))
        return head + rest

    def _record(self, direction: str, path: str, nbytes: int, sha: str | None,
                reason: str | None = None, kind: str = "metrics") -> None:
        repo.record_transfer(session=self.session, direction=direction, kind=kind,
                             device_path=path, nbytes=nbytes, sha256=sha, run_id=self.run_id,
                             device_id=self.device_id, launcher=self.link.launcher,
                             reason=reason)

    def _refuse(self, path: str, kind: str, nbytes: int, sha: str | None,
                reason: str) -> NoReturn:
        self._record("refused", path, nbytes, sha, reason, kind=kind)
        raise EgressRefused(path, reason)
