"""The phone's root filesystem, assembled inside the daemon's private mount namespace.

A small tmpfs becomes `/`; the host's /usr, /etc and the Python prefixes are bound in
read-only (so `/bin/sh` and the host's Python work); the phone's own storage is bound at
/data and /storage/emulated/0 (/sdcard links there), its /system read-only, and /dev,
/proc are the phone's own. The daemon then chroots into it, so its shell and its sync
service see one filesystem, and nothing the phone writes lands outside its storage.

Every read-only mount is a per-mount flag (`remount,bind,ro`): never remount a
superblock, which would make the host's filesystem read-only.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HOST_RO = ("usr", "etc")
ARM64_VIEW = "arm64"  # where an arm64 phone's root is seen, with the phone's own storage
ARM64_CPUINFO = "etc/sim/cpuinfo"  # inside /system: its /proc/cpuinfo
HOST_TOP = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # links on merged-/usr hosts
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


class SandboxError(Exception):
    pass


def _mount(*args: str) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SandboxError(f"mount {' '.join(args)}: {r.stderr.strip() or r.returncode}")


def _bind(src: str, dst: Path, *, ro: bool, recursive: bool = False) -> None:
    if Path(src).is_dir():
        dst.mkdir(parents=True, exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.touch()
    _mount("--rbind" if recursive else "--bind", src, str(dst))
    if ro:
        _mount("-o", "remount,bind,ro", str(dst))


def _covered(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def build_root(root: Path, *, system: Path, storage: Path, python_dirs: list[str],
               arm64_root: Path | None = None) -> None:
    """Mount the phone's root at `root` (call only in a private mount namespace); with
    `arm64_root`, also its view at /arm64, where the phone's Python runs."""
    root.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "mode=0755,size=16m", "phone-root", str(root))
    bound = [f"/{d}" for d in HOST_RO]
    for d in HOST_RO:
        _bind(f"/{d}", root / d, ro=True)
    for d in HOST_TOP:
        host = Path("/") / d
        if host.is_symlink():
            (root / d).symlink_to(os.readlink(host))
        elif host.is_dir():
            _bind(str(host), root / d, ro=True)
            bound.append(str(host))
    for d in python_dirs:
        if not _covered(os.path.realpath(d), bound) and not _covered(d, bound):
            _bind(d, root / d.lstrip("/"), ro=True)
            bound.append(d)
    _build_dev(root / "dev")
    (root / "proc").mkdir()
    _mount("-t", "proc", "proc", str(root / "proc"))  # this PID namespace's processes only
    _bind(str(root / "proc" / "sys"), root / "proc" / "sys", ro=True)
    _bind("/sys", root / "sys", ro=True, recursive=True)
    _bind(str(system), root / "system", ro=True)
    _bind(str(storage / "data"), root / "data", ro=False)
    _bind(str(storage / "sdcard"), root / "storage" / "emulated" / "0", ro=False)
    (root / "storage" / "self").mkdir()
    (root / "storage" / "self" / "primary").symlink_to("/storage/emulated/0")
    (root / "sdcard").symlink_to("/storage/self/primary")
    for d in ("vendor", "product", "apex", "mnt", "odm"):
        (root / d).mkdir(exist_ok=True)
    if arm64_root is not None:
        _arm64_view(root, arm64_root)
    _mount("-o", "remount,bind,ro", str(root))


def _arm64_view(root: Path, base: Path) -> None:
    """The arm64 root, read-only, with the phone's /data, /storage, /system, /dev, /proc and
    /sys over its own (their mount points were made when it was built), so a Python chrooted
    there sees the paths and files the phone's shell sees; /proc/cpuinfo describes an arm64
    CPU, not the host's."""
    view = root / ARM64_VIEW
    view.mkdir()
    _mount("--bind", str(base), str(view))
    _mount("-o", "remount,bind,ro", str(view))
    for d in ("dev", "proc", "storage", "data"):
        _mount("--rbind", str(root / d), str(view / d))
    for d in ("system", "sys"):
        _mount("--rbind", str(root / d), str(view / d))
        _mount("-o", "remount,bind,ro", str(view / d))
    _bind(str(root / "system" / ARM64_CPUINFO), view / "proc" / "cpuinfo", ro=True)


def _build_dev(dev: Path) -> None:
    dev.mkdir()
    _mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "phone-dev", str(dev))
    for node in DEV_NODES:
        _bind(f"/dev/{node}", dev / node, ro=False)
    (dev / "pts").mkdir()
    try:
        _mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", "devpts",
               str(dev / "pts"))
        (dev / "ptmx").symlink_to("pts/ptmx")
    except SandboxError:  # no private devpts here: share the host's
        _mount("--bind", "/dev/pts", str(dev / "pts"))
        _bind("/dev/ptmx", dev / "ptmx", ro=False)
    (dev / "shm").mkdir()
    _mount("-t", "tmpfs", "-o", "mode=1777,size=64m", "phone-shm", str(dev / "shm"))
    (dev / "fd").symlink_to("/proc/self/fd")
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        (dev / name).symlink_to(f"/proc/self/fd/{i}")


def enter_root(root: Path) -> None:
    os.chroot(root)
    os.chdir("/")


def prepare_storage(storage: Path) -> None:
    """The folders every phone has, created on the host before the first start."""
    for sub in ("data/local/tmp", "data/data", "data/app"):
        (storage / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("DCIM", "Download", "Pictures", "Documents", "Android/data"):
        (storage / "sdcard" / sub).mkdir(parents=True, exist_ok=True)
