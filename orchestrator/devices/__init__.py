"""Phones over adb: pure parsers of device output, device resolution, facts, health, doctor,
clean-up. Everything that talks to adb goes through `orchestrator.devices.adb`."""
