"""Device names that say which adb server holds the phone: `SERIAL` or `SERIAL@HOST:PORT`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdbServer:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DeviceAddress:
    """One phone: its serial as its adb server knows it, and that server (None = default)."""

    serial: str
    server: AdbServer | None = None

    @classmethod
    def parse(cls, name: str) -> DeviceAddress:
        """`R5CT1` → local server; `R5CT1@10.0.0.5:5037` → the adb server on that host.

        The split is at the last '@' whose tail is `HOST:PORT`, so a serial that itself
        contains '@' or ':' (`127.0.0.1:5600`) stays whole.
        """
        serial, sep, where = name.rpartition("@")
        if sep and serial:
            host, colon, port = where.rpartition(":")
            if colon and host and port.isdigit():
                return cls(serial=serial, server=AdbServer(host, int(port)))
        return cls(serial=name)

    @property
    def name(self) -> str:
        """The canonical name, as stored in the devices table."""
        return f"{self.serial}@{self.server}" if self.server else self.serial

    def __str__(self) -> str:
        return self.name
