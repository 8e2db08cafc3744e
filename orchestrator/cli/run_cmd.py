"""`orch run`: Run an experiment on a phone (or --device local): build, stage, train, collect."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedYet

# Stub: accept any arguments until the command lands.
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def run(ctx: typer.Context) -> None:
    """Run an experiment on a phone (or --device local): build, stage, train, collect."""
    raise NotImplementedYet("orch run")
