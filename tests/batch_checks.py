"""Checks of a finished fan-out batch read from its results database alone."""

from __future__ import annotations

from patterns.fanout import (
    BatchRequest,
    _sink,
    enrich,
    generate_customer,
    invalid_records,
    record_id,
)


def assert_batch_complete(batch: BatchRequest) -> None:
    """Each valid record stored once, as its own enrichment; failures exactly the invalid ones.

    For batches run with no injected fault but process or server crashes, which
    Temporal retries to success: no chunk may fail for good.
    """
    conn = _sink.connect(batch.database)
    stored = _sink.stored_ids(conn, batch.batch_id)
    failed = _sink.stored_failures(conn, batch.batch_id)
    invalid = invalid_records(batch.seed, 0, batch.count)
    assert len(stored) == len(set(stored)), "a record was stored twice"
    assert set(failed) == set(invalid), "failed records are not exactly the invalid ones"
    assert set(stored) | set(failed) == {record_id(i) for i in range(batch.count)}
    assert not set(stored) & set(failed)
    rows = conn.execute(
        "SELECT record_id, fingerprint FROM enriched WHERE batch_id = ?", (batch.batch_id,)
    ).fetchall()
    wrong = [
        rid
        for rid, fingerprint in rows
        if enrich(generate_customer(batch.seed, int(rid.rsplit("-", 1)[1]))).fingerprint()
        != fingerprint
    ]
    assert not wrong, f"rows that are not their record's enrichment: {wrong[:5]}"
