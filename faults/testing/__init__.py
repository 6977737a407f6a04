"""Test tooling for the fault layer: harness, embedded servers, pytest plugin, worker command.

The fault layer itself (plans, fault shapes, plugin, log) lives in :mod:`faults`;
this package is what tests and simulations use to drive it, kept apart as
``temporalio.testing`` is from ``temporalio``:

* running workflows under plans: :class:`FaultHarness`, :class:`RunOutcome`,
  :func:`report_to_hypothesis`, :func:`unique_id`, and :class:`StuckRun` (a run
  whose workflow task keeps failing, found in seconds: :func:`failing_task`,
  :func:`stuck_failures`);
* servers: :func:`start_environment` (embedded test or dev server, or an
  external cluster), :func:`connect`, :func:`connect_config`,
  :func:`server_binary`, :data:`ENVIRONMENT_KINDS`, :data:`TIME_SKIPPING_MODES`;
* the time-skipping test server's clock: :func:`share_clock_unlocks` (overlapping
  result waits share one unlock), :func:`shared_clock_unlock` and its
  :meth:`SharedClockUnlock.probe` (:class:`ClockProbe`, :data:`SKIP_RATIO`),
  :func:`may_hold_the_clock` (a history that leaves the clock held),
  :func:`open_workflows` (what keeps the plugin from replacing a server) and the
  plugin's :class:`RotationReport`;
* driving asyncio from synchronous tests: :class:`EventLoopThread`,
  :func:`until_interrupted`;
* systematic exploration of fault schedules: :func:`explore` (every
  single-fault schedule at every activity call, then pairs, up to a budget),
  :func:`observe_calls`, :func:`plans_for_calls` (Hypothesis plans aimed at the
  calls a run makes), :func:`assert_holds`, :func:`shrink`, the
  :class:`Shape` s (:data:`FAIL`, :data:`DUPLICATE`, :data:`OUTAGE`, :data:`OUTAGE_AFTER_BODY`,
  :data:`TIMEOUT`, :data:`TIMEOUT_AFTER_BODY`, :data:`RESTART`,
  :data:`CANCEL`, :data:`CANCEL_AFTER_BODY`, :data:`DELAY_AFTER`) and the
  report types;
* the pytest plugin (:mod:`faults.testing.pytest_plugin`, registered through the
  package's ``pytest11`` entry point) and the worker command
  (``python -m faults worker``, :mod:`faults.testing.worker`), which
  :func:`start_worker_process` starts as a :class:`WorkerProcess`.
"""

from ._bridge import EventLoopThread
from ._embedded import (
    ENVIRONMENT_KINDS,
    TIME_SKIPPING_MODES,
    ClockProbe,
    EnvironmentKind,
    SharedClockUnlock,
    TimeSkipping,
    connect,
    connect_config,
    server_binary,
    share_clock_unlocks,
    shared_clock_unlock,
    start_environment,
)
from ._explore import (
    ALL_SHAPES,
    CANCEL,
    CANCEL_AFTER_BODY,
    DEFAULT_BUDGET,
    DEFAULT_SHAPES,
    DELAY_AFTER,
    DUPLICATE,
    FAIL,
    OUTAGE,
    OUTAGE_AFTER_BODY,
    RESTART,
    TIMEOUT,
    TIMEOUT_AFTER_BODY,
    Call,
    Check,
    Exploration,
    Point,
    Progress,
    Schedule,
    Shape,
    Violation,
    assert_holds,
    delay_after,
    explore,
    observe_calls,
    plans_for_calls,
    reproduction,
    shrink,
)
from ._harness import FaultHarness, RunOutcome, ask_query, report_to_hypothesis, unique_id
from ._loopback import (
    ALL_INTERFACES_VARIABLE,
    LoopbackUnavailable,
    c_compiler,
    loopback_launcher,
)
from ._process import WORKER_READY, WorkerProcess, WorkerProcessError, start_worker_process
from ._rotation import SKIP_RATIO, RotationReport, may_hold_the_clock, open_workflows
from ._signals import until_interrupted
from ._stuck import StuckRun, failing_task, stuck_failures

__all__ = [
    # running workflows under plans
    "FaultHarness",
    "RunOutcome",
    "StuckRun",
    "ask_query",
    "failing_task",
    "stuck_failures",
    "report_to_hypothesis",
    "unique_id",
    # systematic exploration
    "ALL_SHAPES",
    "CANCEL",
    "CANCEL_AFTER_BODY",
    "DEFAULT_BUDGET",
    "DEFAULT_SHAPES",
    "DELAY_AFTER",
    "DUPLICATE",
    "FAIL",
    "OUTAGE",
    "OUTAGE_AFTER_BODY",
    "RESTART",
    "TIMEOUT",
    "TIMEOUT_AFTER_BODY",
    "Call",
    "Check",
    "Exploration",
    "Point",
    "Progress",
    "Schedule",
    "Shape",
    "Violation",
    "assert_holds",
    "delay_after",
    "explore",
    "observe_calls",
    "plans_for_calls",
    "reproduction",
    "shrink",
    # servers
    "ALL_INTERFACES_VARIABLE",
    "ENVIRONMENT_KINDS",
    "LoopbackUnavailable",
    "TIME_SKIPPING_MODES",
    "EnvironmentKind",
    "TimeSkipping",
    "c_compiler",
    "connect",
    "connect_config",
    "loopback_launcher",
    "server_binary",
    "start_environment",
    # the time-skipping test server's clock
    "SKIP_RATIO",
    "ClockProbe",
    "RotationReport",
    "SharedClockUnlock",
    "may_hold_the_clock",
    "open_workflows",
    "share_clock_unlocks",
    "shared_clock_unlock",
    # worker processes
    "WORKER_READY",
    "WorkerProcess",
    "WorkerProcessError",
    "start_worker_process",
    # asyncio from synchronous tests
    "EventLoopThread",
    "until_interrupted",
]
