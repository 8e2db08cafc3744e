"""Launchers: how the host starts the agent on a phone, chosen per phone.

- `direct` (launchers/direct.py): a Python reachable from the adb shell (virtual phones,
  rooted phones); the link is `orchestrator.links.adb.AdbLink`.
- `runas` (launchers/runas.py): `run-as com.termux` into Termux's GitHub build.
- `ssh` (launchers/ssh.py): Termux's sshd through `adb forward`, any Termux build.
`choose.open_device_link` gives the link for a phone's stored launcher; `termux_link` is
the link for the two Termux ones; `doctor` and `setup` check and prepare a phone for each.
(This package's __init__ imports nothing: the virtual phone imports termux_env early.)
"""
