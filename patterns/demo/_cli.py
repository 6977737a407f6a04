"""``python -m patterns``: every pattern on an embedded dev server (or a cluster), with a report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import NamedTuple, NoReturn

from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

import faults
import faults.testing

from .._sqlite import ServiceDatabaseError
from ._breaker import demonstrate as demonstrate_breaker
from ._chaos import DEFAULT_CONCURRENCY, STAGE_EVERY, saga_chaos
from ._explore import explore_saga
from ._fanout import demonstrate as demonstrate_fanout
from ._report import Demonstration, DemoReport, Say
from ._saga import demonstrate as demonstrate_saga

PATTERNS: dict[str, Demonstration] = {
    "saga": demonstrate_saga,
    "fanout": demonstrate_fanout,
    "breaker": demonstrate_breaker,
}
"""The demonstrations, in the order they run, by the name ``--only`` takes."""

PROGRESS_SECONDS = 3.0
"""How often a long step reports that it is still running."""

DEFAULT_FAULTS = "fail=0.1,delay=0.05,duplicate=0.1,delay_seconds=0.05"

DEFAULT_WORKER_PROCESSES = 1
"""Worker processes ``--chaos --only saga`` starts (``--worker-processes``)."""


class RunFaults(NamedTuple):
    """A run's fault log, the key its client signs plans with, and a way to start a fresh
    server like the run's (``None`` when the run's server is not one to replace)."""

    log: faults.FaultLog
    key: str
    fresh_server: Callable[[], Awaitable[WorkflowEnvironment]] | None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m patterns",
        description="Run the saga, fan-out/fan-in and circuit-breaker demonstrations under a "
        "seeded chaos plan on an embedded Temporal dev server (or an existing cluster) and "
        "report what happened, which faults were injected and which invariants held.",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed for data and faults (default 7)")
    parser.add_argument(
        "--faults",
        default=DEFAULT_FAULTS,
        metavar="SPEC",
        help="chaos plan as NAME=PROBABILITY pairs, e.g. 'fail=0.2,delay=0.1,duplicate=0.1' "
        f"(default {DEFAULT_FAULTS!r}; 'none' for no faults)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="host:port of an existing cluster instead of the embedded dev server "
        "(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API-key settings also apply)",
    )
    parser.add_argument("--namespace", default=None, help="namespace on an existing cluster")
    parser.add_argument(
        "--ui",
        action="store_true",
        help="keep the embedded dev server and its Web UI up afterwards (Ctrl-C to stop)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="directory for the services' SQLite databases (default: a new temporary one)",
    )
    parser.add_argument(
        "--chaos",
        type=int,
        default=0,
        metavar="N",
        help="instead of the report, run N chaos schedules (seeds SEED, SEED+1, ...) with "
        "progress, stopping at the first violated invariant with the seed that reproduces it",
    )
    parser.add_argument(
        "--explore",
        type=int,
        default=0,
        metavar="N",
        help="with --only saga, instead of the report: run every single-fault schedule of an "
        "order (each activity call x each fault shape), then pairs, up to N runs, stopping at "
        "the first violated invariant, shrunk, with the line that reproduces it",
    )
    parser.add_argument(
        "--only",
        choices=list(PATTERNS),
        action="append",
        help="run only this pattern (repeatable)",
    )
    parser.add_argument(
        "--server",
        choices=("dev", "time-skipping"),
        default=None,
        help="the embedded server: the dev server (the report's default) or the time-skipping "
        "test server (the default of --chaos without the breaker, whose open period runs on "
        "the wall clock)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"--chaos --only saga: schedules in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=None,
        metavar="N",
        help=f"--chaos --only saga: run the worker in N processes of its own on this machine "
        f"(default {DEFAULT_WORKER_PROCESSES}: the orders and their checks keep this process's "
        "core; 0 runs the worker in this process)",
    )
    parser.add_argument(
        "--external-workers",
        action="store_true",
        help="--chaos --only saga against --address: start no worker here; worker processes "
        "('python -m faults worker --setup patterns.demo:saga_registration' with SAGA_CHAOS_DB "
        "naming WORKDIR/saga/saga-chaos.sqlite) serve the task queue 'saga-chaos'",
    )
    return parser


def _plan(parser: argparse.ArgumentParser, spec: str, seed: int) -> faults.FaultPlan | None:
    try:
        return _chaos_plan(spec, seed)
    except faults.FaultPlanError as err:
        parser.error(f"argument --faults: {err}")


def _ui_port(client: Client) -> int:
    """The Web UI's port on an embedded dev server started with ``ui=True`` and no UI port.

    The server's own port is chosen and held by the SDK as it starts the server,
    which serves the UI 1000 ports above it: nothing here picks a port and binds it
    later, so no other process can take it in between.
    """
    return int(client.service_client.config.target_host.rsplit(":", 1)[1]) + 1000


def _server(args: argparse.Namespace, selected: Sequence[str]) -> str:
    """The embedded server to start: as asked, else time skipping for chaos without the breaker."""
    if args.server is not None:
        return str(args.server)
    searching = args.chaos or args.explore
    return "time-skipping" if searching and "breaker" not in selected else "dev"


async def _run(args: argparse.Namespace, plan: faults.FaultPlan | None) -> int:
    log = faults.FaultLog()
    # Client and in-process workers share one plugin, so a fresh key serves them; worker
    # processes get it in their environment (FAULTS_PLAN_KEY), or with --external-workers
    # read the one their operator gave both sides.
    key = os.environ.get(faults.PLAN_KEY_VARIABLE) or faults.new_plan_key()
    plugin = faults.FaultPlugin(log=log, strict=False, key=key)
    selected = [n for n in PATTERNS if not args.only or n in args.only]
    # Only the time-skipping server slows as it serves runs: a chaos run replaces it.
    fresh_server: Callable[[], Awaitable[WorkflowEnvironment]] | None = None
    if args.address:
        say(f"connecting to {args.address} ...")
        env = await faults.testing.start_environment(
            "external", plugins=[plugin], address=args.address, namespace=args.namespace
        )
    elif _server(args, selected) == "time-skipping":
        say("starting the embedded Temporal time-skipping test server on 127.0.0.1 ...")
        fresh_server = functools.partial(
            faults.testing.start_environment, "time-skipping", plugins=[plugin]
        )
        env = await fresh_server()
    else:
        say("starting the embedded Temporal dev server on 127.0.0.1 ...")
        env = await faults.testing.start_environment("dev", plugins=[plugin], ui=args.ui)
    with contextlib.ExitStack() as keep:
        if args.workdir is not None:
            workdir = args.workdir
        elif args.ui:  # the Web UI's workflows refer to these databases: keep them
            workdir = Path(tempfile.mkdtemp(prefix="workflow-resilience-"))
            say(f"services' databases in {workdir} (kept with --ui)")
        else:
            workdir = Path(keep.enter_context(_scratch_directory()))
        async with env:
            ui_port = _ui_port(env.client) if args.ui and not args.address else None
            return await _report_or_chaos(
                env.client,
                args,
                plan,
                selected,
                workdir,
                RunFaults(log, key, fresh_server),
                ui_port,
            )


def _scratch_directory() -> tempfile.TemporaryDirectory[str]:
    """The services' databases of a run without ``--workdir``: removed when the run ends."""
    return tempfile.TemporaryDirectory(prefix="workflow-resilience-", ignore_cleanup_errors=True)


async def _report_or_chaos(
    client: Client,
    args: argparse.Namespace,
    plan: faults.FaultPlan | None,
    selected: Sequence[str],
    workdir: Path,
    faults_of_run: RunFaults,
    ui_port: int | None,
) -> int:
    """The report of every selected demonstration (or ``--chaos`` runs); the exit status."""
    if args.chaos:
        return await _chaos(client, args, selected, workdir, faults_of_run)
    log = faults_of_run.log
    say(f"plan: {plan.describe() if plan else 'no faults'}")
    reports = await _demonstrate(client, selected, args.seed, plan, workdir, say)
    _print_report(reports, log)
    if args.ui and ui_port is not None:
        say(f"\nWeb UI: http://127.0.0.1:{ui_port}  (Ctrl-C to stop the server)")
        try:
            await faults.testing.until_interrupted()
        except asyncio.CancelledError:  # a Ctrl-C that came before the wait began
            pass
    return 0 if all(r.ok for r in reports) else 1


async def _demonstrate(
    client: Client,
    selected: Sequence[str],
    seed: int,
    plan: faults.FaultPlan | None,
    workdir: Path,
    out: Say,
) -> list[DemoReport]:
    reports = []
    for name in selected:
        out(f"\n== {name}")
        started = time.perf_counter()
        (workdir / name).mkdir(parents=True, exist_ok=True)
        ticker = asyncio.create_task(_progress(name, started, out))
        try:
            report: DemoReport = await PATTERNS[name](
                client, seed=seed, plan=plan, workdir=workdir / name, say=out
            )
        finally:
            ticker.cancel()
        out(f"   ({time.perf_counter() - started:.1f} s)")
        reports.append(report)
    return reports


def _chaos_plan(spec: str, seed: int) -> faults.FaultPlan | None:
    return (
        None if spec.strip().lower() in ("", "none") else faults.RandomPlan.parse(spec, seed=seed)
    )


async def _progress(name: str, started: float, out: Say, every: float = PROGRESS_SECONDS) -> None:
    """Say that a long step is still running, every ``every`` seconds."""
    while True:
        await asyncio.sleep(every)
        out(f"   ... {name} still running ({time.perf_counter() - started:.0f} s)")


async def _chaos(
    client: Client,
    args: argparse.Namespace,
    selected: Sequence[str],
    workdir: Path,
    faults_of_run: RunFaults,
) -> int:
    """Run ``args.chaos`` seeded fault schedules; stop at the first violated invariant."""
    if list(selected) == ["saga"]:
        return await _saga_chaos(client, args, workdir, faults_of_run)
    log = faults_of_run.log
    started = time.perf_counter()
    for i in range(args.chaos):
        seed = args.seed + i
        plan = _chaos_plan(args.faults, seed)
        lines: list[str] = []
        injected_before = len(log)
        reports = await _demonstrate(
            client, selected, seed, plan, workdir / f"run-{seed}", lines.append
        )
        elapsed = time.perf_counter() - started
        if not all(r.ok for r in reports):
            for line in lines:
                say(line)
            this_run = faults.FaultLog()
            for injection in log.since(injected_before):
                this_run.record(injection)
            _print_report(reports, this_run)
            only = "".join(f" --only {n}" for n in selected)
            say(
                f"\nchaos run {i + 1} of {args.chaos} violated an invariant; reproduce with:\n"
                f"  python -m patterns --seed {seed} --faults '{args.faults}'{only}"
            )
            return 1
        say(f"chaos {i + 1}/{args.chaos}: seed {seed} held ({(i + 1) / elapsed:.2f} runs/s)")
    say(f"\n{args.chaos} chaos runs, every invariant held")
    return 0


async def _saga_chaos(
    client: Client,
    args: argparse.Namespace,
    workdir: Path,
    faults_of_run: RunFaults,
) -> int:
    """Saga schedules ``args.concurrency`` at a time on one worker (see ``_chaos.py``)."""
    log, key, fresh_server = faults_of_run
    (workdir / "saga").mkdir(parents=True, exist_ok=True)
    if args.worker_processes:
        say(f"the worker runs in {args.worker_processes} process(es) of its own")
    result = await saga_chaos(
        client,
        seeds=range(args.seed, args.seed + args.chaos),
        plan_for=lambda seed: _chaos_plan(args.faults, seed),
        workdir=workdir / "saga",
        say=say,
        concurrency=args.concurrency,
        external_workers=args.external_workers,
        worker_processes=args.worker_processes,
        plan_key=key,
        log=log,
        environment_config=bool(args.address),
        fresh_server=fresh_server,
    )
    say(log.summary())
    if result.violation is not None:
        seed, runs = result.violation
        for run in runs:
            say(f"order {run.order.order_id} ({run.label}): {run.outcome}; journal {run.journal}")
            for check in run.checks:
                if not check.held:
                    say(f"  [VIOLATED] {check.name}: {check.detail}")
        say(
            f"\nchaos: seed {seed} violated an invariant after {result.held} schedules held; "
            "reproduce with:\n"
            f"  python -m patterns --seed {seed} --faults '{args.faults}' --only saga"
        )
        return 1
    say(
        f"\n{result.held} chaos schedules, every invariant held "
        f"({result.held / result.seconds:.2f} schedules/s, {result.seconds:.0f} s; "
        f"the stage claim asked in one schedule of {STAGE_EVERY})"
    )
    return 0


def _explore(args: argparse.Namespace) -> int:
    """Explore the saga's fault schedules (see ``_explore.py``); 1 if an invariant broke."""
    kind = "external" if args.address else _server(args, ["saga"])
    key = os.environ.get(faults.PLAN_KEY_VARIABLE) or faults.new_plan_key()
    with contextlib.ExitStack() as keep:
        workdir = args.workdir or Path(keep.enter_context(_scratch_directory()))
        report = explore_saga(
            kind,  # type: ignore[arg-type]
            budget=args.explore,
            seed=args.seed,
            workdir=workdir,
            say=say,
            key=key,
            address=args.address,
            namespace=args.namespace,
        )
    say(report.describe())
    return 0 if report.violation is None else 1


def say(line: str) -> None:
    """Print one line of progress, at once."""
    print(line, flush=True)


def _print_report(reports: Sequence[DemoReport], log: faults.FaultLog) -> None:
    say("\n================ report ================")
    for report in reports:
        say(f"\n{report.pattern}")
        for line in report.summary:
            say(f"  {line}")
        for check in report.checks:
            mark = "held    " if check.held else "VIOLATED"
            say(f"  [{mark}] {check.name}" + (f": {check.detail}" if check.detail else ""))
    say("")
    say(log.summary())
    violated = [c.name for r in reports for c in r.checks if not c.held]
    total = sum(len(r.checks) for r in reports)
    say(
        f"\n{total - len(violated)} of {total} invariants held"
        + (f"; violated: {', '.join(violated)}" if violated else "")
    )


def _quiet_expected_failures() -> None:
    """Injected faults are expected: keep the SDK's per-attempt failure logs out of the report."""
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    Runtime.set_default(
        Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        ),
        error_if_already_set=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m patterns`` and ``workflow-resilience-demo``."""
    parser = _parser()
    args = parser.parse_args(argv)
    _quiet_expected_failures()
    if args.workdir is not None and not args.workdir.is_dir():
        parser.error(f"argument --workdir: {args.workdir} is not a directory; create it first")
    if args.chaos < 0:
        parser.error(f"argument --chaos: {args.chaos} is negative; pass a number of runs >= 1")
    if args.concurrency < 1:
        parser.error(f"argument --concurrency: {args.concurrency} must be >= 1")
    if args.external_workers and not (args.address and args.chaos and args.only == ["saga"]):
        parser.error(
            "argument --external-workers: needs --address, --chaos N and --only saga "
            "(worker processes serve the saga chaos task queue of a cluster)"
        )
    if args.worker_processes is not None and args.worker_processes < 0:
        parser.error(
            f"argument --worker-processes: {args.worker_processes} is negative; pass 0 to run "
            "the worker in this process, or a number of worker processes"
        )
    if args.worker_processes and (args.external_workers or args.only != ["saga"] or not args.chaos):
        parser.error(
            "argument --worker-processes: starts saga chaos workers here; pass --chaos N and "
            "--only saga, and no --external-workers (which starts none)"
        )
    if args.worker_processes is None:
        args.worker_processes = 0 if args.external_workers else DEFAULT_WORKER_PROCESSES
    if args.external_workers and not os.environ.get(faults.PLAN_KEY_VARIABLE):
        parser.error(
            f"argument --external-workers: set {faults.PLAN_KEY_VARIABLE} to one secret in this "
            "process's and the worker processes' environments (faults.new_plan_key() makes one), "
            "so the workers obey the fault plans this client signs"
        )
    if args.explore < 0:
        parser.error(f"argument --explore: {args.explore} is negative; pass a budget of runs >= 1")
    if args.explore and (args.only != ["saga"] or args.chaos):
        parser.error(
            "argument --explore: explores the saga only, instead of --chaos; "
            "pass --only saga and no --chaos"
        )
    plan = _plan(parser, args.faults, args.seed)
    try:
        if args.explore:
            return _explore(args)
        return asyncio.run(_run(args, plan))
    except (ConnectionError, faults.testing.WorkerProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except ServiceDatabaseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """Process entry point: :func:`main`, then exit without interpreter teardown.

    The SDK's Rust runtime threads can outlive the event loop and abort the
    interpreter while it finalises (temporalio/sdk-python issue #300), turning a
    clean run into exit status 134; exiting directly after flushing avoids it.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
