"""Plain public models the CLI and dashboard receive (ORM rows stay inside the store).

Each derives from its table's base in `tables.py`, so a column is declared once; a public
model's id is always set.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from orchestrator.store.tables import (
    DeviceBase,
    DeviceSampleBase,
    EgressBoundBase,
    ExperimentBase,
    MetricBase,
    RunBase,
    TransferBase,
)


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DevicePublic(DeviceBase):
    id: int

    @property
    def label(self) -> str:
        return self.alias or self.model or self.serial


class ExperimentPublic(ExperimentBase):
    id: int


class RunPublic(RunBase):
    id: int
    experiment: str | None = None  # the experiment's name
    device: str | None = None  # device label (alias, model or serial)


class MetricPublic(MetricBase):
    id: int


class SamplePublic(DeviceSampleBase):
    id: int


class BoundPublic(EgressBoundBase):
    pass


class DeviceBoundTotal(BaseModel):
    """The sum of the bounds of every run on one device."""

    device_id: int | None
    runs: int
    bytes: int


class TransferPublic(TransferBase):
    id: int


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
