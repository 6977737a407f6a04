"""The benchmark figures and page, drawn from small results files written here."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import plots, report

MACHINE = {
    "machine": "x86_64",
    "system": "Linux",
    "release": "6.1.0-test",
    "python_implementation": "CPython",
    "python_version": "3.11.9",
    "cpu": {"brand_raw": "Test CPU 9000", "count": 7},
}


def bench(
    fullname: str, extra: dict[str, Any], rounds: list[float], group: str | None = None
) -> dict[str, Any]:
    """One benchmark as pytest-benchmark writes it (the fields the report reads)."""
    return {
        "group": group,
        "name": fullname.split("::")[1],
        "fullname": fullname,
        "extra_info": extra,
        "stats": {"median": statistics.median(rounds), "data": rounds, "rounds": len(rounds)},
    }


def fanout_report() -> dict[str, Any]:
    """Two strategies at two widths, and the 100,000-record pair; rates are width / median."""
    module = "benchmarks/test_fanout_bench.py"
    benches = []
    for width, naive_seconds, default_seconds in ((10, 0.125, 0.0625), (1000, 8.0, 0.25)):
        naive = width / naive_seconds
        benches.append(
            bench(
                f"{module}::test_fan_out_width[{width}-naive_gather]",
                {"width": width, "strategy": "naive_gather", "records_per_second": naive},
                [naive_seconds, naive_seconds * 1.5, naive_seconds / 1.25],
            )
        )
        benches.append(
            bench(
                f"{module}::test_fan_out_width[{width}-default]",
                {
                    "width": width,
                    "strategy": "default",
                    f"fanout[default@{width}]: records_per_second": width / default_seconds,
                    f"ratio_vs_fanout[naive_gather@{width}]": naive_seconds / default_seconds,
                },
                [default_seconds, default_seconds * 2, default_seconds / 2],
            )
        )
    benches.append(
        bench(
            f"{module}::test_in_process_asyncio_100k",
            {"records": 100_000, "in_process_asyncio@100k: records_per_second": 5_000.0},
            [20.0, 20.0],
        )
    )
    benches.append(
        bench(
            f"{module}::test_batch_100k_end_to_end",
            {
                "records": 100_000,
                "peak_rss_mb": 321.5,
                "fanout[default@100k]: records_per_second": 2_500.0,
                "ratio_vs_in_process_asyncio@100k": 0.5,
            },
            [32.0, 40.0, 50.0],
        )
    )
    return {
        "machine_info": MACHINE,
        "commit_info": {"id": "abcdef0123456789", "dirty": False},
        "datetime": "2031-02-03T04:05:06+00:00",
        "benchmarks": benches,
    }


def fault_layer_report() -> dict[str, Any]:
    """The overhead benchmark (four paired rounds) and two simulation benchmarks."""
    module = "benchmarks/test_fault_layer_bench.py"
    bare = "fan-out 1,000, no fault layer"
    layer = "fan-out 1,000, fault layer, empty plan"
    overhead = bench(
        f"{module}::test_fault_layer_overhead_on_a_thousand_activity_fanout",
        {
            f"{bare}: activities_per_second": 200.0,
            f"{layer}: activities_per_second": 196.0,
            f"ratio_vs_{bare}": 0.98,
            "rounds": [
                {"bare": [5.0, 9.0], "layer": [5.1, 9.1]},
                {"bare": [5.2, 9.2], "layer": [5.3, 9.4]},
                {"bare": [4.9, 8.9], "layer": [5.0, 9.0]},
                {"bare": [5.0, 9.0], "layer": [5.05, 9.1]},
            ],
            "wall_overhead_percent": 1.8,
            "wall_overhead_interval_percent": [-0.2, 2.8],
            "cpu_overhead_percent": 1.2,
            "cpu_overhead_interval_percent": [0.5, 4.5],
        },
        [10.0, 10.4, 9.9, 10.1],
        group="fault-layer-overhead",
    )
    base = "3-step workflow, bare client"
    simulation = [
        bench(
            f"{module}::test_simulation_baseline_bare_client",
            {f"{base}: runs_per_second": 25.0},
            [2.4, 2.5, 2.6],
            group="simulation-throughput",
        ),
        bench(
            f"{module}::test_simulation_harness_eight_in_flight[unsandboxed-no-replay]",
            {
                "3-step workflow, harness + check, 8 in flight, unsandboxed, no replay: "
                "runs_per_second": 75.0,
                f"ratio_vs_{base}": 3.0,
            },
            [0.8, 0.75, 0.7],
            group="simulation-throughput",
        ),
    ]
    return {
        "machine_info": MACHINE,
        "datetime": "2031-02-04T10:00:00+00:00",
        "benchmarks": [overhead, *simulation],
    }


SEARCH_POWER = {
    "datetime": "2031-02-05T12:00:00+00:00",
    "machine_info": MACHINE,
    "command": "pytest simulations -k power",
    "results": [
        {
            "target": "saga: compensation registered after its step",
            "search": "systematic",
            "runs": 8,
            "found": 8,
            "median_seconds": 3.25,
            "median_examples": 41,
        },
        {
            "target": "saga: compensation registered after its step",
            "search": "random",
            "runs": 8,
            "found": 6,
        },
    ],
}


ENVIRONMENTS = {
    "datetime": "2031-02-06T08:00:00+00:00",
    "machine_info": MACHINE,
    "command": "pytest benchmarks/test_environment_bench.py --benchmark-only",
    "rows": [
        {"shape": "timers", "server": "time-skipping", "rounds": 10,
         "median_seconds": 0.05, "min_seconds": 0.04},
        {"shape": "timers", "server": "dev-time-skipping", "rounds": 10,
         "median_seconds": 0.2, "min_seconds": 0.15},
        {"shape": "children on signals", "server": "time-skipping", "rounds": 10,
         "median_seconds": 12.0, "min_seconds": 9.5},
        {"shape": "children on signals", "server": "dev-time-skipping", "rounds": 10,
         "median_seconds": 1.5, "min_seconds": 1.25},
    ],
}  # fmt: skip


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "fanout.json").write_text(json.dumps(fanout_report()))
    (folder / "fault_layer.json").write_text(json.dumps(fault_layer_report()))
    (folder / "search_power.json").write_text(json.dumps(SEARCH_POWER))
    (folder / "environments.json").write_text(json.dumps(ENVIRONMENTS))
    return folder


def test_page_holds_every_figure_of_the_results_files(results_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "docs" / "benchmarks.md"
    args = ["--results", str(results_dir), "--out", str(page), "--img", str(tmp_path / "img")]
    assert report.main(args) == 0
    text = page.read_text()
    # Machine and date of each run.
    assert "Test CPU 9000 (7 CPUs, x86_64), Linux 6.1.0-test, CPython 3.11.9" in text
    assert "2031-02-03 04:05 UTC" in text and "2031-02-04 10:00 UTC" in text
    assert "commit abcdef0" in text
    # Fan-out: width / median round, ratios as recorded.
    assert "| naive gather (baseline) | 80.0 rec/s | 125 rec/s |" in text
    assert "| default | 160 rec/s (2.00x) | 4,000 rec/s (32.00x) |" in text
    assert "| fanout[default@100k] | 2,500 rec/s |" in text
    assert "0.50x vs in_process_asyncio@100k" in text and "peak RSS 321.5 MB" in text
    # The range over the rounds: the same work over the slowest and the fastest round.
    assert "2,000–3,125 (3 rounds)" in text
    # Overhead: rates, blocks, interval and the target's verdict.
    assert "200 activities/s" in text and "196 activities/s (0.98x)" in text
    assert "median of 2 blocks of two rounds" in text
    assert "+1.8 % (-0.2 % to +2.8 %)" in text and "+1.2 % (+0.5 % to +4.5 %)" in text
    assert "shown (interval ends at +2.8 %)" in text
    assert "--overhead-rounds 4 --benchmark-json=" in text
    # Simulation and search power.
    assert "| 3-step workflow, bare client (baseline) | 25.0 runs/s |" in text
    assert "75.0 runs/s" in text and "3.00x vs 3-step workflow, bare client" in text
    assert "| 8 of 8 | 3.25 s | 41 |" in text and "| 6 of 8 |" in text
    # Servers by shape: medians, fastest rounds, the ratio and the faster server.
    assert "2031-02-06 08:00 UTC" in text
    assert "| timers | 0.050 s (0.040 s) | 0.200 s (0.150 s) | 4.00x | time-skipping |" in text
    assert (
        "| children on signals | 12 s (9.5 s) | 1.5 s (1.2 s) | 0.12x | dev-time-skipping |"
    ) in text
    # Sections without results are listed with the command that makes them.
    assert "## Not recorded yet" in text
    assert "pytest benchmarks/test_saga_bench.py --benchmark-only" in text
    # No figures were drawn in --img, so none is linked.
    assert "![" not in text


def test_search_rows_name_the_run_they_come_from(tmp_path: Path) -> None:
    """A ``-k`` run updates its own rows: each then names its commit and date."""
    mixed = json.loads(json.dumps(SEARCH_POWER))
    mixed["results"][0].update(commit="abc1234", date="2031-02-05")
    path = tmp_path / "search_power.json"
    path.write_text(json.dumps(mixed))
    table = report._search_table(report._search_power(path))
    assert table.splitlines()[0].endswith("| run |")
    assert "| 8 of 8 | 3.25 s | 41 |  | abc1234, 2031-02-05 |" in table
    assert table.splitlines()[-1].endswith("| earlier |")
    path.write_text(json.dumps(SEARCH_POWER))  # no row names its run: no column
    assert "| run |" not in report._search_table(report._search_power(path)).splitlines()[0]


def test_page_needs_no_matplotlib(
    results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401
    page = tmp_path / "benchmarks.md"
    assert report.main(["--results", str(results_dir), "--out", str(page)]) == 0
    assert "4,000 rec/s (32.00x)" in page.read_text()


def test_plots_without_matplotlib_name_the_extra(
    results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = plots.main(["--results", str(results_dir), "--out", str(tmp_path / "img")])
    assert code == 1
    assert "install the plot extra: pip install -e '.[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "img").exists()


def test_figures_are_drawn_and_linked(results_dir: Path, tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "docs" / "img"
    assert plots.main(["--results", str(results_dir), "--out", str(out)]) == 0
    drawn = sorted(p.name for p in out.iterdir())
    assert drawn == sorted(
        report.FIGURES[k]
        for k in (
            "fanout",
            "fanout_end_to_end",
            "overhead",
            "simulation",
            "search_power",
            "environments",
        )
    )
    for name in drawn:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(data) > 10_000, (name, len(data))
    text = (tmp_path / "docs" / "benchmarks.md").read_text()
    for name in drawn:
        assert f"(img/{name})" in text
    printed = capsys.readouterr().out
    assert "skipped saga throughput" in printed and "skipped circuit breaker cost" in printed


def test_missing_files_are_skipped_not_failed(tmp_path: Path, capsys: Any) -> None:
    empty = tmp_path / "results"
    empty.mkdir()
    (empty / "notes.json").write_text("{}")
    page = tmp_path / "page.md"
    assert report.main(["--results", str(empty), "--out", str(page)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("ignored ") and "notes.json" in line for line in printed)
    skipped = [line for line in printed if line.startswith("skipped ")]
    assert len(skipped) == len(report.SECTIONS)
    assert "search_power.json" in skipped[-2]
    assert "test_environment_bench.py" in skipped[-1]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("fanout.json", "{not json", r"fanout\.json: not valid JSON"),
        ("search_power.json", '{"results": [{"target": "t", "search": "s", "runs": 2}]}',
         r"search_power\.json: results\[0\]: 'found' must be an integer from 0 to runs \(2\)"),
        ("search_power.json", '{"results": [{"target": "", "search": "s"}]}',
         r"results\[0\]: 'target' must be a non-empty string"),
        ("environments.json", '{"rows": []}', r"environments\.json: needs a non-empty 'rows'"),
        ("environments.json",
         '{"rows": [{"shape": "t", "server": "s", "rounds": 3, "median_seconds": -1}]}',
         r"rows\[0\]: 'median_seconds' must be a number >= 0; got -1"),
    ],
)  # fmt: skip
def test_unreadable_results_name_the_file_and_field(
    tmp_path: Path, capsys: Any, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(report.ResultsError, match=message):
        report.load(tmp_path)
    assert report.main(["--results", str(tmp_path), "--out", str(tmp_path / "p.md")]) == 2
    assert "error: " in capsys.readouterr().err


def test_missing_results_folder_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(report.ResultsError, match=r"does not exist \(--results DIR\)"):
        report.load(tmp_path / "absent")


def test_committed_page_matches_the_committed_results() -> None:
    results = report.load(report.ROOT / report.RESULTS)
    page = report.ROOT / report.MARKDOWN
    expected = report.markdown(
        results, report.figure_links(results, report.ROOT / report.DOCS_IMG, page)
    )
    assert page.read_text() == expected, (
        "docs/benchmarks.md differs from what benchmarks/results gives: "
        "run python -m benchmarks.plots and commit docs/"
    )
    for key in results.present():
        assert (report.ROOT / report.DOCS_IMG / report.FIGURES[key]).is_file(), (
            f"no figure for {key}: run python -m benchmarks.plots and commit docs/img"
        )
