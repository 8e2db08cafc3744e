"""`orch data fetch`: download over real HTTP, lay out class folders, fail in one line."""

from __future__ import annotations

import http.server
import io
import json
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from orchestrator.datasets.fetch import fetch
from orchestrator.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _archive(n: int = 3) -> bytes:
    """A small zip with the layout of TensorFlow's cats_and_dogs_filtered.zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for split, start in (("train", 0), ("validation", 1000)):
            for folder, cls in (("cats", "cat"), ("dogs", "dog")):
                z.writestr(f"cats_and_dogs_filtered/{split}/{folder}/", "")
                for i in range(n):
                    z.writestr(f"cats_and_dogs_filtered/{split}/{folder}/{cls}.{start + i}.jpg",
                               b"\xff\xd8\xff" + bytes([i]))
        z.writestr("cats_and_dogs_filtered/vectorize.py", "print()")
    return buf.getvalue()


@pytest.fixture
def server():
    """A real HTTP server on localhost serving /cd.zip (a valid archive) and /bad.zip."""
    files = {"/cd.zip": _archive(), "/bad.zip": b"this is not a zip"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_lays_out_class_folders_and_skips_when_present(tmp_path, server):
    """train + validation cats/dogs become OUT/cat and OUT/dog; a second fetch is a no-op."""
    s = fetch("cats-and-dogs", tmp_path / "cd", url=f"{server}/cd.zip")
    assert s.per_class == {"cat": 6, "dog": 6} and s.downloaded_bytes > 0
    assert sorted(p.name for p in (tmp_path / "cd" / "dog").iterdir())[:2] == [
        "dog.0.jpg", "dog.1.jpg"]
    assert sorted(p.name for p in (tmp_path / "cd").iterdir()) == ["cat", "dog"]  # no zip left
    again = fetch("cats-and-dogs", tmp_path / "cd", url=f"{server}/missing.zip")
    assert again.downloaded_bytes == 0 and again.per_class == {"cat": 6, "dog": 6}


@pytest.mark.parametrize("path, needle", [("/bad.zip", "not a zip"),
                                          ("/missing.zip", "Could not download")])
def test_fetch_bad_archive_or_http_error(tmp_path, server, path, needle):
    """A non-zip or an HTTP error is a DataError, and leaves no partial download."""
    with pytest.raises(DataError, match=needle):
        fetch("cats-and-dogs", tmp_path / "cd", url=server + path)
    assert not any(p.is_file() for p in (tmp_path / "cd").rglob("*"))


def test_cli_fetch_offline_is_one_line_with_exit_3(tmp_path):
    """Unreachable source: one line naming the problem and the offline alternative."""
    r = subprocess.run([sys.executable, "-m", "orchestrator", "data", "fetch", "cats-and-dogs",
                        str(tmp_path / "cd"), "--url", f"http://127.0.0.1:{_closed_port()}/x.zip"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3
    assert r.stderr.strip().count("\n") == 0
    assert "Could not download" in r.stderr and "orch data synth" in r.stderr


def test_cli_fetch_json(tmp_path, server):
    """--format json reports the per-class counts."""
    r = subprocess.run([sys.executable, "-m", "orchestrator", "data", "fetch", "cats-and-dogs",
                        str(tmp_path / "cd"), "--url", f"{server}/cd.zip", "--format", "json"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["per_class"] == {"cat": 6, "dog": 6}


def test_unknown_data_set(tmp_path):
    """Only known public sets can be fetched."""
    with pytest.raises(DataError, match="Unknown data set"):
        fetch("imagenet", tmp_path)
