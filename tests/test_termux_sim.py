"""The Termux-like virtual phones, as a launcher meets them over the real adb server: a stock
phone's shell user, run-as into Termux's debuggable build (and its refusal of an F-Droid
build), what Termux may read under /data/local/tmp, its simulated `pkg` gating each module,
the storage permission, and Android's settings — each checked against the kernel's real
permission checks of the phone's uids, not against flags."""

from __future__ import annotations

import pytest
from sim_fixtures import ADB, adb_server, phones  # noqa: F401

from orchestrator.devices.adb import Phone
from orchestrator.devices.address import DeviceAddress
from orchestrator.launchers.termux_facts import read_termux_facts
from orchestrator.links.termux_env import PREFIX, prelude

APP_UID = 10234  # the profiles' Termux uid


@pytest.fixture(scope="module")
def github(phones) -> Phone:
    """A stock Pixel 7 with Termux's GitHub (debuggable) build, nothing installed in it."""
    return Phone(DeviceAddress(phones("termux_pixel7", name="tx-github").serial))


@pytest.fixture(scope="module")
def fdroid(phones) -> Phone:
    """A stock Galaxy S23 with Termux's F-Droid build (not debuggable)."""
    return Phone(DeviceAddress(phones("termux_fdroid", name="tx-fdroid").serial))


def in_termux(script: str) -> str:
    """An adb shell command running `script` as Termux, in its environment."""
    from shlex import quote

    return f"run-as com.termux files/usr/bin/bash -c {quote(prelude() + script)}"


def test_stock_shell_is_the_shell_user_without_termux_or_python(github):
    """The adb shell is uid 2000: Termux's folder is closed to it, and no Python (not even
    the host's) is on its PATH."""
    assert github.run("id -u").strip() == "2000"
    rc, out = github.run_rc(f"ls {PREFIX}")
    assert rc != 0 and "Permission denied" in out
    assert github.run_rc("command -v python3 || command -v python")[0] != 0


def test_run_as_becomes_termux_in_its_folder(github):
    """run-as switches to the app's uid and folder; the shell may not signal its processes."""
    out = github.run("run-as com.termux sh -c 'id -u; pwd'").split()
    assert out == [str(APP_UID), "/data/user/0/com.termux"]
    pid = github.run(in_termux("sleep 30 > /dev/null 2>&1 & echo $!")).strip()
    rc, said = github.run_rc(f"kill -0 {pid}")
    assert rc != 0 and "not permitted" in said
    assert github.run_rc(in_termux(f"kill {pid}"))[0] == 0


def test_termux_reads_exact_staged_paths_but_cannot_list_or_write_there(github, tmp_path):
    """A pushed, world-readable file under /data/local/tmp reads back from Termux by its
    path; listing /data/local/tmp or writing into it is refused, as on Android."""
    local = tmp_path / "hello.txt"
    local.write_text("staged\n")
    github.run("mkdir -p /data/local/tmp/orch-sim-test && chmod 755 /data/local/tmp/orch-sim-test")
    github.device.sync.push(str(local), "/data/local/tmp/orch-sim-test/hello.txt", 0o644)

    rc_read, text = github.run_rc(in_termux("cat /data/local/tmp/orch-sim-test/hello.txt"))
    rc_list, _ = github.run_rc(in_termux("ls /data/local/tmp"))
    rc_write, _ = github.run_rc(in_termux("touch /data/local/tmp/orch-sim-test/x"))

    assert (rc_read, text) == (0, "staged\n")
    assert rc_list != 0 and rc_write != 0


def test_run_as_refuses_a_non_debuggable_build(fdroid):
    """F-Droid's Termux is not debuggable: run-as answers as Android's does, exit 1."""
    rc, out = fdroid.run_rc("run-as com.termux id")
    assert (rc, out.strip()) == (1, "run-as: package not debuggable: com.termux")
    assert fdroid.run_rc("run-as com.nosuch id")[1].strip() == \
        "run-as: unknown package: com.nosuch"


def test_pkg_makes_each_module_importable_with_its_package(github):
    """Termux's Python exists only after `pkg install python`; numpy only with python-numpy;
    LiteRT only as Termux packages it (tflite_runtime), never as ai_edge_litert."""
    def imports(module: str) -> int:
        return github.run_rc(in_termux(f"python -c 'import {module}'"))[0]

    before = github.run_rc(in_termux("python -c 1"))[0]
    github.run(in_termux("pkg install -y python"))
    bare = imports("numpy")
    github.run(in_termux("pkg install -y python-numpy python-tflite-runtime"))
    after = (imports("numpy"), imports("tflite_runtime.interpreter"),
             imports("ai_edge_litert"), imports("PIL"))

    assert before == 127 and bare == 1
    assert after == (0, 0, 1, 1)


def test_termux_python_has_the_real_tflite_runtime_wheel(github):
    """The profile's runtime: Termux's tflite_runtime is the real 2.20 wheel with numpy<2,
    not the host's LiteRT under another name."""
    pytest.importorskip("orchestrator.runtimes")
    github.run(in_termux("pkg install -y python python-numpy python-pillow "
                         "python-tflite-runtime"))
    out = github.run(in_termux(
        "python -c 'import numpy, tflite_runtime as t, tflite_runtime.interpreter; "
        "print(t.__version__, numpy.__version__, t.__file__)'"))
    version, numpy, where = out.split()
    assert version.startswith("2.20.0") and numpy.startswith("1.")
    assert "/orch/runtimes/tflite-runtime-2.20-" in where  # the wheel, not the LiteRT alias


def test_storage_permission_gates_shared_storage(github):
    """Without the grant Termux cannot read /sdcard; `pm grant` opens it, and dumpsys and
    the parsers see the grant."""
    denied = github.run_rc(in_termux("ls /sdcard/"))[0]
    before = read_termux_facts(github).package.storage_granted
    github.run("pm grant com.termux android.permission.READ_EXTERNAL_STORAGE")
    allowed = github.run_rc(in_termux("ls /sdcard/ >/dev/null"))[0]
    after = read_termux_facts(github).package.storage_granted
    github.run("pm revoke com.termux android.permission.READ_EXTERNAL_STORAGE")

    assert denied != 0 and allowed == 0
    assert (before, after) == (False, True)


def test_package_facts_and_settings_read_back(github, fdroid):
    """pm and dumpsys tell the two builds apart; `settings put` is what `get` returns."""
    gh, fd = read_termux_facts(github), read_termux_facts(fdroid)
    github.run("settings put global settings_enable_monitor_phantom_procs false")
    after = read_termux_facts(github).phantom_setting
    github.run("settings delete global settings_enable_monitor_phantom_procs")

    assert gh.installed and gh.package.source == "github" and gh.package.uid == APP_UID
    assert fd.installed and fd.package.source == "fdroid" and fd.package.storage_granted
    assert gh.phantom_setting == "null" and after == "false"
    assert github.run_rc("pm grant com.termux android.permission.INTERNET")[0] == 255
