"""`orch dashboard`: Serve the results dashboard."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedYet

# Stub: accept any arguments until the command lands.
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def dashboard(ctx: typer.Context) -> None:
    """Serve the results dashboard."""
    raise NotImplementedYet("orch dashboard")
