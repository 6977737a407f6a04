"""The fan-out/fan-in batch: fan-in completeness, failure policies, limits and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

import faults
from faults import Duplicate, Fail, ScriptedFault, ScriptedPlan
from patterns.fanout import (
    RECORD_FAILED_TYPE,
    BatchConfig,
    BatchConfigError,
    BatchRequest,
    BatchResult,
    FanOutActivities,
    FanOutBatchWorkflow,
    FanOutSegmentWorkflow,
    invalid_records,
    record_id,
)
from patterns.fanout._demo import check_batch

ACTIVITIES = FanOutActivities()


@pytest.fixture(scope="module")
def harness(fault_harness: Any) -> faults.FaultHarness:
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
        batch_id=faults.unique_id("batch"),
        seed=seed,
        count=count,
        database=database,
        policy=policy,
        config=BatchConfig(io_seconds=0, **config),
    )


def assert_checks_hold(seed: int, result: BatchResult, database: str) -> None:
    failed = [c for c in check_batch(seed, result, database) if not c.held]
    assert not failed, failed


def test_a_clean_batch_stores_every_valid_record_once(
    harness: faults.FaultHarness, database: str
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
    assert_checks_hold(request.seed, result, database)
