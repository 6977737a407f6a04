"""Fan-out/fan-in: a batch of customer records processed in parallel, with an exact fan-in.

:class:`FanOutBatchWorkflow` fans a batch out to chunk activities in a sliding
window (and to child workflows for batches past one workflow's limits), fans
the results in keyed by record, and returns exactly which records failed and
why. Activities live on :class:`FanOutActivities`; records are generated with
Faker from ``(seed, index)``.
"""

from temporalio import workflow

# Workflow code imports this package inside the workflow sandbox: pass the
# modules workflows do not run through it rather than re-import them per run.
with workflow.unsafe.imports_passed_through():
    from ._activities import FanOutActivities
    from ._fanin import FanIn
    from ._records import (
        Customer,
        EnrichedCustomer,
        enrich,
        generate_customer,
        invalid_records,
        process_record,
        validate,
    )
    from ._types import (
        FAILURE_POLICIES,
        MAX_ACTIVITIES_PER_WORKFLOW,
        MAX_RECORDS,
        MAX_SEGMENTS,
        RECORD_FAILED_TYPE,
        BatchConfig,
        BatchConfigError,
        BatchRequest,
        BatchResult,
        FailedRange,
        FailurePolicy,
        RangeRequest,
        RangeResult,
        RecordFailure,
        SealRequest,
        SealResult,
        record_id,
    )
from ._workflow import ACTIVITY_TIMEOUT, RETRY_POLICY, FanOutBatchWorkflow, FanOutSegmentWorkflow

__all__ = [
    "ACTIVITY_TIMEOUT",
    "FAILURE_POLICIES",
    "MAX_ACTIVITIES_PER_WORKFLOW",
    "MAX_RECORDS",
    "MAX_SEGMENTS",
    "RECORD_FAILED_TYPE",
    "RETRY_POLICY",
    "BatchConfig",
    "BatchConfigError",
    "BatchRequest",
    "BatchResult",
    "Customer",
    "EnrichedCustomer",
    "FailedRange",
    "FailurePolicy",
    "FanIn",
    "FanOutActivities",
    "FanOutBatchWorkflow",
    "FanOutSegmentWorkflow",
    "RangeRequest",
    "RangeResult",
    "RecordFailure",
    "SealRequest",
    "SealResult",
    "enrich",
    "generate_customer",
    "invalid_records",
    "process_record",
    "record_id",
    "validate",
]
