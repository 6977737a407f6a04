"""Interceptors that carry a fault plan with its workflow and inject its faults.

* The client interceptor stamps the plan of :func:`injecting` on workflows it
  starts, as a Temporal header.
* The workflow interceptor copies that header onto every activity, local
  activity, child workflow and continue-as-new the workflow issues, so the plan
  follows its workflow to whichever worker runs the work; each activity call
  the plan may fault (every call, when the workflow carries no plan) also gets
  a key naming it.
* The activity interceptor decides, from the plan and the attempt's identity,
  whether to inject a fault, records it, and makes it happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import re
import time
import weakref
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import temporalio.activity
import temporalio.client
import temporalio.exceptions
import temporalio.service
import temporalio.workflow
from google.protobuf.duration_pb2 import Duration
from google.protobuf.empty_pb2 import Empty
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ContinueAsNewInput,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from ._disrupt import arm_restarts, disrupt
from ._disruptions import Cancel, Restart
from ._log import FaultLog
from ._plan import (
    ActivityCall,
    Delay,
    Duplicate,
    Fail,
    Fault,
    FaultPlan,
    FaultPlanError,
    HeartbeatLoss,
    Injection,
    Timeout,
    check_plan_against,
    plan_from_json,
    plan_to_json,
)

PLAN_HEADER = "workflow-resilience-fault-plan"
"""Temporal header that carries a workflow's fault plan (JSON)."""

KEY_HEADER = "workflow-resilience-fault-key"
"""Temporal header that carries an activity call's key."""

INJECTED_FAILURE_TYPE = "InjectedFault"
"""``ApplicationError.type`` of failures raised by :class:`~faults.Fail`."""

LOST_COMPLETION_TYPE = "InjectedLostCompletion"
"""``ApplicationError.type`` of failures raised by :class:`~faults.Duplicate`."""

INJECTED_TIMEOUT_TYPE = "InjectedTimeout"
"""``ApplicationError.type`` of the late completion of a :class:`~faults.Timeout` attempt.

The server has already timed the attempt out, so it rejects this failure; the
workflow sees the server's own timeout.
"""

_T = TypeVar("_T")

_current_plan: ContextVar[FaultPlan | None] = ContextVar("faults_current_plan", default=None)


@contextlib.contextmanager
def injecting(plan: FaultPlan | None) -> Iterator[None]:
    """Workflows started inside this block (by a client with the fault plugin) carry ``plan``."""
    token = _current_plan.set(plan)
    try:
        yield
    finally:
        _current_plan.reset(token)


_JSON_METADATA = {"encoding": b"json/plain"}


def _json_payload(data: bytes) -> Payload:
    """A payload of JSON text, as the SDK's default converter writes it."""
    return Payload(metadata=_JSON_METADATA, data=data)


def plan_header(plan: FaultPlan) -> Payload:
    """The header payload that carries ``plan`` (a JSON object)."""
    return _json_payload(plan_to_json(plan).encode())


def key_header(key: str) -> Payload:
    """The header payload that carries an activity call's key (a JSON string)."""
    if _PLAIN_KEY.fullmatch(key):  # nothing to escape: skip the JSON encoder
        return _json_payload(b'"' + key.encode() + b'"')
    return _json_payload(json.dumps(key).encode())


_PLAIN_KEY = re.compile(r"[ !#-\[\]-~]*")
"""Printable ASCII without ``"`` or ``\\``: a key JSON writes as itself in quotes."""


@functools.lru_cache(maxsize=1024)
def _decode_plan(data: bytes) -> FaultPlan:
    """The plan a plan header's data carries, decoded once for every reader of that header.

    Workflows started under one plan share its header, and the workflow and activity
    sides both read it. Plans are frozen, so one decoded plan serves them all.
    """
    return plan_from_json(data)


# --------------------------------------------------------------------------- client side


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        plan = _current_plan.get()
        if plan is not None:
            input.headers = {**input.headers, PLAN_HEADER: plan_header(plan)}
        return await super().start_workflow(input)

    async def start_update_with_start_workflow(
        self, input: temporalio.client.StartWorkflowUpdateWithStartInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        plan = _current_plan.get()
        if plan is not None:
            start = input.start_workflow_input
            start.headers = {**start.headers, PLAN_HEADER: plan_header(plan)}
        return await super().start_update_with_start_workflow(input)


class FaultClientInterceptor(temporalio.client.Interceptor):
    """Client interceptor: stamps the plan of :func:`injecting` on started workflows."""

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        """See base class."""
        return _ClientOutbound(next)


# --------------------------------------------------------------------------- workflow side


_SCALARS = (str, int, float, bool, type(None))


def _args_digest(args: Sequence[Any]) -> str:
    """A digest of activity arguments, the same in every process that runs the workflow.

    Arguments that are all strings, numbers, booleans or ``None`` are hashed from
    their ``repr`` (stable for these types); anything else from the workflow's
    payload converter, which is what Temporal itself would send.
    """
    digest = hashlib.sha256()
    if all(type(arg) in _SCALARS for arg in args):
        digest.update(repr(tuple(args)).encode())
    else:
        digest.update(b"payloads")
        for payload in temporalio.workflow.payload_converter().to_payloads(args):
            digest.update(payload.data)
    return digest.hexdigest()[:16]


def _call_key(input: StartActivityInput | StartLocalActivityInput) -> str:
    if input.activity_id:
        return input.activity_id
    return f"{input.activity}:{_args_digest(input.args)}"


_NOT_READ: Any = object()


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor) -> None:
        super().__init__(next)
        self._occurrences: dict[str, int] = {}
        self._plan: Payload | None = _NOT_READ
        self._keyed: dict[str, bool] = {}

    def _plan_header(self) -> Payload | None:
        """The workflow's plan header (read once per workflow run), or ``None``."""
        if self._plan is _NOT_READ:
            self._plan = temporalio.workflow.info().headers.get(PLAN_HEADER)
        return self._plan

    def _with_plan(self, headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
        """``headers`` plus the workflow's plan header, if it carries one."""
        plan = self._plan_header()
        return headers if plan is None else {**headers, PLAN_HEADER: plan}

    def _with_key(
        self, headers: Mapping[str, Payload], input: StartActivityInput | StartLocalActivityInput
    ) -> Mapping[str, Payload]:
        """``headers`` plus the call's key, unless the workflow's plan cannot fault the activity.

        Without a plan every call is keyed: its worker may apply a default plan.
        """
        keyed = self._keyed.get(input.activity)
        if keyed is None:
            plan = self._plan_header()
            try:
                keyed = plan is None or _decode_plan(plan.data).may_inject(input.activity)
            except FaultPlanError:  # the activity's worker reports the bad plan
                keyed = True
            self._keyed[input.activity] = keyed
        return {**headers, KEY_HEADER: key_header(self._key(input))} if keyed else headers

    def _key(self, input: StartActivityInput | StartLocalActivityInput) -> str:
        """The call key; repeated identical calls are told apart by their occurrence.

        Identical calls are interchangeable, so numbering them in the order the
        workflow makes them keeps keys independent of scheduling order.
        """
        key = _call_key(input)
        if input.activity_id:
            return key
        n = self._occurrences[key] = self._occurrences.get(key, 0) + 1
        return f"{key}#{n}"

    def start_activity(self, input: StartActivityInput) -> temporalio.workflow.ActivityHandle[Any]:
        input.headers = self._with_key(self._with_plan(input.headers), input)
        return super().start_activity(input)

    def start_local_activity(
        self, input: StartLocalActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        input.headers = self._with_key(self._with_plan(input.headers), input)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> temporalio.workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = self._with_plan(input.headers)
        return await super().start_child_workflow(input)

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        input.headers = self._with_plan(input.headers)
        super().continue_as_new(input)


class _WorkflowInbound(WorkflowInboundInterceptor):
    activity_names: frozenset[str] | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        header = temporalio.workflow.info().headers.get(PLAN_HEADER)
        if header is not None and self.activity_names is not None:
            try:
                check_plan_against(_decode_plan(header.data), self.activity_names)
            except FaultPlanError as err:
                raise ApplicationError(
                    str(err), type="FaultPlanError", non_retryable=True
                ) from None
        if header is not None:
            with contextlib.suppress(FaultPlanError):  # the activity side reports a bad plan
                arm_restarts(_decode_plan(header.data))
        return await super().execute_workflow(input)


# --------------------------------------------------------------------------- timeouts


CLOCK_MARGIN = 0.25
"""Seconds before a held attempt's timeout at which the test server's clock stops skipping.

The server takes its clock back by itself at that point (see :func:`_release_clock`); the
margin must outlast the one-way trip of that request to the server, or the timeout would
fire while the clock is free and leave it held for good."""

_POLL_FIRST = 0.02
_POLL_MAX = 0.25
_PAUSE_SLICE = 0.1

_test_servers: weakref.WeakKeyDictionary[temporalio.service.ServiceClient, bool] = (
    weakref.WeakKeyDictionary()
)
"""Whether each server connection leads to the time-skipping test server (asked once)."""


def _first_timeout(info: temporalio.activity.Info) -> float | None:
    """Seconds from the attempt's start to the first timeout of an attempt that stays silent.

    The earliest of its start-to-close, heartbeat and (what is left of its)
    schedule-to-close timeouts; ``None`` if it has none.
    """
    limits = [
        limit.total_seconds()
        for limit in (info.start_to_close_timeout, info.heartbeat_timeout)
        if limit is not None
    ]
    if info.schedule_to_close_timeout is not None:
        deadline = info.scheduled_time + info.schedule_to_close_timeout
        limits.append((deadline - info.started_time).total_seconds())
    return min(limits) if limits else None


async def _pause(seconds: float) -> None:
    """Sleep ``seconds``, ending early (raising) if the activity is cancelled.

    An async activity's cancellation arrives as ``asyncio.CancelledError`` in
    the sleep; a threaded one's only sets its cancellation flag, checked here
    every tenth of a second.
    """
    end = time.monotonic() + max(0.0, seconds)
    while True:
        if temporalio.activity.is_cancelled():
            raise temporalio.exceptions.CancelledError("held attempt cancelled")
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, _PAUSE_SLICE))


async def _abandon_if_cancelled(call: Awaitable[_T]) -> _T:
    """Await ``call``, giving it up (raising) if the activity is cancelled meanwhile.

    A threaded activity's cancellation does not interrupt the event loop, so
    the call is watched every tenth of a second.
    """
    task = asyncio.ensure_future(call)
    try:
        while not task.done():
            if temporalio.activity.is_cancelled():
                raise temporalio.exceptions.CancelledError("held attempt cancelled")
            await asyncio.wait({task}, timeout=_PAUSE_SLICE)
        return task.result()
    finally:
        task.cancel()


async def _release_clock(
    client: temporalio.client.Client, info: temporalio.activity.Info, timeout: float
) -> bool:
    """On the time-skipping test server, let its clock skip to just before the timeout.

    The test server does not skip time while an activity is outstanding: each
    one holds a lock on its clock from schedule to completion or timeout. This
    hands the attempt's lock back until ``CLOCK_MARGIN`` seconds (server time)
    before its timeout, when the server takes it again by itself
    (``UnlockTimeSkippingWithSleep``), so the server's timeout finds it held as
    usual. The clock skips only if nothing else holds it (another running
    activity, or no client waiting on a result). Returns whether the clock was
    released; ``False`` at once on any other server.

    While the attempt holds the clock, the server's time runs at wall-clock
    speed, a fixed offset from this machine's: the offset, read once, turns the
    timeout into a skip computed just before the request leaves, so only that
    request's trip to the server eats into the margin.
    """
    service = client.service_client
    if _test_servers.get(service) is False:
        return False
    asked = time.time()
    try:
        now = await service.test_service.get_current_time(Empty())
    except temporalio.service.RPCError as err:
        if err.status != temporalio.service.RPCStatusCode.UNAVAILABLE:
            _test_servers[service] = False  # no test service here (UNIMPLEMENTED, or refused)
        return False
    _test_servers[service] = True
    # At least the server's lead over this clock: the server read its time after `asked`.
    lead = now.time.seconds + now.time.nanos / 1e9 - asked
    due = info.started_time.timestamp() + timeout
    skip = due - (time.time() + lead) - CLOCK_MARGIN
    if skip <= 0:
        return False
    sleep = Duration()
    sleep.FromTimedelta(timedelta(seconds=skip))
    # The server takes the clock back by itself: giving up the wait leaves it balanced.
    try:
        await _abandon_if_cancelled(
            service.test_service.unlock_time_skipping_with_sleep(SleepRequest(duration=sleep))
        )
    except temporalio.service.RPCError:
        return False  # the caller waits out the timeout instead
    return True


async def _attempt_is_open(
    client: temporalio.client.Client, info: temporalio.activity.Info
) -> bool:
    """Whether the server still counts this attempt as started (not timed out or retried)."""
    handle = client.get_workflow_handle(info.workflow_id or "", run_id=info.workflow_run_id)
    try:
        description = await handle.describe()
    except temporalio.service.RPCError as err:
        if err.status == temporalio.service.RPCStatusCode.NOT_FOUND:
            return False
        return True  # ask again
    return any(
        pending.activity_id == info.activity_id
        and pending.attempt == info.attempt
        and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for pending in description.raw_description.pending_activities
    )


async def _outlive_timeout(
    info: temporalio.activity.Info, client: temporalio.client.Client | None, started: float
) -> None:
    """Hold the attempt until the server has timed it out.

    The attempt is held until the server no longer counts it as started (it
    timed it out, and retried it or failed the activity), read from the
    workflow's description. ``started`` is the attempt's start on
    :func:`time.monotonic`. Without a client (or a workflow) to ask, the hold
    ends a second after the timeout was due; with no timeout at all, only
    when the attempt is cancelled.
    """
    timeout = _first_timeout(info)
    if timeout is None:
        while True:
            await _pause(3600)
    if client is None or not info.workflow_id:
        await _pause(timeout + 1.0 - (time.monotonic() - started))
        return
    if not await _release_clock(client, info, timeout):
        await _pause(timeout - (time.monotonic() - started))
    delay = _POLL_FIRST
    while await _attempt_is_open(client, info):
        await _pause(delay)
        delay = min(delay * 2, _POLL_MAX)


# --------------------------------------------------------------------------- activity side


class _ActivityOutbound(ActivityOutboundInterceptor):
    heartbeats_left: int | None = None

    def heartbeat(self, *details: Any) -> None:
        if self.heartbeats_left is not None:
            if self.heartbeats_left <= 0:
                return
            self.heartbeats_left -= 1
        super().heartbeat(*details)


def _decode_key(payload: Payload) -> str:
    try:
        return str(json.loads(payload.data))
    except ValueError:  # a key written as plain text
        return payload.data.decode(errors="replace")


class _ActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, owner: FaultWorkerInterceptor) -> None:
        super().__init__(next)
        self._owner = owner
        self._outbound: _ActivityOutbound | None = None

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self._outbound = _ActivityOutbound(outbound)
        super().init(self._outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        headers = input.headers
        key = headers.get(KEY_HEADER)
        if key is None and PLAN_HEADER in headers:
            # The workflow's side leaves the key off the calls its plan cannot fault.
            return await self.next.execute_activity(input)
        plan = self._owner.plan_for(headers)
        if plan is None:
            return await self.next.execute_activity(input)
        info = temporalio.activity.info()
        call = ActivityCall(
            workflow_id=info.workflow_id or "",
            activity=info.activity_type,
            key=_decode_key(key) if key is not None else info.activity_id,
            attempt=info.attempt,
        )
        fault = plan.decide(call)
        if (
            fault is None
            # Heartbeat loss means nothing to an activity without a heartbeat timeout, and a
            # timeout nothing to a local activity (no server times it out; see Timeout).
            or (isinstance(fault, HeartbeatLoss) and info.heartbeat_timeout is None)
            or (isinstance(fault, Timeout) and info.is_local)
        ):
            return await self.next.execute_activity(input)
        self._owner.log.record(
            Injection(
                kind=fault.kind,
                detail=fault.describe(),
                workflow_id=call.workflow_id,
                activity=call.activity,
                key=call.key,
                attempt=call.attempt,
                at=time.time(),
                run_id=info.workflow_run_id or "",
            )
        )
        return await self._inject(fault, call, input)

    async def _inject(self, fault: Fault, call: ActivityCall, input: ExecuteActivityInput) -> Any:
        where = f"{call.activity} attempt {call.attempt} of workflow {call.workflow_id}"
        if isinstance(fault, Fail):
            raise ApplicationError(
                f"injected fault: {fault.describe()} on {where}",
                type=INJECTED_FAILURE_TYPE,
                non_retryable=not fault.retryable,
            )
        if isinstance(fault, Delay):
            if fault.at == "before":
                await asyncio.sleep(fault.seconds)
                return await self.next.execute_activity(input)
            result = await self.next.execute_activity(input)
            await asyncio.sleep(fault.seconds)
            return result
        if isinstance(fault, Duplicate):
            await self.next.execute_activity(input)
            raise ApplicationError(
                f"injected fault: completion of {where} lost after its body ran",
                type=LOST_COMPLETION_TYPE,
            )
        if isinstance(fault, HeartbeatLoss):
            assert self._outbound is not None
            self._outbound.heartbeats_left = fault.after
            return await self.next.execute_activity(input)
        if isinstance(fault, Timeout):
            started = time.monotonic()
            result = None
            if fault.body == "before":
                result = await self.next.execute_activity(input)
            await _outlive_timeout(
                temporalio.activity.info(), self._owner.activity_client(), started
            )
            if fault.body == "before":
                return result  # late: the server has timed the attempt out and rejects it
            raise ApplicationError(
                f"injected fault: {where} held past its timeout", type=INJECTED_TIMEOUT_TYPE
            )
        if isinstance(fault, (Restart, Cancel)):
            body = functools.partial(self.next.execute_activity, input)
            return await disrupt(fault, body, self._owner.activity_client())
        raise AssertionError(f"unhandled fault {fault!r}")  # pragma: no cover


class FaultWorkerInterceptor(Interceptor):
    """Worker interceptor that injects the faults of each workflow's plan.

    ``plan`` is a default applied to activities whose workflow carries no plan.
    ``activity_names`` (the activities the worker registers) lets a workflow
    whose plan names no registered activity fail at once with a clear error.
    ``client`` (the worker's) lets a :class:`~faults.Timeout` on a threaded
    activity ask the server when it has timed the attempt out; async
    activities have their worker's client anyway.
    """

    def __init__(
        self,
        log: FaultLog,
        *,
        plan: FaultPlan | None = None,
        activity_names: frozenset[str] | None = None,
        client: temporalio.client.Client | None = None,
    ) -> None:
        self.log = log
        self.plan = plan
        self.activity_names = activity_names
        self.client = client
        inbound = type(
            "FaultWorkflowInbound", (_WorkflowInbound,), {"activity_names": activity_names}
        )
        self._workflow_class: type[WorkflowInboundInterceptor] = inbound

    def plan_for(self, headers: Mapping[str, Payload]) -> FaultPlan | None:
        """The plan that governs an activity with these headers."""
        header = headers.get(PLAN_HEADER)
        return self.plan if header is None else _decode_plan(header.data)

    def activity_client(self) -> temporalio.client.Client | None:
        """The running activity's worker client, or ``None`` if it has none to hand."""
        try:
            return temporalio.activity.client()
        except RuntimeError:  # a threaded activity: the SDK gives it none
            return self.client

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """See base class."""
        return _ActivityInbound(next, self)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        """See base class."""
        return self._workflow_class
