"""AdbLink, doctor, clean and `orch devices` over the real adb server and virtual phones.

Every test here talks adb: a private adb server (its own port, so other suites' phones and
servers do not interfere) and virtual phones that run real /bin/sh over their own storage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sim_fixtures import ADB, adb_server, free_port, phones  # noqa: F401

from device_agent import contract
from orchestrator.devices.adb import Phone
from orchestrator.devices.address import DeviceAddress
from orchestrator.devices.clean import clean
from orchestrator.devices.doctor import run_checks
from orchestrator.errors import DeviceOffline
from orchestrator.launchers.doctor import gather
from orchestrator.links.adb import AdbLink
from orchestrator.links.base import OnceRead

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pixel(phones):
    return phones("pixel7", name="pixel7")


@pytest.fixture
def link(pixel, isolated_home):
    lk = AdbLink(pixel.serial, root=f"/data/local/tmp/orch-test-{os.getpid()}")
    yield lk
    lk.close()
    lk.phone.run(f"rm -rf {lk.root}")


def orch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return value


# ------------------------------------------------------------------ shell


@pytest.mark.parametrize("v2", [True, False], ids=["shell-v2", "shell-v1"])
def test_exit_codes_and_bytes_come_back_with_and_without_shell_v2(pixel, v2):
    """A failing command's exit code and output are kept (v1: from an appended echo, which
    an `exit` inside the command cannot skip); binary output is byte-exact."""
    phone = Phone(DeviceAddress.parse(pixel.serial))
    phone._v2 = v2  # the protocol a phone without shell_v2 forces

    assert phone.run_rc("echo out; echo err >&2; exit 3") in ((3, "out\nerr\n"),
                                                             (3, "err\nout\n"))
    assert phone.exec_raw("printf 'a\\0b'")[1] == b"a\0b"
    assert phone.run_rc("false")[0] == 1 and phone.run_rc("true") == (0, "")


# ------------------------------------------------------------------ files


def test_push_skips_same_hash_and_repushes_changed_content(link, pixel, tmp_path):
    """Second push of the same bytes is skipped (hash on the phone); new bytes go again."""
    src = tmp_path / "frozen.tflite"
    src.write_bytes(os.urandom(300_000))
    dst = f"{link.root}/models/h1/frozen.tflite"

    first = link.push(str(src), dst, "model")
    again = AdbLink(pixel.serial, root=link.root).push(str(src), dst, "model")
    src.write_bytes(os.urandom(1000))
    changed = AdbLink(pixel.serial, root=link.root).push(str(src), dst, "model")

    assert (first.skipped, first.bytes) == (False, 300_000)
    assert (again.skipped, again.bytes, again.sha256) == (True, 0, first.sha256)
    assert (changed.skipped, changed.bytes) == (False, 1000)
    assert pixel.host_path(dst).read_bytes() == src.read_bytes()
    assert oct(pixel.host_path(dst).stat().st_mode & 0o777) == oct(0o644)


def test_many_small_files_share_one_sync_session(link, pixel, tmp_path):
    """A class folder of 60 files goes through one sync session, bytes intact."""
    files = []
    for i in range(60):
        p = tmp_path / f"img{i}.jpg"
        p.write_bytes(os.urandom(2000 + i))
        files.append(p)
    infos = [link.push(str(files[0]), f"{link.root}/data/d1/cat/{files[0].name}", "images")]
    session = link._sync._conn  # the sync connection the first push opened
    infos += [link.push(str(p), f"{link.root}/data/d1/cat/{p.name}", "images")
              for p in files[1:]]
    assert session is not None and link._sync._conn is session  # one session for all 60
    assert sum(i.bytes for i in infos) == sum(p.stat().st_size for p in files)
    assert all(pixel.host_path(i.device_path).read_bytes() == p.read_bytes()
               for i, p in zip(infos, files, strict=True))


def test_read_once_returns_only_the_asked_bytes(link, pixel):
    """Offset and length are honoured on the phone, in one read; a missing file says so."""
    path = f"{link.root}/runs/r1/{contract.EVENTS_FILE}"
    host = pixel.host_path(path)
    host.parent.mkdir(parents=True)
    host.write_bytes(b'{"seq": 1}\n{"seq": 2}\n')
    assert link.read_once(path, 0, 10, 1000).data == b'{"seq": 1}'
    assert link.read_once(path, 11, 100, 1000).data == b'{"seq": 2}\n'
    assert link.read_once(path, 100, 5, 1000) == OnceRead("ok", 22, b"")
    assert link.read_once(path + ".missing", 0, 5, 1000).status == "none"


def test_stat_tells_files_symlinks_and_absence(link, pixel):
    """stat sees a regular file's size, a symlink as such with its target, None if absent."""
    base = f"{link.root}/runs/r2"
    host = pixel.host_path(base)
    host.mkdir(parents=True)
    (host / contract.RESULT_FILE).write_text("{}")
    (host / "link.json").symlink_to(f"{base}/{contract.RESULT_FILE}")
    f = link.stat(f"{base}/{contract.RESULT_FILE}")
    s = link.stat(f"{base}/link.json")
    assert (f.size, f.is_file, f.is_symlink, f.real_path) == (
        2, True, False, f"{base}/{contract.RESULT_FILE}")
    assert (s.is_symlink, s.is_file, s.real_path) == (True, False,
                                                       f"{base}/{contract.RESULT_FILE}")
    assert link.stat(f"{base}/nothing") is None
    assert link.exists(f"{base}/link.json") and not link.exists(f"{base}/nothing")


# ------------------------------------------------------------------ the detached agent


def _sleeper_agent(link: AdbLink, pixel, name: str = "sleep") -> tuple[str, str]:
    """A stand-in agent package that beats once per 0.1 s until killed."""
    agent_dir = f"{link.root}/agent/{name}er"
    pkg = pixel.host_path(agent_dir) / "device_agent"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import sys, time\n"
        "run_dir = sys.argv[2]\n"
        "while True:\n"
        "    open(run_dir + '/beat', 'a').write('b')\n"
        "    time.sleep(0.1)\n")
    run_dir = f"{link.root}/runs/{name}-1"
    link.mkdirs(run_dir)
    return agent_dir, run_dir


def test_agent_survives_a_dropped_link_and_stops_on_request(link, pixel):
    """setsid nohup: the agent keeps running through a link drop; stop_agent ends it."""
    agent_dir, run_dir = _sleeper_agent(link, pixel)
    handle = link.start_agent(agent_dir=agent_dir, run_dir=run_dir, resume=False)
    beats = pixel.host_path(run_dir) / "beat"
    wait_for(lambda: beats.exists())
    assert handle.pid and link.agent_alive(run_dir)

    # The cable out: the link drops and so does every new one, the phone keeps its port.
    pixel.set_faults(drop_after_bytes=0, drop_in=0)
    with pytest.raises(DeviceOffline):
        wait_for(lambda: not link.agent_alive(run_dir), timeout=10)
    before = beats.read_text().count("b")
    wait_for(lambda: beats.read_text().count("b") > before)  # still training, cable out
    pixel.set_faults(clear=True)
    pixel.reconnect()

    relinked = AdbLink(pixel.serial, root=link.root)
    assert relinked.agent_alive(run_dir)
    relinked.stop_agent(run_dir, grace_s=5)
    assert not relinked.agent_alive(run_dir)
    assert not link.agent_alive(f"{link.root}/runs/never-started")


# ------------------------------------------------------------------ doctor, clean


def test_doctor_passes_on_a_ready_phone_and_records_the_agent_push(link, isolated_home):
    """The virtual Pixel has Python, numpy, Pillow and LiteRT: every check passes, the agent
    answers `device_agent info`, and its push is in the ledger."""
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    with open_session(f"sqlite:///{isolated_home / 'orch.db'}") as s:
        results = run_checks(gather(link, session=s))
        ledger = repo.run_transfers(session=s, run_id=None)
    failed = [r for r in results if not r.ok]
    assert not failed, failed
    assert {"python", "numpy", "Pillow", "TFLite interpreter", "agent"} <= {
        r.name for r in results}
    assert ledger and {t.kind for t in ledger} == {"agent"}
    assert all(t.device_path.startswith(f"{link.root}/agent/") for t in ledger)


def test_doctor_names_each_missing_module_with_its_fix(link, pixel):
    """A bare Python (no site-packages) fails numpy, Pillow, interpreter and agent, with the
    Termux package to install for each."""
    bare = f"{link.root}/bare/python3"
    host = pixel.host_path(bare)
    host.parent.mkdir(parents=True)
    host.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    host.chmod(0o755)

    results = {r.name: r for r in run_checks(gather(AdbLink(pixel.serial, root=link.root,
                                                            python=bare)))}

    assert results["python"].ok
    assert {n for n, r in results.items() if not r.ok} == {
        "numpy", "Pillow", "TFLite interpreter", "agent"}
    assert "python-numpy" in results["numpy"].fix
    assert "python-tflite-runtime" in results["TFLite interpreter"].fix


def test_clean_keeps_the_live_run_and_frees_the_rest(link, pixel, tmp_path):
    """clean removes staged folders except those of a running agent, and says how much."""
    model = tmp_path / "m.bin"
    model.write_bytes(os.urandom(200_000))
    link.push(str(model), f"{link.root}/models/old/train.tflite", "model")
    link.push(str(model), f"{link.root}/models/live/train.tflite", "model")
    agent_dir, run_dir = _sleeper_agent(link, pixel)
    pixel.host_path(run_dir).joinpath(contract.JOB_FILE).write_text(json.dumps(
        {"models": {"train": f"{link.root}/models/live/train.tflite"}}))
    link.start_agent(agent_dir=agent_dir, run_dir=run_dir, resume=False)
    wait_for(lambda: link.agent_alive(run_dir))
    phone = Phone(DeviceAddress.parse(pixel.serial))

    dry = clean(phone, link.root, dry_run=True)
    done = clean(phone, link.root, dry_run=False)
    link.stop_agent(run_dir, grace_s=5)

    assert [e.path for e in dry.remove] == [e.path for e in done.remove] == [
        f"{link.root}/models/old"]
    assert {e.path for e in done.keep} == {agent_dir, run_dir, f"{link.root}/models/live"}
    assert done.bytes_freed >= 200_000
    assert not pixel.host_path(f"{link.root}/models/old").exists()
    assert pixel.host_path(f"{link.root}/models/live/train.tflite").exists()


def test_clean_stops_the_agent_of_a_run_that_ended_while_the_phone_was_away(link, pixel):
    """A run moved off this phone while it was away is flagged; `orch devices clean` stops
    its agent (a dry run only says so), as the phone's next run would."""
    from orchestrator.runner.orphans import flag_left_running
    from orchestrator.settings import get_settings
    from orchestrator.store import repo
    from orchestrator.store.db import open_session

    agent_dir, run_dir = _sleeper_agent(link, pixel, name="leftover")
    link.start_agent(agent_dir=agent_dir, run_dir=run_dir, resume=False)
    wait_for(lambda: link.agent_alive(run_dir))
    with open_session(get_settings().db_url) as s:
        dev = repo.upsert_device(session=s, serial=pixel.serial, model="Pixel 7")
        exp = repo.upsert_experiment(session=s, name="e", spec={}, spec_hash="x")
        run = repo.create_run(session=s, experiment_id=exp.id, variant="m1", device_id=dev.id,
                              status="cancelled", device_run_dir=run_dir,
                              error="moved to run 9")
        flag_left_running(session=s, run_id=run.id)

    dry = orch("devices", "clean", pixel.serial, "--dry-run", "--format", "json")
    alive_after_dry = link.agent_alive(run_dir)
    done = orch("devices", "clean", pixel.serial)

    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["stopped_agents_of_runs"] == [run.id] and alive_after_dry
    assert done.returncode == 0, done.stderr
    assert f"stopped the agent of run {run.id} (cancelled: moved to run 9)" in done.stdout
    wait_for(lambda: not link.agent_alive(run_dir))


# ------------------------------------------------------------------ orch devices


def test_devices_list_info_and_alias(pixel, phones, isolated_home):
    """`orch devices list` shows each phone's facts and health; an alias then names it;
    Android 10's Nokia falls back to ro.board.platform for its SoC."""
    nokia = phones("nokia23", name="nokia")
    listed = orch("devices", "list", "--format", "json")
    aliased = orch("devices", "alias", "lab7", pixel.serial)
    info = orch("devices", "info", "lab7", "--format", "json")
    nokia_info = orch("devices", "info", "nokia 2.3", "--format", "json")

    assert listed.returncode == 0, listed.stderr
    rows = {r["serial"]: r for r in json.loads(listed.stdout)}
    assert rows[pixel.serial]["model"] == "Pixel 7" and rows[pixel.serial]["sdk"] == 34
    assert rows[pixel.serial]["soc"] == "GS201" and rows[nokia.serial]["soc"] == "mt6761"
    assert 0 < rows[pixel.serial]["battery"] <= 100 and rows[pixel.serial]["temperature"] > 0
    assert aliased.returncode == 0, aliased.stderr
    got = json.loads(info.stdout)
    assert (got["serial"], got["alias"]) == (pixel.serial, "lab7")
    assert got["free_bytes"] > 0
    assert json.loads(nokia_info.stdout)["release"] == "10"


def test_a_phone_on_another_adb_server_is_named_serial_at_host_port(pixel, isolated_home):
    """`SERIAL@HOST:PORT` reaches a phone through another adb server (a lab host's)."""
    port = free_port()
    subprocess.run([ADB, "-P", str(port), "start-server"], capture_output=True, timeout=30,
                   check=True)
    try:
        out = subprocess.run([ADB, "-P", str(port), "connect", pixel.serial],
                             capture_output=True, text=True, timeout=30).stdout
        assert "connected" in out
        wait_for(lambda: f"{pixel.serial}\tdevice" in subprocess.run(
            [ADB, "-P", str(port), "devices"], capture_output=True, text=True).stdout)
        name = f"{pixel.serial}@127.0.0.1:{port}"
        info = orch("devices", "info", name, "--format", "json")
        listed = orch("devices", "list", "--server", f"127.0.0.1:{port}", "--format", "json")
    finally:
        subprocess.run([ADB, "-P", str(port), "kill-server"], capture_output=True, timeout=30)
    assert info.returncode == 0, info.stderr
    assert (json.loads(info.stdout)["serial"], json.loads(info.stdout)["model"]) == (
        name, "Pixel 7")
    assert [r["serial"] for r in json.loads(listed.stdout)] == [name]


def test_unknown_and_ambiguous_names_list_what_is_attached(pixel, phones, isolated_home):
    """`Pixel` with two Pixel 7s attached is ambiguous and names both; `iphone` names all."""
    second = phones("pixel7", name="pixel7b")
    ambiguous = orch("devices", "info", "Pixel")
    unknown = orch("devices", "info", "iphone")
    assert ambiguous.returncode == 5 and "matches 2 phones" in ambiguous.stderr
    assert pixel.serial in ambiguous.stderr and second.serial in ambiguous.stderr
    assert unknown.returncode == 5 and "No attached phone matches 'iphone'" in unknown.stderr
    assert pixel.serial in unknown.stderr and second.serial in unknown.stderr
