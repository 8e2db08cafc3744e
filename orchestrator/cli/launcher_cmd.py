"""`orch devices doctor / setup / set`: check a phone for its launcher, prepare it, choose it.

Wired into `orch devices` by cli/devices_cmd.py; the work is in orchestrator/launchers/.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from orchestrator.cli.common import (
    DbOption,
    FormatOption,
    OutputFormat,
    console,
    err_console,
    open_store,
)
from orchestrator.cli.common import print_json as _print_json
from orchestrator.errors import DeviceError, OrchError

DeviceArg = Annotated[str, typer.Argument(
    help="Alias, serial (SERIAL or SERIAL@HOST:PORT for a remote adb server) or model name.")]


class LauncherName(StrEnum):
    direct = "direct"
    runas = "runas"
    ssh = "ssh"


LauncherOption = Annotated[LauncherName | None, typer.Option(
    "--launcher", help="direct (a Python on the adb shell's PATH), runas (Termux's GitHub "
    "build) or ssh (Termux's sshd, any build). Default: the phone's stored launcher, else "
    "what the doctor detects.", show_default=False)]


def _target(session, device: str):  # noqa: ANN001, ANN202
    from orchestrator.devices.resolve import resolve_device
    from orchestrator.runner.devices import device_aliases

    return resolve_device(device, device_aliases(session))


def doctor(device: DeviceArg, launcher: LauncherOption = None, db: DbOption = None,
           format: FormatOption = OutputFormat.table) -> None:
    """Check what a run needs on a phone, for its launcher: one line per check, with fixes."""
    from orchestrator.launchers.doctor import diagnose
    from orchestrator.runner.phone_lease import hold_for_command

    with open_store(db) as s:
        target = _target(s, device)
        # Its checks start Python on the phone: never while a run is being measured there.
        with hold_for_command(session=s, serial=target.name, purpose="doctor",
                              say=lambda text: err_console.print(text, soft_wrap=True)):
            diag = diagnose(target.address, session=s,
                            launcher=launcher.value if launcher else None)
    failed = [r for r in diag.results if not r.ok]
    if format is OutputFormat.json:
        _print_json({"device": target.name, "launcher": diag.launcher,
                     "launcher_source": diag.launcher_source, "ok": not failed,
                     "checks": diag.results})
    else:
        console.print(f"[bold]{target.name}[/bold] ({target.model or 'unknown model'}) · "
                      f"launcher {diag.launcher} ({diag.launcher_source})")
        for r in diag.results:
            mark = "[green]✓[/green]" if r.ok else "[red]✗[/red]"
            fix = f" → {r.fix}" if r.fix and not r.ok else ""
            console.print(f"{mark} {escape(r.name)}: {escape(r.detail + fix)}", soft_wrap=True)
    if failed:
        raise DeviceError(f"{len(failed)} of {len(diag.results)} checks failed on "
                          f"{target.name}: {', '.join(r.name for r in failed)}.",
                          hint="Apply the fixes listed above, then run the doctor again.")


def setup(
    device: DeviceArg,
    launcher: LauncherOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do every step without asking "
                                      "(for scripts).")] = False,
    allow_phantom_setting: Annotated[bool, typer.Option(
        "--allow-phantom-setting", help="Also turn off Android 12L+'s phantom-process monitor "
        "(`settings put global settings_enable_monitor_phantom_procs false`).")] = False,
    db: DbOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Prepare a Termux phone from the host: packages, ssh key, sshd, storage permission."""
    from orchestrator.devices.adb import Phone
    from orchestrator.launchers.doctor import diagnose
    from orchestrator.launchers.setup import Setup, Step

    if launcher is LauncherName.direct:
        raise OrchError("Setup prepares Termux (the runas and ssh launchers).",
                        hint="For direct, put a Python with numpy, Pillow and LiteRT on the "
                             "adb shell's PATH.")
    interactive = sys.stdin.isatty()

    def consent(step: Step) -> bool:
        if yes:
            return True
        return typer.confirm(f"{step.name}: {step.change}?", default=True, err=True)

    with open_store(db) as s:
        target = _target(s, device)
        plan = Setup(Phone(target.address, timeout=120),
                     launcher=launcher.value if launcher else None,
                     allow_phantom=allow_phantom_setting)
        steps = plan.plan()
        if not yes and not interactive and any(st.run for st in steps):
            raise OrchError(f"Setup would change {target.name}: "
                            + "; ".join(st.change for st in steps if st.run) + ".",
                            hint="Confirm each step in a terminal, or pass --yes.")
        outcomes = plan.run(steps, consent, session=s)
        diag = diagnose(target.address, session=s, launcher=plan.launcher)
    if format is OutputFormat.json:
        _print_json({"device": target.name, "launcher": plan.launcher,
                     "steps": [o.__dict__ for o in outcomes], "ok": diag.ok,
                     "checks": diag.results})
    else:
        marks = {"done": "[green]✓[/green]", "ok": "[green]✓[/green]",
                 "skipped": "[yellow]–[/yellow]", "manual": "[yellow]![/yellow]",
                 "failed": "[red]✗[/red]"}
        console.print(f"[bold]{target.name}[/bold]: setup for launcher {plan.launcher}")
        for o in outcomes:
            console.print(f"{marks[o.status]} {escape(o.name)}: {escape(o.detail)}",
                          soft_wrap=True)
        bad = [r for r in diag.results if not r.ok]
        console.print(f"doctor: {len(diag.results) - len(bad)} of {len(diag.results)} checks ✓"
                      + (f"; still ✗: {', '.join(r.name for r in bad)} (`orch devices doctor "
                         f"{target.name}` has the fixes)" if bad else ""), soft_wrap=True)
    if any(o.status == "failed" for o in outcomes):
        raise DeviceError(f"Setup of {target.name} did not finish.",
                          hint="See the ✗ steps above.")


def set_(
    device: DeviceArg,
    launcher: LauncherOption = None,
    forget_ssh_key: Annotated[bool, typer.Option(
        "--forget-ssh-key", help="Forget the phone's pinned sshd host key (after Termux was "
        "reinstalled).")] = False,
    db: DbOption = None,
) -> None:
    """Choose a phone's launcher (stored: every `orch run` on it uses it)."""
    from orchestrator.launchers.choose import remember_launcher
    from orchestrator.links.ssh_keys import KeyStore

    if launcher is None and not forget_ssh_key:
        raise OrchError("Nothing to set.", hint="Pass --launcher direct|runas|ssh.")
    with open_store(db) as s:
        target = _target(s, device)
        if launcher is not None:
            remember_launcher(s, target.name, launcher.value)
            console.print(f"{target.name}: launcher {launcher.value}")
    if forget_ssh_key:
        gone = KeyStore.default().forget(target.name)
        console.print(f"{target.name}: ssh host key " + ("forgotten" if gone else "not pinned"))
