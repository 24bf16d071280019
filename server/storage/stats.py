"""Read-only queries behind the storage metrics (server/services/storage_stats.py)."""

from __future__ import annotations

import sqlite3


def latest_cosignature_lines_txn(conn: sqlite3.Connection) -> dict[str, str]:
    """Each witness's cosignature line on the largest checkpoint it cosigned (a witness
    never cosigns a smaller tree later, so that line holds its latest timestamp)."""
    rows = conn.execute(
        "SELECT c.name, c.line FROM cosignatures AS c "
        "WHERE c.size = (SELECT MAX(size) FROM cosignatures WHERE name = c.name)"
    )
    return {str(name): str(line) for name, line in rows}
