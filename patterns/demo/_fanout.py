"""``demonstrate()``: a short fan-out/fan-in run under faults, with its invariants checked."""

from __future__ import annotations

import uuid
from pathlib import Path

import temporalio.client
from temporalio.worker import Worker

from faults import Duplicate, Fail, FaultPlan, ScriptedFault, ScriptedPlan, injecting

from .._report import DemoReport, InvariantCheck, Say
from . import _sink
from ._activities import FanOutActivities
from ._records import enrich, generate_customer, invalid_records
from ._types import BatchConfig, BatchRequest, BatchResult, record_id
from ._workflow import FanOutBatchWorkflow, FanOutSegmentWorkflow

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


def check_batch(seed: int, result: BatchResult, database: str | Path) -> list[InvariantCheck]:
    """Check a finished batch against the database and an in-process oracle of its records."""
    conn = _sink.connect(database)
    stored = _sink.stored_ids(conn, result.batch_id)
    failed_rows = _sink.stored_failures(conn, result.batch_id)
    everyone = {record_id(i) for i in range(result.count)}
    in_ranges = {f.record_id for r in result.failed_ranges for f in r.failures()}
    stored_set = set(stored)
    invalid = invalid_records(seed, 0, result.count)
    fingerprints = dict(
        conn.execute(
            "SELECT record_id, fingerprint FROM enriched WHERE batch_id = ?", (result.batch_id,)
        ).fetchall()
    )
    wrong_rows = sum(
        enrich(generate_customer(seed, int(rid.rsplit("-", 1)[1]))).fingerprint() != fingerprint
        for rid, fingerprint in fingerprints.items()
    )
    expected_failures = {k: v for k, v in invalid.items() if k not in in_ranges}
    reported = result.all_failures()
    outside_ranges = {k: v for k, v in reported.items() if k not in in_ranges}
    return [
        InvariantCheck(
            "every record is counted exactly once",
            len(stored) == len(stored_set)
            and not stored_set & set(failed_rows)
            and stored_set | set(failed_rows) == everyone,
            f"{len(stored_set)} stored + {len(failed_rows)} failed of {result.count} records",
        ),
        InvariantCheck(
            "the fan-in agrees with the database",
            result.succeeded == result.stored == len(stored) and reported == failed_rows,
            f"fan-in {result.succeeded} succeeded, database {len(stored)} rows",
        ),
        InvariantCheck(
            "failed records are exactly the invalid ones plus chunks that failed for good",
            outside_ranges == expected_failures
            and all("failed permanently" in r.reason for r in result.failed_ranges),
            f"{len(invalid)} invalid records, {len(result.failed_ranges)} failed chunks",
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
    checks = check_batch(seed, result, database)
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
