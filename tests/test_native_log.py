"""TensorFlow's C++ log lines go to the build's log file; Python's stderr stays on the
terminal (a real child process, so the descriptors are the real ones)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_fd2_writes_go_to_the_log_and_python_stderr_does_not(tmp_path):
    log = tmp_path / "logs" / "b.log"
    code = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from models.native_log import native_log_to
        with native_log_to(Path({str(log)!r})):
            os.write(2, b"I0000 flatbuffer_export.cc] Estimated count of arithmetic ops\\n")
            print("progress line", file=sys.stderr)
        os.write(2, b"after the block\\n")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Estimated count" in log.read_text()
    assert "progress line" not in log.read_text()
    assert "Estimated count" not in r.stderr
    assert "progress line" in r.stderr and "after the block" in r.stderr


def test_repeated_builds_keep_no_more_than_one_descriptor(tmp_path):
    """Each block's terminal stream is closed at the next block: descriptors do not pile up."""
    code = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from models.native_log import native_log_to
        before = len(os.listdir("/proc/self/fd"))
        for i in range(5):
            with native_log_to(Path({str(tmp_path / "b.log")!r})):
                os.write(2, b"noise\\n")
        print(len(os.listdir("/proc/self/fd")) - before)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) <= 1
    assert (tmp_path / "b.log").read_text().count("noise") == 5
