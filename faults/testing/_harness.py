"""Run workflows under fault plans and report what happened, for tests and simulations."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

import temporalio.client
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import (
    WorkflowFailureError,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowReplayResult

from .._interceptor import injecting
from .._log import FaultLog
from .._plan import FaultPlan, Injection, check_plan_against, plan_to_json
from ._bridge import EventLoopThread
from ._embedded import ClockProbe, shared_clock_unlock, shares_clock_unlocks
from ._orphans import close_orphans
from ._rotation import SKIP_RATIO
from ._stuck import StuckRun, stuck_run

T = TypeVar("T")

_logger = logging.getLogger(__name__)

_counter = itertools.count()

DEFAULT_EXECUTION_TIMEOUT = timedelta(days=30)
"""The execution timeout of harness runs started without one."""

GIVE_UP_SECONDS = 15.0
"""Time allowed to survey, and then to terminate, a run the caller gave up on."""

OVERRUN_PROBE = timedelta(seconds=1)
"""How far the clock is moved to see whether it skips, when a run overran."""

QUERY_TIMEOUT = timedelta(seconds=10)
"""How long a query of a closed run (the harness's ``queries``) may take."""

SURVEYED_ACTIVITIES = 8
"""Pending activities listed per open run in the error of a run that overran."""


async def ask_query(
    handle: temporalio.client.WorkflowHandle[Any, Any],
    query: str,
    *,
    timeout: timedelta = QUERY_TIMEOUT,
) -> Any:
    """``query``'s answer from the run of ``handle``, or the exception asking raised.

    A closed run is answered by a worker that replays its history, so ask while the run's
    worker still runs. A query the workflow does not define, one whose replay diverges and
    an unreachable server come back as ``WorkflowQueryFailedError``,
    ``WorkflowQueryRejectedError`` or ``RPCError``, for an oracle to report; any other
    exception is raised.
    """
    try:
        return await handle.query(query, rpc_timeout=timeout)
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError, RPCError) as err:
        return err


def unique_id(prefix: str) -> str:
    """A workflow id unique to this process run: isolates examples on a shared server."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}-{next(_counter)}"


@dataclass(frozen=True)
class RunOutcome(Generic[T]):
    """What one workflow run under a plan did."""

    workflow_id: str
    plan: FaultPlan | None
    result: T | None
    error: WorkflowFailureError | None
    injections: tuple[Injection, ...]
    replayed: bool = False
    """Whether the run's histories were replayed against the workflow code (and replayed clean)."""
    args: tuple[Any, ...] = ()
    """The arguments the workflow was started with (for invariants and reproductions)."""
    answers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Each of the harness's ``queries``, asked of the closed run: its answer, or the
    exception asking raised (for example ``WorkflowQueryFailedError`` for a query the
    workflow does not define, or whose replay of the history diverges)."""

    @property
    def succeeded(self) -> bool:
        """Whether the workflow completed."""
        return self.error is None

    @property
    def cause(self) -> BaseException | None:
        """The failure that failed the workflow, unwrapped from ``WorkflowFailureError``."""
        return None if self.error is None else self.error.cause

    def describe(self) -> str:
        """A multi-line report: plan, injections and result."""
        lines = [f"workflow {self.workflow_id}: {'completed' if self.succeeded else 'failed'}"]
        if self.plan is not None:
            lines.append(f"  plan: {self.plan.describe()}".replace("\n", "; "))
            lines.append(
                f"  reproduce: workflow id {self.workflow_id!r} under "
                f"faults.plan_from_json({plan_to_json(self.plan)!r})"
            )
        lines.extend(
            f"  injected {i.detail} on {i.activity} attempt {i.attempt}" for i in self.injections
        )
        lines.append(f"  result: {self.result!r}" if self.succeeded else f"  error: {self.cause}")
        return "\n".join(lines)


def report_to_hypothesis(outcome: RunOutcome[Any]) -> None:
    """Inside a Hypothesis test, ``note()`` the outcome and ``event()`` each injection.

    Call it from the test's own thread (:meth:`FaultHarness.run` does).
    """
    try:
        from hypothesis import currently_in_test_context, event, note
    except ImportError:  # pragma: no cover - hypothesis is optional at run time
        return
    if not currently_in_test_context():
        return
    note(outcome.describe())
    for injection in outcome.injections:
        event(f"fault: {injection.kind} on {injection.activity}")
    if not outcome.injections:
        event("fault: none injected")


_result_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def _result_lock(client: temporalio.client.Client) -> asyncio.Lock:
    """One result wait at a time per server connection, for per-wait clock unlocking.

    On the time-skipping test server in the SDK's default mode every result wait
    unlocks time skipping while it lasts; concurrent waits can unbalance the
    server's lock count ("Unbalanced lock and unlock calls"), after which its
    oversized error reply is dropped and calls hang. Workflows still run
    concurrently: only the waits for their results take turns. (Environments
    from :func:`faults.start_environment` share one unlock and need none.)
    """
    key = client.service_client
    lock = _result_locks.get(key)
    if lock is None:
        lock = _result_locks[key] = asyncio.Lock()
    return lock


def _waits_take_turns(client: temporalio.client.Client, handle: Any) -> bool:
    """Whether result waits on this server must not overlap.

    The SDK's time-skipping environment unlocks its clock for each wait through
    specialised handles; unless the environment came from
    :func:`faults.start_environment` (whose waits share one unlock), overlapping
    waits unbalance the server's lock count.
    """
    if type(handle) is temporalio.client.WorkflowHandle:
        return False
    return not shares_clock_unlocks(client)


class _ReplayService:
    """One long-lived replay worker fed histories one at a time.

    Starting a replay worker per history costs several milliseconds; feeding
    one worker through ``workflow_replay_iterator`` does not.
    """

    def __init__(self, replayer: Replayer) -> None:
        self._replayer = replayer
        self._queue: asyncio.Queue[
            tuple[WorkflowHistory, asyncio.Future[WorkflowReplayResult]] | None
        ]
        self._pending: collections.deque[asyncio.Future[WorkflowReplayResult]] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    async def replay(self, history: WorkflowHistory) -> None:
        if self._task is None or self._task.done():
            # A stopped service failed everything it held: start afresh.
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._serve())
        future: asyncio.Future[WorkflowReplayResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((history, future))
        result = await future
        if result.replay_failure is not None:
            raise result.replay_failure

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            await self._queue.put(None)
            await self._task

    async def _histories(self) -> AsyncIterator[WorkflowHistory]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            history, future = item
            self._pending.append(future)
            yield history

    async def _serve(self) -> None:
        try:
            async with self._replayer.workflow_replay_iterator(self._histories()) as results:
                async for result in results:
                    future = self._pending.popleft()
                    if not future.done():  # its caller may have given up (cancelled)
                        future.set_result(result)
        except BaseException as err:
            self._fail_waiting(RuntimeError(f"replay worker stopped: {err!r}"))
            if not isinstance(err, Exception):
                raise
        else:
            self._fail_waiting(RuntimeError("replay worker stopped"))

    def _fail_waiting(self, error: Exception) -> None:
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(error)
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_exception(error)


def _pending_line(pending: PendingActivityInfo) -> str:
    state = PendingActivityState.Name(pending.state).removeprefix("PENDING_ACTIVITY_STATE_")
    line = f"    {pending.activity_type.name} attempt {pending.attempt}: {state}"
    if pending.HasField("last_started_time"):
        line += f" since {pending.last_started_time.ToDatetime():%Y-%m-%d %H:%M:%S}"
    if pending.last_failure.message:
        line += f", last failure {pending.last_failure.message!r}"
    return line


@dataclass(frozen=True)
class _Overrun:
    """What :meth:`FaultHarness._give_up` found of a run that overran its time limit."""

    survey: str
    stalled_by_server: bool
    """The test server's clock did not skip while everything the run waited on was an
    attempt a ``Timeout`` held (which hands its own lock back): something else held the
    session's clock, and the run's time went to the server, not to the workflow."""


class _Stuck(Exception):
    """Raised by :meth:`FaultHarness._result` for a stuck run, before it is given up."""

    def __init__(self, failures: tuple[str, ...]) -> None:
        super().__init__(failures)
        self.failures = failures


def _note(message: str) -> None:
    try:
        from hypothesis import currently_in_test_context, note
    except ImportError:  # pragma: no cover - hypothesis is optional at run time
        return
    if currently_in_test_context():
        note(message)


class RunHooks(Protocol):
    """What a :class:`FaultHarness` tells of each run (``run_hooks=``)."""

    async def before_run(self) -> None:
        """A run is about to start (the hook may make the harness wait)."""
        ...

    async def after_run(self, histories: Sequence[WorkflowHistory]) -> None:
        """A run ended, with the histories of its runs and children (none if it failed early)."""
        ...

    async def replace_stalled_server(self) -> bool:
        """A run overran while the server's clock stood still for reasons not its own.

        Replace the server if that can be done now, and say whether it was:
        :meth:`FaultHarness.run` then runs the workflow once more, on the new one.
        """
        ...


class FaultHarness:
    """Runs workflows on one task queue under fault plans.

    Each run gets a unique workflow id, carries its plan in headers, and
    returns a :class:`RunOutcome` with the injections the log recorded for it.
    With ``replay_workflows`` every finished run's history (with the runs it
    continued as and its child workflows) is replayed against the current
    workflow code, so a non-deterministic change fails the run. The outcome's
    injections are those made on all of these runs.
    Replaying costs about as much worker time as running the workflow did (the
    SDK handles every recorded activation again); ``replay_every=N`` replays one
    finished run in N, the first always, for long soak runs that trade some of
    the determinism check for throughput.
    With ``activity_names`` (what the worker registers) a plan naming none of
    them raises :class:`~faults.FaultPlanError` before any workflow starts.
    Runs started without an ``execution_timeout`` get ``execution_timeout``
    (:data:`DEFAULT_EXECUTION_TIMEOUT`): the time-skipping test server keeps a
    timer for every run's execution timeout after the run ends, and skipping to
    an unset one (ten years ahead) runs its clock past the year 9999 within a
    few thousand runs.
    Inside a Hypothesis test each synchronous run is also reported with ``note()`` (the
    plan, a one-line reproduction and the injections) and each injection with
    ``event()``, so ``--hypothesis-show-statistics`` shows fault coverage.
    ``run_hooks`` (:class:`RunHooks`) hear of each run before it starts and
    after it ends; the pytest plugin's harnesses use them to keep the
    session's test server skipping time and fast.
    ``queries`` are asked of every run once it closed, while its worker still runs
    (a query of a closed run replays its history on a worker, and the plugin may
    replace a session's server and workers once a run ended); the outcome's
    ``answers`` hold them, for an oracle that checks what a workflow says of itself
    against its history.
    """

    def __init__(
        self,
        client: temporalio.client.Client,
        task_queue: str,
        log: FaultLog,
        *,
        loop: EventLoopThread | None = None,
        id_prefix: str = "run",
        replay_workflows: Sequence[type] = (),
        activity_names: Iterable[str] | None = None,
        execution_timeout: timedelta | None = DEFAULT_EXECUTION_TIMEOUT,
        replay_every: int = 1,
        run_hooks: RunHooks | None = None,
        queries: Sequence[str] = (),
    ) -> None:
        if isinstance(queries, str) or not all(isinstance(q, str) and q for q in queries):
            raise ValueError(
                f"FaultHarness(queries={queries!r}) must be a sequence of query names, "
                "such as ('stage',)"
            )
        self.queries = tuple(queries)
        self.run_hooks = run_hooks
        self._given_up: dict[str, _Overrun] = {}
        """Surveys of overrun runs, kept only for the :meth:`run` calls waiting on them."""
        self._watched: set[str] = set()
        """Ids of the runs a :meth:`run` call is waiting on."""
        if isinstance(replay_every, bool) or not isinstance(replay_every, int) or replay_every < 1:
            raise ValueError(
                f"FaultHarness(replay_every={replay_every!r}) must be an int >= 1: "
                "1 replays every run, N replays one run in N"
            )
        self.replay_every = replay_every
        self._finished = itertools.count()
        self.client = client
        self.execution_timeout = execution_timeout
        self.task_queue = task_queue
        self.log = log
        self.loop = loop
        self.id_prefix = id_prefix
        # A worker that registers no activities cannot judge a plan (FaultPlugin agrees).
        self.activity_names = frozenset(activity_names or ()) or None
        self.replayer: Replayer | None = None
        if replay_workflows:
            from .._plugin import FaultPlugin, client_plan_key

            # The client's key: replay verifies each run's plan as its worker did.
            plugin = FaultPlugin(
                strict=self.activity_names is not None,
                replay_activity_names=self.activity_names,
                key=client_plan_key(client),
            )
            self.replayer = Replayer(
                workflows=list(replay_workflows),
                plugins=[plugin],
                # Replay compares commands with the history; the sandbox adds nothing to that
                # check and costs a fresh module import per history.
                workflow_runner=UnsandboxedWorkflowRunner(),
            )
        self._replays = _ReplayService(self.replayer) if self.replayer is not None else None

    async def execute(
        self,
        workflow: Callable[..., Awaitable[T]] | str,
        *args: Any,
        plan: FaultPlan | None = None,
        id: str | None = None,
        **options: Any,
    ) -> RunOutcome[T]:
        """Run one workflow to its end under ``plan``; a workflow failure is an outcome."""
        hooks = self.run_hooks
        if hooks is None:
            return await self._execute(workflow, args, plan, id, options, None)
        histories: list[WorkflowHistory] = []
        await hooks.before_run()
        try:
            return await self._execute(workflow, args, plan, id, options, histories)
        finally:
            await hooks.after_run(histories)

    async def _execute(
        self,
        workflow: Callable[..., Awaitable[T]] | str,
        args: tuple[Any, ...],
        plan: FaultPlan | None,
        id: str | None,
        options: dict[str, Any],
        histories: list[WorkflowHistory] | None,
    ) -> RunOutcome[T]:
        if plan is not None and self.activity_names is not None:
            check_plan_against(plan, self.activity_names)
        workflow_id = id or unique_id(self.id_prefix)
        if self.execution_timeout is not None:
            options.setdefault("execution_timeout", self.execution_timeout)
        result: Any = None
        error: WorkflowFailureError | None = None
        with injecting(plan):
            handle = await self.client.start_workflow(
                workflow,
                args=list(args),
                id=workflow_id,
                task_queue=self.task_queue,
                **options,
            )
        try:
            result = await self._result(handle)
        except WorkflowFailureError as err:
            error = err
        except _Stuck as stuck:
            overrun = await self._give_up(workflow_id, handle.first_execution_run_id)
            raise StuckRun(workflow_id, stuck.failures, overrun.survey) from None
        except asyncio.CancelledError:
            # Given up on (the caller's time limit, or a cancellation): a run left open would
            # keep its activities and timers on the server, in the way of later runs.
            given_up = asyncio.ensure_future(
                self._give_up(workflow_id, handle.first_execution_run_id)
            )
            while not given_up.done():
                try:
                    await asyncio.shield(given_up)
                except asyncio.CancelledError:
                    continue  # cancelled again (run_many stops its other runs): still wait
            raise
        # Asked before the run hooks hear the run ended: the pytest plugin may replace the
        # server (and its workers) then, and a query needs a worker to replay the history.
        answers = {name: await ask_query(handle, name) for name in self.queries}
        runs = set()
        replays = self._replays
        if replays is not None and next(self._finished) % self.replay_every:
            replays = None  # not this run's turn
        async for execution, history in self.executions(workflow_id, handle.first_execution_run_id):
            runs.add(execution)
            # Before its children's histories are read: they then show how they closed.
            await close_orphans(self.client, history)
            if histories is not None:
                histories.append(history)
            if replays is not None:
                await replays.replay(history)
        outcome: RunOutcome[T] = RunOutcome(
            workflow_id=workflow_id,
            plan=plan,
            result=result,
            error=error,
            injections=tuple(self.log.for_runs(runs)),
            replayed=replays is not None,
            args=tuple(args),
            answers=answers,
        )
        return outcome

    async def _result(self, handle: Any) -> Any:
        """The run's result, unless its workflow task gets stuck first (raises ``_Stuck``)."""
        waiting = asyncio.ensure_future(self._wait(handle))
        watching = asyncio.ensure_future(stuck_run(self.client, handle.id))
        try:
            await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done() and watching.exception() is not None:
                # The watch broke, not the run: its error is not the run's outcome.
                _logger.warning(
                    "the stuck-run watch of workflow %s failed (%r); waiting for its result",
                    handle.id,
                    watching.exception(),
                )
                await asyncio.wait({waiting})
        finally:
            watching.cancel()
            if not waiting.done():
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
        if waiting.done() and not waiting.cancelled():
            return waiting.result()
        raise _Stuck(watching.result())

    async def _wait(self, handle: Any) -> Any:
        if _waits_take_turns(self.client, handle):
            async with _result_lock(self.client):
                return await handle.result()
        return await handle.result()

    async def _give_up(self, workflow_id: str, run_id: str | None) -> _Overrun:
        """Say what an abandoned run was waiting on, then terminate it and its open children.

        The survey (each open run's pending activities, and on the time-skipping
        test server whether its clock still skips) is kept for :meth:`run`,
        which reports it, or runs the workflow again if the stall was the
        server's (see :class:`_Overrun`).
        """
        lines: list[str] = []
        still_open: list[tuple[str, str]] = []
        waits_on_held_only = True

        async def survey() -> None:
            nonlocal waits_on_held_only
            async for (wid, rid), _ in self.executions(workflow_id, run_id):
                described = await self.client.get_workflow_handle(wid, run_id=rid).describe()
                if described.status != temporalio.client.WorkflowExecutionStatus.RUNNING:
                    continue
                still_open.append((wid, rid))
                pending = described.raw_description.pending_activities
                lines.append(f"  {wid} was open with {len(pending)} pending activities")
                lines.extend(_pending_line(p) for p in pending[:SURVEYED_ACTIVITIES])
                timeouts = {
                    (i.activity, i.attempt)
                    for i in self.log.for_workflow(wid)
                    if i.kind == "timeout"
                }
                if any((p.activity_type.name, p.attempt) not in timeouts for p in pending):
                    waits_on_held_only = False

        try:
            await asyncio.wait_for(survey(), GIVE_UP_SECONDS)
        except (Exception, asyncio.TimeoutError) as err:
            lines.append(f"  (the survey of its runs stopped: {err!r})")
            waits_on_held_only = False
        probe: ClockProbe | None = None
        shared = shared_clock_unlock(self.client)
        if shared is not None:
            try:
                probe = await asyncio.wait_for(shared.probe(OVERRUN_PROBE), GIVE_UP_SECONDS)
            except (Exception, asyncio.TimeoutError):
                probe = None
        if probe is not None:
            lines.insert(0, f"  the test server's clock: {probe.describe()}")
        for wid, rid in reversed(still_open or [(workflow_id, run_id or "")]):
            try:
                await asyncio.wait_for(
                    self.client.get_workflow_handle(wid, run_id=rid or None).terminate(
                        reason="the harness gave up waiting for this run"
                    ),
                    GIVE_UP_SECONDS,
                )
            except (Exception, asyncio.TimeoutError):
                pass  # it ended meanwhile, or the server is gone: nothing left to stop
        stalled_by_server = probe is not None and not probe.skips(SKIP_RATIO) and waits_on_held_only
        overrun = _Overrun("\n".join(lines), stalled_by_server)
        if workflow_id in self._watched:  # nobody reads the survey of a run given up otherwise
            self._given_up[workflow_id] = overrun
        return overrun

    async def executions(
        self, workflow_id: str, run_id: str | None = None
    ) -> AsyncIterator[tuple[tuple[str, str], WorkflowHistory]]:
        """The histories of a run, the runs it continued as, and its child workflows (recursively).

        Yields ``((workflow id, run id), history)``; without ``run_id``, starts at the latest run.
        """
        pending = [(workflow_id, run_id)]
        while pending:
            wid, rid = pending.pop(0)
            history = await self.client.get_workflow_handle(wid, run_id=rid).fetch_history()
            started = history.events[0].workflow_execution_started_event_attributes
            yield (wid, rid or started.original_execution_run_id or ""), history
            for event in history.events:
                if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                    child = event.child_workflow_execution_started_event_attributes
                    pending.append(
                        (child.workflow_execution.workflow_id, child.workflow_execution.run_id)
                    )
                elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                    attrs = event.workflow_execution_continued_as_new_event_attributes
                    pending.append((wid, attrs.new_execution_run_id))

    async def replay(self, workflow_id: str, run_id: str | None = None) -> None:
        """Replay a run's history, its continued-as-new runs and its children against the code.

        Raises ``temporalio.workflow.NondeterminismError`` (or the replay's
        failure) if the code no longer produces a recorded history.
        """
        if self._replays is None:
            raise RuntimeError("FaultHarness.replay() needs replay_workflows=[...] at construction")
        async for _, history in self.executions(workflow_id, run_id):
            await self._replays.replay(history)

    async def aclose(self) -> None:
        """Stop the harness's replay worker (if it started one)."""
        if self._replays is not None:
            await self._replays.close()

    def run(
        self,
        workflow: Callable[..., Awaitable[T]] | str,
        *args: Any,
        plan: FaultPlan | None = None,
        id: str | None = None,
        timeout: float | None = 120.0,
        **options: Any,
    ) -> RunOutcome[T]:
        """Synchronous :meth:`execute`, for ``@given`` tests and state-machine rules.

        A run that has not ended after ``timeout`` seconds (real time) is
        terminated, with its open children, and :class:`TimeoutError` raised
        naming what each open run was waiting on.
        """
        if self.loop is None:
            raise RuntimeError(
                "FaultHarness.run() needs loop=EventLoopThread(); or await execute()"
            )
        workflow_id = id or unique_id(self.id_prefix)
        self._watched.add(workflow_id)
        try:
            for again in (True, False):
                try:
                    outcome = self.loop.run(
                        self.execute(workflow, *args, plan=plan, id=workflow_id, **options),
                        timeout=timeout,
                    )
                    break
                except TimeoutError as err:
                    overrun = self._given_up.pop(workflow_id, None)
                    if overrun is None:
                        raise  # not this harness's time limit
                    hooks = self.run_hooks
                    if again and overrun.stalled_by_server and hooks is not None:
                        if self.loop.run(hooks.replace_stalled_server(), timeout=120):
                            _note(f"workflow {workflow_id} overran on a stalled server; run again")
                            continue
                    raise TimeoutError(
                        f"workflow {workflow_id} did not end within {timeout} s ({err}); "
                        f"it was terminated.\n{overrun.survey}"
                    ) from None
        finally:
            self._watched.discard(workflow_id)
            self._given_up.pop(workflow_id, None)
        report_to_hypothesis(outcome)
        return outcome

    def run_many(
        self,
        workflow: Callable[..., Awaitable[T]] | str,
        args: Sequence[Sequence[Any]],
        *,
        plan: FaultPlan | None = None,
        plans: Sequence[FaultPlan | None] | None = None,
        concurrency: int | None = None,
        timeout: float | None = 600.0,
    ) -> list[RunOutcome[T]]:
        """Run several workflows at once (synchronous); outcomes in the order of ``args``.

        Every run gets ``plan``, or with ``plans`` its own (one per entry of
        ``args``), so one Hypothesis example can run a batch of drawn plans.
        ``concurrency`` bounds the runs in flight: a new one starts as one ends.
        """
        if plans is not None and len(plans) != len(args):
            raise ValueError(
                f"run_many(plans=...) has {len(plans)} plans for {len(args)} runs; "
                "give one plan per entry of args, or a single plan=..."
            )
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"run_many(concurrency={concurrency!r}) must be None or >= 1")
        each = list(plans) if plans is not None else [plan] * len(args)
        gate = asyncio.Semaphore(concurrency or max(1, len(args)))

        async def _one(run_args: Sequence[Any], run_plan: FaultPlan | None) -> RunOutcome[T]:
            async with gate:
                return await self.execute(workflow, *run_args, plan=run_plan)

        async def _all() -> list[RunOutcome[T]]:
            tasks = [asyncio.ensure_future(_one(a, p)) for a, p in zip(args, each, strict=True)]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                # gather() returns at the first run that raises (or ends cancelled); the
                # others are cancelled here and waited for, so each gives up its run first.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

        if self.loop is None:
            raise RuntimeError("FaultHarness.run_many() needs loop=EventLoopThread()")
        outcomes = self.loop.run(_all(), timeout=timeout)
        for outcome in outcomes:
            report_to_hypothesis(outcome)
        return outcomes
