"""The dashboard's app factory: pages, the JSON API, static files, security and errors."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import make_url
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from dashboard import api, pages
from dashboard.render import render
from dashboard.security import SecurityHeaders, TokenGate
from dashboard.static_files import static_router
from orchestrator.errors import NotFound, OrchError, StoreError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def host_names(host: str) -> list[str] | None:
    """The Host headers a server bound to `host` answers (None: any, behind the token).
    Loopback answers its own address and the loopback names, not a rebinding attacker's."""
    from dashboard.security import is_loopback

    if not is_loopback(host):
        return None
    bare = host.strip("[]")
    return list(dict.fromkeys([*LOOPBACK_HOSTS, bare, f"[{bare}]" if ":" in bare else bare]))


def _store_label(url: str) -> str:
    """The store's URL for the footer, without a password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the results store"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api", "/static"))


def _error(request: Request, status: int, message: str, hint: str | None) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message, "hint": hint}, status_code=status)
    title = "Not found" if status == 404 else "Error"
    return render("error.html", status_code=status, title=title, page="error", nav="",
                  status=status, message=message, hint=hint,
                  store=request.app.state.store_label)


def create_app(db_url: str, token: str | None = None, *, engine: Engine | None = None,
               allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """The dashboard over the store at `db_url`.

    token: required on every request when set (see `security.TokenGate`).
    allowed_hosts: Host headers to accept (guards a loopback server against DNS rebinding).
    """
    from orchestrator.store.db import get_engine

    app = FastAPI(title="orch results dashboard", version="0.1.0",
                  description="Read-only JSON API over the orch results store. NaN is null.",
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)
    app.state.engine = engine or get_engine(db_url)
    app.state.store_label = _store_label(db_url)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(static_router())

    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, exc.message, exc.hint)

    @app.exception_handler(OrchError)
    def orch_error(request: Request, exc: OrchError) -> Response:
        return _error(request, 503 if isinstance(exc, StoreError) else 500, exc.message,
                      exc.hint)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "There is no such page."
        return _error(request, exc.status_code, message, None)

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        return _error(request, 400, "The address has a value this page cannot use.", None)

    # Outermost last: headers wrap everything, including the token gate's 401.
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    if token:
        app.add_middleware(TokenGate, token=token)
    app.add_middleware(SecurityHeaders)
    return app
