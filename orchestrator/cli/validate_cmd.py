"""`orch validate FILE`: parse and check an experiment spec or a sweep, one line per problem.

A sweep (a file with a top-level `base:`) is planned in full without phones: every point is
validated against its base spec, as `orch sweep` would before queueing anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import FormatOption, OutputFormat, SetOption, console, print_json
from orchestrator.errors import SpecError
from orchestrator.spec import load_spec

_SWEEP_KEY = re.compile(r"^base[ \t]*:", re.MULTILINE)


def _is_sweep(path: Path) -> bool:
    try:
        return _SWEEP_KEY.search(path.read_text(encoding="utf-8")) is not None
    except (OSError, ValueError):  # load_spec names the problem (a NUL, not text, …)
        return False


def validate(
    spec: Annotated[Path, typer.Argument(help="Experiment spec or sweep (YAML).",
                                         show_default=False)],
    variant: Annotated[str | None, typer.Option(help="Check that this variant exists.")] = None,
    set_: SetOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Check an experiment spec or a sweep; every problem names its field and line."""
    try:
        if _is_sweep(spec):
            _validate_sweep(spec, variant, set_ or [], format)
            return
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


def _validate_sweep(path: Path, variant: str | None, sets: list[str],
                    format: OutputFormat) -> None:
    from orchestrator.sweep.plan import Planner
    from orchestrator.sweep.spec import read_sweep

    sweep, text = read_sweep(path)
    planner = Planner(sweep, sweep_text=text, sweep_path=path, cli_sets=sets)
    if variant is not None:
        planner.base.variant_names(variant)
    labels = list(dict.fromkeys(run.label for run in planner.plan()))
    name = sweep.name or path.stem
    if format is OutputFormat.json:
        print_json({"valid": True, "sweep": name, "base": str(planner.base_path),
                    "points": labels, "repetitions": sweep.repetitions})
        return
    console.print(f"[green]✓[/green] {path}: sweep {name!r} on {sweep.base}, "
                  f"{len(labels)} point(s) × {sweep.repetitions} repetition(s) per phone: "
                  + ", ".join(labels), soft_wrap=True)
