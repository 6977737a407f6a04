"""A run whose workflow task keeps failing: found in seconds, not at the run's time limit.

A workflow task that fails (an exception in workflow code, or non-determinism on a
replay from a cold cache that the worker does not turn into a workflow failure) is
retried by the server for as long as the run lives. The SDK core reports the
failure of a task's first attempt only; later attempts are left to time out
(``WorkflowTaskTimedOut``, start-to-close, 10 s by default) and are tried again.
Nothing ends such a run: in production it waits for a fix to be deployed. A
harness that only waits for the result meets it at its time limit, minutes later,
with nothing to say but that the run was open.

:func:`stuck_run` watches a run while its result is awaited, from its history (the
time-skipping test server writes every attempt) and from its description (a
Temporal server writes a retried task's failures to the history only once, and
counts the attempts in ``pending_workflow_task``), and returns what failed once
the task has failed :data:`STUCK_AFTER` times in a row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Literal

import temporalio.client
import temporalio.service
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent

STUCK_AFTER = 2
"""Failed attempts in a row of one workflow task that make its run stuck.

One failed attempt is ordinary (a worker restart, a completion the server turned
down because new events arrived); see :func:`stuck_failures` for which second one
makes a run stuck."""

DESCRIBED_ATTEMPT = 4
"""A pending workflow task's attempt, read from the run's description, at which the
run is stuck: three failures in a row, of whatever cause (the description does not
say which; a Temporal server keeps the history of a retried task's failures to the
first)."""

FIRST_LOOK = 5.0
"""Seconds into a run before it is first looked at: a stuck task needs its second
attempt to time out (10 s) before it shows, so shorter runs are never looked at."""

LOOK_EVERY = 2.0
"""Seconds between looks at a run that goes on, at least."""

LOOK_SHARE = 0.05
"""The largest share of a run's time its looks take: a long history takes longer to read,
so a run of tens of thousands of events is looked at less often (the pause after a look
is at least its own time over this share)."""

_REFUSED = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND


class StuckRun(RuntimeError):
    """A run whose workflow task failed :data:`STUCK_AFTER` times in a row; it was terminated.

    ``failures`` says, oldest first, how each attempt failed.
    """

    def __init__(self, workflow_id: str, failures: tuple[str, ...], survey: str = "") -> None:
        self.workflow_id = workflow_id
        self.failures = failures
        listed = "\n".join(f"  attempt {n}: {f}" for n, f in enumerate(failures, start=1))
        super().__init__(
            f"workflow {workflow_id} is stuck: its workflow task failed {len(failures)} times "
            "in a row and the server retries it for as long as the run lives (an exception in "
            "workflow code, or non-determinism on a replay that the worker does not turn into "
            "a workflow failure); it was terminated.\n" + listed + (f"\n{survey}" if survey else "")
        )


def failing_task(events: Iterable[HistoryEvent]) -> tuple[str, ...]:
    """How the attempts of the run's current workflow task failed, oldest first.

    Empty once a task completes. A start-to-close timeout counts (the worker took the
    task and never answered: the SDK does not report a retried task's failure); a
    schedule-to-start timeout does not (no worker took it).
    """
    return tuple(text for text, _ in _failures(events))


_Failure = tuple[str, Literal["failed", "refused", "unanswered"]]


def _failures(events: Iterable[HistoryEvent]) -> list[_Failure]:
    """:func:`failing_task`'s failures, each with its kind: a failure the worker reported, a
    completion the server refused (``UNHANDLED_COMMAND``), or an attempt left unanswered."""
    failures: list[_Failure] = []
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            failures = []
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = event.workflow_task_failed_event_attributes
            cause = WorkflowTaskFailedCause.Name(attrs.cause).removeprefix(
                "WORKFLOW_TASK_FAILED_CAUSE_"
            )
            message = attrs.failure.message.split("\n")[0][:300]
            text = f"failed ({cause}): {message}".rstrip(": ")
            failures.append((text, "refused" if attrs.cause == _REFUSED else "failed"))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            attrs_t = event.workflow_task_timed_out_event_attributes
            if attrs_t.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE:
                failures.append(
                    ("timed out: the worker took the task and never answered", "unanswered")
                )
    return failures


def stuck_failures(events: Iterable[HistoryEvent]) -> tuple[str, ...]:
    """:func:`failing_task`'s failures if they make the run stuck, else ``()``.

    Stuck: :data:`STUCK_AFTER` failures in a row, the last an attempt left unanswered
    (after a failure, the SDK's way of not reporting one again), or two of them not
    completions the server refused. A refusal (``UNHANDLED_COMMAND``: new events
    arrived while the task ran) is ordinary in a busy run, even twice in a row or after
    an injected restart, and the next attempt completes.
    """
    failures = _failures(events)
    if len(failures) < STUCK_AFTER:
        return ()
    not_refused = sum(kind != "refused" for _, kind in failures)
    if failures[-1][1] == "unanswered" or not_refused >= STUCK_AFTER:
        return tuple(text for text, _ in failures)
    return ()


async def stuck_run(client: temporalio.client.Client, workflow_id: str) -> tuple[str, ...]:
    """Return, once the workflow's latest run is stuck, how its workflow task failed.

    Never returns for a run that is not stuck: the caller races it against the
    run's result and cancels it when the result comes. A look that fails (a server
    being replaced) is tried again at the next one.
    """
    handle = client.get_workflow_handle(workflow_id)
    clock = asyncio.get_running_loop().time
    await asyncio.sleep(FIRST_LOOK)
    while True:
        began = clock()
        try:
            history = await handle.fetch_history()
            events = list(history.events)
            failures = stuck_failures(events)
            if failures:
                return failures
            described = await handle.describe()
            pending = described.raw_description.pending_workflow_task
            if pending.attempt >= DESCRIBED_ATTEMPT:
                seen = failing_task(events) or ("failed (see the worker's log)",)
                unseen = pending.attempt - 1 - len(seen)
                return (*seen, *["failed or timed out (not in the history)"] * unseen)
        except temporalio.service.RPCError:
            pass
        await asyncio.sleep(max(LOOK_EVERY, (clock() - began) / LOOK_SHARE))
