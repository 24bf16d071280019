"""Start-up self-check: rebuild the in-memory log state from the store, or refuse writes.

Steps (each failure is a reason to go read-only; nothing is repaired silently):

1. the entries have consecutive indices from 0, and each stored leaf is the hash of its
   stored bytes;
2. replaying every entry through a fresh :class:`~protocol.ledger.Ledger` succeeds,
   which re-verifies every signature and rule; entry 0 is a genesis naming this
   server's origin and checkpoint key;
3. the Merkle frontier rebuilt from the stored perfect-subtree nodes has the same root
   as the one rebuilt from the replayed leaves;
4. the latest stored checkpoint and ``checkpoint.txt`` both carry a valid log signature,
   are no larger than the stored log, and their roots equal the root recomputed from
   the stored nodes at their sizes.  A checkpoint larger than the log means the store
   lost acknowledged entries; a different root means it was rewritten.  Either way the
   server must never sign a checkpoint that conflicts with one it already published.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from protocol import crypto, merkle
from protocol.checkpoint import Checkpoint, open_checkpoint
from protocol.errors import ProtocolError
from protocol.ledger import Ledger
from protocol.merkle import EMPTY_ROOT, Frontier, leaf_hash
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


class _Stop(Exception):
    pass


def recover_txn(
    conn: sqlite3.Connection,
    *,
    origin: str,
    log_public: bytes,
    checkpoint_file: bytes | None,
) -> Recovered:
    """Run the self-check inside one read transaction (see the module docstring)."""
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
            out.problem = problem
            return out
    return out


def _check_checkpoint(
    note: bytes, what: str, *, origin: str, log_public: bytes, size: int, nodes: SqliteNodes
) -> str | None:
    try:
        cp, _ = open_checkpoint(note, origin=origin, log_name=origin, log_key=log_public)
    except ProtocolError as exc:
        return f"{what} does not verify: {exc.detail}"
    return check_against_store(cp, what, size, nodes)


def check_against_store(cp: Checkpoint, what: str, size: int, nodes: SqliteNodes) -> str | None:
    """A reason ``cp`` disagrees with the stored tree of ``size`` leaves, or ``None``."""
    if cp.size > size:
        return f"{what} is for {cp.size} entries but the store holds only {size}: entries lost"
    try:
        root = merkle.root(cp.size, nodes)
    except LookupError as exc:
        return f"stored Merkle nodes are incomplete: {exc}"
    if not crypto.equal(root, cp.root):
        return f"{what} at size {cp.size} has another root than the stored tree"
    return None
