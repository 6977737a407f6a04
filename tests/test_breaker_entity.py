"""The durable breaker entity and guarded calls from workflows.

Entities outlive the calls, so these tests run on a time-skipping server whose
clock moves only by hand (``temporal_manual_clock_env.sleep``): a server skipping
time by itself would jump to an entity's next timer whenever nothing else is in
flight, ending open periods (or, with no timer pending, reaching its execution
timeout).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError

import faults
import faults.testing
from patterns.breaker import (
    BREAKER_ACTIVITIES,
    BreakerClient,
    BreakerConfig,
    CallRequest,
    CircuitBreakerEntity,
    Downstream,
    GuardedCallWorkflow,
    LocalBreakerLoopWorkflow,
)
from patterns.demo import demonstrate_breaker

CONFIG = BreakerConfig(
    window_size=2, minimum_calls=2, open_seconds=60, half_open_permits=3, permit_timeout_seconds=600
)


@pytest.fixture(scope="module")
def downstream(tmp_path_factory: pytest.TempPathFactory) -> Downstream:
    return Downstream(tmp_path_factory.mktemp("breaker") / "downstream.sqlite")


@pytest.fixture(scope="module")
def harness(manual_clock_fault_harness: Any, downstream: Downstream) -> faults.testing.FaultHarness:
    return manual_clock_fault_harness(
        workflows=[CircuitBreakerEntity, GuardedCallWorkflow, LocalBreakerLoopWorkflow],
        activities=[*BREAKER_ACTIVITIES, downstream.call],
    )


def run(harness: faults.testing.FaultHarness, coro: Any) -> Any:
    assert harness.loop is not None
    return harness.loop.run(coro, timeout=120)


def breaker(
    harness: faults.testing.FaultHarness, config: BreakerConfig = CONFIG, **kw: Any
) -> BreakerClient:
    return BreakerClient(
        harness.client, faults.testing.unique_id("b"), config, task_queue=harness.task_queue, **kw
    )


def events(harness: faults.testing.FaultHarness, workflow_id: str) -> list[Any]:
    async def fetch() -> list[Any]:
        return list((await harness.client.get_workflow_handle(workflow_id).fetch_history()).events)

    return run(harness, fetch())


def scheduled_activities(harness: faults.testing.FaultHarness, workflow_id: str) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events(harness, workflow_id)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def test_half_open_hands_out_only_the_permitted_probes_to_many_concurrent_callers(
    harness: faults.testing.FaultHarness, temporal_manual_clock_env: Any
) -> None:
    b = breaker(harness)

    async def scenario() -> list[Any]:
        for i in range(2):
            answer = await b.acquire(f"r{i}")
            await b.record(answer.permit.id, False, 0.0)
        assert (await b.observe()).state == "open"
        await temporal_manual_clock_env.sleep(61)
        answers = await asyncio.gather(*(b.acquire(f"probe-{i}") for i in range(25)))
        await b.client.get_workflow_handle(b.id).terminate()
        return answers

    answers = run(harness, scenario())
    granted = [a for a in answers if a.permit is not None]
    assert len(granted) == 3
    assert {a.rejected.state for a in answers if a.permit is None} == {"half_open"}


def test_a_retried_acquire_gets_the_same_permit(harness: faults.testing.FaultHarness) -> None:
    b = breaker(harness)

    async def scenario() -> tuple[Any, Any]:
        first, again = await b.acquire("same"), await b.acquire("same")
        await b.client.get_workflow_handle(b.id).terminate()
        return first, again

    first, again = run(harness, scenario())
    assert first.permit == again.permit and again.view.outstanding == 1


def test_validators_reject_bad_reports_before_they_reach_the_history(
    harness: faults.testing.FaultHarness,
) -> None:
    b = breaker(harness)

    async def scenario() -> None:
        await b.start()
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await b.record("p1", True, -1.0)
        assert "duration=-1.0 must be seconds >= 0" in str(err.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await b.acquire("")

    run(harness, scenario())
    kinds = {e.event_type for e in events(harness, b.id)}
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in kinds


def test_continue_as_new_carries_the_state_and_the_answers(
    harness: faults.testing.FaultHarness,
) -> None:
    b = breaker(harness, BreakerConfig(window_size=50, minimum_calls=50), max_history_events=40)

    async def scenario() -> tuple[str, str, Any, Any, Any]:
        first = await b.acquire("kept")
        handle = b.client.get_workflow_handle(b.id)
        first_run = (await handle.describe()).run_id
        for i in range(20):
            answer = await b.acquire(f"r{i}")
            await b.record(answer.permit.id, i % 3 == 0, 0.0)
        view = await b.observe()
        again = await b.acquire("kept")
        last_run = (await handle.describe()).run_id
        await handle.terminate()
        return first_run, last_run, view, first, again

    first_run, last_run, view, first, again = run(harness, scenario())
    assert first_run != last_run
    first_history = run(
        harness, harness.client.get_workflow_handle(b.id, run_id=first_run).fetch_history()
    )
    assert first_history.events[-1].event_type == (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )
    assert view.window_calls == 20 and view.window_failures == 13 and view.state == "closed"
    assert again.permit == first.permit


def test_open_breaker_fails_fast_without_scheduling_the_protected_activity(
    harness: faults.testing.FaultHarness, downstream: Downstream
) -> None:
    b = breaker(harness)
    run(harness, b.force_open("maintenance"))
    request = CallRequest(b.name, CONFIG, "svc-open")
    outcome = harness.run(GuardedCallWorkflow.run, request)
    assert outcome.result is not None and outcome.result.status == "rejected"
    assert "forced_open" in outcome.result.detail
    assert scheduled_activities(harness, outcome.workflow_id) == ["breaker_acquire"]
    assert downstream.calls("svc-open") == 0
    with_fallback = harness.run(
        GuardedCallWorkflow.run, CallRequest(b.name, CONFIG, "svc-open", fallback=True)
    )
    assert with_fallback.result is not None and with_fallback.result.status == "fallback"
    run(harness, b.reset())
    served = harness.run(GuardedCallWorkflow.run, request)
    assert served.result is not None and served.result.status == "ok"
    assert scheduled_activities(harness, served.workflow_id) == [
        "breaker_acquire",
        "downstream_call",
        "breaker_record",
    ]
    assert downstream.calls("svc-open") == 1
    run(harness, b.client.get_workflow_handle(b.id).terminate())


def test_guarded_calls_open_the_shared_breaker_under_injected_faults(
    harness: faults.testing.FaultHarness, downstream: Downstream
) -> None:
    b = breaker(harness)
    plan = faults.ScriptedPlan(
        (
            faults.ScriptedFault("downstream_call", 1, faults.Fail()),
            faults.ScriptedFault("breaker_acquire", 1, faults.Duplicate()),
        )
    )
    first = harness.run(
        GuardedCallWorkflow.run, CallRequest(b.name, CONFIG, "svc-faults"), plan=plan
    )
    second = harness.run(
        GuardedCallWorkflow.run, CallRequest(b.name, CONFIG, "svc-faults"), plan=plan
    )
    assert [first.result.status, second.result.status] == ["failed", "failed"]  # type: ignore[union-attr]
    # each acquire ran twice (a lost completion) yet took one permit: two failures opened it
    view = run(harness, b.observe())
    assert view.state == "open" and view.outstanding == 0
    third = harness.run(GuardedCallWorkflow.run, CallRequest(b.name, CONFIG, "svc-faults"))
    assert third.result is not None and third.result.status == "rejected"
    assert "downstream_call" not in scheduled_activities(harness, third.workflow_id)
    run(harness, b.client.get_workflow_handle(b.id).terminate())


def test_demonstrate_holds_its_invariants(
    temporal_loop: faults.testing.EventLoopThread, temporal_manual_clock_env: Any, tmp_path: Path
) -> None:
    # The demonstration waits out the open period in real time, as on a real server: on
    # the manual-clock server the entity's clock moves with the wall clock too.
    lines: list[str] = []
    client = temporal_manual_clock_env.client
    report = temporal_loop.run(
        demonstrate_breaker(client, seed=7, plan=None, workdir=tmp_path, say=lines.append),
        timeout=120,
    )
    assert report.checks and report.ok, [c for c in report.checks if not c.held]
    assert any("half_open -> closed" in line for line in lines)
