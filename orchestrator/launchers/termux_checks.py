"""Doctor checks a Termux phone adds (pure functions of gathered facts): ABI, Android, Termux
installed and which build, the launcher's way in, staged files readable from Termux, the
storage permission, sshd, and Android 12+'s limit on background child processes."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.devices.doctor import CheckResult
from orchestrator.devices.facts import DeviceFacts
from orchestrator.launchers.termux_facts import PHANTOM_SETTING, AndroidTermuxFacts, phantom_limited
from orchestrator.links.runas import GITHUB_RELEASES

# Termux builds packages for these ABIs only.
TERMUX_ABIS = ("arm64-v8a", "armeabi-v7a", "x86_64", "x86")
MIN_TERMUX_SDK = 24  # Termux's app needs Android 7.0


@dataclass
class TermuxContext:
    serial: str
    launcher: str  # runas | ssh
    facts: DeviceFacts
    android: AndroidTermuxFacts
    way_in: str | None = None  # None: the launcher entered Termux; else why not
    readable: str | None = None  # None: a staged file read back from Termux; else why not
    storage_access: bool | None = None  # `ls /sdcard/` as Termux (None: not tried)
    sshd: str | None = "not tried"  # None: reachable with orch's key; else why not


def check_abi(facts: DeviceFacts, *, termux: bool, machine: str | None = None) -> CheckResult:
    """The phone's ABI, and the instruction set its Python reports (`machine`), when known:
    a virtual phone may run the host's."""
    abi = facts.abi or "unknown"
    if termux and abi not in TERMUX_ABIS:
        return CheckResult(name="ABI", ok=False, detail=abi,
                           fix=f"Termux has packages for {', '.join(TERMUX_ABIS)} only: use "
                               "another phone.")
    return CheckResult(name="ABI", ok=True,
                       detail=abi + (f" (its Python runs {machine})" if machine else ""))


def check_android(facts: DeviceFacts, *, termux: bool) -> CheckResult:
    detail = f"Android {facts.release or '?'} (SDK {facts.sdk or '?'})"
    if termux and facts.sdk is not None and facts.sdk < MIN_TERMUX_SDK:
        return CheckResult(name="Android", ok=False, detail=detail,
                           fix="Termux needs Android 7.0 (SDK 24) or later.")
    return CheckResult(name="Android", ok=True, detail=detail)


def check_termux(ctx: TermuxContext) -> CheckResult:
    if not ctx.android.installed:
        return CheckResult(name="Termux", ok=False, detail="not installed",
                           fix=f"Install Termux's GitHub build ({GITHUB_RELEASES}) and open "
                               "it once, so it installs its base system.")
    pkg = ctx.android.package
    return CheckResult(name="Termux", ok=True,
                       detail="installed" + (f", {pkg.describe()}" if pkg else ""))


def check_build(ctx: TermuxContext) -> CheckResult:
    pkg = ctx.android.package
    if pkg is None:
        return CheckResult(name="Termux build", ok=False, detail="unknown (no Termux)",
                           fix="Install Termux first (see above).")
    if pkg.debuggable:
        return CheckResult(name="Termux build", ok=True,
                           detail="debuggable: run-as and ssh both work")
    if ctx.launcher == "runas":
        return CheckResult(name="Termux build", ok=False,
                           detail=f"{pkg.describe()}: run-as refuses it",
                           fix=f"Install Termux's GitHub build ({GITHUB_RELEASES}; uninstall "
                               "this one first, their signatures differ), or use "
                               f"`orch devices set {ctx.serial} --launcher ssh`.")
    return CheckResult(name="Termux build", ok=True,
                       detail=f"{pkg.describe()}: ssh works (run-as would not)")


def check_way_in(ctx: TermuxContext) -> CheckResult:
    name = "run-as" if ctx.launcher == "runas" else "sshd"
    if ctx.way_in is None:
        detail = ("enters com.termux" if ctx.launcher == "runas"
                  else "reachable through adb forward, orch's key accepted")
        return CheckResult(name=name, ok=True, detail=detail)
    if ctx.launcher == "runas":
        fix = f"See the Termux build check; then `orch devices doctor {ctx.serial}` again."
    else:
        fix = (f"`orch devices setup {ctx.serial} --launcher ssh` (GitHub build), or in Termux: "
               "`pkg install openssh`, `sshd`, and authorize orch's key (setup pushes it to "
               "/data/local/tmp/orch/orch_id.pub: `cat` it into ~/.ssh/authorized_keys).")
    return CheckResult(name=name, ok=False, detail=ctx.way_in, fix=fix)


def check_readable(ctx: TermuxContext) -> CheckResult:
    name = "staged file readable"
    if ctx.readable is None:
        return CheckResult(name=name, ok=True,
                           detail="Termux reads files pushed to /data/local/tmp/orch")
    return CheckResult(name=name, ok=False, detail=ctx.readable,
                       fix="Staged files must be world-readable (mode 644, folders 755): "
                           f"`orch devices clean {ctx.serial}` and run again; a vendor SELinux "
                           "policy that forbids it leaves only `device:` data and the ssh "
                           "launcher's SFTP.")


def check_storage(ctx: TermuxContext) -> CheckResult:
    name = "storage permission"
    pkg = ctx.android.package
    granted = pkg.storage_granted if pkg else None
    fix = (f"`orch devices setup {ctx.serial}` (grants it with `pm grant com.termux "
           "android.permission.READ_EXTERNAL_STORAGE`), or run `termux-setup-storage` in "
           "Termux. Only `device:` data sets on shared storage need it.")
    if granted is False or ctx.storage_access is False:
        why = "not granted" if granted is False else "granted, but /sdcard is not readable"
        return CheckResult(name=name, ok=False, detail=why, fix=fix)
    if granted is None and ctx.storage_access is None:
        return CheckResult(name=name, ok=False, detail="unknown", fix=fix)
    return CheckResult(name=name, ok=True, detail="Termux may read shared storage (/sdcard)")


def check_sshd(ctx: TermuxContext) -> CheckResult:
    """For the runas launcher, sshd is the other way in: reported, never a gap."""
    if ctx.sshd is None:
        return CheckResult(name="sshd", ok=True, detail="reachable, orch's key accepted")
    return CheckResult(name="sshd", ok=True,
                       detail=f"not used by runas ({ctx.sshd}); `orch devices setup "
                              f"{ctx.serial}` starts it for the ssh launcher")


def check_phantom(ctx: TermuxContext) -> CheckResult:
    name = "background limits"
    sdk = ctx.facts.sdk
    limited = phantom_limited(sdk, ctx.android.phantom_setting, ctx.android.max_phantom)
    if limited is False:
        detail = ("no phantom-process limit before Android 12" if sdk is not None and sdk < 31
                  else "phantom-process monitor off")
        return CheckResult(name=name, ok=True, detail=detail)
    how = (f"`adb shell settings put global {PHANTOM_SETTING} false`" if sdk is None or sdk >= 32
           else "`adb shell device_config put activity_manager max_phantom_processes "
                "2147483647`")
    return CheckResult(name=name, ok=False,
                       detail=f"Android {ctx.facts.release or '?'} may kill the agent, a heavy "
                              "background child of Termux",
                       fix=f"`orch devices setup {ctx.serial} --allow-phantom-setting`, or {how} "
                           "(Developer options → Disable child process restrictions).")
