"""Tables of the results store (MLflow's shape: runs + an append-only long metrics table).

Each entity's columns are declared once, in its `*Base`; the table class adds the table
options and `public.py` derives the models callers get from the same base. Rows never leave
`orchestrator.store`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from orchestrator.store.status import RunStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class DeviceBase(SQLModel):
    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(index=True, unique=True)  # `SERIAL` or `SERIAL@HOST:PORT` for remote
    alias: str | None = Field(default=None, index=True)
    model: str | None = None
    manufacturer: str | None = None
    sdk: int | None = None
    release: str | None = None
    soc: str | None = None
    abi: str | None = None
    launcher: str | None = None
    facts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)


class ExperimentBase(SQLModel):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    spec: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)
    spec_hash: str = ""
    created: datetime = Field(default_factory=utcnow)


# In Run.progress: the run ended while its phone was away, so its agent may still be training
# there (runner/orphans.py stops it before the phone's next run).
LEFT_RUNNING = "agent_left_running"


class RunBase(SQLModel):
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    device_id: int | None = Field(default=None, foreign_key="device.id", index=True)
    sweep_id: int | None = Field(default=None, index=True)
    variant: str
    # A RunStatus, changed only by repo.transition_run (store/status.py); shown as
    # orphaned while running with no live host following it (store/lease.py).
    status: str = Field(default=RunStatus.QUEUED.value, index=True)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)
    created: datetime = Field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    accuracy: float | None = None
    # Timing breakdown in seconds: decode, features, train, eval, total, wall, …
    timing: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)
    delegate_requested: str | None = None
    delegate_used: str | None = None
    delegate_reason: str | None = None
    delegate_info: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)
    frozen_hash: str | None = None
    train_hash: str | None = None
    agent_version: str | None = None
    interpreter: str | None = None
    launcher: str | None = None
    device_run_dir: str | None = None
    # The agent's result.json as admitted by the egress guard (aggregate metrics only).
    result: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)
    events_seen: int = 0  # highest event seq ingested: re-reading events is idempotent
    progress: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)
    error: str | None = None


class MetricBase(SQLModel):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    key: str
    step: int = 0
    value: float | None = None  # NULL when is_nan: SQLite cannot store NaN
    is_nan: bool = False
    time: datetime = Field(default_factory=utcnow)


class DeviceSampleBase(SQLModel):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    device_id: int = Field(foreign_key="device.id", index=True)
    step: int | None = None
    battery: float | None = None
    temperature: float | None = None
    time: datetime = Field(default_factory=utcnow)


class EgressBoundBase(SQLModel):
    run_id: int = Field(foreign_key="run.id", primary_key=True)
    device_id: int | None = Field(default=None, foreign_key="device.id", index=True)
    bits: float = 0.0
    bytes: int = 0
    numbers: int = 0  # numbers at their admitted precision
    choices: int = 0  # enumerated choices and short fixed-format strings


class TransferBase(SQLModel):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    device_id: int | None = Field(default=None, foreign_key="device.id")
    direction: str  # push | pull | refused | skipped
    kind: str  # agent | model | images | job | metrics | other
    device_path: str
    bytes: int = 0
    sha256: str | None = None
    launcher: str | None = None
    reason: str | None = None  # why a read was refused, why a push was skipped
    time: datetime = Field(default_factory=utcnow)


class Device(DeviceBase, table=True):
    pass


class Experiment(ExperimentBase, table=True):
    pass


class Run(RunBase, table=True):
    # Table 1's cells and their spread read this index only, not the runs' wide rows.
    __table_args__ = (Index("ix_run_cell", "experiment_id", "variant", "device_id", "status",
                            "accuracy", "id"),)


class Metric(MetricBase, table=True):
    __table_args__ = (
        UniqueConstraint("run_id", "key", "step", name="uq_metric_run_key_step"),
        Index("ix_metric_run_key", "run_id", "key"),
    )


class DeviceSample(DeviceSampleBase, table=True):
    __table_args__ = (Index("ix_devicesample_run", "run_id"),)


class EgressBound(EgressBoundBase, table=True):
    """The most information a run's admissible events + result could carry off the phone,
    computed by the egress guard from the closed schema and the run's job."""


class Transfer(TransferBase, table=True):
    """The audit ledger: every byte that crossed the cable, in either direction."""

    __table_args__ = (Index("ix_transfer_run", "run_id"),)
