"""The saga invariants, checked from the services database and the workflow history.

Evidence comes from two places the workflow cannot talk round: the services'
SQLite database (the ledger: charges, refunds, reservations, shipments,
confirmations, stock; and the journal of every service call and its effect,
``applied``, ``replayed`` or ``noop``, in call order), and the workflow's
history as the server recorded it (the input settings; each activity's
scheduling, and whether it completed or failed for good once its retries ran
out; how the workflow closed). What the workflow reports about itself, the
compensations a ``SagaCompensationError`` lists as unfinished, is a *claim*: it
excuses a step left committed only where the history and the journal back it.

A claim that compensation C did not complete is **backed** when C's step was
attempted (history), and either C failed for good (its activity's last event is
``ActivityTaskFailed`` or ``ActivityTaskTimedOut``, written only after its
retries) and the claim says ``failed``; or C was never scheduled and never
journaled, the claim says ``skipped``, and the history's settings allow it:
compensations run one at a time without ``continue_on_error``, and one that
runs before C failed for good.

1. **semantic atomicity** (journal, history): a completed order applied every
   step and neither scheduled (history) nor journaled a compensation; an order
   that did not complete has each applied step's compensation applied
   (journal), or a backed claim for it.
2. **compensations in reverse order** (journal, history): when compensations
   run one at a time (the settings in the history), the first journal entry of
   each, and their scheduling in the history, follow reverse step order.
3. **exactly-once effects** (ledger, journal, stock): nothing applied twice,
   refunds within charges, stock conserved; a completed order is charged its
   total, holds its items and one live shipment; an order that did not
   complete holds no net charge, reservation or live shipment except behind a
   backed claim for the compensation that would undo it.
4. **nothing compensated after the pivot** (history, journal): once ``ship``
   completed, the workflow completed and no compensation was scheduled or
   journaled.
5. **failed compensations reported, and only those** (history against the
   claims): every compensation that failed for good is reported as failed, and
   every reported one is backed; an order failed as compensated (``OrderFailed``,
   or a cancelled activity) names exactly the compensations that completed; an
   order that failed once its first step (``charge``) was scheduled fails with
   ``OrderFailed`` (a check before it fails with its own error).
6. **post-pivot steps done** (journal, ledger, history): a completed order's
   confirmation was applied exactly once and a ``confirm`` activity completed;
   an order that did not complete sent none.
7. **failed only for a cause** (history): an order that failed (compensated or
   not) has a forward step (``check_catalog``, ``screen``, ``charge``,
   ``reserve``, ``ship``) that failed for good: a business refusal, or a fault
   that outlasted its retries; or, for one whose compensation failed, a
   request to cancel it. An order that no step refused completes, and one
   ends cancelled only if its cancellation was requested. An invalid order
   (the input, checked with ``validate_order``) fails at once: ``InvalidOrder``,
   non-retryable, with no activity scheduled (history) and nothing journaled.
8. **charged only once screened** (history, journal): the charge is scheduled
   only after a screen completed; an order over the fraud limit never reaches
   the payment service and never completes.
9. **says where it ended** (history against the claim): the ``stage`` query of
   a closed order (a claim, answered by a replay of its history, when the
   caller asked it: :func:`observe_run`'s ``answers``) agrees with
   how the history says it ended: ``completed``; ``received`` if it ended
   before the charge was scheduled; ``compensating`` if a compensation failed
   for good; ``compensated`` if it failed once charged, or ``compensating``
   too if it was cancelled (the cancellation may meet the compensations).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import temporalio.client
import temporalio.service
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError, CancelledError

from .._checks import InvariantCheck
from ._activities import COMPENSATION_ACTIVITIES, STEP_ACTIVITIES
from ._orders import make_catalog, make_order
from ._saga import CompensationOutcome
from ._services import FRAUD_LIMIT_CENTS, OrderLedger, OrderServices
from ._types import InvalidOrderError, LineItem, Order, SagaSettings, validate_order

RunStatus = Literal["completed", "failed", "compensation_failed", "cancelled"]
"""How an order saga ended, as its history records it."""

ActivityEnd = Literal["completed", "failed", "cancelled", "open"]
"""How one scheduled activity ended: ``failed`` covers failing or timing out for good."""

_ACTIVITY_ENDS: dict[EventType.ValueType, tuple[str, ActivityEnd]] = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("activity_task_completed", "completed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed", "failed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("activity_task_timed_out", "failed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: ("activity_task_canceled", "cancelled"),
}

_UNDO = dict(zip(STEP_ACTIVITIES, COMPENSATION_ACTIVITIES, strict=True))
_STEP_OF = {comp: step for step, comp in _UNDO.items()}


@dataclass(frozen=True)
class ScheduledActivity:
    """One activity the workflow scheduled, and how its history ends."""

    name: str
    activity_id: str
    ended: ActivityEnd
    attempts: int
    """The last attempt the history records (0 if no attempt ended)."""
    scheduled_event: int = 0
    """The id of its ``ActivityTaskScheduled`` event."""
    ended_event: int = 0
    """The id of the event that ended it (0 while open)."""


@dataclass(frozen=True)
class SagaRun:
    """One order saga run as its history records it.

    ``status``, ``error_type``, ``settings`` and ``activities`` are the
    server's record. ``claims`` is the workflow's own report (the details of a
    ``SagaCompensationError``): evidence of nothing until checked against the
    rest.
    """

    workflow_id: str
    status: RunStatus
    error_type: str
    settings: SagaSettings
    activities: tuple[ScheduledActivity, ...]
    """Every scheduled activity, in scheduling order."""
    claims: tuple[CompensationOutcome, ...] = ()
    claimed_compensated: tuple[str, ...] | None = None
    """The compensations the failure *claims* completed (its ``compensated`` detail), if any."""
    cancel_requested: bool = False
    """Whether the history records a request to cancel the run."""
    non_retryable: bool = False
    """Whether the failure that closed the run is marked non-retryable (history)."""
    stage: str | None = None
    """What the run's ``stage`` query answers once closed: a *claim* (``None`` if unanswered,
    or, with no ``stage_error``, not asked)."""
    stage_error: str = ""
    """Why the ``stage`` query got no answer ('' when it did)."""

    @property
    def stage_asked(self) -> bool:
        """Whether the ``stage`` claim was asked (answered or not)."""
        return self.stage is not None or bool(self.stage_error)

    @property
    def unfinished(self) -> frozenset[str]:
        """Names of the compensations the workflow *claims* did not complete."""
        return frozenset(claim.name for claim in self.claims)

    @property
    def completed(self) -> frozenset[str]:
        """Activity types with an execution that completed."""
        return frozenset(a.name for a in self.activities if a.ended == "completed")

    @property
    def failed(self) -> frozenset[str]:
        """Activity types with an execution that failed for good and none that completed."""
        return frozenset(a.name for a in self.activities if a.ended == "failed") - self.completed

    def scheduled(self, name: str) -> bool:
        """Whether activity type ``name`` was scheduled at all."""
        return any(a.name == name for a in self.activities)


def _status(failure: BaseException | None, closed: EventType.ValueType) -> tuple[RunStatus, str]:
    if closed == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        return "completed", ""
    if closed == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        return "cancelled", "CancelledError"
    if isinstance(failure, CancelledError):
        return "cancelled", "CancelledError"
    if isinstance(failure, ApplicationError) and failure.type == "SagaCompensationError":
        return "compensation_failed", failure.type
    if isinstance(failure, ApplicationError) and failure.type:
        return "failed", failure.type
    if failure is not None:
        return "failed", type(failure).__name__
    return "failed", EventType.Name(closed).removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_").lower()


def _claimed_compensated(failure: BaseException | None) -> tuple[str, ...] | None:
    """The ``compensated`` detail of an ``OrderFailed`` or a cancellation, if it has one."""
    if isinstance(failure, ApplicationError) and failure.type == "OrderFailed":
        details: Sequence[Any] = failure.details
    elif isinstance(failure, CancelledError):
        details = failure.details
    else:
        return None
    for detail in details:
        if isinstance(detail, dict) and isinstance(detail.get("compensated"), list):
            return tuple(str(name) for name in detail["compensated"])
    return None


def _claims(failure: BaseException | None) -> tuple[CompensationOutcome, ...]:
    if not isinstance(failure, ApplicationError) or failure.type != "SagaCompensationError":
        return ()
    claims = []
    for detail in failure.details:
        if isinstance(detail, dict) and "name" in detail:
            status = detail.get("status")
            claims.append(
                CompensationOutcome(
                    str(detail["name"]),
                    status if status in ("failed", "skipped") else "failed",
                    str(detail.get("error", "")),
                )
            )
    return tuple(claims)


async def observe_run(
    client: temporalio.client.Client,
    workflow_id: str,
    error: BaseException | None = None,
    *,
    answers: Mapping[str, Any] | None = None,
) -> SagaRun:
    """Read a closed run's history: its settings, activities, close and claims.

    ``error`` (what the client's result raised) is not used: the outcome is
    read from the history. It is accepted so that older callers keep working.
    The ``stage`` claim is taken from ``answers`` (the answer to the ``stage`` query, or the
    exception asking raised, as a harness's ``RunOutcome.answers`` holds it); without one,
    invariant 9 is reported as not checked.
    """
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    converter = client.data_converter
    settings = SagaSettings()
    names: dict[int, tuple[str, str]] = {}
    attempts: dict[int, int] = {}
    ends: dict[int, tuple[ActivityEnd, int]] = {}
    closed: EventType.ValueType | None = None
    failure: BaseException | None = None
    cancel_requested = False
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            decoded = await converter.decode_wrapper(attrs.input, [Order, SagaSettings])
            if len(decoded) > 1 and isinstance(decoded[1], SagaSettings):
                settings = decoded[1]
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            names[event.event_id] = (scheduled.activity_type.name, scheduled.activity_id)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            attempts[started.scheduled_event_id] = started.attempt
        elif kind in _ACTIVITY_ENDS:
            field, end = _ACTIVITY_ENDS[kind]
            ends[getattr(event, f"{field}_event_attributes").scheduled_event_id] = (
                end,
                event.event_id,
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            cancel_requested = True
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            closed = kind
            copy = Failure()
            copy.CopyFrom(event.workflow_execution_failed_event_attributes.failure)
            failure = await converter.decode_failure(copy)
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        ):
            closed = kind
    if closed is None:
        raise ValueError(
            f"workflow {workflow_id!r} has not closed; observe a run after its result is in"
        )
    status, error_type = _status(failure, closed)
    stage, stage_error = None, ""  # not asked: invariant 9 is not checked
    if answers is not None and "stage" in answers:
        stage, stage_error = _stage_answer(answers["stage"])
    activities: list[ScheduledActivity] = []
    for event_id, (name, activity_id) in names.items():
        ended, ended_event = ends.get(event_id, ("open", 0))
        activities.append(
            ScheduledActivity(
                name, activity_id, ended, attempts.get(event_id, 0), event_id, ended_event
            )
        )
    return SagaRun(
        workflow_id,
        status,
        error_type,
        settings,
        tuple(activities),
        _claims(failure),
        _claimed_compensated(failure),
        cancel_requested,
        isinstance(failure, ApplicationError) and failure.non_retryable,
        stage,
        stage_error,
    )


def _stage_answer(answer: Any) -> tuple[str | None, str]:
    """The claim and '' for an answer; ``None`` and why for an exception."""
    if isinstance(answer, BaseException):
        return None, f"{type(answer).__name__}: {(str(answer) or '-').splitlines()[0][:200]}"
    return str(answer), ""


def _check(name: str, problems: list[str]) -> InvariantCheck:
    return InvariantCheck(name, not problems, "; ".join(problems) or "held")


def _count(ledger: OrderLedger, op: str, effect: str | None = None) -> int:
    return sum(1 for e in ledger.journal if e.op == op and effect in (None, e.effect))


@dataclass(frozen=True)
class _Evidence:
    """One run's history and ledger, with the judgements every invariant shares."""

    run: SagaRun
    ledger: OrderLedger

    def applied(self, op: str) -> bool:
        return _count(self.ledger, op, "applied") > 0

    def claim(self, comp: str) -> CompensationOutcome | None:
        return next((c for c in self.run.claims if c.name == comp), None)

    def failed_for_good(self, comp: str) -> bool:
        return comp in self.run.failed

    def may_skip(self, comp: str) -> bool:
        """Whether the settings let ``comp`` be skipped, and a compensation before it failed."""
        settings = self.run.settings
        if settings.parallel_compensation or settings.continue_on_error:
            return False
        lifo = list(reversed(COMPENSATION_ACTIVITIES))
        return any(self.failed_for_good(c) for c in lifo[: lifo.index(comp)])

    def unbacked(self, comp: str) -> str:
        """Why a claim that ``comp`` did not complete is not backed ('' when it is)."""
        claim = self.claim(comp)
        if claim is None:
            return f"{comp} not reported"
        if not self.run.scheduled(_STEP_OF[comp]):
            return f"{comp} reported {claim.status} but its step was never scheduled (history)"
        if claim.status == "failed":
            if self.failed_for_good(comp):
                return ""
            if comp in self.run.completed:
                return f"{comp} reported failed but completed (history)"
            if not self.run.scheduled(comp):
                return f"{comp} reported failed but was never scheduled (history)"
            return f"{comp} reported failed but did not fail for good (history)"
        if self.run.scheduled(comp):
            return f"{comp} reported skipped but was scheduled (history)"
        if _count(self.ledger, comp):
            return f"{comp} reported skipped but ran (journal)"
        if not self.may_skip(comp):
            return (
                f"{comp} reported skipped, which the settings do not allow "
                f"(continue_on_error={self.run.settings.continue_on_error}, "
                f"parallel={self.run.settings.parallel_compensation}, or none failed before it)"
            )
        return ""

    def compensations(self) -> list[str]:
        """Compensations journaled, in the order of their first journal entry."""
        return list(dict.fromkeys(e.op for e in self.ledger.journal if e.op in _STEP_OF))

    def compensations_scheduled(self) -> list[str]:
        """Compensations in the history, in the order they were first scheduled."""
        return list(dict.fromkeys(a.name for a in self.run.activities if a.name in _STEP_OF))


def _atomicity(ev: _Evidence) -> list[str]:
    problems: list[str] = []
    if ev.run.status == "completed":
        missing = [s for s in STEP_ACTIVITIES if not ev.applied(s)]
        if missing:
            problems.append(f"completed without applying {missing} (journal)")
        if ev.compensations() or ev.compensations_scheduled():
            problems.append(
                f"completed but compensated: journal {ev.compensations()}, "
                f"history {ev.compensations_scheduled()}"
            )
        return problems
    for step, comp in _UNDO.items():
        if ev.applied(step) and not ev.applied(comp):
            why = ev.unbacked(comp)
            if why:
                problems.append(f"{ev.run.status} with {step} applied and not undone: {why}")
    return problems


def _reverse_order(ev: _Evidence) -> list[str]:
    if ev.run.settings.parallel_compensation:
        return []
    problems: list[str] = []
    for where, seen in (("journal", ev.compensations()), ("history", ev.compensations_scheduled())):
        expected = [c for c in reversed(COMPENSATION_ACTIVITIES) if c in seen]
        if seen != expected:
            problems.append(f"compensations ran as {seen} ({where}), expected {expected}")
    return problems


def _exactly_once(
    ev: _Evidence,
    order: Order,
    stock_before: Mapping[str, int],
    stock_after: Mapping[str, int],
) -> list[str]:
    ledger = ev.ledger
    wanted: dict[str, int] = {}
    for item in order.items:
        wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity
    problems: list[str] = []
    for op in dict.fromkeys(e.op for e in ledger.journal):
        count = _count(ledger, op, "applied")
        if count > 1:
            problems.append(f"{op} applied {count} times")
    if ledger.refunded_cents > ledger.charged_cents:
        problems.append(f"refunded {ledger.refunded_cents} > charged {ledger.charged_cents}")
    for sku in wanted:
        if stock_after.get(sku, 0) + ledger.reserved.get(sku, 0) != stock_before.get(sku, 0):
            problems.append(
                f"stock of {sku} not conserved: before {stock_before.get(sku)}, "
                f"after {stock_after.get(sku)}, reserved {ledger.reserved.get(sku, 0)}"
            )
    if ev.run.status == "completed":
        if ledger.net_charge_cents != order.total_cents:
            problems.append(f"net charge {ledger.net_charge_cents} != total {order.total_cents}")
        if ledger.reserved != wanted:
            problems.append(f"reserved {ledger.reserved} != ordered {wanted}")
        if ledger.live_shipments != 1:
            problems.append(f"{ledger.live_shipments} live shipments")
        return problems
    left = {
        "refund": (ledger.net_charge_cents != 0, f"net charge {ledger.net_charge_cents}"),
        "release": (bool(ledger.reserved), f"reservation {ledger.reserved}"),
        "cancel_shipment": (ledger.live_shipments > 0, f"{ledger.live_shipments} live shipment"),
    }
    for comp, (remains, what) in left.items():
        why = ev.unbacked(comp) if remains else ""
        if why:
            problems.append(f"{ev.run.status} order holds {what}: {why}")
    return problems


def _pivot(ev: _Evidence) -> list[str]:
    if "ship" not in ev.run.completed:
        return []
    problems: list[str] = []
    if ev.run.status != "completed":
        problems.append(f"pivot (ship) completed but the order ended {ev.run.status}")
    if ev.compensations() or ev.compensations_scheduled():
        problems.append(
            f"compensated after the pivot: journal {ev.compensations()}, "
            f"history {ev.compensations_scheduled()}"
        )
    return problems


def _reported(ev: _Evidence) -> list[str]:
    problems: list[str] = []
    gave_up = [c for c in COMPENSATION_ACTIVITIES if ev.failed_for_good(c)]
    if gave_up and ev.run.status == "completed":
        problems.append(f"{gave_up} failed for good (history) yet the order completed")
    for comp in gave_up:
        claim = ev.claim(comp)
        if claim is None or claim.status != "failed":
            said = "not reported" if claim is None else f"reported {claim.status}"
            problems.append(f"{comp} failed for good (history) but {said}")
    for claim in ev.run.claims:
        if claim.name not in _STEP_OF:
            problems.append(f"reported {claim.name!r}, which is not a compensation")
        elif why := ev.unbacked(claim.name):
            problems.append(f"claim not backed: {why}")
    if ev.run.status == "compensation_failed" and not ev.run.claims:
        problems.append("SagaCompensationError names no compensation")
    if ev.run.status == "failed" and ev.run.scheduled("charge"):
        if ev.run.error_type != "OrderFailed":
            problems.append(f"a failed order failed with {ev.run.error_type}, not OrderFailed")
    claimed = ev.run.claimed_compensated
    if ev.run.error_type == "OrderFailed" and claimed is None:
        problems.append("OrderFailed does not name the compensations that completed")
    if claimed is not None:
        done = [c for c in COMPENSATION_ACTIVITIES if c in ev.run.completed]
        if sorted(claimed) != sorted(done):
            problems.append(f"reported {list(claimed)} compensated; completed (history): {done}")
    return problems


def _post_pivot(ev: _Evidence) -> list[str]:
    sent, rows = _count(ev.ledger, "confirm", "applied"), ev.ledger.confirmations
    if ev.run.status != "completed":
        return [f"{ev.run.status} order sent {rows} confirmation(s)"] if sent or rows else []
    problems: list[str] = []
    if sent != 1 or rows != 1:
        problems.append(f"completed order: confirm applied {sent} times (journal), {rows} rows")
    if "confirm" not in ev.run.completed:
        problems.append("completed order: no confirm activity completed (history)")
    return problems


def _cause(ev: _Evidence, order: Order) -> list[str]:
    flaw = _flaw(order)
    if flaw:
        return _refused_at_once(ev, flaw)
    if ev.run.error_type == "InvalidOrder":
        return ["a valid order failed with InvalidOrder (history)"]
    if ev.run.status == "cancelled" and not ev.run.cancel_requested:
        return ["order cancelled but no cancellation was requested (history)"]
    if ev.run.status not in ("failed", "compensation_failed"):
        return []
    if ev.run.failed & set(_FORWARD):
        return []
    if ev.run.status == "compensation_failed" and ev.run.cancel_requested:
        return []  # cancelled (history), then a compensation failed for good
    return [
        f"order {ev.run.status} ({ev.run.error_type}) but no step failed for good "
        f"(history: completed {sorted(ev.run.completed & set(_FORWARD))})"
    ]


def _flaw(order: Order) -> str:
    """What ``validate_order`` says is wrong with ``order`` ('' for a valid order)."""
    try:
        validate_order(order)
    except InvalidOrderError as err:
        return str(err)
    return ""


def _refused_at_once(ev: _Evidence, flaw: str) -> list[str]:
    """An invalid order fails non-retryably with ``InvalidOrder`` before any activity."""
    problems: list[str] = []
    if ev.run.status != "failed" or ev.run.error_type != "InvalidOrder":
        problems.append(
            f"invalid order ({flaw}) ended {ev.run.status} ({ev.run.error_type}), "
            "not failed with InvalidOrder (history)"
        )
    elif not ev.run.non_retryable:
        problems.append("invalid order failed with a retryable InvalidOrder (history)")
    if ev.run.activities:
        names = sorted({a.name for a in ev.run.activities})
        problems.append(f"invalid order ({flaw}) scheduled {names} (history)")
    if ev.ledger.journal:
        problems.append(f"invalid order reached the services: {len(ev.ledger.journal)} calls")
    return problems


def _stage(ev: _Evidence) -> list[str]:
    run = ev.run
    if not run.stage_asked:
        return []  # check_invariants reports it as not checked
    if run.stage_error:
        return [f"stage query gave no answer: {run.stage_error}"]
    if run.error_type in ("terminated", "timed_out"):
        return []  # ended from outside, where the order happened to be
    if run.status == "completed":
        expected = {"completed"}
    elif not run.scheduled("charge"):
        expected = {"received"}
    elif run.status == "compensation_failed":
        expected = {"compensating"}
    elif run.status == "cancelled":
        expected = {"compensated", "compensating"}
    else:
        expected = {"compensated"}
    if run.stage not in expected:
        return [f"stage query says {run.stage!r}; the history says {' or '.join(sorted(expected))}"]
    return []


def _screened(ev: _Evidence, order: Order) -> list[str]:
    problems: list[str] = []
    screens = [a for a in ev.run.activities if a.name == "screen"]
    charges = [a.scheduled_event for a in ev.run.activities if a.name == "charge"]
    if screens and charges:
        first_charge = min(charges)
        if not any(a.ended == "completed" and a.ended_event < first_charge for a in screens):
            problems.append("charge scheduled before a screen completed (history)")
    if order.total_cents > FRAUD_LIMIT_CENTS:
        if _count(ev.ledger, "charge"):
            problems.append(
                f"order over the fraud limit ({order.total_cents} cents) reached the payment "
                "service (journal)"
            )
        if ev.run.status == "completed":
            problems.append("order over the fraud limit completed (history)")
    return problems


_FORWARD = ("check_catalog", "screen", *STEP_ACTIVITIES)
"""The activities whose failure for good is a cause for an order to fail."""

INVARIANTS: Sequence[str] = (
    "1 semantic atomicity",
    "2 compensations in reverse order",
    "3 exactly-once effects",
    "4 nothing compensated after the pivot",
    "5 failed compensations reported",
    "6 post-pivot steps done",
    "7 failed only for a cause",
    "8 charged only once screened",
    "9 says where it ended",
)
"""The names of the checks :func:`check_invariants` returns, in order."""

NOT_ASKED = "not checked: the stage query was not asked"
"""The detail of invariant 9 for a run whose ``stage`` claim was not asked (it holds)."""


def check_invariants(
    order: Order,
    ledger: OrderLedger,
    run: SagaRun,
    stock_before: Mapping[str, int],
    stock_after: Mapping[str, int],
) -> list[InvariantCheck]:
    """Check the nine saga invariants (module docstring) for one order on SKUs of its own.

    ``ledger`` and the stock are read from the services database; ``run`` from
    the workflow's history (:func:`observe_run`).
    """
    ev = _Evidence(run, ledger)
    problems = [
        _atomicity(ev),
        _reverse_order(ev),
        _exactly_once(ev, order, stock_before, stock_after),
        _pivot(ev),
        _reported(ev),
        _post_pivot(ev),
        _cause(ev, order),
        _screened(ev, order),
        _stage(ev),
    ]
    checks = [_check(name, found) for name, found in zip(INVARIANTS, problems, strict=True)]
    if not run.stage_asked:
        checks[-1] = InvariantCheck(INVARIANTS[-1], True, NOT_ASKED)
    return checks


def failed_checks(checks: list[InvariantCheck]) -> dict[str, Any]:
    """The checks that did not hold, by name, with their detail."""
    return {c.name: c.detail for c in checks if not c.held}


def order_on_own_skus(
    services: OrderServices,
    seed: int,
    *,
    order_id: str,
    sku_prefix: str,
    stock: int = 50,
    declined: bool = False,
    country: str | None = None,
    short: bool = False,
    suspected: bool = False,
) -> tuple[Order, dict[str, int]]:
    """A Faker order from ``seed`` on three fresh SKUs, each stocked with ``stock`` units.

    No other order touches those SKUs, so the order's invariants can be checked
    alone (:func:`order_violations`). ``declined`` and ``country`` are as in
    :func:`make_order`; with ``short`` the SKU of the order's last item holds one
    unit fewer than the item needs; with ``suspected`` the first product costs more than the
    fraud screen's limit, and the order holds it. Returns the order and its SKUs' stock
    before it runs.
    """
    catalog = make_catalog(seed, 3, prefix=sku_prefix, max_stock=0)
    if suspected:
        catalog[0] = dataclasses.replace(catalog[0], unit_price_cents=FRAUD_LIMIT_CENTS + 1)
    order = make_order(seed, catalog, order_id=order_id, declined=declined, country=country)
    if suspected and all(item.sku != catalog[0].sku for item in order.items):
        first = catalog[0]
        order = dataclasses.replace(order, items=[LineItem(first.sku, 1, first.unit_price_cents)])
    before = {p.sku: stock for p in catalog}
    if short:
        last = order.items[-1]
        before[last.sku] = last.quantity - 1
    services.stock_products((p.sku, p.unit_price_cents, before[p.sku]) for p in catalog)
    return order, before


def order_violations(
    services: OrderServices, order: Order, run: SagaRun, stock_before: Mapping[str, int]
) -> dict[str, Any]:
    """The invariants ``run`` broke for an order on SKUs of its own (empty when all held).

    Reads the order's ledger and its SKUs' stock now, and checks them with
    :func:`check_invariants` against ``stock_before``.
    """
    skus = sorted({item.sku for item in order.items})
    after = {sku: services.stock(sku) for sku in skus}
    ledger = services.ledger(order.order_id)
    return failed_checks(check_invariants(order, ledger, run, stock_before, after))
