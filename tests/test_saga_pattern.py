"""The order saga on the time-skipping server, checked from its SQLite services."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import faults
import faults.testing
from faults import Duplicate, Fail, ScriptedFault, ScriptedPlan
from patterns._checks import InvariantCheck
from patterns.saga import (
    DECLINED_CARD,
    FRAUD_LIMIT_CENTS,
    Address,
    CompensationOutcome,
    JournalEntry,
    LineItem,
    Order,
    OrderActivities,
    OrderLedger,
    OrderSaga,
    OrderServices,
    SagaSettings,
)
from patterns.saga._invariants import (
    INVARIANTS,
    NOT_ASKED,
    SagaRun,
    ScheduledActivity,
    check_invariants,
    failed_checks,
    observe_run,
)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> OrderServices:
    return OrderServices(tmp_path_factory.mktemp("saga") / "services.sqlite")


@pytest.fixture(scope="module")
def harness(fault_harness: Any, services: OrderServices) -> faults.testing.FaultHarness:
    return fault_harness(
        workflows=[OrderSaga], activities=OrderActivities(services).activities(), queries=("stage",)
    )


def fresh_order(services: OrderServices, *, stock: int = 10, **changes: Any) -> Order:
    prefix = faults.testing.unique_id("sku")
    services.stock_products([(f"{prefix}-a", 1250, stock), (f"{prefix}-b", 399, stock)])
    order = Order(
        order_id=faults.testing.unique_id("order"),
        customer="Ada Lovelace",
        email="ada@example.com",
        card_token="tok_visa",
        address=Address("12 Analytical St", "London", "N1 7AA", "GB"),
        items=[LineItem(f"{prefix}-a", 2, 1250), LineItem(f"{prefix}-b", 1, 399)],
    )
    return dataclasses.replace(order, **changes)


def run_and_check(
    harness: faults.testing.FaultHarness,
    services: OrderServices,
    order: Order,
    settings: SagaSettings | None = None,
    plan: faults.FaultPlan | None = None,
) -> tuple[Any, Any]:
    skus = sorted({i.sku for i in order.items})
    before = {sku: services.stock(sku) for sku in skus}
    outcome = harness.run(OrderSaga.run, order, settings or SagaSettings(), plan=plan)
    assert harness.loop is not None
    run = harness.loop.run(
        observe_run(harness.client, outcome.workflow_id, answers=outcome.answers)
    )
    ledger = services.ledger(order.order_id)
    after = {sku: services.stock(sku) for sku in skus}
    checks = check_invariants(order, ledger, run, before, after)
    assert failed_checks(checks) == {}
    return outcome, ledger


def plan(*entries: tuple[str, int, faults.Fault]) -> ScriptedPlan:
    return ScriptedPlan(tuple(ScriptedFault(a, n, f) for a, n, f in entries))


def test_order_completes_with_every_effect_once(harness: Any, services: OrderServices) -> None:
    order = fresh_order(services)
    outcome, ledger = run_and_check(harness, services, order)
    assert outcome.result.status == "completed"
    assert ledger.net_charge_cents == order.total_cents == 2899
    assert [e.op for e in ledger.journal] == ["charge", "reserve", "ship", "confirm"]


@pytest.mark.parametrize(
    ("changes", "error", "journal"),
    [
        ({"card_token": DECLINED_CARD}, "PaymentDeclined", [("refund", "noop")]),
        (
            {"address": Address("1 Ice Shelf", "McMurdo", "0000", "AQ")},
            "AddressNotServed",
            [
                ("charge", "applied"),
                ("reserve", "applied"),
                ("cancel_shipment", "noop"),
                ("release", "applied"),
                ("refund", "applied"),
            ],
        ),
    ],
)
def test_business_failures_compensate_last_in_first_out(
    harness: Any, services: OrderServices, changes: dict[str, Any], error: str, journal: Any
) -> None:
    order = fresh_order(services, **changes)
    outcome, ledger = run_and_check(harness, services, order)
    assert outcome.cause.type == "OrderFailed" and error in str(outcome.cause)
    assert [(e.op, e.effect) for e in ledger.journal] == journal
    assert ledger.net_charge_cents == 0 and ledger.reserved == {}


def test_out_of_stock_refunds_the_charge(harness: Any, services: OrderServices) -> None:
    order = fresh_order(services, stock=1)
    outcome, ledger = run_and_check(harness, services, order)
    assert "OutOfStock" in str(outcome.cause) and "has 1 units in stock, order wants 2" in str(
        outcome.cause
    )
    assert [(e.op, e.effect) for e in ledger.journal] == [
        ("charge", "applied"),
        ("release", "noop"),
        ("refund", "applied"),
    ]
    assert services.stock(order.items[0].sku) == 1


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: dataclasses.replace(o, items=[]), "order.items is empty"),
        (
            lambda o: dataclasses.replace(o, items=[dataclasses.replace(o.items[0], quantity=0)]),
            "order.items[0].quantity=0",
        ),
        (
            lambda o: dataclasses.replace(
                o, items=[o.items[0], dataclasses.replace(o.items[1], unit_price_cents=-5)]
            ),
            "order.items[1].unit_price_cents=-5",
        ),
        (
            lambda o: dataclasses.replace(o, address=dataclasses.replace(o.address, city=" ")),
            "order.address.city=' '",
        ),
        (
            lambda o: dataclasses.replace(
                o, address=dataclasses.replace(o.address, country="France")
            ),
            "order.address.country='France'",
        ),
        (
            lambda o: dataclasses.replace(o, items=[*o.items, LineItem("no-such-sku", 1, 100)]),
            "order.items[2].sku='no-such-sku' is not in the catalog",
        ),
    ],
)
def test_invalid_orders_fail_before_any_side_effect(
    harness: Any, services: OrderServices, mutate: Any, field: str
) -> None:
    order = mutate(fresh_order(services))
    outcome = harness.run(OrderSaga.run, order, SagaSettings())
    cause = outcome.cause
    while getattr(cause, "cause", None) is not None:  # unknown SKU arrives through check_catalog
        cause = cause.cause
    assert field in str(cause)
    assert cause.non_retryable
    ledger = services.ledger(order.order_id)
    assert ledger.journal == [] and ledger.charged_cents == 0 and ledger.reserved == {}


def test_saga_settings_are_validated() -> None:
    with pytest.raises(ValueError, match=r"SagaSettings.step_attempts=0 must be an integer >= 1"):
        SagaSettings(step_attempts=0)


def test_duplicated_steps_act_once(harness: Any, services: OrderServices) -> None:
    faults_on_every_step = plan(
        ("charge", 1, Duplicate()),
        ("reserve", 1, Duplicate()),
        ("ship", 1, Duplicate()),
        ("confirm", 1, Duplicate()),
    )
    order = fresh_order(services)
    outcome, ledger = run_and_check(harness, services, order, plan=faults_on_every_step)
    assert outcome.succeeded and len(outcome.injections) == 4
    assert [e.effect for e in ledger.journal].count("replayed") == 4


def test_lost_charge_completion_on_last_attempt_is_still_refunded(
    harness: Any, services: OrderServices
) -> None:
    order = fresh_order(services)
    outcome, ledger = run_and_check(
        harness, services, order, SagaSettings(step_attempts=1), plan(("charge", 1, Duplicate()))
    )
    assert outcome.cause.type == "OrderFailed"
    assert ledger.charged_cents == ledger.refunded_cents == order.total_cents


def test_a_compensation_that_keeps_failing_is_reported(
    harness: Any, services: OrderServices
) -> None:
    order = fresh_order(services, address=Address("1 Ice Shelf", "McMurdo", "0000", "AQ"))
    outcome, ledger = run_and_check(
        harness,
        services,
        order,
        SagaSettings(compensation_attempts=2),
        plan(("release", 1, Fail()), ("release", 2, Fail())),
    )
    assert outcome.cause.type == "SagaCompensationError"
    assert [d["name"] for d in outcome.cause.details] == ["release"]
    assert outcome.cause.cause.cause.type == "AddressNotServed"  # the original failure, chained
    assert ledger.reserved == {sku.sku: sku.quantity for sku in order.items}
    assert ledger.refunded_cents == order.total_cents  # the saga went on past the failure


def test_stop_on_error_skips_the_rest_and_reports_what_it_skipped(
    harness: Any, services: OrderServices
) -> None:
    order = fresh_order(services, address=Address("1 Ice Shelf", "McMurdo", "0000", "AQ"))
    outcome, ledger = run_and_check(
        harness,
        services,
        order,
        SagaSettings(compensation_attempts=1, continue_on_error=False),
        plan(("release", 1, Fail())),
    )
    assert outcome.cause.type == "SagaCompensationError"
    assert [(d["name"], d["status"]) for d in outcome.cause.details] == [
        ("release", "failed"),
        ("refund", "skipped"),
    ]
    assert [(e.op, e.effect) for e in ledger.journal] == [
        ("charge", "applied"),
        ("reserve", "applied"),
        ("cancel_shipment", "noop"),
    ]
    assert ledger.net_charge_cents == order.total_cents  # left charged, and reported


def test_steps_after_the_pivot_are_retried_to_completion(
    harness: Any, services: OrderServices
) -> None:
    order = fresh_order(services)
    outcome, ledger = run_and_check(
        harness,
        services,
        order,
        SagaSettings(step_attempts=1),
        ScriptedPlan(
            (
                ScriptedFault("confirm", 1, Fail(), key="confirm-1"),
                ScriptedFault("confirm", 2, Fail(retryable=False), key="confirm-1"),
                ScriptedFault("confirm", 1, Fail(retryable=False), key="confirm-2"),
            )
        ),
    )
    assert outcome.succeeded and ledger.confirmations == 1
    assert [(i.key, i.attempt) for i in outcome.injections] == [
        ("confirm-1", 1),
        ("confirm-1", 2),
        ("confirm-2", 1),
    ]
    assert not any(e.op in ("refund", "release", "cancel_shipment") for e in ledger.journal)


def test_cancelled_order_is_compensated_and_a_late_step_is_refused(
    harness: Any, services: OrderServices
) -> None:
    import asyncio

    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import CancelledError

    order = fresh_order(services)
    workflow_id = faults.testing.unique_id("saga-cancel")

    async def cancel_while_reserving() -> BaseException | None:
        with faults.injecting(plan(("reserve", 1, faults.Delay(1.5)))):
            handle = await harness.client.start_workflow(
                OrderSaga.run,
                args=[order, SagaSettings()],
                id=workflow_id,
                task_queue=harness.task_queue,
            )
        while await handle.query(OrderSaga.stage) != "reserving":
            await asyncio.sleep(0.02)
        await handle.cancel()
        try:
            await handle.result()
        except WorkflowFailureError as err:
            return err.cause
        return None

    assert harness.loop is not None
    cause = harness.loop.run(cancel_while_reserving())
    assert isinstance(cause, CancelledError)
    harness.loop.run(asyncio.sleep(2.0))  # let the delayed reserve attempt arrive
    ledger = services.ledger(order.order_id)
    assert [(e.op, e.effect) for e in ledger.journal] == [
        ("charge", "applied"),
        ("release", "noop"),
        ("refund", "applied"),
    ]
    assert ledger.net_charge_cents == 0 and ledger.reserved == {}
    assert services.stock(order.items[0].sku) == 10
    harness.loop.run(harness.replay(workflow_id))


def test_demonstrate_holds_every_invariant(
    temporal_client: Any, temporal_loop: Any, tmp_path: Path
) -> None:
    from patterns.demo import demonstrate_saga as demonstrate

    lines: list[str] = []
    report = temporal_loop.run(
        demonstrate(temporal_client, seed=7, plan=None, workdir=tmp_path, say=lines.append)
    )
    assert report.ok, report.checks
    assert len(report.checks) == len(INVARIANTS) and len(report.summary) == 4
    # The demonstration asks every order its stage claim while its worker runs.
    assert report.checks[-1].detail == "held for 4 orders", report.checks[-1]
    assert "completed" in report.summary[0] and "OrderFailed" in report.summary[1]
    assert (tmp_path / "saga-services.sqlite").exists() and lines


def test_demonstrate_under_random_faults(
    temporal_client: Any, temporal_loop: Any, tmp_path: Path
) -> None:
    from patterns.demo import demonstrate_saga as demonstrate

    chaos = faults.RandomPlan.parse("fail=0.2,duplicate=0.2", seed=3)
    report = temporal_loop.run(
        demonstrate(temporal_client, seed=11, plan=chaos, workdir=tmp_path, say=lambda _: None)
    )
    assert report.ok, report.checks


# ---------------------------------------------------------------- the oracle on made-up evidence

UNSERVED = Order(
    order_id="made-up",
    customer="Ada Lovelace",
    email="ada@example.com",
    card_token="tok_visa",
    address=Address("1 Ice Shelf", "McMurdo", "0000", "AQ"),
    items=[LineItem("SKU-A", 2, 1250)],
)
FORWARD = (("check_catalog", "completed"), ("screen", "completed"), ("charge", "completed"))
SHIP_REFUSED = (*FORWARD, ("reserve", "completed"), ("ship", "failed"))


def history(*ends: tuple[str, str]) -> tuple[ScheduledActivity, ...]:
    """Activities run one after another: the n-th is scheduled at event 10n and ends at 10n+5."""
    return tuple(
        ScheduledActivity(name, str(n), end, 1, 10 * n, 0 if end == "open" else 10 * n + 5)
        for n, (name, end) in enumerate(ends, 1)
    )


def journal(*entries: tuple[str, str]) -> list[JournalEntry]:
    return [JournalEntry(n, op, f"k:{op}", effect) for n, (op, effect) in enumerate(entries, 1)]


def claims(*entries: tuple[str, str]) -> tuple[CompensationOutcome, ...]:
    return tuple(CompensationOutcome(name, status, "made up") for name, status in entries)


def left_charged_and_reserved(*entries: tuple[str, str]) -> OrderLedger:
    return OrderLedger(
        "made-up",
        charged_cents=2500,
        refunded_cents=0,
        reserved={"SKU-A": 2},
        shipments={},
        confirmations=0,
        journal=journal(("charge", "applied"), ("reserve", "applied"), *entries),
    )


def broken(run: SagaRun, ledger: OrderLedger) -> set[str]:
    return set(failed_checks(check_invariants(UNSERVED, ledger, run, {"SKU-A": 10}, {"SKU-A": 8})))


def failed_run(settings: SagaSettings, *ends: tuple[str, str], said: Any = ()) -> SagaRun:
    return SagaRun(
        "made-up", "compensation_failed", "SagaCompensationError", settings, history(*ends), said
    )


def test_a_report_of_compensations_that_never_ran_excuses_nothing() -> None:
    """The self-report liar: charged, reserved, compensated nothing, reported all three."""
    all_three = claims(("refund", "failed"), ("release", "failed"), ("cancel_shipment", "failed"))
    run = failed_run(SagaSettings(), *SHIP_REFUSED, said=all_three)
    assert broken(run, left_charged_and_reserved()) == {
        "1 semantic atomicity",
        "3 exactly-once effects",
        "5 failed compensations reported",
    }


def test_compensations_the_history_shows_failing_for_good_are_excused() -> None:
    run = failed_run(
        SagaSettings(),
        *SHIP_REFUSED,
        ("cancel_shipment", "completed"),
        ("release", "failed"),
        ("refund", "failed"),
        said=claims(("release", "failed"), ("refund", "failed")),
    )
    assert broken(run, left_charged_and_reserved(("cancel_shipment", "noop"))) == set()


@pytest.mark.parametrize(
    ("continue_on_error", "expected"),
    [
        (False, set()),
        (
            True,
            {"1 semantic atomicity", "3 exactly-once effects", "5 failed compensations reported"},
        ),
    ],
)
def test_a_skipped_compensation_is_excused_only_where_the_settings_stop_on_error(
    continue_on_error: bool, expected: set[str]
) -> None:
    run = failed_run(
        SagaSettings(continue_on_error=continue_on_error),
        *SHIP_REFUSED,
        ("cancel_shipment", "completed"),
        ("release", "failed"),
        said=claims(("release", "failed"), ("refund", "skipped")),
    )
    assert broken(run, left_charged_and_reserved(("cancel_shipment", "noop"))) == expected


def test_a_compensation_failing_for_good_must_be_reported() -> None:
    ends = (
        *SHIP_REFUSED,
        ("cancel_shipment", "completed"),
        ("release", "failed"),
        ("refund", "completed"),
    )
    run = SagaRun("made-up", "failed", "OrderFailed", SagaSettings(), history(*ends))
    ledger = dataclasses.replace(
        left_charged_and_reserved(("cancel_shipment", "noop"), ("refund", "applied")),
        refunded_cents=2500,
    )
    assert broken(run, ledger) == {
        "1 semantic atomicity",
        "3 exactly-once effects",
        "5 failed compensations reported",
    }


def test_a_completed_order_must_have_sent_its_confirmation() -> None:
    ends = (*FORWARD, ("reserve", "completed"), ("ship", "completed"), ("confirm", "failed"))
    run = SagaRun("made-up", "completed", "", SagaSettings(), history(*ends))
    ledger = dataclasses.replace(
        left_charged_and_reserved(("ship", "applied")), shipments={"k:ship": "created"}
    )
    assert broken(run, ledger) == {"6 post-pivot steps done"}


def test_a_charge_scheduled_before_the_screen_answered_breaks_screening() -> None:
    alongside = (
        *history(("check_catalog", "completed")),
        ScheduledActivity("screen", "2", "completed", 1, 20, 40),
        ScheduledActivity("charge", "3", "completed", 1, 21, 30),
    )
    ends = (("reserve", "completed"), ("ship", "completed"), ("confirm", "completed"))
    run = SagaRun("made-up", "completed", "", SagaSettings(), (*alongside, *history(*ends)))
    ledger = dataclasses.replace(
        left_charged_and_reserved(("ship", "applied"), ("confirm", "applied")),
        shipments={"k:ship": "created"},
        confirmations=1,
    )
    assert broken(run, ledger) == {"8 charged only once screened"}
    in_order = SagaRun("made-up", "completed", "", SagaSettings(), history(*FORWARD, *ends))
    assert broken(in_order, ledger) == set()


def test_an_order_over_the_fraud_limit_is_never_charged() -> None:
    suspected = dataclasses.replace(UNSERVED, items=[LineItem("SKU-A", 1, FRAUD_LIMIT_CENTS + 1)])
    stock = {"SKU-A": 10}
    refused = SagaRun(
        "made-up",
        "failed",
        "FraudSuspected",
        SagaSettings(),
        history(("check_catalog", "completed"), ("screen", "failed")),
    )
    untouched = OrderLedger("made-up", 0, 0, {}, {}, 0, [])
    checks = check_invariants(suspected, untouched, refused, stock, stock)
    assert failed_checks(checks) == {}
    # A run that never screens: charged, refused at the reservation, refunded. Every other
    # invariant holds; the payment service was reached.
    unscreened = SagaRun(
        "made-up",
        "failed",
        "OrderFailed",
        SagaSettings(),
        history(
            ("check_catalog", "completed"),
            ("charge", "completed"),
            ("reserve", "failed"),
            ("refund", "completed"),
        ),
        claimed_compensated=("refund",),
    )
    refunded = OrderLedger(
        "made-up",
        charged_cents=FRAUD_LIMIT_CENTS + 1,
        refunded_cents=FRAUD_LIMIT_CENTS + 1,
        reserved={},
        shipments={},
        confirmations=0,
        journal=journal(("charge", "applied"), ("refund", "applied")),
    )
    checks = check_invariants(suspected, refunded, unscreened, stock, stock)
    assert set(failed_checks(checks)) == {"8 charged only once screened"}


def _stage_checks(run: SagaRun) -> dict[str, str]:
    untouched = OrderLedger("made-up", 0, 0, {}, {}, 0, [])
    stock = {"SKU-A": 10}
    checks = check_invariants(UNSERVED, untouched, run, stock, stock)
    return {k: v for k, v in failed_checks(checks).items() if k == "9 says where it ended"}


def test_the_stage_an_order_claims_is_checked_against_its_history() -> None:
    refused = SagaRun(
        "made-up", "failed", "Refused", SagaSettings(), history(("check_catalog", "failed"))
    )
    assert _stage_checks(dataclasses.replace(refused, stage="received")) == {}
    assert _stage_checks(dataclasses.replace(refused, stage="compensated")) == {
        "9 says where it ended": "stage query says 'compensated'; the history says received"
    }
    unanswered = dataclasses.replace(refused, stage_error="WorkflowQueryFailedError: no stage")
    assert _stage_checks(unanswered) == {
        "9 says where it ended": "stage query gave no answer: WorkflowQueryFailedError: no stage"
    }
    charged = SagaRun(
        "made-up",
        "cancelled",
        "CancelledError",
        SagaSettings(),
        history(("check_catalog", "completed"), ("charge", "cancelled")),
        cancel_requested=True,
    )
    for stage in ("compensated", "compensating"):  # a cancellation may meet the compensations
        assert _stage_checks(dataclasses.replace(charged, stage=stage)) == {}
    assert set(_stage_checks(dataclasses.replace(charged, stage="charging"))) == {
        "9 says where it ended"
    }


def test_a_stage_claim_not_asked_is_reported_as_not_checked() -> None:
    from patterns.demo._saga import OrderRun, report_of

    untouched = OrderLedger("made-up", 0, 0, {}, {}, 0, [])
    stock = {"SKU-A": 10}
    refused = SagaRun(
        "made-up", "failed", "Refused", SagaSettings(), history(("check_catalog", "failed"))
    )
    not_asked = check_invariants(UNSERVED, untouched, refused, stock, stock)[-1]
    assert not_asked == InvariantCheck("9 says where it ended", True, NOT_ASKED)
    asked = check_invariants(
        UNSERVED, untouched, dataclasses.replace(refused, stage="received"), stock, stock
    )[-1]
    assert asked == InvariantCheck("9 says where it ended", True, "held")

    def runs(*last: InvariantCheck) -> list[OrderRun]:
        return [OrderRun("made-up", UNSERVED, "failed", "nothing", (check,)) for check in last]

    assert report_of(runs(not_asked, not_asked)).checks[-1].detail == NOT_ASKED
    mixed = report_of(runs(asked, not_asked, not_asked)).checks[-1]
    assert mixed.detail == "held for 1 order (not asked of 2)"


def test_an_invalid_order_must_be_refused_at_once_and_not_retried() -> None:
    invalid = dataclasses.replace(UNSERVED, items=[LineItem("SKU-A", 0, 1250)])
    stock = {"SKU-A": 10}
    untouched = OrderLedger("made-up", 0, 0, {}, {}, 0, [])
    refused = SagaRun("made-up", "failed", "InvalidOrder", SagaSettings(), (), non_retryable=True)
    assert failed_checks(check_invariants(invalid, untouched, refused, stock, stock)) == {}
    retryable = dataclasses.replace(refused, non_retryable=False)
    late = dataclasses.replace(refused, activities=history(("check_catalog", "completed")))
    for run, why in (
        (retryable, "invalid order failed with a retryable InvalidOrder (history)"),
        (
            late,
            "invalid order (order.items[0].quantity=0 must be a positive whole number "
            "of units) scheduled ['check_catalog'] (history)",
        ),
    ):
        broken = failed_checks(check_invariants(invalid, untouched, run, stock, stock))
        assert broken == {"7 failed only for a cause": why}
    # A valid order never fails as invalid.
    assert failed_checks(check_invariants(UNSERVED, untouched, refused, stock, stock)) == {
        "7 failed only for a cause": "a valid order failed with InvalidOrder (history)"
    }
