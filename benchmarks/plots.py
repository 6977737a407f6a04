"""Figures of the committed benchmark results, drawn with matplotlib, and the page that shows them.

``python -m benchmarks.plots [--results DIR] [--out DIR] [--markdown FILE]`` reads the
results files in ``--results`` (default ``benchmarks/results``; see
:mod:`benchmarks.report` for what each holds), draws one PNG per benchmark that has
data into ``--out`` (default ``docs/img``), and writes the page showing them
(default ``docs/benchmarks.md``, beside the image folder). A benchmark without
results is skipped with a one-line message. Every figure names the machine and date
of its run. Needs the ``plot`` extra: ``pip install -e '.[plot]'``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import report
from benchmarks.report import (
    FIGURES,
    Environments,
    FanoutWidths,
    Overhead,
    RateSection,
    Results,
    ResultsError,
    SearchPower,
    Source,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL = "install the plot extra: pip install -e '.[plot]'"
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
BASELINE_COLOUR = "#7f7f7f"


class MissingPlotExtra(ImportError):
    """matplotlib is not installed."""


def _figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas (no display, no pyplot state)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise MissingPlotExtra(f"matplotlib is not installed; {INSTALL}") from err
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _caption(figure: Figure, source: Source, note: str = "") -> None:
    text = f"Machine: {source.caption()}" + (f"\n{note}" if note else "")
    figure.supxlabel(text, fontsize=8.5, color="#444444")


def _thousands(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))


def fanout(data: FanoutWidths) -> Figure:
    """Records per second against width, one line per strategy, log-log, round ranges shown."""
    figure = _figure(9.0, 5.6)
    from matplotlib.ticker import LogLocator

    axes = figure.add_subplot()
    for n, strategy in enumerate(data.strategies):
        points = [
            (w, data.points[(strategy, w)]) for w in data.widths if (strategy, w) in data.points
        ]
        widths = [w for w, _ in points]
        rates = [r.value for _, r in points]
        below = [r.value - (r.low if r.low is not None else r.value) for _, r in points]
        above = [(r.high if r.high is not None else r.value) - r.value for _, r in points]
        baseline = strategy == data.baseline
        label = report.strategy_label(strategy) + (" (baseline)" if baseline else "")
        last = points[-1][1]
        if last.ratio is not None:
            label += f": {report.ratio(last.ratio)} at {widths[-1]:,}"
        axes.errorbar(
            widths,
            rates,
            yerr=[below, above],
            label=label,
            color=BASELINE_COLOUR if baseline else COLOURS[n % len(COLOURS)],
            linestyle="--" if baseline else "-",
            marker="o",
            capsize=3,
            linewidth=2,
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(list(data.widths), [f"{w:,}" for w in data.widths])
    axes.minorticks_off()
    axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    _thousands(axes.yaxis)
    axes.set_xlim(data.widths[0] / 1.5, data.widths[-1] * 1.5)
    axes.set_xlabel("fan-out width (records per batch, log scale)")
    axes.set_ylabel("records per second (log scale)")
    axes.grid(True, which="major", color="#dddddd")
    axes.legend(title="strategy", fontsize=9, loc="upper left")
    figure.suptitle("Fan-out throughput by width and strategy")
    _caption(
        figure,
        data.source,
        "Points: median round; whiskers: slowest and fastest round; "
        "in the legend: ratio to the baseline at the same width, same run.",
    )
    return figure


def rate_bars(data: RateSection) -> Figure:
    """One horizontal bar per rate, its ratio to its same-run baseline beside it."""
    rates = list(data.rates)
    figure = _figure(9.0, 1.6 + 0.55 * len(rates))
    axes = figure.add_subplot()
    rows = range(len(rates))
    colours = [BASELINE_COLOUR if report.is_baseline(r, rates) else COLOURS[0] for r in rates]
    values = [r.value for r in rates]
    below = [r.value - (r.low if r.low is not None else r.value) for r in rates]
    above = [(r.high if r.high is not None else r.value) - r.value for r in rates]
    axes.barh(rows, values, color=colours, xerr=[below, above], capsize=3, height=0.6)
    axes.set_yticks(list(rows), [textwrap.fill(r.name, 48) for r in rates], fontsize=8.5)
    axes.invert_yaxis()
    for row, rate in zip(rows, rates, strict=True):
        text = f" {report.number(rate.value)} {report.unit_abbrev(rate.unit)}/s"
        if rate.ratio is not None:
            text += f" ({report.ratio(rate.ratio)})"
        axes.text(rate.high or rate.value, row, text, va="center", fontsize=8.5)
    axes.set_xlim(0, max((r.high or r.value) for r in rates) * 1.35)
    units = sorted({r.unit for r in rates})
    axes.set_xlabel(" or ".join(f"{u} per second" for u in units))
    _thousands(axes.xaxis)
    axes.grid(True, axis="x", color="#dddddd")
    axes.set_axisbelow(True)
    figure.suptitle(data.title)
    _caption(
        figure,
        data.source,
        "Bars: median round (grey: a baseline); whiskers: slowest and fastest round; "
        "ratios to the same-run baseline.",
    )
    return figure


def overhead(data: Overhead) -> Figure:
    """Each round's two fan-outs against each other, and the overhead with its interval."""
    figure = _figure(10.0, 5.0)
    rounds_axes, interval_axes = figure.subplots(1, 2, width_ratios=[3, 2])
    bare = [r[0] for r in data.rounds]
    layer = [r[2] for r in data.rounds]
    if data.rounds:
        rounds_axes.scatter(bare, layer, s=16, color=COLOURS[0], label="one round")
        low, high = min(bare + layer) * 0.97, max(bare + layer) * 1.03
        span = [low, high]
        rounds_axes.plot(span, span, color=BASELINE_COLOUR, linewidth=1, label="equal")
        target = 1 + report.OVERHEAD_TARGET_PERCENT / 100
        rounds_axes.plot(
            span,
            [low * target, high * target],
            color=COLOURS[1],
            linestyle="--",
            linewidth=1,
            label=f"layer {report.OVERHEAD_TARGET_PERCENT:g} % slower",
        )
        rounds_axes.set_xlim(span)
        rounds_axes.set_ylim(span)
        rounds_axes.legend(fontsize=8.5)
    rounds_axes.set_xlabel("fan-out without the fault layer (s)")
    rounds_axes.set_ylabel("fan-out with the layer, empty plan (s)")
    rounds_axes.set_title(f"{len(data.rounds)} paired rounds, wall clock", fontsize=10)
    rounds_axes.grid(True, color="#eeeeee")

    labels = ["wall clock", "worker CPU"]
    for n, (median, low, high) in enumerate((data.wall, data.cpu)):
        interval_axes.errorbar(
            [n],
            [median],
            yerr=[[median - low], [high - median]],
            fmt="o",
            color=(COLOURS[0], COLOURS[2])[n],
            capsize=6,
            markersize=7,
        )
        interval_axes.annotate(
            f"{report.percent(median)}\n({report.percent(low)} to {report.percent(high)})",
            (n, median),
            xytext=(10, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
        )
    interval_axes.axhline(0, color=BASELINE_COLOUR, linewidth=1)
    interval_axes.axhline(
        report.OVERHEAD_TARGET_PERCENT,
        color=COLOURS[1],
        linestyle="--",
        linewidth=1,
        label=f"target: at most {report.OVERHEAD_TARGET_PERCENT:g} %",
    )
    interval_axes.set_xticks([0, 1], labels)
    interval_axes.set_xlim(-0.5, 1.9)
    interval_axes.set_ylabel("overhead (%)")
    interval_axes.set_title(f"median of {len(data.rounds) // 2} blocks, 95 % interval", fontsize=10)
    interval_axes.legend(fontsize=8.5, loc="lower right")
    interval_axes.grid(True, axis="y", color="#eeeeee")
    what = f"a {data.fan_out:,}-activity fan-out" if data.fan_out else "a fan-out"
    figure.suptitle(f"Fault-layer overhead on {what}")
    _caption(figure, data.source)
    return figure


def search_power(data: SearchPower) -> Figure:
    """Share of runs that found each planted bug, one bar per search."""
    targets = list(dict.fromkeys(r.target for r in data.rows))
    searches = list(dict.fromkeys(r.search for r in data.rows))
    figure = _figure(9.0, 1.8 + 0.5 * len(targets) * max(1, len(searches)) ** 0.5)
    axes = figure.add_subplot()
    height = 0.8 / len(searches)
    for n, search in enumerate(searches):
        rows = [r for r in data.rows if r.search == search]
        ys = [targets.index(r.target) - 0.4 + height * (n + 0.5) for r in rows]
        shares = [r.found / r.runs for r in rows]
        colour = COLOURS[n % len(COLOURS)]
        axes.barh(ys, shares, height=height * 0.9, color=colour, label=search)
        for row, y, share in zip(rows, ys, shares, strict=True):
            axes.text(share, y, f" {row.found}/{row.runs}", va="center", fontsize=8.5)
    axes.set_yticks(range(len(targets)), [textwrap.fill(t, 40) for t in targets], fontsize=8.5)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.15)
    axes.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "25 %", "50 %", "75 %", "100 %"])
    axes.set_xlabel("runs that found the bug")
    return _finish_bars(figure, axes, "search", "Search power: planted bugs found", data.source)


def _finish_bars(figure: Figure, axes: Any, legend: str, title: str, source: Source) -> Figure:
    """Legend outside on the right, vertical grid lines behind the bars, title and caption."""
    axes.legend(title=legend, fontsize=8.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(True, axis="x", color="#dddddd")
    axes.set_axisbelow(True)
    figure.suptitle(title)
    _caption(figure, source)
    return figure


def environments(data: Environments) -> Figure:
    """Median real seconds per run of each shape, one bar per server, on a log scale."""
    shapes, servers = data.shapes(), data.servers()
    figure = _figure(9.0, 1.6 + 0.55 * len(shapes))
    axes = figure.add_subplot()
    height = 0.8 / max(1, len(servers))
    for n, server in enumerate(servers):
        rows = [(shapes.index(r.shape), r) for r in data.rows if r.server == server]
        ys = [i - 0.4 + height * (n + 0.5) for i, _ in rows]
        values = [r.median_seconds for _, r in rows]
        axes.barh(ys, values, height=height * 0.9, color=COLOURS[n % len(COLOURS)], label=server)
        for (_, row), y in zip(rows, ys, strict=True):
            axes.text(row.median_seconds, y, f" {report.seconds(row.median_seconds)}",
                      va="center", fontsize=8.5)  # fmt: skip
    axes.set_xscale("log")
    axes.set_yticks(range(len(shapes)), shapes, fontsize=9)
    axes.invert_yaxis()
    axes.set_xlabel("real seconds per run (median; log scale)")
    title = "Real time per run by workload shape and server"
    return _finish_bars(figure, axes, "server", title, data.source)


DRAW: dict[str, Callable[[Any], Figure]] = {
    "fanout": fanout,
    "fanout_end_to_end": rate_bars,
    "overhead": overhead,
    "simulation": rate_bars,
    "saga": rate_bars,
    "breaker": rate_bars,
    "search_power": search_power,
    "environments": environments,
}
"""How each section is drawn."""


def draw_all(results: Results, out: Path) -> list[Path]:
    """Draw every section that has data into ``out``; the files written."""
    written = []
    for key in results.present():
        figure = DRAW[key](getattr(results, key))
        out.mkdir(parents=True, exist_ok=True)
        path = out / FIGURES[key]
        # No software version in the file, so the same results draw the same bytes.
        figure.savefig(path, format="png", metadata={"Software": None})
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.plots``: draw the figures and write the page."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plots", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--results", type=Path, default=report.RESULTS, help="default %(default)s")
    parser.add_argument("--out", type=Path, default=report.DOCS_IMG, help="default %(default)s")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="the page to write (default: benchmarks.md in the folder above --out)",
    )
    args = parser.parse_args(argv)
    try:
        results = report.load(args.results)
        for message in results.messages:
            print(message)
        for path in draw_all(results, args.out):
            print(f"wrote {path}")
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except MissingPlotExtra as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    page = args.markdown or args.out.parent / report.MARKDOWN.name
    print(f"wrote {report.write_markdown(results, page, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
