"""The adb wire format, device side: packet headers, the CNXN banner, service names (pure).

A packet is a 24-byte header of six little-endian u32 (command, arg0, arg1, payload length,
checksum, magic = command ^ 0xffffffff) and a payload. From version 0x01000001 on, the
checksum may be 0, so this phone never computes one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_WRTE = 0x45545257
A_CLSE = 0x45534C43
A_AUTH = 0x48545541
A_SYNC = 0x434E5953

A_VERSION = 0x01000001  # no checksums
MAX_PAYLOAD = 256 * 1024  # larger than 4 KiB is what makes push fast (DESIGN.md)

NAMES = {A_CNXN: "CNXN", A_OPEN: "OPEN", A_OKAY: "OKAY", A_WRTE: "WRTE", A_CLSE: "CLSE",
         A_AUTH: "AUTH", A_SYNC: "SYNC"}

HEADER = struct.Struct("<6I")
HEADER_SIZE = HEADER.size

# Features the host learns from the banner. shell_v2 without fixed_push_mkdir would make the
# adb CLI run `mkdir` through the shell in the middle of a directory push.
FEATURES = ("shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir")


class ProtocolError(Exception):
    """The host sent something that is not an adb packet; the connection is dropped."""


@dataclass(frozen=True)
class Header:
    command: int
    arg0: int
    arg1: int
    length: int

    @property
    def name(self) -> str:
        return NAMES.get(self.command, f"0x{self.command:08x}")


def header(command: int, arg0: int, arg1: int, length: int, checksum: int = 0) -> bytes:
    return HEADER.pack(command, arg0, arg1, length, checksum, command ^ 0xFFFFFFFF)


def pack(command: int, arg0: int, arg1: int, payload: bytes = b"") -> bytes:
    """Header + payload of one packet."""
    return header(command, arg0, arg1, len(payload)) + payload


def unpack_header(data: bytes, *, max_payload: int = 1 << 20) -> Header:
    """Parse a 24-byte header; a bad magic or an oversized length is a ProtocolError."""
    if len(data) != HEADER_SIZE:
        raise ProtocolError(f"short header ({len(data)} bytes)")
    command, arg0, arg1, length, _check, magic = HEADER.unpack(data)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic 0x{magic:08x} for command 0x{command:08x}")
    if length > max_payload:
        raise ProtocolError(f"payload of {length} bytes exceeds {max_payload}")
    return Header(command, arg0, arg1, length)


def banner(props: dict[str, str], features: tuple[str, ...] = FEATURES) -> bytes:
    """`device::ro.product.name=…;ro.product.model=…;ro.product.device=…;features=…`.

    The host splits on ';' and '=' and ':' ends the system type, so those never appear in
    values.
    """
    keys = ("ro.product.name", "ro.product.model", "ro.product.device")
    parts = [f"{k}={_clean(props.get(k, ''))}" for k in keys]
    parts.append("features=" + ",".join(features))
    return ("device::" + ";".join(parts)).encode()


def _clean(value: str) -> str:
    return value.replace(";", "_").replace(":", "_").replace("=", "_")


def service_name(payload: bytes) -> str:
    """The service of an OPEN packet (NUL-terminated)."""
    return payload.split(b"\0", 1)[0].decode("utf-8", errors="replace")
