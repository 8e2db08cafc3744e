"""The egress guard on a real local device folder and a real SQLite ledger (no models needed)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device_agent import contract
from orchestrator.egress import EgressGuard, EgressLimits
from orchestrator.errors import EgressRefused
from orchestrator.links.local import LocalLink
from orchestrator.store import repo
from orchestrator.store.db import open_session

RUN_KEY = "7-abc123"
CLASSES = ("cat", "dog")


def jpeg_bytes(size: int = 64) -> bytes:
    """A real JPEG photo-like image (noise), as an agent might try to smuggle."""
    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def good_result(**over) -> dict:
    epochs = [{"phase": "head", "epoch": 1, "train_loss": 0.69, "train_acc": 0.5,
               "test_loss": 0.68, "test_acc": 0.55, "seconds": 0.3},
              {"phase": "finetune", "epoch": 2, "train_loss": None, "train_acc": 0.6,
               "test_loss": 0.61, "test_acc": 0.7, "seconds": 0.4}]
    res = {"schema": 1, "run_key": RUN_KEY, "status": "finished", "accuracy": 0.7,
           "per_class_accuracy": {"cat": 0.6, "dog": 0.8}, "epochs": epochs,
           "timing": {"decode": 1.0, "features": 2.0, "train": 0.7, "eval": 0.1, "total": 4.0,
                      "train_per_epoch": [0.3, 0.4]},
           "peak_memory_mb": 120.5,
           "delegate": {"requested": "nnapi", "used": "cpu",
                        "reason": {"code": "nnapi_unavailable"},
                        "info": {"xnnpack": True, "threads": 2, "device": "nnapi-reference"}},
           "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert",
                        "python": "3.11.7", "numpy": "2.1.0"},
           "counts": {"train": 8, "test": 8, "skipped_corrupt": 0, "skipped_too_large": 1,
                      "skipped_unsupported": 2, "per_class_train": {"cat": 4, "dog": 4},
                      "per_class_test": {"cat": 4, "dog": 4}},
           "phases": {"head": {"epochs": 1, "ran": 1},
                      "finetune": {"epochs": 1, "ran": 1, "skipped": None}},
           "data": {"decode": "fast", "orientation": "exif", "max_pixels": 50_000_000}}
    res.update(over)
    return res


@pytest.fixture
def env(tmp_path):
    """A LocalLink device folder, a store with one run, and a guard for that run's folder."""
    link = LocalLink(tmp_path / "device")
    session = open_session(f"sqlite:///{tmp_path / 'orch.db'}")
    exp = repo.upsert_experiment(session=session, name="e", spec={}, spec_hash="x")
    run = repo.create_run(session=session, experiment_id=exp.id, variant="method2")
    run_dir = os.path.join(link.root, "runs", RUN_KEY)
    os.makedirs(run_dir)
    guard = EgressGuard(link=link, session=session, run_id=run.id, run_dir=run_dir,
                        run_key=RUN_KEY,
                        limits=EgressLimits(epochs=2, classes=CLASSES,
                                            allowed_prefixes=(link.root,)))
    yield guard, session, run.id, Path(run_dir)
    session.close()


def ledger(session, run_id):
    return repo.run_transfers(session=session, run_id=run_id)


def test_planted_jpeg_beside_events_is_refused_and_recorded(env):
    """A photo planted in the run folder is refused by name, unread, and the refusal logged."""
    guard, session, run_id, run_dir = env
    (run_dir / "photo.jpg").write_bytes(jpeg_bytes())

    with pytest.raises(EgressRefused) as err:
        guard.read(str(run_dir / "photo.jpg"))

    rows = ledger(session, run_id)
    assert [(r.direction, r.kind, r.bytes) for r in rows] == [("refused", "other", 0)]
    assert rows[0].device_path == str(run_dir / "photo.jpg")
    assert "not one of the files" in err.value.reason


def test_jpeg_renamed_result_json_is_refused_without_a_byte_crossing(env):
    """A JPEG named result.json is refused by the reader itself: not one byte crosses."""
    guard, session, run_id, run_dir = env
    photo = jpeg_bytes(32)
    (run_dir / contract.RESULT_FILE).write_bytes(photo)

    with pytest.raises(EgressRefused, match="not ASCII JSON"):
        guard.read_result()

    (row,) = ledger(session, run_id)
    assert (row.direction, row.kind, row.bytes) == ("refused", "metrics", 0)


def test_oversized_result_is_refused_before_reading(env):
    """A result over its size cap is refused without a byte read, and recorded."""
    guard, session, run_id, run_dir = env
    cap = contract.EGRESS_ALLOWED[contract.RESULT_FILE]
    padded = good_result(versions={"agent": "0.1.0", "pad": "x" * cap})
    (run_dir / contract.RESULT_FILE).write_text(json.dumps(padded))

    with pytest.raises(EgressRefused, match="cap"):
        guard.read_result()

    (row,) = ledger(session, run_id)
    assert (row.direction, row.bytes) == ("refused", 0)


@pytest.mark.parametrize("rel", [
    "runs/7-abc123/../8-other/result.json",  # `..`
    "runs/8-other/result.json",  # another run's folder
    "runs/7-abc123/cache/features.npz",  # agent-private
    "runs/7-abc123/checkpoint/state.npz",
    "runs/7-abc123/job.json",
    "runs/7-abc123//result.json",
])
def test_paths_outside_the_runs_two_files_are_refused(env, rel):
    """Every path but the run's own events.jsonl and result.json is refused and recorded."""
    guard, session, run_id, run_dir = env
    root = run_dir.parent.parent
    (root / "runs" / "8-other").mkdir()
    (root / "runs" / "8-other" / "result.json").write_text(json.dumps(good_result()))

    with pytest.raises(EgressRefused):
        guard.read(f"{root}/{rel}")

    (row,) = ledger(session, run_id)
    assert (row.direction, row.kind, row.bytes) == ("refused", "other", 0)


def test_symlinked_result_is_refused(env, tmp_path):
    """result.json as a symlink (e.g. to a photo) is refused without following it."""
    guard, session, run_id, run_dir = env
    photo = tmp_path / "DCIM.jpg"
    photo.write_bytes(jpeg_bytes())
    (run_dir / contract.RESULT_FILE).symlink_to(photo)

    with pytest.raises(EgressRefused, match="symlink"):
        guard.read_result()
    assert ledger(session, run_id)[0].bytes == 0


def _b64_feature_map(n: int = 16) -> str:
    return base64.b64encode(np.random.default_rng(1).random(n).astype(np.float32)
                            .tobytes()).decode()


@pytest.mark.parametrize("name,result,rule", [
    ("unknown key", good_result(thumbnail=[1, 2]), "unexpected field"),
    ("another run", good_result(run_key="9-zzz"), "another run"),
    ("missing status", {k: v for k, v in good_result().items() if k != "status"},
     "missing field"),
    ("accuracy > 1", good_result(accuracy=3.5), "out of range"),
    ("feature map as epochs", good_result(epochs=[{"phase": "head", "epoch": 1}] * 50),
     "more than this run's"),
    ("free text in reason", good_result(delegate={"used": "cpu", "reason": "x"}),
     "not a {code, args} message"),
    ("per-image predictions", good_result(per_class_accuracy=[0.5] * 400), "not an object"),
    ("image names as keys", good_result(per_class_accuracy={"cat.1.jpg": 1.0}),
     "not one of the run's classes"),
    ("base64 blob in reason", good_result(
        delegate={"used": "cpu", "reason": {"code": _b64_feature_map()}}), "not a code"),
    ("file name as device", good_result(delegate={"used": "cpu",
                                                  "info": {"device": "cat.1.jpg"}}), "not of"),
    ("blob under a hash key", good_result(delegate={"used": "cpu",
                                                    "info": {"plan_hash": _b64_feature_map()}}),
     "unexpected field"),
    ("pixels in info", good_result(delegate={"used": "cpu", "info": {"px": [[[0, 1, 2]] * 8] * 8}}),
     "unexpected field"),
    ("unknown decode path", good_result(data={"decode": "lossy", "orientation": "exif",
                                              "max_pixels": 1}), "not one of fast, exact"),
    ("text in the data section", good_result(data={"decode": "fast", "note": "x"}),
     "unexpected field"),
    ("unknown skip count", good_result(counts={"train": 1, "skipped_names": 3}),
     "unexpected field"),
    ("unknown delegate", good_result(delegation={"train": {"delegate": "npu-x"}}),
     "not one of"),
    ("text in a node count", good_result(delegation={"frozen": {
        "delegate": "xnnpack", "delegated_nodes": "cat.1.jpg", "total_nodes": 3}}),
     "not an integer"),
    ("a third model", good_result(delegation={"photos": {"delegate": "none"}}),
     "unexpected field"),
    ("delegation as the agent reports it", good_result(delegation={
        "frozen": {"delegate": "nnapi", "delegated_nodes": 24, "total_nodes": 24},
        "train": {"delegate": "xnnpack", "delegated_nodes": None, "total_nodes": 894}}),
     None),
    ("numbers smuggled in timing", good_result(
        timing={f"t{i}": float(i) for i in range(16)}), "unexpected field"),
    ("the contract's own result", good_result(), None),
])
def test_results_that_break_the_schema_or_smuggle_are_refused(env, name, result, rule):
    """Schema violations and data that is not aggregate metrics are refused and recorded."""
    guard, session, run_id, run_dir = env
    (run_dir / contract.RESULT_FILE).write_text(json.dumps(result))

    if rule is None:  # the control case: within every bound, so admitted
        assert guard.read_result() is not None
        return
    with pytest.raises(EgressRefused) as err:
        guard.read_result()

    assert rule in err.value.reason, err.value.reason
    (row,) = ledger(session, run_id)
    assert row.direction == "refused" and row.reason == err.value.reason
    assert "cat.1.jpg" not in row.reason and "DCIM" not in row.reason  # reasons never echo data


@pytest.mark.parametrize("raw,rule", [
    (b'{"schema": 1, "status": "finished"' + "é".encode("latin-1") + b"}", "not ASCII"),
    (b'{"schema": 1, oops}', "not valid JSON"),
    (b'{"schema": 1, "schema": 2}', "twice"),
])
def test_undecodable_results_are_refused(env, raw, rule):
    """Non-ASCII (never sent), invalid JSON and duplicate keys are refused."""
    guard, session, run_id, run_dir = env
    (run_dir / contract.RESULT_FILE).write_bytes(raw)
    with pytest.raises(EgressRefused, match=rule):
        guard.read_result()
    assert ledger(session, run_id)[0].bytes == (0 if rule == "not ASCII" else len(raw))


def test_a_valid_result_is_admitted_and_its_pull_recorded(env):
    """The contract's result passes; the ledger holds one pull with its size and sha256."""
    guard, session, run_id, run_dir = env
    raw = json.dumps(good_result()).encode()
    (run_dir / contract.RESULT_FILE).write_bytes(raw)

    result = guard.read_result()

    assert result["accuracy"] == 0.7
    (row,) = ledger(session, run_id)
    assert (row.direction, row.kind, row.bytes) == ("pull", "metrics", len(raw))
    assert row.sha256 == hashlib.sha256(raw).hexdigest()


def _event(seq: int, kind: str, **fields) -> bytes:
    return (json.dumps({"seq": seq, "t": 1.7e9 + seq, "kind": kind, **fields}) + "\n").encode()


def test_events_are_read_incrementally_and_every_pulled_byte_counts(env):
    """Offset reads return complete lines only; a partial line is pulled again and counted."""
    guard, session, run_id, run_dir = env
    path = run_dir / contract.EVENTS_FILE
    first = _event(1, "start", agent_version="0.1.0", interpreter="ai_edge_litert", pid=4)
    second = _event(2, "stage", stage="features", done=0, total=8)
    third = _event(3, "epoch", phase="head", epoch=1, train_loss=0.7, train_acc=0.5,
                   test_loss=0.69, test_acc=0.5, seconds=0.1)
    path.write_bytes(first + second + third[:10])

    got1 = guard.read_events()
    with open(path, "ab") as f:
        f.write(third[10:])
    got2 = guard.read_events()
    got3 = guard.read_events()

    assert [e["seq"] for e in got1] == [1, 2] and [e["seq"] for e in got2] == [3]
    assert got3 == []
    pulled = [r.bytes for r in ledger(session, run_id)]
    assert pulled == [len(first + second) + 10, len(third)]
    assert guard.events_offset == path.stat().st_size


@pytest.mark.parametrize("line,rule", [
    (_event(1, "epoch", phase="head", epoch=9, test_acc=0.5), "out of range"),
    (_event(1, "error", code="data", message="bad file /sdcard/DCIM/Camera/x.jpg"),
     "not a {code, args} message"),
    (_event(1, "stage", stage="features", done=9, total=3), "done exceeds total"),
    (_event(1, "log", message="features " + _b64_feature_map()), "event.kind"),
    (_event(1, "stage", stage="features", done=1, total=2, pixels=[1, 2, 3]), "unexpected"),
    (_event(1, "start") + _event(1, "start"), "seq"),
    (b"\xff\xd8\xff\xe0" + jpeg_bytes()[4:200] + b"\n", "not ASCII JSON"),
])
def test_bad_events_are_refused_and_recorded(env, line, rule):
    """An event off the contract (or an image appended to the log) refuses the read."""
    guard, session, run_id, run_dir = env
    (run_dir / contract.EVENTS_FILE).write_bytes(line)

    with pytest.raises(EgressRefused) as err:
        guard.read_events()

    assert rule in err.value.reason, err.value.reason
    assert ledger(session, run_id)[-1].direction == "refused"


def test_a_line_cut_short_by_a_killed_agent_is_skipped(env):
    """A torn line, ended by the resumed agent, is skipped (and noted), not trusted."""
    guard, session, run_id, run_dir = env
    torn = _event(2, "epoch", phase="head", epoch=1)[:25] + b"\n"
    (run_dir / contract.EVENTS_FILE).write_bytes(
        _event(1, "start") + torn + _event(2, "checkpoint", epoch=0))

    events = guard.read_events()

    assert [e["seq"] for e in events] == [1, 2]
    assert "cut-short" in (ledger(session, run_id)[0].reason or "")


def _stages(*pairs: tuple[str, int, int], start_at: int = 1) -> tuple[bytes, int]:
    out, seq = b"", start_at
    for stage, done, total in pairs:
        out += _event(seq, "stage", stage=stage, done=done, total=total)
        seq += 1
    return out, seq


def test_stage_progress_that_goes_back_is_refused_and_recorded(env):
    """Numbers in a stream of stage events only move forward: 'progress' that jumps around
    would be a channel for data, so it fails the run and the ledger says why."""
    guard, session, run_id, run_dir = env
    start = _event(1, "start", agent_version="0.1.0", interpreter="ai_edge_litert", pid=4)
    body, _ = _stages(("features", 75, 600), ("features", 300, 600), ("features", 38, 600),
                      start_at=2)
    (run_dir / contract.EVENTS_FILE).write_bytes(start + body)
    with pytest.raises(EgressRefused) as err:
        guard.read_events()
    assert "did not move forward within the stage" in err.value.message
    (row,) = [r for r in ledger(session, run_id) if r.direction == "refused"]
    assert "did not move forward" in row.reason


def test_a_restarted_agent_may_begin_its_stages_again(env):
    """After a resume the agent's `start` event opens the stages afresh; totals hold."""
    guard, session, run_id, run_dir = env
    first = _event(1, "start", agent_version="0.1.0", interpreter="ai_edge_litert", pid=4)
    a, seq = _stages(("features", 0, 600), ("features", 300, 600), start_at=2)
    again = _event(seq, "start", agent_version="0.1.0", interpreter="ai_edge_litert", pid=5)
    b, seq = _stages(("features", 0, 600), ("features", 600, 600), start_at=seq + 1)
    (run_dir / contract.EVENTS_FILE).write_bytes(first + a + again + b)
    assert len(guard.read_events()) == 6
    changed, _ = _stages(("features", 450, 900), start_at=seq)
    with open(run_dir / contract.EVENTS_FILE, "ab") as f:
        f.write(changed)
    with pytest.raises(EgressRefused) as err:
        guard.read_events()
    assert "changed within the stage" in err.value.message


def test_more_events_of_a_kind_than_a_run_may_send_are_refused(env):
    """Each kind has a budget per run (here: agent starts), so the bound holds."""
    guard, session, run_id, run_dir = env
    lines = b"".join(_event(i, "start") for i in range(1, contract.STARTS_MAX + 2))
    (run_dir / contract.EVENTS_FILE).write_bytes(lines)
    with pytest.raises(EgressRefused) as err:
        guard.read_events()
    assert f"more than the {contract.STARTS_MAX}" in err.value.message
