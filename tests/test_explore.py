"""Systematic exploration of fault schedules, and plans drawn from the calls a run makes.

The workflows are a two-step transfer (``explore_targets``): correct, without
its refund (a bug that a debit whose completion is lost on every attempt, or an
outage of the credit, exposes), and with a refund that is not idempotent (a bug
only such a debit together with a fault on the refund it triggers exposes). The
invariant reads the effects the activities recorded, never a workflow's result.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import faults
import faults.testing
from faults import Fail, ScriptedFault, ScriptedPlan
from faults.testing import (
    DEFAULT_SHAPES,
    DUPLICATE,
    FAIL,
    OUTAGE,
    OUTAGE_AFTER_BODY,
    assert_holds,
    explore,
    observe_calls,
    plans_for_calls,
    shrink,
)

from .explore_targets import (
    EFFECTS,
    Transfer,
    TransferDoubleRefund,
    TransferWithoutRefund,
    conserved,
    credit,
    debit,
    refund,
    refund_twice,
)

CHEAP_SHAPES = (FAIL, DUPLICATE, OUTAGE, OUTAGE_AFTER_BODY)
"""The default shapes without the delay, whose hold past the timeout costs real time."""


@pytest.fixture(scope="module")
def harness(fault_harness: Any) -> faults.testing.FaultHarness:
    return fault_harness(
        workflows=[Transfer, TransferWithoutRefund, TransferDoubleRefund],
        activities=[debit, credit, refund, refund_twice],
    )


def _entries(plan: ScriptedPlan) -> list[tuple[str, int, str, object]]:
    return [(e.activity, e.attempt, e.fault.kind, e.through) for e in plan.faults]


CREDIT_OUTAGE = [("credit", 1, "fail", "all")]
"""Every attempt of the credit fails: one plan entry."""


def test_calls_come_from_the_fault_free_history(harness: faults.testing.FaultHarness) -> None:
    calls = observe_calls(harness, Transfer.run, 10)
    assert [(c.activity, c.max_attempts, c.start_to_close) for c in calls] == [
        ("debit", 3, 1.0),
        ("credit", 0, 1.0),  # retried until done
    ]
    # Each key is the one the fault layer sent, so an entry aimed at it faults that call.
    plan = ScriptedPlan((calls[1].entry(1, Fail()),))
    outcome = harness.run(Transfer.run, 10, plan=plan)
    assert [(i.activity, i.key, i.attempt) for i in outcome.injections] == [
        ("credit", calls[1].key, 1)
    ]


def test_single_faults_find_the_bug_only_an_outage_exposes(
    harness: faults.testing.FaultHarness,
) -> None:
    report = explore(harness, TransferWithoutRefund.run, 10, check=conserved)
    assert not report.ok and report.violation is not None
    # Calls in history order, shapes in their order: the debit's simpler shapes all held;
    # a debit whose completion is lost on every attempt is applied and never refunded.
    names = [s.name for s in DEFAULT_SHAPES]
    expected = names[: names.index("outage_after_body") + 1]
    assert [s.points[0].shape.name for s in report.ran] == expected
    assert [s.points[0].call.activity for s in report.ran] == ["debit"] * len(expected)
    assert report.singles_in_scope == 2 * len(names)
    assert report.pairs_in_scope is None  # stopped before every single ran
    assert f"{len(expected)}/{2 * len(names)} schedules" in report.coverage()
    violation = report.violation
    # Shrunk: one entry, every attempt of the debit loses its completion, nothing else.
    assert _entries(violation.shrunk) == [("debit", 1, "duplicate", "all")]
    assert set(violation.violations) == {"conservation"}
    assert violation.outcome is not None
    assert [(i.activity, i.attempt) for i in violation.outcome.injections] == [
        ("debit", 1),
        ("debit", 2),
        ("debit", 3),
    ]
    assert EFFECTS[violation.outcome.workflow_id] == [("debit", 10)]
    # The reproduction line carries the plan and the arguments; running it breaks the
    # invariant again.
    assert violation.reproduction.startswith("harness.run(TransferWithoutRefund.run, 10, plan=")
    json_text = re.search(r"plan_from_json\('(.*)'\)\)$", violation.reproduction)
    assert json_text is not None
    replayed = faults.plan_from_json(json_text.group(1))
    assert replayed == violation.shrunk
    assert conserved(harness.run(TransferWithoutRefund.run, 10, plan=replayed))


def test_a_bug_two_faults_expose_is_found_among_pairs_and_stays_a_pair(
    harness: faults.testing.FaultHarness,
) -> None:
    report = explore(harness, TransferDoubleRefund.run, 10, check=conserved, shapes=CHEAP_SHAPES)
    assert report.violation is not None
    # Every single-fault schedule held; the refund is reached only when the debit fails
    # for good, and a duplicate of it pays back twice once the debit was applied.
    singles = [s for s in report.ran if len(s.points) == 1]
    # The credit is retried without limit: no outage applies to it.
    assert len(singles) == report.singles_in_scope == len(CHEAP_SHAPES) + 2
    found = report.ran[-1]
    assert [(p.shape.name, p.call.activity) for p in found.points] == [
        ("outage_after_body", "debit"),
        ("duplicate", "refund_twice"),
    ]
    shrunk = _entries(report.violation.shrunk)
    assert shrunk == [("debit", 1, "duplicate", "all"), ("refund_twice", 1, "duplicate", None)]
    assert report.violation.outcome is not None
    effects = EFFECTS[report.violation.outcome.workflow_id]
    assert effects.count(("refund", 10)) == 2


def test_a_correct_workflow_explores_its_whole_scope(
    harness: faults.testing.FaultHarness,
) -> None:
    seen: list[faults.testing.Progress] = []
    report = explore(
        harness, Transfer.run, 10, check=conserved, shapes=DEFAULT_SHAPES, progress=seen.append
    )
    assert report.ok and report.complete, report.describe()
    assert report.schedules_run == report.in_scope == len(seen)
    # Both outage shapes skip the credit, which is retried without limit.
    assert report.singles_in_scope == 2 * len(DEFAULT_SHAPES) - 2
    assert report.pairs_in_scope is not None
    assert report.pairs_in_scope > 0
    # Pairs aim a second fault only at calls the first fault's run made: every run injected.
    assert report.silent == 0
    # The refund (reached only when the debit fails for good) was explored too.
    assert any(p.call.activity == "refund" for s in report.ran for p in s.points)
    # Pairs whose second call the fault-free run never made ran first.
    reached_by_fault = [
        s.points[1].call not in report.calls for s in report.ran[-report.pairs_in_scope :]
    ]
    assert any(reached_by_fault) and not all(reached_by_fault)
    assert reached_by_fault == sorted(reached_by_fault, reverse=True)
    assert [p.run for p in seen] == list(range(1, report.schedules_run + 1))
    assert {p.phase for p in seen} == {"single", "pair"}


def test_the_budget_bounds_the_runs(harness: faults.testing.FaultHarness) -> None:
    report = explore(harness, Transfer.run, 10, check=conserved, shapes=CHEAP_SHAPES, budget=4)
    assert report.schedules_run == 4 and report.ok and not report.complete
    assert report.pairs_in_scope is None
    nothing = explore(harness, Transfer.run, 10, check=conserved, budget=0)
    assert nothing.schedules_run == 0 and nothing.calls


def test_the_order_is_deterministic(harness: faults.testing.FaultHarness) -> None:
    first = explore(harness, Transfer.run, 10, check=conserved, shapes=CHEAP_SHAPES)
    second = explore(harness, Transfer.run, 10, check=conserved, shapes=CHEAP_SHAPES)
    assert first.complete and second.complete
    assert [faults.plan_to_json(s.plan) for s in first.ran] == [
        faults.plan_to_json(s.plan) for s in second.ran
    ]
    assert len({faults.plan_to_json(s.plan) for s in first.ran}) == first.schedules_run


def test_shrink_removes_the_faults_a_violation_does_not_need(
    harness: faults.testing.FaultHarness,
) -> None:
    calls = observe_calls(harness, TransferWithoutRefund.run, 10)
    debit_call, credit_call = calls
    plan = ScriptedPlan(
        (
            debit_call.entry(1, Fail()),
            debit_call.entry(2, Fail()),
            *(credit_call.entry(n, Fail()) for n in (1, 2, 3)),
        )
    )
    violation = shrink(harness, TransferWithoutRefund.run, 10, plan=plan, check=conserved)
    assert _entries(violation.shrunk) == [("credit", n, "fail", None) for n in (1, 2, 3)]
    assert violation.found == plan and "conservation" in violation.violations


def test_fresh_arguments_get_keys_that_match_every_run(
    harness: faults.testing.FaultHarness,
) -> None:
    amounts = iter(range(100, 1000))
    report = explore(
        harness,
        TransferWithoutRefund.run,
        check=conserved,
        shapes=(FAIL, OUTAGE),
        fresh_args=lambda: (next(amounts),),
    )
    # The keys digest the amount, which differs in every run: the digest is left open.
    assert all(c.key is not None and "*" in c.key for c in report.calls)
    assert report.silent == 0
    assert report.violation is not None
    assert _entries(report.violation.shrunk) == CREDIT_OUTAGE


def test_a_bug_without_faults_is_the_violation_with_an_empty_plan(
    harness: faults.testing.FaultHarness,
) -> None:
    def credited_twice(outcome: Any) -> dict[str, str]:
        """A wrong invariant for the transfer: it breaks on every fault-free run."""
        credits = [a for op, a in EFFECTS.get(outcome.workflow_id, []) if op == "credit"]
        return {} if len(credits) == 2 else {"credited twice": f"credits {credits}"}

    report = explore(harness, Transfer.run, 10, check=credited_twice)
    assert report.violation is not None and not report.ok
    assert report.schedules_run == 1 and report.ran[0].describe() == "no faults"
    assert report.calls == () and report.in_scope == 0
    violation = report.violation
    assert violation.found == violation.shrunk == ScriptedPlan()
    assert violation.violations == {"credited twice": "credits [10]"}
    assert violation.outcome is not None and not violation.outcome.injections
    assert violation.reproduction.startswith("harness.run(Transfer.run, 10, plan=")
    assert "violated under: no faults" in report.describe()
    assert report.coverage().startswith("no schedule in scope: the fault-free run already broke")


def test_bad_arguments_are_refused_with_the_fix(harness: faults.testing.FaultHarness) -> None:
    with pytest.raises(faults.FaultPlanError, match="budget"):
        explore(harness, Transfer.run, 10, check=conserved, budget=-1)
    with pytest.raises(faults.FaultPlanError, match="fresh_args"):
        explore(harness, Transfer.run, 10, check=conserved, fresh_args=lambda: (1,))
    with pytest.raises(faults.FaultPlanError, match="Shape"):
        explore(harness, Transfer.run, 10, check=conserved, shapes=())


# --------------------------------------------------------------------------- hypothesis


@pytest.fixture(scope="module")
def transfer_calls(harness: faults.testing.FaultHarness) -> tuple[faults.testing.Call, ...]:
    return observe_calls(harness, Transfer.run, 10)


INJECTED: list[bool] = []


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_drawn_plans_aim_at_calls_that_happen(
    harness: faults.testing.FaultHarness,
    transfer_calls: tuple[faults.testing.Call, ...],
    data: Any,
) -> None:
    plan = data.draw(plans_for_calls(transfer_calls, shapes=CHEAP_SHAPES))
    outcome = harness.run(Transfer.run, 10, plan=plan)
    INJECTED.append(bool(outcome.injections))
    assert_holds(conserved, outcome)


def test_almost_every_drawn_plan_injects_something() -> None:
    # Runs after the property above (same module, file order): its examples' tally.
    if not INJECTED:
        pytest.skip("the property did not run")
    idle = INJECTED.count(False) / len(INJECTED)
    print(f"plans_for_calls: {idle:.0%} of {len(INJECTED)} examples injected nothing")
    assert idle < 0.10


def test_the_shared_check_finds_the_bug_through_hypothesis_too(
    harness: faults.testing.FaultHarness, transfer_calls: tuple[faults.testing.Call, ...]
) -> None:
    def breaks(plan: ScriptedPlan) -> bool:
        return bool(conserved(harness.run(TransferWithoutRefund.run, 10, plan=plan)))

    found = find(
        plans_for_calls(transfer_calls, shapes=CHEAP_SHAPES),
        breaks,
        settings=settings(max_examples=200, database=None, derandomize=True),
    )
    # One entry: the debit loses its completion on every attempt its retry policy allows
    # (the calls come from the correct transfer, whose credit no outage ends).
    assert _entries(found) == [("debit", 1, "duplicate", "all")]


def test_assert_holds_names_the_broken_invariant(harness: faults.testing.FaultHarness) -> None:
    plan = ScriptedPlan(tuple(ScriptedFault("credit", n, Fail()) for n in (1, 2, 3)))
    outcome = harness.run(TransferWithoutRefund.run, 10, plan=plan)
    with pytest.raises(AssertionError, match="conservation: debited 10, refunded 0, credited 0"):
        assert_holds(conserved, outcome)


# --------------------------------------------------------------------------- pytest


USER_TEST = """
from tests.explore_targets import Transfer, conserved, credit, debit, refund
from faults.testing import FAIL

def test_explore(fault_harness, fault_explorer):
    harness = fault_harness(workflows=[Transfer], activities=[debit, credit, refund])
    report = fault_explorer(harness, Transfer.run, 10, check=conserved, shapes=[FAIL])
    print("RAN", report.schedules_run, report.budget)
    assert report.ok
"""


def _pytest(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(USER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "HYPOTHESIS"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "test_user.py"]
    return subprocess.run(
        [*command, "--rootdir", str(tmp_path), *options],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_fixture_runs_the_budget_of_the_option(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "--faults-explore-budget=1")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "RAN 1 1" in output
    # The progress line reached the terminal.
    assert re.search(r"test_explore: explore 1/\d+ single: fail at debit", output), output


def test_a_negative_budget_is_a_usage_error(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "--faults-explore-budget=-3")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--faults-explore-budget=-3 is negative" in result.stderr
