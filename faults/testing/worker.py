"""``python -m faults worker``: a worker process with the fault layer, for multi-process chaos.

    python -m faults worker --address 127.0.0.1:7233 --task-queue orders \\
        --setup myproject.worker:registration [--plan '{"kind":"random",...}'] [--log faults.jsonl]

The connection takes TLS, an API key and the rest from the Temporal environment
configuration, as every client here does; ``--no-environment-config`` connects to
``--address`` as given (an embedded server on this machine). With ``--parent-pid``
the worker shuts down once that process, its parent, has ended, even by SIGKILL.

``--setup`` names a function returning ``{"workflows": [...], "activities": [...]}``
(it may read its own configuration from the environment). The process runs
until it is stopped: Ctrl-C (SIGINT) or SIGTERM shuts the worker down
(``Worker.shutdown()``) and exits with status 0, and a test can SIGKILL it at
any point and start another. Injections are appended to ``--log`` as JSON lines.

The worker obeys the fault plans clients stamp on workflows only if they are
signed with the key in the ``FAULTS_PLAN_KEY`` environment variable (give the
clients the same key); without it, it ignores them and says so as it starts.
``--plan`` is the worker's own default plan and needs no key. ``--max-delay``
raises (or lowers) the longest delay a plan may hold an attempt for
(:data:`faults.DEFAULT_MAX_DELAY` by default).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.worker import Worker

from .._log import FaultLog
from .._plan import FaultPlanError, plan_from_json, set_max_delay
from .._plugin import FaultPlugin
from .._trust import plan_key_from_environment
from ._embedded import connect
from ._process import WORKER_READY
from ._signals import until_interrupted


def _load(spec: str) -> Callable[[], dict[str, Any]]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--setup {spec!r} must look like package.module:function")
    function: Callable[[], dict[str, Any]] = getattr(importlib.import_module(module_name), attr)
    return function


async def _serve(args: argparse.Namespace) -> None:
    registration = _load(args.setup)()
    plan = plan_from_json(args.plan) if args.plan else None
    plugin = FaultPlugin(
        plan, log=FaultLog(args.log), strict=plan is not None, max_delay=args.max_delay
    )
    client = await connect(
        args.address,
        namespace=args.namespace,
        plugins=[plugin],
        environment=not args.no_environment_config,
    )
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=list(registration.get("workflows", ())),
        activities=list(registration.get("activities", ())),
        **registration.get("options", {}),
    )
    stop = asyncio.create_task(until_interrupted((signal.SIGINT, signal.SIGTERM)))
    await asyncio.sleep(0)  # the stop task installs its signal handlers before "ready"
    if stop.done():
        stop.result()  # the handlers could not be installed: say why
    ends: set[asyncio.Task[Any]] = {stop}
    if args.parent_pid is not None:
        ends.add(asyncio.create_task(_until_orphaned(args.parent_pid)))
    print(f"{WORKER_READY} {args.task_queue}", flush=True)
    run = asyncio.create_task(worker.run())
    await asyncio.wait({run, *ends}, return_when=asyncio.FIRST_COMPLETED)
    ended = any(end.done() for end in ends)
    for end in ends:
        if end.done():
            end.result()  # signal handlers that could not be installed raise here
        else:
            end.cancel()
    if ended:
        await worker.shutdown()
    await run  # a worker that failed raises here


async def _until_orphaned(parent: int, every: float = 1.0) -> None:
    """Return once ``parent`` is no longer this process's parent: it has ended."""
    while os.getppid() == parent:
        await asyncio.sleep(every)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m faults worker``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m faults")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run a worker with the fault layer")
    worker.add_argument("--address", required=True, help="host:port of the Temporal frontend")
    worker.add_argument("--namespace", default=None)
    worker.add_argument(
        "--no-environment-config",
        action="store_true",
        help="connect to --address as given, with no TLS, API key or profile from the Temporal "
        "environment configuration (an embedded server on this machine)",
    )
    worker.add_argument("--task-queue", required=True)
    worker.add_argument("--setup", required=True, help="package.module:function")
    worker.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        metavar="PID",
        help="shut down, as on SIGTERM, once process PID is no longer this one's parent "
        "(the program that started this worker has ended, however it ended)",
    )
    worker.add_argument("--plan", default=None, help="a default fault plan as JSON")
    worker.add_argument("--log", default=None, help="append injections to this JSON-lines file")
    worker.add_argument(
        "--max-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the longest delay a fault plan may hold an attempt for (default 300)",
    )
    args = parser.parse_args(argv)
    if args.parent_pid is not None and args.parent_pid < 1:
        parser.error(f"argument --parent-pid: {args.parent_pid} is not a process id")
    try:
        if args.max_delay is not None:
            set_max_delay(args.max_delay)
        plan_key_from_environment()  # a key too short to trust is refused here
        _load(args.setup)
        if args.plan:
            plan_from_json(args.plan)
    except (ValueError, ImportError, AttributeError, FaultPlanError) as err:
        parser.error(str(err))
    try:
        asyncio.run(_serve(args))
    except ConnectionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    return 0
