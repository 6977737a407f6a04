"""The fault layer as a temporalio plugin: one argument installs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import temporalio.activity
import temporalio.client
import temporalio.worker
from temporalio.plugin import SimplePlugin

from ._disrupt import tracking
from ._interceptor import FaultClientInterceptor, FaultWorkerInterceptor
from ._log import FaultLog
from ._plan import FaultPlan, check_plan_against

PLUGIN_NAME = "workflow-resilience.faults"
"""The name the plugin registers under."""

default_log = FaultLog()
"""The log used by plugins created without one."""


def activity_names(activities: Iterable[Callable[..., Any]]) -> frozenset[str]:
    """The activity type names of activity callables (dynamic activities are skipped)."""
    names = set()
    for fn in activities:
        defn = temporalio.activity._Definition.from_callable(fn)
        if defn is not None and defn.name:
            names.add(defn.name)
    return frozenset(names)


class FaultPlugin(SimplePlugin):
    """Installs fault injection on a client and/or worker.

    On a client it stamps the plan of :func:`faults.injecting` on started
    workflows; on a worker it injects each workflow's plan into the activities
    it runs, and records every injection in ``log``. ``plan`` is a default for
    workflows that carry none (for chaos runs over unmodified code). With
    ``strict`` a plan naming no activity the worker registers is refused: the
    default plan when the worker is built, a workflow's plan when the workflow
    starts (it fails with ``FaultPlanError`` before any activity runs). A worker
    that registers no activities (workflows only) checks nothing; a worker whose
    workflows also call activities on other task queues needs ``strict=False``.

    A replayer registers no activities: give it the original worker's
    activity names as ``replay_activity_names`` so it makes the same strict
    check the worker made, and histories of refused plans replay.

    When a worker gets the plugin both from its client and directly, the one
    passed to the worker wins; faults are never injected twice.
    """

    def __init__(
        self,
        plan: FaultPlan | None = None,
        *,
        log: FaultLog | None = None,
        strict: bool = True,
        replay_activity_names: Iterable[str] | None = None,
    ) -> None:
        super().__init__(PLUGIN_NAME, interceptors=[FaultClientInterceptor()])
        self.plan = plan
        self.log = log if log is not None else default_log
        self.strict = strict
        self.replay_activity_names = (
            frozenset(replay_activity_names) if replay_activity_names is not None else None
        )

    def configure_client(
        self, config: temporalio.client.ClientConfig
    ) -> temporalio.client.ClientConfig:
        """Add the client interceptor unless one is already installed."""
        existing = list(config.get("interceptors", []))
        if not any(isinstance(i, FaultClientInterceptor) for i in existing):
            config["interceptors"] = [*existing, FaultClientInterceptor()]
        return config

    def configure_worker(
        self, config: temporalio.worker.WorkerConfig
    ) -> temporalio.worker.WorkerConfig:
        """Add this worker's fault interceptor, validating the default plan."""
        names = activity_names(config.get("activities", ()))
        if self.plan is not None and self.strict and names:
            check_plan_against(self.plan, names)
        others = [
            i for i in config.get("interceptors", ()) if not isinstance(i, FaultWorkerInterceptor)
        ]
        config["interceptors"] = [
            *others,
            FaultWorkerInterceptor(
                self.log,
                plan=self.plan,
                activity_names=names if self.strict and names else None,
                client=config.get("client"),
            ),
        ]
        return config

    async def run_worker(
        self,
        worker: temporalio.worker.Worker,
        next: Callable[[temporalio.worker.Worker], Awaitable[None]],
    ) -> None:
        """Run the worker; while it runs, a :class:`~faults.Restart` can evict its runs."""
        with tracking(worker):
            await super().run_worker(worker, next)

    def configure_replayer(
        self, config: temporalio.worker.ReplayerConfig
    ) -> temporalio.worker.ReplayerConfig:
        """Replay with the workflow side of the layer, so histories it shaped replay."""
        others = [
            i for i in config.get("interceptors", ()) if not isinstance(i, FaultWorkerInterceptor)
        ]
        config["interceptors"] = [
            *others,
            FaultWorkerInterceptor(
                self.log,
                plan=self.plan,
                activity_names=self.replay_activity_names if self.strict else None,
            ),
        ]
        return config
