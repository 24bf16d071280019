"""The log's tables: entries, Merkle nodes, checkpoints, cosignatures; the batch append."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protocol.merkle import HASH_LEN, Coord
from server.faults import crash_point

BROADCAST = b""
"""The inbox ``device`` of notices meant for every device (roster and channel changes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftRow:
    """Side data of a draft entry: who sent it and the wrapped keys its recipients fetch."""

    sender: bytes
    sender_member: str
    msg: bytes
    channel: str
    ct_hash: bytes
    ct_len: int
    keys: bytes
    """Canonical JSON of the wrapped-key map, served as is."""
    ciphertext: bytes | None = None
    """The ciphertext itself if it is stored in the database (small drafts), else it is
    a file under ``blobs/`` written before the commit."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptRow:
    """Side data of a receipt entry: the draft it answers, the device and the kind."""

    draft_idx: int
    device: bytes
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendRecord:
    """Everything one log entry writes, in the transaction that commits it."""

    index: int
    kind: str
    leaf: bytes
    body: bytes
    promise: bytes
    nodes: tuple[tuple[int, int, bytes], ...]
    inbox: tuple[tuple[bytes, str], ...] = ()
    draft: DraftRow | None = None
    receipt: ReceiptRow | None = None
    enrols: str | None = None
    """A member id this roster change enrols: its open invitations become ``used``."""
    genesis: bool = False


LINEAGE_INSERT = """INSERT INTO lineage (idx, leaf, draft, version)
    SELECT idx, leaf, json_extract(CAST(body AS TEXT), '$.draft'),
        json_extract(CAST(body AS TEXT), '$.version')
    FROM entries WHERE idx BETWEEN ? AND ? AND kind = 'draft'"""


class StoreMismatchError(Exception):
    """Stored rows that cannot be what the server wrote (gaps, wrong column types), or a
    batch that does not continue the stored log (a sequencer bug): nothing written."""


def _blob(value: object) -> bytes:
    # The server only writes BLOBs; anything else means the file was edited by hand.
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    raise StoreMismatchError(f"expected a BLOB, found {type(value).__name__}")


def log_size_txn(conn: sqlite3.Connection) -> int:
    """Number of entries, i.e. one past the highest index (indices have no gaps)."""
    row = conn.execute("SELECT coalesce(max(idx) + 1, 0), count(*) FROM entries").fetchone()
    size, count = int(row[0]), int(row[1])
    if size != count:
        raise StoreMismatchError(f"entries table has gaps ({count} rows, top index {size - 1})")
    return size


def append_batch_txn(conn: sqlite3.Connection, records: Sequence[AppendRecord]) -> None:
    """Write a batch of consecutive entries with every side row they imply."""
    if not records:
        return
    crash_point("append.begin")
    # Not log_size_txn: its count(*) (the start-up check for gaps) reads the whole table,
    # which made every commit O(n).  Appends only ever write max + 1 onwards, checked
    # here, so they cannot open a gap; max(idx) is one b-tree descent.
    size = int(conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM entries").fetchone()[0])
    for offset, record in enumerate(records):
        if record.index != size + offset:
            raise StoreMismatchError(
                f"batch entry {record.index} does not follow the stored log of {size}"
            )
    _insert_rows(
        conn,
        "INSERT INTO entries (idx, kind, leaf, body, promise)",
        [(r.index, r.kind, r.leaf, r.body, r.promise) for r in records],
    )
    crash_point("append.entries")
    _insert_rows(
        conn,
        "INSERT INTO nodes (level, idx, hash)",
        [node for r in records for node in r.nodes],
    )
    drafts = [
        (
            r.index,
            r.draft.sender,
            r.draft.sender_member,
            r.draft.msg,
            r.draft.channel,
            r.draft.ct_hash,
            r.draft.ct_len,
            r.draft.keys,
        )
        for r in records
        if r.draft is not None
    ]
    if drafts:
        _insert_rows(
            conn,
            "INSERT INTO drafts (idx, sender, sender_member, msg, channel, ct_hash, ct_len, keys)",
            drafts,
        )
        # The lineage the ledger index looks up, straight from the canonical bodies.
        conn.execute(LINEAGE_INSERT, (records[0].index, records[-1].index))
        _insert_rows(
            conn,
            "INSERT INTO ciphertexts (idx, data)",
            [
                (r.index, r.draft.ciphertext)
                for r in records
                if r.draft is not None and r.draft.ciphertext is not None
            ],
        )
    _insert_rows(
        conn,
        "INSERT INTO receipts (idx, draft_idx, device, kind)",
        [
            (r.index, r.receipt.draft_idx, r.receipt.device, r.receipt.kind)
            for r in records
            if r.receipt is not None
        ],
    )
    _insert_rows(
        conn,
        "INSERT OR IGNORE INTO inbox (device, idx, kind)",
        [(device, r.index, kind) for r in records for device, kind in r.inbox],
    )
    conn.executemany(
        "UPDATE invitations SET state = 'used' WHERE member = ? AND state != 'used'",
        [(r.enrols,) for r in records if r.enrols is not None],
    )
    if any(r.genesis for r in records):
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('founded', 1)")
        conn.execute("DELETE FROM meta WHERE key = 'founding_token'")


_CHUNK_MAX = 512
"""Rows per INSERT statement at most (8 columns x 512 stays far below SQLite's limit of
32,766 parameters)."""


def _insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[tuple[object, ...]]) -> None:
    """``head VALUES (...), (...), ...``: many rows per statement.

    ``executemany`` runs one ``sqlite3_step`` per row, and the sqlite3 module releases
    and re-takes the GIL around each: under load the writer thread then queues for the
    GIL behind the event loop once per row.  One statement per power-of-two chunk keeps
    that to a few hand-offs per table per commit, and the statement texts to a small
    fixed set (the module's statement cache keeps them compiled).  Same rows, same order,
    same constraint checks as ``executemany``.
    """
    done, total = 0, len(rows)
    while done < total:
        count = min(_CHUNK_MAX, 1 << ((total - done).bit_length() - 1))
        chunk = rows[done : done + count]
        conn.execute(
            _values_sql(head, len(chunk[0]), count), [value for row in chunk for value in row]
        )
        done += count


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, width: int, count: int) -> str:
    one = "(" + ",".join("?" * width) + ")"
    return f"{head} VALUES " + ",".join([one] * count)


def each_entry_txn(
    conn: sqlite3.Connection, visit: Callable[[int, str, bytes, bytes], None]
) -> int:
    """Call ``visit(index, kind, leaf, body)`` for every entry in order; return the count."""
    count = 0
    for idx, kind, leaf, body in conn.execute(
        "SELECT idx, kind, leaf, body FROM entries ORDER BY idx"
    ):
        visit(int(idx), str(kind), _blob(leaf), _blob(body))
        count += 1
    return count


def entries_range_txn(
    conn: sqlite3.Connection, start: int, end: int, max_bytes: int
) -> list[tuple[int, bytes]]:
    """Entries ``[start, end)`` in order, stopping early past ``max_bytes`` (at least one)."""
    out: list[tuple[int, bytes]] = []
    total = 0
    for idx, body in conn.execute(
        "SELECT idx, body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
    ):
        if out and total + len(body) > max_bytes:
            break
        out.append((int(idx), bytes(body)))
        total += len(body)
    return out


def entry_txn(conn: sqlite3.Connection, index: int) -> tuple[str, bytes, bytes] | None:
    """``(kind, body, promise)`` of one entry."""
    row = conn.execute("SELECT kind, body, promise FROM entries WHERE idx = ?", (index,)).fetchone()
    if row is None:
        return None
    return str(row[0]), bytes(row[1]), bytes(row[2])


def promise_txn(conn: sqlite3.Connection, index: int) -> bytes | None:
    """The stored promise of entry ``index``."""
    row = conn.execute("SELECT promise FROM entries WHERE idx = ?", (index,)).fetchone()
    return None if row is None else bytes(row[0])


# --- Merkle nodes -----------------------------------------------------------------


NODES_PER_QUERY = 4096
"""Coordinates per ``nodes_txn`` statement (two parameters each, far below SQLite's
limit of 32766 host parameters)."""


def nodes_txn(conn: sqlite3.Connection, coords: Sequence[Coord]) -> dict[Coord, bytes]:
    """The stored hashes at ``coords`` (missing ones are simply absent): one statement
    per :data:`NODES_PER_QUERY` coordinates."""
    found: dict[Coord, bytes] = {}
    wanted = sorted(set(coords))
    for start in range(0, len(wanted), NODES_PER_QUERY):
        part = wanted[start : start + NODES_PER_QUERY]
        params = [v for coord in part for v in coord]
        # Only "(?, ?)" placeholders are formatted in; the values travel as parameters.
        values = ", ".join("(?, ?)" for _ in part)
        rows = conn.execute(
            f"WITH want (level, idx) AS (VALUES {values}) "  # noqa: S608
            "SELECT n.level, n.idx, n.hash FROM want JOIN nodes n "
            "ON n.level = want.level AND n.idx = want.idx",
            params,
        ).fetchall()
        for level, idx, h in rows:
            found[(int(level), int(idx))] = _blob(h)
    return found


def node_runs_txn(
    conn: sqlite3.Connection, runs: Sequence[tuple[int, int, int]]
) -> list[bytearray]:
    """For each ``(level, start, end)``, the hashes of nodes ``start..end-1`` of that
    level packed in index order (32 bytes each); :class:`LookupError` if any is missing
    (the caller asks only for nodes of the committed tree)."""
    out: list[bytearray] = []
    for level, start, end in runs:
        packed = bytearray()
        count = 0
        for (h,) in conn.execute(
            "SELECT hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (level, start, end),
        ):
            node = _blob(h)
            if len(node) != HASH_LEN:
                raise StoreMismatchError(f"a Merkle node at level {level} is not 32 bytes")
            packed += node
            count += 1
        if count != end - start:
            raise LookupError(f"stored Merkle nodes missing at level {level} in [{start}, {end})")
        out.append(packed)
    return out


class SqliteNodes:
    """:class:`protocol.merkle.NodeReader` over the ``nodes`` table: one query per call."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get_nodes(self, coords: Sequence[Coord]) -> list[bytes]:
        """The hashes at ``coords``, in order; :class:`LookupError` if any is missing."""
        if not coords:
            return []
        found = nodes_txn(self._conn, coords)
        try:
            return [found[c] for c in coords]
        except KeyError as exc:
            raise LookupError(f"no stored Merkle node at {exc.args[0]}") from None


# --- checkpoints and cosignatures ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRow:
    """A signed checkpoint note as stored, with its size, root and signing time."""

    size: int
    root: bytes
    note: bytes
    time: int


def insert_checkpoint_txn(conn: sqlite3.Connection, row: CheckpointRow) -> None:
    """Store a signed checkpoint (a size is signed at most once)."""
    conn.execute(
        "INSERT INTO checkpoints (size, root, note, time) VALUES (?, ?, ?, ?)",
        (row.size, row.root, row.note, row.time),
    )


def _checkpoint(row: tuple[object, ...] | None) -> CheckpointRow | None:
    if row is None:
        return None
    size, root, note, time = row
    return CheckpointRow(
        size=int(size),  # type: ignore[call-overload]
        root=bytes(root),  # type: ignore[call-overload]
        note=bytes(note),  # type: ignore[call-overload]
        time=int(time),  # type: ignore[call-overload]
    )


def latest_checkpoint_txn(conn: sqlite3.Connection) -> CheckpointRow | None:
    """The checkpoint with the largest size."""
    return _checkpoint(
        conn.execute(
            "SELECT size, root, note, time FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
    )


def checkpoint_txn(conn: sqlite3.Connection, size: int) -> CheckpointRow | None:
    """The checkpoint signed at ``size``, if any."""
    return _checkpoint(
        conn.execute(
            "SELECT size, root, note, time FROM checkpoints WHERE size = ?", (size,)
        ).fetchone()
    )


def checkpoint_with_cosignatures_txn(
    conn: sqlite3.Connection, size: int | None
) -> tuple[CheckpointRow, list[str]] | None:
    """A checkpoint (latest if ``size`` is None) and its stored cosignature lines."""
    row = latest_checkpoint_txn(conn) if size is None else checkpoint_txn(conn, size)
    if row is None:
        return None
    lines = [
        str(line)
        for (line,) in conn.execute(
            "SELECT line FROM cosignatures WHERE size = ? ORDER BY name", (row.size,)
        )
    ]
    return row, lines


def cosigned_sizes_txn(conn: sqlite3.Connection) -> list[int]:
    """Sizes of the checkpoints that have at least one stored cosignature."""
    return [int(size) for (size,) in conn.execute("SELECT DISTINCT size FROM cosignatures")]


def last_cosignature_line_txn(conn: sqlite3.Connection, name: str) -> str | None:
    """The stored cosignature line of witness ``name`` on its largest checkpoint (a
    witness never cosigns a smaller tree later, so this holds its latest timestamp)."""
    row = conn.execute(
        "SELECT line FROM cosignatures WHERE name = ? ORDER BY size DESC LIMIT 1", (name,)
    ).fetchone()
    return None if row is None else str(row[0])


def upsert_cosignature_txn(
    conn: sqlite3.Connection, size: int, name: str, line: str, time: int
) -> list[str]:
    """Store (or replace) a witness's cosignature; return every cosigner name for ``size``."""
    conn.execute(
        "INSERT INTO cosignatures (size, name, line, time) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (size, name) DO UPDATE SET line = excluded.line, time = excluded.time",
        (size, name, line, time),
    )
    return [
        str(n)
        for (n,) in conn.execute(
            "SELECT name FROM cosignatures WHERE size = ? ORDER BY name", (size,)
        )
    ]
