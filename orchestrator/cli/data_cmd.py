"""`orch data`: Image sets: synthesize a demo set or fetch a public one."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedYet

app = typer.Typer(help="Image sets: synthesize a demo set or fetch a public one.", no_args_is_help=True)


@app.command("synth", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def synth_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch data synth")


@app.command("fetch", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def fetch_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch data fetch")
