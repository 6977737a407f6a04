"""Fault kinds that disrupt the workflow rather than the activity: worker restart, cancellation.

Each is attached to an activity call in a plan (``ScriptedFault(activity,
attempt, Restart())``), which fixes the point of the run where it happens.
Like :mod:`faults._plan`, this module imports nothing but the standard library
so it can run inside the workflow sandbox; :mod:`faults._disrupt` makes them
happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal


@dataclass(frozen=True)
class Restart:
    """The worker running the workflow restarts once the attempt's body has run.

    The attempt completes normally, and the workflow's worker drops the run
    from its cache: the workflow task that delivers the result replays the
    whole history from the start on a cold cache, as when a worker process
    dies between tasks and another takes over. Workflow code that behaves
    differently on that replay (it read a module global, the clock, a random
    number) fails the run there with a non-determinism error, on a worker with
    ``workflow_failure_exception_types=[NondeterminismError]`` (without it the
    workflow task retries until the code is fixed, as Temporal does).

    The run is evicted through the workers :class:`~faults.FaultPlugin` runs in
    the process that runs the activity: the workflow's worker must be one of
    them (as with the test harness), or the restart does not happen. A local
    activity runs inside a workflow task: a restart there does nothing.

    With ``during_task`` the workflow task that delivers the result fails
    instead (a crash in the middle of a task): the history shows a
    ``WorkflowTaskFailed`` naming ``InjectedRestart``, the SDK core evicts the
    run, and the server's retry of the task (its attempt 2) replays the history
    on a cold cache. Core reports only a task's first failed attempt, so
    non-determinism found on that replay is not reported: the task times out
    and retries until the code is fixed, as it would in production.
    """

    during_task: bool = False
    kind: ClassVar[str] = "restart"

    def __post_init__(self) -> None:
        if not isinstance(self.during_task, bool):
            from ._plan import FaultPlanError

            raise FaultPlanError(f"Restart.during_task={self.during_task!r} must be True or False")

    def describe(self) -> str:
        """A short human description, used in logs and reports."""
        return "restart(during task)" if self.during_task else "restart"


@dataclass(frozen=True)
class Cancel:
    """The workflow is cancelled while the attempt is in flight.

    A client requests cancellation of the workflow (a real
    ``WorkflowExecutionCancelRequested`` in its history) and the attempt waits
    until the workflow has handled the request. With ``body="never"`` (the
    default) the cancellation arrives after the calls before this one completed
    and before this one's body runs: a workflow that cancels the call never gets
    its effects. With ``body="before"`` the body runs first, so the call's
    effects happened though the cancelled workflow may never see its result.
    If the workflow cancelled the call, the attempt then ends with a
    non-retryable failure the workflow has stopped waiting for; if it kept
    waiting (a call shielded from cancellation), the attempt completes normally.
    On a local activity (which runs inside a workflow task, so the point where
    the workflow would see the request depends on timing) the attempt fails
    with a non-retryable error that says so.
    """

    body: Literal["never", "before"] = "never"
    kind: ClassVar[str] = "cancel"

    def __post_init__(self) -> None:
        if self.body not in ("never", "before"):
            from ._plan import FaultPlanError

            raise FaultPlanError(
                f"Cancel.body={self.body!r} must be 'never' (cancelled before the body runs) "
                "or 'before' (the body runs, then the workflow is cancelled)"
            )

    def describe(self) -> str:
        """A short human description, used in logs and reports."""
        return "cancel" if self.body == "never" else "cancel(after body)"


Disruption = Restart | Cancel
"""A fault that disrupts the workflow at an activity call."""
