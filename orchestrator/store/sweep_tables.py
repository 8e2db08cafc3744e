"""Tables of sweeps: the sweep itself and its persistent queue (one item per point × phone).

Each item points at the Run row that does its work; the Run's status is the item's state.
An item whose phone stayed away past `reassign_after_s` is released (`device_id` NULL) and
any live phone of the same model may take it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from orchestrator.store.status import SweepState
from orchestrator.store.tables import utcnow


class Sweep(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    # The sweep as given (file, validated sweep spec, --set, phones) so it can be audited.
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # queued | running | finished | cancelled | interrupted
    status: str = Field(default=SweepState.QUEUED.value, index=True)  # a SweepState
    created: datetime = Field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    # Which host process drives it (`HOST:PID`) and when it last said so: one driver at a time.
    owner: str | None = None
    heartbeat: datetime | None = None
    error: str | None = None


class SweepItem(SQLModel, table=True):
    __table_args__ = (Index("ix_sweepitem_sweep_device", "sweep_id", "device_id"),)
    id: int | None = Field(default=None, primary_key=True)
    sweep_id: int = Field(foreign_key="sweep.id")
    run_id: int = Field(foreign_key="run.id", index=True)  # the current Run of this item
    # Every Run this item used, oldest first (retries and moves make new ones).
    run_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    label: str  # Run.variant: the base variant plus the point, e.g. `method2(conv_pw_7)`
    variant: str  # the variant's key in `spec`
    point: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    repetition: int = 0
    # The resolved experiment spec of this run (only its variant): resume needs no files.
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    device_id: int | None = Field(default=None, foreign_key="device.id")  # NULL: released
    phone: str  # the device name to reach it by (serial or SERIAL@HOST:PORT)
    model: str | None = None  # phones of the same model are equivalent
    attempts: int = 0  # failed attempts so far
    health_wait: float = 0.0  # seconds waited for health gates and cool-down
    note: str | None = None  # why the item moved or gave up
    # The `orch sweep worker` (worker_tables.Worker) holding it right now; NULL: none, or
    # a driver's. No foreign key: SQLite cannot add one to an existing table.
    worker_id: int | None = Field(default=None, index=True)
