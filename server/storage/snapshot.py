"""Consistent copies of a live database, and the queries a backup needs.

``snapshot_db`` uses SQLite's online backup API in one step: the copy is made inside a
single read transaction on the source, so it is exactly the database as of one commit,
including whatever still sits in the WAL, while the server keeps writing (WAL readers
never block the writer).  Copying ``docket.db`` with ``cp`` instead loses every commit
that has not yet been checkpointed out of ``docket.db-wal``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.storage.db import BUSY_TIMEOUT_MS


def snapshot_db(source: Path, dest: Path) -> None:
    """Copy the database ``source`` (possibly in use) to the new file ``dest``.

    ``dest`` is left a self-contained file: no ``-wal`` beside it, in rollback-journal
    mode (the server switches it back to WAL when it opens it).
    """
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    try:
        src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
    finally:
        src.close()
    # The copied header says WAL like the source's; a connection opened on the copy sees
    # that and can switch the file to rollback-journal mode (header bytes 18-19 = 1).
    dst = sqlite3.connect(dest, isolation_level=None)
    try:
        dst.execute("PRAGMA journal_mode = DELETE")
    finally:
        dst.close()


def integrity_check(path: Path, *, limit: int = 10) -> list[str]:
    """The problems ``PRAGMA integrity_check`` finds in ``path`` (empty: sound)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
    except sqlite3.Error as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def blob_hashes_txn(conn: sqlite3.Connection) -> set[bytes]:
    """Ciphertext hashes of logged drafts whose bytes live under ``blobs/`` (not in the
    ``ciphertexts`` table)."""
    return {
        bytes(h)
        for (h,) in conn.execute(
            "SELECT DISTINCT d.ct_hash FROM drafts d "
            "LEFT JOIN ciphertexts c ON c.idx = d.idx WHERE c.idx IS NULL"
        )
    }
