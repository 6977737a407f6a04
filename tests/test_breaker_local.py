"""The lightweight breaker kept inside one workflow (timers skipped by the test server)."""

from __future__ import annotations

from typing import Any

import pytest

import faults
import faults.testing
from patterns.breaker import BreakerConfig, Downstream, LocalBreakerLoopWorkflow, LoopRequest


@pytest.fixture(scope="module")
def downstream(tmp_path_factory: pytest.TempPathFactory) -> Downstream:
    return Downstream(tmp_path_factory.mktemp("breaker-local") / "downstream.sqlite")


def test_local_breaker_opens_probes_and_reopens_on_the_workflow_clock(
    fault_harness: Any, downstream: Downstream
) -> None:
    harness: faults.testing.FaultHarness = fault_harness(
        workflows=[LocalBreakerLoopWorkflow], activities=[downstream.call]
    )
    downstream.set_health("svc-local", False)
    config = BreakerConfig(window_size=3, minimum_calls=3, open_seconds=25, half_open_permits=1)
    outcome = harness.run(LocalBreakerLoopWorkflow.run, LoopRequest(config, "svc-local", 8, 10.0))
    assert outcome.result is not None
    # calls at t=0,10,20 fail and open it; 30,40 are rejected; the open period ends at 45,
    # so the call at 50 is a probe, fails and reopens it; 60,70 are rejected.
    statuses = ["failed"] * 3 + ["rejected"] * 2 + ["failed"] + ["rejected"] * 2
    assert outcome.result.statuses == statuses
    assert downstream.calls("svc-local", outcome.workflow_id) == 4
    assert [t.to_state for t in outcome.result.transitions] == ["open", "half_open", "open"]
