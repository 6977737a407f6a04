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


def test_example_runs_alone_in_a_fresh_directory(tmp_path: Path) -> None:
    for name, body in example_files().items():
        (tmp_path / name).write_text(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "HYPOTHESIS"))}
    env.pop("CI", None)
    result = subprocess.run(
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
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output
    # Fault coverage reaches Hypothesis' statistics, and the session summary lists injections.
    assert re.search(r"fault: (fail|duplicate|delay) on charge", output), output
    assert re.search(r"faults injected:\n\s+\w+\s+charge\s+\d+", output), output
