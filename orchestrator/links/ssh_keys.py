"""orch's SSH identity for the ssh launcher, and the host keys of the phones it has met.

One Ed25519 key pair per host user under `<ORCH_HOME>/ssh/` (private key 0600). A phone's
sshd key is pinned on first contact (trust on first use, keyed by serial): a later mismatch
is refused, since the link goes through adb but Termux may have been replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import DeviceError

KEY_NAME = "id_ed25519"
KNOWN_HOSTS = "known_hosts"  # lines: SERIAL KEYTYPE BASE64


def ssh_support() -> bool:
    """Whether the optional ssh extra (paramiko, and cryptography for the key) is installed."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None for m in ("paramiko", "cryptography"))
    except (ImportError, ValueError):  # a module blocked or half-imported
        return False


@dataclass(frozen=True)
class KeyStore:
    folder: Path

    @classmethod
    def default(cls) -> KeyStore:
        from orchestrator.settings import get_settings

        return cls(get_settings().home / "ssh")

    @property
    def private_path(self) -> Path:
        return self.folder / KEY_NAME

    def public_line(self) -> str:
        """`ssh-ed25519 AAAA… orch@HOST`, creating the key pair on first use."""
        self.ensure()
        return (self.folder / f"{KEY_NAME}.pub").read_text().strip()

    def ensure(self) -> None:
        if self.private_path.exists():
            return
        if not ssh_support():
            raise DeviceError("orch's ssh key needs paramiko and cryptography, which are not "
                              "installed.", hint="pip install 'orch[ssh]', or use the runas "
                              "launcher (no key needed).")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH)
        fd = os.open(self.private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        host = os.uname().nodename or "host"
        (self.folder / f"{KEY_NAME}.pub").write_text(f"{public.decode()} orch@{host}\n")

    def pkey(self):  # noqa: ANN201 - paramiko is an optional dependency
        import paramiko

        self.ensure()
        return paramiko.Ed25519Key.from_private_key_file(str(self.private_path))

    # -- phones' host keys
    def _known(self) -> dict[str, tuple[str, str]]:
        try:
            lines = (self.folder / KNOWN_HOSTS).read_text().splitlines()
        except OSError:
            return {}
        out = {}
        for line in lines:
            parts = line.split()
            if len(parts) == 3:
                out[parts[0]] = (parts[1], parts[2])
        return out

    def pinned(self, serial: str) -> tuple[str, str] | None:
        return self._known().get(serial)

    def pin(self, serial: str, key_type: str, key_base64: str) -> None:
        known = self._known()
        known[serial] = (key_type, key_base64)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.folder / KNOWN_HOSTS).write_text(
            "".join(f"{s} {t} {b}\n" for s, (t, b) in sorted(known.items())))

    def forget(self, serial: str) -> bool:
        known = self._known()
        if known.pop(serial, None) is None:
            return False
        (self.folder / KNOWN_HOSTS).write_text(
            "".join(f"{s} {t} {b}\n" for s, (t, b) in sorted(known.items())))
        return True
