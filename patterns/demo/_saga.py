"""A short demonstration: four realistic orders, one completing and three compensated."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import pathlib
import random

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
from ..saga._invariants import check_invariants, observe_run
from ._report import DemoReport, InvariantCheck, Say


def _scenarios(seed: int, services: OrderServices) -> list[tuple[str, Order]]:
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
    activities = OrderActivities(services)
    report = DemoReport("saga")
    results: dict[str, list[InvariantCheck]] = {}
    task_queue = faults.testing.unique_id(f"saga-demo-{seed}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[OrderSaga],
            activities=activities.activities(),
            activity_executor=executor,
        ):
            for label, order in _scenarios(seed, services):
                skus = sorted({item.sku for item in order.items})
                before = {sku: services.stock(sku) for sku in skus}
                # From the seed alone (order ids are "<seed>-<n>"): a random plan's faults
                # depend on workflow ids, so the same seed must replay the same faults.
                workflow_id = f"saga-demo-order-{order.order_id}"
                say(
                    f"order {order.order_id} ({label}): {order.customer}, "
                    f"{len(order.items)} item(s), {order.total_cents / 100:.2f} to "
                    f"{order.address.city}, {order.address.country}"
                )
                with faults.injecting(plan):
                    handle = await client.start_workflow(
                        OrderSaga.run,
                        args=[order, SagaSettings()],
                        id=workflow_id,
                        task_queue=task_queue,
                    )
                error: WorkflowFailureError | None = None
                try:
                    await handle.result()
                except WorkflowFailureError as err:
                    error = err
                run = await observe_run(client, workflow_id, error)
                ledger = services.ledger(order.order_id)
                after = {sku: services.stock(sku) for sku in skus}
                ops = ", ".join(f"{e.op}:{e.effect}" for e in ledger.journal)
                outcome = run.status if not run.error_type else f"{run.status} ({run.error_type})"
                say(f"  -> {outcome}; journal: {ops or 'nothing'}")
                report.summary.append(f"order {order.order_id} ({label}): {outcome}")
                for check in check_invariants(order, ledger, run, before, after):
                    results.setdefault(check.name, []).append(check)
    for name, checks in results.items():
        broken = [c.detail for c in checks if not c.held]
        report.checks.append(
            InvariantCheck(name, not broken, "; ".join(broken) or f"held for {len(checks)} orders")
        )
    return report
