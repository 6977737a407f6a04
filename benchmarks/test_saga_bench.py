"""Order sagas per second: 100 concurrent sagas on the dev server, without and with faults."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError

import faults
from patterns.saga import (
    OrderActivities,
    OrderSaga,
    OrderServices,
    SagaSettings,
    make_catalog,
    make_order,
)

CONCURRENT = 100
ROUNDS = 3


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> OrderServices:
    return OrderServices(tmp_path_factory.mktemp("saga-bench") / "services.sqlite")


@pytest.fixture(scope="module")
def harness(dev_fault_harness: Any, services: OrderServices) -> faults.FaultHarness:
    return dev_fault_harness(
        workflows=[OrderSaga],
        activities=OrderActivities(services).activities(),
        max_concurrent_activities=200,
    )


def batch(
    harness: faults.FaultHarness, services: OrderServices, plan: faults.FaultPlan | None, seed: int
) -> Any:
    catalog = make_catalog(seed, 20, prefix=faults.unique_id("bench"))
    services.stock_products((p.sku, p.unit_price_cents, 10_000) for p in catalog)
    orders = [
        make_order(seed * 1000 + n, catalog, order_id=faults.unique_id("bench-order"))
        for n in range(CONCURRENT)
    ]

    async def one(order: Any) -> str:
        with faults.injecting(plan):
            handle = await harness.client.start_workflow(
                OrderSaga.run,
                args=[order, SagaSettings()],
                id=faults.unique_id("bench-saga"),
                task_queue=harness.task_queue,
            )
        try:
            await handle.result()
            return "completed"
        except WorkflowFailureError as err:
            return str(getattr(err.cause, "type", type(err.cause).__name__))

    async def run_all() -> list[str]:
        return list(await asyncio.gather(*(one(order) for order in orders)))

    return run_all, orders


def measure(benchmark: Any, harness: Any, services: OrderServices, plan: Any) -> list[Any]:
    runs: list[tuple[list[str], list[Any]]] = []
    seeds = iter(range(1, 1000))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (batch(harness, services, plan, next(seeds)),), {}

    def target(prepared: Any) -> None:
        run_all, orders = prepared
        runs.append((harness.loop.run(run_all(), timeout=600), orders))

    benchmark.pedantic(target, setup=setup, rounds=ROUNDS, iterations=1)
    return runs


def check_effects(services: OrderServices, runs: list[Any]) -> None:
    for statuses, orders in runs:
        assert set(statuses) <= {"completed", "OrderFailed"}, statuses
        for status, order in zip(statuses, orders, strict=True):
            ledger = services.ledger(order.order_id)
            expected = order.total_cents if status == "completed" else 0
            assert ledger.net_charge_cents == expected, (status, ledger)


def test_orders_per_second_without_faults(
    benchmark: Any, throughput: Any, harness: Any, services: OrderServices
) -> None:
    runs = measure(benchmark, harness, services, None)
    check_effects(services, runs)
    assert all(status == "completed" for statuses, _ in runs for status in statuses)
    throughput.record(benchmark, "saga: 100 concurrent orders", CONCURRENT, unit="orders")


def test_orders_per_second_with_ten_percent_faults(
    benchmark: Any, throughput: Any, harness: Any, services: OrderServices
) -> None:
    chaos = faults.RandomPlan.parse("fail=0.05,duplicate=0.05", seed=2024)
    runs = measure(benchmark, harness, services, chaos)
    check_effects(services, runs)
    throughput.record(benchmark, "saga: 100 orders, 10% faults", CONCURRENT, unit="orders")
    throughput.ratio(benchmark, "saga: 100 orders, 10% faults", "saga: 100 concurrent orders")
