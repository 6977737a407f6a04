"""``python -m patterns``: a full run, bad arguments, an unreachable cluster."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import faults

from .processes import pids_running, read_or_empty


def demo(*args: str, timeout: float = 300, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEMPORAL_API_KEY": "sk-demo-secret-do-not-print", **env_vars}
    return subprocess.run(
        [sys.executable, "-m", "patterns", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_full_demonstration_reports_every_invariant_held() -> None:
    result = demo("--seed", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for section in ("saga", "fan-out", "breaker"):
        assert section in out
    assert "faults injected:" in out
    assert "VIOLATED" not in out
    held = [line for line in out.splitlines() if "[held    ]" in line]
    assert len(held) >= 10
    assert "invariants held" in out.splitlines()[-1]


def test_a_run_without_workdir_removes_what_it_created(tmp_path: Path) -> None:
    result = demo("--only", "saga", "--faults", "none", TMPDIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "invariants held" in result.stdout
    assert not list(tmp_path.glob("workflow-resilience-*")), "the demo left its databases"


def test_saga_chaos_runs_schedules_at_once_and_a_seed_replays_its_faults() -> None:
    """``--chaos N --only saga``: every schedule held, and the same seeds inject the same faults.

    Once with the worker in a process of its own (the default), whose injections reach the
    summary through its fault log file, and once in the command's own process.
    """
    summaries = []
    for processes in ("1", "0"):
        result = demo(
            *("--only", "saga", "--chaos", "12", "--seed", "40", "--concurrency", "4"),
            *("--worker-processes", processes),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "time-skipping test server" in out
        assert ("the worker runs in 1 process(es) of its own" in out) == (processes == "1")
        assert "12 chaos schedules, every invariant held" in out
        assert "the stage claim asked in one schedule of 10" in out  # seeds 40 and 50
        summary = out[out.index("faults injected:") : out.index("12 chaos schedules")]
        assert "fail" in summary
        summaries.append(summary)
    assert summaries[0] == summaries[1]


def test_saga_chaos_stops_with_the_reason_when_a_worker_process_dies(
    temporal_loop: Any, tmp_path: Path
) -> None:
    """A chaos run whose worker process is SIGKILLed ends with that process's output.

    Its orders would otherwise wait for a worker forever. The kill comes after the
    process said it was ready, so the run is under way by construction.
    """
    from patterns.demo._chaos import saga_chaos

    key = faults.new_plan_key()
    fault_file = tmp_path / "worker-1.faults.jsonl"

    async def chaos_then_kill() -> BaseException | None:
        env = await faults.testing.start_environment(
            "time-skipping", plugins=[faults.FaultPlugin(key=key)]
        )
        async with env:
            run = asyncio.create_task(
                saga_chaos(
                    env.client,
                    seeds=range(1, 100_000),
                    plan_for=lambda seed: faults.RandomPlan.parse("fail=0.1", seed=seed),
                    workdir=tmp_path,
                    say=lambda line: None,
                    worker_processes=1,
                    plan_key=key,
                    progress_seconds=0.2,
                )
            )
            while faults.testing.WORKER_READY not in read_or_empty(tmp_path / "worker-1.log"):
                assert not run.done(), run
                await asyncio.sleep(0.05)
            [pid] = pids_running(str(fault_file))
            os.kill(pid, signal.SIGKILL)
            try:
                await asyncio.wait_for(run, 60)
            except faults.testing.WorkerProcessError as err:
                return err
            return None

    error = temporal_loop.run(chaos_then_kill(), timeout=120)
    assert error is not None, "the run should end with the worker process's error"
    assert "worker process 1 exited with status -9 during the run" in str(error)
    assert f"its output ({tmp_path / 'worker-1.log'}) ends" in str(error)


def test_saga_chaos_moves_to_a_fresh_server_every_rotate_every_schedules(
    temporal_loop: Any, tmp_path: Path
) -> None:
    """Six schedules, two per server: two fresh servers and worker processes, all held."""
    from patterns.demo._chaos import saga_chaos

    key = faults.new_plan_key()
    plugin = faults.FaultPlugin(key=key)
    log = faults.FaultLog()
    lines: list[str] = []
    fresh: list[Any] = []

    async def fresh_server() -> Any:
        env = await faults.testing.start_environment("time-skipping", plugins=[plugin])
        fresh.append(env)
        return env

    async def chaos() -> Any:
        async with await faults.testing.start_environment("time-skipping", plugins=[plugin]) as env:
            return await saga_chaos(
                env.client,
                seeds=range(60, 66),
                plan_for=lambda seed: faults.RandomPlan.parse("fail=0.2", seed=seed),
                workdir=tmp_path,
                say=lines.append,
                concurrency=2,
                worker_processes=1,
                plan_key=key,
                log=log,
                fresh_server=fresh_server,
                rotate_every=2,
            )

    result = temporal_loop.run(chaos(), timeout=300)
    assert (result.held, result.violation) == (6, None)
    assert [line for line in lines if "fresh server" in line] == [
        "chaos: a fresh server after 2 schedules",
        "chaos: a fresh server after 4 schedules",
    ]
    addresses = {env.client.service_client.config.target_host for env in fresh}
    assert len(addresses) == 2, "each rotation should start a server of its own"
    # The third worker process's injections reached the log too: its file holds seeds 64-65.
    injected = faults.FaultLog.load(tmp_path / "worker-1.faults.jsonl")
    seeds = {i.workflow_id.removeprefix("saga-demo-order-").split("-")[0] for i in injected}
    assert seeds >= {"64", "65"}, seeds
    assert sum(log.counts().values()) == len(injected) > 0


def test_chaos_command_exits_3_with_the_reason_when_its_worker_process_dies(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-m", "patterns", "--only", "saga", "--chaos", "100000"]
    with subprocess.Popen(
        [*command, "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as chaos:
        try:
            fault_file = str(tmp_path / "saga" / "worker-1.faults.jsonl")
            deadline = time.monotonic() + 120  # bounds a broken run only
            output = tmp_path / "saga" / "worker-1.log"
            while faults.testing.WORKER_READY not in read_or_empty(output):
                assert chaos.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            [pid] = pids_running(fault_file)
            os.kill(pid, signal.SIGKILL)
            _, stderr = chaos.communicate(timeout=120)
        finally:
            chaos.kill()
    assert chaos.returncode == 3, stderr
    assert "error: worker process 1 exited with status -9 during the run" in stderr
    assert "Traceback" not in stderr


def test_saga_exploration_runs_each_single_fault_schedule_in_order() -> None:
    """``--explore N --only saga``: the calls of a fault-free order, then one fault per run."""
    result = demo("--only", "saga", "--explore", "12")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "explored 6 calls: 12/" in out
    for call in ("check_catalog", "charge", "reserve", "ship", "confirm"):
        assert f"call {call}[" in out
    assert "; 0 injected nothing)" in out
    assert "no invariant broke" in out


def test_a_given_workdir_keeps_the_services_databases(tmp_path: Path) -> None:
    result = demo("--only", "saga", "--faults", "none", "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "saga" / "saga-services.sqlite").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "fail=1.5"], "FaultRule.fail=1.5 is outside [0, 1]"),
        (["--faults", "explode=0.1"], "'explode=0.1' is not NAME=VALUE"),
        (["--seed", "many"], "argument --seed: invalid int value: 'many'"),
        (["--only", "bulkhead"], "argument --only: invalid choice: 'bulkhead'"),
        (["--chaos", "-3"], "argument --chaos: -3 is negative"),
        (["--chaos", "5", "--concurrency", "0"], "argument --concurrency: 0 must be >= 1"),
        (["--chaos", "5", "--external-workers"], "argument --external-workers: needs --address"),
        (["--chaos", "5", "--worker-processes", "-1"], "argument --worker-processes: -1 is"),
        (
            ["--chaos", "5", "--only", "saga", "--worker-processes", "2"]
            + ["--address", "x:1", "--external-workers"],
            "argument --worker-processes: starts saga chaos workers here",
        ),
        (["--worker-processes", "2"], "pass --chaos N and --only saga"),
        (["--workdir", "/nonexistent/dir"], "/nonexistent/dir is not a directory"),
        (["--explore", "-1"], "argument --explore: -1 is negative"),
        (["--explore", "5"], "argument --explore: explores the saga only"),
    ],
)
def test_bad_arguments_exit_2_with_usage(args: list[str], message: str) -> None:
    result = demo(*args, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m patterns")
    assert message in result.stderr


def test_unreachable_cluster_fails_within_seconds_without_printing_credentials() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = demo("--address", f"127.0.0.1:{port}", timeout=60)
    assert result.returncode == 3
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in result.stderr
    assert time.monotonic() - started < 30
    assert "sk-demo-secret" not in result.stdout + result.stderr


def test_the_same_seed_injects_the_same_faults_again(
    temporal_loop: Any, temporal_dev_env: Any, fault_log: Any, tmp_path: Path
) -> None:
    """What ``--chaos`` promises: rerunning a seed replays its fault schedule exactly."""
    from patterns.demo import demonstrate_saga as demonstrate

    plan = faults.RandomPlan.parse("fail=0.2,duplicate=0.2", seed=5)
    schedules = []
    for attempt in range(2):
        before = len(fault_log)
        workdir = tmp_path / f"run-{attempt}"
        workdir.mkdir()
        report = temporal_loop.run(
            demonstrate(temporal_dev_env.client, seed=5, plan=plan, workdir=workdir, say=print),
            timeout=300,
        )
        assert report.ok, report.checks
        schedules.append(
            sorted(
                (i.workflow_id, i.activity, i.key, i.attempt, i.kind)
                for i in fault_log.records()[before:]
            )
        )
    assert schedules[0], "the plan should inject faults"
    assert schedules[0] == schedules[1]


def test_ui_option_keeps_the_web_ui_up_on_localhost() -> None:
    import queue
    import re
    import signal
    import threading
    import urllib.request

    process = subprocess.Popen(
        [sys.executable, "-m", "patterns", "--ui", "--only", "saga", "--faults", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    try:
        url = None
        deadline = time.monotonic() + 180
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            found = re.search(r"Web UI: (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url is not None, "the demonstration never announced its Web UI"
        page = ""
        for _ in range(30):  # the UI may take a moment to answer
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    page = response.read().decode(errors="replace")
                break
            except OSError:
                time.sleep(1)
        assert "<html" in page.lower()
        assert process.poll() is None, "the server must stay up until interrupted"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0  # Ctrl-C stops the server cleanly after a good run
