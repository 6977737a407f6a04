"""Model-based simulation of the circuit breaker (Hypothesis ``RuleBasedStateMachine``).

The rules make concurrent callers acquire permits, report calls that succeed,
fail or are slow (in any order, or never: permits time out), let time pass,
and force the breaker open or reset it. After every step the breaker's view
must equal the reference model's (:mod:`simulations.breaker_model`), and each
rule checks the pattern's promises directly on what the breaker did.

Time: the model counts whole minutes; every duration in the config is a whole
number of minutes and time advances in whole minutes. The real entity reads
``workflow.now()`` on the time-skipping server, where the simulation's steps
add a few milliseconds of real time on top of the skipped minutes; since every
deadline is a whole number of minutes after an event and an example runs for
far less than a minute of real time, "due at or before now" agrees exactly.

Results are reported one at a time (acquires run concurrently): a breaker's
window depends on the order results arrive in, and the model needs that order.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from temporalio.worker import Worker

import faults
import faults.testing
from patterns.breaker import BreakerConfig, Permit, Rejected

from ._search import RunBudget, ShrinkBudgetSpent
from .breaker_drivers import Driver, EntityDriver, MachineDriver
from .breaker_model import ModelBreaker, ModelConfig
from .breaker_variants import ENTITIES, MACHINES

SLOW_SECONDS = 30.0
TRANSITIONS_KEPT = 100
"""A breaker keeps its latest 100 transitions (the pattern's documented bound)."""
CLOCK_SLACK = 30.0
"""Seconds a breaker's timestamp may differ from the model's minute: the entity's clock adds
the example's real time (far below this) to the skipped minutes."""


@st.composite
def model_configs(draw: st.DrawFn) -> ModelConfig:
    window = draw(st.integers(1, 5))
    return ModelConfig(
        threshold=draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])),
        window=window,
        minimum=draw(st.integers(1, window)),
        streak=draw(st.none() | st.integers(1, 4)),
        slow_seconds=draw(st.none() | st.just(SLOW_SECONDS)),
        open_minutes=draw(st.integers(1, 4)),
        probes=draw(st.integers(1, 3)),
        timeout_minutes=draw(st.integers(2, 6)),
    )


def to_config(cfg: ModelConfig) -> BreakerConfig:
    return BreakerConfig(
        failure_rate_threshold=cfg.threshold,
        window_size=cfg.window,
        minimum_calls=cfg.minimum,
        consecutive_failures=cfg.streak,
        slow_call_seconds=cfg.slow_seconds,
        open_seconds=60.0 * cfg.open_minutes,
        half_open_permits=cfg.probes,
        permit_timeout_seconds=60.0 * cfg.timeout_minutes,
    )


DURATIONS = {
    "ok": 0.5,
    "fail": 0.5,
    "slow": SLOW_SECONDS,
    "slower": 1.5 * SLOW_SECONDS,
    "fail slowly": SLOW_SECONDS,
}
"""Seconds a call lasted: a slow call succeeded, in exactly the bound or longer; a call that
failed slowly is a failed call, not a slow one."""
OUTCOMES = tuple(DURATIONS)


def simulation(
    make_driver: Callable[[BreakerConfig], Driver], budget: RunBudget | None = None
) -> type[RuleBasedStateMachine]:
    """A state machine class that drives breakers made by ``make_driver``.

    With a ``budget``, a search for a broken variant shrinks for a counted number of runs.
    """

    class BreakerSimulation(RuleBasedStateMachine):
        permits = Bundle("permits")
        last_run: list[str] = []
        run_budget = budget

        def __init__(self) -> None:
            super().__init__()
            if budget is not None:
                budget.started()
            self.driver: Driver | None = None
            self.model: ModelBreaker | None = None
            self.probes: Counter[int] = Counter()
            self.in_macro = False
            self.minute_zero: float | None = None
            """The breaker's time at the model's minute 0, read from its first transition."""
            type(self).last_run = []

        def _step(self, text: str) -> None:
            if not self.in_macro:  # a macro step's inner steps are part of it
                type(self).last_run.append(text)

        @initialize(cfg=model_configs())
        def configure(self, cfg: ModelConfig) -> None:
            self._step(f"configure({cfg})")
            self.model = ModelBreaker(cfg)
            self.driver = make_driver(to_config(cfg))

        @rule(target=permits, callers=st.integers(1, 4))
        def acquire(self, callers: int) -> Any:
            assert self.driver is not None and self.model is not None
            self._step(f"acquire({callers})")
            state = self.model.state
            decisions = self.driver.acquire(callers)
            granted = [d for d in decisions if isinstance(d, Permit)]
            if state in ("open", "forced_open"):
                assert not granted, f"{state} breaker let {len(granted)} call(s) through"
            for rejected in (d for d in decisions if isinstance(d, Rejected)):
                assert rejected.state == state, f"rejected as {rejected.state}, model {state}"
                if state != "open":
                    assert rejected.retry_at is None, f"{state}: retry at {rejected.retry_at}"
                elif self.minute_zero is not None:  # the opening was a transition: it is known
                    due = self.model.open_since + self.model.cfg.open_minutes
                    assert rejected.retry_at is not None
                    assert abs(rejected.retry_at - self._at(due)) < CLOCK_SLACK, (
                        f"retry at {rejected.retry_at}, the open period ends at {self._at(due)}"
                    )
            for permit in granted:
                assert (permit.epoch, permit.state) == (self.model.changes, state), (
                    f"permit {permit} in epoch {self.model.changes}, state {state}"
                )
            for permit in granted:
                if permit.state == "half_open":
                    self.probes[permit.epoch] += 1
                    assert self.probes[permit.epoch] <= self.model.cfg.probes, (
                        f"half-open admitted {self.probes[permit.epoch]} probes, "
                        f"{self.model.cfg.probes} permitted"
                    )
            expected = self.model.admits(callers)
            assert len(granted) == expected, f"{state}: {len(granted)} permits, model {expected}"
            self.model.granted([p.id for p in granted])
            return multiple(*(p.id for p in granted))

        @rule(permit=consumes(permits), outcome=st.sampled_from(OUTCOMES))
        def complete(self, permit: str, outcome: str) -> None:
            assert self.driver is not None and self.model is not None
            self._step(f"complete({permit}, {outcome})")
            cfg = self.model.cfg
            # Read before the report: a transition empties the model's window.
            before, probes_ok = self.model.state, self.model.probes_ok
            calls_before = len(self.model.outcomes)
            succeeded, seconds = not outcome.startswith("fail"), DURATIONS[outcome]
            # A call that succeeded counts as a success unless it was slow.
            good = succeeded and (cfg.slow_seconds is None or seconds < cfg.slow_seconds)
            view, said = self.driver.record(permit, succeeded, seconds)
            counted = self.model.report(permit, succeeded, seconds)
            assert said in (None, counted), (
                f"record() said the report counted: {said}; the model: {counted}"
            )
            if before == "closed" and view.state == "open":
                assert counted, "opened on the report of a permit that no longer counts"
                if good:
                    # A success ends any streak and never raises the failure rate (a window
                    # below full gains a success, a full one trades its oldest outcome for
                    # one), and a window of minimum_calls or more was judged on the call
                    # before: a success can open the breaker only as the call that brings
                    # the window up to the minimum, from exactly one call short of it.
                    assert calls_before + 1 == cfg.minimum, (
                        f"opened on a success with {calls_before} call(s) in the window "
                        f"before it and minimum_calls={cfg.minimum}"
                    )
            if view.state == "closed" and before == "half_open":
                assert good and probes_ok + 1 == cfg.probes, (
                    f"closed after {probes_ok} successful probes and a {outcome} one"
                )
            assert view.state == self.model.state, (
                f"{before} + {outcome}: breaker {view.state}, model {self.model.state}"
            )

        @rule(callers=st.integers(1, 4))
        def outage(self, callers: int) -> None:
            """A macro step: ``callers`` calls acquire permits and every admitted one fails.

            The usual way a breaker opens, in one step instead of several, so the
            states after opening (half-open, probes) are reached within few examples.
            """
            self._step(f"outage({callers})")
            self.in_macro = True
            try:
                for permit in self.acquire(callers).values:
                    self.complete(permit, "fail")
            finally:
                self.in_macro = False

        @rule(outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=4))
        def traffic(self, outcomes: list[str]) -> None:
            """A macro step: callers acquire permits together, then report these outcomes in order.

            Mixed outcomes from one step, so a closed window often holds both failures and
            successes (with single steps, a success rarely follows a failure before the
            breaker opens or the permits time out).
            """
            self._step(f"traffic({outcomes})")
            self.in_macro = True
            try:
                admitted = self.acquire(len(outcomes)).values  # maybe fewer than outcomes
                for permit, outcome in zip(admitted, outcomes, strict=False):
                    self.complete(permit, outcome)
            finally:
                self.in_macro = False

        @rule(outcomes=st.lists(st.sampled_from(["ok", "ok", *OUTCOMES[1:]]), max_size=3))
        def recover(self, outcomes: list[str]) -> None:
            """A macro step: wait out the open period, then probes report these outcomes.

            How a breaker closes again; with single steps a probe rarely succeeds (the
            permits drawn are mostly void ones from earlier epochs), so the half-open
            breaker's closing would go unexercised.
            """
            assert self.model is not None
            self._step(f"recover({outcomes})")
            self.in_macro = True
            try:
                if self.model.state == "open":
                    due = self.model.open_since + self.model.cfg.open_minutes
                    self.advance(due - self.model.minute)
                admitted = self.acquire(len(outcomes)).values if outcomes else []
                for permit, outcome in zip(admitted, outcomes, strict=False):
                    self.complete(permit, outcome)
            finally:
                self.in_macro = False

        @rule(minutes=st.integers(1, 6))
        def advance(self, minutes: int) -> None:
            assert self.driver is not None and self.model is not None
            self._step(f"advance({minutes})")
            self.driver.advance(60.0 * minutes)
            self.model.advance_to(self.model.minute + minutes)

        @rule()
        def force_open(self) -> None:
            assert self.driver is not None and self.model is not None
            self._step("force_open()")
            self.driver.force_open()
            self.model.force_open()

        @rule()
        def reset(self) -> None:
            assert self.driver is not None and self.model is not None
            self._step("reset()")
            self.driver.reset()
            self.model.reset()

        @invariant()
        def matches_the_model(self) -> None:
            if self.driver is None or self.model is None:
                return
            view = self.driver.observe()
            actual = {key: getattr(view, key) for key in self.model.summary()}
            assert actual == self.model.summary(), (
                f"breaker {actual} != model {self.model.summary()}"
            )
            assert view.probes_issued <= self.model.cfg.probes
            assert (view.opened_at is not None) == (self.model.state == "open"), (
                f"{self.model.state} breaker with opened_at {view.opened_at}"
            )
            if view.opened_at is not None and self.minute_zero is not None:
                opened = self._at(self.model.open_since)
                assert abs(view.opened_at - opened) < CLOCK_SLACK, (
                    f"opened_at {view.opened_at}, the model opened it at {opened}"
                )

        @invariant()
        def transitions_match_the_model(self) -> None:
            """The breaker's log holds its latest transitions: states, times and reasons."""
            if self.driver is None or self.model is None:
                return
            log = self.driver.transitions()
            expected = self.model.log[-TRANSITIONS_KEPT:]
            assert len(log) == len(expected), (
                f"{len(log)} transitions logged; the model made {len(self.model.log)}"
            )
            if log and self.minute_zero is None:
                self.minute_zero = log[0].at - 60.0 * expected[0][2]
            for got, (before, after, minute, why) in zip(log, expected, strict=True):
                assert (got.from_state, got.to_state, got.reason) == (before, after, why), (
                    f"logged {got}; the model moved {before} -> {after} at minute {minute}: {why}"
                )
                assert abs(got.at - self._at(minute)) < CLOCK_SLACK, (
                    f"logged {got} at {got.at}; the model moved at {self._at(minute)}"
                )

        def _at(self, minute: int) -> float:
            """The breaker's time at the model's ``minute``."""
            assert self.minute_zero is not None
            return self.minute_zero + 60.0 * minute

        def teardown(self) -> None:
            if budget is not None:
                # Hypothesis tears a run down in a ``finally``: a failure is still in flight.
                budget.ended(type(self).last_run, sys.exc_info()[1])
            if self.driver is not None:
                self.driver.close()

    return BreakerSimulation


def check(sim: type[RuleBasedStateMachine], steps: int, **overrides: Any) -> None:
    run_state_machine_as_test(
        sim, settings=settings(settings.default, stateful_step_count=steps, **overrides)
    )


def expect_caught(
    sim: type[RuleBasedStateMachine],
    steps: int,
    match: str | None = None,
    **overrides: Any,
) -> list[str]:
    """The steps of the shrunk run that caught ``sim``'s breaker, which must be caught.

    One failure, shrunk (whatever the profile: the mutation profile does not shrink):
    several checks may catch one broken variant in different ways. When ``sim`` was built
    with a budget, the smallest failure seen once it is spent.
    """
    budget: RunBudget | None = getattr(sim, "run_budget", None)
    try:
        with pytest.raises(AssertionError, match=match):
            check(
                sim,
                steps,
                report_multiple_bugs=False,
                phases=tuple(Phase),
                database=None,  # a fresh search: a saved failure would be replayed pre-shrunk
                **overrides,
            )
    except ShrinkBudgetSpent:
        assert budget is not None
        run, error = budget.smallest()
        assert isinstance(error, AssertionError), f"caught by {error!r}, not a check"
        if match is not None:
            assert re.search(match, str(error)), f"{error} does not match {match!r}"
        return run
    return list(sim.last_run)  # type: ignore[attr-defined]  # the shrunk failing run ran last


# --------------------------------------------------------------------------- in process


def test_state_machine_matches_the_model() -> None:
    check(simulation(lambda config: MachineDriver(MACHINES["correct"], config)), steps=40)


PINNED = ModelConfig(
    threshold=0.25,
    window=4,
    minimum=4,
    streak=None,
    slow_seconds=None,
    open_minutes=1,
    probes=1,
    timeout_minutes=2,
)
"""The configuration of the pinned runs: 4 calls needed, and one failure in 4 opens."""


def failures_then_a_success(variant: str, failures: int) -> Any:
    """Run the simulation's own rules on ``variant``: ``failures`` failed calls, then one ``ok``.

    Returns the state machine (its model shows what the success did); a rule that catches
    the breaker breaking a promise raises ``AssertionError``.
    """
    state: Any = simulation(lambda config: MachineDriver(MACHINES[variant], config))()
    state.configure(cfg=PINNED)
    state.matches_the_model()
    for _ in range(failures):
        state.outage(callers=1)
        state.matches_the_model()
    (permit,) = state.acquire(callers=1).values
    state.matches_the_model()
    assert (state.model.state, state.model.outcomes) == ("closed", [False] * failures)
    try:
        state.complete(permit=permit, outcome="ok")
        state.matches_the_model()
    finally:
        state.teardown()
    return state


def test_a_success_that_fills_the_window_to_the_minimum_opens_the_breaker() -> None:
    """A pinned run: three failures, then a success that brings the window to the minimum.

    With 3 failures in 4 calls (0.75 >= 0.25) the breaker must open on that success. The
    simulation once raised a false alarm here: its check read the model's window after the
    transition had emptied it ("opened on a success with 0 calls in the window").
    """
    model = failures_then_a_success("correct", failures=3).model
    assert (model.state, model.changes) == ("open", 1)  # it opened, on that success


def test_a_breaker_that_opens_on_a_success_short_of_the_minimum_is_caught() -> None:
    """The same check still fails a breaker that opens on a success in a window of 2 calls."""
    with pytest.raises(AssertionError, match=r"opened on a success with 1 call\(s\)"):
        failures_then_a_success("opens_on_a_success", failures=1)
    model = failures_then_a_success("correct", failures=1).model
    assert (model.state, model.outcomes) == ("closed", [False, True])  # the correct one stays


def test_a_permit_never_reported_times_out_as_a_failure() -> None:
    """Pinned runs: callers report out of order; the permit left out times out and opens it.

    ``p1`` is issued a minute before ``p2``-``p4``, which report ``ok``; at minute 2 ``p1``
    times out (applied when time reaches minute 3), the window's fourth call and a failure
    (1 in 4 >= 0.25): the breaker opens.
    Then, after a reset and four more ``ok`` calls, ``p9`` is issued a minute before ``p10``
    (which sorts before it as text) and ``p10`` reports first; ``p9`` times out and opens it.
    A breaker that forgot the wrong permit would time out the other one a minute later.
    """
    state: Any = simulation(lambda config: MachineDriver(MACHINES["correct"], config))()
    state.configure(cfg=PINNED)

    def step(rule: str, **args: Any) -> Any:
        result = getattr(state, rule)(**args)
        state.matches_the_model()
        state.transitions_match_the_model()
        return result

    try:
        step("acquire", callers=1)
        step("advance", minutes=1)
        for permit in step("acquire", callers=3).values:
            step("complete", permit=permit, outcome="ok")
        step("advance", minutes=2)  # past the timeout: due at minute 2, applied at 3
        assert state.model.log[0][:3] == ("closed", "open", 2), state.model.log
        step("reset")
        for permit in step("acquire", callers=4).values:
            step("complete", permit=permit, outcome="ok")
        step("acquire", callers=1)
        step("advance", minutes=1)
        (tenth,) = step("acquire", callers=1).values
        step("complete", permit=tenth, outcome="ok")
        step("advance", minutes=1)
        assert state.model.state == "open", state.model.log
    finally:
        state.teardown()


def test_a_breaker_keeps_its_latest_100_transitions() -> None:
    """A pinned run of 121 transitions (forced open, reset, ...): the log holds the last 100.

    The state machine's 40-step runs make far fewer, so the bound is checked here.
    """
    state: Any = simulation(lambda config: MachineDriver(MACHINES["correct"], config))()
    state.configure(cfg=PINNED)
    try:
        for _ in range(60):
            state.force_open()
            state.reset()
        state.outage(callers=4)  # one more: the log is full, and the oldest entry goes
        assert len(state.model.log) == 2 * 60 + 1
        state.transitions_match_the_model()
        state.matches_the_model()
    finally:
        state.teardown()


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("never_half_opens", None),
        ("too_many_probes", None),
        ("opens_on_a_success", r"opened on a success with \d+ call"),
    ],
)
def test_simulation_catches_a_broken_state_machine(variant: str, message: str | None) -> None:
    run = expect_caught(
        simulation(lambda config: MachineDriver(MACHINES[variant], config)),
        steps=40,
        match=message,
        max_examples=2000,  # a bound; opens_on_a_success took 14-901 (median ~125) on 20 seeds
        derandomize=True,
    )
    assert len(run) <= 6, run


# --------------------------------------------------------------------------- the real entity


ENTITY_EXAMPLES = min(settings.default.max_examples, 60)
"""Examples per entity simulation: each is 20 steps of Updates and server-side sleeps on the
real entity, so the count is capped (the pure machine gets the profile's full count)."""

ENTITY_SHRINK_RUNS = 100
"""Runs a broken entity's search shrinks for after its first catch. Hypothesis's shrinker
ran 360-730 more (two to three minutes each); within 100 both variants shrank to 3-4 steps."""

ENTITY_HISTORY_BOUND = 100_000
"""The entity's continue-as-new bound in the simulation. Continue-as-new is tested in
``tests/test_breaker_entity.py``; with a small bound here, the Java test server stopped
skipping time after a few dozen examples (an ``unlock_time_skipping_with_sleep`` timed out)."""


@pytest.fixture(scope="module")
def entity_env(temporal_loop: Any) -> Iterator[Any]:
    """A time-skipping server of the entity simulations' own.

    The test server has one clock for every workflow, and these simulations move it by
    hand (``sleep``) with auto skipping off: sharing the session's server would move
    other tests' clocks too, and their leftover workflows' timers slow every sleep.
    """
    env = temporal_loop.run(
        faults.testing.start_environment("time-skipping", time_skipping="manual"), timeout=120
    )
    yield env
    temporal_loop.run(env.shutdown(), timeout=60)


@pytest.fixture(scope="module")
def entity_queue(temporal_loop: Any, entity_env: Any) -> Iterator[str]:
    queue = faults.testing.unique_id("entities")

    async def start() -> Worker:
        worker = Worker(entity_env.client, task_queue=queue, workflows=list(ENTITIES.values()))
        await worker.__aenter__()
        return worker

    worker = temporal_loop.run(start(), timeout=60)
    yield queue
    temporal_loop.run(worker.__aexit__(None, None, None), timeout=60)


@pytest.fixture()
def manual_time(entity_env: Any) -> Iterator[Any]:
    with entity_env.auto_time_skipping_disabled():
        yield entity_env


def entity_simulation(
    loop: Any,
    env: Any,
    queue: str,
    variant: str,
    max_history_events: int = ENTITY_HISTORY_BOUND,
    budget: RunBudget | None = None,
) -> type[RuleBasedStateMachine]:
    def make_driver(config: BreakerConfig) -> Driver:
        return EntityDriver(loop, env, queue, ENTITIES[variant], config, max_history_events)

    return simulation(make_driver, budget)


def test_entity_matches_the_model(temporal_loop: Any, manual_time: Any, entity_queue: str) -> None:
    check(
        entity_simulation(temporal_loop, manual_time, entity_queue, "correct"),
        steps=20,
        max_examples=ENTITY_EXAMPLES,
    )


@pytest.mark.parametrize("variant", ["never_half_opens", "too_many_probes"])
def test_simulation_catches_a_broken_entity(
    temporal_loop: Any, manual_time: Any, entity_queue: str, variant: str
) -> None:
    budget = RunBudget(shrink_runs=ENTITY_SHRINK_RUNS)
    run = expect_caught(
        entity_simulation(temporal_loop, manual_time, entity_queue, variant, budget=budget),
        steps=20,
        max_examples=ENTITY_EXAMPLES,
        derandomize=True,
    )
    assert len(run) <= 6, f"caught at run {budget.caught_at}, shrunk to {len(run)} steps: {run}"
