"""`orch sweep`: Sweeps over parameters × phones."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedYet

app = typer.Typer(help="Sweeps over parameters × phones.", no_args_is_help=True)


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch sweep run")


@app.command("status", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def status_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch sweep status")


@app.command("resume", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def resume_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch sweep resume")


@app.command("cancel", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def cancel_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch sweep cancel")
