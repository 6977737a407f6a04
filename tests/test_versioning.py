"""Versioning with ``workflow.patched``: v1 histories replay against v2 of the order saga.

v2 adds a fraud screen before the charge, guarded by ``workflow.patched("fraud-screen")``.
The v1 histories under ``tests/fixtures/order_saga_v1`` were recorded before the step
existed (``tests/fixtures/record_order_saga_histories.py``).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.common import RetryPolicy
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

import faults
import faults.testing
from patterns.saga import (
    FRAUD_LIMIT_CENTS,
    FRAUD_SCREEN_PATCH,
    OrderActivities,
    OrderSaga,
    OrderServices,
    SagaSettings,
    make_catalog,
    make_order,
)
from patterns.saga._types import Order, OrderResult

FIXTURES = Path(__file__).parent / "fixtures" / "order_saga_v1"


async def screen_unconditionally(order: Order, settings: SagaSettings) -> None:
    """The fraud-screen activity call with no patch around it."""
    await workflow.execute_activity_method(
        OrderActivities.screen,
        args=[order.order_id, order.email, order.total_cents],
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RetryPolicy(maximum_attempts=settings.step_attempts),
    )


@workflow.defn(name="OrderSaga")
class UnversionedOrderSaga(OrderSaga):
    """v2 done wrong: the screen added without a patch."""

    async def screen(self, order: Order, settings: SagaSettings) -> None:
        await screen_unconditionally(order, settings)

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        return await super().run(order, settings)


@workflow.defn(name="OrderSaga")
class OrderSagaV3(OrderSaga):
    """v3: every v1 run is gone, so the patch is deprecated and the screen unconditional."""

    async def screen(self, order: Order, settings: SagaSettings) -> None:
        workflow.deprecate_patch(FRAUD_SCREEN_PATCH)
        await screen_unconditionally(order, settings)

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        return await super().run(order, settings)


def v1_histories() -> list[WorkflowHistory]:
    paths = sorted(FIXTURES.glob("*.json"))
    assert len(paths) == 3
    return [WorkflowHistory.from_json(p.stem, p.read_text()) for p in paths]


def replay_all(
    loop: faults.testing.EventLoopThread, workflow_class: type, histories: list[Any]
) -> None:
    async def go() -> None:
        replayer = Replayer(workflows=[workflow_class])
        for history in histories:
            await replayer.replay_workflow(history)

    loop.run(go())


def test_v1_histories_replay_cleanly_against_v2(
    temporal_loop: faults.testing.EventLoopThread,
) -> None:
    replay_all(temporal_loop, OrderSaga, v1_histories())


def test_adding_the_step_without_a_patch_breaks_v1_replay(
    temporal_loop: faults.testing.EventLoopThread,
) -> None:
    for history in v1_histories():
        with pytest.raises(NondeterminismError):
            replay_all(temporal_loop, UnversionedOrderSaga, [history])


@pytest.fixture(scope="module")
def v2_runs(
    fault_harness: Any, tmp_path_factory: Any
) -> tuple[faults.testing.FaultHarness, list[str]]:
    services = OrderServices(tmp_path_factory.mktemp("versioning") / "services.sqlite")
    catalog = make_catalog(5, 3, prefix="VER", max_stock=10)
    services.stock_products((p.sku, p.unit_price_cents, 100) for p in catalog)
    harness = fault_harness(
        workflows=[OrderSaga], activities=OrderActivities(services).activities()
    )
    regular = make_order(1, catalog, order_id="v2-regular")
    huge = dataclasses.replace(
        regular,
        order_id="v2-huge",
        items=[
            dataclasses.replace(
                regular.items[0], quantity=1, unit_price_cents=FRAUD_LIMIT_CENTS + 1
            )
        ],
    )
    outcomes = [harness.run(OrderSaga.run, o, SagaSettings()) for o in (regular, huge)]
    assert outcomes[0].succeeded
    assert not outcomes[1].succeeded and "fraud screen" in str(outcomes[1].cause.cause)  # type: ignore[union-attr]
    assert services.ledger("v2-huge").charged_cents == 0
    return harness, [o.workflow_id for o in outcomes]


def fetch(harness: faults.testing.FaultHarness, workflow_ids: list[str]) -> list[WorkflowHistory]:
    async def go() -> list[WorkflowHistory]:
        return [await harness.client.get_workflow_handle(i).fetch_history() for i in workflow_ids]

    assert harness.loop is not None
    return harness.loop.run(go())


def test_v2_runs_screen_and_record_the_patch(v2_runs: Any) -> None:
    harness, ids = v2_runs
    for history in fetch(harness, ids):
        markers = [
            e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        ]
        assert any(m.marker_recorded_event_attributes.marker_name == "core_patch" for m in markers)
        scheduled = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        assert scheduled[:2] == ["check_catalog", "screen"]


def test_v3_deprecates_the_patch_and_replays_v2_histories(
    v2_runs: Any, temporal_loop: faults.testing.EventLoopThread
) -> None:
    harness, ids = v2_runs
    replay_all(temporal_loop, OrderSagaV3, fetch(harness, ids))
    # v1 histories must be gone before v3 ships: they do not replay against it.
    with pytest.raises(NondeterminismError):
        replay_all(temporal_loop, OrderSagaV3, v1_histories()[:1])
