"""Static files from a fixed allowlist read once from the package: no request picks a path."""

from __future__ import annotations

import hashlib
from importlib.resources import files

from fastapi import APIRouter, HTTPException, Request, Response

# name → media type. Only these names are ever served; anything else is a 404.
ALLOWED: dict[str, str] = {
    "app.css": "text/css; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def load_static() -> dict[str, tuple[bytes, str, str]]:
    """name → (bytes, media type, ETag), read from the installed package."""
    folder = files("dashboard").joinpath("static")
    out = {}
    for name, media in ALLOWED.items():
        data = folder.joinpath(name).read_bytes()
        out[name] = (data, media, '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
    return out


def static_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    served = load_static()

    @router.get("/static/{name}")
    def static(name: str, request: Request) -> Response:
        if name not in served:
            raise HTTPException(status_code=404, detail="No such static file.")
        data, media, etag = served[name]
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(content=data, media_type=media, headers=headers)

    return router
