"""`orch dashboard [--host] [--port] [--db] [--token]`: serve the results dashboard."""

from __future__ import annotations

import socket
import sys
from typing import Annotated

import typer

from orchestrator.cli.common import DbOption, console, store_url
from orchestrator.errors import OrchError


def _check_port(host: str, port: int) -> None:
    """Fail with one line now, rather than with a uvicorn traceback later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise OrchError(f"Cannot listen on {host}:{port}: {e.strerror or e}.",
                            hint="Pick another port with --port, or another --host.") from None


def dashboard(
    host: Annotated[str, typer.Option(
        help="Address to listen on. Anything but loopback requires a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    db: DbOption = None,
    token: Annotated[str | None, typer.Option(
        help="Access token for every page and API call (default: ORCH_DASHBOARD_TOKEN; "
             "generated and printed when listening beyond loopback).",
        show_default=False)] = None,
) -> None:
    """Serve the results dashboard: Table 1, runs with curves, devices, privacy audits."""
    import uvicorn

    from dashboard.app import create_app, host_names
    from dashboard.security import TOKEN_ENV, resolve_token

    if not host.strip():
        raise typer.BadParameter("give an address, e.g. 127.0.0.1 (0.0.0.0 for every "
                                 "interface, with a token)", param_hint="'--host'")
    url = store_url(db)
    secret, generated = resolve_token(host, token)
    _check_port(host, port)
    app = create_app(url, token=secret,
                     allowed_hosts=host_names(host))
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{port}/" + (f"?token={secret}" if secret else "")
    console.print(f"orch dashboard: {link}", soft_wrap=True)
    console.print(f"store: {app.state.store_label} · Ctrl+C stops it", soft_wrap=True)
    if generated:
        console.print(f"A token was generated for this session (set {TOKEN_ENV} or --token to "
                      "choose one); the link above carries it once, then a cookie does.",
                      soft_wrap=True)
    sys.stdout.flush()  # the link must show even when stdout is a pipe
    uvicorn.run(app, host=host, port=port, log_level="warning")
