"""The fault layer as a temporalio plugin: one argument installs it."""

from __future__ import annotations

import logging
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
from ._trust import PLAN_KEY_VARIABLE, PlanKey, as_plan_key, plan_key_from_environment

PLUGIN_NAME = "workflow-resilience.faults"
"""The name the plugin registers under."""

default_log = FaultLog()
"""The log used by plugins created without one (bounded: see :class:`FaultLog`)."""

logger = logging.getLogger("faults")


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

    **Trust.** A worker obeys a workflow's header plan only if it is signed
    with ``key`` for that workflow: the client's plugin signs the plans it
    stamps, the worker's verifies them (see :mod:`faults._trust`), so only
    clients holding the key can fault the worker. ``key`` is text or bytes
    (at least 16 bytes; :func:`faults.new_plan_key` makes one); by default
    the ``FAULTS_PLAN_KEY`` environment variable, read when the plugin
    configures a client, worker or replayer. The pytest plugin sets that
    variable to a fresh key for the session unless it is set already. A worker
    with no key ignores every header plan (and says so once when it starts);
    ``plan``, configured here, applies either way. Header plans the worker
    ignores are counted in ``log`` (:attr:`FaultLog.rejected_plans`). The key
    is never logged, and travels in no header: signatures do.

    ``max_delay`` bounds the delays a header plan may hold an attempt for
    (default: :func:`faults.max_delay` when the worker is built); a plan
    beyond it is ignored and counted.
    """

    def __init__(
        self,
        plan: FaultPlan | None = None,
        *,
        log: FaultLog | None = None,
        strict: bool = True,
        replay_activity_names: Iterable[str] | None = None,
        key: PlanKey | str | bytes | None = None,
        max_delay: float | None = None,
    ) -> None:
        super().__init__(PLUGIN_NAME)
        self.plan = plan
        self.log = log if log is not None else default_log
        self.strict = strict
        self.replay_activity_names = (
            frozenset(replay_activity_names) if replay_activity_names is not None else None
        )
        self._key = as_plan_key(key)
        self.max_delay = max_delay

    def plan_key(self) -> PlanKey | None:
        """The key this plugin signs and verifies plans with: its own, else the environment's."""
        return self._key if self._key is not None else plan_key_from_environment()

    def configure_client(
        self, config: temporalio.client.ClientConfig
    ) -> temporalio.client.ClientConfig:
        """Add the client interceptor, which signs plans with this plugin's key.

        It replaces a fault client interceptor already installed, so plans are stamped once.
        """
        others = [
            i for i in config.get("interceptors", []) if not isinstance(i, FaultClientInterceptor)
        ]
        config["interceptors"] = [*others, FaultClientInterceptor(self.plan_key())]
        return config

    def _worker_interceptor(
        self, activity_names: frozenset[str] | None, client: Any = None
    ) -> FaultWorkerInterceptor:
        interceptor = FaultWorkerInterceptor(
            self.log,
            plan=self.plan,
            activity_names=activity_names,
            client=client,
            key=self.plan_key(),
            max_delay=self.max_delay,
        )
        interceptor.owner = self
        return interceptor

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
            self._worker_interceptor(
                names if self.strict and names else None, client=config.get("client")
            ),
        ]
        return config

    async def run_worker(
        self,
        worker: temporalio.worker.Worker,
        next: Callable[[temporalio.worker.Worker], Awaitable[None]],
    ) -> None:
        """Run the worker; while it runs, a :class:`~faults.Restart` can evict its runs.

        A worker whose fault interceptor (this plugin's) has no key says once,
        as it starts, that it ignores header plans and how to give it a key.
        """
        installed = [
            i
            for i in worker.config(active_config=True).get("interceptors", ())
            if isinstance(i, FaultWorkerInterceptor)
        ]
        if installed and installed[-1].owner is self and installed[-1].key is None:
            logger.warning(
                "fault worker on task queue %r has no plan key, so it ignores the fault plans "
                "clients stamp on workflows (its own default plan still applies); to obey "
                "plans from trusted clients, set %s to one secret (faults.new_plan_key() makes "
                "one) on those clients and this worker, or pass FaultPlugin(key=...)",
                worker.task_queue,
                PLAN_KEY_VARIABLE,
            )
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
            self._worker_interceptor(self.replay_activity_names if self.strict else None),
        ]
        return config


def client_plan_key(client: temporalio.client.Client) -> PlanKey | None:
    """The key ``client``'s fault plugin signs plans with, or ``None``."""
    for interceptor in client.config(active_config=True).get("interceptors", ()):
        if isinstance(interceptor, FaultClientInterceptor):
            return interceptor.key
    return None
