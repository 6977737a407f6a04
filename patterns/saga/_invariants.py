"""The saga invariants, checked from the services database and the workflow history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import temporalio.client
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from .._checks import InvariantCheck
from ._activities import COMPENSATION_ACTIVITIES, STEP_ACTIVITIES
from ._orders import make_catalog, make_order
from ._services import OrderLedger, OrderServices
from ._types import Order

RunStatus = Literal["completed", "failed", "compensation_failed", "cancelled"]
"""How an order saga ended, as its client saw it."""

_ENDED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "failed",
}


@dataclass(frozen=True)
class SagaRun:
    """What one order saga run did, from its result and its history.

    ``unfinished`` names the compensations the workflow reported as not
    completed; ``completed`` and ``failed`` are the activity types that
    completed, or failed for good after their retries, in the history.
    """

    workflow_id: str
    status: RunStatus
    error_type: str
    unfinished: frozenset[str]
    completed: frozenset[str]
    failed: frozenset[str]


def _classify(error: BaseException | None) -> tuple[RunStatus, str, frozenset[str]]:
    if error is None:
        return "completed", "", frozenset()
    cause = error.cause if isinstance(error, WorkflowFailureError) else error
    if isinstance(cause, CancelledError):
        return "cancelled", "CancelledError", frozenset()
    if isinstance(cause, ApplicationError) and cause.type == "SagaCompensationError":
        names = frozenset(
            str(d["name"]) for d in cause.details if isinstance(d, dict) and "name" in d
        )
        return "compensation_failed", cause.type, names
    kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
    return "failed", kind or type(cause).__name__, frozenset()


async def observe_run(
    client: temporalio.client.Client, workflow_id: str, error: BaseException | None = None
) -> SagaRun:
    """Read a finished run's history; ``error`` is what its result raised (``None`` if none)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, str] = {}
    ended: dict[str, set[str]] = {"completed": set(), "failed": set()}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.event_type in _ENDED:
            field = {
                EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed",
                EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed",
                EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out",
            }[event.event_type]
            attrs = getattr(event, f"{field}_event_attributes")
            ended[_ENDED[event.event_type]].add(scheduled[attrs.scheduled_event_id])
    status, error_type, unfinished = _classify(error)
    return SagaRun(
        workflow_id,
        status,
        error_type,
        unfinished,
        frozenset(ended["completed"]),
        frozenset(ended["failed"]),
    )


def _applied(ledger: OrderLedger) -> set[str]:
    return {e.op for e in ledger.journal if e.effect == "applied"}


def _check(name: str, problems: list[str]) -> InvariantCheck:
    return InvariantCheck(name, not problems, "; ".join(problems) or "held")


def check_invariants(
    order: Order,
    ledger: OrderLedger,
    run: SagaRun,
    stock_before: Mapping[str, int],
    stock_after: Mapping[str, int],
) -> list[InvariantCheck]:
    """Check the five saga invariants for one order whose SKUs no other order touched.

    1. atomicity: all steps committed and nothing compensated, or the order
       failed and every committed step was compensated (or reported);
    2. compensations ran in reverse order of their steps;
    3. exactly-once effects: net charge, stock, shipments, confirmation;
    4. once the pivot (ship) completed, the order completed and nothing was
       compensated;
    5. a compensation that failed for good is reported, never a silent success.
    """
    applied = _applied(ledger)
    undo = dict(zip(STEP_ACTIVITIES, COMPENSATION_ACTIVITIES, strict=True))
    compensations_seen = [e.op for e in ledger.journal if e.op in COMPENSATION_ACTIVITIES]
    wanted: dict[str, int] = {}
    for item in order.items:
        wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity

    atomicity: list[str] = []
    if run.status == "completed":
        missing = [s for s in STEP_ACTIVITIES if s not in applied]
        if missing:
            atomicity.append(f"completed without committing {missing}")
        if compensations_seen:
            atomicity.append(f"completed but ran compensations {compensations_seen}")
    else:
        for step, comp in undo.items():
            if step in applied and comp not in applied and comp not in run.unfinished:
                atomicity.append(f"{run.status} with {step} committed, neither {comp} nor reported")

    order_problems: list[str] = []
    first_runs = list(dict.fromkeys(compensations_seen))
    expected = [c for c in reversed(COMPENSATION_ACTIVITIES) if c in first_runs]
    if first_runs != expected:
        order_problems.append(f"compensations ran as {first_runs}, expected {expected}")

    once: list[str] = []
    for op in {e.op for e in ledger.journal}:
        count = sum(1 for e in ledger.journal if e.op == op and e.effect == "applied")
        if count > 1:
            once.append(f"{op} applied {count} times")
    if ledger.refunded_cents > ledger.charged_cents:
        once.append(f"refunded {ledger.refunded_cents} > charged {ledger.charged_cents}")
    for sku in wanted:
        if stock_after.get(sku, 0) + ledger.reserved.get(sku, 0) != stock_before.get(sku, 0):
            once.append(
                f"stock of {sku} not conserved: before {stock_before.get(sku)}, "
                f"after {stock_after.get(sku)}, reserved {ledger.reserved.get(sku, 0)}"
            )
    if run.status == "completed":
        if ledger.net_charge_cents != order.total_cents:
            once.append(f"net charge {ledger.net_charge_cents} != total {order.total_cents}")
        if ledger.reserved != wanted:
            once.append(f"reserved {ledger.reserved} != ordered {wanted}")
        if ledger.live_shipments != 1 or ledger.confirmations != 1:
            once.append(
                f"{ledger.live_shipments} live shipments, {ledger.confirmations} confirmations"
            )
    else:
        if ledger.net_charge_cents != 0 and "refund" not in run.unfinished:
            once.append(f"failed order has net charge {ledger.net_charge_cents}")
        if ledger.reserved and "release" not in run.unfinished:
            once.append(f"failed order still reserves {ledger.reserved}")
        if ledger.live_shipments and "cancel_shipment" not in run.unfinished:
            once.append("failed order has a live shipment")

    pivot: list[str] = []
    if "ship" in run.completed:
        if run.status != "completed":
            pivot.append(f"pivot (ship) completed but the order ended {run.status}")
        if compensations_seen:
            pivot.append(f"compensated after the pivot: {compensations_seen}")

    reported: list[str] = []
    gave_up = run.failed & set(COMPENSATION_ACTIVITIES)
    if gave_up and run.status == "completed":
        reported.append(f"{sorted(gave_up)} failed for good yet the order completed")
    if not gave_up <= run.unfinished:
        reported.append(
            f"{sorted(gave_up - run.unfinished)} failed for good but the workflow did not report it"
        )

    return [
        _check("1 semantic atomicity", atomicity),
        _check("2 compensations in reverse order", order_problems),
        _check("3 exactly-once effects", once),
        _check("4 nothing compensated after the pivot", pivot),
        _check("5 failed compensations reported", reported),
    ]


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
) -> tuple[Order, dict[str, int]]:
    """A Faker order from ``seed`` on three fresh SKUs, each stocked with ``stock`` units.

    No other order touches those SKUs, so the order's invariants can be checked
    alone (:func:`order_violations`). ``declined`` and ``country`` are as in
    :func:`make_order`; with ``short`` the SKU of the order's last item holds one
    unit fewer than the item needs. Returns the order and its SKUs' stock before it runs.
    """
    catalog = make_catalog(seed, 3, prefix=sku_prefix, max_stock=0)
    order = make_order(seed, catalog, order_id=order_id, declined=declined, country=country)
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
