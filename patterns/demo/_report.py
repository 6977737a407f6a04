"""What a pattern's demonstration reports back to ``python -m patterns``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Say = Callable[[str], None]
"""Prints one progress or report line."""


@dataclass(frozen=True)
class InvariantCheck:
    """One invariant a demonstration checked, and whether it held."""

    name: str
    held: bool
    detail: str = ""


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
