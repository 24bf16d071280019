"""The witness's durable state: per origin, the last checkpoint it cosigned.

One SQLite file (``witness.db``) in WAL mode with ``synchronous=FULL``: a transaction
that returned from ``COMMIT`` survives a crash or power loss.  Every function runs on
the service's single database thread; writers open ``BEGIN IMMEDIATE`` themselves and
re-read the state inside the transaction, so a check and the write it allows are one
atomic step (the race the tlog-witness spec warns about cannot happen).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
MAX_REFUSED = 100
"""Refused checkpoints kept per origin (log-signed evidence of a fork or rollback)."""

_SCHEMA = """
CREATE TABLE cosigned (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE TABLE refused (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    note BLOB NOT NULL,
    reason TEXT NOT NULL,
    timestamp INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cosigned:
    """The last checkpoint cosigned for one origin: the note includes our cosignature."""

    origin: str
    size: int
    root: bytes
    note: bytes
    timestamp: int


def connect(path: Path) -> sqlite3.Connection:
    """Open (and create or migrate) the state file; autocommit, transactions explicit."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    elif version != SCHEMA_VERSION:
        conn.close()
        raise sqlite3.DatabaseError(f"{path}: unknown schema version {version}")
    return conn


def cosigned_txn(conn: sqlite3.Connection, origin: str) -> Cosigned | None:
    """The stored state for ``origin`` (inside the caller's transaction)."""
    row = conn.execute(
        "SELECT size, root, note, timestamp FROM cosigned WHERE origin = ?", (origin,)
    ).fetchone()
    if row is None:
        return None
    size, root, note, timestamp = row
    return Cosigned(
        origin=origin, size=int(size), root=bytes(root), note=bytes(note), timestamp=int(timestamp)
    )


def put_cosigned_txn(conn: sqlite3.Connection, state: Cosigned) -> None:
    conn.execute(
        "INSERT INTO cosigned (origin, size, root, note, timestamp) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
        "note = excluded.note, timestamp = excluded.timestamp",
        (state.origin, state.size, state.root, state.note, state.timestamp),
    )


def add_refused_txn(
    conn: sqlite3.Connection, origin: str, size: int, note: bytes, *, reason: str, timestamp: int
) -> None:
    """Keep a log-signed checkpoint that was refused, the newest ``MAX_REFUSED``."""
    conn.execute(
        "INSERT INTO refused (origin, size, note, reason, timestamp) VALUES (?, ?, ?, ?, ?)",
        (origin, size, note, reason, timestamp),
    )
    conn.execute(
        "DELETE FROM refused WHERE origin = ? AND id NOT IN "
        "(SELECT id FROM refused WHERE origin = ? ORDER BY id DESC LIMIT ?)",
        (origin, origin, MAX_REFUSED),
    )


def refused_txn(conn: sqlite3.Connection, origin: str) -> list[tuple[int, str]]:
    """(size, reason) of the refused checkpoints kept for ``origin``, oldest first."""
    return [
        (int(size), str(reason))
        for size, reason in conn.execute(
            "SELECT size, reason FROM refused WHERE origin = ? ORDER BY id", (origin,)
        )
    ]
