"""The order saga's activities: thin calls into :class:`OrderServices`.

Business refusals become non-retryable ``ApplicationError`` s whose ``type`` is
the refusal's class name (``PaymentDeclined``, ``OutOfStock``,
``AddressNotServed``, ``UnknownSku``, ``OperationVoided``); anything else (a
locked database, a lost connection) is an ordinary, retryable failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ._services import BusinessError, OrderServices
from ._types import Address, LineItem

STEP_ACTIVITIES = ("charge", "reserve", "ship")
"""Forward steps, in saga order."""

COMPENSATION_ACTIVITIES = ("refund", "release", "cancel_shipment")
"""Compensations of :data:`STEP_ACTIVITIES`, in the same order."""

ALL_ACTIVITIES = (
    "check_catalog",
    "screen",
    *STEP_ACTIVITIES,
    *COMPENSATION_ACTIVITIES,
    "confirm",
)
"""Every activity name the order saga runs."""


@contextlib.contextmanager
def _business_errors() -> Iterator[None]:
    try:
        yield
    except BusinessError as err:
        raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from None


class OrderActivities:
    """Activities bound to one services database; register ``activities()`` on a worker."""

    def __init__(self, services: OrderServices | str | Path) -> None:
        self.services = services if isinstance(services, OrderServices) else OrderServices(services)

    def activities(self) -> list[Callable[..., Any]]:
        """The bound activity methods, for ``Worker(activities=...)``."""
        return [getattr(self, name) for name in ALL_ACTIVITIES]

    @activity.defn
    def check_catalog(self, skus: list[str]) -> None:
        """Refuse an order naming a SKU the catalog does not have (read-only)."""
        with _business_errors():
            self.services.check_catalog(skus)

    @activity.defn
    def screen(self, order_id: str, email: str, amount_cents: int) -> None:
        """Refuse an order the fraud screen suspects (read-only; added in v2 of the saga)."""
        with _business_errors():
            self.services.screen(order_id, email, amount_cents)

    @activity.defn
    def charge(self, key: str, order_id: str, card_token: str, amount_cents: int) -> int:
        """Charge the order's card once per key."""
        with _business_errors():
            return self.services.charge(key, order_id, card_token, amount_cents)

    @activity.defn
    def refund(self, key: str, charge_key: str, order_id: str) -> int:
        """Refund the charge once (nothing if it never happened)."""
        with _business_errors():
            return self.services.refund(key, charge_key, order_id)

    @activity.defn
    def reserve(self, key: str, order_id: str, items: list[LineItem]) -> None:
        """Reserve the order's items once per key."""
        with _business_errors():
            self.services.reserve(key, order_id, items)

    @activity.defn
    def release(self, key: str, order_id: str) -> int:
        """Return the reservation's units to stock once."""
        with _business_errors():
            return self.services.release(key, order_id)

    @activity.defn
    def ship(self, key: str, order_id: str, address: Address) -> str:
        """Create the shipment once per key."""
        with _business_errors():
            return self.services.ship(key, order_id, address)

    @activity.defn
    def cancel_shipment(self, key: str, order_id: str) -> bool:
        """Cancel the shipment once."""
        with _business_errors():
            return self.services.cancel_shipment(key, order_id)

    @activity.defn
    def confirm(self, key: str, order_id: str, email: str) -> None:
        """Send the order confirmation once per key."""
        with _business_errors():
            self.services.confirm(key, order_id, email)
