"""Security at the edge of the app: strict headers on every response, and the access token.

Plain ASGI middleware (no per-request task switching), so they wrap every route, the static
files and the error pages alike.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_ENV = "ORCH_DASHBOARD_TOKEN"
COOKIE = "orch_dashboard_token"

# No inline script or style, nothing from elsewhere: the app serves every byte it runs.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None, environ: dict[str, str] | None = None
                  ) -> tuple[str | None, bool]:
    """The token to require, and whether it was generated here (so it must be printed).

    Loopback needs none unless one is given; any other address always gets one.
    """
    env = os.environ if environ is None else environ
    given = token or env.get(TOKEN_ENV) or None
    if given or is_loopback(host):
        return given, False
    return secrets.token_urlsafe(24), True


class SecurityHeaders:
    """Adds the CSP and friends to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TokenGate:
    """Every request must carry the token: `Authorization: Bearer`, the cookie, or `?token=`.

    A valid `?token=` on a page sets an HttpOnly cookie and redirects to the same URL without
    it, so the token does not stay in the address bar or the history.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no cookie
            cookie = SimpleCookie()
        from_cookie = cookie[COOKIE].value if COOKIE in cookie else None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        from_query = next((v for k, v in query if k == "token"), None)
        if self._ok(bearer) or self._ok(from_cookie):
            await self.app(scope, receive, send)
            return
        if self._ok(from_query):
            if scope["method"] in ("GET", "HEAD") and not scope["path"].startswith("/api"):
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                location = scope["path"] + (f"?{rest}" if rest else "")
                await _respond(send, 303, b"", b"text/plain", [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", _cookie_header(self.token.decode()).encode("latin-1"))])
                return
            await self.app(scope, receive, send)
            return
        await _unauthorized(scope, send)


def _cookie_header(token: str) -> str:
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"


async def _unauthorized(scope: Scope, send: Send) -> None:
    message = "This dashboard needs its access token."
    hint = ("Open the URL that `orch dashboard` printed (it ends in ?token=…), or send "
            "`Authorization: Bearer TOKEN`.")
    if scope["path"].startswith("/api"):
        body = json.dumps({"detail": message, "hint": hint}).encode()
        ctype = b"application/json"
    else:
        body = (f"<!doctype html><html lang=en><meta charset=utf-8><title>Token needed</title>"
                f"<h1>{message}</h1><p>{hint}</p></html>").encode()
        ctype = b"text/html; charset=utf-8"
    await _respond(send, 401, body, ctype, [(b"www-authenticate", b"Bearer")])


async def _respond(send: Send, status: int, body: bytes, ctype: bytes,
                   extra: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
