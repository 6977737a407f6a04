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
* ``temporal_dev_env`` / ``dev_fault_harness`` / ``dev_fault_worker``: a full dev
  server, for tests that read what the time-skipping server does not record, or
  drive workflows through signals and updates on the wall clock;
* ``isolated_temporal_env`` / ``isolated_fault_worker``: a server of the test's
  own (of the ``--temporal-env`` kind), for workflows driven by signals,
  updates or cancellation, so nothing they do to a clock slows a later test;
* ``temporal_manual_clock_env`` / ``manual_clock_fault_harness``: a second
  time-skipping server whose clock moves only through ``env.sleep()``;
* ``fresh_server_fault_harness``: like ``fault_harness``, on a time-skipping
  server started for the one test, for measurements that must not depend on
  what the session ran before them;
* ``fault_explorer``: :func:`faults.testing.explore` with the budget of
  ``--faults-explore-budget`` and a progress line on the terminal;
* ``temporal_rotation_report``: what replacing the session's time-skipping
  server did (:class:`faults.testing.RotationReport`).

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
    from temporalio.worker import Worker

    from .. import FaultLog
    from . import EventLoopThread, Exploration, FaultHarness
    from ._rotation import RotationReport, ServerRotation

_LOG_KEY = pytest.StashKey["FaultLog"]()
_ROTATION_KEY = pytest.StashKey[tuple["EventLoopThread", "ServerRotation"]]()


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
        "--temporal-rotate-after",
        type=int,
        default=None,
        metavar="N",
        help="Replace the session's time-skipping test server (and restart the plugin's workers "
        "on their same task queues) after it has served N workflow runs, at the next point where "
        "nothing is in flight: the Java server slows with every run it serves. 0 replaces it only "
        "when a probe finds it no longer skips time. Default: "
        "faults.testing._rotation.DEFAULT_ROTATE_AFTER (1000).",
    )
    group.addoption(
        "--faults-explore-budget",
        type=int,
        default=None,
        metavar="N",
        help="Schedules each fault_explorer exploration runs at most "
        "(default: faults.testing.DEFAULT_BUDGET, 200).",
    )


_KEY_SET = pytest.StashKey[bool]()
PLAN_KEY_VARIABLE = "FAULTS_PLAN_KEY"
"""``faults.PLAN_KEY_VARIABLE``, named here so that configuring pytest imports no Temporal."""


def pytest_configure(config: pytest.Config) -> None:
    """Declare the plugin's marker; check ``--faults-explore-budget``; share a plan key.

    Unless ``FAULTS_PLAN_KEY`` is set already, the session sets it to a fresh
    random key, so every fault plugin of the session (clients, workers,
    ``python -m faults worker`` processes started by tests) signs and obeys
    the same plans; it is removed again when the session ends.
    """
    import secrets

    if not os.environ.get(PLAN_KEY_VARIABLE):
        os.environ[PLAN_KEY_VARIABLE] = secrets.token_hex(32)
        config.stash[_KEY_SET] = True
    budget = config.getoption("--faults-explore-budget", None)
    if budget is not None and budget < 0:
        raise pytest.UsageError(
            f"--faults-explore-budget={budget} is negative; pass the most schedules an "
            "exploration may run, such as --faults-explore-budget=500"
        )
    rotate_after = config.getoption("--temporal-rotate-after", None)
    if rotate_after is not None and rotate_after < 0:
        raise pytest.UsageError(
            f"--temporal-rotate-after={rotate_after} is negative; pass the runs a test server "
            "serves before it is replaced, such as --temporal-rotate-after=2000 (0: only when "
            "it stops skipping time)"
        )
    config.addinivalue_line(
        "markers", "temporal_env(kind): run only against the given --temporal-env kind"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the plan key the session set."""
    if config.stash.get(_KEY_SET, False):
        os.environ.pop(PLAN_KEY_VARIABLE, None)


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
    extra_plugins: Sequence[Any] = (),
) -> Any:
    from .. import FaultPlugin
    from . import start_environment

    return loop.run(
        start_environment(
            kind,  # type: ignore[arg-type]
            plugins=[FaultPlugin(log=log), *extra_plugins],
            address=address,
            time_skipping=time_skipping,  # type: ignore[arg-type]
        ),
        timeout=120,
    )


@pytest.fixture(scope="session")
def temporal_env(
    request: pytest.FixtureRequest, temporal_loop: EventLoopThread, fault_log: FaultLog
) -> Iterator[WorkflowEnvironment]:
    """The session's Temporal environment; its client carries the fault plugin.

    On the time-skipping test server the session's server is replaced by a
    fresh one after ``--temporal-rotate-after`` runs, or when a probe finds it
    no longer skips time, at a point where nothing is in flight; this object,
    its client and the plugin's task queues stay valid (see
    :mod:`faults.testing._rotation`).
    """
    kind = _kind(request.config)
    if kind != "time-skipping":
        env = _start_env(
            temporal_loop, kind, fault_log, request.config.getoption("--temporal-address")
        )
        yield env
        temporal_loop.run(env.shutdown(), timeout=60)
        return
    from . import start_environment
    from ._rotation import DEFAULT_ROTATE_AFTER, ServerRotation, WorkerWatch

    watch = WorkerWatch()
    env = _start_env(temporal_loop, kind, fault_log, None, extra_plugins=[watch])
    option = request.config.getoption("--temporal-rotate-after")
    rotation = ServerRotation(
        env,
        lambda: start_environment("time-skipping"),
        watch=watch,
        rotate_after=DEFAULT_ROTATE_AFTER if option is None else int(option),
    )
    request.config.stash[_ROTATION_KEY] = (temporal_loop, rotation)
    yield env
    temporal_loop.run(rotation.close(), timeout=120)


@pytest.fixture(scope="session")
def temporal_rotation_report(
    request: pytest.FixtureRequest, temporal_env: WorkflowEnvironment
) -> RotationReport | None:
    """What replacing the session's time-skipping test server did; ``None`` on other servers.

    The object is live: read it after the runs it should account for.
    """
    rotating = request.config.stash.get(_ROTATION_KEY, None)
    return rotating[1].report if rotating is not None else None


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
    """Workers on one client, one per registration, stopped at session end.

    A registration is its workflow classes, its activity names and its options.
    A test that builds its activity callables afresh (per example, say) gets a
    worker for the new callables, and the one it built before for the same
    registration stops: a test leaves at most one worker per registration,
    however many examples it runs. Workers that other tests built (a
    module-scoped fixture's, say) are left alone.

    When the session's server is replaced, the workers the current test module
    asked for start again at once; the others stay stopped until a workflow is
    started on their task queue (:meth:`wake`). A long suite's pool holds a
    worker for every registration any module asked for, and starting them all
    again (each start validates its workflows in the sandbox) made a replacement
    late in the suite cost about 7 s instead of 0.3 s.
    """

    def __init__(
        self,
        loop: EventLoopThread,
        client: Client,
        log: FaultLog,
        rotation: ServerRotation | None = None,
    ) -> None:
        import concurrent.futures

        self.loop = loop
        self.client = client
        self.log = log
        self.rotation = rotation
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=ACTIVITY_THREADS)
        self.workers: dict[tuple[Any, ...], tuple[Any, str]] = {}
        """Each key's worker (``None`` while stopped, until :meth:`wake`) and task queue."""
        self.modules: dict[tuple[Any, ...], str | None] = {}
        """The test module that last asked for each key's worker."""
        self._waking: Any = None
        self._key_of_queue: dict[str, tuple[Any, ...]] = {}
        """Each task queue's key in :attr:`workers`, for :meth:`wake`."""
        self.registrations: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.stopping: list[Any] = []
        self.harnesses: dict[tuple[Any, ...], FaultHarness] = {}
        self.current: dict[tuple[Any, ...], tuple[tuple[Any, ...], str | None]] = {}
        """The newest worker's key for each registration, and the test that asked for it."""
        if rotation is not None:
            rotation.add(self)

    def task_queue(
        self,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        **options: Any,
    ) -> str:
        from . import unique_id

        key = self._key(workflows, activities, options)
        self.modules[key] = _current_module
        if key not in self.workers:
            registration = self._registration(workflows, activities, options)
            newest = self.current.get(registration)
            if (
                newest is not None
                and newest[1] is not None
                and newest[1] == _current_test
                and newest[0] in self.workers
            ):
                self.loop.run(self._retire(newest[0]), timeout=60)
            self.current[registration] = (key, _current_test)
            task_queue = unique_id("tq")
            self.registrations[key] = (task_queue, tuple(workflows), tuple(activities), options)
            worker = self.loop.run(self._start(key), timeout=60)
            self.workers[key] = (worker, task_queue)
            self._key_of_queue[task_queue] = key
        return self.workers[key][1]

    async def _start(self, key: tuple[Any, ...]) -> Any:
        from temporalio.worker import Worker

        task_queue, workflows, activities, options = self.registrations[key]
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

    async def _retire(self, key: tuple[Any, ...]) -> None:
        """Stop the worker of ``key`` (in the background) and forget it and its harness."""
        import asyncio

        worker, task_queue = self.workers.pop(key)
        self._key_of_queue.pop(task_queue, None)
        self.registrations.pop(key, None)
        self.modules.pop(key, None)
        for asked in [k for k in self.harnesses if k[0] == key]:  # one per set of queries
            await self.harnesses.pop(asked).aclose()
        if worker is not None:
            self.stopping.append(asyncio.ensure_future(worker.__aexit__(None, None, None)))

    @staticmethod
    def _registration(
        workflows: Sequence[type], activities: Sequence[Callable[..., Any]], options: dict[str, Any]
    ) -> tuple[Any, ...]:
        from .._plugin import activity_names

        names = tuple(sorted(activity_names(activities)))
        unnamed = tuple(repr(a) for a in activities if not activity_names([a]))
        opts = tuple(sorted((k, repr(v)) for k, v in options.items()))
        return (tuple(workflows), names, unnamed, opts)

    def workers_running(self) -> list[Worker]:
        """The pool's workers (for :class:`faults.testing._rotation.ServerRotation`)."""
        return [worker for worker, _ in self.workers.values() if worker is not None]

    async def stop_workers(self) -> None:
        """Begin stopping every worker (their server is being replaced).

        Their shutdown goes on in the background: a worker waits for the
        activities it runs, and those of workflows that already ended may run
        on for a while; the replacements start on the new server.
        """
        import asyncio

        for key, (worker, task_queue) in list(self.workers.items()):
            if worker is not None:
                self.stopping.append(asyncio.ensure_future(worker.__aexit__(None, None, None)))
            self.workers[key] = (None, task_queue)

    async def start_workers(self) -> None:
        """Start again, on their same task queues, the workers the current module asked for.

        The others start when a workflow is next started on their task queue (:meth:`wake`).
        """
        for key, (worker, task_queue) in list(self.workers.items()):
            if worker is None and self.modules.get(key) == _current_module:
                self.workers[key] = (await self._start(key), task_queue)

    async def wake(self, task_queue: str) -> None:
        """Start the stopped worker of ``task_queue``, if the pool has one."""
        import asyncio

        key = self._key_of_queue.get(task_queue)
        if key is None or key not in self.workers or self.workers[key][0] is not None:
            return  # not the pool's queue, retired, or its worker runs: most starts end here
        if self._waking is None:
            self._waking = asyncio.Lock()
        async with self._waking:  # runs started at once on one queue start one worker
            if key in self.workers and self.workers[key][0] is None:
                self.workers[key] = (await self._start(key), task_queue)

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
        *,
        queries: Sequence[str] = (),
        **options: Any,
    ) -> FaultHarness:
        from .. import activity_names
        from . import FaultHarness

        key = self._key(workflows, activities, options)
        if (key, tuple(queries)) in self.harnesses:
            return self.harnesses[key, tuple(queries)]
        task_queue = self.task_queue(workflows, activities, **options)
        harness = FaultHarness(
            self.client,
            task_queue,
            self.log,
            loop=self.loop,
            replay_workflows=workflows,
            activity_names=activity_names(activities),
            run_hooks=self.rotation,
            queries=queries,
        )
        self.harnesses[key, tuple(queries)] = harness
        return harness

    def close(self) -> None:
        import contextlib

        async def _stop() -> None:
            for harness in self.harnesses.values():
                await harness.aclose()
            for worker, _ in self.workers.values():
                if worker is not None:
                    await worker.__aexit__(None, None, None)
            # Workers of retired servers: one whose server was shut down first may fail to stop.
            for stopping in self.stopping:
                with contextlib.suppress(Exception):
                    await stopping

        self.loop.run(_stop(), timeout=120)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _pool(
    loop: EventLoopThread,
    env: WorkflowEnvironment,
    log: FaultLog,
    rotation: ServerRotation | None = None,
) -> Iterator[_WorkerPool]:
    pool = _WorkerPool(loop, env.client, log, rotation)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def _faults_pool(
    request: pytest.FixtureRequest,
    temporal_loop: EventLoopThread,
    temporal_env: WorkflowEnvironment,
    fault_log: FaultLog,
) -> Iterator[_WorkerPool]:
    rotating = request.config.stash.get(_ROTATION_KEY, None)
    rotation = rotating[1] if rotating is not None else None
    yield from _pool(temporal_loop, temporal_env, fault_log, rotation)


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
"""``fault_harness(workflows=(), activities=(), *, queries=(), **worker_options) -> FaultHarness``
(``queries``: see :class:`~faults.testing.FaultHarness`)."""


@pytest.fixture(scope="session")
def fault_worker(_faults_pool: _WorkerPool) -> WorkerFactory:
    """Start a worker with the fault layer (once per registration); returns its task queue."""
    return _faults_pool.task_queue


@pytest.fixture(scope="session")
def dev_fault_worker(_faults_dev_pool: _WorkerPool) -> WorkerFactory:
    """Like ``fault_worker``, on ``temporal_dev_env`` (a full server, on the wall clock).

    For workflows driven by signals, updates or cancellation through
    ``temporal_dev_env.client``: nothing skips their timers while the test
    talks to them.
    """
    return _faults_dev_pool.task_queue


@pytest.fixture
def isolated_temporal_env(
    request: pytest.FixtureRequest, temporal_loop: EventLoopThread, fault_log: FaultLog
) -> Iterator[WorkflowEnvironment]:
    """A server of this test's own, of the ``--temporal-env`` kind, with the fault plugin.

    For a test whose workflows wait on signals, updates or cancellation, or leave
    runs behind: what it does to its server's clock (or to the runs it leaves
    open) cannot slow any later test. An external cluster is shared anyway.
    Costs a server start per test (~0.1 s for the test server, ~1 s for the dev
    server).
    """
    kind = _kind(request.config)
    if kind == "external":
        yield request.getfixturevalue("temporal_env")
        return
    env = _start_env(temporal_loop, kind, fault_log, None)
    try:
        yield env
    finally:
        temporal_loop.run(env.shutdown(), timeout=60)


@pytest.fixture
def isolated_fault_worker(
    temporal_loop: EventLoopThread, isolated_temporal_env: WorkflowEnvironment, fault_log: FaultLog
) -> Iterator[WorkerFactory]:
    """Like ``fault_worker``, on ``isolated_temporal_env``; its workers stop with the test."""
    for pool in _pool(temporal_loop, isolated_temporal_env, fault_log):
        yield pool.task_queue


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


_current_test: str | None = None
"""The node id of the test whose body runs now (``None`` in fixture setup and teardown).

Workers a test body builds again replace the ones it built before; workers built while
fixtures are set up (a module-scoped harness, say) are never replaced."""

_current_module: str | None = None
"""The file of the test being set up, run or torn down (its fixtures' included).

A server replacement starts again at once the workers this module asked for."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Note whose body runs, for the worker pools."""
    global _current_test
    _current_test = item.nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """The body is over: workers built from here on belong to no test."""
    global _current_test
    _current_test = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Between tests: probe the session's test server's clock, and replace the server if due."""
    global _current_module
    _current_module = item.nodeid.split("::")[0]
    rotating = item.config.stash.get(_ROTATION_KEY, None)
    if rotating is not None:
        loop, rotation = rotating
        loop.run(rotation.checkpoint(), timeout=120)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its log's counts to the controller's summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    log = session.config.stash.get(_LOG_KEY, None)
    if workeroutput is not None and log is not None:
        workeroutput["faults_counts"] = [[k, a, n] for (k, a), n in log.counts().items()]
        workeroutput["faults_rejections"] = dict(log.rejection_counts())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Under pytest-xdist, the controller adds each worker's counts to one session log."""
    output = getattr(node, "workeroutput", None) or {}
    if "faults_counts" not in output:
        return
    from .._log import FaultLog

    config = node.config
    log = config.stash.get(_LOG_KEY, None)
    if log is None:
        log = config.stash[_LOG_KEY] = FaultLog()
    log.add_counts(
        {(k, a): n for k, a, n in output["faults_counts"]}, output.get("faults_rejections")
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say what the fault layer injected, and what became of the session's test server."""
    rotating = config.stash.get(_ROTATION_KEY, None)
    if rotating is not None and (rotating[1].report.rotations or rotating[1].report.blocked):
        terminalreporter.section("temporal test server")
        terminalreporter.write_line(rotating[1].report.describe())
    log = config.stash.get(_LOG_KEY, None)
    if log is None:
        return
    terminalreporter.section("faults injected")
    terminalreporter.write_line(log.summary())
