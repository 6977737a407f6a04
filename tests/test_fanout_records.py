"""Faker customer records: deterministic, dirty like real exports, validated and enriched."""

from __future__ import annotations

import asyncio

from patterns.fanout import (
    EnrichedCustomer,
    enrich,
    generate_customer,
    invalid_records,
    process_record,
    validate,
)
from patterns.fanout._records import _person_index


def test_records_are_a_pure_function_of_seed_and_index() -> None:
    assert generate_customer(1, 17) == generate_customer(1, 17)
    assert generate_customer(1, 17) != generate_customer(2, 17)
    assert generate_customer(1, 17).record_id == "cust-0000017"


def test_some_records_repeat_an_earlier_customer_under_a_new_id() -> None:
    copies = [i for i in range(400) if _person_index(3, i) != i]
    assert copies
    index = next(
        i
        for i in copies
        if validate(generate_customer(3, i)) is None
        and validate(generate_customer(3, _person_index(3, i))) is None
    )
    copy, original = generate_customer(3, index), generate_customer(3, _person_index(3, index))
    assert copy.record_id != original.record_id
    assert enrich(copy).fingerprint() == enrich(original).fingerprint()


def test_invalid_records_carry_a_reason_naming_the_bad_field() -> None:
    reasons = list(invalid_records(5, 0, 1000).values())
    assert 10 <= len(reasons) <= 80
    assert all(r.split()[0] in {"email", "birth_date", "country"} for r in reasons)
    assert {r.split()[0] for r in reasons} == {"email", "birth_date", "country"}


def test_processing_enriches_valid_records_and_reports_invalid_ones() -> None:
    invalid = invalid_records(5, 0, 200)
    for index in range(200):
        outcome = asyncio.run(process_record(5, index, 0))
        customer = generate_customer(5, index)
        if customer.record_id in invalid:
            assert outcome == (customer.record_id, invalid[customer.record_id])
        else:
            assert isinstance(outcome, EnrichedCustomer)
            assert outcome.age >= 18 and outcome.region and "@" in outcome.email
