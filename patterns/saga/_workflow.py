"""The order saga: charge, reserve, ship (the pivot), then confirm."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, CancelledError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from ._activities import OrderActivities
    from ._saga import Compensation, Saga, SagaOptions, describe_error
    from ._types import (
        InvalidOrderError,
        Order,
        OrderKeys,
        OrderResult,
        SagaSettings,
        validate_order,
    )

T = TypeVar("T")

FRAUD_SCREEN_PATCH = "fraud-screen"
"""Patch id of v2's fraud screen. Histories recorded before it (v1) replay without the
step; once no v1 run remains, the next version calls ``workflow.deprecate_patch`` with
this id and screens unconditionally, and the version after that drops the call."""


@workflow.defn
class OrderSaga:
    """Processes one order as a saga.

    Validates the order and its SKUs before any side effect, then charges the
    card, reserves stock and creates the shipment, registering each step's
    compensation (refund, release, cancel shipment) before the step runs. The
    shipment is the pivot: once it exists the order is committed and the
    confirmation notice is retried until it is sent. Any failure before that
    compensates last-in first-out and fails the workflow with ``OrderFailed``
    (or ``SagaCompensationError`` if a compensation could not complete); a
    cancelled order is compensated, then reported cancelled.
    """

    def __init__(self) -> None:
        self._stage = "received"

    @workflow.query
    def stage(self) -> str:
        """Where the order is: received, charging, reserving, shipping, compensating, ..."""
        return self._stage

    def new_saga(self, settings: SagaSettings) -> Saga:
        """The saga that tracks this order's compensations."""
        return Saga(
            SagaOptions(
                parallel_compensation=settings.parallel_compensation,
                continue_on_error=True,
                completion_backoff=timedelta(milliseconds=settings.retry_interval_ms),
                max_completion_backoff=timedelta(seconds=30),
            )
        )

    async def run_step(
        self, saga: Saga, action: Callable[[], Awaitable[T]], compensation: tuple[str, Compensation]
    ) -> T:
        """Run one forward step with its compensation (registered first)."""
        return await saga.step(action, compensation=compensation)

    def post_pivot_attempts(self, settings: SagaSettings) -> int:
        """Maximum attempts of each execution of a step after the pivot (0: unlimited)."""
        return 0

    def _call(
        self,
        method: Callable[..., Any],
        *args: Any,
        attempts: int,
        settings: SagaSettings,
        activity_id: str | None = None,
    ) -> Callable[[], Awaitable[Any]]:
        def start() -> Awaitable[Any]:
            return workflow.execute_activity_method(
                method,
                args=list(args),
                activity_id=activity_id,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=settings.retry_interval_ms),
                    maximum_interval=timedelta(seconds=1),
                    maximum_attempts=attempts,
                ),
            )

        return start

    async def screen(self, order: Order, settings: SagaSettings) -> None:
        """v2: screen the order for fraud before any side effect (versioned with a patch)."""
        if workflow.patched(FRAUD_SCREEN_PATCH):
            await self.screen_step(order, settings)

    async def screen_step(self, order: Order, settings: SagaSettings) -> None:
        """The fraud-screen activity call."""
        await self._call(
            OrderActivities.screen,
            order.order_id,
            order.email,
            order.total_cents,
            attempts=settings.step_attempts,
            settings=settings,
        )()

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order``; see the class docstring."""
        try:
            validate_order(order)
        except InvalidOrderError as err:
            raise ApplicationError(str(err), type="InvalidOrder", non_retryable=True) from None
        steps, undo = settings.step_attempts, settings.compensation_attempts
        skus = [item.sku for item in order.items]
        await self._call(OrderActivities.check_catalog, skus, attempts=steps, settings=settings)()
        await self.screen(order, settings)

        keys = OrderKeys.for_workflow(workflow.info().workflow_id)
        oid = order.order_id
        saga = self.new_saga(settings)
        try:
            self._stage = "charging"
            charged: int = await self.run_step(
                saga,
                self._call(
                    OrderActivities.charge,
                    keys.charge,
                    oid,
                    order.card_token,
                    order.total_cents,
                    attempts=steps,
                    settings=settings,
                ),
                (
                    "refund",
                    self._call(
                        OrderActivities.refund,
                        keys.refund,
                        keys.charge,
                        oid,
                        attempts=undo,
                        settings=settings,
                    ),
                ),
            )
            self._stage = "reserving"
            await self.run_step(
                saga,
                self._call(
                    OrderActivities.reserve,
                    keys.reserve,
                    oid,
                    order.items,
                    attempts=steps,
                    settings=settings,
                ),
                (
                    "release",
                    self._call(
                        OrderActivities.release, keys.reserve, oid, attempts=undo, settings=settings
                    ),
                ),
            )
            self._stage = "shipping"
            await saga.pivot(
                self._call(
                    OrderActivities.ship,
                    keys.ship,
                    oid,
                    order.address,
                    attempts=steps,
                    settings=settings,
                ),
                compensation=(
                    "cancel_shipment",
                    self._call(
                        OrderActivities.cancel_shipment,
                        keys.ship,
                        oid,
                        attempts=undo,
                        settings=settings,
                    ),
                ),
            )
        except (Exception, asyncio.CancelledError) as err:
            self._stage = "compensating"
            report = await saga.compensate()
            self._stage = "compensated"
            if isinstance(err, asyncio.CancelledError):
                raise
            if is_cancelled_exception(err):
                raise CancelledError(
                    f"order {oid} was cancelled and compensated ({', '.join(report.compensated)})"
                ) from err
            raise ApplicationError(
                f"order {oid} failed and was compensated ({', '.join(report.compensated)}): "
                f"{describe_error(err)}",
                type="OrderFailed",
                non_retryable=True,
            ) from err

        self._stage = "confirming"
        tries = itertools.count(1)

        def confirm() -> Awaitable[Any]:
            # Each execution gets its own activity id: confirm-1, confirm-2, ...
            return self._call(
                OrderActivities.confirm,
                keys.confirm,
                oid,
                order.email,
                attempts=self.post_pivot_attempts(settings),
                settings=settings,
                activity_id=f"confirm-{next(tries)}",
            )()

        await saga.complete(confirm)
        self._stage = "completed"
        return OrderResult(oid, "completed", charged, keys.ship, keys.confirm)
