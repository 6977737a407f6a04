"""Memory of the fault log over a 100,000-injection soak: flat with the default log.

A soak records injections for as long as it runs; the default :class:`faults.FaultLog`
keeps the last ``DEFAULT_MAX_RECORDS`` (10,000) for its per-record views and exact
counts of all. This records 100,000 injections into a default log, each on a workflow
of its own (the worst case for the log's per-workflow index), and reads the memory
the process has allocated (``tracemalloc``, Python allocations only) and its resident
set size (RSS, from ``/proc`` where there is one) at the start and after every 10,000
injections (the default log is full after the first 10,000). For contrast it does the
same with a log that keeps every record (``max_records=None``), which is what the log
did before. Once full, the default log's memory moves only as its per-workflow index
(a dict) resizes between two sizes, about 0.2 MB apart.

Run with ``pytest benchmarks/test_fault_log_bench.py --benchmark-only``; the figures
go to ``extra_info`` and to ``benchmarks/results/fault_log.json``.
"""

from __future__ import annotations

import gc
import json
import platform
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import faults
from faults import FaultLog, Injection

INJECTIONS = 100_000
RESULTS = Path(__file__).parent / "results" / "fault_log.json"
KINDS = ("fail", "delay", "duplicate", "timeout")
ACTIVITIES = ("charge", "reserve", "ship", "refund", "release")
CHECKPOINT = 10_000
FLAT_TOLERANCE = 0.10
"""How much above its memory when full the default log may be at any later checkpoint."""


def injection(n: int) -> Injection:
    """The ``n``-th injection of the soak, on a workflow of its own."""
    kind = KINDS[n % len(KINDS)]
    return Injection(
        kind=kind,
        detail=kind,
        workflow_id=f"soak-{n:08d}",
        activity=ACTIVITIES[n % len(ACTIVITIES)],
        key=f"{ACTIVITIES[n % len(ACTIVITIES)]}:{n:016x}#1",
        attempt=1 + n % 3,
        at=time.time(),
        run_id=f"{n:032x}",
    )


def rss_bytes() -> int | None:
    """The process's resident set size, or ``None`` where ``/proc`` does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure() -> dict[str, int | None]:
    gc.collect()
    return {"traced_bytes": tracemalloc.get_traced_memory()[0], "rss_bytes": rss_bytes()}


def soak(log: FaultLog) -> dict[int, dict[str, int | None]]:
    """Record every injection of the soak into ``log``; memory by injections recorded."""
    points = {0: measure()}
    for n in range(INJECTIONS):
        log.record(injection(n))
        if (n + 1) % CHECKPOINT == 0:
            points[n + 1] = measure()
    return points


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The measurements of this module, written to :data:`RESULTS` at its end (not in smoke)."""
    collected: dict[str, Any] = {}
    yield collected
    if collected and not request.config.getoption("benchmark_disable"):
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "what": f"memory of a FaultLog over {INJECTIONS:,} injections, each on a "
                    "workflow of its own: traced Python allocations (tracemalloc) and RSS "
                    "by injections recorded (the default log is full from 10,000)",
                    "datetime": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{platform.machine()}, {platform.system()} "
                    f"{platform.release()}, {platform.python_implementation()} "
                    f"{platform.python_version()}",
                    "injections": INJECTIONS,
                    "logs": collected,
                },
                indent=2,
            )
            + "\n"
        )


@pytest.mark.parametrize("kept", ["default", "every record"])
def test_fault_log_memory_over_a_soak(benchmark: Any, results: dict[str, Any], kept: str) -> None:
    max_records = faults.DEFAULT_MAX_RECORDS if kept == "default" else None
    outcome: dict[str, Any] = {}

    def run() -> None:
        gc.collect()
        tracemalloc.start()
        try:
            log = FaultLog(max_records=max_records)
            outcome["points"] = soak(log)
            outcome["log"] = log
        finally:
            tracemalloc.stop()

    benchmark.pedantic(run, rounds=1, iterations=1)
    log: FaultLog = outcome["log"]
    points: dict[int, dict[str, int | None]] = outcome["points"]
    # Every injection is counted, whatever was kept.
    assert len(log) == INJECTIONS
    expected = Counter(
        (KINDS[n % len(KINDS)], ACTIVITIES[n % len(ACTIVITIES)]) for n in range(INJECTIONS)
    )
    assert log.counts() == expected
    traced = {n: int(p["traced_bytes"] or 0) for n, p in points.items()}
    full = traced[CHECKPOINT]
    highest_after = max(v for n, v in traced.items() if n > CHECKPOINT)
    growth = traced[INJECTIONS] - full
    if max_records is not None:
        assert len(log.records()) == max_records
        assert highest_after <= full * (1 + FLAT_TOLERANCE), (
            f"the default log's memory rose from {full} to {highest_after} bytes once full"
        )
    else:
        assert len(log.records()) == INJECTIONS
        assert growth > 5 * full  # the measurement sees a growing log grow
    if benchmark.stats is None:  # a smoke run (CI): the checks above, no timing to report
        return
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "traced_bytes_when_full": full,
            "traced_bytes_at_end": traced[INJECTIONS],
            "injections_per_second_with_tracemalloc": INJECTIONS / seconds,
        }
    )
    results[kept] = {
        "max_records": max_records,
        "memory_by_injections_recorded": {str(n): p for n, p in points.items()},
        "traced_growth_from_full_to_end_bytes": growth,
        "records_kept": len(log.records()),
        "injections_counted": len(log),
        "seconds_with_tracemalloc": round(seconds, 3),
        "python": sys.version.split()[0],
    }
