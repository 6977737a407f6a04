"""Fault plans: validation, serialisation and pure, order-independent decisions."""

from __future__ import annotations

import pytest

from faults import (
    ActivityCall,
    Delay,
    Duplicate,
    Fail,
    FaultPlanError,
    FaultRule,
    HeartbeatLoss,
    RandomPlan,
    ScriptedFault,
    ScriptedPlan,
    check_plan_against,
    plan_from_json,
    plan_to_json,
)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FaultRule(fail=1.5), r"FaultRule\.fail=1\.5 is outside \[0, 1\]"),
        (lambda: FaultRule(duplicate=-0.1), r"FaultRule\.duplicate=-0\.1 is outside \[0, 1\]"),
        (lambda: FaultRule(fail=float("nan")), r"FaultRule\.fail=nan is not a number"),
        (lambda: FaultRule(fail=0.7, delay=0.5), r"sum to 1\.2 > 1"),
        (lambda: FaultRule(delay_seconds=-1), r"FaultRule\.delay_seconds=-1 is negative"),
        (lambda: FaultRule(activity=""), r"FaultRule\.activity=''"),
        (lambda: FaultRule(until_attempt=0), r"FaultRule\.until_attempt=0"),
        (lambda: Delay(-0.5), r"Delay\.seconds=-0\.5 is negative"),
        (lambda: Delay(1, at="during"), r"Delay\.at='during'"),
        (lambda: HeartbeatLoss(after=-1), r"HeartbeatLoss\.after=-1"),
        (lambda: Fail(retryable="yes"), r"Fail\.retryable='yes'"),  # type: ignore[arg-type]
        (lambda: ScriptedFault("charge", 0, Fail()), r"ScriptedFault\.attempt=0"),
        (lambda: ScriptedFault("charge", 1, "fail"), r"ScriptedFault\.fault='fail'"),  # type: ignore[arg-type]
        (lambda: ScriptedPlan(("charge",)), r"ScriptedPlan\.faults\[0\]='charge'"),  # type: ignore[arg-type]
        (lambda: RandomPlan(seed="1"), r"RandomPlan\.seed='1'"),  # type: ignore[arg-type]
        (lambda: RandomPlan.parse("fail=2", seed=1), r"FaultRule\.fail=2\.0 is outside"),
        (lambda: RandomPlan.parse("explode=0.1", seed=1), r"'explode=0\.1' is not NAME=VALUE"),
        (lambda: RandomPlan.parse("fail=lots", seed=1), r"fail='lots' is not a number"),
        (
            lambda: plan_from_json(
                '{"kind":"scripted","faults":[{"activity":"a","attempt":1,'
                '"fault":{"kind":"explode"}}]}'
            ),
            r"faults\[0\]\.fault\.kind='explode' is not a fault kind; use one of fail, delay",
        ),
        (lambda: plan_from_json('{"kind":"chaos"}'), r"plan\.kind='chaos' is unknown"),
        (
            lambda: plan_from_json(
                '{"kind":"scripted","faults":[{"activity":"a","attempt":1,"fault":"fail"}]}'
            ),
            r"faults\[0\]\.fault='fail' must be an object",
        ),
        (
            lambda: plan_from_json('{"kind":"scripted","faults":[["a",1]]}'),
            r"faults\[0\]=\['a', 1\] must be an object",
        ),
        (lambda: plan_from_json('{"kind":"random","seed":1,"rules":{}}'), r"plan\.rules=\{\}"),
        (lambda: Delay(float("inf")), r"Delay\.seconds=inf is not a finite number"),
        (lambda: ScriptedFault("a", 1, Fail(), key=5), r"ScriptedFault\.key=5 must be None"),  # type: ignore[arg-type]
        (lambda: FaultRule(until_attempt=True), r"FaultRule\.until_attempt=True"),
        (lambda: plan_from_json("{not json"), r"fault plan is not valid JSON"),
    ],
)
def test_bad_values_are_refused_at_construction_naming_the_field(build, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FaultPlanError, match=message):
        build()


def test_pattern_matching_no_registered_activity_is_refused() -> None:
    plan = ScriptedPlan((ScriptedFault("refnd*", 1, Fail()),))
    with pytest.raises(FaultPlanError, match=r"'refnd\*' matches no activity .*\(charge, refund\)"):
        check_plan_against(plan, ["refund", "charge"])
    check_plan_against(ScriptedPlan((ScriptedFault("ref*", 1, Fail()),)), ["refund"])


@pytest.mark.parametrize(
    "plan",
    [
        ScriptedPlan(
            (
                ScriptedFault("charge", 1, Fail(retryable=False)),
                ScriptedFault("reserve*", 2, Delay(0.25, at="after"), key="order-7*"),
                ScriptedFault("ship", 1, Duplicate()),
                ScriptedFault("poll", 3, HeartbeatLoss(after=2)),
            )
        ),
        RandomPlan.parse("fail=0.2,delay=0.1,duplicate=0.1,until_attempt=2", seed=42),
        RandomPlan(seed=7, rules=(FaultRule("a*", heartbeat_loss=0.5, until_attempt=None),)),
    ],
)
def test_plans_round_trip_through_json(plan: ScriptedPlan | RandomPlan) -> None:
    assert plan_from_json(plan_to_json(plan)) == plan


def test_scripted_plan_hits_exactly_its_activity_attempt_and_key() -> None:
    plan = ScriptedPlan(
        (
            ScriptedFault("charge", 2, Fail()),
            ScriptedFault("ship_*", 1, Duplicate(), key="order-1:*"),
        )
    )
    assert plan.decide(ActivityCall("w", "charge", "k", 2)) == Fail()
    assert plan.decide(ActivityCall("w", "charge", "k", 1)) is None
    assert plan.decide(ActivityCall("w", "ship_order", "order-1:ship", 1)) == Duplicate()
    assert plan.decide(ActivityCall("w", "ship_order", "order-2:ship", 1)) is None


def test_random_plan_is_a_pure_function_of_seed_and_identity() -> None:
    plan = RandomPlan.parse("fail=0.3,duplicate=0.2", seed=11)
    calls = [ActivityCall(f"wf-{i % 7}", "work", f"key-{i}", 1 + i % 3) for i in range(2000)]
    first = [plan.decide(c) for c in calls]
    # Any order of asking gives the same answers: nothing depends on history.
    again = {c: plan.decide(c) for c in reversed(calls)}
    assert first == [again[c] for c in calls]
    rate = sum(f is not None for f in first) / len(first)
    assert 0.43 < rate < 0.57, rate
    other = RandomPlan.parse("fail=0.3,duplicate=0.2", seed=12)
    assert [other.decide(c) for c in calls] != first


def test_random_plan_runs_clean_after_until_attempt() -> None:
    plan = RandomPlan.parse("fail=1", seed=3)
    assert plan.decide(ActivityCall("w", "a", "k", 3)) == Fail()
    assert plan.decide(ActivityCall("w", "a", "k", 4)) is None


def test_first_matching_rule_wins() -> None:
    plan = RandomPlan(seed=1, rules=(FaultRule("pay*", fail=1.0), FaultRule("*", duplicate=1.0)))
    assert plan.decide(ActivityCall("w", "pay", "k", 1)) == Fail()
    assert plan.decide(ActivityCall("w", "ship", "k", 1)) == Duplicate()


def test_may_inject_says_which_activity_types_a_plan_can_fault() -> None:
    assert not ScriptedPlan().may_inject("pay")
    scripted = ScriptedPlan((ScriptedFault("pay*", 2, Fail()),))
    assert scripted.may_inject("payment") and not scripted.may_inject("ship")
    rules = (FaultRule("pay*"), FaultRule("ship", heartbeat_loss=0.1), FaultRule("*", fail=0.5))
    random = RandomPlan(seed=1, rules=rules)
    # The first matching rule decides: "pay*" has no probability, so "pay" is never faulted.
    assert not random.may_inject("pay")
    assert random.may_inject("ship") and random.may_inject("cancel")
    assert not RandomPlan(seed=1).may_inject("pay")
    # may_inject is never False where decide() could give a fault.
    for plan in (scripted, random):
        for activity in ("pay", "payment", "ship", "cancel"):
            if not plan.may_inject(activity):
                calls = [ActivityCall("w", activity, f"k{i}", 1 + i % 3) for i in range(300)]
                assert all(plan.decide(call) is None for call in calls)
