"""The registration a crash-test worker process serves (``python -m faults worker --setup``).

With ``CRASH_GATE=K:WHEN`` and ``CRASH_GATE_FILE=PATH`` the process holds its K-th
saga activity forever, before its body runs (``WHEN=before``) or after (``after``:
the body ran, whether it returned or raised a refusal, and its outcome is never
reported), and writes the held call's workflow id to ``PATH``. A test that waits
for that file and then kills the process kills it mid-run by construction,
whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from patterns.fanout import FanOutActivities, FanOutBatchWorkflow, FanOutSegmentWorkflow
from patterns.saga import ALL_ACTIVITIES, OrderActivities, OrderSaga


class _HoldKthSagaCall(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, gate: _Gate) -> None:
        super().__init__(next)
        self._gate = gate

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type not in ALL_ACTIVITIES:
            return await self.next.execute_activity(input)
        call = next(self._gate.calls)
        self._gate.file.with_suffix(".calls").write_text(f"{call}\n")  # for a failure's report
        if call != self._gate.k:
            return await self.next.execute_activity(input)
        if self._gate.when == "after":
            try:
                await self.next.execute_activity(input)
            except Exception:  # a refusal (a declined card, no stock) still committed its effect
                pass
        self._gate.file.write_text(f"{info.workflow_id}\n{info.activity_type}\n")
        await asyncio.Event().wait()  # until the process is killed
        raise AssertionError("unreachable")  # pragma: no cover


class _Gate(Interceptor):
    """Holds the ``k``-th saga activity call of this process (see the module docstring)."""

    def __init__(self, spec: str, file: Path) -> None:
        k, _, when = spec.partition(":")
        if when not in ("before", "after"):
            raise ValueError(f"CRASH_GATE={spec!r} must be K:before or K:after")
        self.k, self.when, self.file = int(k), when, file
        self.calls = itertools.count(1)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _HoldKthSagaCall(next, self)


def registration() -> dict[str, Any]:
    """Sagas on ``$CRASH_SAGA_DB`` and fan-out batches (whose requests name their database)."""
    saga = OrderActivities(os.environ["CRASH_SAGA_DB"])
    fanout = FanOutActivities()
    options: dict[str, Any] = {"activity_executor": concurrent.futures.ThreadPoolExecutor(16)}
    if "CRASH_GATE" in os.environ:
        options["interceptors"] = [
            _Gate(os.environ["CRASH_GATE"], Path(os.environ["CRASH_GATE_FILE"]))
        ]
    return {
        "workflows": [OrderSaga, FanOutBatchWorkflow, FanOutSegmentWorkflow],
        "activities": [*saga.activities(), fanout.process_chunk, fanout.seal_batch],
        "options": options,
    }
