"""Reads of the relay tables: drafts, wrapped keys, receipts and the per-device inbox."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from server.storage.log import BROADCAST


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredDraft:
    """A logged draft as its recipients fetch it."""

    index: int
    header: bytes
    keys: bytes
    ct_hash: bytes
    ct_len: int
    sender_member: str


def draft_for_device_txn(conn: sqlite3.Connection, index: int, device: bytes) -> StoredDraft | None:
    """The draft at ``index`` if ``device`` is one of its recipients, else ``None``.

    Recipients are exactly the devices with a ``draft`` inbox notice for it, so one
    query answers both "does it exist" and "may this device see it" (alike, on purpose).
    """
    row = conn.execute(
        "SELECT e.body, d.keys, d.ct_hash, d.ct_len, d.sender_member"
        " FROM inbox i JOIN drafts d ON d.idx = i.idx JOIN entries e ON e.idx = i.idx"
        " WHERE i.device = ? AND i.idx = ? AND i.kind = 'draft'",
        (device, index),
    ).fetchone()
    if row is None:
        return None
    return StoredDraft(
        index=index,
        header=bytes(row[0]),
        keys=bytes(row[1]),
        ct_hash=bytes(row[2]),
        ct_len=int(row[3]),
        sender_member=str(row[4]),
    )


def draft_at_txn(conn: sqlite3.Connection, index: int) -> StoredDraft | None:
    """The draft at ``index`` whoever asks: for a device the log shows was granted it
    (the caller checks the grant first, see :mod:`protocol.grants`)."""
    row = conn.execute(
        "SELECT e.body, d.keys, d.ct_hash, d.ct_len, d.sender_member"
        " FROM drafts d JOIN entries e ON e.idx = d.idx WHERE d.idx = ?",
        (index,),
    ).fetchone()
    if row is None:
        return None
    return StoredDraft(
        index=index,
        header=bytes(row[0]),
        keys=bytes(row[1]),
        ct_hash=bytes(row[2]),
        ct_len=int(row[3]),
        sender_member=str(row[4]),
    )


def ciphertext_txn(conn: sqlite3.Connection, index: int) -> bytes | None:
    """The ciphertext of the draft at ``index`` if the database holds it (small drafts);
    ``None`` if it is a file under ``blobs/``.  No access check: callers check first."""
    row = conn.execute("SELECT data FROM ciphertexts WHERE idx = ?", (index,)).fetchone()
    return None if row is None else bytes(row[0])


def draft_audience_txn(
    conn: sqlite3.Connection, index: int, device: bytes
) -> tuple[str, bool] | None:
    """``(sender member, device is a recipient)`` of the draft at ``index``, if any."""
    row = conn.execute(
        "SELECT d.sender_member, EXISTS (SELECT 1 FROM inbox i"
        "  WHERE i.device = ? AND i.idx = d.idx AND i.kind = 'draft')"
        " FROM drafts d WHERE d.idx = ?",
        (device, index),
    ).fetchone()
    if row is None:
        return None
    return str(row[0]), bool(row[1])


def may_see_receipts_txn(
    conn: sqlite3.Connection, index: int, device: bytes, member: str, reader: bool
) -> bool:
    """Whether the draft at ``index`` exists and its receipts are for this caller: a
    recipient device, the sending member, or (``reader``) the mediator or an auditor.

    Existence must not leak through timing: for anyone but a reader (who may see every
    draft anyway) the answer comes from two lookups that find no row alike whether the
    draft does not exist or is not the caller's, the device's notice and the draft
    *sent by this member*, never from first finding the draft and then refusing it.
    """
    if reader:
        return conn.execute("SELECT 1 FROM drafts WHERE idx = ?", (index,)).fetchone() is not None
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM inbox WHERE device = ? AND idx = ? AND kind = 'draft')"
        " OR EXISTS (SELECT 1 FROM drafts WHERE idx = ? AND sender_member = ?)",
        (device, index, index, member),
    ).fetchone()
    return bool(row[0])


def receipts_for_draft_txn(conn: sqlite3.Connection, index: int) -> list[tuple[int, bytes]]:
    """``(index, receipt bytes)`` of every receipt logged for the draft at ``index``."""
    return [
        (int(idx), bytes(body))
        for idx, body in conn.execute(
            "SELECT r.idx, e.body FROM receipts r JOIN entries e ON e.idx = r.idx"
            " WHERE r.draft_idx = ? ORDER BY r.idx",
            (index,),
        )
    ]


def inbox_txn(
    conn: sqlite3.Connection, device: bytes, after: int, below: int, limit: int
) -> list[tuple[int, str]]:
    """Notices for ``device`` (and broadcast ones) with ``after < index < below``."""
    return [
        (int(idx), str(kind))
        for idx, kind in conn.execute(
            "SELECT idx, kind FROM inbox WHERE device IN (?, ?) AND idx > ? AND idx < ?"
            " ORDER BY idx LIMIT ?",
            (device, BROADCAST, after, below, limit),
        )
    ]


def ct_hash_referenced_txn(conn: sqlite3.Connection, ct_hash: bytes) -> bool:
    """Whether a logged draft names this ciphertext hash (its blob must be kept)."""
    return (
        conn.execute("SELECT 1 FROM drafts WHERE ct_hash = ? LIMIT 1", (ct_hash,)).fetchone()
        is not None
    )


def all_ct_hashes_txn(conn: sqlite3.Connection) -> set[bytes]:
    """Every ciphertext hash a logged draft names (start-up blob clean-up)."""
    return {bytes(h) for (h,) in conn.execute("SELECT DISTINCT ct_hash FROM drafts")}
