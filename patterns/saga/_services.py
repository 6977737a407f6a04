"""Payments, inventory and shipping services keeping their state in one SQLite file.

Every operation is idempotent by a key the caller derives deterministically:
repeating a call with the same key changes nothing and returns the first
call's answer. Undoing an operation that never happened records its key as
void, so a late or duplicated original is refused instead of committing
after its compensation. Every call is journaled (``applied``, ``replayed`` or
``noop``) in call order, so the order compensations ran in can be read back.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._sqlite import open_database, transaction
from ._types import DECLINED_CARD, SERVED_COUNTRIES, Address, LineItem

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY, unit_price_cents INTEGER NOT NULL, stock INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
    key TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    key TEXT PRIMARY KEY, charge_key TEXT NOT NULL, order_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    key TEXT NOT NULL, sku TEXT NOT NULL, order_id TEXT NOT NULL, quantity INTEGER NOT NULL,
    released INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key, sku)
);
CREATE TABLE IF NOT EXISTS shipments (
    key TEXT PRIMARY KEY, order_id TEXT NOT NULL, country TEXT NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS confirmations (
    key TEXT PRIMARY KEY, order_id TEXT NOT NULL, email TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS voided (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, key TEXT NOT NULL,
    order_id TEXT NOT NULL, effect TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_order ON journal (order_id, seq);
"""


class BusinessError(Exception):
    """A business rule refused an operation; retrying cannot help."""


class PaymentDeclined(BusinessError):
    """The card was declined."""


class FraudSuspected(BusinessError):
    """The fraud screen refused the order (v2 of the saga screens before charging)."""


FRAUD_LIMIT_CENTS = 500_000
"""Orders above this total are refused by the fraud screen."""


class OutOfStock(BusinessError):
    """A SKU has fewer units in stock than the order wants."""


class UnknownSku(BusinessError):
    """A SKU is not in the catalog."""


class AddressNotServed(BusinessError):
    """The shipping service does not deliver to the address's country."""


class OperationVoided(BusinessError):
    """The operation's key was already undone; it must not happen any more."""


@dataclass(frozen=True)
class JournalEntry:
    """One journaled service call."""

    seq: int
    op: str
    key: str
    effect: str


@dataclass(frozen=True)
class OrderLedger:
    """Everything the services hold about one order."""

    order_id: str
    charged_cents: int
    refunded_cents: int
    reserved: dict[str, int]
    """Units still reserved (not released), by SKU."""
    shipments: dict[str, str]
    """Shipment status by key: ``created`` or ``cancelled``."""
    confirmations: int
    journal: list[JournalEntry]

    @property
    def net_charge_cents(self) -> int:
        """Charged minus refunded."""
        return self.charged_cents - self.refunded_cents

    @property
    def live_shipments(self) -> int:
        """Shipments not cancelled."""
        return sum(1 for status in self.shipments.values() if status != "cancelled")


class OrderServices:
    """The payments, inventory and shipping services of one SQLite file.

    Safe to call from many threads: each thread gets its own connection and
    every operation is one ``BEGIN IMMEDIATE`` transaction.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connection()  # create the schema (and fail early on a bad file)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the services database."""
        return self._connection()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_database(self.path, _SCHEMA)
            self._local.conn = conn
        return conn

    @staticmethod
    def _journal(conn: sqlite3.Connection, op: str, key: str, order_id: str, effect: str) -> None:
        conn.execute(
            "INSERT INTO journal (op, key, order_id, effect) VALUES (?, ?, ?, ?)",
            (op, key, order_id, effect),
        )

    @staticmethod
    def _voided(conn: sqlite3.Connection, key: str) -> bool:
        return conn.execute("SELECT 1 FROM voided WHERE key = ?", (key,)).fetchone() is not None

    # ------------------------------------------------------------------ catalog

    def stock_products(self, products: Iterable[tuple[str, int, int]]) -> None:
        """Add ``(sku, unit_price_cents, stock)`` products, or set their price and stock."""
        with transaction(self._connection()) as conn:
            conn.executemany(
                "INSERT INTO products (sku, unit_price_cents, stock) VALUES (?, ?, ?) "
                "ON CONFLICT (sku) DO UPDATE SET unit_price_cents = excluded.unit_price_cents, "
                "stock = excluded.stock",
                list(products),
            )

    def stock(self, sku: str) -> int:
        """Units of ``sku`` available (not reserved)."""
        row = self._connection().execute("SELECT stock FROM products WHERE sku = ?", (sku,))
        found = row.fetchone()
        if found is None:
            raise UnknownSku(f"SKU {sku!r} is not in the catalog")
        return int(found[0])

    def check_catalog(self, skus: Sequence[str]) -> None:
        """Raise :class:`UnknownSku` naming the first SKU not in the catalog."""
        conn = self._connection()
        for i, sku in enumerate(skus):
            if conn.execute("SELECT 1 FROM products WHERE sku = ?", (sku,)).fetchone() is None:
                raise UnknownSku(
                    f"order.items[{i}].sku={sku!r} is not in the catalog; order a stocked SKU"
                )

    def screen(self, order_id: str, email: str, amount_cents: int) -> None:
        """Raise :class:`FraudSuspected` for an order over :data:`FRAUD_LIMIT_CENTS` (read-only)."""
        if amount_cents > FRAUD_LIMIT_CENTS:
            raise FraudSuspected(
                f"order {order_id} for {email}: {amount_cents / 100:.2f} exceeds the fraud "
                f"screen's limit of {FRAUD_LIMIT_CENTS / 100:.2f}; split the order"
            )

    # ------------------------------------------------------------------ payments

    def charge(self, key: str, order_id: str, card_token: str, amount_cents: int) -> int:
        """Charge ``amount_cents`` once per ``key``; returns the amount charged."""
        with transaction(self._connection()) as conn:
            row = conn.execute("SELECT amount_cents FROM charges WHERE key = ?", (key,)).fetchone()
            if row is not None:
                self._journal(conn, "charge", key, order_id, "replayed")
                return int(row[0])
            if self._voided(conn, key):
                raise OperationVoided(f"charge {key} was already refunded; not charging")
            if card_token == DECLINED_CARD:
                raise PaymentDeclined(f"card {card_token!r} was declined for order {order_id}")
            conn.execute(
                "INSERT INTO charges (key, order_id, amount_cents) VALUES (?, ?, ?)",
                (key, order_id, amount_cents),
            )
            self._journal(conn, "charge", key, order_id, "applied")
        return amount_cents

    def refund(self, key: str, charge_key: str, order_id: str) -> int:
        """Refund the charge ``charge_key`` once; returns the amount refunded (0 if none)."""
        with transaction(self._connection()) as conn:
            row = conn.execute("SELECT amount_cents FROM refunds WHERE key = ?", (key,)).fetchone()
            if row is not None:
                self._journal(conn, "refund", key, order_id, "replayed")
                return int(row[0])
            charge = conn.execute(
                "SELECT amount_cents FROM charges WHERE key = ?", (charge_key,)
            ).fetchone()
            if charge is None:
                conn.execute("INSERT OR IGNORE INTO voided (key) VALUES (?)", (charge_key,))
                self._journal(conn, "refund", key, order_id, "noop")
                return 0
            conn.execute(
                "INSERT INTO refunds (key, charge_key, order_id, amount_cents) VALUES (?, ?, ?, ?)",
                (key, charge_key, order_id, int(charge[0])),
            )
            self._journal(conn, "refund", key, order_id, "applied")
            return int(charge[0])

    # ------------------------------------------------------------------ inventory

    def reserve(self, key: str, order_id: str, items: Sequence[LineItem]) -> None:
        """Reserve every item's quantity once per ``key``, all or nothing."""
        with transaction(self._connection()) as conn:
            if conn.execute("SELECT 1 FROM reservations WHERE key = ?", (key,)).fetchone():
                self._journal(conn, "reserve", key, order_id, "replayed")
                return
            if self._voided(conn, key):
                raise OperationVoided(f"reservation {key} was already released; not reserving")
            wanted: dict[str, int] = {}
            for item in items:
                wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity
            for sku, quantity in wanted.items():
                row = conn.execute("SELECT stock FROM products WHERE sku = ?", (sku,)).fetchone()
                if row is None:
                    raise UnknownSku(f"SKU {sku!r} is not in the catalog")
                if row[0] < quantity:
                    raise OutOfStock(
                        f"SKU {sku!r} has {row[0]} units in stock, order wants {quantity}"
                    )
            for sku, quantity in wanted.items():
                conn.execute("UPDATE products SET stock = stock - ? WHERE sku = ?", (quantity, sku))
                conn.execute(
                    "INSERT INTO reservations (key, sku, order_id, quantity) VALUES (?, ?, ?, ?)",
                    (key, sku, order_id, quantity),
                )
            self._journal(conn, "reserve", key, order_id, "applied")

    def release(self, key: str, order_id: str) -> int:
        """Return the units reserved under ``key`` to stock once; returns the units released."""
        with transaction(self._connection()) as conn:
            rows = conn.execute(
                "SELECT sku, quantity, released FROM reservations WHERE key = ?", (key,)
            ).fetchall()
            if not rows:
                conn.execute("INSERT OR IGNORE INTO voided (key) VALUES (?)", (key,))
                self._journal(conn, "release", key, order_id, "noop")
                return 0
            if rows[0][2]:
                self._journal(conn, "release", key, order_id, "replayed")
                return sum(int(r[1]) for r in rows)
            for sku, quantity, _ in rows:
                conn.execute("UPDATE products SET stock = stock + ? WHERE sku = ?", (quantity, sku))
            conn.execute("UPDATE reservations SET released = 1 WHERE key = ?", (key,))
            self._journal(conn, "release", key, order_id, "applied")
            return sum(int(r[1]) for r in rows)

    # ------------------------------------------------------------------ shipping

    def ship(self, key: str, order_id: str, address: Address) -> str:
        """Create one shipment per ``key``; returns its key."""
        with transaction(self._connection()) as conn:
            if conn.execute("SELECT 1 FROM shipments WHERE key = ?", (key,)).fetchone():
                self._journal(conn, "ship", key, order_id, "replayed")
                return key
            if self._voided(conn, key):
                raise OperationVoided(f"shipment {key} was already cancelled; not shipping")
            if address.country not in SERVED_COUNTRIES:
                raise AddressNotServed(
                    f"order.address.country={address.country!r} is not served; "
                    f"we ship to {', '.join(sorted(SERVED_COUNTRIES))}"
                )
            conn.execute(
                "INSERT INTO shipments (key, order_id, country, status) "
                "VALUES (?, ?, ?, 'created')",
                (key, order_id, address.country),
            )
            self._journal(conn, "ship", key, order_id, "applied")
        return key

    def cancel_shipment(self, key: str, order_id: str) -> bool:
        """Cancel the shipment ``key`` once; returns whether there was one."""
        with transaction(self._connection()) as conn:
            row = conn.execute("SELECT status FROM shipments WHERE key = ?", (key,)).fetchone()
            if row is None:
                conn.execute("INSERT OR IGNORE INTO voided (key) VALUES (?)", (key,))
                self._journal(conn, "cancel_shipment", key, order_id, "noop")
                return False
            if row[0] == "cancelled":
                self._journal(conn, "cancel_shipment", key, order_id, "replayed")
                return True
            conn.execute("UPDATE shipments SET status = 'cancelled' WHERE key = ?", (key,))
            self._journal(conn, "cancel_shipment", key, order_id, "applied")
            return True

    def confirm(self, key: str, order_id: str, email: str) -> None:
        """Record one confirmation notice per ``key``."""
        with transaction(self._connection()) as conn:
            if conn.execute("SELECT 1 FROM confirmations WHERE key = ?", (key,)).fetchone():
                self._journal(conn, "confirm", key, order_id, "replayed")
                return
            conn.execute(
                "INSERT INTO confirmations (key, order_id, email) VALUES (?, ?, ?)",
                (key, order_id, email),
            )
            self._journal(conn, "confirm", key, order_id, "applied")

    # ------------------------------------------------------------------ reading back

    def ledger(self, order_id: str) -> OrderLedger:
        """Everything the services hold about ``order_id``, read in one snapshot."""
        conn = self._connection()
        with transaction(conn):

            def total(table: str) -> int:
                sql = f"SELECT COALESCE(SUM(amount_cents), 0) FROM {table} WHERE order_id = ?"
                return int(conn.execute(sql, (order_id,)).fetchone()[0])

            reserved = dict(
                conn.execute(
                    "SELECT sku, SUM(quantity) FROM reservations "
                    "WHERE order_id = ? AND released = 0 GROUP BY sku",
                    (order_id,),
                ).fetchall()
            )
            shipments = dict(
                conn.execute(
                    "SELECT key, status FROM shipments WHERE order_id = ?", (order_id,)
                ).fetchall()
            )
            confirmations = conn.execute(
                "SELECT COUNT(*) FROM confirmations WHERE order_id = ?", (order_id,)
            ).fetchone()[0]
            journal = [
                JournalEntry(*row)
                for row in conn.execute(
                    "SELECT seq, op, key, effect FROM journal WHERE order_id = ? ORDER BY seq",
                    (order_id,),
                )
            ]
            return OrderLedger(
                order_id=order_id,
                charged_cents=total("charges"),
                refunded_cents=total("refunds"),
                reserved=reserved,
                shipments=shipments,
                confirmations=int(confirmations),
                journal=journal,
            )
