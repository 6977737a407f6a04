"""Hypothesis strategies that draw fault plans.

Plans shrink toward fewer and simpler faults: the list of scripted faults
shrinks toward empty; each entry toward a retryable ``Fail`` on attempt 1, the
kinds in the order given (by default fail, duplicate, delay, then timeout), an
outage toward a single attempt and then toward fewer attempts; delays toward
zero, and timeouts toward an attempt whose body never runs.

>>> from faults.strategies import scripted_plans
>>> plans = scripted_plans(["charge", "reserve"], kinds=("fail", "outage", "duplicate"))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ._disruptions import Cancel, Restart
from ._plan import (
    ALL_ATTEMPTS,
    FAULT_KINDS,
    Delay,
    Duplicate,
    Fail,
    Fault,
    FaultRule,
    HeartbeatLoss,
    RandomPlan,
    ScriptedFault,
    ScriptedPlan,
    Timeout,
)

__all__ = [
    "DEFAULT_KINDS",
    "OUTAGE",
    "fault_kinds",
    "random_plans",
    "scripted_faults",
    "scripted_plans",
]

OUTAGE = "outage"
"""A shape, not a fault kind: with it in ``kinds`` an entry may fault a run of attempts
(:attr:`~faults.ScriptedFault.through`) with one of the other kinds named."""

DEFAULT_KINDS: tuple[str, ...] = ("fail", OUTAGE, "duplicate", "delay", "timeout")
"""Kinds drawn when none are named (heartbeat loss only matters for heartbeating activities).

A :class:`~faults.Timeout` costs about a second of real time on the
time-skipping test server, but its activity's whole timeout on other servers; leave
``"timeout"`` out of ``kinds`` where that is too slow.
"""


def _check_names(func: str, activities: Sequence[str]) -> list[str]:
    if isinstance(activities, str):
        raise InvalidArgument(
            f"{func}(activities={activities!r}) wants a list of names; pass [{activities!r}]"
        )
    names = list(activities)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidArgument(
            f"{func}(activities={activities!r}) needs at least one non-empty activity name; "
            "pass the names your worker registers"
        )
    return names


def _check_kinds(func: str, kinds: Sequence[str]) -> list[str]:
    """The fault kinds named in ``kinds``, in order (``"outage"`` left out)."""
    if isinstance(kinds, str):
        raise InvalidArgument(f"{func}(kinds={kinds!r}) wants a list of kinds; pass [{kinds!r}]")
    unknown = [k for k in kinds if k not in FAULT_KINDS and k != OUTAGE]
    chosen = [k for k in kinds if k in FAULT_KINDS]
    if unknown or not chosen:
        raise InvalidArgument(
            f"{func}(kinds={list(kinds)!r}) must name at least one of {', '.join(FAULT_KINDS)}"
            f" (and may add {OUTAGE!r}, which repeats one of them over a run of attempts)"
            + (f"; {unknown!r} is not a fault kind" if unknown else "")
        )
    return chosen


def fault_kinds(
    kinds: Sequence[str] = DEFAULT_KINDS,
    *,
    max_delay: float = 0.05,
    allow_non_retryable: bool = False,
) -> st.SearchStrategy[Fault]:
    """Faults of the given kinds, simplest first.

    ``max_delay`` bounds :class:`~faults.Delay` seconds (the time-skipping
    server does not skip time while an activity runs, so a delay costs real
    time). With ``allow_non_retryable`` a ``Fail`` may be non-retryable.
    ``"outage"`` in ``kinds`` is accepted and means nothing here (one fault
    has no attempts).
    """
    chosen = _check_kinds("fault_kinds", kinds)
    if max_delay < 0:
        raise InvalidArgument(f"fault_kinds(max_delay={max_delay!r}) must be >= 0 seconds")
    options: list[st.SearchStrategy[Fault]] = []
    for kind in chosen:
        if kind == "fail":
            retryable = (
                st.just(True) if not allow_non_retryable else st.booleans().map(lambda b: not b)
            )
            options.append(st.builds(Fail, retryable=retryable))
        elif kind == "duplicate":
            options.append(st.just(Duplicate()))
        elif kind == "delay":
            options.append(
                st.builds(
                    Delay,
                    seconds=st.floats(0, max_delay, allow_nan=False),
                    at=st.sampled_from(["before", "after"]),
                )
            )
        elif kind == "timeout":
            options.append(st.builds(Timeout, body=st.sampled_from(["never", "before"])))
        elif kind == "restart":
            options.append(st.just(Restart()))
        elif kind == "cancel":
            options.append(st.builds(Cancel, body=st.sampled_from(["never", "before"])))
        else:
            options.append(st.builds(HeartbeatLoss, after=st.integers(0, 3)))
    return st.one_of(options)


def scripted_faults(
    activities: Sequence[str],
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_attempt: int = 3,
    max_delay: float = 0.05,
    allow_non_retryable: bool = False,
    outage_through_all: bool = False,
) -> st.SearchStrategy[ScriptedFault]:
    """One scripted fault on one of ``activities`` at an attempt in ``[1, max_attempt]``.

    Half the entries are drawn on attempt 1, which every call makes; the rest
    uniformly (an attempt after the first happens only if the one before failed).

    With ``"outage"`` in ``kinds`` the entry may fault a run of attempts ending
    at most at ``max_attempt``; with ``outage_through_all`` also every attempt
    until the retry policy gives up (``through="all"``), which never ends under
    a retry policy without ``maximum_attempts``.
    """
    names = _check_names("scripted_faults", activities)
    if isinstance(max_attempt, bool) or not isinstance(max_attempt, int) or max_attempt < 1:
        raise InvalidArgument(f"scripted_faults(max_attempt={max_attempt!r}) must be >= 1")
    faults = fault_kinds(kinds, max_delay=max_delay, allow_non_retryable=allow_non_retryable)
    outages = OUTAGE in kinds

    @st.composite
    def entry(draw: st.DrawFn) -> ScriptedFault:
        activity = draw(st.sampled_from(names))
        # Half the entries on the first attempt: a later attempt happens only after an
        # earlier one failed, so an entry there more often aims at nothing.
        attempt = draw(st.just(1) | st.integers(1, max_attempt))
        fault = draw(faults)
        ends: list[st.SearchStrategy[int | Literal["all"] | None]] = [st.none()]
        if outages and attempt < max_attempt:
            ends.append(st.integers(attempt + 1, max_attempt))
        if outages and outage_through_all:
            ends.append(st.just(ALL_ATTEMPTS))
        through = draw(st.one_of(ends)) if len(ends) > 1 else None
        return ScriptedFault(activity, attempt, fault, through=through)

    return entry()


def scripted_plans(
    activities: Sequence[str],
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_faults: int = 6,
    max_attempt: int = 3,
    max_delay: float = 0.05,
    allow_non_retryable: bool = False,
    outage_through_all: bool = False,
    min_faults: int = 0,
) -> st.SearchStrategy[ScriptedPlan]:
    """Scripted plans of up to ``max_faults`` entries, at most one starting per (activity, attempt).

    Entries are drawn by :func:`scripted_faults`; the first entry matching an
    attempt decides its fault. ``min_faults=1`` leaves out the fault-free plan,
    for properties whose fault-free run is checked elsewhere.
    """
    if max_faults < 0:
        raise InvalidArgument(f"scripted_plans(max_faults={max_faults!r}) must be >= 0")
    if not 0 <= min_faults <= max_faults:
        raise InvalidArgument(
            f"scripted_plans(min_faults={min_faults!r}) must be in [0, max_faults={max_faults}]"
        )
    entries = st.lists(
        scripted_faults(
            activities,
            kinds=kinds,
            max_attempt=max_attempt,
            max_delay=max_delay,
            allow_non_retryable=allow_non_retryable,
            outage_through_all=outage_through_all,
        ),
        min_size=min_faults,
        max_size=max_faults,
        unique_by=lambda e: (e.activity, e.attempt),
    )
    return entries.map(lambda faults: ScriptedPlan(tuple(faults)))


def random_plans(
    activities: Sequence[str] = ("*",),
    *,
    max_probability: float = 0.3,
    delay_seconds: float = 0.01,
) -> st.SearchStrategy[RandomPlan]:
    """Random plans: one rule per activity pattern, total probability up to ``max_probability``.

    Each rule draws fail, delay, duplicate and timeout probabilities of up to a
    quarter of ``max_probability`` each.
    """
    names = _check_names("random_plans", activities)
    if not 0 <= max_probability <= 1:
        raise InvalidArgument(
            f"random_plans(max_probability={max_probability!r}) must be in [0, 1]"
        )
    share = max_probability / 4
    probability = st.floats(0, share, allow_nan=False)
    rule = st.builds(
        FaultRule,
        fail=probability,
        delay=probability,
        duplicate=probability,
        timeout=probability,
        delay_seconds=st.just(delay_seconds),
    )
    return st.builds(
        lambda seed, rules: RandomPlan(
            seed=seed,
            rules=tuple(
                FaultRule(**{**r.__dict__, "activity": name})
                for name, r in zip(names, rules, strict=True)
            ),
        ),
        st.integers(0, 2**32 - 1),
        st.lists(rule, min_size=len(names), max_size=len(names)),
    )
