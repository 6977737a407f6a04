"""The fault layer on a shared server: determinism, isolation, multi-worker plans, strategies."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from hypothesis import find, given
from hypothesis.errors import InvalidArgument
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Worker,
)

import faults
import faults.testing
from faults import (
    Delay,
    Duplicate,
    Fail,
    FaultRule,
    RandomPlan,
    ScriptedFault,
    ScriptedPlan,
    key_header,
    plan_header,
)
from faults.strategies import fault_kinds, random_plans, scripted_plans

from .fault_targets import (
    ChainWorkflow,
    FanWorkflow,
    ParentWorkflow,
    ProbeWorkflow,
    RemoteProbeWorkflow,
    RepeatWorkflow,
    UpdateProbeWorkflow,
    heartbeating,
    probe,
)


@pytest.fixture(scope="module")
def harness(fault_harness: Any) -> faults.testing.FaultHarness:
    return fault_harness(workflows=[FanWorkflow, ProbeWorkflow], activities=[probe])


def signature(injections: list[faults.Injection]) -> list[tuple[str, str, int, str]]:
    return sorted((i.activity, i.key, i.attempt, i.detail) for i in injections)


def test_same_plan_injects_the_same_faults_whatever_the_concurrency(
    harness: faults.testing.FaultHarness,
) -> None:
    plan = RandomPlan.parse("fail=0.2,duplicate=0.1,delay=0.1,delay_seconds=0.005", seed=2024)
    # The workflow id (and so every draw) is new each session: with 120 activities a kind
    # of probability 0.1 is missing from a run with probability 0.9**120, about 3e-6.
    items = 120
    workflow_id = faults.testing.unique_id("determinism")
    runs = []
    # Concurrency and scheduling order change (last item first in the second run).
    for concurrency, reverse in ((1, False), (16, True), (40, False)):
        before = len(harness.log.for_workflow(workflow_id))
        outcome = harness.run(
            FanWorkflow.run, items, concurrency, reverse, plan=plan, id=workflow_id
        )
        assert outcome.succeeded
        runs.append(signature(harness.log.for_workflow(workflow_id)[before:]))
    assert runs[0], f"the plan should inject something on {items} activities"
    assert runs[0] == runs[1] == runs[2]
    assert {kind for _, _, _, kind in runs[0]} >= {"fail", "duplicate"}


def test_one_worker_serves_concurrent_workflows_with_different_plans(
    harness: faults.testing.FaultHarness,
) -> None:
    plans = [
        ScriptedPlan(tuple(ScriptedFault("probe", n, Fail()) for n in range(1, k + 1)))
        for k in range(5)
    ]

    async def all_at_once() -> list[faults.testing.RunOutcome[int]]:
        return list(
            await asyncio.gather(*(harness.execute(ProbeWorkflow.run, "x", plan=p) for p in plans))
        )

    assert harness.loop is not None
    outcomes = harness.loop.run(all_at_once())
    for k, outcome in enumerate(outcomes):
        assert outcome.result == k + 1
        assert [i.attempt for i in outcome.injections] == list(range(1, k + 1))


def test_run_many_runs_each_plan_with_a_bounded_number_in_flight(
    harness: faults.testing.FaultHarness,
) -> None:
    plans = [
        ScriptedPlan(tuple(ScriptedFault("probe", n, Fail()) for n in range(1, k + 1)))
        for k in (3, 0, 2, 1, 4, 0)
    ]
    outcomes = harness.run_many(ProbeWorkflow.run, [["x"]] * len(plans), plans=plans, concurrency=2)
    assert [o.result for o in outcomes] == [4, 1, 3, 2, 5, 1]
    assert [len(o.injections) for o in outcomes] == [3, 0, 2, 1, 4, 0]
    assert len({o.workflow_id for o in outcomes}) == len(plans)


def test_run_many_refuses_mismatched_plans_before_starting_anything(
    harness: faults.testing.FaultHarness,
) -> None:
    failing = ScriptedPlan((ScriptedFault("probe", 1, Fail()),))
    before = len(harness.log)
    with pytest.raises(ValueError, match=r"2 plans for 3 runs; give one plan per entry"):
        harness.run_many(ProbeWorkflow.run, [["x"]] * 3, plans=[failing] * 2)
    with pytest.raises(ValueError, match=r"concurrency=0\) must be None or >= 1"):
        harness.run_many(ProbeWorkflow.run, [["x"]], plan=failing, concurrency=0)
    assert len(harness.log) == before  # a run that started would have logged its fault


def test_plan_follows_its_workflow_to_another_worker(
    temporal_loop: faults.testing.EventLoopThread, temporal_client: Any, fault_worker: Any
) -> None:
    """Workflows on one worker, activities on another with its own plugin and log."""
    workflow_queue = fault_worker(workflows=[RemoteProbeWorkflow])
    activity_queue = faults.testing.unique_id("remote-activities")
    remote_log = faults.FaultLog()
    plan = ScriptedPlan((ScriptedFault("probe", 1, Duplicate()), ScriptedFault("probe", 2, Fail())))
    workflow_id = faults.testing.unique_id("remote")

    async def scenario() -> int:
        async with Worker(
            temporal_client,
            task_queue=activity_queue,
            activities=[probe],
            plugins=[faults.FaultPlugin(log=remote_log)],
        ):
            with faults.injecting(plan):
                return await temporal_client.execute_workflow(
                    RemoteProbeWorkflow.run,
                    activity_queue,
                    id=workflow_id,
                    task_queue=workflow_queue,
                )

    assert temporal_loop.run(scenario()) == 3
    assert [(i.kind, i.attempt) for i in remote_log.for_workflow(workflow_id)] == [
        ("duplicate", 1),
        ("fail", 2),
    ]


def test_worker_default_plan_is_validated_when_the_worker_is_built(temporal_client: Any) -> None:
    plan = ScriptedPlan((ScriptedFault("prob", 1, Fail()),))
    with pytest.raises(faults.FaultPlanError, match="'prob' matches no activity"):
        Worker(
            temporal_client,
            task_queue="never-started",
            activities=[probe],
            plugins=[faults.FaultPlugin(plan)],
        )


@pytest.mark.parametrize(
    ("own_plan", "result", "kinds"),
    [(None, 2, ["fail"]), (ScriptedPlan(), 1, [])],
    ids=["workflow-without-a-plan", "workflow-with-an-empty-plan"],
)
def test_worker_default_plan_applies_only_to_workflows_without_a_plan(
    temporal_loop: faults.testing.EventLoopThread,
    temporal_client: Any,
    own_plan: ScriptedPlan | None,
    result: int,
    kinds: list[str],
) -> None:
    """A workflow's own plan, even an empty one, overrides the worker's default plan."""
    log = faults.FaultLog()
    queue = faults.testing.unique_id("default-plan")
    plan = ScriptedPlan((ScriptedFault("probe", 1, Fail()),))

    async def scenario() -> int:
        async with Worker(
            temporal_client,
            task_queue=queue,
            workflows=[ProbeWorkflow],
            activities=[probe],
            plugins=[faults.FaultPlugin(plan, log=log)],
        ):
            with faults.injecting(own_plan):
                return await temporal_client.execute_workflow(
                    ProbeWorkflow.run, "x", id=faults.testing.unique_id("default"), task_queue=queue
                )

    assert temporal_loop.run(scenario()) == result
    assert [i.kind for i in log] == kinds


def test_log_file_collects_injections_for_other_processes(tmp_path: Any) -> None:
    path = tmp_path / "faults.jsonl"
    log = faults.FaultLog(path)
    injection = faults.Injection("fail", "fail", "wf", "probe", "k", 1, at=1.0)
    log.record(injection)
    assert faults.FaultLog.load(path) == [injection]
    assert "fail            probe" in log.summary()


def test_scripted_plans_shrink_to_the_simplest_fault() -> None:
    minimal = find(
        scripted_plans(["charge", "refund"]),
        lambda p: any(isinstance(e.fault, Duplicate) for e in p.faults),
    )
    assert minimal == ScriptedPlan((ScriptedFault("charge", 1, Duplicate()),))
    slowest = find(scripted_plans(["charge"], kinds=["delay"]), lambda p: len(p.faults) > 0)
    assert slowest == ScriptedPlan((ScriptedFault("charge", 1, Delay(0.0)),))


def test_scripted_plans_draw_at_most_one_fault_per_activity_attempt() -> None:
    big = find(
        scripted_plans(["a"], max_attempt=2, max_faults=5),
        lambda p: len(p.faults) >= 2,
    )
    assert sorted(e.attempt for e in big.faults) == [1, 2]


@given(random_plans(["a", "b"], max_probability=0.3))
def test_random_plans_respect_their_bounds(plan: RandomPlan) -> None:
    assert [r.activity for r in plan.rules] == ["a", "b"]
    for rule in plan.rules:
        assert rule.fail + rule.delay + rule.duplicate <= 0.3 + 1e-9


def test_plan_follows_continue_as_new_and_child_workflows(fault_harness: Any) -> None:
    harness = fault_harness(
        workflows=[ChainWorkflow, ParentWorkflow, ProbeWorkflow], activities=[probe]
    )
    plan = ScriptedPlan((ScriptedFault("probe", 1, Fail()),))
    chained = harness.run(ChainWorkflow.run, 2, plan=plan)
    assert chained.result == 2
    assert [(i.kind, i.activity, i.attempt) for i in chained.injections] == [("fail", "probe", 1)]
    parent = harness.run(ParentWorkflow.run, plan=plan)
    assert parent.result == 2
    [injection] = parent.injections
    assert injection.workflow_id == f"{parent.workflow_id}-child"


def scheduled_headers(harness: faults.testing.FaultHarness, workflow_id: str) -> list[set[str]]:
    """The header names of each activity the workflow scheduled, from its history."""
    history = harness.loop.run(harness.client.get_workflow_handle(workflow_id).fetch_history())
    return [
        set(event.activity_task_scheduled_event_attributes.header.fields)
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


PLAN, KEY = faults.PLAN_HEADER, faults.KEY_HEADER


@pytest.mark.parametrize(
    ("plan", "headers"),
    [
        (None, {KEY}),
        (ScriptedPlan(), {PLAN}),
        (ScriptedPlan((ScriptedFault("heart*", 1, Fail()),)), {PLAN}),
        (RandomPlan(seed=3), {PLAN}),
        # Plans that may fault probe but never do here (attempt 9; no heartbeat timeout).
        (ScriptedPlan((ScriptedFault("pro*", 9, Fail()),)), {PLAN, KEY}),
        (RandomPlan(seed=3, rules=(FaultRule("probe", heartbeat_loss=0.5),)), {PLAN, KEY}),
    ],
    ids=["no-plan", "empty", "other-activity", "no-rules", "scripted-probe", "random-probe"],
)
def test_calls_the_plan_cannot_fault_carry_no_key(
    fault_harness: Any, plan: faults.FaultPlan | None, headers: set[str]
) -> None:
    """Only calls the plan may fault are keyed; without a plan every call is (a worker default
    plan may apply). The plan header always follows, so an empty plan still overrides a default.
    """
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe, heartbeating])
    outcome = harness.run(ProbeWorkflow.run, "x", plan=plan)
    assert outcome.result == 1 and not outcome.injections
    assert scheduled_headers(harness, outcome.workflow_id) == [headers]


class _Body(ActivityInboundInterceptor):
    """The end of an activity chain: records the call instead of running an activity."""

    def __init__(self) -> None:
        self.calls = 0

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        pass

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self.calls += 1
        return 1


def test_a_call_with_the_plan_but_no_key_goes_straight_to_its_body() -> None:
    """The workflow's side keys only the calls its plan may fault, so a call carrying the
    plan header and no key runs untouched: no decision, no injection, not even its info read
    (there is no activity context here). Keyed, the same call is decided, which needs one."""
    plan = ScriptedPlan((ScriptedFault("probe", 1, Fail()),))  # faults probe, if asked
    header, key = plan_header(plan), key_header("probe:k#1")
    log = faults.FaultLog()
    for headers in ({PLAN: header}, {PLAN: header, KEY: key}):
        body = _Body()
        chain = faults.FaultWorkerInterceptor(log).intercept_activity(body)
        chain.init(ActivityOutboundInterceptor(cast(ActivityOutboundInterceptor, None)))
        call = chain.execute_activity(ExecuteActivityInput(probe, [], None, headers))
        if KEY in headers:
            with pytest.raises(RuntimeError, match="Not in activity context"):
                asyncio.run(call)
        else:
            assert asyncio.run(call) == 1 and body.calls == 1
    assert not list(log)


def test_identical_calls_get_distinct_keys(
    harness: faults.testing.FaultHarness, fault_harness: Any
) -> None:
    repeat = fault_harness(workflows=[RepeatWorkflow], activities=[probe])
    plan = ScriptedPlan((ScriptedFault("probe", 1, Fail(), key="*#2"),))
    outcome = repeat.run(RepeatWorkflow.run, plan=plan)
    assert outcome.result == [1, 2, 1]
    assert [i.key.rsplit("#", 1)[1] for i in outcome.injections] == ["2"]


def test_plan_follows_update_with_start(
    temporal_loop: faults.testing.EventLoopThread, dev_fault_harness: Any
) -> None:
    harness = dev_fault_harness(workflows=[UpdateProbeWorkflow], activities=[probe])
    plan = ScriptedPlan((ScriptedFault("probe", 1, Duplicate()),))
    workflow_id = faults.testing.unique_id("update-with-start")

    async def scenario() -> int:
        from temporalio.client import WithStartWorkflowOperation
        from temporalio.common import WorkflowIDConflictPolicy

        start = WithStartWorkflowOperation(
            UpdateProbeWorkflow.run,
            id=workflow_id,
            task_queue=harness.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        with faults.injecting(plan):
            result: int = await harness.client.execute_update_with_start_workflow(
                UpdateProbeWorkflow.probe_now, start_workflow_operation=start
            )
        return result

    assert temporal_loop.run(scenario()) == 2
    assert [(i.kind, i.attempt) for i in harness.log.for_workflow(workflow_id)] == [
        ("duplicate", 1)
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: scripted_plans([]), r"needs at least one non-empty activity name"),
        (lambda: scripted_plans("charge"), r"wants a list of names; pass \['charge'\]"),
        (lambda: scripted_plans(["a"], kinds=["explode"]), r"'explode'\] is not a fault kind"),
        (lambda: fault_kinds(max_delay=-1), r"max_delay=-1\) must be >= 0"),
        (lambda: scripted_plans(["a"], max_attempt=0), r"max_attempt=0\) must be >= 1"),
    ],
)
def test_strategies_explain_bad_arguments(call: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call().example()
