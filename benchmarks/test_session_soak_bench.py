"""Soak: 10,000 runs of the 3-step workflow through one session's ``fault_harness``.

The Java time-skipping server slows with every run it serves (a list of clock
lock events it never trims and searches on every state change), and the
plugin replaces it after ``--temporal-rotate-after`` runs (see
:mod:`faults.testing.pytest_plugin`). This benchmark runs the configuration the
simulations use (sandboxed worker, every run replayed, one run at a time) for
``--soak-runs`` runs (default 10,000) and reports the rate of each thousand
runs, the first against the last (target: last >= 80 % of first). Every 500
runs (at 250, 750, ...: between replacements of the server, whose cost stays
in the windows) a workflow that sleeps 10 minutes twice shows that timers are
still skipped: the workflow time its history spans over the real time it took
(>= 20x).

Run with ``pytest benchmarks/test_session_soak_bench.py --benchmark-only
[--soak-runs N] [--temporal-rotate-after N]``; the figures go to
``extra_info`` and to ``benchmarks/results/session_soak.json``. A window's rate
includes whatever replacements of the server fell inside it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import pytest

    import faults.testing
    from benchmarks.three_step import ThreeStepWorkflow
    from tests.fault_targets import probe

RESULTS = Path(__file__).parent / "results" / "session_soak.json"
WINDOW = 1000
"""Runs per reported window."""
TIMER_CHECK_EVERY = 500
"""Runs between two checks that timers are skipped."""
SKIP_RATIO = 20.0
TARGET = 0.8
"""The last window's rate over the first window's."""


@workflow.defn
class TwoSleeps:
    """Sleeps 10 minutes, twice: timers that the server should skip."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(minutes=10))
        await workflow.sleep(timedelta(minutes=10))


def _timer_ratio(harness: faults.testing.FaultHarness) -> float:
    """Workflow time over real time of one ``TwoSleeps`` run, from its history."""
    begun = time.perf_counter()
    outcome = harness.run(TwoSleeps.run)
    real = time.perf_counter() - begun
    assert outcome.succeeded, outcome.describe()

    async def history() -> Any:
        return await harness.client.get_workflow_handle(outcome.workflow_id).fetch_history()

    assert harness.loop is not None
    events = harness.loop.run(history()).events
    span = events[-1].event_time.ToDatetime() - events[0].event_time.ToDatetime()
    return span.total_seconds() / real


def _machine() -> dict[str, Any]:
    try:
        from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

        info: dict[str, Any] = pytest_benchmark_generate_machine_info()
    except Exception:  # pragma: no cover - pytest-benchmark is a benchmark dependency
        info = {"machine": platform.machine(), "system": platform.system()}
    return info


def test_session_rate_holds_over_a_soak(
    benchmark: Any,
    request: pytest.FixtureRequest,
    fault_harness: Any,
    temporal_rotation_report: faults.testing.RotationReport | None,
) -> None:
    runs = int(request.config.getoption("--soak-runs"))
    if benchmark.disabled:  # a smoke run (CI): the mechanics, not the measurement
        runs = min(runs, 100)
    window = WINDOW if runs >= 2 * WINDOW else max(runs // 2, 1)
    harness: faults.testing.FaultHarness = fault_harness(
        workflows=[ThreeStepWorkflow, TwoSleeps], activities=[probe]
    )
    rates: list[float] = []
    cpu_per_run: list[float] = []
    window_load: list[float] = []
    ratios: list[tuple[int, float]] = []
    load = [os.getloadavg()]

    def soak() -> None:
        ratios.append((0, _timer_ratio(harness)))
        window_began = time.perf_counter()
        cpu_began = time.process_time()
        for n in range(1, runs + 1):
            outcome = harness.run(ThreeStepWorkflow.run, f"soak-{n}")
            assert outcome.succeeded, outcome.describe()
            if n % window == 0:
                rates.append(window / (time.perf_counter() - window_began))
                cpu_per_run.append((time.process_time() - cpu_began) / window)
                window_load.append(os.getloadavg()[0])
                window_began = time.perf_counter()
                cpu_began = time.process_time()
            # Halfway between replacements of the server (multiples of --temporal-rotate-after),
            # so that their cost stays inside the windows' clocks.
            if n % TIMER_CHECK_EVERY == TIMER_CHECK_EVERY // 2 or n == runs:
                paused = time.perf_counter()
                ratios.append((n, _timer_ratio(harness)))
                window_began += time.perf_counter() - paused  # not counted in a window's rate

    benchmark.pedantic(soak, rounds=1, iterations=1)
    load.append(os.getloadavg())
    report = temporal_rotation_report
    first, last = rates[0], rates[-1]
    result = {
        "what": "runs/s of the 3-step workflow through fault_harness (sandboxed, every run "
        "replayed, one at a time), per window of consecutive runs in one session; timer "
        "checks: workflow time / real time of a run sleeping 10 minutes twice",
        "datetime": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine_info": _machine(),
        "load_average_1_5_15": {"start": load[0], "end": load[1]},
        "command": "pytest benchmarks/test_session_soak_bench.py --benchmark-only "
        f"--soak-runs {runs}"
        + (
            f" --temporal-rotate-after {request.config.getoption('--temporal-rotate-after')}"
            if request.config.getoption("--temporal-rotate-after") is not None
            else ""
        ),
        "runs": runs,
        "window_runs": window,
        "rotate_after": report.rotate_after if report is not None else None,
        "rates_per_window": [round(rate, 2) for rate in rates],
        "test_process_cpu_ms_per_run_per_window": [round(c * 1000, 2) for c in cpu_per_run],
        "load_average_1min_at_window_end": [round(x, 2) for x in window_load],
        "first_window_rate": round(first, 2),
        "last_window_rate": round(last, 2),
        "last_over_first": round(last / first, 3),
        "target_last_over_first": TARGET,
        "timer_checks": [{"after_runs": n, "ratio": round(r, 1)} for n, r in ratios],
        "timers_skipped_throughout": all(r >= SKIP_RATIO for _, r in ratios),
        "server_rotations": (
            [{"reason": why, "seconds": round(s, 2)} for why, s in report.rotations]
            if report is not None
            else []
        ),
        "rotations_blocked": report.blocked if report is not None else [],
    }
    benchmark.extra_info.update(
        {k: result[k] for k in ("first_window_rate", "last_window_rate", "last_over_first")}
    )
    if not benchmark.disabled:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nsoak of {runs} runs: first {window} at {first:.1f} runs/s, last at {last:.1f} "
        f"({last / first:.0%}); windows {[round(r, 1) for r in rates]}; timer ratios "
        f"{[round(r) for _, r in ratios]}; rotations {len(result['server_rotations'])}"
    )
