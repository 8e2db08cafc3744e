"""Files on a virtual phone: push and pull through adbutils and the adb CLI, one filesystem
for shell and sync, modes and mtimes, storage confinement, and a full disk."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess

import pytest
from adbutils.errors import AdbError
from sim_fixtures import ADB, sim_session, virtual_phone  # noqa: F401

SIZES = [0, 1, 4095, 4096, 65537, 262145, 1_000_003, 64 * 1024 * 1024]


@pytest.fixture(scope="module")
def pixel(sim_session):  # noqa: F811
    return sim_session("pixel7", name="sync-pixel7")


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """Random files of every size under test, written once."""
    folder = tmp_path_factory.mktemp("blobs")
    out = {}
    for size in SIZES:
        path = folder / f"blob-{size}.bin"
        path.write_bytes(os.urandom(size))
        out[size] = path
    return out


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def adb_cli(serial: str, *args: str, timeout: float = 120) -> tuple[int, str]:
    """(exit code, output): adb 29 prints its errors on stdout."""
    r = subprocess.run([ADB, "-s", serial, *args], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("size", SIZES)
def test_adbutils_push_pull_byte_identical(pixel, blobs, tmp_path, size):
    """adbutils pushes and pulls a file byte for byte, from 0 bytes to 64 MB."""
    dev = pixel.adb()
    remote = f"/data/local/tmp/sync/blob-{size}.bin"
    assert dev.sync.push(blobs[size], remote) == size
    back = tmp_path / "back.bin"
    assert dev.sync.pull(remote, back) == size
    assert digest(back) == digest(blobs[size]) == digest(pixel.host_path(remote))


@pytest.mark.parametrize("size", [0, 65537, 64 * 1024 * 1024])
def test_adb_cli_push_pull_byte_identical(pixel, blobs, tmp_path, size):
    """The adb CLI pushes and pulls the same bytes (its 64 KiB DATA chunks, stat_v2)."""
    remote = f"/sdcard/Download/cli-{size}.bin"
    assert adb_cli(pixel.serial, "push", str(blobs[size]), remote)[0] == 0
    assert adb_cli(pixel.serial, "pull", remote, str(tmp_path / "b"))[0] == 0
    assert digest(tmp_path / "b") == digest(blobs[size])


def test_directory_push_and_pull(pixel, tmp_path):
    """`adb push DIR` recreates the tree on the phone and `adb pull DIR` brings it back."""
    src = tmp_path / "tree"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "a" / "b" / "deep.txt").write_text("deep")
    pixel.adb().shell("mkdir -p /data/local/tmp/dirpush")
    rc, out = adb_cli(pixel.serial, "push", str(src), "/data/local/tmp/dirpush/")
    assert rc == 0, out
    listing = pixel.adb().shell("cd /data/local/tmp/dirpush/tree && find . -type f | sort")
    assert listing.split() == ["./a/b/deep.txt", "./top.txt"]
    rc, out = adb_cli(pixel.serial, "pull", "/data/local/tmp/dirpush/tree", str(tmp_path / "back"))
    assert rc == 0, out
    assert (tmp_path / "back" / "a" / "b" / "deep.txt").read_text() == "deep"


def test_push_keeps_mode_and_mtime(pixel, tmp_path):
    """A push sets the file mode it was given and the mtime the host sent; stat shows them."""
    dev = pixel.adb()
    src = tmp_path / "m.txt"
    src.write_text("mode")
    dev.sync.push(src, "/data/local/tmp/mode.txt", mode=0o640)
    info = dev.sync.stat("/data/local/tmp/mode.txt")
    host = pixel.host_path("/data/local/tmp/mode.txt").stat()
    assert stat.S_IMODE(info.mode) == 0o640 and stat.S_ISREG(info.mode) and info.size == 4
    assert int(info.mtime.timestamp()) == int(host.st_mtime)
    assert dev.shell("stat -c %a /data/local/tmp/mode.txt") == "640"


def test_list_shows_entries_with_dot_entries(pixel):
    """LIST returns every entry (with . and .., as readdir gives them)."""
    dev = pixel.adb()
    dev.shell("mkdir -p /sdcard/lst && touch /sdcard/lst/one /sdcard/lst/two")
    names = sorted(f.path for f in dev.sync.list("/sdcard/lst"))
    assert names == [".", "..", "one", "two"]


def test_shell_and_sync_see_one_filesystem(pixel, tmp_path):
    """What the shell writes, sync reads, and the reverse, at /data and /sdcard alike."""
    dev = pixel.adb()
    dev.shell("echo from-shell > /sdcard/Documents/s.txt")
    assert dev.sync.read_text("/storage/emulated/0/Documents/s.txt") == "from-shell\n"
    src = tmp_path / "p.txt"
    src.write_text("from-sync")
    dev.sync.push(src, "/sdcard/Documents/p.txt")
    assert dev.shell("cat /sdcard/Documents/p.txt") == "from-sync"
    assert pixel.host_path("/sdcard/Documents/p.txt").read_text() == "from-sync"


def test_cli_mkdir_lands_in_the_phone_not_on_the_host(pixel, tmp_path):
    """Pushing to a new deep folder creates it inside the phone's storage only."""
    src = tmp_path / "f.txt"
    src.write_text("x")
    rc, out = adb_cli(pixel.serial, "push", str(src), "/data/local/tmp/new/deep/dir/f.txt")
    assert rc == 0, out
    assert pixel.host_path("/data/local/tmp/new/deep/dir/f.txt").read_text() == "x"
    assert not os.path.exists("/data/local/tmp/new")


@pytest.mark.parametrize("target", ["/sdcard/../../etc/orch-escape",
                                    "/data/local/tmp/../../../../usr/orch-escape",
                                    "/system/orch-escape", "/proc/orch-escape"])
def test_push_outside_storage_is_refused(pixel, tmp_path, target):
    """A push whose path leaves /data or /sdcard (via `..` or not) fails and writes nothing."""
    src = tmp_path / "e.txt"
    src.write_text("escape")
    rc, out = adb_cli(pixel.serial, "push", str(src), target)
    assert rc != 0 and "couldn't create file: Permission denied" in out
    with pytest.raises(AdbError):
        pixel.adb().sync.push(src, target)
    assert not os.path.exists("/etc/orch-escape") and not os.path.exists("/usr/orch-escape")


def test_symlink_out_of_storage_is_refused(pixel, tmp_path):
    """A symlink the shell made cannot carry a push out of storage."""
    dev = pixel.adb()
    dev.shell("ln -sfn /etc /data/local/tmp/etc-link")
    src = tmp_path / "e.txt"
    src.write_text("escape")
    with pytest.raises(AdbError):
        dev.sync.push(src, "/data/local/tmp/etc-link/orch-escape")
    assert not os.path.exists("/etc/orch-escape")


def test_pull_of_missing_file_fails_cleanly(pixel, tmp_path):
    """Pulling a missing file is an error with the phone's reason, not a hang."""
    rc, out = adb_cli(pixel.serial, "pull", "/sdcard/none.bin", str(tmp_path / "x"))
    assert rc != 0 and "No such file or directory" in out
    with pytest.raises(AdbError):
        pixel.adb().sync.read_bytes("/sdcard/none.bin")


def test_full_disk_fails_push_with_the_phones_message(virtual_phone, tmp_path):  # noqa: F811
    """With a 1 MiB disk a 600 KB push fits, the next one fails with ENOSPC's message, the
    partial file is gone, and df shows the disk full."""
    phone = virtual_phone("nokia23", faults={"disk_size": 1 << 20})
    src = tmp_path / "600k.bin"
    src.write_bytes(os.urandom(600_000))
    rc, out = adb_cli(phone.serial, "push", str(src), "/sdcard/a.bin")
    assert rc == 0, out
    rc, out = adb_cli(phone.serial, "push", str(src), "/sdcard/b.bin")
    assert rc != 0 and "remote write failed: No space left on device" in out
    with pytest.raises(AdbError):
        phone.adb().sync.push(src, "/sdcard/c.bin")
    assert not phone.host_path("/sdcard/b.bin").exists()
    df = phone.adb().shell("df /sdcard").splitlines()[1].split()
    assert df[0] == "/dev/fuse" and int(df[1]) == 1024 and int(df[3]) < 600


def test_disk_size_can_change_at_run_time(virtual_phone, tmp_path):  # noqa: F811
    """Setting disk_size through the control file makes the next push fail; clearing it
    makes pushes work again."""
    phone = virtual_phone("pixel7")
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(200_000))
    dev = phone.adb()
    dev.sync.push(src, "/sdcard/one.bin")
    phone.set_faults(disk_size=100_000)
    assert dev.shell("cat /system/etc/sim/disk_size") == "100000"
    with pytest.raises(AdbError):
        dev.sync.push(src, "/sdcard/two.bin")
    phone.set_faults(clear=True)
    assert dev.shell("cat /system/etc/sim/disk_size") == ""
    assert dev.sync.push(src, "/sdcard/two.bin") == 200_000
