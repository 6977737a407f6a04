"""pytest plugin: one embedded Temporal per session, workers with the fault layer.

Registered through the ``pytest11`` entry point of the installed package, so
any project that installs ``workflow-resilience`` gets these fixtures:

* ``temporal_loop``: the background event loop (:class:`faults.EventLoopThread`)
  that synchronous tests and Hypothesis rules drive Temporal through;
* ``temporal_env`` / ``temporal_client``: the session's environment and client
  (``--temporal-env``: ``time-skipping`` by default, ``dev``, ``dev-time-skipping``
  or ``external``);
* ``fault_log``: every fault injected during the session;
* ``fault_worker``: ``fault_worker(workflows=..., activities=...)`` returns the
  task queue of a running worker with the fault layer, one per distinct
  registration per session;
* ``fault_harness``: the same, wrapped in a :class:`faults.FaultHarness`;
* ``temporal_dev_env`` / ``dev_fault_harness``: a full dev server, for the few
  tests that read what the time-skipping server does not record;
* ``temporal_manual_clock_env`` / ``manual_clock_fault_harness``: a second
  time-skipping server whose clock moves only through ``env.sleep()``;
* ``fresh_server_fault_harness``: like ``fault_harness``, on a time-skipping
  server started for the one test, for measurements that must not depend on
  what the session ran before them;
* ``fault_explorer``: :func:`faults.testing.explore` with the budget of
  ``--faults-explore-budget`` and a progress line on the terminal.

On the session's time-skipping server overlapping result waits share one
unlock of its clock (see :data:`faults.TimeSkipping`): any number may run at once.

After the run a summary says what was injected, by kind and activity. The
module does no work at import time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.testing import WorkflowEnvironment

    from .. import FaultLog
    from . import EventLoopThread, Exploration, FaultHarness

_LOG_KEY = pytest.StashKey["FaultLog"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--temporal-*`` options."""
    from ._embedded import ENVIRONMENT_KINDS

    group = parser.getgroup("faults", "Temporal fault injection (workflow-resilience)")
    group.addoption(
        "--temporal-env",
        choices=ENVIRONMENT_KINDS,
        default=os.environ.get("FAULTS_TEMPORAL_ENV", "time-skipping"),
        help="Temporal to test against: the embedded time-skipping test server (default), "
        "the embedded dev server, the dev server with per-workflow time skipping "
        "(loopback only, even without a C compiler), or an external cluster from the Temporal "
        "environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key).",
    )
    group.addoption(
        "--temporal-address",
        default=None,
        help="host:port of an external cluster (implies --temporal-env=external).",
    )
    group.addoption(
        "--faults-explore-budget",
        type=int,
        default=None,
        metavar="N",
        help="Schedules each fault_explorer exploration runs at most "
        "(default: faults.testing.DEFAULT_BUDGET, 200).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the plugin's marker; check ``--faults-explore-budget``."""
    budget = config.getoption("--faults-explore-budget", None)
    if budget is not None and budget < 0:
        raise pytest.UsageError(
            f"--faults-explore-budget={budget} is negative; pass the most schedules an "
            "exploration may run, such as --faults-explore-budget=500"
        )
    config.addinivalue_line(
        "markers", "temporal_env(kind): run only against the given --temporal-env kind"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked for another environment kind."""
    kind = _kind(config)
    for item in items:
        marker = item.get_closest_marker("temporal_env")
        if marker and kind not in marker.args:
            item.add_marker(pytest.mark.skip(reason=f"needs --temporal-env in {marker.args}"))


def _kind(config: pytest.Config) -> str:
    if config.getoption("--temporal-address"):
        return "external"
    return str(config.getoption("--temporal-env"))


@pytest.fixture(scope="session")
def temporal_loop() -> Iterator[EventLoopThread]:
    """The background event loop every Temporal object of the session lives on."""
    from . import EventLoopThread

    loop = EventLoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def fault_log(request: pytest.FixtureRequest) -> FaultLog:
    """Every fault injected during the session."""
    from .. import FaultLog

    log = FaultLog()
    request.config.stash[_LOG_KEY] = log
    return log


def _start_env(
    loop: EventLoopThread,
    kind: str,
    log: FaultLog,
    address: str | None,
    time_skipping: str = "on-result",
) -> Any:
    from .. import FaultPlugin
    from . import start_environment

    return loop.run(
        start_environment(
            kind,  # type: ignore[arg-type]
            plugins=[FaultPlugin(log=log)],
            address=address,
            time_skipping=time_skipping,  # type: ignore[arg-type]
        ),
        timeout=120,
    )


@pytest.fixture(scope="session")
def temporal_env(
    request: pytest.FixtureRequest, temporal_loop: EventLoopThread, fault_log: FaultLog
) -> Iterator[WorkflowEnvironment]:
    """The session's Temporal environment; its client carries the fault plugin."""
    env = _start_env(
        temporal_loop,
        _kind(request.config),
        fault_log,
        request.config.getoption("--temporal-address"),
    )
    yield env
    temporal_loop.run(env.shutdown(), timeout=60)


@pytest.fixture(scope="session")
def temporal_dev_env(
    request: pytest.FixtureRequest, temporal_loop: EventLoopThread, fault_log: FaultLog
) -> Iterator[WorkflowEnvironment]:
    """A full Temporal server, for tests that read what only a full server records.

    The Java time-skipping server records attempt numbers in histories but not,
    for instance, an attempt's last failure. This is the session environment
    when it is already a dev server or an external cluster; otherwise an
    embedded dev server started once, on first use.
    """
    if _kind(request.config) != "time-skipping":
        yield request.getfixturevalue("temporal_env")
        return
    env = _start_env(temporal_loop, "dev", fault_log, None)
    yield env
    temporal_loop.run(env.shutdown(), timeout=60)


@pytest.fixture(scope="session")
def temporal_manual_clock_env(
    request: pytest.FixtureRequest, temporal_loop: EventLoopThread, fault_log: FaultLog
) -> Iterator[WorkflowEnvironment]:
    """A time-skipping server whose one clock moves only through ``env.sleep()``.

    For tests of long-lived workflows (entities) whose timers must not fire
    until the test says so. Started once, on first use; tests that use it are
    skipped unless ``--temporal-env`` is ``time-skipping``.
    """
    if _kind(request.config) != "time-skipping":
        pytest.skip("a manual clock needs --temporal-env=time-skipping")
    env = _start_env(temporal_loop, "time-skipping", fault_log, None, "manual")
    yield env
    temporal_loop.run(env.shutdown(), timeout=60)


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the session's environment, with the fault plugin installed."""
    return temporal_env.client


ACTIVITY_THREADS = 64
"""Threads the plugin's workers share for synchronous activities.

A worker that runs more synchronous activities at once than this queues the rest on
the threads, with their start-to-close timeouts running: give such workers
``max_concurrent_activities`` of at most this.
"""


class _WorkerPool:
    """Workers on one client, one per distinct registration, stopped at session end."""

    def __init__(self, loop: EventLoopThread, client: Client, log: FaultLog) -> None:
        import concurrent.futures

        self.loop = loop
        self.client = client
        self.log = log
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=ACTIVITY_THREADS)
        self.workers: dict[tuple[Any, ...], tuple[Any, str]] = {}
        self.harnesses: dict[tuple[Any, ...], FaultHarness] = {}

    def task_queue(
        self,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        **options: Any,
    ) -> str:
        from temporalio.worker import Worker

        from . import unique_id

        key = self._key(workflows, activities, options)
        if key not in self.workers:
            task_queue = unique_id("tq")

            async def _start() -> Worker:
                worker = Worker(
                    self.client,
                    task_queue=task_queue,
                    workflows=list(workflows),
                    activities=list(activities),
                    activity_executor=self.executor,
                    **options,
                )
                await worker.__aenter__()
                return worker

            self.workers[key] = (self.loop.run(_start(), timeout=60), task_queue)
        return self.workers[key][1]

    @staticmethod
    def _key(
        workflows: Sequence[type], activities: Sequence[Callable[..., Any]], options: dict[str, Any]
    ) -> tuple[Any, ...]:
        # Option values may be unhashable (lists): their repr names the registration.
        opts = tuple(sorted((k, repr(v)) for k, v in options.items()))
        return (tuple(workflows), tuple(activities), opts)

    def harness(
        self,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        **options: Any,
    ) -> FaultHarness:
        from .. import activity_names
        from . import FaultHarness

        key = self._key(workflows, activities, options)
        if key in self.harnesses:
            return self.harnesses[key]
        task_queue = self.task_queue(workflows, activities, **options)
        harness = FaultHarness(
            self.client,
            task_queue,
            self.log,
            loop=self.loop,
            replay_workflows=workflows,
            activity_names=activity_names(activities),
        )
        self.harnesses[key] = harness
        return harness

    def close(self) -> None:
        async def _stop() -> None:
            for harness in self.harnesses.values():
                await harness.aclose()
            for worker, _ in self.workers.values():
                await worker.__aexit__(None, None, None)

        self.loop.run(_stop(), timeout=120)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _pool(loop: EventLoopThread, env: WorkflowEnvironment, log: FaultLog) -> Iterator[_WorkerPool]:
    pool = _WorkerPool(loop, env.client, log)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def _faults_pool(
    temporal_loop: EventLoopThread, temporal_env: WorkflowEnvironment, fault_log: FaultLog
) -> Iterator[_WorkerPool]:
    yield from _pool(temporal_loop, temporal_env, fault_log)


@pytest.fixture(scope="session")
def _faults_dev_pool(
    temporal_loop: EventLoopThread, temporal_dev_env: WorkflowEnvironment, fault_log: FaultLog
) -> Iterator[_WorkerPool]:
    yield from _pool(temporal_loop, temporal_dev_env, fault_log)


@pytest.fixture(scope="session")
def _faults_manual_clock_pool(
    temporal_loop: EventLoopThread,
    temporal_manual_clock_env: WorkflowEnvironment,
    fault_log: FaultLog,
) -> Iterator[_WorkerPool]:
    yield from _pool(temporal_loop, temporal_manual_clock_env, fault_log)


WorkerFactory = Callable[..., str]
"""``fault_worker(workflows=(), activities=(), **worker_options) -> task queue``."""

HarnessFactory = Callable[..., "FaultHarness"]
"""``fault_harness(workflows=(), activities=(), **worker_options) -> FaultHarness``."""


@pytest.fixture(scope="session")
def fault_worker(_faults_pool: _WorkerPool) -> WorkerFactory:
    """Start a worker with the fault layer (once per registration); returns its task queue."""
    return _faults_pool.task_queue


@pytest.fixture(scope="session")
def fault_harness(_faults_pool: _WorkerPool) -> HarnessFactory:
    """A :class:`faults.FaultHarness` on a session worker for the given registration.

    Every run's history is replayed against the registered workflow classes.
    """
    return _faults_pool.harness


@pytest.fixture
def fresh_server_fault_harness(
    temporal_loop: EventLoopThread, fault_log: FaultLog
) -> Iterator[HarnessFactory]:
    """Like ``fault_harness``, on a time-skipping server started for this test alone.

    The Java test server slows as it serves runs: it records every lock and
    unlock of its clock (each activity and workflow task takes one) in a list it
    never trims, and walks that list each time a timer fires. A rate measured
    on the session's server therefore depends on how many runs came before it;
    one measured here does not. Costs a server start (~0.1 s) per test.
    """
    env = _start_env(temporal_loop, "time-skipping", fault_log, None)
    try:
        for pool in _pool(temporal_loop, env, fault_log):  # closes the pool after the test
            yield pool.harness
    finally:
        temporal_loop.run(env.shutdown(), timeout=60)


@pytest.fixture(scope="session")
def dev_fault_harness(_faults_dev_pool: _WorkerPool) -> HarnessFactory:
    """Like ``fault_harness``, on ``temporal_dev_env`` (a full server)."""
    return _faults_dev_pool.harness


@pytest.fixture(scope="session")
def manual_clock_fault_harness(_faults_manual_clock_pool: _WorkerPool) -> HarnessFactory:
    """Like ``fault_harness``, on ``temporal_manual_clock_env`` (time moves by ``sleep``)."""
    return _faults_manual_clock_pool.harness


ExplorerFactory = Callable[..., "Exploration"]
"""``fault_explorer(harness, workflow, *args, check=..., **explore_options) -> Exploration``."""


@pytest.fixture
def fault_explorer(request: pytest.FixtureRequest) -> ExplorerFactory:
    """:func:`faults.testing.explore`, with the budget of ``--faults-explore-budget``.

    Progress goes to the terminal: a line when the exploration moves from
    single faults to pairs or to shrinking, every tenth run, and at a
    violation. A ``budget=`` or ``progress=`` passed in the call wins.
    """
    from ._explore import DEFAULT_BUDGET, Progress, explore

    option = request.config.getoption("--faults-explore-budget")
    budget = DEFAULT_BUDGET if option is None else int(option)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    last_phase = [""]

    def progress(p: Progress) -> None:
        if reporter is None:
            return
        if p.phase != last_phase[0] or p.violated or p.run % 10 == 0:
            last_phase[0] = p.phase
            reporter.write_line(f"{request.node.name}: {p.describe()}")

    def run(harness: FaultHarness, workflow: Any, *args: Any, **options: Any) -> Exploration:
        options.setdefault("budget", budget)
        options.setdefault("progress", progress)
        return explore(harness, workflow, *args, **options)

    return run


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say what the fault layer injected during the session."""
    log = config.stash.get(_LOG_KEY, None)
    if log is None:
        return
    terminalreporter.section("faults injected")
    terminalreporter.write_line(log.summary())
