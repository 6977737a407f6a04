"""The fault log keeps recent injections for its per-record views and counts every one exactly."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

import faults
from faults import FaultLog, Injection

KINDS = ("fail", "delay", "duplicate")
ACTIVITIES = ("charge", "reserve")


def injection(n: int, workflows: int = 3) -> Injection:
    """The ``n``-th injection of a made-up soak: kind, activity and workflow cycle with ``n``."""
    return Injection(
        kind=KINDS[n % len(KINDS)],
        detail=KINDS[n % len(KINDS)],
        workflow_id=f"wf-{n % workflows}",
        activity=ACTIVITIES[n % len(ACTIVITIES)],
        key=f"call-{n}",
        attempt=1,
        at=float(n),
        run_id=f"run-{n % workflows}",
    )


def expected_counts(total: int) -> Counter[tuple[str, str]]:
    """Counts by (kind, activity) of the first ``total`` injections, from the cycle's arithmetic."""
    counts: Counter[tuple[str, str]] = Counter()
    for n in range(total):
        counts[KINDS[n % 3], ACTIVITIES[n % 2]] += 1
    return counts


def test_old_entries_age_out_of_the_records_but_not_out_of_the_counts() -> None:
    log = FaultLog(max_records=5)
    for n in range(12):
        log.record(injection(n))
    assert [i.key for i in log.records()] == [f"call-{n}" for n in range(7, 12)]
    assert [i.key for i in log] == [f"call-{n}" for n in range(7, 12)]
    assert len(log) == 12
    assert log.counts() == expected_counts(12)
    assert sum(log.counts().values()) == 12
    assert "12 faults injected:" in log.summary()


def test_per_workflow_and_per_run_views_hold_the_kept_entries_in_order() -> None:
    log = FaultLog(max_records=5)
    for n in range(12):
        log.record(injection(n))
    # Kept: 7..11; workflow wf-1 has 7 and 10; wf-2 has 8 and 11; wf-0 has 9.
    assert [i.key for i in log.for_workflow("wf-1")] == ["call-7", "call-10"]
    assert [i.key for i in log.for_workflow("wf-0")] == ["call-9"]
    assert log.for_workflow("wf-unknown") == []
    runs = [("wf-2", "run-2"), ("wf-0", "run-0"), ("wf-1", "run-other")]
    assert [i.key for i in log.for_runs(runs)] == ["call-8", "call-9", "call-11"]


def test_since_returns_what_came_after_an_earlier_length() -> None:
    log = FaultLog(max_records=5)
    for n in range(4):
        log.record(injection(n))
    mark = len(log)
    for n in range(4, 7):
        log.record(injection(n))
    assert [i.key for i in log.since(mark)] == ["call-4", "call-5", "call-6"]
    for n in range(7, 20):
        log.record(injection(n))
    # What aged out is gone from the view; the newest five are what is left of the rest.
    assert [i.key for i in log.since(mark)] == [f"call-{n}" for n in range(15, 20)]


def test_a_workflow_whose_entries_all_aged_out_leaves_nothing_behind() -> None:
    log = FaultLog(max_records=2)
    for n in range(100):
        log.record(injection(n, workflows=100))  # each injection on a workflow of its own
    assert [i.workflow_id for i in log] == ["wf-98", "wf-99"]
    assert all(log.for_workflow(f"wf-{n}") == [] for n in range(98))
    assert len(log._by_workflow) == 2  # the index shrinks with the records


def test_the_default_log_is_bounded_and_none_keeps_everything() -> None:
    assert FaultLog().max_records == faults.DEFAULT_MAX_RECORDS == 10_000
    assert faults.default_log.max_records == faults.DEFAULT_MAX_RECORDS
    unbounded = FaultLog(max_records=None)
    for n in range(50):
        unbounded.record(injection(n))
    assert len(unbounded.records()) == 50


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_a_bad_size_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(ValueError, match=r"FaultLog\(max_records=.*must be an integer >= 1"):
        FaultLog(max_records=bad)  # type: ignore[arg-type]


def test_the_file_keeps_every_injection(tmp_path: Path) -> None:
    path = tmp_path / "faults.jsonl"
    log = FaultLog(path, max_records=3)
    for n in range(10):
        log.record(injection(n))
    assert [i.key for i in FaultLog.load(path)] == [f"call-{n}" for n in range(10)]


def test_concurrent_writers_lose_no_count() -> None:
    log = FaultLog(max_records=100)
    per_thread, threads = 2_000, 8

    def write(offset: int) -> None:
        for n in range(per_thread):
            log.record(injection(offset * per_thread + n))

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(log) == per_thread * threads
    assert log.counts() == expected_counts(per_thread * threads)
    kept = log.records()
    assert len(kept) == 100
    assert sum(len(log.for_workflow(f"wf-{w}")) for w in range(3)) == 100


def test_refused_plans_are_counted_by_reason_and_summarised() -> None:
    log = FaultLog(max_records=2)
    for n, reason in enumerate(["unsigned", "bad signature", "unsigned"]):
        log.reject(f"wf-{n}", reason, at=float(n))
    assert log.rejected_plans == 3
    assert log.rejection_counts() == Counter({"unsigned": 2, "bad signature": 1})
    assert [r.workflow_id for r in log.rejections()] == ["wf-1", "wf-2"]  # the recent two
    assert [r.reason for r in log.rejections("wf-2")] == ["unsigned"]
    assert log.summary().splitlines() == [
        "no faults injected",
        "3 header plans refused (bad signature: 1, unsigned: 2)",
    ]


def test_clear_forgets_records_and_counts() -> None:
    log = FaultLog(max_records=3)
    for n in range(5):
        log.record(injection(n))
    log.reject("wf", "unsigned", at=0.0)
    log.clear()
    assert (len(log), log.records(), log.counts(), log.rejected_plans) == (0, [], Counter(), 0)
    assert log.summary() == "no faults injected"
