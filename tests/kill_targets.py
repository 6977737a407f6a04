"""A workflow whose one activity the server-kill test holds open while it kills the server.

``held_step(gate)`` records that it started, then waits until the test opens its
gate. Killing the server while it waits kills it mid-run by construction: the
activity has started and cannot have finished, so its workflow is still running.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

STARTED: dict[str, int] = {}
"""How many attempts of each gate's activity have started (outside the sandbox)."""
GATES: dict[str, asyncio.Event] = {}
"""The gates the test opens, by name; created by the test before its workflow starts."""


@activity.defn
async def held_step(gate: str) -> str:
    """Wait until the test opens ``gate``; count each attempt's start."""
    STARTED[gate] = STARTED.get(gate, 0) + 1
    await GATES[gate].wait()
    return gate


@workflow.defn
class HeldWorkflow:
    """One activity held at a gate, between two timers."""

    @workflow.run
    async def run(self, gate: str) -> str:
        await workflow.sleep(timedelta(milliseconds=10))
        done = await workflow.execute_activity(
            held_step,
            gate,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=1)),
        )
        await workflow.sleep(timedelta(milliseconds=10))
        return done
