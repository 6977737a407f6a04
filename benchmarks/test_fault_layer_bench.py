"""The fault layer's cost and the harness's simulation throughput, each beside a same-run baseline.

* Overhead: a naive 1,000-activity ``asyncio.gather`` fan-out on the embedded dev
  server, with the fault layer carrying an empty plan, against the same fan-out
  on two workers and clients without the layer, in rounds (target: at most 3 %
  slower); the two bare workers' difference shows the noise floor.
* Simulation throughput: workflow runs per second of a three-activity workflow
  with its invariant check, on the time-skipping server: the bare client
  (baseline), the harness (plan, replay of the history, injections, check), the
  harness on an unsandboxed worker, and the harness with 8 runs in flight.
  Overlapping result waits share one unlock of the time-skipping server's clock
  (see ``faults.TimeSkipping``), so the harness lets them overlap.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import faults
from benchmarks.three_step import ThreeStepWorkflow
from tests.fault_targets import FanWorkflow, body_runs, probe

FAN_OUT = 1_000
OVERHEAD_ROUNDS = 12
RUNS = 60


@pytest.fixture(scope="module")
def fan_out(
    temporal_loop: faults.EventLoopThread, temporal_dev_env: Any, fault_log: faults.FaultLog
) -> Callable[[str], tuple[float, float]]:
    """``fan_out(arm)`` runs one 1,000-activity fan-out on a client and worker built for it alone.

    ``"layer"`` has the fault plugin on its client (and so on its worker) and runs under an
    empty plan; ``"bare"`` and its twin ``"bare-twin"`` have no fault layer at all: the
    twins' difference is the noise floor the layer's overhead is read against. Every
    fan-out gets a fresh client, worker and task queue, so nothing particular to one
    connection or queue sticks to an arm. Returns the fan-out's wall-clock seconds and this
    process's CPU seconds (every thread: clients, workers and the SDK's core), a steadier
    view of the layer's own cost than the wall clock, which also carries the server's noise.
    """
    target = temporal_dev_env.client.service_client.config.target_host
    plugins = {"bare": [], "bare-twin": [], "layer": [faults.FaultPlugin(log=fault_log)]}
    plan = faults.ScriptedPlan()

    async def once(arm: str) -> tuple[float, float]:
        client = await Client.connect(
            target, namespace=temporal_dev_env.client.namespace, plugins=plugins[arm]
        )
        queue = faults.unique_id("fan")
        async with Worker(
            client,
            task_queue=queue,
            workflows=[FanWorkflow],
            activities=[probe],
            max_concurrent_activities=FAN_OUT,
        ):
            started, cpu = time.perf_counter(), time.process_time()
            with faults.injecting(plan if arm == "layer" else None):
                result = await client.execute_workflow(
                    FanWorkflow.run,
                    args=[FAN_OUT, FAN_OUT, False, 60.0],
                    id=faults.unique_id("fan"),
                    task_queue=queue,
                )
            timings = time.perf_counter() - started, time.process_time() - cpu
        assert result == [1] * FAN_OUT
        return timings

    return lambda arm: temporal_loop.run(once(arm), timeout=600)


ARMS = ("bare", "bare-twin", "layer")
ORDERS = list(itertools.permutations(ARMS))


@pytest.mark.benchmark(group="fault-layer-overhead")
def test_fault_layer_overhead_on_a_thousand_activity_fanout(
    benchmark: Any, fan_out: Callable[[str], tuple[float, float]], throughput: Any
) -> None:
    """The same fan-out without the layer (twice) and with it (empty plan), in rounds.

    Each round runs all three arms, in an order that cycles through every
    permutation, so the server's drift over the session, the machine's noise
    and any advantage of going first fall on all alike; the benchmark's own
    timing is of the round. The overhead is the median over rounds of the
    layer's time over the mean of the two bare arms' times; the median of
    the twins' ratio (bare-twin / bare) is the noise floor such a figure has.
    """
    rounds: list[dict[str, tuple[float, float]]] = []

    def one_round() -> None:
        rounds.append({arm: fan_out(arm) for arm in ORDERS[len(rounds) % len(ORDERS)]})

    benchmark.pedantic(one_round, rounds=OVERHEAD_ROUNDS, warmup_rounds=1)
    measured = rounds[1:]  # the first was the warm-up round
    if not measured or benchmark.disabled:
        return

    def over_bare(arm: str, measure: int) -> float:
        """The median over rounds of ``arm``'s time over the bare workers' mean."""
        return statistics.median(
            r[arm][measure] / ((r["bare"][measure] + r["bare-twin"][measure]) / 2) for r in measured
        )

    def median_rate(arm: str) -> float:
        return FAN_OUT / statistics.median(r[arm][0] for r in measured)

    wall, cpu = over_bare("layer", 0), over_bare("layer", 1)
    twins, twins_cpu = (
        statistics.median(r["bare-twin"][m] / r["bare"][m] for r in measured) for m in (0, 1)
    )
    throughput.record_rate(benchmark, "fan-out 1,000, no fault layer", median_rate("bare"))
    name = "fan-out 1,000, fault layer, empty plan"
    throughput.record_rate(benchmark, name, median_rate("layer"))
    throughput.ratio(benchmark, name, "fan-out 1,000, no fault layer")
    benchmark.extra_info["rounds"] = [
        {arm: [round(t, 3) for t in r[arm]] for arm in ARMS} for r in measured
    ]
    benchmark.extra_info["overhead_percent"] = (wall - 1) * 100
    benchmark.extra_info["cpu_overhead_percent"] = (cpu - 1) * 100
    benchmark.extra_info["twin_difference_percent"] = (twins - 1) * 100
    benchmark.extra_info["twin_cpu_difference_percent"] = (twins_cpu - 1) * 100
    throughput.notes.append(
        f"fault layer overhead, median of {len(measured)} rounds: {(wall - 1) * 100:+.1f} % wall "
        f"clock, {(cpu - 1) * 100:+.1f} % CPU of the worker process; noise floor (bare twin "
        f"against bare): {(twins - 1) * 100:+.1f} % wall clock, {(twins_cpu - 1) * 100:+.1f} % "
        "CPU (rounds, s bare/twin/layer: "
        + ", ".join("/".join(f"{r[arm][0]:.2f}" for arm in ARMS) for r in measured)
        + ")"
    )


def check(outcome: faults.RunOutcome[list[int]]) -> None:
    """The invariant of the three-step workflow: every step ran once and succeeded first time."""
    assert outcome.succeeded and outcome.result == [1, 1, 1]
    assert body_runs(outcome.workflow_id, "probe") == 3


@pytest.mark.benchmark(group="simulation-throughput")
def test_simulation_baseline_bare_client(
    benchmark: Any,
    temporal_loop: faults.EventLoopThread,
    temporal_client: Client,
    fault_worker: Any,
    throughput: Any,
) -> None:
    queue = fault_worker(workflows=[ThreeStepWorkflow], activities=[probe])

    async def runs() -> None:
        for _ in range(RUNS):
            result = await temporal_client.execute_workflow(
                ThreeStepWorkflow.run, "x", id=faults.unique_id("bare"), task_queue=queue
            )
            assert result == [1, 1, 1]

    benchmark.pedantic(lambda: temporal_loop.run(runs()), rounds=5, warmup_rounds=1)
    throughput.record(benchmark, "3-step workflow, bare client", RUNS, unit="runs")


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
@pytest.mark.benchmark(group="simulation-throughput")
def test_simulation_harness_sequential(
    benchmark: Any, fault_harness: Any, throughput: Any, sandboxed: bool
) -> None:
    options = {} if sandboxed else {"workflow_runner": UnsandboxedWorkflowRunner()}
    harness = fault_harness(workflows=[ThreeStepWorkflow], activities=[probe], **options)
    plan = faults.ScriptedPlan()

    def runs() -> None:
        for _ in range(RUNS):
            check(harness.run(ThreeStepWorkflow.run, "x", plan=plan))

    benchmark.pedantic(runs, rounds=5, warmup_rounds=1)
    name = (
        f"3-step workflow, harness + replay + check, {'sandboxed' if sandboxed else 'unsandboxed'}"
    )
    throughput.record(benchmark, name, RUNS, unit="runs")
    throughput.ratio(benchmark, name, "3-step workflow, bare client")


EIGHT_IN_FLIGHT = [
    # (sandboxed, replay one run in N; None: no replay)
    (True, 1),
    (False, 1),
    (False, 10),
    (True, None),
    (False, None),
]


def replay_label(every: int | None) -> str:
    """How a benchmark's harness replays, in words."""
    if every is None:
        return "no replay"
    return "replay of every run" if every == 1 else f"replay of 1 run in {every}"


@pytest.mark.parametrize(
    ("sandboxed", "replay_every"),
    EIGHT_IN_FLIGHT,
    ids=[
        f"{'sandboxed' if s else 'unsandboxed'}-{replay_label(e).replace(' ', '-')}"
        for s, e in EIGHT_IN_FLIGHT
    ],
)
@pytest.mark.benchmark(group="simulation-throughput")
def test_simulation_harness_eight_in_flight(
    benchmark: Any,
    fault_harness: Any,
    throughput: Any,
    sandboxed: bool,
    replay_every: int | None,
) -> None:
    options = {} if sandboxed else {"workflow_runner": UnsandboxedWorkflowRunner()}
    shared = fault_harness(workflows=[ThreeStepWorkflow], activities=[probe], **options)
    # The same worker, through a harness replaying as this benchmark says.
    harness = faults.FaultHarness(
        shared.client,
        shared.task_queue,
        shared.log,
        loop=shared.loop,
        replay_workflows=[ThreeStepWorkflow] if replay_every else (),
        activity_names=["probe"],
        replay_every=replay_every or 1,
    )
    plan = faults.ScriptedPlan()

    def runs() -> None:
        # A steady stream: a new run starts as one ends, 8 in flight.
        outcomes = harness.run_many(ThreeStepWorkflow.run, [["x"]] * RUNS, plan=plan, concurrency=8)
        for outcome in outcomes:
            check(outcome)
        replayed = sum(o.replayed for o in outcomes)
        assert replayed == (0 if replay_every is None else -(-RUNS // replay_every))

    try:
        benchmark.pedantic(runs, rounds=5, warmup_rounds=1)
    finally:
        shared.loop.run(harness.aclose())
    name = (
        f"3-step workflow, harness + check, 8 in flight, "
        f"{'sandboxed' if sandboxed else 'unsandboxed'}, {replay_label(replay_every)}"
    )
    throughput.record(benchmark, name, RUNS, unit="runs")
    throughput.ratio(benchmark, name, "3-step workflow, bare client")
