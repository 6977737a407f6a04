"""Configuration, requests and results of the fan-out/fan-in batch.

Everything here is pure and importable inside the workflow sandbox. Bad
configuration raises :class:`BatchConfigError` naming the field and how to fix
it, when the object is built: before any workflow or activity starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

FailurePolicy = Literal["fail_fast", "collect"]
"""What a batch does when a record fails permanently.

``fail_fast`` fails the batch workflow at the first permanent failure (its
error names the record and the reason); ``collect`` processes every record and
returns exactly which records failed and why.
"""

FAILURE_POLICIES: tuple[FailurePolicy, ...] = ("fail_fast", "collect")
"""Every :data:`FailurePolicy`."""

MAX_ACTIVITIES_PER_WORKFLOW = 2_000
"""Chunk activities one workflow may schedule (Temporal holds at most 2,000 pending)."""

MAX_SEGMENTS = 1_000
"""Child workflows one batch may start."""

MAX_RECORDS = 1_000_000
"""Records one batch may hold (record ids have seven digits)."""

RECORD_FAILED_TYPE = "RecordFailed"
"""``ApplicationError.type`` of a fail-fast batch's failure."""


class BatchConfigError(ValueError):
    """A batch configuration or request was given a bad value.

    The message names the offending field and says how to fix it.
    """


def record_id(index: int) -> str:
    """The id of the record at ``index`` of a batch."""
    return f"cust-{index:07d}"


def _check_int(owner: str, name: str, value: object, low: int, high: int, hint: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BatchConfigError(
            f"{owner}.{name}={value!r} must be an integer in [{low}, {high}]; {hint}"
        )


@dataclass(frozen=True)
class BatchConfig:
    """How a batch fans out. The defaults are the library's recommended strategy.

    * ``chunk_size``: records per activity (records of a chunk are processed
      concurrently, at most ``record_concurrency`` at a time);
    * ``window``: chunk activities one workflow keeps in flight (a sliding window);
    * ``local_activities``: run chunks as local activities (fewer server round
      trips, but a chunk must finish well inside the workflow task);
    * ``segment_size``: records per child workflow; a batch larger than this
      fans out to child workflows, ``child_window`` at a time, so no workflow's
      history grows past Temporal's limits;
    * ``io_seconds``: simulated I/O per record (the enrichment lookup).
    """

    chunk_size: int = 100
    window: int = 32
    record_concurrency: int = 100
    local_activities: bool = False
    segment_size: int = 10_000
    child_window: int = 4
    io_seconds: float = 0.001

    def __post_init__(self) -> None:
        _check_int("BatchConfig", "chunk_size", self.chunk_size, 1, 10_000, "records per activity")
        _check_int(
            "BatchConfig",
            "window",
            self.window,
            1,
            MAX_ACTIVITIES_PER_WORKFLOW,
            "Temporal holds at most 2,000 pending activities per workflow",
        )
        _check_int(
            "BatchConfig",
            "record_concurrency",
            self.record_concurrency,
            1,
            10_000,
            "records processed at once inside one chunk",
        )
        if not isinstance(self.local_activities, bool):
            raise BatchConfigError(
                f"BatchConfig.local_activities={self.local_activities!r} must be True or False"
            )
        _check_int(
            "BatchConfig",
            "segment_size",
            self.segment_size,
            1,
            MAX_RECORDS,
            "records per child workflow",
        )
        _check_int("BatchConfig", "child_window", self.child_window, 1, 100, "children in flight")
        chunks = math.ceil(self.segment_size / self.chunk_size)
        if chunks > MAX_ACTIVITIES_PER_WORKFLOW:
            raise BatchConfigError(
                f"BatchConfig.segment_size={self.segment_size} with chunk_size={self.chunk_size} "
                f"makes {chunks} activities per workflow (limit {MAX_ACTIVITIES_PER_WORKFLOW}); "
                "lower segment_size or raise chunk_size"
            )
        io = self.io_seconds
        if not isinstance(io, (int, float)) or isinstance(io, bool) or not 0 <= io <= 10:
            raise BatchConfigError(
                f"BatchConfig.io_seconds={io!r} must be a number of seconds in [0, 10]"
            )


@dataclass(frozen=True)
class BatchRequest:
    """One batch: ``count`` customer records generated from ``seed``, stored in ``database``.

    Records are generated inside the activities from ``(seed, index)``, so a
    batch of any size travels as a few bytes. ``batch_id`` keys the batch's
    rows in the results database (a SQLite file every worker can reach).
    """

    batch_id: str
    seed: int
    count: int
    database: str
    policy: FailurePolicy = "collect"
    config: BatchConfig = field(default_factory=BatchConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.batch_id, str) or not self.batch_id:
            raise BatchConfigError(
                f"BatchRequest.batch_id={self.batch_id!r} must be a non-empty batch name"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise BatchConfigError(f"BatchRequest.seed={self.seed!r} must be an integer")
        _check_int("BatchRequest", "count", self.count, 1, MAX_RECORDS, "records in the batch")
        if not isinstance(self.database, str) or not self.database:
            raise BatchConfigError(
                f"BatchRequest.database={self.database!r} must be the path of the results database"
            )
        if self.policy not in FAILURE_POLICIES:
            raise BatchConfigError(
                f"BatchRequest.policy={self.policy!r} must be one of {', '.join(FAILURE_POLICIES)}"
            )
        if not isinstance(self.config, BatchConfig):
            raise BatchConfigError(f"BatchRequest.config={self.config!r} must be a BatchConfig")
        segments = math.ceil(self.count / self.config.segment_size)
        if segments > MAX_SEGMENTS:
            raise BatchConfigError(
                f"BatchRequest.count={self.count} with segment_size={self.config.segment_size} "
                f"makes {segments} child workflows (limit {MAX_SEGMENTS}); raise segment_size"
            )


@dataclass(frozen=True)
class RangeRequest:
    """Records ``[start, end)`` of a batch: the input of a chunk activity or a segment child."""

    batch: BatchRequest
    start: int
    end: int


@dataclass(frozen=True)
class RecordFailure:
    """One record that failed permanently, and why."""

    record_id: str
    reason: str


@dataclass(frozen=True)
class FailedRange:
    """Records ``[start, end)`` whose processing failed permanently as a whole, and why."""

    start: int
    end: int
    reason: str

    def failures(self) -> list[RecordFailure]:
        """One :class:`RecordFailure` per record of the range."""
        return [RecordFailure(record_id(i), self.reason) for i in range(self.start, self.end)]


@dataclass(frozen=True)
class RangeResult:
    """What records ``[start, end)`` came to: a chunk's or a segment's part of the fan-in.

    ``failures`` are per-record permanent failures (invalid records);
    ``failed_ranges`` are chunks whose activity failed permanently, every record
    of which failed with the activity's error.
    """

    start: int
    end: int
    succeeded: int
    failures: tuple[RecordFailure, ...] = ()
    failed_ranges: tuple[FailedRange, ...] = ()


@dataclass(frozen=True)
class SealRequest:
    """Make the results database agree with the fan-in: the batch's failed ranges."""

    batch_id: str
    database: str
    failed_ranges: tuple[FailedRange, ...] = ()


@dataclass(frozen=True)
class SealResult:
    """Rows of a sealed batch in the results database."""

    stored: int
    failed: int


@dataclass(frozen=True)
class BatchResult:
    """The fan-in of a whole batch.

    ``succeeded + len(failed_ids())`` is ``count``; ``stored`` is how many
    enriched rows the results database holds for the batch after sealing.
    """

    batch_id: str
    count: int
    succeeded: int
    stored: int
    failures: tuple[RecordFailure, ...] = ()
    failed_ranges: tuple[FailedRange, ...] = ()

    def all_failures(self) -> dict[str, str]:
        """Every failed record id with its reason."""
        out = {f.record_id: f.reason for f in self.failures}
        for failed in self.failed_ranges:
            out.update((f.record_id, f.reason) for f in failed.failures())
        return out

    def failed_ids(self) -> set[str]:
        """Ids of every record that failed permanently."""
        return set(self.all_failures())
