"""Can this host run aarch64 programs: qemu-user-static, and its binfmt_misc entry (with the F
flag, so programs inside a chroot find the interpreter). Mounts binfmt_misc and registers
qemu-aarch64 when only that is missing, as root may.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from orchestrator.errors import DeviceError

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")  # shipped by qemu-user-static
# How the errors begin where the kernel or the container refuses binfmt_misc (nothing to
# install then: the machine cannot run aarch64 programs).
BINFMT_REFUSED = ("binfmt_misc is not mounted and cannot be", "Cannot register qemu-aarch64")


def native() -> bool:
    return platform.machine() in ("aarch64", "arm64")


def ensure_aarch64() -> None:
    """Raise DeviceError, with how to get it, when aarch64 programs cannot run here."""
    if native():
        return
    interpreter = _qemu_interpreter()
    if interpreter is None:
        raise DeviceError("qemu-user-static is missing: it runs the arm64 phone's programs.",
                          hint="Install it: `apt-get install qemu-user-static`.")
    if not (BINFMT_DIR / "register").exists():
        r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise DeviceError(f"binfmt_misc is not mounted and cannot be "
                              f"({(r.stderr.strip() or 'mount failed').splitlines()[-1]}).",
                              hint="Mount it: `mount -t binfmt_misc binfmt_misc "
                                   "/proc/sys/fs/binfmt_misc` (in a container: a privileged "
                                   "one, or mount it on the host).")
    entry = BINFMT_DIR / "qemu-aarch64"
    if not entry.exists():
        _register(interpreter)
    status = entry.read_text()
    if not status.startswith("enabled"):
        raise DeviceError("binfmt_misc's qemu-aarch64 entry is disabled.",
                          hint=f"Enable it: `echo 1 > {entry}`.")
    flags = re.search(r"^flags:\s*(\S*)", status, re.M)
    if flags is None or "F" not in flags.group(1):
        raise DeviceError("binfmt_misc's qemu-aarch64 entry lacks the F flag, so it cannot "
                          "run programs inside a chroot.",
                          hint=f"Re-register it: `echo -1 > {entry}`, then "
                               f"`cat {BINFMT_CONF} > {BINFMT_DIR}/register`.")


def _qemu_interpreter() -> str | None:
    for path in ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
                 shutil.which("qemu-aarch64-static") or ""):
        if path and os.access(path, os.X_OK):
            return path
    return None


def _register(interpreter: str) -> None:
    if BINFMT_CONF.is_file():
        line = BINFMT_CONF.read_text().strip()
    else:  # Debian's rule (magic and mask of an aarch64 ELF executable), with this interpreter
        line = (r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00"
                r"\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff"
                r"\xff\xff\xff\xff\xfe\xff\xff\xff:" + interpreter + ":OPF")
    try:
        (BINFMT_DIR / "register").write_text(line + "\n")
    except OSError as e:
        raise DeviceError(f"Cannot register qemu-aarch64 with binfmt_misc: {e.strerror}.",
                          hint=f"Register it as root: `cat {BINFMT_CONF} > "
                               f"{BINFMT_DIR}/register`.") from None
