"""Interceptors that carry a fault plan with its workflow and inject its faults.

* The client interceptor stamps the plan of :func:`injecting` on workflows it
  starts, as a Temporal header, signed for the workflow with the client's key
  (see :mod:`faults._trust`).
* The workflow interceptor verifies that header and copies it onto every
  activity, local activity, child workflow (re-signed for the child's id) and
  continue-as-new the workflow issues, so the plan follows its workflow to
  whichever worker runs the work; each activity call the plan may fault (every
  call, when the workflow carries no plan it obeys) also gets a key naming it.
  A plan the worker refuses is dropped there: the run goes as if it had none.
* The activity interceptor verifies the plan again, decides, from the plan and
  the attempt's identity, whether to inject a fault, records it, and makes it
  happen. Injected failures are ``BENIGN`` application errors, which the SDK
  logs at debug level rather than as warnings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import math
import re
import time
import warnings
import weakref
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Literal, NoReturn, TypeVar

import temporalio.activity
import temporalio.client
import temporalio.exceptions
import temporalio.service
import temporalio.workflow
from google.protobuf.duration_pb2 import Duration
from google.protobuf.empty_pb2 import Empty
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.testservice.v1 import SleepRequest, UnlockTimeSkippingRequest
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
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
    longest_delay,
    plan_to_json,
)
from ._plan import (
    max_delay as process_max_delay,
)
from ._trust import PLAN_KEY_VARIABLE, PlanKey, PlanTrust, as_plan_key, sign_header

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


class FaultLayerWarning(UserWarning):
    """The fault layer could not do what it was asked, such as carry a plan to a workflow."""


class _Block:
    """One :func:`injecting` block: its plan, and how the workflow starts in it carried it."""

    __slots__ = ("plan", "stamped", "unsigned")

    def __init__(self, plan: FaultPlan | None) -> None:
        self.plan = plan
        self.stamped = False
        self.unsigned = False


_current_block: ContextVar[_Block | None] = ContextVar("faults_injecting", default=None)


@contextlib.contextmanager
def injecting(plan: FaultPlan | None) -> Iterator[None]:
    """Workflows started inside this block (by a client with the fault plugin) carry ``plan``.

    Leaving the block (without an exception) with a ``plan`` warns, with a
    :class:`FaultLayerWarning`, if no workflow start in the block carried the
    plan (the client that started them has no :class:`~faults.FaultPlugin`),
    or if one carried it unsigned (the client's plugin has no key, so workers
    ignore the plan): either way no fault would be injected.
    """
    block = _Block(plan)
    token = _current_block.set(block)
    try:
        yield
    finally:
        _current_block.reset(token)
    if plan is None:
        return
    if not block.stamped:
        warnings.warn(
            "faults.injecting(plan): no workflow started in this block carried the plan, so "
            "none of its faults will be injected; start workflows from a client with the fault "
            "plugin: Client.connect(..., plugins=[faults.FaultPlugin()])",
            FaultLayerWarning,
            stacklevel=3,
        )
    elif block.unsigned:
        warnings.warn(
            "faults.injecting(plan): workflows started in this block carry the plan unsigned, "
            "and workers ignore unsigned plans; give the client's FaultPlugin the workers' key "
            f"(the {PLAN_KEY_VARIABLE} environment variable, or FaultPlugin(key=...))",
            FaultLayerWarning,
            stacklevel=3,
        )


_JSON_METADATA = {"encoding": b"json/plain"}


def _json_payload(data: bytes) -> Payload:
    """A payload of JSON text, as the SDK's default converter writes it."""
    return Payload(metadata=_JSON_METADATA, data=data)


def plan_header(
    plan: FaultPlan, *, workflow_id: str | None = None, key: PlanKey | str | bytes | None = None
) -> Payload:
    """The header payload that carries ``plan`` (a JSON object).

    With ``key`` the plan is signed for ``workflow_id`` (both are needed):
    workers holding the same key obey it on that workflow only.
    """
    header = _json_payload(plan_to_json(plan).encode())
    plan_key = as_plan_key(key)
    if plan_key is None:
        return header
    if workflow_id is None:
        raise FaultPlanError(
            "plan_header(plan, key=...) signs the plan for one workflow: pass workflow_id= too"
        )
    return sign_header(header, workflow_id, plan_key)


def key_header(key: str) -> Payload:
    """The header payload that carries an activity call's key (a JSON string)."""
    if _PLAIN_KEY.fullmatch(key):  # nothing to escape: skip the JSON encoder
        return _json_payload(b'"' + key.encode() + b'"')
    return _json_payload(json.dumps(key).encode())


_PLAIN_KEY = re.compile(r"[ !#-\[\]-~]*")
"""Printable ASCII without ``"`` or ``\\``: a key JSON writes as itself in quotes."""


# --------------------------------------------------------------------------- client side


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    def __init__(self, next: temporalio.client.OutboundInterceptor, key: PlanKey | None) -> None:
        super().__init__(next)
        self._key = key

    def _stamped(self, headers: Mapping[str, Payload], workflow_id: str) -> Mapping[str, Payload]:
        """``headers`` plus the plan of the enclosing :func:`injecting` block, if it has one."""
        block = _current_block.get()
        if block is None or block.plan is None:
            return headers
        block.stamped = True
        block.unsigned = block.unsigned or self._key is None
        header = plan_header(block.plan, workflow_id=workflow_id, key=self._key)
        return {**headers, PLAN_HEADER: header}

    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        input.headers = self._stamped(input.headers, input.id)
        return await super().start_workflow(input)

    async def start_update_with_start_workflow(
        self, input: temporalio.client.StartWorkflowUpdateWithStartInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        start = input.start_workflow_input
        start.headers = self._stamped(start.headers, start.id)
        return await super().start_update_with_start_workflow(input)


class FaultClientInterceptor(temporalio.client.Interceptor):
    """Client interceptor: stamps the plan of :func:`injecting` on started workflows.

    With ``key`` (text or bytes shared with the workers, see
    :class:`~faults.FaultPlugin`) each plan is signed for the workflow it is
    stamped on; without one it goes unsigned, and workers ignore it.
    """

    def __init__(self, key: PlanKey | str | bytes | None = None) -> None:
        self.key = as_plan_key(key)

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        """See base class."""
        return _ClientOutbound(next, self.key)


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
    def __init__(self, next: WorkflowOutboundInterceptor, trust: PlanTrust) -> None:
        super().__init__(next)
        self._trust = trust
        self._occurrences: dict[str, int] = {}
        self._header: Payload | None = _NOT_READ
        self._plan: FaultPlan | None = None
        self._keyed: dict[str, bool] = {}

    def _plan_header(self) -> Payload | None:
        """The plan header this run obeys (read and verified once per run), or ``None``.

        A header the worker refuses counts as none: the run's calls are keyed as
        those of a workflow without a plan, and nothing of the plan is forwarded.
        A refusal is counted when first seen live, not when the run is replayed.
        """
        if self._header is _NOT_READ:
            info = temporalio.workflow.info()
            header = info.headers.get(PLAN_HEADER)
            plan = None
            if header is not None:
                live = not temporalio.workflow.unsafe.is_replaying()
                plan = self._trust.plan(info.workflow_id, header, count=live)
            self._header, self._plan = (header, plan) if plan is not None else (None, None)
        return self._header

    def plan(self) -> FaultPlan | None:
        """The plan this run obeys, or ``None``."""
        self._plan_header()
        return self._plan

    def _with_plan(
        self, headers: Mapping[str, Payload], workflow_id: str | None = None
    ) -> Mapping[str, Payload]:
        """``headers`` plus the run's plan header, re-signed for ``workflow_id`` if given."""
        plan = self._plan_header()
        if plan is None:
            return headers
        if workflow_id is not None:
            plan = self._trust.resign(plan, workflow_id)
        return {**headers, PLAN_HEADER: plan}

    def _with_key(
        self, headers: Mapping[str, Payload], input: StartActivityInput | StartLocalActivityInput
    ) -> Mapping[str, Payload]:
        """``headers`` plus the call's key, unless the workflow's plan cannot fault the activity.

        Without a plan every call is keyed: its worker may apply a default plan.
        """
        keyed = self._keyed.get(input.activity)
        if keyed is None:
            plan = self.plan()
            keyed = plan is None or plan.may_inject(input.activity)
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
        input.headers = self._with_plan(input.headers, workflow_id=input.id)
        return await super().start_child_workflow(input)

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        input.headers = self._with_plan(input.headers)
        super().continue_as_new(input)


class _WorkflowInbound(WorkflowInboundInterceptor):
    # Set on the subclass each FaultWorkerInterceptor makes (the key stays out of history).
    activity_names: frozenset[str] | None = None
    trust: PlanTrust

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self._outbound = _WorkflowOutbound(outbound, self.trust)
        super().init(self._outbound)

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        plan = self._outbound.plan()
        if plan is not None and self.activity_names is not None:
            try:
                check_plan_against(plan, self.activity_names)
            except FaultPlanError as err:
                raise ApplicationError(
                    str(err), type="FaultPlanError", non_retryable=True
                ) from None
        arm_restarts(plan)
        return await super().execute_workflow(input)


# --------------------------------------------------------------------------- timeouts


_GONE_WAIT = 10.0
"""Seconds a hold whose run closed waits for the test server to take its clock lock back."""

CLOCK_MARGIN = 1.0
"""Seconds before a held attempt's timeout at which the test server's clock stops skipping.

The server takes its clock back by itself at that point (see :func:`_release_clock`); the
margin must outlast the one-way trip of that request to the server, or the timeout would
fire while the clock is free and leave it held for good. A quarter of a second was not
enough on a machine loaded ten times over its cores (a held attempt's test then waited
on a clock that never skipped again); a second costs a second per injected timeout."""

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
        if temporalio.activity.is_cancelled() and not _run_is_gone():
            raise temporalio.exceptions.CancelledError("held attempt cancelled")
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, _PAUSE_SLICE))


def _run_is_gone() -> bool:
    """Whether the activity was cancelled because its run has closed (the server said so)."""
    details = temporalio.activity.cancellation_details()
    return details is not None and details.not_found


async def _abandon_if_cancelled(call: Awaitable[_T]) -> _T:
    """Await ``call``, giving it up (raising) if the activity is cancelled meanwhile.

    A threaded activity's cancellation does not interrupt the event loop, so
    the call is watched every tenth of a second. A cancellation because the
    run has closed is sat out for up to :data:`_GONE_WAIT` seconds: the call
    is the hold's release of the test server's clock, whose lock the server
    takes back when it ends, and which the hold then owes back (see
    :func:`_give_back_orphaned_lock`).
    """
    task = asyncio.ensure_future(call)
    gone_since: float | None = None
    try:
        while not task.done():
            if temporalio.activity.is_cancelled():
                if not _run_is_gone():
                    raise temporalio.exceptions.CancelledError("held attempt cancelled")
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > _GONE_WAIT:
                    raise temporalio.exceptions.CancelledError("held attempt's run closed")
            try:
                await asyncio.wait({task}, timeout=_PAUSE_SLICE)
            except asyncio.CancelledError:
                if not _run_is_gone():
                    raise
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


async def _attempt_state(
    client: temporalio.client.Client, info: temporalio.activity.Info
) -> Literal["open", "ended", "orphaned"]:
    """Where the server stands on this attempt: still started, timed out (or retried), or orphaned.

    ``"orphaned"``: the run closed while the attempt was still started, so the
    server will never time it out (the time-skipping test server still lists
    a closed run's running activities as pending, as they were at its close).
    """
    handle = client.get_workflow_handle(info.workflow_id or "", run_id=info.workflow_run_id)
    try:
        description = await handle.describe()
    except temporalio.service.RPCError as err:
        if err.status == temporalio.service.RPCStatusCode.NOT_FOUND:
            return "ended"
        return "open"  # ask again
    started = any(
        pending.activity_id == info.activity_id
        and pending.attempt == info.attempt
        and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for pending in description.raw_description.pending_activities
    )
    if description.status != temporalio.client.WorkflowExecutionStatus.RUNNING:
        return "orphaned" if started else "ended"
    return "open" if started else "ended"


async def _give_back_orphaned_lock(client: temporalio.client.Client) -> None:
    """Release the clock lock of an attempt whose run closed before the server timed it out.

    The test server takes a lock on its clock when it schedules an activity and
    releases it when the activity completes, fails or times out, each of which
    it refuses once the run has closed: such an attempt's lock would hold the
    clock for good, and the next run would wait out every timer in real time.
    Called only after :func:`_release_clock` gave the lock back and the server
    took it again, so exactly one unlock is owed.
    """
    try:
        await client.service_client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
    except temporalio.service.RPCError:
        pass  # nothing held after all (the server refuses an unbalanced unlock unchanged)


async def _outlive_timeout(
    info: temporalio.activity.Info,
    client: temporalio.client.Client | None,
    started: float,
    limit: float,
) -> None:
    """Hold the attempt until the server has timed it out.

    The attempt is held until the server no longer counts it as started (it
    timed it out, and retried it or failed the activity), read from the
    workflow's description, or until its run has closed (then no timeout will
    come; the attempt's lock on the test server's clock is given back).
    ``started`` is the attempt's start on :func:`time.monotonic`. Without a
    client (or a workflow) to ask, the hold ends a second after the timeout
    was due; with no timeout at all (nothing will time it out), after
    ``limit`` seconds, the worker's maximum delay.
    """
    timeout = _first_timeout(info)
    if timeout is None:
        await _pause(limit - (time.monotonic() - started))
        return
    if client is None or not info.workflow_id:
        await _pause(timeout + 1.0 - (time.monotonic() - started))
        return
    released = await _release_clock(client, info, timeout)
    if not released:
        await _pause(timeout - (time.monotonic() - started))
    delay = _POLL_FIRST
    while (state := await _attempt_state(client, info)) == "open":
        await _pause(delay)
        delay = min(delay * 2, _POLL_MAX)
    if released and state == "orphaned":
        await _give_back_orphaned_lock(client)


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
        header = headers.get(PLAN_HEADER)
        if key is None and header is not None:
            # The workflow's side leaves the key off the calls its plan cannot fault.
            return await self.next.execute_activity(input)
        if header is None and self._owner.plan is None:
            return await self.next.execute_activity(input)
        info = temporalio.activity.info()
        plan = self._owner.plan_for(headers, info.workflow_id or "")
        if plan is None:
            return await self.next.execute_activity(input)
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
                category=ApplicationErrorCategory.BENIGN,
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
                category=ApplicationErrorCategory.BENIGN,
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
                temporalio.activity.info(),
                self._owner.activity_client(),
                started,
                self._owner.max_delay,
            )
            if fault.body == "before":
                return result  # late: the server has timed the attempt out and rejects it
            raise ApplicationError(
                f"injected fault: {where} held past its timeout",
                type=INJECTED_TIMEOUT_TYPE,
                category=ApplicationErrorCategory.BENIGN,
            )
        if isinstance(fault, (Restart, Cancel)):
            body = functools.partial(self.next.execute_activity, input)
            return await disrupt(fault, body, self._owner.activity_client())
        raise AssertionError(f"unhandled fault {fault!r}")  # pragma: no cover


def _check_max_delay(value: object) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise FaultPlanError(
            f"max_delay={value!r} must be a finite number of seconds >= 0 (the longest delay "
            "this worker lets a header plan hold an attempt), such as 300"
        )
    return float(value)


class FaultWorkerInterceptor(Interceptor):
    """Worker interceptor that injects the faults of each workflow's plan.

    A workflow's header plan is obeyed only if it is signed, for that workflow,
    with ``key`` (text or bytes shared with the clients; see
    :mod:`faults._trust`) and holds no attempt longer than ``max_delay``
    seconds (by default :func:`~faults.max_delay` when the interceptor is
    built). Any other header plan (unsigned, wrongly signed, signed for another
    workflow, too slow, or any plan at all when there is no key) is ignored as
    if the workflow carried none, and counted in ``log``
    (:attr:`~faults.FaultLog.rejected_plans`).

    ``plan`` is a default applied to activities whose workflow carries no plan
    the worker obeys; it is configured here, so it needs no signature.
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
        key: PlanKey | str | bytes | None = None,
        max_delay: float | None = None,
    ) -> None:
        self.log = log
        self.plan = plan
        self.activity_names = activity_names
        self.client = client
        self.owner: object | None = None
        """The plugin that installed this interceptor, if one did."""
        self.key = as_plan_key(key)
        self.max_delay = _check_max_delay(process_max_delay() if max_delay is None else max_delay)
        if plan is not None and longest_delay(plan) > self.max_delay:
            raise FaultPlanError(
                f"the worker's default plan holds attempts up to {longest_delay(plan):g} s, above "
                f"its max_delay={self.max_delay:g}; shorten the delays or raise max_delay"
            )
        self.trust = PlanTrust(self.key, log, self.max_delay)
        inbound = type(
            "FaultWorkflowInbound",
            (_WorkflowInbound,),
            {"activity_names": activity_names, "trust": self.trust},
        )
        self._workflow_class: type[WorkflowInboundInterceptor] = inbound

    def plan_for(self, headers: Mapping[str, Payload], workflow_id: str) -> FaultPlan | None:
        """The plan that governs an activity of ``workflow_id`` with these headers.

        The header plan if the worker obeys it, else the worker's default plan.
        """
        header = headers.get(PLAN_HEADER)
        if header is None:
            return self.plan
        plan = self.trust.plan(workflow_id, header)
        return self.plan if plan is None else plan

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
