"""What the saga simulations draw, and how one drawn case is run and checked."""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import strategies as st

import faults
import faults.testing
from faults.strategies import scripted_plans
from patterns.saga import ALL_ACTIVITIES, OrderServices, SagaSettings
from patterns.saga._invariants import observe_run, order_on_own_skus, order_violations

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
        parallel_compensation=st.booleans(),
        continue_on_error=st.booleans().map(operator.not_),
    ),
    plan=scripted_plans(ALL_ACTIVITIES, kinds=("fail", "duplicate", "delay"), max_delay=0.02),
)
"""Cases that shrink toward an accepted order, one attempt per step, compensations one at a
time that go on past a failure, and no faults."""


def run_case(
    harness: faults.testing.FaultHarness, workflow: Any, services: OrderServices, case: SagaCase
) -> dict[str, Any]:
    """Run ``case`` through ``workflow`` on ``harness``; return the invariants that broke."""
    order, before = order_on_own_skus(
        services,
        case.seed,
        order_id=faults.testing.unique_id("order"),
        sku_prefix=faults.testing.unique_id("sku"),
        declined=case.business == "declined",
        country="AQ" if case.business == "not_served" else None,
        short=case.business == "out_of_stock",
    )
    outcome = harness.run(workflow.run, order, case.settings, plan=case.plan)
    assert harness.loop is not None
    run = harness.loop.run(observe_run(harness.client, outcome.workflow_id))
    broken = order_violations(services, order, run, before)
    if broken:
        broken["run"] = outcome.describe()
        broken["journal"] = [(e.op, e.effect) for e in services.ledger(order.order_id).journal]
    return broken


def minimal(case: SagaCase) -> str:
    """A one-line description of a (shrunk) case."""
    settings = dataclasses.asdict(case.settings)
    return f"{case.business}, {settings}, plan: {case.plan.describe()}".replace("\n", "; ")
