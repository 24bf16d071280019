"""Start-up self-check: rebuild the in-memory log state from the store, or refuse writes.

Two modes.  A server on a database file (every real one) starts in time independent of
the log's length (``recover_txn``, "resume"); an in-memory database, or ``full=True``,
replays everything (the original check, kept for tools and tests).

Resume (each failure is a reason to go read-only; nothing is repaired silently):

1. the entries have consecutive indices from 0 (counted on a narrow index); entry 0 is
   a genesis naming this server's origin and checkpoint key;
2. every roster and channel change is re-applied through
   :meth:`~protocol.ledger.Ledger.resume`, re-verifying its signature and authority
   (they are few: the roster is small); the per-sender counters are read from the
   latest stored draft of each sender; drafts and receipts are *not* replayed: the
   ledger looks them up in the store through
   :class:`~server.storage.ledger_index.SqliteLedgerIndex`;
3. the last :data:`TAIL` entries: each stored leaf is the hash of its stored bytes and
   equals the stored level-0 node (the batch a crash could have torn);
4. the Merkle frontier is rebuilt from the stored perfect-subtree nodes (``log2 n``
   reads);
5. the latest stored checkpoint and ``checkpoint.txt`` both carry a valid log signature,
   are no larger than the stored log, and their roots equal the root recomputed from
   the stored nodes at their sizes.  A checkpoint larger than the log means the store
   lost acknowledged entries; a different root means it was rewritten.  Either way the
   server must never sign a checkpoint that conflicts with one it already published.

Why resuming without re-verifying every entry is sound.  The server trusts its own disk
for *content*: every entry was verified by the ledger before the transaction that wrote
it committed, in one transaction with its side rows (drafts, receipts, lineage, nodes),
and nobody else writes the file.  Re-verifying a million signatures at every start
would defend only against someone who can already rewrite the database, and such a
person could as well rewrite it consistently.  What the self-check must catch is the
failure a server can suffer on its own or by an operator's mistake and then make worse
by signing: a store that *lost* acknowledged entries or was *rolled back* (restored from
an old backup, a torn copy).  Step 5 catches both against ``checkpoint.txt``, the last
checkpoint published: its size must not exceed the store's and its root must equal the
root recomputed from the stored nodes, so the server can never sign a checkpoint that
forks from what it published.  A rewritten body is caught by clients and auditors (its
leaf is in a signed tree); step 3 catches a torn tail locally.  ``PRAGMA quick_check``
and a full replay remain available offline (``full=True``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from protocol import crypto, merkle
from protocol.checkpoint import Checkpoint, open_checkpoint
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.ledger import Act, Ledger, parse_entry
from protocol.merkle import EMPTY_ROOT, Frontier, leaf_hash
from protocol.roster import RosterChange
from server.highwater import Rollback, behind, diverged
from server.storage.ledger_index import (
    SqliteLedgerIndex,
    entry_body_txn,
    roster_entries_txn,
    sender_counters_txn,
    tail_txn,
)
from server.storage.log import (
    CheckpointRow,
    SqliteNodes,
    StoreMismatchError,
    each_entry_txn,
    latest_checkpoint_txn,
    log_size_txn,
)


@dataclass(slots=True, kw_only=True)
class Recovered:
    """The state rebuilt from the store, with the first problem found (if any)."""

    ledger: Ledger | None = None
    frontier: Frontier = field(default_factory=Frontier)
    size: int = 0
    root: bytes = EMPTY_ROOT
    latest: CheckpointRow | None = None
    problem: str | None = None
    code: str = "read_only"
    """The problem code writes are refused with (``store_behind``: entries lost)."""


class _Stop(Exception):
    pass


TAIL = 1024
"""Entries at the end of the log whose leaves are re-hashed at every start."""


def database_file(conn: sqlite3.Connection) -> str:
    """The file of ``conn``'s main database (``""`` for an in-memory one)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(file or "")
    return ""  # pragma: no cover - every connection has a main database


def recover_txn(
    conn: sqlite3.Connection,
    *,
    origin: str,
    log_public: bytes,
    checkpoint_file: bytes | None,
    full: bool = False,
) -> Recovered:
    """Run the self-check inside one read transaction (see the module docstring)."""
    path = database_file(conn)
    if full or not path:
        return _replay_txn(
            conn, origin=origin, log_public=log_public, checkpoint_file=checkpoint_file
        )
    return _resume_txn(
        conn, path, origin=origin, log_public=log_public, checkpoint_file=checkpoint_file
    )


def _resume_txn(
    conn: sqlite3.Connection,
    path: str,
    *,
    origin: str,
    log_public: bytes,
    checkpoint_file: bytes | None,
) -> Recovered:
    out = Recovered()
    try:
        out.size = log_size_txn(conn)
    except StoreMismatchError as exc:
        out.problem = str(exc)
        return out
    if out.size == 0:
        return _check_checkpoints(conn, out, origin, log_public, checkpoint_file)

    # 1-2. The genesis, the roster changes and acts, and the counters.
    try:
        genesis = Genesis.from_bytes(entry_body_txn(conn, 0))
        if not crypto.equal(genesis.log_key, log_public):
            out.problem = "the genesis names another checkpoint key than this server's"
            return out
        if genesis.origin != origin:
            out.problem = "the genesis names another origin than this server's"
            return out
        changes: list[tuple[int, RosterChange | Act]] = []
        for index, body in roster_entries_txn(conn):
            change = parse_entry(body)
            if not isinstance(change, RosterChange | Act):
                out.problem = f"entry {index} is stored as a roster change or act but is not one"
                return out
            changes.append((index, change))
        index_ = SqliteLedgerIndex(path)
        ledger = Ledger.resume(
            genesis,
            changes=changes,
            size=out.size,
            counters=sender_counters_txn(conn),
            index=index_,
        )
    except ProtocolError as exc:
        out.problem = f"the stored roster does not verify: {exc.code}: {exc.detail}"
        return out
    except StoreMismatchError as exc:
        out.problem = str(exc)
        return out
    # Read-only or not, the server keeps serving reads with this ledger.
    out.ledger = ledger

    # 3. The tail: leaves are the hashes of the bodies and the stored level-0 nodes.
    try:
        tail = tail_txn(conn, max(0, out.size - TAIL))
    except StoreMismatchError as exc:
        out.problem = str(exc)
        return out
    for index, leaf, body, node in tail:
        if not crypto.equal(leaf_hash(body), leaf) or node is None or not crypto.equal(node, leaf):
            out.problem = f"entry {index}: stored leaf is not the hash of its bytes"
            return out

    # 4. The frontier from the stored nodes.
    try:
        out.frontier = Frontier.from_reader(out.size, SqliteNodes(conn))
    except (LookupError, ProtocolError) as exc:
        out.problem = f"stored Merkle nodes are incomplete: {exc}"
        return out
    out.root = out.frontier.root()
    # 5. Published checkpoints agree with the store.
    return _check_checkpoints(conn, out, origin, log_public, checkpoint_file)


def _check_checkpoints(
    conn: sqlite3.Connection,
    out: Recovered,
    origin: str,
    log_public: bytes,
    checkpoint_file: bytes | None,
) -> Recovered:
    nodes = SqliteNodes(conn)
    out.latest = latest_checkpoint_txn(conn)
    notes = [("the latest stored checkpoint", out.latest.note if out.latest else None)]
    notes.append(("checkpoint.txt", checkpoint_file))
    for what, note in notes:
        if note is None:
            continue
        problem = _check_checkpoint(
            note, what, origin=origin, log_public=log_public, size=out.size, nodes=nodes
        )
        if problem is not None:
            out.problem, out.code = problem.reason, problem.code
            return out
    return out


def _replay_txn(
    conn: sqlite3.Connection,
    *,
    origin: str,
    log_public: bytes,
    checkpoint_file: bytes | None,
) -> Recovered:
    """The full self-check: replay and re-verify every entry."""
    out = Recovered()
    try:
        out.size = log_size_txn(conn)
    except StoreMismatchError as exc:
        out.problem = str(exc)
        return out

    # 1-2. Replay, checking leaves and rules.
    replayed = Frontier()

    def visit(index: int, kind: str, leaf: bytes, body: bytes) -> None:
        if not crypto.equal(leaf_hash(body), leaf):
            raise _Stop(f"entry {index}: stored leaf is not the hash of its bytes")
        try:
            if index == 0:
                ledger = Ledger.from_genesis_bytes(body)
                if not crypto.equal(ledger.genesis.log_key, log_public):
                    raise _Stop("the genesis names another checkpoint key than this server's")
                if ledger.genesis.origin != origin:
                    raise _Stop("the genesis names another origin than this server's")
                out.ledger = ledger
            elif out.ledger is None:  # pragma: no cover - index 0 always comes first
                raise _Stop("log has no genesis")
            else:
                out.ledger.apply(body)
        except ProtocolError as exc:
            raise _Stop(f"entry {index} does not verify: {exc.code}: {exc.detail}") from exc
        replayed.append(merkle.LeafHash(leaf))

    try:
        each_entry_txn(conn, visit)
    except (_Stop, StoreMismatchError) as exc:
        out.problem = str(exc)
    out.frontier = replayed
    out.root = replayed.root()
    if out.problem is not None:
        out.size = replayed.size
        return out

    # 3. Stored nodes agree with the replayed leaves.
    nodes = SqliteNodes(conn)
    try:
        stored = Frontier.from_reader(out.size, nodes)
    except (LookupError, ProtocolError) as exc:
        out.problem = f"stored Merkle nodes are incomplete: {exc}"
        return out
    if not crypto.equal(stored.root(), out.root):
        out.problem = "stored Merkle nodes disagree with the stored entries"
        return out

    # 4. Published checkpoints agree with the store.
    return _check_checkpoints(conn, out, origin, log_public, checkpoint_file)


def _check_checkpoint(
    note: bytes,
    what: str,
    *,
    origin: str,
    log_public: bytes,
    size: int,
    nodes: SqliteNodes,
) -> Rollback | None:
    try:
        cp, _ = open_checkpoint(note, origin=origin, log_name=origin, log_key=log_public)
    except ProtocolError as exc:
        return Rollback(code="read_only", reason=f"{what} does not verify: {exc.detail}")
    return check_against_store(cp, what, size, nodes)


def check_against_store(
    cp: Checkpoint, what: str, size: int, nodes: SqliteNodes
) -> Rollback | None:
    """Why ``cp`` disagrees with the stored tree of ``size`` leaves, or ``None``; a
    checkpoint larger than the store means entries were lost (``store_behind``)."""
    if cp.size > size:
        return behind(what, cp.size, size)
    try:
        root = merkle.root(cp.size, nodes)
    except LookupError as exc:
        return Rollback(code="read_only", reason=f"stored Merkle nodes are incomplete: {exc}")
    if not crypto.equal(root, cp.root):
        return diverged(what, cp.size)
    return None
