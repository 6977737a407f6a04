"""Find a broken variant's counterexample with a shrink budget counted in runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st

T = TypeVar("T")


@dataclass(frozen=True)
class Caught(Generic[T]):
    """The shrunk counterexample, the example that first caught it, and the runs spent."""

    shrunk: T
    caught_at: int
    runs: int


def catch(
    strategy: st.SearchStrategy[T],
    violates: Callable[[T], bool],
    *,
    shrink_runs: int,
    max_examples: int,
) -> Caught[T]:
    """``find()`` a drawn case that ``violates``, derandomised, then shrink it at most
    ``shrink_runs`` more runs.

    Counted, not timed, so shrinking ends alike on every machine (Hypothesis's own cap is
    300 s of shrinking). ``find()`` stops at the first catch, so a large ``max_examples``
    costs nothing when the variant is caught early.
    """
    tried: list[T] = []
    caught_at: list[int] = []
    violating: list[T] = []

    def counted(case: T) -> bool:
        if caught_at and len(tried) >= caught_at[0] + shrink_runs:
            # The budget is spent: only a case already seen to violate (Hypothesis runs the
            # smallest once more at the end) still does, without running again.
            return case in violating
        tried.append(case)
        if violates(case):
            caught_at.append(len(tried))
            violating.append(case)
            return True
        return False

    shrunk = find(
        strategy,
        counted,
        settings=settings(
            max_examples=max_examples,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    return Caught(shrunk, caught_at[0], len(tried))
