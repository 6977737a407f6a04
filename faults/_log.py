"""The record of every injected fault."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._plan import Injection


class FaultLog:
    """A thread-safe, append-only record of injected faults.

    Workers append to it; tests read it. With ``path`` each injection is also
    appended to a JSON-lines file, so workers in other processes can report to
    one place (read it back with :meth:`load`).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._records: list[Injection] = []
        # Positions in _records by workflow id: a run's injections without a scan of the log.
        self._by_workflow: dict[str, list[int]] = {}
        self.path = Path(path) if path is not None else None

    def record(self, injection: Injection) -> None:
        """Append one injection."""
        with self._lock:
            self._by_workflow.setdefault(injection.workflow_id, []).append(len(self._records))
            self._records.append(injection)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(injection.to_dict()) + "\n")

    def records(self) -> list[Injection]:
        """A snapshot of all injections so far, in order."""
        with self._lock:
            return list(self._records)

    def __iter__(self) -> Iterator[Injection]:
        return iter(self.records())

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def for_workflow(self, workflow_id: str) -> list[Injection]:
        """The injections made on activities of one workflow, in order."""
        return [r for _, r in self._indexed([workflow_id])]

    def for_runs(self, runs: Iterable[tuple[str, str]]) -> list[Injection]:
        """The injections made on activities of these ``(workflow id, run id)`` runs, in order."""
        wanted = set(runs)
        return [
            r
            for _, r in self._indexed({wid for wid, _ in wanted})
            if (r.workflow_id, r.run_id) in wanted
        ]

    def _indexed(self, workflow_ids: Iterable[str]) -> list[tuple[int, Injection]]:
        with self._lock:
            found = [
                (i, self._records[i]) for w in workflow_ids for i in self._by_workflow.get(w, ())
            ]
        return sorted(found, key=lambda item: item[0])

    def counts(self) -> Counter[tuple[str, str]]:
        """Number of injections by (fault kind, activity)."""
        return Counter((r.kind, r.activity) for r in self.records())

    def summary(self) -> str:
        """A human-readable table of injections by kind and activity."""
        counts = self.counts()
        if not counts:
            return "no faults injected"
        width = max(len(activity) for _, activity in counts)
        lines = [f"{sum(counts.values())} faults injected:"]
        for (kind, activity), n in sorted(counts.items()):
            lines.append(f"  {kind:<15} {activity:<{width}} {n:>6}")
        return "\n".join(lines)

    def clear(self) -> None:
        """Forget every record (the file, if any, is left alone)."""
        with self._lock:
            self._records.clear()
            self._by_workflow.clear()

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
