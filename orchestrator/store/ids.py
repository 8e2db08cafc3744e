"""The range of row ids: a larger integer cannot be stored (SQLite and PostgreSQL BIGINT), so it
names no row. Checked before a query, so such an id is "not found", not an OverflowError."""

from __future__ import annotations

MAX_ID = 2**63 - 1


def valid_id(value: int) -> bool:
    return 1 <= value <= MAX_ID
