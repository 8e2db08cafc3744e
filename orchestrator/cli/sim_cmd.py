"""`orch sim`: Virtual phones that speak the adb protocol."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedYet

app = typer.Typer(help="Virtual phones that speak the adb protocol.", no_args_is_help=True)


@app.command("start", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def start_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch sim start")


@app.command("stop", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def stop_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch sim stop")


@app.command("list", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def list_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch sim list")
