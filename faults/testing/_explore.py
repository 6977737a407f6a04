"""Systematic exploration of fault schedules over the activity calls a run makes.

A fault-free run of the workflow says which activity calls it makes (activity
type, the call key the fault layer sends, the attempts its retry policy
allows, its start-to-close timeout), read from the run's history. From that,
:func:`explore` runs every single-fault schedule (each call x each
:class:`Shape`), then pairs, in a fixed order, up to a budget; it stops at the
first run whose invariant breaks, shrinks that schedule and reports it with a
one-line reproduction and the coverage reached. Pairs are built the way
Filibuster builds them: a second fault goes on a call that the run under the
first fault actually made, so compensations and other calls that only faults
reach are explored too, and no pair spends a run on a call that never happens. Pairs whose
second call the fault-free run never made run first: they reach code no single fault
does, where a second fault on an ordinary call is often masked by the first.

The invariant is one callback shared with Hypothesis: ``check(outcome)``
returns a mapping of the invariants that broke (empty when all hold), read
from independent evidence (a database, the history, the fault log), never the
workflow's own result. :func:`assert_holds` turns it into an assertion for
``@given`` tests, and :func:`plans_for_calls` draws plans aimed at the calls
a fault-free run makes, so almost every example injects something.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from temporalio.api.enums.v1 import EventType

from .._disruptions import Cancel, Restart
from .._interceptor import KEY_HEADER
from .._plan import (
    ALL_ATTEMPTS,
    Delay,
    Duplicate,
    Fail,
    FaultPlanError,
    ScriptedFault,
    ScriptedPlan,
    Timeout,
    plan_to_json,
)
from ._harness import FaultHarness, RunOutcome

if TYPE_CHECKING:
    from hypothesis import strategies as st

Check = Callable[[RunOutcome[Any]], Mapping[str, Any]]
"""An invariant: the violations one run shows (empty when every invariant holds).

It reads independent evidence of the run (``outcome.workflow_id`` and
``outcome.args`` name it): a database, the workflow history, the fault log.
"""

DEFAULT_BUDGET = 200
"""Schedules :func:`explore` runs when given no budget."""

_NEVER = 2**31 - 1
"""An attempt number no activity reaches (attempts are 32-bit)."""

_OBSERVER = ScriptedFault("*", _NEVER, Fail())
"""A plan entry that faults nothing but makes every call carry its key header.

The workflow side keys only the calls its plan may fault; with this entry
last in a plan, every call's key is recorded in its scheduled event, so the
history names every call a run makes. It never matches an attempt, so the
faults of a plan with it are the faults of the plan without it.
"""


# --------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class Call:
    """One activity call a run made, as the fault layer names it.

    ``key`` is what a plan entry matches (a glob: literal for a call key that
    is the same in every run, or with ``*`` where it varies with fresh
    arguments; ``None`` matches every call of the activity type).
    ``max_attempts`` is its retry policy's maximum (0 = unlimited).
    """

    activity: str
    key: str | None
    max_attempts: int
    start_to_close: float | None
    """Start-to-close timeout in seconds (``None`` if the server recorded none)."""

    def entry(
        self, attempt: int, fault: Any, through: int | Literal["all"] | None = None
    ) -> ScriptedFault:
        """A plan entry injecting ``fault`` on ``attempt`` (through ``through``) of this call."""
        return ScriptedFault(
            _literal(self.activity),
            attempt,
            fault,
            key=self.key,
            through=through,
        )

    def describe(self) -> str:
        """``activity[key]`` (or the activity alone when the key is open)."""
        return self.activity if self.key is None else f"{self.activity}[{self.key}]"


_GLOB_CHARS = re.compile(r"([*?\[])")


def _literal(text: str) -> str:
    """A glob that matches exactly ``text``."""
    return _GLOB_CHARS.sub(r"[\1]", text)


@dataclass(frozen=True)
class _Seen:
    """A call as one run's history shows it: its exact key and its order of appearance."""

    activity: str
    key: str
    max_attempts: int
    start_to_close: float | None


async def _seen_calls(harness: FaultHarness, workflow_id: str) -> list[_Seen]:
    """Every activity call of a run (its continued runs and children too), in history order."""
    seen: list[_Seen] = []
    keys: set[str] = set()
    async for _, history in harness.executions(workflow_id):
        for event in history.events:
            if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                continue
            attrs = event.activity_task_scheduled_event_attributes
            header = attrs.header.fields.get(KEY_HEADER)
            key = _header_key(header.data) if header is not None else attrs.activity_id
            if key in keys:
                continue
            keys.add(key)
            timeout = attrs.start_to_close_timeout
            seconds = timeout.ToTimedelta().total_seconds() if timeout.ByteSize() else None
            seen.append(
                _Seen(
                    activity=attrs.activity_type.name,
                    key=key,
                    max_attempts=attrs.retry_policy.maximum_attempts,
                    start_to_close=seconds,
                )
            )
    return seen


def _header_key(data: bytes) -> str:
    try:
        return str(json.loads(data))
    except ValueError:
        return data.decode(errors="replace")


_TOKENS = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")


def _key_pattern(a: str, b: str) -> str | None:
    """A glob for a call key seen as ``a`` in one run and ``b`` in another.

    Tokens (runs of letters and digits, single other characters) the two
    share are kept literally; tokens that differ become ``*``. Keys of
    different shapes give ``None``.
    """
    if a == b:
        return _literal(a)
    ta, tb = _TOKENS.findall(a), _TOKENS.findall(b)
    if len(ta) != len(tb):
        return None
    return "".join(_literal(x) if x == y else "*" for x, y in zip(ta, tb, strict=True))


def _by_activity(seen: Sequence[_Seen]) -> dict[str, list[_Seen]]:
    groups: dict[str, list[_Seen]] = {}
    for s in seen:
        groups.setdefault(s.activity, []).append(s)
    return groups


def _stable_calls(first: Sequence[_Seen], second: Sequence[_Seen]) -> tuple[Call, ...]:
    """The calls of two fault-free runs with different arguments, keyed by what they share."""
    a, b = _by_activity(first), _by_activity(second)
    if {k: len(v) for k, v in a.items()} != {k: len(v) for k, v in b.items()}:
        raise FaultPlanError(
            "explore(fresh_args=...): two fault-free runs made different activity calls "
            f"({_census(first)} and {_census(second)}); the calls must not depend on the "
            "arguments fresh_args varies: pass fixed args instead"
        )
    position = {id(s): i for group in a.values() for i, s in enumerate(group)}
    calls = []
    for s in first:
        twin = b[s.activity][position[id(s)]]
        pattern = _key_pattern(s.key, twin.key)
        if pattern is None and len(a[s.activity]) > 1:
            raise FaultPlanError(
                f"explore(fresh_args=...): the keys of {s.activity!r} calls differ between "
                f"runs ({s.key!r}, {twin.key!r}) and cannot be told apart; give these calls "
                "activity ids that do not depend on the arguments, or pass fixed args"
            )
        calls.append(Call(s.activity, pattern, s.max_attempts, s.start_to_close))
    return tuple(calls)


def _census(seen: Sequence[_Seen]) -> str:
    return ", ".join(f"{k} x{len(v)}" for k, v in sorted(_by_activity(seen).items())) or "none"


def _exact_calls(seen: Sequence[_Seen]) -> tuple[Call, ...]:
    return tuple(Call(s.activity, _literal(s.key), s.max_attempts, s.start_to_close) for s in seen)


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    """One way to fault one activity call: the plan entries it takes (none: not applicable).

    ``name`` is what reports and Hypothesis statistics show. ``entries`` maps a
    :class:`Call` to the entries that inject the shape on it; an empty tuple
    means the shape does not apply to that call (an outage of a call retried
    without limit never ends, for instance).
    """

    name: str
    entries: Callable[[Call], tuple[ScriptedFault, ...]] = field(compare=False)

    def __repr__(self) -> str:
        return f"Shape({self.name!r})"


def _fail(call: Call) -> tuple[ScriptedFault, ...]:
    return (call.entry(1, Fail()),)


def _duplicate(call: Call) -> tuple[ScriptedFault, ...]:
    return (call.entry(1, Duplicate()),)


def _outage(call: Call) -> tuple[ScriptedFault, ...]:
    if call.max_attempts < 1:
        return ()  # retried without limit: an outage of every attempt never ends
    return (call.entry(1, Fail(), through=ALL_ATTEMPTS),)


def _outage_after_body(call: Call) -> tuple[ScriptedFault, ...]:
    if call.max_attempts < 1:
        return ()  # retried without limit: an outage of every attempt never ends
    return (call.entry(1, Duplicate(), through=ALL_ATTEMPTS),)


def _at_first_attempt(fault: Any) -> Callable[[Call], tuple[ScriptedFault, ...]]:
    def entries(call: Call) -> tuple[ScriptedFault, ...]:
        return (call.entry(1, fault),)

    return entries


def delay_after(max_seconds: float = 2.0, margin: float = 0.1) -> Shape:
    """The first attempt's body runs, then the attempt outlives its start-to-close timeout.

    The server times the attempt out and retries it; the late completion is
    rejected (a zombie whose effects happened). The hold costs real time (the
    time-skipping server does not skip time while an activity runs), so the
    shape applies only to calls whose timeout plus ``margin`` is at most
    ``max_seconds``.
    """
    if max_seconds < 0 or margin <= 0:
        raise FaultPlanError(
            f"delay_after(max_seconds={max_seconds!r}, margin={margin!r}): "
            "pass max_seconds >= 0 and margin > 0 (seconds)"
        )

    def entries(call: Call) -> tuple[ScriptedFault, ...]:
        if call.start_to_close is None or call.start_to_close + margin > max_seconds:
            return ()
        return (call.entry(1, Delay(call.start_to_close + margin, at="after")),)

    return Shape("delay_after", entries)


FAIL = Shape("fail", _fail)
"""The first attempt fails before its body runs (retried under the retry policy)."""

DUPLICATE = Shape("duplicate", _duplicate)
"""The first attempt's body runs, then its completion is lost: the body runs again."""

DELAY_AFTER = delay_after()
"""See :func:`delay_after`: a zombie attempt, for calls with a start-to-close of at most ~2 s."""

OUTAGE = Shape("outage", _outage)
"""Every attempt the retry policy allows fails: the call fails for good.

Not applied to calls retried without limit (such an outage never ends)."""

OUTAGE_AFTER_BODY = Shape("outage_after_body", _outage_after_body)
"""Every attempt the retry policy allows runs its body, then loses its completion.

The call fails for good with its effects committed (as many times as it ran): what
a step whose outcome is unknown looks like to the workflow. Not applied to calls
retried without limit."""

TIMEOUT = Shape("timeout", _at_first_attempt(Timeout()))
"""The first attempt never completes: the server times it out and retries the call."""

TIMEOUT_AFTER_BODY = Shape("timeout_after_body", _at_first_attempt(Timeout(body="before")))
"""The first attempt's body runs, then the attempt outlives its timeout: a zombie."""

RESTART = Shape("restart", _at_first_attempt(Restart()))
"""Once the call's first attempt has run, the worker drops the workflow from its cache.

The next workflow task replays the history from the start (see :class:`~faults.Restart`)."""

CANCEL = Shape("cancel", _at_first_attempt(Cancel()))
"""The workflow is cancelled after the calls before this one, before this one's body runs."""

CANCEL_AFTER_BODY = Shape("cancel_after_body", _at_first_attempt(Cancel(body="before")))
"""The call's body runs, then the workflow is cancelled before it sees the result."""

DEFAULT_SHAPES: tuple[Shape, ...] = (
    FAIL,
    DUPLICATE,
    OUTAGE,
    OUTAGE_AFTER_BODY,
    TIMEOUT,
    TIMEOUT_AFTER_BODY,
    RESTART,
)
"""The shapes :func:`explore` and :func:`plans_for_calls` use by default, simplest first.

Cancellation is left out: it changes what a correct run does (it ends
cancelled); add :data:`CANCEL` and :data:`CANCEL_AFTER_BODY` (or use
:data:`ALL_SHAPES`) when the invariant covers cancelled runs. :data:`DELAY_AFTER`
makes a zombie as :data:`TIMEOUT_AFTER_BODY` does, at the cost of the timeout
in real time.
"""

ALL_SHAPES: tuple[Shape, ...] = (*DEFAULT_SHAPES, CANCEL, CANCEL_AFTER_BODY)
"""Every built-in shape but :data:`DELAY_AFTER`."""


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class Point:
    """One shape on one call."""

    call: Call
    shape: Shape

    @property
    def entries(self) -> tuple[ScriptedFault, ...]:
        """The plan entries that inject it."""
        return self.shape.entries(self.call)

    def describe(self) -> str:
        """``shape at activity[key]``."""
        return f"{self.shape.name} at {self.call.describe()}"


@dataclass(frozen=True)
class Schedule:
    """Faults at one or more calls: what one exploration run injects."""

    points: tuple[Point, ...]

    @property
    def plan(self) -> ScriptedPlan:
        """The scripted plan of the schedule's entries."""
        return ScriptedPlan(tuple(e for p in self.points for e in p.entries))

    def describe(self) -> str:
        """The points, joined with ``+``."""
        return " + ".join(p.describe() for p in self.points) or "no faults"


@dataclass(frozen=True)
class Progress:
    """Where an exploration is, as given to its ``progress`` callback after each run."""

    phase: str
    """``"single"``, ``"pair"`` or ``"shrink"``."""
    run: int
    """Schedules run so far (shrink runs not counted)."""
    in_scope: int
    """Schedules known to be in scope so far."""
    schedule: str
    """The schedule just run."""
    violated: bool

    def describe(self) -> str:
        """One line such as ``explore 12/40 single: fail at charge[...]``."""
        mark = "VIOLATED" if self.violated else "ok"
        return f"explore {self.run}/{self.in_scope} {self.phase}: {self.schedule} ({mark})"


@dataclass(frozen=True)
class Violation:
    """A plan whose run broke an invariant, and the smallest plan it shrank to."""

    found: ScriptedPlan
    """The plan that broke it (an exploration's schedule, or a plan given to :func:`shrink`)."""
    found_as: str
    """How the plan was found (the schedule's points, or ``given plan``)."""
    shrunk: ScriptedPlan
    """The smallest plan that still breaks it."""
    violations: Mapping[str, Any]
    """What the check reported for the shrunk plan's run."""
    outcome: RunOutcome[Any] | None
    """The shrunk plan's run (``None`` if the run itself raised)."""
    reproduction: str
    """One line that runs the shrunk plan again."""
    shrink_runs: int
    """Runs the shrinking took (the found plan's re-run included)."""

    def describe(self) -> str:
        """A multi-line report: schedule, shrunk plan, violations, reproduction."""
        shrunk = self.shrunk.describe().replace("\n", "; ")
        lines = [
            f"violated under: {self.found_as}",
            f"shrunk to {len(self.shrunk.faults)} plan entries "
            f"({self.shrink_runs} shrink runs): {shrunk}",
        ]
        lines.extend(f"  {name}: {detail}" for name, detail in self.violations.items())
        lines.append(f"reproduce: {self.reproduction}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Exploration:
    """What :func:`explore` did: the calls, the schedules run, coverage and any violation."""

    calls: tuple[Call, ...]
    """The calls of the fault-free run, in history order."""
    ran: tuple[Schedule, ...]
    """Every schedule run, in order (shrink runs excluded)."""
    singles_in_scope: int
    pairs_in_scope: int | None
    """Pairs in scope; ``None`` when the budget ended before every single ran."""
    silent: int
    """Schedules whose run injected nothing (a call the plan aims at did not happen)."""
    violation: Violation | None
    budget: int

    @property
    def ok(self) -> bool:
        """Whether every schedule run held every invariant."""
        return self.violation is None

    @property
    def schedules_run(self) -> int:
        """How many schedules ran."""
        return len(self.ran)

    @property
    def in_scope(self) -> int:
        """Schedules in scope (singles, plus pairs once they are known)."""
        return self.singles_in_scope + (self.pairs_in_scope or 0)

    @property
    def complete(self) -> bool:
        """Whether every schedule in scope ran."""
        return self.pairs_in_scope is not None and self.schedules_run == self.in_scope

    def coverage(self) -> str:
        """``run/in scope`` with the singles and pairs apart."""
        if not self.calls and self.violation is not None:
            return (
                "no schedule in scope: the fault-free run already broke an invariant, "
                "so no call was faulted"
            )
        singles = min(self.schedules_run, self.singles_in_scope)
        pairs = self.schedules_run - singles
        pair_scope = "?" if self.pairs_in_scope is None else str(self.pairs_in_scope)
        return (
            f"{self.schedules_run}/{self.in_scope} schedules "
            f"(single faults {singles}/{self.singles_in_scope}, pairs {pairs}/{pair_scope}; "
            f"budget {self.budget}; {self.silent} injected nothing)"
        )

    def describe(self) -> str:
        """The coverage, the calls explored and the violation, if any."""
        lines = [f"explored {len(self.calls)} calls: {self.coverage()}"]
        lines.extend(
            f"  call {c.describe()} (attempts {c.max_attempts or 'unlimited'})" for c in self.calls
        )
        lines.append("no invariant broke" if self.violation is None else self.violation.describe())
        return "\n".join(lines)


# --------------------------------------------------------------------------- running


def assert_holds(check: Check, outcome: RunOutcome[Any]) -> None:
    """Raise ``AssertionError`` naming the broken invariants (and the run) if ``check`` fails.

    For ``@given`` tests that share their invariant with :func:`explore`.
    """
    broken = dict(check(outcome))
    if broken:
        details = "\n".join(f"  {name}: {detail}" for name, detail in broken.items())
        raise AssertionError(f"invariants broke:\n{details}\n{outcome.describe()}")


def _name(workflow: Any) -> str:
    if isinstance(workflow, str):
        return repr(workflow)
    return str(getattr(workflow, "__qualname__", workflow))


def reproduction(workflow: Any, args: Sequence[Any], plan: ScriptedPlan) -> str:
    """One line of Python that runs ``workflow`` with ``args`` under ``plan`` on a harness."""
    rendered = ", ".join([_name(workflow), *map(repr, args)])
    return f"harness.run({rendered}, plan=faults.plan_from_json({plan_to_json(plan)!r}))"


class _BrokenWithoutFaults(Exception):
    """A fault-free run broke the invariant: the bug needs no fault, and no call is known."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(violation.describe())
        self.violation = violation


class _Explorer:
    """The state of one exploration (see :func:`explore`)."""

    def __init__(
        self,
        harness: FaultHarness,
        workflow: Any,
        args: Sequence[Any],
        fresh_args: Callable[[], Sequence[Any]] | None,
        check: Check,
        progress: Callable[[Progress], None] | None,
        options: Mapping[str, Any],
    ) -> None:
        if harness.loop is None:
            raise RuntimeError("explore() needs a harness with loop=EventLoopThread()")
        self.harness = harness
        self.workflow = workflow
        self.args = tuple(args)
        self.fresh_args = fresh_args
        self.check = check
        self.progress = progress
        self.options = dict(options)
        self.last_args: tuple[Any, ...] = self.args

    def run(self, plan: ScriptedPlan) -> tuple[RunOutcome[Any] | None, dict[str, Any]]:
        """Run the workflow under ``plan`` (keying every call); the outcome and the violations."""
        args = tuple(self.fresh_args()) if self.fresh_args is not None else self.args
        self.last_args = args
        observed = ScriptedPlan((*plan.faults, _OBSERVER))
        try:
            outcome = self.harness.run(self.workflow, *args, plan=observed, **self.options)
        except Exception as err:  # a replay that found non-determinism, a run that hung
            return None, {"run raised": f"{type(err).__name__}: {err}"}
        return outcome, dict(self.check(outcome))

    def seen(self, outcome: RunOutcome[Any]) -> list[_Seen]:
        assert self.harness.loop is not None
        return self.harness.loop.run(_seen_calls(self.harness, outcome.workflow_id), timeout=60)

    def baseline(self) -> tuple[Call, ...]:
        """The calls of a fault-free run (two runs with fresh arguments when they vary)."""
        first = self._fault_free()
        if self.fresh_args is None:
            return _exact_calls(first)
        return _stable_calls(first, self._fault_free())

    def _fault_free(self) -> list[_Seen]:
        outcome, broken = self.run(ScriptedPlan())
        if outcome is None or broken:
            raise _BrokenWithoutFaults(
                Violation(
                    found=ScriptedPlan(),
                    found_as="no faults (the fault-free run)",
                    shrunk=ScriptedPlan(),
                    violations=broken,
                    outcome=outcome,
                    reproduction=reproduction(self.workflow, self.last_args, ScriptedPlan()),
                    shrink_runs=0,
                )
            )
        return self.seen(outcome)

    def calls_of(self, outcome: RunOutcome[Any], known: Sequence[Call]) -> list[Call]:
        """The calls a faulty run made, as :class:`Call`s (the known one where it matches)."""
        seen = self.seen(outcome)
        groups = _by_activity(seen)
        calls = []
        for s in seen:
            match = next(
                (
                    c
                    for c in known
                    if c.activity == s.activity and (c.key is None or _fnmatch(s.key, c.key))
                ),
                None,
            )
            if match is None:
                # Reached only under a fault: aim at it by its exact key, or by its activity
                # when the run makes one call of it (keys can vary with fresh arguments).
                key = None if len(groups[s.activity]) == 1 else _literal(s.key)
                match = Call(s.activity, key, s.max_attempts, s.start_to_close)
            if match not in calls:
                calls.append(match)
        return calls


def _fnmatch(name: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(name, pattern)


def _singles(calls: Sequence[Call], shapes: Sequence[Shape]) -> list[Schedule]:
    return [
        Schedule((Point(call, shape),)) for call in calls for shape in shapes if shape.entries(call)
    ]


def explore(
    harness: FaultHarness,
    workflow: Any,
    *args: Any,
    check: Check,
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
    budget: int = DEFAULT_BUDGET,
    pairs: bool = True,
    fresh_args: Callable[[], Sequence[Any]] | None = None,
    progress: Callable[[Progress], None] | None = None,
    **options: Any,
) -> Exploration:
    """Run every single-fault schedule, then pairs, up to ``budget`` runs; stop at a violation.

    A fault-free run of ``workflow(*args)`` on ``harness`` gives the calls to
    fault (from its history: every activity call with its type, key, retry
    policy and timeout; local activities are not in the history and are not
    explored). Each call gets each of ``shapes`` that applies to it, in call
    order then shape order; then, with ``pairs``, each single-fault schedule
    gets a second fault on each call its own run made (another call than the
    first), skipping pairs already run; pairs whose second call the fault-free
    run never made (compensations, other paths only a fault reaches) run before
    the rest. The order is deterministic: the same workflow and shapes run the
    same list.

    If the fault-free run itself breaks ``check``, that is the violation (its
    plan is empty, one schedule ran) and nothing else runs.

    ``check(outcome)`` judges each run; the first run it reports violations
    for (or that raises, such as a replay that found non-determinism) ends the
    exploration: its schedule is shrunk (each point alone, then each plan entry
    removed while the violation remains) and reported with a one-line
    reproduction. ``fresh_args`` (instead of ``args``) gives every run its own
    arguments, for workflows whose evidence must not mix between runs; call
    keys that vary with them are matched by what two fault-free runs share.
    ``progress`` is called after every run. Extra keyword arguments go to
    :meth:`FaultHarness.run` (``timeout``, workflow start options).
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise FaultPlanError(f"explore(budget={budget!r}) must be an integer >= 0 (runs)")
    if fresh_args is not None and args:
        raise FaultPlanError(
            "explore() takes either positional workflow args or fresh_args=callable, not both"
        )
    shapes = tuple(shapes)
    if not shapes or not all(isinstance(s, Shape) for s in shapes):
        raise FaultPlanError(
            f"explore(shapes={shapes!r}) needs at least one Shape, such as faults.testing.FAIL"
        )
    explorer = _Explorer(harness, workflow, args, fresh_args, check, progress, options)
    try:
        calls = explorer.baseline()
    except _BrokenWithoutFaults as broken:
        return Exploration(
            calls=(),
            ran=(Schedule(()),),
            singles_in_scope=0,
            pairs_in_scope=0,
            silent=0,
            violation=broken.violation,
            budget=budget,
        )
    singles = _singles(calls, shapes)
    ran: list[Schedule] = []
    silent = 0
    pair_list: list[Schedule] = []
    seen_pairs: set[frozenset[Point]] = set()
    pairs_known = not pairs

    def finish(violation: Violation | None) -> Exploration:
        return Exploration(
            calls=calls,
            ran=tuple(ran),
            singles_in_scope=len(singles),
            pairs_in_scope=len(pair_list) if pairs_known else None,
            silent=silent,
            violation=violation,
            budget=budget,
        )

    def attempt(schedule: Schedule, phase: str) -> tuple[RunOutcome[Any] | None, bool]:
        """Run one schedule: its outcome, and whether it broke an invariant."""
        nonlocal silent
        outcome, broken = explorer.run(schedule.plan)
        ran.append(schedule)
        if outcome is not None and not outcome.injections:
            silent += 1
        if progress is not None:
            in_scope = len(singles) + len(pair_list)
            progress(Progress(phase, len(ran), in_scope, schedule.describe(), bool(broken)))
        return outcome, bool(broken)

    for single in singles:
        if len(ran) >= budget:
            return finish(None)
        outcome, violated = attempt(single, "single")
        if violated:
            return finish(_violation(explorer, single, progress))
        if pairs and outcome is not None:
            first = single.points[0]
            for call in explorer.calls_of(outcome, calls):
                if call == first.call:
                    continue
                for shape in shapes:
                    second = Point(call, shape)
                    both = frozenset((first, second))
                    if second.entries and both not in seen_pairs:
                        seen_pairs.add(both)
                        pair_list.append(Schedule((first, second)))
    # Pairs whose second fault is on a call only the first fault's run made (a compensation,
    # a retry path) come first: the code a fault-free run never reaches. A second fault on a
    # call the fault-free run makes too is more often masked by the first (stable order).
    baseline = set(calls)
    pair_list.sort(key=lambda schedule: schedule.points[1].call in baseline)
    pairs_known = True
    for schedule in pair_list:
        if len(ran) >= budget:
            return finish(None)
        if attempt(schedule, "pair")[1]:
            return finish(_violation(explorer, schedule, progress))
    return finish(None)


def _violation(
    explorer: _Explorer, schedule: Schedule, progress: Callable[[Progress], None] | None
) -> Violation:
    groups = tuple(p.entries for p in schedule.points)
    return _shrink(explorer, schedule.plan, schedule.describe(), groups, progress)


def _shrink(
    explorer: _Explorer,
    found: ScriptedPlan,
    found_as: str,
    groups: Sequence[tuple[ScriptedFault, ...]],
    progress: Callable[[Progress], None] | None,
) -> Violation:
    """The smallest plan that still violates: each group alone, then entries removed one by one.

    ``groups`` are the entries of each point of a schedule (tried alone first).
    The found plan is run again first; if it holds this time the violation
    depends on more than the plan, and the report says so.
    """
    runs = 0
    outcome: RunOutcome[Any] | None = None
    broken: dict[str, Any] = {}
    best_args: tuple[Any, ...] = ()

    def violates(entries: tuple[ScriptedFault, ...]) -> bool:
        nonlocal runs, outcome, broken, best_args
        runs += 1
        plan = ScriptedPlan(entries)
        trial_outcome, trial_broken = explorer.run(plan)
        if progress is not None:
            shown = plan.describe().replace("\n", "; ")
            progress(Progress("shrink", runs, runs, shown, bool(trial_broken)))
        if trial_broken:
            outcome, broken, best_args = trial_outcome, trial_broken, explorer.last_args
        return bool(trial_broken)

    best = found.faults
    if not violates(best):
        broken = {"not reproduced": "the plan broke an invariant once and held when run again"}
    else:
        if len(groups) > 1:
            for group in groups:
                if violates(group):
                    best = group
                    break
        shrinking = True
        while shrinking and len(best) > 1:
            shrinking = False
            for i in range(len(best)):
                fewer = best[:i] + best[i + 1 :]
                if violates(fewer):
                    best, shrinking = fewer, True
                    break
    shrunk = ScriptedPlan(best)
    return Violation(
        found=found,
        found_as=found_as,
        shrunk=shrunk,
        violations=broken,
        outcome=outcome,
        reproduction=reproduction(explorer.workflow, best_args or explorer.args, shrunk),
        shrink_runs=runs,
    )


def shrink(
    harness: FaultHarness,
    workflow: Any,
    *args: Any,
    plan: ScriptedPlan,
    check: Check,
    fresh_args: Callable[[], Sequence[Any]] | None = None,
    progress: Callable[[Progress], None] | None = None,
    **options: Any,
) -> Violation:
    """Shrink a plan that breaks ``check`` (one Hypothesis or a chaos run found, say).

    Removes plan entries one at a time while the run still breaks an
    invariant, as :func:`explore` does with the schedule it finds; the
    :class:`Violation` has the smallest plan and its one-line reproduction.
    """
    if not isinstance(plan, ScriptedPlan):
        raise FaultPlanError(
            f"shrink(plan={plan!r}) needs a ScriptedPlan; a RandomPlan has no entries to remove"
        )
    explorer = _Explorer(harness, workflow, args, fresh_args, check, progress, options)
    return _shrink(explorer, plan, "given plan", (), progress)


def observe_calls(
    harness: FaultHarness,
    workflow: Any,
    *args: Any,
    fresh_args: Callable[[], Sequence[Any]] | None = None,
    **options: Any,
) -> tuple[Call, ...]:
    """The activity calls a fault-free run of ``workflow`` makes (see :func:`explore`).

    For :func:`plans_for_calls`. Runs the workflow once (twice with
    ``fresh_args``), with no invariant.
    """
    explorer = _Explorer(harness, workflow, args, fresh_args, lambda _: {}, None, options)
    try:
        return explorer.baseline()
    except _BrokenWithoutFaults as broken:
        message = f"the fault-free run of {_name(workflow)} failed to run:\n{broken}"
        raise RuntimeError(message) from None


# --------------------------------------------------------------------------- hypothesis


def _iter_shapes(call: Call, shapes: Sequence[Shape]) -> Iterator[Shape]:
    return (s for s in shapes if s.entries(call))


def plans_for_calls(
    calls: Sequence[Call],
    *,
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
    max_faults: int = 3,
    max_burst: int = 10,
) -> st.SearchStrategy[ScriptedPlan]:
    """Plans that fault calls a fault-free run makes, so almost every example injects something.

    Each plan has 1 to ``max_faults`` points on distinct ``calls`` (from
    :func:`observe_calls`); each point is one of ``shapes`` that applies to
    its call. A ``fail`` point fails a run of the call's first attempts (1 to
    all its retry policy allows, at most ``max_burst`` when it retries without
    limit), so bursts up to an outage are drawn too, and shrink toward one.
    Plans shrink toward one point, the first call and the first shape.
    """
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument

    targets = list(calls)
    if not targets or not all(isinstance(c, Call) for c in targets):
        raise InvalidArgument(
            f"plans_for_calls(calls={calls!r}) needs at least one Call; "
            "get them with faults.testing.observe_calls(harness, workflow, *args)"
        )
    if max_faults < 1:
        raise InvalidArgument(f"plans_for_calls(max_faults={max_faults!r}) must be >= 1")
    if max_burst < 1:
        raise InvalidArgument(f"plans_for_calls(max_burst={max_burst!r}) must be >= 1")
    chosen = tuple(shapes)
    if not any(any(_iter_shapes(c, chosen)) for c in targets):
        raise InvalidArgument(
            f"plans_for_calls(shapes={chosen!r}) applies to none of the calls; add FAIL"
        )

    @st.composite
    def point(draw: st.DrawFn) -> tuple[int, tuple[ScriptedFault, ...]]:
        index = draw(
            st.sampled_from([i for i, c in enumerate(targets) if any(_iter_shapes(c, chosen))])
        )
        call = targets[index]
        shape = draw(st.sampled_from(list(_iter_shapes(call, chosen))))
        if shape is FAIL:
            most = call.max_attempts if call.max_attempts > 0 else max_burst
            burst = draw(st.integers(1, most))
            return index, (call.entry(1, Fail(), through=burst if burst > 1 else None),)
        return index, shape.entries(call)

    return st.lists(point(), min_size=1, max_size=max_faults, unique_by=lambda p: p[0]).map(
        lambda points: ScriptedPlan(tuple(e for _, entries in points for e in entries))
    )
