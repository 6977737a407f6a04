"""The embedded SQLite database that the example services keep their state in."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

_SQLITE_MAGIC = b"SQLite format 3\x00"


class ServiceDatabaseError(RuntimeError):
    """The services database file is missing, unreadable or not a database."""


def open_database(path: str | Path, schema: str, *, create: bool = True) -> sqlite3.Connection:
    """Open (and with ``create``, initialise) a services database at ``path``.

    Raises :class:`ServiceDatabaseError`, naming the file and how to fix it,
    when the file is missing (and ``create`` is false), is not SQLite, or is
    corrupt. The connection autocommits; group writes with :func:`transaction`.
    """
    file = Path(path)
    if not file.exists():
        if not create:
            raise ServiceDatabaseError(
                f"services database {file} does not exist; create it first or pass another path"
            )
        if not file.parent.is_dir():
            raise ServiceDatabaseError(
                f"services database directory {file.parent} does not exist; create it or pass "
                "another path"
            )
    elif file.stat().st_size:
        with file.open("rb") as head:
            if head.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                raise ServiceDatabaseError(
                    f"{file} is not a SQLite services database (corrupt or another file); "
                    "delete it or pass another path"
                )
    try:
        conn = sqlite3.connect(file, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
        conn.executescript(schema)
    except sqlite3.DatabaseError as err:
        raise ServiceDatabaseError(
            f"services database {file} is unusable ({err}); delete it or pass another path"
        ) from None
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
