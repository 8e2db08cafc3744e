"""`orch audit RUN` over a real SQLite ledger: the verdict and the exit code follow the rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.store import repo
from orchestrator.store.db import open_session

REPO = Path(__file__).resolve().parents[1]


def orch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def ledger_run(isolated_home):
    """A run with a typical ledger: agent, model and images pushed, one skip, metrics pulled."""
    with open_session(f"sqlite:///{isolated_home / 'orch.db'}") as s:
        exp = repo.upsert_experiment(session=s, name="paper-table1", spec={}, spec_hash="h")
        run = repo.create_run(session=s, experiment_id=exp.id, variant="method2")
        rows = [("push", "agent", "/data/local/tmp/orch/agent/a/device_agent/job.py", 5_000),
                ("push", "model", "/data/local/tmp/orch/models/m/train.tflite", 900_000),
                ("push", "images", "/data/local/tmp/orch/data/d/cat/cat.1.jpg", 42_000),
                ("skipped", "model", "/data/local/tmp/orch/models/m/frozen.tflite", 0),
                ("push", "job", "/data/local/tmp/orch/runs/r/job.json", 700),
                ("pull", "events", "/data/local/tmp/orch/runs/r/events.jsonl", 3_100),
                ("pull", "result", "/data/local/tmp/orch/runs/r/result.json", 1_200)]
        for direction, kind, path, n in rows:
            repo.record_transfer(session=s, run_id=run.id, direction=direction, kind=kind,
                                 device_path=path, nbytes=n, sha256="ab" * 32)
    return run.id, rows


def _add(home: Path, run_id: int, direction: str, kind: str, path: str, n: int,
         reason: str | None = None) -> None:
    with open_session(f"sqlite:///{home / 'orch.db'}") as s:
        repo.record_transfer(session=s, run_id=run_id, direction=direction, kind=kind,
                             device_path=path, nbytes=n, reason=reason)


def test_clean_ledger_passes_with_totals_by_kind(ledger_run):
    """Pushed bytes by kind, pulled metrics only, exit 0 and the 0-image-bytes headline."""
    run_id, rows = ledger_run
    r = orch("audit", str(run_id), "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    pushed = {k["kind"]: k["bytes"] for k in out["verdict"]["pushed_by_kind"]}
    expected = {}
    for direction, kind, _, n in rows:
        if direction == "push":
            expected[kind] = expected.get(kind, 0) + n
    assert pushed == expected
    assert {k["kind"] for k in out["verdict"]["pulled_by_kind"]} == {"events", "result"}
    assert out["ok"] is True and out["verdict"]["skipped"] == 1
    assert len(out["ledger"]) == len(rows)


def test_refused_read_is_listed_and_does_not_fail(ledger_run, isolated_home):
    """A read the egress guard refused shows in the table and the run still passes."""
    run_id, _ = ledger_run
    _add(isolated_home, run_id, "refused", "other", "/data/local/tmp/orch/runs/r/x.jpg", 0,
         reason="not an allowed file")
    r = orch("audit", str(run_id))
    assert r.returncode == 0, r.stderr
    assert "refused reads: 1" in r.stdout and "0 image bytes left the device" in r.stdout


def test_an_image_pull_fails_the_audit_with_one_line(ledger_run, isolated_home):
    """A pulled image in the ledger fails the verdict: exit 7, one line on stderr."""
    run_id, _ = ledger_run
    _add(isolated_home, run_id, "pull", "images", "/sdcard/DCIM/catsdogs/cat/cat.9.jpg", 41_234)
    r = orch("audit", str(run_id))
    assert r.returncode == 7
    assert "violation" in r.stdout and "41,234 B" in r.stdout
    assert r.stderr.strip().count("\n") == 0 and "fails the privacy audit" in r.stderr


def test_unknown_run_is_not_found():
    """Auditing a run that does not exist exits 9 (NOT_FOUND)."""
    r = orch("audit", "999")
    assert r.returncode == 9 and "Traceback" not in r.stderr
