"""Deterministic fault injection for Temporal activities.

Install :class:`FaultPlugin` on a worker (and the client that starts
workflows), both with one key (``FAULTS_PLAN_KEY``); start workflows inside
:func:`injecting` with a :class:`ScriptedPlan` or :class:`RandomPlan`. Workers
obey only plans signed with their key, for the workflow they came with.
Every fault goes through the real Temporal server: retries, server-side
timeouts and at-least-once re-execution are Temporal's own. Every decision is
a pure function of the plan and the activity call's identity, so one plan
replays a failure exactly.

This package is the fault layer a worker runs. Hypothesis strategies live in
:mod:`faults.strategies`; the test tooling (harness, embedded servers, pytest
plugin, worker command) in :mod:`faults.testing`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ._disruptions import Cancel, Restart
from ._interceptor import (
    CLOCK_MARGIN,
    INJECTED_FAILURE_TYPE,
    INJECTED_TIMEOUT_TYPE,
    KEY_HEADER,
    LOST_COMPLETION_TYPE,
    PLAN_HEADER,
    FaultClientInterceptor,
    FaultLayerWarning,
    FaultWorkerInterceptor,
    injecting,
    key_header,
    plan_header,
)
from ._log import DEFAULT_MAX_RECORDS, FaultLog, PlanRejection
from ._plan import (
    ALL_ATTEMPTS,
    DEFAULT_MAX_DELAY,
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
    Timeout,
    check_plan_against,
    longest_delay,
    max_delay,
    plan_from_json,
    plan_to_json,
    set_max_delay,
)
from ._plugin import FaultPlugin, activity_names, client_plan_key, default_log
from ._trust import PLAN_KEY_VARIABLE, SIGNATURE_METADATA, PlanKey, new_plan_key

__all__ = [
    # plans and fault shapes
    "ALL_ATTEMPTS",
    "FAULT_KINDS",
    "ActivityCall",
    "Cancel",
    "Delay",
    "Duplicate",
    "Fail",
    "Fault",
    "FaultPlan",
    "FaultPlanError",
    "FaultRule",
    "HeartbeatLoss",
    "RandomPlan",
    "Restart",
    "ScriptedFault",
    "ScriptedPlan",
    "Timeout",
    "check_plan_against",
    "plan_from_json",
    "plan_to_json",
    # bounds on what a plan may do
    "DEFAULT_MAX_DELAY",
    "longest_delay",
    "max_delay",
    "set_max_delay",
    # plugin, interceptors and headers
    "CLOCK_MARGIN",
    "FaultPlugin",
    "FaultClientInterceptor",
    "FaultLayerWarning",
    "FaultWorkerInterceptor",
    "INJECTED_FAILURE_TYPE",
    "INJECTED_TIMEOUT_TYPE",
    "KEY_HEADER",
    "LOST_COMPLETION_TYPE",
    "PLAN_HEADER",
    "activity_names",
    "injecting",
    "key_header",
    "plan_header",
    # trust: which clients' plans a worker obeys
    "PLAN_KEY_VARIABLE",
    "SIGNATURE_METADATA",
    "PlanKey",
    "client_plan_key",
    "new_plan_key",
    # the record of injections
    "DEFAULT_MAX_RECORDS",
    "FaultLog",
    "Injection",
    "PlanRejection",
    "default_log",
]

_MOVED_TO_TESTING = frozenset(
    {
        "ENVIRONMENT_KINDS",
        "TIME_SKIPPING_MODES",
        "EnvironmentKind",
        "EventLoopThread",
        "FaultHarness",
        "RunOutcome",
        "TimeSkipping",
        "connect",
        "connect_config",
        "report_to_hypothesis",
        "server_binary",
        "start_environment",
        "unique_id",
        "until_interrupted",
    }
)


def __getattr__(name: str) -> Any:
    """Names that moved to :mod:`faults.testing` still resolve here, with a warning.

    ``faults.testing`` itself is imported on first use, so ``import faults`` alone
    loads none of the test tooling.
    """
    if name == "testing":
        return importlib.import_module(".testing", __name__)
    if name in _MOVED_TO_TESTING:
        warnings.warn(
            f"faults.{name} moved to faults.testing.{name}; import it from there "
            "(the old name goes away in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(".testing", __name__), name)
    raise AttributeError(f"module 'faults' has no attribute {name!r}")
