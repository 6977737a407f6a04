"""What scripted sagas draw, what the helper's documentation says they must do, and the check.

:func:`expect` is the model: from a :class:`~simulations.saga_scripts.Script`
and the call a cancellation arrives at, what the documentation of
:class:`~patterns.saga.Saga` promises (the defaults it states, last-in
first-out compensation, stop or go on after a failure, the error listing every
unfinished compensation, completion retries that double their backoff up to
the bound, a cancellation during compensation re-raised after it). It shares
no code with the helper. :func:`check_run` compares it with the evidence: the
journal of committed effects (SQLite) and the workflow history (how the run
closed, its failure or result, its timers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import temporalio.client
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure

from .saga_scripts import ErrorSpec, OptionsSpec, Script, StepSpec, label_of, undo_label

DEFAULTS = OptionsSpec(
    parallel_compensation=False,
    continue_on_error=True,
    completion_backoff_ms=1_000,
    max_completion_backoff_ms=300_000,
)
"""The defaults :class:`~patterns.saga.SagaOptions` documents, written down independently."""

CANCELLED = ErrorSpec("CancelledError", "")
"""Stands for the cancellation as the error that ended the steps."""

Status = Literal["completed", "failed", "cancelled"]


@dataclass
class Expected:
    """What a script must do: the journal, how the run closes, its failure or result, timers."""

    journal: list[str] = field(default_factory=list)
    """Labels committed by the steps (and their retries), in order."""
    undone: list[str] = field(default_factory=list)
    """Labels committed by compensations: in this order, or in any order when parallel."""
    parallel: bool = False
    status: Status = "completed"
    failure: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    timers: list[timedelta] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    """Every activity call the run makes, in order: where a cancellation may be drawn."""


EMPTY_MESSAGE = "Application error"
"""What the SDK's failure converter makes of an application error with no message."""


def describe(error: ErrorSpec) -> str:
    """How the helper documents a failed compensation's error: the innermost type and message
    (the class name when the error has no type)."""
    return f"{error.type or 'ApplicationError'}: {error.message or EMPTY_MESSAGE}"


def expect(script: Script, cancel: str | None = None) -> Expected:
    """The model: what ``script`` must do when the workflow is cancelled at call ``cancel``."""
    options = script.options or DEFAULTS
    out = Expected(parallel=options.parallel_compensation)
    steps = script.steps
    last = len(steps) - 1 if script.pivot is None else script.pivot
    registered: list[StepSpec] = []
    ended: ErrorSpec | None = None
    for step in steps[: last + 1]:
        if step.compensated:
            registered.append(step)
        out.calls.append(label_of(step))
        if label_of(step) == cancel:
            ended = CANCELLED
            break
        if step.fails is not None:
            ended = step.fails
            break
        out.journal.append(label_of(step))
    if ended is None:
        for step in steps[last + 1 :]:
            wait = timedelta(milliseconds=options.completion_backoff_ms)
            bound = timedelta(milliseconds=options.max_completion_backoff_ms)
            for n in range(1, step.failures + 2):
                out.calls.append(label_of(step, n))
                if n > step.failures:
                    out.journal.append(label_of(step, n))
                else:
                    out.timers.append(wait)
                    wait = min(wait * 2, bound)
        out.result = {"committed": script.pivot is not None}
        return out

    outcomes: list[tuple[str, str, str]] = []
    stopped = cancelled_while_compensating = False
    for step in reversed(registered):
        label = undo_label(step.name)  # the compensation's name, activity id and journal label
        if stopped:
            outcomes.append((label, "skipped", ""))
            continue
        out.calls.append(label)
        cancelled_while_compensating |= label == cancel
        if step.undo_fails is None:
            outcomes.append((label, "done", ""))
            out.undone.append(label)
        else:
            outcomes.append((label, "failed", describe(step.undo_fails)))
            stopped = not options.parallel_compensation and not options.continue_on_error
    unfinished = [o for o in outcomes if o[1] != "done"]
    reraised_cancel = cancelled_while_compensating and not script.twice
    failure: dict[str, Any] | None = None
    if unfinished:
        listing = "; ".join(
            f"{name} {status}" + (f" ({error})" if error else "")
            for name, status, error in unfinished
        )
        failure = {
            "type": "SagaCompensationError",
            "message": f"{len(unfinished)} compensation(s) did not complete: {listing}",
            "non_retryable": True,
            "details": [{"name": n, "status": s, "error": e} for n, s, e in unfinished],
        }
    if script.handling == "report":
        if reraised_cancel and not unfinished:
            out.status = "cancelled"
        else:
            out.result = {
                "compensated": [name for name, status, _ in outcomes if status == "done"],
                "outcomes": [list(o) for o in outcomes],
            }
    elif unfinished:
        out.status, out.failure = "failed", failure
    elif ended is CANCELLED or reraised_cancel:
        out.status = "cancelled"
    else:
        out.status = "failed"
        out.failure = {"cause_type": ended.type, "message": ended.message or EMPTY_MESSAGE}
    return out


# --------------------------------------------------------------------------- strategies

errors = st.builds(
    ErrorSpec,
    type=st.sampled_from([None, "Refused", "OutOfStock"]),
    message=st.sampled_from(["", "refused", "nothing left to reserve"]),
)
"""Application errors of a step or compensation, with and without a type or a message."""

undo_errors = st.builds(
    ErrorSpec,
    type=st.sampled_from([None, "Refused", "OutOfStock"]),
    message=st.sampled_from(["", "refused", "nothing left to reserve"]),
    wrapped=st.booleans(),
)
"""Errors of a compensation: :data:`errors`, raised by the activity or wrapped by the
workflow code around it."""

_given_options = st.builds(
    OptionsSpec,
    parallel_compensation=st.booleans(),
    continue_on_error=st.booleans(),
    completion_backoff_ms=st.integers(1, 5_000),
    max_completion_backoff_ms=st.integers(1, 20_000),
)
options_specs = st.one_of(st.none(), _given_options, _given_options)
"""No options (the helper's defaults) in a third of the draws, or any valid ones."""


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """Scripts that shrink toward one step, no pivot, no failure and the default options."""
    options = draw(options_specs)
    # A list, not a drawn count: the shrinker deletes a step with the draws that made it.
    shapes = draw(
        st.lists(
            st.tuples(st.booleans().map(lambda b: not b), st.none() | undo_errors),
            min_size=1,
            max_size=4,
        )
    )
    count = len(shapes)
    failing = draw(st.none() | st.integers(0, count - 1))
    steps = [
        StepSpec(
            f"s{index}",
            compensated=compensated,
            fails=draw(errors) if index == failing else None,
            undo_fails=undo_fails,
        )
        for index, (compensated, undo_fails) in enumerate(shapes)
    ]
    pivot = count - 1 if draw(st.booleans()) else None
    if pivot is not None:
        most = 4 if options is not None else 10  # the defaults double up to their 300 s bound
        retried = draw(st.lists(st.tuples(st.integers(0, most), errors), max_size=3))
        steps += [
            StepSpec(f"s{count + n}", False, error, None, failures)
            for n, (failures, error) in enumerate(retried)
        ]
    handling: Literal["raise", "report"] = draw(st.sampled_from(["raise", "report"]))
    return Script(tuple(steps), pivot, options, handling, draw(st.booleans()))


@st.composite
def scripted_runs(draw: st.DrawFn) -> tuple[Script, str | None]:
    """A script and the call the workflow is cancelled at (or none), among the calls it makes."""
    script = draw(scripts())
    calls = expect(script).calls
    steps = {label_of(step) for step in script.steps}
    # Half the runs are cancelled: one in eight at a step, which costs about 1.5 s (the
    # abandoned activity leaves the test server's clock held, so the server is replaced);
    # three in eight at a compensation or a retry after the pivot, which the workflow
    # shields, about 50 ms like an uncancelled run.
    where = draw(st.integers(0, 7))
    late = [call for call in calls if call not in steps]
    if where == 4 or (where > 4 and not late):
        return script, draw(st.sampled_from([call for call in calls if call in steps]))
    if where > 4:
        return script, draw(st.sampled_from(late))
    return script, None


# --------------------------------------------------------------------------- evidence


@dataclass
class Observed:
    """What the history says of one run."""

    status: str
    failure: BaseException | None
    result: Any
    timers: list[timedelta]


_CLOSES = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed out",
}


async def observe(client: temporalio.client.Client, workflow_id: str) -> Observed:
    """Read how a closed run ended, its failure or result, and its timers, from its history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    converter = client.data_converter
    seen = Observed("open", None, None, [])
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timeout = event.timer_started_event_attributes.start_to_fire_timeout
            seen.timers.append(timeout.ToTimedelta())
        elif kind in _CLOSES:
            seen.status = _CLOSES[kind]
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            copy = Failure()
            copy.CopyFrom(event.workflow_execution_failed_event_attributes.failure)
            seen.failure = await converter.decode_failure(copy)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            payloads = event.workflow_execution_completed_event_attributes.result.payloads
            seen.result = (await converter.decode(payloads))[0] if payloads else None
    return seen


def _failure(error: BaseException | None) -> dict[str, Any] | None:
    if error is None:
        return None
    cause = getattr(error, "cause", None)
    if getattr(error, "type", None) == "SagaCompensationError":
        return {
            "type": "SagaCompensationError",
            "message": getattr(error, "message", str(error)),
            "non_retryable": getattr(error, "non_retryable", None),
            "details": list(getattr(error, "details", ())),
        }
    if cause is not None and type(error).__name__ == "ActivityError":
        return {"cause_type": getattr(cause, "type", None), "message": cause.message}
    return {"type": getattr(error, "type", type(error).__name__), "message": str(error)}


def _ms(timers: list[timedelta]) -> list[int]:
    """Durations to the millisecond: the history keeps 4.047 s as 4.046999 s."""
    return [round(timer / timedelta(milliseconds=1)) for timer in timers]


def check_run(expected: Expected, journal: list[str], seen: Observed) -> dict[str, Any]:
    """The promises the run broke: each name with what was expected and what was seen."""
    broken: dict[str, Any] = {}
    undone = [label for label in journal if label.startswith("undo-")]
    done = [label for label in journal if not label.startswith("undo-")]
    if done != expected.journal:
        broken["steps committed"] = (expected.journal, done)
    in_order = undone if not expected.parallel else sorted(undone)
    wanted = expected.undone if not expected.parallel else sorted(expected.undone)
    if in_order != wanted:
        broken["compensations committed"] = (wanted, in_order)
    if seen.status != expected.status:
        broken["closed"] = (expected.status, seen.status)
    elif expected.status == "failed" and _failure(seen.failure) != expected.failure:
        broken["failure"] = (expected.failure, _failure(seen.failure))
    elif expected.status == "completed" and seen.result != expected.result:
        broken["result"] = (expected.result, seen.result)
    if _ms(seen.timers) != _ms(expected.timers):
        broken["completion retries' timers"] = (expected.timers, seen.timers)
    return broken
