"""Workers obey only fault plans signed, for their workflow, with the key they share with clients.

Each refused plan is checked from two independent records: the worker's fault
log (no injection, one counted refusal) and the workflow's history (no failure
of an injected type, the activity's body ran once and completed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.worker import Worker

import faults
import faults.testing
from faults import Delay, Fail, FaultRule, RandomPlan, ScriptedFault, ScriptedPlan
from faults.testing import EventLoopThread, unique_id

from .fault_targets import ParentWorkflow, ProbeWorkflow, body_runs, probe

ROOT = Path(__file__).resolve().parents[1]

FAILING = ScriptedPlan((ScriptedFault("probe", 1, Fail(retryable=False)),))
"""Fails the first ``probe`` attempt for good: an obeyed plan shows in the history."""

INJECTED_TYPES = (
    faults.INJECTED_FAILURE_TYPE,
    faults.LOST_COMPLETION_TYPE,
    faults.INJECTED_TIMEOUT_TYPE,
)


def registration() -> dict[str, Any]:
    """What the ``python -m faults worker`` processes of these tests serve."""
    return {"workflows": [ProbeWorkflow, ParentWorkflow], "activities": [probe]}


@dataclass(frozen=True)
class Served:
    """A worker of this module: its task queue and its own fault log."""

    task_queue: str
    log: faults.FaultLog


@contextlib.contextmanager
def serve(
    loop: EventLoopThread, client: Client, plugin: faults.FaultPlugin, log: faults.FaultLog
) -> Iterator[Served]:
    queue = unique_id("trust")

    async def start() -> Worker:
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[ProbeWorkflow, ParentWorkflow],
            activities=[probe],
            plugins=[plugin],
        )
        await worker.__aenter__()
        return worker

    worker = loop.run(start())
    try:
        yield Served(queue, log)
    finally:
        loop.run(worker.__aexit__(None, None, None), timeout=60)


@pytest.fixture(scope="module")
def trusting(temporal_loop: EventLoopThread, temporal_client: Client) -> Iterator[Served]:
    """A worker holding the session's key (from ``FAULTS_PLAN_KEY``), with a log of its own."""
    log = faults.FaultLog()
    with serve(temporal_loop, temporal_client, faults.FaultPlugin(log=log), log) as served:
        yield served


class _Stamp(Interceptor):
    """A client interceptor that puts a given plan header on the workflows it starts."""

    def __init__(self, header: Payload) -> None:
        self.header = header

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        header = self.header

        class _Outbound(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
                input.headers = {**input.headers, faults.PLAN_HEADER: header}
                return await super().start_workflow(input)

        return _Outbound(next)


def run_with_header(
    loop: EventLoopThread, client: Client, served: Served, workflow_id: str, header: Payload
) -> None:
    """Run ``ProbeWorkflow`` with ``header`` as its plan, from a client without the plugin."""
    raw = Client(client.service_client, namespace=client.namespace, interceptors=[_Stamp(header)])

    async def run() -> None:
        handle = await raw.start_workflow(
            ProbeWorkflow.run, "x", id=workflow_id, task_queue=served.task_queue
        )
        try:
            await handle.result()
        except WorkflowFailureError:
            pass

    loop.run(run())


def run_signed(
    loop: EventLoopThread, client: Client, task_queue: str, workflow: Any, workflow_id: str
) -> None:
    """Run ``workflow`` under ``FAILING`` from ``client`` (which has the plugin and key)."""

    async def run() -> None:
        with faults.injecting(FAILING):
            handle = await client.start_workflow(
                workflow,
                args=[] if workflow is ParentWorkflow.run else ["x"],
                id=workflow_id,
                task_queue=task_queue,
            )
        try:
            await handle.result()
        except WorkflowFailureError:
            pass

    loop.run(run())


def events(loop: EventLoopThread, client: Client, workflow_id: str) -> list[Any]:
    async def fetch() -> list[Any]:
        return list((await client.get_workflow_handle(workflow_id).fetch_history()).events)

    return loop.run(fetch())


def injected_failure_types(history: list[Any]) -> set[str]:
    """The injected failure types anywhere in a history (failures, causes, last failures)."""
    return {t for event in history for t in INJECTED_TYPES if f'"{t}"' in str(event)}


def of_type(history: list[Any], event_type: int) -> list[Any]:
    return [e for e in history if e.event_type == event_type]


def started_header(history: list[Any]) -> Payload:
    started = history[0].workflow_execution_started_event_attributes
    return started.header.fields[faults.PLAN_HEADER]


def assert_ran_clean(history: list[Any], workflow_id: str) -> None:
    """The history of a run whose plan was not obeyed: one clean attempt, no injected failure."""
    assert injected_failure_types(history) == set()
    assert of_type(history, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED) == []
    assert len(of_type(history, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)) == 1
    assert body_runs(workflow_id, "probe") == 1


def session_key(client: Client) -> faults.PlanKey:
    key = faults.client_plan_key(client)
    assert key is not None, "the session's client signs plans"
    return key


# --------------------------------------------------------------------------- signed plans


def test_a_signed_plan_injects(
    temporal_loop: EventLoopThread, temporal_client: Client, trusting: Served
) -> None:
    workflow_id = unique_id("signed")
    run_signed(temporal_loop, temporal_client, trusting.task_queue, ProbeWorkflow.run, workflow_id)
    history = events(temporal_loop, temporal_client, workflow_id)
    assert injected_failure_types(history) == {faults.INJECTED_FAILURE_TYPE}
    assert [(i.kind, i.attempt) for i in trusting.log.for_workflow(workflow_id)] == [("fail", 1)]
    assert trusting.log.rejections(workflow_id) == []
    assert body_runs(workflow_id, "probe") == 0


def test_a_child_workflows_activities_get_the_parents_plan_signed_for_the_child(
    temporal_loop: EventLoopThread, temporal_client: Client, trusting: Served
) -> None:
    parent_id = unique_id("parent")
    child_id = f"{parent_id}-child"
    run_signed(temporal_loop, temporal_client, trusting.task_queue, ParentWorkflow.run, parent_id)
    child = events(temporal_loop, temporal_client, child_id)
    assert injected_failure_types(child) == {faults.INJECTED_FAILURE_TYPE}
    assert [(i.kind, i.activity) for i in trusting.log.for_workflow(child_id)] == [
        ("fail", "probe")
    ]
    assert trusting.log.rejections(parent_id) == trusting.log.rejections(child_id) == []
    # The child's header is the parent's plan, re-signed for the child's own id.
    parent_header = started_header(events(temporal_loop, temporal_client, parent_id))
    child_header = started_header(child)
    assert child_header.data == parent_header.data
    signature = child_header.metadata[faults.SIGNATURE_METADATA]
    key = session_key(temporal_client)
    assert key.verifies(child_id, child_header.data, signature)
    assert not key.verifies(parent_id, child_header.data, signature)


# --------------------------------------------------------------------------- refused plans


def refused(
    temporal_loop: EventLoopThread,
    temporal_client: Client,
    served: Served,
    header_for: Any,
    reason: str,
) -> None:
    workflow_id = unique_id("refused")
    before = served.log.rejection_counts()[reason]
    run_with_header(temporal_loop, temporal_client, served, workflow_id, header_for(workflow_id))
    assert_ran_clean(events(temporal_loop, temporal_client, workflow_id), workflow_id)
    assert served.log.for_workflow(workflow_id) == []
    assert [r.reason for r in served.log.rejections(workflow_id)] == [reason]
    assert served.log.rejection_counts()[reason] == before + 1


def test_an_unsigned_plan_is_ignored_and_counted(
    temporal_loop: EventLoopThread, temporal_client: Client, trusting: Served
) -> None:
    refused(
        temporal_loop, temporal_client, trusting, lambda _: faults.plan_header(FAILING), "unsigned"
    )


def test_a_plan_signed_with_another_key_is_ignored_and_counted(
    temporal_loop: EventLoopThread, temporal_client: Client, trusting: Served
) -> None:
    forger = faults.new_plan_key()
    refused(
        temporal_loop,
        temporal_client,
        trusting,
        lambda wid: faults.plan_header(FAILING, workflow_id=wid, key=forger),
        "bad signature",
    )


def test_a_signed_plan_replayed_onto_another_workflow_id_is_ignored_and_counted(
    temporal_loop: EventLoopThread, temporal_client: Client, trusting: Served
) -> None:
    """The plan header of a run that was faulted, copied from its history onto a new id."""
    original = unique_id("original")
    run_signed(temporal_loop, temporal_client, trusting.task_queue, ProbeWorkflow.run, original)
    copied = started_header(events(temporal_loop, temporal_client, original))
    assert injected_failure_types(events(temporal_loop, temporal_client, original))
    refused(temporal_loop, temporal_client, trusting, lambda _: copied, "bad signature")


def test_the_key_is_never_logged(
    temporal_loop: EventLoopThread,
    temporal_client: Client,
    trusting: Served,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="faults")
    forger = faults.new_plan_key()
    refused(
        temporal_loop,
        temporal_client,
        trusting,
        lambda wid: faults.plan_header(FAILING, workflow_id=wid, key=forger),
        "bad signature",
    )
    assert "ignored (bad signature)" in caplog.text
    secret = os.environ[faults.PLAN_KEY_VARIABLE]
    assert secret not in caplog.text and forger not in caplog.text
    assert secret not in repr(session_key(temporal_client)) and "hidden" in repr(
        faults.PlanKey(secret)
    )


def test_a_worker_without_a_key_ignores_header_plans_but_keeps_its_own(
    temporal_loop: EventLoopThread,
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its default plan (``probe`` fails for good) applies; a signed plan of no faults does not."""
    secret = os.environ[faults.PLAN_KEY_VARIABLE]
    monkeypatch.delenv(faults.PLAN_KEY_VARIABLE)
    caplog.set_level(logging.WARNING, logger="faults")
    log = faults.FaultLog()
    with serve(temporal_loop, temporal_client, faults.FaultPlugin(FAILING, log=log), log) as served:
        workflow_id = unique_id("keyless")
        header = faults.plan_header(ScriptedPlan(), workflow_id=workflow_id, key=secret)
        run_with_header(temporal_loop, temporal_client, served, workflow_id, header)
        history = events(temporal_loop, temporal_client, workflow_id)
        assert injected_failure_types(history) == {faults.INJECTED_FAILURE_TYPE}
        assert [r.reason for r in log.rejections(workflow_id)] == ["no key"]
        assert [i.kind for i in log.for_workflow(workflow_id)] == ["fail"]
    warned = [r.getMessage() for r in caplog.records if "has no plan key" in r.getMessage()]
    assert len(warned) == 1 and faults.PLAN_KEY_VARIABLE in warned[0]
    assert secret not in caplog.text


# --------------------------------------------------------------------------- bounds


def test_a_worker_refuses_header_plans_beyond_its_maximum_delay(
    temporal_loop: EventLoopThread, temporal_client: Client
) -> None:
    log = faults.FaultLog()
    plugin = faults.FaultPlugin(log=log, max_delay=0.5)
    slow = ScriptedPlan((ScriptedFault("probe", 1, Delay(2.0)),))
    workflow_id = unique_id("slow")

    async def run(task_queue: str) -> None:
        with faults.injecting(slow):
            await temporal_client.execute_workflow(
                ProbeWorkflow.run, "x", id=workflow_id, task_queue=task_queue
            )

    with serve(temporal_loop, temporal_client, plugin, log) as served:
        temporal_loop.run(run(served.task_queue))
    assert log.for_workflow(workflow_id) == []
    assert [r.reason for r in log.rejections(workflow_id)] == ["delay above maximum"]
    assert body_runs(workflow_id, "probe") == 1


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda s: Delay(s), "Delay.seconds"),
        (lambda s: FaultRule(delay=0.1, delay_seconds=s), "FaultRule.delay_seconds"),
        (lambda s: RandomPlan.parse(f"delay=0.1,delay_seconds={s}", seed=1), "delay_seconds"),
    ],
    ids=["delay", "rule", "parsed"],
)
def test_plans_refuse_delays_beyond_the_maximum_with_the_fix(build: Any, field: str) -> None:
    limit = faults.max_delay()
    assert limit == faults.DEFAULT_MAX_DELAY == 300
    with pytest.raises(faults.FaultPlanError, match=rf"{field}=301.* faults\.set_max_delay\(301"):
        build(301)
    previous = faults.set_max_delay(600)
    try:
        build(301)  # allowed now
    finally:
        faults.set_max_delay(previous)
    assert faults.max_delay() == limit
    with pytest.raises(faults.FaultPlanError, match=r"set_max_delay\(seconds=-1\) must be"):
        faults.set_max_delay(-1)


def test_a_plan_bound_to_a_short_key_or_no_workflow_is_refused_with_the_fix() -> None:
    with pytest.raises(faults.FaultPlanError, match="is 5 bytes; use at least 16"):
        faults.FaultPlugin(key="short")
    with pytest.raises(faults.FaultPlanError, match="pass workflow_id= too"):
        faults.plan_header(FAILING, key=faults.new_plan_key())


# --------------------------------------------------------------------------- worker processes


def spawn_worker(
    address: str, task_queue: str, log: Path, **env: str
) -> faults.testing.WorkerProcess:
    return faults.testing.start_worker_process(
        address,
        task_queue,
        "tests.test_plan_trust:registration",
        log=log,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), **env},
        output=log.with_suffix(".out"),
    )


@pytest.mark.parametrize("with_key", [True, False], ids=["key-from-environment", "no-key"])
def test_the_worker_command_reads_its_key_from_the_environment(
    temporal_loop: EventLoopThread, temporal_client: Client, tmp_path: Path, with_key: bool
) -> None:
    address = temporal_client.service_client.config.target_host
    queue = unique_id("trust-process")
    env = {} if with_key else {faults.PLAN_KEY_VARIABLE: ""}
    worker = spawn_worker(address, queue, tmp_path / "faults.jsonl", **env)
    workflow_id = unique_id("process")
    try:
        run_signed(temporal_loop, temporal_client, queue, ProbeWorkflow.run, workflow_id)
    finally:
        status = worker.stop(timeout=60)  # SIGTERM: a clean shutdown
    stderr = worker.tail(100_000)
    history = events(temporal_loop, temporal_client, workflow_id)
    injected = faults.FaultLog.load(tmp_path / "faults.jsonl")
    if with_key:
        assert injected_failure_types(history) == {faults.INJECTED_FAILURE_TYPE}
        assert [(i.workflow_id, i.kind) for i in injected] == [(workflow_id, "fail")]
        assert "has no plan key" not in stderr
    else:
        assert injected_failure_types(history) == set() and injected == []
        assert "has no plan key" in stderr and faults.PLAN_KEY_VARIABLE in stderr
    assert status == 0


# --------------------------------------------------------------------------- injecting()


def test_injecting_warns_when_no_start_in_its_block_carried_the_plan(
    temporal_loop: EventLoopThread, temporal_client: Client, trusting: Served
) -> None:
    bare = Client(temporal_client.service_client, namespace=temporal_client.namespace)

    async def start(client: Client) -> None:
        with faults.injecting(ScriptedPlan()):
            await client.start_workflow(
                ProbeWorkflow.run, "x", id=unique_id("warn"), task_queue=trusting.task_queue
            )

    with pytest.warns(faults.FaultLayerWarning, match=r"install|plugins=\[faults\.FaultPlugin"):
        temporal_loop.run(start(bare))
    with warnings.catch_warnings():
        warnings.simplefilter("error", faults.FaultLayerWarning)
        temporal_loop.run(start(temporal_client))  # the session's client carries it: no warning


def test_injecting_warns_when_the_plan_went_unsigned(
    temporal_loop: EventLoopThread,
    temporal_client: Client,
    trusting: Served,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(faults.PLAN_KEY_VARIABLE)
    keyless = Client(
        temporal_client.service_client,
        namespace=temporal_client.namespace,
        plugins=[faults.FaultPlugin()],
    )

    async def start() -> None:
        with faults.injecting(ScriptedPlan()):
            await keyless.start_workflow(
                ProbeWorkflow.run, "x", id=unique_id("unsigned"), task_queue=trusting.task_queue
            )

    with pytest.warns(faults.FaultLayerWarning, match="unsigned.*FAULTS_PLAN_KEY"):
        temporal_loop.run(start())


def test_the_pytest_plugin_shares_one_key_through_the_environment(
    temporal_client: Client,
) -> None:
    from faults.testing import pytest_plugin

    assert pytest_plugin.PLAN_KEY_VARIABLE == faults.PLAN_KEY_VARIABLE
    from_env = faults.PlanKey(os.environ[faults.PLAN_KEY_VARIABLE])
    assert from_env.sign("w", b"{}") == session_key(temporal_client).sign("w", b"{}")
