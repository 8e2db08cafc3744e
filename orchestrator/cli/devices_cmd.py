"""`orch devices`: Phones: list, info, alias, set, doctor, setup, clean."""

from __future__ import annotations

import contextlib
import re
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli import launcher_cmd
from orchestrator.cli.common import (
    DbOption,
    FormatOption,
    OutputFormat,
    console,
    err_console,
    open_store,
    print_json,
    print_table,
)
from orchestrator.errors import OrchError

app = typer.Typer(help="Phones: list, info, alias, set, doctor, setup, clean.",
                  no_args_is_help=True)

DeviceArg = Annotated[str, typer.Argument(
    help="Alias, serial (SERIAL or SERIAL@HOST:PORT for a remote adb server) or model name.")]


def _temp(t: float | None) -> str | None:
    return None if t is None else f"{t:.1f} °C"


def _pct(b: float | None) -> str | None:
    return None if b is None else f"{b:.0f} %"


@app.command("list")
def list_(
    server: Annotated[str | None, typer.Option(
        help="HOST:PORT of another adb server (default ORCH_ADB_HOST/ORCH_ADB_PORT).")] = None,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Attached phones: serial, alias, model, Android version, SoC, state, battery, temperature."""
    from orchestrator.devices.adb import list_attached
    from orchestrator.devices.address import AdbServer
    from orchestrator.devices.inventory import look
    from orchestrator.store import repo

    remote = None
    if server:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise OrchError(f"--server must be HOST:PORT, got {server!r}.")
        remote = AdbServer(host, int(port))
    with open_store(db) as s:
        aliases = repo.alias_map(session=s)
        views = [look(a, session=s, aliases=aliases) for a in list_attached(remote)]
    if format is OutputFormat.json:
        print_json(views)
        return
    if not views:
        console.print("No phones attached. Plug one in (USB debugging on), `adb connect` one, "
                      "or start a virtual one with `orch sim start --profile pixel7`.")
        return
    table = Table(header_style="bold")
    for col in ("serial", "alias", "model", "android", "soc", "state", "battery", "temp"):
        # A serial is copied into the next command: never wrap or cut it; figures neither.
        table.add_column(col, no_wrap=col not in ("alias", "model", "soc"),
                         overflow="fold", min_width=len(col))
    for v in views:
        table.add_row(*["—" if x is None else str(x) for x in (
            v.serial, v.alias, v.model, f"{v.release} ({v.sdk})" if v.release else None,
            v.soc, v.state if not v.error else f"{v.state} (error)", _pct(v.battery),
            _temp(v.temperature))])
    console.print(table)
    for v in views:
        if v.error:
            console.print(f"[yellow]{v.serial}:[/yellow] {v.error}", soft_wrap=True)


@app.command("info")
def info_(device: DeviceArg, db: DbOption = None, format: FormatOption = OutputFormat.table
          ) -> None:
    """One phone in detail: facts, health, free space for staging."""
    from orchestrator.devices.inventory import look
    from orchestrator.devices.resolve import resolve_device
    from orchestrator.runner.devices import device_aliases
    from orchestrator.store import repo

    with open_store(db) as s:
        aliases = repo.alias_map(session=s)
        view = look(resolve_device(device, device_aliases(s)), session=s, aliases=aliases,
                    with_disk=True)
    if view.error:
        raise OrchError(f"Cannot read {view.serial}: {view.error}")
    if format is OutputFormat.json:
        print_json(view)
        return
    rows = [("serial", view.serial), ("alias", view.alias), ("model", view.model),
            ("manufacturer", view.manufacturer),
            ("android", f"{view.release} (SDK {view.sdk})" if view.release else None),
            ("soc", view.soc), ("abi", view.abi), ("state", view.state),
            ("battery", _pct(view.battery)
             + (" (plugged)" if view.plugged else "") if view.battery is not None else None),
            ("temperature", _temp(view.temperature)),
            ("thermal status", view.thermal_status),
            ("free for staging", None if view.free_bytes is None
             else f"{view.free_bytes / 1e9:.2f} GB")]
    print_table(None, ["", ""], rows)


_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


@app.command("alias")
def alias_(
    name: Annotated[str, typer.Argument(help="The alias, e.g. pixel7.")],
    serial: Annotated[str, typer.Argument(help="Serial (or a model name matching one phone).")],
    db: DbOption = None,
) -> None:
    """Name a phone: `--device NAME` then means that phone."""
    from orchestrator.devices.adb import Phone
    from orchestrator.devices.inventory import read_facts, remember
    from orchestrator.devices.resolve import resolve_device
    from orchestrator.runner.devices import device_aliases
    from orchestrator.store import repo

    if not _ALIAS.fullmatch(name):
        raise OrchError(f"Alias {name!r} is not a plain name.",
                        hint="Use letters, digits, '_', '.', '-', starting with a letter.")
    target = resolve_device(serial, device_aliases(None))
    with open_store(db) as s:
        remember(s, target.name, read_facts(Phone(target.address, timeout=30)))
        dev = repo.set_alias(session=s, serial=target.name, alias=name)
    console.print(f"{name} → {dev.serial} ({dev.model or 'unknown model'})")


# Launcher-aware commands live in cli/launcher_cmd.py (work in orchestrator/launchers/).
app.command("doctor")(launcher_cmd.doctor)
app.command("setup")(launcher_cmd.setup)
app.command("set")(launcher_cmd.set_)


@app.command("clean")
def clean_(
    device: DeviceArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Refuse (exit 5) instead of waiting while a run holds the phone.")
    ] = False,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Remove staged agents, models, data sets and runs not in use; report bytes freed.
    Waits while a run holds the phone (one run or command at a time per phone)."""
    from orchestrator.devices.adb import Phone
    from orchestrator.devices.clean import clean
    from orchestrator.devices.resolve import resolve_device
    from orchestrator.launchers.choose import staged_in_use
    from orchestrator.links.adb import DEVICE_ROOT
    from orchestrator.runner.devices import device_aliases
    from orchestrator.runner.phone_lease import hold_for_command
    from orchestrator.store import repo
    from orchestrator.sweep.agents import stop_leftovers

    said: list[str] = []
    with open_store(db) as s:
        target = resolve_device(device, device_aliases(s))
        hold = contextlib.nullcontext() if dry_run else hold_for_command(
            session=s, serial=target.name, purpose="clean", wait=not no_wait,
            say=lambda text: err_console.print(text, soft_wrap=True))
        with hold:
            # Agents of runs that ended while the phone was away go first, and their folders.
            dev = repo.find_device(session=s, serial=target.address.serial)
            stopped = [] if dev is None else stop_leftovers(
                target.name, session=s, device_id=dev.id, say=said.append, dry_run=dry_run)
            termux = staged_in_use(target.address, session=s)  # agents running inside Termux
            plan = clean(Phone(target.address), DEVICE_ROOT, dry_run=dry_run,
                         also_in_use=termux)
    if format is OutputFormat.json:
        print_json({"device": target.name, "dry_run": dry_run, "bytes_freed": plan.bytes_freed,
                    "removed": [e.path for e in plan.remove],
                    "kept": [e.path for e in plan.keep], "stopped_agents_of_runs": stopped})
        return
    for line in said:
        console.print(line)
    verb = "would remove" if dry_run else "removed"
    for e in plan.remove:
        console.print(f"{verb} {e.path} ({e.kbytes * 1024 / 1e6:.1f} MB)")
    for e in plan.keep:
        console.print(f"kept {e.path}: a running agent uses it")
    console.print(f"{'Would free' if dry_run else 'Freed'} {plan.bytes_freed / 1e6:.1f} MB on "
                  f"{target.name}.")
