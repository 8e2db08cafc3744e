"""`orch validate SPEC`: parse and check an experiment spec, one line per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import FormatOption, OutputFormat, SetOption, console, print_json
from orchestrator.errors import SpecError
from orchestrator.spec import load_spec


def validate(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).", show_default=False)],
    variant: Annotated[str | None, typer.Option(help="Check that this variant exists.")] = None,
    set_: SetOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Check an experiment spec; every problem names its field and line."""
    try:
        parsed = load_spec(spec, overrides=set_ or [])
        variants = parsed.variant_names(variant)
    except SpecError as e:
        if format is OutputFormat.json:
            print_json({"valid": False, "problems": [
                {"field": p.field, "line": p.line, "message": p.message} for p in e.problems]})
        else:
            for p in e.problems:
                console.print(f"[red]✗[/red] {p}", soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    if format is OutputFormat.json:
        print_json({"valid": True, "spec": parsed.model_dump(mode="json")})
        return
    console.print(f"[green]✓[/green] {spec}: experiment {parsed.name!r}, "
                  f"{len(variants)} variant(s): " + ", ".join(
                      f"{v} (finetune_from {parsed.variants[v].finetune_from or 'none'})"
                      for v in variants) + f"; delegate {parsed.delegate}", soft_wrap=True)
