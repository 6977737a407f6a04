"""The breaker's state machine: pure, deterministic code shared by every variant.

Time is passed in (seconds on any clock), never read, so the same machine runs
inside a durable entity workflow (``workflow.now()``), inside any workflow
(the lightweight variant) and in plain tests. Events that fall due between two
calls (the end of the open period, a permit's timeout) are applied in time
order at the moment they fell due, so the state at a given time does not
depend on how often the machine was consulted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ._config import BreakerConfig

State = Literal["closed", "open", "half_open", "forced_open"]
"""A breaker state; ``forced_open`` stays open until :meth:`BreakerMachine.reset`."""

TRANSITIONS_KEPT = 100
"""How many of the latest transitions a breaker keeps (all are counted)."""


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; report its outcome with its ``id``."""

    id: str
    epoch: int
    state: State
    issued_at: float


@dataclass(frozen=True)
class Rejected:
    """No permit: the breaker is open, or half-open with every probe handed out."""

    state: State
    retry_at: float | None
    """When the open period ends (``None`` when forced open or waiting for probes)."""


Decision = Permit | Rejected
"""What :meth:`BreakerMachine.acquire` returns."""


@dataclass(frozen=True)
class Transition:
    """One state change, when it happened and why."""

    from_state: State
    to_state: State
    at: float
    reason: str


@dataclass(frozen=True)
class BreakerView:
    """A read-only summary of a breaker's state."""

    state: State
    epoch: int
    window_calls: int
    window_failures: int
    consecutive_failures: int
    probes_issued: int
    probes_succeeded: int
    outstanding: int
    opened_at: float | None
    transition_count: int


@dataclass
class BreakerState:
    """Everything a breaker remembers; plain data, so it survives continue-as-new."""

    state: State = "closed"
    epoch: int = 0
    window: list[bool] = field(default_factory=list)
    """Outcomes in the closed window, oldest first; ``True`` is a failure."""
    consecutive_failures: int = 0
    opened_at: float | None = None
    probes_issued: int = 0
    probes_succeeded: int = 0
    outstanding: list[Permit] = field(default_factory=list)
    """Permits handed out in this epoch and not yet reported, in issue order."""
    issued: int = 0
    transitions: list[Transition] = field(default_factory=list)
    transition_count: int = 0


class BreakerMachine:
    """Closed / open / half-open / forced-open, driven by calls and time."""

    def __init__(self, config: BreakerConfig, state: BreakerState | None = None) -> None:
        self.config = config
        self.state = state if state is not None else BreakerState()

    # ------------------------------------------------------------------ commands

    def acquire(self, now: float) -> Decision:
        """Hand out a permit for one call at ``now``, or say why not."""
        self.tick(now)
        s = self.state
        if s.state == "open":
            assert s.opened_at is not None
            return Rejected("open", s.opened_at + self.config.open_seconds)
        if s.state == "forced_open":
            return Rejected("forced_open", None)
        if s.state == "half_open":
            if s.probes_issued >= self.config.half_open_permits:
                return Rejected("half_open", None)
            s.probes_issued += 1
        s.issued += 1
        permit = Permit(f"p{s.issued}", s.epoch, s.state, now)
        s.outstanding.append(permit)
        return permit

    def record(self, permit_id: str, success: bool, duration: float, now: float) -> bool:
        """Report a call's outcome; ``False`` if its permit expired or belongs to an older epoch."""
        self.tick(now)
        s = self.state
        for i, permit in enumerate(s.outstanding):
            if permit.id == permit_id:
                del s.outstanding[i]
                break
        else:
            return False
        slow = (
            self.config.slow_call_seconds is not None and duration >= self.config.slow_call_seconds
        )
        self._count(not success or slow, now, "slow call" if success and slow else "failed call")
        return True

    def force_open(self, now: float, reason: str = "forced open") -> None:
        """Open and stay open until :meth:`reset`."""
        self.tick(now)
        if self.state.state != "forced_open":
            self._move("forced_open", now, reason)

    def reset(self, now: float, reason: str = "reset") -> None:
        """Close and forget every recorded outcome."""
        self.tick(now)
        self._move("closed", now, reason)

    # ------------------------------------------------------------------ time

    def next_due(self) -> float | None:
        """When the next time-driven event falls due (open period end or permit timeout)."""
        s = self.state
        if s.state == "open" and s.opened_at is not None:
            return s.opened_at + self.config.open_seconds
        if s.outstanding:
            return min(p.issued_at for p in s.outstanding) + self.config.permit_timeout_seconds
        return None

    def tick(self, now: float) -> None:
        """Apply, in time order, every event that fell due at or before ``now``."""
        while (due := self.next_due()) is not None and due <= now:
            s = self.state
            if s.state == "open":
                self._move("half_open", due, "open period elapsed")
                continue
            expired = min(s.outstanding, key=lambda p: p.issued_at)
            s.outstanding.remove(expired)
            self._count(True, due, f"permit {expired.id} timed out")

    # ------------------------------------------------------------------ reading

    def view(self) -> BreakerView:
        """A summary of the current state (without applying elapsed time)."""
        s = self.state
        return BreakerView(
            state=s.state,
            epoch=s.epoch,
            window_calls=len(s.window),
            window_failures=sum(s.window),
            consecutive_failures=s.consecutive_failures,
            probes_issued=s.probes_issued,
            probes_succeeded=s.probes_succeeded,
            outstanding=len(s.outstanding),
            opened_at=s.opened_at,
            transition_count=s.transition_count,
        )

    # ------------------------------------------------------------------ internals

    def _count(self, failed: bool, at: float, what: str) -> None:
        s, c = self.state, self.config
        if s.state == "half_open":
            if failed:
                self._move("open", at, f"probe failed ({what})")
                return
            s.probes_succeeded += 1
            if s.probes_succeeded >= c.half_open_permits:
                self._move("closed", at, f"{s.probes_succeeded} probe(s) succeeded")
            return
        if s.state != "closed":
            return
        s.window.append(failed)
        del s.window[: max(0, len(s.window) - c.window_size)]
        s.consecutive_failures = s.consecutive_failures + 1 if failed else 0
        failures = sum(s.window)
        if c.consecutive_failures is not None and s.consecutive_failures >= c.consecutive_failures:
            self._move("open", at, f"{s.consecutive_failures} consecutive failures")
        elif (
            len(s.window) >= c.minimum_calls
            and failures / len(s.window) >= c.failure_rate_threshold
        ):
            self._move("open", at, f"{failures}/{len(s.window)} calls failed")

    def _move(self, to: State, at: float, reason: str) -> None:
        s = self.state
        s.transitions.append(Transition(s.state, to, at, reason))
        del s.transitions[: max(0, len(s.transitions) - TRANSITIONS_KEPT)]
        s.transition_count += 1
        s.state = to
        s.epoch += 1
        s.window = []
        s.consecutive_failures = 0
        s.probes_issued = 0
        s.probes_succeeded = 0
        s.outstanding = []
        s.opened_at = at if to == "open" else None
