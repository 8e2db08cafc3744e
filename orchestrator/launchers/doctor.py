"""`orch devices doctor` for every launcher: one line per check, with the fix for each gap.

A direct phone gets ABI and Android, then the checks of `orchestrator.devices.doctor`. A
Termux phone (runas, ssh) gets Termux's own (installed, which build, the way in, staged files
readable from Termux, storage permission, sshd, background limits), then the runtime ones
(Python, numpy, Pillow, interpreter, `device_agent info`) answered from inside Termux, and
space, battery, temperature, NNAPI. Which launcher: the one asked for, else the one stored
for the phone, else what `detect` finds (stored then, so `orch run` uses it).
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from orchestrator.devices.adb import Phone
from orchestrator.devices.address import DeviceAddress
from orchestrator.devices.doctor import (
    CheckResult,
    DoctorContext,
    check_agent,
    check_battery,
    check_interpreter,
    check_nnapi,
    check_numpy,
    check_pillow,
    check_python,
    check_space,
    check_staging,
    check_thermal,
    parse_runtime,
    probe_command,
    run_checks,
)
from orchestrator.errors import DeviceError
from orchestrator.launchers.choose import detect, remember_launcher
from orchestrator.launchers.termux_checks import (
    TermuxContext,
    check_abi,
    check_android,
    check_build,
    check_phantom,
    check_readable,
    check_sshd,
    check_storage,
    check_termux,
    check_way_in,
)
from orchestrator.launchers.termux_facts import read_termux_facts
from orchestrator.links import scripts
from orchestrator.links.adb import AdbLink
from orchestrator.links.base import DeviceLink
from orchestrator.links.make import termux_shell
from orchestrator.links.shell import AgentShell
from orchestrator.links.termux import PYTHON, TermuxLink
from orchestrator.runner.devices import stored_launcher


@dataclass
class Diagnosis:
    serial: str
    launcher: str
    launcher_source: str  # given | stored | detected
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def choose_launcher(phone: Phone, session: Session | None,
                    launcher: str | None) -> tuple[str, str]:
    """(launcher, where it came from); a detected one that works is stored."""
    if launcher is not None:
        return launcher, "given"
    stored = stored_launcher(session, phone.name)
    if stored is not None:
        return stored, "stored"
    found = detect(phone)
    if found.launcher is not None and session is not None:
        remember_launcher(session, phone.name, found.launcher)
    return found.launcher or found.recommended, "detected"


def diagnose(address: DeviceAddress, *, session: Session | None = None,
             launcher: str | None = None) -> Diagnosis:
    phone = Phone(address, timeout=60)
    chosen, source = choose_launcher(phone, session, launcher)
    diag = Diagnosis(serial=phone.name, launcher=chosen, launcher_source=source)
    if chosen == "direct":
        ctx = gather(AdbLink(phone), session=session)
        diag.results = [check_abi(ctx.facts, termux=False, machine=ctx.runtime.get("machine")),
                        check_android(ctx.facts, termux=False), *run_checks(ctx)]
    else:
        diag.results = termux_results(phone, chosen, session)
    return diag


def gather(link: AdbLink, *, session: Session | None = None) -> DoctorContext:
    """Read what the checks of a direct phone need; pushes the agent bundle (recorded in the
    ledger)."""
    from orchestrator.devices.health import sample_health
    from orchestrator.devices.inventory import free_bytes, read_facts, remember

    phone = link.phone
    facts = read_facts(phone)
    ctx = DoctorContext(serial=link.serial, facts=facts, health=sample_health(phone),
                        free_bytes=free_bytes(phone), python=None)
    probe = shlex.quote(f"{link.root}/.orch-write-test")
    rc, out = phone.run_rc(f"umask 022; mkdir -p {shlex.quote(link.root)} && : > {probe} "
                           f"&& rm -f {probe}")
    ctx.staging_ok, ctx.staging_error = rc == 0, (out.strip().splitlines() or [None])[-1]
    try:
        ctx.python = link.python
    except DeviceError:
        return ctx
    device_id = remember(session, link.serial, facts).id if session is not None else None
    if ctx.staging_ok:
        ctx.runtime, ctx.runtime_error = _agent_info(link, link.agent.shell, ctx.python,
                                                     session, device_id)
    if ctx.runtime_error is not None:
        ctx.runtime = parse_runtime(phone.run(probe_command(ctx.python), check=False))
    return ctx


# ---------------------------------------------------------------- Termux (runas, ssh)


def _python_check(ctx: DoctorContext, tctx: TermuxContext) -> CheckResult:
    if tctx.way_in is not None:
        return CheckResult(name="python", ok=False, detail="cannot look: Termux not entered",
                           fix="Fix the checks above first.")
    if ctx.python is None:
        fix = (f"`orch devices setup {tctx.serial}` installs it through run-as"
               if tctx.launcher == "runas" else
               "In Termux: `pkg install python python-numpy python-pillow "
               "python-tflite-runtime`")
        return CheckResult(name="python", ok=False, detail="Termux has no python", fix=fix)
    return check_python(ctx)


def termux_results(phone: Phone, launcher: str, session: Session | None) -> list[CheckResult]:
    from orchestrator.devices.health import sample_health
    from orchestrator.devices.inventory import free_bytes, read_facts, remember

    facts = read_facts(phone)
    android = read_termux_facts(phone)
    tctx = TermuxContext(serial=phone.name, launcher=launcher, facts=facts, android=android)
    ctx = DoctorContext(serial=phone.name, facts=facts, health=sample_health(phone),
                        free_bytes=free_bytes(phone), python=None)
    device_id = remember(session, phone.name, facts).id if session is not None else None
    link = TermuxLink(phone, termux_shell(phone, launcher))
    try:
        _staging(link, ctx)
        if not android.installed:
            tctx.way_in = "Termux is not installed"
        else:
            _enter(link, ctx, tctx, session, device_id)
        if launcher == "runas":
            tctx.sshd = _sshd_error(phone)
    finally:
        link.close()
        link.shell.close()
    if tctx.way_in is not None:
        tctx.readable = tctx.readable or "not tried: Termux not entered"
        ctx.runtime_error = ctx.runtime_error or "Termux not entered"
    results = [check_abi(facts, termux=True), check_android(facts, termux=True),
               check_termux(tctx), check_build(tctx), check_way_in(tctx), check_staging(ctx),
               check_readable(tctx), _python_check(ctx, tctx), check_numpy(ctx),
               check_pillow(ctx), check_interpreter(ctx), check_agent(ctx),
               check_storage(tctx)]
    if launcher == "runas":
        results.append(check_sshd(tctx))
    results += [check_phantom(tctx), check_space(ctx), check_battery(ctx), check_thermal(ctx),
                check_nnapi(ctx)]
    return results


def _staging(link: TermuxLink, ctx: DoctorContext) -> None:
    root = shlex.quote(link.stage.root)
    probe = shlex.quote(f"{link.stage.root}/.orch-write-test")
    rc, out = link.phone.run_rc(f"umask 022; mkdir -p {root} && chmod 755 {root} && "
                                f": > {probe} && rm -f {probe}")
    ctx.staging_ok, ctx.staging_error = rc == 0, (out.strip().splitlines() or [None])[-1]


def _enter(link: TermuxLink, ctx: DoctorContext, tctx: TermuxContext,
           session: Session | None, device_id: int | None) -> None:
    """Enter Termux through the launcher and ask what the agent would find there."""
    try:
        link.agent.run("true", what="enter Termux")
    except DeviceError as e:
        tctx.way_in = e.message
        return
    tctx.way_in = None
    if ctx.staging_ok:
        tctx.readable = _read_back(link, session, device_id)
    rc, _ = link.shell.run_rc("ls /sdcard/ >/dev/null 2>&1", what="storage check")
    tctx.storage_access = rc == 0
    if not link.agent.exists(PYTHON):
        ctx.runtime_error = "Termux has no python"
        return
    ctx.python = PYTHON
    if ctx.staging_ok:
        ctx.runtime, ctx.runtime_error = _agent_info(link, link.shell, PYTHON, session,
                                                     device_id, where=" in Termux")
    if ctx.runtime_error is not None:
        rc, out = link.shell.run_rc(probe_command(PYTHON), what="python probe")
        ctx.runtime = parse_runtime(out)


def _ledger(link: DeviceLink, session: Session | None, device_id: int | None) -> Any:
    from orchestrator.runner.ledger import PushLedger

    return PushLedger(session, None, device_id, link.launcher)


def _read_back(link: TermuxLink, session: Session | None, device_id: int | None) -> str | None:
    """Push a small file to the staging folder; Termux must read it back by its exact path."""
    import tempfile
    from pathlib import Path

    token = secrets.token_hex(8)
    path = f"{link.stage.root}/.doctor-probe-{token}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "probe"
        local.write_text(token)
        info = link.stage.push(str(local), path, "probe")
    _ledger(link, session, device_id).record(info, "probe")
    try:
        rc, out = link.shell.run_rc(f"cat {scripts.q(path)}", what="read staged file")
    finally:
        link.stage.remove(path)
    if rc == 0 and out.strip() == token:
        return None
    tail = (out.strip().splitlines() or ["no output"])[-1]
    return f"Termux cannot read {path} (exit {rc}): {tail[:120]}"


def _agent_info(link: DeviceLink, shell: AgentShell, python: str, session: Session | None,
                device_id: int | None, *, where: str = "") -> tuple[dict[str, Any], str | None]:
    """Push the agent and ask it, through `shell`, what runtime it finds
    (`python -m device_agent info`)."""
    from orchestrator.runner.staging import StageTally, stage_agent

    agent_dir, _ = stage_agent(link, _ledger(link, session, device_id), StageTally())
    d = scripts.q(agent_dir)
    rc, out = shell.run_rc(f"cd {d} && PYTHONPATH={d} PYTHONDONTWRITEBYTECODE=1 "
                           f"{scripts.q(python)} -m device_agent info", what="agent info")
    info = parse_runtime(out)
    if rc != 0 or not info:
        tail = (out.strip().splitlines() or ["no output"])[-1]
        return {}, f"`python -m device_agent info` failed{where} (exit {rc}): {tail[:160]}"
    return info, None


def _sshd_error(phone: Phone) -> str | None:
    """None when Termux's sshd answers with orch's key; else why not."""
    try:
        shell = termux_shell(phone, "ssh")
    except DeviceError as e:
        return e.message
    try:
        shell.run_rc("true", what="ssh check")
    except DeviceError as e:
        return e.message
    finally:
        shell.close()
    return None
