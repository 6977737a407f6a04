"""Realistic orders and catalogs from Faker, reproducible from a seed."""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from faker import Faker

from ._types import DECLINED_CARD, SERVED_COUNTRIES, Address, LineItem, Order

_PRODUCT_WORDS = ("mug", "lamp", "kettle", "scarf", "notebook", "backpack", "candle", "tea")


@functools.lru_cache(maxsize=1)
def _faker() -> Faker:
    return Faker("en_US")


@dataclass(frozen=True)
class Product:
    """A catalog entry: SKU, price and the stock to start with."""

    sku: str
    unit_price_cents: int
    stock: int


def make_catalog(
    seed: int, size: int, *, prefix: str = "SKU", max_stock: int = 20
) -> list[Product]:
    """``size`` products with SKUs ``<prefix>-<word>-<n>``, prices and stock drawn from ``seed``."""
    rng = random.Random(seed)
    return [
        Product(
            sku=f"{prefix}-{rng.choice(_PRODUCT_WORDS)}-{n}",
            unit_price_cents=rng.randrange(199, 12_000),
            stock=rng.randrange(0, max_stock + 1),
        )
        for n in range(size)
    ]


def make_order(
    seed: int,
    catalog: Sequence[Product],
    *,
    order_id: str,
    max_items: int = 3,
    max_quantity: int = 4,
    declined: bool = False,
    country: str | None = None,
) -> Order:
    """A realistic order of catalog products for a Faker customer.

    ``declined`` gives the customer the card token the payment service
    declines; ``country`` overrides the (served) country of the address.
    """
    fake = _faker()
    fake.seed_instance(seed)
    rng = random.Random(seed)
    chosen = rng.sample(list(catalog), k=min(len(catalog), rng.randint(1, max_items)))
    items = [LineItem(p.sku, rng.randint(1, max_quantity), p.unit_price_cents) for p in chosen]
    return Order(
        order_id=order_id,
        customer=fake.name(),
        email=fake.email(),
        card_token=DECLINED_CARD if declined else f"tok_{fake.credit_card_number()}",
        address=Address(
            street=fake.street_address(),
            city=fake.city(),
            postcode=fake.postcode(),
            country=country or rng.choice(sorted(SERVED_COUNTRIES)),
        ),
        items=items,
    )
