"""The saga invariants under drawn orders, business outcomes and fault plans.

Every example runs one order saga on the time-skipping server under a scripted
fault plan (fail, delay, duplicate on any step or compensation) and checks
from the services database and the workflow history that:

1. semantic atomicity holds; 2. compensations ran in reverse order;
3. effects happened exactly once; 4. nothing was compensated after the pivot;
5. a compensation that failed for good was reported.

Each property is also run against a broken saga from ``saga_variants`` and must
fail there, with a small shrunk counterexample.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings

import faults
import faults.testing
from patterns.saga import OrderActivities, OrderSaga, OrderServices

from .saga_cases import SagaCase, minimal, run_case, saga_cases
from .saga_variants import (
    CompensateAfterStepSaga,
    FirstInFirstOutSaga,
    NonIdempotentRefundActivities,
    NoPivotSaga,
    SilentCompensationSaga,
)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> OrderServices:
    return OrderServices(tmp_path_factory.mktemp("saga-sim") / "services.sqlite")


@pytest.fixture(scope="module")
def harness(fault_harness: Any, services: OrderServices) -> faults.testing.FaultHarness:
    return fault_harness(workflows=[OrderSaga], activities=OrderActivities(services).activities())


@given(case=saga_cases)
def test_saga_invariants_hold_under_faults(
    harness: faults.testing.FaultHarness, services: OrderServices, case: SagaCase
) -> None:
    assert run_case(harness, OrderSaga, services, case) == {}


VARIANTS = {
    "1 semantic atomicity": (CompensateAfterStepSaga, OrderActivities),
    "2 compensations in reverse order": (FirstInFirstOutSaga, OrderActivities),
    "3 exactly-once effects": (OrderSaga, NonIdempotentRefundActivities),
    "4 nothing compensated after the pivot": (NoPivotSaga, OrderActivities),
    "5 failed compensations reported": (SilentCompensationSaga, OrderActivities),
}


@pytest.mark.parametrize("prop", list(VARIANTS))
def test_each_property_catches_its_broken_variant(
    fault_harness: Any, services: OrderServices, prop: str
) -> None:
    workflow, activities = VARIANTS[prop]
    broken = fault_harness(workflows=[workflow], activities=activities(services).activities())
    found: list[dict[str, Any]] = []

    def violates(case: SagaCase) -> bool:
        failures = run_case(broken, workflow, services, case)
        if prop in failures:
            found.append(failures)
            return True
        return False

    shrunk = find(
        saga_cases,
        violates,
        settings=settings(
            max_examples=1000,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(f"{prop}: {workflow.__name__}/{activities.__name__} minimal case: {minimal(shrunk)}")
    assert len(shrunk.plan.faults) <= 2, minimal(shrunk)
    assert shrunk.settings.step_attempts <= 2 and shrunk.settings.compensation_attempts <= 2
    assert prop in run_case(broken, workflow, services, shrunk)  # the shrunk case reproduces
