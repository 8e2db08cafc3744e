"""The privacy verdict, computed from ledger rows alone (orchestrator/audit.py)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.audit import audit_verdict


@dataclass
class Row:
    direction: str
    kind: str
    device_path: str
    bytes: int = 0
    reason: str | None = None


ROOT = "/data/local/tmp/orch"


def _clean_ledger() -> list[Row]:
    return [
        Row("push", "agent", f"{ROOT}/agent/a.tar", 4000),
        Row("push", "model", f"{ROOT}/models/h/frozen.tflite", 900_000),
        Row("push", "model", f"{ROOT}/models/h/train.tflite", 600_000),
        Row("push", "job", f"{ROOT}/runs/r/job.json", 800),
        Row("skipped", "model", f"{ROOT}/models/h/meta.json", 300, "same sha256"),
        Row("pull", "metrics", f"{ROOT}/runs/r/events.jsonl", 5000),
        Row("pull", "metrics", f"{ROOT}/runs/r/result.json", 1200),
        Row("refused", "other", f"{ROOT}/runs/r/cat.jpg", 0, "not the run's events or result"),
    ]


def test_metrics_only_ledger_passes_with_totals_by_kind():
    """Pushes of any kind and metric pulls pass; totals are summed per kind."""
    rows = _clean_ledger()
    v = audit_verdict(rows)
    assert v.verdict == "pass" and v.ok
    assert v.headline == "0 image bytes left the device: only schema data crossed"
    pushed = {t.kind: (t.files, t.bytes) for t in v.pushed_by_kind}
    expected_models = [r.bytes for r in rows if r.direction == "push" and r.kind == "model"]
    assert pushed["model"] == (len(expected_models), sum(expected_models))
    assert v.bytes_pushed == sum(r.bytes for r in rows if r.direction == "push")
    assert v.bytes_pulled == sum(r.bytes for r in rows if r.direction == "pull")
    assert v.skipped == 1 and v.leaked_bytes == 0


def test_refused_reads_are_listed_and_do_not_fail():
    """A refused read is the guard working: listed with its reason, verdict still passes."""
    v = audit_verdict(_clean_ledger())
    assert [(r.device_path.rsplit("/", 1)[1], r.reason) for r in v.refused] == [
        ("cat.jpg", "not the run's events or result")]
    assert v.ok


def test_an_images_pull_fails_and_counts_its_bytes():
    """Pulling a kind other than metrics/events/result fails, whatever its size."""
    leak = Row("pull", "images", "/sdcard/DCIM/catsdogs/cat/1.jpg", 48_000)
    v = audit_verdict([*_clean_ledger(), leak])
    assert v.verdict == "fail" and not v.ok
    assert v.leaked_bytes == leak.bytes
    assert [x.device_path for x in v.violations] == [leak.device_path]
    assert "left the device" in v.headline and not v.headline.startswith("0 ")


def test_a_metrics_pull_named_like_a_photo_fails():
    """A pull whose file looks like an image fails even if its kind says metrics."""
    v = audit_verdict([Row("pull", "metrics", f"{ROOT}/runs/r/IMG_0001.JPEG", 10)])
    assert v.verdict == "fail" and "image" in v.violations[0].why


def test_zero_byte_other_pull_still_fails():
    """The rule is about what left, not how much: a 0-byte pull of another kind fails."""
    v = audit_verdict([Row("pull", "other", f"{ROOT}/runs/r/cache/features.npy", 0)])
    assert v.verdict == "fail" and v.leaked_bytes == 0


def test_unknown_direction_cannot_be_vouched_for():
    """A direction the audit does not know fails rather than passing silently."""
    v = audit_verdict([Row("export", "model", f"{ROOT}/runs/r/checkpoint/w.npz", 10)])
    assert v.verdict == "fail" and "unknown direction" in v.violations[0].why


def test_events_and_result_kinds_are_allowed_pulls():
    """Kinds events and result are aggregate outputs too."""
    v = audit_verdict([Row("pull", "events", f"{ROOT}/runs/r/events.jsonl", 5),
                       Row("pull", "result", f"{ROOT}/runs/r/result.json", 5)])
    assert v.ok and {t.kind for t in v.pulled_by_kind} == {"events", "result"}


def test_empty_ledger_is_not_a_pass():
    """No rows means nothing was proven: the verdict says so instead of passing."""
    v = audit_verdict([])
    assert v.verdict == "empty" and not v.ok
