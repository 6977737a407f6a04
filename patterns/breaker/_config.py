"""Breaker configuration: thresholds, window, durations, validated at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass


class BreakerConfigError(ValueError):
    """A :class:`BreakerConfig` field has a bad value; the message names it and the fix."""


def _number(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise BreakerConfigError(f"BreakerConfig.{name}={value!r} is not a number")
    return float(value)


def _count(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BreakerConfigError(f"BreakerConfig.{name}={value!r} must be an integer >= {minimum}")
    return value


def _seconds(name: str, value: object, *, positive: bool = False) -> None:
    seconds = _number(name, value)
    if seconds < 0 or (positive and seconds == 0) or math.isinf(seconds):
        bound = "> 0" if positive else ">= 0"
        raise BreakerConfigError(
            f"BreakerConfig.{name}={value!r} must be a finite duration in seconds {bound}"
        )


@dataclass(frozen=True)
class BreakerConfig:
    """How a circuit breaker decides to open, wait and close.

    While closed, the outcomes of the last ``window_size`` calls are kept; once
    at least ``minimum_calls`` are in the window and the share of failures
    reaches ``failure_rate_threshold``, the breaker opens. With
    ``consecutive_failures`` set it also opens after that many failures in a
    row. A call lasting ``slow_call_seconds`` or longer counts as a failure.
    After ``open_seconds`` (a durable timer) the breaker half-opens and admits
    ``half_open_permits`` probe calls: one failed probe opens it again, all of
    them succeeding closes it. A permit not reported within
    ``permit_timeout_seconds`` counts as a failed call, so a caller that
    crashed cannot hold a probe forever.
    """

    failure_rate_threshold: float = 0.5
    window_size: int = 10
    minimum_calls: int = 5
    consecutive_failures: int | None = None
    slow_call_seconds: float | None = None
    open_seconds: float = 30.0
    half_open_permits: int = 1
    permit_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        rate = _number("failure_rate_threshold", self.failure_rate_threshold)
        if not 0.0 < rate <= 1.0:
            raise BreakerConfigError(
                f"BreakerConfig.failure_rate_threshold={self.failure_rate_threshold!r} is outside "
                "(0, 1]; pass the failing share of calls that opens the breaker, such as 0.5"
            )
        _count("window_size", self.window_size, 1)
        _count("minimum_calls", self.minimum_calls, 1)
        if self.minimum_calls > self.window_size:
            raise BreakerConfigError(
                f"BreakerConfig.minimum_calls={self.minimum_calls} exceeds "
                f"window_size={self.window_size}; the window could never hold that many calls"
            )
        if self.consecutive_failures is not None:
            _count("consecutive_failures", self.consecutive_failures, 1)
        if self.slow_call_seconds is not None:
            _seconds("slow_call_seconds", self.slow_call_seconds, positive=True)
        _seconds("open_seconds", self.open_seconds)
        _count("half_open_permits", self.half_open_permits, 1)
        _seconds("permit_timeout_seconds", self.permit_timeout_seconds, positive=True)
