"""Small workflows and activities that the fault layer's tests inject faults into."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

BODY_RUNS: Counter[str] = Counter()
"""How many times each activity body ran to its end, by ``workflow_id/key``."""
_lock = threading.Lock()


def _count() -> None:
    info = activity.info()
    with _lock:
        BODY_RUNS[f"{info.workflow_id}/{info.activity_type}"] += 1


def body_runs(workflow_id: str, activity_name: str) -> int:
    """How many times ``activity_name`` of ``workflow_id`` ran its body to the end."""
    with _lock:
        return BODY_RUNS[f"{workflow_id}/{activity_name}"]


@activity.defn
async def probe(label: str) -> int:
    """Counts its body run and returns the attempt that ran it."""
    _count()
    return activity.info().attempt


@activity.defn
async def heartbeating(seconds: float) -> int:
    """Heartbeats every 50 ms for ``seconds`` (a tenth of that on retries)."""
    if activity.info().attempt > 1:
        seconds /= 10
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        activity.heartbeat()
        await asyncio.sleep(0.05)
    _count()
    return activity.info().attempt


@activity.defn
def sync_probe(label: str) -> int:
    """A synchronous (threaded) activity."""
    _count()
    return activity.info().attempt


RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=5)


@workflow.defn
class ProbeWorkflow:
    """Runs one ``probe`` with a 1 s start-to-close timeout and up to 5 attempts."""

    @workflow.run
    async def run(self, label: str) -> int:
        return await workflow.execute_activity(
            probe, label, start_to_close_timeout=timedelta(seconds=1), retry_policy=RETRY
        )


@workflow.defn
class SyncProbeWorkflow:
    """Runs one threaded ``sync_probe``."""

    @workflow.run
    async def run(self, label: str) -> int:
        return await workflow.execute_activity(
            sync_probe, label, start_to_close_timeout=timedelta(seconds=5), retry_policy=RETRY
        )


@workflow.defn
class HeartbeatWorkflow:
    """Runs one heartbeating activity with a 1 s heartbeat timeout."""

    @workflow.run
    async def run(self, seconds: float) -> int:
        return await workflow.execute_activity(
            heartbeating,
            seconds,
            start_to_close_timeout=timedelta(seconds=10),
            heartbeat_timeout=timedelta(seconds=1),
            retry_policy=RETRY,
        )


@workflow.defn
class FanWorkflow:
    """Runs ``probe`` on ``count`` items, ``concurrency`` at a time, optionally last first.

    ``timeout`` is each call's start-to-close timeout in seconds: a worker that takes a
    thousand calls at once may start some bodies seconds after it took them.
    """

    @workflow.run
    async def run(
        self, count: int, concurrency: int, reverse: bool = False, timeout: float = 5.0
    ) -> list[int]:
        gate = asyncio.Semaphore(concurrency)
        order = range(count - 1, -1, -1) if reverse else range(count)

        async def one(i: int) -> int:
            async with gate:
                return await workflow.execute_activity(
                    probe,
                    f"item-{i}",
                    start_to_close_timeout=timedelta(seconds=timeout),
                    retry_policy=RETRY,
                )

        return list(await asyncio.gather(*(one(i) for i in order)))


@workflow.defn
class RemoteProbeWorkflow:
    """Runs ``probe`` on another task queue (served by another worker)."""

    @workflow.run
    async def run(self, task_queue: str) -> int:
        return await workflow.execute_activity(
            "probe",
            "remote",
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RETRY,
            result_type=int,
        )


@activity.defn
async def slow_step(step: int) -> int:
    """One step of a long workflow: 50 ms of work, counted."""
    await asyncio.sleep(0.05)
    _count()
    return step


@workflow.defn
class LongWorkflow:
    """``steps`` sequential activities: long enough to survive a server restart mid-run."""

    @workflow.run
    async def run(self, steps: int) -> int:
        total = 0
        for step in range(steps):
            total += await workflow.execute_activity(
                slow_step,
                step,
                activity_id=f"step-{step}",
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=1)),
            )
        return total


@workflow.defn
class ChainWorkflow:
    """Continues as new ``hops`` times, then runs ``probe``."""

    @workflow.run
    async def run(self, hops: int) -> int:
        if hops > 0:
            workflow.continue_as_new(hops - 1)
        return await workflow.execute_activity(
            probe, "chain", start_to_close_timeout=timedelta(seconds=5), retry_policy=RETRY
        )


@workflow.defn
class ParentWorkflow:
    """Runs a :class:`ProbeWorkflow` as a child workflow."""

    @workflow.run
    async def run(self) -> int:
        return await workflow.execute_child_workflow(
            ProbeWorkflow.run, "child", id=f"{workflow.info().workflow_id}-child"
        )


@workflow.defn
class RepeatWorkflow:
    """Calls ``probe`` with the same argument three times in a row."""

    @workflow.run
    async def run(self) -> list[int]:
        return [
            await workflow.execute_activity(
                probe, "same", start_to_close_timeout=timedelta(seconds=5), retry_policy=RETRY
            )
            for _ in range(3)
        ]


@workflow.defn
class UpdateProbeWorkflow:
    """Runs ``probe`` from an update handler, then waits to be told it is done."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done and workflow.all_handlers_finished())

    @workflow.update
    async def probe_now(self) -> int:
        self.done = True
        return await workflow.execute_activity(
            probe, "update", start_to_close_timeout=timedelta(seconds=5), retry_policy=RETRY
        )
