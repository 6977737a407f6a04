"""Real time one injected :class:`faults.Timeout` costs, on the time-skipping and dev servers.

Each round runs a one-activity workflow twice on the same worker: once clean
(the baseline) and once with a ``Timeout`` on its first attempt, so that the
server times that attempt out and retries it. The cost of the injected timeout
is the difference of the two runs' wall-clock times, for a start-to-close
timeout of 1 s and 10 s and for both ``body`` settings: of their medians, and of
their fastest rounds (what other load on the machine adds to a round, it adds
to one arm or the other; the fastest rounds carry the least of it).

On the time-skipping test server the held attempt hands its clock lock back
until ``CLOCK_MARGIN`` (1 s) before the timeout, so the clock skips the
rest; the dev server runs the timeout in real time (and fires timers up to
about a second late). Each time-skipping measurement gets a test server of its
own (``fresh_server_fault_harness``), since that server slows with every run it
serves.

Run with ``pytest benchmarks/test_fault_shapes_bench.py --benchmark-only``; the
figures go to ``extra_info`` and to ``benchmarks/results/fault_shapes.json``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import faults
import faults.testing
from faults import ScriptedFault, ScriptedPlan, Timeout
from tests.test_fault_shapes import TARGETS, ShapedWorkflow, body_ran

from .test_search_power_bench import machine_info

ROUNDS = 5
RESULTS = Path(__file__).parent / "results" / "fault_shapes.json"


@pytest.fixture(scope="module")
def rows(request: pytest.FixtureRequest) -> Iterator[list[dict[str, Any]]]:
    """The measurements of this module, written to :data:`RESULTS` at its end (not in smoke)."""
    collected: list[dict[str, Any]] = []
    yield collected
    if collected and not request.config.getoption("benchmark_disable"):
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "datetime": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine_info": machine_info(),
                    "command": "pytest benchmarks/test_fault_shapes_bench.py --benchmark-only",
                    "what": "real seconds per injected Timeout: run with the timeout minus "
                    "clean run (medians, and fastest rounds), same worker, interleaved rounds",
                    "clock_margin_seconds": faults.CLOCK_MARGIN,
                    "rows": collected,
                },
                indent=2,
            )
            + "\n"
        )


@pytest.mark.parametrize("body", ["never", "before"])
@pytest.mark.parametrize("seconds", [1.0, 10.0])
@pytest.mark.parametrize("server", ["time-skipping", "dev"])
def test_real_time_per_injected_timeout(
    benchmark: Any,
    request: pytest.FixtureRequest,
    rows: list[dict[str, Any]],
    server: str,
    seconds: float,
    body: str,
) -> None:
    factory = request.getfixturevalue(
        "fresh_server_fault_harness" if server == "time-skipping" else "dev_fault_harness"
    )
    harness: faults.testing.FaultHarness = factory(**TARGETS)
    plan = ScriptedPlan((ScriptedFault("shaped", 1, Timeout(body=body)),))  # type: ignore[arg-type]
    clean: list[float] = []
    ran: list[str] = []

    def clean_run() -> None:
        start = time.perf_counter()
        harness.run(ShapedWorkflow.run, seconds, 3, plan=ScriptedPlan())
        clean.append(time.perf_counter() - start)

    def timed_out_run() -> None:
        outcome = harness.run(ShapedWorkflow.run, seconds, 3, plan=plan)
        ran.append(outcome.workflow_id)

    benchmark.pedantic(timed_out_run, setup=clean_run, rounds=ROUNDS, iterations=1)
    # Every measured run timed its first attempt out: the retry ran the body.
    assert all(body_ran(workflow_id)[-1] == 2 for workflow_id in ran)
    if benchmark.stats is None:  # a smoke run (CI): the check above, no timing to report
        return
    stats = benchmark.stats.stats
    cost = stats.median - statistics.median(clean)
    cost_fastest = stats.min - min(clean)
    benchmark.extra_info["seconds_per_injected_timeout"] = cost
    benchmark.extra_info["seconds_per_injected_timeout_fastest_rounds"] = cost_fastest
    rows.append(
        {
            "server": server,
            "start_to_close_seconds": seconds,
            "body": body,
            "rounds": ROUNDS,
            "run_with_timeout_seconds": {
                "median": round(stats.median, 3),
                "min": round(stats.min, 3),
            },
            "clean_run_seconds": {
                "median": round(statistics.median(clean), 3),
                "min": round(min(clean), 3),
            },
            "seconds_per_injected_timeout": {
                "medians": round(cost, 3),
                "fastest_rounds": round(cost_fastest, 3),
            },
        }
    )
