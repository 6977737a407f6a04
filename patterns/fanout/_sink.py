"""The results database: enriched customers and failures, keyed by (batch, record id).

Writes are idempotent by record id, so a chunk that runs twice (at-least-once
execution) stores each of its records once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from .._sqlite import open_database, transaction
from ._records import EnrichedCustomer
from ._types import FailedRange, RecordFailure, SealResult, record_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS enriched (
    batch_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    full_name TEXT NOT NULL,
    email TEXT NOT NULL,
    email_domain TEXT NOT NULL,
    country TEXT NOT NULL,
    region TEXT NOT NULL,
    age INTEGER NOT NULL,
    tier TEXT NOT NULL,
    PRIMARY KEY (batch_id, record_id)
);
CREATE TABLE IF NOT EXISTS failures (
    batch_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (batch_id, record_id)
);
"""

_connections: dict[str, sqlite3.Connection] = {}


def connect(path: str | Path) -> sqlite3.Connection:
    """The (cached) connection to the results database at ``path``."""
    key = str(Path(path).resolve())
    conn = _connections.get(key)
    if conn is None:
        conn = _connections[key] = open_database(key, SCHEMA)
    return conn


def store_enriched(
    conn: sqlite3.Connection, batch_id: str, rows: Iterable[EnrichedCustomer]
) -> None:
    """Store enriched customers; a record already stored is left as it is."""
    with transaction(conn):
        conn.executemany(
            "INSERT INTO enriched VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (batch_id, record_id) DO NOTHING",
            [
                (
                    batch_id,
                    r.record_id,
                    r.fingerprint(),
                    r.full_name,
                    r.email,
                    r.email_domain,
                    r.country,
                    r.region,
                    r.age,
                    r.tier,
                )
                for r in rows
            ],
        )


def store_failures(
    conn: sqlite3.Connection, batch_id: str, failures: Iterable[RecordFailure]
) -> None:
    """Record per-record failures (idempotent by record id)."""
    with transaction(conn):
        conn.executemany(
            "INSERT INTO failures VALUES (?, ?, ?) ON CONFLICT (batch_id, record_id) DO NOTHING",
            [(batch_id, f.record_id, f.reason) for f in failures],
        )


def seal(conn: sqlite3.Connection, batch_id: str, failed: Iterable[FailedRange]) -> SealResult:
    """Mark every record of the failed ranges failed, removing any result a lost attempt stored.

    A chunk attempt can store its rows and still fail (its completion lost,
    then a later attempt failing permanently); the fan-in reports such records
    failed, so the database must too. Idempotent.
    """
    with transaction(conn):
        for part in failed:
            ids = [(batch_id, record_id(i)) for i in range(part.start, part.end)]
            conn.executemany("DELETE FROM enriched WHERE batch_id = ? AND record_id = ?", ids)
            conn.executemany(
                "INSERT INTO failures VALUES (?, ?, ?) "
                "ON CONFLICT (batch_id, record_id) DO UPDATE SET reason = excluded.reason",
                [(b, r, part.reason) for b, r in ids],
            )
        stored = conn.execute(
            "SELECT COUNT(*) FROM enriched WHERE batch_id = ?", (batch_id,)
        ).fetchone()[0]
        failed_rows = conn.execute(
            "SELECT COUNT(*) FROM failures WHERE batch_id = ?", (batch_id,)
        ).fetchone()[0]
    return SealResult(stored=int(stored), failed=int(failed_rows))


def stored_ids(conn: sqlite3.Connection, batch_id: str) -> list[str]:
    """Record ids with an enriched row in the batch (with repeats, if a sink ever stored any)."""
    rows = conn.execute("SELECT record_id FROM enriched WHERE batch_id = ?", (batch_id,))
    return [r[0] for r in rows]


def stored_failures(conn: sqlite3.Connection, batch_id: str) -> dict[str, str]:
    """Failed record ids of the batch with their reasons."""
    rows = conn.execute("SELECT record_id, reason FROM failures WHERE batch_id = ?", (batch_id,))
    return {r[0]: r[1] for r in rows}
