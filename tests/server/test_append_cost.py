"""Appending to the log costs the same however long the log already is.

Counted in SQLite virtual-machine steps (a progress handler called every step), not in
seconds, so the test is exact and independent of the machine's load.  It once failed:
every commit ran ``count(*)`` over the whole entries table.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from server.storage.db import connect, run_txn
from server.storage.log import AppendRecord, StoreMismatchError, _insert_rows, append_batch_txn
from server.storage.migrations import migrate


def _record(index: int) -> AppendRecord:
    leaf = index.to_bytes(32, "big")
    return AppendRecord(
        index=index, kind="draft", leaf=leaf, body=b"{}", promise=b"{}", nodes=((0, index, leaf),)
    )


def _fill(conn: sqlite3.Connection, size: int) -> None:
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO entries (idx, kind, leaf, body, promise)"
        " VALUES (?, 'draft', ?, x'7b7d', x'7b7d')",
        [(i, i.to_bytes(32, "big")) for i in range(size)],
    )
    conn.execute("COMMIT")


def _steps_to_append_one(conn: sqlite3.Connection, index: int) -> int:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        run_txn(conn, append_batch_txn, [_record(index)])
    finally:
        conn.set_progress_handler(None, 1)
    return steps


def test_append_cost_does_not_grow_with_the_log(tmp_path: Path) -> None:
    small = connect(tmp_path / "small.db")
    large = connect(tmp_path / "large.db")
    for conn in (small, large):
        migrate(conn)
    _fill(small, 10)
    _fill(large, 20_000)
    cost_small = _steps_to_append_one(small, 10)
    cost_large = _steps_to_append_one(large, 20_000)
    # A scan of 20,000 rows would cost tens of thousands of steps more.
    assert cost_large <= cost_small + 200, (cost_small, cost_large)
    for conn in (small, large):
        conn.close()


def test_a_batch_must_follow_the_stored_log(tmp_path: Path) -> None:
    conn = connect(tmp_path / "d.db")
    migrate(conn)
    _fill(conn, 5)
    for wrong in (4, 6):
        with pytest.raises(StoreMismatchError, match="does not follow"):
            run_txn(conn, append_batch_txn, [_record(wrong)])
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 5
    conn.close()


@pytest.mark.parametrize("count", [0, 1, 3, 64, 513, 1500])
def test_many_rows_per_statement_write_every_row_in_order(count: int) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, a, b, c, d, e, f, g)")
    rows = [(i, f"r{i}", i * 2, b"x" * (i % 5), None, -i, 0.5, "") for i in range(count)]
    _insert_rows(conn, "INSERT INTO t (n, a, b, c, d, e, f, g)", rows)
    assert conn.execute("SELECT * FROM t ORDER BY rowid").fetchall() == rows


def test_a_failing_row_fails_the_whole_append(tmp_path: Path) -> None:
    conn = connect(tmp_path / "d.db")
    migrate(conn)
    _fill(conn, 3)
    bad = [_record(3), _record(4), dataclasses.replace(_record(5), nodes=((0, 4, bytes(32)),))]
    with pytest.raises(sqlite3.IntegrityError):
        run_txn(conn, append_batch_txn, bad)  # node (0, 4) written twice
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM nodes").fetchone()[0] == 0
    conn.close()
