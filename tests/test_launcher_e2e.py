"""Launchers end to end on virtual phones, through the `orch` CLI and the real adb server:
a stock Pixel 7 with Termux's GitHub build goes from `doctor` (each gap with its fix) through
`setup --yes` to an all-✓ doctor, then trains the paper spec (small settings, method 2,
the phone's own photos) through `runas` and through `ssh`; an F-Droid Termux is refused by
`runas` with the build to install, and serves `ssh` once its owner authorizes orch's key.

Models are built once per session (the cache folder is shared with the other run tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sim_fixtures import ADB, _factory, _stop, adb_server, cut_at_checkpoint  # noqa: F401

from device_agent import contract
from orchestrator.datasets.synth import synthesize
from orchestrator.settings import get_settings

pytest.importorskip("paramiko")

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "experiments" / "paper_table1.yaml"
GALLERY = "/sdcard/DCIM/catsdogs"
SMALL = ["--variant", "method2", "--set", "model.alpha=0.25", "--set", "model.input_size=96",
         "--set", "model.weights=none", "--set", "data.train_per_class=6",
         "--set", "data.test_per_class=4", "--set", "training.head_epochs=1",
         "--set", "training.finetune_epochs=1"]
TERMUX_HOME = "/data/data/com.termux/files/home"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """One ORCH_HOME for the module (the store, orch's ssh key); the session's build cache."""
    home = tmp_path_factory.mktemp("launcher-home")
    cache = tmp_path_factory.getbasetemp() / "runner-build-cache"
    cache.mkdir(exist_ok=True)
    (home / "cache").symlink_to(cache)
    return home


@pytest.fixture(scope="module")
def phones(adb_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("sim-launchers")
    photos = root / "photos"
    synthesize(photos, per_class=10, size=96, names=["cat", "dog"])
    start, started = _factory(root / "sim")
    yield lambda profile, name: start(profile, name=name, photos=photos)
    _stop(root / "sim", started)


def orch(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "ORCH_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def checks(result: subprocess.CompletedProcess) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def run_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)["runs"][0]


@pytest.fixture(scope="module")
def github(phones, home):
    """The GitHub-build phone, with the doctor's verdicts before and after `setup --yes`."""
    phone = phones("termux_pixel7", "lx-github")
    before = orch(home, "devices", "doctor", phone.serial, "--format", "json")
    setup = orch(home, "devices", "setup", phone.serial, "--yes", "--allow-phantom-setting",
                 "--format", "json")
    after = orch(home, "devices", "doctor", phone.serial, "--format", "json")
    return phone, before, setup, after


def test_doctor_names_each_gap_of_a_fresh_termux_and_setup_closes_them(github):
    """Before setup: no Python, no storage permission, the phantom-process monitor on, each
    ✗ with its fix; `setup --yes --allow-phantom-setting` then leaves every check ✓."""
    phone, before, setup, after = github
    gaps = {name: c for name, c in checks(before).items() if not c["ok"]}

    assert before.returncode == 5 and json.loads(before.stdout)["launcher"] == "runas"
    assert {"python", "numpy", "Pillow", "TFLite interpreter", "agent", "storage permission",
            "background limits"} == set(gaps)
    assert "orch devices setup" in gaps["python"]["fix"]
    assert "pm grant com.termux" in gaps["storage permission"]["fix"]
    assert "settings_enable_monitor_phantom_procs" in gaps["background limits"]["fix"]
    assert setup.returncode == 0, setup.stderr
    assert {s["name"]: s["status"] for s in json.loads(setup.stdout)["steps"]} == {
        "Termux packages": "done", "ssh key": "done", "sshd": "done",
        "storage permission": "done", "background limits": "done"}
    assert after.returncode == 0, after.stdout
    verdict = json.loads(after.stdout)
    assert verdict["ok"] and verdict["launcher"] == "runas"
    assert {"run-as", "sshd", "staged file readable", "Termux build"} <= set(checks(after))


class Boundary:
    """Everything the host sends to the phone: adb services (shell commands included), sync
    push paths, and the scripts and SFTP paths of the ssh launcher."""

    def __init__(self, monkeypatch) -> None:
        import adbutils
        import paramiko

        from orchestrator.devices import sync as orch_sync
        from orchestrator.links.ssh import SshShell

        self.sent: list[str] = []
        real_send = adbutils.AdbConnection.send_command
        real_push = orch_sync.SyncSession.push
        real_exec = SshShell._exec
        real_open = paramiko.SFTPClient.open

        def send_command(conn, cmd):
            self.sent.append(cmd)
            return real_send(conn, cmd)

        def push(session, local_path, device_path, mode=0o644):
            self.sent.append(f"SEND {device_path}")
            return real_push(session, local_path, device_path, mode)

        def exec_(shell, script, **kw):
            self.sent.append(f"ssh {script}")
            return real_exec(shell, script, **kw)

        def sftp_open(client, path, *args, **kw):
            self.sent.append(f"sftp {path}")
            return real_open(client, path, *args, **kw)

        monkeypatch.setattr(adbutils.AdbConnection, "send_command", send_command)
        monkeypatch.setattr(orch_sync.SyncSession, "push", push)
        monkeypatch.setattr(SshShell, "_exec", exec_)
        monkeypatch.setattr(paramiko.SFTPClient, "open", sftp_open)


@pytest.mark.parametrize("launcher", ["runas", "ssh"])
def test_paper_spec_trains_through_the_launcher_on_the_phones_photos(github, home, launcher,
                                                                     monkeypatch, capsys):
    """`orch run` (method 2, 1+1 epochs, `device:` photos) finishes through the launcher;
    the run and every transfer record it; the audit passes; the run folder is Termux's own;
    and the photo folder is never named to the phone but inside the job."""
    from orchestrator.cli.app import main

    phone, *_ = github
    monkeypatch.setenv("ORCH_HOME", str(home))
    get_settings.cache_clear()
    main(["devices", "set", phone.serial, "--launcher", launcher])
    capsys.readouterr()
    boundary = Boundary(monkeypatch)
    main(["run", str(PAPER), "--device", phone.serial, *SMALL, "--format", "json"])
    run = json.loads(capsys.readouterr().out)["runs"][0]
    audit = orch(home, "audit", str(run["id"]), "--format", "json")

    assert run["status"] == "finished" and run["launcher"] == launcher
    assert 0 <= run["accuracy"] <= 1 and run["interpreter"].startswith("tflite_runtime")
    assert run["device_run_dir"].startswith(f"{TERMUX_HOME}/.orch/runs/")
    verdict = json.loads(audit.stdout)
    assert audit.returncode == 0 and verdict["ok"], audit.stdout[-800:]
    assert verdict["verdict"]["leaked_bytes"] == 0
    assert {t["launcher"] for t in verdict["ledger"]} == {launcher}
    assert not [t for t in verdict["ledger"] if GALLERY in t["device_path"]]
    assert boundary.sent and not [c for c in boundary.sent if GALLERY in c]
    if launcher == "ssh":
        # Events came by one no-follow read of Termux's isolated Python, not by SFTP
        # (which follows symlinks).
        assert [c for c in boundary.sent if c.startswith("ssh ") and " -I -S -c " in c]
        assert not [c for c in boundary.sent if c.startswith("sftp ")]
    # The run folder belongs to Termux: the phone's storage shows the app's uid on it.
    folder = phone.host_path(run["device_run_dir"])
    assert folder.stat().st_uid == 10234 and (folder / contract.RESULT_FILE).is_file()


def test_runas_on_an_fdroid_build_fails_naming_the_github_build(phones, home):
    """With Termux from F-Droid, `orch run` through runas stops with one line that says
    run-as refuses it and which build to install (or to use ssh), exit 5."""
    phone = phones("termux_fdroid", "lx-fdroid-runas")
    orch(home, "devices", "set", phone.serial, "--launcher", "runas")

    r = orch(home, "run", str(PAPER), "--device", phone.serial, *SMALL)

    assert r.returncode == 5, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "not debuggable" in line and "GitHub build" in line and "--launcher ssh" in line


def test_ssh_serves_an_fdroid_build_once_its_owner_authorizes_orchs_key(phones, home):
    """F-Droid's Termux runs sshd but knows no key of this host: doctor says so, with the
    fix; setup pushes the key where Termux can read it; after the owner appends it in Termux
    (done here on the phone's storage, as the app's uid), doctor passes and a run trains."""
    phone = phones("termux_fdroid", "lx-fdroid-ssh")
    before = orch(home, "devices", "doctor", phone.serial, "--launcher", "ssh", "--format",
                  "json")
    setup = orch(home, "devices", "setup", phone.serial, "--launcher", "ssh", "--yes",
                 "--allow-phantom-setting", "--format", "json")
    # The owner, in Termux: cat /data/local/tmp/orch/orch_id.pub >> ~/.ssh/authorized_keys
    pub = phone.host_path("/data/local/tmp/orch/orch_id.pub").read_text()
    ssh_dir = phone.host_path(f"{TERMUX_HOME}/.ssh")
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(pub)
    for p in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(p, 10234, 10234)
    after = orch(home, "devices", "doctor", phone.serial, "--format", "json")
    run = run_json(orch(home, "run", str(PAPER), "--device", phone.serial, *SMALL,
                        "--format", "json"))

    assert before.returncode == 5
    sshd = checks(before)["sshd"]
    assert not sshd["ok"] and "refused orch's key" in sshd["detail"]
    assert "authorized_keys" in sshd["fix"]
    steps = {s["name"]: s["status"] for s in json.loads(setup.stdout)["steps"]}
    assert steps["ssh key"] == "done" and steps["Termux (by hand)"] == "manual"
    assert after.returncode == 0, after.stdout
    assert json.loads(after.stdout)["launcher"] == "ssh"
    assert run["status"] == "finished" and run["launcher"] == "ssh"


def test_termux_agent_is_watched_kept_by_clean_and_stopped_through_the_launcher(github,
                                                                               home):
    """The adb shell may not signal Termux's processes; the runas link sees the agent alive,
    `orch devices clean` keeps the staged files it uses, and the link stops it (here an
    agent that only sleeps)."""
    from orchestrator.devices.adb import Phone
    from orchestrator.devices.address import DeviceAddress
    from orchestrator.links.runas import RunAsShell
    from orchestrator.links.termux import TermuxLink

    phone, *_ = github
    adb = Phone(DeviceAddress(phone.serial))
    link = TermuxLink(adb, RunAsShell(adb))
    agent = home / "sleepy" / "device_agent"
    agent.mkdir(parents=True, exist_ok=True)
    (agent / "__main__.py").write_text("import time\nwhile True:\n    time.sleep(0.05)\n")
    agent_dir = f"{link.root}/agent/sleepy-{os.getpid()}"
    link.push(str(agent / "__main__.py"), f"{agent_dir}/device_agent/__main__.py", "agent")
    run_dir = f"{link.root}/runs/sleepy-{os.getpid()}"
    link.mkdirs(run_dir)

    orch(home, "devices", "set", phone.serial, "--launcher", "runas")

    handle = link.start_agent(agent_dir=agent_dir, run_dir=run_dir, resume=False)
    alive = link.agent_alive(run_dir)
    shell_kill = adb.run_rc(f"kill -0 {handle.pid}")[0]
    cleaned = orch(home, "devices", "clean", phone.serial, "--dry-run", "--format", "json")
    link.stop_agent(run_dir)
    deadline = time.monotonic() + 15
    while link.agent_alive(run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert alive and handle.pid and shell_kill != 0
    plan = json.loads(cleaned.stdout)
    staged = f"/data/local/tmp/orch/agent/sleepy-{os.getpid()}"
    assert staged in plan["kept"] and staged not in plan["removed"]
    assert not link.agent_alive(run_dir)


def test_a_planted_photo_in_a_termux_run_folder_is_refused(github, home, tmp_path):
    """Through runas, the egress guard refuses a JPEG planted in the run folder and a JPEG
    renamed result.json (Termux's reader sends none of its bytes); both refusals are in the
    ledger."""
    from orchestrator.devices.adb import Phone
    from orchestrator.devices.address import DeviceAddress
    from orchestrator.egress import EgressGuard, EgressLimits
    from orchestrator.errors import EgressRefused
    from orchestrator.links.runas import RunAsShell
    from orchestrator.links.termux import TermuxLink
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    phone, *_ = github
    adb = Phone(DeviceAddress(phone.serial))
    link = TermuxLink(adb, RunAsShell(adb))
    run_dir = f"{link.root}/runs/planted-{os.getpid()}"
    link.mkdirs(run_dir)
    jpeg = next(phone.host_path(GALLERY).glob("cat/*.jpg"))
    link.push(str(jpeg), f"{run_dir}/cat.1.jpg", "test")
    link.push(str(jpeg), f"{run_dir}/{contract.RESULT_FILE}", "test")
    with open_session(f"sqlite:///{tmp_path / 'orch.db'}") as s:
        exp = repo.upsert_experiment(session=s, name="egress-termux", spec={}, spec_hash="h")
        run = repo.create_run(session=s, experiment_id=exp.id, variant="method1")
        guard = EgressGuard(link=link, session=s, run_id=run.id, run_dir=run_dir,
                            run_key=os.path.basename(run_dir),
                            limits=EgressLimits(epochs=2, classes=("cat", "dog")))
        with pytest.raises(EgressRefused, match="not one of the files"):
            guard.read(f"{run_dir}/cat.1.jpg")
        with pytest.raises(EgressRefused, match="not ASCII JSON text"):
            guard.read_result()
        ledger = repo.run_transfers(session=s, run_id=run.id)
    assert [(t.direction, t.bytes) for t in ledger] == [("refused", 0), ("refused", 0)]
    assert all(t.launcher == "runas" for t in ledger)


def test_a_phone_with_python_on_its_shell_is_detected_as_direct(phones, home):
    """The virtual Pixel 7 (a Python on the adb shell's PATH): the doctor detects `direct`,
    stores it, and passes ABI, Android and the runtime checks; its link is the AdbLink."""
    from orchestrator.devices.address import DeviceAddress
    from orchestrator.links.adb import AdbLink
    from orchestrator.runner.devices import open_device_link
    from orchestrator.store.db import open_session

    phone = phones("pixel7", "lx-direct")
    r = orch(home, "devices", "doctor", phone.serial, "--format", "json")
    with open_session(f"sqlite:///{home / 'orch.db'}") as s:
        link = open_device_link(DeviceAddress(phone.serial), session=s)

    verdict = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout
    assert (verdict["launcher"], verdict["launcher_source"]) == ("direct", "detected")
    assert {"ABI", "Android", "python", "numpy", "agent"} <= set(checks(r))
    assert isinstance(link, AdbLink) and link.launcher == "direct"


def test_a_cable_pulled_mid_run_over_ssh_resumes_to_the_end(github, home):
    """The cable is pulled at epoch 3 of a run through ssh: `orch run` stops with the resume
    command (exit 6); plugged back in, `orch run --resume RUN` reaches sshd through a new
    forward and collects the run, whose agent (detached by sshd) kept training."""
    import threading

    phone, *_ = github
    orch(home, "devices", "set", phone.serial, "--launcher", "ssh")
    found: list[str] = []
    cutter = threading.Thread(target=cut_at_checkpoint,
                              args=(phone, f"{TERMUX_HOME}/.orch/runs", 3, found))
    cutter.start()
    cut = orch(home, "run", str(PAPER), "--device", phone.serial, *SMALL,
               "--set", "training.finetune_epochs=60")
    cutter.join()
    phone.set_faults(clear=True)

    assert found and cut.returncode == 6 and "--resume" in cut.stderr, cut.stderr[-1500:]
    run_id = cut.stderr.split("--resume ")[1].split("`")[0]
    run = run_json(orch(home, "run", "--resume", run_id, "--format", "json"))
    events = phone.host_path(run["device_run_dir"]) / contract.EVENTS_FILE

    assert run["status"] == "finished" and run["launcher"] == "ssh"
    assert events.read_text().replace(" ", "").count('"kind":"start"') == 1
