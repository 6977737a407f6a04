"""The fan-out/fan-in batch: fan-in completeness, failure policies, limits and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

import faults
import faults.testing
from faults import Duplicate, Fail, ScriptedFault, ScriptedPlan
from patterns.demo import check_batch
from patterns.demo._fanout import chunks_failed_for_good
from patterns.fanout import (
    RECORD_FAILED_TYPE,
    BatchConfig,
    BatchConfigError,
    BatchRequest,
    BatchResult,
    FanOutActivities,
    FanOutBatchWorkflow,
    FanOutSegmentWorkflow,
    RangeResult,
    invalid_records,
    record_id,
)

ACTIVITIES = FanOutActivities()


@pytest.fixture(scope="module")
def harness(fault_harness: Any) -> faults.testing.FaultHarness:
    return fault_harness(
        workflows=[FanOutBatchWorkflow, FanOutSegmentWorkflow],
        activities=[ACTIVITIES.process_chunk, ACTIVITIES.seal_batch],
    )


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("fanout") / "results.sqlite3")


def batch(database: str, count: int, seed: int = 7, **config: Any) -> BatchRequest:
    policy = config.pop("policy", "collect")
    return BatchRequest(
        batch_id=faults.testing.unique_id("batch"),
        seed=seed,
        count=count,
        database=database,
        policy=policy,
        config=BatchConfig(io_seconds=0, **config),
    )


def assert_checks_hold(
    harness: faults.testing.FaultHarness,
    seed: int,
    outcome: faults.testing.RunOutcome[BatchResult],
    database: str,
) -> None:
    """The demonstration's fan-in checks, with the failed chunks read from the run's histories."""
    assert harness.loop is not None and outcome.result is not None
    result = outcome.result
    failed_chunks = harness.loop.run(chunks_failed_for_good(harness.client, outcome.workflow_id))
    failed = [c for c in check_batch(seed, result, database, failed_chunks) if not c.held]
    assert not failed, failed


def test_a_clean_batch_stores_every_valid_record_once(
    harness: faults.testing.FaultHarness, database: str
) -> None:
    request = batch(database, 120, chunk_size=10, window=4)
    outcome = harness.run(FanOutBatchWorkflow.run, request)
    assert outcome.succeeded, outcome.describe()
    result = outcome.result
    assert result is not None
    invalid = invalid_records(request.seed, 0, 120)
    assert invalid, "seed 7 should draw some invalid records"
    assert result.all_failures() == invalid
    assert result.succeeded == result.stored == 120 - len(invalid)
    assert_checks_hold(harness, request.seed, outcome, database)


def test_segments_run_as_child_workflows_and_fan_in_exactly(
    harness: faults.testing.FaultHarness, database: str
) -> None:
    request = batch(database, 95, seed=11, chunk_size=7, window=3, segment_size=30, child_window=2)
    outcome = harness.run(FanOutBatchWorkflow.run, request)
    assert outcome.succeeded, outcome.describe()
    assert outcome.result is not None
    assert_checks_hold(harness, request.seed, outcome, database)
    assert outcome.result.all_failures() == invalid_records(11, 0, 95)

    async def child_result() -> Any:
        child = harness.client.get_workflow_handle(
            f"{outcome.workflow_id}-segment-90", result_type=RangeResult
        )
        return await child.result()

    assert harness.loop is not None
    last = harness.loop.run(child_result())
    assert (last.start, last.end) == (90, 95)


def test_re_executed_chunks_store_each_record_once(
    harness: faults.testing.FaultHarness, database: str
) -> None:
    request = batch(database, 40, seed=3, chunk_size=10, window=4)
    plan = ScriptedPlan(
        (
            ScriptedFault("process_chunk", 1, Duplicate()),
            ScriptedFault("process_chunk", 2, Duplicate(), key="chunk-10-20"),
            ScriptedFault("seal_batch", 1, Duplicate()),
        )
    )
    outcome = harness.run(FanOutBatchWorkflow.run, request, plan=plan)
    assert outcome.succeeded, outcome.describe()
    assert sum(i.kind == "duplicate" for i in outcome.injections) == 6
    assert outcome.result is not None
    assert outcome.result.failed_ranges == ()
    assert_checks_hold(harness, request.seed, outcome, database)


def test_a_chunk_that_fails_for_good_is_reported_and_its_stored_rows_removed(
    harness: faults.testing.FaultHarness, database: str
) -> None:
    request = batch(database, 50, seed=5, chunk_size=10, window=2)
    plan = ScriptedPlan(
        (
            ScriptedFault("process_chunk", 1, Duplicate(), key="chunk-20-30"),
            ScriptedFault("process_chunk", 2, Fail(retryable=False), key="chunk-20-30"),
        )
    )
    outcome = harness.run(FanOutBatchWorkflow.run, request, plan=plan)
    assert outcome.succeeded, outcome.describe()
    result = outcome.result
    assert result is not None
    [failed] = result.failed_ranges
    assert (failed.start, failed.end) == (20, 30)
    assert "failed permanently" in failed.reason and "injected fault" in failed.reason
    expected = {k: v for k, v in invalid_records(5, 0, 50).items() if not 20 <= int(k[5:]) < 30}
    expected.update({record_id(i): failed.reason for i in range(20, 30)})
    assert result.all_failures() == expected
    assert_checks_hold(harness, request.seed, outcome, database)


def test_fail_fast_names_the_first_invalid_record(
    harness: faults.testing.FaultHarness, database: str
) -> None:
    request = batch(database, 60, seed=7, chunk_size=5, window=1, policy="fail_fast")
    first_invalid = min(invalid_records(7, 0, 60))
    outcome = harness.run(FanOutBatchWorkflow.run, request)
    assert not outcome.succeeded
    cause = outcome.cause
    assert isinstance(cause, ApplicationError) and cause.type == RECORD_FAILED_TYPE
    assert cause.message.startswith(f"record {first_invalid} failed: ")


def test_fail_fast_stops_at_a_chunk_that_fails_for_good_inside_a_child(
    harness: faults.testing.FaultHarness, database: str
) -> None:
    seed = next(s for s in range(100) if not invalid_records(s, 0, 30))
    request = batch(
        database, 30, seed=seed, chunk_size=5, window=2, segment_size=10, policy="fail_fast"
    )
    plan = ScriptedPlan((ScriptedFault("process_chunk", 1, Fail(False), key="chunk-15-20"),))
    outcome = harness.run(FanOutBatchWorkflow.run, request, plan=plan)
    assert not outcome.succeeded
    cause = outcome.cause
    assert isinstance(cause, ApplicationError) and cause.type == RECORD_FAILED_TYPE
    assert f"record {record_id(15)} failed: chunk 15-20 failed permanently" in cause.message


def test_local_activity_chunks_fan_in_exactly_under_faults(
    harness: faults.testing.FaultHarness, database: str
) -> None:
    request = batch(database, 45, seed=9, chunk_size=8, window=3, local_activities=True)
    plan = ScriptedPlan(
        (
            ScriptedFault("process_chunk", 1, Fail(), key="chunk-8-16"),
            ScriptedFault("process_chunk", 1, Duplicate(), key="chunk-16-24"),
            ScriptedFault("process_chunk", 1, Fail(False), key="chunk-40-45"),
        )
    )
    outcome = harness.run(FanOutBatchWorkflow.run, request, plan=plan)
    assert outcome.succeeded, outcome.describe()
    assert outcome.result is not None
    assert [(r.start, r.end) for r in outcome.result.failed_ranges] == [(40, 45)]
    assert_checks_hold(harness, request.seed, outcome, database)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BatchConfig(chunk_size=0), r"BatchConfig\.chunk_size=0 must be an integer"),
        (lambda: BatchConfig(window=5000), r"BatchConfig\.window=5000 .*2,000 pending"),
        (lambda: BatchConfig(io_seconds=-1), r"BatchConfig\.io_seconds=-1"),
        (
            lambda: BatchConfig(chunk_size=1, segment_size=10_000),
            r"segment_size=10000 with chunk_size=1 makes 10000 activities .*raise chunk_size",
        ),
        (lambda: BatchRequest("b", 1, 0, "x.db"), r"BatchRequest\.count=0"),
        (lambda: BatchRequest("", 1, 5, "x.db"), r"BatchRequest\.batch_id=''"),
        (
            lambda: BatchRequest("b", 1, 5, "x.db", policy="retry"),  # type: ignore[arg-type]
            r"BatchRequest\.policy='retry' must be one of fail_fast, collect",
        ),
        (
            lambda: BatchRequest("b", 1, 500_000, "x.db", config=BatchConfig(segment_size=100)),
            r"makes 5000 child workflows .*raise segment_size",
        ),
    ],
)
def test_bad_configuration_is_refused_with_the_field_named(build: Any, message: str) -> None:
    with pytest.raises(BatchConfigError, match=message):
        build()


def test_the_demonstration_holds_its_invariants(
    temporal_loop: faults.testing.EventLoopThread, temporal_client: Any, tmp_path: Path
) -> None:
    from patterns.demo import FANOUT_PLAN, demonstrate_fanout

    lines: list[str] = []
    report = temporal_loop.run(
        demonstrate_fanout(
            temporal_client, seed=4, plan=FANOUT_PLAN, workdir=tmp_path, say=lines.append
        ),
        timeout=120,
    )
    assert report.ok, report.checks
    assert len(report.checks) == 4
    assert any("records 1500-1549" in line and "failed permanently" in line for line in lines)
    assert (tmp_path / "fanout-results.sqlite3").exists()
