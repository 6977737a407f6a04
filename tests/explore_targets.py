"""A small money transfer, correct and with planted bugs, for the exploration tests.

``debit`` then ``credit``. A debit that fails for good is refunded (its completion
may have been lost after it was applied: the refund covers it, and refunds only what
was debited); once debited, the credit is retried until it is done.
Every activity writes its effect to :data:`EFFECTS`, keyed by workflow id:
the independent evidence the invariant reads. ``debit``, ``credit`` and
``refund`` are idempotent (an effect is written once per run however often
the body runs); ``refund_twice`` is not.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

EFFECTS: dict[str, list[tuple[str, int]]] = {}
"""Effects applied, by workflow id: ``(operation, amount)`` in the order they happened."""
_lock = threading.Lock()


def _apply(
    operation: str, amount: int, *, idempotent: bool = True, after: str | None = None
) -> None:
    workflow_id = activity.info().workflow_id or ""
    with _lock:
        effects = EFFECTS.setdefault(workflow_id, [])
        if idempotent and any(op == operation for op, _ in effects):
            return
        if after is not None and not any(op == after for op, _ in effects):
            return  # nothing to undo
        effects.append((operation, amount))


@activity.defn
async def debit(amount: int) -> None:
    """Take ``amount`` from the payer (once per run)."""
    _apply("debit", amount)


@activity.defn
async def credit(amount: int) -> None:
    """Give ``amount`` to the payee (once per run)."""
    _apply("credit", amount)


@activity.defn
async def refund(amount: int) -> None:
    """Give a debited ``amount`` back to the payer (once per run; nothing if not debited)."""
    _apply("refund", amount, after="debit")


@activity.defn
async def refund_twice(amount: int) -> None:
    """A refund that applies again every time its body runs (not idempotent)."""
    _apply("refund", amount, idempotent=False, after="debit")


STEP_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=3)
UNTIL_DONE = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=0)
TIMEOUT = timedelta(seconds=1)


async def _step(fn: Any, amount: int) -> None:
    await workflow.execute_activity(
        fn, amount, start_to_close_timeout=TIMEOUT, retry_policy=STEP_RETRY
    )


@workflow.defn
class Transfer:
    """Debit (refunded if it fails for good), then credit, retried until done."""

    refund_activity = "refund"
    """The refund activity's name (a variant swaps it)."""

    @workflow.run
    async def run(self, amount: int) -> str:
        try:  # a debit that failed for good may still have been applied
            await _step(debit, amount)
        except ActivityError:
            await workflow.execute_activity(
                self.refund_activity,
                amount,
                start_to_close_timeout=TIMEOUT,
                retry_policy=UNTIL_DONE,
            )
            raise ApplicationError("debit failed; refunded", non_retryable=True) from None
        await workflow.execute_activity(
            credit, amount, start_to_close_timeout=TIMEOUT, retry_policy=UNTIL_DONE
        )
        return "done"


@workflow.defn
class TransferWithoutRefund:
    """Planted bug: a credit that fails for good leaves the debit standing."""

    @workflow.run
    async def run(self, amount: int) -> str:
        await _step(debit, amount)
        await _step(credit, amount)
        return "done"


@workflow.defn
class TransferDoubleRefund(Transfer):
    """Planted bug: its refund is not idempotent (a retried refund pays back twice)."""

    refund_activity = "refund_twice"

    @workflow.run
    async def run(self, amount: int) -> str:
        return await super().run(amount)


def conserved(outcome: Any) -> dict[str, str]:
    """The invariant: what was debited and not refunded was credited; nothing applied twice.

    Reads the effects the activities recorded for the run, not the workflow's result.
    """
    effects = EFFECTS.get(outcome.workflow_id, [])
    total = {op: sum(a for o, a in effects if o == op) for op in ("debit", "credit", "refund")}
    broken = {}
    if total["debit"] - total["refund"] != total["credit"]:
        broken["conservation"] = (
            f"debited {total['debit']}, refunded {total['refund']}, credited {total['credit']}"
        )
    return broken
