"""Deliberately broken breakers: the simulation must catch each of them."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import patterns.breaker._config
    import patterns.breaker._entity
    import patterns.breaker._machine  # noqa: F401  (one copy of the data types in the sandbox)
    from patterns.breaker import (
        BreakerMachine,
        CircuitBreakerEntity,
        Decision,
        EntityStart,
    )


class NeverHalfOpens(BreakerMachine):
    """Bug: the open period never ends, so the breaker stays open until reset."""

    def next_due(self) -> float | None:
        if self.state.state == "open":
            return None
        return super().next_due()


class TooManyProbes(BreakerMachine):
    """Bug: half-open forgets a probe it handed out, admitting one more each time."""

    def acquire(self, now: float) -> Decision:
        self.tick(now)
        s = self.state
        if s.state == "half_open" and s.probes_issued >= self.config.half_open_permits:
            s.probes_issued -= 1
        return super().acquire(now)


class OpensOnASuccess(BreakerMachine):
    """Bug: a success is judged on the failure rate alone, before the window holds the minimum.

    Its extra check after a success leaves out ``minimum_calls``, so a success in a window
    still short of the minimum opens the breaker if the failures already reach the threshold.
    Failures, and successes in a window at or past the minimum, behave as in the
    correct machine, and the counters it shows are the correct ones.
    """

    def _count(self, failed: bool, at: float, what: str) -> None:
        super()._count(failed, at, what)
        s = self.state
        if failed or s.state != "closed" or not s.window:
            return
        failures = sum(s.window)
        if failures / len(s.window) >= self.config.failure_rate_threshold:
            self._move("open", at, f"{failures}/{len(s.window)} calls failed")


@workflow.defn(name="BrokenBreakerNeverHalfOpens")
class NeverHalfOpensEntity(CircuitBreakerEntity):
    """The entity running :class:`NeverHalfOpens`."""

    machine_type = NeverHalfOpens

    @workflow.init
    def __init__(self, start: EntityStart) -> None:
        super().__init__(start)

    @workflow.run
    async def run(self, start: EntityStart) -> None:
        await self._serve()


@workflow.defn(name="BrokenBreakerTooManyProbes")
class TooManyProbesEntity(CircuitBreakerEntity):
    """The entity running :class:`TooManyProbes`."""

    machine_type = TooManyProbes

    @workflow.init
    def __init__(self, start: EntityStart) -> None:
        super().__init__(start)

    @workflow.run
    async def run(self, start: EntityStart) -> None:
        await self._serve()


MACHINES: dict[str, type[BreakerMachine]] = {
    "correct": BreakerMachine,
    "never_half_opens": NeverHalfOpens,
    "too_many_probes": TooManyProbes,
    "opens_on_a_success": OpensOnASuccess,
}
ENTITIES: dict[str, type[CircuitBreakerEntity]] = {
    "correct": CircuitBreakerEntity,
    "never_half_opens": NeverHalfOpensEntity,
    "too_many_probes": TooManyProbesEntity,
}
