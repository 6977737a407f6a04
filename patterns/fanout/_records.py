"""Customer records to validate and enrich, generated deterministically with Faker.

A record is a pure function of ``(seed, index)``: any worker regenerates any
slice of a batch without the records travelling through Temporal. Like a real
CRM export, the data is dirty: about 4 % of records are invalid (a malformed
email, an under-age birth date, an unsupported country) and about 5 % repeat an
earlier customer's details under a new record id.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from faker import Faker

from ._types import record_id

AS_OF = date(2025, 1, 1)
"""The reference date ages are computed against (fixed, so results are reproducible)."""

REGIONS = {
    "US": "Americas",
    "CA": "Americas",
    "BR": "Americas",
    "GB": "EMEA",
    "DE": "EMEA",
    "FR": "EMEA",
    "NG": "EMEA",
    "JP": "APAC",
    "IN": "APAC",
    "AU": "APAC",
}
"""Supported countries and the sales region each belongs to."""

INVALID_SHARE = 0.04
"""Share of records corrupted so that validation rejects them."""

DUPLICATE_SHARE = 0.05
"""Share of records that repeat an earlier customer's details."""


@dataclass(frozen=True)
class Customer:
    """One raw customer record."""

    record_id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    city: str
    country: str
    birth_date: date
    annual_spend: int


@dataclass(frozen=True)
class EnrichedCustomer:
    """A validated customer with derived fields."""

    record_id: str
    full_name: str
    email: str
    email_domain: str
    country: str
    region: str
    age: int
    tier: str

    def fingerprint(self) -> str:
        """A digest of the customer's details, without the record id."""
        text = "|".join((self.full_name, self.email, self.country, str(self.age), self.tier))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _draw(seed: int, index: int, purpose: str) -> int:
    digest = hashlib.sha256(f"{seed}/{index}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _unit(seed: int, index: int, purpose: str) -> float:
    return _draw(seed, index, purpose) / 2.0**64


@lru_cache(maxsize=1)
def _faker() -> Faker:
    return Faker("en_US")


def _person_index(seed: int, index: int) -> int:
    """The index whose customer details record ``index`` carries (itself unless a duplicate)."""
    if index > 0 and _unit(seed, index, "duplicate") < DUPLICATE_SHARE:
        return _draw(seed, index, "duplicate-of") % index
    return index


def generate_customer(seed: int, index: int) -> Customer:
    """The customer record at ``index`` of the batch generated from ``seed``."""
    fake = _faker()
    fake.seed_instance(_draw(seed, _person_index(seed, index), "person"))
    first, last = fake.first_name(), fake.last_name()
    customer = Customer(
        record_id=record_id(index),
        first_name=first,
        last_name=last,
        email=f"{first}.{last}@{fake.free_email_domain()}".lower(),
        phone=fake.numerify("+1-###-###-####"),
        city=fake.city(),
        country=fake.random_element(tuple(REGIONS)),
        birth_date=fake.date_between_dates(date(1935, 1, 1), date(2006, 12, 31)),
        annual_spend=fake.random_int(0, 25_000),
    )
    if _unit(seed, index, "invalid") < INVALID_SHARE:
        return _corrupt(customer, _draw(seed, index, "corruption") % 3)
    return customer


def _corrupt(customer: Customer, how: int) -> Customer:
    fields = dict(customer.__dict__)
    if how == 0:
        fields["email"] = customer.email.replace("@", " at ")
    elif how == 1:
        fields["birth_date"] = date(AS_OF.year - 15, customer.birth_date.month, 1)
    else:
        fields["country"] = "ZZ"
    return Customer(**fields)


def _age(born: date) -> int:
    return AS_OF.year - born.year - ((AS_OF.month, AS_OF.day) < (born.month, born.day))


def validate(customer: Customer) -> str | None:
    """Why ``customer`` is invalid, or ``None``. An invalid record never becomes valid on retry."""
    local, at, domain = customer.email.partition("@")
    if not at or not local or "." not in domain or " " in customer.email:
        return f"email {customer.email!r} is not a valid address"
    if _age(customer.birth_date) < 18:
        return f"birth_date {customer.birth_date.isoformat()} makes the customer under 18"
    if customer.country not in REGIONS:
        return f"country {customer.country!r} is not supported"
    return None


def enrich(customer: Customer) -> EnrichedCustomer:
    """Derive region, age, tier and the normalised email of a valid customer."""
    spend = customer.annual_spend
    tier = "gold" if spend >= 15_000 else "silver" if spend >= 5_000 else "bronze"
    return EnrichedCustomer(
        record_id=customer.record_id,
        full_name=f"{customer.first_name} {customer.last_name}",
        email=customer.email.lower(),
        email_domain=customer.email.partition("@")[2],
        country=customer.country,
        region=REGIONS[customer.country],
        age=_age(customer.birth_date),
        tier=tier,
    )


async def process_record(
    seed: int, index: int, io_seconds: float
) -> EnrichedCustomer | tuple[str, str]:
    """Generate, validate and enrich one record, with ``io_seconds`` of simulated I/O.

    Returns the enriched customer, or ``(record_id, reason)`` for an invalid record.
    """
    customer = generate_customer(seed, index)
    reason = validate(customer)
    if reason is not None:
        return customer.record_id, reason
    enriched = enrich(customer)
    if io_seconds:
        await asyncio.sleep(io_seconds)
    return enriched


def invalid_records(seed: int, start: int, end: int) -> dict[str, str]:
    """The invalid records among ``[start, end)`` with their reasons: the oracle for a batch."""
    out = {}
    for index in range(start, end):
        customer = generate_customer(seed, index)
        reason = validate(customer)
        if reason is not None:
            out[customer.record_id] = reason
    return out
