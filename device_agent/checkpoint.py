"""Checkpoints after every epoch: train.tflite's exported state + where training stands.

One file, `checkpoint/state.npz`, replaced atomically: the state tensors plus a JSON record
(epochs done, metrics so far, RNG state, timings, the job's digest) stored as bytes, so the
weights and the position in training can never disagree.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np

from device_agent.fsio import atomic_open

STATE_FILE = "state.npz"
_RECORD = "__record__"


def save(ckpt_dir: str, state: dict[str, np.ndarray], record: dict[str, Any]) -> None:
    """Write the checkpoint atomically; a full disk raises DiskFull and keeps the previous one."""
    os.makedirs(ckpt_dir, exist_ok=True)
    buf = io.BytesIO()
    blob = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    np.savez(buf, **state, **{_RECORD: blob})
    with atomic_open(os.path.join(ckpt_dir, STATE_FILE), "checkpoint") as f:
        f.write(buf.getbuffer())


def load(ckpt_dir: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(state, record) of the last checkpoint, or None when there is none."""
    path = os.path.join(ckpt_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    record = json.loads(arrays.pop(_RECORD).tobytes().decode())
    return arrays, record
