"""A quote workflow that uses only workflow-safe sources of randomness, ids, time and I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity, workflow


@dataclass(frozen=True)
class Quote:
    """A price quote: every field is fixed by the workflow's history."""

    quote_id: str
    sku: str
    issued_at: datetime
    discount_percent: int
    exchange_rate: float
    rate_changes: int


@activity.defn
async def read_exchange_rate(currency: str) -> float:
    """Read a live exchange rate: a side effect (it differs on every call)."""
    return round(1.05 + random.uniform(-0.02, 0.02), 4)


QUOTE_ACTIVITIES = [read_exchange_rate]
"""The activities :class:`QuoteWorkflow` needs registered."""


@workflow.defn
class QuoteWorkflow:
    """Quotes ``sku``: workflow-safe id, time and discount; a rate read by local activities.

    The rate is re-read ``refreshes`` times; like ``mutable_side_effect`` the
    workflow counts only the reads that changed it.
    """

    @workflow.run
    async def run(self, sku: str, refreshes: int = 2) -> Quote:
        quote_id = str(workflow.uuid4())  # seeded from the history, unlike uuid.uuid4()
        issued_at = workflow.now()  # the workflow task's time, unlike datetime.now()
        discount = workflow.random().choice([0, 5, 10])  # seeded, unlike random.choice()
        rate = -1.0
        changes = 0
        for _ in range(refreshes + 1):
            latest = await workflow.execute_local_activity(
                read_exchange_rate, "EUR", start_to_close_timeout=timedelta(seconds=5)
            )
            if latest != rate:
                rate, changes = latest, changes + 1
        return Quote(quote_id, sku, issued_at, discount, rate, changes)
