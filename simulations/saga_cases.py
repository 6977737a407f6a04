"""What the saga simulations draw, and how one drawn case is run and checked."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import strategies as st

import faults
from faults.strategies import scripted_plans
from patterns.saga import ALL_ACTIVITIES, Order, OrderServices, SagaSettings, make_order
from patterns.saga._invariants import check_invariants, failed_checks, observe_run
from patterns.saga._orders import make_catalog

Business = Literal["accepted", "declined", "out_of_stock", "not_served"]


@dataclass(frozen=True)
class SagaCase:
    """One drawn scenario: an order, its business outcome, retry settings and a fault plan."""

    seed: int
    business: Business
    settings: SagaSettings
    plan: faults.ScriptedPlan


saga_cases = st.builds(
    SagaCase,
    seed=st.integers(0, 2**32 - 1),
    business=st.sampled_from(["accepted", "declined", "out_of_stock", "not_served"]),
    settings=st.builds(
        SagaSettings,
        step_attempts=st.integers(1, 3),
        compensation_attempts=st.integers(1, 3),
        retry_interval_ms=st.just(5),
    ),
    plan=scripted_plans(ALL_ACTIVITIES, kinds=("fail", "duplicate", "delay"), max_delay=0.02),
)
"""Cases that shrink toward an accepted order, one attempt per step, and no faults."""


def build_order(case: SagaCase, services: OrderServices) -> Order:
    """A Faker order on fresh SKUs (so no other example touches its stock)."""
    catalog = make_catalog(case.seed, 3, prefix=faults.unique_id("sku"), max_stock=0)
    order = make_order(
        case.seed,
        catalog,
        order_id=faults.unique_id("order"),
        declined=case.business == "declined",
        country="AQ" if case.business == "not_served" else None,
    )
    stock = {p.sku: 50 for p in catalog}
    if case.business == "out_of_stock":
        first = order.items[-1]
        stock[first.sku] = first.quantity - 1
    services.stock_products((p.sku, p.unit_price_cents, stock[p.sku]) for p in catalog)
    return order


def run_case(
    harness: faults.FaultHarness, workflow: Any, services: OrderServices, case: SagaCase
) -> dict[str, Any]:
    """Run ``case`` through ``workflow`` on ``harness``; return the invariants that broke."""
    order = build_order(case, services)
    skus = sorted({item.sku for item in order.items})
    before = {sku: services.stock(sku) for sku in skus}
    outcome = harness.run(workflow.run, order, case.settings, plan=case.plan)
    assert harness.loop is not None
    run = harness.loop.run(observe_run(harness.client, outcome.workflow_id, outcome.error))
    ledger = services.ledger(order.order_id)
    after = {sku: services.stock(sku) for sku in skus}
    broken = failed_checks(check_invariants(order, ledger, run, before, after))
    if broken:
        broken["run"] = outcome.describe()
        broken["journal"] = [(e.op, e.effect) for e in ledger.journal]
    return broken


def minimal(case: SagaCase) -> str:
    """A one-line description of a (shrunk) case."""
    settings = dataclasses.asdict(case.settings)
    return f"{case.business}, {settings}, plan: {case.plan.describe()}".replace("\n", "; ")
