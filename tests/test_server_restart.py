"""The dev server on a persisted database is killed and restarted mid-run; workflows finish."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

import faults

from .fault_targets import LongWorkflow, body_runs, slow_step

STEPS = 20
WORKFLOWS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_workflows_survive_a_server_restart(tmp_path: Path) -> None:
    database = str(tmp_path / "temporal.db")
    port = free_port()

    async def scenario() -> tuple[list[int], list[str], int]:
        server = await faults.start_environment("dev", port=port, database_file=database)
        client = await Client.connect(f"127.0.0.1:{port}")
        ids = [faults.unique_id("restart") for _ in range(WORKFLOWS)]
        async with Worker(
            client, task_queue="restart", workflows=[LongWorkflow], activities=[slow_step]
        ):
            handles = [
                await client.start_workflow(LongWorkflow.run, STEPS, id=i, task_queue="restart")
                for i in ids
            ]
            while sum(body_runs(i, "slow_step") for i in ids) < WORKFLOWS:
                await asyncio.sleep(0.05)  # wait for some progress, then kill mid-run
            await server.shutdown()  # the server process dies mid-run
            done_at_kill = sum(body_runs(i, "slow_step") for i in ids)
            await asyncio.sleep(0.5)
            restarted = await faults.start_environment("dev", port=port, database_file=database)
            async with restarted:
                results = await asyncio.wait_for(
                    asyncio.gather(*(h.result() for h in handles)), timeout=120
                )
        return results, ids, done_at_kill

    with faults.EventLoopThread() as loop:
        results, ids, done_at_kill = loop.run(scenario(), timeout=180)
    assert 0 < done_at_kill < STEPS * WORKFLOWS, "the server must die mid-run"
    assert results == [sum(range(STEPS))] * WORKFLOWS
    for workflow_id in ids:
        # Every step completed; a step in flight at the crash may have run twice (at least once).
        assert STEPS <= body_runs(workflow_id, "slow_step") <= STEPS + 1
