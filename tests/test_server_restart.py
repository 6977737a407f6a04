"""The dev server on a persisted database is killed and restarted mid-run; workflows finish.

Long workflows and order sagas are in flight when the server dies; after it restarts on
the same database every workflow finishes, every step ran at least once, and every
order's ledger balances.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

import faults
import faults.testing
from patterns.saga import (
    OrderActivities,
    OrderSaga,
    OrderServices,
    SagaSettings,
    make_catalog,
    make_order,
)

from .fault_targets import LongWorkflow, body_runs, slow_step
from .order_ledgers import assert_ledgers_balance, saga_outcomes

STEPS = 20
WORKFLOWS = 5
ORDERS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_workflows_survive_a_server_restart(tmp_path: Path) -> None:
    database = str(tmp_path / "temporal.db")
    port = free_port()
    services = OrderServices(tmp_path / "services.sqlite")
    catalog = make_catalog(3, 4, prefix="RESTART")
    initial = {p.sku: 1_000 for p in catalog}
    services.stock_products((p.sku, p.unit_price_cents, initial[p.sku]) for p in catalog)
    orders = [
        make_order(n, catalog, order_id=f"restart-{n}", declined=n % 3 == 1) for n in range(ORDERS)
    ]

    async def scenario() -> tuple[list[int], list[str | None], list[str], int]:
        server = await faults.testing.start_environment("dev", port=port, database_file=database)
        client = await Client.connect(f"127.0.0.1:{port}")
        ids = [faults.testing.unique_id("restart") for _ in range(WORKFLOWS)]
        with concurrent.futures.ThreadPoolExecutor(8) as executor:
            async with Worker(
                client,
                task_queue="restart",
                workflows=[LongWorkflow, OrderSaga],
                activities=[slow_step, *OrderActivities(services).activities()],
                activity_executor=executor,
            ):
                handles = [
                    await client.start_workflow(LongWorkflow.run, STEPS, id=i, task_queue="restart")
                    for i in ids
                ]
                sagas: list[Any] = [
                    await client.start_workflow(
                        OrderSaga.run,
                        args=[order, SagaSettings(step_attempts=10)],
                        id=faults.testing.unique_id(f"restart-{order.order_id}"),
                        task_queue="restart",
                    )
                    for order in orders
                ]
                while sum(body_runs(i, "slow_step") for i in ids) < WORKFLOWS:
                    await asyncio.sleep(0.05)  # wait for some progress, then kill mid-run
                await server.shutdown()  # the server process dies mid-run
                done_at_kill = sum(body_runs(i, "slow_step") for i in ids)
                await asyncio.sleep(0.5)
                restarted = await faults.testing.start_environment(
                    "dev", port=port, database_file=database
                )
                async with restarted:
                    results = await asyncio.wait_for(
                        asyncio.gather(*(h.result() for h in handles)), timeout=120
                    )
                    outcomes = await asyncio.wait_for(saga_outcomes(sagas), timeout=120)
        return results, outcomes, ids, done_at_kill

    with faults.testing.EventLoopThread() as loop:
        results, outcomes, ids, done_at_kill = loop.run(scenario(), timeout=300)
    assert 0 < done_at_kill < STEPS * WORKFLOWS, "the server must die mid-run"
    assert results == [sum(range(STEPS))] * WORKFLOWS
    for workflow_id in ids:
        # Every step completed; a step in flight at the crash may have run twice (at least once).
        assert STEPS <= body_runs(workflow_id, "slow_step") <= STEPS + 1
    assert_ledgers_balance(services, orders, outcomes, initial)
