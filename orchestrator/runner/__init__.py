"""The host run pipeline: device links, staging, following the agent, ingestion.

`run_experiment` is the entry point; `LocalLink` runs the agent on this host.
"""

from orchestrator.runner.follow import Progress
from orchestrator.runner.link import DeviceLink
from orchestrator.runner.local_link import LocalLink
from orchestrator.runner.pipeline import run_experiment

__all__ = ["DeviceLink", "LocalLink", "Progress", "run_experiment"]
