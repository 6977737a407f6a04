"""The dev server on a persisted database is SIGKILLed mid-run, again and again.

Sagas, a fan-out batch and held workflows run on one worker while the test kills
the server with SIGKILL ten times and restarts it on the same database and port.
Each round starts a workflow whose activity waits at a gate and kills the server
only once that activity has started (plus a seeded random extra moment), so every
kill lands mid-run by construction; the gate opens after the restart. Afterwards,
from the databases alone: every workflow finished, every ledger balances, stock is
conserved and the fan-in holds each valid record exactly once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

import faults.testing
from patterns.fanout import (
    BatchConfig,
    BatchRequest,
    FanOutActivities,
    FanOutBatchWorkflow,
    FanOutSegmentWorkflow,
)
from patterns.saga import (
    OrderActivities,
    OrderSaga,
    OrderServices,
    make_catalog,
)

from . import kill_targets
from .batch_checks import assert_batch_complete
from .kill_targets import HeldWorkflow, held_step
from .order_ledgers import assert_ledgers_balance, saga_outcomes, start_mixed_orders

KILLS = 10
SEED = 20261129
TASK_QUEUE = "server-kill"


def unused_port() -> int:
    """A loopback port free now (the dev server refuses one held in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """The dev server binary run directly, so that the test owns its process and can kill it."""

    def __init__(self, port: int, database: Path) -> None:
        self.port, self.database = port, database
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                faults.testing.server_binary("temporal"),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--db-filename",
                str(self.database),
                "--headless",
                "--log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    async def connect(self, timeout: float = 60.0) -> Client:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert self.process is not None and self.process.poll() is None, "server exited"
            try:
                return await Client.connect(f"127.0.0.1:{self.port}")
            except RuntimeError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DevServer]:
    dev = DevServer(unused_port(), tmp_path / "temporal.db")
    dev.start()
    yield dev
    with contextlib.suppress(Exception):
        dev.kill()


def test_workflows_finish_through_ten_server_kills(server: DevServer, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    services = OrderServices(tmp_path / "services.sqlite")
    catalog = make_catalog(SEED, 6, prefix="KILL", max_stock=10)
    initial = {p.sku: 10_000 for p in catalog}
    services.stock_products((p.sku, p.unit_price_cents, initial[p.sku]) for p in catalog)
    batch = BatchRequest(
        batch_id=faults.testing.unique_id("kill-batch"),
        seed=SEED,
        count=2_000,
        database=str(tmp_path / "fanout.sqlite"),
        config=BatchConfig(chunk_size=50, window=4, segment_size=1_000, child_window=2),
    )
    orders: list[Any] = []
    gates = [f"{faults.testing.unique_id('gate')}-{k}" for k in range(KILLS)]

    async def scenario() -> tuple[list[str | None], list[str], list[str]]:
        client = await server.connect()
        fanout = FanOutActivities()
        sagas: list[Any] = []
        held: list[Any] = []
        with concurrent.futures.ThreadPoolExecutor(16) as executor:
            async with Worker(
                client,
                task_queue=TASK_QUEUE,
                workflows=[OrderSaga, FanOutBatchWorkflow, FanOutSegmentWorkflow, HeldWorkflow],
                activities=[
                    *OrderActivities(services).activities(),
                    fanout.process_chunk,
                    fanout.seal_batch,
                    held_step,
                ],
                activity_executor=executor,
            ):
                batch_handle = await client.start_workflow(
                    FanOutBatchWorkflow.run, batch, id=batch.batch_id, task_queue=TASK_QUEUE
                )
                for k, gate in enumerate(gates):
                    kill_targets.GATES[gate] = asyncio.Event()
                    held.append(
                        await client.start_workflow(
                            HeldWorkflow.run, gate, id=gate, task_queue=TASK_QUEUE
                        )
                    )
                    await start_mixed_orders(
                        client,
                        TASK_QUEUE,
                        rng,
                        catalog,
                        orders,
                        sagas,
                        count=2,
                        prefix="kill",
                        step_attempts=30,
                    )
                    while not kill_targets.STARTED.get(gate):  # the held activity has started
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(rng.uniform(0, 0.3))
                    server.kill()
                    server.start()
                    client = await server.connect()
                    status = (await client.get_workflow_handle(gate).describe()).status
                    assert status == WorkflowExecutionStatus.RUNNING, f"kill {k}: {gate} {status}"
                    kill_targets.GATES[gate].set()
                outcomes = await asyncio.wait_for(saga_outcomes(sagas), timeout=300)
                results = await asyncio.wait_for(
                    asyncio.gather(*(client.get_workflow_handle(g).result() for g in gates)),
                    timeout=300,
                )
                await asyncio.wait_for(
                    client.get_workflow_handle(batch.batch_id).result(), timeout=300
                )
        return outcomes, list(results), [str(batch_handle.id)]

    with faults.testing.EventLoopThread() as loop:
        outcomes, results, _ = loop.run(scenario(), timeout=900)
    assert results == gates
    assert all(kill_targets.STARTED[g] >= 1 for g in gates)
    assert_ledgers_balance(services, orders, outcomes, initial)
    assert_batch_complete(batch)
