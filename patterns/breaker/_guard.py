"""Guarded calls for workflow code: the entity-backed breaker and the in-workflow one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ._client import EntityAcquire, EntityRecord, breaker_acquire, breaker_record
    from ._config import BreakerConfig
    from ._entity import AcquireResult
    from ._machine import BreakerMachine, Permit, Rejected

BREAKER_OPEN_TYPE = "CircuitBreakerOpen"
"""``ApplicationError.type`` of :class:`BreakerOpenError`."""

Fallback = Callable[[Exception], Awaitable[Any]]
"""Called with the rejection or the call's failure; its result is returned instead."""


class BreakerOpenError(ApplicationError):
    """The breaker rejected the call, so the protected activity was never scheduled."""

    def __init__(self, name: str, rejected: Rejected) -> None:
        when = "" if rejected.retry_at is None else f"; retry after {rejected.retry_at:.3f}"
        super().__init__(
            f"circuit breaker {name!r} is {rejected.state}{when}",
            rejected.state,
            rejected.retry_at,
            type=BREAKER_OPEN_TYPE,
            non_retryable=True,
        )
        self.rejected = rejected


class GuardedBreaker:
    """What both breakers share: acquire, call the activity, report, fall back."""

    name: str

    async def _acquire(self) -> Permit | Rejected:
        raise NotImplementedError

    async def _record(self, permit: Permit, success: bool, duration: float) -> None:
        raise NotImplementedError

    async def call(
        self,
        activity: Callable[..., Any] | str,
        *args: Any,
        fallback: Fallback | None = None,
        **activity_options: Any,
    ) -> Any:
        """Run ``activity`` through the breaker; options go to ``workflow.execute_activity``.

        While the breaker is open the activity is not scheduled: the call raises
        :class:`BreakerOpenError` at once (or returns ``await fallback(error)``).
        A failed activity is reported and re-raised (or handed to ``fallback``).
        The call's duration is measured on the workflow clock, so replay agrees.
        """
        decision = await self._acquire()
        if isinstance(decision, Rejected):
            error = BreakerOpenError(self.name, decision)
            if fallback is None:
                raise error
            return await fallback(error)
        started = workflow.now()
        try:
            value = await workflow.execute_activity(activity, args=list(args), **activity_options)
        except ActivityError as err:
            await self._record(decision, False, (workflow.now() - started).total_seconds())
            if fallback is None:
                raise
            return await fallback(err)
        await self._record(decision, True, (workflow.now() - started).total_seconds())
        return value


class EntityBreaker(GuardedBreaker):
    """A breaker shared by every workflow that names it: the durable entity behind it.

    Workflow code cannot send an Update, so permits travel through two short
    activities (:func:`breaker_acquire`, :func:`breaker_record`) that send the
    Update with the worker's client; each acquire carries a ``workflow.uuid4()``
    idempotency key, so an activity retry never takes a second permit. The
    worker must register :data:`BREAKER_ACTIVITIES`; the entity runs on
    ``task_queue`` (default: the calling workflow's).
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        *,
        task_queue: str | None = None,
        timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self.name = name
        self.config = config
        self.task_queue = task_queue or workflow.info().task_queue
        self._options: dict[str, Any] = {
            "start_to_close_timeout": timeout,
            "retry_policy": RetryPolicy(
                initial_interval=timedelta(milliseconds=50), maximum_interval=timedelta(seconds=2)
            ),
        }

    async def _acquire(self) -> Permit | Rejected:
        request = EntityAcquire(self.name, self.config, self.task_queue, str(workflow.uuid4()))
        answer: AcquireResult = await workflow.execute_activity(
            breaker_acquire, request, **self._options
        )
        decision = answer.permit or answer.rejected
        assert decision is not None
        return decision

    async def _record(self, permit: Permit, success: bool, duration: float) -> None:
        request = EntityRecord(
            self.name, self.config, self.task_queue, permit.id, success, duration
        )
        await workflow.execute_activity(breaker_record, request, **self._options)


class LocalBreaker(GuardedBreaker):
    """A breaker kept inside one workflow, for loops of calls within that workflow.

    Deterministic (it reads only ``workflow.now()``), free of extra activities,
    and gone when the workflow ends; nothing is shared with other workflows.
    """

    def __init__(self, name: str, config: BreakerConfig) -> None:
        self.name = name
        self.machine = BreakerMachine(config)

    async def _acquire(self) -> Permit | Rejected:
        return self.machine.acquire(workflow.now().timestamp())

    async def _record(self, permit: Permit, success: bool, duration: float) -> None:
        self.machine.record(permit.id, success, duration, workflow.now().timestamp())
