"""The fan-in: parts of a batch, keyed by where they start, merged into one result."""

from __future__ import annotations

from ._types import FailedRange, RangeResult


class FanIn:
    """Collects the results of a batch's parts (chunks or segments).

    Parts are keyed by their first record, so a part delivered twice counts
    once; a part that failed permanently as a whole is kept as a failed range,
    so its records are reported failed rather than lost.
    """

    def __init__(self) -> None:
        self._parts: dict[int, RangeResult] = {}

    def add(self, part: RangeResult) -> None:
        """Record a part's result."""
        self._parts[part.start] = part

    def add_failed(self, start: int, end: int, reason: str) -> None:
        """Record that every record in ``[start, end)`` failed permanently with ``reason``."""
        failed = FailedRange(start, end, reason)
        self._parts[start] = RangeResult(start, end, succeeded=0, failed_ranges=(failed,))

    def result(self, start: int, end: int) -> RangeResult:
        """The merged result of records ``[start, end)``."""
        parts = [self._parts[key] for key in sorted(self._parts)]
        return RangeResult(
            start,
            end,
            succeeded=sum(p.succeeded for p in parts),
            failures=tuple(f for p in parts for f in p.failures),
            failed_ranges=tuple(r for p in parts for r in p.failed_ranges),
        )
