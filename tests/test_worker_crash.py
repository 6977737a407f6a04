"""Workers are killed with SIGKILL at random points, 20 times; every workflow still completes.

Sagas and a fan-out batch run on worker processes (``python -m faults worker``) that
the test kills at seeded random moments and replaces. Afterwards the services' ledgers
balance, stock is conserved and the fan-in holds every record exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import faults
import faults.testing
from patterns.fanout import BatchConfig, BatchRequest, FanOutBatchWorkflow
from patterns.fanout._demo import check_batch
from patterns.saga import (
    OrderSaga,
    OrderServices,
    SagaSettings,
    make_catalog,
    make_order,
)

from .order_ledgers import assert_ledgers_balance, saga_outcomes

ROOT = Path(__file__).resolve().parents[1]
KILLS = 20
SEED = 20261125


def spawn_worker(address: str, task_queue: str, saga_db: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faults",
            "worker",
            "--address",
            address,
            "--task-queue",
            task_queue,
            "--setup",
            "tests.crash_targets:registration",
        ],
        cwd=ROOT,
        env={**os.environ, "CRASH_SAGA_DB": str(saga_db), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the worker is registered (or died)
    assert "worker ready" in line, f"worker did not start: {line!r}"
    return process


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_worker_process_shuts_down_on_ctrl_c_or_sigterm(
    temporal_client: Any, tmp_path: Path, stop: signal.Signals
) -> None:
    address = temporal_client.service_client.config.target_host
    process = spawn_worker(address, faults.testing.unique_id("stop"), tmp_path / "saga.sqlite")
    process.send_signal(stop)
    try:
        assert process.wait(30) == 0, f"{stop.name} should shut the worker down cleanly"
    finally:
        process.kill()


def test_workflows_complete_through_twenty_worker_kills(
    temporal_loop: faults.testing.EventLoopThread, temporal_dev_env: Any, tmp_path: Path
) -> None:
    client = temporal_dev_env.client
    address = client.service_client.config.target_host
    task_queue = faults.testing.unique_id("crash")
    saga_db = tmp_path / "saga.sqlite"
    services = OrderServices(saga_db)
    catalog = make_catalog(SEED, 6, prefix="CRASH", max_stock=10)
    initial = {p.sku: 10_000 for p in catalog}
    services.stock_products((p.sku, p.unit_price_cents, initial[p.sku]) for p in catalog)
    rng = random.Random(SEED)
    batch = BatchRequest(
        batch_id=faults.testing.unique_id("crash-batch"),
        seed=SEED,
        count=3_000,
        database=str(tmp_path / "fanout.sqlite"),
        config=BatchConfig(chunk_size=50, window=8, segment_size=1_000, child_window=2),
    )
    orders = []
    handles: list[Any] = []

    async def start_orders(count: int) -> None:
        for _ in range(count):
            n = len(orders)
            order = make_order(
                rng.randrange(2**32),
                catalog,
                order_id=f"crash-{n}",
                declined=n % 4 == 1,
                country="AQ" if n % 5 == 2 else None,
            )
            orders.append(order)
            handles.append(
                await client.start_workflow(
                    OrderSaga.run,
                    args=[order, SagaSettings(step_attempts=20)],
                    id=faults.testing.unique_id(f"crash-order-{n}"),
                    task_queue=task_queue,
                )
            )

    batch_handle = temporal_loop.run(
        client.start_workflow(
            FanOutBatchWorkflow.run, batch, id=batch.batch_id, task_queue=task_queue
        )
    )
    kills_mid_run = 0
    for _ in range(KILLS):
        temporal_loop.run(start_orders(2))
        worker = spawn_worker(address, task_queue, saga_db)
        temporal_loop.run(asyncio.sleep(rng.uniform(0.2, 1.5)))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        open_runs = temporal_loop.run(_still_running([*handles, batch_handle]))
        kills_mid_run += open_runs > 0
    assert kills_mid_run == KILLS, "every kill must interrupt unfinished work"

    final = spawn_worker(address, task_queue, saga_db)
    try:
        outcomes = temporal_loop.run(saga_outcomes(handles), timeout=300)
        batch_result = temporal_loop.run(batch_handle.result(), timeout=300)
    finally:
        final.terminate()
        final.wait(30)

    assert_ledgers_balance(services, orders, outcomes, initial)
    for check in check_batch(SEED, batch_result, batch.database):
        assert check.held, f"{check.name}: {check.detail}"


async def _still_running(handles: list[Any]) -> int:
    from temporalio.client import WorkflowExecutionStatus

    statuses = [(await h.describe()).status for h in handles]
    return sum(s == WorkflowExecutionStatus.RUNNING for s in statuses)
