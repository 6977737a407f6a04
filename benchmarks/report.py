"""The benchmark results, read from the committed JSON files, as tables and as a Markdown page.

``python -m benchmarks.report [--results DIR] [--out FILE] [--img DIR]`` writes
``docs/benchmarks.md`` from ``benchmarks/results/*.json``, linking the figures that
``python -m benchmarks.plots`` drew into ``docs/img`` (that command writes this page too).
This module needs only the standard library; the figures need the ``plot`` extra.

Every number on the page is read from a results file; none is typed in. The files are:

* pytest-benchmark reports (``--benchmark-json``), any name: each section takes its
  benchmarks, by test module or benchmark group, from the newest report that has them, so
  its figures all come from one run. :data:`SECTIONS` names the command that makes each.
* ``search_power.json``, how often and how fast the fault search finds planted bugs::

    {
      "datetime": "2031-02-03T04:05:06+00:00",
      "machine_info": {...},          # optional: pytest-benchmark's machine_info shape
      "command": "how the file was made",   # optional
      "results": [
        {"target": "saga: compensation registered after its step",
         "search": "systematic",
         "runs": 8, "found": 8,
         "median_seconds": 3.1,       # optional: time to the first failure
         "median_examples": 41,       # optional: examples to the first failure
         "max_shrunk_entries": 1}     # optional: plan entries of the largest shrunk case
      ]
    }

* ``environments.json``, real seconds per run of each workload shape on each server that
  skips time (written by ``benchmarks/test_environment_bench.py``)::

    {
      "datetime": "...", "machine_info": {...}, "command": "...",
      "rows": [{"shape": "timers", "server": "time-skipping", "rounds": 10,
                "median_seconds": 0.05, "min_seconds": 0.04}]
    }

A missing file only leaves its section out (with a one-line message); a file that is
not valid JSON, or a ``search_power.json`` row without a required field, is an error
naming the file and the field.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path("benchmarks/results")
DOCS_IMG = Path("docs/img")
MARKDOWN = Path("docs/benchmarks.md")
SEARCH_POWER = "search_power.json"
ENVIRONMENTS = "environments.json"
OVERHEAD_TARGET_PERCENT = 3.0  # the target stated in benchmarks/test_fault_layer_bench.py

FIGURES = {
    "fanout": "fanout_throughput.png",
    "fanout_end_to_end": "fanout_end_to_end.png",
    "overhead": "fault_layer_overhead.png",
    "simulation": "simulation_throughput.png",
    "saga": "saga_throughput.png",
    "breaker": "breaker_throughput.png",
    "search_power": "search_power.png",
    "environments": "environments.png",
}
"""The file name of each section's figure, in the image folder."""


class ResultsError(ValueError):
    """A results file that cannot be read: the message names the file and what to fix."""


@dataclass(frozen=True)
class Source:
    """The file a section's figures come from, the machine it ran on and when."""

    path: Path
    date: str
    machine: str
    commit: str = ""

    def caption(self) -> str:
        """One line for a figure: machine, date and file."""
        return f"{self.machine} · run {self.date} · {self.path.name}"


@dataclass(frozen=True)
class Rate:
    """One measured rate: units per second, its ratio to a same-run baseline, its rounds."""

    name: str
    value: float
    unit: str
    ratio: float | None = None
    baseline: str | None = None
    rounds: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RateSection:
    """Rates from one benchmark module or group, from one report."""

    key: str
    title: str
    source: Source
    rates: tuple[Rate, ...]


@dataclass(frozen=True)
class FanoutWidths:
    """Fan-out throughput by strategy and width, from one report."""

    source: Source
    widths: tuple[int, ...]
    strategies: tuple[str, ...]
    points: Mapping[tuple[str, int], Rate]
    baseline: str | None


@dataclass(frozen=True)
class Overhead:
    """The fault layer's overhead on a fan-out, from paired rounds of one report."""

    source: Source
    bare_rate: float
    layer_rate: float
    unit: str
    ratio: float | None
    wall: tuple[float, float, float]
    """Median overhead in per cent, then its 95 % interval."""
    cpu: tuple[float, float, float]
    rounds: tuple[tuple[float, float, float, float], ...]
    """Per round: bare wall, bare CPU, layer wall, layer CPU seconds."""
    fan_out: int | None


@dataclass(frozen=True)
class SearchRow:
    """How often one search found one planted bug."""

    target: str
    search: str
    runs: int
    found: int
    median_seconds: float | None
    median_examples: float | None
    max_shrunk_entries: float | None = None
    run: str = ""
    """The commit and date the row was measured on, when the row says (rows of one file
    may come from several runs: a ``-k`` selection updates its own rows)."""


@dataclass(frozen=True)
class SearchPower:
    """The rows of ``search_power.json``."""

    source: Source
    rows: tuple[SearchRow, ...]
    command: str


@dataclass(frozen=True)
class EnvironmentRow:
    """Real seconds per run of one workload shape on one server."""

    shape: str
    server: str
    rounds: int
    median_seconds: float
    min_seconds: float


@dataclass(frozen=True)
class Environments:
    """The rows of ``environments.json``."""

    source: Source
    rows: tuple[EnvironmentRow, ...]
    command: str

    def shapes(self) -> list[str]:
        """The shapes, in the order the file has them."""
        return list(dict.fromkeys(r.shape for r in self.rows))

    def servers(self) -> list[str]:
        """The servers, in the order the file has them."""
        return list(dict.fromkeys(r.server for r in self.rows))

    def seconds(self, shape: str, server: str) -> EnvironmentRow | None:
        """The row of ``shape`` on ``server``, if measured."""
        return next((r for r in self.rows if (r.shape, r.server) == (shape, server)), None)


@dataclass
class Results:
    """Everything the results folder holds, by section; ``None`` where a section has no data."""

    directory: Path
    fanout: FanoutWidths | None = None
    fanout_end_to_end: RateSection | None = None
    overhead: Overhead | None = None
    simulation: RateSection | None = None
    saga: RateSection | None = None
    breaker: RateSection | None = None
    search_power: SearchPower | None = None
    environments: Environments | None = None
    messages: list[str] = field(default_factory=list)
    """One line per file ignored or section left out."""

    def present(self) -> list[str]:
        """The keys of the sections that have data."""
        return [key for key in SECTIONS if getattr(self, key) is not None]


@dataclass(frozen=True)
class Section:
    """A section of the page: its title and how to make its results."""

    title: str
    command: str
    """The command that writes its results file."""
    make: str = ""
    """How to make its results, where no one command does."""

    def how(self) -> str:
        """How to make this section's results, in words."""
        return self.make or f"run `{self.command}`"


SECTIONS: dict[str, Section] = {
    "fanout": Section(
        "Fan-out throughput by width and strategy",
        "pytest benchmarks/test_fanout_bench.py --benchmark-only "
        "--benchmark-json=benchmarks/results/fanout.json",
    ),
    "fanout_end_to_end": Section(
        "Fan-out: 100,000 records end to end",
        "pytest benchmarks/test_fanout_bench.py --benchmark-only "
        "--benchmark-json=benchmarks/results/fanout.json",
    ),
    "overhead": Section(
        "Fault-layer overhead",
        "pytest benchmarks/test_fault_layer_bench.py --benchmark-only -k overhead "
        "--overhead-rounds 140 --benchmark-json=benchmarks/results/overhead.json",
    ),
    "simulation": Section(
        "Simulation throughput",
        "pytest benchmarks/test_fault_layer_bench.py --benchmark-only -k simulation "
        "--benchmark-json=benchmarks/results/simulation.json",
    ),
    "saga": Section(
        "Saga throughput",
        "pytest benchmarks/test_saga_bench.py --benchmark-only "
        "--benchmark-json=benchmarks/results/saga.json",
    ),
    "breaker": Section(
        "Circuit breaker cost",
        "pytest benchmarks/test_breaker_bench.py --benchmark-only "
        "--benchmark-json=benchmarks/results/breaker.json",
    ),
    "search_power": Section(
        "Search power",
        "",
        f"write benchmarks/results/{SEARCH_POWER} (its format: benchmarks/report.py)",
    ),
    "environments": Section(
        "Real time per run by workload shape and server",
        "pytest benchmarks/test_environment_bench.py --benchmark-only",
    ),
}
"""Every section, in page order."""


# --- reading -----------------------------------------------------------------------------


def _date(value: object) -> str:
    if not isinstance(value, str):
        return "date not recorded"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def machine_line(info: object) -> str:
    """The machine of a pytest-benchmark ``machine_info``: CPU, count, OS and Python."""
    if not isinstance(info, dict) or not info:
        return "machine not recorded"
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    assert isinstance(cpu, dict)
    parts = []
    brand = cpu.get("brand_raw") or info.get("processor") or "CPU"
    count = cpu.get("count")
    arch = info.get("machine") or cpu.get("arch_string_raw")
    detail = ", ".join(
        p for p in (f"{count} CPUs" if count else "", str(arch) if arch else "") if p
    )
    parts.append(f"{brand} ({detail})" if detail else str(brand))
    system = " ".join(str(info[k]) for k in ("system", "release") if info.get(k))
    if system:
        parts.append(system)
    python = " ".join(
        str(info[k]) for k in ("python_implementation", "python_version") if info.get(k)
    )
    if python:
        parts.append(python)
    return ", ".join(parts)


def _commit(info: object) -> str:
    if not isinstance(info, dict) or not info.get("id"):
        return ""
    text = f"commit {str(info['id'])[:7]}"
    return text + " with uncommitted changes" if info.get("dirty") else text


def _source(path: Path, report: Mapping[str, Any]) -> Source:
    return Source(
        path,
        _date(report.get("datetime")),
        machine_line(report.get("machine_info")),
        _commit(report.get("commit_info")),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ResultsError(
            f"{path}: not valid JSON ({err}); rerun the benchmark that writes it, or remove it"
        ) from err


_RATE_KEY = re.compile(r"^(?:(?P<name>.+): )?(?P<unit>[A-Za-z]+)_per_second$")
_RATIO_KEY = "ratio_vs_"
_NOT_NOTES = {"width", "strategy", "records", "rounds"}


def _note(key: str, value: object) -> str | None:
    if key in _NOT_NOTES or key.startswith(_RATIO_KEY) or _RATE_KEY.match(key):
        return None
    if key == "peak_rss_mb":
        return f"peak RSS {value} MB"
    if key == "peak_rss_mb_before":
        return f"peak RSS at its start {value} MB"
    if key == "invariant_violations":
        return f"{value} invariant violations"
    if isinstance(value, dict):
        return f"{key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (int, float, str)):
        return f"{key.replace('_', ' ')}: {value}"
    return None


def rates_of(bench: Mapping[str, Any]) -> list[Rate]:
    """The rates a benchmark recorded in ``extra_info`` (see ``benchmarks/conftest.py``).

    A rate is stored as ``"<name>: <unit>_per_second"`` (or ``"<unit>_per_second"``,
    named after the benchmark); a ratio as ``"ratio_vs_<baseline>"``, recorded right
    after the rate it concerns, so it belongs to the benchmark's last rate. A rate from
    ``units / median round`` gets the range over the rounds: the same units over the
    slowest and the fastest round.
    """
    info: Mapping[str, Any] = bench.get("extra_info") or {}
    stats: Mapping[str, Any] = bench.get("stats") or {}
    rounds = tuple(float(t) for t in stats.get("data") or ())
    median = stats.get("median")
    notes = tuple(n for k, v in info.items() if (n := _note(k, v)) is not None)
    found: list[Rate] = []
    for key, value in info.items():
        match = _RATE_KEY.match(key)
        if match and isinstance(value, (int, float)):
            low = high = None
            if median and rounds:
                units = value * median
                low, high = units / max(rounds), units / min(rounds)
            name = match["name"] or str(bench.get("name", "")).removeprefix("test_")
            found.append(Rate(name, float(value), match["unit"], None, None, rounds, low, high))
    ratios = [(k[len(_RATIO_KEY) :], v) for k, v in info.items() if k.startswith(_RATIO_KEY)]
    if found:
        baseline, value = ratios[-1] if ratios else (None, None)
        found[-1] = replace(
            found[-1],
            ratio=None if value is None else float(value),
            baseline=baseline,
            notes=notes,
        )
    return found


def _key(name: str) -> str:
    return re.sub(r"\W", "_", name)


def is_baseline(rate: Rate, rates: Iterable[Rate]) -> bool:
    """Whether another of ``rates`` is measured against ``rate``.

    Names are compared with punctuation as underscores, so that a rate named after its
    benchmark (``in_process_asyncio_100k``) matches the name it was recorded under
    (``in_process_asyncio@100k``).
    """
    return any(r.baseline and _key(r.baseline) == _key(rate.name) for r in rates)


def _module(bench: Mapping[str, Any]) -> str:
    return Path(str(bench.get("fullname", "")).split("::")[0]).name


Report = tuple[Path, Mapping[str, Any]]


def _newest(
    reports: Sequence[Report], wanted: Callable[[Mapping[str, Any]], bool]
) -> tuple[Source, list[Mapping[str, Any]]] | None:
    """The benchmarks that ``wanted`` picks, from the newest report that has any."""
    best: tuple[str, Source, list[Mapping[str, Any]]] | None = None
    for path, report in reports:
        picked: list[Mapping[str, Any]] = [
            b for b in report["benchmarks"] if isinstance(b, dict) and wanted(b)
        ]
        stamp = str(report.get("datetime", ""))
        if picked and (best is None or stamp > best[0]):
            best = (stamp, _source(path, report), picked)
    return None if best is None else (best[1], best[2])


def _fanout(reports: Sequence[Report]) -> FanoutWidths | None:
    found = _newest(
        reports,
        lambda b: _module(b) == "test_fanout_bench.py" and "width" in (b.get("extra_info") or {}),
    )
    if found is None:
        return None
    source, benches = found
    points: dict[tuple[str, int], Rate] = {}
    baseline = None
    for bench in benches:
        info = bench["extra_info"]
        rates = rates_of(bench)
        if not rates:
            continue
        points[(str(info["strategy"]), int(info["width"]))] = rates[-1]
        if rates[-1].baseline:
            match = re.match(r"^fanout\[(.+)@\d+\]$", rates[-1].baseline)
            baseline = match[1] if match else rates[-1].baseline
    if not points:
        return None
    strategies = tuple(dict.fromkeys(s for s, _ in points))
    widths = tuple(sorted({w for _, w in points}))
    return FanoutWidths(source, widths, strategies, points, baseline)


def _rate_section(
    reports: Sequence[Report], key: str, wanted: Callable[[Mapping[str, Any]], bool]
) -> RateSection | None:
    found = _newest(reports, wanted)
    if found is None:
        return None
    source, benches = found
    rates = tuple(rate for bench in benches for rate in rates_of(bench))
    return RateSection(key, SECTIONS[key].title, source, rates) if rates else None


def _triple(info: Mapping[str, Any], label: str) -> tuple[float, float, float]:
    low, high = info[f"{label}_overhead_interval_percent"]
    return float(info[f"{label}_overhead_percent"]), float(low), float(high)


def _overhead(reports: Sequence[Report]) -> Overhead | None:
    found = _newest(
        reports,
        lambda b: (
            b.get("group") == "fault-layer-overhead"
            and "wall_overhead_percent" in (b.get("extra_info") or {})
        ),
    )
    if found is None:
        return None
    source, benches = found
    bench = benches[-1]
    info = bench["extra_info"]
    rates = rates_of(bench)
    if len(rates) != 2:
        raise ResultsError(
            f"{source.path}: {bench.get('name')} needs two rates (without and with the layer) "
            f"in extra_info; it has {len(rates)}: rerun benchmarks/test_fault_layer_bench.py"
        )
    bare, layer = rates
    fan_out = re.search(r"([\d,]+)", bare.name)
    return Overhead(
        source,
        bare.value,
        layer.value,
        layer.unit,
        layer.ratio,
        _triple(info, "wall"),
        _triple(info, "cpu"),
        tuple(
            (r["bare"][0], r["bare"][1], r["layer"][0], r["layer"][1])
            for r in info.get("rounds", ())
        ),
        int(fan_out[1].replace(",", "")) if fan_out else None,
    )


def _rows(
    path: Path, data: Any, key: str, fields: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    """The rows of ``data[key]``, each with where it is, its named ``fields`` non-empty strings."""
    if not isinstance(data, dict) or not isinstance(data.get(key), list) or not data[key]:
        raise ResultsError(
            f"{path}: needs a non-empty '{key}' list of rows ({', '.join(fields)}, ...); "
            "see benchmarks/report.py"
        )
    rows = []
    for n, row in enumerate(data[key]):
        where = f"{path}: {key}[{n}]"
        if not isinstance(row, dict):
            raise ResultsError(f"{where}: must be an object with {', '.join(fields)}, ...")
        for name in fields:
            if not isinstance(row.get(name), str) or not row[name]:
                raise ResultsError(f"{where}: '{name}' must be a non-empty string")
        rows.append((where, row))
    return rows


def _search_power(path: Path) -> SearchPower:
    data = _read_json(path)
    rows = []
    for where, row in _rows(path, data, "results", ("target", "search")):
        runs, found = row.get("runs"), row.get("found")
        if not isinstance(runs, int) or runs < 1:
            raise ResultsError(f"{where}: 'runs' must be a positive integer; got {runs!r}")
        if not isinstance(found, int) or not 0 <= found <= runs:
            raise ResultsError(
                f"{where}: 'found' must be an integer from 0 to runs ({runs}); got {found!r}"
            )
        optional: list[float | None] = []
        for name in ("median_seconds", "median_examples", "max_shrunk_entries"):
            value = row.get(name)
            if value is not None and not isinstance(value, (int, float)):
                raise ResultsError(f"{where}: '{name}' must be a number or absent; got {value!r}")
            optional.append(None if value is None else float(value))
        run = ", ".join(str(row[k]) for k in ("commit", "date") if row.get(k))
        rows.append(SearchRow(row["target"], row["search"], runs, found, *optional, run))
    return SearchPower(_source(path, data), tuple(rows), str(data.get("command", "")))


def _environments(path: Path) -> Environments:
    data = _read_json(path)
    rows = []
    for where, row in _rows(path, data, "rows", ("shape", "server")):
        rounds = row.get("rounds")
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ResultsError(f"{where}: 'rounds' must be a positive integer; got {rounds!r}")
        seconds = []
        for name in ("median_seconds", "min_seconds"):
            value = row.get(name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ResultsError(f"{where}: '{name}' must be a number >= 0; got {value!r}")
            seconds.append(float(value))
        rows.append(EnvironmentRow(row["shape"], row["server"], rounds, *seconds))
    return Environments(_source(path, data), tuple(rows), str(data.get("command", "")))


def load(directory: Path) -> Results:
    """Read every results file in ``directory``; sections without data are ``None``."""
    if not directory.is_dir():
        raise ResultsError(f"results folder {directory} does not exist (--results DIR)")
    results = Results(directory)
    reports: list[Report] = []
    for path in sorted(directory.glob("*.json")):
        if path.name == SEARCH_POWER:
            results.search_power = _search_power(path)
            continue
        if path.name == ENVIRONMENTS:
            results.environments = _environments(path)
            continue
        data = _read_json(path)
        if isinstance(data, dict) and isinstance(data.get("benchmarks"), list):
            reports.append((path, data))
        else:
            results.messages.append(
                f"ignored {path}: not a pytest-benchmark report (no 'benchmarks' list)"
            )
    results.fanout = _fanout(reports)
    results.fanout_end_to_end = _rate_section(
        reports,
        "fanout_end_to_end",
        lambda b: (
            _module(b) == "test_fanout_bench.py" and "width" not in (b.get("extra_info") or {})
        ),
    )
    results.overhead = _overhead(reports)
    results.simulation = _rate_section(
        reports, "simulation", lambda b: b.get("group") == "simulation-throughput"
    )
    results.saga = _rate_section(reports, "saga", lambda b: _module(b) == "test_saga_bench.py")
    results.breaker = _rate_section(
        reports, "breaker", lambda b: _module(b) == "test_breaker_bench.py"
    )
    for key, section in SECTIONS.items():
        if getattr(results, key) is None:
            results.messages.append(
                f"skipped {section.title.lower()}: no results in {directory}; {section.how()}"
            )
    return results


# --- formatting --------------------------------------------------------------------------


def number(value: float) -> str:
    """A rate to three significant figures or so: ``2,241``, ``163``, ``24.9``, ``1.23``."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(value: float) -> str:
    """A ratio to a baseline: ``28.06x``."""
    return f"{value:.2f}x"


def percent(value: float) -> str:
    """A signed percentage: ``+1.8 %``."""
    return f"{value:+.1f} %"


def unit_abbrev(unit: str) -> str:
    """``records`` as ``rec``; other units as they are."""
    return {"records": "rec"}.get(unit, unit)


def strategy_label(name: str) -> str:
    """A strategy's name for people: ``naive_gather`` as ``naive gather``."""
    return name.replace("_", " ")


# --- the page ----------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool]) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def _source_lines(source: Source, command: str) -> list[str]:
    origin = f"`{_display(source.path)}`" + (f", {source.commit}" if source.commit else "")
    return [
        f"Machine: {source.machine}. Run: {source.date}. From {origin}.",
        "",
        f"Made with `{command}`." if command else "",
    ]


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _rate_table(section: RateSection) -> str:
    def rounds(rate: Rate) -> str:
        if rate.low is None or rate.high is None or len(rate.rounds) < 2:
            return ""
        return f"{number(rate.low)}–{number(rate.high)} ({len(rate.rounds)} rounds)"

    def vs(rate: Rate) -> str:
        return f"{ratio(rate.ratio)} vs {rate.baseline}" if rate.ratio is not None else ""

    return _table(
        ["benchmark", "rate (median round)", "slowest–fastest round", "ratio", "notes"],
        (
            [
                r.name + (" (baseline)" if is_baseline(r, section.rates) else ""),
                f"{number(r.value)} {unit_abbrev(r.unit)}/s",
                rounds(r),
                vs(r),
                "; ".join(r.notes),
            ]
            for r in section.rates
        ),
        [False, True, True, True, False],
    )


def _fanout_table(data: FanoutWidths) -> str:
    def cell(strategy: str, width: int) -> str:
        rate = data.points.get((strategy, width))
        if rate is None:
            return ""
        text = f"{number(rate.value)} {unit_abbrev(rate.unit)}/s"
        return text + (f" ({ratio(rate.ratio)})" if rate.ratio is not None else "")

    rows = []
    for strategy in data.strategies:
        label = strategy_label(strategy)
        rows.append(
            [f"{label} (baseline)" if strategy == data.baseline else label]
            + [cell(strategy, w) for w in data.widths]
        )
    return _table(
        ["strategy"] + [f"width {w:,}" for w in data.widths],
        rows,
        [False] + [True] * len(data.widths),
    )


def _overhead_table(data: Overhead) -> str:
    unit = unit_abbrev(data.unit)
    blocks = len(data.rounds) // 2
    what = f"fan-out of {data.fan_out:,} activities" if data.fan_out else "fan-out"

    def interval(triple: tuple[float, float, float]) -> str:
        return f"{percent(triple[0])} ({percent(triple[1])} to {percent(triple[2])})"

    shown = "shown" if data.wall[2] <= OVERHEAD_TARGET_PERCENT else "not shown at this precision"
    layer = f"{number(data.layer_rate)} {unit}/s"
    if data.ratio is not None:
        layer += f" ({ratio(data.ratio)})"
    return _table(
        ["measure", "value"],
        [
            [f"{what}, no fault layer (median fan-out)", f"{number(data.bare_rate)} {unit}/s"],
            [f"{what}, fault layer with an empty plan", layer],
            [
                f"overhead, wall clock: median of {blocks} blocks of two rounds (95 % interval)",
                interval(data.wall),
            ],
            ["overhead, CPU of the worker process (95 % interval)", interval(data.cpu)],
            [
                f"target: at most {OVERHEAD_TARGET_PERCENT:g} % at 95 %",
                f"{shown} (interval ends at {percent(data.wall[2])})",
            ],
        ],
        [False, True],
    )


def _search_table(data: SearchPower) -> str:
    def opt(value: float | None, unit: str) -> str:
        return "" if value is None else f"{number(value)}{unit}"

    def count(value: float | None) -> str:
        return "" if value is None else f"{value:,g}"

    def entries(value: float | None) -> str:
        return "" if value is None else f"{value:g} entr{'y' if value == 1 else 'ies'}"

    runs = any(r.run for r in data.rows)  # a column only when rows name their run
    return _table(
        [
            "planted bug",
            "search",
            "found",
            "median time to find",
            "median examples to find",
            "largest shrunk plan",
            *(["run"] if runs else []),
        ],
        (
            [
                r.target,
                r.search,
                f"{r.found} of {r.runs}",
                opt(r.median_seconds, " s"),
                count(r.median_examples),
                entries(r.max_shrunk_entries),
                *([r.run or "earlier"] if runs else []),
            ]
            for r in data.rows
        ),
        [False, False, True, True, True, True, *([False] if runs else [])],
    )


SERVER_LABELS = {
    "time-skipping": "Java test server (`time-skipping`)",
    "dev-time-skipping": "dev server, per-workflow skipping (`dev-time-skipping`)",
}


def seconds(value: float) -> str:
    """Seconds to two significant figures or so: ``0.034 s``, ``1.2 s``, ``15 s``."""
    if value >= 10:
        return f"{value:,.0f} s"
    if value >= 1:
        return f"{value:.1f} s"
    return f"{value:.3f} s"


def _environments_table(data: Environments) -> str:
    servers = data.servers()
    pair = servers[:2] if len(servers) >= 2 else []

    def cell(shape: str, server: str) -> str:
        row = data.seconds(shape, server)
        return "" if row is None else f"{seconds(row.median_seconds)} ({seconds(row.min_seconds)})"

    header = ["shape", *(SERVER_LABELS.get(s, s) for s in servers)]
    if pair:
        header += [f"{pair[1]} ÷ {pair[0]}", "faster"]
    rows = []
    for shape in data.shapes():
        line = [shape, *(cell(shape, s) for s in servers)]
        if pair:
            a, b = data.seconds(shape, pair[0]), data.seconds(shape, pair[1])
            if a is not None and b is not None and a.median_seconds > 0:
                value = b.median_seconds / a.median_seconds
                line += [ratio(value), pair[0] if value >= 1 else pair[1]]
            else:
                line += ["", ""]
        rows.append(line)
    return _table(header, rows, [False, *([True] * (len(header) - 1))])


def _section(results: Results, key: str, images: Mapping[str, str]) -> list[str]:
    section = SECTIONS[key]
    data = getattr(results, key)
    lines = [f"## {section.title}", ""]
    command = section.command
    if key == "overhead":
        assert isinstance(data, Overhead)
        command = command.replace("140", str(len(data.rounds)))
    if key in ("search_power", "environments"):
        assert isinstance(data, (SearchPower, Environments))
        command = data.command or command
    else:
        command = re.sub(
            r"--benchmark-json=\S+", f"--benchmark-json={_display(data.source.path)}", command
        )
    lines += _source_lines(data.source, command)
    lines.append("")
    if key in images:
        lines += [f"![{section.title}]({images[key]})", ""]
    if isinstance(data, FanoutWidths):
        lines.append(
            "Records per second: the width over the median of the rounds"
            + (
                f"; in brackets, the ratio to {strategy_label(data.baseline)} "
                "at the same width, from the same run."
                if data.baseline
                else "."
            )
        )
        lines += ["", _fanout_table(data)]
    elif isinstance(data, RateSection):
        lines.append(
            "Each rate is the work of one round over the median round's time; "
            "each ratio is against a baseline from the same run."
        )
        lines += ["", _rate_table(data)]
    elif isinstance(data, Overhead):
        lines.append(
            "Paired rounds, each a fan-out without the layer and one with it (alternating "
            "which goes first), read in blocks of two rounds, one of each order; a block's "
            "ratio is the layer's total time over the bare arm's."
        )
        lines += ["", _overhead_table(data)]
    elif isinstance(data, SearchPower):
        lines += [_search_table(data)]
    elif isinstance(data, Environments):
        lines.append(
            "Real seconds per run, each on a server of the test's own, through the fault "
            "harness (sandboxed worker, every run replayed), one run at a time: the median of "
            "the rounds, the fastest in brackets; the ratio of the medians, from the same run."
        )
        lines += ["", _environments_table(data)]
    return lines + [""]


def markdown(results: Results, images: Mapping[str, str]) -> str:
    """The page: one section per benchmark with data, its figure where ``images`` has one."""
    lines = [
        "# Benchmark results",
        "",
        "<!-- Generated by `python -m benchmarks.plots` (figures and this page) or "
        "`python -m benchmarks.report` (this page) from the files in benchmarks/results; "
        "do not edit by hand. -->",
        "",
        "Every number below is read from a results file in `benchmarks/results`, with the "
        "machine and date of its run. These machines are noisy: read each rate beside its "
        "same-run baseline, not across sections or runs.",
        "",
    ]
    for key in results.present():
        lines += _section(results, key, images)
    missing = [key for key in SECTIONS if getattr(results, key) is None]
    if missing:
        lines += ["## Not recorded yet", ""]
        lines += [f"- {SECTIONS[k].title}: {SECTIONS[k].how()}." for k in missing]
        lines.append("")
    return "\n".join(lines)


def figure_links(results: Results, img_dir: Path, page: Path) -> dict[str, str]:
    """Links, relative to ``page``, to the figures of ``results`` that exist in ``img_dir``."""
    return {
        key: Path(os.path.relpath(img_dir / FIGURES[key], page.parent)).as_posix()
        for key in results.present()
        if (img_dir / FIGURES[key]).is_file()
    }


def write_markdown(results: Results, page: Path, img_dir: Path) -> Path:
    """Write the page to ``page``, linking the figures found in ``img_dir``."""
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(markdown(results, figure_links(results, img_dir, page)), encoding="utf-8")
    return page


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report``: write the page from the results files."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="default %(default)s")
    parser.add_argument("--out", type=Path, default=MARKDOWN, help="default %(default)s")
    parser.add_argument(
        "--img", type=Path, default=DOCS_IMG, help="the figures' folder, default %(default)s"
    )
    args = parser.parse_args(argv)
    try:
        results = load(args.results)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for message in results.messages:
        print(message)
    print(f"wrote {write_markdown(results, args.out, args.img)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
