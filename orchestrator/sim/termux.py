"""A Termux-like app on a virtual phone, laid out at every start (host side, before the chroot).

/data/data/com.termux belongs to the app's uid (0700), as on Android: the adb shell of a
stock profile cannot enter it, only `run-as` (debuggable builds) or the app's own sshd can.
$PREFIX/bin holds a few of the host's tools (Termux's bootstrap), `pkg`, and what `pkg`
installed. Simulated, and said so: `pkg` downloads nothing, its Python is the host's (each
module gated by its Termux package; its TFLite runtime is the profile's `runtime:`, a
real tflite-runtime wheel for the Termux profiles), its sshd is paramiko's (termux_sshd.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.links.termux_env import DATA, PACKAGE, prelude
from orchestrator.runtimes import LITERT
from orchestrator.sim import termux_pkg
from orchestrator.sim.app_ports import PORTS
from orchestrator.sim.identity import AID_EVERYBODY, SETPRIV
from orchestrator.sim.packages import STORAGE_PERMISSIONS, AppRecord
from orchestrator.sim.profile import Profile, TermuxSpec
from orchestrator.sim.system import python_dirs, runtime_python

if TYPE_CHECKING:
    from orchestrator.sim.phone import Phone

# Termux's bootstrap (bash, coreutils, findutils, grep, sed, procps, …), from the host.
TOOLS = ("bash", "sh", "cat", "cp", "mv", "rm", "ln", "ls", "mkdir", "rmdir", "chmod", "touch",
         "head", "tail", "wc", "tr", "cut", "sort", "uniq", "sha256sum", "md5sum", "stat",
         "readlink", "realpath", "dirname", "basename", "env", "id", "printf", "echo", "test",
         "[", "true", "false", "sleep", "kill", "nohup", "setsid", "grep", "sed", "awk", "find",
         "xargs", "tee", "date", "du", "ps", "nproc", "uname", "mktemp", "tar", "gzip", "od",
         "base64", "cmp", "expr", "seq", "timeout", "whoami", "pgrep", "pkill")
# Standalone scripts written into the phone (never imported here: the gate would gate this
# process, and the sshd needs paramiko).
HERE = Path(__file__).parent
INSTALLERS = {"github": "com.google.android.packageinstaller", "fdroid": "org.fdroid.fdroid",
              "play": "com.android.vending"}


def app_record(spec: TermuxSpec) -> AppRecord:
    return AppRecord(name=PACKAGE, uid=spec.uid, version_name=spec.version,
                     version_code=int(spec.version.split(".")[1]) if "." in spec.version else 1,
                     installer=INSTALLERS[spec.source], debuggable=spec.debuggable,
                     target_sdk=34 if spec.source == "play" else 28,
                     granted=STORAGE_PERMISSIONS if spec.storage else ())


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def python_install(prefix: Path, templates: Path, profile: Profile) -> None:
    """Termux's Python on a virtual phone (simulated): installed at $PREFIX as a virtual
    environment (a link to the interpreter and a pyvenv.cfg), so its own site-packages are
    $PREFIX/lib/pythonX.Y/site-packages as on a real Termux, and a Python started isolated
    (-I) still finds them. With the `litert` runtime it is the host's interpreter and
    site-packages, LiteRT aliased as tflite_runtime; with a real wheel it sees only that
    runtime's environment (the wheel, the numpy it needs, Pillow). A module imports only once
    its Termux package is installed (site-packages/sitecustomize.py, the gate)."""
    own = runtime_python(profile)
    real = os.path.realpath(own or sys.executable)
    (prefix / "pyvenv.cfg").write_text(
        f"home = {os.path.dirname(real)}\n"
        f"include-system-site-packages = {'false' if own else 'true'}\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
    link = templates / "python"
    if os.path.lexists(link):
        link.unlink()
    link.symlink_to(real)
    site = prefix / SITE
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text((HERE / "termux_gate.py").read_text())
    alias = site / "tflite_runtime"
    shutil.rmtree(alias, ignore_errors=True)
    if profile.runtime == LITERT:
        alias.mkdir()
        (alias / "__init__.py").write_text((HERE / "termux_tflite.py").read_text())
        extra = python_dirs()[1]  # agent dependencies outside the host interpreter's prefix
    else:  # the real wheel in the runtime's environment answers `import tflite_runtime`
        extra = [str(Path(own).parent.parent / SITE)]
    (site / "orch-sim-host.pth").write_text("".join(f"{d}\n" for d in extra))


def _tools(bin_dir: Path) -> None:
    for name in TOOLS:
        link = bin_dir / name
        host = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if host and not os.path.lexists(link):
            link.symlink_to(host)


def install(storage: Path, profile: Profile) -> AppRecord | None:
    """Lay out the profile's Termux in the phone's storage; its package record, or None."""
    spec = profile.termux
    if spec is None:
        return None
    data = storage / DATA.lstrip("/")
    prefix = data / "files" / "usr"
    for sub in ("bin", "etc", "tmp", "var/run", "var/log", "share/orch-sim",
                termux_pkg.INSTALLED):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (data / "files" / "home").mkdir(exist_ok=True)
    (data / "cache").mkdir(exist_ok=True)
    user0 = storage / "data" / "user" / "0"
    if not os.path.lexists(user0):
        user0.parent.mkdir(parents=True, exist_ok=True)
        user0.symlink_to("/data/data")
    _tools(prefix / "bin")
    shebang = f"#!{sys.executable}"
    _script(prefix / "bin" / "pkg", f"{shebang} -IS\n{Path(termux_pkg.__file__).read_text()}")
    templates = prefix / termux_pkg.TEMPLATES
    python_install(prefix, templates, profile)
    _script(templates / "sshd", f"{shebang}\n" + (HERE / "termux_sshd.py").read_text())
    # An sshd does not outlive a restart: forget its port and pid.
    shutil.rmtree(prefix / PORTS, ignore_errors=True)
    (prefix / "var" / "run" / "sshd.pid").unlink(missing_ok=True)
    termux_pkg.install(prefix, spec.packages)
    termux_pkg.refresh_commands(prefix)
    for folder, dirs, files in os.walk(data):
        os.lchown(folder, spec.uid, spec.uid)
        for name in dirs + files:
            os.lchown(Path(folder) / name, spec.uid, spec.uid)
    for private in (data, data / "files" / "home"):
        private.chmod(0o700)
    return app_record(spec)


def boot(phone: Phone) -> None:
    """Inside the phone, after the chroot: start Termux's sshd when the profile says it runs
    (as Termux:Boot would), as the app's uid."""
    spec = phone.profile.termux
    if spec is None or not spec.sshd:
        return
    groups = f"3003,{AID_EVERYBODY}" if spec.storage else "3003"
    argv = [SETPRIV, f"--reuid={spec.uid}", f"--regid={spec.uid}", f"--groups={groups}",
            "--", "/bin/sh", "-c", prelude() + f"cd {DATA}/files/home && sshd"]
    proc = phone.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=30)
    if proc.returncode != 0:
        phone.log(f"Termux sshd did not start: {out.decode(errors='replace').strip()}")
