"""A short demonstration: four realistic orders, one completing and three compensated."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib
import random
from typing import Any

import temporalio.client
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

import faults
import faults.testing

from ..saga import (
    Order,
    OrderActivities,
    OrderSaga,
    OrderServices,
    SagaSettings,
    make_catalog,
    make_order,
)
from ..saga._invariants import NOT_ASKED, check_invariants, observe_run
from ._report import DemoReport, InvariantCheck, Say


def scenarios(seed: int, services: OrderServices) -> list[tuple[str, Order]]:
    """The four orders of seed ``seed``, on SKUs of their own that this stocks.

    A regular order, a declined card, an item out of stock, an address not served.
    """
    catalog = make_catalog(seed, 8, prefix=f"D{seed}", max_stock=40)
    services.stock_products((p.sku, p.unit_price_cents, 40) for p in catalog)
    sold_out = catalog[-1]
    services.stock_products([(sold_out.sku, sold_out.unit_price_cents, 0)])
    rng = random.Random(seed)
    in_stock = catalog[:-1]

    def order(n: int, **kwargs: object) -> Order:
        return make_order(rng.randrange(2**32), in_stock, order_id=f"{seed}-{n}", **kwargs)  # type: ignore[arg-type]

    short = order(3)
    short = dataclasses.replace(
        short, items=[*short.items, dataclasses.replace(short.items[0], sku=sold_out.sku)]
    )
    return [
        ("a regular order", order(1)),
        ("a declined card", order(2, declined=True)),
        ("an item out of stock", short),
        ("an address not served", order(4, country="AQ")),
    ]


@dataclasses.dataclass(frozen=True)
class OrderRun:
    """One order of a schedule: its outcome as the history and the database show it."""

    label: str
    order: Order
    outcome: str
    journal: str
    checks: tuple[InvariantCheck, ...]


def saga_worker(
    client: temporalio.client.Client,
    task_queue: str,
    services: OrderServices,
    executor: concurrent.futures.Executor,
) -> Worker:
    """The worker every order of a demonstration or a chaos run goes through."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderSaga],
        activities=OrderActivities(services).activities(),
        activity_executor=executor,
    )


def saga_registration() -> dict[str, Any]:
    """What ``python -m faults worker --setup patterns.demo:saga_registration`` serves.

    The services database is ``$SAGA_CHAOS_DB``: the one the chaos command that
    starts the orders names (``WORKDIR/saga/saga-chaos.sqlite``).
    """
    database = os.environ.get("SAGA_CHAOS_DB")
    if not database:
        raise ValueError("SAGA_CHAOS_DB must name the chaos run's services database")
    return {
        "workflows": [OrderSaga],
        "activities": OrderActivities(database).activities(),
        "options": {"activity_executor": concurrent.futures.ThreadPoolExecutor(32)},
    }


async def run_order(
    client: temporalio.client.Client,
    task_queue: str,
    services: OrderServices,
    label: str,
    order: Order,
    plan: faults.FaultPlan | None,
    *,
    ask_stage: bool = True,
) -> OrderRun:
    """Run one order under ``plan`` and check the saga invariants from its evidence.

    The workflow id comes from the order id alone ("<seed>-<n>"): a random plan's
    faults depend on workflow ids, so the same seed replays the same faults. With
    ``ask_stage`` the closed order's ``stage`` claim is asked (a worker replays the
    order to answer) and checked (invariant 9); without, that check is reported as not
    checked.
    """
    skus = sorted({item.sku for item in order.items})
    before = {sku: services.stock(sku) for sku in skus}
    workflow_id = f"saga-demo-order-{order.order_id}"
    with faults.injecting(plan):
        handle = await client.start_workflow(
            OrderSaga.run, args=[order, SagaSettings()], id=workflow_id, task_queue=task_queue
        )
    error: WorkflowFailureError | None = None
    try:
        await handle.result()
    except WorkflowFailureError as err:
        error = err
    answers = {"stage": await faults.testing.ask_query(handle, "stage")} if ask_stage else {}
    run = await observe_run(client, workflow_id, error, answers=answers)
    ledger = services.ledger(order.order_id)
    after = {sku: services.stock(sku) for sku in skus}
    return OrderRun(
        label,
        order,
        run.status if not run.error_type else f"{run.status} ({run.error_type})",
        ", ".join(f"{e.op}:{e.effect}" for e in ledger.journal) or "nothing",
        tuple(check_invariants(order, ledger, run, before, after)),
    )


def report_of(runs: list[OrderRun]) -> DemoReport:
    """The demonstration's report: each order's outcome, each invariant over all orders."""
    report = DemoReport("saga")
    results: dict[str, list[InvariantCheck]] = {}
    for run in runs:
        report.summary.append(f"order {run.order.order_id} ({run.label}): {run.outcome}")
        for check in run.checks:
            results.setdefault(check.name, []).append(check)
    for name, checks in results.items():
        broken = [c.detail for c in checks if not c.held]
        asked = sum(c.detail != NOT_ASKED for c in checks)
        held = f"held for {asked} order{'s' * (asked != 1)}" if asked else NOT_ASKED
        if 0 < asked < len(checks):
            held += f" (not asked of {len(checks) - asked})"
        report.checks.append(InvariantCheck(name, not broken, "; ".join(broken) or held))
    return report


async def demonstrate(
    client: temporalio.client.Client,
    *,
    seed: int,
    plan: faults.FaultPlan | None,
    workdir: pathlib.Path,
    say: Say,
) -> DemoReport:
    """Run four orders through :class:`OrderSaga` and check the saga invariants.

    The services keep their state in ``workdir/saga-services.sqlite``; ``plan``
    (if any) injects faults into every activity the orders run.
    """
    services = OrderServices(workdir / "saga-services.sqlite")
    task_queue = faults.testing.unique_id(f"saga-demo-{seed}")
    runs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with saga_worker(client, task_queue, services, executor):
            for label, order in scenarios(seed, services):
                say(
                    f"order {order.order_id} ({label}): {order.customer}, "
                    f"{len(order.items)} item(s), {order.total_cents / 100:.2f} to "
                    f"{order.address.city}, {order.address.country}"
                )
                run = await run_order(client, task_queue, services, label, order, plan)
                say(f"  -> {run.outcome}; journal: {run.journal}")
                runs.append(run)
    return report_of(runs)
