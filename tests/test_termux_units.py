"""Termux support as pure functions: parsing what a phone prints about Termux, the doctor's
Termux checks for each gap, run-as refusals, path mapping of the Termux link, the shell
scripts (run by a real /bin/sh on local files), the simulated `pkg`, and orch's ssh keys."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.devices.facts import DeviceFacts
from orchestrator.errors import SpecError
from orchestrator.launchers.termux_checks import (
    TermuxContext,
    check_abi,
    check_android,
    check_build,
    check_phantom,
    check_readable,
    check_storage,
    check_termux,
    check_way_in,
)
from orchestrator.launchers.termux_facts import (
    AndroidTermuxFacts,
    installed,
    parse_dumpsys_package,
    parse_gathered,
    phantom_limited,
)
from orchestrator.links import scripts
from orchestrator.links.runas import refusal
from orchestrator.links.ssh_keys import KeyStore
from orchestrator.links.termux import staged_path
from orchestrator.sim import termux_pkg
from orchestrator.sim.profile import parse_profile

# `dumpsys package com.termux` as Android 14 prints it (shortened), for three builds.
DUMP = """Packages:
  Package [com.termux] (a3c81f0):
    userId=10243
    pkg=Package{e2b1a4d com.termux}
    codePath=/data/app/~~Jq1bV0u1p0M2d7V3nYt3bA==/com.termux-kQy7c5K0l8mH1x4fJ1gH1Q==
    primaryCpuAbi=arm64-v8a
    versionCode=118 minSdk=24 targetSdk=28
    versionName={version}
    flags=[ {flags}HAS_CODE ALLOW_CLEAR_USER_DATA ALLOW_BACKUP LARGE_HEAP ]
    privateFlags=[ PRIVATE_FLAG_ACTIVITIES_RESIZE_MODE_RESIZEABLE_VIA_SDK_VERSION ]
    timeStamp=2024-03-02 10:14:55
    installerPackageName={installer}
    requested permissions:
      android.permission.INTERNET
      android.permission.READ_EXTERNAL_STORAGE
    install permissions:
      android.permission.INTERNET: granted=true
    User 0: ceDataInode=81921 installed=true hidden=false suspended=false stopped=false
      runtime permissions:
        android.permission.READ_EXTERNAL_STORAGE: granted={granted}, flags=[ USER_SET]
"""


def dump(*, version="0.118.0", debuggable=False, installer="org.fdroid.fdroid",
         granted="false") -> str:
    return (DUMP.replace("{version}", version)
            .replace("{flags}", "DEBUGGABLE " if debuggable else "")
            .replace("{installer}", installer).replace("{granted}", granted))


PIXEL = DeviceFacts(model="Pixel 7", manufacturer="Google", sdk=34, release="14", soc="GS201",
                    abi="arm64-v8a", product="panther", fingerprint=None)


def ctx(launcher="runas", *, facts=PIXEL, **kw) -> TermuxContext:
    pkg = parse_dumpsys_package(dump(debuggable=kw.pop("debuggable", True),
                                     granted=kw.pop("granted", "true")))
    android = AndroidTermuxFacts(installed=kw.pop("installed", True), package=pkg,
                                 phantom_setting=kw.pop("phantom", "false"), max_phantom="null")
    return TermuxContext(serial="S1", launcher=launcher, facts=facts, android=android, **kw)


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(("kw", "source", "debuggable"), [
    ({"version": "0.118.1+github-debug", "debuggable": True,
      "installer": "com.google.android.packageinstaller"}, "github", True),
    ({"installer": "org.fdroid.fdroid"}, "fdroid", False),
    ({"version": "googleplay.2024.02.27", "installer": "com.android.vending"}, "play", False),
    ({"installer": "null"}, "unknown", False),
])
def test_dumpsys_package_tells_the_build(kw, source, debuggable):
    """The DEBUGGABLE flag, installer and versionName tell GitHub, F-Droid and Play apart."""
    pkg = parse_dumpsys_package(dump(**kw))
    assert pkg is not None
    assert (pkg.source, pkg.debuggable, pkg.uid, pkg.target_sdk) == (source, debuggable,
                                                                      10243, 28)


def test_dumpsys_package_storage_grant_and_absent_package():
    """The runtime storage grant is read; a phone without Termux gives None."""
    assert parse_dumpsys_package(dump(granted="true")).storage_granted is True
    assert parse_dumpsys_package(dump()).storage_granted is False
    assert parse_dumpsys_package("Unable to find package: com.termux\n") is None


def test_pm_list_matches_the_package_exactly():
    """`pm list packages com.termux` also lists plugins: only the exact name counts."""
    assert installed("package:com.termux.api\npackage:com.termux\n")
    assert not installed("package:com.termux.api\npackage:com.termux.styling\n")


@pytest.mark.parametrize(("sdk", "setting", "max_phantom", "limited"), [
    (30, "null", "null", False),  # Android 11: no phantom-process monitor
    (31, "null", "null", True),  # Android 12: capped at 32 unless device_config raises it
    (31, "null", "2147483647", False),
    (34, "null", "null", True),
    (34, "false", "null", False),
    (None, "false", "null", None),
])
def test_phantom_limits_by_android_version(sdk, setting, max_phantom, limited):
    """Android 12 caps phantom processes by device_config; 12L+ has a setting to turn it off."""
    assert phantom_limited(sdk, setting, max_phantom) is limited


def test_gathered_output_splits_into_facts():
    """One shell command's sections: pm list, dumpsys, settings, device_config."""
    sep = "=====ORCH-TERMUX====="
    facts = parse_gathered(f"package:com.termux\n{sep}\n{dump()}{sep}\nfalse\n{sep}\nnull\n")
    assert facts.installed and facts.package.source == "fdroid"
    assert (facts.phantom_setting, facts.max_phantom) == ("false", "null")


# ------------------------------------------------------------------ checks, one gap each


def test_ready_termux_phone_passes_every_termux_check():
    """A debuggable Termux with storage granted and the monitor off: all ✓."""
    c = ctx()
    results = [check_abi(PIXEL, termux=True), check_android(PIXEL, termux=True),
               check_termux(c), check_build(c), check_way_in(c), check_readable(c),
               check_storage(c), check_phantom(c)]
    assert all(r.ok for r in results), [r for r in results if not r.ok]


def test_gaps_are_reported_with_their_fixes():
    """Each gap fails its own check, and the fix names what to do."""
    gone = check_termux(ctx(installed=False))
    fdroid_runas = check_build(ctx(debuggable=False))
    fdroid_ssh = check_build(ctx("ssh", debuggable=False))
    unreadable = check_readable(ctx(readable="Termux cannot read it (exit 1)"))
    storage = check_storage(ctx(granted="false"))
    phantom = check_phantom(ctx(phantom="null"))
    no_way = check_way_in(ctx("ssh", way_in="sshd refused orch's key"))
    assert not gone.ok and "GitHub build" in gone.fix
    assert not fdroid_runas.ok and "GitHub build" in fdroid_runas.fix \
        and "--launcher ssh" in fdroid_runas.fix
    assert fdroid_ssh.ok  # any build serves the ssh launcher
    assert not unreadable.ok and "world-readable" in unreadable.fix
    assert not storage.ok and "pm grant com.termux" in storage.fix
    assert not phantom.ok and "--allow-phantom-setting" in phantom.fix \
        and "settings_enable_monitor_phantom_procs false" in phantom.fix
    assert not no_way.ok and no_way.name == "sshd" and "authorized_keys" in no_way.fix


def test_abi_and_android_version_gaps_for_termux_only():
    """Termux has no MIPS build and needs Android 7; a direct phone is not held to that."""
    old = DeviceFacts(model="X", manufacturer="Y", sdk=23, release="6.0", soc=None,
                      abi="mips", product=None, fingerprint=None)
    assert not check_abi(old, termux=True).ok and not check_android(old, termux=True).ok
    assert check_abi(old, termux=False).ok and check_android(old, termux=False).ok


@pytest.mark.parametrize(("out", "says"), [
    ("run-as: package not debuggable: com.termux\n", "not debuggable"),
    ("run-as: unknown package: com.termux\n", "not installed"),
    ("run-as: couldn't chdir to /data/user/0/com.termux\n", "failed"),
])
def test_run_as_refusals_become_one_error_with_the_build_to_install(out, says):
    """run-as's own refusals (exit 1) name the problem; the hint names Termux's GitHub build
    or the ssh launcher."""
    error = refusal("S1", out)
    assert error is not None and says in error.message
    if says != "failed":
        assert "GitHub build" in error.hint and "--launcher ssh" in error.hint
    assert refusal("S1", "grep: no match\n") is None


def test_termux_link_maps_staged_folders_and_keeps_run_folders():
    """agent/models/data under ~/.orch live in the staging area; runs stay in Termux."""
    root, stage = "/data/data/com.termux/files/home/.orch", "/data/local/tmp/orch"
    assert staged_path(root, stage, f"{root}/agent/abc/device_agent/run.py") == \
        f"{stage}/agent/abc/device_agent/run.py"
    assert staged_path(root, stage, f"{root}/data") == f"{stage}/data"
    assert staged_path(root, stage, f"{root}/runs/1-ab/job.json") is None
    assert staged_path(root, stage, f"{root}/agentx/y") is None


# ------------------------------------------------------------------ scripts on a real shell


def sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=30)


def test_scripts_quote_odd_paths_and_read_exact_ranges(tmp_path):
    """stat / read_once / sha256 / exists on a file whose name has spaces and quotes."""
    target = tmp_path / "it's a \"file\".json"
    target.write_bytes(b"0123456789")
    link = tmp_path / "link"
    link.symlink_to(target)
    path = str(target)

    assert sh(scripts.read_once(sys.executable, path, 3, 4, 100)).stdout == b"ok 10 4\n3456"
    assert sh(scripts.read_once(sys.executable, path, 0, 4, 9)).stdout == b"big 10\n"
    assert sh(scripts.read_once(sys.executable, str(tmp_path / "missing"), 0, 4, 9)
              ).stdout == b"none\n"
    assert sh(scripts.read_once(sys.executable, str(link), 0, 4, 99)).stdout == b"link\n"
    kind, size, real = sh(scripts.stat(path)).stdout.decode().strip().split(" ", 2)
    assert (kind, size, real) == ("file", "10", path)
    assert sh(scripts.stat(str(link))).stdout.decode().strip().endswith(path)  # resolved
    assert sh(scripts.stat(str(link))).stdout.decode().startswith("link ")
    assert sh(scripts.stat(str(tmp_path / "none"))).stdout.strip() == b"none"
    assert sh(scripts.sha256(path)).stdout.split()[0].decode() == \
        "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"
    assert sh(scripts.sha256(str(link))).returncode != 0  # never hashed through a link
    assert sh(scripts.exists(str(link))).returncode == 0


def test_agent_scripts_start_watch_and_stop_a_detached_process(tmp_path):
    """start() detaches a Python agent with a pid file; alive() sees it; stop() ends it."""
    agent = tmp_path / "agent" / "device_agent"
    agent.mkdir(parents=True)
    (agent / "__init__.py").write_text("")
    (agent / "__main__.py").write_text("import time\nwhile True:\n    time.sleep(0.05)\n")
    run_dir = tmp_path / "runs" / "1-x"
    run_dir.mkdir(parents=True)
    import sys

    pid = sh(scripts.start(python=sys.executable, agent_dir=str(agent.parent),
                           run_dir=str(run_dir), resume=False)).stdout.decode().split()[-1]
    try:
        assert sh(scripts.alive(str(run_dir))).returncode == 0
        assert sh(scripts.alive(str(tmp_path / "runs" / "other"))).returncode == 1
        sh(scripts.stop(str(run_dir), 5.0))
        assert sh(scripts.alive(str(run_dir))).returncode == 1
    finally:
        subprocess.run(["kill", "-9", pid], capture_output=True)


# ------------------------------------------------------------------ the simulated pkg


def test_pkg_installs_dependencies_and_commands(tmp_path):
    """python-tflite-runtime brings python and python-numpy; python gets its commands."""
    templates = tmp_path / termux_pkg.TEMPLATES
    templates.mkdir(parents=True)
    (templates / "python").write_text("#!/bin/sh\n")
    (tmp_path / "bin").mkdir()

    new = termux_pkg.install(tmp_path, ["python-tflite-runtime"])
    again = termux_pkg.install(tmp_path, ["python"])
    gone = termux_pkg.uninstall(tmp_path, ["python"])

    assert new == ["python", "python-numpy", "python-tflite-runtime"] and again == []
    assert gone == ["python"] and not (tmp_path / "bin" / "python3").exists()
    assert termux_pkg.installed(tmp_path) == ["python-numpy", "python-tflite-runtime"]


def test_pkg_cli_refuses_unknown_packages(tmp_path, capsys, monkeypatch):
    """`pkg install nosuch` exits 100 with apt's message, as on Termux."""
    monkeypatch.setenv("PREFIX", str(tmp_path))
    assert termux_pkg.main(["install", "-y", "nosuch"]) == 100
    assert "Unable to locate package nosuch" in capsys.readouterr().err


def test_profile_sshd_needs_openssh():
    """A profile whose Termux runs sshd must have installed openssh."""
    text = (Path(__file__).resolve().parents[1] / "orchestrator/sim/profiles/"
            "termux_fdroid.yaml").read_text()
    assert parse_profile(text).termux.sshd
    with pytest.raises(SpecError, match="openssh"):
        parse_profile(text.replace(", openssh]", "]"))


# ------------------------------------------------------------------ ssh keys


def test_keystore_makes_a_private_key_and_pins_host_keys(tmp_path):
    """One Ed25519 key pair (private 0600); a phone's host key is pinned, then forgotten."""
    keys = KeyStore(tmp_path / "ssh")
    line = keys.public_line()
    mode = stat.S_IMODE(os.stat(keys.private_path).st_mode)
    keys.pin("S1", "ecdsa-sha2-nistp256", "AAAA")
    keys.pin("S2", "ssh-ed25519", "BBBB")

    assert line.startswith("ssh-ed25519 AAAA") and mode == 0o600
    assert keys.public_line() == line  # made once
    assert keys.pinned("S1") == ("ecdsa-sha2-nistp256", "AAAA")
    assert keys.forget("S1") and not keys.forget("S1") and keys.pinned("S2")
