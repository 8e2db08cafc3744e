"""`pkg` of a virtual phone's Termux (installed as $PREFIX/bin/pkg; standalone: stdlib only).

Simulated: nothing is downloaded. Installing a package records it and puts its commands in
$PREFIX/bin (the Python is the host's interpreter); the Python then imports a module only
once the package that provides it is installed (see termux_gate.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

PREFIX = "/data/data/com.termux/files/usr"
INSTALLED = "var/lib/orch-sim/installed"  # one empty file per installed package
TEMPLATES = "share/orch-sim"  # commands packages provide, written at every phone start
# package → packages it depends on
PACKAGES: dict[str, tuple[str, ...]] = {
    "python": (),
    "python-numpy": ("python",),
    "python-pillow": ("python",),
    "python-tflite-runtime": ("python", "python-numpy"),
    "openssh": (),
    "termux-tools": (),
}
# package → ($PREFIX/bin name, template name)
COMMANDS: dict[str, tuple[tuple[str, str], ...]] = {
    "python": (("python", "python"), ("python3", "python")),
    "openssh": (("sshd", "sshd"),),
}


def _place(template: Path, target: Path) -> None:
    """A command from its template: a link stays a link (Python is one, to the host's)."""
    if os.path.lexists(target):
        target.unlink()
    if template.is_symlink():
        target.symlink_to(os.readlink(template))
        return
    shutil.copyfile(template, target)
    target.chmod(0o755)


def installed(prefix: Path) -> list[str]:
    folder = prefix / INSTALLED
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def with_dependencies(names: list[str]) -> list[str]:
    """Dependencies first, each once; KeyError for an unknown package."""
    out: list[str] = []

    def add(name: str) -> None:
        for dep in PACKAGES[name]:
            add(dep)
        if name not in out:
            out.append(name)

    for name in names:
        add(name)
    return out


def install(prefix: Path, names: list[str]) -> list[str]:
    """Install `names` and their dependencies; returns those that were not there yet."""
    have = set(installed(prefix))
    new = [n for n in with_dependencies(names) if n not in have]
    (prefix / INSTALLED).mkdir(parents=True, exist_ok=True)
    for name in new:
        for command, template in COMMANDS.get(name, ()):
            _place(prefix / TEMPLATES / template, prefix / "bin" / command)
        (prefix / INSTALLED / name).touch()
    return new


def refresh_commands(prefix: Path) -> None:
    """Rewrite the commands of installed packages from the templates (after a phone start
    rewrote them: the host's Python may have moved)."""
    for name in installed(prefix):
        for command, template in COMMANDS.get(name, ()):
            _place(prefix / TEMPLATES / template, prefix / "bin" / command)


def uninstall(prefix: Path, names: list[str]) -> list[str]:
    gone = []
    for name in names:
        marker = prefix / INSTALLED / name
        if marker.exists():
            for command, _ in COMMANDS.get(name, ()):
                (prefix / "bin" / command).unlink(missing_ok=True)
            marker.unlink()
            gone.append(name)
    return gone


def main(argv: list[str]) -> int:
    prefix = Path(os.environ.get("PREFIX") or PREFIX)
    words = [a for a in argv if not a.startswith("-")]
    verb, names = (words[0], words[1:]) if words else ("help", [])
    if verb in ("install", "i", "add"):
        unknown = [n for n in names if n not in PACKAGES]
        if unknown:
            print(f"E: Unable to locate package {unknown[0]}", file=sys.stderr)
            return 100
        new = install(prefix, names)
        for name in new:
            print(f"Setting up {name} (simulated on a virtual phone) ...")
        if not new:
            print(f"{', '.join(names)} already installed.")
        return 0
    if verb in ("uninstall", "remove", "rm"):
        for name in uninstall(prefix, names):
            print(f"Removing {name} (simulated) ...")
        return 0
    if verb in ("list-installed", "list-all"):
        for name in installed(prefix) if verb == "list-installed" else sorted(PACKAGES):
            print(f"{name}/stable,now [installed]" if verb == "list-installed" else name)
        return 0
    if verb in ("update", "upgrade"):
        print("All packages are up to date (simulated).")
        return 0
    print("Usage: pkg install|uninstall|list-installed|list-all|update|upgrade [packages]",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
