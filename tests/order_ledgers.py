"""Checks shared by the process-fault tests: every order's ledger balances, stock is conserved."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any

from temporalio.client import WorkflowFailureError

from faults.testing import unique_id
from patterns.saga import (
    DECLINED_CARD,
    Order,
    OrderSaga,
    OrderServices,
    Product,
    SagaSettings,
    make_order,
)


async def start_mixed_orders(
    client: Any,
    task_queue: str,
    rng: random.Random,
    catalog: Sequence[Product],
    orders: list[Order],
    handles: list[Any],
    *,
    count: int,
    prefix: str,
    step_attempts: int,
) -> None:
    """Start ``count`` more sagas: every 4th order declined, every 5th to an unserved address.

    Appends each order to ``orders`` and its workflow handle to ``handles``.
    """
    for _ in range(count):
        n = len(orders)
        order = make_order(
            rng.randrange(2**32),
            catalog,
            order_id=f"{prefix}-{n}",
            declined=n % 4 == 1,
            country="AQ" if n % 5 == 2 else None,
        )
        orders.append(order)
        handles.append(
            await client.start_workflow(
                OrderSaga.run,
                args=[order, SagaSettings(step_attempts=step_attempts)],
                id=unique_id(f"{prefix}-order-{n}"),
                task_queue=task_queue,
            )
        )


async def saga_outcomes(handles: Sequence[Any]) -> list[str | None]:
    """``None`` for each completed saga, else its failure type (``OrderFailed``, ...)."""

    async def one(handle: Any) -> str | None:
        try:
            await handle.result()
            return None
        except WorkflowFailureError as err:
            return getattr(err.cause, "type", None) or type(err.cause).__name__

    return list(await asyncio.gather(*(one(h) for h in handles)))


def assert_ledgers_balance(
    services: OrderServices,
    orders: Sequence[Order],
    outcomes: Sequence[str | None],
    initial_stock: Mapping[str, int],
    unserved_country: str = "AQ",
) -> None:
    """Completed orders charged, reserved and shipped exactly once; failed ones net zero."""
    sold = dict.fromkeys(initial_stock, 0)
    for order, outcome in zip(orders, outcomes, strict=True):
        ledger = services.ledger(order.order_id)
        business_failure = (
            order.card_token == DECLINED_CARD or order.address.country == unserved_country
        )
        if outcome is None:  # completed
            assert not business_failure, order.order_id
            assert ledger.net_charge_cents == order.total_cents, order.order_id
            assert ledger.live_shipments == 1, order.order_id
            assert ledger.reserved == {i.sku: i.quantity for i in order.items}, order.order_id
            for item in order.items:
                sold[item.sku] += item.quantity
        else:
            assert outcome == "OrderFailed", (order.order_id, outcome)
            assert ledger.net_charge_cents == 0, order.order_id
            assert ledger.live_shipments == 0, order.order_id
            assert not ledger.reserved, order.order_id
    assert any(o is None for o in outcomes) and any(o is not None for o in outcomes)
    assert {sku: services.stock(sku) for sku in initial_stock} == {
        sku: initial_stock[sku] - sold[sku] for sku in initial_stock
    }
