"""What the saga simulations draw, and how one drawn case is run and checked."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import strategies as st
from temporalio.workflow import NondeterminismError

import faults
import faults.testing
from faults.strategies import scripted_faults
from patterns.saga import Order, OrderActivities, OrderServices, SagaSettings
from patterns.saga._invariants import observe_run, order_on_own_skus, order_violations

from . import RUN_SECONDS

Business = Literal["accepted", "declined", "out_of_stock", "not_served", "suspected"]


@dataclass(frozen=True)
class SagaCase:
    """One drawn scenario: an order, its business outcome, retry settings and a fault plan."""

    seed: int
    business: Business
    settings: SagaSettings
    plan: faults.ScriptedPlan
    flaw: str = ""
    """A key of :data:`FLAWS`: what makes the order invalid ('' for a valid order)."""


CALLS: dict[Business, tuple[str, ...]] = {
    "accepted": ("check_catalog", "screen", "charge", "reserve", "ship", "confirm"),
    "declined": ("check_catalog", "screen", "charge", "refund"),
    "out_of_stock": ("check_catalog", "screen", "charge", "reserve", "release", "refund"),
    "not_served": (
        "check_catalog", "screen", "charge", "reserve", "ship",
        "cancel_shipment", "release", "refund",
    ),
    "suspected": ("check_catalog", "screen"),
}  # fmt: skip
"""The activities a fault-free run of each business outcome calls: what a plan aims at.

A fault can make a run call more (a compensation after an injected failure); an
entry on a call that never happens would inject nothing, so plans aim here."""


KINDS = ("fail", "outage", "duplicate")
"""The fault kinds of the main property: fails, outages over several attempts, lost
completions. No delays: the saga's 10 s timeouts make a short delay change nothing, and a
long one costs real time."""

DISRUPTIONS = ("timeout", "restart", "cancel", "fail")
"""The kinds of the disruption property: the server's own timeout of a step (about a second
of real time each: the server's clock skips to just before it), a worker restart that
replays the order from a cold cache, a cancellation of the order at a call; and fails, so a
disruption can meet a step that fails for good. A plan holds at most one cancellation (see
:func:`_plans`)."""

CANCEL = faults.Cancel.kind


@st.composite
def _cases(draw: st.DrawFn, kinds: tuple[str, ...]) -> SagaCase:
    business: Business = draw(
        st.sampled_from(["accepted", "declined", "out_of_stock", "not_served", "suspected"])
    )
    settings = draw(
        st.builds(
            SagaSettings,
            # Sampled, not st.integers: Hypothesis draws small integers far more often,
            # and a call tried only once cannot show a duplicated effect.
            step_attempts=st.sampled_from((1, 2, 3)),
            compensation_attempts=st.sampled_from((1, 2, 3)),
            retry_interval_ms=st.just(5),
            parallel_compensation=st.booleans(),
            continue_on_error=st.booleans().map(operator.not_),
        )
    )
    plan = draw(_plans(CALLS[business], settings, kinds))
    return SagaCase(draw(st.integers(0, 2**32 - 1)), business, settings, plan)


COMPENSATIONS = frozenset({"refund", "release", "cancel_shipment"})
"""Calls retried up to ``compensation_attempts``; the other calls up to ``step_attempts``,
except :data:`UNTIL_DONE`."""

UNTIL_DONE = frozenset({"confirm"})
"""Calls retried until they succeed (each new execution of ``confirm`` is a new call)."""


def _plans(
    calls: tuple[str, ...], settings: SagaSettings, kinds: tuple[str, ...]
) -> st.SearchStrategy[faults.ScriptedPlan]:
    """Plans of one or more entries, each at an attempt its call's retry policy allows.

    An entry past the last attempt would inject nothing. The steps, the compensations and
    the calls retried until done each get a list of up to three entries of their own, so a
    compensation is faulted about as often as a step (a fault on a compensation exposes a
    bug only when the order's business outcome, or an earlier fault, makes it run). An
    outage may cover every attempt of its call, so a step whose completion is lost on
    every attempt is one entry; a call retried until done is faulted up to its third
    attempt. Plans shrink toward one entry on a step, at its first attempt.

    With ``"cancel"`` among ``kinds`` (the disruption property), a plan holds at most one
    cancellation, at one of ``calls`` drawn alike, and its lists hold up to two entries:
    only the first cancellation a run meets matters, and an earlier fault often ends the
    order before it. Of 3,000 drawn cases, 6.0 % cancel an order after a step committed
    with no fault before it in the way (what a saga that forgets to compensate a
    cancellation needs), against 2.4 % with cancellation one kind among the others.
    """
    groups = [
        ([c for c in calls if c not in COMPENSATIONS | UNTIL_DONE], settings.step_attempts),
        ([c for c in calls if c in COMPENSATIONS], settings.compensation_attempts),
        ([c for c in calls if c in UNTIL_DONE], 3),
    ]
    groups = [(names, most) for names, most in groups if names]
    listed = tuple(k for k in kinds if k != CANCEL)
    entries = [
        st.lists(
            scripted_faults(names, kinds=listed, max_attempt=most),
            max_size=2 if CANCEL in kinds else 3,
            unique_by=lambda e: (e.activity, e.attempt),
        )
        for names, most in groups
    ]
    cancels: st.SearchStrategy[faults.ScriptedFault | None] = st.none()
    if CANCEL in kinds:
        most_of = {name: most for names, most in groups for name in names}
        cancels |= st.sampled_from(calls).flatmap(
            lambda name: scripted_faults([name], kinds=[CANCEL], max_attempt=most_of[name])
        )
    return (
        st.tuples(cancels, *entries)
        .map(lambda drawn: _plan(drawn[0], [e for group in drawn[1:] for e in group]))
        .filter(lambda plan: bool(plan.faults))
    )


def _plan(
    cancel: faults.ScriptedFault | None, entries: list[faults.ScriptedFault]
) -> faults.ScriptedPlan:
    """A plan of ``entries``, with ``cancel`` first in place of any entry at its attempt."""
    if cancel is None:
        return faults.ScriptedPlan(tuple(entries))
    at = (cancel.activity, cancel.attempt)
    return faults.ScriptedPlan((cancel, *(e for e in entries if (e.activity, e.attempt) != at)))


FLAWS: dict[str, Callable[[Order], Order]] = {
    "no items": lambda o: dataclasses.replace(o, items=[]),
    "zero quantity": lambda o: dataclasses.replace(
        o, items=[dataclasses.replace(o.items[0], quantity=0), *o.items[1:]]
    ),
    "free item": lambda o: dataclasses.replace(
        o, items=[*o.items[:-1], dataclasses.replace(o.items[-1], unit_price_cents=0)]
    ),
    "no e-mail": lambda o: dataclasses.replace(o, email=o.email.replace("@", " at ")),
    "blank customer": lambda o: dataclasses.replace(o, customer=" "),
    "country name": lambda o: dataclasses.replace(
        o, address=dataclasses.replace(o.address, country="France")
    ),
}
"""Ways an order is invalid, each one field that ``validate_order`` refuses."""

invalid_saga_cases = st.builds(
    SagaCase,
    seed=st.integers(0, 2**32 - 1),
    business=st.just("accepted"),
    settings=st.builds(
        SagaSettings,
        step_attempts=st.sampled_from((1, 2, 3)),
        compensation_attempts=st.sampled_from((1, 2, 3)),
        retry_interval_ms=st.just(5),
    ),
    plan=st.just(faults.ScriptedPlan(())),
    flaw=st.sampled_from(sorted(FLAWS)),
)
"""Invalid orders with no fault plan: an invalid order calls nothing a fault could meet."""

saga_cases = _cases(KINDS)
"""Cases that shrink toward an accepted order, one attempt per step, compensations one at a
time that go on past a failure, and one fault on a call the order makes."""

disrupted_saga_cases = _cases(DISRUPTIONS)
"""Cases as :data:`saga_cases` whose plans draw :data:`DISRUPTIONS`."""


def run_case(
    harness: faults.testing.FaultHarness, workflow: Any, services: OrderServices, case: SagaCase
) -> dict[str, Any]:
    """Run ``case`` through ``workflow`` on ``harness``; return the invariants that broke.

    A run whose history does not replay against the code (the harness replays every
    finished run from its first event) breaks ``"replays from its history"`` too; its
    invariants are still checked. A run whose workflow task keeps failing (the harness
    terminates it as :class:`~faults.testing.StuckRun`) breaks :data:`ENDS` alone: the
    order never ended, so the invariants of an ended order do not apply to it.
    """
    order, before = order_on_own_skus(
        services,
        case.seed,
        order_id=faults.testing.unique_id("order"),
        sku_prefix=faults.testing.unique_id("sku"),
        declined=case.business == "declined",
        country="AQ" if case.business == "not_served" else None,
        short=case.business == "out_of_stock",
        suspected=case.business == "suspected",
    )
    if case.flaw:
        order = FLAWS[case.flaw](order)
    workflow_id = faults.testing.unique_id("order-run")
    replay_failure: NondeterminismError | None = None
    described = f"{workflow_id} under {case.plan.describe()}"
    broken: dict[str, Any] = {}
    answers: dict[str, Any] | None = None
    try:
        outcome = harness.run(
            workflow.run, order, case.settings, plan=case.plan, id=workflow_id, timeout=RUN_SECONDS
        )
        described, answers = outcome.describe(), dict(outcome.answers)
    except NondeterminismError as err:  # raised by the replay of the finished run
        replay_failure = err
    except faults.testing.StuckRun as stuck:
        broken[ENDS] = "; ".join(stuck.failures)[:300]
    if not broken:
        assert harness.loop is not None
        run = harness.loop.run(observe_run(harness.client, workflow_id, answers=answers))
        broken = order_violations(services, order, run, before)
    if replay_failure is not None:
        broken[REPLAYS] = str(replay_failure).split("\n")[0][:300]
    if broken:
        broken["run"] = described
        broken["journal"] = [(e.op, e.effect) for e in services.ledger(order.order_id).journal]
    return broken


QUERIES = ("stage",)
"""What a saga harness asks of each closed order (``fault_harness(queries=QUERIES)``): the
``stage`` claim invariant 9 checks."""

WORKER_OPTIONS: dict[str, Any] = {"workflow_failure_exception_types": [NondeterminismError]}
"""Worker options for a saga harness: a non-determinism (a replay from a cold cache that
no longer matches the history) fails the order where it happens, as on a worker so
configured, instead of retrying its workflow task until the run's time limit."""


def saga_harness(
    fault_harness: Any, workflow: type, services: OrderServices, activities: type = OrderActivities
) -> faults.testing.FaultHarness:
    """``fault_harness``'s harness for ``workflow`` as the saga simulations run it: the order
    activities (or ``activities``, a broken subclass) on ``services``, asked :data:`QUERIES`,
    with :data:`WORKER_OPTIONS`."""
    harness: faults.testing.FaultHarness = fault_harness(
        workflows=[workflow],
        activities=activities(services).activities(),
        queries=QUERIES,
        **WORKER_OPTIONS,
    )
    return harness


REPLAYS = "replays from its history"
"""What :func:`run_case` reports when a finished run's history does not replay."""

ENDS = "ends instead of retrying a failing workflow task"
"""What :func:`run_case` reports for an order whose workflow task failed again and again
(non-determinism on a replay from a cold cache that the worker could not turn into a
failure of the order): the order is stuck, as it would be in production."""


def minimal(case: SagaCase) -> str:
    """A one-line description of a (shrunk) case."""
    settings = dataclasses.asdict(case.settings)
    flaw = f" ({case.flaw})" if case.flaw else ""
    return f"{case.business}{flaw}, {settings}, plan: {case.plan.describe()}".replace("\n", "; ")
