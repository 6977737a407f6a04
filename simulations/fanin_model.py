"""Fan-in scenarios and the fan-in property, shared by the simulations and their broken variants.

A scenario is a batch (size, chunk size, window, children or not, activities
or local activities, failure policy) and a fault plan over the batch's
activities, optionally aimed at one chunk by its key; an entry may be an
outage through every attempt the retry policy allows, and with children a
segment child may be cancelled at one of its chunk calls. The property: the
aggregate holds every record exactly once, and the failed set is exactly the
records whose processing failed permanently (invalid records, chunks whose
activity failed for good, segments whose child was cancelled: read from the
fault log); a fail-fast batch names the first failed record of a failed chunk,
stops at the first failure its history shows (it names a record of that failure
and starts no chunk or child after it), and the history has the batch's shape
(children only above ``segment_size``, chunks run as the kind of activity the
configuration asks for).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

import faults
import faults.testing
from faults.strategies import DEFAULT_KINDS, scripted_faults
from patterns.fanout import (
    FAILURE_POLICIES,
    RECORD_FAILED_TYPE,
    RETRY_POLICY,
    BatchConfig,
    BatchRequest,
    BatchResult,
    _sink,
    invalid_records,
    record_id,
)

from . import RUN_SECONDS

ACTIVITY_NAMES = ("process_chunk", "seal_batch")
CHUNK_HEAVY = ("process_chunk", "process_chunk", "seal_batch")
"""Fault targets, drawn two to one in favour of the chunks."""
MAX_RECORDS = 60
MAX_CHUNKS = 10


@dataclass(frozen=True)
class Scenario:
    """One batch and the fault plan it runs under."""

    request: BatchRequest
    plan: faults.ScriptedPlan


@st.composite
def scenarios(
    draw: st.DrawFn, database: str, policies: tuple[str, ...] = FAILURE_POLICIES
) -> Scenario:
    count = draw(st.integers(1, MAX_RECORDS), label="count")
    least = math.ceil(count / MAX_CHUNKS)
    chunk_size = draw(st.integers(least, max(least, 20)), label="chunk_size")
    # In a third of the batches a segment child is cancelled at one of its chunk calls, so
    # it fails other than with RecordFailed: children, one lane per child (no other chunk of
    # the child in flight to store records after the batch is sealed), activities (a
    # cancellation cannot land at a chosen local activity call).
    cancelling = count > 1 and draw(st.integers(0, 2), label="cancelling") == 2
    children = st.integers(min(count, max(chunk_size, count // 3)), count)
    larger = st.integers(count + 1, 2 * count)  # one workflow, however large the segment
    segment_size = draw(
        st.integers(max(1, min(chunk_size, count // 3)), count - 1)
        if cancelling
        else st.just(count) | children | larger,
        label="segment_size",
    )
    config = BatchConfig(
        chunk_size=chunk_size,
        # One lane in half the batches: the strictest order, where a lane that stops
        # early leaves records behind.
        window=1 if cancelling else draw(st.just(1) | st.integers(1, 8), label="window"),
        record_concurrency=draw(st.integers(1, 16), label="record_concurrency"),
        local_activities=not cancelling and draw(st.booleans(), label="local_activities"),
        segment_size=segment_size,
        child_window=2,
        io_seconds=0,
    )
    # The batch's own chunk calls: each segment is cut into chunks from its start, so a key
    # cut from the batch's start would miss every chunk after an uneven segment.
    keys = [f"chunk-{c.start}-{c.stop}" for c in _chunk_ranges(count, config)]
    # Single faults of every kind on attempts 1-2, or a failing outage that may last
    # through every attempt the retry policy allows (a chunk that fails for good).
    # With a cancelled child no server timeouts: the abandoned chunk attempt leaves the test
    # server's clock held (docs/test-server.md) until the run ends, so a timeout would cost
    # its full 60 s of real time.
    kinds = ("fail", "outage", "duplicate", "delay") if cancelling else DEFAULT_KINDS
    one_fault = scripted_faults(
        CHUNK_HEAVY, kinds=kinds, max_attempt=2, max_delay=0.02, allow_non_retryable=True
    )
    outage = scripted_faults(CHUNK_HEAVY, kinds=("fail", "outage"), outage_through_all=True)
    # About one batch in twenty runs without faults; the others get at least one entry on a
    # first attempt (an entry on a later attempt injects only after an earlier one failed),
    # so few examples are spent on a plan that injects nothing. Fault-free is the last
    # choice: Hypothesis draws a first choice far more often than its share.
    fault_free = not cancelling and draw(st.sampled_from([False] * 19 + [True]), label="clean")
    entries = draw(
        st.lists(
            st.tuples(one_fault | outage, st.none() | st.sampled_from(keys)),
            max_size=0 if fault_free else 5,
        ).filter(lambda es: fault_free or cancelling or any(f.attempt == 1 for f, _ in es)),
        label="faults",
    )
    cancels: list[str] = []
    if cancelling:
        # Often at the first chunk of one of the two segments that start at once, so that a
        # fail-fast batch meets the cancelled child before a failure elsewhere.
        opening = [
            f"chunk-{c.start}-{c.stop}"
            for c in _chunk_ranges(count, config)
            if c.start in (0, segment_size)
        ]
        cancels = draw(
            st.lists(
                st.sampled_from(opening) | st.sampled_from(keys),
                min_size=1,
                max_size=2,
                unique=True,
            ),
            label="cancels",
        )
    plan = faults.ScriptedPlan(
        tuple(
            faults.ScriptedFault(
                f.activity,
                f.attempt,
                f.fault,
                key if f.activity == "process_chunk" else None,
                f.through,
            )
            for f, key in entries
        )
        + tuple(faults.ScriptedFault("process_chunk", 1, faults.Cancel(), key) for key in cancels)
    )
    weighted = [p for p in policies for _ in range(2 if p == "collect" else 1)]
    request = BatchRequest(
        batch_id=faults.testing.unique_id("sim"),
        seed=draw(st.integers(0, 2**16), label="seed"),
        count=count,
        database=database,
        policy=draw(st.sampled_from(weighted), label="policy"),  # type: ignore[arg-type]
        config=config,
    )
    return Scenario(request, plan)


_ATTEMPT_FAILING = ("fail", "timeout")
"""Injected kinds that fail the attempt they land on."""


def _permanent(injection: faults.Injection) -> bool:
    """Whether the injection failed its call for good: non-retryable, or on its last attempt."""
    if injection.kind not in _ATTEMPT_FAILING:
        return False
    return "non-retryable" in injection.detail or injection.attempt >= RETRY_POLICY.maximum_attempts


def _chunks(request: BatchRequest) -> list[range]:
    """The record ranges of the batch's chunks: each segment is cut into chunks from its start."""
    return _chunk_ranges(request.count, request.config)


def _segment(count: int, config: BatchConfig) -> int:
    """Records per segment: the whole batch when it is no larger than ``segment_size``."""
    return count if count <= config.segment_size else config.segment_size


def _chunk_ranges(count: int, config: BatchConfig) -> list[range]:
    segment = _segment(count, config)
    return [
        range(start, min(start + config.chunk_size, end))
        for first in range(0, count, segment)
        for end in [min(first + segment, count)]
        for start in range(first, end, config.chunk_size)
    ]


def _chunk_records(key: str) -> range:
    """The records of chunk ``key`` (its activity id, ``chunk-START-END``)."""
    return range(*map(int, key.removeprefix("chunk-").split("-")))


def _segment_records(child_id: str, request: BatchRequest) -> range:
    """The records of the segment child ``child_id`` (``<batch id>-segment-START``)."""
    start = int(child_id.rsplit("-segment-", 1)[1])
    return range(start, min(start + _segment(request.count, request.config), request.count))


@dataclass(frozen=True)
class _Shape:
    """What one workflow's history shows of how it ran its records."""

    children: tuple[str, ...]
    """Ids of the child workflows it started (the server's started events)."""
    initiated: tuple[str, ...]
    """Ids of the child workflows it asked for, started or not."""
    activities: int
    """``process_chunk`` activities it scheduled."""
    local: int
    """Local activities it recorded (markers)."""


def _shape(history: WorkflowHistory) -> _Shape:
    children: list[str] = []
    initiated: list[str] = []
    activities = local = 0
    for e in history.events:
        kind = e.event_type
        if kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            initiated.append(
                e.start_child_workflow_execution_initiated_event_attributes.workflow_id
            )
        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            started = e.child_workflow_execution_started_event_attributes
            children.append(started.workflow_execution.workflow_id)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = e.activity_task_scheduled_event_attributes
            activities += scheduled.activity_type.name == "process_chunk"
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            local += e.marker_recorded_event_attributes.marker_name == _LOCAL_ACTIVITY_MARKER
    return _Shape(tuple(children), tuple(initiated), activities, local)


_LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker the SDK records in the history for each local activity's result."""


def _check_shape(
    harness: faults.testing.FaultHarness, request: BatchRequest, workflow_id: str, completed: bool
) -> dict[str, WorkflowHistory]:
    """Assert, from the histories, that the batch ran in the shape its configuration asks for.

    Returns the histories it read, the batch's and its children's, by workflow id.
    """
    config, loop = request.config, harness.loop
    assert loop is not None, "the harness runs no event loop"

    def fetch(wid: str) -> WorkflowHistory:
        return loop.run(harness.client.get_workflow_handle(wid).fetch_history())

    histories = {workflow_id: fetch(workflow_id)}
    top = _shape(histories[workflow_id])
    if request.count <= config.segment_size:
        assert not top.initiated, (
            f"a batch of {request.count} <= segment_size {config.segment_size} "
            f"started children {list(top.initiated)} (history)"
        )
        shapes = [top]
    else:
        segments = [
            f"{workflow_id}-segment-{s}" for s in range(0, request.count, config.segment_size)
        ]
        assert top.activities == top.local == 0, (
            f"a batch of {request.count} > segment_size {config.segment_size} ran "
            f"{top.activities + top.local} chunk(s) itself (history)"
        )
        assert sorted(set(top.initiated)) == sorted(top.initiated), (
            f"a segment child asked for twice: {list(top.initiated)} (history)"
        )
        assert set(top.initiated) <= set(segments), (
            f"children {sorted(set(top.initiated) - set(segments))} are not segments "
            f"of {config.segment_size} records (history)"
        )
        if completed:
            assert sorted(top.children) == sorted(segments), (
                f"completed batch started children {list(top.children)}, "
                f"not the segments {segments} (history)"
            )
        histories.update((c, fetch(c)) for c in top.children)
        shapes = [_shape(histories[c]) for c in top.children]
    wrong = sum(s.activities if config.local_activities else s.local for s in shapes)
    asked = "local activities" if config.local_activities else "activities"
    assert not wrong, f"chunks asked to run as {asked} ran {wrong} time(s) as the other kind"
    return histories


def _check_named(request: BatchRequest, named: str, expected_failed: set[str]) -> None:
    """A fail-fast batch names a failed record, the first failed one of its chunk."""
    assert named in expected_failed, f"fail-fast named {named}, not a failed record"
    [chunk] = [c for c in _chunks(request) if named in map(record_id, c)]
    first = next(record_id(n) for n in chunk if record_id(n) in expected_failed)
    assert named == first, f"fail-fast named {named}, not the first failed record {first}"


@dataclass(frozen=True)
class _Stop:
    """What one workflow's history shows of where it had to stop and what followed."""

    failed: tuple[range, ...]
    """Records of the failures handled by the workflow task that handled the stop."""
    succeeded: int
    """Chunks or children whose success that task handled."""
    started_then: int
    """Chunks or children that task started."""
    started_later: int
    """Chunks or children that later tasks started."""
    left_running: tuple[range, ...]
    """Records of the chunks or children running when that task started that it did not ask
    to cancel."""
    left_behind: tuple[range, ...]
    """Records of the children running when that task started that had not ended when the
    workflow closed (left to the parent close policy)."""


@dataclass
class _Work:
    """One chunk activity or segment child, as the history shows it."""

    records: range
    by: int
    """The completed event of the workflow task that started it."""
    running: int = 0
    """The event from which it runs: a chunk's scheduled event, a child's started event."""
    ended: int = 0
    child: bool = False
    cancelled_by: int = 0
    """The completed event of the workflow task that asked to cancel it."""


_E = EventType
_ENDS = {
    _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("activity_task_completed", "scheduled", False),
    _E.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed", "scheduled", True),
    _E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("activity_task_timed_out", "scheduled", True),
    _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: (
        "child_workflow_execution_completed", "initiated", False
    ),
    _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: (
        "child_workflow_execution_failed", "initiated", True
    ),
    _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: (
        "child_workflow_execution_canceled", "initiated", True
    ),
    _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: (
        "child_workflow_execution_timed_out", "initiated", True
    ),
    _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: (
        "child_workflow_execution_terminated", "initiated", True
    ),
}  # fmt: skip
"""How a chunk activity or a child ends: its attributes, the event it refers to, and whether it
failed. An activity that completed failed if its chunk holds an invalid record (the seed's data);
one that was cancelled is not counted: the batch cancels the rest after its first failure."""


_CLOSES = (
    _E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    _E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    _E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    _E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    _E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
)


def _stop(history: WorkflowHistory, request: BatchRequest, invalid: set[str]) -> _Stop | None:
    """Read where a workflow's history says it had to stop (``None`` if it never had to).

    It stops at a request to cancel it, and, under ``fail_fast``, at the first chunk or child
    that failed, whichever comes first. A chunk is named by its activity id, a child by its
    workflow id. The first completed workflow task started after that event handles it.
    """
    tasks: list[tuple[int, int]] = []  # (started, completed) event ids of completed tasks
    work: dict[int, _Work] = {}  # by scheduled or initiated event id
    children: dict[str, int] = {}  # child workflow id -> initiated event id
    ends: list[tuple[int, range, bool]] = []  # (event id, records, failed)
    cancel_requested = closed = 0
    # Read by position, not from the events' task ids (the test server fills them in its own
    # way): a task's commands follow its completed event; a task handles what came before it.
    started = completed = 0
    for e in history.events:
        kind = e.event_type
        if kind == _E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started = e.event_id
        elif kind == _E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            completed = e.event_id
            tasks.append((started, completed))
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            chunk = e.activity_task_scheduled_event_attributes
            if chunk.activity_type.name == "process_chunk":
                records = _chunk_records(chunk.activity_id)
                work[e.event_id] = _Work(records, completed, running=e.event_id)
        elif kind == _E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            child = e.start_child_workflow_execution_initiated_event_attributes
            records = _segment_records(child.workflow_id, request)
            work[e.event_id] = _Work(records, completed, child=True)
            children[child.workflow_id] = e.event_id
        elif kind in _CLOSES:
            closed = e.event_id
        elif kind == _E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            cancel_requested = cancel_requested or e.event_id
        elif kind == _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            initiated = e.child_workflow_execution_started_event_attributes.initiated_event_id
            if initiated in work:
                work[initiated].running = e.event_id
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
            asked = e.activity_task_cancel_requested_event_attributes.scheduled_event_id
            if asked in work:
                work[asked].cancelled_by = completed
        elif kind == _E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            target = e.request_cancel_external_workflow_execution_initiated_event_attributes
            if target.workflow_execution.workflow_id in children:
                work[children[target.workflow_execution.workflow_id]].cancelled_by = completed
        elif kind in _ENDS:
            field, refers_to, failed = _ENDS[kind]
            attrs = getattr(e, f"{field}_event_attributes")
            one = work.get(getattr(attrs, f"{refers_to}_event_id"))
            if one is not None:
                if kind == _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                    failed = any(record_id(n) in invalid for n in one.records)
                one.ended = one.ended or e.event_id
                ends.append((e.event_id, one.records, failed))
    stops = [cancel_requested] if cancel_requested else []
    if request.policy == "fail_fast":
        stops += [event_id for event_id, _, failed in ends if failed][:1]
    first = min(stops, default=None)
    handling = [task for task in tasks if first is not None and task[0] > first]
    if not handling:
        return None
    started, completed = handling[0]
    previous = max((s for s, _ in tasks if s < started), default=0)
    handled = [
        (records, failed) for event_id, records, failed in ends if previous < event_id < started
    ]
    running = [
        w for w in work.values()
        if w.by < completed and 0 < w.running < started and not 0 < w.ended < started
    ]  # fmt: skip
    return _Stop(
        tuple(records for records, failed in handled if failed),
        sum(1 for _, failed in handled if not failed),
        sum(1 for w in work.values() if w.by == completed),
        sum(1 for w in work.values() if w.by > completed),
        tuple(w.records for w in running if w.cancelled_by != completed),
        tuple(w.records for w in running if w.child and closed and not 0 < w.ended < closed),
    )


def _check_stops(
    histories: dict[str, WorkflowHistory],
    request: BatchRequest,
    workflow_id: str,
    named: str | None,
    invalid: set[str],
) -> None:
    """Assert, from the histories, that the batch and its children stopped when they had to.

    A workflow whose cancellation was requested, or a fail-fast one at its first failure,
    asks to cancel every chunk or child then running, in the workflow task that handles it,
    starts none after that task, and closes only once those children ended. In that task a
    lane woken by a success may start its next chunk before the lanes are cancelled, so the
    task may start as many as it handled successes. A fail-fast batch's error names
    (``named``) a record of a failure that task handled. Chunks run as local activities
    leave no such events: their workflow is not checked. ``histories`` are the batch's and its
    children's (as :func:`_check_shape` returns them).
    """
    config = request.config
    children = request.count > config.segment_size
    workflows = [workflow_id] if children or not config.local_activities else []
    if children and not config.local_activities:
        workflows += [wid for wid in histories if wid != workflow_id]
    for wid in workflows:
        first = _stop(histories[wid], request, invalid)
        if first is None:
            continue
        why = "first failure" if first.failed else "cancellation"
        assert not first.left_running, (
            f"{wid} left chunk(s) or child(ren) running after its {why}, records "
            f"{[f'{r.start}-{r.stop}' for r in first.left_running]}, not cancelled by the "
            f"workflow task that handled it (history)"
        )
        assert not first.left_behind, (
            f"{wid} closed before the child(ren) it cancelled after its {why} ended, records "
            f"{[f'{r.start}-{r.stop}' for r in first.left_behind]}: left to the parent close "
            f"policy (history)"
        )
        went_on = first.started_later + max(0, first.started_then - first.succeeded)
        assert not went_on, (
            f"{wid} started {went_on} chunk(s) or child(ren) after its {why}, "
            f"in records {[f'{r.start}-{r.stop}' for r in first.failed]} (history)"
        )
        if wid == workflow_id and named is not None:
            ranges = [r for r in first.failed if named in map(record_id, r)]
            assert ranges, (
                f"fail-fast named {named}, not a record of the first failure it handled: "
                f"{[f'{r.start}-{r.stop}' for r in first.failed]} (history)"
            )


def check_fan_in(harness: faults.testing.FaultHarness, scenario: Scenario, workflow: Any) -> None:
    """Run the scenario and assert the fan-in property (raises ``AssertionError`` if it fails)."""
    request = scenario.request
    outcome = harness.run(workflow, request, plan=scenario.plan, timeout=RUN_SECONDS)
    histories = _check_shape(harness, request, outcome.workflow_id, outcome.succeeded)
    ours = [
        i for i in harness.log.records()
        if i.workflow_id == outcome.workflow_id
        or i.workflow_id.startswith(f"{outcome.workflow_id}-segment-")
    ]  # fmt: skip
    failed_chunks = {i.key for i in ours if i.activity == "process_chunk" and _permanent(i)}
    failed_by_a_fail = {i.key for i in ours if i.key in failed_chunks and i.kind == "fail"}
    seal_failed = any(i.activity == "seal_batch" and _permanent(i) for i in ours)
    in_failed_chunks = {record_id(n) for key in failed_chunks for n in _chunk_records(key)}
    config = request.config
    cancelled = {  # segment children cancelled at a chunk call (fault log): each failed whole
        _segment_records(i.workflow_id, request)
        for i in ours
        if i.kind == "cancel" and "-segment-" in i.workflow_id
    }
    in_cancelled = {record_id(n) for part in cancelled for n in part}
    invalid = invalid_records(request.seed, 0, request.count)
    expected_failed = set(invalid) | in_failed_chunks | in_cancelled
    if currently_in_test_context():  # also checked outside a property, to confirm a case
        event(f"policy: {request.policy}")
        event("children" if request.count > config.segment_size else "one workflow")
        event("local activities" if config.local_activities else "activities")
        event(f"chunks failed for good: {min(len(failed_chunks), 2)}")
        event(f"seal failed for good: {seal_failed}")
        event(f"invalid records: {min(len(invalid), 2)}")
        event(f"segment children cancelled: {min(len(cancelled), 2)}")

    cause = outcome.cause
    first_named = None
    if request.policy == "fail_fast" and getattr(cause, "type", None) == RECORD_FAILED_TYPE:
        first_named = str(getattr(cause, "message", "")).split()[1]
    _check_stops(histories, request, outcome.workflow_id, first_named, set(invalid))
    if request.policy == "fail_fast" and (expected_failed or seal_failed):
        assert not outcome.succeeded, f"fail-fast batch with failures completed: {outcome.result}"
        if first_named is not None:
            _check_named(request, first_named, expected_failed)
        else:
            assert seal_failed, f"batch failed for an unexpected reason: {cause}"
        return
    if seal_failed:
        assert not outcome.succeeded, "a batch whose results could not be sealed completed"
        return
    assert outcome.succeeded, f"batch failed: {outcome.cause}"
    result: BatchResult | None = outcome.result
    assert result is not None
    reported = result.all_failures()
    assert set(reported) == expected_failed, (
        f"failed set {sorted(reported)} != permanently failed {sorted(expected_failed)}"
    )
    for rid, reason in invalid.items():
        if rid not in in_failed_chunks | in_cancelled:
            assert reported[rid] == reason, f"{rid} reported {reported[rid]!r}, not {reason!r}"
    for part in cancelled:  # every record of a cancelled segment names it and the cancellation
        want = f"segment {part.start}-{part.stop} failed: "
        whys = {reported[record_id(n)] for n in part}
        assert all(w.startswith(want) and "cancel" in w.lower() for w in whys), (
            f"segment {part.start}-{part.stop} was cancelled (fault log); its records report {whys}"
        )
    for key in failed_by_a_fail:  # the reason names the chunk and the fault that failed it
        records = _chunk_records(key)
        start, end = records.start, records.stop
        if record_id(start) in in_cancelled:
            continue  # its whole segment failed, for the cancellation
        why = reported[record_id(start)]
        named = why.startswith(f"chunk {start}-{end} failed permanently: ")
        assert named and "injected fault" in why, (
            f"{key} failed for good (fault log); its records report {why!r}"
        )
    assert result.succeeded + len(reported) == request.count, "fan-in count is not the batch size"

    conn = _sink.connect(request.database)
    stored = _sink.stored_ids(conn, request.batch_id)
    repeats = [rid for rid, n in Counter(stored).items() if n > 1]
    assert not repeats, f"records stored twice: {repeats}"
    everyone = {record_id(n) for n in range(request.count)}
    missing = sorted(everyone - expected_failed - set(stored))
    assert set(stored) == everyone - expected_failed, (
        f"stored {len(stored)} records; missing {missing}, "
        f"unexpected {sorted(set(stored) & expected_failed)}"
    )
    assert _sink.stored_failures(conn, request.batch_id) == reported, "database failures differ"
    assert result.stored == result.succeeded == len(stored), "sealed count differs from fan-in"
