"""Fault kinds and fault plans: which activity executions get which faults.

Everything here is pure and deterministic: a plan's decision for one activity
execution depends only on the plan (its seed and entries) and the execution's
identity, never on wall-clock time, scheduling order or concurrency. The module
imports nothing but the standard library so it can run inside the workflow
sandbox.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from fnmatch import fnmatchcase
from typing import Any, ClassVar, Literal

from ._disruptions import Cancel, Restart


class FaultPlanError(ValueError):
    """A fault plan, rule or fault kind was given a bad value.

    The message names the offending field and says how to fix it.
    """


def _check_probability(owner: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise FaultPlanError(
            f"{owner}.{name}={value!r} is not a number; pass a probability in [0, 1]"
        )
    if not 0.0 <= value <= 1.0:
        raise FaultPlanError(
            f"{owner}.{name}={value!r} is outside [0, 1]; pass a probability such as 0.1"
        )


def _check_non_negative(owner: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise FaultPlanError(f"{owner}.{name}={value!r} is not a finite number; pass seconds >= 0")
    if value < 0:
        raise FaultPlanError(
            f"{owner}.{name}={value!r} is negative; pass a duration in seconds >= 0"
        )


DEFAULT_MAX_DELAY = 300.0
"""Seconds a :class:`Delay` may hold an attempt, unless :func:`set_max_delay` says otherwise.

A held attempt keeps one of its worker's activity slots busy for the whole
delay, so a plan with hour-long delays on a handful of calls parks every slot
of a shared worker. Five minutes outlasts the start-to-close timeouts that
tests and staging soaks set (a delay that should make the server time an
attempt out need only outlast that timeout), while a stray plan costs a slot
five minutes at most.
"""

_max_delay = DEFAULT_MAX_DELAY


def max_delay() -> float:
    """The longest :class:`Delay` (in seconds) plans built in this process may hold."""
    return _max_delay


def set_max_delay(seconds: float) -> float:
    """Allow delays of up to ``seconds`` in plans built from now on; returns the previous maximum.

    Plans already built keep their delays. A worker refuses header plans whose
    delays exceed its own maximum (``FaultPlugin(max_delay=...)``, by default
    this one when the worker is built).
    """
    global _max_delay
    if (
        not isinstance(seconds, (int, float))
        or isinstance(seconds, bool)
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise FaultPlanError(
            f"set_max_delay(seconds={seconds!r}) must be a finite number of seconds >= 0, "
            f"such as {DEFAULT_MAX_DELAY:g}"
        )
    previous, _max_delay = _max_delay, float(seconds)
    return previous


def _check_delay(owner: str, name: str, value: float) -> None:
    _check_non_negative(owner, name, value)
    if value > _max_delay:
        raise FaultPlanError(
            f"{owner}.{name}={value!r} is above the maximum delay of {_max_delay:g} s; pass "
            f"at most {_max_delay:g}, or raise the maximum first with "
            f"faults.set_max_delay({value!r}) (a held attempt keeps a worker's activity slot busy)"
        )


def _check_pattern(owner: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise FaultPlanError(
            f"{owner}.activity={value!r} must be a non-empty activity name "
            "or glob such as 'charge_*'"
        )


# --------------------------------------------------------------------------- fault kinds


@dataclass(frozen=True)
class Fail:
    """The attempt raises before its body runs.

    A retryable failure is retried under the activity's retry policy; a
    non-retryable one fails the activity at once.
    """

    retryable: bool = True
    kind: ClassVar[str] = "fail"

    def __post_init__(self) -> None:
        if not isinstance(self.retryable, bool):
            raise FaultPlanError(f"Fail.retryable={self.retryable!r} must be True or False")

    def describe(self) -> str:
        """A short human description, used in logs and reports."""
        return "fail" if self.retryable else "fail(non-retryable)"


@dataclass(frozen=True)
class Delay:
    """The attempt is held for ``seconds`` before (or after) its body.

    Past the activity's start-to-close timeout the server times the attempt out
    and retries it; a body held ``after`` has already run, so its late
    completion is rejected and the retry runs the body again (a zombie).
    ``seconds`` may not exceed :func:`max_delay` (:data:`DEFAULT_MAX_DELAY`,
    five minutes, unless :func:`set_max_delay` raised it).
    """

    seconds: float
    at: Literal["before", "after"] = "before"
    kind: ClassVar[str] = "delay"

    def __post_init__(self) -> None:
        _check_delay("Delay", "seconds", self.seconds)
        if self.at not in ("before", "after"):
            raise FaultPlanError(f"Delay.at={self.at!r} must be 'before' or 'after' the body")

    def describe(self) -> str:
        """A short human description, used in logs and reports."""
        return f"delay({self.seconds:g}s {self.at})"


@dataclass(frozen=True)
class Duplicate:
    """The body runs to completion, then its completion is lost.

    The attempt fails after its side effects happened, so Temporal retries it
    and the body runs again: genuine at-least-once execution.
    """

    kind: ClassVar[str] = "duplicate"

    def describe(self) -> str:
        """A short human description, used in logs and reports."""
        return "duplicate"


@dataclass(frozen=True)
class HeartbeatLoss:
    """Heartbeats of the attempt after the first ``after`` are dropped.

    For heartbeating activities this makes the server's heartbeat timeout fire.
    """

    after: int = 0
    kind: ClassVar[str] = "heartbeat_loss"

    def __post_init__(self) -> None:
        if not isinstance(self.after, int) or isinstance(self.after, bool) or self.after < 0:
            raise FaultPlanError(
                f"HeartbeatLoss.after={self.after!r} must be an integer >= 0 "
                "(heartbeats let through before the loss)"
            )

    def describe(self) -> str:
        """A short human description, used in logs and reports."""
        return f"heartbeat_loss(after {self.after})"


@dataclass(frozen=True)
class Timeout:
    """The attempt outlives its timeout: the server, not the fault layer, times it out.

    The attempt is held, without completing, until the server has recorded its
    timeout (start-to-close; the heartbeat or schedule-to-close timeout if that
    fires first) and scheduled the retry. With ``body="before"`` the activity
    body runs first, so its side effects happen and its late completion is
    rejected: a zombie attempt whose work the retry does again. With
    ``body="never"`` the attempt does nothing before it times out.

    The hold is bounded by the activity's own timeouts, which its workflow
    sets, not the plan: an attempt costs what a hung attempt of that activity
    would. (An activity with no timeout at all is held for the worker's
    maximum delay, then fails.)

    On the time-skipping test server the held attempt lets the server's clock
    skip to a second before the timeout, so it costs about a second
    there; elsewhere it costs the timeout. A local activity is not faulted: no
    server times it out (its worker would, in real time at its full timeout
    on every server), and a lost completion (:class:`Duplicate`) already
    shows what a zombie local attempt does.
    """

    body: Literal["never", "before"] = "never"
    kind: ClassVar[str] = "timeout"

    def __post_init__(self) -> None:
        if self.body not in ("never", "before"):
            raise FaultPlanError(
                f"Timeout.body={self.body!r} must be 'never' (the body does not run) "
                "or 'before' (the body runs, then the attempt outlives its timeout)"
            )

    def describe(self) -> str:
        """A short human description, used in logs and reports."""
        return f"timeout(body {self.body})"


Fault = Fail | Delay | Duplicate | HeartbeatLoss | Timeout | Restart | Cancel
"""One injected fault."""

FAULT_KINDS: Mapping[str, type[Fault]] = {
    cls.kind: cls for cls in (Fail, Delay, Duplicate, HeartbeatLoss, Timeout, Restart, Cancel)
}
"""Fault classes by their kind name."""


def fault_to_dict(fault: Fault) -> dict[str, Any]:
    """Serialise one fault to a JSON-compatible dict."""
    data: dict[str, Any] = {"kind": fault.kind}
    data.update(fault.__dict__)
    return data


def fault_from_dict(data: Mapping[str, Any], where: str = "fault") -> Fault:
    """Build one fault from :func:`fault_to_dict` output, validating every field."""
    values = dict(data)
    kind = values.pop("kind", None)
    cls = FAULT_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise FaultPlanError(
            f"{where}.kind={kind!r} is not a fault kind; use one of {', '.join(FAULT_KINDS)}"
        )
    try:
        return cls(**values)
    except TypeError as err:
        raise FaultPlanError(f"{where}: bad fields for {kind!r}: {err}") from None


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class ActivityCall:
    """The identity of one activity execution attempt.

    ``key`` names the call inside its workflow: the activity id the workflow
    gave it, or else a digest of its arguments, so it does not depend on the
    order in which concurrent activities were scheduled.
    """

    workflow_id: str
    activity: str
    key: str
    attempt: int


def _unit_interval(*parts: object) -> float:
    """A uniform number in [0, 1) that is a pure function of ``parts``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


# --------------------------------------------------------------------------- scripted plans


ALL_ATTEMPTS: Literal["all"] = "all"
"""``ScriptedFault.through`` value: every attempt until the retry policy gives up."""


@dataclass(frozen=True)
class ScriptedFault:
    """Inject ``fault`` on the given activity at attempt ``attempt`` (through ``through``).

    ``activity`` is an activity type name or glob; ``key`` (optional) narrows it
    to one call, matched as a glob against :attr:`ActivityCall.key`.

    With ``through`` the entry is an outage: it faults every attempt from
    ``attempt`` to ``through`` (inclusive), or with ``through="all"`` every
    attempt until the activity's retry policy gives up, so an outage longer than
    the retry policy allows is one entry. Under a retry policy without
    ``maximum_attempts`` an outage through ``"all"`` never ends: the call fails
    only at its schedule-to-close timeout, if it has one.
    """

    activity: str
    attempt: int
    fault: Fault
    key: str | None = None
    through: int | Literal["all"] | None = None

    def __post_init__(self) -> None:
        _check_pattern("ScriptedFault", self.activity)
        if not isinstance(self.attempt, int) or isinstance(self.attempt, bool) or self.attempt < 1:
            raise FaultPlanError(
                f"ScriptedFault.attempt={self.attempt!r} must be an integer >= 1 "
                "(attempts count from 1)"
            )
        if self.key is not None and not isinstance(self.key, str):
            raise FaultPlanError(
                f"ScriptedFault.key={self.key!r} must be None or a call-key glob such as 'order-7*'"
            )
        if not isinstance(self.fault, tuple(FAULT_KINDS.values())):
            raise FaultPlanError(
                f"ScriptedFault.fault={self.fault!r} is not a fault; "
                "use Fail(), Delay(seconds), Duplicate(), HeartbeatLoss(), Timeout(), "
                "Restart() or Cancel()"
            )
        through = self.through
        if through is None or through == ALL_ATTEMPTS:
            return
        if not isinstance(through, int) or isinstance(through, bool):
            raise FaultPlanError(
                f"ScriptedFault.through={through!r} must be None (one attempt), "
                f"an attempt number >= attempt, or {ALL_ATTEMPTS!r} (every attempt)"
            )
        if through < self.attempt:
            raise FaultPlanError(
                f"ScriptedFault.through={through!r} is before attempt={self.attempt}; "
                f"pass an attempt number >= {self.attempt}, or {ALL_ATTEMPTS!r}"
            )

    @property
    def last_attempt(self) -> int | None:
        """The last attempt this entry faults, or ``None`` for every attempt from ``attempt``."""
        through = self.through
        if through is None:
            return self.attempt
        return through if isinstance(through, int) else None

    @property
    def is_outage(self) -> bool:
        """Whether the entry faults more than one attempt."""
        last = self.last_attempt
        return last is None or last > self.attempt

    def matches(self, call: ActivityCall) -> bool:
        """Whether this entry applies to ``call``."""
        if call.attempt < self.attempt:
            return False
        last = self.last_attempt
        return (
            (last is None or call.attempt <= last)
            and fnmatchcase(call.activity, self.activity)
            and (self.key is None or fnmatchcase(call.key, self.key))
        )

    def attempts(self) -> str:
        """The attempts it faults: ``attempt 2``, ``attempts 1-3`` or ``attempts 1-all``."""
        if not self.is_outage:
            return f"attempt {self.attempt}"
        last = self.last_attempt
        return f"attempts {self.attempt}-{ALL_ATTEMPTS if last is None else last}"

    def describe(self) -> str:
        """A one-line description such as ``charge attempt 1: fail``."""
        where = self.activity if self.key is None else f"{self.activity}[{self.key}]"
        return f"{where} {self.attempts()}: {self.fault.describe()}"

    def to_dict(self) -> dict[str, Any]:
        """Serialise to a JSON-compatible dict (``key`` and ``through`` only when set)."""
        data: dict[str, Any] = {
            "activity": self.activity,
            "attempt": self.attempt,
            "fault": fault_to_dict(self.fault),
        }
        if self.key is not None:
            data["key"] = self.key
        if self.through is not None:
            data["through"] = self.through
        return data


@dataclass(frozen=True)
class ScriptedPlan:
    """Exact faults on exact activities and attempts: the form Hypothesis draws.

    The first entry matching an execution wins.
    """

    faults: tuple[ScriptedFault, ...] = ()
    kind: ClassVar[str] = "scripted"

    def __post_init__(self) -> None:
        if not isinstance(self.faults, tuple):
            object.__setattr__(self, "faults", tuple(self.faults))
        for i, entry in enumerate(self.faults):
            if not isinstance(entry, ScriptedFault):
                raise FaultPlanError(
                    f"ScriptedPlan.faults[{i}]={entry!r} is not a ScriptedFault; "
                    "build entries with ScriptedFault(activity, attempt, fault)"
                )

    def decide(self, call: ActivityCall) -> Fault | None:
        """The fault to inject on ``call``, or ``None``."""
        for entry in self.faults:
            if entry.matches(call):
                return entry.fault
        return None

    def may_inject(self, activity: str) -> bool:
        """Whether some execution of activity type ``activity`` may get a fault."""
        return any(fnmatchcase(activity, entry.activity) for entry in self.faults)

    def patterns(self) -> tuple[str, ...]:
        """The activity patterns this plan names."""
        return tuple(entry.activity for entry in self.faults)

    def describe(self) -> str:
        """The schedule, one entry per line (or ``no faults``)."""
        return "\n".join(e.describe() for e in self.faults) or "no faults"

    def to_dict(self) -> dict[str, Any]:
        """Serialise to a JSON-compatible dict."""
        return {"kind": self.kind, "faults": [e.to_dict() for e in self.faults]}


# --------------------------------------------------------------------------- random plans


@dataclass(frozen=True)
class FaultRule:
    """Seeded probabilities of each fault kind for activities matching ``activity``.

    Probabilities are per attempt and must sum to at most 1. Attempts after
    ``until_attempt`` run clean so that retried work eventually succeeds; pass
    ``None`` to fault every attempt. ``delay_seconds`` is bounded as
    :attr:`Delay.seconds` is (see :func:`max_delay`).
    """

    activity: str = "*"
    fail: float = 0.0
    fail_non_retryable: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 0.05
    duplicate: float = 0.0
    heartbeat_loss: float = 0.0
    until_attempt: int | None = 3
    timeout: float = 0.0

    _PROBABILITIES: ClassVar[tuple[str, ...]] = (
        "fail",
        "fail_non_retryable",
        "delay",
        "duplicate",
        "heartbeat_loss",
        "timeout",
    )

    def __post_init__(self) -> None:
        _check_pattern("FaultRule", self.activity)
        for name in self._PROBABILITIES:
            _check_probability("FaultRule", name, getattr(self, name))
        total = sum(getattr(self, name) for name in self._PROBABILITIES)
        if total > 1.0 + 1e-9:
            raise FaultPlanError(
                f"FaultRule probabilities sum to {total:g} > 1 for activity {self.activity!r}; "
                "lower fail/delay/duplicate/heartbeat_loss/timeout"
            )
        _check_delay("FaultRule", "delay_seconds", self.delay_seconds)
        if self.until_attempt is not None and (
            not isinstance(self.until_attempt, int)
            or isinstance(self.until_attempt, bool)
            or self.until_attempt < 1
        ):
            raise FaultPlanError(
                f"FaultRule.until_attempt={self.until_attempt!r} must be an integer >= 1 or None"
            )

    def choose(self, u: float) -> Fault | None:
        """Map a uniform draw ``u`` in [0, 1) to a fault (or none)."""
        options: tuple[tuple[float, Fault], ...] = (
            (self.fail, Fail()),
            (self.fail_non_retryable, Fail(retryable=False)),
            (self.delay, Delay(self.delay_seconds)),
            (self.duplicate, Duplicate()),
            (self.heartbeat_loss, HeartbeatLoss()),
            (self.timeout, Timeout()),
        )
        edge = 0.0
        for probability, fault in options:
            edge += probability
            if u < edge:
                return fault
        return None


@dataclass(frozen=True)
class RandomPlan:
    """Seeded random faults, for chaos and soak runs.

    The first rule whose pattern matches an activity decides its faults. Each
    attempt's draw is a hash of (seed, workflow id, activity, key, attempt).
    """

    seed: int
    rules: tuple[FaultRule, ...] = ()
    kind: ClassVar[str] = "random"

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise FaultPlanError(f"RandomPlan.seed={self.seed!r} must be an integer")
        if not isinstance(self.rules, tuple):
            object.__setattr__(self, "rules", tuple(self.rules))
        for i, rule in enumerate(self.rules):
            if not isinstance(rule, FaultRule):
                raise FaultPlanError(
                    f"RandomPlan.rules[{i}]={rule!r} is not a FaultRule; "
                    "build it with FaultRule(...)"
                )

    @classmethod
    def parse(cls, spec: str, *, seed: int, activity: str = "*") -> RandomPlan:
        """Build a one-rule plan from text such as ``fail=0.2,delay=0.1,duplicate=0.1``."""
        values: dict[str, Any] = {}
        allowed = (*FaultRule._PROBABILITIES, "delay_seconds", "until_attempt")
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep or name not in allowed:
                raise FaultPlanError(
                    f"fault spec item {item!r} is not NAME=VALUE "
                    f"with NAME one of {', '.join(allowed)}"
                )
            try:
                values[name] = int(raw) if name == "until_attempt" else float(raw)
            except ValueError:
                raise FaultPlanError(f"fault spec {name}={raw!r} is not a number") from None
        return cls(seed=seed, rules=(FaultRule(activity=activity, **values),))

    def decide(self, call: ActivityCall) -> Fault | None:
        """The fault to inject on ``call``, or ``None``."""
        for rule in self.rules:
            if fnmatchcase(call.activity, rule.activity):
                if rule.until_attempt is not None and call.attempt > rule.until_attempt:
                    return None
                u = _unit_interval(
                    self.seed, call.workflow_id, call.activity, call.key, call.attempt
                )
                return rule.choose(u)
        return None

    def may_inject(self, activity: str) -> bool:
        """Whether some execution of activity type ``activity`` may get a fault."""
        for rule in self.rules:
            if fnmatchcase(activity, rule.activity):
                return any(getattr(rule, name) > 0 for name in rule._PROBABILITIES)
        return False

    def patterns(self) -> tuple[str, ...]:
        """The activity patterns this plan names."""
        return tuple(rule.activity for rule in self.rules)

    def describe(self) -> str:
        """A one-line description of the plan."""
        parts = []
        for rule in self.rules:
            probs = ",".join(
                f"{name}={getattr(rule, name):g}"
                for name in FaultRule._PROBABILITIES
                if getattr(rule, name)
            )
            parts.append(f"{rule.activity}: {probs or 'none'}")
        return f"random(seed={self.seed}; {'; '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """Serialise to a JSON-compatible dict."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "rules": [{f.name: getattr(rule, f.name) for f in fields(rule)} for rule in self.rules],
        }


FaultPlan = ScriptedPlan | RandomPlan
"""A plan: scripted or random."""


def longest_delay(plan: FaultPlan) -> float:
    """The longest a :class:`Delay` of ``plan`` may hold an attempt, in seconds (0 if none)."""
    if isinstance(plan, ScriptedPlan):
        return max(
            (e.fault.seconds for e in plan.faults if isinstance(e.fault, Delay)), default=0.0
        )
    return max((r.delay_seconds for r in plan.rules if r.delay > 0), default=0.0)


# --------------------------------------------------------------------------- (de)serialisation


def plan_to_json(plan: FaultPlan) -> str:
    """Serialise a plan to compact JSON (what travels in Temporal headers)."""
    return json.dumps(plan.to_dict(), separators=(",", ":"), sort_keys=True)


def _list_of_objects(data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    items = data.get(name, [])
    if not isinstance(items, list):
        raise FaultPlanError(f"plan.{name}={items!r} must be a list of objects")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise FaultPlanError(f"{name}[{i}]={item!r} must be an object")
    return items


def plan_from_dict(data: Mapping[str, Any]) -> FaultPlan:
    """Build a plan from :meth:`to_dict` output, validating every field."""
    kind = data.get("kind")
    if kind == ScriptedPlan.kind:
        entries = []
        for i, raw in enumerate(_list_of_objects(data, "faults")):
            where = f"faults[{i}]"
            if not isinstance(raw.get("fault"), Mapping):
                raise FaultPlanError(
                    f"{where}.fault={raw.get('fault')!r} must be an object such as "
                    '{"kind": "fail"}'
                )
            try:
                fault = fault_from_dict(raw["fault"], where=f"{where}.fault")
                entries.append(
                    ScriptedFault(
                        raw["activity"], raw["attempt"], fault, raw.get("key"), raw.get("through")
                    )
                )
            except KeyError as err:
                raise FaultPlanError(f"{where} lacks field {err}") from None
        return ScriptedPlan(tuple(entries))
    if kind == RandomPlan.kind:
        rules = []
        for i, raw in enumerate(_list_of_objects(data, "rules")):
            try:
                rules.append(FaultRule(**raw))
            except TypeError as err:
                raise FaultPlanError(f"rules[{i}]: {err}") from None
        return RandomPlan(seed=data.get("seed"), rules=tuple(rules))  # type: ignore[arg-type]
    raise FaultPlanError(f"plan.kind={kind!r} is unknown; use 'scripted' or 'random'")


def plan_from_json(text: str | bytes) -> FaultPlan:
    """Inverse of :func:`plan_to_json`."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise FaultPlanError(f"fault plan is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise FaultPlanError("fault plan JSON must be an object with a 'kind' field")
    return plan_from_dict(data)


def check_plan_against(plan: FaultPlan, activity_names: Iterable[str]) -> None:
    """Raise :class:`FaultPlanError` if a pattern of ``plan`` matches none of ``activity_names``."""
    names = sorted(set(activity_names))
    for pattern in plan.patterns():
        if not any(fnmatchcase(name, pattern) for name in names):
            raise FaultPlanError(
                f"fault plan activity pattern {pattern!r} matches no activity this worker "
                f"registers ({', '.join(names) or 'none'}); "
                "fix the pattern or register the activity"
            )


@dataclass(frozen=True)
class Injection:
    """One injected fault, as recorded in a :class:`~faults.FaultLog`."""

    kind: str
    detail: str
    workflow_id: str
    activity: str
    key: str
    attempt: int
    at: float = field(compare=False)
    """Wall-clock time of the injection (seconds since the epoch)."""
    run_id: str = ""
    """Run id of the workflow execution the activity belongs to."""

    def to_dict(self) -> dict[str, Any]:
        """Serialise to a JSON-compatible dict."""
        return dict(self.__dict__)
