"""The session's time-skipping server keeps skipping timers, whatever ran on it before.

The Java test server loses time skipping for good when a workflow ends while
one of its activities is still scheduled or running, or cancels an activity no
worker has started: the activity's lock on the server's clock is never given
back (see :mod:`faults.testing.pytest_plugin`). The plugin probes the clock after
runs that show those patterns and moves the session onto a fresh server. Each
test here makes the pattern happen by construction, checks in the run's
history that it did, and then times a workflow that sleeps twice (as in the
report, for 10 minutes rather than 20 s, so that load on the machine cannot blur it):
its timers must be skipped, measured as the workflow time its history spans
(the server's clock) over the real time the run took.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

# The sandbox imports this module again to check its workflows (and the plugin's
# workers are built again each time it replaces the server): pass the heavy
# imports through, or each costs seconds.
with workflow.unsafe.imports_passed_through():
    import pytest
    from hypothesis import given, settings
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest

    import faults.testing
    from faults import Fail, ScriptedFault, ScriptedPlan, Timeout
    from faults.strategies import scripted_plans
    from faults.testing import SKIP_RATIO, SharedClockUnlock, may_hold_the_clock, open_workflows

pytestmark = pytest.mark.temporal_env("time-skipping")
pytest_plugins = ["pytester"]

SKIP_RATIO = 20.0
"""Workflow time over real time a run of timers must reach: skipped, not waited out."""

TWO_ATTEMPTS = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=2)

# --------------------------------------------------------------------------- targets

_gates: dict[str, threading.Event] = {}


@activity.defn
def write_row(database: str, key: str) -> str:
    """Write one row to the SQLite database at ``database``."""
    with sqlite3.connect(database, timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS rows (key TEXT)")
        db.execute("INSERT INTO rows VALUES (?)", (key,))
    return key


@activity.defn
def held_row(database: str, key: str) -> str:
    """Write one row once the test opens the gate named ``key``."""
    gate = _gates.setdefault(key, threading.Event())
    if not gate.wait(timeout=60):
        raise TimeoutError(f"the test never opened gate {key}")
    return write_row(database, key)


@activity.defn
async def run_until_cancelled() -> None:
    """Heartbeat until cancelled (by the server, or by its worker's shutdown)."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.05)


@activity.defn
async def heartbeat_until_cancelled() -> None:
    """Tell the workflow it started, then heartbeat until the server asks it to stop."""
    info = activity.info()
    handle = activity.client().get_workflow_handle(info.workflow_id or "")
    await handle.signal(CancelsStartedActivity.started)
    await run_until_cancelled()


@workflow.defn
class GatherFour:
    """Four ``write_row`` calls at once, two attempts each: a failed one fails the workflow."""

    @workflow.run
    async def run(self, database: str, label: str) -> list[str]:
        calls = [
            workflow.execute_activity(
                write_row,
                args=[database, f"{label}-{i}"],
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=TWO_ATTEMPTS,
            )
            for i in range(4)
        ]
        return list(await asyncio.gather(*calls))


@workflow.defn
class FailsWhileOthersRun:
    """Three held rows and one ``write_row``; fails as soon as ``write_row`` does."""

    @workflow.run
    async def run(self, database: str, label: str) -> list[str]:
        calls = [
            workflow.execute_activity(
                held_row,
                args=[database, f"{label}-{i}"],
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=TWO_ATTEMPTS,
            )
            for i in range(3)
        ]
        calls.append(
            workflow.execute_activity(
                write_row,
                args=[database, f"{label}-failing"],
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=TWO_ATTEMPTS,
            )
        )
        return list(await asyncio.gather(*calls))


@workflow.defn
class FailsAroundAHeldAttempt:
    """Starts ``write_row`` (a plan holds it past its 60 s timeout), fails 30 s later."""

    @workflow.run
    async def run(self, database: str, label: str) -> None:
        workflow.start_activity(
            write_row,
            args=[database, label],
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=TWO_ATTEMPTS,
        )
        await workflow.sleep(timedelta(seconds=30))
        raise ApplicationError("failed with its activity held", non_retryable=True)


@workflow.defn
class CancelsUnstartedActivity:
    """Schedules an activity on a task queue no worker polls, then cancels it."""

    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(
            "nobody_runs_this",
            task_queue="no-worker-polls-this-queue",
            schedule_to_close_timeout=timedelta(hours=1),
        )
        await workflow.sleep(timedelta(seconds=1))
        handle.cancel()
        try:
            await handle
        except Exception as err:  # the cancellation, resolved at once
            return type(err).__name__
        return "completed"


@workflow.defn
class CancelsStartedActivity:
    """As ``hello_cancellation``: cancels a running heartbeating activity and ends at once."""

    def __init__(self) -> None:
        self._started = False

    @workflow.signal
    def started(self) -> None:
        """The activity is running."""
        self._started = True

    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(
            heartbeat_until_cancelled,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=2),
        )
        await workflow.wait_condition(lambda: self._started)
        handle.cancel()
        try:
            await handle
        except Exception as err:
            return type(err).__name__
        return "completed"


@workflow.defn
class ChildWithAnActivity:
    """Runs one activity: ``held_row`` (a gate holds it) or ``run_until_cancelled``."""

    @workflow.run
    async def run(self, database: str, key: str) -> None:
        if key:
            await workflow.execute_activity(
                held_row, args=[database, key], start_to_close_timeout=timedelta(minutes=5)
            )
            return
        await workflow.execute_activity(
            run_until_cancelled,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=5),
        )


ABANDON = workflow.ParentClosePolicy.ABANDON
TERMINATE = workflow.ParentClosePolicy.TERMINATE


@workflow.defn
class FailsWithItsChildOpen:
    """Starts ``ChildWithAnActivity`` and fails at once, the child still running."""

    @workflow.run
    async def run(self, database: str, key: str, abandon: bool) -> None:
        await workflow.start_child_workflow(
            ChildWithAnActivity.run,
            args=[database, key],
            id=f"{workflow.info().workflow_id}-child",
            parent_close_policy=(
                workflow.ParentClosePolicy.ABANDON
                if abandon
                else workflow.ParentClosePolicy.TERMINATE
            ),
        )
        raise ApplicationError("failed with its child open", non_retryable=True)


@workflow.defn
class FailsAsItStartsAChild:
    """Asks for a child and fails in the same workflow task: the child starts after it closed."""

    @workflow.run
    async def run(self) -> None:
        child = workflow.start_child_workflow(
            ChildWithAnActivity.run, args=["", ""], id=f"{workflow.info().workflow_id}-child"
        )
        pending = asyncio.ensure_future(child)
        await asyncio.sleep(0)  # the start command is issued
        del pending
        raise ApplicationError("failed as its child starts", non_retryable=True)


@workflow.defn
class OneRowInAMinute:
    """One ``write_row`` with a 60 s start-to-close timeout, two attempts."""

    @workflow.run
    async def run(self, database: str, key: str) -> str:
        return await workflow.execute_activity(
            write_row,
            args=[database, key],
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=TWO_ATTEMPTS,
        )


@workflow.defn
class NeverEnds:
    """Starts a child whose activity runs until cancelled, then waits for ever."""

    @workflow.run
    async def run(self) -> None:
        await workflow.start_child_workflow(
            ChildWithAnActivity.run, args=["", ""], id=f"{workflow.info().workflow_id}-child"
        )
        await workflow.wait_condition(lambda: False)


@workflow.defn
class TwoSleeps:
    """Sleeps 10 minutes, twice (the report's 20 s, longer, so a loaded machine cannot blur it)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(minutes=10))
        await workflow.sleep(timedelta(minutes=10))


TARGETS: dict[str, Any] = {
    "workflows": [
        GatherFour,
        FailsWhileOthersRun,
        FailsAroundAHeldAttempt,
        CancelsUnstartedActivity,
        CancelsStartedActivity,
        ChildWithAnActivity,
        FailsWithItsChildOpen,
        FailsAsItStartsAChild,
        OneRowInAMinute,
        NeverEnds,
        TwoSleeps,
    ],
    "activities": [write_row, held_row, heartbeat_until_cancelled, run_until_cancelled],
}

# --------------------------------------------------------------------------- evidence


def histories(harness: faults.testing.FaultHarness, workflow_id: str) -> list[Any]:
    """The histories of a run, its continued runs and children, from the server."""

    async def fetch() -> list[Any]:
        return [history async for _, history in harness.executions(workflow_id)]

    assert harness.loop is not None
    return harness.loop.run(fetch())


def left_the_clock_held(harness: faults.testing.FaultHarness, workflow_id: str) -> bool:
    """Whether the run's history shows an activity left open at its close, or a cancelled one."""
    return any(may_hold_the_clock(history) for history in histories(harness, workflow_id))


def rows(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [key for (key,) in db.execute("SELECT key FROM rows ORDER BY key")]


def assert_timers_skipped(harness: faults.testing.FaultHarness) -> None:
    """Run ``TwoSleeps``: the workflow time its history spans is >= 20x the real time it took.

    Twenty minutes of timers: a skipping server takes a fraction of a second,
    however loaded the machine; one that waits them out would take the twenty
    minutes, so the run is abandoned at the real time that would already make
    the ratio fail.
    """
    budget = 20 * 60 / SKIP_RATIO
    begun = time.perf_counter()
    try:
        outcome = harness.run(TwoSleeps.run, timeout=budget)
    except TimeoutError:
        pytest.fail(f"20 minutes of timers took over {budget:.0f}s: time is no longer skipped")
    real = time.perf_counter() - begun
    assert outcome.succeeded, outcome.describe()
    (history,) = histories(harness, outcome.workflow_id)
    first, last = history.events[0], history.events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    workflow_time = (last.event_time.ToDatetime() - first.event_time.ToDatetime()).total_seconds()
    assert workflow_time >= 20 * 60
    assert workflow_time / real >= SKIP_RATIO, (
        f"20 minutes of timers took {real:.1f}s of real time ({workflow_time / real:.1f}x): "
        "the session's test server no longer skips time"
    )


# --------------------------------------------------------------------------- tests


QUIET_WAIT = 300.0
"""Seconds a test waits for workflows that earlier tests left open on the session's server."""


def wait_until_quiet(harness: faults.testing.FaultHarness) -> None:
    """Wait until no workflow is open on the session's server (earlier tests' leftovers).

    The plugin replaces a server whose clock is held only where nothing can
    notice: with a workflow still open (on a loaded machine an earlier test's
    can outlive it) the replacement waits. These tests need it to happen after
    their own run, so they start once the server is quiet.
    """
    assert harness.loop is not None
    deadline = time.monotonic() + QUIET_WAIT
    while still_open := harness.loop.run(open_workflows(harness.client), timeout=60):
        assert time.monotonic() < deadline, f"workflows left open on the server: {still_open}"
        time.sleep(0.5)


@pytest.fixture
def harness(fault_harness: Any) -> faults.testing.FaultHarness:
    made: faults.testing.FaultHarness = fault_harness(**TARGETS)
    wait_until_quiet(made)
    return made


def test_timers_skip_after_a_property_whose_runs_fail_while_activities_run(
    harness: faults.testing.FaultHarness, tmp_path: Path
) -> None:
    """The reported scenario: 100 examples over four gathered SQLite writes, then two sleeps."""
    database = tmp_path / "rows.sqlite"
    ran: list[tuple[str, str, bool]] = []

    @settings(max_examples=100, database=None)
    @given(scripted_plans(["write_row"], kinds=["fail"], max_attempt=2))
    def gather_four(plan: ScriptedPlan) -> None:
        label = f"example-{len(ran)}"
        outcome = harness.run(GatherFour.run, str(database), label, plan=plan)
        ran.append((outcome.workflow_id, label, outcome.succeeded))

    gather_four()
    # A run that failed while some of its calls were running, by construction: the
    # held calls cannot finish before the gate opens, after the workflow has failed.
    label = "held"
    outcome = harness.run(
        FailsWhileOthersRun.run,
        str(database),
        label,
        plan=ScriptedPlan((ScriptedFault("write_row", 1, Fail(retryable=False)),)),
    )
    for i in range(3):
        _gates.setdefault(f"{label}-{i}", threading.Event()).set()
    assert not outcome.succeeded
    assert left_the_clock_held(harness, outcome.workflow_id)
    # The property's completed runs wrote their four rows.
    written = set(rows(database))
    for workflow_id, example, succeeded in ran:
        if succeeded:
            assert {f"{example}-{i}" for i in range(4)} <= written, workflow_id

    assert_timers_skipped(harness)


def fail_around_a_held_attempt(harness: faults.testing.FaultHarness, tmp_path: Path) -> None:
    """Run ``FailsAroundAHeldAttempt``: it closes while a ``Timeout`` holds its activity."""
    plan = ScriptedPlan((ScriptedFault("write_row", 1, Timeout()),))
    outcome = harness.run(
        FailsAroundAHeldAttempt.run, str(tmp_path / "rows.sqlite"), "held", plan=plan
    )
    assert not outcome.succeeded
    assert [i.kind for i in outcome.injections] == ["timeout"]
    assert left_the_clock_held(harness, outcome.workflow_id)


def test_timers_skip_after_a_run_closes_around_an_attempt_held_past_its_timeout(
    harness: faults.testing.FaultHarness, tmp_path: Path
) -> None:
    """The workflow fails at 30 s while its activity is held for its 60 s timeout."""
    fail_around_a_held_attempt(harness, tmp_path)
    assert_timers_skipped(harness)


def test_timers_skip_after_a_workflow_cancels_an_activity_no_worker_started(
    harness: faults.testing.FaultHarness,
) -> None:
    outcome = harness.run(CancelsUnstartedActivity.run)
    assert outcome.succeeded, outcome.describe()
    assert left_the_clock_held(harness, outcome.workflow_id)
    assert_timers_skipped(harness)


def test_timers_skip_after_a_workflow_ends_while_its_cancelled_activity_runs(
    harness: faults.testing.FaultHarness,
) -> None:
    outcome = harness.run(CancelsStartedActivity.run)
    assert outcome.succeeded, outcome.describe()
    assert left_the_clock_held(harness, outcome.workflow_id)
    assert_timers_skipped(harness)


def status(harness: faults.testing.FaultHarness, workflow_id: str) -> str:
    """The workflow's status on the server, such as ``"TERMINATED"``."""

    async def read() -> str:
        described = await harness.client.get_workflow_handle(workflow_id).describe()
        assert described.status is not None
        return described.status.name

    assert harness.loop is not None
    return harness.loop.run(read())


def test_a_child_its_parent_left_open_is_terminated_as_a_real_server_would(
    harness: faults.testing.FaultHarness, tmp_path: Path
) -> None:
    """The test server ignores parent close policies; the harness applies them at the run's end.

    Left running, the child would lock the clock for good when it closed
    (after its parent): the fault that once stalled a fan-in property midway.
    """
    outcome = harness.run(FailsWithItsChildOpen.run, str(tmp_path / "rows.sqlite"), "", False)
    assert not outcome.succeeded
    child = f"{outcome.workflow_id}-child"
    assert status(harness, child) == "TERMINATED"
    parent, child_history = histories(harness, outcome.workflow_id)
    assert child_history.events[-1].event_type == (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    )
    assert left_the_clock_held(harness, outcome.workflow_id)
    assert_timers_skipped(harness)


def test_a_child_started_after_its_parent_closed_is_terminated_too(
    harness: faults.testing.FaultHarness,
) -> None:
    """The parent's history shows the child asked for, never started; the server starts it."""
    outcome = harness.run(FailsAsItStartsAChild.run)
    assert not outcome.succeeded
    (parent,) = histories(harness, outcome.workflow_id)
    names = [EventType.Name(e.event_type) for e in parent.events]
    assert "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED" in names
    assert "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED" not in names
    assert status(harness, f"{outcome.workflow_id}-child") == "TERMINATED"
    assert_timers_skipped(harness)


def test_an_abandoned_child_is_left_running(
    fresh_server_fault_harness: Any, tmp_path: Path
) -> None:
    harness: faults.testing.FaultHarness = fresh_server_fault_harness(**TARGETS)
    key = f"abandoned-{tmp_path.name}"
    outcome = harness.run(FailsWithItsChildOpen.run, str(tmp_path / "rows.sqlite"), key, True)
    assert not outcome.succeeded
    assert status(harness, f"{outcome.workflow_id}-child") == "RUNNING"
    _gates.setdefault(key, threading.Event()).set()


def test_a_run_past_its_time_limit_is_terminated_and_says_what_it_waited_on(
    harness: faults.testing.FaultHarness, temporal_rotation_report: faults.testing.RotationReport
) -> None:
    """The error names each open run's pending activities; nothing of the run is left open."""
    reruns = temporal_rotation_report.reruns
    workflow_id = faults.testing.unique_id("never-ends")
    with pytest.raises(TimeoutError) as caught:
        harness.run(NeverEnds.run, id=workflow_id, timeout=5)
    message = str(caught.value)
    assert f"workflow {workflow_id} did not end within 5 s" in message
    assert f"{workflow_id} was open with 0 pending activities" in message
    assert f"{workflow_id}-child was open with 1 pending activities" in message
    assert "run_until_cancelled attempt 1: STARTED" in message
    assert status(harness, workflow_id) == "TERMINATED"
    assert status(harness, f"{workflow_id}-child") == "TERMINATED"
    assert temporal_rotation_report.reruns == reruns  # its own wait: not made again
    # Terminating the child around its running activity left the clock held: the
    # session's server was replaced, and later runs skip time as before.
    assert_timers_skipped(harness)


def test_a_run_given_up_outside_run_leaves_no_survey_behind(
    harness: faults.testing.FaultHarness,
) -> None:
    """``run_many`` past its time limit terminates its runs; their surveys are not kept."""
    with pytest.raises(TimeoutError):
        harness.run_many(NeverEnds.run, [(), ()], timeout=5)
    assert harness._given_up == {}
    assert harness.loop is not None
    assert harness.loop.run(open_workflows(harness.client), timeout=60) == []


def test_an_attempt_held_past_its_timeout_gives_its_lock_back_when_its_run_closes_first(
    fresh_server_fault_harness: Any, tmp_path: Path
) -> None:
    """No replacement needed: the held attempt hands back the lock the closed run leaves held.

    The workflow fails at 30 s while a ``Timeout`` holds its activity past its 60 s
    timeout, which the server then refuses to apply. The hold had given the
    attempt's lock back until just before the timeout; once the server takes it
    again (the clock moved past 59 s) the attempt gives it back for good. On a
    server of its own, with nothing to replace it, the clock must still skip.
    """
    harness: faults.testing.FaultHarness = fresh_server_fault_harness(**TARGETS)
    shared = faults.testing.shared_clock_unlock(harness.client)
    assert shared is not None and harness.loop is not None
    fail_around_a_held_attempt(harness, tmp_path)
    # Past the attempt's timeout: the server takes the attempt's lock back at 59 s.
    assert harness.loop.run(shared.probe(timedelta(seconds=90))) is not None
    after = harness.loop.run(shared.probe(timedelta(seconds=2)))
    assert after is not None
    assert after.skips(SKIP_RATIO), f"the closed run's attempt kept the clock: {after.describe()}"


def test_a_run_that_overran_on_a_clock_held_by_something_else_runs_again_on_a_fresh_server(
    harness: faults.testing.FaultHarness,
    temporal_rotation_report: faults.testing.RotationReport,
    tmp_path: Path,
) -> None:
    """An extra lock on the session server's clock (a lost one, as far as the run can tell).

    The run's only wait is an attempt a ``Timeout`` holds past its 60 s timeout;
    it hands its own lock back, but the extra one keeps the clock at real speed,
    so the run overruns its 10 s. That stall is the server's: the harness
    replaces the server and makes the run again, which completes.
    """
    assert harness.loop is not None
    service = harness.client.service_client.test_service
    harness.loop.run(service.lock_time_skipping(LockTimeSkippingRequest()))
    reruns = temporal_rotation_report.reruns
    plan = ScriptedPlan((ScriptedFault("write_row", 1, Timeout()),))
    outcome = harness.run(
        OneRowInAMinute.run, str(tmp_path / "rows.sqlite"), "late", plan=plan, timeout=10
    )
    assert outcome.succeeded, outcome.describe()
    assert temporal_rotation_report.reruns == reruns + 1
    assert rows(tmp_path / "rows.sqlite") == ["late"]  # attempt 2, on the fresh server


def test_the_java_server_itself_stops_skipping_after_a_child_outlives_its_parent(
    fresh_server_fault_harness: Any, tmp_path: Path
) -> None:
    """Without the harness, a child that closes after its parent leaves the clock held.

    The server's behaviour :func:`close_orphans` works around: if a later release
    stops it, this test fails and says so.
    """
    harness: faults.testing.FaultHarness = fresh_server_fault_harness(**TARGETS)
    shared = faults.testing.shared_clock_unlock(harness.client)
    assert shared is not None and harness.loop is not None
    client = harness.client
    key = f"outlives-{tmp_path.name}"
    parent_id = faults.testing.unique_id("outlived")

    async def run_outside_the_harness() -> None:
        handle = await client.start_workflow(
            FailsWithItsChildOpen.run,
            args=[str(tmp_path / "rows.sqlite"), key, False],
            id=parent_id,
            task_queue=harness.task_queue,
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        child = client.get_workflow_handle(f"{parent_id}-child")
        assert (await child.describe()).status.name == "RUNNING"  # type: ignore[union-attr]
        _gates.setdefault(key, threading.Event()).set()
        async with shared.unlocked():
            await child.result()

    harness.loop.run(run_outside_the_harness())
    after = harness.loop.run(shared.probe(timedelta(seconds=2)))
    assert after is not None
    assert not after.skips(SKIP_RATIO), (
        f"the test server now skips time after a child closes after its parent "
        f"({after.describe()}); closing orphans may no longer be needed"
    )


def test_the_java_server_itself_stops_skipping_after_such_a_run(
    fresh_server_fault_harness: Any,
) -> None:
    """On a server of its own, with no plugin to replace it, the lost lock is visible to a probe.

    This is the server's behaviour the plugin works around: if a later server
    release gives the lock back, this test fails and says so.
    """
    harness: faults.testing.FaultHarness = fresh_server_fault_harness(**TARGETS)
    shared = faults.testing.shared_clock_unlock(harness.client)
    assert shared is not None and harness.loop is not None
    # A skipping clock moves 2 s in a round trip; a held one takes the 2 s in real time.
    before = harness.loop.run(shared.probe(timedelta(seconds=2)))
    assert before is not None and before.skips(SKIP_RATIO), before
    outcome = harness.run(CancelsUnstartedActivity.run)
    assert left_the_clock_held(harness, outcome.workflow_id)
    after = harness.loop.run(shared.probe(timedelta(seconds=2)))
    assert after is not None
    assert not after.skips(SKIP_RATIO), (
        f"the test server now skips time after an unstarted activity is cancelled "
        f"({after.describe()}); the plugin's probe-and-replace may no longer be needed"
    )


# --------------------------------------------------------------------------- the shared unlock


class _CountingTestService:
    """A stand-in test service that counts what the server would be told, and can stall."""

    def __init__(self) -> None:
        self.locks = 1  # the server starts locked
        self.stall = asyncio.Event()
        self.stall.set()
        self.entered = asyncio.Event()

    async def unlock_time_skipping(self, request: UnlockTimeSkippingRequest) -> None:
        self.entered.set()
        await self.stall.wait()
        self.locks -= 1

    async def lock_time_skipping(self, request: LockTimeSkippingRequest) -> None:
        self.entered.set()
        await self.stall.wait()
        self.locks += 1


class _Env:
    def __init__(self, service: _CountingTestService) -> None:
        self.client = type(
            "C", (), {"service_client": type("S", (), {"test_service": service})()}
        )()


@pytest.mark.parametrize("cancelled_in", ["unlock", "lock"])
def test_a_wait_cancelled_during_a_clock_call_leaves_the_count_balanced(cancelled_in: str) -> None:
    """A waiter cancelled while its unlock or lock is on the wire: the server ends locked once."""

    async def scenario() -> tuple[int, int]:
        service = _CountingTestService()
        shared = SharedClockUnlock(_Env(service))  # type: ignore[arg-type]
        inside = asyncio.Event()
        leave = asyncio.Event()

        async def wait() -> None:
            async with shared.unlocked():
                inside.set()
                await leave.wait()

        async def other() -> None:  # an overlapping wait that starts and ends normally
            async with shared.unlocked():
                await asyncio.sleep(0)

        if cancelled_in == "unlock":
            service.stall.clear()
            waiter = asyncio.ensure_future(wait())
            await service.entered.wait()
        else:
            waiter = asyncio.ensure_future(wait())
            await inside.wait()
            service.stall.clear()
            service.entered.clear()
            leave.set()
            await service.entered.wait()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        service.stall.set()
        for _ in range(20):
            await asyncio.sleep(0)
        await other()
        await asyncio.sleep(0)
        return service.locks, shared.holders

    locks, holders = asyncio.run(scenario())
    assert (locks, holders) == (1, 0)


# --------------------------------------------------------------------------- replacing the server

_ACROSS_ROTATIONS = """
from temporalio.api.enums.v1 import EventType

from tests.fault_targets import ProbeWorkflow, SyncProbeWorkflow, probe, sync_probe

HANDED_OUT = {}


def test_runs_go_on_across_replacements(
    fault_harness, fault_worker, temporal_client, temporal_loop
):
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe])
    queue = fault_worker(workflows=[SyncProbeWorkflow], activities=[sync_probe])
    servers = set()
    outcomes = []
    for i in range(12):
        outcomes.append(harness.run(ProbeWorkflow.run, f"run-{i}"))
        servers.add(temporal_client.service_client.config.target_host)
    assert all(outcome.succeeded for outcome in outcomes)
    assert len(servers) >= 3, servers

    async def read():
        return [
            await temporal_client.get_workflow_handle(o.workflow_id).fetch_history()
            for o in outcomes
        ]

    # Every run's history is read from the server that ran it, retired or not.
    for history in temporal_loop.run(read()):
        assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    HANDED_OUT.update(harness=harness, queue=queue)


def test_what_was_handed_out_before_still_works(temporal_client, temporal_loop):
    assert HANDED_OUT["harness"].run(ProbeWorkflow.run, "later").succeeded
    answer = temporal_loop.run(
        temporal_client.execute_workflow(
            SyncProbeWorkflow.run, "by-client", id="by-client", task_queue=HANDED_OUT["queue"]
        )
    )
    assert answer == 1
"""


def run_session(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    source: str | None = None,
    *,
    rotate_after: int,
    **modules: str,
) -> pytest.RunResult:
    """Run ``source`` as a test module, or ``modules`` by name, in a session of its own on a
    rotating test server."""
    if (source is None) == (not modules):
        raise TypeError("run_session() takes a source or named modules, not both or neither")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makepyfile(**(modules or {"test_session": source}))
    return pytester.runpytest_subprocess(
        "--temporal-env=time-skipping",
        f"--temporal-rotate-after={rotate_after}",
        "-p",
        "no:cacheprovider",
    )


def test_handed_out_harnesses_and_task_queues_survive_server_replacement(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session with ``--temporal-rotate-after 5``: fixtures' objects keep working throughout."""
    result = run_session(pytester, monkeypatch, _ACROSS_ROTATIONS, rotate_after=5)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test server rotations: [2-9]*", "*x after 5 runs*"])


_HANDED_OUT_CONFTEST = """
import pytest


@pytest.fixture(scope="session")
def handed_out():
    return {}
"""

_EARLIER_MODULE = """
from tests.fault_targets import ProbeWorkflow, SyncProbeWorkflow, probe, sync_probe


def test_hands_out_a_harness_and_a_task_queue(fault_harness, fault_worker, handed_out):
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe])
    queue = fault_worker(workflows=[SyncProbeWorkflow], activities=[sync_probe])
    assert harness.run(ProbeWorkflow.run, "earlier").succeeded
    handed_out.update(harness=harness, queue=queue)
"""

_ROTATING_MODULE = """
from tests.fault_targets import ProbeWorkflow, probe


def test_replacements_restart_only_this_modules_workers(
    fault_harness, _faults_pool, temporal_rotation_report
):
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe], identity="b")
    for i in range(8):
        assert harness.run(ProbeWorkflow.run, f"run-{i}").succeeded
    assert len(temporal_rotation_report.rotations) >= 2, temporal_rotation_report.describe()
    # The earlier module's two workers stopped at the first replacement and stay stopped.
    assert len(_faults_pool.workers_running()) == 1
"""

_LATER_MODULE = """
from tests.fault_targets import ProbeWorkflow, SyncProbeWorkflow


def test_earlier_workers_start_again_when_a_workflow_starts_on_their_queue(
    handed_out, temporal_client, temporal_loop
):
    assert handed_out["harness"].run(ProbeWorkflow.run, "later").succeeded
    answer = temporal_loop.run(
        temporal_client.execute_workflow(
            SyncProbeWorkflow.run, "by-client", id="by-client", task_queue=handed_out["queue"]
        )
    )
    assert answer == 1
"""


def test_a_replacement_restarts_the_current_modules_workers_and_wakes_the_rest_on_use(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three modules, a replacement every 3 runs: the middle one's replacements start only its
    own worker; the first module's harness and task queue still work in the last."""
    pytester.makeconftest(_HANDED_OUT_CONFTEST)
    result = run_session(
        pytester,
        monkeypatch,
        rotate_after=3,
        test_a_earlier=_EARLIER_MODULE,
        test_b_rotating=_ROTATING_MODULE,
        test_c_later=_LATER_MODULE,
    )
    result.assert_outcomes(passed=3)


_DUE_BUT_BLOCKED = """
import asyncio

from temporalio.worker import Worker

from tests.fault_targets import ProbeWorkflow, probe


def test_probes_go_on(fault_harness, temporal_client, temporal_loop, temporal_rotation_report):
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe])

    async def start():
        worker = Worker(
            temporal_client, task_queue="foreign", workflows=[ProbeWorkflow], activities=[probe]
        )
        running = asyncio.ensure_future(worker.run())
        while not worker.is_running:
            await asyncio.sleep(0.01)
        return worker, running

    worker, running = temporal_loop.run(start())
    try:
        for i in range(8):
            assert harness.run(ProbeWorkflow.run, f"run-{i}").succeeded
        report = temporal_rotation_report
        assert any("a worker not started by the plugin" in why for why in report.blocked)
        # A rotation that is due but blocked must not stop the probes that look for a lost
        # lock: one after each run.
        assert report.probes >= 6, report.describe()
    finally:
        temporal_loop.run(worker.shutdown())
"""


def test_a_due_rotation_that_is_blocked_leaves_the_clock_probes_going(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A foreign worker blocks the rotation due after 2 runs; every run is still probed."""
    run_session(pytester, monkeypatch, _DUE_BUT_BLOCKED, rotate_after=2).assert_outcomes(passed=1)


def test_a_negative_rotate_after_is_refused_with_what_to_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--temporal-rotate-after=-1", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--temporal-rotate-after=-1 is negative*--temporal-rotate-after=2000*"]
    )
