"""``python -m patterns --only saga --explore N``: each single-fault schedule, then pairs.

Systematic where ``--chaos`` is random: a fault-free run of one order gives the
activity calls an order makes; each call then gets each fault shape (a
failure, a duplicate, an outage that outlasts the retry policy, a timeout, a
worker restart, a cancellation, ...), in a fixed order, then pairs of them, up
to ``N`` runs (:func:`faults.testing.explore`). Every run is a fresh order on
SKUs of its own, checked with the saga invariants read from the services'
database and the workflow history. The first violation stops the search,
shrunk to the fewest faults that still break an invariant, with the line that
reproduces it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

import faults
import faults.testing

from ..saga import ALL_ACTIVITIES, Order, OrderSaga, OrderServices, SagaSettings
from ..saga._invariants import observe_run, order_on_own_skus, order_violations
from ._report import Say
from ._saga import saga_worker

EXPLORE_TASK_QUEUE = "saga-explore"
"""The task queue explored orders run on."""

PROGRESS_EVERY = 25
"""Schedules between two progress lines."""


def explore_saga(
    env: faults.testing.EnvironmentKind,
    *,
    budget: int,
    seed: int,
    workdir: Path,
    say: Say,
    key: str,
    address: str | None = None,
    namespace: str | None = None,
) -> faults.testing.Exploration:
    """Explore fault schedules of one saga order on a server of kind ``env``; return the report.

    ``key`` signs the plans (the worker started here verifies them with it).
    Orders are generated from ``seed`` (one per run, on fresh SKUs); the
    services' database is ``workdir/saga-explore.sqlite``.
    """
    log = faults.FaultLog()
    plugin = faults.FaultPlugin(log=log, strict=False, key=key)
    services = OrderServices(workdir / "saga-explore.sqlite")
    numbers = itertools.count(seed * 100_000)
    before: dict[str, dict[str, int]] = {}

    def fresh_order() -> list[Any]:
        n = next(numbers)
        order, stock = order_on_own_skus(services, n, order_id=f"explore-{n}", sku_prefix=f"E{n}-")
        before[order.order_id] = stock
        return [order, SagaSettings()]

    with (
        faults.testing.EventLoopThread("saga-explore") as loop,
        concurrent.futures.ThreadPoolExecutor(8) as executor,
    ):
        started = loop.run(
            faults.testing.start_environment(
                env, plugins=[plugin], address=address, namespace=namespace
            )
        )
        client = started.client
        harness = faults.testing.FaultHarness(
            client,
            EXPLORE_TASK_QUEUE,
            log,
            loop=loop,
            id_prefix="saga-explore",
            replay_workflows=[OrderSaga],
            activity_names=ALL_ACTIVITIES,
            queries=("stage",),
        )

        def check(outcome: faults.testing.RunOutcome[Any]) -> dict[str, Any]:
            order: Order = outcome.args[0]
            run = loop.run(observe_run(client, outcome.workflow_id, answers=outcome.answers))
            return order_violations(services, order, run, before.pop(order.order_id))

        begun = time.perf_counter()

        def progress(where: faults.testing.Progress) -> None:
            if where.violated or where.run % PROGRESS_EVERY == 0:
                rate = where.run / (time.perf_counter() - begun)
                say(f"{where.describe()} [{rate:.1f} schedules/s]")

        workers = contextlib.AsyncExitStack()

        async def start_worker() -> None:  # built on the loop it runs on
            worker = saga_worker(client, EXPLORE_TASK_QUEUE, services, executor)
            await workers.enter_async_context(worker)

        try:
            loop.run(start_worker())
            return faults.testing.explore(
                harness,
                OrderSaga.run,
                check=check,
                fresh_args=fresh_order,
                budget=budget,
                progress=progress,
            )
        finally:
            loop.run(workers.aclose())
            loop.run(harness.aclose())
            loop.run(started.shutdown())
