"""The saga pattern: an order charged, reserved and shipped, or compensated.

:class:`Saga` is the generic workflow-side helper (compensations registered
before their steps, last-in first-out or parallel, each at most once, run on
cancellation, a pivot after which steps are retried to completion).
:class:`OrderSaga` uses it over the SQLite-backed :class:`OrderServices`
through :class:`OrderActivities`.
"""

from temporalio import workflow

# Only OrderSaga's own module needs the sandbox; the rest (services, Faker) is
# passed through so each workflow run does not re-import it.
with workflow.unsafe.imports_passed_through():
    from ._activities import (
        ALL_ACTIVITIES,
        COMPENSATION_ACTIVITIES,
        STEP_ACTIVITIES,
        OrderActivities,
    )
    from ._orders import Product, make_catalog, make_order
    from ._saga import (
        Compensation,
        CompensationOutcome,
        Saga,
        SagaCompensationError,
        SagaError,
        SagaOptions,
        SagaReport,
    )
    from ._services import (
        FRAUD_LIMIT_CENTS,
        AddressNotServed,
        BusinessError,
        FraudSuspected,
        JournalEntry,
        OperationVoided,
        OrderLedger,
        OrderServices,
        OutOfStock,
        PaymentDeclined,
        UnknownSku,
    )
    from ._types import (
        DECLINED_CARD,
        SERVED_COUNTRIES,
        Address,
        InvalidOrderError,
        LineItem,
        Order,
        OrderKeys,
        OrderResult,
        SagaSettings,
        validate_order,
    )
from ._workflow import FRAUD_SCREEN_PATCH, OrderSaga, order_failure, refuse_invalid

__all__ = [
    "order_failure",
    "ALL_ACTIVITIES",
    "COMPENSATION_ACTIVITIES",
    "DECLINED_CARD",
    "SERVED_COUNTRIES",
    "STEP_ACTIVITIES",
    "Address",
    "AddressNotServed",
    "BusinessError",
    "Compensation",
    "CompensationOutcome",
    "InvalidOrderError",
    "JournalEntry",
    "LineItem",
    "OperationVoided",
    "Order",
    "OrderActivities",
    "OrderKeys",
    "OrderLedger",
    "OrderResult",
    "OrderSaga",
    "OrderServices",
    "OutOfStock",
    "PaymentDeclined",
    "FraudSuspected",
    "FRAUD_LIMIT_CENTS",
    "FRAUD_SCREEN_PATCH",
    "Product",
    "Saga",
    "SagaCompensationError",
    "SagaError",
    "SagaOptions",
    "SagaReport",
    "SagaSettings",
    "UnknownSku",
    "make_catalog",
    "make_order",
    "refuse_invalid",
    "validate_order",
]
