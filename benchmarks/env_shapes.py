"""The workload shapes the environment benchmark runs, in a module of their own.

Each is a small workflow of a shape users run: start and await three activities,
timers, children that wait on signals, continue-as-new, a cancellation in the middle
of an activity, and a local activity whose first attempts fail. The sandbox
re-imports a workflow's module for every run, so this module holds workflows alone
and passes its other imports through.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from tests.fault_targets import probe

TIMER_SECONDS = 20.0
"""Each of :class:`TwoTimers`' two timers, in workflow time."""

CHILDREN = 3
"""Children :class:`SignalledChildren` starts and signals."""

CONTINUES = 5
"""Times :class:`ContinuesAsNew` continues as new before it completes."""

LOCAL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
"""The local activity's retry policy: a second, then two, before its third attempt."""


@workflow.defn
class TwoTimers:
    """Two timers of :data:`TIMER_SECONDS` in a row: 40 s of workflow time."""

    @workflow.run
    async def run(self) -> float:
        """Sleep twice; return the workflow time that passed."""
        started = workflow.now()
        await workflow.sleep(TIMER_SECONDS)
        await workflow.sleep(TIMER_SECONDS)
        return (workflow.now() - started).total_seconds()


@workflow.defn
class WaitsForSignal:
    """A child that runs one activity once its parent signals it to go."""

    def __init__(self) -> None:
        self._go = False

    @workflow.signal
    def go(self) -> None:
        """Let the child go on."""
        self._go = True

    @workflow.run
    async def run(self, label: str) -> int:
        """Wait for :meth:`go`, then run ``probe``."""
        await workflow.wait_condition(lambda: self._go)
        return await workflow.execute_activity(
            probe, label, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn
class SignalledChildren:
    """Starts :data:`CHILDREN` children that wait on a signal, signals them, awaits them."""

    @workflow.run
    async def run(self) -> int:
        """Start, signal and await the children; return the attempts they took."""
        me = workflow.info().workflow_id
        children = [
            await workflow.start_child_workflow(
                WaitsForSignal.run, f"{me}-{n}", id=f"{me}-child-{n}"
            )
            for n in range(CHILDREN)
        ]
        for child in children:
            await child.signal(WaitsForSignal.go)
        return sum(await asyncio.gather(*children))


@workflow.defn
class ContinuesAsNew:
    """Runs one activity, then continues as new, ``left`` more times."""

    @workflow.run
    async def run(self, left: int) -> int:
        """One ``probe``; continue as new with ``left - 1`` until none is left."""
        await workflow.execute_activity(
            probe,
            f"{workflow.info().workflow_id}-{left}",
            start_to_close_timeout=timedelta(seconds=10),
        )
        if left > 0:
            workflow.continue_as_new(left - 1)
        return left


@workflow.defn
class CancelledMidActivity:
    """Runs ``probe`` twice; a ``Cancel`` fault on the second (activity id ``second``)
    cancels the workflow there."""

    @workflow.run
    async def run(self) -> int:
        """Two ``probe`` steps (the benchmark's plan cancels the workflow in the second)."""
        me = workflow.info().workflow_id
        first = await workflow.execute_activity(
            probe, f"{me}-first", start_to_close_timeout=timedelta(seconds=10)
        )
        second = await workflow.execute_activity(
            probe,
            f"{me}-second",
            activity_id="second",
            start_to_close_timeout=timedelta(seconds=10),
        )
        return first + second


@workflow.defn
class LocalActivityRetried:
    """A local ``probe`` retried under :data:`LOCAL_RETRY` (the plan fails its first two).

    With ``on_timers``, its ``local_retry_threshold`` is zero: the SDK waits out each
    backoff on a workflow timer, which a time-skipping server skips, instead of sleeping
    in the worker (what it does for a backoff under the threshold, a minute by default).
    """

    @workflow.run
    async def run(self, on_timers: bool) -> int:
        """Run the local activity; return the attempt that succeeded."""
        return await workflow.execute_local_activity(
            probe,
            workflow.info().workflow_id,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LOCAL_RETRY,
            local_retry_threshold=timedelta(milliseconds=1) if on_timers else None,
        )
