"""The arm64 root of a virtual phone with `arch: arm64`: Debian bookworm for aarch64 (Python,
numpy, Pillow) from debootstrap, plus one venv per runtime holding that runtime's aarch64
wheel. Its programs run on this host through qemu-user, which binfmt_misc starts for every
aarch64 executable. Built once and cached under ~/.cache/orch/arm64/<key>/, keyed by the
recipe below.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import BuildError, DeviceError
from orchestrator.sim import binfmt

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "python3-numpy", "python3-pil")
PYTHON_TAG = "311"  # bookworm's CPython 3.11: the wheels must match it
DEFAULT_MIRROR = "http://deb.debian.org/debian"
VENVS = "/opt/orch"  # inside the root: /opt/orch/<runtime>/bin/python3
RECIPE = 1  # bump when the steps below change what they build
# The CPU qemu emulates: ARMv8.2-A with dot product and fp16, as the Cortex-X1/A78/A55 of a
# Pixel 7 (qemu's default, `max`, adds SVE and SME no phone of this class has).
QEMU_CPU = "cortex-a76"
CPU_PART = "0xd0b"  # Cortex-A76's MIDR part number, for /proc/cpuinfo
# What the kernel lists for that CPU: the HWCAPs qemu gives it (AT_HWCAP 0x119ffb)
CPU_FEATURES = ("fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                "dcpop asimddp")


@dataclass(frozen=True)
class Wheel:
    requirement: str
    platform: str  # the manylinux tag PyPI publishes it under
    module: str  # what the agent imports


# The phone's interpreter, as a profile's `runtime:` names it.
RUNTIMES = {
    "litert": Wheel("ai-edge-litert==2.3.0", "manylinux_2_27_aarch64", "ai_edge_litert"),
    "tflite-runtime-2.20": Wheel("tflite-runtime-nightly==2.20.0.dev20250409",
                                 "manylinux_2_34_aarch64", "tflite_runtime"),
}

APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))

# Stages of a build and their share of its time, for a progress bar.
STAGES = (("debootstrap: download", 30), ("debootstrap: unpack", 25),
          ("debootstrap: configure", 30), ("runtime wheels", 5), ("venvs", 5), ("check", 5))

Progress = Callable[[int, str], None]  # (percent done, what happens now)


def cache_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orch" / "arm64"


def recipe() -> dict[str, object]:
    return {"suite": SUITE, "packages": list(PACKAGES), "python": PYTHON_TAG,
            "runtimes": {k: [w.requirement, w.platform] for k, w in sorted(RUNTIMES.items())},
            "recipe": RECIPE}


def key() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:16]


def root_dir(home: Path | None = None) -> Path:
    return (home or cache_home()) / key() / "root"


def venv_python(runtime: str) -> str:
    """The runtime's Python, as a path inside the root."""
    return f"{VENVS}/{runtime}/bin/python3"


def is_built(home: Path | None = None) -> bool:
    return (root_dir(home).parent / "ready").is_file()


def cpuinfo(cores: int) -> str:
    """An arm64 kernel's /proc/cpuinfo for the emulated CPU. Under qemu-user the phone would
    read the host's x86 one, and LiteRT's CPU detection (cpuinfo, for XNNPACK) crashes on it."""
    return "".join(f"processor\t: {i}\nBogoMIPS\t: 49.15\nFeatures\t: {CPU_FEATURES}\n"
                   "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
                   f"CPU part\t: {CPU_PART}\nCPU revision\t: 1\n\n" for i in range(cores))


# ---------------------------------------------------------------- the host's part


def parse_mirror(texts: list[str]) -> str:
    """The first Debian mirror (not the security archive) in apt sources, one-line
    (`deb URL SUITE …`) or deb822 (`URIs: URL`); Debian's own when there is none."""
    for text in texts:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+)", line)
            if m and re.search(r"/debian/?$", m.group(1)):
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def host_mirror() -> str:
    texts: list[str] = []
    for p in APT_SOURCES:
        files = sorted(p.glob("*.sources")) + sorted(p.glob("*.list")) if p.is_dir() else [p]
        texts += [f.read_text(errors="replace") for f in files if f.is_file()]
    return parse_mirror(texts)


def check_host(*, build: bool = True) -> None:
    """Raise DeviceError, with how to get it, when this host cannot run aarch64 programs (or,
    with `build`, build the root)."""
    if os.geteuid() != 0:
        raise DeviceError("Building and entering the arm64 root needs root (debootstrap, "
                          "chroot, binfmt_misc).", hint="Run orch as root (a container, CI).")
    if build and shutil.which("debootstrap") is None:
        raise DeviceError("debootstrap is missing: it builds the arm64 phone's root.",
                          hint="Install it: `apt-get install debootstrap`.")
    binfmt.ensure_aarch64()


# ---------------------------------------------------------------- the build


def ensure(*, home: Path | None = None, progress: Progress | None = None) -> Path:
    """The root, built first if needed (one builder at a time; the others wait)."""
    check_host(build=not is_built(home))
    root = root_dir(home)
    if is_built(home):
        return root
    root.parent.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent.parent / f"{key()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_built(home):
            _build(root.parent, progress or (lambda pct, text: None))
    return root


def _build(final: Path, progress: Progress) -> None:
    work = final.with_name(final.name + ".building")
    shutil.rmtree(work, ignore_errors=True)  # a build interrupted earlier
    shutil.rmtree(final, ignore_errors=True)
    root = work / "root"
    work.mkdir(parents=True)
    _debootstrap(root, work / "debootstrap.log", progress)
    _complete(work, progress)
    os.replace(work, final)
    progress(100, "ready")


def _complete(work: Path, progress: Progress) -> None:
    """After debootstrap: mount points for the phone's view, the venvs, the check."""
    root = work / "root"
    for d in ("data", "storage", "system", "opt/orch"):  # mount points of the phone's view
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "sdcard").symlink_to("/storage/self/primary")
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    progress(_done_before(3), "downloading the runtimes' aarch64 wheels")
    wheels = fetch_wheels(cache_home() / "wheels")
    progress(_done_before(4), "installing the runtimes into venvs")
    for name, wheel in RUNTIMES.items():
        _venv(root, name, wheel, wheels)
    for name, wheel in RUNTIMES.items():
        progress(_done_before(5), f"checking {name} under qemu")
        _check(root, name, wheel)
    (work / "recipe.json").write_text(json.dumps(recipe(), indent=1))
    (work / "ready").write_text("")


def _done_before(stage: int) -> int:
    return sum(w for _, w in STAGES[:stage])


class DebootstrapMeter:
    """Percent of the debootstrap stages done, from its `I:` lines: packages retrieved (against
    the usual count), then extracted and unpacked, then configured (against the count
    retrieved)."""

    USUAL_PACKAGES = 160  # bookworm minbase with PACKAGES

    def __init__(self) -> None:
        self.retrieved = 0
        self.unpacked = 0
        self.configured = 0

    def feed(self, line: str) -> int:
        word = line[3:].split(" ", 1)[0] if line.startswith("I: ") else ""
        if word == "Retrieving":
            self.retrieved += 1
        elif word in ("Extracting", "Unpacking"):
            self.unpacked += 1
        elif word == "Configuring":
            self.configured += 1
        n = max(self.retrieved, 1)
        if self.configured:
            return _done_before(2) + int(STAGES[2][1] * min(self.configured / n, 1))
        if self.unpacked:  # most packages are extracted and then unpacked
            return _done_before(1) + int(STAGES[1][1] * min(self.unpacked / (1.5 * n), 1))
        return int(STAGES[0][1] * min(self.retrieved / self.USUAL_PACKAGES, 1))


def _debootstrap(root: Path, log: Path, progress: Progress) -> None:
    mirror = host_mirror()
    cmd = ["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(PACKAGES)}",
           SUITE, str(root), mirror]
    meter = DebootstrapMeter()
    progress(0, f"debootstrap {SUITE} arm64 from {mirror}")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            text = line.strip()
            pct = meter.feed(text)
            if text.startswith("I: "):
                progress(pct, text[3:])
        rc = proc.wait()
    if rc != 0:
        tail = log.read_text(errors="replace").strip().splitlines() or ["no output"]
        raise BuildError(f"debootstrap of the arm64 root failed (exit {rc}): {tail[-1][:200]}",
                         hint=f"Full log: {log}; check the mirror ({mirror}) and the network.")


def fetch_wheels(folder: Path) -> Path:
    """The runtimes' aarch64 wheels, downloaded by the host's pip once (no pip runs inside
    the root: it has no network)."""
    folder.mkdir(parents=True, exist_ok=True)
    for wheel in RUNTIMES.values():
        dist, _, version = wheel.requirement.partition("==")
        pattern = f"{dist.replace('-', '_')}-{version}-cp{PYTHON_TAG}-*{wheel.platform}.whl"
        if any(folder.glob(pattern)):
            continue
        _pip("download", "--no-deps", *_target_flags(wheel), "-d", str(folder),
             wheel.requirement, what=f"Downloading {wheel.requirement} for aarch64")
    return folder


def _target_flags(wheel: Wheel) -> list[str]:
    return ["--only-binary=:all:", "--python-version", PYTHON_TAG, "--implementation", "cp",
            "--abi", f"cp{PYTHON_TAG}", "--platform", wheel.platform]


def _pip(*args: str, what: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                       capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"{what} failed (pip exit {r.returncode}): {tail[:200]}",
                         hint="Check the network to PyPI, then build again: "
                              "`orch sim image build arm64`.")


def _venv(root: Path, name: str, wheel: Wheel, wheels: Path) -> None:
    """A venv seeing the root's numpy and Pillow; the wheel goes in offline, installed by the
    host's pip for the phone's platform (pip under qemu would take minutes)."""
    _chroot(root, "/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip",
            f"{VENVS}/{name}", what=f"Creating the {name} venv")
    site = root / VENVS.lstrip("/") / name / "lib" / "python3.11" / "site-packages"
    _pip("install", "--no-index", "--find-links", str(wheels), "--no-deps",
         *_target_flags(wheel), "--target", str(site), wheel.requirement,
         what=f"Installing {wheel.requirement} into the arm64 root")


def _check(root: Path, name: str, wheel: Wheel) -> None:
    probe = (f"import platform, numpy, PIL, {wheel.module}.interpreter; "
             "print(platform.machine())")
    out = _chroot(root, venv_python(name), "-c", probe, what=f"Importing {name} in the root")
    if out.strip() != "aarch64":
        raise BuildError(f"The arm64 root's Python says it runs on {out.strip()!r}, not aarch64.",
                         hint="Check binfmt_misc's qemu-aarch64 entry.")


def _chroot(root: Path, *argv: str, what: str) -> str:
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    r = subprocess.run([chroot, str(root), *argv], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/",
                            "QEMU_CPU": QEMU_CPU})
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"{what} failed (exit {r.returncode}): {tail[:200]}",
                         hint="Build again with `orch sim image build arm64`.")
    return r.stdout
