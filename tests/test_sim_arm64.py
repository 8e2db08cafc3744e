"""The arm64 virtual phone: the agent's Python, its numpy, Pillow and interpreter wheels and the
simulated NNAPI library's ctypes binding on the phone's instruction set (aarch64 through
qemu-user), checked against the same runs on the host's x86-64 phone.

The NNAPI library is the simulated one (a phone's NNAPI driver cannot exist here), cross-
compiled for aarch64. The root is built once per machine (~/.cache/orch/arm64, minutes) by
the first test that needs it; the tests skip only where binfmt_misc cannot be had.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import runtime_python
from runs import REPO, orch, tiny_photos
from sim_fixtures import virtual_phone  # noqa: F401

from device_agent.contract import EVENTS_FILE
from orchestrator import simnnapi
from orchestrator.errors import BuildError, DeviceError, SpecError
from orchestrator.sim import arm64_root, binfmt
from orchestrator.sim.profile import load_profile, parse_profile
from orchestrator.sim.system import arm64_python_wrapper

# Model builds and the simulated NNAPI libraries are shared across the session.
pytestmark = pytest.mark.usefixtures("home")
PAPER = REPO / "experiments" / "paper_table1.yaml"
TINY = ["--set", "model.alpha=0.25", "--set", "model.input_size=96",
        "--set", "model.weights=none", "--set", "data.train_per_class=4",
        "--set", "data.test_per_class=4", "--set", "training.head_epochs=1",
        "--set", "training.finetune_epochs=1", "--variant", "method2"]
EM_AARCH64 = 183  # ELF e_machine of an aarch64 object


# ---------------------------------------------------------------- pure parts


def test_mirror_comes_from_the_hosts_apt_sources():
    """The first Debian mirror of one-line or deb822 sources; never the security archive."""
    deb822 = ("Types: deb\n# http://snapshot.debian.org/archive/debian/2025\n"
              "URIs: http://deb.debian.org/debian-security\n\n"
              "Types: deb\nURIs: http://ftp.de.debian.org/debian/\nSuites: bookworm\n")
    one_line = "deb [arch=amd64] http://mirror.example/debian bookworm main\n"
    assert arm64_root.parse_mirror([deb822]) == "http://ftp.de.debian.org/debian"
    assert arm64_root.parse_mirror([one_line, deb822]) == "http://mirror.example/debian"
    assert arm64_root.parse_mirror(["deb http://archive.ubuntu.com/ubuntu jammy main"]) == \
        arm64_root.DEFAULT_MIRROR


def test_debootstrap_progress_rises_through_its_stages():
    """Percent done climbs with retrieved, unpacked and configured packages, never back."""
    lines = ([f"I: Retrieving p{i} 1.0" for i in range(10)] + ["I: Validating p0 1.0"]
             + [f"I: Extracting p{i}..." for i in range(5)]
             + [f"I: Unpacking p{i}..." for i in range(10)]
             + [f"I: Configuring p{i}..." for i in range(10)])
    meter = arm64_root.DebootstrapMeter()
    pcts = [meter.feed(line) for line in lines]
    assert pcts == sorted(pcts)
    assert pcts[15] == arm64_root._done_before(1) + 8  # 5 of 15 unpacking steps
    assert pcts[-1] == arm64_root._done_before(3)


def test_the_arm64_profile_and_its_python():
    """pixel7_arm64 says arm64-v8a and arch arm64; its Python chroots into the arm64 view."""
    prof, _ = load_profile("pixel7_arm64")
    assert (prof.arch, prof.runtime, prof.props["ro.product.cpu.abi"]) == (
        "arm64", "tflite-runtime-2.20", "arm64-v8a")
    script = arm64_python_wrapper("tflite-runtime-2.20")
    assert " /arm64 /usr/bin/env --chdir=\"$PWD\" /opt/orch/tflite-runtime-2.20/bin/python3 " \
        in script


def test_arm64_needs_a_root_shell_without_termux():
    """arch: arm64 with a stock shell user is refused with the field and the reason."""
    text = Path(load_profile("pixel7_arm64")[1]).read_text() + "shell_user: shell\n"
    with pytest.raises(SpecError, match="arch: arm64 needs shell_user: root"):
        parse_profile(text)


def test_the_cache_key_follows_the_recipe(monkeypatch):
    """Another runtime wheel is another root."""
    before = arm64_root.key()
    monkeypatch.setitem(arm64_root.RUNTIMES, "litert",
                        arm64_root.Wheel("ai-edge-litert==2.2.0", "manylinux_2_27_aarch64",
                                         "ai_edge_litert"))
    assert arm64_root.key() != before


def test_a_host_without_debootstrap_gets_one_line_and_the_fix(monkeypatch):
    """No debootstrap: a DeviceError (exit 5) that says how to install it."""
    monkeypatch.setattr(arm64_root.shutil, "which", lambda name: None)
    monkeypatch.setattr(arm64_root.os, "geteuid", lambda: 0)
    with pytest.raises(DeviceError) as e:
        arm64_root.check_host()
    assert "apt-get install debootstrap" in e.value.one_line()
    assert int(e.value.exit_code) == 5


def test_a_host_refusing_binfmt_misc_is_told_how_to_mount_it(monkeypatch, tmp_path):
    """binfmt_misc unmounted and `mount` refused: one line that the tests read as a machine
    that cannot run aarch64 programs, with the mount command."""
    import subprocess as sp

    monkeypatch.setattr(binfmt, "native", lambda: False)
    monkeypatch.setattr(binfmt, "_qemu_interpreter", lambda: "/usr/bin/qemu-aarch64-static")
    monkeypatch.setattr(binfmt, "BINFMT_DIR", tmp_path / "binfmt_misc")
    monkeypatch.setattr(binfmt.subprocess, "run", lambda *a, **k: sp.CompletedProcess(
        a[0], 32, "", "mount: permission denied"))
    with pytest.raises(DeviceError) as e:
        binfmt.ensure_aarch64()
    assert e.value.message.startswith(binfmt.BINFMT_REFUSED)
    assert "permission denied" in e.value.message
    assert "mount -t binfmt_misc binfmt_misc" in e.value.hint


def test_no_cross_compiler_names_the_package(monkeypatch, tmp_path):
    """Without aarch64-linux-gnu-gcc the aarch64 NNAPI library says which package to install."""
    monkeypatch.setenv("CC_AARCH64", "no-such-aarch64-gcc")
    with pytest.raises(BuildError) as e:
        simnnapi.build_library(tmp_path, arch="arm64")
    assert "for arm64" in e.value.message
    assert "apt-get install gcc-aarch64-linux-gnu" in e.value.one_line()


# ---------------------------------------------------------------- on the arm64 phone


@pytest.fixture(scope="module")
def arm64_ready() -> Path:
    """The cached arm64 root (built here the first time: several minutes)."""
    import os

    if os.geteuid() != 0:
        pytest.skip("the arm64 root needs root (debootstrap, chroot, binfmt_misc)")
    try:
        arm64_root.check_host()
    except DeviceError as e:
        if e.message.startswith(binfmt.BINFMT_REFUSED):
            pytest.skip(f"this machine cannot run aarch64 programs: {e.message}")
        raise
    return arm64_root.ensure()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("arm64-photos") / "photos"
    return tiny_photos(root, per_class=8)


def run_json(serial: str, *extra: str) -> dict:
    r = orch("run", str(PAPER), "--device", serial, *TINY, *extra, "--format", "json",
             timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)["runs"][0]


def losses(run: dict) -> list[float]:
    return [e[k] for e in run["result"]["epochs"] for k in ("train_loss", "test_loss")]


def phone_losses(phone, run: dict) -> list[float]:
    """The run's per-epoch losses at full precision, read from the agent's event file on the
    virtual phone's disk (the host receives them at 4 significant digits, where a difference
    of 1e-7 can straddle a rounding step)."""
    events = phone.host_path(f"{run['device_run_dir']}/{EVENTS_FILE}").read_text().splitlines()
    return [e[k] for e in map(json.loads, events) if e["kind"] == "epoch"
            for k in ("train_loss", "test_loss")]


def elf_machine(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[18:20], "little")


@pytest.mark.arm64
def test_image_build_finds_the_cached_root(arm64_ready):
    """`orch sim image build arm64` after the first build: the same root, nothing rebuilt."""
    r = orch("sim", "image", "build", "arm64", "--format", "json", timeout=120)

    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["root"], out["cached"]) == (str(arm64_ready), True)
    assert out["runtimes"] == ["litert", "tflite-runtime-2.20"]


@pytest.mark.arm64
def test_doctor_reports_arm64_v8a_and_an_aarch64_python(arm64_ready, virtual_phone):
    """`orch devices doctor` on pixel7_arm64: ABI arm64-v8a, its Python aarch64, all ✓."""
    phone = virtual_phone("pixel7_arm64", name="arm64-doctor")

    r = orch("devices", "doctor", phone.serial, "--format", "json", timeout=600)

    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["ABI"]["detail"] == "arm64-v8a (its Python runs aarch64)"
    assert checks["TFLite interpreter"]["detail"].startswith("tflite_runtime 2.20")
    assert all(c["ok"] for c in checks.values()), [c for c in checks.values() if not c["ok"]]


def with_runtime(profile: str, runtime: str, folder: Path) -> Path:
    """A copy of `profile` whose Python has `runtime` as its interpreter."""
    text = Path(load_profile(profile)[1]).read_text()
    text = re.sub(r"(?m)^runtime:.*$", "", text) + f"runtime: {runtime}\n"
    path = folder / f"{profile}_{runtime}.yaml"
    path.write_text(text)
    assert load_profile(path)[0].runtime == runtime
    return path


@pytest.mark.arm64
def test_paper_spec_on_arm64_has_the_losses_of_x86_on_nnapi_and_cpu(arm64_ready, virtual_phone,
                                                                     photos, tmp_path):
    """The tiny paper spec on pixel7_arm64 (tflite-runtime 2.20) through the aarch64 NNAPI fake
    and on the CPU, and with ai-edge-litert 2.3 on the CPU, finishes with each epoch's losses
    within 1e-4 of the same runs, on the same runtime, on the x86-64 Pixel 7."""
    arm = virtual_phone("pixel7_arm64", name="arm64-run", photos=photos)
    arm_litert = virtual_phone(str(with_runtime("pixel7_arm64", "litert", tmp_path)),
                               name="arm64-litert", photos=photos)
    runtime_python("tflite-runtime-2.20")  # skips, saying why, where it cannot be built
    x86 = virtual_phone(str(with_runtime("pixel7", "tflite-runtime-2.20", tmp_path)),
                        name="x86-run", photos=photos)
    x86_litert = virtual_phone("pixel7", name="x86-litert", photos=photos)
    lib = arm.state_dir / "system" / "lib64" / "libneuralnetworks.so"
    assert elf_machine(lib) == EM_AARCH64

    arm_nnapi, x86_nnapi = run_json(arm.serial), run_json(x86.serial)
    arm_cpu, litert_cpu, x86_cpu, x86_litert_cpu = (
        run_json(p.serial, "--set", "delegate=cpu") for p in (arm, arm_litert, x86, x86_litert))

    for run, interpreter in ((arm_nnapi, "tflite_runtime"), (arm_cpu, "tflite_runtime"),
                             (litert_cpu, "ai_edge_litert")):
        assert run["status"] == "finished", run
        versions = run["result"]["versions"]
        assert versions["interpreter"] == interpreter
        assert (versions["python"][:5], versions["numpy"][:5]) == ("3.11.", "1.24.")  # bookworm
    assert x86_nnapi["result"]["versions"]["interpreter"] == "tflite_runtime"
    assert x86_nnapi["delegate_used"] == "nnapi"
    assert (arm_nnapi["delegate_requested"], arm_nnapi["delegate_used"]) == ("nnapi", "nnapi")
    info = arm_nnapi["delegate_info"]
    assert info["device"] == "sim-npu" and info["simulated"] is True, info
    assert arm_cpu["delegate_used"] == litert_cpu["delegate_used"] == "cpu"
    assert len(losses(arm_nnapi)) == 4  # one head and one fine-tune epoch, train and test
    pairs = (((arm, arm_nnapi), (x86, x86_nnapi)), ((arm, arm_cpu), (x86, x86_cpu)),
             ((arm_litert, litert_cpu), (x86_litert, x86_litert_cpu)))
    for (phone, run), (ref_phone, ref) in pairs:
        full = phone_losses(phone, run)
        assert [float(f"{v:.3e}") for v in full] == losses(run)  # what the host received
        assert full == pytest.approx(phone_losses(ref_phone, ref), abs=1e-4)
