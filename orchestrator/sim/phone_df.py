"""`df` on a virtual phone (installed as /system/bin/df; standalone: stdlib only).

Prints toybox-style usage of /data and /storage/emulated. When the phone's storage has a
simulated capacity (/system/etc/sim/disk_size), sizes come from it and from the bytes
stored, so a "full disk" shows here as it does to a push.
"""

from __future__ import annotations

import os
import sys

CAPACITY_FILE = "/system/etc/sim/disk_size"
MOUNTS = (("/dev/block/dm-46", "/data"), ("/dev/fuse", "/storage/emulated"))
USAGE_ROOTS = ("/data", "/storage/emulated/0")


def tree_bytes(roots: tuple[str, ...]) -> int:
    total = 0
    stack = [r for r in roots if os.path.isdir(r)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        else:
                            total += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def usage(mount: str, capacity: int | None) -> tuple[int, int, int]:
    """(total, used, available) bytes of a mount."""
    if capacity is not None and mount in ("/data", "/storage/emulated"):
        used = tree_bytes(USAGE_ROOTS)
        return capacity, used, max(capacity - used, 0)
    # /sdcard is backed by /data on Android, and here by the same host folder.
    st = os.statvfs("/data" if mount == "/storage/emulated" else mount)
    total = st.f_blocks * st.f_frsize
    return total, (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize


def mount_of(path: str) -> tuple[str, str]:
    real = os.path.realpath(path)
    for fs, mount in MOUNTS:
        if real == mount or real.startswith(mount + "/"):
            return fs, mount
    return "/dev/root", "/"


def human(n: int) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.1f}{unit}" if unit and n < 10 else f"{int(n)}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def render(rows: list[tuple[str, int, int, int, str]], *, readable: bool) -> str:
    if readable:
        lines = [f"{'Filesystem':<16} {'Size':>5} {'Used':>5} {'Avail':>5} Use% Mounted on"]
        fmt = human
    else:
        lines = [f"{'Filesystem':<16} {'1K-blocks':>10} {'Used':>10} {'Available':>10} Use% "
                 "Mounted on"]

        def fmt(n: int) -> str:
            return str(n // 1024)
    for fs, total, used, avail, mount in rows:
        pct = 0 if total == 0 else -(-100 * used // total)
        width = 5 if readable else 10
        lines.append(f"{fs:<16} {fmt(total):>{width}} {fmt(used):>{width}} "
                     f"{fmt(avail):>{width}} {pct:>3}% {mount}")
    return "\n".join(lines) + "\n"


def read_capacity() -> int | None:
    try:
        with open(CAPACITY_FILE) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def main(argv: list[str]) -> int:
    readable = "-h" in argv
    paths = [a for a in argv if not a.startswith("-")]
    mounts = [mount_of(p) for p in paths] if paths else list(MOUNTS)
    capacity = read_capacity()
    rows = []
    for fs, mount in dict.fromkeys(mounts):
        try:
            rows.append((fs, *usage(mount, capacity), mount))
        except OSError as e:
            sys.stderr.write(f"df: {mount}: {e.strerror}\n")
    sys.stdout.write(render(rows, readable=readable))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
