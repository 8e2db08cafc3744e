"""The phone's /system folder, written at every start: build.prop, the `getprop`,
`dumpsys` and `df` commands, the Python wrapper, and the live sensor files under
/system/etc/sim that the daemon rewrites while the phone runs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from orchestrator import runtimes, simnnapi
from orchestrator.sim import phone_df
from orchestrator.sim.arm64_root import QEMU_CPU, cpuinfo, venv_python
from orchestrator.sim.phone import NNAPI_LIB
from orchestrator.sim.profile import Profile
from orchestrator.sim.sandbox import ARM64_CPUINFO, ARM64_VIEW

SIM_ETC = "etc/sim"  # inside /system
AGENT_DEPENDENCIES = ("numpy", "PIL", "ai_edge_litert")

GETPROP = """#!/bin/sh
# getprop [KEY [DEFAULT]]: the phone's properties, from /system/build.prop.
f=/system/build.prop
if [ $# -eq 0 ]; then
    exec awk 'index($0, "=") > 1 && substr($0, 1, 1) != "#" {
        k = substr($0, 1, index($0, "=") - 1); v = substr($0, index($0, "=") + 1)
        printf "[%s]: [%s]\\n", k, v }' "$f"
fi
exec awk -v k="$1" -v d="$2" '
    index($0, k "=") == 1 { print substr($0, length(k) + 2); found = 1; exit }
    END { if (!found) print d }' "$f"
"""

DUMPSYS = """#!/bin/sh
# dumpsys SERVICE: battery and thermalservice from the phone's live sensor state.
d=/system/etc/sim
case "$1" in
    battery) exec cat "$d/battery.txt" ;;
    thermalservice) exec cat "$d/thermalservice.txt" ;;
    package) exec /system/bin/pm dump "$2" ;;
    ""|-l) printf 'Currently running services:\\n  battery\\n  thermalservice\\n' ;;
    *) echo "Can't find service: $1" >&2 ;;
esac
"""


def python_wrapper(extra_path: list[str], python: str | None = None) -> str:
    env = f'PYTHONPATH="{":".join(extra_path)}${{PYTHONPATH:+:$PYTHONPATH}}" ' if extra_path else ""
    what = "the host's interpreter and site-packages" if python is None else \
        "the host's interpreter with its own TFLite runtime (an environment of its own)"
    return (f"#!/bin/sh\n# The phone's Python: {what}.\n"
            f'{env}exec {python or sys.executable} "$@"\n')


def arm64_python_wrapper(runtime: str) -> str:
    """The aarch64 Python: chroot into the phone's view of its arm64 root (same /data, /sdcard,
    /system, /proc), keep the working folder, and let binfmt_misc hand it to qemu-user."""
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return ("#!/bin/sh\n# The phone's Python: aarch64 CPython in its arm64 root, through "
            "qemu-user.\n"
            f"export QEMU_CPU={QEMU_CPU}\n"
            f'exec {chroot} /{ARM64_VIEW} /usr/bin/env --chdir="$PWD" '
            f'{venv_python(runtime)} "$@"\n')


def runtime_python(profile: Profile) -> str | None:
    """The Python of the profile's runtime, or None for the host's own (LiteRT)."""
    if profile.runtime == runtimes.LITERT:
        return None
    return str(runtimes.python_for(profile.runtime))


def phone_python(profile: Profile) -> str:
    if profile.arch == "arm64":
        return arm64_python_wrapper(profile.runtime)
    own = runtime_python(profile)
    return python_wrapper([] if own else python_dirs()[1], own)


def python_dirs(profile: Profile | None = None) -> tuple[list[str], list[str]]:
    """(folders the phone must see for its Python, extra folders for the host's sys.path).

    The prefixes cover the interpreter and its site-packages; an agent dependency found
    elsewhere (a user site) is added by its folder. A profile with a runtime of its own adds
    that runtime's environment (its Python needs none of the host's extra folders).
    """
    exe_root = str(Path(os.path.realpath(sys.executable)).parent.parent)
    dirs = list(dict.fromkeys([sys.prefix, sys.base_prefix, sys.exec_prefix, exe_root]))
    if profile is not None and profile.arch != "arm64" and profile.runtime != runtimes.LITERT:
        dirs.append(str(runtimes.env_dir(profile.runtime)))
    extra: list[str] = []
    for name in AGENT_DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue
        site = str(Path(spec.origin).parent.parent)
        if not any(site == d or site.startswith(d + "/") for d in dirs):
            dirs.append(site)
            extra.append(site)
    return dirs, extra


def write_system(system: Path, *, profile: Profile, props: dict[str, str],
                 profile_file: Path | None = None) -> None:
    """(Re)create the /system folder of a phone on the host."""
    if system.exists():
        shutil.rmtree(system)
    (system / "bin").mkdir(parents=True)
    (system / "xbin").mkdir()
    (system / SIM_ETC).mkdir(parents=True)
    (system / "build.prop").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    _script(system / "bin" / "getprop", GETPROP)
    _script(system / "bin" / "dumpsys", DUMPSYS)
    if profile.arch == "arm64":
        (system / ARM64_CPUINFO).write_text(cpuinfo(os.cpu_count() or 1))
    df_source = Path(phone_df.__file__).read_text()
    _script(system / "bin" / "df", f"#!{sys.executable} -IS\n{df_source}")
    if profile.python and profile.python.startswith("/system/"):
        target = system / profile.python.removeprefix("/system/")
        target.parent.mkdir(parents=True, exist_ok=True)
        _script(target, phone_python(profile))
    if profile.nnapi_lib:
        src = Path(profile.nnapi_lib)
        if not src.is_absolute() and profile_file is not None:
            src = profile_file.parent / src
        if profile.nnapi_lib == simnnapi.SIMULATED:  # orchestrator/simnnapi, compiled once
            from orchestrator.settings import get_settings

            src = simnnapi.build_library(get_settings().cache_dir / "simnnapi",
                                         arch=profile.arch)
        lib = system / NNAPI_LIB.removeprefix("/system/")
        lib.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, lib)


def write_storage_python(storage: Path, profile: Profile) -> None:
    """A Python under /data or /sdcard lives in the phone's storage, written at each start."""
    if not profile.python or profile.python.startswith("/system/"):
        return
    rel = profile.python.lstrip("/")
    if rel.startswith("sdcard/"):
        target = storage / "sdcard" / rel.removeprefix("sdcard/")
    elif rel.startswith("data/"):
        target = storage / rel
    else:
        raise ValueError(f"python path {profile.python} must be under /system, /data or /sdcard")
    target.parent.mkdir(parents=True, exist_ok=True)
    _script(target, phone_python(profile))


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)
