"""NNAPI for the frozen trunk: replay the host's plan through libneuralnetworks.so with ctypes.

numpy + ctypes only (this runs on the phone under Termux's Python, 3.9+). The agent calls
`open_nnapi_runner` when a job's delegate is `nnapi`; any failure is a recorded fallback.
`nnapi_info` says what the runtime offers (`python -m device_agent info`).
"""

from device_agent.nnapi.probe import nnapi_info
from device_agent.nnapi.session import open_nnapi_runner

__all__ = ["nnapi_info", "open_nnapi_runner"]
