"""`orch sim image`: the root an `arch: arm64` virtual phone runs its Python in (build, show)."""

from __future__ import annotations

from types import TracebackType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from orchestrator.cli.common import FormatOption, OutputFormat, console, err_console, print_json

app = typer.Typer(help="The arm64 root of `arch: arm64` virtual phones (built once, cached).",
                  no_args_is_help=True)
ARCHES = ("arm64",)


class BuildDisplay:
    """Progress of a root build on stderr: a bar on a terminal, a line per tenth otherwise.
    Shows nothing until a build reports (a cached root starts silently)."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last = -1

    def __enter__(self) -> BuildDisplay:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, pct: int, text: str) -> None:
        if self._bar is None and self.out.is_terminal:
            self._bar = Progress(TextColumn("arm64 root"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f} %"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[note]}"), console=self.out)
            self._task = self._bar.add_task("", total=100, note="")
            self._bar.start()
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=pct, note=text[:60])
        elif pct // 10 != self._last // 10:  # a line per tenth, for logs
            self.out.print(f"arm64 root: {pct:3d} % {text}")
        self._last = pct


def _check_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise typer.BadParameter(f"{arch!r} is not one of {', '.join(ARCHES)}")


@app.command("build")
def build(
    arch: Annotated[str, typer.Argument(help="The instruction set: arm64.")],
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Build the root once (debootstrap, the runtimes' aarch64 wheels); later calls find it."""
    from orchestrator.sim import arm64_root

    _check_arch(arch)
    cached = arm64_root.is_built()
    with BuildDisplay(err_console) as show:
        root = arm64_root.ensure(progress=show)
    if fmt is OutputFormat.json:
        print_json({"arch": arch, "root": str(root), "cached": cached,
                    "runtimes": sorted(arm64_root.RUNTIMES)})
        return
    console.print(f"arm64 root {'already built' if cached else 'built'}: {root} "
                  f"(runtimes: {', '.join(sorted(arm64_root.RUNTIMES))})")


@app.command("show")
def show(
    arch: Annotated[str, typer.Argument(help="The instruction set: arm64.")],
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Where the root is and whether it is built (builds nothing)."""
    from orchestrator.sim import arm64_root

    _check_arch(arch)
    info = {"arch": arch, "root": str(arm64_root.root_dir()), "built": arm64_root.is_built(),
            "key": arm64_root.key(), "recipe": arm64_root.recipe()}
    if fmt is OutputFormat.json:
        print_json(info)
        return
    state = "built" if info["built"] else "not built (`orch sim image build arm64`)"
    console.print(f"arm64 root {info['root']}: {state}")
