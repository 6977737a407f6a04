"""Workflows for the worker-restart and cancellation tests.

* ``TwoSteps``: two activities in a row, deterministic.
* ``FailsEveryTask``: a bug that fails its workflow task on every attempt.
* ``ColdReplayDiverges``: chooses its first activity from a module global that
  its first execution sets, so it behaves the same while its worker keeps it
  cached and differently when a cold worker replays it (unsandboxed, so the
  global outlives one execution, as a process-wide cache would).
* ``Booking`` / ``BookingUndoAfterStep``: three steps, each undone in reverse
  when the booking is cancelled or fails; the first registers each undo before
  its step runs, the second (the planted bug) only after the step returned.

Activities record their effects in :data:`EFFECTS` by workflow id (idempotent:
an effect is recorded once however often the body runs).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

EFFECTS: dict[str, list[str]] = {}
"""Effects applied, by workflow id, in order: ``"book:a"``, ``"undo:a"``, ..."""
_lock = threading.Lock()

SEEN: set[str] = set()
"""Workflow ids ``ColdReplayDiverges`` has run before in this process."""


def _apply(effect: str) -> None:
    workflow_id = activity.info().workflow_id or ""
    with _lock:
        effects = EFFECTS.setdefault(workflow_id, [])
        if effect not in effects:
            effects.append(effect)


@activity.defn
async def first_step(label: str) -> str:
    """Records ``first:<label>``."""
    _apply(f"first:{label}")
    return label


@activity.defn
async def second_step(label: str) -> str:
    """Records ``second:<label>``."""
    _apply(f"second:{label}")
    return label


@activity.defn
async def other_first_step(label: str) -> str:
    """What ``ColdReplayDiverges`` calls first when it has seen its id before."""
    _apply(f"other:{label}")
    return label


@activity.defn
def book(item: str) -> None:
    """Books ``item`` (a threaded activity, as the saga's are)."""
    _apply(f"book:{item}")


@activity.defn
def undo(item: str) -> None:
    """Undoes the booking of ``item``."""
    _apply(f"undo:{item}")


RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=3)
ITEMS = ("a", "b", "c")


async def _call(fn: Callable[[str], Any], arg: str) -> Any:
    return await workflow.execute_activity(
        fn, arg, start_to_close_timeout=timedelta(seconds=5), retry_policy=RETRY
    )


@workflow.defn
class TwoSteps:
    """``first_step`` then ``second_step``."""

    @workflow.run
    async def run(self, label: str) -> str:
        return f"{await _call(first_step, label)}{await _call(second_step, label)}"


@workflow.defn
class FailsEveryTask:
    """Planted bug: raises a plain exception, which fails its workflow task every time."""

    @workflow.run
    async def run(self, label: str) -> str:
        raise RuntimeError(f"a bug in workflow code ({label})")


@workflow.defn
class LocalThenRemote:
    """``first_step`` as a local activity, then ``second_step``."""

    @workflow.run
    async def run(self, label: str) -> str:
        a = await workflow.execute_local_activity(
            first_step, label, start_to_close_timeout=timedelta(seconds=5)
        )
        return f"{a}{await _call(second_step, label)}"


@workflow.defn(sandboxed=False)
class ColdReplayDiverges:
    """Planted bug: what it calls first depends on state its worker process keeps."""

    @workflow.run
    async def run(self, label: str) -> str:
        seen_before = workflow.info().workflow_id in SEEN
        SEEN.add(workflow.info().workflow_id)
        first = other_first_step if seen_before else first_step
        return f"{await _call(first, label)}{await _call(second_step, label)}"


class _Booking:
    undo_before_step = True

    def __init__(self) -> None:
        self.begun: list[str] = []

    @workflow.query
    def steps_begun(self) -> list[str]:
        """The items whose booking began (a claim the run makes of itself)."""
        return list(self.begun)

    async def book_all(self) -> None:
        begun = self.begun
        try:
            for item in ITEMS:
                if self.undo_before_step:
                    begun.append(item)
                await _call(book, item)
                if not self.undo_before_step:
                    begun.append(item)
        except (Exception, asyncio.CancelledError):
            for item in reversed(begun):  # undo in reverse; a cancellation arrives only once
                await _call(undo, item)
            raise


@workflow.defn
class Booking(_Booking):
    """Books a, b, c; cancelled or failed, it undoes every step it began, in reverse."""

    @workflow.run
    async def run(self) -> None:
        await self.book_all()


@workflow.defn
class BookingUndoAfterStep(_Booking):
    """Planted bug: a step's undo is registered after the step returned."""

    undo_before_step = False

    @workflow.run
    async def run(self) -> None:
        await self.book_all()


def booking_violations(workflow_id: str, completed: bool) -> dict[str, str]:
    """The invariant, from the recorded effects: all booked, or nothing left booked.

    ``completed`` says how the run closed, read from its history by the caller.
    """
    effects = EFFECTS.get(workflow_id, [])
    booked = {e.split(":")[1] for e in effects if e.startswith("book:")}
    undone = {e.split(":")[1] for e in effects if e.startswith("undo:")}
    if completed and (booked != set(ITEMS) or undone):
        return {"completion": f"completed with {sorted(booked)} booked, {sorted(undone)} undone"}
    if not completed and booked - undone:
        return {"atomicity": f"ended with {sorted(booked - undone)} still booked"}
    return {}
