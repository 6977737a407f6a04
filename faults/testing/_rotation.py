"""Keep a session's time-skipping test server skipping time, and fast: probe, retire, replace.

The Java test server behind ``--temporal-env=time-skipping`` has two flaws a
long session runs into (``temporal-test-server``, package
``io.temporal.internal.testservice``):

* **It can stop skipping time for good.** Scheduling an activity takes a lock
  on the server's clock (``TestWorkflowMutableStateImpl.processScheduleActivityTask``:
  ``ctx.lockTimer("processScheduleActivityTask")``) that the activity's
  completion, failure, cancellation or time-out releases; but each of those
  first refuses any change to a closed workflow (``update()`` throws
  ``NOT_FOUND "Completed workflow"``) before it gets to the release. A workflow
  that ends while one of its activities is scheduled or running (a ``gather``
  whose first failure fails the workflow, a cancellation that does not wait
  for the activity) therefore leaves that lock held forever, and so does a
  workflow that cancels an activity no worker has started yet
  (``processRequestCancelActivityTask`` removes it without a release). From
  then on the server's clock only moves in real time: every later timer of the
  session costs its full duration.
* **It slows with every run.** Its clock keeps a list of lock events "for
  debugging purposes only" (``SelfAdvancingTimerImpl.lockEvents``, a
  ``LinkedList``) that grows by about two entries per workflow or activity
  task and is never trimmed, and every state change of every workflow
  (``update()`` takes and returns a lock handle) removes its own entry from it
  with a linear search.

Neither can be undone safely from outside. The server offers no way to read or
reset its lock count. An extra unlock does give a lost lock back (measured), but
one unlock more than were lost lets the clock run to the next timer at once,
and the next unlock then fails the call with the whole event list in its
message; a timed probe cannot tell the count exactly enough to rule that out.
So :class:`ServerRotation` replaces the server instead, where nothing can notice:

* it counts the workflows started through the session's client, probes the
  clock when a run's history shows the pattern that loses a lock (an activity
  left open when its workflow closed, or a cancelled activity), every
  :data:`PROBE_EVERY` runs otherwise (every run: other runs lose it too, such
  as a fail-fast batch of local activities) and between tests, and
* after ``rotate_after`` runs, or when a probe finds the clock held, it starts a
  fresh server at the next quiet point (no run of the harness in flight, no
  result awaited, no open workflow on the server, no worker but the plugin's
  own polling it), moves the session's client onto it, and starts the
  plugin's workers again on their same task queues: at once those the current
  test module asked for, and any other when a workflow is next started on its
  task queue (a session's pool holds a worker for every registration any test
  asked for; restarting them all made each replacement cost seconds late in a
  long suite).

The session's client object stays the same: requests that name a workflow
started on a retired server still go to that server (the last
:data:`KEEP_RETIRED` are kept running for reads such as histories), and
everything else goes to the current one. A :class:`~faults.testing.FaultHarness`
or a task queue handed out before a rotation keeps working after it.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import google.protobuf.message
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest
from temporalio.bridge.client import RPCError as BridgeRPCError  # type: ignore[attr-defined]
from temporalio.client import WorkflowHistory
from temporalio.plugin import SimplePlugin
from temporalio.service import RPCError, RPCStatusCode

from ._embedded import ClockProbe, shared_clock_unlock
from ._orphans import children_left_open

if TYPE_CHECKING:
    import temporalio.bridge.client
    import temporalio.client
    from temporalio.service import ServiceClient
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

DEFAULT_ROTATE_AFTER = 1000
"""Runs a session's test server serves before it is replaced (``--temporal-rotate-after``)."""

STALLED = "time skipping lost"
"""The reason of a replacement for a clock that no longer skips."""

PROBE_SKIP = timedelta(milliseconds=100)
"""How far a probe moves the clock: a server that skips takes a round trip, a stuck one 0.1 s.

A stuck clock costs the probe its whole skip in real time, once per lost lock;
a replacement of the server costs about 0.2 s. So the probe is short, and after
a run whose history shows a lost lock, one probe that finds the clock stuck
decides: a misjudged one (a round trip slower than 50 ms on a loaded machine)
costs one needless replacement, which is cheaper than a longer probe every time.
"""

CONFIRM_SKIP = timedelta(milliseconds=250)
"""How far a second probe moves the clock, when a routine probe (no history gave cause)
found it stuck."""

SKIP_RATIO = 2.0
"""A probe whose clock moved less than this many times faster than real time finds it stuck.

A stuck clock moves as fast as real time (ratio <= 1); a skipping one moves
0.1 s in one round trip (ratio 10-100 on a loaded machine).
"""

PROBE_EVERY = 1
"""Runs between two probes when no run's history gave cause for one.

Every run: the history patterns above do not cover every run that loses the
lock (a fail-fast fan-in batch of local activities with lost completions did,
in one of 600 examples), and until a probe finds it every later timer and
every held :class:`~faults.Timeout` runs in real time. A probe of a skipping
clock takes about a millisecond."""

RETRY_BLOCKED_AFTER = 20
"""Runs before a rotation that was due after ``rotate_after`` runs and could not happen (a
foreign worker, an open workflow) is tried again. One for a stuck clock is tried at every
quiet point."""

KEEP_RETIRED = 2
"""Retired servers kept running for reads of the workflows they ran; older ones are stopped."""

_OPEN_ACTIVITY_ENDS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}
_STARTS = frozenset(
    {"start_workflow_execution", "signal_with_start_workflow_execution", "execute_multi_operation"}
)


async def open_workflows(client: temporalio.client.Client, limit: int = 4) -> list[str]:
    """The ids of up to ``limit`` workflows open on the client's server (any namespace's own).

    The session's test server is replaced only when this is empty: a test that
    needs a replacement after its own run can wait for it first.
    """
    answer = await client.workflow_service.list_open_workflow_executions(
        ListOpenWorkflowExecutionsRequest(namespace=client.namespace, maximum_page_size=limit)
    )
    return [e.execution.workflow_id for e in answer.executions[:limit]]


def may_hold_the_clock(history: WorkflowHistory) -> bool:
    """Whether this run's history shows a pattern that leaves the test server's clock locked.

    An activity scheduled and never closed when the run closed, any
    cancellation of an activity (one that no worker had started yet is removed
    without releasing its lock), or a child workflow left open when the run
    closed (a child that closes after its parent locks the clock for good; see
    :mod:`faults.testing._orphans`).
    """
    if children_left_open(history):
        return True
    scheduled: set[int] = set()
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled.add(event.event_id)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
            return True
        elif kind in _OPEN_ACTIVITY_ENDS:
            scheduled.discard(getattr(event, _OPEN_ACTIVITY_ENDS[kind]).scheduled_event_id)
    return bool(scheduled)


def _workflow_id(rpc: str, request: google.protobuf.message.Message) -> str | None:
    """The workflow a request is about, if it names one."""
    if rpc == "execute_multi_operation":
        operations = getattr(request, "operations", ())
        return str(operations[0].start_workflow.workflow_id) if operations else None
    fields = request.DESCRIPTOR.fields_by_name
    for name in ("execution", "workflow_execution"):
        if name in fields and request.HasField(name):
            return str(getattr(request, name).workflow_id) or None
    if "update_ref" in fields and request.HasField("update_ref"):
        return str(request.update_ref.workflow_execution.workflow_id) or None  # type: ignore[attr-defined]
    if "workflow_id" in fields:
        return str(request.workflow_id) or None  # type: ignore[attr-defined]
    return None


def _task_queue(rpc: str, request: google.protobuf.message.Message) -> str | None:
    """The task queue a workflow start names."""
    if rpc == "execute_multi_operation":
        operations = getattr(request, "operations", ())
        return str(operations[0].start_workflow.task_queue.name) if operations else None
    queue = getattr(request, "task_queue", None)
    return str(queue.name) if queue is not None and queue.name else None


class _Router:
    """Sends a client's calls to the current server, or to the retired one that ran their workflow.

    Installed over the client's ``_rpc_call``; the connection a *new* worker
    takes (the service client's ``_bridge_client``) is the current server's.
    """

    def __init__(self, service: ServiceClient) -> None:
        bridge = getattr(service, "_bridge_client", None)
        if bridge is None or not hasattr(service, "_rpc_call"):
            raise TypeError(
                "the session's client has no connected SDK service client to route: "
                "use the client start_environment() made"
            )
        self.service = service
        self.current: temporalio.bridge.client.Client = bridge
        self.retired: list[temporalio.bridge.client.Client] = []
        self.homes: dict[str, temporalio.bridge.client.Client] = {}
        self.started = 0
        """Workflows started through this client (on any of its servers)."""
        self.on_start: Callable[[str], Awaitable[None]] | None = None
        """Awaited with a workflow start's task queue before the start is sent."""
        service._rpc_call = self._rpc_call  # type: ignore[method-assign]

    def switch(self, service: ServiceClient) -> None:
        """Make ``service``'s server (another connected SDK service client) the current one."""
        self.retired.append(self.current)
        self.current = service._bridge_client  # type: ignore[attr-defined]
        self.service._bridge_client = self.current  # type: ignore[attr-defined]
        self.service.config.target_host = service.config.target_host

    def forget(self, bridge: temporalio.bridge.client.Client) -> None:
        """Stop routing to a retired server (it was shut down)."""
        self.retired = [b for b in self.retired if b is not bridge]
        self.homes = {wid: b for wid, b in self.homes.items() if b is not bridge}

    async def _call(
        self,
        bridge: temporalio.bridge.client.Client,
        rpc: str,
        req: google.protobuf.message.Message,
        resp_type: type[Any],
        service: str,
        retry: bool,
        metadata: Mapping[str, str | bytes],
        timeout: timedelta | None,
    ) -> Any:
        try:
            return await bridge.call(
                service=service,
                rpc=rpc,
                req=req,
                resp_type=resp_type,
                retry=retry,
                metadata=metadata,
                timeout=timeout,
            )
        except BridgeRPCError as err:
            status, message, details = err.args
            raise RPCError(message, RPCStatusCode(status), details) from None

    async def _rpc_call(
        self,
        rpc: str,
        req: google.protobuf.message.Message,
        resp_type: type[Any],
        *,
        service: str,
        retry: bool,
        metadata: Mapping[str, str | bytes],
        timeout: timedelta | None,
    ) -> Any:
        workflow_id = _workflow_id(rpc, req) if service == "workflow" else None
        call = (rpc, req, resp_type, service, retry, metadata, timeout)
        if rpc in _STARTS:
            self.started += 1
            if workflow_id is not None:
                self.homes.pop(workflow_id, None)
            task_queue = _task_queue(rpc, req)
            if self.on_start is not None and task_queue:
                await self.on_start(task_queue)
            return await self._call(self.current, *call)
        home = self.homes.get(workflow_id) if workflow_id is not None else None
        if home is not None:
            return await self._call(home, *call)
        try:
            return await self._call(self.current, *call)
        except RPCError as err:
            if workflow_id is None or err.status != RPCStatusCode.NOT_FOUND:
                raise
            for bridge in reversed(self.retired):
                try:
                    answer = await self._call(bridge, *call)
                except RPCError:
                    continue
                self.homes[workflow_id] = bridge
                return answer
            raise


class WorkerWatch(SimplePlugin):
    """A client plugin that knows which workers built on its client are running."""

    def __init__(self) -> None:
        super().__init__("faults.testing.WorkerWatch")
        self.running: weakref.WeakSet[Worker] = weakref.WeakSet()

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        """Note the worker as running while it runs."""
        self.running.add(worker)
        try:
            await next(worker)
        finally:
            self.running.discard(worker)


class WorkerSet(Protocol):
    """Workers that a rotation stops on the old server and starts again on the new one."""

    def workers_running(self) -> Sequence[Worker]:
        """The running workers of the set."""
        ...

    async def stop_workers(self) -> None:
        """Stop every worker of the set."""
        ...

    async def start_workers(self) -> None:
        """Start the set's workers again, on their same task queues, on the current server.

        A set may leave some stopped until :meth:`wake` asks for them.
        """
        ...

    async def wake(self, task_queue: str) -> None:
        """A workflow is about to start on ``task_queue``: start its worker if it is stopped."""
        ...


@dataclass
class RotationReport:
    """What a :class:`ServerRotation` did in a session."""

    rotations: list[tuple[str, float]] = field(default_factory=list)
    """One ``(reason, seconds it took)`` per rotation."""
    probes: int = 0
    """Probes made."""
    stuck: list[ClockProbe] = field(default_factory=list)
    """Probes that found the clock held."""
    blocked: list[str] = field(default_factory=list)
    """Why a rotation that was due could not happen (each reason once)."""
    server_start_seconds: float = 0.0
    """Of the rotations' time, how much starting the new servers took."""
    rotate_after: int = 0
    """Runs a server serves before it is replaced (0: replaced only when its clock is stuck)."""
    reruns: int = 0
    """Runs that overran while the clock stood still for reasons not their own, made again on
    a fresh server."""

    def describe(self) -> str:
        """A few lines for the end of a test session."""
        lines = [
            f"test server rotations: {len(self.rotations)}; clock probes: {self.probes}, "
            f"{len(self.stuck)} found time skipping lost"
        ]
        reasons: dict[str, list[float]] = {}
        for reason, seconds in self.rotations:
            reasons.setdefault(reason, []).append(seconds)
        for reason, times in reasons.items():
            lines.append(f"  {len(times)} x {reason} (mean {sum(times) / len(times):.2f}s each)")
        if self.rotations:
            lines.append(f"  of which starting servers: {self.server_start_seconds:.2f}s")
        if self.reruns:
            lines.append(f"  runs made again on a fresh server after a stall: {self.reruns}")
        lines.extend(f"  not rotated: {why}" for why in self.blocked)
        return "\n".join(lines)


class ServerRotation:
    """Replaces a session's time-skipping test server after ``rotate_after`` runs or when stuck.

    ``env`` is the session's environment (from :func:`~faults.testing.start_environment`);
    ``start`` starts another like it. ``rotate_after=0`` rotates only on a
    stuck clock. See the module's documentation for why and how.
    """

    def __init__(
        self,
        env: WorkflowEnvironment,
        start: Callable[[], Awaitable[WorkflowEnvironment]],
        *,
        watch: WorkerWatch,
        rotate_after: int = DEFAULT_ROTATE_AFTER,
    ) -> None:
        if isinstance(rotate_after, bool) or not isinstance(rotate_after, int) or rotate_after < 0:
            raise ValueError(
                f"rotate_after={rotate_after!r} must be an int >= 0 (0: rotate only when the "
                "clock stops skipping), such as 2000"
            )
        shared = shared_clock_unlock(env.client)
        if shared is None:
            raise ValueError(
                "ServerRotation needs a time-skipping environment from "
                "faults.testing.start_environment() (its result waits share one clock unlock)"
            )
        self.env = env
        self.shared = shared
        self.watch = watch
        self.report = RotationReport(rotate_after=rotate_after)
        self._start = start
        self._router = _Router(env.client.service_client)
        self._environments: list[WorkflowEnvironment] = [env]
        self._retired: list[tuple[WorkflowEnvironment, temporalio.bridge.client.Client]] = []
        self._sets: list[WorkerSet] = []
        self._router.on_start = self._wake
        self._in_flight = 0
        self._gate: asyncio.Lock | None = None
        self._served_from = 0
        self._probed_at = 0
        self._suspect = False
        self._known_stuck = ""
        self._due_retry_at = 0

    @property
    def rotate_after(self) -> int:
        """Runs a server serves before it is replaced (0: only when its clock is stuck)."""
        return self.report.rotate_after

    @property
    def runs_served(self) -> int:
        """Workflows started on the current server through the session's client."""
        return self._router.started - self._served_from

    def add(self, workers: WorkerSet) -> None:
        """Stop and restart these workers at each rotation."""
        self._sets.append(workers)

    async def _wake(self, task_queue: str) -> None:
        for workers in self._sets:
            await workers.wake(task_queue)

    def _serialised(self) -> asyncio.Lock:
        if self._gate is None:
            self._gate = asyncio.Lock()
        return self._gate

    async def before_run(self) -> None:
        """A run is about to start: rotate first if one is due and nothing is in flight."""
        async with self._serialised():
            if self._in_flight == 0:
                await self._checkpoint(boundary=False)
            self._in_flight += 1

    async def after_run(self, histories: Sequence[WorkflowHistory]) -> None:
        """A run ended; if its histories show a lost clock lock, probe (and rotate) now.

        The probe, and a replacement if the clock is stuck, happen here when no
        other run is in flight, so the run that lost the lock pays for it, not
        the next one.
        """
        async with self._serialised():
            self._in_flight -= 1
            if any(may_hold_the_clock(history) for history in histories):
                self._suspect = True
            if self._suspect and self._in_flight == 0:
                await self._checkpoint(boundary=False)

    async def replace_stalled_server(self) -> bool:
        """A run overran while the clock stood still for reasons not its own: replace the server.

        Returns whether it was replaced (not if anything else is in flight or
        the usual blockers hold); the report counts it in ``reruns``.
        """
        async with self._serialised():
            if self._in_flight or await self._blocker() is not None:
                return False
            await self._rotate(f"{STALLED} (a run overran on it)")
            self.report.reruns += 1
            return True

    async def checkpoint(self) -> None:
        """Between tests: probe the clock if anything ran since the last probe, rotate if due."""
        async with self._serialised():
            if self._in_flight == 0:
                await self._checkpoint(boundary=True)

    async def _checkpoint(self, *, boundary: bool) -> None:
        started = self._router.started
        due = (
            self.rotate_after > 0
            and self.runs_served >= self.rotate_after
            and (boundary or started >= self._due_retry_at)
        )
        # A clock found stuck where the server could not be replaced stays stuck: it is not
        # probed again, only the blocker looked at, at every quiet point until it is gone.
        reason = f"after {self.rotate_after} runs" if due else self._known_stuck
        if not reason and (
            self._suspect
            or started - self._probed_at >= PROBE_EVERY
            or (boundary and started != self._probed_at)
        ):
            probe = await self.shared.probe(PROBE_SKIP)
            if probe is None:
                return  # a result wait is under way: not a quiet point
            self.report.probes += 1
            if not probe.skips(SKIP_RATIO) and not self._suspect:
                probe = await self.shared.probe(CONFIRM_SKIP) or probe
                self.report.probes += 1
            self._probed_at = started
            self._suspect = False
            if probe.skips(SKIP_RATIO):
                return
            self.report.stuck.append(probe)
            reason = f"{STALLED} ({probe.describe()})"
        if not reason:
            return
        blocker = await self._blocker()
        if blocker is not None:
            why = f"{reason.split(' (')[0]}: {blocker}"
            if why not in self.report.blocked:
                self.report.blocked.append(why)
            if due:
                self._due_retry_at = started + RETRY_BLOCKED_AFTER
            else:
                self._known_stuck = reason
            return
        await self._rotate(reason)

    async def _blocker(self) -> str | None:
        """Why the current server cannot be replaced now, or ``None``."""
        ours = {id(w) for workers in self._sets for w in workers.workers_running()}
        foreign = [w for w in self.watch.running if id(w) not in ours]
        if foreign:
            queues = ", ".join(sorted({w.task_queue for w in foreign})[:3])
            return f"a worker not started by the plugin runs on the session's server ({queues})"
        if self.shared.holders:
            return "a workflow result is being awaited"
        still_open = await open_workflows(self.env.client, 3)
        if still_open:
            ids = ", ".join(still_open)
            return (
                f"workflows are still open on it ({ids}); end the workflows a test starts, "
                "or run such tests on fresh_server_fault_harness"
            )
        return None

    async def _rotate(self, reason: str) -> None:
        begun = time.perf_counter()
        fresh = await self._start()
        started = time.perf_counter()
        for workers in self._sets:
            await workers.stop_workers()
        old = self._router.current
        self._router.switch(fresh.client.service_client)
        self._retired.append((self._environments[-1], old))
        self._environments.append(fresh)
        self._served_from = self._router.started
        self._probed_at = self._router.started
        self._suspect = False
        self._known_stuck = ""
        for workers in self._sets:
            await workers.start_workers()
        while len(self._retired) > KEEP_RETIRED:
            env, bridge = self._retired.pop(0)
            self._router.forget(bridge)
            await self._shutdown(env)
        ended = time.perf_counter()
        self.report.rotations.append((reason.split(" (")[0], ended - begun))
        self.report.server_start_seconds += started - begun

    async def _shutdown(self, env: WorkflowEnvironment) -> None:
        self._environments = [e for e in self._environments if e is not env]
        await env.shutdown()

    async def close(self) -> None:
        """Shut down every server the rotation started or kept, the session's first among them."""
        for env in list(self._environments):
            await self._shutdown(env)
