"""One bounded read of one file, never through a symlink: how every egress read is done.

The same code runs in-process (the local link) and on the phone, sent as the source of
`python -I -S -c` (no site, no environment, nothing of the agent's folder imported). Every
folder on the way is opened with O_NOFOLLOW relative to the one before, the file itself with
O_NOFOLLOW, and type and size are checked on the opened descriptor, so a symlink swapped in
between cannot redirect the read. Prints one header line, then the bytes read:
`none` | `link` | `other` | `error ERRNO` | `big SIZE` | `binary SIZE` | `ok SIZE COUNT`
followed by COUNT bytes. Bytes that are not printable ASCII text (the only thing the schema
allows) are not sent at all: a photo renamed result.json never leaves the phone. With
`--serve` it answers one request line `OFFSET MAX_BYTES CAP PATH` after another on stdin,
each the same single read, so a host following a run starts Python once, not per poll.
Standalone: stdlib only.
"""

import errno
import os
import stat
import sys

_TEXT = bytes(range(0x20, 0x7F)) + b"\n"


def read_once(path, offset, max_bytes, cap):
    """(header, data) for `path`: at most `max_bytes` from `offset`, nothing if over `cap`."""
    parts = [p for p in path.split("/") if p]
    # O_PATH: folders on the way need only be searchable (an app may not list /data/data).
    walk = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW
    fd = os.open("/", walk)
    try:
        for part in parts[:-1]:
            sub = os.open(part, walk, dir_fd=fd)
            os.close(fd)
            fd = sub
        f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except FileNotFoundError:
        return "none", b""
    except OSError as e:
        return ("link" if e.errno in (errno.ELOOP, errno.ENOTDIR) else f"error {e.errno}"), b""
    finally:
        os.close(fd)
    try:
        st = os.fstat(f)
        if not stat.S_ISREG(st.st_mode):
            return "other", b""
        if st.st_size > cap:
            return f"big {st.st_size}", b""
        want = max(0, min(max_bytes, cap - offset))
        os.lseek(f, offset, os.SEEK_SET)
        data = b""
        while len(data) < want:
            chunk = os.read(f, want - len(data))
            if not chunk:
                break
            data += chunk
        if data.translate(None, _TEXT):
            return f"binary {st.st_size}", b""
        return f"ok {st.st_size} {len(data)}", data
    finally:
        os.close(f)


def serve(requests, out):
    """Answer request lines until stdin ends; a malformed one ends the session."""
    for line in iter(requests.readline, b""):
        fields = line.rstrip(b"\n").decode("ascii", "replace").split(" ", 3)
        if len(fields) != 4 or not all(f.isdigit() for f in fields[:3]):
            return 2
        header, data = read_once(fields[3], int(fields[0]), int(fields[1]), int(fields[2]))
        out.write(header.encode() + b"\n" + data)
        out.flush()
    return 0


def main(argv):
    out = sys.stdout.buffer
    if argv[1:] == ["--serve"]:
        return serve(sys.stdin.buffer, out)
    header, data = read_once(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    out.write(header.encode() + b"\n" + data)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
