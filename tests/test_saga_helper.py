"""The generic Saga helper: order, parallelism, error reporting, at-most-once, pivot, cancel."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

import faults
import faults.testing
from patterns._sqlite import open_database, transaction
from patterns.saga import Saga, SagaCompensationError, SagaOptions

_SCHEMA = "CREATE TABLE IF NOT EXISTS calls (seq INTEGER PRIMARY KEY, run TEXT, label TEXT);"


class Recorder:
    """Activities that journal their label in SQLite and fail when told to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def labels(self, run: str) -> list[str]:
        conn = open_database(self.path, _SCHEMA)
        rows = conn.execute("SELECT label FROM calls WHERE run = ? ORDER BY seq", (run,))
        return [r[0] for r in rows]

    @activity.defn
    def record(self, run: str, label: str, fail: bool, seconds: float) -> None:
        time.sleep(seconds)
        with transaction(open_database(self.path, _SCHEMA)) as conn:
            conn.execute("INSERT INTO calls (run, label) VALUES (?, ?)", (run, label))
        if fail:
            raise ApplicationError(f"{label} refused", type="Refused", non_retryable=True)


@dataclass
class Script:
    steps: list[str]
    failing: list[str] = field(default_factory=list)
    """Labels (steps or compensations ``undo-<step>``) that fail."""
    parallel: bool = False
    continue_on_error: bool = True
    pivot_after: str = ""
    slow_step: str = ""
    compensate_twice: bool = False


@workflow.defn(sandboxed=False)
class ScriptedSaga:
    @workflow.run
    async def run(self, script: Script) -> list[str]:
        run = workflow.info().workflow_id
        saga = Saga(SagaOptions(script.parallel, script.continue_on_error))

        tries = iter(range(1, 100))

        def call(label: str, retried: bool = False) -> Any:
            return lambda: workflow.execute_activity_method(
                Recorder.record,
                args=[run, label, label in script.failing, 1.5 if label == script.slow_step else 0],
                activity_id=f"{label}-try{next(tries)}" if retried else None,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )

        try:
            for step in script.steps:
                undo = (f"undo-{step}", call(f"undo-{step}"))
                if step == script.pivot_after:
                    await saga.pivot(call(step), compensation=undo)
                elif saga.committed:
                    await saga.complete(call(step, retried=True))
                else:
                    await saga.step(call(step), compensation=undo)
        except (Exception, asyncio.CancelledError):
            if script.compensate_twice:
                await asyncio.gather(saga.compensate(), saga.compensate())
            report = await saga.compensate()
            return report.compensated
        return []


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return Recorder(tmp_path_factory.mktemp("saga-helper") / "calls.sqlite")


@pytest.fixture(scope="module")
def harness(fault_harness: Any, recorder: Recorder) -> faults.testing.FaultHarness:
    return fault_harness(workflows=[ScriptedSaga], activities=[recorder.record])


def test_compensations_run_last_in_first_out_including_the_failed_step(
    harness: Any, recorder: Recorder
) -> None:
    outcome = harness.run(ScriptedSaga.run, Script(["a", "b", "c"], failing=["c"]))
    assert outcome.result == ["undo-c", "undo-b", "undo-a"]
    assert recorder.labels(outcome.workflow_id) == ["a", "b", "c", "undo-c", "undo-b", "undo-a"]


def test_compensating_twice_runs_each_compensation_once(harness: Any, recorder: Recorder) -> None:
    script = Script(["a", "b"], failing=["b"], compensate_twice=True)
    outcome = harness.run(ScriptedSaga.run, script)
    assert recorder.labels(outcome.workflow_id) == ["a", "b", "undo-b", "undo-a"]


def failure_details(outcome: Any) -> list[tuple[str, str]]:
    cause = outcome.cause
    assert cause.type == "SagaCompensationError" and cause.non_retryable
    return [(d["name"], d["status"]) for d in cause.details]


def test_continue_on_error_runs_the_rest_and_reports_every_failure(
    harness: Any, recorder: Recorder
) -> None:
    script = Script(["a", "b", "c", "d"], failing=["d", "undo-c", "undo-a"])
    outcome = harness.run(ScriptedSaga.run, script)
    assert failure_details(outcome) == [("undo-c", "failed"), ("undo-a", "failed")]
    assert "undo-c failed (Refused: undo-c refused)" in str(outcome.cause)
    assert recorder.labels(outcome.workflow_id)[4:] == ["undo-d", "undo-c", "undo-b", "undo-a"]


def test_stop_on_error_reports_the_failure_and_what_was_skipped(
    harness: Any, recorder: Recorder
) -> None:
    script = Script(["a", "b", "c"], failing=["c", "undo-b"], continue_on_error=False)
    outcome = harness.run(ScriptedSaga.run, script)
    assert failure_details(outcome) == [("undo-b", "failed"), ("undo-a", "skipped")]
    assert recorder.labels(outcome.workflow_id)[3:] == ["undo-c", "undo-b"]


def test_parallel_compensation_runs_all_and_reports_all_failures(
    harness: Any, recorder: Recorder
) -> None:
    script = Script(["a", "b", "c"], failing=["c", "undo-a", "undo-b"], parallel=True)
    outcome = harness.run(ScriptedSaga.run, script)
    assert sorted(failure_details(outcome)) == [("undo-a", "failed"), ("undo-b", "failed")]
    assert sorted(recorder.labels(outcome.workflow_id)[3:]) == ["undo-a", "undo-b", "undo-c"]


def test_nothing_is_compensated_after_the_pivot_and_later_steps_are_retried(
    harness: Any, recorder: Recorder
) -> None:
    # Each execution of "c" has one attempt; the plan fails the first two executions.
    plan = faults.ScriptedPlan(
        tuple(faults.ScriptedFault("record", 1, faults.Fail(), key=f"c-try{n}") for n in (1, 2))
    )
    outcome = harness.run(ScriptedSaga.run, Script(["a", "b", "c"], pivot_after="b"), plan=plan)
    assert outcome.result == []
    assert [i.key for i in outcome.injections] == ["c-try1", "c-try2"]
    assert recorder.labels(outcome.workflow_id)[:2] == ["a", "b"]
    assert recorder.labels(outcome.workflow_id).count("c") == 1
    assert not any(label.startswith("undo") for label in recorder.labels(outcome.workflow_id))


def test_cancellation_compensates_before_the_workflow_ends(
    harness: Any, recorder: Recorder
) -> None:
    workflow_id = faults.testing.unique_id("saga-helper-cancel")

    async def cancel_during_b() -> BaseException | None:
        handle = await harness.client.start_workflow(
            ScriptedSaga.run,
            Script(["a", "b", "c"], slow_step="b"),
            id=workflow_id,
            task_queue=harness.task_queue,
        )
        while recorder.labels(workflow_id) != ["a"]:
            await asyncio.sleep(0.02)
        await handle.cancel()
        try:
            return await handle.result()
        except WorkflowFailureError as err:
            return err.cause

    result = harness.loop.run(cancel_during_b())
    assert result == ["undo-b", "undo-a"]  # this workflow returns its report on cancel
    harness.loop.run(asyncio.sleep(1.6))
    assert recorder.labels(workflow_id)[:3] == ["a", "undo-b", "undo-a"]
    harness.loop.run(harness.replay(workflow_id))


def test_options_are_validated_and_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match=r"SagaOptions.parallel_compensation='yes' must be"):
        SagaOptions(parallel_compensation="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"SagaOptions.completion_backoff=.* positive timedelta"):
        SagaOptions(completion_backoff=timedelta(0))
    saga = Saga()
    saga.add_compensation("undo", lambda: asyncio.sleep(0))
    with pytest.raises(Exception, match="'undo' is already registered"):
        saga.add_compensation("undo", lambda: asyncio.sleep(0))
    assert issubclass(SagaCompensationError, ApplicationError)
