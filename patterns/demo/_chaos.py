"""``python -m patterns --chaos N --only saga``: many seeded schedules at once, on one worker.

A schedule is one seed: the four orders of :func:`~patterns.demo._saga.scenarios`
under ``RandomPlan.parse(spec, seed=seed)``, one after another. Schedules run
``concurrency`` at a time, all on one worker and one services database, each on
SKUs of its own, so they cannot disturb each other. The workflow ids
come from the seed alone, so a seed replays its faults exactly; the first
schedule whose invariants break stops the run with the command that reproduces it.
Invariant 9 (the ``stage`` claim) is checked for one schedule in ``STAGE_EVERY``.

With ``external_workers`` the command starts no worker: worker processes
(``python -m faults worker --setup patterns.demo:saga_registration``, with
``SAGA_CHAOS_DB`` naming this run's services database) serve the task queue,
on this machine or any machine that shares the database file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import temporalio.client

import faults

from ..saga import OrderServices
from ._report import Say
from ._saga import OrderRun, report_of, run_order, saga_worker, scenarios

CHAOS_TASK_QUEUE = "saga-chaos"
"""The task queue chaos orders run on (what external worker processes poll)."""

DEFAULT_CONCURRENCY = 16
"""Schedules in flight at once."""

STAGE_EVERY = 10
"""The orders of one schedule in this many (the seeds divisible by it) are asked their
``stage`` claim (invariant 9): a worker answers by replaying the order, which would cost
a third of the run's throughput if every order were asked. The demonstration and the
simulations ask every order."""


@dataclass(frozen=True)
class ChaosResult:
    """How a chaos run ended: schedules that held, and the first that did not (if any)."""

    held: int
    seconds: float
    violation: tuple[int, list[OrderRun]] | None = None


async def saga_chaos(
    client: temporalio.client.Client,
    *,
    seeds: range,
    plan_for: Callable[[int], faults.FaultPlan | None],
    workdir: Path,
    say: Say,
    concurrency: int = DEFAULT_CONCURRENCY,
    external_workers: bool = False,
    progress_seconds: float = 2.0,
) -> ChaosResult:
    """Run one schedule per seed, ``concurrency`` at a time; stop at the first violation."""
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency!r} must be >= 1")
    services = OrderServices(workdir / "saga-chaos.sqlite")
    started = time.perf_counter()
    held = 0
    violation: tuple[int, list[OrderRun]] | None = None
    pending = iter(seeds)

    async def schedule(seed: int) -> None:
        nonlocal held, violation
        plan = plan_for(seed)
        # One seed's orders share its SKUs, and each order's stock check reads them before
        # and after it runs: they run one after another. Seeds run at once.
        ask = seed % STAGE_EVERY == 0
        runs = [
            await run_order(client, CHAOS_TASK_QUEUE, services, label, order, plan, ask_stage=ask)
            for label, order in scenarios(seed, services)
        ]
        if report_of(runs).ok:
            held += 1
        elif violation is None or seed < violation[0]:
            violation = (seed, list(runs))

    async def lane() -> None:
        for seed in pending:
            if violation is not None:
                return
            await schedule(seed)

    async def progress() -> None:
        while True:
            await asyncio.sleep(progress_seconds)
            elapsed = time.perf_counter() - started
            say(f"chaos: {held}/{len(seeds)} schedules held ({held / elapsed:.2f}/s)")

    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(concurrent.futures.ThreadPoolExecutor(4 * concurrency))
        async with contextlib.AsyncExitStack() as workers:
            if not external_workers:
                await workers.enter_async_context(
                    saga_worker(client, CHAOS_TASK_QUEUE, services, executor)
                )
            ticker = asyncio.create_task(progress())
            try:
                await asyncio.gather(*(lane() for _ in range(concurrency)))
            finally:
                ticker.cancel()
    return ChaosResult(held, time.perf_counter() - started, violation)
