"""The simulation-throughput benchmark's workflow, in a module of its own.

The workflow sandbox re-imports a workflow's module for every run, so, as
Temporal advises, this module holds the workflow alone and passes its other
imports through; a module full of other definitions would be re-executed on
every run too.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from tests.fault_targets import RETRY, probe


@workflow.defn
class ThreeStepWorkflow:
    """Three ``probe`` steps in sequence: the shape of a small saga."""

    @workflow.run
    async def run(self, label: str) -> list[int]:
        attempts = []
        for step in ("first", "second", "third"):
            attempts.append(
                await workflow.execute_activity(
                    probe,
                    f"{label}-{step}",
                    start_to_close_timeout=timedelta(seconds=5),
                    retry_policy=RETRY,
                )
            )
        return attempts
