"""Deliberately broken order sagas: each breaks one saga invariant.

Every variant runs :func:`process_order`: the order logic of
:class:`~patterns.saga.OrderSaga` (validate, check the catalog, screen; charge,
reserve, ship as the pivot; confirm until sent; compensate on failure), written
from the public :class:`~patterns.saga.Saga` helper and the public activities,
with exactly one deliberate :class:`Breakage`. :class:`FaithfulOrderSaga` runs
it with no breakage and must hold every invariant, so each variant is caught
for its one change. :class:`NonIdempotentRefundActivities` breaks a service
instead, under the unchanged :class:`~patterns.saga.OrderSaga`.

The simulations must catch every variant, which shows each property can fail.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from patterns._sqlite import transaction
    from patterns.saga import (
        COMPENSATION_ACTIVITIES,
        FRAUD_LIMIT_CENTS,
        FRAUD_SCREEN_PATCH,
        Compensation,
        CompensationOutcome,
        Order,
        OrderActivities,
        OrderKeys,
        OrderResult,
        Saga,
        SagaCompensationError,
        SagaOptions,
        SagaReport,
        SagaSettings,
        order_failure,
        refuse_invalid,
    )


class Breakage(enum.Enum):
    """The one deliberate change a variant makes to the order logic."""

    NONE = "none"
    """The order logic as :class:`~patterns.saga.OrderSaga` runs it."""
    COMPENSATE_AFTER_STEP = "compensate after step"
    """A compensation is registered only once its step reported success."""
    FIRST_IN_FIRST_OUT = "first in, first out"
    """Compensations run in the order of their steps."""
    NO_PIVOT = "no pivot"
    """Shipping commits nothing: the confirmation is an ordinary step, compensated on failure."""
    SILENT_COMPENSATION = "silent compensation"
    """A compensation that failed for good is swallowed; the order fails as compensated."""
    LYING_COMPENSATION = "lying compensation"
    """No compensation runs; every one is reported as failed."""
    UNCONFIRMED_COMPLETION = "unconfirmed completion"
    """The confirmation gets ordinary retries; when they run out the order completes unsent."""
    UNREPORTED_COMPENSATION = "unreported compensation"
    """A failed order names none of the compensations that completed."""
    LIMIT_IN_DOLLARS = "limit in dollars"
    """A spending limit in cents compared with a total in dollars: large orders fail, undone."""
    UNCOMPENSATED_CANCELLATION = "uncompensated cancellation"
    """A cancelled order stops where it is: nothing it did is undone."""
    SCREEN_ALONGSIDE_CHARGE = "screen alongside charge"
    """The fraud screen runs alongside the charge, to save a round trip: an order the screen
    refuses is charged first, then refunded."""
    STALE_STAGE = "stale stage"
    """The ``stage`` query is not moved on while compensating: a failed order still says it
    is at the step that failed."""
    VALIDATES_LATE = "validates late"
    """The order is validated after its SKUs are checked in the catalog: an invalid order
    calls the inventory service before it is refused."""
    SCREENED_ONCE_PER_PROCESS = "screened once per process"
    """The fraud screen is skipped for an order its worker process has screened before (a
    module-level set, emptied as the order ends): only a replay from a cold cache in the
    middle of the order takes that path, and it no longer matches the history."""


_SCREENED: set[str] = set()
"""Orders screened in this process, for :attr:`Breakage.SCREENED_ONCE_PER_PROCESS`."""


def _execute(
    method: Callable[..., Any],
    *args: Any,
    settings: SagaSettings,
    attempts: int,
    activity_id: str | None = None,
) -> Awaitable[Any]:
    """One activity call with the order saga's timeout and a retry policy of ``attempts``."""
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


async def _step(
    saga: Saga,
    breakage: Breakage,
    action: Callable[[], Awaitable[Any]],
    compensation: tuple[str, Compensation],
) -> Any:
    """Run one forward step; its compensation is registered first (or, broken, after)."""
    if breakage is Breakage.COMPENSATE_AFTER_STEP:
        result = await action()
        saga.add_compensation(*compensation)
        return result
    return await saga.step(action, compensation=compensation)


async def _compensate(
    saga: Saga, breakage: Breakage, registered: list[tuple[str, Compensation]]
) -> SagaReport:
    """Undo the registered steps as ``breakage`` says (correctly: ``saga.compensate()``)."""
    if breakage is Breakage.FIRST_IN_FIRST_OUT:
        fifo = Saga(saga.options)  # last in, first out over the reversed list
        for name, compensation in reversed(registered):
            fifo.add_compensation(name, compensation)
        return await fifo.compensate()
    if breakage is Breakage.SILENT_COMPENSATION:
        try:
            return await saga.compensate()
        except SagaCompensationError:
            return SagaReport()
    if breakage is Breakage.LYING_COMPENSATION:
        outcomes = (
            CompensationOutcome(n, "failed", "unavailable") for n in COMPENSATION_ACTIVITIES
        )
        raise SagaCompensationError(SagaReport(tuple(outcomes)))
    return await saga.compensate()


class StagedOrder:
    """The ``stage`` query, answered as :class:`~patterns.saga.OrderSaga` answers it; every
    variant is one, and :func:`process_order` moves it on."""

    def __init__(self) -> None:
        self.now = "received"

    @workflow.query
    def stage(self) -> str:
        """Where the order is: received, charging, ..., compensated, confirming, completed."""
        return self.now


async def process_order(
    order: Order, settings: SagaSettings, breakage: Breakage, staged: StagedOrder
) -> OrderResult:
    """OrderSaga's order logic with one deliberate ``breakage``; call it from workflow code.

    ``staged`` is the workflow, whose ``stage`` query this moves on as the order goes.
    """
    if breakage is not Breakage.VALIDATES_LATE:
        refuse_invalid(order)
    step = functools.partial(_execute, settings=settings, attempts=settings.step_attempts)
    undo = functools.partial(_execute, settings=settings, attempts=settings.compensation_attempts)
    await step(OrderActivities.check_catalog, [item.sku for item in order.items])
    if breakage is Breakage.VALIDATES_LATE:
        refuse_invalid(order)
    screened_once = breakage is Breakage.SCREENED_ONCE_PER_PROCESS
    screening: Awaitable[Any] | None = None
    if workflow.patched(FRAUD_SCREEN_PATCH):
        screen = functools.partial(
            step, OrderActivities.screen, order.order_id, order.email, order.total_cents
        )
        if breakage is Breakage.SCREEN_ALONGSIDE_CHARGE:
            screening = asyncio.ensure_future(screen())
        elif not (screened_once and order.order_id in _SCREENED):
            await screen()
        if screened_once:
            _SCREENED.add(order.order_id)

    keys = OrderKeys.for_workflow(workflow.info().workflow_id)
    oid = order.order_id
    saga = Saga(
        SagaOptions(
            parallel_compensation=settings.parallel_compensation,
            continue_on_error=settings.continue_on_error,
            completion_backoff=timedelta(milliseconds=settings.retry_interval_ms),
            max_completion_backoff=timedelta(seconds=30),
        )
    )
    compensations: list[tuple[str, Compensation]] = [
        ("refund", lambda: undo(OrderActivities.refund, keys.refund, keys.charge, oid)),
        ("release", lambda: undo(OrderActivities.release, keys.reserve, oid)),
        ("cancel_shipment", lambda: undo(OrderActivities.cancel_shipment, keys.ship, oid)),
    ]
    registered: list[tuple[str, Compensation]] = []
    confirm_ids = (f"confirm-{n}" for n in itertools.count(1))

    def confirm(attempts: int) -> Awaitable[Any]:
        return _execute(
            OrderActivities.confirm,
            keys.confirm,
            oid,
            order.email,
            settings=settings,
            attempts=attempts,
            activity_id=next(confirm_ids),
        )

    try:
        staged.now = "charging"
        registered.append(compensations[0])
        charged: int = await _step(
            saga,
            breakage,
            lambda: step(
                OrderActivities.charge, keys.charge, oid, order.card_token, order.total_cents
            ),
            compensations[0],
        )
        if screening is not None:
            await screening
        if breakage is Breakage.LIMIT_IN_DOLLARS and order.total_cents > FRAUD_LIMIT_CENTS // 100:
            raise ApplicationError(f"order {oid} is over the limit", non_retryable=True)
        staged.now = "reserving"
        registered.append(compensations[1])
        await _step(
            saga,
            breakage,
            lambda: step(OrderActivities.reserve, keys.reserve, oid, order.items),
            compensations[1],
        )
        staged.now = "shipping"
        registered.append(compensations[2])
        ship = functools.partial(step, OrderActivities.ship, keys.ship, oid, order.address)
        if breakage is Breakage.NO_PIVOT:
            await _step(saga, breakage, ship, compensations[2])
            await confirm(settings.step_attempts)
        else:
            await saga.pivot(ship, compensation=compensations[2])
    except (Exception, asyncio.CancelledError) as err:
        cancelled = isinstance(err, asyncio.CancelledError) or is_cancelled_exception(err)
        if breakage is Breakage.UNCOMPENSATED_CANCELLATION and cancelled:
            raise
        stale = breakage is Breakage.STALE_STAGE
        staged.now = staged.now if stale else "compensating"
        report = await _compensate(saga, breakage, registered)
        staged.now = staged.now if stale else "compensated"
        _SCREENED.discard(oid)  # (an eviction, ending the compensations, never gets here)
        if isinstance(err, asyncio.CancelledError):
            raise
        compensated = [] if breakage is Breakage.UNREPORTED_COMPENSATION else report.compensated
        raise order_failure(oid, err, compensated) from err

    staged.now = "confirming"
    if breakage is Breakage.UNCONFIRMED_COMPLETION:
        try:
            await confirm(settings.step_attempts)
        except ActivityError:
            workflow.logger.warning("order %s completes without its confirmation", oid)
    elif breakage is not Breakage.NO_PIVOT:
        await saga.complete(lambda: confirm(0))  # 0: retried until it succeeds
    _SCREENED.discard(oid)
    staged.now = "completed"
    return OrderResult(oid, "completed", charged, keys.ship, keys.confirm)


@workflow.defn(sandboxed=False)
class FaithfulOrderSaga(StagedOrder):
    """:func:`process_order` unbroken: holds every invariant, as OrderSaga does."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` as OrderSaga does."""
        return await process_order(order, settings, Breakage.NONE, self)


@workflow.defn(sandboxed=False)
class CompensateAfterStepSaga(StagedOrder):
    """Breaks atomicity: registers a compensation only once its step reported success.

    Only a step whose completion is lost on every attempt (it committed, then
    failed for good) exposes it: that step is never undone.
    """

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.COMPENSATE_AFTER_STEP`."""
        return await process_order(order, settings, Breakage.COMPENSATE_AFTER_STEP, self)


@workflow.defn(sandboxed=False)
class FirstInFirstOutSaga(StagedOrder):
    """Breaks reverse order: compensates first-in first-out."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.FIRST_IN_FIRST_OUT`."""
        return await process_order(order, settings, Breakage.FIRST_IN_FIRST_OUT, self)


@workflow.defn(sandboxed=False)
class NoPivotSaga(StagedOrder):
    """Breaks the pivot: a failed confirmation cancels a shipment that already exists."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.NO_PIVOT`."""
        return await process_order(order, settings, Breakage.NO_PIVOT, self)


@workflow.defn(sandboxed=False)
class SilentCompensationSaga(StagedOrder):
    """Breaks reporting: a compensation that fails for good is swallowed."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.SILENT_COMPENSATION`."""
        return await process_order(order, settings, Breakage.SILENT_COMPENSATION, self)


@workflow.defn(sandboxed=False)
class LyingCompensationSaga(StagedOrder):
    """Breaks atomicity behind a self-report: runs no compensation, reports all as failed.

    An oracle that took the workflow's ``SagaCompensationError`` details as the
    truth would excuse every step it left committed.
    """

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.LYING_COMPENSATION`."""
        return await process_order(order, settings, Breakage.LYING_COMPENSATION, self)


@workflow.defn(sandboxed=False)
class UnconfirmedCompletionSaga(StagedOrder):
    """Breaks the post-pivot steps: completes the order although its confirmation was never sent."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.UNCONFIRMED_COMPLETION`."""
        return await process_order(order, settings, Breakage.UNCONFIRMED_COMPLETION, self)


class NonIdempotentRefundActivities(OrderActivities):
    """Breaks exactly-once effects: every refund call pays out again."""

    @activity.defn(name="refund")
    def refund(self, key: str, charge_key: str, order_id: str) -> int:
        """Refund the charge again on every call (the bug)."""
        with transaction(self.services.connection()) as conn:
            row = conn.execute(
                "SELECT amount_cents FROM charges WHERE key = ?", (charge_key,)
            ).fetchone()
            if row is None:
                return 0
            seq = conn.execute("SELECT COUNT(*) FROM refunds WHERE charge_key = ?", (charge_key,))
            conn.execute(
                "INSERT INTO refunds (key, charge_key, order_id, amount_cents) VALUES (?, ?, ?, ?)",
                (f"{key}#{seq.fetchone()[0]}", charge_key, order_id, row[0]),
            )
            conn.execute(
                "INSERT INTO journal (op, key, order_id, effect) "
                "VALUES ('refund', ?, ?, 'applied')",
                (key, order_id),
            )
        return int(row[0])


@workflow.defn(sandboxed=False)
class UnreportedCompensationSaga(StagedOrder):
    """Breaks the report: a failed order says it compensated nothing, whatever it undid."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.UNREPORTED_COMPENSATION`."""
        return await process_order(order, settings, Breakage.UNREPORTED_COMPENSATION, self)


@workflow.defn(sandboxed=False)
class LimitInDollarsSaga(StagedOrder):
    """Breaks failure for a cause: an order over a mistaken limit fails though no step refused."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.LIMIT_IN_DOLLARS`."""
        return await process_order(order, settings, Breakage.LIMIT_IN_DOLLARS, self)


@workflow.defn(sandboxed=False)
class UncompensatedCancellationSaga(StagedOrder):
    """Breaks atomicity under cancellation: a cancelled order undoes nothing.

    Only a cancellation that arrives after a step committed exposes it.
    """

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.UNCOMPENSATED_CANCELLATION`."""
        return await process_order(order, settings, Breakage.UNCOMPENSATED_CANCELLATION, self)


@workflow.defn(sandboxed=False)
class ScreenAlongsideChargeSaga(StagedOrder):
    """Breaks screening: the charge is scheduled before the fraud screen has answered."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.SCREEN_ALONGSIDE_CHARGE`."""
        return await process_order(order, settings, Breakage.SCREEN_ALONGSIDE_CHARGE, self)


@workflow.defn(sandboxed=False)
class StaleStageSaga(StagedOrder):
    """Breaks the stage query: a failed order still says it is at the step that failed."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.STALE_STAGE`."""
        return await process_order(order, settings, Breakage.STALE_STAGE, self)


@workflow.defn(sandboxed=False)
class ValidatesLateSaga(StagedOrder):
    """Breaks refusal before any side effect: an invalid order is checked in the catalog first."""

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.VALIDATES_LATE`."""
        return await process_order(order, settings, Breakage.VALIDATES_LATE, self)


@workflow.defn(sandboxed=False)
class ScreenedOncePerProcessSaga(StagedOrder):
    """Breaks atomicity on a worker restart: the order's replay from a cold cache diverges.

    The first run of the order and a replay of its whole history after it ended agree; a
    restart after a step committed replays the order while it is still open, in a process
    that remembers screening it, and the order fails there with nothing undone.
    """

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        """Process ``order`` with :attr:`Breakage.SCREENED_ONCE_PER_PROCESS`."""
        return await process_order(order, settings, Breakage.SCREENED_ONCE_PER_PROCESS, self)
