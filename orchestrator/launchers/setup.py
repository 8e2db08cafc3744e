"""`orch devices setup`: what can be done from the host to make a Termux phone ready.

Each step says what it would change and runs only with consent (a callback: a prompt, or
`--yes`). With Termux's debuggable GitHub build, run-as lets the host install Termux's
packages, authorize orch's ssh key and start sshd; with other builds those become the
commands to type in Termux. The storage permission is granted with `pm grant`; the phantom-
process setting is changed only when explicitly allowed. The chosen launcher is stored.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from orchestrator.devices.adb import Phone
from orchestrator.errors import DeviceError
from orchestrator.launchers.choose import remember_launcher
from orchestrator.launchers.termux_facts import (
    PHANTOM_SETTING,
    STORAGE_PERMISSION,
    AndroidTermuxFacts,
    phantom_limited,
    read_termux_facts,
)
from orchestrator.links import scripts
from orchestrator.links.adb import DEVICE_ROOT, AdbLink
from orchestrator.links.make import termux_shell
from orchestrator.links.runas import GITHUB_RELEASES
from orchestrator.links.ssh_keys import KeyStore, ssh_support
from orchestrator.links.termux_env import AGENT_PACKAGES, PREFIX, SSH_PACKAGES

PUBKEY_PATH = f"{DEVICE_ROOT}/orch_id.pub"  # world-readable: Termux can `cat` it
PACKAGES_READY = (f"test -x {PREFIX}/bin/python && {PREFIX}/bin/python -c "
                  "'import numpy, PIL; import tflite_runtime' 2>/dev/null")


@dataclass
class Step:
    """One thing setup would do. `run` does it (None: only the user can, see `manual`)."""

    name: str
    change: str  # what it changes, shown before asking
    run: Callable[[], str] | None = None
    manual: str | None = None


@dataclass
class Outcome:
    name: str
    status: str  # done | skipped | manual | failed | ok (nothing to do)
    detail: str


Consent = Callable[[Step], bool]


class Setup:
    """Plans and runs the steps for one phone."""

    def __init__(self, phone: Phone, *, launcher: str | None, allow_phantom: bool,
                 keys: KeyStore | None = None) -> None:
        self.phone = phone
        self.keys = keys or KeyStore.default()
        self.allow_phantom = allow_phantom
        self.facts = read_termux_facts(phone)
        self.sdk = _sdk(phone)
        debuggable = bool(self.facts.package and self.facts.package.debuggable)
        self.debuggable = debuggable
        self.launcher = launcher or ("runas" if debuggable else "ssh")
        self.already: list[Outcome] = []

    @property
    def serial(self) -> str:
        return self.phone.name

    # ------------------------------------------------------------------ the plan

    def plan(self) -> list[Step]:
        if not self.facts.installed:
            return [Step("Termux", "install Termux", manual=(
                f"Install Termux's GitHub build ({GITHUB_RELEASES}), open it once, then run "
                f"`orch devices setup {self.serial}` again."))]
        steps: list[Step] = []
        if self.launcher == "ssh" and not ssh_support():
            raise DeviceError("The ssh launcher needs paramiko and cryptography, which are not "
                              "installed.", hint="pip install 'orch[ssh]', or use "
                              "`--launcher runas` with Termux's GitHub build.")
        if self.launcher == "runas" and not self.debuggable:
            steps.append(Step("Termux build", "replace Termux", manual=(
                f"run-as needs Termux's GitHub build ({GITHUB_RELEASES}); uninstall this one "
                f"first, or use `--launcher ssh`.")))
        # Android's first: an sshd started before the storage grant would lack it (an app's
        # processes keep the groups they started with).
        steps += self._android_steps(self.facts)
        if self.debuggable:
            steps += self._runas_steps()
        else:
            steps += self._manual_termux_steps()
        return steps

    def _runas(self, script: str, what: str, timeout: float = 900.0) -> str:
        shell = termux_shell(self.phone, "runas")
        rc, out = shell.run_rc(script, timeout=timeout, what=what)
        if rc != 0:
            tail = (out.strip().splitlines() or ["no output"])[-1]
            raise DeviceError(f"{what} failed in Termux on {self.serial} (exit {rc}): {tail}")
        return out

    def _runas_steps(self) -> list[Step]:
        steps = []
        if self._runas_rc(f"test -x {PREFIX}/bin/bash") != 0:
            return [Step("Termux base system", "open Termux", manual=(
                "Open the Termux app once so it installs its base system, then run setup "
                "again."))]
        wanted = list(AGENT_PACKAGES + SSH_PACKAGES)
        ready = self._runas_rc(PACKAGES_READY) == 0 and self._runas_rc(
            f"test -x {PREFIX}/bin/sshd") == 0
        if ready:
            self.already.append(Outcome("Termux packages", "ok", "installed"))
        else:
            cmd = f"DEBIAN_FRONTEND=noninteractive pkg install -y {' '.join(wanted)}"
            steps.append(Step("Termux packages", f"run `{cmd}` in Termux (via run-as)",
                              run=lambda: self._install(cmd)))
        if not ssh_support():  # runas needs no key: the ssh steps wait for the ssh extra
            for name in ("ssh key", "sshd"):
                self.already.append(Outcome(name, "skipped", "not needed by runas; "
                                            "pip install 'orch[ssh]' for the ssh launcher"))
            return steps
        steps.append(Step("ssh key", "add orch's public key to Termux's "
                          "~/.ssh/authorized_keys", run=self._authorize))
        steps.append(Step("sshd", "start Termux's sshd (port 8022)", run=self._start_sshd))
        return steps

    def _runas_rc(self, script: str) -> int:
        try:
            return termux_shell(self.phone, "runas").run_rc(script, what="check")[0]
        except DeviceError:
            return 1

    def _manual_termux_steps(self) -> list[Step]:
        pkgs = " ".join(AGENT_PACKAGES + SSH_PACKAGES)
        return [
            Step("ssh key", f"push orch's public key to {PUBKEY_PATH} (world-readable)",
                 run=self._push_pubkey),
            Step("Termux (by hand)", "commands to type in Termux", manual=(
                f"In Termux: `pkg install {pkgs}`, then "
                f"`mkdir -p ~/.ssh && cat {PUBKEY_PATH} >> ~/.ssh/authorized_keys`, then "
                "`sshd`.")),
        ]

    def _android_steps(self, facts: AndroidTermuxFacts) -> list[Step]:
        steps = []
        pkg = facts.package
        if pkg is not None and pkg.storage_granted is not True:
            perms = [STORAGE_PERMISSION, STORAGE_PERMISSION.replace("READ", "WRITE")]
            cmds = [f"pm grant com.termux {p}" for p in perms]
            steps.append(Step("storage permission", f"run `{'; '.join(cmds)}`",
                              run=lambda: self._adb("; ".join(cmds), "pm grant")))
        elif pkg is not None:
            self.already.append(Outcome("storage permission", "ok", "granted"))
        limited = phantom_limited(self.sdk, facts.phantom_setting, facts.max_phantom)
        if limited:
            cmd = (f"settings put global {PHANTOM_SETTING} false" if (self.sdk or 32) >= 32 else
                   "device_config set_sync_disabled_for_tests persistent; device_config put "
                   "activity_manager max_phantom_processes 2147483647")
            if self.allow_phantom:
                steps.append(Step("background limits", f"run `{cmd}`",
                                  run=lambda: self._adb(cmd, "settings")))
            else:
                steps.append(Step("background limits", "change a global Android setting",
                                  manual=f"Not changed without --allow-phantom-setting "
                                         f"(it would run `adb shell {cmd}`)."))
        else:
            self.already.append(Outcome("background limits", "ok", "no limit"))
        return steps

    # ------------------------------------------------------------------ actions

    def _adb(self, cmd: str, what: str) -> str:
        self.phone.run(cmd, what=what)
        return "done"

    def _install(self, cmd: str) -> str:
        self._runas(cmd, "pkg install")
        if self._runas_rc(PACKAGES_READY) != 0:
            raise DeviceError(f"After `pkg install`, Termux's Python on {self.serial} still "
                              "lacks numpy, Pillow or tflite_runtime.",
                              hint="Run `pkg install python-numpy python-pillow "
                                   "python-tflite-runtime` in Termux and read its errors.")
        return "installed " + ", ".join(AGENT_PACKAGES + SSH_PACKAGES)

    def _push_pubkey(self) -> str:
        line = self.keys.public_line()
        stage = AdbLink(self.phone)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / "orch_id.pub"
                local.write_text(line + "\n")
                stage.push(str(local), PUBKEY_PATH, "key")
        finally:
            stage.close()
        return f"{PUBKEY_PATH} ({line.split()[0]})"

    def _authorize(self) -> str:
        where = self._push_pubkey()
        pub = scripts.q(PUBKEY_PATH)
        self._runas("mkdir -p ~/.ssh && chmod 700 ~/.ssh && touch ~/.ssh/authorized_keys && "
                    "chmod 600 ~/.ssh/authorized_keys && "
                    f"{{ grep -qxF \"$(cat {pub})\" ~/.ssh/authorized_keys || "
                    f"cat {pub} >> ~/.ssh/authorized_keys; }}", "authorize key")
        return f"authorized ({where})"

    def _start_sshd(self) -> str:
        if self._sshd_answers():
            return "already running"
        self._runas("sshd", "start sshd", timeout=60)
        if not self._sshd_answers():
            raise DeviceError(f"Termux's sshd on {self.serial} does not answer after starting.",
                              hint=f"Check in Termux: `sshd -d`; then `orch devices doctor "
                                   f"{self.serial} --launcher ssh`.")
        return "running, orch's key accepted"

    def _sshd_answers(self) -> bool:
        shell = termux_shell(self.phone, "ssh")
        try:
            shell.run_rc("true", what="ssh check")
            return True
        except DeviceError:
            return False
        finally:
            shell.close()

    # ------------------------------------------------------------------ run

    def run(self, steps: list[Step], consent: Consent,
            session: Session | None = None) -> list[Outcome]:
        out = list(self.already)
        for step in steps:
            if step.run is None:
                out.append(Outcome(step.name, "manual", step.manual or step.change))
                continue
            if not consent(step):
                out.append(Outcome(step.name, "skipped", f"not done: {step.change}"))
                continue
            try:
                out.append(Outcome(step.name, "done", step.run()))
            except DeviceError as e:
                out.append(Outcome(step.name, "failed", e.one_line()))
        if session is not None and self.facts.installed:
            remember_launcher(session, self.serial, self.launcher)
        return out


def _sdk(phone: Phone) -> int | None:
    out = phone.run("getprop ro.build.version.sdk", what="getprop").strip()
    return int(out) if out.isdigit() else None
