"""What a pattern's demonstration reports back to ``python -m patterns``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import temporalio.client

import faults

from .._checks import InvariantCheck

__all__ = ["DemoReport", "Demonstration", "InvariantCheck", "Say"]

Say = Callable[[str], None]
"""Prints one progress or report line."""


@dataclass(frozen=True)
class DemoReport:
    """The outcome of one pattern's demonstration."""

    pattern: str
    summary: list[str] = field(default_factory=list)
    checks: list[InvariantCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every invariant held."""
        return all(check.held for check in self.checks)


class Demonstration(Protocol):
    """A pattern's demonstration: runs on ``client`` under ``plan`` and reports its checks."""

    def __call__(
        self,
        client: temporalio.client.Client,
        *,
        seed: int,
        plan: faults.FaultPlan | None,
        workdir: Path,
        say: Say,
    ) -> Awaitable[DemoReport]:
        """Run the demonstration; its services keep their state under ``workdir``."""
        ...
