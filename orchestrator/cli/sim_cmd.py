"""`orch sim`: virtual phones that speak the adb protocol (start, list, stop, fault, profiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli import sim_image_cmd
from orchestrator.cli.common import (
    FormatOption,
    OutputFormat,
    console,
    err_console,
    print_json,
    print_table,
)

app = typer.Typer(help="Virtual phones that speak the adb protocol.", no_args_is_help=True)
app.add_typer(sim_image_cmd.app, name="image")

FaultOption = Annotated[
    list[str] | None,
    typer.Option("--fault", help="A fault, KEY=VALUE (repeatable): drop_after_bytes=5M, "
                 "drop_in=SECONDS, drop_at=UNIXTIME, throttle_mbps=20, disk_size=64M, "
                 "offline=true.", show_default=False),
]


@app.command("start")
def start(
    profile: Annotated[str, typer.Option(help="A shipped profile (see `orch sim profiles`) "
                                         "or a profile YAML file.")] = "pixel7",
    name: Annotated[str | None, typer.Option(help="Name of the phone (default: the profile "
                                             "id).", show_default=False)] = None,
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free even port ≥ 5586.")] = 0,
    photos: Annotated[Path | None, typer.Option(help="A class-folder image set to copy into "
                                                "the phone's /sdcard/DCIM/catsdogs.",
                                                show_default=False)] = None,
    fault: FaultOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Start a virtual phone in the background and connect the adb server to it."""
    from orchestrator.sim import manager
    from orchestrator.sim.faults import parse_assignments

    with sim_image_cmd.BuildDisplay(err_console) as show:  # an arm64 phone's first start
        phone = manager.start_phone(profile=profile, name=name, port=port, photos=photos,
                                    faults=parse_assignments(fault or []), progress=show)
    if fmt is OutputFormat.json:
        print_json(phone.to_public())
        return
    console.print(f"Started [bold]{phone.name}[/] ({phone.model}) on {phone.serial}; "
                  f"storage {phone.root}")
    console.print(f"Try: adb -s {phone.serial} shell getprop ro.product.model")


@app.command("list")
def list_(fmt: FormatOption = OutputFormat.table) -> None:
    """Virtual phones and their adb serials."""
    from orchestrator.sim import manager

    phones = manager.list_phones()
    if fmt is OutputFormat.json:
        print_json([p.to_public() for p in phones])
        return
    print_table("Virtual phones", ["name", "model", "serial", "state", "pid", "storage"],
                [[p.name, p.model, p.serial, "running" if p.running else "dead", p.pid, p.root]
                 for p in phones])


@app.command("stop")
def stop(
    name: Annotated[str | None, typer.Argument(help="The phone to stop.",
                                               show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every virtual phone.")] = False,
) -> None:
    """Disconnect the adb server from a virtual phone, then stop it (its storage stays)."""
    from orchestrator.sim import manager

    if all_ == (name is not None):
        raise typer.BadParameter("give a phone NAME or --all")
    stopped = manager.stop_all() if all_ else [manager.stop_phone(name or "")]
    for phone in stopped:
        console.print(f"Stopped {phone.name} ({phone.serial})")


@app.command("fault")
def fault(
    name: Annotated[str, typer.Argument(help="The phone.")],
    changes: Annotated[list[str] | None, typer.Argument(
        help="KEY=VALUE faults to set (see `orch sim start --help`).", show_default=False)
    ] = None,
    clear: Annotated[bool, typer.Option(help="Clear all faults first.")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Change a running phone's faults, e.g. `orch sim fault pixel7 drop_in=0` drops its link."""
    from orchestrator.sim import manager
    from orchestrator.sim.faults import parse_assignments

    faults = manager.set_faults(name, parse_assignments(changes or []), clear=clear)
    active = faults.model_dump(exclude_defaults=True)
    if fmt is OutputFormat.json:
        print_json(active)
        return
    console.print(f"{name}: " + (", ".join(f"{k}={v}" for k, v in active.items()) or "no faults"))


@app.command("profiles")
def profiles(fmt: FormatOption = OutputFormat.table) -> None:
    """The shipped phone profiles."""
    from orchestrator.sim.profile import load_profile, profile_names

    rows = []
    for pid in profile_names():
        p, _ = load_profile(pid)
        rows.append({"id": p.id, "model": p.model, "sdk": p.props["ro.build.version.sdk"],
                     "soc": p.props.get("ro.soc.model") or p.props.get("ro.board.platform"),
                     "abi": p.props["ro.product.cpu.abi"], "runtime": p.runtime,
                     "description": p.description})
    if fmt is OutputFormat.json:
        print_json(rows)
        return
    print_table("Phone profiles", ["id", "model", "sdk", "soc", "abi", "runtime"],
                [[r["id"], r["model"], r["sdk"], r["soc"], r["abi"], r["runtime"]]
                 for r in rows])
