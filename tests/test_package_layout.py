"""The package boundaries the README promises, checked in fresh interpreters.

* The pattern packages are plain Temporal code: importing one loads neither the
  fault layer nor its test tooling (only the demonstration puts them underneath).
* The fault layer is reusable by any project: importing it loads no pattern.
* The fault core loads none of its test tooling (harness, servers, pytest).
* Nothing outside the fault layer needs a private name of it: tests,
  simulations, benchmarks, the mutation runner and the patterns use only what
  ``faults``, ``faults.strategies`` and ``faults.testing`` export.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import faults
import faults.testing


def modules_loaded_by(statement: str) -> set[str]:
    """The top-level package names a fresh interpreter has loaded after ``statement``."""
    script = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("package", ["patterns.saga", "patterns.fanout", "patterns.breaker"])
def test_a_pattern_package_does_not_import_the_fault_layer(package: str) -> None:
    loaded = modules_loaded_by(f"import {package}")
    assert package in loaded
    assert not {m for m in loaded if m == "faults" or m.startswith("faults.")}


def test_the_fault_core_imports_no_pattern_and_none_of_its_test_tooling() -> None:
    loaded = modules_loaded_by("import faults, faults.strategies")
    assert "faults" in loaded
    assert not {m for m in loaded if m.startswith("patterns")}
    assert not {m for m in loaded if m.startswith("faults.testing")}
    assert "pytest" not in loaded and "_pytest" not in loaded


def test_the_demonstration_is_what_puts_the_fault_layer_underneath() -> None:
    assert "faults" in modules_loaded_by("import patterns.demo")


def test_names_that_moved_to_faults_testing_still_work_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"faults\.testing\.FaultHarness"):
        moved = faults.FaultHarness  # type: ignore[attr-defined]
    assert moved is faults.testing.FaultHarness
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        faults.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_every_public_name_is_importable_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for module in (faults, faults.testing):
            for name in module.__all__:
                assert getattr(module, name) is not None, f"{module.__name__}.{name}"


ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("tests", "simulations", "benchmarks", "mutation", "patterns")


def private_uses(source: str) -> list[str]:
    """``faults`` names with a leading underscore that ``source`` imports or reads."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("faults"):
            parts = [*node.module.split("."), *(a.name for a in node.names)]  # type: ignore[union-attr]
            dotted = f"{node.module}: {', '.join(a.name for a in node.names)}"
        elif isinstance(node, ast.Import):
            parts = [
                p for a in node.names if a.name.startswith("faults") for p in a.name.split(".")
            ]
            dotted = ", ".join(a.name for a in node.names)
        elif isinstance(node, ast.Attribute):
            chain = []
            inner: ast.expr = node
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if not (isinstance(inner, ast.Name) and inner.id == "faults"):
                continue
            parts = ["faults", *reversed(chain)]
            dotted = ".".join(parts)
        else:
            continue
        if any(p.startswith("_") and not p.startswith("__") for p in parts):
            found.append(f"line {node.lineno}: {dotted}")
    return found


def test_the_scan_sees_a_private_import() -> None:
    assert private_uses("from faults.testing._embedded import x") == [
        "line 1: faults.testing._embedded: x"
    ]
    assert private_uses("from faults.testing import _rotation") != []
    assert private_uses("import faults\nfaults._interceptor.CLOCK_MARGIN") != []
    assert private_uses("import faults.testing\nfaults.testing.explore(h)") == []


def test_nothing_outside_the_fault_layer_imports_a_private_name() -> None:
    files = [f for d in OUTSIDE for f in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50
    private = {
        str(f.relative_to(ROOT)): uses
        for f in files
        if (uses := private_uses(f.read_text(encoding="utf-8")))
    }
    assert not private, f"export these from faults / faults.testing instead: {private}"
