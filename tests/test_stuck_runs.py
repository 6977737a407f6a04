"""Which histories make a run stuck: a workflow task that fails again and again.

Made-up histories; ``test_restart_cancel`` shows a real one on the server.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import (
    HistoryEvent,
    WorkflowTaskFailedEventAttributes,
    WorkflowTaskTimedOutEventAttributes,
)

from faults.testing import failing_task, stuck_failures

Cause = WorkflowTaskFailedCause


def completed() -> HistoryEvent:
    return HistoryEvent(event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)


def failed(cause: int = Cause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
           message: str = "boom") -> HistoryEvent:  # fmt: skip
    return HistoryEvent(
        event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        workflow_task_failed_event_attributes=WorkflowTaskFailedEventAttributes(
            cause=cause, failure=Failure(message=message)
        ),
    )


def timed_out(kind: int = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE) -> HistoryEvent:
    return HistoryEvent(
        event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        workflow_task_timed_out_event_attributes=WorkflowTaskTimedOutEventAttributes(
            timeout_type=kind
        ),
    )


REFUSED = Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND


def test_a_failure_then_an_unanswered_attempt_is_stuck() -> None:
    history = [completed(), failed(message="boom\nstack"), timed_out()]
    assert stuck_failures(history) == (
        "failed (WORKFLOW_WORKER_UNHANDLED_FAILURE): boom",
        "timed out: the worker took the task and never answered",
    )


def test_one_failure_is_not_stuck_and_a_completed_task_clears_the_count() -> None:
    assert failing_task([failed()]) == ("failed (WORKFLOW_WORKER_UNHANDLED_FAILURE): boom",)
    assert stuck_failures([failed()]) == ()
    assert stuck_failures([failed(), completed(), timed_out()]) == ()
    assert failing_task([failed(), timed_out(), completed()]) == ()


def test_refused_completions_are_not_stuck_unless_an_unanswered_attempt_follows() -> None:
    """A busy run can have completions refused in a row, after an injected restart too; its
    next attempt completes. An attempt left unanswered after one is a failure unreported."""
    assert stuck_failures([failed(REFUSED, ""), failed(REFUSED, "")]) == ()
    assert stuck_failures([failed(message="injected worker restart"), failed(REFUSED, "")]) == ()
    assert stuck_failures([failed(REFUSED, ""), timed_out()]) == (
        "failed (UNHANDLED_COMMAND)",
        "timed out: the worker took the task and never answered",
    )
    assert len(stuck_failures([failed(), failed(REFUSED, ""), failed()])) == 3


def test_a_task_no_worker_took_is_not_a_failure() -> None:
    history = [failed(), timed_out(TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START)]
    assert stuck_failures(history) == ()
    assert len(failing_task(history)) == 1
