"""A running virtual phone as its connections and services see it: identity (banner,
properties), the shell environment, processes, storage, and the current faults.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

from orchestrator.sim import identity, services
from orchestrator.sim.app_ports import published_port
from orchestrator.sim.faults import Faults, Throttle
from orchestrator.sim.procs import ProcessTable
from orchestrator.sim.profile import Profile
from orchestrator.sim.protocol import banner
from orchestrator.sim.storage import Storage
from orchestrator.sim.transport import Handler, Link

NNAPI_LIB = "/system/lib64/libneuralnetworks.so"


def shell_environment(profile: Profile, props: dict[str, str]) -> dict[str, str]:
    """What `adb shell` sets on a phone, plus the profile's Python directory on PATH."""
    path = ["/product/bin", "/system_ext/bin", "/system/bin", "/system/xbin", "/vendor/bin"]
    if profile.python:
        pydir = profile.python.rsplit("/", 1)[0] or "/"
        if pydir not in path:
            path.insert(0, pydir)
    if not identity.is_stock(profile):  # a stock phone's tools are its toybox in /system/bin
        path += ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]  # the host's tools
    env = {
        "PATH": ":".join(path),
        "HOME": "/",
        "TMPDIR": "/data/local/tmp",
        "ANDROID_DATA": "/data",
        "ANDROID_ROOT": "/system",
        "ANDROID_STORAGE": "/storage",
        "ANDROID_ASSETS": "/system/app",
        "EXTERNAL_STORAGE": "/sdcard",
        "ASEC_MOUNTPOINT": "/mnt/asec",
        "BOOTCLASSPATH": "/system/framework/framework.jar",
        "HOSTNAME": props.get("ro.product.device", "localhost"),
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": "/bin/sh",
        "LANG": "C.UTF-8",
    }
    if profile.nnapi_lib:
        env["ORCH_NNAPI_LIB"] = NNAPI_LIB
    if identity.is_stock(profile):
        env.update(USER="shell", LOGNAME="shell")
    return env


class Phone:
    def __init__(self, *, name: str, profile: Profile, faults: Faults) -> None:
        self.name = name
        self.profile = profile
        self.props = profile.all_props(name)
        self.banner = banner(self.props)
        self.throttle_in = Throttle()
        self.throttle_out = Throttle()
        self.storage = Storage()
        self.procs = ProcessTable()
        self._env = shell_environment(profile, self.props)
        self._faults = Faults()
        self._links: set[Link] = set()
        self._lock = threading.Lock()
        self.set_faults(faults)

    # -- faults
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        self._faults = faults
        self.throttle_in.set_rate(faults.throttle_mbps)
        self.throttle_out.set_rate(faults.throttle_mbps)
        if faults.disk_size != self.storage.capacity:
            self.storage.set_capacity(faults.disk_size)

    # -- connections
    def add_link(self, link: Link) -> None:
        with self._lock:
            self._links.add(link)

    def remove_link(self, link: Link) -> None:
        with self._lock:
            self._links.discard(link)

    def drop_links(self, reason: str) -> int:
        with self._lock:
            links = list(self._links)
        for link in links:
            link.drop(reason)
        return len(links)

    # -- services and processes
    def resolve(self, service: str) -> Handler | None:
        return services.resolve(self, service)

    def environment(self, *, term: str | None = None) -> dict[str, str]:
        env = dict(self._env)
        if term:
            env["TERM"] = term
        return env

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Run `argv` as the phone's shell user (root, or uid 2000 on a stock profile)."""
        return self.procs.spawn(identity.shell_prefix(self.profile) + argv, **kwargs)

    def act_as_shell(self) -> None:
        """This thread's file accesses become the shell user's (the sync service's)."""
        identity.act_as_shell(self.profile)

    def tcp_port(self, port: int) -> int:
        """The host loopback port behind the phone's `port` (Termux's sshd binds a free one
        and publishes it, so phones on one host do not collide on 8022)."""
        return published_port(port) or port

    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        sys.stderr.write(f"{stamp} [{self.name}] {message}\n")
        sys.stderr.flush()
