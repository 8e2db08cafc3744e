"""`orch data`: image sets: synthesize a demo set or fetch a public one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import FormatOption, OutputFormat, console, err_console, print_json
from orchestrator.errors import DataError
from orchestrator.spec import MAX_PER_CLASS, MAX_SEED

app = typer.Typer(help="Image sets: synthesize a demo set or fetch a public one.",
                  no_args_is_help=True)


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write class folders into.",
                                        show_default=False)],
    per_class: Annotated[int, typer.Option("--per-class", help="Images per class.",
                                           show_default=False, min=1, max=MAX_PER_CLASS)],
    classes: Annotated[int, typer.Option(help="Number of classes (2–12).")] = 2,
    size: Annotated[int, typer.Option(help="Image side in pixels.", max=1024)] = 160,
    seed: Annotated[int, typer.Option(help="Same seed, same images.", min=0,
                                      max=MAX_SEED)] = 0,
    names: Annotated[str | None, typer.Option(
        help="Comma-separated class folder names (default: the shapes, circle,square,…).",
        show_default=False)] = None,
    camera: Annotated[bool, typer.Option(
        "--camera", help="Camera-like 12 MP JPEGs (4000×3000, some with EXIF orientation "
        "tags), as a phone's gallery holds them; --size is ignored.")] = False,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Write a deterministic synthetic class-folder set of JPEGs (shapes on clutter)."""
    from orchestrator.datasets.synth import synthesize

    name_list = [n.strip() for n in names.split(",")] if names else None
    try:
        if camera:
            from orchestrator.datasets.camera import HEIGHT, WIDTH, synthesize_camera

            s = synthesize_camera(out, classes=classes, per_class=per_class, seed=seed,
                                  names=name_list)
            dims = f"{WIDTH}×{HEIGHT} camera photos"
        else:
            s = synthesize(out, classes=classes, per_class=per_class, size=size, seed=seed,
                           names=name_list)
            dims = f"{s.size}×{s.size}"
    except ValueError as e:
        raise DataError(f"Cannot synthesize that set: {str(e).rstrip('.')}.") from None
    except OSError as e:
        raise DataError(f"Cannot write the set to {out}: {e.strerror or e}.") from None
    if format is OutputFormat.json:
        print_json({"root": str(s.root), "classes": s.classes, "per_class": s.per_class,
                    "size": s.size, "seed": s.seed, "files": s.files, "camera": camera})
        return
    console.print(f"Wrote {len(s.classes)} classes × {s.per_class} images ({dims}) "
                  f"to {s.root}. In a spec: data.source host:{s.root}, "
                  f"head.classes [{', '.join(s.classes)}]", soft_wrap=True, markup=False)


@app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="Data set: cats-and-dogs.", show_default=False)],
    out: Annotated[Path, typer.Argument(help="Folder to lay the class folders out in.",
                                        show_default=False)],
    url: Annotated[str | None, typer.Option(help="Download from this mirror instead.",
                                            show_default=False)] = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Download a public image set and lay it out as class folders (needs network)."""
    from orchestrator.datasets.fetch import fetch as fetch_set

    last = [-1]

    def progress(done: int, total: int | None) -> None:
        mb = done >> 20
        if format is OutputFormat.table and mb >= last[0] + 10:
            last[0] = mb
            of = f" of {total >> 20}" if total else ""
            err_console.print(f"downloaded {mb}{of} MB", highlight=False)

    s = fetch_set(name, out, url=url, progress=progress)
    if format is OutputFormat.json:
        print_json({"name": s.name, "root": str(s.root), "per_class": s.per_class,
                    "downloaded_bytes": s.downloaded_bytes})
        return
    what = "Already present" if not s.downloaded_bytes else "Fetched"
    counts = ", ".join(f"{c} {n}" for c, n in s.per_class.items())
    console.print(f"{what}: {s.name} in {s.root} ({counts}). In a spec: data.source "
                  f"host:{s.root}, head.classes [{', '.join(s.per_class)}]", soft_wrap=True,
                  markup=False)
