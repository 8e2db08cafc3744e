"""A virtual phone's package manager side: installed apps, their runtime permissions and the
global settings, with Android's commands over them (`pm`, `dumpsys package`, `settings`,
`device_config`, `run-as`), written into /system/bin at every start.

State lives in the phone's storage (/data/system/packages.list and /data/system/orch-sim/),
so a permission granted or a setting put survives a restart, as on a phone. It belongs to the
shell user: on a phone these commands ask system_server; here they edit the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.sim.identity import AID_EVERYBODY, AID_SHELL, SETPRIV, is_stock
from orchestrator.sim.profile import Profile

STATE = "/data/system/orch-sim"
PACKAGES_LIST = "/data/system/packages.list"
STORAGE_PERMISSIONS = ("android.permission.READ_EXTERNAL_STORAGE",
                       "android.permission.WRITE_EXTERNAL_STORAGE")
# Packages every phone lists (no app data, nothing to run as).
SYSTEM_PACKAGES = ("android", "com.android.settings", "com.android.shell")


@dataclass(frozen=True)
class AppRecord:
    """One installed app as the package manager knows it."""

    name: str
    uid: int
    version_name: str
    version_code: int
    installer: str
    debuggable: bool
    target_sdk: int = 28
    requested: tuple[str, ...] = ("android.permission.INTERNET",
                                  "android.permission.WAKE_LOCK", *STORAGE_PERMISSIONS)
    granted: tuple[str, ...] = field(default=())

    @property
    def data_dir(self) -> str:
        return f"/data/user/0/{self.name}"


PM = r"""#!/bin/sh
# pm on a virtual phone: list, path, grant/revoke runtime permissions and dump (what
# `dumpsys package` prints), over the package state in /data/system/orch-sim.
S=/data/system/orch-sim
cmd=$1
[ $# -gt 0 ] && shift
fail() { echo "Exception occurred while executing '$cmd':" >&2; echo "$1" >&2; exit 255; }
valid() { case "$1" in ''|*[!A-Za-z0-9._]*) return 1;; esac; [ -d "$S/pkg/$1" ]; }
perm_of() {
    valid "$1" || fail "java.lang.IllegalArgumentException: Unknown package: $1"
    grep -qxF "$2" "$S/pkg/$1/requested" ||
        fail "java.lang.SecurityException: Package $1 has not requested permission $2"
    grep -qxF "$2" "$S/pkg/$1/runtime" || fail "java.lang.SecurityException: Permission $2 \
requested by $1 is not a changeable permission type"
}
case "$cmd" in
list)
    [ "$1" = packages ] || { echo "Error: unknown list type '$1'" >&2; exit 255; }
    shift
    while [ $# -gt 0 ]; do case "$1" in -*) shift;; *) break;; esac; done
    for p in $(ls "$S/pkg"); do
        case "$p" in *"$1"*) echo "package:$p";; esac
    done ;;
path)
    valid "$1" || exit 1
    echo "package:/data/app/~~orchsim==/$1-1/base.apk" ;;
grant|revoke)
    perm_of "$1" "$2"
    f="$S/pkg/$1/granted"
    grep -vxF "$2" "$f" > "$f.new" 2>/dev/null
    [ "$cmd" = grant ] && echo "$2" >> "$f.new"
    mv "$f.new" "$f" ;;
dump)
    valid "$1" || { echo "Unable to find package: $1"; exit 0; }
    d="$S/pkg/$1"
    r() { cat "$d/$1" 2>/dev/null; }
    flags="HAS_CODE ALLOW_CLEAR_USER_DATA ALLOW_BACKUP"
    [ "$(r debuggable)" = 1 ] && flags="DEBUGGABLE $flags"
    echo "Packages:"
    echo "  Package [$1] (5f1c2e7):"
    echo "    userId=$(r uid)"
    echo "    pkg=Package{8a41d02 $1}"
    echo "    codePath=/data/app/~~orchsim==/$1-1"
    echo "    primaryCpuAbi=$(getprop ro.product.cpu.abi)"
    echo "    versionCode=$(r version_code) minSdk=24 targetSdk=$(r target_sdk)"
    echo "    versionName=$(r version_name)"
    echo "    flags=[ $flags ]"
    echo "    installerPackageName=$(r installer)"
    echo "    requested permissions:"
    sed 's/^/      /' "$d/requested"
    echo "    User 0: ceDataInode=4242 installed=true hidden=false suspended=false stopped=false"
    echo "      runtime permissions:"
    for p in $(cat "$d/runtime"); do
        g=false
        grep -qxF "$p" "$d/granted" && g=true
        f="USER_SENSITIVE_WHEN_GRANTED|USER_SENSITIVE_WHEN_DENIED"
        echo "        $p: granted=$g, flags=[ $f]"
    done ;;
*)
    echo "usage: pm list packages [FILTER] | path PKG | grant|revoke PKG PERM | dump PKG" >&2
    exit 255 ;;
esac
"""

SETTINGS = r"""#!/bin/sh
# settings get|put|delete|list system|secure|global [KEY [VALUE]] on a virtual phone.
S=/data/system/orch-sim/settings
verb=$1 ns=$2 key=$3
case "$ns" in system|secure|global) ;; *) echo "Invalid namespace: $ns" >&2; exit 255;; esac
case "$key" in *[!A-Za-z0-9_.-]*) echo "Invalid key: $key" >&2; exit 255;; esac
mkdir -p "$S/$ns"
case "$verb" in
get) if [ -f "$S/$ns/$key" ]; then cat "$S/$ns/$key"; else echo null; fi ;;
put) [ -n "$key" ] && [ $# -ge 4 ] ||
         { echo "usage: settings put NAMESPACE KEY VALUE" >&2; exit 255; }
     printf '%s\n' "$4" > "$S/$ns/$key" ;;
delete) if rm "$S/$ns/$key" 2>/dev/null; then echo "Deleted 1 rows"
        else echo "Deleted 0 rows"; fi ;;
list) for f in "$S/$ns"/*; do [ -f "$f" ] && echo "${f##*/}=$(cat "$f")"; done ;;
*) echo "usage: settings get|put|delete|list NAMESPACE [KEY [VALUE]]" >&2; exit 255 ;;
esac
"""

DEVICE_CONFIG = r"""#!/bin/sh
# device_config get|put NAMESPACE KEY [VALUE] on a virtual phone.
S=/data/system/orch-sim/device_config
verb=$1 ns=$2 key=$3
case "$ns$key" in ''|*[!A-Za-z0-9_.-]*) echo "Invalid namespace or key" >&2; exit 255;; esac
mkdir -p "$S/$ns"
case "$verb" in
get) if [ -f "$S/$ns/$key" ]; then cat "$S/$ns/$key"; else echo null; fi ;;
put) printf '%s\n' "$4" > "$S/$ns/$key" ;;
*) echo "usage: device_config get|put NAMESPACE KEY [VALUE]" >&2; exit 255 ;;
esac
"""

# The real run-as (system/core/run-as) refuses other callers, unknown and non-debuggable
# packages with these messages and exit 1, then becomes the app in its data folder.
RUN_AS = r"""#!/bin/sh
# run-as PACKAGE [--user 0] [COMMAND [ARGS...]] on a virtual phone.
me=$(id -u)
if [ "$me" != 2000 ] && [ "$me" != 0 ]; then
    echo "run-as: only 'shell' or 'root' users can run this program" >&2; exit 1
fi
if [ $# -lt 1 ]; then
    echo "usage: run-as <package-name> [--user <uid>] <command> [<args>]" >&2; exit 1
fi
pkg=$1; shift
if [ "$1" = --user ]; then shift 2; fi
case "$pkg" in ''|*[!A-Za-z0-9._]*) echo "run-as: unknown package: $pkg" >&2; exit 1;; esac
line=$(awk -v p="$pkg" '$1 == p' /data/system/packages.list)
[ -n "$line" ] || { echo "run-as: unknown package: $pkg" >&2; exit 1; }
set -- $line -- "$@"
uid=$2 debuggable=$3 dir=$4
shift 6
[ "$1" = -- ] && shift
if [ "$debuggable" != 1 ]; then echo "run-as: package not debuggable: $pkg" >&2; exit 1; fi
groups=3003
grep -qx android.permission.READ_EXTERNAL_STORAGE "/data/system/orch-sim/pkg/$pkg/granted" &&
    groups="$groups,@EVERYBODY@"
# As the app (the shell may not enter its folder): chdir, then the command or a shell.
exec @SETPRIV@ --reuid="$uid" --regid="$uid" --groups="$groups" --inh-caps=-all \
    --ambient-caps=-all -- /bin/sh -c '
cd "$1" 2>/dev/null || { echo "run-as: couldn'"'"'t chdir to $1" >&2; exit 1; }
shift; [ $# -eq 0 ] && set -- /bin/sh; exec "$@"' run-as "$dir" "$@"
"""


def write_commands(system: Path) -> None:
    """The commands, into a freshly written /system/bin (host side)."""
    for name, text in (("pm", PM), ("settings", SETTINGS), ("device_config", DEVICE_CONFIG),
                       ("run-as", RUN_AS.replace("@EVERYBODY@", str(AID_EVERYBODY))
                        .replace("@SETPRIV@", SETPRIV))):
        path = system / "bin" / name
        path.write_text(text)
        path.chmod(0o755)


def packages_line(app: AppRecord) -> str:
    """A packages.list line: name, uid, debuggable, data folder, seinfo, gids."""
    return (f"{app.name} {app.uid} {int(app.debuggable)} {app.data_dir} "
            f"default:targetSdkVersion={app.target_sdk} 3003")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def prepare_state(storage: Path, profile: Profile, apps: list[AppRecord]) -> None:
    """Package records, packages.list and the profile's settings (host side, every start).

    An app's grants are written only when it is new, so what `pm grant` changed survives a
    restart; packages.list is rewritten from the records.
    """
    state = storage / STATE.lstrip("/")
    for name in SYSTEM_PACKAGES:
        (state / "pkg" / name).mkdir(parents=True, exist_ok=True)
        for f in ("requested", "runtime", "granted"):
            (state / "pkg" / name / f).touch()
    for app in apps:
        folder = state / "pkg" / app.name
        fresh = not folder.exists()
        for key, value in (("uid", app.uid), ("version_name", app.version_name),
                           ("version_code", app.version_code), ("installer", app.installer),
                           ("debuggable", int(app.debuggable)), ("target_sdk", app.target_sdk)):
            _write(folder / key, f"{value}\n")
        _write(folder / "requested", "".join(f"{p}\n" for p in app.requested))
        _write(folder / "runtime", "".join(f"{p}\n" for p in app.requested
                                           if p in STORAGE_PERMISSIONS))
        if fresh:
            _write(folder / "granted", "".join(f"{p}\n" for p in app.granted))
    _write(storage / PACKAGES_LIST.lstrip("/"), "".join(f"{packages_line(a)}\n" for a in apps))
    for key, value in profile.settings.items():
        target = state / "settings" / "global" / key
        if not target.exists():
            _write(target, f"{value}\n")
    (state / "settings" / "global").mkdir(parents=True, exist_ok=True)
    (state / "device_config").mkdir(parents=True, exist_ok=True)
    if is_stock(profile):
        for folder, _dirs, files in os.walk(state):
            os.chown(folder, AID_SHELL, AID_SHELL)
            for name in files:
                os.chown(Path(folder) / name, AID_SHELL, AID_SHELL)
