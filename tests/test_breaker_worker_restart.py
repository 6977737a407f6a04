"""The breaker entity's state survives its worker stopping and another taking over."""

from __future__ import annotations

from typing import Any

from temporalio.worker import Worker

import faults
import faults.testing
from patterns.breaker import BREAKER_ACTIVITIES, BreakerClient, BreakerConfig, CircuitBreakerEntity

CONFIG = BreakerConfig(window_size=2, minimum_calls=2, open_seconds=3600, half_open_permits=1)


def test_open_breaker_stays_open_across_worker_restarts(
    temporal_loop: faults.testing.EventLoopThread, temporal_dev_env: Any
) -> None:
    """On a full server: worker 1 opens the breaker and stops; worker 2 finds it open."""
    client = temporal_dev_env.client
    queue = faults.testing.unique_id("breaker-restart")
    breaker = BreakerClient(client, faults.testing.unique_id("restart"), CONFIG, task_queue=queue)

    def worker() -> Worker:
        return Worker(
            client,
            task_queue=queue,
            workflows=[CircuitBreakerEntity],
            activities=list(BREAKER_ACTIVITIES),
        )

    async def scenario() -> tuple[Any, Any, Any, int]:
        async with worker():
            await breaker.start()
            for n in range(2):
                answer = await breaker.acquire(f"call-{n}")
                assert answer.permit is not None
                await breaker.record(answer.permit.id, False, 0.01)
            before = await breaker.observe()
        # No worker at all now; then a new worker (a new process would do the same).
        async with worker():
            after = await breaker.observe()
            rejected = await breaker.acquire("after-restart")
            transitions = await breaker.transitions()
        await client.get_workflow_handle(breaker.id).terminate("test over")
        return before, after, rejected, len(transitions)

    before, after, rejected, transitions = temporal_loop.run(scenario(), timeout=120)
    assert before.state == "open"
    assert after.state == "open" and after.opened_at == before.opened_at
    assert rejected.permit is None and rejected.rejected is not None
    assert transitions == before.transition_count == 1
