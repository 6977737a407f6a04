"""Worker restarts and cancellations at a drawn activity call, read from the workflow history.

``Restart()`` evicts the run from its worker's cache once the call's attempt
ran, so the next workflow task replays the history from the start on a cold
cache; ``Restart(during_task=True)`` fails that workflow task instead.
``Cancel()`` has a client cancel the workflow while the call is in flight.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowQueryFailedError
from temporalio.workflow import NondeterminismError

import faults
import faults.testing
from faults import Cancel, Restart, ScriptedFault, ScriptedPlan
from faults.testing import CANCEL, CANCEL_AFTER_BODY, FAIL, RESTART, explore, observe_calls

from .restart_targets import (
    EFFECTS,
    Booking,
    BookingUndoAfterStep,
    ColdReplayDiverges,
    FailsEveryTask,
    LocalThenRemote,
    TwoSteps,
    book,
    booking_violations,
    first_step,
    other_first_step,
    second_step,
    undo,
)

FAIL_ON_NONDETERMINISM = {"workflow_failure_exception_types": [NondeterminismError]}
"""Worker option: non-determinism fails the workflow instead of retrying its task."""


@pytest.fixture(scope="module")
def harness(fault_harness: Any) -> faults.testing.FaultHarness:
    """Every finished run's history is also replayed against the workflow code."""
    return fault_harness(
        workflows=[TwoSteps, Booking, BookingUndoAfterStep, LocalThenRemote],
        activities=[first_step, second_step, book, undo],
        **FAIL_ON_NONDETERMINISM,
    )


@pytest.fixture(scope="module")
def cold_harness(
    fault_worker: Any, temporal_client: Any, temporal_loop: Any, fault_log: faults.FaultLog
) -> faults.testing.FaultHarness:
    """For the workflow that diverges on a cold replay: no replay check of its own.

    (The harness's replay check replays from scratch too, and would report the
    divergence after the run; these tests read what the run itself did.)
    """
    task_queue = fault_worker(
        workflows=[ColdReplayDiverges],
        activities=[first_step, second_step, other_first_step],
        **FAIL_ON_NONDETERMINISM,
    )
    return faults.testing.FaultHarness(temporal_client, task_queue, fault_log, loop=temporal_loop)


def events(harness: faults.testing.FaultHarness, workflow_id: str) -> list[HistoryEvent]:
    async def fetch() -> list[HistoryEvent]:
        return list((await harness.client.get_workflow_handle(workflow_id).fetch_history()).events)

    assert harness.loop is not None
    return harness.loop.run(fetch(), timeout=60)


def kinds(history: list[HistoryEvent]) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history]


def scheduled(history: list[HistoryEvent]) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def after(history: list[HistoryEvent], kind: str, activity: str) -> list[str]:
    """Event kinds after the first ``kind`` event of ``activity`` (by its scheduled event)."""
    ids = {
        e.event_id
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    }
    names = kinds(history)
    for i, e in enumerate(history):
        attrs = getattr(e, f"activity_task_{kind.lower()}_event_attributes", None)
        if names[i] == f"ACTIVITY_TASK_{kind}" and attrs.scheduled_event_id in ids:
            return names[i + 1 :]
    raise AssertionError(f"no {kind} event for {activity} in {names}")


# --------------------------------------------------------------------------- restart


def test_restart_leaves_a_deterministic_workflow_whole(
    harness: faults.testing.FaultHarness,
) -> None:
    plan = ScriptedPlan((ScriptedFault("first_step", 1, Restart()),))
    outcome = harness.run(TwoSteps.run, "x", plan=plan)
    assert [(i.kind, i.activity) for i in outcome.injections] == [("restart", "first_step")]
    history = events(harness, outcome.workflow_id)
    assert kinds(history)[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    assert scheduled(history) == ["first_step", "second_step"]
    assert EFFECTS[outcome.workflow_id] == ["first:x", "second:x"]
    assert outcome.replayed  # and the history replays against the code


def test_non_determinism_on_a_cold_replay_fails_the_run_where_it_happens(
    cold_harness: faults.testing.FaultHarness,
) -> None:
    # While its worker keeps it cached, the workflow never replays: the bug stays hidden.
    clean = cold_harness.run(ColdReplayDiverges.run, "x")
    clean_history = events(cold_harness, clean.workflow_id)
    assert kinds(clean_history)[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    assert scheduled(clean_history) == ["first_step", "second_step"]

    plan = ScriptedPlan((ScriptedFault("first_step", 1, Restart()),))
    outcome = cold_harness.run(ColdReplayDiverges.run, "x", plan=plan)
    history = events(cold_harness, outcome.workflow_id)
    # The workflow task after the restart replayed from the first event, met the
    # recorded first_step where the code now calls other_first_step, and failed the
    # run in that task: nothing after it was scheduled.
    assert after(history, "COMPLETED", "first_step") == [
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_FAILED",
    ]
    failure = history[-1].workflow_execution_failed_event_attributes.failure
    assert "Nondeterminism" in failure.message
    assert "first_step" in failure.message and "other_first_step" in failure.message
    assert scheduled(history) == ["first_step"]


def test_a_restart_during_a_task_fails_it_and_the_retry_replays_from_the_start(
    harness: faults.testing.FaultHarness,
) -> None:
    plan = ScriptedPlan((ScriptedFault("first_step", 1, Restart(during_task=True)),))
    outcome = harness.run(TwoSteps.run, "x", plan=plan)
    history = events(harness, outcome.workflow_id)
    following = after(history, "COMPLETED", "first_step")
    assert following[:3] == [
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
    ]
    failed = next(e for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    info = failed.workflow_task_failed_event_attributes.failure.application_failure_info
    assert info.type == "InjectedRestart"
    retry = history[history.index(failed) + 1].workflow_task_scheduled_event_attributes
    assert retry.attempt == 2
    assert kinds(history)[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    assert scheduled(history) == ["first_step", "second_step"]  # nothing ran twice
    assert outcome.replayed  # the failed task leaves nothing the code cannot replay


def test_non_determinism_after_a_failed_task_is_not_reported_by_the_sdk(
    cold_harness: faults.testing.FaultHarness,
) -> None:
    """Why Restart() evicts between tasks: core reports only a task's first failed attempt.

    After a restart during a task the replay runs on the task's second attempt;
    the non-determinism it meets is neither reported nor turned into a workflow
    failure, so the task times out and is retried, and the run stays open.
    """
    plan = ScriptedPlan((ScriptedFault("first_step", 1, Restart(during_task=True)),))
    workflow_id = faults.testing.unique_id("stalled")

    async def start() -> Any:
        with faults.injecting(plan):
            return await cold_harness.client.start_workflow(
                ColdReplayDiverges.run,
                "x",
                id=workflow_id,
                task_queue=cold_harness.task_queue,
                task_timeout=timedelta(seconds=1),
            )

    assert cold_harness.loop is not None
    handle = cold_harness.loop.run(start())
    try:
        deadline = time.monotonic() + 60
        while "WORKFLOW_TASK_TIMED_OUT" not in kinds(events(cold_harness, workflow_id)):
            assert time.monotonic() < deadline, kinds(events(cold_harness, workflow_id))
            time.sleep(0.1)
        names = kinds(events(cold_harness, workflow_id))
        assert "WORKFLOW_TASK_FAILED" in names
        assert names.index("WORKFLOW_TASK_FAILED") < names.index("WORKFLOW_TASK_TIMED_OUT")
        assert "WORKFLOW_EXECUTION_FAILED" not in names
    finally:
        cold_harness.loop.run(handle.terminate("test over"))


def test_the_harness_reports_a_run_whose_task_keeps_failing_as_stuck(
    cold_harness: faults.testing.FaultHarness,
) -> None:
    """The same stalled run through ``FaultHarness.run``: :class:`StuckRun` names how each
    attempt failed, long before the run's time limit, and the run is terminated."""
    plan = ScriptedPlan((ScriptedFault("first_step", 1, Restart(during_task=True)),))
    workflow_id = faults.testing.unique_id("stuck")
    with pytest.raises(faults.testing.StuckRun) as stuck:
        cold_harness.run(
            ColdReplayDiverges.run,
            "x",
            plan=plan,
            id=workflow_id,
            timeout=600,  # a TimeoutError would mean the run was not found stuck
            task_timeout=timedelta(seconds=1),
        )
    first, second = stuck.value.failures[:2]
    assert "injected worker restart" in first  # attempt 1: the restart, reported
    assert second.startswith("timed out")  # attempt 2: the replay's non-determinism, unreported
    assert stuck.value.workflow_id == workflow_id
    names = kinds(events(cold_harness, workflow_id))
    assert names[-1] == "WORKFLOW_EXECUTION_TERMINATED"
    assert "WORKFLOW_TASK_COMPLETED" in names  # its first task ran: stuck later, not at start


def test_on_a_full_server_a_stuck_run_is_found_from_its_description(
    dev_fault_harness: Any,
) -> None:
    """A Temporal server writes a retried task's failures to the history once; the harness
    counts the task's attempts in the run's description instead."""
    harness = dev_fault_harness(workflows=[FailsEveryTask], activities=[first_step])
    with pytest.raises(faults.testing.StuckRun) as stuck:
        harness.run(FailsEveryTask.run, "x", timeout=600, task_timeout=timedelta(seconds=1))
    first, *later = stuck.value.failures
    assert first == "failed (WORKFLOW_WORKER_UNHANDLED_FAILURE): a bug in workflow code (x)"
    assert len(later) >= 2
    assert set(later) == {"failed or timed out (not in the history)"}


# --------------------------------------------------------------------------- cancel


def closed_as(harness: faults.testing.FaultHarness, workflow_id: str) -> str:
    return kinds(events(harness, workflow_id))[-1]


def test_cancel_before_the_body_cancels_the_workflow_at_that_call(
    harness: faults.testing.FaultHarness,
) -> None:
    calls = observe_calls(harness, Booking.run)
    assert [c.activity for c in calls] == ["book", "book", "book"]
    plan = ScriptedPlan((calls[1].entry(1, Cancel()),))
    outcome = harness.run(Booking.run, plan=plan)
    history = events(harness, outcome.workflow_id)
    names = kinds(history)
    assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" in names
    assert after(history, "CANCEL_REQUESTED", "book")  # the workflow gave up on book b
    assert names[-1] == "WORKFLOW_EXECUTION_CANCELED"
    # a was booked; b's body never ran; every step begun was undone, in reverse.
    assert EFFECTS[outcome.workflow_id] == ["book:a", "undo:b", "undo:a"]
    assert booking_violations(outcome.workflow_id, completed=False) == {}
    assert [(i.kind, i.detail) for i in outcome.injections] == [("cancel", "cancel")]


def test_the_harness_asks_its_queries_of_each_closed_run(
    fault_harness: Any, temporal_client: Any, fault_log: faults.FaultLog
) -> None:
    """Asked before the plugin may replace the server (a cancellation can hold its clock)."""
    asking = fault_harness(
        workflows=[Booking],
        activities=[book, undo],
        queries=("steps_begun", "no_such_query"),
        **FAIL_ON_NONDETERMINISM,
    )
    calls = observe_calls(asking, Booking.run)
    outcome = asking.run(Booking.run, plan=ScriptedPlan((calls[1].entry(1, Cancel()),)))
    assert closed_as(asking, outcome.workflow_id) == "WORKFLOW_EXECUTION_CANCELED"
    assert outcome.answers["steps_begun"] == ["a", "b"]
    missing = outcome.answers["no_such_query"]
    assert isinstance(missing, WorkflowQueryFailedError), missing
    assert "no_such_query" in str(missing)
    with pytest.raises(ValueError, match=r"^FaultHarness\(queries='steps_begun'\) must be a "):
        faults.testing.FaultHarness(temporal_client, "q", fault_log, queries="steps_begun")


def test_a_broken_stuck_run_watch_leaves_the_run_to_end(
    harness: faults.testing.FaultHarness,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error of the watch itself is logged; the run's outcome is its own."""

    async def broken_watch(client: Any, workflow_id: str) -> tuple[str, ...]:
        raise RuntimeError("the watch broke")

    # No public seam breaks the watch: patch the harness's own reference to it.
    monkeypatch.setattr("faults.testing._harness.stuck_run", broken_watch)
    outcome = harness.run(TwoSteps.run, "x")
    assert outcome.succeeded and outcome.result == "xx", outcome.describe()
    assert "the stuck-run watch of workflow" in caplog.text
    assert "the watch broke" in caplog.text


def test_cancel_after_the_body_exposes_an_undo_registered_too_late(
    harness: faults.testing.FaultHarness,
) -> None:
    calls = observe_calls(harness, Booking.run)
    plan = ScriptedPlan((calls[1].entry(1, Cancel(body="before")),))
    good = harness.run(Booking.run, plan=plan)
    assert closed_as(harness, good.workflow_id) == "WORKFLOW_EXECUTION_CANCELED"
    assert EFFECTS[good.workflow_id] == ["book:a", "book:b", "undo:b", "undo:a"]
    assert booking_violations(good.workflow_id, completed=False) == {}

    bad = harness.run(BookingUndoAfterStep.run, plan=plan)
    assert closed_as(harness, bad.workflow_id) == "WORKFLOW_EXECUTION_CANCELED"
    assert EFFECTS[bad.workflow_id] == ["book:a", "book:b", "undo:a"]
    assert booking_violations(bad.workflow_id, completed=False) == {
        "atomicity": "ended with ['b'] still booked"
    }


def test_cancel_on_a_local_activity_is_refused_with_the_fix(
    harness: faults.testing.FaultHarness,
) -> None:
    plan = ScriptedPlan((ScriptedFault("first_step", 1, Cancel()),))
    outcome = harness.run(LocalThenRemote.run, "x", plan=plan)
    history = events(harness, outcome.workflow_id)
    names = kinds(history)
    assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" not in names
    assert names[-1] == "WORKFLOW_EXECUTION_FAILED"
    failure = history[-1].workflow_execution_failed_event_attributes.failure
    messages = [failure.message, failure.cause.message]
    assert any("put Cancel() on a (non-local) activity call" in m for m in messages), messages
    assert outcome.workflow_id not in EFFECTS  # neither call's body ran


def booking_check(harness: faults.testing.FaultHarness) -> faults.testing.Check:
    def check(outcome: faults.testing.RunOutcome[Any]) -> dict[str, str]:
        completed = closed_as(harness, outcome.workflow_id) == "WORKFLOW_EXECUTION_COMPLETED"
        return booking_violations(outcome.workflow_id, completed)

    return check


def test_exploring_cancellations_finds_the_late_undo_and_shrinks_it_to_one_entry(
    harness: faults.testing.FaultHarness,
) -> None:
    report = explore(
        harness,
        BookingUndoAfterStep.run,
        check=booking_check(harness),
        shapes=(CANCEL, CANCEL_AFTER_BODY),
    )
    assert report.violation is not None
    # Cancelled before a's body: nothing booked, nothing to undo (held). Cancelled after
    # a's body: a booked and never undone.
    assert [s.describe().split(" at ")[0] for s in report.ran] == ["cancel", "cancel_after_body"]
    shrunk = report.violation.shrunk.faults
    assert len(shrunk) == 1 and shrunk[0].fault == Cancel(body="before")
    assert report.violation.violations == {"atomicity": "ended with ['a'] still booked"}


def test_a_correct_booking_holds_under_every_cancellation_and_restart(
    harness: faults.testing.FaultHarness,
) -> None:
    report = explore(
        harness,
        Booking.run,
        check=booking_check(harness),
        shapes=(FAIL, RESTART, CANCEL, CANCEL_AFTER_BODY),
    )
    assert report.ok and report.complete, report.describe()
    assert report.silent == 0
    # Pairs reach the undo calls that only a cancellation makes.
    assert any(p.call.activity == "undo" for s in report.ran for p in s.points)


def test_exploring_restarts_finds_the_cold_replay_bug(
    cold_harness: faults.testing.FaultHarness,
) -> None:
    def completed(outcome: faults.testing.RunOutcome[Any]) -> dict[str, str]:
        last = events(cold_harness, outcome.workflow_id)[-1]
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            return {}
        message = last.workflow_execution_failed_event_attributes.failure.message
        return {"completion": f"{kinds([last])[0]}: {message}"}

    report = explore(
        cold_harness, ColdReplayDiverges.run, "x", check=completed, shapes=(FAIL, RESTART)
    )
    assert report.violation is not None
    assert [s.describe().split(" at ")[0] for s in report.ran] == ["fail", "restart"]
    assert [e.fault for e in report.violation.shrunk.faults] == [Restart()]
    assert "Nondeterminism" in report.violation.violations["completion"]
