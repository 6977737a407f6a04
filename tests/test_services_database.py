"""A corrupt or missing services database is a clear error before anything is written."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from patterns._sqlite import ServiceDatabaseError
from patterns.breaker import Downstream
from patterns.saga import OrderServices


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "services.sqlite"
    path.write_text("these are somebody's notes, not a database\n")
    with pytest.raises(
        ServiceDatabaseError, match=r"is not a SQLite services database .* delete it"
    ):
        OrderServices(path)
    with pytest.raises(ServiceDatabaseError, match="is not a SQLite services database"):
        Downstream(path)
    assert path.read_text() == "these are somebody's notes, not a database\n"


def test_a_damaged_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "services.sqlite"
    OrderServices(path).stock_products([("SKU-1", 100, 5)])
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # keep the header, wreck every page
    path.write_bytes(bytes(data))
    with pytest.raises(ServiceDatabaseError, match=r"services database .* is unusable"):
        OrderServices(path)


def test_a_database_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "services.sqlite"
    with pytest.raises(ServiceDatabaseError, match=r"directory .*no-such-dir does not exist"):
        OrderServices(path)
    assert not path.parent.exists()


def test_a_good_database_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "services.sqlite"
    OrderServices(path).stock_products([("SKU-1", 100, 5)])
    assert OrderServices(path).stock("SKU-1") == 5
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_demonstration_reports_a_corrupt_database_and_exits(tmp_path: Path) -> None:
    (tmp_path / "saga").mkdir()
    (tmp_path / "saga" / "saga-services.sqlite").write_text("not a database")
    result = subprocess.run(
        [sys.executable, "-m", "patterns", "--only", "saga", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not a SQLite services database" in result.stderr
    assert "Traceback" not in result.stderr
