"""The outcome of one invariant check, shared by every pattern's invariants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InvariantCheck:
    """One invariant that was checked, whether it held, and what the evidence showed."""

    name: str
    held: bool
    detail: str = ""
