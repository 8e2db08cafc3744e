"""The results store: devices, experiments, runs, metrics, device samples, transfers."""
