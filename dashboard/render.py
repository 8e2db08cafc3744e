"""Jinja2 rendering (autoescaped, strict) and the number formats every page shares."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel


def plain(obj: Any) -> Any:
    """JSON-ready data: models dumped, NaN and ±inf as null (JSON has no NaN)."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(plain(obj), allow_nan=False, **kwargs)


def pct(x: float | None, digits: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{100 * x:.{digits}f} %"


def secs(x: Any) -> str:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "—"
    if x >= 3600:
        return f"{x / 3600:.1f} h"
    if x >= 120:
        return f"{x / 60:.1f} min"
    return f"{x:.1f} s" if x >= 10 else f"{x:.2f} s"


def nbytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "—"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def when(t: datetime | None) -> str:
    if t is None:
        return "—"
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def num(x: Any, digits: int = 4) -> str:
    if not isinstance(x, (int, float)) or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def query(params: dict[str, Any], **changes: Any) -> str:
    """The query string of `params` with `changes` applied (None drops a key)."""
    merged = {**params, **changes}
    pairs: list[tuple[str, Any]] = []
    for k, v in merged.items():
        if v is None or v == "":
            continue
        pairs += [(k, x) for x in v] if isinstance(v, (list, tuple)) else [(k, v)]
    return "?" + urlencode(pairs) if pairs else "?"


def _env() -> Environment:
    env = Environment(loader=PackageLoader("dashboard", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, secs=secs, nbytes=nbytes, when=when, num=num)
    from dashboard.views import progress_view

    env.globals.update(query=query, progress_of=progress_view)
    # `tojson` escapes <, >, & and ' for embedding in HTML; NaN must become null first.
    env.policies["json.dumps_function"] = dumps
    return env


ENV = _env()


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code)
