"""The table of sweep workers: long-running processes, one per host, each claiming queued
sweep runs for the phones its own adb server reaches (`orch sweep worker`).

A worker holds a lease it renews with every heartbeat. A worker whose lease ran out is
dead to the others: the first live worker that notices hands its claimed runs back to the
queue (sweep_tables.SweepItem.worker_id names the holder).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from orchestrator.store.tables import utcnow


class Worker(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)  # HOST:PID
    host: str
    devices: list[str] = Field(default_factory=list, sa_column=Column(JSON))  # serials
    started: datetime = Field(default_factory=utcnow)
    heartbeat: datetime = Field(default_factory=utcnow)
    lease_until: datetime = Field(default_factory=utcnow, index=True)
    # alive | stopped (said goodbye) | expired (its lease ran out; its runs went back)
    state: str = Field(default="alive", index=True)
