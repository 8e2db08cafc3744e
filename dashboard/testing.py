"""Helpers to exercise the dashboard for real: a uvicorn server in a thread, a TestClient,
and a watched browser page (console errors, CSP violations, dialogs) for Playwright.

Used by the tests and by bench/bench_dashboard.py.
"""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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



# Debian's Chromium, headless, with nothing phoning home.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
# Records CSP violations; init scripts are injected by the browser, outside the page's CSP.
WATCH_CSP = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
ALL_DRAWN = ("() => [...document.querySelectorAll('figure[data-chart]')]"
             ".every(f => f.dataset.drawn)")


class Watched:
    """A Playwright page with its console errors, uncaught errors, dialogs, CSP violations."""

    def __init__(self, page: Any, shots: Path | None = None) -> None:
        self.page = page
        self.shots = shots
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)
        page.add_init_script(WATCH_CSP)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> None:
        """Go to `url` and wait until every chart on it is drawn."""
        self.page.goto(url)
        self.page.wait_for_load_state("load")
        self.page.wait_for_function(ALL_DRAWN, timeout=10_000)

    def assert_clean(self) -> None:
        csp = self.page.evaluate("window.__csp || []")
        assert not self.errors, self.errors
        assert not csp, csp
        assert not self.dialogs, self.dialogs

    def shot(self, name: str) -> Path | None:
        if self.shots is None:
            return None
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
