"""Workflows that call the downstream service: guarded, unguarded, and in a local loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ._config import BreakerConfig
    from ._downstream import DownstreamRequest
    from ._guard import BreakerOpenError, EntityBreaker, LocalBreaker
    from ._machine import Transition

Status = Literal["ok", "failed", "rejected", "fallback"]
"""How one guarded call ended."""


@dataclass(frozen=True)
class CallRequest:
    """A call to ``service`` through the breaker ``breaker``."""

    breaker: str
    config: BreakerConfig
    service: str
    payload: str = ""
    fallback: bool = False
    """Answer rejected or failed calls from a fallback instead of failing."""
    attempts: int = 1
    """Attempts the protected activity gets (its retry policy)."""


@dataclass(frozen=True)
class CallOutcome:
    """What a guarded call returned."""

    status: Status
    detail: str


_CALL_TIMEOUT = timedelta(seconds=10)


def _retry(attempts: int) -> RetryPolicy:
    return RetryPolicy(initial_interval=timedelta(milliseconds=20), maximum_attempts=attempts)


async def _fallback(error: Exception) -> CallOutcome:
    return CallOutcome("fallback", type(error).__name__)


@workflow.defn(name="GuardedCall")
class GuardedCallWorkflow:
    """One downstream call through the shared (entity) breaker."""

    @workflow.run
    async def run(self, request: CallRequest) -> CallOutcome:
        """Call the service unless the breaker is open."""
        breaker = EntityBreaker(request.breaker, request.config)
        try:
            result = await breaker.call(
                "downstream_call",
                DownstreamRequest(request.service, request.payload),
                fallback=_fallback if request.fallback else None,
                start_to_close_timeout=_CALL_TIMEOUT,
                retry_policy=_retry(request.attempts),
            )
        except BreakerOpenError as err:
            return CallOutcome("rejected", err.message)
        except ActivityError as err:
            return CallOutcome("failed", str(err.cause))
        if isinstance(result, CallOutcome):
            return result
        return CallOutcome("ok", str(result))


@workflow.defn(name="DirectCall")
class DirectCallWorkflow:
    """The same downstream call without a breaker (a baseline)."""

    @workflow.run
    async def run(self, request: CallRequest) -> CallOutcome:
        """Call the service."""
        try:
            result = await workflow.execute_activity(
                "downstream_call",
                DownstreamRequest(request.service, request.payload),
                result_type=str,
                start_to_close_timeout=_CALL_TIMEOUT,
                retry_policy=_retry(request.attempts),
            )
        except ActivityError as err:
            return CallOutcome("failed", str(err.cause))
        return CallOutcome("ok", result)


@dataclass(frozen=True)
class LoopRequest:
    """``calls`` calls to ``service`` from one workflow, ``pause_seconds`` apart."""

    config: BreakerConfig
    service: str
    calls: int
    pause_seconds: float = 1.0


@dataclass(frozen=True)
class LoopResult:
    """Each call's status and the in-workflow breaker's transitions."""

    statuses: list[Status] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)


@workflow.defn(name="LocalBreakerLoop")
class LocalBreakerLoopWorkflow:
    """A loop of calls inside one workflow, guarded by a :class:`LocalBreaker`."""

    @workflow.run
    async def run(self, request: LoopRequest) -> LoopResult:
        """Make the calls; a durable timer separates them."""
        breaker = LocalBreaker(f"{workflow.info().workflow_id}/local", request.config)
        statuses: list[Status] = []
        for i in range(request.calls):
            try:
                await breaker.call(
                    "downstream_call",
                    DownstreamRequest(request.service, f"call-{i}"),
                    start_to_close_timeout=_CALL_TIMEOUT,
                    retry_policy=_retry(1),
                )
                statuses.append("ok")
            except BreakerOpenError:
                statuses.append("rejected")
            except ActivityError:
                statuses.append("failed")
            await workflow.sleep(request.pause_seconds)
        return LoopResult(statuses, list(breaker.machine.state.transitions))
