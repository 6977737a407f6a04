"""Which server a shape of workflow should run on: real seconds per run, by shape and server.

Users' workflows come in shapes that cost very differently on the two servers that skip
time: the Java test server (``time-skipping``, one clock for every workflow) and the dev
server with the SDK's per-workflow time skipping (``dev-time-skipping``). Each test runs
one shape on one server of its own (started for the test, as ``isolated_temporal_env``
does, so a shape that leaves the test server's clock held slows nothing after it):
a warm-up run, then ``ROUNDS`` runs, each through a :class:`~faults.testing.FaultHarness`
(sandboxed worker, every run replayed), one at a time. The shapes
(``benchmarks/env_shapes.py``):

* ``start and await``: three activities in a row;
* ``timers``: two 20 s timers (40 s of workflow time);
* ``children on signals``: three children that wait for their parent's signal;
* ``continue-as-new``: one activity per run, five times continued as new;
* ``cancellation``: a ``Cancel`` fault cancels the workflow in its second activity;
* ``local activity faults``: a local activity whose first two attempts ``Fail``, retried
  after 1 s and 2 s of backoff; the SDK sleeps out a local activity's backoff in the
  worker when it is under ``local_retry_threshold`` (a minute by default), so no server
  skips it;
* ``local activity faults, backoff on timers``: the same with ``local_retry_threshold``
  at 1 ms (zero counts as unset), so each backoff is a workflow timer.

The row records each shape's median and fastest seconds per run on each server;
``python -m benchmarks.report`` reads the ratio of the dev server's median to the test
server's (above 1: the test server is faster) from them. Run with
``pytest benchmarks/test_environment_bench.py --benchmark-only``; the rows go to
``benchmarks/results/environments.json``. With ``--benchmark-disable`` (CI's smoke run)
each shape runs once per server, unmeasured.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.worker import Worker

import faults
import faults.testing
from faults import Cancel, Fail, ScriptedFault, ScriptedPlan
from faults.testing import EventLoopThread, start_environment, unique_id
from tests.fault_targets import probe

from .env_shapes import (
    CHILDREN,
    CONTINUES,
    TIMER_SECONDS,
    CancelledMidActivity,
    ContinuesAsNew,
    LocalActivityRetried,
    SignalledChildren,
    TwoTimers,
    WaitsForSignal,
)
from .test_search_power_bench import machine_info
from .three_step import ThreeStepWorkflow

ROUNDS = 10
"""Measured runs per shape and server, after one warm-up run."""

RESULTS = Path(__file__).parent / "results" / "environments.json"
SERVERS = ("time-skipping", "dev-time-skipping")

Check = Callable[[faults.testing.RunOutcome[Any]], None]


def _completed(expected: Any) -> Check:
    def check(outcome: faults.testing.RunOutcome[Any]) -> None:
        assert outcome.succeeded, outcome.describe()
        assert outcome.result == expected, outcome.describe()

    return check


def _slept(outcome: faults.testing.RunOutcome[Any]) -> None:
    assert outcome.succeeded, outcome.describe()
    assert outcome.result is not None and outcome.result >= 2 * TIMER_SECONDS, outcome.describe()


def _cancelled(outcome: faults.testing.RunOutcome[Any]) -> None:
    assert not outcome.succeeded, outcome.describe()
    assert "cancel" in repr(outcome.cause).lower(), outcome.describe()


SHAPES: dict[str, tuple[Any, tuple[Any, ...], ScriptedPlan | None, Check]] = {
    "start and await": (ThreeStepWorkflow.run, ("env",), None, _completed([1, 1, 1])),
    "timers": (TwoTimers.run, (), None, _slept),
    "children on signals": (SignalledChildren.run, (), None, _completed(CHILDREN)),
    "continue-as-new": (ContinuesAsNew.run, (CONTINUES,), None, _completed(0)),
    "cancellation": (
        CancelledMidActivity.run,
        (),
        ScriptedPlan((ScriptedFault("probe", 1, Cancel(), key="second"),)),
        _cancelled,
    ),
    "local activity faults": (
        LocalActivityRetried.run,
        (False,),
        ScriptedPlan((ScriptedFault("probe", 1, Fail(), through=2),)),
        _completed(3),
    ),
    "local activity faults, backoff on timers": (
        LocalActivityRetried.run,
        (True,),
        ScriptedPlan((ScriptedFault("probe", 1, Fail(), through=2),)),
        _completed(3),
    ),
}
"""Each shape: the workflow, its arguments, the fault plan and what its outcome must be."""

WORKFLOWS = [
    ThreeStepWorkflow,
    TwoTimers,
    WaitsForSignal,
    SignalledChildren,
    ContinuesAsNew,
    CancelledMidActivity,
    LocalActivityRetried,
]


@pytest.fixture(scope="module")
def rows(request: pytest.FixtureRequest) -> Iterator[list[dict[str, Any]]]:
    """The measurements of this module, written to :data:`RESULTS` at its end (not in smoke)."""
    collected: list[dict[str, Any]] = []
    yield collected
    if not collected or request.config.getoption("benchmark_disable"):
        return
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "datetime": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine_info": machine_info(),
                "command": "pytest benchmarks/test_environment_bench.py --benchmark-only",
                "what": "real seconds per run of each workload shape, on a server of the "
                "test's own, through FaultHarness (sandboxed, every run replayed), "
                f"one warm-up then {ROUNDS} runs one at a time",
                "rows": collected,
            },
            indent=2,
        )
        + "\n"
    )


@pytest.fixture
def harness_on(
    temporal_loop: EventLoopThread, fault_log: faults.FaultLog
) -> Iterator[Callable[[str], faults.testing.FaultHarness]]:
    """``harness_on(server)``: a harness for :data:`WORKFLOWS` on a server of this test's own."""
    opened: list[tuple[Any, Worker, faults.testing.FaultHarness]] = []

    async def start(server: str) -> tuple[Any, Worker, str]:
        env = await start_environment(server, plugins=[faults.FaultPlugin(log=fault_log)])  # type: ignore[arg-type]
        task_queue = unique_id("env-bench")
        worker = Worker(env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=[probe])
        await worker.__aenter__()
        return env, worker, task_queue

    def harness(server: str) -> faults.testing.FaultHarness:
        env, worker, task_queue = temporal_loop.run(start(server), timeout=120)
        made = faults.testing.FaultHarness(
            env.client,
            task_queue,
            fault_log,
            loop=temporal_loop,
            replay_workflows=WORKFLOWS,
            activity_names=faults.activity_names([probe]),
        )
        opened.append((env, worker, made))
        return made

    yield harness
    for env, worker, made in opened:
        temporal_loop.run(made.aclose(), timeout=60)
        temporal_loop.run(worker.__aexit__(None, None, None), timeout=60)
        temporal_loop.run(env.shutdown(), timeout=60)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("server", SERVERS)
def test_seconds_per_run_by_shape_and_server(
    benchmark: Any,
    harness_on: Callable[[str], faults.testing.FaultHarness],
    rows: list[dict[str, Any]],
    server: str,
    shape: str,
) -> None:
    workflow, args, plan, check = SHAPES[shape]
    harness = harness_on(server)
    seconds: list[float] = []

    def run() -> None:
        started = time.perf_counter()
        outcome = harness.run(workflow, *args, plan=plan, timeout=300)
        seconds.append(time.perf_counter() - started)
        check(outcome)

    if benchmark.disabled:  # a smoke run: the shape runs once, unmeasured
        benchmark.pedantic(run, rounds=1, iterations=1)
        return
    run()  # warm-up
    seconds.clear()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    rows.append(
        {
            "shape": shape,
            "server": server,
            "rounds": ROUNDS,
            "median_seconds": round(statistics.median(seconds), 4),
            "min_seconds": round(min(seconds), 4),
            "max_seconds": round(max(seconds), 4),
        }
    )
