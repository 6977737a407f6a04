"""Each fault kind produces the real Temporal behaviour, seen in the workflow history.

These run on a full server (``dev_fault_harness``): the time-skipping test server
records attempt numbers but not the last failure of an attempt.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError

import faults
import faults.testing
from faults import Delay, Duplicate, Fail, HeartbeatLoss, ScriptedFault, ScriptedPlan

from .fault_targets import (
    HeartbeatWorkflow,
    ProbeWorkflow,
    SyncProbeWorkflow,
    body_runs,
    heartbeating,
    probe,
    sync_probe,
)


@pytest.fixture(scope="module")
def harness(dev_fault_harness: Any) -> faults.testing.FaultHarness:
    return dev_fault_harness(
        workflows=[ProbeWorkflow, HeartbeatWorkflow, SyncProbeWorkflow],
        activities=[probe, heartbeating, sync_probe],
    )


def plan(*entries: tuple[str, int, faults.Fault]) -> ScriptedPlan:
    return ScriptedPlan(tuple(ScriptedFault(a, n, f) for a, n, f in entries))


def history_events(harness: faults.testing.FaultHarness, workflow_id: str) -> list[Any]:
    async def fetch() -> list[Any]:
        history = await harness.client.get_workflow_handle(workflow_id).fetch_history()
        return list(history.events)

    assert harness.loop is not None
    return harness.loop.run(fetch())


def started_event(events: list[Any]) -> Any:
    started = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    assert len(started) == 1
    return started[0].activity_task_started_event_attributes


def test_retryable_fail_is_retried_by_temporal(harness: faults.testing.FaultHarness) -> None:
    outcome = harness.run(
        ProbeWorkflow.run, "x", plan=plan(("probe", 1, Fail()), ("probe", 2, Fail()))
    )
    assert outcome.result == 3
    assert [(i.kind, i.attempt) for i in outcome.injections] == [("fail", 1), ("fail", 2)]
    started = started_event(history_events(harness, outcome.workflow_id))
    assert started.attempt == 3
    assert "injected fault" in started.last_failure.message
    assert started.last_failure.application_failure_info.type == faults.INJECTED_FAILURE_TYPE
    assert body_runs(outcome.workflow_id, "probe") == 1


def test_non_retryable_fail_fails_the_activity_at_once(
    harness: faults.testing.FaultHarness,
) -> None:
    outcome = harness.run(ProbeWorkflow.run, "x", plan=plan(("probe", 1, Fail(retryable=False))))
    assert not outcome.succeeded
    assert isinstance(outcome.cause, ActivityError)
    cause = outcome.cause.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert cause.type == faults.INJECTED_FAILURE_TYPE
    events = history_events(harness, outcome.workflow_id)
    assert started_event(events).attempt == 1
    assert any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED for e in events)
    assert body_runs(outcome.workflow_id, "probe") == 0


def test_delay_past_start_to_close_is_a_real_server_timeout(
    harness: faults.testing.FaultHarness,
) -> None:
    outcome = harness.run(ProbeWorkflow.run, "x", plan=plan(("probe", 1, Delay(1.5))))
    assert outcome.result == 2
    started = started_event(history_events(harness, outcome.workflow_id))
    assert started.attempt == 2
    timeout = started.last_failure.timeout_failure_info
    assert timeout.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE


def test_delay_after_the_body_leaves_a_zombie_whose_work_runs_again(
    harness: faults.testing.FaultHarness,
) -> None:
    outcome = harness.run(ProbeWorkflow.run, "x", plan=plan(("probe", 1, Delay(1.5, at="after"))))
    assert outcome.result == 2
    started = started_event(history_events(harness, outcome.workflow_id))
    assert started.last_failure.timeout_failure_info.timeout_type == (
        TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    )
    assert body_runs(outcome.workflow_id, "probe") == 2


def test_short_delay_within_the_timeout_only_slows_the_attempt(
    harness: faults.testing.FaultHarness,
) -> None:
    outcome = harness.run(ProbeWorkflow.run, "x", plan=plan(("probe", 1, Delay(0.05))))
    assert outcome.result == 1
    assert [i.kind for i in outcome.injections] == ["delay"]


def test_duplicate_runs_the_body_twice(harness: faults.testing.FaultHarness) -> None:
    outcome = harness.run(ProbeWorkflow.run, "x", plan=plan(("probe", 1, Duplicate())))
    assert outcome.result == 2
    assert body_runs(outcome.workflow_id, "probe") == 2
    started = started_event(history_events(harness, outcome.workflow_id))
    assert started.attempt == 2
    assert started.last_failure.application_failure_info.type == faults.LOST_COMPLETION_TYPE


def test_duplicate_on_a_threaded_activity(harness: faults.testing.FaultHarness) -> None:
    outcome = harness.run(SyncProbeWorkflow.run, "x", plan=plan(("sync_probe", 1, Duplicate())))
    assert outcome.result == 2
    assert body_runs(outcome.workflow_id, "sync_probe") == 2


def test_heartbeat_loss_fires_the_heartbeat_timeout(harness: faults.testing.FaultHarness) -> None:
    outcome = harness.run(
        HeartbeatWorkflow.run, 3.0, plan=plan(("heartbeating", 1, HeartbeatLoss(after=1)))
    )
    assert outcome.result == 2
    started = started_event(history_events(harness, outcome.workflow_id))
    assert started.last_failure.timeout_failure_info.timeout_type == (
        TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    )


def test_heartbeating_activity_without_faults_is_untouched(
    harness: faults.testing.FaultHarness,
) -> None:
    outcome = harness.run(HeartbeatWorkflow.run, 1.5, plan=ScriptedPlan())
    assert outcome.result == 1
    assert outcome.injections == ()


def test_harness_refuses_a_plan_naming_no_registered_activity(
    harness: faults.testing.FaultHarness,
) -> None:
    with pytest.raises(faults.FaultPlanError, match="'prbe' matches no activity this worker"):
        harness.run(ProbeWorkflow.run, "x", plan=plan(("prbe", 1, Fail())))


def test_worker_fails_a_workflow_whose_plan_names_no_registered_activity(
    harness: faults.testing.FaultHarness,
) -> None:
    workflow_id = faults.testing.unique_id("bad-plan")

    async def start() -> BaseException | None:
        with faults.injecting(plan(("prbe", 1, Fail()))):
            handle = await harness.client.start_workflow(
                ProbeWorkflow.run, "x", id=workflow_id, task_queue=harness.task_queue
            )
        try:
            await handle.result()
        except WorkflowFailureError as err:
            return err.cause
        return None

    assert harness.loop is not None
    cause = harness.loop.run(start())
    assert isinstance(cause, ApplicationError) and cause.type == "FaultPlanError"
    assert "'prbe' matches no activity" in str(cause)
    events = history_events(harness, workflow_id)
    assert not any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events)
    assert body_runs(workflow_id, "probe") == 0
    harness.loop.run(harness.replay(workflow_id))
