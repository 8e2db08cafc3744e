"""How many nodes of a model a delegate took, as the runtime itself reports it.

For every subgraph a delegate takes, TFLite logs "Replacing N out of M node(s) with delegate
(D) node, yielding P partitions for subgraph S" at its VERBOSE level. The Python API shows
the nodes of the first subgraph only, and train.tflite has one subgraph per signature; so
while an interpreter is built, the runtime's minimum log severity (its MinimalLogger, found
by symbol in the loaded library) is lowered and its stderr read. Where that logger cannot be
reached, the first subgraph's DELEGATE nodes are all that can be told.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import struct
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

SYMBOL = b"_ZN6tflite16logging_internal13MinimalLogger21minimum_log_severity_E"
VERBOSE = 0
LINE = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\) node")
_ELF_SYM = np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"),
                     ("value", "<u8"), ("size", "<u8")])
_address: dict[str, int | None] = {}


def kind(delegate_name: str) -> str:
    """The contract's name of a delegate from the name TFLite logs for it."""
    low = delegate_name.lower()
    for name in ("xnnpack", "nnapi", "gpu"):
        if name in low:
            return name
    return "gpu" if "gl" in low or "cl" in low else "none"


def node_counts(path: str) -> list[int]:
    """Operators per subgraph of a .tflite file (read from its flatbuffer, no schema)."""
    with open(path, "rb") as f:
        buf = f.read()

    def u32(at: int) -> int:
        return struct.unpack_from("<I", buf, at)[0]

    def field(table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", buf, table)[0]
        if 4 + 2 * index >= struct.unpack_from("<H", buf, vtable)[0]:
            return None
        off = struct.unpack_from("<H", buf, vtable + 4 + 2 * index)[0]
        return table + off if off else None

    def vector(at: int | None) -> tuple[int, int]:
        if at is None:
            return 0, 0
        start = at + u32(at)
        return start + 4, u32(start)

    start, n = vector(field(u32(0), 2))  # Model.subgraphs
    counts = []
    for i in range(n):
        sub = start + 4 * i + u32(start + 4 * i)
        counts.append(vector(field(sub, 3))[1])  # SubGraph.operators
    return counts


def _elf_symbol(path: str, name: bytes) -> int | None:
    """The value of symbol `name` in a little-endian ELF64 file (.symtab or .dynsym)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"\x7fELF" or m[4] != 2 or m[5] != 1:
            return None
        shoff, = struct.unpack_from("<Q", m, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", m, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", m, shoff + i * shentsize)
                    for i in range(shnum)]
        for sh_type, sym_off, sym_size, link in ((s[1], s[4], s[5], s[6]) for s in sections):
            if sh_type not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
                continue
            str_off, str_size = sections[link][4], sections[link][5]
            at = m.find(b"\0" + name + b"\0", str_off, str_off + str_size)
            if at < 0:
                continue
            syms = np.frombuffer(m[sym_off:sym_off + sym_size], _ELF_SYM)
            hit = np.nonzero(syms["name"] == at + 1 - str_off)[0]
            if len(hit):
                return int(syms["value"][hit[0]])
    return None


def _severity_address(package_dir: str) -> int | None:
    """Where the loaded runtime keeps its minimum log severity, or None."""
    if package_dir in _address:
        return _address[package_dir]
    found = None
    try:
        with open("/proc/self/maps") as f:
            bases: dict[str, int] = {}
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5].startswith(package_dir) and \
                        parts[5].endswith(".so") and int(parts[2], 16) == 0:
                    bases.setdefault(parts[5], int(parts[0].split("-")[0], 16))
        for lib, base in bases.items():
            value = _elf_symbol(lib, SYMBOL)
            if value:
                address = base + value
                if 0 <= ctypes.c_int.from_address(address).value <= 4:  # a TFLite severity
                    found = address
                    break
    except (OSError, ValueError, struct.error):
        found = None
    _address[package_dir] = found
    return found


def build_logged(build: Callable[[], Any], package_dir: str) -> tuple[Any, list[str] | None]:
    """Run `build` (make and allocate an interpreter) with the runtime's VERBOSE log on.

    Returns (what build returned, the runtime's log lines), lines None when the log cannot
    be reached; lines other than VERBOSE ones go on to stderr as before.
    """
    address = _severity_address(package_dir)
    if address is None:
        return build(), None
    level = ctypes.c_int.from_address(address)
    saved_level, saved_fd = level.value, os.dup(2)
    with tempfile.TemporaryFile() as log:
        try:
            level.value = VERBOSE
            os.dup2(log.fileno(), 2)
            result = build()
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            level.value = saved_level
        log.seek(0)
        lines = log.read().decode(errors="replace").splitlines()
    rest = "".join(f"{ln}\n" for ln in lines if not ln.startswith("VERBOSE"))
    if rest:
        os.write(2, rest.encode())
    return result, lines


def summarize(path: str, lines: list[str] | None, interpreter: Any,
              explicit: str | None = None) -> dict[str, Any]:
    """{delegate, delegated_nodes, total_nodes} of the model at `path` in `interpreter`.

    `explicit`: the kind of a delegate passed in by the caller (its log name may be any).
    """
    try:
        total = sum(node_counts(path))
    except (OSError, struct.error, IndexError):
        total = None
    if lines is not None:
        hits = [LINE.search(ln) for ln in lines]
        hits = [h for h in hits if h]
        taken = sum(int(h.group(1)) for h in hits)
        name = explicit or (kind(hits[0].group(3)) if hits else "none")
        return {"delegate": name if taken else "none", "delegated_nodes": taken,
                "total_nodes": total}
    try:  # the first subgraph only: whether a delegate took part of it, not how much
        ops = interpreter._get_ops_details()
    except Exception:  # private API, absent in some runtimes
        ops = []
    took = any(op.get("op_name") == "DELEGATE" for op in ops)
    return {"delegate": (explicit or "xnnpack") if took else "none", "delegated_nodes": None,
            "total_nodes": total}
