"""Injected failures do not drown a failing test's report: the SDK logs them at debug level.

The fault layer raises its failures as ``BENIGN`` application errors, which the SDK
logs at DEBUG ("Completing activity as failed") instead of WARNING. The layer's own
log and the session's summary still show every injection; an activity that fails on
its own is still a warning.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from faults import Duplicate, Fail, ScriptedFault, ScriptedPlan

from .fault_targets import ProbeWorkflow, probe

ROOT = Path(__file__).resolve().parents[1]
SDK_MESSAGE = "Completing activity as failed"


def test_injected_failures_are_logged_by_the_sdk_at_debug_only(
    fault_harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="temporalio.activity")
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe])
    plan = ScriptedPlan((ScriptedFault("probe", 1, Fail()), ScriptedFault("probe", 2, Duplicate())))
    outcome = harness.run(ProbeWorkflow.run, "x", plan=plan)
    assert [(i.kind, i.attempt) for i in outcome.injections] == [("fail", 1), ("duplicate", 2)]
    mine = [
        r
        for r in caplog.records
        if SDK_MESSAGE in r.getMessage()
        and r.__dict__.get("temporal_activity", {}).get("workflow_id") == outcome.workflow_id
    ]
    assert [r.levelno for r in mine] == [logging.DEBUG, logging.DEBUG]


INNER_TESTS = """
from hypothesis import given, settings, strategies as st
from temporalio import activity

from faults import Fail, ScriptedFault, ScriptedPlan
from tests.fault_targets import ProbeWorkflow, probe


@activity.defn(name="probe")
async def broken_probe(label: str) -> int:
    raise RuntimeError("a real failure of the activity itself")


@settings(max_examples=5, database=None, deadline=None, derandomize=True)
@given(st.integers(min_value=1, max_value=3))
def test_injected_property(fault_harness, failures):
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe])
    plan = ScriptedPlan((ScriptedFault("probe", 1, Fail(), through=failures),))
    outcome = harness.run(ProbeWorkflow.run, "x", plan=plan)
    assert outcome.result == 1  # false: the faults move the success to a later attempt


def test_real_failure(fault_harness):
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[broken_probe])
    assert harness.run(ProbeWorkflow.run, "x").succeeded
"""


def section(report: str, test_name: str) -> str:
    """The failure report of one test in pytest's output."""
    start = report.index(f" {test_name} ")
    ends = [report.find(mark, start + 1) for mark in ("\n____", "\n====")]
    return report[start : min(e for e in ends if e != -1)]


def test_a_failing_property_report_carries_no_sdk_warning_per_injected_fault(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "test_inner.py", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = run.stdout
    assert run.returncode == 1, report + run.stderr
    injected = section(report, "test_injected_property")
    # Shrunk to one failed attempt; the report names the injection (the layer's own record).
    assert "assert 2 == 1" in injected
    assert "injected fail on probe attempt 1" in injected
    assert SDK_MESSAGE not in injected
    # The control: the capture does show the SDK's warning for a failure of the activity itself.
    real = section(report, "test_real_failure")
    assert "WARNING  temporalio.activity" in real and SDK_MESSAGE in real
    # The session's summary still counts the injected faults.
    summary = report[report.index("faults injected") :]
    counted = re.search(r"fail\s+probe\s+(\d+)", summary)
    assert counted is not None and int(counted.group(1)) >= 1, summary
