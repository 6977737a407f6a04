"""The saga invariants under drawn orders, business outcomes, settings and fault plans.

Every example runs one order saga on the time-skipping server under a scripted
fault plan aimed at the calls the order makes (fails, outages, lost completions;
in the disruption property the server's own timeouts, worker restarts and
cancellations of the order) and checks, from the services database and the
workflow history only (never from what the workflow reports about itself), that:

1. semantic atomicity holds; 2. compensations ran in reverse order;
3. effects happened exactly once; 4. nothing was compensated after the pivot;
5. every compensation that failed for good was reported, and only those;
6. a completed order's post-pivot steps were done; 7. an order failed only for a cause;
8. an order was charged only once screened, and never when the screen refuses it;
9. a closed order's ``stage`` query agrees with how its history says it ended.

A third property draws invalid orders (one bad field each), which invariant 7 says must be
refused at once: ``InvalidOrder``, non-retryable, before any activity.

(``patterns.saga._invariants`` says which evidence each one reads.) The same
property holds for :class:`~simulations.saga_variants.FaithfulOrderSaga`, the
unbroken copy the variants are made from; each broken variant from
``saga_variants`` must fail its property, with a small shrunk counterexample.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import faults
import faults.testing
from patterns.saga import OrderActivities, OrderSaga, OrderServices
from patterns.saga._invariants import INVARIANTS

from ._search import catch
from .saga_cases import (
    SagaCase,
    disrupted_saga_cases,
    invalid_saga_cases,
    minimal,
    run_case,
    saga_cases,
    saga_harness,
)
from .saga_variants import (
    CompensateAfterStepSaga,
    FaithfulOrderSaga,
    FirstInFirstOutSaga,
    LimitInDollarsSaga,
    LyingCompensationSaga,
    NonIdempotentRefundActivities,
    NoPivotSaga,
    ScreenAlongsideChargeSaga,
    ScreenedOncePerProcessSaga,
    SilentCompensationSaga,
    StaleStageSaga,
    UncompensatedCancellationSaga,
    UnconfirmedCompletionSaga,
    UnreportedCompensationSaga,
    ValidatesLateSaga,
)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> OrderServices:
    return OrderServices(tmp_path_factory.mktemp("saga-sim") / "services.sqlite")


@pytest.fixture(scope="module")
def harness(fault_harness: Any, services: OrderServices) -> faults.testing.FaultHarness:
    return saga_harness(fault_harness, OrderSaga, services)


@given(case=saga_cases)
def test_saga_invariants_hold_under_faults(
    harness: faults.testing.FaultHarness, services: OrderServices, case: SagaCase
) -> None:
    assert run_case(harness, OrderSaga, services, case) == {}


@given(case=saga_cases)
def test_the_variants_unbroken_copy_holds_them_too(
    fault_harness: Any, services: OrderServices, case: SagaCase
) -> None:
    faithful = saga_harness(fault_harness, FaithfulOrderSaga, services)
    assert run_case(faithful, FaithfulOrderSaga, services, case) == {}


DISRUPTED_EXAMPLES = max(1, settings.default.max_examples // 4)
"""Examples per disruption property: a quarter of the profile's (50 under ``ci``, 1,250 under
``thorough``), since a timeout costs about a second of real time."""


@pytest.mark.parametrize("workflow", [OrderSaga, FaithfulOrderSaga], ids=lambda w: w.__name__)
@settings(max_examples=DISRUPTED_EXAMPLES)
@given(case=disrupted_saga_cases)
def test_saga_invariants_hold_under_timeouts_restarts_and_cancellations(
    fault_harness: Any, services: OrderServices, workflow: type, case: SagaCase
) -> None:
    """The server times a step out, a worker restart replays the order, the order is cancelled."""
    harness = saga_harness(fault_harness, workflow, services)
    assert run_case(harness, workflow, services, case) == {}


INVALID_EXAMPLES = max(1, settings.default.max_examples // 4)
"""Examples per invalid-order property: a quarter of the profile's; an invalid order has
only its flaw and its Faker seed to vary."""


@pytest.mark.parametrize("workflow", [OrderSaga, FaithfulOrderSaga], ids=lambda w: w.__name__)
@settings(max_examples=INVALID_EXAMPLES)
@given(case=invalid_saga_cases)
def test_saga_invariants_hold_for_invalid_orders(
    fault_harness: Any, services: OrderServices, workflow: type, case: SagaCase
) -> None:
    """An order with one invalid field is refused at once, before any service is called."""
    harness = saga_harness(fault_harness, workflow, services)
    assert run_case(harness, workflow, services, case) == {}


@settings(max_examples=300, database=None)
@given(case=disrupted_saga_cases)
def test_a_disrupted_plan_cancels_the_order_at_most_once(case: SagaCase) -> None:
    """Only the first cancellation a run meets matters: a plan draws one at most, first, and
    no other entry aims at the attempt it cancels (the first matching entry wins)."""
    kinds = [entry.fault.kind for entry in case.plan.faults]
    assert kinds.count("cancel") <= 1
    if "cancel" in kinds:
        assert kinds[0] == "cancel"
        first = case.plan.faults[0]
        assert all(
            (e.activity, e.attempt) != (first.activity, first.attempt) for e in case.plan.faults[1:]
        )


VARIANTS = [
    ("1 semantic atomicity", CompensateAfterStepSaga, OrderActivities),
    ("1 semantic atomicity", LyingCompensationSaga, OrderActivities),
    ("1 semantic atomicity", UncompensatedCancellationSaga, OrderActivities),
    ("1 semantic atomicity", ScreenedOncePerProcessSaga, OrderActivities),
    ("2 compensations in reverse order", FirstInFirstOutSaga, OrderActivities),
    ("3 exactly-once effects", OrderSaga, NonIdempotentRefundActivities),
    ("4 nothing compensated after the pivot", NoPivotSaga, OrderActivities),
    ("5 failed compensations reported", SilentCompensationSaga, OrderActivities),
    ("5 failed compensations reported", UnreportedCompensationSaga, OrderActivities),
    ("6 post-pivot steps done", UnconfirmedCompletionSaga, OrderActivities),
    ("7 failed only for a cause", LimitInDollarsSaga, OrderActivities),
    ("7 failed only for a cause", ValidatesLateSaga, OrderActivities),
    ("8 charged only once screened", ScreenAlongsideChargeSaga, OrderActivities),
    ("9 says where it ended", StaleStageSaga, OrderActivities),
]


DRAWN_FROM: dict[type, st.SearchStrategy[SagaCase]] = {
    UncompensatedCancellationSaga: disrupted_saga_cases,
    ScreenedOncePerProcessSaga: disrupted_saga_cases,
    ValidatesLateSaga: invalid_saga_cases,
}
"""Variants caught by the disruption or the invalid-order property; the others by the main
one."""

SHRINK_RUNS = 150
"""Runs a variant's search may spend shrinking after its first catch. Counted, not timed, so
shrinking ends alike on every machine (Hypothesis's own cap is 300 s of shrinking)."""

SHRINK_RUNS_OF = {UncompensatedCancellationSaga: 60, ScreenedOncePerProcessSaga: 60}
"""Smaller budgets for variants whose runs cost seconds each (a cancellation is held until the
order has handled it): 133 shrink runs of that variant took 321 s of CI's main stage."""


def within_bounds(case: SagaCase, entries: int = 2) -> bool:
    """Whether a shrunk case is as small as a variant's test asks: at most ``entries`` plan
    entries, and at most two attempts per call."""
    settings = case.settings
    return (
        len(case.plan.faults) <= entries
        and settings.step_attempts <= 2
        and settings.compensation_attempts <= 2
    )


def test_every_invariant_has_a_broken_variant() -> None:
    assert sorted({prop for prop, _, _ in VARIANTS}) == sorted(INVARIANTS)


@pytest.mark.parametrize(
    ("prop", "workflow", "activities"),
    VARIANTS,
    ids=[f"{w.__name__}-{a.__name__}" for _, w, a in VARIANTS],
)
def test_each_property_catches_its_broken_variant(
    fault_harness: Any, services: OrderServices, prop: str, workflow: type, activities: type
) -> None:
    broken = saga_harness(fault_harness, workflow, services, activities)
    caught = catch(
        DRAWN_FROM.get(workflow, saga_cases),
        lambda case: prop in run_case(broken, workflow, services, case),
        shrink_runs=SHRINK_RUNS_OF.get(workflow, SHRINK_RUNS),
        # Shrinking ends at one entry, the fewest a drawn plan has.
        small_enough=lambda case: within_bounds(case, entries=1),
        # A bug that needs a step's completion lost on every attempt is drawn about once in
        # 150 cases.
        max_examples=2000,
    )
    shrunk = caught.shrunk
    assert within_bounds(shrunk), minimal(shrunk)
    print(
        f"{prop}: {workflow.__name__}/{activities.__name__} caught at example {caught.caught_at} "
        f"({caught.runs} runs with shrinking); minimal case: {minimal(shrunk)}"
    )
    assert prop in run_case(broken, workflow, services, shrunk)  # the shrunk case reproduces
