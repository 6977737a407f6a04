"""Outages and timeouts: plans, strategies, and their effect in workflow histories.

An outage is one plan entry that faults a run of attempts; a timeout is an
attempt that outlives its timeout so that the server times it out. The tests
on a server read what happened from the workflow history and from the bodies'
own record of the attempts they ran in (:data:`BODY_RAN`), never from the
workflow's result.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.common import RetryPolicy

import faults
import faults.testing
from faults import (
    ALL_ATTEMPTS,
    ActivityCall,
    Duplicate,
    Fail,
    FaultPlanError,
    FaultRule,
    RandomPlan,
    ScriptedFault,
    ScriptedPlan,
    Timeout,
    plan_from_json,
    plan_to_json,
)

with workflow.unsafe.imports_passed_through():  # Hypothesis reads the disk as it loads
    from hypothesis import find
    from hypothesis.errors import InvalidArgument, NoSuchExample

    from faults.strategies import (
        OUTAGE,
        fault_kinds,
        random_plans,
        scripted_faults,
        scripted_plans,
    )

# --------------------------------------------------------------------------- targets

BODY_RAN: dict[str, list[int]] = {}
"""The attempts in which each workflow's activity body ran to its end, by workflow id."""
_lock = threading.Lock()


def _record() -> int:
    info = activity.info()
    with _lock:
        BODY_RAN.setdefault(info.workflow_id or "", []).append(info.attempt)
    return info.attempt


def body_ran(workflow_id: str) -> list[int]:
    """The attempts whose body ran to its end in ``workflow_id``, in order."""
    with _lock:
        return list(BODY_RAN.get(workflow_id, []))


@activity.defn
async def shaped(label: str) -> int:
    """Records the attempt its body ran in and returns it."""
    return _record()


@activity.defn
def shaped_sync(label: str) -> int:
    """A threaded :func:`shaped`."""
    return _record()


@workflow.defn
class ShapedWorkflow:
    """Runs ``shaped`` (or ``shaped_sync``) once under the given timeout and attempt limit."""

    @workflow.run
    async def run(self, seconds: float, attempts: int, threaded: bool = False) -> int:
        return await workflow.execute_activity(
            shaped_sync if threaded else shaped,
            "x",
            start_to_close_timeout=timedelta(seconds=seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=50), maximum_attempts=attempts
            ),
        )


@workflow.defn
class LocalShapedWorkflow:
    """Runs ``shaped`` once as a local activity with a 10 s start-to-close timeout."""

    @workflow.run
    async def run(self) -> int:
        return await workflow.execute_local_activity(
            shaped,
            "x",
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50)),
        )


@workflow.defn
class NapWorkflow:
    """Sleeps a day: it ends only if the time-skipping server's clock is free to skip."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(days=1))


TARGETS: dict[str, Any] = {
    "workflows": [ShapedWorkflow, LocalShapedWorkflow, NapWorkflow],
    "activities": [shaped, shaped_sync],
}


def history(harness: faults.testing.FaultHarness, workflow_id: str) -> list[Any]:
    async def fetch() -> list[Any]:
        return list((await harness.client.get_workflow_handle(workflow_id).fetch_history()).events)

    assert harness.loop is not None
    return harness.loop.run(fetch())


def of_type(events: list[Any], event_type: int) -> list[Any]:
    return [e for e in events if e.event_type == event_type]


def last_started(events: list[Any]) -> Any:
    started = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    assert len(started) == 1  # a full server records only the attempt that closed the activity
    return started[0].activity_task_started_event_attributes


def completed_result(events: list[Any]) -> bytes:
    (completed,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    return bytes(completed.activity_task_completed_event_attributes.result.payloads[0].data)


def plan(*entries: ScriptedFault) -> ScriptedPlan:
    return ScriptedPlan(entries)


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Timeout(body="after"), r"Timeout\.body='after' must be 'never'"),
        (lambda: ScriptedFault("a", 2, Fail(), through=1), r"through=1 is before attempt=2"),
        (
            lambda: ScriptedFault("a", 1, Fail(), through="forever"),
            r"ScriptedFault\.through='forever' must be None .* or 'all'",
        ),
        (lambda: ScriptedFault("a", 1, Fail(), through=True), r"ScriptedFault\.through=True"),
        (lambda: ScriptedFault("a", 1, Fail(), through=2.0), r"ScriptedFault\.through=2\.0"),
        (lambda: FaultRule(timeout=1.5), r"FaultRule\.timeout=1\.5 is outside \[0, 1\]"),
        (lambda: FaultRule(fail=0.6, timeout=0.6), r"sum to 1\.2 > 1"),
        (
            lambda: plan_from_json(
                '{"kind":"scripted","faults":[{"activity":"a","attempt":3,"through":2,'
                '"fault":{"kind":"fail"}}]}'
            ),
            r"through=2 is before attempt=3",
        ),
        (
            lambda: plan_from_json(
                '{"kind":"scripted","faults":[{"activity":"a","attempt":1,'
                '"fault":{"kind":"timeout","body":"sometimes"}}]}'
            ),
            r"Timeout\.body='sometimes'",
        ),
    ],
)
def test_bad_shapes_are_refused_naming_the_field(build: Any, message: str) -> None:
    with pytest.raises(FaultPlanError, match=message):
        build()


@pytest.mark.parametrize(
    "shaped_plan",
    [
        plan(
            ScriptedFault("charge", 1, Fail(), through=3),
            ScriptedFault("reserve", 2, Duplicate(), key="order-*", through=ALL_ATTEMPTS),
            ScriptedFault("ship", 1, Timeout()),
            ScriptedFault("ship", 2, Timeout(body="before"), through=4),
        ),
        RandomPlan(seed=5, rules=(FaultRule("a*", fail=0.1, timeout=0.2),)),
    ],
)
def test_shapes_round_trip_through_json(shaped_plan: ScriptedPlan | RandomPlan) -> None:
    assert plan_from_json(plan_to_json(shaped_plan)) == shaped_plan


def test_plans_written_before_outages_still_read_and_write_the_same() -> None:
    old = '{"faults":[{"activity":"a","attempt":2,"fault":{"kind":"fail","retryable":true}}],"kind":"scripted"}'  # noqa: E501
    assert plan_from_json(old) == plan(ScriptedFault("a", 2, Fail()))
    assert plan_to_json(plan_from_json(old)) == old
    old_random = '{"kind":"random","seed":1,"rules":[{"activity":"*","fail":0.5}]}'
    assert plan_from_json(old_random) == RandomPlan(seed=1, rules=(FaultRule(fail=0.5),))


def test_an_outage_faults_its_run_of_attempts_and_no_other() -> None:
    bounded = plan(ScriptedFault("charge", 2, Fail(), through=4))
    faulted = [n for n in range(1, 8) if bounded.decide(ActivityCall("w", "charge", "k", n))]
    assert faulted == [2, 3, 4]
    endless = plan(ScriptedFault("charge", 2, Duplicate(), key="k", through=ALL_ATTEMPTS))
    assert [endless.decide(ActivityCall("w", "charge", "k", n)) for n in (1, 2, 50)] == [
        None,
        Duplicate(),
        Duplicate(),
    ]
    assert endless.decide(ActivityCall("w", "charge", "other", 2)) is None
    # The first matching entry wins, as for single attempts.
    layered = plan(ScriptedFault("a", 2, Timeout()), ScriptedFault("a", 1, Fail(), through=3))
    assert [layered.decide(ActivityCall("w", "a", "k", n)) for n in (1, 2, 3, 4)] == [
        Fail(),
        Timeout(),
        Fail(),
        None,
    ]


def test_shapes_describe_themselves() -> None:
    described = plan(
        ScriptedFault("charge", 1, Fail(), through=3),
        ScriptedFault("ship", 2, Timeout(body="before"), key="o-1", through=ALL_ATTEMPTS),
        ScriptedFault("ship", 1, Timeout(), through=1),
    ).describe()
    assert described.splitlines() == [
        "charge attempts 1-3: fail",
        "ship[o-1] attempts 2-all: timeout(body before)",
        "ship attempt 1: timeout(body never)",
    ]


def test_random_rules_draw_timeouts_after_the_older_kinds() -> None:
    # Existing seeds keep their decisions: the timeout share comes after the others.
    rule = FaultRule(fail=0.2, timeout=0.3)
    assert [rule.choose(u) for u in (0.1, 0.3, 0.49, 0.6)] == [Fail(), Timeout(), Timeout(), None]
    assert RandomPlan.parse("timeout=1", seed=1).decide(ActivityCall("w", "a", "k", 1)) == (
        Timeout()
    )


# --------------------------------------------------------------------------- strategies


def test_default_kinds_draw_outages_and_timeouts() -> None:
    find(scripted_faults(["a"]), lambda e: isinstance(e.fault, Timeout))
    find(scripted_faults(["a"]), lambda e: e.is_outage)
    find(random_plans(["a"]), lambda p: p.rules[0].timeout > 0)


def test_shapes_shrink_fail_before_outage_before_timeout() -> None:
    # Any fault on attempt 2 of "b": one entry of a single retryable fail, on attempt 2
    # alone or through it (which of the two the shrinker reaches first is its own affair).
    found = find(
        scripted_plans(["a", "b"]),
        lambda p: any(
            e.activity == "b" and e.matches(ActivityCall("w", "b", "k", 2)) for e in p.faults
        ),
    )
    assert found in (
        plan(ScriptedFault("b", 2, Fail())),
        plan(ScriptedFault("b", 1, Fail(), through=2)),
    )
    # Two faulted attempts: one outage of fails, not two entries and not two timeouts.
    two = find(
        scripted_plans(["a"]),
        lambda p: sum(p.decide(ActivityCall("w", "a", "k", n)) is not None for n in (1, 2, 3)) >= 2,
    )
    assert two == plan(ScriptedFault("a", 1, Fail(), through=2))
    # Something that only a timeout gives: a timeout whose body never runs.
    assert find(
        scripted_plans(["a"]), lambda p: any(isinstance(e.fault, Timeout) for e in p.faults)
    ) == plan(ScriptedFault("a", 1, Timeout()))


def test_outages_shrink_toward_fewer_attempts() -> None:
    long_enough = find(
        scripted_faults(["a"], kinds=["fail", OUTAGE], max_attempt=5),
        lambda e: e.last_attempt is not None and e.last_attempt - e.attempt >= 2,
    )
    assert long_enough == ScriptedFault("a", 1, Fail(), through=3)
    endless = find(
        scripted_faults(["a"], kinds=["duplicate", OUTAGE], outage_through_all=True),
        lambda e: e.through == ALL_ATTEMPTS,
    )
    assert endless == ScriptedFault("a", 1, Duplicate(), through=ALL_ATTEMPTS)


def test_named_kinds_without_outage_draw_single_attempts_only() -> None:
    with pytest.raises(NoSuchExample):
        find(scripted_faults(["a"], kinds=["fail", "delay"]), lambda e: e.is_outage)
    with pytest.raises(NoSuchExample):
        find(scripted_faults(["a"], kinds=["fail", OUTAGE]), lambda e: e.through == ALL_ATTEMPTS)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: scripted_plans(["a"], kinds=[OUTAGE]),
            r"must name at least one of fail.*'outage'",
        ),
        (lambda: fault_kinds(kinds=["timeout", "hang"]), r"\['hang'\] is not a fault kind"),
        (lambda: scripted_faults(["a"], max_attempt=True), r"max_attempt=True\) must be >= 1"),
    ],
)
def test_strategies_explain_bad_shape_arguments(call: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call().example()


# --------------------------------------------------------------------------- on a full server


@pytest.fixture(scope="module")
def dev(dev_fault_harness: Any) -> faults.testing.FaultHarness:
    return dev_fault_harness(**TARGETS)


@pytest.mark.parametrize("through", [3, ALL_ATTEMPTS])
def test_an_outage_longer_than_the_retry_policy_fails_the_activity_for_good(
    dev: faults.testing.FaultHarness, through: int | str
) -> None:
    outcome = dev.run(
        ShapedWorkflow.run, 5.0, 3, plan=plan(ScriptedFault("shaped", 1, Fail(), through=through))
    )
    events = history(dev, outcome.workflow_id)
    assert last_started(events).attempt == 3
    (failed,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    failure = failed.activity_task_failed_event_attributes.failure
    assert failure.application_failure_info.type == faults.INJECTED_FAILURE_TYPE
    assert of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED)
    assert body_ran(outcome.workflow_id) == []
    assert [(i.kind, i.attempt) for i in outcome.injections] == [(("fail", n)) for n in (1, 2, 3)]


def test_an_outage_that_ends_before_the_retry_policy_does_lets_the_next_attempt_through(
    dev: faults.testing.FaultHarness,
) -> None:
    outcome = dev.run(
        ShapedWorkflow.run, 5.0, 3, plan=plan(ScriptedFault("shaped", 1, Fail(), through=2))
    )
    events = history(dev, outcome.workflow_id)
    started = last_started(events)
    assert started.attempt == 3
    assert started.last_failure.application_failure_info.type == faults.INJECTED_FAILURE_TYPE
    assert completed_result(events) == b"3"
    assert body_ran(outcome.workflow_id) == [3]


@pytest.mark.parametrize("threaded", [False, True])
def test_a_timeout_after_the_body_leaves_a_zombie_whose_completion_is_rejected(
    dev: faults.testing.FaultHarness, threaded: bool
) -> None:
    activity_name = "shaped_sync" if threaded else "shaped"
    outcome = dev.run(
        ShapedWorkflow.run,
        1.0,
        3,
        threaded,
        plan=plan(ScriptedFault(activity_name, 1, Timeout(body="before"))),
    )
    events = history(dev, outcome.workflow_id)
    started = last_started(events)
    assert started.attempt == 2
    timeout = started.last_failure.timeout_failure_info
    assert timeout.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    # The body ran in the timed-out attempt and again in the retry; only the retry's
    # completion made it into the history.
    assert body_ran(outcome.workflow_id) == [1, 2]
    assert completed_result(events) == b"2"
    assert [(i.kind, i.detail) for i in outcome.injections] == [("timeout", "timeout(body before)")]


def test_a_timeout_before_the_body_times_out_with_no_side_effect(
    dev: faults.testing.FaultHarness,
) -> None:
    outcome = dev.run(ShapedWorkflow.run, 1.0, 3, plan=plan(ScriptedFault("shaped", 1, Timeout())))
    events = history(dev, outcome.workflow_id)
    started = last_started(events)
    assert started.attempt == 2
    assert started.last_failure.timeout_failure_info.timeout_type == (
        TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    )
    assert body_ran(outcome.workflow_id) == [2]


def test_timeouts_on_every_attempt_end_in_the_servers_activity_timeout(
    dev: faults.testing.FaultHarness,
) -> None:
    outcome = dev.run(
        ShapedWorkflow.run,
        1.0,
        2,
        plan=plan(ScriptedFault("shaped", 1, Timeout(), through=ALL_ATTEMPTS)),
    )
    events = history(dev, outcome.workflow_id)
    (timed_out,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT)
    failure = timed_out.activity_task_timed_out_event_attributes.failure
    assert failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    assert last_started(events).attempt == 2
    assert of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED)
    assert body_ran(outcome.workflow_id) == []


def test_a_timeout_leaves_a_local_activity_alone(dev: faults.testing.FaultHarness) -> None:
    outcome = dev.run(
        LocalShapedWorkflow.run, plan=plan(ScriptedFault("shaped", 1, Timeout(body="before")))
    )
    assert outcome.injections == ()
    assert body_ran(outcome.workflow_id) == [1]
    assert (
        len(of_type(history(dev, outcome.workflow_id), EventType.EVENT_TYPE_MARKER_RECORDED)) == 1
    )


# ------------------------------------------------------------------ on the time-skipping server


@pytest.mark.parametrize("threaded", [False, True])
def test_a_long_timeout_on_the_time_skipping_server(fault_harness: Any, threaded: bool) -> None:
    """A 10 s start-to-close timeout: the server's clock skips to it (see the benchmark)."""
    harness = fault_harness(**TARGETS)
    activity_name = "shaped_sync" if threaded else "shaped"
    outcome = harness.run(
        ShapedWorkflow.run,
        10.0,
        3,
        threaded,
        plan=plan(ScriptedFault(activity_name, 1, Timeout(body="before"))),
    )
    events = history(harness, outcome.workflow_id)
    assert last_started(events).attempt == 2
    assert body_ran(outcome.workflow_id) == [1, 2]
    assert completed_result(events) == b"2"
    # The retry started after the timeout, on the server's clock.
    started = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)[0]
    scheduled = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)[0]
    waited = started.event_time.ToDatetime() - scheduled.event_time.ToDatetime()
    assert waited >= timedelta(seconds=10)


def test_held_attempts_leave_the_test_servers_clock_free(fault_harness: Any) -> None:
    """Eight timeouts at once hand their clock locks back and take them again in balance."""
    harness = fault_harness(**TARGETS)
    timed_out = plan(ScriptedFault("shaped", 1, Timeout()))
    outcomes = harness.run_many(ShapedWorkflow.run, [(10.0, 3)] * 8, plan=timed_out)
    for outcome in outcomes:
        assert [(i.kind, i.attempt) for i in outcome.injections] == [("timeout", 1)]
        assert body_ran(outcome.workflow_id) == [2]
    # A day-long sleep still skips: no lock was left behind.
    nap = harness.run(NapWorkflow.run, plan=ScriptedPlan())
    assert of_type(history(harness, nap.workflow_id), EventType.EVENT_TYPE_TIMER_FIRED)
