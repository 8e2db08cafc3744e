"""Plain public models the CLI and dashboard receive (ORM rows stay inside the store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DevicePublic(_Public):
    id: int
    serial: str
    alias: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    sdk: int | None = None
    release: str | None = None
    soc: str | None = None
    abi: str | None = None
    launcher: str | None = None
    facts: dict[str, Any] = {}
    first_seen: datetime
    last_seen: datetime

    @property
    def label(self) -> str:
        return self.alias or self.model or self.serial


class ExperimentPublic(_Public):
    id: int
    name: str
    spec: dict[str, Any] = {}
    spec_hash: str = ""
    created: datetime


class RunPublic(_Public):
    id: int
    experiment_id: int
    experiment: str | None = None
    device_id: int | None = None
    device: str | None = None  # device label (alias, model or serial)
    sweep_id: int | None = None
    variant: str
    status: str
    params: dict[str, Any] = {}
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    accuracy: float | None = None
    timing: dict[str, Any] = {}
    delegate_requested: str | None = None
    delegate_used: str | None = None
    delegate_reason: str | None = None
    delegate_info: dict[str, Any] = {}
    frozen_hash: str | None = None
    train_hash: str | None = None
    agent_version: str | None = None
    interpreter: str | None = None
    launcher: str | None = None
    device_run_dir: str | None = None
    result: dict[str, Any] = {}
    events_seen: int = 0
    progress: dict[str, Any] = {}
    error: str | None = None


class MetricPublic(_Public):
    run_id: int
    key: str
    step: int
    value: float | None
    time: datetime


class SamplePublic(_Public):
    run_id: int | None
    device_id: int
    step: int | None
    battery: float | None
    temperature: float | None
    time: datetime


class BoundPublic(_Public):
    run_id: int
    device_id: int | None
    bits: float
    bytes: int
    numbers: int
    choices: int


class DeviceBoundTotal(BaseModel):
    """The sum of the bounds of every run on one device."""

    device_id: int | None
    runs: int
    bytes: int


class TransferPublic(_Public):
    id: int
    run_id: int | None
    device_id: int | None
    direction: str
    kind: str
    device_path: str
    bytes: int
    sha256: str | None
    launcher: str | None
    reason: str | None
    time: datetime


class CompareRow(BaseModel):
    """One cell row of the paper's Table 1: variant × device."""

    variant: str
    device: str
    finetune_from: str | None = None
    run_id: int
    runs: int
    accuracy: float | None
    train_seconds: float | None
    total_seconds: float | None
    delegate_requested: str | None
    delegate_used: str | None
    status: str
