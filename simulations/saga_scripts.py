"""Scripted sagas: workflows that drive the :class:`~patterns.saga.Saga` helper as a script says.

The order saga passes every option and uses the helper one way; a team copying
the helper uses its defaults, other step lists, other error handling. A
:class:`Script` says which steps run (each with or without a compensation, one
of them perhaps the pivot), which steps and compensations fail and with what
error, how often each step after the pivot fails before it succeeds, the
options (or none, for the defaults), and how the workflow handles a failure
(re-raise it, or return the report). Every step, compensation and retry is an
activity that journals its label in SQLite when it succeeds, so the oracle in
:mod:`simulations.saga_script_model` reads what happened from the journal and
the history. The broken helpers below must be caught by the same property.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from patterns._sqlite import open_database, transaction
    from patterns.saga import Saga, SagaCompensationError, SagaOptions, SagaReport
    from patterns.saga._saga import _finish, _outcome

_SCHEMA = "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, run TEXT, label TEXT);"


@dataclass(frozen=True)
class ErrorSpec:
    """The application error an activity raises (non-retryable): its type and message."""

    type: str | None
    message: str
    wrapped: bool = False
    """For a compensation: the workflow code around the activity raises a plain exception
    chained to the activity's error (``raise RuntimeError(...) from err``), so the error
    the helper sees has a ``__cause__`` and no ``cause``; the helper still describes the
    activity's error, innermost in the chain."""


@dataclass(frozen=True)
class StepSpec:
    """One step. Before the pivot (or at it) it may fail and may have a compensation, which
    may fail; after the pivot it fails ``failures`` times before it succeeds."""

    name: str
    compensated: bool = True
    fails: ErrorSpec | None = None
    undo_fails: ErrorSpec | None = None
    failures: int = 0


@dataclass(frozen=True)
class OptionsSpec:
    """:class:`~patterns.saga.SagaOptions`, with the backoffs in milliseconds."""

    parallel_compensation: bool
    continue_on_error: bool
    completion_backoff_ms: int
    max_completion_backoff_ms: int

    def options(self) -> SagaOptions:
        """The helper's options this spec describes."""
        return SagaOptions(
            self.parallel_compensation,
            self.continue_on_error,
            timedelta(milliseconds=self.completion_backoff_ms),
            timedelta(milliseconds=self.max_completion_backoff_ms),
        )


@dataclass(frozen=True)
class Script:
    """What a scripted saga does; see the module docstring."""

    steps: tuple[StepSpec, ...]
    pivot: int | None = None
    """Index of the pivot step; the steps after it run through ``Saga.complete``."""
    options: OptionsSpec | None = None
    """``None``: the helper's defaults (``Saga()``)."""
    handling: Literal["raise", "report"] = "raise"
    """``raise``: compensate, then re-raise; ``report``: compensate and return the report."""
    twice: bool = False
    """Call ``compensate()`` a second time after a first call whose error is swallowed."""


def label_of(step: StepSpec, execution: int = 0) -> str:
    """The activity id (and journal label) of a step, or of its ``execution``-th retry."""
    return f"{step.name}#{execution}" if execution else step.name


def undo_label(name: str) -> str:
    """The activity id (and journal label) of a step's compensation."""
    return f"undo-{name}"


class Journal:
    """The services' side: activities that journal their label when they succeed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def labels(self, run: str) -> list[str]:
        """Labels journaled for ``run``, in commit order."""
        conn = open_database(self.path, _SCHEMA)
        try:
            rows = conn.execute("SELECT label FROM journal WHERE run = ? ORDER BY seq", (run,))
            return [row[0] for row in rows]
        finally:
            conn.close()

    @activity.defn(name="scripted_effect")
    def effect(self, run: str, label: str, error: ErrorSpec | None) -> None:
        """Journal ``label``, or raise ``error`` (non-retryable) without any effect."""
        if error is not None:
            raise ApplicationError(error.message, type=error.type, non_retryable=True)
        with transaction(open_database(self.path, _SCHEMA)) as conn:
            conn.execute("INSERT INTO journal (run, label) VALUES (?, ?)", (run, label))


def _call(label: str, error: ErrorSpec | None) -> Callable[[], Awaitable[Any]]:
    return lambda: workflow.execute_activity(
        "scripted_effect",
        args=[workflow.info().workflow_id, label, error],
        activity_id=label,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RetryPolicy(maximum_attempts=1),
    )


def _compensation(label: str, error: ErrorSpec | None) -> Callable[[], Awaitable[Any]]:
    """A step's compensation: the activity call, or workflow code wrapping its error."""
    call = _call(label, error)
    if error is None or not error.wrapped:
        return call

    async def wrapping() -> Any:
        try:
            return await call()
        except ActivityError as err:
            raise RuntimeError(f"{label} gave up") from err

    return wrapping


def _executions(step: StepSpec) -> Callable[[], Awaitable[Any]]:
    """A step after the pivot: each call is a new execution, failing the first ``failures``."""
    executions = itertools.count(1)

    def execution() -> Awaitable[Any]:
        n = next(executions)
        return _call(label_of(step, n), step.fails if n <= step.failures else None)()

    return execution


async def run_script(saga: Saga, script: Script) -> dict[str, Any]:
    """The workflow body: run ``script`` with ``saga``.

    Returns whether the saga committed (its pivot succeeded), or with ``handling="report"``
    after a failure the compensation report; both are claims the oracle checks.
    """
    steps = script.steps
    last = len(steps) - 1 if script.pivot is None else script.pivot
    try:
        for index, step in enumerate(steps[: last + 1]):
            undo = (
                (undo_label(step.name), _compensation(undo_label(step.name), step.undo_fails))
                if step.compensated
                else None
            )
            run = saga.pivot if index == script.pivot else saga.step
            await run(_call(label_of(step), step.fails), compensation=undo)
    except (Exception, asyncio.CancelledError):
        if script.twice:
            try:
                await saga.compensate()
            except (SagaCompensationError, asyncio.CancelledError):
                pass
        if script.handling == "raise":
            await saga.compensate()
            raise
        try:
            report = await saga.compensate()
        except SagaCompensationError as err:
            report = err.report
        return {
            "compensated": report.compensated,
            "outcomes": [[o.name, o.status, o.error] for o in report.outcomes],
        }
    for step in steps[last + 1 :]:
        await saga.complete(_executions(step))
    return {"committed": saga.committed}


def _saga(saga_type: type[Saga], script: Script) -> Saga:
    options = script.options
    return saga_type() if options is None else saga_type(options.options())


@workflow.defn
class ScriptedSaga:
    """The helper as shipped, run as a script says."""

    @workflow.run
    async def run(self, script: Script) -> dict[str, Any]:
        """Run ``script``; see :func:`run_script`."""
        return await run_script(_saga(Saga, script), script)


class _GoesOnPastFailures(Saga):
    async def _compensate_all(self) -> SagaReport:
        for entry in self._compensation_order():
            await self._compensate_one(entry)
        return SagaReport(tuple(_outcome(e) for e in self._compensation_order()))


class _ConstantBackoff(Saga):
    async def complete(self, action: Any) -> Any:
        while True:  # Saga.complete, without the doubling
            try:
                result, _ = await _finish(asyncio.ensure_future(action()))
                return result
            except Exception:
                pass
            await _finish(asyncio.ensure_future(workflow.sleep(self.options.completion_backoff)))


class _ForgetsCancellation(Saga):
    async def compensate(self) -> SagaReport:
        try:
            return await super().compensate()
        except asyncio.CancelledError:
            return SagaReport()


@workflow.defn
class GoesOnPastFailuresSaga:
    """Broken: keeps compensating after a failure although ``continue_on_error`` is off."""

    @workflow.run
    async def run(self, script: Script) -> dict[str, Any]:
        """Run ``script`` with the broken helper."""
        return await run_script(_saga(_GoesOnPastFailures, script), script)


@workflow.defn
class ConstantBackoffSaga:
    """Broken: retries a step after the pivot at the first backoff for ever (no doubling)."""

    @workflow.run
    async def run(self, script: Script) -> dict[str, Any]:
        """Run ``script`` with the broken helper."""
        return await run_script(_saga(_ConstantBackoff, script), script)


@workflow.defn
class ForgetsCancellationSaga:
    """Broken: a cancellation that arrives while compensating is swallowed, not re-raised."""

    @workflow.run
    async def run(self, script: Script) -> dict[str, Any]:
        """Run ``script`` with the broken helper."""
        return await run_script(_saga(_ForgetsCancellation, script), script)


BROKEN = (GoesOnPastFailuresSaga, ConstantBackoffSaga, ForgetsCancellationSaga)

__all__ = [
    "BROKEN",
    "ErrorSpec",
    "Journal",
    "OptionsSpec",
    "Script",
    "ScriptedSaga",
    "StepSpec",
    "label_of",
    "run_script",
    "undo_label",
]
