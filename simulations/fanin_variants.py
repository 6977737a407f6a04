"""Deliberately broken fan-ins, to show the fan-in properties catch real mistakes.

* :class:`ValueKeyedActivities` stores results keyed by their value instead of
  their record id: two customers with identical details (a duplicate row of a
  CRM export) collapse into one, and a record is lost.
* :class:`LossyBatchWorkflow` drops a chunk whose activity failed for good: its
  records are neither stored nor reported failed.
* :class:`CollectThenFailBatchWorkflow` fails fast only after the fact: it runs a
  fail-fast batch as a collecting one, every chunk to the end, then fails with its
  first failed record. Its result names a failed record, but chunks went on being
  processed after the first failure, which the history shows.

Not broken, for pinned cases: :class:`LateSegmentBatchWorkflow` and
:class:`HeldSegmentBatchWorkflow` run batches whose segment children (the second, or the
first two) finish only once cancelled, so a child completes despite its cancellation every
time, with no race to win.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import ClassVar

from temporalio import workflow

from patterns._sqlite import transaction
from patterns.fanout import (
    BatchRequest,
    BatchResult,
    EnrichedCustomer,
    FanIn,
    FanOutActivities,
    FanOutBatchWorkflow,
    FanOutSegmentWorkflow,
    RangeRequest,
    RangeResult,
    RecordFailure,
)
from patterns.fanout._workflow import _record_failed


class ValueKeyedActivities(FanOutActivities):
    """Skips a result whose details match one already stored: deduplication by value."""

    def store(
        self, conn: sqlite3.Connection, batch_id: str, rows: Sequence[EnrichedCustomer]
    ) -> None:
        with transaction(conn):
            for r in rows:
                conn.execute(
                    "INSERT INTO enriched SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS "
                    "(SELECT 1 FROM enriched WHERE batch_id = ? AND fingerprint = ?)",
                    (
                        batch_id, r.record_id, r.fingerprint(), r.full_name, r.email,
                        r.email_domain, r.country, r.region, r.age, r.tier,
                        batch_id, r.fingerprint(),
                    ),
                )  # fmt: skip


class LossyFanIn(FanIn):
    """Forgets parts that failed permanently."""

    def add_failed(self, start: int, end: int, reason: str) -> None:
        return None


@workflow.defn(name="LossySegmentWorkflow")
class LossySegmentWorkflow(FanOutSegmentWorkflow):
    """A segment child with the lossy fan-in."""

    fan_in_type: ClassVar[type[FanIn]] = LossyFanIn

    @workflow.run
    async def run(self, request: RangeRequest) -> RangeResult:
        return await super().run(request)


@workflow.defn(name="LossyBatchWorkflow")
class LossyBatchWorkflow(FanOutBatchWorkflow):
    """A batch with the lossy fan-in, in itself and in its children."""

    fan_in_type: ClassVar[type[FanIn]] = LossyFanIn
    segment_workflow: ClassVar[str] = "LossySegmentWorkflow"

    @workflow.run
    async def run(self, request: BatchRequest) -> BatchResult:
        return await super().run(request)


@workflow.defn(name="CollectThenFailBatchWorkflow")
class CollectThenFailBatchWorkflow(FanOutBatchWorkflow):
    """A fail-fast batch run to the end as a collecting one, then failed with its first record."""

    @workflow.run
    async def run(self, request: BatchRequest) -> BatchResult:
        if request.policy != "fail_fast":
            return await super().run(request)
        result = await super().run(dataclasses.replace(request, policy="collect"))
        failures = result.all_failures()
        if failures:
            first = min(failures, key=lambda rid: int(rid.rsplit("-", 1)[1]))
            raise _record_failed(RecordFailure(first, failures[first]))
        return result


class _HoldsUntilCancelled(FanOutSegmentWorkflow):
    """A segment child that runs its segment, then, if :meth:`holds` says so, completes only
    once cancelled: a child that completes despite its cancellation, with no race to win. It
    starts no chunk after its cancellation."""

    def holds(self, request: RangeRequest) -> bool:
        raise NotImplementedError

    async def run(self, request: RangeRequest) -> RangeResult:
        result = await super().run(request)
        if self.holds(request):
            try:
                await workflow.wait_condition(lambda: False)
            except asyncio.CancelledError:
                pass  # as a child whose work was done when the cancellation came
        return result


@workflow.defn(name="LateSegmentWorkflow")
class LateSegmentWorkflow(_HoldsUntilCancelled):
    """Holds the batch's second segment."""

    def holds(self, request: RangeRequest) -> bool:
        return request.start == request.batch.config.segment_size

    @workflow.run
    async def run(self, request: RangeRequest) -> RangeResult:
        return await super().run(request)


@workflow.defn(name="LateSegmentBatchWorkflow")
class LateSegmentBatchWorkflow(FanOutBatchWorkflow):
    """The batch, with :class:`LateSegmentWorkflow` children."""

    segment_workflow: ClassVar[str] = "LateSegmentWorkflow"

    @workflow.run
    async def run(self, request: BatchRequest) -> BatchResult:
        return await super().run(request)


@workflow.defn(name="HeldSegmentWorkflow")
class HeldSegmentWorkflow(_HoldsUntilCancelled):
    """Holds the batch's first two segments."""

    def holds(self, request: RangeRequest) -> bool:
        return request.start < 2 * request.batch.config.segment_size

    @workflow.run
    async def run(self, request: RangeRequest) -> RangeResult:
        return await super().run(request)


@workflow.defn(name="HeldSegmentBatchWorkflow")
class HeldSegmentBatchWorkflow(FanOutBatchWorkflow):
    """The batch, with :class:`HeldSegmentWorkflow` children."""

    segment_workflow: ClassVar[str] = "HeldSegmentWorkflow"

    @workflow.run
    async def run(self, request: BatchRequest) -> BatchResult:
        return await super().run(request)
