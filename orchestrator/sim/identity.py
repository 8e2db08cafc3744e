"""Who a virtual phone's adb shell is: root (the default, like a rooted phone) or, on a stock
phone's profile (`shell_user: shell`), Android's `shell` user (uid 2000), so the kernel
refuses it what Android refuses it: an app's private folder, another uid's processes.

The shell keeps CAP_SETUID/CAP_SETGID (ambient) for one reason: the phone's `run-as` must
switch to an app's uid, which the real run-as does with its own privileges. Everything else
(file access, signals) is checked against uid 2000. The sync service acts as the same user
through a per-thread filesystem uid, as adbd runs as `shell` on a stock phone.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

from orchestrator.sim.profile import Profile

AID_SHELL = 2000
AID_EVERYBODY = 9997  # owner group of shared storage: apps reach /sdcard only through it
# Android's shell user: input, log, adb, sdcard_rw, sdcard_r, net_bt*, inet, net_bw_stats,
# readproc, uhid, everybody.
SHELL_GROUPS = (1004, 1007, 1011, 1015, 1028, 3001, 3002, 3003, 3006, 3009, 3011,
                AID_EVERYBODY)


# What a stock phone's /system/bin offers the shell (toybox, mksh, awk), from the host: a
# stock profile's shell PATH has no host folder, so no host Python answers for a phone's.
TOYBOX = ("sh", "cat", "chmod", "cp", "date", "dd", "du", "echo", "env", "find", "grep",
          "head", "id", "kill", "ln", "ls", "md5sum", "mkdir", "mv", "nohup", "nproc", "printf",
          "ps", "readlink", "realpath", "rm", "rmdir", "sed", "setsid", "sha256sum", "sleep",
          "sort", "stat", "tail", "tar", "tee", "test", "[", "timeout", "touch", "tr", "true",
          "false", "uname", "wc", "xargs", "awk", "cut", "basename", "dirname", "which",
          "whoami", "pgrep", "pkill", "expr", "seq", "uniq", "od", "base64", "cmp", "mktemp")
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


def write_toybox(system: Path, profile: Profile) -> None:
    """Links to the host's tools in a stock profile's /system/bin (host side, each start)."""
    if not is_stock(profile):
        return
    for name in TOYBOX:
        link = system / "bin" / name
        host = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if host and not os.path.lexists(link):
            link.symlink_to(host)


def is_stock(profile: Profile) -> bool:
    return profile.shell_user == "shell"


def shell_prefix(profile: Profile) -> list[str]:
    """argv prefix that runs a shell command as the profile's shell user ([] for root)."""
    if not is_stock(profile):
        return []
    groups = ",".join(str(g) for g in SHELL_GROUPS)
    return [SETPRIV, f"--reuid={AID_SHELL}", f"--regid={AID_SHELL}", f"--groups={groups}",
            "--inh-caps=+setuid,+setgid", "--ambient-caps=+setuid,+setgid", "--"]


_libc: ctypes.CDLL | None = None


def act_as_shell(profile: Profile) -> None:
    """Make the calling thread's file accesses those of the shell user (sync service).

    setfsuid/setfsgid are per thread, and moving the fsuid off 0 drops the thread's
    file capabilities, so permissions are checked for uid 2000 from here on.
    """
    global _libc
    if not is_stock(profile):
        return
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.setfsgid(AID_SHELL)
    _libc.setfsuid(AID_SHELL)


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def prepare_permissions(storage: Path, profile: Profile) -> None:
    """Owners and modes a stock phone has (host side, before the phone's root is built):
    /data/local/tmp `0771 shell shell` (apps may pass, not list), /data/data `0771` (system),
    and shared storage owned by the shell with group `everybody` (set-group-id folders, so new
    files stay in the group apps need the storage permission for)."""
    if not is_stock(profile):
        return
    data = storage / "data"
    _own(data / "local" / "tmp", AID_SHELL, AID_SHELL, 0o771)
    _own(data / "data", 1000, 1000, 0o771)
    sdcard = storage / "sdcard"
    for folder, dirs, files in os.walk(sdcard):
        _own(Path(folder), AID_SHELL, AID_EVERYBODY, 0o2770)
        for name in files:
            _own(Path(folder) / name, AID_SHELL, AID_EVERYBODY, 0o660)
        for name in dirs:
            if (Path(folder) / name).is_symlink():
                os.lchown(Path(folder) / name, AID_SHELL, AID_EVERYBODY)
