"""`orch devices setup` without the ssh extra (paramiko, cryptography): the runas launcher
needs no key, so setup finishes and says the ssh steps wait for `pip install 'orch[ssh]'`;
the ssh launcher is refused in one line naming that extra. No traceback either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sim_fixtures import ADB, _factory, _stop, adb_server  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
BLOCK = "import sys\nfor m in ('paramiko', 'cryptography'):\n    sys.modules[m] = None\n"


def orch_without_ssh(home: Path, *args: str) -> subprocess.CompletedProcess:
    code = BLOCK + f"from orchestrator.cli.app import main\nmain({list(args)!r})\n"
    env = {**os.environ, "ORCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def github_phone(adb_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("no-ssh")
    start, started = _factory(root / "sim")
    yield start("termux_pixel7", name="nossh-github"), root / "home"
    _stop(root / "sim", started)


def test_runas_setup_needs_no_ssh_extra(github_phone):
    """setup --yes with runas: every step done or skipped, the ssh ones naming the extra."""
    phone, home = github_phone
    r = orch_without_ssh(home, "devices", "setup", phone.serial, "--yes", "--format", "json")
    assert "Traceback" not in r.stderr and r.returncode == 0, r.stderr[-2000:]
    steps = {s["name"]: s for s in json.loads(r.stdout)["steps"]}
    assert steps["ssh key"]["status"] == "skipped" and "orch[ssh]" in steps["ssh key"]["detail"]
    assert not [s for s in steps.values() if s["status"] == "failed"], steps


def test_ssh_launcher_without_the_extra_is_one_line(github_phone):
    """setup --launcher ssh without paramiko: exit 5 and one line naming `orch[ssh]`."""
    phone, home = github_phone
    r = orch_without_ssh(home, "devices", "setup", phone.serial, "--launcher", "ssh", "--yes")
    assert "Traceback" not in r.stderr and r.returncode == 5, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and "orch[ssh]" in r.stderr
