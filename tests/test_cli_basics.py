"""The CLI surface: validate exit codes, empty results as JSON, unready commands say so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def orch(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_validate_paper_spec_exits_zero():
    """`orch validate experiments/paper_table1.yaml` passes."""
    r = orch("validate", "experiments/paper_table1.yaml")
    assert r.returncode == 0, r.stderr
    assert "method2" in r.stdout


def test_validate_bad_override_exits_spec_code():
    """A bad --set is refused with the field named and exit code 2 (SPEC)."""
    r = orch("validate", "experiments/paper_table1.yaml", "--set", "training.batch_size=0")
    assert r.returncode == 2
    assert "training.batch_size" in r.stdout and "≥ 1" in r.stdout


def test_results_list_json_on_empty_store():
    """An empty store lists as []."""
    r = orch("results", "list", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_unknown_run_is_one_line_not_a_traceback():
    """An expected failure prints one line with a hint, never a traceback."""
    r = orch("results", "show", "42")
    assert r.returncode == 9
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "orch results list" in r.stderr


def test_seconds_keep_the_precision_a_small_run_needs():
    from orchestrator.cli.common import fmt_s

    assert [fmt_s(x) for x in (None, 0.0004, 0.04, 0.5, 12.34)] == [
        None, "0 ms", "40 ms", "0.50 s", "12.3 s"]
