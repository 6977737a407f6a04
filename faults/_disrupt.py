"""How :class:`~faults.Restart` and :class:`~faults.Cancel` happen.

**Restart.** The activity side runs the attempt's body, then asks the workers
the fault plugin runs in this process to evict the workflow run from their
cache (``request_workflow_eviction`` of the SDK core). The workflow task that
delivers the result then finds no state for the run: the worker fetches the
whole history and replays it from the start, as a worker that took over from
a dead one would. Non-determinism on that replay is found on the task's first
attempt, so a worker with ``workflow_failure_exception_types`` covering
``NondeterminismError`` fails the run there.

**Restart(during_task=True).** The activity side records that the run is to
restart; in the workflow, a condition set up when the run started (only for
plans with such an entry) sees the record at the next workflow task, takes it
(so it happens once) and raises :class:`InjectedRestart`. An exception that is
not a Temporal failure fails the workflow *task*: the SDK core evicts the run,
and the server's retry of the task replays the history on a cold cache. The
history shows the restart as ``WorkflowTaskFailed`` naming
:class:`InjectedRestart`. The raise adds no command, so histories with it
replay like histories without it.

**Cancel.** The activity side asks a client to cancel the workflow run, then
holds the attempt until the workflow has handled the request (a workflow task
that started after it completed, read from the history), and ends the attempt
according to what the workflow did with the call (see :class:`~faults.Cancel`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import temporalio.activity
import temporalio.client
import temporalio.service
import temporalio.workflow
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ._disruptions import Cancel, Restart
from ._plan import FaultPlan, ScriptedPlan

INJECTED_RESTART_TYPE = "InjectedRestart"
"""``ApplicationError.type`` of a restart that found no worker to evict the run from."""

INJECTED_CANCEL_TYPE = "InjectedCancellation"
"""``ApplicationError.type`` of an attempt ended because its workflow cancelled the call."""

_POLL_FIRST = 0.01
_POLL_MAX = 0.2
_CANCEL_WAIT = 30.0
"""Seconds a :class:`Cancel` attempt waits for its workflow to handle the request at most."""


class InjectedRestart(RuntimeError):
    """Raised in workflow code to fail the workflow task: the worker evicts the run.

    A ``RuntimeError``, which the SDK treats as a workflow-task failure; a
    worker whose ``workflow_failure_exception_types`` covers ``RuntimeError``
    (or ``Exception``) would fail the workflow instead.
    """


_lock = threading.Lock()
_restarts: set[str] = set()
"""Runs (by run id) whose workflow is to restart at its next workflow task."""


def request_restart(run_id: str) -> None:
    """Ask the run's workflow, on a worker in this process, to restart at its next task."""
    with _lock:
        _restarts.add(run_id)


def _take_restart(run_id: str) -> bool:
    with _lock:
        if run_id in _restarts:
            _restarts.discard(run_id)
            return True
        return False


def may_restart(plan: FaultPlan) -> bool:
    """Whether ``plan`` has a ``Restart(during_task=True)`` entry (only scripted plans do)."""
    return isinstance(plan, ScriptedPlan) and any(
        isinstance(entry.fault, Restart) and entry.fault.during_task for entry in plan.faults
    )


def arm_restarts(plan: FaultPlan | None) -> None:
    """Inside a workflow starting under ``plan``: let a requested restart fail its next task.

    Does nothing unless ``plan`` has a ``Restart(during_task=True)`` entry.
    Otherwise starts a workflow task waiting on a condition that reads the
    restart record; the SDK evaluates it after every workflow task's jobs, and
    the one that finds the record raises
    :class:`InjectedRestart` out of that evaluation, which fails the task.
    """
    if plan is not None and may_restart(plan):
        _watch_restarts()


def _watch_restarts() -> None:
    run_id = temporalio.workflow.info().run_id

    def due() -> bool:
        if _take_restart(run_id):
            raise InjectedRestart(
                f"injected worker restart of run {run_id}: the workflow task fails, the "
                "worker evicts the run, and its next task replays the history from the start"
            )
        return False

    asyncio.get_running_loop().create_task(temporalio.workflow.wait_condition(due))


class _QuietRestarts(logging.Filter):
    """Drops the SDK's warning (with traceback) for a workflow task failed by a restart."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, InjectedRestart)


logging.getLogger("temporalio.worker._workflow_instance").addFilter(_QuietRestarts())


# --------------------------------------------------------------------------- eviction

_workers: list[Any] = []
"""Workers running in this process with the fault layer (see :func:`tracking`)."""


@contextlib.contextmanager
def tracking(worker: Any) -> Iterator[None]:
    """While the block runs, ``worker`` (a ``temporalio.worker.Worker``) can evict runs."""
    with _lock:
        _workers.append(worker)
    try:
        yield
    finally:
        with _lock:
            _workers.remove(worker)


def evict(run_id: str) -> int:
    """Ask every tracked worker to drop ``run_id`` from its cache; how many were asked.

    The SDK core evicts the run if the worker holds it (and ignores the request
    otherwise); the run's next workflow task then fetches the whole history and
    replays it from the start on a cold cache.
    """
    with _lock:
        workers = list({id(w): w for w in _workers}.values())
    asked = 0
    for worker in workers:
        bridge = getattr(worker, "_bridge_worker", None)
        if bridge is not None and hasattr(bridge, "request_workflow_eviction"):
            bridge.request_workflow_eviction(run_id)
            asked += 1
    return asked


# --------------------------------------------------------------------------- activity side


async def disrupt(
    fault: Restart | Cancel,
    body: Callable[[], Awaitable[Any]],
    client: temporalio.client.Client | None,
) -> Any:
    """Run an attempt under a disruption: ``body`` runs the activity (the next interceptor)."""
    info = temporalio.activity.info()
    if isinstance(fault, Restart):
        result = await body()
        if not info.workflow_run_id or info.is_local:
            return result  # a local activity's workflow is mid-task: nothing to evict between
        if fault.during_task:
            request_restart(info.workflow_run_id)
        elif not evict(info.workflow_run_id):
            raise ApplicationError(
                f"injected fault {fault.describe()} on {info.activity_type}: no worker with the "
                "fault plugin runs in this process to evict the workflow from; run the "
                "workflow's worker here, with FaultPlugin (the test harness does)",
                type=INJECTED_RESTART_TYPE,
                non_retryable=True,
            )
        return result
    if client is None or not info.workflow_id:
        raise ApplicationError(
            f"injected fault {fault.describe()} on {info.activity_type} has no client to "
            "cancel the workflow with; install the fault layer through FaultPlugin, which "
            "gives threaded activities their worker's client",
            type=INJECTED_CANCEL_TYPE,
            non_retryable=True,
        )
    if info.is_local:
        raise ApplicationError(
            f"injected fault {fault.describe()} on local activity {info.activity_type}: a "
            "local activity runs inside a workflow task, so where the workflow would see the "
            "cancellation depends on timing; put Cancel() on a (non-local) activity call",
            type=INJECTED_CANCEL_TYPE,
            non_retryable=True,
        )
    result = await body() if fault.body == "before" else None
    handle = client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
    await handle.cancel()
    abandoned = await _cancellation_handled(handle, info)
    if abandoned:
        raise ApplicationError(
            f"injected fault: workflow {info.workflow_id} cancelled while "
            f"{info.activity_type} attempt {info.attempt} was in flight; the workflow "
            "stopped waiting for it",
            type=INJECTED_CANCEL_TYPE,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,  # logged by the SDK at debug level
        )
    return result if fault.body == "before" else await body()


async def _cancellation_handled(
    handle: temporalio.client.WorkflowHandle[Any, Any], info: temporalio.activity.Info
) -> bool:
    """Wait until the workflow handled its cancellation; whether it gave up on this call.

    Handled: a workflow task completed after the ``WorkflowExecutionCancelRequested``
    event, or the run closed. Gave up: the history has a cancel request for this
    activity, or the run closed.
    """
    delay = _POLL_FIRST
    waited = 0.0
    while True:
        try:
            history = await handle.fetch_history()
        except temporalio.service.RPCError:
            history = None
        if history is not None:
            requested = started = handled = abandoned = False
            scheduled: int | None = None
            for event in history.events:
                kind = event.event_type
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    if event.activity_task_scheduled_event_attributes.activity_id == (
                        info.activity_id
                    ):
                        scheduled = event.event_id
                elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
                    attrs = event.activity_task_cancel_requested_event_attributes
                    abandoned = abandoned or attrs.scheduled_event_id == scheduled
                elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
                    requested = True
                elif requested and kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                    started = True  # a task that began after the request: it saw it
                elif started and kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    handled = True
                elif kind in _CLOSED:
                    return True
            if handled:
                return abandoned
        if waited >= _CANCEL_WAIT:
            return True  # the workflow never handled it: end the attempt anyway
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, _POLL_MAX)


_CLOSED = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }
)
