"""``demonstrate()``: a short fan-out/fan-in run under faults, with its invariants checked."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import temporalio.client
from temporalio.api.history.v1 import MarkerRecordedEventAttributes
from temporalio.worker import Worker

from faults import Duplicate, Fail, FaultPlan, ScriptedFault, ScriptedPlan, injecting

from ..fanout import (
    BatchConfig,
    BatchRequest,
    BatchResult,
    FanOutActivities,
    FanOutBatchWorkflow,
    FanOutSegmentWorkflow,
    _sink,
    enrich,
    generate_customer,
    invalid_records,
    record_id,
)
from ._report import DemoReport, InvariantCheck, Say

DEMO_RECORDS = 3_000
"""Records in the demonstration batch."""

DEMO_CONFIG = BatchConfig(chunk_size=50, window=16, segment_size=1_000, child_window=3)
"""Chunks of 50, 16 in flight per workflow, one child workflow per 1,000 records."""

DEFAULT_PLAN = ScriptedPlan(
    (
        ScriptedFault("process_chunk", 1, Duplicate(), key="chunk-100-150"),
        ScriptedFault("process_chunk", 1, Fail(), key="chunk-700-750"),
        ScriptedFault("process_chunk", 1, Duplicate(), key="chunk-1500-1550"),
        ScriptedFault("process_chunk", 2, Fail(retryable=False), key="chunk-1500-1550"),
    )
)
"""A plan worth showing: re-executed chunks, a retried chunk and one that fails for good."""


def _local_activity_failed_for_good(marker: MarkerRecordedEventAttributes) -> str:
    """The activity id of a local activity whose marker records its final failure, or ``""``.

    A local activity's outcome is a ``core_local_activity`` marker; a failure with a
    ``backoff`` in its data is retried after a timer, so it is not final.
    """
    if marker.marker_name != "core_local_activity" or not marker.HasField("failure"):
        return ""
    payloads = marker.details["data"].payloads
    data = json.loads(payloads[0].data) if payloads else {}
    if data.get("backoff"):
        return ""
    return str(data.get("activityId", data.get("activity_id", "")))


async def chunks_failed_for_good(
    client: temporalio.client.Client, workflow_id: str
) -> set[tuple[int, int]]:
    """The ``(start, end)`` of every chunk activity that failed for good, from the histories.

    Reads the batch workflow's history and its segment children's: a chunk
    activity (activity id ``chunk-START-END``) whose history records a failure or
    timeout has exhausted its retries, since the server records only an
    activity's last attempt; a local one, when its final marker records a failure.
    The workflow's own ``failed_ranges`` are a claim that
    :func:`check_batch` checks against this.
    """
    failed: set[tuple[int, int]] = set()
    pending = [workflow_id]
    while pending:
        history = await client.get_workflow_handle(pending.pop()).fetch_history()
        scheduled: dict[int, str] = {}
        for event in history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                scheduled[event.event_id] = (
                    event.activity_task_scheduled_event_attributes.activity_id
                )
            elif event.HasField("child_workflow_execution_started_event_attributes"):
                child = event.child_workflow_execution_started_event_attributes
                pending.append(child.workflow_execution.workflow_id)
            if event.HasField("activity_task_failed_event_attributes"):
                ended = event.activity_task_failed_event_attributes.scheduled_event_id
                activity_id = scheduled.get(ended, "")
            elif event.HasField("activity_task_timed_out_event_attributes"):
                ended = event.activity_task_timed_out_event_attributes.scheduled_event_id
                activity_id = scheduled.get(ended, "")
            elif event.HasField("marker_recorded_event_attributes"):
                activity_id = _local_activity_failed_for_good(
                    event.marker_recorded_event_attributes
                )
            else:
                continue
            if activity_id.startswith("chunk-"):
                start, end = activity_id.removeprefix("chunk-").split("-")
                failed.add((int(start), int(end)))
    return failed


def check_batch(
    seed: int, result: BatchResult, database: str | Path, failed_chunks: set[tuple[int, int]]
) -> list[InvariantCheck]:
    """Check a finished batch against its results database and its histories.

    ``failed_chunks`` is what :func:`chunks_failed_for_good` read from the
    histories. The evidence is the database, the histories and an in-process
    oracle of the records (their enrichment and which are invalid); the
    workflow's result is only a claim, checked against them.
    """
    conn = _sink.connect(database)
    stored = _sink.stored_ids(conn, result.batch_id)
    failed_rows = _sink.stored_failures(conn, result.batch_id)
    everyone = {record_id(i) for i in range(result.count)}
    in_failed_chunks = {record_id(i) for start, end in failed_chunks for i in range(start, end)}
    expected_failed = in_failed_chunks | set(invalid_records(seed, 0, result.count))
    stored_set = set(stored)
    fingerprints = dict(
        conn.execute(
            "SELECT record_id, fingerprint FROM enriched WHERE batch_id = ?", (result.batch_id,)
        ).fetchall()
    )
    wrong_rows = sum(
        enrich(generate_customer(seed, int(rid.rsplit("-", 1)[1]))).fingerprint() != fingerprint
        for rid, fingerprint in fingerprints.items()
    )
    claimed_ranges = {(r.start, r.end) for r in result.failed_ranges}
    return [
        InvariantCheck(
            "every record is counted exactly once",
            len(stored) == len(stored_set)
            and not stored_set & set(failed_rows)
            and stored_set | set(failed_rows) == everyone,
            f"{len(stored_set)} stored + {len(failed_rows)} failed of {result.count} records",
        ),
        InvariantCheck(
            "failed records are exactly the invalid ones plus chunks that failed for good",
            set(failed_rows) == expected_failed,
            f"database: {len(failed_rows)} failed; histories: {len(failed_chunks)} chunks "
            f"failed for good; oracle: {len(expected_failed)} expected",
        ),
        InvariantCheck(
            "the workflow's report agrees with the database and the histories",
            result.succeeded == result.stored == len(stored)
            and result.all_failures() == failed_rows
            and claimed_ranges == failed_chunks,
            f"reported {result.succeeded} succeeded and chunks {sorted(claimed_ranges)}; "
            f"database {len(stored)} rows, histories {sorted(failed_chunks)}",
        ),
        InvariantCheck(
            "every stored row is the enrichment of its record",
            wrong_rows == 0,
            f"{len(fingerprints) - wrong_rows} of {len(fingerprints)} rows match",
        ),
    ]


async def demonstrate(
    client: temporalio.client.Client,
    *,
    seed: int,
    plan: FaultPlan | None,
    workdir: Path,
    say: Say,
) -> DemoReport:
    """Process a batch of Faker customers under ``plan`` and check the fan-in invariants."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "fanout-results.sqlite3"
    task_queue = f"fanout-demo-{uuid.uuid4().hex[:8]}"
    request = BatchRequest(
        # Derived from the seed alone: a random plan's faults depend on workflow ids, so
        # the same seed must give the same ids for a run to replay its faults.
        batch_id=f"fanout-demo-{seed}",
        seed=seed,
        count=DEMO_RECORDS,
        database=str(database),
        config=DEMO_CONFIG,
    )
    acts = FanOutActivities()
    say(
        f"fan-out: {DEMO_RECORDS} customer records (seed {seed}) in chunks of "
        f"{DEMO_CONFIG.chunk_size}, {DEMO_CONFIG.window} in flight, "
        f"one child workflow per {DEMO_CONFIG.segment_size} records"
    )
    say(f"fan-out: fault plan: {plan.describe() if plan else 'none'}".replace("\n", "; "))
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[FanOutBatchWorkflow, FanOutSegmentWorkflow],
        activities=[acts.process_chunk, acts.seal_batch],
    ):
        with injecting(plan):
            handle = await client.start_workflow(
                FanOutBatchWorkflow.run, request, id=request.batch_id, task_queue=task_queue
            )
        try:
            result = await handle.result()
        except temporalio.client.WorkflowFailureError as err:
            say(f"fan-out: the batch failed: {err.cause}")
            return DemoReport(
                "fan-out/fan-in",
                [f"batch {request.batch_id} failed: {err.cause}"],
                [InvariantCheck("the batch completed", False, str(err.cause))],
            )
    failures = result.all_failures()
    say(
        f"fan-out: {result.succeeded} enriched, {len(failures)} failed "
        f"({len(result.failures)} invalid records, {len(result.failed_ranges)} failed chunks)"
    )
    for failed in result.failures[:3]:
        say(f"fan-out:   {failed.record_id}: {failed.reason}")
    for part in result.failed_ranges:
        say(f"fan-out:   records {part.start}-{part.end - 1}: {part.reason}")
    checks = check_batch(
        seed, result, database, await chunks_failed_for_good(client, request.batch_id)
    )
    for check in checks:
        say(f"fan-out: {'ok ' if check.held else 'FAILED'} {check.name} ({check.detail})")
    return DemoReport(
        "fan-out/fan-in",
        [
            f"batch {result.batch_id}: {result.count} records, {result.succeeded} enriched, "
            f"{len(failures)} failed",
            f"results database: {database}",
        ],
        checks,
    )
