"""The pattern's demonstration: an outage opens the shared breaker, healing closes it."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import temporalio.client
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

import faults

from ..breaker import (
    BREAKER_ACTIVITIES,
    BreakerClient,
    BreakerConfig,
    CallOutcome,
    CallRequest,
    CircuitBreakerEntity,
    Downstream,
    GuardedCallWorkflow,
    LocalBreakerLoopWorkflow,
    LoopRequest,
    Transition,
)
from ._report import DemoReport, InvariantCheck, Say

DEMO_CONFIG = BreakerConfig(
    failure_rate_threshold=0.5,
    window_size=6,
    minimum_calls=4,
    open_seconds=4.0,
    half_open_permits=2,
    permit_timeout_seconds=30.0,
)
"""The demonstration's breaker: opens at half of >= 4 calls failing, waits 2 s, probes twice."""


async def _scheduled_downstream(client: temporalio.client.Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "downstream_call"
    )


def _well_formed(transitions: list[Transition], open_seconds: float) -> tuple[bool, str]:
    for before, after in zip(transitions, transitions[1:], strict=False):
        if after.from_state != before.to_state:
            return False, f"{after} does not start where {before} ended"
        if after.to_state == "half_open" and after.at - before.at < open_seconds - 1e-6:
            return False, f"half-opened {after.at - before.at:.3f}s after opening"
    return True, f"{len(transitions)} transitions, each from the state the previous one left"


async def demonstrate(
    client: temporalio.client.Client,
    *,
    seed: int,
    plan: faults.FaultPlan | None,
    workdir: Path,
    say: Say,
) -> DemoReport:
    """Run an outage through a shared breaker and check what reached the service."""
    service = f"inventory-{seed}"
    # From the seed alone: a random plan's faults depend on workflow ids, which derive
    # from the breaker's name, so the same seed must give the same name.
    name = f"demo-{seed}"
    downstream = Downstream(Path(workdir) / "breaker-downstream.sqlite")
    task_queue = f"breaker-demo-{uuid.uuid4().hex[:8]}"
    breaker = BreakerClient(client, name, DEMO_CONFIG, task_queue=task_queue)
    report = DemoReport(pattern="circuit breaker")
    outcomes: dict[str, CallOutcome] = {}

    async def call(label: str) -> tuple[str, CallOutcome]:
        wid = f"{name}-{label}"
        with faults.injecting(plan):
            outcome = await client.execute_workflow(
                GuardedCallWorkflow.run,
                CallRequest(name, DEMO_CONFIG, service, payload=label),
                id=wid,
                task_queue=task_queue,
            )
        outcomes[wid] = outcome
        return wid, outcome

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[CircuitBreakerEntity, GuardedCallWorkflow, LocalBreakerLoopWorkflow],
        activities=[*BREAKER_ACTIVITIES, downstream.call],
    ):
        try:
            say(f"breaker {name!r} guards {service!r}; {DEMO_CONFIG}")
            downstream.set_health(service, True)
            for i in range(4):
                await call(f"healthy-{i}")
            say(f"healthy: {sum(o.status == 'ok' for o in outcomes.values())}/4 calls served")

            downstream.set_health(service, False)
            say("outage begins: the service now fails every call")
            i = 0
            while (await breaker.observe()).state != "open" and i < 20:
                await call(f"outage-{i}")
                i += 1
            say(f"breaker opened after {i} calls during the outage")
            while_open = [await call(f"open-{j}") for j in range(3)]
            # Under load the open period may end during these calls: a call admitted as a
            # half-open probe may then reach the service. Only rejected calls are judged.
            rejected = [(wid, o) for wid, o in while_open if o.status == "rejected"]
            reached = sum(downstream.calls(service, workflow_id=wid) for wid, _ in rejected)
            say(
                f"while open: {[o.status for _, o in while_open]}, "
                f"{reached} rejected calls reached the service"
            )
            scheduled = [await _scheduled_downstream(client, wid) for wid, _ in rejected]

            downstream.set_health(service, True)
            say("service healed; waiting out the open period, then probing")
            for round_ in range(6):
                view = await breaker.observe()
                if view.state == "closed":
                    break
                if view.state == "open" and view.opened_at is not None:
                    wait = view.opened_at + DEMO_CONFIG.open_seconds - time.time()
                    await asyncio.sleep(min(max(wait, 0.0), DEMO_CONFIG.open_seconds) + 0.2)
                await asyncio.gather(*(call(f"probe-{round_}-{k}") for k in range(2)))
            final = await breaker.observe()
            transitions = await breaker.transitions()
            for t in transitions:
                say(f"  {t.from_state} -> {t.to_state}: {t.reason}")

            say("lightweight variant: 6 calls in one workflow against the failing service")
            downstream.set_health(service, False)
            loop_id = f"{name}-local-loop"
            with faults.injecting(plan):
                loop = await client.execute_workflow(
                    LocalBreakerLoopWorkflow.run,
                    LoopRequest(
                        BreakerConfig(window_size=2, minimum_calls=2, open_seconds=600),
                        service,
                        6,
                        0.01,
                    ),
                    id=loop_id,
                    task_queue=task_queue,
                )
            say(f"  statuses: {loop.statuses}")
            loop_reached = downstream.calls(service, workflow_id=loop_id)
        finally:
            await client.get_workflow_handle(breaker.id).terminate("demonstration over")
            downstream.close()

    ok, detail = _well_formed(transitions, DEMO_CONFIG.open_seconds)
    opened = any(t.from_state == "closed" and t.to_state == "open" for t in transitions)
    report.summary.extend(
        [
            f"{len(outcomes)} guarded calls; statuses "
            + ", ".join(
                f"{s}={sum(o.status == s for o in outcomes.values())}"
                for s in ("ok", "failed", "rejected", "fallback")
            ),
            f"final state {final.state} after {final.transition_count} transitions",
        ]
    )
    report.checks.extend(
        [
            InvariantCheck("the outage opened the breaker", opened, f"after {i} outage calls"),
            InvariantCheck(
                "while open no call reached the service",
                reached == 0 and len(rejected) > 0,
                f"{len(rejected)} calls rejected while open, {reached} of them logged by "
                f"the service; statuses {[o.status for _, o in while_open]}",
            ),
            InvariantCheck(
                "rejected calls never scheduled the protected activity",
                scheduled == [0] * len(scheduled),
                f"downstream_call scheduled {scheduled} times",
            ),
            InvariantCheck("transitions are well formed", ok, detail),
            InvariantCheck(
                "successful probes closed the breaker",
                final.state == "closed" and transitions[-1].from_state == "half_open",
                f"final {final.state}, last transition {transitions[-1].reason!r}",
            ),
            InvariantCheck(
                "the in-workflow breaker stopped calling after it opened",
                loop.statuses.count("rejected") > 0
                and loop_reached <= len(loop.statuses) - loop.statuses.count("rejected"),
                f"{loop_reached} calls reached the service for statuses {loop.statuses}",
            ),
        ]
    )
    return report
