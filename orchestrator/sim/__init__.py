"""Virtual phones: the device side of the adb protocol, so that the real adb server and
adbutils work on a phone that does not exist (tests, demos, device-farm rehearsals).

Start one with `manager.start_phone(profile="pixel7")` or `orch sim start`; the daemon
(`daemon.py`) runs it, `services/` answers shell, sync and tcp streams, `profile.py` and
`profiles/*.yaml` say what phone it is, `faults.py` what goes wrong on purpose.
"""

from orchestrator.sim.manager import (
    SimPhone,
    get_phone,
    list_phones,
    set_faults,
    start_phone,
    stop_all,
    stop_phone,
)

__all__ = ["SimPhone", "get_phone", "list_phones", "set_faults", "start_phone", "stop_all",
           "stop_phone"]
