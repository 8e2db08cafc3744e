"""The egress guard: the ONLY code that reads anything back from a device.

It admits the run's own `events.jsonl` and `result.json` (contract.EGRESS_ALLOWED) and
nothing else, and admits them only as the contract's closed schema (`contract.RESULT`,
`contract.EVENTS`): known keys, enumerated strings or short fixed formats, catalogue
messages with numeric slots, numbers in range. Numbers are quantized to the precision orch
shows and only the admitted values are handed on to be stored, so what a run can carry out
is bounded (`information_bound`). Each file is read once per poll, bounded in size and
never through a symlink (`orchestrator.read_once`); every read is in the transfer ledger
with the bytes that crossed, refused or not. Refusal reasons name the field and the rule,
never the refused content.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from sqlmodel import Session

from device_agent import contract
from device_agent.schema import Msg, Tally, Violation
from orchestrator.errors import EgressRefused
from orchestrator.store import repo

if TYPE_CHECKING:
    from orchestrator.links.base import DeviceLink

EVENTS_CHUNK = 256 * 1024  # most bytes pulled from events.jsonl per read
LINE_MAX = contract.LINE_MAX  # longest admissible event line
TORN_MAX = contract.STARTS_MAX  # lines cut short by a killed agent that a run may skip
# A line cut short by a killed agent: the start of an event, printable ASCII only; the
# unfinished last line: printable ASCII from its "{".
_TORN_RE = re.compile(rb'\{ ?"seq" ?: ?\d+[ -~]*')
_TAIL_RE = re.compile(rb'(\{[ -~]*)?')


class _Refusal(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EgressLimits:
    """What one run can legitimately send back: its epochs, classes and images bound it."""

    epochs: int
    classes: tuple[str, ...]
    allowed_prefixes: tuple[str, ...] = ()  # kept for callers; no text names a path any more
    head_epochs: int | None = None  # phase of each epoch, when known
    train_per_class: int = 10_000
    test_per_class: int = 10_000

    @property
    def train(self) -> int:
        return self.train_per_class * max(1, len(self.classes))

    @property
    def test(self) -> int:
        return self.test_per_class * max(1, len(self.classes))

    @property
    def images(self) -> int:
        return self.train + self.test

    @property
    def result_cap(self) -> int:
        """Bytes a result.json of this run can need (generous; the schema bounds its content)."""
        need = 8192 + 320 * self.epochs + 160 * len(self.classes)
        return min(need, contract.EGRESS_ALLOWED[contract.RESULT_FILE])


# ---------------------------------------------------------------------------------------------
# The information bound (pure)


@dataclass(frozen=True)
class Bound:
    """The most information admissible events + result of one run could hold."""

    bits: float
    numbers: int  # numbers at their admitted precision
    choices: int  # enumerated choices (and short fixed-format strings)

    @property
    def bytes(self) -> int:
        return math.ceil(self.bits / 8)


def information_bound(limits: EgressLimits) -> Bound:
    """log2 of the number of distinct admissible (events, result) a run can send, bounded
    from above field by field: result, plus each event kind at its budget, plus the choice of
    kind for every event slot. Stage progress counts as which of its grid points were
    reported (a subset), per stage and agent start."""
    total = contract.RESULT.tally(limits)
    slots = 0
    for kind, node in contract.EVENTS.items():
        n = contract.event_budget(kind, limits.epochs)
        slots += n
        if kind == "stage":
            starts_stages = contract.STARTS_MAX * len(contract.STAGES)
            per = math.log2(limits.images + 2) + contract.STAGE_STEPS + 1
            total = total + Tally(per * starts_stages, numbers=2 * n, choices=n)
        else:
            total = total + node.tally(limits).times(n)
    total = total + Tally(slots * math.log2(len(contract.EVENTS) + 1))
    return Bound(bits=total.bits, numbers=total.numbers, choices=total.choices)


def limits_from_params(params: dict[str, Any]) -> EgressLimits:
    """A run's limits from its stored parameters (the job it was given)."""
    head = int(params.get("head_epochs", 0))
    return EgressLimits(epochs=head + int(params.get("finetune_epochs", 0)),
                        classes=tuple(params.get("classes", ())), head_epochs=head,
                        train_per_class=int(params.get("train_per_class", 10_000)),
                        test_per_class=int(params.get("test_per_class", 10_000)))


# ---------------------------------------------------------------------------------------------
# Admission (pure)


def _phase_rule(e: dict, limits: EgressLimits, where: str) -> None:
    if limits.head_epochs is None:
        return
    want = contract.HEAD if e["epoch"] <= limits.head_epochs else contract.FINETUNE
    if e["phase"] != want:
        raise _Refusal(f"{where}.phase: epoch {e['epoch']} belongs to the {want} phase")


def _stage_rule(e: dict, limits: EgressLimits, where: str) -> None:
    if e["done"] > e["total"]:
        raise _Refusal(f"{where}: done exceeds total")


# Rules beyond the schema for an admitted event of a kind.
_EVENT_RULES: dict[str, Callable[[dict, EgressLimits, str], None]] = contract.event_table(
    {"stage": _stage_rule, "epoch": _phase_rule}, every=False)


def check_event(ev: Any, limits: EgressLimits, last_seq: int) -> dict[str, Any]:
    """The admitted event (quantized; `t` dropped: the host keeps its own clock), or a
    refusal when it is not the contract's shape."""
    if not isinstance(ev, dict):
        raise _Refusal("event: not an object")
    for k in contract.EVENT_BASE:
        if k not in ev:
            raise _Refusal(f"event: missing field {k!r}")
    seq = ev["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq <= last_seq:
        raise _Refusal(f"event.seq: not an integer above the previous seq {last_seq}")
    t = ev["t"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise _Refusal("event.t: not a time")
    kind = ev["kind"]
    if not isinstance(kind, str) or kind not in contract.EVENTS:
        raise _Refusal(f"event.kind: not one of {', '.join(contract.EVENT_KINDS)}")
    node = contract.EVENTS[kind]
    body = {k: v for k, v in ev.items() if k not in contract.EVENT_BASE}
    try:
        admitted = node.admit(body, limits, f"{kind} event")
    except Violation as v:
        raise _Refusal(str(v)) from None
    rule = _EVENT_RULES.get(kind)
    if rule is not None:
        rule(admitted, limits, f"{kind} event")
    return {"seq": seq, "kind": kind, **admitted}


@dataclass
class StreamState:
    """What the events so far allow next: each kind within its budget, stage progress only
    forward on its grid, so a long stream of events carries progress, not a payload."""

    stages: dict[str, tuple[int, int]] = field(default_factory=dict)  # total, done
    counts: dict[str, int] = field(default_factory=dict)


def _stream_start(ev: dict, state: StreamState, w: str) -> None:
    state.stages.clear()  # an agent (re)start begins its stages afresh


def _stream_stage(ev: dict, state: StreamState, w: str) -> None:
    total, done = ev["total"], ev["done"]
    if done != contract.stage_step(done, total):
        raise _Refusal(f"{w}.done: not on the stage's progress grid")
    seen = state.stages.get(ev["stage"])
    if seen is not None:
        if total != seen[0]:
            raise _Refusal(f"{w}.total: changed within the stage")
        if done <= seen[1]:
            raise _Refusal(f"{w}.done: did not move forward within the stage")
    state.stages[ev["stage"]] = (total, done)


# Rules across admitted events, for the kinds that have them.
_STREAM_RULES: dict[str, Callable[[dict, StreamState, str], None]] = contract.event_table(
    {"start": _stream_start, "stage": _stream_stage}, every=False)


def check_stream(ev: dict, state: StreamState, limits: EgressLimits) -> None:
    """Rules across admitted events (each kind within its budget, then the kind's own
    rule); updates `state`."""
    kind = ev["kind"]
    w = f"{kind} event"
    n = state.counts.get(kind, 0) + 1
    budget = contract.event_budget(kind, limits.epochs)
    if n > budget:
        raise _Refusal(f"{w}: more than the {budget} a run may send")
    state.counts[kind] = n
    rule = _STREAM_RULES.get(kind)
    if rule is not None:
        rule(ev, state, w)


def check_result(res: Any, limits: EgressLimits, run_key: str) -> dict[str, Any]:
    """The admitted result (quantized, only the schema's fields), or a refusal."""
    if not isinstance(res, dict):
        raise _Refusal("result: not an object")
    if "run_key" not in res:
        raise _Refusal("result: missing field 'run_key'")
    if res["run_key"] != run_key:
        raise _Refusal("result.run_key: belongs to another run")
    try:
        admitted = contract.RESULT.admit({**res, "run_key": None}, limits, "result")
    except Violation as v:
        raise _Refusal(str(v)) from None
    for i, e in enumerate(admitted.get("epochs", [])):
        if e["epoch"] != i + 1:
            raise _Refusal(f"result.epochs[{i}].epoch: not epoch {i + 1}")
        _phase_rule(e, limits, f"result.epochs[{i}]")
    return {"run_key": run_key, **admitted}


def render(catalogue_node: Msg, msg: dict | None) -> str | None:
    from device_agent.schema import render as _render

    return _render(catalogue_node.catalogue, msg)


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refusal("a key appears twice")
        out[k] = v
    return out


def parse_json(raw: bytes) -> Any:
    """Decode admitted bytes: ASCII JSON text (the schema has no other characters), one
    value, no duplicate keys."""
    if not raw.isascii():
        raise _Refusal("not ASCII JSON text (binary content?)")
    try:
        return json.loads(raw.decode("ascii"), object_pairs_hook=_strict_pairs)
    except (ValueError, RecursionError):
        raise _Refusal("not valid JSON") from None


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
        clock: Callable[[], float] = time.time,
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
        self.clock = clock
        self.events_offset = 0
        self.tail = b""  # the unfinished last line read so far (read again with the next)
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

    @property
    def bound(self) -> Bound:
        return information_bound(self.limits)

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
        """result.json, admitted; None when the agent has not written it."""
        path = self.result_path
        raw = self._fetch(path, 0, self.limits.result_cap)
        if raw is None:
            return None
        try:
            value = check_result(parse_json(raw), self.limits, self.run_key)
        except _Refusal as r:
            self._refuse(path, "metrics", len(raw), _sha(raw), r.reason)
        self._record("pull", path, len(raw), _sha(raw))
        return value

    def read_events(self) -> list[dict]:
        """The events appended since the last read (complete lines only), admitted. The
        unfinished last line is checked too, before its bytes are recorded."""
        path = self.events_path
        raw = self._fetch(path, self.events_offset, EVENTS_CHUNK)
        if not raw:
            return []
        end = raw.rfind(b"\n") + 1
        tail = raw[end:]
        events: list[dict] = []
        last, torn = self.last_seq, self.torn
        stream = StreamState(dict(self.stream.stages), dict(self.stream.counts))
        now = round(self.clock())
        start = after = 0  # where the current line begins in `raw`, where the next does
        try:
            if not raw.startswith(self.tail):
                raise _Refusal("events.jsonl changed behind its last line (not append-only)")
            if len(tail) > LINE_MAX or _TAIL_RE.fullmatch(tail) is None:
                raise _Refusal(f"the unfinished last line is not the start of an event of at "
                               f"most {LINE_MAX} bytes")
            for n, line in enumerate(raw[:end].splitlines(), start=1):
                where = f"line {n} after byte {self.events_offset}"
                start, after = after, after + len(line) + 1
                if len(line) > LINE_MAX:
                    raise _Refusal(f"{where}: an event line longer than {LINE_MAX} bytes")
                try:
                    ev = parse_json(line)
                except _Refusal as r:
                    # A killed agent can leave a cut line; on resume it ends it and goes on.
                    if r.reason == "not valid JSON" and _TORN_RE.fullmatch(line) \
                            and torn < TORN_MAX:
                        torn += 1
                        continue
                    raise _Refusal(f"{where}: {r.reason}") from None
                if isinstance(ev, dict) and type(ev.get("seq")) is int and ev["seq"] <= last:
                    self.order_break_at = self.events_offset + start
                try:
                    admitted = check_event(ev, self.limits, last)
                    check_stream(admitted, stream, self.limits)
                except _Refusal as r:
                    raise _Refusal(f"{where}: {r.reason}") from None
                last = admitted["seq"]
                events.append({**admitted, "t": now})
        except _Refusal as r:
            self._refuse(path, "metrics", len(raw), _sha(raw), r.reason)
        # Every byte that crossed counts, the unfinished line included (it is read again).
        note = f"{torn - self.torn} cut-short event line(s) skipped" if torn > self.torn else None
        self._record("pull", path, len(raw), _sha(raw), note)
        self.torn = torn
        self.events_offset += end
        self.tail = tail
        self.last_seq = last
        self.stream = stream
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
        """One bounded, no-follow read of an allowed path; None when the file is absent."""
        problem = self._path_problem(path)
        if problem:
            self._refuse(path, "other", 0, None, problem)
        cap = contract.EGRESS_ALLOWED[posixpath.basename(path)]
        if posixpath.basename(path) == contract.RESULT_FILE:
            cap = self.limits.result_cap
        got = self.link.read_once(path, offset, max_bytes, cap)
        if got.status == "none":
            return None
        if got.status != "ok":
            reason = {"link": "a symlink (the file or a folder on its way)",
                      "other": "not a regular file",
                      "big": f"{got.size} bytes, over its {cap}-byte cap",
                      "binary": "not ASCII JSON text (binary content?), not sent by the phone",
                      }.get(
                got.status, f"unreadable ({got.status})")
            data = got.data
            self._refuse(path, "metrics", len(data), _sha(data) if data else None, reason)
        return got.data

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
