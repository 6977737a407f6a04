"""Apply a closed run's parent close policies, which the time-skipping test server ignores.

A real Temporal server terminates (or asks to cancel) the child workflows a
run leaves open when it closes, as each child's ``ParentClosePolicy`` says.
The Java test server does not (``temporal-test-server`` never reads the
policy), so a fail-fast parent's children run on after it. Each of them, on
closing, takes a lock on the server's clock "to be unlocked by the parent"
(``TestWorkflowMutableStateImpl.processCompleteWorkflowExecution``, and the
same on failure, cancellation and time-out), and the parent, being closed,
never does: from then on the clock stops skipping, in the middle of whatever
runs next. :func:`close_orphans` does what the real server would have done, as
soon as the parent's history shows it closed, so what a run leaves behind
happens inside that run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import temporalio.client
from temporalio.api.enums.v1 import EventType, ParentClosePolicy
from temporalio.client import WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from ._embedded import shared_clock_unlock

_CHILD_ENDS = {
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: (
        "child_workflow_execution_completed_event_attributes"
    ),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: (
        "child_workflow_execution_failed_event_attributes"
    ),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: (
        "child_workflow_execution_canceled_event_attributes"
    ),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: (
        "child_workflow_execution_timed_out_event_attributes"
    ),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: (
        "child_workflow_execution_terminated_event_attributes"
    ),
}
_RUN_ENDS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    }
)

STARTING_CHILD_SECONDS = 5.0
"""How long a child whose start its closed parent asked for is looked for before it counts as
never started (the test server starts children after the request, in a shared thread pool)."""

CANCELLED_CHILD_SECONDS = 60.0
"""Seconds a child asked to cancel (``REQUEST_CANCEL``) has to close before it is terminated."""


@dataclass(frozen=True)
class OpenChild:
    """A child workflow its parent's run left open when it closed."""

    workflow_id: str
    run_id: str
    """``""`` if the parent had not seen the child start."""
    policy: ParentClosePolicy.ValueType
    """The child's ``ParentClosePolicy`` (``UNSPECIFIED`` means the default, terminate)."""


def children_left_open(history: WorkflowHistory) -> list[OpenChild]:
    """The children a run had started, or asked to start, and not seen close when it closed.

    A child whose start the run had asked for but not yet seen has no run id
    (``""``): the test server starts it all the same, after the parent closed.
    None for a run still open or one that continued as new (its children
    belong to the chain of runs, which goes on).
    """
    if not history.events or history.events[-1].event_type not in _RUN_ENDS:
        return []
    left: dict[int, OpenChild] = {}
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            asked = event.start_child_workflow_execution_initiated_event_attributes
            left[event.event_id] = OpenChild(asked.workflow_id, "", asked.parent_close_policy)
        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            child = event.child_workflow_execution_started_event_attributes
            if child.initiated_event_id in left:
                left[child.initiated_event_id] = dataclasses.replace(
                    left[child.initiated_event_id], run_id=child.workflow_execution.run_id
                )
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
            failed = event.start_child_workflow_execution_failed_event_attributes
            left.pop(failed.initiated_event_id, None)
        elif kind in _CHILD_ENDS:
            left.pop(getattr(event, _CHILD_ENDS[kind]).initiated_event_id, None)
    return list(left.values())


async def close_orphans(client: temporalio.client.Client, history: WorkflowHistory) -> int:
    """Apply the parent close policy of each child ``history``'s closed run left open.

    Terminates the children whose policy is terminate (the default), asks
    those whose policy is ``REQUEST_CANCEL`` to cancel and waits (at most
    :data:`CANCELLED_CHILD_SECONDS`, with the test server's clock free to skip)
    until they close, and leaves abandoned ones alone. On a real server, which
    applies the policies itself, this finds the children closed or closing and
    changes nothing. Returns how many children it terminated or cancelled.
    """
    acted = 0
    for child in children_left_open(history):
        if child.policy == ParentClosePolicy.PARENT_CLOSE_POLICY_ABANDON:
            continue
        if not child.run_id and not await _exists(client, child.workflow_id):
            continue  # never started
        handle = client.get_workflow_handle(child.workflow_id, run_id=child.run_id or None)
        try:
            if child.policy == ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL:
                await handle.cancel()
                if await _closes(client, handle, CANCELLED_CHILD_SECONDS):
                    acted += 1
                    continue
            await handle.terminate(reason="its parent closed (parent close policy)")
            acted += 1
        except RPCError:
            pass  # it closed meanwhile: nothing to apply
    return acted


async def _exists(client: temporalio.client.Client, workflow_id: str) -> bool:
    """Whether a child whose start its parent asked for appears (within a few seconds)."""
    deadline = time.monotonic() + STARTING_CHILD_SECONDS
    while True:
        try:
            await client.get_workflow_handle(workflow_id).describe()
            return True
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                return False
        await asyncio.sleep(0.05)


async def _closes(
    client: temporalio.client.Client,
    handle: temporalio.client.WorkflowHandle[Any, Any],
    limit: float,
) -> bool:
    """Whether the workflow closes within ``limit`` seconds, the test server's clock left free."""

    async def closed() -> bool:
        described = await handle.describe()
        return described.status != temporalio.client.WorkflowExecutionStatus.RUNNING

    async def wait() -> bool:
        deadline = time.monotonic() + limit
        while not await closed():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    shared = shared_clock_unlock(client)
    if shared is None:
        return await wait()
    async with shared.unlocked():
        return await wait()
