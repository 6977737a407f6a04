"""Which header plans a worker obeys: plans signed, for their workflow, with the worker's key.

A client with the fault plugin signs the plan it stamps on a workflow with
HMAC-SHA256 over (the workflow id, the plan's JSON), keyed with a secret it
shares with the workers: the ``FAULTS_PLAN_KEY`` environment variable, or
``FaultPlugin(key=...)``. The signature travels in the plan header's payload
metadata; the key never leaves the processes that hold it. A worker applies a
header plan only if the signature verifies for the workflow the plan came
with, so a plan copied from one workflow's history onto another workflow id
does not verify either. A workflow forwards its plan to its activities (same
workflow id) and continue-as-new runs as it is, and re-signs it for each child
workflow's id.

Verification is a pure function of the key and the header, so a workflow
replayed with the same key decides as its original run did.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass

from temporalio.api.common.v1 import Payload

from ._log import FaultLog
from ._plan import FaultPlan, FaultPlanError, longest_delay, plan_from_json

PLAN_KEY_VARIABLE = "FAULTS_PLAN_KEY"
"""Environment variable holding the key that signs and verifies header plans."""

SIGNATURE_METADATA = "workflow-resilience-plan-signature"
"""Payload metadata entry of a plan header that holds the plan's signature (hex)."""

MIN_KEY_BYTES = 16
"""Shortest key accepted, in bytes."""

logger = logging.getLogger("faults")


class PlanKey:
    """A secret shared by clients and workers that signs fault plans.

    Build it from text or bytes (at least :data:`MIN_KEY_BYTES`); its ``repr``
    and ``str`` never show the secret.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str | bytes, *, source: str = "FaultPlugin(key=...)") -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        if not isinstance(secret, bytes):
            raise FaultPlanError(
                f"{source} must be text or bytes (a shared secret), not {type(secret).__name__}"
            )
        if len(secret) < MIN_KEY_BYTES:
            raise FaultPlanError(
                f"{source} is {len(secret)} bytes; use at least {MIN_KEY_BYTES} random bytes, "
                "such as the text faults.new_plan_key() returns"
            )
        self._secret = secret

    def __repr__(self) -> str:
        return "PlanKey(<hidden>)"

    __str__ = __repr__

    def sign(self, workflow_id: str, plan: bytes) -> bytes:
        """The signature (hex, as bytes) of a plan's JSON for one workflow id."""
        wid = workflow_id.encode()
        message = len(wid).to_bytes(4, "big") + wid + plan
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest().encode()

    def verifies(self, workflow_id: str, plan: bytes, signature: bytes) -> bool:
        """Whether ``signature`` signs ``plan`` for ``workflow_id`` with this key."""
        return hmac.compare_digest(self.sign(workflow_id, plan), signature)


def new_plan_key() -> str:
    """A fresh random key (64 hex digits), for ``FAULTS_PLAN_KEY`` or ``FaultPlugin(key=...)``."""
    return secrets.token_hex(32)


def plan_key_from_environment() -> PlanKey | None:
    """The key in ``FAULTS_PLAN_KEY``, or ``None`` if the variable is unset or empty."""
    value = os.environ.get(PLAN_KEY_VARIABLE, "")
    return PlanKey(value, source=f"${PLAN_KEY_VARIABLE}") if value else None


def as_plan_key(key: PlanKey | str | bytes | None) -> PlanKey | None:
    """``key`` as a :class:`PlanKey` (``None`` stays ``None``)."""
    return key if key is None or isinstance(key, PlanKey) else PlanKey(key)


def sign_header(header: Payload, workflow_id: str, key: PlanKey) -> Payload:
    """A copy of a plan header signed for ``workflow_id``."""
    metadata = dict(header.metadata)
    metadata[SIGNATURE_METADATA] = key.sign(workflow_id, header.data)
    return Payload(metadata=metadata, data=header.data)


@functools.lru_cache(maxsize=256)
def _decode(data: bytes) -> FaultPlan:
    """A plan's JSON decoded once for every workflow that carries it (plans are frozen)."""
    return plan_from_json(data)


NO_KEY = "no key"
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad signature"
INVALID_PLAN = "invalid plan"
DELAY_ABOVE_MAXIMUM = "delay above maximum"

_HINTS = {
    NO_KEY: "this worker has no plan key: set {var} (the same secret on clients and "
    "workers) or pass FaultPlugin(key=...)",
    UNSIGNED: "the client that started the workflow signs no plans: give its FaultPlugin the "
    "workers' key ({var} or FaultPlugin(key=...))",
    BAD_SIGNATURE: "it was signed with another key, or for another workflow id",
    INVALID_PLAN: "it does not decode here ({error}); are client and worker on the same version?",
    DELAY_ABOVE_MAXIMUM: "it holds attempts up to {delay:g} s, above this worker's maximum of "
    "{limit:g} s; shorten the delays, or raise FaultPlugin(max_delay=...) on the worker",
}


@dataclass(frozen=True)
class _Verdict:
    plan: FaultPlan | None
    reason: str | None = None
    detail: str = ""


class PlanTrust:
    """A worker's judge of header plans: verifies each once, remembers the verdict.

    ``plan(workflow_id, header)`` is the plan to apply, or ``None`` for a plan
    the worker refuses (no key, unsigned, wrongly signed, undecodable, or with
    a delay above ``max_delay``). A refusal is counted in ``log`` and logged
    (a warning the first time for each reason, then at debug level) when the
    verdict is first reached with ``count``; the verdicts of the last
    ``cache_size`` (workflow id, header) pairs are kept, so the calls of one
    workflow verify its plan once.
    """

    def __init__(
        self, key: PlanKey | None, log: FaultLog, max_delay: float, cache_size: int = 1024
    ) -> None:
        self.key = key
        self.log = log
        self.max_delay = max_delay
        self._cache: collections.OrderedDict[tuple[str, bytes, bytes | None], _Verdict] = (
            collections.OrderedDict()
        )
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def plan(self, workflow_id: str, header: Payload, *, count: bool = True) -> FaultPlan | None:
        """The plan ``header`` carries for ``workflow_id`` if the worker obeys it, else ``None``."""
        signature = header.metadata.get(SIGNATURE_METADATA)
        entry = (workflow_id, header.data, signature)
        with self._lock:
            verdict = self._cache.get(entry)
            if verdict is not None:
                self._cache.move_to_end(entry)
                return verdict.plan
        verdict = self._judge(workflow_id, header.data, signature)
        with self._lock:
            fresh = entry not in self._cache
            self._cache[entry] = verdict
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if fresh and count and verdict.reason is not None:
            self._refused(workflow_id, verdict)
        return verdict.plan

    def resign(self, header: Payload, workflow_id: str) -> Payload:
        """``header`` (a plan this worker obeys) signed for another workflow id."""
        assert self.key is not None, "only plans verified with a key are forwarded"
        return sign_header(header, workflow_id, self.key)

    def _judge(self, workflow_id: str, data: bytes, signature: bytes | None) -> _Verdict:
        if self.key is None:
            return _Verdict(None, NO_KEY)
        if not signature:
            return _Verdict(None, UNSIGNED)
        if not self.key.verifies(workflow_id, data, signature):
            return _Verdict(None, BAD_SIGNATURE)
        try:
            plan = _decode(data)
        except FaultPlanError as err:
            return _Verdict(None, INVALID_PLAN, str(err))
        delay = longest_delay(plan)
        if delay > self.max_delay:
            return _Verdict(None, DELAY_ABOVE_MAXIMUM, f"{delay:g}")
        return _Verdict(plan)

    def _refused(self, workflow_id: str, verdict: _Verdict) -> None:
        reason = verdict.reason
        assert reason is not None
        self.log.reject(workflow_id, reason, time.time())
        hint = _HINTS[reason].format(
            var=PLAN_KEY_VARIABLE,
            error=verdict.detail,
            delay=float(verdict.detail or 0) if reason == DELAY_ABOVE_MAXIMUM else 0.0,
            limit=self.max_delay,
        )
        with self._lock:
            first = reason not in self._warned
            self._warned.add(reason)
        # A worker without a key said so once when it started.
        level = logging.WARNING if first and reason != NO_KEY else logging.DEBUG
        logger.log(
            level,
            "fault plan of workflow %r ignored (%s): %s",
            workflow_id,
            reason,
            hint,
        )
