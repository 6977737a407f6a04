"""The durable breaker: one entity workflow per breaker name, driven by Updates."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ._config import BreakerConfig
    from ._machine import BreakerMachine, BreakerState, BreakerView, Permit, Rejected, Transition

ANSWERS_KEPT = 512
"""How many acquire answers an entity remembers, so a retried request gets the same permit."""


def entity_id(name: str) -> str:
    """The workflow id of the breaker called ``name``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"breaker name={name!r} must be a non-empty string such as 'payments-api'")
    return f"circuit-breaker/{name}"


@dataclass(frozen=True)
class EntityStart:
    """The entity's input: its config and, after continue-as-new, everything it carries over."""

    name: str
    config: BreakerConfig
    state: BreakerState | None = None
    answers: dict[str, AcquireResult] = field(default_factory=dict)
    max_history_events: int = 10_000
    """Continue-as-new once the history holds this many events (or the server suggests it)."""


@dataclass(frozen=True)
class AcquireResult:
    """The entity's answer to an acquire request: a permit, or the rejection."""

    permit: Permit | None
    rejected: Rejected | None
    view: BreakerView


@dataclass(frozen=True)
class RecordRequest:
    """A call's outcome, reported against the permit it ran under."""

    permit_id: str
    success: bool
    duration: float


class CircuitBreakerWorkflow:
    """Shared code of the entity (the registered class is :class:`CircuitBreakerEntity`).

    Every Update first applies the time that passed (``workflow.now()``), so an
    Update's answer is a strongly consistent read. The main loop sleeps until
    the next event falls due (the end of the open period, a permit timeout) so
    transitions happen on time even when nobody calls, and continues-as-new,
    carrying the state, once the history grows past its bound.
    """

    machine_type: ClassVar[type[BreakerMachine]] = BreakerMachine

    def __init__(self, start: EntityStart) -> None:
        self._start = start
        self._machine = self.machine_type(start.config, start.state)
        self._answers = dict(start.answers)
        self._woken = False

    def _now(self) -> float:
        return workflow.now().timestamp()

    def _history_full(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._start.max_history_events
        )

    async def _serve(self) -> None:
        while not self._history_full():
            due = self._machine.next_due()
            self._woken = False
            timeout = None if due is None else max(due - self._now(), 0.001)
            try:
                await workflow.wait_condition(
                    lambda: self._woken,
                    timeout=None if timeout is None else timedelta(seconds=timeout),
                )
            except asyncio.TimeoutError:
                pass
            self._machine.tick(self._now())
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            EntityStart(
                name=self._start.name,
                config=self._start.config,
                state=self._machine.state,
                answers=self._answers,
                max_history_events=self._start.max_history_events,
            )
        )

    # ------------------------------------------------------------------ updates

    def _acquire(self, request_id: str) -> AcquireResult:
        if request_id in self._answers:
            return self._answers[request_id]
        decision = self._machine.acquire(self._now())
        self._woken = True
        permit = decision if isinstance(decision, Permit) else None
        rejected = decision if isinstance(decision, Rejected) else None
        answer = AcquireResult(permit, rejected, self._machine.view())
        self._answers[request_id] = answer
        while len(self._answers) > ANSWERS_KEPT:
            del self._answers[next(iter(self._answers))]
        return answer

    def _validate_id(self, request_id: str) -> None:
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id={request_id!r} must be a non-empty idempotency key")

    def _record(self, request: RecordRequest) -> BreakerView:
        self._machine.record(request.permit_id, request.success, request.duration, self._now())
        self._woken = True
        return self._machine.view()

    def _validate_record(self, request: RecordRequest) -> None:
        if not request.permit_id:
            raise ValueError("RecordRequest.permit_id is empty; pass the id of the acquired permit")
        if not request.duration >= 0:
            raise ValueError(
                f"RecordRequest.duration={request.duration!r} must be seconds >= 0 "
                "(the call's length)"
            )

    def _command(self, command: str, reason: str) -> BreakerView:
        if command == "force_open":
            self._machine.force_open(self._now(), reason or "forced open")
        elif command == "reset":
            self._machine.reset(self._now(), reason or "reset")
        else:
            self._machine.tick(self._now())
        self._woken = True
        return self._machine.view()


@workflow.defn(name="CircuitBreaker")
class CircuitBreakerEntity(CircuitBreakerWorkflow):
    """The durable circuit breaker entity; start it through :class:`BreakerClient`."""

    @workflow.init
    def __init__(self, start: EntityStart) -> None:
        super().__init__(start)

    @workflow.run
    async def run(self, start: EntityStart) -> None:
        """Serve Updates until the history is full, then continue-as-new."""
        await self._serve()

    @workflow.update
    def acquire(self, request_id: str) -> AcquireResult:
        """Hand out a permit (idempotent per ``request_id``) or the rejection."""
        return self._acquire(request_id)

    @acquire.validator
    def validate_acquire(self, request_id: str) -> None:
        """Reject an empty idempotency key before it reaches the history."""
        self._validate_id(request_id)

    @workflow.update
    def record(self, request: RecordRequest) -> BreakerView:
        """Count a call's outcome; stale or expired permits are ignored."""
        return self._record(request)

    @record.validator
    def validate_record(self, request: RecordRequest) -> None:
        """Reject a report without a permit id or with a negative duration."""
        self._validate_record(request)

    @workflow.update
    def force_open(self, reason: str) -> BreakerView:
        """Open the breaker until reset."""
        return self._command("force_open", reason)

    @workflow.update
    def reset(self, reason: str) -> BreakerView:
        """Close the breaker and forget its window."""
        return self._command("reset", reason)

    @workflow.update
    def observe(self) -> BreakerView:
        """Apply elapsed time and return the state: a strongly consistent read."""
        return self._command("observe", "")

    @workflow.query
    def view(self) -> BreakerView:
        """The state as of the last workflow task (no elapsed time applied)."""
        return self._machine.view()

    @workflow.query
    def transitions(self) -> list[Transition]:
        """The latest recorded transitions, oldest first."""
        return list(self._machine.state.transitions)
