"""Workflow-safe APIs replay to the same decisions; a non-deterministic change is caught."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

import faults
import faults.testing
from patterns.determinism import QUOTE_ACTIVITIES, QuoteWorkflow, read_exchange_rate


@pytest.fixture(scope="module")
def harness(fault_harness: Any) -> faults.testing.FaultHarness:
    return fault_harness(workflows=[QuoteWorkflow], activities=QUOTE_ACTIVITIES)


def test_quote_is_fixed_by_its_history(harness: faults.testing.FaultHarness) -> None:
    """The run completes and the harness replays its history cleanly."""
    outcome = harness.run(QuoteWorkflow.run, "SKU-1", 3)
    quote = outcome.result
    assert quote is not None
    assert uuid.UUID(quote.quote_id).version == 4
    assert quote.discount_percent in (0, 5, 10)
    assert 1.03 <= quote.exchange_rate <= 1.07
    assert 1 <= quote.rate_changes <= 4
    assert outcome.replayed


def test_local_activity_results_come_from_the_history_on_replay(
    harness: faults.testing.FaultHarness,
) -> None:
    """Replaying twice gives the recorded rate, although the activity would answer anew."""
    outcome = harness.run(QuoteWorkflow.run, "SKU-2", 0)
    assert harness.loop is not None
    for _ in range(2):
        harness.loop.run(harness.replay(outcome.workflow_id))


@workflow.defn(name="QuoteWorkflow")
class ReorderedQuoteWorkflow:
    """A changed QuoteWorkflow: it now sleeps before reading the rate (different commands)."""

    @workflow.run
    async def run(self, sku: str, refreshes: int = 2) -> None:
        await workflow.sleep(timedelta(seconds=1))
        await workflow.execute_local_activity(
            read_exchange_rate, "EUR", start_to_close_timeout=timedelta(seconds=5)
        )


@workflow.defn(name="QuoteWorkflow")
class WallClockQuoteWorkflow:
    """A QuoteWorkflow that branches on a non-workflow-safe source (a fresh uuid)."""

    @workflow.run
    async def run(self, sku: str, refreshes: int = 2) -> None:
        for _ in range(refreshes + 1):
            if uuid.uuid4().int % 2:
                await workflow.sleep(timedelta(milliseconds=1))
            await workflow.execute_local_activity(
                read_exchange_rate, "EUR", start_to_close_timeout=timedelta(seconds=5)
            )


def replay(harness: faults.testing.FaultHarness, workflow_id: str, workflow_class: type) -> None:
    async def go() -> None:
        history = await harness.client.get_workflow_handle(workflow_id).fetch_history()
        replayer = Replayer(workflows=[workflow_class], workflow_runner=UnsandboxedWorkflowRunner())
        await replayer.replay_workflow(history)

    assert harness.loop is not None
    harness.loop.run(go())


def test_a_changed_command_sequence_is_caught_on_replay(
    harness: faults.testing.FaultHarness,
) -> None:
    outcome = harness.run(QuoteWorkflow.run, "SKU-3", 1)
    with pytest.raises(NondeterminismError):
        replay(harness, outcome.workflow_id, ReorderedQuoteWorkflow)


def test_branching_on_a_fresh_uuid_is_caught_on_replay(
    harness: faults.testing.FaultHarness,
) -> None:
    """40 reads, each preceded by a timer or not at random: replay disagrees (p = 1 - 2**-40)."""
    outcome = harness.run(QuoteWorkflow.run, "SKU-4", 39)
    with pytest.raises(NondeterminismError):
        replay(harness, outcome.workflow_id, WallClockQuoteWorkflow)


def test_replay_every_n_replays_one_run_in_n(harness: faults.testing.FaultHarness) -> None:
    """A harness replaying against changed code fails exactly the runs it samples."""
    sampling = faults.testing.FaultHarness(
        harness.client,
        harness.task_queue,
        harness.log,
        loop=harness.loop,
        replay_workflows=[ReorderedQuoteWorkflow],
        replay_every=3,
    )
    caught = []
    for n in range(7):
        try:
            outcome = sampling.run(QuoteWorkflow.run, f"SKU-{10 + n}", 0)
        except NondeterminismError:
            caught.append(n)
        else:
            assert outcome.succeeded and not outcome.replayed
    assert caught == [0, 3, 6]
    assert harness.loop is not None
    harness.loop.run(sampling.aclose())


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_replay_every_must_be_a_positive_int(
    harness: faults.testing.FaultHarness, bad: Any
) -> None:
    with pytest.raises(ValueError, match=r"replay_every=.* must be an int >= 1"):
        faults.testing.FaultHarness(
            harness.client, harness.task_queue, harness.log, replay_every=bad
        )


def test_the_sandbox_refuses_non_workflow_safe_calls(fault_harness: Any) -> None:
    """On a worker with the (default) sandbox, uuid.uuid4() in workflow code fails the task."""
    harness = fault_harness(workflows=[WallClockQuoteWorkflow], activities=QUOTE_ACTIVITIES)

    async def start() -> str:
        handle = await harness.client.start_workflow(
            "QuoteWorkflow",
            args=["SKU-5", 0],
            id=faults.testing.unique_id("sandbox"),
            task_queue=harness.task_queue,
            execution_timeout=timedelta(seconds=2),
        )
        try:
            await handle.result()
        except WorkflowFailureError:
            pass
        history = await handle.fetch_history()
        return history.to_json()

    assert harness.loop is not None
    assert "RestrictedWorkflowAccessError" in harness.loop.run(start(), timeout=60)
