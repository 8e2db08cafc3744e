"""Helpers to exercise the dashboard for real: a uvicorn server in a thread, a TestClient.

Used by the tests and by bench/bench_dashboard.py.
"""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: Any, host: str = "127.0.0.1", timeout: float = 20.0) -> Iterator[str]:
    """Run `app` under uvicorn on a free port of `host`; yields its base URL."""
    port = free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def make_client(app: Any, **kwargs: Any) -> Any:
    """Starlette's TestClient (it warns that it prefers `httpx2`; `httpx` works the same)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient
    return TestClient(app, **kwargs)

