"""The command-line parser's exceptions, whichever click raises them: recent Typer releases
carry their own copy of click (`typer._click`), older ones use the `click` package."""

from __future__ import annotations

import typer


def _classes(name: str, *seeds: type) -> tuple[type[BaseException], ...]:
    """Every class called `name` in the seeds' ancestry, plus click's own if installed."""
    found = {c for seed in seeds for c in seed.__mro__ if c.__name__ == name}
    try:
        import click.exceptions as click_exceptions

        found.add(getattr(click_exceptions, name))
    except (ImportError, AttributeError):
        pass
    return tuple(found)


PARSER_ERRORS = _classes("ClickException", typer.BadParameter)
USAGE_ERRORS = _classes("UsageError", typer.BadParameter)
ABORTS = _classes("Abort", typer.Abort)
EXITS = _classes("Exit", typer.Exit)
