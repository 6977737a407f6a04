"""The fan-out benchmark's worker process: ``python -m faults worker --setup`` this module.

The 100,000-record batch runs on a worker process of its own, so that the
process's peak memory is the worker's alone (not the benchmark's client, the
in-process baseline's or earlier tests'), as a deployed worker's would be.
"""

from __future__ import annotations

from typing import Any

from patterns.fanout import FanOutActivities, FanOutBatchWorkflow, FanOutSegmentWorkflow


def registration() -> dict[str, Any]:
    """The fan-out batch's workflows and activities (requests name their own database)."""
    activities = FanOutActivities()
    return {
        "workflows": [FanOutBatchWorkflow, FanOutSegmentWorkflow],
        "activities": [activities.process_chunk, activities.seal_batch],
    }
