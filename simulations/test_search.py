"""The counted shrink budgets the broken-variant searches use (:mod:`simulations._search`)."""

from __future__ import annotations

import itertools
import sys

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from ._search import RunBudget, ShrinkBudgetSpent, catch


def test_catch_stops_shrinking_after_its_budget() -> None:
    tried: list[int] = []

    def violates(n: int) -> bool:
        tried.append(n)
        return n >= 10

    caught = catch(st.integers(0, 1000), violates, shrink_runs=3, max_examples=500)
    assert caught.runs == len(tried) <= caught.caught_at + 3
    assert caught.shrunk >= 10  # a case seen to violate, however far it shrank


def test_small_enough_ends_shrinking_before_the_budget() -> None:
    tried: list[int] = []

    def violates(n: int) -> bool:
        tried.append(n)
        return n >= 10

    caught = catch(
        st.integers(0, 10**6),
        violates,
        shrink_runs=10**6,
        max_examples=500,
        small_enough=lambda n: n < 10**4,
    )
    assert 10 <= caught.shrunk < 10**4
    assert caught.runs == len(tried)
    assert all(n >= 10**4 for n in tried[caught.caught_at : caught.runs - 1])


def test_a_seeded_search_repeats_itself_and_other_seeds_differ() -> None:
    def search(seed: int) -> list[int]:
        tried: list[int] = []

        def violates(n: int) -> bool:
            tried.append(n)
            return n % 7 == 3

        catch(st.integers(0, 10**6), violates, shrink_runs=5, max_examples=500, seed=seed)
        return tried

    assert search(1) == search(1)
    assert search(1) != search(2)


def test_same_lets_a_case_with_a_fresh_id_count_as_seen() -> None:
    fresh = itertools.count()
    cases = st.integers(0, 1000).map(lambda n: (n, next(fresh)))  # a new id at every draw
    caught = catch(
        cases,
        lambda case: case[0] >= 10,
        shrink_runs=3,
        max_examples=500,
        same=lambda case: case[0],
    )
    assert caught.shrunk[0] >= 10 and caught.seconds_to_catch >= 0


def test_a_run_budget_ends_the_search_after_its_shrink_runs() -> None:
    budget = RunBudget(shrink_runs=2)
    budget.started()
    budget.ended(["a", "b", "c"], None)
    budget.started()
    budget.ended(["a", "b"], AssertionError("caught"))
    budget.started()
    budget.ended(["a"], UnsatisfiedAssumption())  # Hypothesis's own: not a failure
    budget.started()
    budget.ended(["x", "y"], AssertionError("again"))
    with pytest.raises(ShrinkBudgetSpent):
        budget.started()
    assert (budget.caught_at, budget.runs) == (2, 4)
    steps, error = budget.smallest()
    assert steps == ["a", "b"] and str(error) == "caught"


def test_a_spent_budget_ends_a_stateful_search_with_its_smallest_failure() -> None:
    budget = RunBudget(shrink_runs=5)

    class FailsPastThree(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            budget.started()
            self.steps: list[str] = []

        @rule(n=st.integers(0, 9))
        def step(self, n: int) -> None:
            self.steps.append(f"step({n})")
            assert len(self.steps) < 3 or n < 5, "too far"

        def teardown(self) -> None:
            budget.ended(self.steps, sys.exc_info()[1])

    with pytest.raises(ShrinkBudgetSpent):
        # No example database: a failure saved by an earlier search would be replayed first,
        # already shrunk, and the budget could be spent in the replay that reports it.
        run_state_machine_as_test(
            FailsPastThree, settings=settings(database=None, derandomize=True)
        )
    assert budget.caught_at is not None and budget.runs == budget.caught_at + 5
    steps, error = budget.smallest()
    assert len(steps) >= 3 and str(error).startswith("too far")
