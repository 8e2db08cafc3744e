"""The `orch` command line: one module per command, wired in `app.py`."""
