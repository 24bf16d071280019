"""Numbered, append-only schema migrations.

Migration ``n`` is ``MIGRATIONS[n - 1]``: a tuple of SQL statements applied in one
``BEGIN IMMEDIATE`` transaction together with the ``schema_version`` bump, so a crash
leaves the database at the old version or the new one.  Never edit a released
migration: append a new one.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the initial schema.
    (
        # Small facts: origin, founding token hash, founded flag.
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
        # The log itself: canonical entry bytes, their leaf hash and the signed promise.
        """CREATE TABLE entries (
            idx INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            leaf BLOB NOT NULL,
            body BLOB NOT NULL,
            promise BLOB NOT NULL
        )""",
        # Perfect-subtree hashes (level, index) emitted by merkle.Frontier.append.
        """CREATE TABLE nodes (
            level INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (level, idx)
        ) WITHOUT ROWID""",
        """CREATE TABLE drafts (
            idx INTEGER PRIMARY KEY REFERENCES entries (idx),
            sender BLOB NOT NULL,
            sender_member TEXT NOT NULL,
            msg BLOB NOT NULL,
            channel TEXT NOT NULL,
            ct_hash BLOB NOT NULL,
            ct_len INTEGER NOT NULL,
            keys BLOB NOT NULL,
            UNIQUE (sender, msg)
        )""",
        "CREATE INDEX drafts_ct_hash ON drafts (ct_hash)",
        """CREATE TABLE receipts (
            idx INTEGER PRIMARY KEY REFERENCES entries (idx),
            draft_idx INTEGER NOT NULL REFERENCES drafts (idx),
            device BLOB NOT NULL,
            kind TEXT NOT NULL
        )""",
        "CREATE INDEX receipts_draft ON receipts (draft_idx, idx)",
        # Per-device notices; device = X'' marks a notice for everyone (roster changes).
        """CREATE TABLE inbox (
            device BLOB NOT NULL,
            idx INTEGER NOT NULL REFERENCES entries (idx),
            kind TEXT NOT NULL,
            PRIMARY KEY (device, idx)
        ) WITHOUT ROWID""",
        """CREATE TABLE checkpoints (
            size INTEGER PRIMARY KEY,
            root BLOB NOT NULL,
            note BLOB NOT NULL,
            time INTEGER NOT NULL
        )""",
        """CREATE TABLE cosignatures (
            size INTEGER NOT NULL REFERENCES checkpoints (size),
            name TEXT NOT NULL,
            line TEXT NOT NULL,
            time INTEGER NOT NULL,
            PRIMARY KEY (size, name)
        ) WITHOUT ROWID""",
        """CREATE TABLE tokens (
            hash BLOB PRIMARY KEY,
            device BLOB NOT NULL,
            expires INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE invitations (
            id TEXT PRIMARY KEY,
            token_hash BLOB NOT NULL,
            inviter TEXT NOT NULL,
            delegation TEXT,
            member TEXT NOT NULL,
            role TEXT NOT NULL,
            state TEXT NOT NULL,
            device BLOB,
            name TEXT,
            expires INTEGER NOT NULL,
            created INTEGER NOT NULL
        )""",
        "CREATE INDEX invitations_inviter ON invitations (inviter, created)",
        "CREATE INDEX invitations_member ON invitations (member, state)",
    ),
    # 2: what the ledger index looks up (server/storage/ledger_index.py), so the server
    # keeps no per-draft state in memory: a draft by leaf and by draft id (with its
    # version), and a narrow index on entries for counting them and finding the roster
    # changes at start-up without reading every body.  Existing drafts are backfilled
    # from their canonical bodies (``draft`` is the base64url text the body holds).
    (
        """CREATE TABLE lineage (
            idx INTEGER PRIMARY KEY REFERENCES drafts (idx),
            leaf BLOB NOT NULL,
            draft TEXT NOT NULL,
            version INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX lineage_leaf ON lineage (leaf)",
        "CREATE INDEX lineage_draft ON lineage (draft, idx)",
        "CREATE INDEX entries_kind ON entries (kind)",
        """INSERT INTO lineage (idx, leaf, draft, version)
            SELECT idx, leaf, json_extract(CAST(body AS TEXT), '$.draft'),
                json_extract(CAST(body AS TEXT), '$.version')
            FROM entries WHERE kind = 'draft'""",
    ),
    # 3: small ciphertexts live in the database, written in the transaction that logs
    # their draft (durable with it, no file and no fsyncs of their own); larger ones stay
    # files under blobs/.  A table of its own keeps the drafts rows narrow.
    (
        """CREATE TABLE ciphertexts (
            idx INTEGER PRIMARY KEY REFERENCES drafts (idx),
            data BLOB NOT NULL
        )""",
    ),
    # 4: annexes (server/services/annexes.py): an upload's declared shape, how many
    # chunks are durable, the annex hash once finished and the draft it is attached to;
    # each stored chunk's hash, so a resumed upload is checked chunk by chunk.  The
    # chunks themselves are files under blobs/annex/<id>/.
    (
        """CREATE TABLE annexes (
            id TEXT PRIMARY KEY,
            owner BLOB NOT NULL,
            length INTEGER NOT NULL,
            chunk INTEGER NOT NULL,
            chunks INTEGER NOT NULL,
            received INTEGER NOT NULL,
            hash BLOB,
            draft_idx INTEGER UNIQUE REFERENCES drafts (idx),
            created INTEGER NOT NULL
        )""",
        "CREATE INDEX annexes_owner ON annexes (owner, hash)",
        """CREATE TABLE annex_chunks (
            annex TEXT NOT NULL REFERENCES annexes (id),
            idx INTEGER NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (annex, idx)
        ) WITHOUT ROWID""",
    ),
)

LATEST = len(MIGRATIONS)


class SchemaError(Exception):
    """The database was written by a newer server, or its version table is damaged."""


def schema_version(conn: sqlite3.Connection) -> int:
    """The applied migration number (0 for a new database)."""
    if not sqlite_utils.Database(conn)["schema_version"].exists():
        return 0
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1 or not isinstance(rows[0][0], int):
        raise SchemaError("schema_version table is damaged")
    version: int = rows[0][0]
    return version


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every pending migration, each in its own transaction; return the version.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(conn)
            if version > LATEST:
                raise SchemaError(f"database schema {version} is newer than this server ({LATEST})")
            if version == LATEST:
                conn.execute("COMMIT")
                return version
            if version == 0:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (version + 1,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
