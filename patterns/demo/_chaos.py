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

The time-skipping test server slows with every run it serves (it never trims its
record of its clock's locks, and walks it as each timer fires): in one measured
run the rate fell from 3.2 to 1.1 schedules/s within 700 schedules, with the
server's process at 94 % of a core. With ``fresh_server`` the run therefore moves
to a fresh server, and fresh workers, every ``rotate_every`` schedules, once the
schedules in flight have ended.

With ``external_workers`` the command starts no worker: worker processes
(the same command, with ``SAGA_CHAOS_DB`` naming this run's services database)
serve the task queue, on this machine or any machine that shares the database file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import temporalio.client
from temporalio.testing import WorkflowEnvironment

import faults

from ..saga import OrderServices
from ._report import Say
from ._saga import OrderRun, report_of, run_order, saga_worker, scenarios

CHAOS_TASK_QUEUE = "saga-chaos"
"""The task queue chaos orders run on (what external worker processes poll)."""

DEFAULT_CONCURRENCY = 16
"""Schedules in flight at once."""

ROTATE_EVERY = 250
"""Schedules a chaos run serves from one time-skipping server before it starts a fresh one."""

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
    fresh_server: Callable[[], Awaitable[WorkflowEnvironment]] | None = None,
    rotate_every: int = ROTATE_EVERY,
) -> ChaosResult:
    """Run one schedule per seed, ``concurrency`` at a time; stop at the first violation.

    With ``worker_processes`` the worker runs in that many processes here; they verify
    plans with ``plan_key`` (the key ``client``'s fault plugin signs them with), and the
    injections they logged are added to ``log``. They connect to ``client``'s address with
    the Temporal environment configuration (TLS, API key), or, without
    ``environment_config``, as given (an embedded server).

    With ``fresh_server``, every ``rotate_every`` schedules the run moves to the server it
    starts (and shuts down after its schedules); ``client``'s serves the first ones.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency!r} must be >= 1")
    if worker_processes < 0:
        raise ValueError(f"worker_processes={worker_processes!r} must be >= 0")
    if rotate_every < 1:
        raise ValueError(f"rotate_every={rotate_every!r} must be >= 1")
    if worker_processes and not plan_key:
        raise ValueError(
            "worker_processes needs plan_key=, the key the client's FaultPlugin signs plans "
            "with: worker processes obey only plans signed with it"
        )
    run = _ChaosRun(
        seeds=seeds,
        plan_for=plan_for,
        services=OrderServices(workdir / "saga-chaos.sqlite"),
        say=say,
        concurrency=concurrency,
        progress_seconds=progress_seconds,
        fault_files=[workdir / f"worker-{n + 1}.faults.jsonl" for n in range(worker_processes)],
        plan_key=plan_key or "",
        environment_config=environment_config,
        in_process=not (external_workers or worker_processes),
    )
    step = rotate_every if fresh_server is not None else max(len(seeds), 1)
    with concurrent.futures.ThreadPoolExecutor(4 * concurrency) as executor:
        for start in range(0, len(seeds), step):
            if run.violation is not None:
                break
            segment = seeds[start : start + step]
            if start == 0 or fresh_server is None:
                await run.serve(client, segment, executor)
                continue
            say(f"chaos: a fresh server after {run.held} schedules")
            async with await fresh_server() as env:
                await run.serve(env.client, segment, executor)
    if log is not None:
        for fault_file in run.fault_files:
            log.add_counts(Counter((i.kind, i.activity) for i in faults.FaultLog.load(fault_file)))
    return ChaosResult(run.held, time.perf_counter() - run.started, run.violation)


@dataclass
class _ChaosRun:
    """A chaos run's settings and tally, and how it serves seeds from one server."""

    seeds: range
    plan_for: Callable[[int], faults.FaultPlan | None]
    services: OrderServices
    say: Say
    concurrency: int
    progress_seconds: float
    fault_files: list[Path]
    plan_key: str
    environment_config: bool
    in_process: bool
    held: int = 0
    violation: tuple[int, list[OrderRun]] | None = None
    started: float = dataclasses.field(default_factory=time.perf_counter)

    async def serve(
        self,
        client: temporalio.client.Client,
        seeds: range,
        executor: concurrent.futures.ThreadPoolExecutor,
    ) -> None:
        """Run ``seeds`` on ``client``'s server, with workers started for it and stopped after."""
        with contextlib.ExitStack() as stack:
            processes = [
                stack.enter_context(await self._start_process(client, fault_file))
                for fault_file in self.fault_files
            ]
            async with contextlib.AsyncExitStack() as workers:
                if self.in_process:
                    await workers.enter_async_context(
                        saga_worker(client, CHAOS_TASK_QUEUE, self.services, executor)
                    )
                pending = iter(seeds)
                lanes = asyncio.create_task(self._lanes(client, pending))
                watch = asyncio.create_task(self._watch(processes))
                try:
                    await asyncio.wait({watch, lanes}, return_when=asyncio.FIRST_COMPLETED)
                    if watch.done():
                        watch.result()  # raises: a worker process ended
                    await lanes
                finally:
                    watch.cancel()
                    lanes.cancel()

    async def _start_process(
        self, client: temporalio.client.Client, fault_file: Path
    ) -> faults.testing.WorkerProcess:
        return await asyncio.to_thread(
            faults.testing.start_worker_process,
            client.service_client.config.target_host,
            CHAOS_TASK_QUEUE,
            "patterns.demo:saga_registration",
            namespace=client.namespace,
            log=fault_file,
            env={
                "SAGA_CHAOS_DB": str(self.services.path),
                faults.PLAN_KEY_VARIABLE: self.plan_key,
            },
            output=fault_file.with_suffix("").with_suffix(".log"),
            environment_config=self.environment_config,
        )

    async def _lanes(self, client: temporalio.client.Client, pending: Iterator[int]) -> None:
        async def lane() -> None:
            for seed in pending:
                if self.violation is not None:
                    return
                await self._schedule(client, seed)

        await asyncio.gather(*(lane() for _ in range(self.concurrency)))

    async def _schedule(self, client: temporalio.client.Client, seed: int) -> None:
        plan = self.plan_for(seed)
        # One seed's orders share its SKUs, and each order's stock check reads them before
        # and after it runs: they run one after another. Seeds run at once.
        ask = seed % STAGE_EVERY == 0
        runs = [
            await run_order(
                client, CHAOS_TASK_QUEUE, self.services, label, order, plan, ask_stage=ask
            )
            for label, order in scenarios(seed, self.services)
        ]
        if report_of(runs).ok:
            self.held += 1
        elif self.violation is None or seed < self.violation[0]:
            self.violation = (seed, list(runs))

    async def _watch(self, processes: list[faults.testing.WorkerProcess]) -> None:
        """Say how far the run is, every ``progress_seconds``; raise if a worker process ended."""
        while True:
            await asyncio.sleep(self.progress_seconds)
            for n, process in enumerate(processes, 1):
                if process.process.poll() is not None:  # its orders would wait forever
                    raise faults.testing.WorkerProcessError(
                        f"worker process {n} exited with status {process.process.returncode} "
                        f"during the run; its output ({process.output}) ends:\n{process.tail()}"
                    )
            rate = self.held / (time.perf_counter() - self.started)
            self.say(f"chaos: {self.held}/{len(self.seeds)} schedules held ({rate:.2f}/s)")
