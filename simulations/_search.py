"""Find a broken variant's counterexample with a shrink budget counted in runs."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

T = TypeVar("T")


@dataclass(frozen=True)
class Caught(Generic[T]):
    """The shrunk counterexample, the example that first caught it, and the runs spent."""

    shrunk: T
    caught_at: int
    """The example (counted from 1) that first violated."""
    runs: int
    """The runs made, shrinking included."""
    seconds_to_catch: float
    """Real time from the search's start to the end of the first violating run."""


def catch(
    strategy: st.SearchStrategy[T],
    violates: Callable[[T], bool],
    *,
    shrink_runs: int,
    max_examples: int,
    seed: int | None = None,
    small_enough: Callable[[T], bool] | None = None,
    same: Callable[[T], object] | None = None,
) -> Caught[T]:
    """``find()`` a drawn case that ``violates``, then shrink it at most ``shrink_runs`` more runs.

    Derandomised unless a ``seed`` is given. Counted, not timed, so shrinking ends alike on
    every machine (Hypothesis's own cap is 300 s of shrinking). ``find()`` stops at the first
    catch, so a large ``max_examples`` costs nothing when the variant is caught early. With
    ``small_enough``, shrinking also ends once a violating case satisfies it. ``same`` maps a
    case to what makes it the same case (leaving out fresh ids drawn anew each time). Raises
    :class:`hypothesis.errors.NoSuchExample` when no case violates.
    """
    tried: list[T] = []
    caught_at: list[int] = []
    violating: list[T] = []
    key: Callable[[T], object] = same or (lambda case: case)
    started = time.perf_counter()
    seconds: list[float] = []

    def spent() -> bool:
        if not caught_at:
            return False
        if small_enough is not None and any(small_enough(case) for case in violating):
            return True
        return len(tried) >= caught_at[0] + shrink_runs

    def counted(case: T) -> bool:
        if spent():
            # The budget is spent: only a case already seen to violate (Hypothesis runs the
            # smallest once more at the end) still does, without running again.
            return any(key(case) == key(seen) for seen in violating)
        tried.append(case)
        if violates(case):
            if not caught_at:
                caught_at.append(len(tried))
                seconds.append(time.perf_counter() - started)
            violating.append(case)
            return True
        return False

    shrunk = find(
        strategy,
        counted,
        settings=settings(
            max_examples=max_examples,
            database=None,
            derandomize=seed is None,
            suppress_health_check=list(HealthCheck),
        ),
        random=None if seed is None else random.Random(seed),
    )
    return Caught(shrunk, caught_at[0], len(tried), seconds[0])


class ShrinkBudgetSpent(KeyboardInterrupt):
    """A run was about to start after its stateful search's shrink budget was spent.

    A :class:`KeyboardInterrupt`, the one exception Hypothesis lets end a search without
    recording the run it interrupted (any other would be taken for a failure, or for data
    drawn differently than before). Whoever runs the search catches it, and
    :meth:`RunBudget.smallest` holds what the search found.
    """


@dataclass
class RunBudget:
    """A counted shrink budget for a stateful search: the runs after the first failing one.

    A state machine cannot use :func:`catch`, so it tells the budget when each run
    starts (:meth:`started`) and how it ended (:meth:`ended`). Once ``shrink_runs``
    runs have followed the first failing one, the next run does not start:
    :class:`ShrinkBudgetSpent` ends the search, and the smallest failing run seen is
    the result. Counted, not timed, so the search ends alike on every machine.
    """

    shrink_runs: int
    runs: int = 0
    """Runs started so far."""
    caught_at: int | None = None
    """The run that failed first, or ``None``."""
    failures: list[tuple[tuple[str, ...], Exception]] = field(default_factory=list)
    """The steps of each failing run, with its error."""

    def started(self) -> None:
        """A run is starting: raises :class:`ShrinkBudgetSpent` once the budget is spent."""
        if self.caught_at is not None and self.runs >= self.caught_at + self.shrink_runs:
            raise ShrinkBudgetSpent(f"{self.shrink_runs} runs after run {self.caught_at}")
        self.runs += 1

    def ended(self, steps: Sequence[str], error: BaseException | None) -> None:
        """A run ended, failing with ``error`` or passing (``None``, or Hypothesis's own)."""
        if isinstance(error, Exception) and not isinstance(error, HypothesisException):
            self.failures.append((tuple(steps), error))
            if self.caught_at is None:
                self.caught_at = self.runs

    def smallest(self) -> tuple[list[str], Exception]:
        """The failing run with the fewest steps (the shortest text among those), and its error."""
        if not self.failures:
            raise LookupError("no run failed")
        steps, error = min(self.failures, key=lambda f: (len(f[0]), len("".join(f[0]))))
        return list(steps), error
