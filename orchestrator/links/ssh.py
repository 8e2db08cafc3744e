"""`ssh`: Termux's sshd (phone port 8022, any user name, key auth) through `adb forward`.

Works with any Termux build (F-Droid and Play ones are not debuggable, so run-as cannot
enter them). Commands run through exec channels with Termux's environment; the run's files
come back like every launcher's, by one no-follow read of Termux's Python (never SFTP,
which follows symlinks). paramiko is an optional dependency: `pip install 'orch[ssh]'`.
A dropped link is a DeviceOffline, so `orch run --resume` picks the run up as over adb.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.devices.adb import Phone, adb_errors
from orchestrator.errors import DeviceError, DeviceOffline
from orchestrator.links.ssh_keys import KeyStore
from orchestrator.links.termux_env import SSHD_PORT, prelude

USER = "orch"  # Termux's sshd takes any user name


def paramiko_module() -> Any:
    try:
        import paramiko
    except ImportError:
        raise DeviceError("The ssh launcher needs paramiko, which is not installed.",
                          hint="pip install 'orch[ssh]' (or: pip install paramiko).") from None
    # Its transport thread logs a traceback for every failed connection; they are
    # DeviceErrors with a hint here.
    log = logging.getLogger("paramiko")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return paramiko


def start_sshd_hint(serial: str) -> str:
    return (f"Start it: in Termux run `sshd` (after `pkg install openssh`), or with Termux's "
            f"GitHub build `orch devices setup {serial} --launcher ssh`.")


def authorize_hint(serial: str) -> str:
    return (f"Authorize orch's key: `orch devices setup {serial} --launcher ssh` (GitHub "
            "build), or in Termux: `cat /data/local/tmp/orch/orch_id.pub >> "
            "~/.ssh/authorized_keys` after `orch devices setup` pushed it.")


class SshShell:
    """Scripts as the Termux app, through its sshd; one SSH connection, reopened when lost."""

    launcher = "ssh"

    def __init__(self, phone: Phone, *, keys: KeyStore | None = None, port: int = SSHD_PORT,
                 timeout: float = 15.0) -> None:
        self.phone = phone
        self.keys = keys or KeyStore.default()
        self.port = port
        self.timeout = timeout
        self._client: Any = None
        self._sftp: Any = None
        self._local: int | None = None

    @property
    def name(self) -> str:
        return self.phone.name

    # ------------------------------------------------------------------ connection

    def _host(self) -> str:
        if self.phone.address.server is not None:
            return self.phone.address.server.host
        from orchestrator.settings import get_settings

        return get_settings().adb_host

    def connect(self) -> Any:
        """The live paramiko client (connected, authenticated, host key pinned)."""
        if self._client is not None and self._client.get_transport() is not None \
                and self._client.get_transport().is_active():
            return self._client
        self.close()
        paramiko = paramiko_module()
        with adb_errors("adb forward", self.name):
            self._local = self.phone.device.forward_port(self.port)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_Pin(self.keys, self.name))
        try:
            client.connect(self._host(), self._local, username=USER, pkey=self.keys.pkey(),
                           look_for_keys=False, allow_agent=False, timeout=self.timeout,
                           banner_timeout=self.timeout, auth_timeout=self.timeout)
        except paramiko.AuthenticationException:
            client.close()
            raise DeviceError(f"Termux's sshd on {self.name} refused orch's key.",
                              hint=authorize_hint(self.name)) from None
        except HostKeyChanged as e:
            client.close()
            raise DeviceError(str(e), hint="If Termux was reinstalled, forget the old key: "
                              f"`orch devices set {self.name} --forget-ssh-key`.") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            client.close()
            # adb accepts the forwarded connection, then closes it when nothing listens on
            # the phone: the client sees no SSH banner.
            why = ("nothing listens there" if "banner" in str(e)
                   else str(e) or type(e).__name__)
            raise DeviceError(f"Termux's sshd does not answer on {self.name} (phone port "
                              f"{self.port}): {why}.", hint=start_sshd_hint(self.name)) from None
        self._client = client
        return client

    def close(self) -> None:
        for thing in (self._sftp, self._client):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a dead link must not fail the caller
                    pass
        self._sftp = self._client = None

    def _lost(self, what: str, e: BaseException) -> DeviceOffline:
        self.close()
        return DeviceOffline(f"Device {self.name} did not answer over ssh ({what}): "
                             f"{str(e) or type(e).__name__}.",
                             hint="Re-plug it or run `adb reconnect`; check that Termux's sshd "
                                  "still runs.")

    # ------------------------------------------------------------------ commands

    def _exec(self, script: str, *, timeout: float | None, what: str,
              combine: bool) -> tuple[int, bytes]:
        paramiko = paramiko_module()
        client = self.connect()
        try:
            channel = client.get_transport().open_session()
            channel.settimeout(timeout or 120.0)
            channel.set_combine_stderr(combine)
            channel.exec_command(prelude() + script)
            chunks = []
            while data := channel.recv(65536):
                chunks.append(data)
            rc = channel.recv_exit_status()
            channel.close()
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise self._lost(what, e) from None
        if rc == -1:
            # No exit status: the connection died under the command (a pulled cable), so
            # what came back is cut short, not the command's answer.
            raise self._lost(what, EOFError("the connection closed before the command ended"))
        return rc, b"".join(chunks)

    def run_rc(self, script: str, *, timeout: float | None = None,
               what: str | None = None) -> tuple[int, str]:
        rc, out = self._exec(script, timeout=timeout, what=what or "ssh", combine=True)
        return rc, out.decode(errors="replace")

    def read_bytes(self, script: str, *, what: str) -> tuple[int, bytes]:
        return self._exec(script, timeout=None, what=what, combine=False)


class HostKeyChanged(Exception):
    pass


class _Pin:
    """paramiko host-key policy: pin a phone's key on first contact, refuse a change."""

    def __init__(self, keys: KeyStore, serial: str) -> None:
        self.keys = keys
        self.serial = serial

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        seen = (key.get_name(), key.get_base64())
        pinned = self.keys.pinned(self.serial)
        if pinned is None:
            self.keys.pin(self.serial, *seen)
        elif pinned != seen:
            raise HostKeyChanged(f"The ssh host key of {self.serial} changed since orch first "
                                 f"met it ({pinned[0]} → {seen[0]}).")
