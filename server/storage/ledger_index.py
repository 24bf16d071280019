"""A :class:`protocol.ledger.LedgerIndex` over the tables the server already writes.

Why: the in-memory index keeps a :class:`~protocol.ledger.DraftState` (header and every
receipt object) per draft, so a server holding it grows by about a kilobyte per logged
entry.  This index answers the same lookups from SQLite instead, so the server's memory
stays flat in the log's size:

========================  ===================================================
lookup                    answered from
========================  ===================================================
draft by leaf             ``lineage.leaf`` (unique) -> ``entries.body`` + the
                          ``receipts`` of that draft (bodies parsed, not verified:
                          they were verified before they were written)
leaf of draft at index    ``lineage`` primary key
message id seen           ``drafts (sender, msg)`` unique index (ids found absent
                          are remembered until the ledger adds them)
versions of a draft id    ``lineage (draft, idx)``
channel of a draft id     the first version's ``drafts.channel``
========================  ===================================================

Two in-memory layers sit in front of the SQL:

* **pinned**: the ledger applies entries before the sequencer commits them, so every
  draft added or changed since the last durable entry is pinned in memory (with its
  message id, index and version) until a ``SELECT max(idx)`` shows the store holds it.
  Lookups consult the pinned layer first, so they see exactly what the ledger applied.
  This is bounded by the entries in flight (one or two group-commit batches);
* **LRU**: the most recently used drafts (receipts come in right after their draft, so
  the hot set is small), bounded by ``cache``.

The index owns one read-only connection and is used only from the event loop thread
(the ledger is), with point lookups on indexed columns; misses read a few pages.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

from protocol.encoding import b64e
from protocol.envelope import DraftHeader
from protocol.keys import DeviceId
from protocol.ledger import DraftState, parse_entry, record_receipt
from protocol.merkle import LeafHash
from protocol.receipt import Receipt
from server.storage.db import connect
from server.storage.log import StoreMismatchError, _blob

DEFAULT_CACHE = 4096
ABSENT_MAX = 4096
"""Message ids remembered as not (yet) logged, at most."""
REFRESH_EVERY = 256
"""Pinned drafts are checked against the store's size every this many changes."""


class SqliteLedgerIndex:
    """:class:`~protocol.ledger.LedgerIndex` backed by the server's database file."""

    def __init__(self, path: Path | str, *, cache: int = DEFAULT_CACHE) -> None:
        self._conn = connect(Path(path), readonly=True)
        self._cache = cache
        self._lru: OrderedDict[LeafHash, DraftState] = OrderedDict()
        # The pinned layer: drafts added or changed at an index the store may not hold.
        self._pinned: dict[LeafHash, DraftState] = {}
        self._touched: dict[LeafHash, int] = {}  # leaf -> highest index that changed it
        self._known_at: dict[int, LeafHash] = {}  # index -> leaf of every pinned/cached draft
        self._new_at: dict[int, LeafHash] = {}  # drafts not yet known to be stored
        self._new_msgs: dict[tuple[DeviceId, bytes], LeafHash] = {}
        # Message ids the store and the pinned layer were asked for and did not hold: an
        # upload asks three times (idempotency, dry run, sequencing).  Exact, not a guess:
        # only add_draft can make such an id known, and it removes the id from here.
        self._absent: dict[tuple[DeviceId, bytes], None] = {}
        self._new_versions: dict[bytes, dict[LeafHash, int]] = {}
        self._new_channel: dict[bytes, str] = {}
        self._changes = 0
        self.sql_loads = 0
        """Drafts loaded from SQL (LRU misses), for benchmarks."""

    def close(self) -> None:
        self._conn.close()

    # -- lookups -------------------------------------------------------------------------

    def draft(self, leaf: LeafHash) -> DraftState | None:
        state = self._pinned.get(leaf)
        if state is not None:
            return state
        state = self._lru.get(leaf)
        if state is not None:
            self._lru.move_to_end(leaf)
            return state
        state = self._load(leaf)
        if state is not None:
            self._remember(leaf, state)
        return state

    def leaf_at(self, index: int) -> LeafHash | None:
        leaf = self._known_at.get(index)
        if leaf is not None:
            return leaf
        row = self._conn.execute("SELECT leaf FROM lineage WHERE idx = ?", (index,)).fetchone()
        return None if row is None else LeafHash(bytes(row[0]))

    def message(self, sender: DeviceId, msg: bytes) -> LeafHash | None:
        key = (sender, msg)
        leaf = self._new_msgs.get(key)
        if leaf is not None:
            return leaf
        if key in self._absent:
            return None
        row = self._conn.execute(
            "SELECT l.leaf FROM drafts d JOIN lineage l ON l.idx = d.idx"
            " WHERE d.sender = ? AND d.msg = ?",
            (bytes(sender), msg),
        ).fetchone()
        if row is None:
            if len(self._absent) >= ABSENT_MAX:
                del self._absent[next(iter(self._absent))]  # the oldest
            self._absent[key] = None
            return None
        return LeafHash(bytes(row[0]))

    def versions(self, draft_id: bytes) -> Mapping[LeafHash, int] | None:
        out = {
            LeafHash(bytes(leaf)): int(version)
            for leaf, version in self._conn.execute(
                "SELECT leaf, version FROM lineage WHERE draft = ?", (b64e(draft_id),)
            )
        }
        out.update(self._new_versions.get(draft_id, {}))
        return out or None

    def channel_of(self, draft_id: bytes) -> str | None:
        row = self._conn.execute(
            "SELECT d.channel FROM lineage l JOIN drafts d ON d.idx = l.idx"
            " WHERE l.draft = ? ORDER BY l.idx LIMIT 1",
            (b64e(draft_id),),
        ).fetchone()
        if row is not None:
            return str(row[0])
        return self._new_channel.get(draft_id)

    # -- changes ---------------------------------------------------------------------------

    def add_draft(self, state: DraftState) -> None:
        h = state.header
        leaf = h.leaf
        self._new_at[state.index] = leaf
        self._new_msgs[(h.sender, h.msg)] = leaf
        self._absent.pop((h.sender, h.msg), None)
        self._new_versions.setdefault(h.draft, {})[leaf] = h.version
        self._new_channel.setdefault(h.draft, h.channel)
        self._pin(leaf, state, state.index)

    def add_receipt(self, state: DraftState, receipt: Receipt, index: int) -> None:
        record_receipt(state, receipt, index)
        self._pin(state.header.leaf, state, index)

    def drafts_map(self) -> Mapping[LeafHash, DraftState]:
        return _DraftsView(self)

    # -- internals ---------------------------------------------------------------------------

    def _pin(self, leaf: LeafHash, state: DraftState, index: int) -> None:
        self._lru.pop(leaf, None)
        self._pinned[leaf] = state
        self._known_at[state.index] = leaf
        self._touched[leaf] = index
        self._changes += 1
        if self._changes >= REFRESH_EVERY:
            self.refresh()

    def refresh(self) -> None:
        """Unpin everything the store now holds (it moves to the LRU)."""
        self._changes = 0
        row = self._conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM entries").fetchone()
        durable = int(row[0])
        for index in [i for i in self._new_at if i < durable]:
            h = self._pinned[self._new_at.pop(index)].header  # new drafts stay pinned here
            leaf = h.leaf
            self._new_msgs.pop((h.sender, h.msg), None)
            versions = self._new_versions.get(h.draft)
            if versions is not None:
                versions.pop(leaf, None)
                if not versions:
                    del self._new_versions[h.draft]
                    self._new_channel.pop(h.draft, None)
        for leaf in [leaf for leaf, at in self._touched.items() if at < durable]:
            del self._touched[leaf]
            self._remember(leaf, self._pinned.pop(leaf))

    def _remember(self, leaf: LeafHash, state: DraftState) -> None:
        self._lru[leaf] = state
        self._lru.move_to_end(leaf)
        self._known_at[state.index] = leaf
        while len(self._lru) > self._cache:
            _, old = self._lru.popitem(last=False)
            self._known_at.pop(old.index, None)

    def _load(self, leaf: LeafHash) -> DraftState | None:
        row = self._conn.execute(
            "SELECT l.idx, e.body, d.sender_member FROM lineage l"
            " JOIN entries e ON e.idx = l.idx JOIN drafts d ON d.idx = l.idx"
            " WHERE l.leaf = ?",
            (bytes(leaf),),
        ).fetchone()
        if row is None:
            return None
        self.sql_loads += 1
        header = parse_entry(bytes(row[1]))
        if not isinstance(header, DraftHeader):
            raise StoreMismatchError(f"entry {row[0]} is in lineage but is not a draft")
        state = DraftState(index=int(row[0]), header=header, sender_member=str(row[2]))
        for idx, body in self._conn.execute(
            "SELECT e.idx, e.body FROM receipts r JOIN entries e ON e.idx = r.idx"
            " WHERE r.draft_idx = ? ORDER BY r.idx",
            (state.index,),
        ):
            receipt = parse_entry(bytes(body))
            if not isinstance(receipt, Receipt):
                raise StoreMismatchError(f"entry {idx} is in receipts but is not a receipt")
            record_receipt(state, receipt, int(idx))
        return state

    def _leaves(self) -> Iterator[LeafHash]:
        seen: set[LeafHash] = set()
        for (leaf,) in self._conn.execute("SELECT leaf FROM lineage ORDER BY idx"):
            seen.add(LeafHash(bytes(leaf)))
            yield LeafHash(bytes(leaf))
        for _, leaf in sorted(self._new_at.items()):
            if leaf not in seen:
                yield leaf

    def _count(self) -> int:
        return sum(1 for _ in self._leaves())


class _DraftsView(Mapping[LeafHash, DraftState]):
    """``ledger.drafts`` for a :class:`SqliteLedgerIndex` (lookups by leaf are cheap;
    iterating reads the whole lineage table)."""

    def __init__(self, index: SqliteLedgerIndex) -> None:
        self._index = index

    def __getitem__(self, leaf: LeafHash) -> DraftState:
        state = self._index.draft(leaf)
        if state is None:
            raise KeyError(leaf)
        return state

    def __iter__(self) -> Iterator[LeafHash]:
        return self._index._leaves()

    def __len__(self) -> int:
        return self._index._count()


# --- start-up queries ----------------------------------------------------------------


def entry_body_txn(conn: sqlite3.Connection, index: int) -> bytes:
    """The stored body of entry ``index``."""
    row = conn.execute("SELECT body FROM entries WHERE idx = ?", (index,)).fetchone()
    if row is None:
        raise StoreMismatchError(f"no entry {index}")
    return _blob(row[0])


def roster_entries_txn(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
    """``(index, body)`` of every roster and channel change and every act, in log order
    (what :meth:`~protocol.ledger.Ledger.resume` replays)."""
    return [
        (int(idx), _blob(body))
        for idx, body in conn.execute(
            "SELECT idx, body FROM entries WHERE kind IN ('roster', 'channel', 'act') ORDER BY idx"
        )
    ]


def sender_counters_txn(conn: sqlite3.Connection) -> dict[DeviceId, int]:
    """Each sender device's counter: the one in the body of its latest draft."""
    rows = conn.execute(
        "SELECT d.sender, json_extract(CAST(e.body AS TEXT), '$.counter')"
        " FROM (SELECT sender, max(idx) AS last FROM drafts GROUP BY sender) d"
        " JOIN entries e ON e.idx = d.last"
    ).fetchall()
    out: dict[DeviceId, int] = {}
    for sender, counter in rows:
        if not isinstance(counter, int):
            raise StoreMismatchError("a stored draft has no integer counter")
        out[DeviceId(bytes(sender))] = counter
    return out


def tail_txn(conn: sqlite3.Connection, start: int) -> list[tuple[int, bytes, bytes, bytes | None]]:
    """``(index, leaf, body, level-0 node)`` of the entries from ``start`` on."""
    return [
        (int(idx), _blob(leaf), _blob(body), None if node is None else _blob(node))
        for idx, leaf, body, node in conn.execute(
            "SELECT e.idx, e.leaf, e.body, n.hash FROM entries e"
            " LEFT JOIN nodes n ON n.level = 0 AND n.idx = e.idx"
            " WHERE e.idx >= ? ORDER BY e.idx",
            (start,),
        )
    ]
