"""Launchers: how the host starts the agent on a phone, chosen per phone.

- `direct`: a Python reachable from the adb shell (virtual phones, rooted phones);
- `runas`: `run-as com.termux` into Termux's GitHub build;
- `ssh`: Termux's sshd through `adb forward`, any Termux build.
The links and shells for each are in `orchestrator.links`. Here: which launcher a phone uses
(`choose`: stored, remembered, detected), and `doctor` and `setup`, which check and prepare a
phone for each (`termux_facts`, `termux_checks`: what a Termux phone adds).
"""
