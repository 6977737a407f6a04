"""Reaching a breaker entity from outside workflow code: a client, and activities for workflows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import temporalio.client
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from ._config import BreakerConfig
from ._entity import AcquireResult, CircuitBreakerEntity, EntityStart, RecordRequest, entity_id
from ._machine import BreakerView, Transition

_RETRYABLE = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


class BreakerClient:
    """Sends Updates to the entity of breaker ``name``, starting it if it is missing.

    Each request is retried when it lands between two runs of the entity (it
    continued-as-new) or before the entity exists; acquire requests carry an
    idempotency key (also the Update id), so a retry gets the permit the first
    attempt got instead of a second one.
    """

    def __init__(
        self,
        client: temporalio.client.Client,
        name: str,
        config: BreakerConfig,
        *,
        task_queue: str,
        max_history_events: int = 10_000,
        entity: type[CircuitBreakerEntity] = CircuitBreakerEntity,
    ) -> None:
        self.client = client
        self.name = name
        self.id = entity_id(name)
        self.config = config
        self.task_queue = task_queue
        self.max_history_events = max_history_events
        self.entity = entity

    async def start(self) -> None:
        """Start the entity unless it already runs."""
        await self.client.start_workflow(
            self.entity.run,
            EntityStart(self.name, self.config, max_history_events=self.max_history_events),
            id=self.id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )

    async def _update(self, update: str, arg: Any, result_type: type, update_id: str | None) -> Any:
        handle = self.client.get_workflow_handle(self.id)
        for attempt in range(20):
            try:
                return await handle.execute_update(
                    update, arg, id=update_id, result_type=result_type
                )
            except RPCError as err:
                if err.status not in _RETRYABLE or attempt == 19:
                    raise
                if err.status == RPCStatusCode.NOT_FOUND:
                    await self.start()
                else:
                    await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def acquire(self, request_id: str) -> AcquireResult:
        """Ask for a permit; the same ``request_id`` always gets the same answer."""
        result: AcquireResult = await self._update(
            "acquire", request_id, AcquireResult, f"acquire-{request_id}"
        )
        return result

    async def record(self, permit_id: str, success: bool, duration: float) -> BreakerView:
        """Report the outcome of the call made under ``permit_id``."""
        view: BreakerView = await self._update(
            "record",
            RecordRequest(permit_id, success, duration),
            BreakerView,
            f"record-{permit_id}",
        )
        return view

    async def force_open(self, reason: str = "forced open") -> BreakerView:
        """Open the breaker until :meth:`reset`."""
        view: BreakerView = await self._update("force_open", reason, BreakerView, None)
        return view

    async def reset(self, reason: str = "reset") -> BreakerView:
        """Close the breaker and forget its window."""
        view: BreakerView = await self._update("reset", reason, BreakerView, None)
        return view

    async def observe(self) -> BreakerView:
        """The state with elapsed time applied (an Update, so strongly consistent)."""
        view: BreakerView = await self._update("observe", None, BreakerView, None)
        return view

    async def transitions(self) -> list[Transition]:
        """The latest recorded transitions (a Query)."""
        handle = self.client.get_workflow_handle(self.id)
        found: list[Transition] = await handle.query("transitions", result_type=list[Transition])
        return found


@dataclass(frozen=True)
class EntityAcquire:
    """Input of :func:`breaker_acquire`: which breaker, its config, and the idempotency key."""

    name: str
    config: BreakerConfig
    task_queue: str
    request_id: str


@dataclass(frozen=True)
class EntityRecord:
    """Input of :func:`breaker_record`."""

    name: str
    config: BreakerConfig
    task_queue: str
    permit_id: str
    success: bool
    duration: float


def _client_for(name: str, config: BreakerConfig, task_queue: str) -> BreakerClient:
    return BreakerClient(activity.client(), name, config, task_queue=task_queue)


@activity.defn(name="breaker_acquire")
async def breaker_acquire(request: EntityAcquire) -> AcquireResult:
    """Acquire a permit from the breaker entity on behalf of a workflow."""
    return await _client_for(request.name, request.config, request.task_queue).acquire(
        request.request_id
    )


@activity.defn(name="breaker_record")
async def breaker_record(request: EntityRecord) -> BreakerView:
    """Report a call's outcome to the breaker entity on behalf of a workflow."""
    return await _client_for(request.name, request.config, request.task_queue).record(
        request.permit_id, request.success, request.duration
    )


BREAKER_ACTIVITIES = (breaker_acquire, breaker_record)
"""The activities a worker serving :class:`~patterns.breaker.EntityBreaker` callers registers."""
