"""Sweeps: parameters × phones from one file, queued in the store and run on the single-run
path, one run at a time per phone and all phones at once."""
