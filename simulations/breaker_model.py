"""A small, independent reference model of the circuit breaker, on an integer-minute clock.

Written from the specification, not from ``patterns.breaker``: outcomes of the
last ``window`` closed-state calls (or a streak of failures) open it; the open
period ends after ``open_minutes``; ``probes`` half-open calls are admitted, one
failure reopens, all succeeding closes; a permit unreported for
``timeout_minutes`` is a failed call at the minute it timed out. Every state
change starts over with empty counters and voids earlier permits.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelConfig:
    """The model's configuration (durations in whole minutes)."""

    threshold: float
    window: int
    minimum: int
    streak: int | None
    slow_seconds: float | None
    open_minutes: int
    probes: int
    timeout_minutes: int


@dataclass
class ModelBreaker:
    """The expected breaker."""

    cfg: ModelConfig
    state: str = "closed"
    minute: int = 0
    outcomes: list[bool] = field(default_factory=list)  # True: success
    failures_in_a_row: int = 0
    open_since: int = 0
    probes_out: int = 0
    probes_ok: int = 0
    permits: dict[str, int] = field(default_factory=dict)  # id -> minute issued, in issue order
    changes: int = 0
    log: list[tuple[str, str, int, str]] = field(default_factory=list)
    """Every state change: from, to, the minute it happened, and why."""

    def _change(self, to: str, minute: int, why: str) -> None:
        self.log.append((self.state, to, minute, why))
        self.state, self.changes = to, self.changes + 1
        self.outcomes, self.failures_in_a_row = [], 0
        self.probes_out = self.probes_ok = 0
        self.permits = {}
        self.open_since = minute

    def _outcome(self, success: bool, minute: int, what: str) -> None:
        """One call's outcome; ``what`` names a failure (failed call, slow call, timed out)."""
        if self.state == "half_open":
            if not success:
                self._change("open", minute, f"probe failed ({what})")
            else:
                self.probes_ok += 1
                if self.probes_ok == self.cfg.probes:
                    self._change("closed", minute, f"{self.probes_ok} probe(s) succeeded")
        elif self.state == "closed":
            self.outcomes = (self.outcomes + [success])[-self.cfg.window :]
            self.failures_in_a_row = 0 if success else self.failures_in_a_row + 1
            failed = self.outcomes.count(False)
            if self.cfg.streak is not None and self.failures_in_a_row >= self.cfg.streak:
                self._change("open", minute, f"{self.failures_in_a_row} consecutive failures")
            elif (
                len(self.outcomes) >= self.cfg.minimum
                and failed / len(self.outcomes) >= self.cfg.threshold
            ):
                self._change("open", minute, f"{failed}/{len(self.outcomes)} calls failed")

    def advance_to(self, minute: int) -> None:
        """Let time pass up to ``minute``, applying what fell due on the way."""
        while True:
            if self.state == "open" and self.open_since + self.cfg.open_minutes <= minute:
                self._change(
                    "half_open", self.open_since + self.cfg.open_minutes, "open period elapsed"
                )
                continue
            due = [(m + self.cfg.timeout_minutes, pid) for pid, m in self.permits.items()]
            due = [d for d in due if d[0] <= minute]
            if not due:
                break
            at, pid = min(due, key=lambda d: d[0])  # min keeps issue order among ties
            del self.permits[pid]
            self._outcome(False, at, f"permit {pid} timed out")
        self.minute = minute

    def admits(self, callers: int) -> int:
        """How many of ``callers`` simultaneous acquires get a permit now."""
        if self.state == "closed":
            return callers
        if self.state == "half_open":
            return min(callers, self.cfg.probes - self.probes_out)
        return 0

    def granted(self, ids: list[str]) -> None:
        """Note the permits handed out now."""
        if self.state == "half_open":
            self.probes_out += len(ids)
        for pid in ids:
            self.permits[pid] = self.minute

    def report(self, pid: str, success: bool, seconds: float) -> bool:
        """A call's outcome; ``False`` if its permit is no longer valid."""
        if pid not in self.permits:
            return False
        del self.permits[pid]
        slow = self.cfg.slow_seconds is not None and seconds >= self.cfg.slow_seconds
        what = "slow call" if success and slow else "failed call"
        self._outcome(success and not slow, self.minute, what)
        return True

    def force_open(self) -> None:
        """Forced open until reset (forcing twice changes nothing)."""
        if self.state != "forced_open":
            self._change("forced_open", self.minute, "forced open")

    def reset(self) -> None:
        """Always a change, to closed."""
        self._change("closed", self.minute, "reset")

    def summary(self) -> dict[str, object]:
        """What is compared with the breaker's view after every step."""
        return {
            "state": self.state,
            "window_calls": len(self.outcomes),
            "window_failures": self.outcomes.count(False),
            "consecutive_failures": self.failures_in_a_row,
            "probes_issued": self.probes_out,
            "probes_succeeded": self.probes_ok,
            "outstanding": len(self.permits),
            "transition_count": self.changes,
            "epoch": self.changes,
        }
