"""Deterministic execution in Temporal terms, shown on a price quote.

Workflow code is replayed from its history, so it must make the same decisions
every time it runs:

* randomness, ids and time come from the workflow: :func:`temporalio.workflow.random`,
  :func:`temporalio.workflow.uuid4` and :func:`temporalio.workflow.now` are seeded
  from, or recorded in, the history;
* anything else that reads the outside world is a side effect, moved into an
  activity (or, when short, a local activity) whose result the history records.
  This is what the Java and Go SDKs' ``side_effect`` (record a value once) and
  ``mutable_side_effect`` (record a value only when it changes) are for; in Python
  a local activity plays both roles, and the workflow keeps the last value itself.
"""

from ._workflow import QUOTE_ACTIVITIES, Quote, QuoteWorkflow, read_exchange_rate

__all__ = ["QUOTE_ACTIVITIES", "Quote", "QuoteWorkflow", "read_exchange_rate"]
