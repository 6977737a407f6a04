"""Workers are killed with SIGKILL at seeded points, 20 times; every workflow still completes.

Sagas and a fan-out batch run on worker processes (``python -m faults worker``) that
the test kills and replaces. Each process holds its K-th saga activity call (K and
whether the call's effect committed first are drawn from the seed) and says so in a
file; the test kills it only then, so every kill lands mid-run by construction, on
a fast machine as on a slow one. Afterwards, read from the databases alone: the
services' ledgers balance, stock is conserved, and the fan-in holds every valid
record exactly once with no failure but the invalid records.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import faults
import faults.testing
from patterns.fanout import (
    BatchConfig,
    BatchRequest,
    FanOutBatchWorkflow,
)
from patterns.saga import (
    OrderServices,
    make_catalog,
)

from .batch_checks import assert_batch_complete
from .order_ledgers import assert_ledgers_balance, saga_outcomes, start_mixed_orders
from .processes import pids_running, running

ROOT = Path(__file__).resolve().parents[1]
KILLS = 20
SEED = 20261125


def spawn_worker(
    address: str, task_queue: str, saga_db: Path, **env: str
) -> faults.testing.WorkerProcess:
    """A worker process on ``task_queue``, returned once it polls it."""
    return faults.testing.start_worker_process(
        address,
        task_queue,
        "tests.crash_targets:registration",
        cwd=ROOT,
        env={"CRASH_SAGA_DB": str(saga_db), "PYTHONPATH": str(ROOT), **env},
        output=saga_db.with_name(f"{task_queue}-{faults.testing.unique_id('worker')}.log"),
    )


def wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 300.0) -> str:
    """The text of ``path`` once ``process`` has written it (it holds a call by then).

    The timeout only bounds a broken run; the gate is reached by construction.
    """
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().endswith("\n"):
        assert process.poll() is None, f"worker exited with {process.returncode} before its gate"
        calls = path.with_suffix(".calls")
        seen = calls.read_text().strip() if calls.exists() else "0"
        assert time.monotonic() < deadline, (
            f"no activity reached the gate {path.name} in {timeout:g} s ({seen} saga calls ran)"
        )
        time.sleep(0.02)
    return path.read_text()


def test_connections_read_the_environment_configuration_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cluster's settings come from the environment; an embedded server takes none of them."""
    monkeypatch.setenv("TEMPORAL_API_KEY", "sk-cluster")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "orders")
    cluster = faults.testing.connect_config("127.0.0.1:7233")
    assert (cluster["api_key"], cluster["tls"], cluster["namespace"]) == (
        "sk-cluster",
        True,
        "orders",
    )
    embedded = faults.testing.connect_config("127.0.0.1:7233", environment=False)
    assert embedded == {"target_host": "127.0.0.1:7233"}


def test_a_worker_process_that_cannot_start_says_why(temporal_client: Any, tmp_path: Path) -> None:
    address = temporal_client.service_client.config.target_host
    started = time.monotonic()
    with pytest.raises(faults.testing.WorkerProcessError) as raised:
        faults.testing.start_worker_process(
            address, "never-polled", "tests.no_such_module:registration", cwd=ROOT
        )
    message = str(raised.value)
    assert "exited with status 2 before it was ready" in message
    assert "No module named 'tests.no_such_module'" in message  # the command's own words
    assert time.monotonic() - started < 60
    with pytest.raises(ValueError, match="ready_timeout=0 must be > 0"):
        faults.testing.start_worker_process(address, "q", "x:y", ready_timeout=0)


def test_a_worker_process_not_ready_in_time_is_stopped_and_says_so(
    temporal_client: Any, tmp_path: Path
) -> None:
    """A setup that never returns (``signal.pause``): the wait ends at ``ready_timeout``."""
    address = temporal_client.service_client.config.target_host
    queue = faults.testing.unique_id("never-ready")
    with pytest.raises(faults.testing.WorkerProcessError, match="was not ready within 3 s"):
        faults.testing.start_worker_process(address, queue, "signal:pause", ready_timeout=3)
    assert pids_running(queue) == [], "the process that was not ready should have been stopped"


def test_a_worker_process_ends_when_the_program_that_started_it_is_killed(
    temporal_client: Any,
) -> None:
    """The program dies by SIGKILL, so nothing of its own stops the worker: it sees it gone."""
    address = temporal_client.service_client.config.target_host
    queue = faults.testing.unique_id("orphan")
    program = (
        "import os, signal, faults.testing\n"
        f"w = faults.testing.start_worker_process({address!r}, {queue!r}, "
        f"'tests.test_plan_trust:registration', env={{'PYTHONPATH': {str(ROOT)!r}}})\n"
        "print(w.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    died = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    worker = int(died.stdout.split()[0])
    deadline = time.monotonic() + 60  # bounds a broken run; the worker checks every second
    while running(worker):
        assert time.monotonic() < deadline, f"worker {worker} outlived its program by 60 s"
        time.sleep(0.1)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_worker_process_shuts_down_on_ctrl_c_or_sigterm(
    temporal_client: Any, tmp_path: Path, stop: signal.Signals
) -> None:
    address = temporal_client.service_client.config.target_host
    worker = spawn_worker(address, faults.testing.unique_id("stop"), tmp_path / "saga.sqlite")
    worker.process.send_signal(stop)
    try:
        assert worker.process.wait(30) == 0, f"{stop.name} should shut the worker down cleanly"
    finally:
        worker.process.kill()


def test_workflows_complete_through_twenty_worker_kills(
    temporal_loop: faults.testing.EventLoopThread, temporal_dev_env: Any, tmp_path: Path
) -> None:
    client = temporal_dev_env.client
    address = client.service_client.config.target_host
    task_queue = faults.testing.unique_id("crash")
    saga_db = tmp_path / "saga.sqlite"
    services = OrderServices(saga_db)
    catalog = make_catalog(SEED, 6, prefix="CRASH", max_stock=10)
    initial = {p.sku: 10_000 for p in catalog}
    services.stock_products((p.sku, p.unit_price_cents, initial[p.sku]) for p in catalog)
    rng = random.Random(SEED)
    batch = BatchRequest(
        batch_id=faults.testing.unique_id("crash-batch"),
        seed=SEED,
        count=3_000,
        database=str(tmp_path / "fanout.sqlite"),
        config=BatchConfig(chunk_size=50, window=8, segment_size=1_000, child_window=2),
    )
    orders: list[Any] = []
    handles: list[Any] = []

    async def start_orders(count: int) -> None:
        await start_mixed_orders(
            client,
            task_queue,
            rng,
            catalog,
            orders,
            handles,
            count=count,
            prefix="crash",
            step_attempts=20,
        )

    batch_handle = temporal_loop.run(
        client.start_workflow(
            FanOutBatchWorkflow.run, batch, id=batch.batch_id, task_queue=task_queue
        )
    )
    for kill in range(KILLS):
        temporal_loop.run(start_orders(2))
        gate = tmp_path / f"gate-{kill}"
        held_at = f"{rng.randint(1, 4)}:{rng.choice(['before', 'after'])}"
        worker = spawn_worker(
            address, task_queue, saga_db, CRASH_GATE=held_at, CRASH_GATE_FILE=str(gate)
        )
        try:
            held_workflow, held_activity = wait_for_file(gate, worker.process).split()
        finally:
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait()
        status = temporal_loop.run(_status(client, held_workflow))
        assert status == "RUNNING", (
            f"kill {kill}: {held_workflow} ({held_activity} held {held_at}) was {status}"
        )

    final = spawn_worker(address, task_queue, saga_db)
    try:
        outcomes = temporal_loop.run(saga_outcomes(handles), timeout=300)
        temporal_loop.run(batch_handle.result(), timeout=300)
    finally:
        final.stop()

    assert_ledgers_balance(services, orders, outcomes, initial)
    assert_batch_complete(batch)


async def _status(client: Any, workflow_id: str) -> str:
    description = await client.get_workflow_handle(workflow_id).describe()
    return str(description.status.name)
