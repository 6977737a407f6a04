"""The plugin under pytest-xdist and under many examples: servers, workers and summaries.

A user's suite runs with ``pytest -n 2`` and its fixtures unchanged; the
controller's end-of-session summary adds up what every xdist worker injected.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
import pytest
from faults import Fail, ScriptedFault, ScriptedPlan
from tests.fault_targets import ProbeWorkflow, probe

PLAN = ScriptedPlan((ScriptedFault("probe", 1, Fail()),))


@pytest.mark.parametrize("n", range(6))
def test_one_injected_failure_then_a_retry(fault_harness, n):
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe])
    outcome = harness.run(ProbeWorkflow.run, f"x{n}", plan=PLAN)
    assert outcome.succeeded and outcome.result == 2
    assert [i.kind for i in outcome.injections] == ["fail"]
"""


def test_a_suite_runs_on_two_xdist_workers_and_sums_their_faults(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "HYPOTHESIS"))}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "test_suite.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "6 passed" in out
    assert "2 workers" in out or "[gw1]" in out or "gw1" in out, out
    summary = out[out.index("faults injected") :]
    assert "6 faults injected" in summary, summary


LEAK = """
from hypothesis import given, settings, strategies as st
from temporalio import activity
from tests.fault_targets import ProbeWorkflow


def make_probe(offset):
    @activity.defn(name="probe")
    async def probe(label: str) -> int:
        return activity.info().attempt + offset

    return probe


@settings(max_examples=15, deadline=None)
@given(offset=st.integers(0, 1000))
def test_activities_built_per_example(fault_harness, offset):
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[make_probe(offset)])
    outcome = harness.run(ProbeWorkflow.run, "x")
    assert outcome.result == 1 + offset  # the example's own callable ran


def test_workers_left_running(_faults_pool):
    running = [w for w, _ in _faults_pool.workers.values()]
    print(f"WORKERS RUNNING: {len(running)}")
    assert len(running) == 1
"""


def test_activities_built_per_example_leave_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_leak.py").write_text(LEAK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "HYPOTHESIS"))}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "test_leak.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "2 passed" in out and "WORKERS RUNNING: 1" in out, out
