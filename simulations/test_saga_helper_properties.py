"""The saga helper keeps its documented contract under any script, options and cancellation.

The order saga uses :class:`~patterns.saga.Saga` one way, with every option
given. Teams copy the helper and use it other ways, so it is simulated on its
own: each example runs a drawn :class:`~simulations.saga_scripts.Script` (steps
with or without compensations, a pivot or none, a failing step, failing
compensations with their own error types and messages, steps after the pivot
that fail several times, the defaults or drawn options, the error re-raised or
the report returned, ``compensate()`` called twice) on the time-skipping server,
cancelled at a drawn call or not, and checks the journal (SQLite) and the
history against the model in :mod:`simulations.saga_script_model`. Each broken
helper in :data:`~simulations.saga_scripts.BROKEN` must fail the same property.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import event, example, given, note
from hypothesis import strategies as st

import faults
import faults.testing
from patterns.saga import SagaOptions

from . import RUN_SECONDS
from ._search import catch
from .saga_script_model import DEFAULTS, check_run, expect, observe, scripted_runs
from .saga_scripts import BROKEN, ErrorSpec, Journal, OptionsSpec, Script, ScriptedSaga, StepSpec


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Journal:
    return Journal(tmp_path_factory.mktemp("saga-scripts") / "journal.sqlite")


@pytest.fixture(scope="module")
def harness(fault_harness: Any, journal: Journal) -> faults.testing.FaultHarness:
    return fault_harness(workflows=[ScriptedSaga, *BROKEN], activities=[journal.effect])


def run_script_case(
    harness: faults.testing.FaultHarness,
    workflow: Any,
    journal: Journal,
    script: Script,
    cancel: str | None,
) -> dict[str, Any]:
    """Run ``script`` (cancelled at call ``cancel``); return the promises it broke."""
    plan = (
        faults.ScriptedPlan(
            (faults.ScriptedFault("scripted_effect", 1, faults.Cancel(), key=cancel),)
        )
        if cancel
        else None
    )
    outcome = harness.run(workflow.run, script, plan=plan, timeout=RUN_SECONDS)
    assert harness.loop is not None
    seen = harness.loop.run(observe(harness.client, outcome.workflow_id))
    return check_run(expect(script, cancel), journal.labels(outcome.workflow_id), seen)


@given(run=scripted_runs())
@example(  # a backoff the history keeps as 4.046999 s: once a false alarm under `thorough`
    run=(
        Script(
            (StepSpec("s0"), StepSpec("s1", False, ErrorSpec(None, ""), None, 1)),
            pivot=0,
            options=OptionsSpec(False, False, 4047, 1),
        ),
        None,
    )
)
@example(  # one at a time, no continue_on_error: a failed compensation skips the rest
    # (drawn near example 170 of the ci profile's 200; pinned so every budget checks it)
    run=(
        Script(
            (
                StepSpec("s0"),
                StepSpec("s1", undo_fails=ErrorSpec("Refused", "refused", wrapped=True)),
                StepSpec("s2", fails=ErrorSpec(None, "")),
            ),
            options=OptionsSpec(False, False, 5, 5),
        ),
        None,
    )
)
def test_the_saga_helper_keeps_its_documented_contract(
    harness: faults.testing.FaultHarness, journal: Journal, run: tuple[Script, str | None]
) -> None:
    script, cancel = run
    note(f"cancelled at: {cancel}")
    event(f"closes {expect(script, cancel).status}")
    assert run_script_case(harness, ScriptedSaga, journal, script, cancel) == {}


_FIELDS = ("parallel_compensation", "continue_on_error")
_SPANS = ("completion_backoff", "max_completion_backoff")
_flags = st.sampled_from([True, False, 0, 1, "yes", None])
_spans = st.integers(1, 2 * 86_400_000).map(lambda ms: timedelta(milliseconds=ms)) | (
    st.sampled_from([timedelta(0), timedelta(seconds=-1), 1, None])
)


@given(
    given_options=st.fixed_dictionaries(
        {}, optional={**dict.fromkeys(_FIELDS, _flags), **dict.fromkeys(_SPANS, _spans)}
    )
)
def test_saga_options_take_their_documented_defaults_and_refuse_bad_values(
    given_options: dict[str, Any],
) -> None:
    """Omitted options take the documented defaults; the first bad one is named, and why."""

    def bad(name: str, value: Any) -> bool:
        if name in _FIELDS:
            return not isinstance(value, bool)
        return not isinstance(value, timedelta) or value <= timedelta(0)

    wrong = [name for name in (*_FIELDS, *_SPANS) if name in given_options]
    wrong = [name for name in wrong if bad(name, given_options[name])]
    if wrong:
        with pytest.raises(ValueError, match=f"^SagaOptions.{wrong[0]}=") as raised:
            SagaOptions(**given_options)
        fix = "True or False" if wrong[0] in _FIELDS else "a positive timedelta"
        assert raised.value.args[0].endswith(f"must be {fix}")
        return
    options = SagaOptions(**given_options)
    defaults = {
        "parallel_compensation": DEFAULTS.parallel_compensation,
        "continue_on_error": DEFAULTS.continue_on_error,
        "completion_backoff": timedelta(milliseconds=DEFAULTS.completion_backoff_ms),
        "max_completion_backoff": timedelta(milliseconds=DEFAULTS.max_completion_backoff_ms),
    }
    for name, default in defaults.items():
        assert getattr(options, name) == given_options.get(name, default), name


SHRINK_RUNS = 150
"""Runs a broken helper's search may spend shrinking after its first catch. Counted, not
timed, so the shrunk case is the same on every machine; a run cancelled at a step costs
about 1.5 s (the test server it leaves with a held clock is replaced), so shrinking also
ends as soon as the case is within :data:`MOST_STEPS`. 40 runs were enough until what the
search draws changed (any edit to a module's constants changes it): then a case caught
later kept 4 steps."""

MOST_STEPS = 3
"""The most steps a broken helper's shrunk case may keep."""


@pytest.mark.parametrize("workflow", BROKEN, ids=lambda w: w.__name__)
def test_the_property_catches_each_broken_helper(
    harness: faults.testing.FaultHarness, journal: Journal, workflow: Any
) -> None:
    caught = catch(
        scripted_runs(),
        lambda run: bool(run_script_case(harness, workflow, journal, *run)),
        shrink_runs=SHRINK_RUNS,
        max_examples=1000,
        small_enough=lambda run: len(run[0].steps) <= MOST_STEPS,
    )
    script, cancel = caught.shrunk
    broken = run_script_case(harness, workflow, journal, script, cancel)
    print(
        f"{workflow.__name__} caught at example {caught.caught_at} ({caught.runs} runs): "
        f"{broken}; {script}, cancelled at {cancel}"
    )
    assert broken  # the shrunk case reproduces
    assert len(script.steps) <= MOST_STEPS, script
