"""Fan-out throughput on the dev server, every figure beside a baseline from the same run.

* Widths 10, 100 and 1,000 records by strategy; each strategy's ratio is
  against the naive ``gather`` of one activity per record at the same width,
  from paired rounds: each round of the strategy has a naive round next to it
  (ABBA order: naive first, then last, so neither goes first more often), and
  the ratio is the median over the pairs of naive time / strategy time. A
  round at width 10 takes a tenth of a second, and on a shared machine other
  processes' load moves it by half: rounds of the two far apart in time (or
  three of each) can make either look faster. Small widths get more pairs.
* 100,000 records end to end with the default strategy on a worker process
  of its own, against the in-process asyncio run of the same per-record work
  (Faker generation, validation, enrichment, 1 ms of simulated I/O, SQLite
  storage). The worker process's resident memory is sampled during the batch,
  and its peak (``VmHWM``, Linux) is reported: the worker's own, since the
  process serves nothing else.

Run with ``pytest benchmarks/test_fanout_bench.py --benchmark-only
--benchmark-json=benchmarks/results/fanout.json`` (about ten minutes on two
cores); draw the figures and docs/benchmarks.md with ``python -m benchmarks.plots``.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import faults
import faults.testing
from patterns.fanout import (
    BatchConfig,
    BatchRequest,
    BatchResult,
    EnrichedCustomer,
    FanOutActivities,
    FanOutBatchWorkflow,
    FanOutSegmentWorkflow,
    RecordFailure,
    _sink,
    process_record,
)

ACTIVITIES = FanOutActivities()
BIG = 100_000
WIDTHS = (10, 100, 1_000)
SEED = 2024
ROOT = Path(__file__).resolve().parent.parent

PAIRS = {10: 12, 100: 6, 1_000: 2}
"""Paired rounds (naive and strategy) per width: even, for the ABBA order."""

BIG_ROUNDS = 1
"""Rounds of the 100,000-record runs (each takes 30-150 s on two shared cores)."""

_warm: set[tuple[str, int]] = set()
"""(strategy, width) pairs run once already in this session."""

STRATEGIES: dict[str, Callable[[int], BatchConfig]] = {
    # The seed's fan-out: one activity per record, all at once.
    "naive_gather": lambda width: BatchConfig(chunk_size=1, window=2_000, segment_size=2_000),
    # The library default: chunks of 100 processed concurrently, a window of 32.
    "default": lambda width: BatchConfig(),
    "local_activities": lambda width: BatchConfig(local_activities=True),
    # Chunking alone: the records of a chunk one after another.
    "chunked_sequential": lambda width: BatchConfig(record_concurrency=1),
    # Four child workflows per batch.
    "child_workflows": lambda width: BatchConfig(
        chunk_size=min(100, max(1, width // 4)), segment_size=max(1, width // 4)
    ),
}


@pytest.fixture(scope="module")
def harness(dev_fault_harness: Any) -> faults.testing.FaultHarness:
    # debug_mode: no deadlock detector. The naive gather's first workflow task schedules
    # 1,000 activities; on two cores loaded by other processes that took over the SDK's
    # two seconds, and the detector failed the task and its retries until the run timed out.
    return dev_fault_harness(
        workflows=[FanOutBatchWorkflow, FanOutSegmentWorkflow],
        activities=[ACTIVITIES.process_chunk, ACTIVITIES.seal_batch],
        debug_mode=True,
    )


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("fanout-bench") / "results.sqlite3")


def _run_batch(client: Any, task_queue: str, database: str, count: int, config: BatchConfig) -> Any:
    async def run() -> BatchResult:
        request = BatchRequest(
            faults.testing.unique_id("bench"), SEED, count, database, config=config
        )
        result: BatchResult = await client.execute_workflow(
            FanOutBatchWorkflow.run, request, id=request.batch_id, task_queue=task_queue
        )
        assert result.succeeded + len(result.failed_ids()) == count == result.count
        assert result.stored == result.succeeded
        return result

    return run


def _seconds(loop: faults.testing.EventLoopThread, run: Any) -> float:
    started = time.perf_counter()
    loop.run(run(), timeout=600)
    return time.perf_counter() - started


@pytest.mark.parametrize(
    ("width", "strategy"), [(w, s) for w in WIDTHS for s in STRATEGIES], ids=lambda v: str(v)
)
def test_fan_out_width(
    benchmark: Any,
    throughput: Any,
    temporal_loop: faults.testing.EventLoopThread,
    harness: faults.testing.FaultHarness,
    database: str,
    width: int,
    strategy: str,
) -> None:
    def batch(name: str) -> Any:
        return _run_batch(
            harness.client, harness.task_queue, database, width, STRATEGIES[name](width)
        )

    run, naive = batch(strategy), batch("naive_gather")
    for name, warm_up in ((strategy, run), ("naive_gather", naive)):
        if (name, width) not in _warm:  # warm-up: workers, caches, Faker
            temporal_loop.run(warm_up(), timeout=600)
            _warm.add((name, width))
    pairs = PAIRS[width]
    benchmark.extra_info.update(width=width, strategy=strategy)
    name = f"fanout[{strategy}@{width}]"
    if strategy == "naive_gather":
        benchmark.pedantic(lambda: temporal_loop.run(run(), timeout=600), rounds=pairs)
        throughput.record(benchmark, name, width, unit="records")
        return

    naive_seconds: list[float] = []
    rounds = itertools.count()

    def setup() -> None:
        # ABBA: the naive round before the strategy's in even rounds, after it in odd ones.
        k = next(rounds)
        if k % 2 == 0:
            if k:
                naive_seconds.append(_seconds(temporal_loop, naive))  # closes round k - 1
            naive_seconds.append(_seconds(temporal_loop, naive))

    benchmark.pedantic(lambda: temporal_loop.run(run(), timeout=600), setup=setup, rounds=pairs)
    if benchmark.disabled:
        return
    naive_seconds.append(_seconds(temporal_loop, naive))  # closes the last (odd) round
    mine = [float(t) for t in benchmark.stats.stats.data]
    ratios = [n / m for n, m in zip(naive_seconds, mine, strict=True)]
    benchmark.extra_info.update(
        paired_rounds=pairs,
        naive_rounds_seconds=[round(t, 4) for t in naive_seconds],
        pair_ratios=[round(r, 3) for r in ratios],
    )
    throughput.record(benchmark, name, width, unit="records")
    value = throughput.record_ratio(
        benchmark, name, f"fanout[naive_gather@{width}]", statistics.median(ratios)
    )
    throughput.notes.append(
        f"{name}: {value:.2f}x naive, median of {pairs} paired rounds "
        f"(pairs from {min(ratios):.2f}x to {max(ratios):.2f}x)"
    )


async def _in_process(database: str, batch_id: str, count: int, io_seconds: float) -> None:
    """The same per-record work without Temporal: chunks of 100, 32 chunks in flight."""
    conn = _sink.connect(database)
    gate = asyncio.Semaphore(32)

    async def chunk(start: int) -> None:
        async with gate:
            outcomes = await asyncio.gather(
                *(
                    process_record(SEED, i, io_seconds)
                    for i in range(start, min(start + 100, count))
                )
            )
        _sink.store_enriched(
            conn, batch_id, [o for o in outcomes if isinstance(o, EnrichedCustomer)]
        )
        _sink.store_failures(
            conn, batch_id, [RecordFailure(*o) for o in outcomes if isinstance(o, tuple)]
        )

    await asyncio.gather(*(chunk(s) for s in range(0, count, 100)))


def test_in_process_asyncio_100k(
    benchmark: Any, throughput: Any, temporal_loop: faults.testing.EventLoopThread, database: str
) -> None:
    if benchmark.disabled:
        pytest.skip("100,000-record baseline runs only with --benchmark-only")
    benchmark.extra_info.update(records=BIG)
    benchmark.pedantic(
        lambda: temporal_loop.run(
            _in_process(
                database, faults.testing.unique_id("inproc"), BIG, BatchConfig().io_seconds
            ),
            timeout=600,
        ),
        rounds=BIG_ROUNDS,
        iterations=1,
    )
    throughput.record(benchmark, "in_process_asyncio@100k", BIG, unit="records")


def _status_mb(pid: int, field: str) -> float | None:
    """``field`` (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status`` in MB; ``None`` off Linux."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


class RssSampler:
    """Samples a process's resident memory every ``interval`` seconds while in its block."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _status_mb(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append(rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def worker_process(
    temporal_dev_env: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[faults.testing.WorkerProcess, str]]:
    """A ``python -m faults worker`` process serving the fan-out on the dev server."""
    address = temporal_dev_env.client.service_client.config.target_host
    queue = faults.testing.unique_id("fanout-worker")
    worker = faults.testing.start_worker_process(
        address,
        queue,
        "benchmarks.fanout_worker:registration",
        namespace=temporal_dev_env.client.namespace,
        cwd=ROOT,
        output=tmp_path_factory.mktemp("fanout-worker") / "output.txt",
    )
    with worker:
        yield worker, queue


def test_batch_100k_end_to_end(
    benchmark: Any,
    throughput: Any,
    temporal_loop: faults.testing.EventLoopThread,
    temporal_dev_env: Any,
    worker_process: tuple[faults.testing.WorkerProcess, str],
    database: str,
) -> None:
    if benchmark.disabled:
        pytest.skip("100,000-record batch runs only with --benchmark-only")
    process, queue = worker_process
    client = temporal_dev_env.client
    # Warm-up on the worker process: its modules, Faker, the sandbox's first runs.
    temporal_loop.run(_run_batch(client, queue, database, 1_000, BatchConfig())(), timeout=300)
    before = _status_mb(process.pid, "VmRSS")
    run = _run_batch(client, queue, database, BIG, BatchConfig())
    peaks: list[float] = []

    def one_batch() -> None:
        with RssSampler(process.pid) as sampler:
            temporal_loop.run(run(), timeout=900)
        if sampler.samples:
            peaks.append(max(sampler.samples))

    benchmark.pedantic(one_batch, rounds=BIG_ROUNDS, iterations=1)
    high_water = _status_mb(process.pid, "VmHWM")
    benchmark.extra_info.update(records=BIG, worker="a process of its own")
    if before is not None and high_water is not None:
        benchmark.extra_info.update(
            worker_rss_mb_before_batch=round(before, 1),
            worker_peak_rss_mb_sampled_during_batch=round(max(peaks), 1),
            peak_rss_mb=round(high_water, 1),
        )
    throughput.record(benchmark, "fanout[default@100k]", BIG, unit="records")
    throughput.ratio(benchmark, "fanout[default@100k]", "in_process_asyncio@100k")
    if high_water is not None:
        throughput.notes.append(
            f"100,000-record batch: worker process RSS {before:.0f} MB before, "
            f"{max(peaks):.0f} MB at most while sampled during the batches, "
            f"peak (VmHWM) {high_water:.0f} MB"
        )
        assert high_water < 1024, f"worker peak memory {high_water:.0f} MB for 100,000 records"
