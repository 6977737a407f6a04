"""Fixtures for workflows driven by signals and updates, on either server, under a plan."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client

import faults
from faults import Fail, ScriptedFault, ScriptedPlan
from faults.testing import unique_id

from .signal_targets import BasketWorkflow, total

PLAN = ScriptedPlan((ScriptedFault("total", 1, Fail()),))


async def fill_and_close(client: Client, task_queue: str) -> tuple[int, str]:
    workflow_id = unique_id("basket")
    with faults.injecting(PLAN):
        handle = await client.start_workflow(
            BasketWorkflow.run, id=workflow_id, task_queue=task_queue
        )
    for item in (3, 4, 5):
        await handle.execute_update(BasketWorkflow.add, item)
    await handle.signal(BasketWorkflow.close)
    return await handle.result(), workflow_id


@pytest.mark.parametrize("server", ["dev", "isolated"])
def test_an_update_and_signal_driven_workflow_under_a_plan(
    request: pytest.FixtureRequest, temporal_loop: Any, fault_log: Any, server: str
) -> None:
    if server == "dev":
        env = request.getfixturevalue("temporal_dev_env")
        task_queue = request.getfixturevalue("dev_fault_worker")(
            workflows=[BasketWorkflow], activities=[total]
        )
    else:
        env = request.getfixturevalue("isolated_temporal_env")
        task_queue = request.getfixturevalue("isolated_fault_worker")(
            workflows=[BasketWorkflow], activities=[total]
        )
    result, workflow_id = temporal_loop.run(fill_and_close(env.client, task_queue), timeout=60)
    assert result == 12
    # The plan's one fault reached the activity (the fault log), then the retry succeeded.
    assert [(i.kind, i.attempt) for i in fault_log.for_workflow(workflow_id)] == [("fail", 1)]


def test_the_isolated_server_is_not_the_sessions(
    isolated_temporal_env: Any, temporal_env: Any
) -> None:
    own = isolated_temporal_env.client.service_client.config.target_host
    assert own != temporal_env.client.service_client.config.target_host
