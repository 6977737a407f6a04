"""The record of every injected fault, and of every header plan a worker refused."""

from __future__ import annotations

import heapq
import json
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._plan import Injection

DEFAULT_MAX_RECORDS = 10_000
"""Injections a :class:`FaultLog` keeps by default (its counts keep every one)."""


@dataclass(frozen=True)
class PlanRejection:
    """A fault plan found in a workflow's headers that a worker refused to apply."""

    workflow_id: str
    reason: str
    """Why: ``"no key"``, ``"unsigned"``, ``"bad signature"``, ``"invalid plan"`` or
    ``"delay above maximum"``."""
    at: float
    """Wall-clock time of the refusal (seconds since the epoch)."""

    def to_dict(self) -> dict[str, Any]:
        """Serialise to a JSON-compatible dict."""
        return dict(self.__dict__)


def _check_capacity(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"FaultLog(max_records={value!r}) must be an integer >= 1 (injections kept for "
            f"the per-record views, such as {DEFAULT_MAX_RECORDS}), or None to keep every one"
        )
    return value


class FaultLog:
    """A thread-safe record of injected faults: recent injections, and exact counts of all.

    Workers append to it; tests read it. It keeps the most recent
    ``max_records`` injections (:data:`DEFAULT_MAX_RECORDS` by default;
    ``None`` keeps every one) for the per-record views (:meth:`records`,
    iteration, :meth:`for_workflow`, :meth:`for_runs`, :meth:`since`), and counts every
    injection by (kind, activity) for as long as it lives (:meth:`counts`,
    :meth:`summary`, ``len``), so a day-long soak's memory stays flat. An
    injection older than the last ``max_records`` ages out of the per-record
    views but never out of the counts. A test harness reads a run's injections
    as soon as the run ends, so only a run that outlasts ``max_records`` newer
    injections could miss some; give such soaks a larger log, or a ``path``.

    With ``path`` each injection is also appended to a JSON-lines file, so
    workers in other processes can report to one place (read it back with
    :meth:`load`); the file keeps every injection.

    Header plans a worker refused (unsigned, wrongly signed, over its maximum
    delay: see :class:`~faults.FaultPlugin`) are counted too:
    :attr:`rejected_plans`, :meth:`rejection_counts` and the recent
    :meth:`rejections`.
    """

    def __init__(
        self, path: str | Path | None = None, *, max_records: int | None = DEFAULT_MAX_RECORDS
    ) -> None:
        self.max_records = _check_capacity(max_records)
        self._lock = threading.Lock()
        self._seq = 0
        # (sequence number, injection), oldest first; by workflow id, the same pairs.
        self._records: deque[tuple[int, Injection]] = deque()
        self._by_workflow: dict[str, list[tuple[int, Injection]]] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._rejections: deque[PlanRejection] = deque(maxlen=self.max_records)
        self._rejection_counts: Counter[str] = Counter()
        self.path = Path(path) if path is not None else None

    def record(self, injection: Injection) -> None:
        """Add one injection (the oldest kept one ages out if the log is full)."""
        with self._lock:
            entry = (self._seq, injection)
            self._seq += 1
            self._records.append(entry)
            self._by_workflow.setdefault(injection.workflow_id, []).append(entry)
            self._counts[injection.kind, injection.activity] += 1
            if self.max_records is not None and len(self._records) > self.max_records:
                _, old = self._records.popleft()
                same = self._by_workflow[old.workflow_id]
                del same[0]  # the workflow's oldest entry is the log's oldest
                if not same:
                    del self._by_workflow[old.workflow_id]
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(injection.to_dict()) + "\n")

    def records(self) -> list[Injection]:
        """A snapshot of the kept injections (the last ``max_records``), in order."""
        with self._lock:
            return [r for _, r in self._records]

    def since(self, count: int) -> list[Injection]:
        """The kept injections made after the first ``count`` (a ``len(log)`` read earlier)."""
        with self._lock:
            return [r for seq, r in self._records if seq >= count]

    def __iter__(self) -> Iterator[Injection]:
        return iter(self.records())

    def __len__(self) -> int:
        """Every injection recorded, including those aged out of :meth:`records`."""
        with self._lock:
            return self._seq

    def for_workflow(self, workflow_id: str) -> list[Injection]:
        """The kept injections made on activities of one workflow, in order."""
        return [r for _, r in self._indexed([workflow_id])]

    def for_runs(self, runs: Iterable[tuple[str, str]]) -> list[Injection]:
        """The kept injections made on activities of these ``(workflow id, run id)`` runs."""
        wanted = set(runs)
        return [
            r
            for _, r in self._indexed({wid for wid, _ in wanted})
            if (r.workflow_id, r.run_id) in wanted
        ]

    def _indexed(self, workflow_ids: Iterable[str]) -> list[tuple[int, Injection]]:
        with self._lock:
            groups = [list(self._by_workflow.get(w, ())) for w in workflow_ids]
        return list(heapq.merge(*groups, key=lambda item: item[0]))

    def counts(self) -> Counter[tuple[str, str]]:
        """Number of injections by (fault kind, activity): every one, never aged out."""
        with self._lock:
            return Counter(self._counts)

    def add_counts(
        self,
        counts: Mapping[tuple[str, str], int],
        rejections: Mapping[str, int] | None = None,
    ) -> None:
        """Add another log's exact counts (from another process) to this one's.

        The records themselves stay where they were made: :meth:`counts`,
        :meth:`rejection_counts` and :meth:`summary` then cover both logs, the
        per-record views and ``len()`` this one's own.
        """
        with self._lock:
            self._counts.update(counts)
            self._rejection_counts.update(rejections or {})

    def reject(self, workflow_id: str, reason: str, at: float) -> None:
        """Count a header plan a worker refused to apply."""
        with self._lock:
            self._rejections.append(PlanRejection(workflow_id, reason, at))
            self._rejection_counts[reason] += 1

    @property
    def rejected_plans(self) -> int:
        """Header plans refused so far (every one)."""
        with self._lock:
            return sum(self._rejection_counts.values())

    def rejection_counts(self) -> Counter[str]:
        """Refused header plans by reason (every one)."""
        with self._lock:
            return Counter(self._rejection_counts)

    def rejections(self, workflow_id: str | None = None) -> list[PlanRejection]:
        """The recent refusals (the last ``max_records``), of one workflow if given."""
        with self._lock:
            kept = list(self._rejections)
        return [r for r in kept if workflow_id is None or r.workflow_id == workflow_id]

    def summary(self) -> str:
        """A human-readable table of injections by kind and activity, and of refused plans."""
        counts = self.counts()
        refused = self.rejection_counts()
        lines = []
        if counts:
            width = max(len(activity) for _, activity in counts)
            lines.append(f"{sum(counts.values())} faults injected:")
            for (kind, activity), n in sorted(counts.items()):
                lines.append(f"  {kind:<15} {activity:<{width}} {n:>6}")
        else:
            lines.append("no faults injected")
        if refused:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(refused.items()))
            lines.append(f"{sum(refused.values())} header plans refused ({reasons})")
        return "\n".join(lines)

    def clear(self) -> None:
        """Forget every record and count (the file, if any, is left alone)."""
        with self._lock:
            self._records.clear()
            self._by_workflow.clear()
            self._counts.clear()
            self._rejections.clear()
            self._rejection_counts.clear()
            self._seq = 0

    @staticmethod
    def load(path: str | Path) -> list[Injection]:
        """Read injections written by a log with ``path`` (possibly another process's)."""
        file = Path(path)
        if not file.exists():
            return []
        records = []
        with file.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    records.append(Injection(**json.loads(line)))
                except ValueError:
                    continue  # a line cut short by a killed writer
        return records
