"""The registration a crash-test worker process serves (``python -m faults worker --setup``)."""

from __future__ import annotations

import concurrent.futures
import os
from typing import Any

from patterns.fanout import FanOutActivities, FanOutBatchWorkflow, FanOutSegmentWorkflow
from patterns.saga import OrderActivities, OrderSaga


def registration() -> dict[str, Any]:
    """Sagas on ``$CRASH_SAGA_DB`` and fan-out batches (whose requests name their database)."""
    saga = OrderActivities(os.environ["CRASH_SAGA_DB"])
    fanout = FanOutActivities()
    return {
        "workflows": [OrderSaga, FanOutBatchWorkflow, FanOutSegmentWorkflow],
        "activities": [*saga.activities(), fanout.process_chunk, fanout.seal_batch],
        "options": {"activity_executor": concurrent.futures.ThreadPoolExecutor(16)},
    }
