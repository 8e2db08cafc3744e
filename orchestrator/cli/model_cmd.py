"""`orch model`: Build and inspect the on-device models."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedYet

app = typer.Typer(help="Build and inspect the on-device models.", no_args_is_help=True)


@app.command("build", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def build_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch model build")
