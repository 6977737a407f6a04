"""The batch workflow: fan records out to chunk activities (and child workflows), fan results in."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Iterable
from datetime import timedelta
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    TimeoutError,
    is_cancelled_exception,
)

# Only this module runs inside the sandbox, once per workflow run; the rest is pure
# (frozen dataclasses, the fan-in) and passed through rather than re-imported per run.
with workflow.unsafe.imports_passed_through():
    from ._activities import FanOutActivities
    from ._fanin import FanIn
    from ._types import (
        RECORD_FAILED_TYPE,
        BatchRequest,
        BatchResult,
        RangeRequest,
        RangeResult,
        RecordFailure,
        SealRequest,
        record_id,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=60)
"""Start-to-close timeout of one chunk activity attempt."""

RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=5,
)
"""Retries of a chunk: a chunk that still fails after them has failed permanently."""


def _record_failed(failure: RecordFailure) -> ApplicationError:
    return ApplicationError(
        f"record {failure.record_id} failed: {failure.reason}",
        failure,
        type=RECORD_FAILED_TYPE,
        non_retryable=True,
    )


_CHUNK_FAILURES = (ActivityError, ApplicationError, TimeoutError)
"""How a chunk's permanent failure surfaces (local activity failures arrive unwrapped)."""


def _cause(err: BaseException) -> str:
    if isinstance(err, ActivityError | ChildWorkflowError):
        return str(err.cause or err)
    return str(err)


async def _all(coroutines: Iterable[Awaitable[None]], work: deque[Any]) -> None:
    """Run lanes that take from ``work`` concurrently; at the first error (or a cancellation of
    the workflow) stop them and raise it.

    The work left is dropped before the lanes are cancelled: cancelling a lane is not enough
    to stop it, as a chunk or a child that completes despite its cancellation returns its
    result, and the lane would go on to start the next.
    """
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    if not tasks:
        return  # no lane: an empty range (wait() refuses an empty list)
    try:
        # Not gather(): a cancelled gather waits for every lane to end, and lanes would take
        # more work meanwhile; wait() lets a cancellation of this workflow in at once.
        await workflow.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            error = task.exception() if task.done() else None
            if error is not None:
                raise error
    except BaseException:
        work.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _run_chunk(chunk: RangeRequest) -> RangeResult:
    options: dict[str, Any] = dict(
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=RETRY_POLICY,
        activity_id=f"chunk-{chunk.start}-{chunk.end}",
    )
    if chunk.batch.config.local_activities:
        return await workflow.execute_local_activity_method(
            FanOutActivities.process_chunk, chunk, **options
        )
    return await workflow.execute_activity_method(FanOutActivities.process_chunk, chunk, **options)


async def fan_out_chunks(request: RangeRequest, fan_in: FanIn) -> RangeResult:
    """Process records ``[start, end)`` in chunk activities, ``window`` at a time; fan them in.

    Under ``fail_fast`` the first permanent failure raises ``RecordFailed``;
    under ``collect`` a chunk whose activity failed permanently becomes a
    failed range and the rest go on.
    """
    batch, config = request.batch, request.batch.config
    step = config.chunk_size
    queue = deque(
        RangeRequest(batch, start, min(start + step, request.end))
        for start in range(request.start, request.end, step)
    )

    async def lane() -> None:
        while queue:
            chunk = queue.popleft()
            try:
                part = await _run_chunk(chunk)
            except _CHUNK_FAILURES as err:
                if is_cancelled_exception(err):
                    raise  # the workflow is being cancelled: the chunk did not fail
                reason = f"chunk {chunk.start}-{chunk.end} failed permanently: {_cause(err)}"
                if batch.policy == "fail_fast":
                    raise _record_failed(RecordFailure(record_id(chunk.start), reason)) from err
                fan_in.add_failed(chunk.start, chunk.end, reason)
                continue
            if batch.policy == "fail_fast" and part.failures:
                raise _record_failed(part.failures[0])
            fan_in.add(part)

    await _all((lane() for _ in range(min(config.window, len(queue)))), queue)
    return fan_in.result(request.start, request.end)


@workflow.defn
class FanOutSegmentWorkflow:
    """A child of the batch: fans one segment of records out to chunk activities."""

    fan_in_type: ClassVar[type[FanIn]] = FanIn

    @workflow.run
    async def run(self, request: RangeRequest) -> RangeResult:
        """Process records ``[start, end)`` and return their fan-in."""
        return await fan_out_chunks(request, self.fan_in_type())


@workflow.defn
class FanOutBatchWorkflow:
    """Fans a batch of customer records out and back in; returns exactly what failed and why.

    A batch up to ``segment_size`` records runs its chunks itself; a larger one
    runs one :class:`FanOutSegmentWorkflow` child per segment, ``child_window``
    at a time. Finally the results database is sealed so that it agrees with
    the fan-in.
    """

    fan_in_type: ClassVar[type[FanIn]] = FanIn
    segment_workflow: ClassVar[str] = "FanOutSegmentWorkflow"

    @workflow.run
    async def run(self, request: BatchRequest) -> BatchResult:
        """Process the batch under its failure policy."""
        whole = RangeRequest(request, 0, request.count)
        if request.count <= request.config.segment_size:
            part = await fan_out_chunks(whole, self.fan_in_type())
        else:
            part = await self._fan_out_segments(whole)
        sealed = await workflow.execute_activity_method(
            FanOutActivities.seal_batch,
            SealRequest(request.batch_id, request.database, part.failed_ranges),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY_POLICY,
        )
        return BatchResult(
            batch_id=request.batch_id,
            count=request.count,
            succeeded=part.succeeded,
            stored=sealed.stored,
            failures=part.failures,
            failed_ranges=part.failed_ranges,
        )

    async def _fan_out_segments(self, whole: RangeRequest) -> RangeResult:
        batch = whole.batch
        size = batch.config.segment_size
        queue = deque(
            RangeRequest(batch, start, min(start + size, whole.end))
            for start in range(whole.start, whole.end, size)
        )
        fan_in = self.fan_in_type()
        parent = workflow.info().workflow_id

        async def lane() -> None:
            while queue:
                segment = queue.popleft()
                try:
                    part: RangeResult = await workflow.execute_child_workflow(
                        self.segment_workflow,
                        segment,
                        id=f"{parent}-segment-{segment.start}",
                        result_type=RangeResult,
                    )
                except ChildWorkflowError as err:
                    cause = err.cause
                    if isinstance(cause, ApplicationError) and cause.type == RECORD_FAILED_TYPE:
                        raise ApplicationError(
                            cause.message,
                            *cause.details,
                            type=RECORD_FAILED_TYPE,
                            non_retryable=True,
                        ) from err
                    reason = f"segment {segment.start}-{segment.end} failed: {_cause(err)}"
                    if batch.policy == "fail_fast":
                        raise _record_failed(
                            RecordFailure(record_id(segment.start), reason)
                        ) from err
                    fan_in.add_failed(segment.start, segment.end, reason)
                    continue
                fan_in.add(part)

        await _all((lane() for _ in range(min(batch.config.child_window, len(queue)))), queue)
        return fan_in.result(whole.start, whole.end)
