"""Termux's sshd on a virtual phone (installed as $PREFIX/bin/sshd by `pkg install openssh`;
standalone: stdlib + paramiko).

Like Termux's OpenSSH: it runs as the app (whoever starts it), accepts any user name with a
key from ~/.ssh/authorized_keys (no passwords), runs commands with bash in Termux's
environment and serves SFTP, and detaches unless `-D`. Port 8022 is the phone's: it listens
on a free host port and publishes it under $PREFIX/var/run/orch-sim-ports/, where the phone's
`tcp:8022` service (what `adb forward` opens) looks it up, so many phones share one host.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import paramiko

PREFIX = os.environ.get("PREFIX") or "/data/data/com.termux/files/usr"
HOME = os.environ.get("HOME") or "/data/data/com.termux/files/home"
PORTS = Path(PREFIX) / "var/run/orch-sim-ports"
HOST_KEY = Path(PREFIX) / "etc/ssh/ssh_host_ecdsa_key"
PID_FILE = Path(PREFIX) / "var/run/sshd.pid"
LOG_FILE = Path(PREFIX) / "var/log/sshd.log"


def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PREFIX=PREFIX, HOME=HOME, TMPDIR=f"{PREFIX}/tmp", SHELL=f"{PREFIX}/bin/bash",
               PATH=f"{PREFIX}/bin:/system/bin:/system/xbin")
    return env


def authorized(key: paramiko.PKey) -> bool:
    try:
        lines = (Path(HOME) / ".ssh/authorized_keys").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == key.get_name() and parts[1] == key.get_base64():
            return True
    return False


class Server(paramiko.ServerInterface):
    def __init__(self, transport: paramiko.Transport) -> None:
        self.transport = transport

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if authorized(key) else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args: object) -> bool:
        return True  # accepted, but commands run on pipes

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        argv = [f"{PREFIX}/bin/bash", "-c", command.decode(errors="surrogateescape")]
        threading.Thread(target=run_command, args=(channel, argv), daemon=True).start()
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        threading.Thread(target=run_command, args=(channel, [f"{PREFIX}/bin/bash", "-l"]),
                         daemon=True).start()
        return True


def run_command(channel: paramiko.Channel, argv: list[str]) -> None:
    """Pipes between the channel and the command; its exit status ends the channel."""
    try:
        proc = subprocess.Popen(argv, cwd=HOME, env=command_env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as e:
        channel.sendall_stderr(f"sshd: {e}\n".encode())
        channel.send_exit_status(127)
        channel.close()
        return

    def feed() -> None:
        assert proc.stdin is not None
        try:
            while data := channel.recv(65536):
                proc.stdin.write(data)
                proc.stdin.flush()
        except OSError:
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def pump(stream, send) -> None:  # noqa: ANN001
        while data := stream.read1(65536):
            send(data)

    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=pump, args=(proc.stdout, channel.sendall), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, channel.sendall_stderr),
                                daemon=True)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    code = proc.wait()
    channel.send_exit_status(code if code >= 0 else 128 - code)
    channel.shutdown_write()
    channel.close()


class Handle(paramiko.SFTPHandle):
    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)


class Files(paramiko.SFTPServerInterface):
    """SFTP over the app's own view of the filesystem (its uid decides what it may do)."""

    def _path(self, path: str) -> str:
        return os.path.join(HOME, path) if not path.startswith("/") else path

    def _errors(self, call, *args):  # noqa: ANN001, ANN202
        try:
            call(*args)
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        return paramiko.SFTP_OK

    def canonicalize(self, path: str) -> str:
        return os.path.realpath(self._path(path))

    def list_folder(self, path: str):  # noqa: ANN201
        path = self._path(path)
        try:
            out = []
            for name in os.listdir(path):
                attr = paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(path, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def stat(self, path: str):  # noqa: ANN201
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._path(path)))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def lstat(self, path: str):  # noqa: ANN201
        try:
            return paramiko.SFTPAttributes.from_stat(os.lstat(self._path(path)))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes):  # noqa: ANN201
        path = self._path(path)
        mode = getattr(attr, "st_mode", None) or 0o600
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, mode & 0o7777)
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        access = flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
        fmode = {os.O_RDONLY: "rb", os.O_WRONLY: "wb", os.O_RDWR: "r+b"}[access]
        if flags & os.O_APPEND:
            fmode = "ab" if access == os.O_WRONLY else "a+b"
        handle = Handle(flags)
        f = os.fdopen(fd, fmode)
        handle.readfile = f
        handle.writefile = f
        return handle

    def remove(self, path: str) -> int:
        return self._errors(os.remove, self._path(path))

    def rename(self, oldpath: str, newpath: str) -> int:
        return self._errors(os.rename, self._path(oldpath), self._path(newpath))

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self._errors(os.replace, self._path(oldpath), self._path(newpath))

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        mode = getattr(attr, "st_mode", None) or 0o700
        return self._errors(os.mkdir, self._path(path), mode & 0o7777)

    def rmdir(self, path: str) -> int:
        return self._errors(os.rmdir, self._path(path))

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        if getattr(attr, "st_mode", None) is not None:
            return self._errors(os.chmod, self._path(path), attr.st_mode & 0o7777)
        return paramiko.SFTP_OK

    def readlink(self, path: str):  # noqa: ANN201
        try:
            return os.readlink(self._path(path))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def symlink(self, target_path: str, path: str) -> int:
        return self._errors(os.symlink, target_path, self._path(path))


def host_key() -> paramiko.PKey:
    if not HOST_KEY.exists():
        HOST_KEY.parent.mkdir(parents=True, exist_ok=True)
        paramiko.ECDSAKey.generate().write_private_key_file(str(HOST_KEY))
    return paramiko.ECDSAKey.from_private_key_file(str(HOST_KEY))


def serve_connection(sock: socket.socket, key: paramiko.PKey) -> None:
    transport = paramiko.Transport(sock)
    transport.add_server_key(key)
    transport.set_subsystem_handler("sftp", paramiko.SFTPServer, Files)
    try:
        transport.start_server(server=Server(transport))
    except (paramiko.SSHException, EOFError, OSError):
        transport.close()
        return
    channels = []  # the transport holds channels weakly: keep them until it ends
    while transport.is_active():
        channel = transport.accept(timeout=1.0)  # served by the Server's callbacks
        if channel is not None:
            channels = [c for c in channels if not c.closed] + [channel]


def running() -> bool:
    try:
        os.kill(int(PID_FILE.read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def main(argv: list[str]) -> int:
    port = int(argv[argv.index("-p") + 1]) if "-p" in argv else 8022
    if running():
        print(f"Bind to port {port} on 0.0.0.0 failed: Address already in use.",
              file=sys.stderr)
        return 255
    key = host_key()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    PORTS.mkdir(parents=True, exist_ok=True)
    tmp = PORTS / f".{port}.tmp"
    tmp.write_text(f"{listener.getsockname()[1]}\n")
    tmp.replace(PORTS / str(port))  # published before `sshd` returns: connect at once
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    if "-D" not in argv:
        child = os.fork()
        if child:
            PID_FILE.write_text(f"{child}\n")
            os._exit(0)  # the child serves; `sshd` returns at once, as OpenSSH's does
        os.setsid()
        LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
    else:
        PID_FILE.write_text(f"{os.getpid()}\n")
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(sock, key), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
