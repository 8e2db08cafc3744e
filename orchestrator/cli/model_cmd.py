"""`orch model build SPEC`: build (or find in the cache) the two on-device models per variant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import (
    FormatOption,
    OutputFormat,
    SetOption,
    console,
    print_json,
    print_table,
)

app = typer.Typer(help="Build and inspect the on-device models.", no_args_is_help=True)


def build_variants(spec_path: Path, *, variant: str | None, out: Path | None,
                   overrides: list[str]) -> list[dict[str, Any]]:
    """Build every selected variant; one summary dict per variant."""
    from orchestrator.model_config import build_variant
    from orchestrator.settings import get_settings
    from orchestrator.spec import load_spec

    spec = load_spec(spec_path, overrides=overrides, check_paths=False)
    names = spec.variant_names(variant)
    rows = []
    for name in names:
        target = None if out is None else (out if len(names) == 1 else out / name)
        result = build_variant(spec, name, cache_dir=get_settings().cache_dir,
                               out_dir=target)
        artifacts = {
            file: {"path": str(result.dir / file), **info}
            for file, info in result.report["artifacts"].items()
        }
        rows.append({"variant": name, "hash": result.hash, "dir": str(result.dir),
                     "cache_hit": result.cache_hit, "build_seconds": result.report["seconds"],
                     "finetune_from": result.report["config"]["finetune_from"],
                     "artifacts": artifacts})
    return rows


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


@app.command("build")
def build_(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).", show_default=False)],
    variant: Annotated[str | None, typer.Option(help="Build only this variant.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Write here instead of the build cache (one subfolder per variant when "
        "several are built).", show_default=False)] = None,
    set_: SetOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Build frozen.tflite + train.tflite for each variant and report their ops."""
    rows = build_variants(spec, variant=variant, out=out, overrides=set_ or [])
    if format is OutputFormat.json:
        print_json(rows)
        return
    table = []
    for r in rows:
        for file, a in r["artifacts"].items():
            table.append((r["variant"], file, _size(a["bytes"]), f"{a['frozen_params']:,}",
                          f"{a['trainable_params']:,}",
                          "yes" if a["builtin_only"] else "NO",
                          "hit" if r["cache_hit"] else f"built, {r['build_seconds']} s"))
    print_table(None, ["variant", "artifact", "size", "frozen params", "trainable params",
                       "builtin only", "cache"], table)
    for r in rows:
        console.print(f"[bold]{r['variant']}[/bold] ({r['finetune_from'] or 'head only'}): "
                      f"{r['dir']}", soft_wrap=True)
        for file, a in r["artifacts"].items():
            kinds = ", ".join(f"{op}×{n}" for op, n in a["ops"].items())
            console.print(f"  {file} ops: {kinds}")
