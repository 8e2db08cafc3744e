"""`tcp:PORT`: a stream to a TCP port on the phone (what `adb forward tcp:X tcp:PORT` opens).

The phone shares the host's network, so the port is the host's loopback port.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

from orchestrator.sim.stream import Stream, StreamClosed
from orchestrator.sim.transport import Handler

if TYPE_CHECKING:
    from orchestrator.sim.phone import Phone


def factory(phone: Phone, args: list[str], rest: str) -> Handler | None:
    if not rest.isdigit() or not 0 < int(rest) < 65536:
        return None
    port = int(rest)

    def handler(stream: Stream) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", phone.tcp_port(port)), timeout=5)
        except OSError as e:
            phone.log(f"tcp:{port}: {e}")
            return
        sock.settimeout(None)
        stream.on_close(lambda: _shutdown(sock))

        def inbound() -> None:
            while data := stream.recv():
                try:
                    sock.sendall(data)
                except OSError:
                    break
            _shutdown(sock, how=socket.SHUT_WR)

        threading.Thread(target=inbound, daemon=True).start()
        try:
            while data := sock.recv(stream.max_payload):
                stream.write(data)
        except (OSError, StreamClosed):
            pass
        finally:
            sock.close()

    return handler


def _shutdown(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass
