"""Wires the `orch` commands together and turns expected failures into one line + exit code."""

from __future__ import annotations

import sys

import typer

from orchestrator.cli import (
    audit_cmd,
    dashboard_cmd,
    data_cmd,
    demo_cmd,
    devices_cmd,
    model_cmd,
    results_cmd,
    run_cmd,
    sim_cmd,
    sweep_cmd,
    validate_cmd,
)
from orchestrator.cli.click_compat import ABORTS, EXITS, PARSER_ERRORS, USAGE_ERRORS
from orchestrator.errors import ExitCode, OrchError

app = typer.Typer(
    name="orch",
    help="Private on-device fine-tuning experiments on Android phones.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("validate")(validate_cmd.validate)
app.command("demo")(demo_cmd.demo)
app.command("run")(run_cmd.run)
app.add_typer(results_cmd.app, name="results")
app.add_typer(devices_cmd.app, name="devices")
app.add_typer(sim_cmd.app, name="sim")
app.add_typer(model_cmd.app, name="model")
app.command("audit")(audit_cmd.audit)
app.add_typer(sweep_cmd.app, name="sweep")
app.add_typer(data_cmd.app, name="data")
app.command("dashboard")(dashboard_cmd.dashboard)


def main(argv: list[str] | None = None) -> None:
    """Entry point: the one place where the exception tree becomes a user message."""
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except OrchError as e:
        typer.secho(f"error: {e.one_line()}", err=True, fg="red")
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg="yellow")
        sys.exit(int(ExitCode.INTERRUPTED))
    except EXITS as e:
        sys.exit(getattr(e, "exit_code", 0))
    except ABORTS:
        sys.exit(int(ExitCode.INTERRUPTED))
    except PARSER_ERRORS as e:
        _parser_error(e)
        sys.exit(getattr(e, "exit_code", 2))
    except Exception as e:
        store = _store_error(e)
        if store is None:
            raise
        typer.secho(f"error: {store.one_line()}", err=True, fg="red")
        sys.exit(int(store.exit_code))


def _store_error(e: Exception) -> OrchError | None:
    """A database error no command translated (the store went read-only or full mid-run)."""
    if not type(e).__module__.startswith(("sqlalchemy", "sqlite3")):
        return None
    from orchestrator.store.db import store_error

    return store_error(e)


def _parser_error(e: BaseException) -> None:
    """A bad option or argument: one line naming it and where help is, not a traceback.
    A bare command group (`orch results`) shows its help, as click would."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError" or not isinstance(e, USAGE_ERRORS):
        e.show()  # type: ignore[attr-defined]
        return
    message = e.format_message().strip().rstrip(".")  # type: ignore[attr-defined]
    where = ctx.command_path if ctx is not None else "orch"
    typer.secho(f"error: {message}. See `{where} --help`.", err=True, fg="red")
