"""The egress reader kept running on the phone: the same bounded no-follow read as a one-shot
read, answered request after request (a real shell here, and a virtual phone over a real adb
server); a reader that went away is replaced by one-shot reads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sim_fixtures import _factory, _stop, adb_server  # noqa: F401

from device_agent import contract
from orchestrator.links.adb import AdbLink
from orchestrator.links.base import OnceRead
from orchestrator.links.reader import ReaderSession, serve_script


def test_serve_mode_answers_each_request_with_one_read(tmp_path):
    """Several requests on stdin: each answered as the one-shot reader would, in order."""
    text = tmp_path / "events.jsonl"
    text.write_bytes(b'{"seq": 1}\n{"seq": 2}\n')
    photo = tmp_path / "result.json"
    photo.write_bytes(b"\xff\xd8\xff\xe0JFIF")
    link = tmp_path / "link.json"
    link.symlink_to(text)
    requests = (f"0 10 100 {text}\n11 100 100 {text}\n0 5 9 {text}\n0 50 50 {photo}\n"
                f"0 5 99 {link}\n0 5 99 {tmp_path / 'missing'}\n").encode()
    out = subprocess.run(["/bin/sh", "-c", serve_script(sys.executable)], input=requests,
                         capture_output=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout == (b'ok 22 10\n{"seq": 1}' + b'ok 22 11\n{"seq": 2}\n' + b"big 22\n"
                          + b"binary 8\n" + b"link\n" + b"none\n")


def test_serve_mode_ends_at_a_malformed_request(tmp_path):
    """A request that is not OFFSET MAX CAP PATH ends the reader, nothing read."""
    out = subprocess.run(["/bin/sh", "-c", serve_script(None)],
                         input=f"0 x 5 {tmp_path}/a\n0 5 5 {tmp_path}/a\n".encode(),
                         capture_output=True, timeout=30)
    assert (out.returncode, out.stdout) == (2, b"")


@pytest.fixture(scope="module")
def pixel(adb_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("sim-reader")
    start, started = _factory(home)
    yield start("pixel7", name="reader-pixel")
    _stop(home, started)


@pytest.fixture
def link(pixel, isolated_home):
    lk = AdbLink(pixel.serial, root=f"/data/local/tmp/orch-reader-{os.getpid()}")
    yield lk
    lk.close()
    lk.phone.run(f"rm -rf {lk.root}")


def test_reads_share_one_reader_and_fall_back_when_it_is_gone(link, pixel):
    """Reads on a phone go to one running reader; when its stream breaks, the next read is
    a one-shot read with the same answer, and a new reader is started after it."""
    path = f"{link.root}/runs/r1/{contract.EVENTS_FILE}"
    host = pixel.host_path(path)
    host.parent.mkdir(parents=True)
    host.write_bytes(b'{"seq": 1}\n{"seq": 2}\n')
    assert link.read_once(path, 0, 10, 1000) == OnceRead("ok", 22, b'{"seq": 1}')
    reader = link._reader
    assert isinstance(reader, ReaderSession) and reader.open
    assert link.read_once(path, 11, 100, 1000) == OnceRead("ok", 22, b'{"seq": 2}\n')
    assert link._reader is reader  # the same Python on the phone answered
    (host.parent / "photo.json").write_bytes(b"\x89PNG\r\n")
    assert link.read_once(f"{link.root}/runs/r1/photo.json", 0, 10, 1000) == \
        OnceRead("binary", 6)
    reader._stream._conn.conn.close()  # the link to the reader breaks
    assert link.read_once(path, 0, 10, 1000) == OnceRead("ok", 22, b'{"seq": 1}')
    assert link._reader is None  # one-shot this time
    assert link.read_once(path, 0, 10, 1000).data == b'{"seq": 1}'
    assert link._reader is not None and link._reader is not reader
