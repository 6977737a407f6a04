"""The package boundaries the README promises, checked in fresh interpreters.

* The pattern packages are plain Temporal code: importing one loads neither the
  fault layer nor its test tooling (only the demonstration puts them underneath).
* The fault layer is reusable by any project: importing it loads no pattern.
* The fault core loads none of its test tooling (harness, servers, pytest).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

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
