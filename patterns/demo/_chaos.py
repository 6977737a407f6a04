"""``python -m patterns --chaos N --only saga``: many seeded schedules at once, on one worker.

A schedule is one seed: the four orders of :func:`~patterns.demo._saga.scenarios`
under ``RandomPlan.parse(spec, seed=seed)``, one after another. Schedules run
``concurrency`` at a time, all on one worker and one services database, each on
SKUs of its own, so they cannot disturb each other. The workflow ids
come from the seed alone, so a seed replays its faults exactly; the first
schedule whose invariants break stops the run with the command that reproduces it.
Invariant 9 (the ``stage`` claim) is checked for one schedule in ``STAGE_EVERY``.

The worker runs in ``worker_processes`` processes of its own on this machine
(``python -m faults worker --setup patterns.demo:saga_registration``), or in
this process if that is 0. A schedule's CPU is mostly the worker's (the SDK's
workflow activations and activity tasks); in a process of its own it has a core
to itself, and the orders' checks and the test server share the other. Each
process logs its injections to a JSON-lines file, whose counts are added to the
run's log at the end.

With ``external_workers`` the command starts no worker: worker processes
(the same command, with ``SAGA_CHAOS_DB`` naming this run's services database)
serve the task queue, on this machine or any machine that shares the database file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections import Counter
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
    worker_processes: int = 0,
    plan_key: str | None = None,
    log: faults.FaultLog | None = None,
    environment_config: bool = True,
) -> ChaosResult:
    """Run one schedule per seed, ``concurrency`` at a time; stop at the first violation.

    With ``worker_processes`` the worker runs in that many processes here; they verify
    plans with ``plan_key`` (the key ``client``'s fault plugin signs them with), and the
    injections they logged are added to ``log``. They connect to ``client``'s address with
    the Temporal environment configuration (TLS, API key), or, without
    ``environment_config``, as given (an embedded server).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency!r} must be >= 1")
    if worker_processes < 0:
        raise ValueError(f"worker_processes={worker_processes!r} must be >= 0")
    if worker_processes and not plan_key:
        raise ValueError(
            "worker_processes needs plan_key=, the key the client's FaultPlugin signs plans "
            "with: worker processes obey only plans signed with it"
        )
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

    processes: list[faults.testing.WorkerProcess] = []

    async def all_lanes() -> None:
        await asyncio.gather(*(lane() for _ in range(concurrency)))

    async def progress() -> None:
        while True:
            await asyncio.sleep(progress_seconds)
            for n, process in enumerate(processes, 1):
                if process.process.poll() is not None:  # its orders would wait forever
                    raise faults.testing.WorkerProcessError(
                        f"worker process {n} exited with status {process.process.returncode} "
                        f"during the run; its output ({process.output}) ends:\n{process.tail()}"
                    )
            elapsed = time.perf_counter() - started
            say(f"chaos: {held}/{len(seeds)} schedules held ({held / elapsed:.2f}/s)")

    fault_files = [workdir / f"worker-{n + 1}.faults.jsonl" for n in range(worker_processes)]
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(concurrent.futures.ThreadPoolExecutor(4 * concurrency))
        for fault_file in fault_files:
            process = await asyncio.to_thread(
                faults.testing.start_worker_process,
                client.service_client.config.target_host,
                CHAOS_TASK_QUEUE,
                "patterns.demo:saga_registration",
                namespace=client.namespace,
                log=fault_file,
                env={"SAGA_CHAOS_DB": str(services.path), faults.PLAN_KEY_VARIABLE: plan_key or ""},
                output=fault_file.with_suffix("").with_suffix(".log"),
                environment_config=environment_config,
            )
            processes.append(stack.enter_context(process))
        async with contextlib.AsyncExitStack() as workers:
            if not (external_workers or worker_processes):
                await workers.enter_async_context(
                    saga_worker(client, CHAOS_TASK_QUEUE, services, executor)
                )
            ticker = asyncio.create_task(progress())
            lanes = asyncio.create_task(all_lanes())
            try:
                await asyncio.wait({ticker, lanes}, return_when=asyncio.FIRST_COMPLETED)
                if ticker.done():
                    ticker.result()  # raises: a worker process ended
                await lanes
            finally:
                ticker.cancel()
                lanes.cancel()
    if log is not None:
        for fault_file in fault_files:
            log.add_counts(Counter((i.kind, i.activity) for i in faults.FaultLog.load(fault_file)))
    return ChaosResult(held, time.perf_counter() - started, violation)
