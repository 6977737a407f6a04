"""A workflow driven from outside: an update adds items, a signal closes it, an activity sums."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@activity.defn
async def total(items: list[int]) -> int:
    """The sum of the basket's items."""
    return sum(items)


@workflow.defn
class BasketWorkflow:
    """Waits for ``close`` (a signal) after any number of ``add`` updates; then totals."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.closed = False

    @workflow.update
    def add(self, item: int) -> int:
        """Add one item; returns how many the basket holds."""
        self.items.append(item)
        return len(self.items)

    @workflow.signal
    def close(self) -> None:
        """No more items."""
        self.closed = True

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.closed)
        return await workflow.execute_activity(
            total,
            self.items,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
