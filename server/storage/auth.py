"""Server facts, bearer tokens and invitations."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

# --- meta ------------------------------------------------------------------------------


def get_meta_txn(conn: sqlite3.Connection, key: str) -> bytes | None:
    """A stored fact (``origin``, ``founding_token``, ``founded``)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    value = row[0]
    return str(value).encode() if isinstance(value, (int, str)) else bytes(value)


def set_meta_txn(conn: sqlite3.Connection, key: str, value: bytes) -> None:
    """Store (or replace) a fact."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


# --- bearer tokens -----------------------------------------------------------------------


HIGH_WATER = "clock_high_water"
"""Meta key: the latest server time at which a token was issued (ms, decimal)."""


def insert_token_txn(
    conn: sqlite3.Connection, token_hash: bytes, device: bytes, expires: int, now: int
) -> None:
    """Store SHA-256 of a new token; expired tokens are swept on the way.

    ``now`` is also kept as the clock's high-water mark, so that a clock set back while
    the server is stopped cannot revive expired tokens at the next start.
    """
    conn.execute("DELETE FROM tokens WHERE expires <= ?", (now,))
    conn.execute(
        "INSERT INTO tokens (hash, device, expires) VALUES (?, ?, ?)",
        (token_hash, device, expires),
    )
    previous = get_meta_txn(conn, HIGH_WATER)
    if previous is None or not previous.isdigit() or int(previous) < now:
        set_meta_txn(conn, HIGH_WATER, str(now).encode())


def high_water_txn(conn: sqlite3.Connection) -> int:
    """The stored high-water mark (0 if none)."""
    value = get_meta_txn(conn, HIGH_WATER)
    return int(value) if value is not None and value.isdigit() else 0


def delete_token_txn(conn: sqlite3.Connection, token_hash: bytes) -> None:
    """Revoke one token (logout, rotation)."""
    conn.execute("DELETE FROM tokens WHERE hash = ?", (token_hash,))


def delete_expired_tokens_txn(conn: sqlite3.Connection, now: int) -> int:
    """Delete every token expired at ``now`` and keep ``now`` as the high-water mark;
    how many tokens were deleted."""
    deleted = int(conn.execute("DELETE FROM tokens WHERE expires <= ?", (now,)).rowcount)
    previous = get_meta_txn(conn, HIGH_WATER)
    if previous is None or not previous.isdigit() or int(previous) < now:
        set_meta_txn(conn, HIGH_WATER, str(now).encode())
    return deleted


def live_tokens_txn(conn: sqlite3.Connection, now: int) -> list[tuple[bytes, bytes, int]]:
    """``(hash, device, expires)`` of every token still valid at ``now``."""
    return [
        (bytes(h), bytes(d), int(e))
        for h, d, e in conn.execute(
            "SELECT hash, device, expires FROM tokens WHERE expires > ?", (now,)
        )
    ]


# --- invitations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InvitationRow:
    """One invitation as stored (only the token's hash is kept)."""

    id: str
    token_hash: bytes
    inviter: str
    delegation: str | None
    member: str
    role: str
    state: str
    device: bytes | None
    """Canonical JSON of the accepted device's public keys."""
    name: str | None
    expires: int
    created: int


_COLUMNS = (
    "id, token_hash, inviter, delegation, member, role, state, device, name, expires, created"
)


def _invitation(row: tuple[object, ...]) -> InvitationRow:
    (id_, token_hash, inviter, delegation, member, role, state, device, name, expires, created) = (
        row
    )
    return InvitationRow(
        id=str(id_),
        token_hash=bytes(token_hash),  # type: ignore[call-overload]
        inviter=str(inviter),
        delegation=None if delegation is None else str(delegation),
        member=str(member),
        role=str(role),
        state=str(state),
        device=None if device is None else bytes(device),  # type: ignore[call-overload]
        name=None if name is None else str(name),
        expires=int(expires),  # type: ignore[call-overload]
        created=int(created),  # type: ignore[call-overload]
    )


def insert_invitation_txn(conn: sqlite3.Connection, row: InvitationRow) -> None:
    """Store a new invitation."""
    conn.execute(
        f"INSERT INTO invitations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            row.id,
            row.token_hash,
            row.inviter,
            row.delegation,
            row.member,
            row.role,
            row.state,
            row.device,
            row.name,
            row.expires,
            row.created,
        ),
    )


def invitation_txn(conn: sqlite3.Connection, invitation_id: str) -> InvitationRow | None:
    """One invitation by id."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM invitations WHERE id = ?",  # noqa: S608
        (invitation_id,),
    ).fetchone()
    return None if row is None else _invitation(row)


def invitations_by_txn(conn: sqlite3.Connection, inviter: str) -> list[InvitationRow]:
    """Invitations created by member ``inviter``, oldest first."""
    return [
        _invitation(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM invitations WHERE inviter = ? ORDER BY created, id",  # noqa: S608
            (inviter,),
        )
    ]


def accept_invitation_txn(
    conn: sqlite3.Connection, invitation_id: str, device: bytes, name: str
) -> bool:
    """Record the invitee's device keys if the invitation is still open."""
    cur = conn.execute(
        "UPDATE invitations SET state = 'accepted', device = ?, name = ?"
        " WHERE id = ? AND state = 'open'",
        (device, name, invitation_id),
    )
    return cur.rowcount == 1
