"""Circuit breaker cost on the dev server, beside an unguarded call from the same run.

* ``unguarded``: a workflow calling the downstream activity directly (baseline);
* ``guarded_closed``: the same call through the shared breaker entity (acquire
  Update, the call, record Update: two short activities more);
* ``fail_fast_open``: a guarded call while the breaker is forced open: the
  rejection comes from the entity and the protected activity is never scheduled.

Run with ``pytest benchmarks/test_breaker_bench.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import faults
import faults.testing
from patterns.breaker import (
    BREAKER_ACTIVITIES,
    BreakerClient,
    BreakerConfig,
    CallOutcome,
    CallRequest,
    CircuitBreakerEntity,
    DirectCallWorkflow,
    Downstream,
    GuardedCallWorkflow,
)

ROUNDS = 25
CONFIG = BreakerConfig(window_size=20, minimum_calls=20, open_seconds=3600)


@pytest.fixture(scope="module")
def harness(
    dev_fault_harness: Any, tmp_path_factory: pytest.TempPathFactory
) -> faults.testing.FaultHarness:
    downstream = Downstream(Path(tmp_path_factory.mktemp("breaker-bench")) / "downstream.sqlite")
    return dev_fault_harness(
        workflows=[CircuitBreakerEntity, GuardedCallWorkflow, DirectCallWorkflow],
        activities=[*BREAKER_ACTIVITIES, downstream.call],
    )


@pytest.fixture(scope="module")
def breaker(harness: faults.testing.FaultHarness) -> Iterator[BreakerClient]:
    client = BreakerClient(
        harness.client, faults.testing.unique_id("bench"), CONFIG, task_queue=harness.task_queue
    )
    assert harness.loop is not None
    harness.loop.run(client.start())
    yield client
    harness.loop.run(client.client.get_workflow_handle(client.id).terminate())


def one_call(
    harness: faults.testing.FaultHarness, workflow: Any, request: CallRequest
) -> CallOutcome:
    assert harness.loop is not None
    outcome: CallOutcome = harness.loop.run(
        harness.client.execute_workflow(
            workflow,
            request,
            id=faults.testing.unique_id("bench-call"),
            task_queue=harness.task_queue,
        )
    )
    return outcome


def test_unguarded_call(
    benchmark: Any, throughput: Any, harness: faults.testing.FaultHarness
) -> None:
    request = CallRequest("unused", CONFIG, "bench-svc")
    outcome = benchmark.pedantic(
        lambda: one_call(harness, DirectCallWorkflow.run, request), rounds=ROUNDS, iterations=1
    )
    assert outcome.status == "ok"
    throughput.record(benchmark, "breaker_unguarded_call", 1, "calls")


def test_guarded_call_closed(
    benchmark: Any, throughput: Any, harness: faults.testing.FaultHarness, breaker: BreakerClient
) -> None:
    request = CallRequest(breaker.name, CONFIG, "bench-svc")
    outcome = benchmark.pedantic(
        lambda: one_call(harness, GuardedCallWorkflow.run, request), rounds=ROUNDS, iterations=1
    )
    assert outcome.status == "ok"
    throughput.record(benchmark, "breaker_guarded_call", 1, "calls")
    throughput.ratio(benchmark, "breaker_guarded_call", "breaker_unguarded_call")


def test_fail_fast_while_open(
    benchmark: Any, throughput: Any, harness: faults.testing.FaultHarness, breaker: BreakerClient
) -> None:
    assert harness.loop is not None
    harness.loop.run(breaker.force_open("benchmark"))
    request = CallRequest(breaker.name, CONFIG, "bench-svc")
    outcome = benchmark.pedantic(
        lambda: one_call(harness, GuardedCallWorkflow.run, request), rounds=ROUNDS, iterations=1
    )
    harness.loop.run(breaker.reset("benchmark over"))
    assert outcome.status == "rejected"
    throughput.record(benchmark, "breaker_fail_fast_open", 1, "calls")
    throughput.ratio(benchmark, "breaker_fail_fast_open", "breaker_unguarded_call")
