"""Device links: the one interface the pipeline reaches the agent's world through
(`base.DeviceLink`), and every implementation side by side.

- `local.LocalLink`: this host's folder (`--device local`, tests);
- `adb.AdbLink`: a phone over adb with the `direct` launcher (a Python on the adb shell's PATH:
  virtual phones, rooted phones); `direct.AdbShell` is its shell;
- `termux.TermuxLink`: an agent inside Termux, files staged over adb, run through a shell:
  `runas.RunAsShell` (`run-as com.termux`, GitHub builds) or `ssh.SshShell` (Termux's sshd
  through `adb forward`, any build; `ssh_keys` holds orch's key);
- `shell.AgentControl`: the agent's life through any shell, with `scripts` (pure strings);
- `make.make_link`: the link for a launcher name.
This package's __init__ imports nothing: the virtual phone imports `termux_env` early.
"""
