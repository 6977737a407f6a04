"""Durable circuit breaker: one entity workflow per breaker, shared by every caller.

* :class:`BreakerConfig` - thresholds, window and durations, validated at construction;
* :class:`BreakerMachine` - the pure state machine both variants run;
* :class:`CircuitBreakerEntity` / :class:`BreakerClient` - the durable entity and its client;
* :class:`EntityBreaker` - guarded calls from workflow code through the entity;
* :class:`LocalBreaker` - the lightweight breaker kept inside one workflow;
* :class:`Downstream` - a flaky service (state in SQLite) to protect.
"""

from ._caller import (
    CallOutcome,
    CallRequest,
    DirectCallWorkflow,
    GuardedCallWorkflow,
    LocalBreakerLoopWorkflow,
    LoopRequest,
    LoopResult,
)
from ._client import (
    BREAKER_ACTIVITIES,
    BreakerClient,
    EntityAcquire,
    EntityRecord,
    breaker_acquire,
    breaker_record,
)
from ._config import BreakerConfig, BreakerConfigError
from ._downstream import UNAVAILABLE_TYPE, Downstream, DownstreamRequest
from ._entity import (
    AcquireResult,
    CircuitBreakerEntity,
    CircuitBreakerWorkflow,
    EntityStart,
    RecordRequest,
    entity_id,
)
from ._guard import BREAKER_OPEN_TYPE, BreakerOpenError, EntityBreaker, GuardedBreaker, LocalBreaker
from ._machine import (
    BreakerMachine,
    BreakerState,
    BreakerView,
    Decision,
    Permit,
    Rejected,
    State,
    Transition,
)

__all__ = [
    "BREAKER_ACTIVITIES",
    "BREAKER_OPEN_TYPE",
    "UNAVAILABLE_TYPE",
    "AcquireResult",
    "BreakerClient",
    "BreakerConfig",
    "BreakerConfigError",
    "BreakerMachine",
    "BreakerOpenError",
    "BreakerState",
    "BreakerView",
    "CallOutcome",
    "CallRequest",
    "CircuitBreakerEntity",
    "CircuitBreakerWorkflow",
    "Decision",
    "DirectCallWorkflow",
    "Downstream",
    "DownstreamRequest",
    "EntityAcquire",
    "EntityBreaker",
    "EntityRecord",
    "EntityStart",
    "GuardedBreaker",
    "GuardedCallWorkflow",
    "LocalBreaker",
    "LocalBreakerLoopWorkflow",
    "LoopRequest",
    "LoopResult",
    "Permit",
    "RecordRequest",
    "Rejected",
    "State",
    "Transition",
    "breaker_acquire",
    "breaker_record",
    "entity_id",
]
