"""The pure breaker state machine and its configuration."""

from __future__ import annotations

import pytest

from patterns.breaker import BreakerConfig, BreakerConfigError, BreakerMachine, Permit, Rejected


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("failure_rate_threshold", 0.0, "outside \\(0, 1\\]"),
        ("failure_rate_threshold", 1.5, "outside \\(0, 1\\]"),
        ("failure_rate_threshold", float("nan"), "not a number"),
        ("window_size", 0, "integer >= 1"),
        ("minimum_calls", 0, "integer >= 1"),
        ("consecutive_failures", 0, "integer >= 1"),
        ("slow_call_seconds", 0.0, "> 0"),
        ("open_seconds", -1.0, ">= 0"),
        ("half_open_permits", 0, "integer >= 1"),
        ("permit_timeout_seconds", -5, "> 0"),
        ("window_size", True, "integer >= 1"),
    ],
)
def test_bad_config_names_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(BreakerConfigError, match=f"BreakerConfig.{field}=.*{message}"):
        BreakerConfig(**{field: value})  # type: ignore[arg-type]


def test_minimum_calls_above_the_window_is_refused() -> None:
    with pytest.raises(BreakerConfigError, match="minimum_calls=6 exceeds window_size=5"):
        BreakerConfig(window_size=5, minimum_calls=6)


def permit(machine: BreakerMachine, now: float) -> Permit:
    decision = machine.acquire(now)
    assert isinstance(decision, Permit), decision
    return decision


def test_opens_when_the_failure_rate_reaches_the_threshold_after_minimum_calls() -> None:
    m = BreakerMachine(BreakerConfig(failure_rate_threshold=0.5, window_size=4, minimum_calls=4))
    for ok in (False, True, False):
        m.record(permit(m, 0).id, ok, 0.1, 0)
    assert m.state.state == "closed"  # 2 of 3 failed, but fewer than minimum_calls
    m.record(permit(m, 0).id, True, 0.1, 0)
    assert m.state.state == "open"  # 2 of 4 failed
    assert m.state.transitions[-1].reason == "2/4 calls failed"
    rejected = m.acquire(1)
    assert isinstance(rejected, Rejected) and rejected.retry_at == 30.0


def test_consecutive_failure_mode_and_slow_calls() -> None:
    m = BreakerMachine(
        BreakerConfig(
            failure_rate_threshold=1.0,
            window_size=10,
            minimum_calls=10,
            consecutive_failures=3,
            slow_call_seconds=2.0,
        )
    )
    m.record(permit(m, 0).id, False, 0.1, 0)
    m.record(permit(m, 0).id, True, 2.5, 0)  # slow: a failure
    assert m.state.state == "closed" and m.state.consecutive_failures == 2
    m.record(permit(m, 0).id, True, 2.0, 0)
    assert m.state.state == "open"
    assert m.state.transitions[-1].reason == "3 consecutive failures"


def test_half_open_admits_the_permitted_probes_and_closes_when_all_succeed() -> None:
    m = BreakerMachine(
        BreakerConfig(window_size=1, minimum_calls=1, open_seconds=10, half_open_permits=2)
    )
    m.record(permit(m, 0).id, False, 0, 0)
    assert isinstance(m.acquire(9.99), Rejected)
    probes = [permit(m, 10), permit(m, 10)]
    assert m.state.state == "half_open" and isinstance(m.acquire(10), Rejected)
    m.record(probes[0].id, True, 0, 11)
    assert m.state.state == "half_open"
    m.record(probes[1].id, True, 0, 11)
    assert m.state.state == "closed"
    assert [t.to_state for t in m.state.transitions] == ["open", "half_open", "closed"]
    assert m.state.transitions[1].at == 10  # at the moment the open period ended


def test_a_failed_probe_reopens_and_late_reports_are_ignored() -> None:
    m = BreakerMachine(
        BreakerConfig(window_size=1, minimum_calls=1, open_seconds=10, half_open_permits=2)
    )
    m.record(permit(m, 0).id, False, 0, 0)
    a, b = permit(m, 10), permit(m, 10)
    m.record(a.id, False, 0, 10)
    assert m.state.state == "open" and m.state.opened_at == 10
    assert m.record(b.id, True, 0, 11) is False


def test_an_unreported_probe_times_out_as_a_failure_at_its_deadline() -> None:
    m = BreakerMachine(
        BreakerConfig(window_size=1, minimum_calls=1, open_seconds=10, permit_timeout_seconds=5)
    )
    m.record(permit(m, 0).id, False, 0, 0)
    permit(m, 10)
    m.tick(100)
    # probe expired at 15 -> open; open period ended at 25 -> half-open
    assert [(t.to_state, t.at) for t in m.state.transitions] == [
        ("open", 0),
        ("half_open", 10),
        ("open", 15),
        ("half_open", 25),
    ]


def test_force_open_holds_until_reset() -> None:
    m = BreakerMachine(BreakerConfig(open_seconds=0))
    m.force_open(0)
    m.tick(1e9)
    assert m.state.state == "forced_open" and isinstance(m.acquire(1e9), Rejected)
    m.reset(1e9)
    assert m.state.state == "closed" and isinstance(m.acquire(1e9), Permit)
