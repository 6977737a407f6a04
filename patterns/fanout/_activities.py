"""The batch's activities: process one chunk of records, seal the batch's results."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

from temporalio import activity

from . import _sink
from ._records import EnrichedCustomer, process_record
from ._types import RangeRequest, RangeResult, RecordFailure, SealRequest, SealResult


class FanOutActivities:
    """The activities of :class:`~patterns.fanout.FanOutBatchWorkflow`.

    Register ``[acts.process_chunk, acts.seal_batch]`` of one instance. The
    results database is named by each request, so one instance serves every batch.
    """

    def store(
        self, conn: sqlite3.Connection, batch_id: str, rows: Sequence[EnrichedCustomer]
    ) -> None:
        """Write a chunk's enriched records (idempotent by record id)."""
        _sink.store_enriched(conn, batch_id, rows)

    @activity.defn(name="process_chunk")
    async def process_chunk(self, request: RangeRequest) -> RangeResult:
        """Generate, validate and enrich records ``[start, end)`` concurrently; store the results.

        Invalid records are permanent per-record failures: reported in the
        result, never retried. Running the chunk again stores nothing twice.
        """
        batch, config = request.batch, request.batch.config
        gate = asyncio.Semaphore(config.record_concurrency)

        async def one(index: int) -> EnrichedCustomer | tuple[str, str]:
            async with gate:
                return await process_record(batch.seed, index, config.io_seconds)

        outcomes = await asyncio.gather(*(one(i) for i in range(request.start, request.end)))
        rows = [o for o in outcomes if isinstance(o, EnrichedCustomer)]
        failures = tuple(RecordFailure(*o) for o in outcomes if isinstance(o, tuple))
        conn = _sink.connect(batch.database)
        self.store(conn, batch.batch_id, rows)
        _sink.store_failures(conn, batch.batch_id, failures)
        return RangeResult(request.start, request.end, succeeded=len(rows), failures=failures)

    @activity.defn(name="seal_batch")
    async def seal_batch(self, request: SealRequest) -> SealResult:
        """Mark the failed ranges failed in the results database; count the batch's rows."""
        return _sink.seal(_sink.connect(request.database), request.batch_id, request.failed_ranges)
