"""`orch devices`: Phones: list, info, alias, doctor, setup, clean."""

from __future__ import annotations

import typer

from orchestrator.errors import NotImplementedYet

app = typer.Typer(help="Phones: list, info, alias, doctor, setup, clean.", no_args_is_help=True)


@app.command("list", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def list_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch devices list")


@app.command("info", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def info_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch devices info")


@app.command("alias", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def alias_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch devices alias")


@app.command("doctor", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def doctor_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch devices doctor")


@app.command("setup", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def setup_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch devices setup")


@app.command("clean", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def clean_() -> None:
    """Not available yet."""
    raise NotImplementedYet("orch devices clean")
