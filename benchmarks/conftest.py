"""Shared mechanics of the benchmark suites: throughput and ratios against same-run baselines.

Every figure is reported beside a baseline measured in the same session, since
these machines are noisy: ``throughput.record(benchmark, name, units)`` stores
units per second from the benchmark's median round (robust to a noisy round), and
``throughput.ratio(benchmark, name, baseline)`` adds the ratio to the
benchmark's ``extra_info`` (and so to ``--benchmark-json``);
``throughput.record_ratio`` stores one the benchmark computed itself, such as
the median over paired rounds of a baseline and a candidate. A table of all
rates and ratios is printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

_KEY = pytest.StashKey["Throughput"]()


class Throughput:
    """Units per second by benchmark name, and ratios between them."""

    def __init__(self) -> None:
        self.rates: dict[str, tuple[float, str]] = {}
        self.ratios: dict[str, tuple[str, float]] = {}
        self.notes: list[str] = []

    def record(
        self, benchmark: Any, name: str, units: int, unit: str = "activities"
    ) -> float | None:
        """Store ``units / median round time`` for ``name``; ``None`` if benchmarks are off."""
        stats = getattr(benchmark, "stats", None)
        if stats is None or not stats.stats.median:
            return None
        return self.record_rate(benchmark, name, units / stats.stats.median, unit)

    def record_rate(
        self, benchmark: Any, name: str, rate: float, unit: str = "activities"
    ) -> float:
        """Store a rate the benchmark computed itself (for instance from interleaved timings)."""
        benchmark.extra_info[f"{name}: {unit}_per_second"] = rate
        self.rates[name] = (rate, unit)
        return rate

    def ratio(self, benchmark: Any, name: str, baseline: str) -> float | None:
        """``rate(name) / rate(baseline)``, both from this session; ``None`` if one is missing."""
        if name not in self.rates or baseline not in self.rates:
            return None
        value = self.rates[name][0] / self.rates[baseline][0]
        return self.record_ratio(benchmark, name, baseline, value)

    def record_ratio(self, benchmark: Any, name: str, baseline: str, value: float) -> float:
        """Store a ratio the benchmark computed itself (for instance from paired rounds).

        Record it right after the rate of ``name``: a report reads a ratio as
        belonging to the benchmark's last rate.
        """
        benchmark.extra_info[f"ratio_vs_{baseline}"] = value
        self.ratios[name] = (baseline, value)
        return value


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--overhead-rounds``, ``--search-seeds`` and ``--soak-runs``."""
    parser.getgroup("benchmark").addoption(
        "--overhead-rounds",
        type=int,
        default=12,
        help="paired rounds of the fault-layer overhead benchmark (default 12, ~2 minutes); "
        "more rounds narrow its interval (60 take ~9 minutes).",
    )
    parser.getgroup("benchmark").addoption(
        "--search-seeds",
        type=int,
        default=20,
        help="seeds per planted bug in the search-power benchmark (default 20).",
    )
    parser.getgroup("benchmark").addoption(
        "--soak-runs",
        type=int,
        default=10_000,
        help="runs of the session soak benchmark (default 10,000, ~6 minutes on 2 idle cores).",
    )


@pytest.fixture(scope="session")
def throughput(request: pytest.FixtureRequest) -> Iterator[Throughput]:
    """The session's :class:`Throughput` registry."""
    registry = Throughput()
    request.config.stash[_KEY] = registry
    yield registry


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print every rate with its ratio to its same-run baseline."""
    registry = config.stash.get(_KEY, None)
    if registry is None or not registry.rates:
        return
    terminalreporter.section("throughput (same-run baselines)")
    width = max(len(name) for name in registry.rates)
    for name, (rate, unit) in registry.rates.items():
        line = f"{name:<{width}}  {rate:>12,.1f} {unit}/s"
        if name in registry.ratios:
            baseline, value = registry.ratios[name]
            line += f"   {value:6.2f}x {baseline}"
        terminalreporter.write_line(line)
    for note in registry.notes:
        terminalreporter.write_line(note)
