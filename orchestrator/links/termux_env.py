"""Termux's layout on a phone, and the environment a process needs to run inside it.

The adb shell cannot run Termux's files as they are: its programs expect PREFIX, HOME and
PATH, and (termux-exec) an LD_PRELOAD library that makes `#!/usr/bin/env` scripts work. Every
command the runas and ssh launchers send starts with `prelude()`.
"""

from __future__ import annotations

import shlex

PACKAGE = "com.termux"
DATA = f"/data/data/{PACKAGE}"
PREFIX = f"{DATA}/files/usr"
HOME = f"{DATA}/files/home"
ORCH_DIR = f"{HOME}/.orch"  # run folders, and links to the staged files (links/termux.py)
SSHD_PORT = 8022
# termux-exec 2.x renamed its library; older installs have the first name only.
PRELOAD_LIBS = (f"{PREFIX}/lib/libtermux-exec-ld-preload.so", f"{PREFIX}/lib/libtermux-exec.so")
# Termux's packages the agent needs (`pkg install -y …`), and openssh for the ssh launcher.
AGENT_PACKAGES = ("python", "python-numpy", "python-pillow", "python-tflite-runtime")
SSH_PACKAGES = ("openssh",)


def prelude() -> str:
    """Shell that sets Termux's environment; /system/bin stays on PATH after Termux's own
    tools (toybox's setsid and nohup there serve when Termux lacks them)."""
    q = shlex.quote
    preload = " ".join(q(p) for p in PRELOAD_LIBS)
    return (f"export PREFIX={q(PREFIX)} HOME={q(HOME)} TMPDIR={q(PREFIX + '/tmp')} "
            f"PATH={q(PREFIX + '/bin')}:/system/bin:/system/xbin LANG=en_US.UTF-8; "
            f"for _l in {preload}; do if [ -f \"$_l\" ]; then export LD_PRELOAD=\"$_l\"; "
            "break; fi; done; unset _l; ")
