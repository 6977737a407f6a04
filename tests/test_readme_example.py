"""The README's "use the fault injectors in your own project" example works on its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def example_files() -> dict[str, str]:
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", README.read_text(), re.S)
    return {name: body for name, body in blocks}


def test_readme_names_the_example_files() -> None:
    assert set(example_files()) == {"shop.py", "test_shop.py"}


def run_example(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "HYPOTHESIS"))}
    env.pop("CI", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "test_shop.py",
            "--hypothesis-show-statistics",
            "--rootdir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_example_runs_alone_in_a_fresh_directory(tmp_path: Path) -> None:
    result = run_example(tmp_path, example_files())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 passed" in output
    # Fault coverage reaches Hypothesis' statistics, and the session summary lists injections.
    assert re.search(r"fault: (fail|duplicate|delay) on charge", output), output
    assert re.search(r"faults injected:\n\s+\w+\s+charge\s+\d+", output), output


def test_example_property_catches_a_charge_that_is_not_idempotent(tmp_path: Path) -> None:
    files = example_files()
    shop = files["shop.py"]
    broken = shop.replace("INSERT OR IGNORE INTO", "INSERT INTO").replace(
        "order_id TEXT PRIMARY KEY", "order_id TEXT"
    )
    assert broken != shop
    result = run_example(tmp_path, {**files, "shop.py": broken})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 failed" in output
    # Both shrink to the single fault that re-runs the body: a duplicate on the first attempt.
    # Hypothesis prints the falsifying plan (whatever optional fields ScriptedFault has)...
    falsifying = (
        r"plan=ScriptedPlan\(faults=\(ScriptedFault\(activity='charge', attempt=1, "
        r"fault=Duplicate\(\)[^()]*\),\)\)"
    )
    assert re.search(falsifying, output), output
    assert "reproduce: workflow id" in output
    # ...and the exploration its shrunk schedule and a one-line reproduction.
    assert re.search(r"shrunk to 1 plan entries .*: charge\S* attempt 1: duplicate", output), output
    assert "reproduce: harness.run(ChargeOrder.run, 1999, plan=faults.plan_from_json(" in output
