"""Search power: how often, how fast and how small the fault search finds planted bugs.

Every broken variant under ``simulations/`` breaks one invariant. For each, and for
each of ``--search-seeds`` seeds (default 20), Hypothesis searches the variant's
unchanged property at the ``ci`` budget (200 examples) with that seed: the row
records how many seeds caught it, the median examples and seconds to the first
violation, and the largest shrunk plan (shrinking stops once a violating case has at
most one entry, or 150 runs after the catch: the size is an upper bound). The targets
(every variant caught by every seed, shrunk to at most 2 entries) are read from the
results, not asserted: a seed that misses is a measurement, not a flaky test.
Systematic exploration (every single fault at every call, then pairs) runs once per
saga variant, with no randomness. Everything runs on the session's time-skipping
server, which the plugin replaces when a run leaves its clock held (cancellations and
timeouts do): on a server of a test's own, every later timeout would wait its full
10 s in real time.

Run with ``pytest benchmarks/test_search_power_bench.py --benchmark-only``; the rows
go to ``benchmarks/results/search_power.json`` (rendered by ``python -m
benchmarks.report``). With ``--benchmark-disable`` (CI's smoke run) one seed per
variant runs, with 5 examples and 5 shrink runs (10 schedules per exploration), and
nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis.errors import NoSuchExample

from faults.testing import ALL_SHAPES, DEFAULT_SHAPES, RunOutcome, explore, unique_id
from patterns.fanout import FanOutActivities, FanOutBatchWorkflow, FanOutSegmentWorkflow
from patterns.saga import Order, OrderServices, SagaSettings
from patterns.saga._invariants import observe_run, order_on_own_skus, order_violations
from simulations._search import catch
from simulations.fanin_model import Scenario, check_fan_in, scenarios
from simulations.fanin_variants import (
    LossyBatchWorkflow,
    LossySegmentWorkflow,
    ValueKeyedActivities,
)
from simulations.saga_cases import run_case, saga_cases, saga_harness
from simulations.test_saga_properties import DRAWN_FROM, SHRINK_RUNS
from simulations.test_saga_properties import VARIANTS as SAGA_VARIANTS

RESULTS = Path(__file__).parent / "results" / "search_power.json"
BUDGET = 200
"""Examples per search: the ``ci`` profile's budget."""
SMOKE_EXAMPLES = 5
SMOKE_SHRINK_RUNS = 5
SMOKE_SCHEDULES = 10
"""Examples and shrink runs per search, and schedules per exploration, in a smoke run
(``--benchmark-disable``), which writes nothing: it shows the searches run, not how well."""

each_saga_variant = pytest.mark.parametrize(
    ("prop", "workflow", "activities"),
    SAGA_VARIANTS,
    ids=[f"{w.__name__}-{a.__name__}" for _, w, a in SAGA_VARIANTS],
)
"""Every broken saga of the simulations, with the invariant it breaks."""

INPUT_BUGS = {"ValidatesLateSaga"}
"""Variants only an input exposes (an invalid order), which no fault schedule on the valid
orders an exploration runs can reach: explored by the random search alone."""

each_explorable_saga_variant = pytest.mark.parametrize(
    ("prop", "workflow", "activities"),
    [v for v in SAGA_VARIANTS if v[1].__name__ not in INPUT_BUGS],
    ids=[f"{w.__name__}-{a.__name__}" for _, w, a in SAGA_VARIANTS if w.__name__ not in INPUT_BUGS],
)
"""The broken sagas that a fault schedule exposes."""


@dataclass
class Search:
    """One search's measurements."""

    caught: bool = False
    examples: int | None = None
    seconds: float | None = None
    shrunk_entries: int | None = None


def search(
    strategy: Any,
    violates: Callable[[Any], bool],
    seed: int,
    entries: Callable[[Any], int],
    *,
    smoke: bool,
    same: Callable[[Any], object] | None = None,
) -> Search:
    """Hypothesis's search from ``seed`` for a violating example in :data:`BUDGET` examples.

    The simulations' :func:`~simulations._search.catch`, seeded; ``entries`` counts a
    case's plan entries. Shrinking stops :data:`SHRINK_RUNS` runs after the first
    violation, or as soon as a violating case has at most one entry: the reported size is
    an upper bound, and the target (at most 2) is met either way.
    """
    try:
        caught = catch(
            strategy,
            violates,
            shrink_runs=SMOKE_SHRINK_RUNS if smoke else SHRINK_RUNS,
            max_examples=SMOKE_EXAMPLES if smoke else BUDGET,
            seed=seed,
            small_enough=lambda case: entries(case) <= 1,
            same=same,
        )
    except NoSuchExample:
        return Search()
    return Search(True, caught.caught_at, caught.seconds_to_catch, entries(caught.shrunk))


def machine_info() -> dict[str, Any]:
    """This machine, in the shape of pytest-benchmark's ``machine_info``."""
    import cpuinfo  # pytest-benchmark's dependency

    return {
        "cpu": {"brand_raw": cpuinfo.get_cpu_info().get("brand_raw"), "count": os.cpu_count()},
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
    }


def _commit() -> str:
    """The short id of the checked-out commit, ``+changes`` if the tree differs from it."""
    root = Path(__file__).parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            # The results file this run writes is not a change to what it measures.
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return ""
    return f"{sha}+changes" if sha and dirty else sha


@dataclass
class Rows:
    """The rows of ``search_power.json``, rewritten after each row when benchmarks are on.

    Written as they come, so an interrupted run keeps what it measured. A row replaces
    the file's row for the same planted bug and search; the file's other rows stay, so a
    ``-k`` selection updates its own rows. Each row names the commit and date it ran on.
    """

    command: str
    write: bool
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, target: str, kind: str, searches: list[Search], **extra: Any) -> None:
        caught = [s for s in searches if s.caught]
        row: dict[str, Any] = {
            "target": target,
            "search": kind,
            "runs": len(searches),
            "found": len(caught),
            "commit": _commit(),
            "date": datetime.now(timezone.utc).date().isoformat(),
            **extra,
        }
        if caught:
            row["median_examples"] = statistics.median(s.examples or 0 for s in caught)
            row["median_seconds"] = round(statistics.median(s.seconds or 0 for s in caught), 2)
            row["max_shrunk_entries"] = max(s.shrunk_entries or 0 for s in caught)
        self.rows.append(row)
        if self.write:
            self.save()

    def save(self) -> None:
        new = {(r["target"], r["search"]): r for r in self.rows}
        kept: list[dict[str, Any]] = []
        if RESULTS.exists():
            for row in json.loads(RESULTS.read_text(encoding="utf-8")).get("results", []):
                kept.append(new.pop((row["target"], row["search"]), row))
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "datetime": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine_info": machine_info(),
                    "command": self.command,
                    "budget": BUDGET,
                    "results": [*kept, *new.values()],
                },
                indent=2,
            )
            + "\n"
        )


@pytest.fixture(scope="module")
def rows(request: pytest.FixtureRequest) -> Rows:
    return Rows(
        command="pytest benchmarks/test_search_power_bench.py --benchmark-only "
        f"--search-seeds {request.config.getoption('--search-seeds')}",
        write=not request.config.getoption("benchmark_disable"),
    )


def seeds(request: pytest.FixtureRequest) -> range:
    if request.config.getoption("benchmark_disable"):
        return range(1)
    return range(int(request.config.getoption("--search-seeds")))


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> OrderServices:
    return OrderServices(tmp_path_factory.mktemp("search-power") / "services.sqlite")


def _saga_check(
    harness: Any, services: OrderServices, before: dict[str, dict[str, int]]
) -> Callable[[RunOutcome[Any]], dict[str, Any]]:
    """The saga invariants as an exploration check, read from the database and the history."""

    def check(outcome: RunOutcome[Any]) -> dict[str, Any]:
        order: Order = outcome.args[0]
        run = harness.loop.run(
            observe_run(harness.client, outcome.workflow_id, answers=outcome.answers)
        )
        return order_violations(services, order, run, before[order.order_id])

    return check


@each_explorable_saga_variant
def test_systematic_exploration_of_each_saga_variant(
    benchmark: Any,
    fault_harness: Any,
    services: OrderServices,
    rows: Rows,
    prop: str,
    workflow: type,
    activities: type,
) -> None:
    broken = saga_harness(fault_harness, workflow, services, activities)
    before: dict[str, dict[str, int]] = {}
    counter = iter(range(10**9))

    def fresh_order() -> list[Any]:
        n = next(counter)
        order, stock = order_on_own_skus(
            services,
            1000 + n,
            order_id=unique_id(f"explore-{workflow.__name__}"),
            sku_prefix=unique_id("X"),
        )
        before[order.order_id] = stock
        return [order, SagaSettings(step_attempts=2, compensation_attempts=2)]

    started = time.perf_counter()
    exploration = benchmark.pedantic(
        explore,
        args=(broken, workflow.run),
        kwargs={
            "check": _saga_check(broken, services, before),
            "fresh_args": fresh_order,
            # The invariants cover cancelled orders too; a smoke run keeps to the cheaper shapes.
            "shapes": DEFAULT_SHAPES if benchmark.disabled else ALL_SHAPES,
            "budget": SMOKE_SCHEDULES if benchmark.disabled else 400,
        },
        rounds=1,
        iterations=1,
    )
    measured = Search(caught=exploration.violation is not None)
    if exploration.violation is not None:
        measured.examples = exploration.schedules_run
        measured.seconds = time.perf_counter() - started
        measured.shrunk_entries = len(exploration.violation.shrunk.faults)
    rows.add(
        f"saga {workflow.__name__}/{activities.__name__}: {prop}",
        "systematic",
        [measured],
        coverage=exploration.coverage(),
    )
    print(exploration.describe())


@each_saga_variant
def test_random_search_catches_each_saga_variant(
    benchmark: Any,
    request: pytest.FixtureRequest,
    fault_harness: Any,
    services: OrderServices,
    rows: Rows,
    prop: str,
    workflow: type,
    activities: type,
) -> None:
    broken = saga_harness(fault_harness, workflow, services, activities)
    searches: list[Search] = []

    def searches_from_every_seed() -> None:
        for seed in seeds(request):
            searches.append(
                search(
                    DRAWN_FROM.get(workflow, saga_cases),
                    lambda case: prop in run_case(broken, workflow, services, case),
                    seed,
                    lambda case: len(case.plan.faults),
                    smoke=benchmark.disabled,
                )
            )

    benchmark.pedantic(searches_from_every_seed, rounds=1, iterations=1)
    rows.add(f"saga {workflow.__name__}/{activities.__name__}: {prop}", "hypothesis", searches)


def _without_batch_id(scenario: Scenario) -> Scenario:
    """The scenario with its batch id (a fresh one each time it is drawn) left out."""
    return dataclasses.replace(
        scenario, request=dataclasses.replace(scenario.request, batch_id="any")
    )


def _fanin_harness(fault_harness: Any, name: str) -> tuple[Any, Any]:
    """A harness serving the fan-in variant ``name``, and the workflow to run on it."""
    if name == "value-keyed storage":
        acts: FanOutActivities = ValueKeyedActivities()
        workflows: list[type] = []
        workflow: Any = FanOutBatchWorkflow
    else:  # "lossy fan-in"
        acts = FanOutActivities()
        workflows = [LossyBatchWorkflow, LossySegmentWorkflow]
        workflow = LossyBatchWorkflow
    harness = fault_harness(
        workflows=[FanOutBatchWorkflow, FanOutSegmentWorkflow, *workflows],
        activities=[acts.process_chunk, acts.seal_batch],
    )
    return harness, workflow


@pytest.mark.parametrize("name", ["value-keyed storage", "lossy fan-in"])
def test_random_search_catches_each_fan_in_variant(
    benchmark: Any,
    request: pytest.FixtureRequest,
    fault_harness: Any,
    tmp_path: Path,
    rows: Rows,
    name: str,
) -> None:
    harness, workflow = _fanin_harness(fault_harness, name)

    def violates(scenario: Scenario) -> bool:
        try:
            check_fan_in(harness, scenario, workflow.run)
        except AssertionError:
            return True
        return False

    searches: list[Search] = []

    def searches_from_every_seed() -> None:
        for seed in seeds(request):
            searches.append(
                search(
                    scenarios(str(tmp_path / f"fanin-{seed}.sqlite3"), policies=("collect",)),
                    violates,
                    seed,
                    lambda scenario: len(scenario.plan.faults),
                    smoke=benchmark.disabled,
                    same=_without_batch_id,
                )
            )

    benchmark.pedantic(searches_from_every_seed, rounds=1, iterations=1)
    rows.add(f"fan-in {name}", "hypothesis", searches)
