"""Every route a hostile agent was seen to use, played against the egress guard: a real local
device folder, a real SQLite ledger and store. Each must be refused, or admitted only as
quantized aggregates, and leave no trace of the photo in the store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from attack import (
    CLASSES,
    LIMITS,
    RUN_KEY,
    assert_no_trace,
    event,
    good_result,
    keys_of,
    make_guard,
    photo,
)

from device_agent import contract
from orchestrator.audit import audit_verdict
from orchestrator.egress import check_result
from orchestrator.errors import EgressRefused
from orchestrator.links.base import OnceRead
from orchestrator.links.local import LocalLink
from orchestrator.runner.ingest import ingest_events, ingest_result
from orchestrator.store import repo

PHOTO = photo()
KEYS = keys_of(PHOTO)
START = event(1, "start", agent_version=contract.AGENT_VERSION, interpreter="ai_edge_litert")


def _refused_result(tmp_path: Path, result: dict) -> tuple[EgressRefused, Path]:
    guard, session, run_id, run_dir, db = make_guard(tmp_path)
    (run_dir / contract.RESULT_FILE).write_text(json.dumps(result))
    with pytest.raises(EgressRefused) as err:
        guard.read_result()
    rows = repo.run_transfers(session=session, run_id=run_id)
    assert [r.direction for r in rows] == ["refused"]
    session.close()
    return err.value, db


def _refused_events(tmp_path: Path, data: bytes) -> tuple[EgressRefused, Path, list]:
    guard, session, run_id, run_dir, db = make_guard(tmp_path)
    (run_dir / contract.EVENTS_FILE).write_bytes(data)
    with pytest.raises(EgressRefused) as err:
        guard.read_events()
    rows = repo.run_transfers(session=session, run_id=run_id)
    session.close()
    return err.value, db, rows


# ------------------------------------------------------------------ the payload routes

def _info_keys() -> dict:
    return {"requested": "cpu", "used": "cpu", "info": {k: True for k in KEYS[:32]}}


@pytest.mark.parametrize("name,result", [
    ("photo as delegate.info keys", good_result(delegate=_info_keys())),
    ("photo as timing key names", good_result(timing={k: 1.0 for k in KEYS[:16]})),
    ("photo as a *hash value", good_result(delegate={
        "used": "cpu", "info": {"plan_hash": PHOTO[:32].hex()}})),
    ("photo as version words", good_result(versions={"numpy": KEYS[0]})),
    ("photo in a reason", good_result(delegate={"used": "cpu", "reason": " ".join(KEYS[:6])})),
    ("photo as booleans", good_result(delegate={"used": "cpu", "info": {
        "xnnpack": True, "fp16": False, "simulated": [bool(b & 1) for b in PHOTO[:64]]}})),
])
def test_a_photo_hidden_in_the_result_is_refused_and_never_stored(tmp_path, name, result):
    """Keys, words, hashes and booleans outside the closed schema refuse the whole result."""
    err, db = _refused_result(tmp_path, result)
    assert "result" in err.reason
    assert_no_trace(db, PHOTO)


@pytest.mark.parametrize("name,line", [
    ("photo as stage names", b"".join(event(i + 2, "stage", stage=k, done=0, total=8)
                                      for i, k in enumerate(KEYS[:4]))),
    ("photo as delegate-event keys", event(2, "delegate", **_info_keys())),
    ("photo as log lines of short words", event(2, "log", message=" ".join(
        k[:39] for k in KEYS[:6]))),
    ("photo as an error message", event(2, "error", code="data", message=KEYS[0])),
    ("photo as an error code", event(2, "error", code=KEYS[0])),
])
def test_a_photo_hidden_in_events_is_refused_and_never_stored(tmp_path, name, line):
    """Event kinds, keys and strings outside the closed schema refuse the read."""
    err, db, rows = _refused_events(tmp_path, START + line)
    assert rows[-1].direction == "refused"
    assert_no_trace(db, PHOTO)


CAMERA_NAMES = ["IMG_0001.CR2", "DSC_0001.NEF", "PXL_20240101_123456789", "DCIM Camera",
                "cat.ｊｐｇ", "/data/local/tmp/orch/../../media/0/p", "img-0001", "pxl-2024",
                "dcim-camera", "screenshot", "cat.cr2"]


@pytest.mark.parametrize("text", CAMERA_NAMES)
@pytest.mark.parametrize("where", ["device", "version", "stage", "code"])
def test_camera_and_storage_names_are_refused_wherever_a_string_goes(tmp_path, text, where):
    """File names of cameras, full-width extensions, storage folders and `..` paths are refused
    in every string the schema has: names, versions, enumerations, codes."""
    if where == "device":
        data = START + event(2, "delegate", used="cpu", info={"device": text})
    elif where == "version":
        guard_result = good_result(versions={"pillow": text})
        err, db = _refused_result(tmp_path, guard_result)
        assert "result.versions.pillow" in err.reason
        return
    elif where == "stage":
        data = START + event(2, "stage", stage=text, done=0, total=8)
    else:
        data = START + event(2, "error", code=text)
    err, db, _ = _refused_events(tmp_path, data)
    assert text not in err.reason  # reasons name the rule, never the content


@pytest.mark.parametrize("text", ["img-0001", "pxl-2024", "dcim-camera", "sdcard-x"])
def test_the_media_name_rule_itself_refuses_names_the_format_allows(text):
    """These names fit the device-name format; only the media-name rule refuses them."""
    assert contract.NAME.admit("sim-npu", LIMITS, "d") == "sim-npu"
    import re

    assert re.fullmatch(contract.NAME.regex, text)
    with pytest.raises(Exception, match="file name, camera name or storage path"):
        check_result(good_result(delegate={"used": "cpu", "info": {"device": text}}), LIMITS,
                     RUN_KEY)


@pytest.mark.parametrize("name,result,rule", [
    ("epochs beyond the run's", good_result(epochs=good_result()["epochs"] * 2),
     "more than this run's 2"),
    ("train_per_epoch beyond the run's", good_result(timing={"train_per_epoch": [0.1] * 3}),
     "more than this run's 2"),
    ("a class that is not the run's", good_result(per_class_accuracy={"cow": 0.5}),
     "not one of the run's classes"),
    ("a count beyond the run's images", good_result(counts={"train": 10_000}),
     "out of range"),
    ("an epoch out of its phase", good_result(epochs=[
        {"phase": "finetune", "epoch": 1}, {"phase": "finetune", "epoch": 2}]),
     "belongs to the head phase"),
    ("a number as a string", good_result(accuracy="0.75"), "not a number"),
    ("a boolean as a number", good_result(accuracy=True), "not a number"),
])
def test_the_numbers_a_run_can_send_are_capped_by_its_job(tmp_path, name, result, rule):
    """Arrays and counts are bounded by the run's epochs, classes and images; types are exact."""
    err, _ = _refused_result(tmp_path, result)
    assert rule in err.reason, err.reason


def test_admitted_numbers_are_quantized_before_they_are_stored(tmp_path):
    """Low bits cannot carry data: the store holds values at the precision orch shows."""
    guard, session, run_id, run_dir, db = make_guard(tmp_path)
    noisy = good_result(
        accuracy=0.7500001234, peak_memory_mb=120.5123456,
        timing={"total": 4.0001234567, "train_per_epoch": [0.30012345, 0.4]},
        epochs=[{"phase": "head", "epoch": 1, "train_loss": 0.693147180559,
                 "train_acc": 0.50000123, "test_loss": 0.000123456789, "test_acc": 0.5,
                 "seconds": 0.3123456789}])
    (run_dir / contract.RESULT_FILE).write_text(json.dumps(noisy))
    result = guard.read_result()
    run = ingest_result(session=session, run_id=run_id, result=result, host_timing={})

    stored = run.result
    assert stored["accuracy"] == 0.75 and stored["peak_memory_mb"] == 120.5
    assert stored["timing"] == {"total": 4.0, "train_per_epoch": [0.3, 0.4]}
    e = stored["epochs"][0]
    assert (e["train_loss"], e["test_loss"], e["train_acc"], e["seconds"]) == (
        0.6931, 0.0001235, 0.5, 0.312)
    losses = repo.run_metrics(session=session, run_id=run_id, key="train_loss")
    assert [m.value for m in losses] == [0.6931]
    assert "0.693147" not in (tmp_path / "orch.db").read_bytes().decode("latin-1")
    session.close()


def test_a_stage_count_that_is_not_on_its_grid_is_refused(tmp_path):
    """Stage progress is a sixteenth of its total: a `done` between grid points is a payload."""
    err, _, _ = _refused_events(tmp_path, START + event(2, "stage", stage="features",
                                                        done=11, total=40))
    assert "progress grid" in err.reason


# ------------------------------------------------------------------ bytes that crossed

def test_the_events_tail_is_checked_before_it_is_recorded(tmp_path):
    """71,673 bytes after the last newline are refused on the read that carried them, and
    counted as crossed, never recorded as an ordinary pull."""
    tail = b"".join(k.encode() for k in KEYS) * 60
    tail = (b'{"seq":2,' + tail)[:71_673]
    err, db, rows = _refused_events(tmp_path, START + tail)
    assert "unfinished last line" in err.reason
    assert [(r.direction, r.bytes) for r in rows] == [("refused", len(START) + len(tail))]
    verdict = audit_verdict(rows)
    assert verdict.verdict == "refused" and not verdict.ok
    assert verdict.headline == (f"{len(START) + len(tail):,} bytes crossed and were refused "
                                "and destroyed on the host")
    assert_no_trace(db, PHOTO)


def test_an_unfinished_line_rewritten_between_reads_is_refused(tmp_path):
    """The tail is read again with the next read; if it changed, the file is not append-only."""
    guard, session, run_id, run_dir, _ = make_guard(tmp_path)
    path = run_dir / contract.EVENTS_FILE
    path.write_bytes(START + b'{"seq":2,"t":17')
    assert [e["seq"] for e in guard.read_events()] == [1]
    path.write_bytes(START + b'{"seq":2,"t":99' + KEYS[0].encode())
    with pytest.raises(EgressRefused, match="not append-only"):
        guard.read_events()
    session.close()


class RacingLink(LocalLink):
    """A device where the agent wins every race: just before each read, `swap` runs."""

    def __init__(self, root: Path, swap) -> None:
        super().__init__(root)
        self.swap = swap

    def read_once(self, device_path: str, offset: int, max_bytes: int, cap: int) -> OnceRead:
        self.swap()
        return super().read_once(device_path, offset, max_bytes, cap)


def test_a_symlink_swapped_in_before_the_read_carries_nothing(tmp_path):
    """result.json becomes a link to a photo between the guard's checks and its read: the one
    no-follow read refuses it and no byte of the photo crosses."""
    gallery = tmp_path / "DCIM"
    gallery.mkdir()
    (gallery / "p.json").write_text(json.dumps(good_result(delegate=_info_keys())))
    state = {}

    def swap() -> None:
        target = state["run_dir"] / contract.RESULT_FILE
        if target.exists() or target.is_symlink():
            target.unlink()
        target.symlink_to(gallery / "p.json")

    link = RacingLink(tmp_path / "device", swap)
    guard, session, run_id, run_dir, db = make_guard(tmp_path, link)
    state["run_dir"] = run_dir
    (run_dir / contract.RESULT_FILE).write_text(json.dumps(good_result()))
    with pytest.raises(EgressRefused, match="symlink"):
        guard.read_result()
    rows = repo.run_transfers(session=session, run_id=run_id)
    assert [(r.direction, r.bytes) for r in rows] == [("refused", 0)]
    assert audit_verdict(rows).ok  # nothing crossed: the guard's refusal is a pass
    session.close()
    assert_no_trace(db, PHOTO)


def test_a_run_folder_swapped_for_a_symlink_carries_nothing(tmp_path):
    """A folder on the way swapped for a link (to a folder of the gallery) is refused too."""
    gallery = tmp_path / "media"
    gallery.mkdir()
    (gallery / contract.EVENTS_FILE).write_bytes(START)
    state = {}

    def swap() -> None:
        run_dir = state["run_dir"]
        if not run_dir.is_symlink():
            os.rename(run_dir, run_dir.with_name("old"))
            run_dir.symlink_to(gallery)

    link = RacingLink(tmp_path / "device", swap)
    guard, session, run_id, run_dir, _ = make_guard(tmp_path, link)
    state["run_dir"] = run_dir
    with pytest.raises(EgressRefused, match="symlink"):
        guard.read_events()
    assert [r.bytes for r in repo.run_transfers(session=session, run_id=run_id)] == [0]
    session.close()


def test_admitted_events_store_only_schema_values(tmp_path):
    """What is stored from events is the admitted event: quantized, no `t` of the agent."""
    guard, session, run_id, run_dir, db = make_guard(tmp_path)
    (run_dir / contract.EVENTS_FILE).write_bytes(
        START + event(2, "epoch", phase="head", epoch=1, train_loss=0.123456789,
                      test_acc=0.5000001, seconds=1.23456789))
    events = guard.read_events()
    assert events[1]["train_loss"] == 0.1235 and events[1]["test_acc"] == 0.5
    assert events[1]["seconds"] == 1.235 and events[1]["t"] != 1.7e9 + 2
    ingest_events(session=session, run_id=run_id, events=events)
    assert "0.123456789" not in (tmp_path / "orch.db").read_bytes().decode("latin-1")
    session.close()
    assert CLASSES == ("cat", "dog")
