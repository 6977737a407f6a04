"""Deterministic fault injection for Temporal activities.

Install :class:`FaultPlugin` on a worker (and the client that starts
workflows); start workflows inside :func:`injecting` with a
:class:`ScriptedPlan` or :class:`RandomPlan`. Every fault goes through the real
Temporal server: retries, server-side timeouts and at-least-once re-execution
are Temporal's own. Every decision is a pure function of the plan and the
activity call's identity, so one plan replays a failure exactly.

Hypothesis strategies live in :mod:`faults.strategies`; the pytest plugin in
:mod:`faults.pytest_plugin`.
"""

from ._bridge import EventLoopThread
from ._embedded import (
    ENVIRONMENT_KINDS,
    TIME_SKIPPING_MODES,
    EnvironmentKind,
    TimeSkipping,
    connect,
    connect_config,
    server_binary,
    start_environment,
)
from ._harness import FaultHarness, RunOutcome, report_to_hypothesis, unique_id
from ._interceptor import (
    INJECTED_FAILURE_TYPE,
    KEY_HEADER,
    LOST_COMPLETION_TYPE,
    PLAN_HEADER,
    FaultClientInterceptor,
    FaultWorkerInterceptor,
    injecting,
)
from ._log import FaultLog
from ._plan import (
    FAULT_KINDS,
    ActivityCall,
    Delay,
    Duplicate,
    Fail,
    Fault,
    FaultPlan,
    FaultPlanError,
    FaultRule,
    HeartbeatLoss,
    Injection,
    RandomPlan,
    ScriptedFault,
    ScriptedPlan,
    check_plan_against,
    plan_from_json,
    plan_to_json,
)
from ._plugin import FaultPlugin, activity_names, default_log
from ._signals import until_interrupted

__all__ = [
    "ENVIRONMENT_KINDS",
    "FAULT_KINDS",
    "INJECTED_FAILURE_TYPE",
    "KEY_HEADER",
    "LOST_COMPLETION_TYPE",
    "PLAN_HEADER",
    "TIME_SKIPPING_MODES",
    "ActivityCall",
    "Delay",
    "Duplicate",
    "EnvironmentKind",
    "EventLoopThread",
    "Fail",
    "Fault",
    "FaultClientInterceptor",
    "FaultHarness",
    "FaultLog",
    "FaultPlan",
    "FaultPlanError",
    "FaultPlugin",
    "FaultRule",
    "FaultWorkerInterceptor",
    "HeartbeatLoss",
    "Injection",
    "RandomPlan",
    "RunOutcome",
    "ScriptedFault",
    "ScriptedPlan",
    "TimeSkipping",
    "activity_names",
    "check_plan_against",
    "connect",
    "connect_config",
    "default_log",
    "injecting",
    "plan_from_json",
    "plan_to_json",
    "report_to_hypothesis",
    "server_binary",
    "start_environment",
    "unique_id",
    "until_interrupted",
]
