"""The order saga: charge, reserve, ship (the pivot), then confirm."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, CancelledError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from ._activities import OrderActivities
    from ._saga import Saga, SagaOptions, describe_error
    from ._types import (
        InvalidOrderError,
        Order,
        OrderKeys,
        OrderResult,
        SagaSettings,
        validate_order,
    )

FRAUD_SCREEN_PATCH = "fraud-screen"
"""Patch id of v2's fraud screen. Histories recorded before it (v1) replay without the
step; once no v1 run remains, the next version calls ``workflow.deprecate_patch`` with
this id and screens unconditionally, and the version after that drops the call."""

_UNTIL_DONE = 0
"""``maximum_attempts`` of a step after the pivot: retried until it succeeds."""


def _execute(
    method: Callable[..., Any],
    *args: Any,
    settings: SagaSettings,
    attempts: int,
    activity_id: str | None = None,
) -> Awaitable[Any]:
    """Start one activity call with the saga's timeout and a retry policy of ``attempts``."""
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


def _saga_options(settings: SagaSettings) -> SagaOptions:
    """How the order's saga compensates, and paces its retries after the pivot."""
    return SagaOptions(
        parallel_compensation=settings.parallel_compensation,
        continue_on_error=settings.continue_on_error,
        completion_backoff=timedelta(milliseconds=settings.retry_interval_ms),
        max_completion_backoff=timedelta(seconds=30),
    )


def order_failure(order_id: str, error: Exception, compensated: list[str]) -> Exception:
    """What fails an order once it is compensated: a cancellation, or ``OrderFailed``.

    Its one detail, ``{"compensated": [...]}``, names the compensations that completed.
    """
    done = ", ".join(compensated)
    detail = {"compensated": list(compensated)}
    if is_cancelled_exception(error):
        return CancelledError(f"order {order_id} was cancelled and compensated ({done})", detail)
    return ApplicationError(
        f"order {order_id} failed and was compensated ({done}): {describe_error(error)}",
        detail,
        type="OrderFailed",
        non_retryable=True,
    )


@workflow.defn
class OrderSaga:
    """Processes one order as a saga.

    Validates the order and its SKUs before any side effect, then charges the
    card, reserves stock and creates the shipment, registering each step's
    compensation (refund, release, cancel shipment) before the step runs. The
    shipment is the pivot: once it exists the order is committed and the
    confirmation notice is retried until it is sent. Any failure before that
    compensates last-in first-out and fails the workflow with ``OrderFailed``,
    whose detail names the compensations that completed (or
    ``SagaCompensationError`` if a compensation could not complete); a
    cancelled order is compensated, then reported cancelled.
    """

    def __init__(self) -> None:
        self._stage = "received"

    @workflow.query
    def stage(self) -> str:
        """Where the order is: received, charging, reserving, shipping, compensating, ..."""
        return self._stage

    async def screen(self, order: Order, settings: SagaSettings) -> None:
        """v2: screen the order for fraud before any side effect (versioned with a patch)."""
        if workflow.patched(FRAUD_SCREEN_PATCH):
            await _execute(
                OrderActivities.screen,
                order.order_id,
                order.email,
                order.total_cents,
                settings=settings,
                attempts=settings.step_attempts,
            )

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order``; see the class docstring."""
        refuse_invalid(order)
        skus = [item.sku for item in order.items]
        await _execute(
            OrderActivities.check_catalog, skus, settings=settings, attempts=settings.step_attempts
        )
        await self.screen(order, settings)

        keys = OrderKeys.for_workflow(workflow.info().workflow_id)
        saga = Saga(_saga_options(settings))
        try:
            charged = await self._commit(saga, order, keys, settings)
        except (Exception, asyncio.CancelledError) as err:
            self._stage = "compensating"
            report = await saga.compensate()
            self._stage = "compensated"
            if isinstance(err, asyncio.CancelledError):
                raise
            raise order_failure(order.order_id, err, report.compensated) from err

        self._stage = "confirming"
        await saga.complete(self._confirmation(order, keys, settings))
        self._stage = "completed"
        return OrderResult(order.order_id, "completed", charged, keys.ship, keys.confirm)

    async def _commit(
        self, saga: Saga, order: Order, keys: OrderKeys, settings: SagaSettings
    ) -> int:
        """Charge, reserve, then ship (the pivot); returns the amount charged.

        Each step's compensation is registered before the step runs.
        """
        oid = order.order_id
        step = functools.partial(_execute, settings=settings, attempts=settings.step_attempts)
        undo = functools.partial(
            _execute, settings=settings, attempts=settings.compensation_attempts
        )
        self._stage = "charging"
        charged: int = await saga.step(
            lambda: step(
                OrderActivities.charge, keys.charge, oid, order.card_token, order.total_cents
            ),
            compensation=(
                "refund",
                lambda: undo(OrderActivities.refund, keys.refund, keys.charge, oid),
            ),
        )
        self._stage = "reserving"
        await saga.step(
            lambda: step(OrderActivities.reserve, keys.reserve, oid, order.items),
            compensation=("release", lambda: undo(OrderActivities.release, keys.reserve, oid)),
        )
        self._stage = "shipping"
        await saga.pivot(
            lambda: step(OrderActivities.ship, keys.ship, oid, order.address),
            compensation=(
                "cancel_shipment",
                lambda: undo(OrderActivities.cancel_shipment, keys.ship, oid),
            ),
        )
        return charged

    def _confirmation(
        self, order: Order, keys: OrderKeys, settings: SagaSettings
    ) -> Callable[[], Awaitable[Any]]:
        """The confirmation step; each execution gets its own activity id: confirm-1, ..."""
        tries = itertools.count(1)
        return lambda: _execute(
            OrderActivities.confirm,
            keys.confirm,
            order.order_id,
            order.email,
            settings=settings,
            attempts=_UNTIL_DONE,
            activity_id=f"confirm-{next(tries)}",
        )


def refuse_invalid(order: Order) -> None:
    """Fail the order at once if :func:`validate_order` refuses it; call it from workflow code.

    Raises a non-retryable ``ApplicationError`` of type ``InvalidOrder`` that says which
    field is wrong: retrying cannot mend the input, and no activity has run yet.
    """
    try:
        validate_order(order)
    except InvalidOrderError as err:
        raise ApplicationError(str(err), type="InvalidOrder", non_retryable=True) from None
