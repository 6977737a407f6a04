"""Fan-out throughput on the dev server, every figure beside a baseline from the same run.

* Widths 10, 100 and 1,000 records by strategy; each strategy's ratio is
  against the naive ``gather`` of one activity per record at the same width.
* 100,000 records end to end with the default strategy, against the
  in-process asyncio run of the same per-record work (Faker generation,
  validation, enrichment, 1 ms of simulated I/O, SQLite storage); the worker
  process's peak memory is reported.

Run with ``pytest benchmarks/test_fanout_bench.py --benchmark-only
--benchmark-json=benchmarks/results/fanout.json``; draw the figures and
docs/benchmarks.md with ``python -m benchmarks.plots``.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
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
    return dev_fault_harness(
        workflows=[FanOutBatchWorkflow, FanOutSegmentWorkflow],
        activities=[ACTIVITIES.process_chunk, ACTIVITIES.seal_batch],
    )


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("fanout-bench") / "results.sqlite3")


def _run_batch(
    harness: faults.testing.FaultHarness, database: str, count: int, config: BatchConfig
) -> Any:
    async def run() -> BatchResult:
        request = BatchRequest(
            faults.testing.unique_id("bench"), SEED, count, database, config=config
        )
        result: BatchResult = await harness.client.execute_workflow(
            FanOutBatchWorkflow.run,
            request,
            id=request.batch_id,
            task_queue=harness.task_queue,
        )
        assert result.succeeded + len(result.failed_ids()) == count == result.count
        assert result.stored == result.succeeded
        return result

    return run


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
    run = _run_batch(harness, database, width, STRATEGIES[strategy](width))
    temporal_loop.run(run(), timeout=300)  # warm-up: workers, caches, Faker
    rounds = 3 if width < 1_000 or strategy != "naive_gather" else 2
    benchmark.extra_info.update(width=width, strategy=strategy)
    benchmark.pedantic(lambda: temporal_loop.run(run(), timeout=600), rounds=rounds, iterations=1)
    name = f"fanout[{strategy}@{width}]"
    throughput.record(benchmark, name, width, unit="records")
    if strategy != "naive_gather":
        throughput.ratio(benchmark, name, f"fanout[naive_gather@{width}]")


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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
        rounds=2,
        iterations=1,
    )
    throughput.record(benchmark, "in_process_asyncio@100k", BIG, unit="records")


def test_batch_100k_end_to_end(
    benchmark: Any,
    throughput: Any,
    temporal_loop: faults.testing.EventLoopThread,
    harness: faults.testing.FaultHarness,
    database: str,
) -> None:
    if benchmark.disabled:
        pytest.skip("100,000-record batch runs only with --benchmark-only")
    before = _peak_rss_mb()
    run = _run_batch(harness, database, BIG, BatchConfig())
    benchmark.pedantic(lambda: temporal_loop.run(run(), timeout=900), rounds=2, iterations=1)
    peak = _peak_rss_mb()
    benchmark.extra_info.update(
        records=BIG, peak_rss_mb=round(peak, 1), peak_rss_mb_before=round(before, 1)
    )
    throughput.record(benchmark, "fanout[default@100k]", BIG, unit="records")
    throughput.ratio(benchmark, "fanout[default@100k]", "in_process_asyncio@100k")
    assert peak < 1024, f"worker peak memory {peak:.0f} MB for 100,000 records"
