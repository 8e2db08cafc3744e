"""Dashboard security: the token, static files from an allowlist only, escaping, headers."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session

from dashboard import create_app
from dashboard.app import LOOPBACK_HOSTS
from dashboard.sample_data import fill
from dashboard.security import COOKIE, TOKEN_ENV, is_loopback, resolve_token
from dashboard.static_files import ALLOWED
from dashboard.testing import make_client, serve
from orchestrator.store import repo
from orchestrator.store.db import make_engine

TOKEN = "t0k3n-for-tests"
XSS = {
    "experiment": "<script>alert('exp')</script>",
    "variant": "<img src=x onerror=alert('variant')>",
    "alias": '"><svg onload=alert("alias")>',
    "error": "</script><script>alert('error')</script>",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('sec') / 'sec.db'}"
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        info = fill(s, repeats=1)
        exp = repo.upsert_experiment(session=s, name=XSS["experiment"],
                                     spec={"variants": {XSS["variant"]: {}}}, spec_hash="x")
        dev = repo.upsert_device(session=s, serial="EVIL1", model="Evil")
        repo.set_alias(session=s, serial="EVIL1", alias=XSS["alias"])
        bad = repo.create_run(session=s, experiment_id=exp.id, variant=XSS["variant"],
                              device_id=dev.id, status="failed", error=XSS["error"],
                              accuracy=0.5, timing={"train": 1.0})
        repo.record_metrics(session=s, run_id=bad.id, metrics=[("test_acc", 1, 0.5)])
    yield url, engine, info, exp.id, bad.id
    engine.dispose()


@pytest.fixture(scope="module")
def guarded(store):
    url, engine, *_ = store
    with make_client(create_app(url, token=TOKEN, engine=engine),
                     follow_redirects=False) as c:
        yield c


def test_without_the_token_pages_api_and_static_are_refused(guarded):
    """Every kind of route answers 401 without the token (HTML or JSON as fits)."""
    for path in ("/", "/runs", "/api/runs", "/api/openapi.json", "/static/app.js"):
        r = guarded.get(path)
        assert r.status_code == 401, path
        assert "content-security-policy" in r.headers
    assert guarded.get("/api/runs").json()["hint"]
    assert guarded.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    guarded.cookies.set(COOKIE, "wrong")
    assert guarded.get("/").status_code == 401
    guarded.cookies.clear()


def test_bearer_header_opens_the_api(guarded):
    """`Authorization: Bearer TOKEN` works for API calls."""
    r = guarded.get("/api/experiments", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json()


def test_token_in_the_url_becomes_a_cookie_and_leaves_the_url(guarded):
    """`?token=` once: a 303 to the same page without it, with an HttpOnly cookie."""
    r = guarded.get("/runs", params={"status": "failed", "token": TOKEN})
    assert r.status_code == 303
    assert r.headers["location"] == "/runs?status=failed"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN}") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert guarded.get("/runs?status=failed").status_code == 200  # the client kept the cookie
    assert guarded.get("/api/progress", params={"id": 1}).status_code == 200
    guarded.cookies.clear()
    assert guarded.get("/runs").status_code == 401


def test_a_wrong_token_in_the_url_is_refused(guarded):
    """`?token=WRONG` opens nothing: 401 on pages and API, no cookie, no redirect."""
    for path in ("/runs", "/api/runs", "/api/openapi.json"):
        r = guarded.get(path, params={"token": "wrong"})
        assert r.status_code == 401, path
        assert "set-cookie" not in r.headers and "location" not in r.headers
    r = guarded.get("/runs", params={"token": TOKEN + "x"})
    assert r.status_code == 401
    r = guarded.get("/runs", params={"token": ""})
    assert r.status_code == 401
    assert not guarded.cookies


def test_resolve_token_requires_one_beyond_loopback():
    """Loopback needs no token; any other address gets the given one or a generated one."""
    assert resolve_token("127.0.0.1", None, {}) == (None, False)
    assert resolve_token("localhost", None, {TOKEN_ENV: "env"}) == ("env", False)
    token, generated = resolve_token("0.0.0.0", None, {})
    assert generated and token and len(token) >= 24
    assert resolve_token("192.168.1.5", None, {TOKEN_ENV: "env"}) == ("env", False)
    assert resolve_token("::", "given", {TOKEN_ENV: "env"}) == ("given", False)
    assert is_loopback("::1") and is_loopback("127.0.0.2") and not is_loopback("0.0.0.0")


def _raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation)."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


TRAVERSALS = [
    "/static/../../../../etc/passwd",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/app.css/../../app.py",
    "/static/..%5c..%5capp.py",
    "/static/%2fetc%2fpasswd",
    "/static/templates%2fbase.html",
    "/static/../sample_data.py",
    "/static/app.css%00.py",
]


def test_path_traversal_attempts_never_read_a_file(store):
    """Encoded and plain ../ paths reach no file: only allowlisted static names are served."""
    url, engine, *_ = store
    with serve(create_app(url, engine=engine)) as base:
        ok_status, ok_body = _raw_get(base, "/static/app.css")
        assert ok_status == 200 and ok_body.startswith(b"/*")
        for path in TRAVERSALS:
            status, body = _raw_get(base, path)
            assert status in (400, 404), (path, status)
            assert b"root:" not in body and b"[project]" not in body
            assert b"import " not in body and b"{% block" not in body, path


def test_static_serves_exactly_the_allowlist(store):
    """Each allowlisted file is served with its media type and an ETag; nothing else is."""
    url, engine, *_ = store
    with make_client(create_app(url, engine=engine)) as c:
        for name, media in ALLOWED.items():
            r = c.get(f"/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"] == media
            again = c.get(f"/static/{name}", headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304
        assert c.get("/static/pages.py").status_code == 404
        assert c.get("/static/").status_code == 404


def test_names_with_markup_are_escaped_everywhere(store):
    """Experiment, variant, alias and error text with <script> come out as text, never tags."""
    url, engine, _info, exp_id, bad_id = store
    with make_client(create_app(url, engine=engine)) as c:
        pages = {p: c.get(p).text for p in ("/", "/runs", f"/experiments/{exp_id}",
                                              f"/runs/{bad_id}", "/devices",
                                              f"/compare?run={bad_id}")}
    for path, html in pages.items():
        for raw in XSS.values():
            assert raw not in html, (path, raw)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "<svg onload" not in html, path
    assert "&lt;script&gt;alert(&#39;exp&#39;)&lt;/script&gt;" in pages["/"]
    # In JSON islands, < and > are \u003c / \u003e so no </script> can end them early.
    assert "\\u003cimg src=x onerror" in pages[f"/experiments/{exp_id}"]


def test_security_headers_on_every_response(store):
    """CSP, nosniff, frame denial and no-referrer on pages, API, static files and errors."""
    url, engine, *_ = store
    with make_client(create_app(url, engine=engine)) as c:
        for path in ("/", "/api/runs", "/static/app.js", "/runs/424242", "/api/runs/424242"):
            h = c.get(path).headers
            assert h["content-security-policy"].startswith("default-src 'self'"), path
            assert "script-src 'self'" in h["content-security-policy"]
            assert h["x-content-type-options"] == "nosniff"
            assert h["x-frame-options"] == "DENY" and h["referrer-policy"] == "no-referrer"


def test_loopback_server_refuses_foreign_host_headers(store):
    """On loopback, a Host header from another name (DNS rebinding) is refused."""
    url, engine, *_ = store
    with make_client(create_app(url, engine=engine, allowed_hosts=LOOPBACK_HOSTS),
                     base_url="http://127.0.0.1") as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"Host": "attacker.example"}).status_code == 400


def test_the_api_is_read_only(store):
    """No route accepts a write: POST, PUT and DELETE are refused."""
    url, engine, info, *_ = store
    with make_client(create_app(url, engine=engine)) as c:
        for method in ("post", "put", "delete", "patch"):
            r = getattr(c, method)(f"/api/runs/{info.finished[0]}")
            assert r.status_code == 405, method
