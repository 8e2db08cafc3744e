"""`orch audit`: The transfer ledger of a run and its privacy verdict."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedYet

# Stub: accept any arguments until the command lands.
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def audit(ctx: typer.Context) -> None:
    """The transfer ledger of a run and its privacy verdict."""
    raise NotImplementedYet("orch audit")
