"""A flaky downstream service whose health the caller sets; its state lives in SQLite."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._sqlite import open_database, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS health (
    service TEXT PRIMARY KEY,
    healthy INTEGER NOT NULL,
    slow_seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    at REAL NOT NULL
);
"""

UNAVAILABLE_TYPE = "DownstreamUnavailable"
"""``ApplicationError.type`` of the service's failures."""


@dataclass(frozen=True)
class DownstreamRequest:
    """One call to the downstream service."""

    service: str
    payload: str = ""


class Downstream:
    """A service that fails (or answers slowly) while its health row says so.

    Health is set explicitly (:meth:`set_health`), so a test or demonstration
    drives outages deterministically; every call that reaches the service is
    logged in the ``calls`` table, which is how callers prove that an open
    breaker kept calls away.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = open_database(self.path, _SCHEMA)

    def set_health(self, service: str, healthy: bool, slow_seconds: float = 0.0) -> None:
        """Make ``service`` succeed or fail, optionally taking ``slow_seconds`` per call."""
        if slow_seconds < 0:
            raise ValueError(f"slow_seconds={slow_seconds!r} must be >= 0")
        with transaction(self.conn) as conn:
            conn.execute(
                "INSERT INTO health VALUES (?, ?, ?) ON CONFLICT(service) DO UPDATE "
                "SET healthy = excluded.healthy, slow_seconds = excluded.slow_seconds",
                (service, int(healthy), slow_seconds),
            )

    def calls(self, service: str | None = None, workflow_id: str | None = None) -> int:
        """How many calls reached the service (optionally for one service or caller)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM calls WHERE (?1 IS NULL OR service = ?1) "
            "AND (?2 IS NULL OR workflow_id = ?2)",
            (service, workflow_id),
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    @activity.defn(name="downstream_call")
    async def call(self, request: DownstreamRequest) -> str:
        """Serve one call: log it, wait if slow, fail if unhealthy."""
        info = activity.info()
        row = self.conn.execute(
            "SELECT healthy, slow_seconds FROM health WHERE service = ?", (request.service,)
        ).fetchone()
        healthy, slow = (bool(row[0]), float(row[1])) if row else (True, 0.0)
        with transaction(self.conn) as conn:
            conn.execute(
                "INSERT INTO calls (service, workflow_id, attempt, ok, at) VALUES (?, ?, ?, ?, ?)",
                (request.service, info.workflow_id, info.attempt, int(healthy), time.time()),
            )
        if slow:
            await asyncio.sleep(slow)
        if not healthy:
            raise ApplicationError(f"{request.service} is unavailable", type=UNAVAILABLE_TYPE)
        return f"{request.service} served {request.payload!r}"
