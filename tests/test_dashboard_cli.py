"""`orch dashboard` as a user starts it: a real process, its printed URL, its token rule."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from dashboard.sample_data import fill
from dashboard.testing import ALL_DRAWN, CHROMIUM, CHROMIUM_ARGS, Watched, free_port
from orchestrator.store.db import make_engine

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        fill(s, repeats=1)
    engine.dispose()
    return url


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "ORCH_DASHBOARD_TOKEN": ""}
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "dashboard", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _first_line(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read()}")
    raise AssertionError("no URL printed")


def _get(url: str, **kwargs) -> httpx.Response:
    """GET, retrying briefly while uvicorn finishes binding after the URL is printed."""
    for _ in range(50):
        try:
            return httpx.get(url, timeout=5, **kwargs)
        except httpx.ConnectError:
            time.sleep(0.1)
    return httpx.get(url, timeout=5, **kwargs)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


def test_loopback_dashboard_shows_table1_and_curves_in_chromium(db_url):
    """On 127.0.0.1 no token is needed; the printed URL opens Table 1 and a run's curves."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    port = free_port()
    proc = _start("--port", str(port), "--db", db_url)
    try:
        line = _first_line(proc)
        url = f"http://127.0.0.1:{port}/"
        assert url in line and "token" not in line
        assert _get(url).status_code == 200
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                w = Watched(browser.new_page(viewport={"width": 1280, "height": 900}), SHOTS)
                w.open(url)
                with w.page.expect_navigation():
                    w.page.click("table.experiments a.strong")
                w.page.wait_for_function(ALL_DRAWN)
                assert w.page.locator("#table1 tbody tr").count() == 2
                assert w.page.locator("figure[data-chart=chart-accuracy] rect.bar").count() > 0
                with w.page.expect_navigation():
                    w.page.click("#table1 a.acc >> nth=0")
                w.page.wait_for_function(ALL_DRAWN)
                assert w.page.locator("figure[data-chart=chart-loss] path.series").count() == 2
                w.shot("cli-run")
                w.assert_clean()
            finally:
                browser.close()
    finally:
        _stop(proc)


def test_beyond_loopback_a_token_is_generated_and_required(db_url):
    """On 0.0.0.0 a token is generated and printed; requests without it get 401."""
    port = free_port("0.0.0.0")
    proc = _start("--host", "0.0.0.0", "--port", str(port), "--db", db_url)
    try:
        line = _first_line(proc)
        assert "?token=" in line
        token = line.split("?token=", 1)[1].split()[0]
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/api/experiments").status_code == 401
        ok = _get(f"{base}/api/experiments", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()[0]["name"] == "paper-table1"
    finally:
        _stop(proc)


def test_a_loopback_address_other_than_127_0_0_1_answers_its_own_host(db_url):
    """`--host 127.0.0.2`: requests to that address are served (Host 127.0.0.2 is allowed),
    a foreign Host header still gets 400."""
    port = free_port("127.0.0.2")
    proc = _start("--host", "127.0.0.2", "--port", str(port), "--db", db_url)
    try:
        assert "?token=" not in _first_line(proc)
        base = f"http://127.0.0.2:{port}"
        assert _get(f"{base}/api/experiments").status_code == 200
        assert _get(f"{base}/", headers={"Host": "attacker.example"}).status_code == 400
    finally:
        _stop(proc)


def test_a_taken_port_is_one_line_and_a_hint(db_url):
    """A port already in use fails fast with one line naming it, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "orchestrator", "dashboard", "--port",
                            str(port), "--db", db_url], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and str(port) in r.stderr and "--port" in r.stderr
