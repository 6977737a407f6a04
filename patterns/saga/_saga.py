"""A saga helper for workflow code: compensations, pivot, and completion.

Register a step's compensation *before* running the step, so a step whose
outcome is unknown (it timed out, or its completion was lost) is still undone;
compensations must therefore be safe to run when their step never committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

T = TypeVar("T")

Compensation = Callable[[], Awaitable[Any]]
"""A compensation: a zero-argument coroutine function, typically running an activity."""


class SagaError(RuntimeError):
    """The saga was used out of order (e.g. a compensation added after the pivot)."""


@dataclass(frozen=True)
class SagaOptions:
    """How a :class:`Saga` compensates.

    ``parallel_compensation`` runs every compensation at once instead of last-in first-out.
    ``continue_on_error`` keeps compensating past a failing compensation; without it the
    first failure stops the run and the ones not run are reported as skipped. Before its
    first retry :meth:`Saga.complete` waits ``completion_backoff``, then twice the last
    wait each time, at most ``max_completion_backoff``. Defaults: False, True, 1 s, 5 min.
    """

    parallel_compensation: bool = False
    continue_on_error: bool = True
    completion_backoff: timedelta = timedelta(seconds=1)
    max_completion_backoff: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        for name in ("parallel_compensation", "continue_on_error"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"SagaOptions.{name}={getattr(self, name)!r} must be True or False"
                )
        for name in ("completion_backoff", "max_completion_backoff"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise ValueError(f"SagaOptions.{name}={value!r} must be a positive timedelta")


@dataclass(frozen=True)
class CompensationOutcome:
    """How one compensation ended: ``done``, ``failed`` (with ``error``) or ``skipped``."""

    name: str
    status: Literal["done", "failed", "skipped"]
    error: str = ""


@dataclass(frozen=True)
class SagaReport:
    """What :meth:`Saga.compensate` did, in the order compensations were started."""

    outcomes: tuple[CompensationOutcome, ...] = ()

    @property
    def compensated(self) -> list[str]:
        """Names of compensations that completed."""
        return [o.name for o in self.outcomes if o.status == "done"]

    @property
    def failed(self) -> list[CompensationOutcome]:
        """Compensations that failed or were skipped after a failure."""
        return [o for o in self.outcomes if o.status != "done"]


class SagaCompensationError(ApplicationError):
    """One or more compensations failed (or were skipped); every one is listed.

    Fails the workflow (non-retryable) with type ``SagaCompensationError`` and
    one detail per unfinished compensation: ``{"name", "status", "error"}``.
    """

    def __init__(self, report: SagaReport) -> None:
        failed = report.failed
        listing = "; ".join(
            f"{o.name} {o.status}" + (f" ({o.error})" if o.error else "") for o in failed
        )
        super().__init__(
            f"{len(failed)} compensation(s) did not complete: {listing}",
            *[{"name": o.name, "status": o.status, "error": o.error} for o in failed],
            type="SagaCompensationError",
            non_retryable=True,
        )
        self.report = report


def describe_error(error: BaseException) -> str:
    """The innermost message of a Temporal failure chain, prefixed with its type."""
    inner: BaseException = error
    while True:
        nxt = getattr(inner, "cause", None) or inner.__cause__
        if nxt is None or nxt is inner:
            break
        inner = nxt
    kind = getattr(inner, "type", None) or type(inner).__name__
    message = getattr(inner, "message", None) or str(inner)
    return f"{kind}: {message}" if message else kind


async def _finish(task: asyncio.Future[T]) -> tuple[T, bool]:
    """Await ``task`` to its end even if the caller is cancelled meanwhile.

    Returns the result and whether a cancellation arrived while waiting.
    """
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True


@dataclass
class _Entry:
    name: str
    compensation: Compensation
    state: Literal["registered", "running", "done", "failed", "skipped"] = "registered"
    error: str = ""


def _outcome(entry: _Entry) -> CompensationOutcome:
    if entry.state == "done" or entry.state == "failed":
        return CompensationOutcome(entry.name, entry.state, entry.error)
    return CompensationOutcome(entry.name, "skipped", entry.error)


@dataclass
class Saga:
    """Compensations for workflow code, each run at most once.

    Typical use: ``await saga.step(charge, compensation=("refund", refund))``
    for each step (the compensation is registered first), ``await
    saga.pivot(...)`` for the point of no return, and on any failure
    ``await saga.compensate()`` before re-raising.

    On failure (or cancellation) call :meth:`compensate`: it runs every
    registered compensation last-in first-out (or in parallel), at most once
    however often it is called, keeps going while the workflow is being
    cancelled, and raises :class:`SagaCompensationError` listing every
    compensation that did not complete. After :meth:`pivot` succeeds the saga
    is committed: nothing is compensated and :meth:`complete` retries the
    remaining steps until they succeed.
    """

    options: SagaOptions = field(default_factory=SagaOptions)
    _entries: list[_Entry] = field(default_factory=list, init=False)
    _run: asyncio.Task[SagaReport] | None = field(default=None, init=False)
    _committed: bool = field(default=False, init=False)

    @property
    def committed(self) -> bool:
        """Whether the pivot step succeeded."""
        return self._committed

    @property
    def registered(self) -> list[str]:
        """Names of the registered compensations, oldest first."""
        return [entry.name for entry in self._entries]

    def add_compensation(self, name: str, compensation: Compensation) -> None:
        """Register ``compensation`` under a unique ``name``; call it before its step runs."""
        if self._committed:
            raise SagaError(f"compensation {name!r} added after the pivot; nothing is undone then")
        if self._run is not None:
            raise SagaError(f"compensation {name!r} added while the saga is compensating")
        if name in self.registered:
            raise SagaError(f"compensation {name!r} is already registered; names must be unique")
        self._entries.append(_Entry(name, compensation))

    async def step(
        self,
        action: Callable[[], Awaitable[T]],
        *,
        compensation: tuple[str, Compensation] | None = None,
    ) -> T:
        """Register ``compensation`` (name, function), then run ``action``."""
        if compensation is not None:
            self.add_compensation(*compensation)
        return await action()

    async def pivot(
        self,
        action: Callable[[], Awaitable[T]],
        *,
        compensation: tuple[str, Compensation] | None = None,
    ) -> T:
        """Run the pivot step; once it succeeds the saga is committed."""
        result = await self.step(action, compensation=compensation)
        self._committed = True
        return result

    async def complete(self, action: Callable[[], Awaitable[T]]) -> T:
        """After the pivot, retry ``action`` until it succeeds (cancellation does not stop it)."""
        if not self._committed:
            raise SagaError("complete() runs steps after the pivot; call pivot() first")
        backoff = self.options.completion_backoff
        while True:
            task = asyncio.ensure_future(action())
            try:
                result, _ = await _finish(task)
                return result
            except asyncio.CancelledError:
                raise
            except Exception as err:
                workflow.logger.warning("step after the pivot failed, retrying: %s", err)
            await _finish(asyncio.ensure_future(workflow.sleep(backoff)))
            backoff = min(backoff * 2, self.options.max_completion_backoff)

    async def compensate(self) -> SagaReport:
        """Undo every registered step, at most once; see the class docstring.

        Returns the report when every compensation completed, raises
        :class:`SagaCompensationError` otherwise. If the workflow was cancelled
        while compensating, re-raises the cancellation after a clean run.
        """
        if self._committed:
            return SagaReport()
        if self._run is None:
            self._run = asyncio.ensure_future(self._compensate_all())
        report, cancelled = await _finish(self._run)
        if report.failed:
            raise SagaCompensationError(report)
        if cancelled:
            raise asyncio.CancelledError()
        return report

    def _compensation_order(self) -> list[_Entry]:
        return list(reversed(self._entries))

    async def _compensate_all(self) -> SagaReport:
        entries = self._compensation_order()
        if self.options.parallel_compensation:
            await asyncio.gather(*(self._compensate_one(entry) for entry in entries))
        else:
            for entry in entries:
                if entry.state == "registered":
                    await self._compensate_one(entry)
                if entry.state == "failed" and not self.options.continue_on_error:
                    for rest in entries:
                        if rest.state == "registered":
                            rest.state = "skipped"
                    break
        return SagaReport(tuple(_outcome(e) for e in entries))

    async def _compensate_one(self, entry: _Entry) -> None:
        if entry.state != "registered":
            return
        entry.state = "running"
        try:
            await entry.compensation()
        except Exception as err:
            entry.state, entry.error = "failed", describe_error(err)
            workflow.logger.warning("compensation %s failed: %s", entry.name, entry.error)
        else:
            entry.state = "done"
