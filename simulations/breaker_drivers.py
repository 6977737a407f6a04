"""Ways to drive a breaker from the simulation: in process, or the real entity on Temporal."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Protocol

from temporalio.worker import Replayer

import faults
import faults.testing
from patterns.breaker import (
    BreakerClient,
    BreakerConfig,
    BreakerMachine,
    BreakerView,
    CircuitBreakerEntity,
    Decision,
    Permit,
    Transition,
)


def _issue_order(permit: Permit) -> int:
    """The permit's place in its breaker's issue order (ids count up: ``p1``, ``p2``, ...)."""
    return int(permit.id.removeprefix("p"))


class Driver(Protocol):
    """One breaker under test, on a clock the simulation advances."""

    def acquire(self, callers: int) -> list[Decision]: ...
    def record(
        self, permit_id: str, success: bool, seconds: float
    ) -> tuple[BreakerView, bool | None]:
        """Report a call; the view after it, and whether it counted (``None``: not said)."""
        ...

    def advance(self, seconds: float) -> None: ...
    def force_open(self) -> None: ...
    def reset(self) -> None: ...
    def observe(self) -> BreakerView: ...
    def transitions(self) -> list[Transition]: ...
    def close(self) -> None: ...


class MachineDriver:
    """The pure state machine on an exact clock (what the in-workflow breaker runs)."""

    def __init__(self, machine_type: type[BreakerMachine], config: BreakerConfig) -> None:
        self.machine = machine_type(config)
        self.now = 1_000_000.0

    def acquire(self, callers: int) -> list[Decision]:
        return [self.machine.acquire(self.now) for _ in range(callers)]

    def record(
        self, permit_id: str, success: bool, seconds: float
    ) -> tuple[BreakerView, bool | None]:
        counted = self.machine.record(permit_id, success, seconds, self.now)
        return self.machine.view(), counted

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def force_open(self) -> None:
        self.machine.force_open(self.now)

    def reset(self) -> None:
        self.machine.reset(self.now)

    def observe(self) -> BreakerView:
        self.machine.tick(self.now)
        return self.machine.view()

    def transitions(self) -> list[Transition]:
        return list(self.machine.state.transitions)

    def close(self) -> None:
        pass


class EntityDriver:
    """The durable entity on the time-skipping test server, through :class:`BreakerClient`.

    Concurrent callers are concurrent Updates; time moves only through the
    server's ``sleep`` (the caller keeps auto time skipping off), so the
    entity's timers fire exactly when the simulation's clock says.
    """

    def __init__(
        self,
        loop: faults.testing.EventLoopThread,
        env: Any,
        task_queue: str,
        entity: type[CircuitBreakerEntity],
        config: BreakerConfig,
        max_history_events: int,
    ) -> None:
        self.loop, self.env, self.entity = loop, env, entity
        self.client = BreakerClient(
            env.client,
            faults.testing.unique_id("sim"),
            config,
            task_queue=task_queue,
            max_history_events=max_history_events,
            entity=entity,
        )
        self.loop.run(self.client.start(), timeout=60)

    def _run(self, coro: Any) -> Any:
        return self.loop.run(coro, timeout=60)

    def acquire(self, callers: int) -> list[Decision]:
        async def many() -> list[Decision]:
            answers = await asyncio.gather(
                *(self.client.acquire(uuid.uuid4().hex) for _ in range(callers))
            )
            return [a.permit or a.rejected for a in answers]  # type: ignore[misc]

        decisions: list[Decision] = self._run(many())
        # Concurrent Updates are answered in any order; the model needs the order the entity
        # issued the permits in (of two permits due at one time, the older times out first).
        permits = sorted((d for d in decisions if isinstance(d, Permit)), key=_issue_order)
        decisions = permits + [d for d in decisions if not isinstance(d, Permit)]
        return decisions

    def record(
        self, permit_id: str, success: bool, seconds: float
    ) -> tuple[BreakerView, bool | None]:
        view: BreakerView = self._run(self.client.record(permit_id, success, seconds))
        return view, None  # the entity's Update answers with its view only

    def advance(self, seconds: float) -> None:
        self._run(self.env.sleep(seconds))

    def force_open(self) -> None:
        self._run(self.client.force_open())

    def reset(self) -> None:
        self._run(self.client.reset())

    def observe(self) -> BreakerView:
        view: BreakerView = self._run(self.client.observe())
        return view

    def transitions(self) -> list[Transition]:
        found: list[Transition] = self._run(self.client.transitions())
        return found

    def close(self) -> None:
        """End the entity, then replay its history: a non-deterministic entity fails the example."""
        handle = self.client.client.get_workflow_handle(self.client.id)

        async def end_and_replay() -> None:
            await handle.terminate()
            history = await handle.fetch_history()
            await Replayer(workflows=[self.entity]).replay_workflow(history)

        self._run(end_and_replay())
