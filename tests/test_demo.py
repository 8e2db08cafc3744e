"""The README's main command, `orch demo`, end to end on a virtual Pixel 7 (small settings)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.sim import stop_all


@pytest.fixture
def no_phones_left(isolated_home):
    yield
    stop_all(home=isolated_home)


def test_demo_runs_table1_on_a_virtual_pixel7_and_passes_the_audit(no_phones_left):
    """The demo synthesizes photos, trains both variants on the phone, and proves privacy."""
    r = subprocess.run(
        [sys.executable, "-m", "orchestrator", "demo", "--no-serve",
         "--set", "data.train_per_class=8", "--set", "data.test_per_class=8",
         "--set", "training.head_epochs=1", "--set", "training.finetune_epochs=1"],
        capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "synthetic" in out and "virtual Pixel 7 started" in out
    assert out.count("audit ✓ 0 image bytes left the device") == 2
    assert "method1" in out and "method2" in out and "nnapi→nnapi" in out
