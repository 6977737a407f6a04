"""The order saga on the time-skipping server, checked from its SQLite services."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import faults
from faults import Duplicate, Fail, ScriptedFault, ScriptedPlan
from patterns.saga import (
    DECLINED_CARD,
    Address,
    LineItem,
    Order,
    OrderActivities,
    OrderSaga,
    OrderServices,
    SagaSettings,
)
from patterns.saga._invariants import check_invariants, failed_checks, observe_run


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> OrderServices:
    return OrderServices(tmp_path_factory.mktemp("saga") / "services.sqlite")


@pytest.fixture(scope="module")
def harness(fault_harness: Any, services: OrderServices) -> faults.FaultHarness:
    return fault_harness(workflows=[OrderSaga], activities=OrderActivities(services).activities())


def fresh_order(services: OrderServices, *, stock: int = 10, **changes: Any) -> Order:
    prefix = faults.unique_id("sku")
    services.stock_products([(f"{prefix}-a", 1250, stock), (f"{prefix}-b", 399, stock)])
    order = Order(
        order_id=faults.unique_id("order"),
        customer="Ada Lovelace",
        email="ada@example.com",
        card_token="tok_visa",
        address=Address("12 Analytical St", "London", "N1 7AA", "GB"),
        items=[LineItem(f"{prefix}-a", 2, 1250), LineItem(f"{prefix}-b", 1, 399)],
    )
    return dataclasses.replace(order, **changes)


def run_and_check(
    harness: faults.FaultHarness,
    services: OrderServices,
    order: Order,
    settings: SagaSettings = SagaSettings(),
    plan: faults.FaultPlan | None = None,
) -> tuple[Any, Any]:
    skus = sorted({i.sku for i in order.items})
    before = {sku: services.stock(sku) for sku in skus}
    outcome = harness.run(OrderSaga.run, order, settings, plan=plan)
    assert harness.loop is not None
    run = harness.loop.run(observe_run(harness.client, outcome.workflow_id, outcome.error))
    ledger = services.ledger(order.order_id)
    after = {sku: services.stock(sku) for sku in skus}
    checks = check_invariants(order, ledger, run, before, after)
    assert failed_checks(checks) == {}
    return outcome, ledger


def plan(*entries: tuple[str, int, faults.Fault]) -> ScriptedPlan:
    return ScriptedPlan(tuple(ScriptedFault(a, n, f) for a, n, f in entries))


def test_order_completes_with_every_effect_once(harness: Any, services: OrderServices) -> None:
    order = fresh_order(services)
    outcome, ledger = run_and_check(harness, services, order)
    assert outcome.result.status == "completed"
    assert ledger.net_charge_cents == order.total_cents == 2899
    assert [e.op for e in ledger.journal] == ["charge", "reserve", "ship", "confirm"]
