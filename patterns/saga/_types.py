"""Orders, their validation, and the business rules the example services apply."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

DECLINED_CARD = "tok_declined"
"""A card token the payment service always declines (a business failure)."""

SERVED_COUNTRIES: frozenset[str] = frozenset(
    {"AT", "AU", "BE", "CA", "CH", "DE", "DK", "ES", "FR", "GB", "IE", "IT", "NL", "SE", "US"}
)
"""ISO country codes the shipping service delivers to; any other address is not served."""

_COUNTRY = re.compile(r"^[A-Z]{2}$")


class InvalidOrderError(ValueError):
    """An order or a saga setting has a bad field; the message names it and how to fix it."""


@dataclass(frozen=True)
class LineItem:
    """One line of an order: ``quantity`` units of ``sku`` at ``unit_price_cents`` each."""

    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class Address:
    """A shipping address; ``country`` is an ISO 3166 alpha-2 code such as ``"FR"``."""

    street: str
    city: str
    postcode: str
    country: str


@dataclass(frozen=True)
class Order:
    """A customer's order: what to charge, reserve and ship.

    Orders are checked by :func:`validate_order` inside the workflow, before any
    side effect, so a bad order fails the workflow with a clear error.
    """

    order_id: str
    customer: str
    email: str
    card_token: str
    address: Address
    items: list[LineItem] = field(default_factory=list)

    @property
    def total_cents(self) -> int:
        """What the order costs: the sum of quantity times unit price."""
        return sum(item.quantity * item.unit_price_cents for item in self.items)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_order(order: Order) -> None:
    """Raise :class:`InvalidOrderError` naming the first bad field of ``order``.

    Checks what can be checked without the catalog: identity, items, quantities,
    prices and the address. Unknown SKUs are refused by the inventory service.
    """
    for name in ("order_id", "customer", "card_token"):
        if not isinstance(getattr(order, name), str) or not getattr(order, name).strip():
            raise InvalidOrderError(f"order.{name}={getattr(order, name)!r} must be non-empty text")
    if not isinstance(order.email, str) or "@" not in order.email:
        raise InvalidOrderError(
            f"order.email={order.email!r} is not an e-mail address; pass e.g. 'ann@example.com'"
        )
    if not order.items:
        raise InvalidOrderError("order.items is empty; an order needs at least one line item")
    for i, item in enumerate(order.items):
        where = f"order.items[{i}]"
        if not isinstance(item.sku, str) or not item.sku.strip():
            raise InvalidOrderError(f"{where}.sku={item.sku!r} must be a catalog SKU")
        if not _is_int(item.quantity) or item.quantity <= 0:
            raise InvalidOrderError(
                f"{where}.quantity={item.quantity!r} must be a positive whole number of units"
            )
        if not _is_int(item.unit_price_cents) or item.unit_price_cents <= 0:
            raise InvalidOrderError(
                f"{where}.unit_price_cents={item.unit_price_cents!r} must be a positive "
                "whole number of cents"
            )
    address = order.address
    for name in ("street", "city", "postcode"):
        value = getattr(address, name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidOrderError(f"order.address.{name}={value!r} must be non-empty text")
    if not isinstance(address.country, str) or not _COUNTRY.match(address.country):
        raise InvalidOrderError(
            f"order.address.country={address.country!r} must be an ISO 3166 alpha-2 code "
            "such as 'FR'"
        )


@dataclass(frozen=True)
class SagaSettings:
    """How hard the order saga retries, and how it compensates.

    ``step_attempts`` and ``compensation_attempts`` are Temporal's maximum
    attempts for each forward step and each compensation (>= 1). Steps after
    the pivot are always retried until they succeed. ``parallel_compensation``
    undoes all committed steps at once instead of last-in first-out;
    ``continue_on_error`` (the default) keeps compensating past a compensation
    that failed for good, and without it the rest are skipped (and reported).
    """

    step_attempts: int = 3
    compensation_attempts: int = 5
    retry_interval_ms: int = 10
    parallel_compensation: bool = False
    continue_on_error: bool = True

    def __post_init__(self) -> None:
        for name in ("step_attempts", "compensation_attempts", "retry_interval_ms"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise InvalidOrderError(f"SagaSettings.{name}={value!r} must be an integer >= 1")
        for name in ("parallel_compensation", "continue_on_error"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOrderError(
                    f"SagaSettings.{name}={getattr(self, name)!r} must be True or False"
                )


@dataclass(frozen=True)
class OrderKeys:
    """The idempotency keys of one order's operations, derived from its workflow id."""

    charge: str
    refund: str
    reserve: str
    release: str
    ship: str
    cancel: str
    confirm: str

    @classmethod
    def for_workflow(cls, workflow_id: str) -> OrderKeys:
        """Keys such as ``"<workflow_id>:charge"``: the same on every attempt and replay."""
        names = ("charge", "refund", "reserve", "release", "ship", "cancel", "confirm")
        return cls(**{name: f"{workflow_id}:{name}" for name in names})


@dataclass(frozen=True)
class OrderResult:
    """What a completed order saga returns."""

    order_id: str
    status: Literal["completed"]
    charged_cents: int
    shipment_key: str
    confirmation_key: str
