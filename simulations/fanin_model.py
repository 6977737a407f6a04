"""Fan-in scenarios and the fan-in property, shared by the simulations and their broken variants.

A scenario is a batch (size, chunk size, window, children or not, activities
or local activities, failure policy) and a fault plan over the batch's
activities, optionally aimed at one chunk by its key. The property: the
aggregate holds every record exactly once, and the failed set is exactly the
records whose processing failed permanently (invalid records and chunks whose
activity failed for good).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import event
from hypothesis import strategies as st

import faults
import faults.testing
from faults.strategies import scripted_faults
from patterns.fanout import (
    FAILURE_POLICIES,
    RECORD_FAILED_TYPE,
    BatchConfig,
    BatchRequest,
    BatchResult,
    _sink,
    invalid_records,
    record_id,
)

ACTIVITY_NAMES = ("process_chunk", "seal_batch")
CHUNK_HEAVY = ("process_chunk", "process_chunk", "seal_batch")
"""Fault targets, drawn two to one in favour of the chunks."""
MAX_RECORDS = 60
MAX_CHUNKS = 10


@dataclass(frozen=True)
class Scenario:
    """One batch and the fault plan it runs under."""

    request: BatchRequest
    plan: faults.ScriptedPlan


def _chunk_keys(count: int, chunk_size: int) -> list[str]:
    return [f"chunk-{s}-{min(s + chunk_size, count)}" for s in range(0, count, chunk_size)]


@st.composite
def scenarios(
    draw: st.DrawFn, database: str, policies: tuple[str, ...] = FAILURE_POLICIES
) -> Scenario:
    count = draw(st.integers(1, MAX_RECORDS), label="count")
    least = math.ceil(count / MAX_CHUNKS)
    chunk_size = draw(st.integers(least, max(least, 20)), label="chunk_size")
    children = st.integers(min(count, max(chunk_size, count // 3)), count)
    segment_size = draw(st.just(count) | children, label="segment_size")
    config = BatchConfig(
        chunk_size=chunk_size,
        window=draw(st.integers(1, 8), label="window"),
        record_concurrency=draw(st.integers(1, 16), label="record_concurrency"),
        local_activities=draw(st.booleans(), label="local_activities"),
        segment_size=segment_size,
        child_window=2,
        io_seconds=0,
    )
    keys = _chunk_keys(count, chunk_size)
    entries = draw(
        st.lists(
            st.tuples(
                scripted_faults(
                    CHUNK_HEAVY, max_attempt=2, max_delay=0.02, allow_non_retryable=True
                ),
                st.none() | st.sampled_from(keys),
            ),
            max_size=5,
        ),
        label="faults",
    )
    plan = faults.ScriptedPlan(
        tuple(
            faults.ScriptedFault(
                f.activity, f.attempt, f.fault, key if f.activity == "process_chunk" else None
            )
            for f, key in entries
        )
    )
    weighted = [p for p in policies for _ in range(2 if p == "collect" else 1)]
    request = BatchRequest(
        batch_id=faults.testing.unique_id("sim"),
        seed=draw(st.integers(0, 2**16), label="seed"),
        count=count,
        database=database,
        policy=draw(st.sampled_from(weighted), label="policy"),  # type: ignore[arg-type]
        config=config,
    )
    return Scenario(request, plan)


def _permanent(injection: faults.Injection) -> bool:
    return injection.kind == "fail" and "non-retryable" in injection.detail


def check_fan_in(harness: faults.testing.FaultHarness, scenario: Scenario, workflow: Any) -> None:
    """Run the scenario and assert the fan-in property (raises ``AssertionError`` if it fails)."""
    request = scenario.request
    outcome = harness.run(workflow, request, plan=scenario.plan)
    ours = [
        i for i in harness.log.records()
        if i.workflow_id == outcome.workflow_id
        or i.workflow_id.startswith(f"{outcome.workflow_id}-segment-")
    ]  # fmt: skip
    failed_chunks = {i.key for i in ours if i.activity == "process_chunk" and _permanent(i)}
    seal_failed = any(i.activity == "seal_batch" and _permanent(i) for i in ours)
    in_failed_chunks = {
        record_id(n)
        for key in failed_chunks
        for n in range(*map(int, key.removeprefix("chunk-").split("-")))
    }
    invalid = invalid_records(request.seed, 0, request.count)
    expected_failed = set(invalid) | in_failed_chunks
    config = request.config
    event(f"policy: {request.policy}")
    event("children" if request.count > config.segment_size else "one workflow")
    event("local activities" if config.local_activities else "activities")
    event(f"chunks failed for good: {min(len(failed_chunks), 2)}")
    event(f"seal failed for good: {seal_failed}")
    event(f"invalid records: {min(len(invalid), 2)}")

    if request.policy == "fail_fast" and (expected_failed or seal_failed):
        assert not outcome.succeeded, f"fail-fast batch with failures completed: {outcome.result}"
        cause = outcome.cause
        if getattr(cause, "type", None) == RECORD_FAILED_TYPE:
            named = str(getattr(cause, "message", "")).split()[1]
            assert named in expected_failed, f"fail-fast named {named}, not a failed record"
        else:
            assert seal_failed, f"batch failed for an unexpected reason: {cause}"
        return
    if seal_failed:
        assert not outcome.succeeded, "a batch whose results could not be sealed completed"
        return
    assert outcome.succeeded, f"batch failed: {outcome.cause}"
    result: BatchResult | None = outcome.result
    assert result is not None
    reported = result.all_failures()
    assert set(reported) == expected_failed, (
        f"failed set {sorted(reported)} != permanently failed {sorted(expected_failed)}"
    )
    for rid, reason in invalid.items():
        if rid not in in_failed_chunks:
            assert reported[rid] == reason, f"{rid} reported {reported[rid]!r}, not {reason!r}"
    assert result.succeeded + len(reported) == request.count, "fan-in count is not the batch size"

    conn = _sink.connect(request.database)
    stored = _sink.stored_ids(conn, request.batch_id)
    repeats = [rid for rid, n in Counter(stored).items() if n > 1]
    assert not repeats, f"records stored twice: {repeats}"
    everyone = {record_id(n) for n in range(request.count)}
    missing = sorted(everyone - expected_failed - set(stored))
    assert set(stored) == everyone - expected_failed, (
        f"stored {len(stored)} records; missing {missing}, "
        f"unexpected {sorted(set(stored) & expected_failed)}"
    )
    assert _sink.stored_failures(conn, request.batch_id) == reported, "database failures differ"
    assert result.stored == result.succeeded == len(stored), "sealed count differs from fan-in"
