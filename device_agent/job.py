"""job.json: build it (host side) and validate it (both sides), so the two never disagree.

The host's runner calls `make_job(...)` and `write_job(...)`; the agent calls `load_job(...)`.
The schema is described in `device_agent.contract`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from device_agent.contract import DELEGATES, JOB_FILE, JOB_KEYS, JOB_SCHEMA
from device_agent.decode import DECODE_MODES, DEFAULT_MAX_PIXELS, ORIENTATIONS
from device_agent.errors import BadJob
from device_agent.fsio import read_json, write_json_atomic

_RUN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")

_SECTIONS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    # field: (types, may be null)
    "models": {"frozen": (str, False), "train": (str, False), "meta": (str, False),
               "nnapi_plan": (str, True)},
    "data": {"root": (str, False), "classes": (list, False), "train_per_class": (int, False),
             "test_per_class": (int, False), "seed": (int, False), "decode": (str, False),
             "orientation": (str, False), "max_pixels": (int, False)},
    "training": {"batch_size": (int, False), "head_epochs": (int, False),
                 "finetune_epochs": (int, False), "lr": ((int, float), False),
                 "finetune_lr": ((int, float), False)},
    "delegate": {"requested": (str, False), "nnapi_device": (str, True), "fp16": (bool, False),
                 "allow_reference": (bool, False)},
}


class JobInvalid(BadJob):
    """job.json breaks the schema; `problems` lists each broken field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("job.json is invalid: " + "; ".join(problems))


def make_job(
    *,
    run_key: str,
    experiment: str,
    variant: str,
    frozen: str,
    train: str,
    meta: str,
    data_root: str,
    classes: list[str],
    train_per_class: int,
    test_per_class: int,
    seed: int = 0,
    decode: str = "fast",
    orientation: str = "exif",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_size: int,
    head_epochs: int,
    finetune_epochs: int,
    lr: float,
    finetune_lr: float,
    delegate: str = "cpu",
    nnapi_plan: str | None = None,
    nnapi_device: str | None = None,
    fp16: bool = False,
    allow_reference: bool = False,
    threads: int = 4,
) -> dict[str, Any]:
    """Build a validated job dict (paths are as the agent will see them, on the device)."""
    job = {
        "schema": JOB_SCHEMA,
        "run_key": run_key,
        "experiment": experiment,
        "variant": variant,
        "models": {"frozen": frozen, "train": train, "meta": meta, "nnapi_plan": nnapi_plan},
        "data": {"root": data_root, "classes": list(classes),
                 "train_per_class": train_per_class, "test_per_class": test_per_class,
                 "seed": seed, "decode": decode, "orientation": orientation,
                 "max_pixels": max_pixels},
        "training": {"batch_size": batch_size, "head_epochs": head_epochs,
                     "finetune_epochs": finetune_epochs, "lr": float(lr),
                     "finetune_lr": float(finetune_lr)},
        "delegate": {"requested": delegate, "nnapi_device": nnapi_device, "fp16": fp16,
                     "allow_reference": allow_reference},
        "threads": threads,
    }
    return validate_job(job)


def _is(value: Any, types: type | tuple[type, ...]) -> bool:
    # bool is an int in Python; a job field that wants a number never takes true/false.
    if isinstance(value, bool) and types is not bool:
        return False
    return isinstance(value, types)


def validate_job(job: Any) -> dict[str, Any]:
    """Check every field of a job dict; return it unchanged or raise JobInvalid listing all."""
    if not isinstance(job, dict):
        raise JobInvalid(["the job must be a JSON object"])
    p: list[str] = []  # problems of shape: missing fields and wrong types
    unknown = [f"unknown field {key!r}" for key in sorted(set(job) - set(JOB_KEYS))]
    for key in JOB_KEYS:
        if key not in job:
            p.append(f"{key} is missing")
    if job.get("schema", JOB_SCHEMA) != JOB_SCHEMA:
        p.append(f"schema must be {JOB_SCHEMA}, got {job.get('schema')!r}")
    rk = job.get("run_key")
    if "run_key" in job and not (isinstance(rk, str) and _RUN_KEY.fullmatch(rk)):
        p.append("run_key must be 1–128 letters, digits or _.-")
    for key in ("experiment", "variant"):
        if key in job and not isinstance(job[key], str):
            p.append(f"{key} must be a string")
    t = job.get("threads")
    if "threads" in job and not (_is(t, int) and t >= 1):
        p.append("threads must be an integer ≥ 1")
    for section, fields in _SECTIONS.items():
        sec = job.get(section)
        if section not in job:
            continue
        if not isinstance(sec, dict):
            p.append(f"{section} must be an object")
            continue
        unknown += [f"unknown field {section}.{key}" for key in sorted(set(sec) - set(fields))]
        for key, (types, nullable) in fields.items():
            if key not in sec:
                p.append(f"{section}.{key} is missing")
            elif not ((nullable and sec[key] is None) or _is(sec[key], types)):
                p.append(f"{section}.{key} has the wrong type ({type(sec[key]).__name__})")
    if not p:  # values are only judged once every field has the right type
        p.extend(_check_values(job))
    if p or unknown:
        raise JobInvalid(unknown + p)
    return job


def _check_values(job: dict[str, Any]) -> list[str]:
    p: list[str] = []
    data, tr, dl = job["data"], job["training"], job["delegate"]
    classes = data["classes"]
    if len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        p.append("data.classes must list at least two non-empty names")
    elif len(set(classes)) != len(classes):
        p.append("data.classes must be unique")
    elif any("/" in c or c in (".", "..") for c in classes):
        p.append("data.classes must be folder names")
    for key in ("train_per_class", "test_per_class"):
        if data[key] < 1:
            p.append(f"data.{key} must be ≥ 1")
    if data["decode"] not in DECODE_MODES:
        p.append(f"data.decode must be one of {', '.join(DECODE_MODES)}")
    if data["orientation"] not in ORIENTATIONS:
        p.append(f"data.orientation must be one of {', '.join(ORIENTATIONS)}")
    if data["max_pixels"] < 1:
        p.append("data.max_pixels must be ≥ 1")
    if tr["batch_size"] < 1:
        p.append("training.batch_size must be ≥ 1")
    for key in ("head_epochs", "finetune_epochs"):
        if tr[key] < 0:
            p.append(f"training.{key} must be ≥ 0")
    for key in ("lr", "finetune_lr"):
        if not tr[key] > 0:
            p.append(f"training.{key} must be > 0")
    if dl["requested"] not in DELEGATES:
        p.append(f"delegate.requested must be one of {', '.join(DELEGATES)}")
    return p


def job_digest(job: dict[str, Any]) -> str:
    """A content hash of the job: a checkpoint or cache only applies to the job that made it."""
    canon = json.dumps(job, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def load_job(job_dir: str) -> dict[str, Any]:
    path = os.path.join(job_dir, JOB_FILE)
    if not os.path.isfile(path):
        raise BadJob(f"no {JOB_FILE} in the run folder")
    try:
        job = read_json(path)
    except ValueError as e:
        raise BadJob(f"{JOB_FILE} is not valid JSON ({e})") from e
    return validate_job(job)


def write_job(job_dir: str, job: dict[str, Any]) -> str:
    """Validate and write job.json atomically into `job_dir` (created if needed); its path."""
    validate_job(job)
    os.makedirs(job_dir, exist_ok=True)
    path = os.path.join(job_dir, JOB_FILE)
    write_json_atomic(path, job, "job file")
    return path
