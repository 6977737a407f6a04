"""Deliberately broken order sagas: each breaks one saga invariant.

The simulations must catch every one of them, which shows each property can fail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from patterns._sqlite import transaction
    from patterns.saga import Order, OrderActivities, OrderResult, OrderSaga, Saga, SagaSettings
    from patterns.saga._saga import Compensation, SagaReport

T = TypeVar("T")


class NonIdempotentRefundActivities(OrderActivities):
    """Breaks exactly-once effects: every refund call pays out again."""

    @activity.defn(name="refund")
    def refund(self, key: str, charge_key: str, order_id: str) -> int:
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
class CompensateAfterStepSaga(OrderSaga):
    """Breaks atomicity: registers a compensation only once its step reported success."""

    async def run_step(
        self, saga: Saga, action: Callable[[], Awaitable[T]], compensation: tuple[str, Compensation]
    ) -> T:
        result = await action()
        saga.add_compensation(*compensation)
        return result

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        return await super().run(order, settings)


class _FifoSaga(Saga):
    def _compensation_order(self) -> list[Any]:
        return list(self._entries)


@workflow.defn(sandboxed=False)
class FirstInFirstOutSaga(OrderSaga):
    """Breaks reverse order: compensates first-in first-out."""

    def new_saga(self, settings: SagaSettings) -> Saga:
        return _FifoSaga(super().new_saga(settings).options)

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        return await super().run(order, settings)


class _NoPivotSaga(Saga):
    async def pivot(self, action: Any, *, compensation: Any = None) -> Any:
        return await self.step(action, compensation=compensation)

    async def complete(self, action: Callable[[], Awaitable[T]]) -> T:
        return await action()


@workflow.defn(sandboxed=False)
class NoPivotSaga(OrderSaga):
    """Breaks the pivot: the confirmation gets ordinary retries and may fail the order."""

    def new_saga(self, settings: SagaSettings) -> Saga:
        return _NoPivotSaga(super().new_saga(settings).options)

    def post_pivot_attempts(self, settings: SagaSettings) -> int:
        return settings.step_attempts

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        return await super().run(order, settings)


class _SilentSaga(Saga):
    async def compensate(self) -> SagaReport:
        try:
            return await super().compensate()
        except Exception:
            return SagaReport()


@workflow.defn(sandboxed=False)
class SilentCompensationSaga(OrderSaga):
    """Breaks reporting: a compensation that fails for good is swallowed."""

    def new_saga(self, settings: SagaSettings) -> Saga:
        return _SilentSaga(super().new_saga(settings).options)

    @workflow.run
    async def run(self, order: Order, settings: SagaSettings) -> OrderResult:
        return await super().run(order, settings)
