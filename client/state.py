"""Verified local state: what this client has checked, kept in its home directory.

Theory of operation
-------------------
The client trusts nothing the server says until it has verified it, and then remembers
exactly what it verified so that a later answer can be compared with it.  Everything
lives in one SQLite file, ``<home>/state.sqlite`` (WAL, ``synchronous=FULL``), and every
change happens inside one ``BEGIN IMMEDIATE`` transaction, so a crash leaves either the
old state or the new one, never a mixture:

``meta``
    key -> JSON value: server URL, pinned talks id and genesis, own member id, the last
    verified checkpoint (size, root, note), the last checkpoint seen with the witness
    quorum, the witness state (:class:`protocol.checkpoint.WitnessState`), the own send
    counter, the inbox cursor and, after a rollback or fork, the ``frozen`` flag.
``entries``
    every log entry verified so far, by index.  On load they are replayed through the
    protocol's :class:`~protocol.ledger.Ledger` (:class:`VerifiedLog`), which rebuilds
    the roster, channels, drafts, receipts and per-sender counters and re-checks every
    signature, so a tampered state file is caught, not trusted.
``drafts``
    per received draft: the wrapped keys and ciphertext (still encrypted: plaintext is
    never written to disk), whether it opened, the error code if not, read/ack flags.
``promises``
    the server's signed acceptance promises for our own writes, each with its arrival
    time by our clock: a promise whose entry never shows up where it said, or not in
    time, is evidence against the server.
``alarms``
    every alarm raised, with time and index.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.errors import Alarm, StateError, UsageError
from protocol.checkpoint import WitnessState
from protocol.encoding import JSONValue, b64d, b64e
from protocol.envelope import DraftHeader
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.keys import DeviceId, DevicePublic
from protocol.ledger import Entry, Ledger, entry_kind, parse_entry
from protocol.merkle import LeafHash, MemoryTree
from protocol.negotiation import check_tree_claim
from protocol.receipt import Receipt
from protocol.roster import Roster, RosterChange

STATE_FILE = "state.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS drafts (
    idx INTEGER PRIMARY KEY,
    keys TEXT,
    ciphertext BLOB,
    status TEXT NOT NULL,
    error TEXT,
    read INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE TABLE IF NOT EXISTS promises (
    idx INTEGER PRIMARY KEY,
    promise TEXT NOT NULL,
    seen INTEGER
);
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    detail TEXT NOT NULL,
    idx INTEGER,
    time INTEGER NOT NULL
);
"""

# Draft statuses in the ``drafts`` table.
OPENED = "opened"
REJECTED = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCheckpoint:
    """A checkpoint this client verified: size, root and the signed note as received."""

    size: int
    root: bytes
    note: str

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {"note": self.note, "root": b64e(self.root), "size": self.size}

    @classmethod
    def from_json(cls, value: Any) -> StoredCheckpoint:
        """Inverse of :meth:`to_json`."""
        try:
            return cls(
                size=int(value["size"]), root=b64d(value["root"], length=32), note=value["note"]
            )
        except (KeyError, TypeError, ValueError, ProtocolError) as exc:
            raise StateError("stored checkpoint is damaged") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftRecord:
    """A received draft as cached locally (still encrypted)."""

    index: int
    keys: dict[str, str] | None
    ciphertext: bytes | None
    status: str
    error: str | None
    read: bool
    receipt: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRecord:
    """An alarm as recorded in the state."""

    name: str
    detail: str
    index: int | None
    time: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftOrigin:
    """Who sent the draft at an index, resolved with the roster in force at that index."""

    member: str
    device: DevicePublic


class VerifiedLog:
    """The log as verified so far: the ledger plus what the client needs beside it.

    :meth:`append` is the only way in, and it runs the protocol's
    :class:`~protocol.ledger.Ledger` on every entry, so nothing unverified is ever here.
    Besides the ledger it keeps the raw entries, a Merkle tree over them (for roots and
    proofs), the kind of each entry, the indices of roster and channel changes (the roster
    proof of an evidence bundle) and the sender of each draft *as the roster stood at the
    draft* (a later removal must not make an old draft unverifiable).
    """

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.ledger = Ledger(genesis)
        self.tree = MemoryTree()
        self.tree.append(genesis.to_bytes())
        self.entries: list[bytes] = [genesis.to_bytes()]
        self.kinds: list[str] = ["genesis"]
        self.roster_indices: list[int] = []
        self.origins: dict[int, DraftOrigin] = {}
        self.parsed: dict[int, Entry] = {0: genesis}

    @property
    def size(self) -> int:
        """Number of verified entries (the next index)."""
        return len(self.entries)

    def check(self, data: bytes) -> Entry:
        """Parse and verify ``data`` as the next entry without applying it."""
        entry = parse_entry(data)
        self.ledger.check(entry)
        return entry

    def append(self, data: bytes) -> Entry:
        """Verify ``data`` as entry :attr:`size` and apply it; raise ProtocolError if not."""
        index = self.size
        entry = parse_entry(data)
        origin: DraftOrigin | None = None
        if isinstance(entry, DraftHeader):
            self.ledger.check(entry)
            member, device = self.ledger.roster.device(entry.sender)
            origin = DraftOrigin(member=member.id, device=device)
        check_tree_claim(entry, index, self.tree.root)  # a round record's root
        self.ledger.apply_entry(entry)
        self.entries.append(data)
        self.tree.append(data)
        self.kinds.append(entry_kind(entry))
        self.parsed[index] = entry
        if isinstance(entry, RosterChange):
            self.roster_indices.append(index)
        if origin is not None:
            self.origins[index] = origin
        return entry

    def roster_at(self, index: int) -> Roster:
        """The roster in force for the entry at ``index`` (every change before it)."""
        roster = Roster(self.genesis)
        for i in self.roster_indices:
            if i >= index:
                break
            entry = self.parsed[i]
            if isinstance(entry, RosterChange):
                roster.apply(entry, index=i)
        return roster

    def root(self, size: int | None = None) -> bytes:
        """Merkle root of the first ``size`` entries (default: all)."""
        return self.tree.root(size)

    def leaf(self, index: int) -> LeafHash:
        """Leaf hash of the entry at ``index``."""
        return self.tree.leaf(index)

    def draft(self, index: int) -> DraftHeader:
        """The draft header at ``index`` (a :class:`UsageError` if there is none)."""
        entry = self.parsed.get(index)
        if not isinstance(entry, DraftHeader):
            raise UsageError(f"log index {index} is not a draft in the verified log")
        return entry

    def receipt(self, index: int) -> Receipt:
        """The receipt at ``index``."""
        entry = self.parsed[index]
        if not isinstance(entry, Receipt):
            raise StateError(f"log index {index} is not a receipt")
        return entry


class LocalState:
    """The SQLite file holding a client's verified state (see module docstring)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / STATE_FILE
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_seen_column()
            self.path.chmod(0o600)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"cannot open local state {self.path}: {exc}") from exc
        self._in_txn = False

    def _add_seen_column(self) -> None:
        """Homes created before promises recorded their arrival gain the column."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(promises)")}
        if "seen" in columns:
            return
        try:
            self._db.execute("ALTER TABLE promises ADD COLUMN seen INTEGER")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process added it first
                raise

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable write transaction (nested calls join the outer one)."""
        if self._in_txn:
            yield self._db
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StateError(f"local state is busy or damaged: {exc}") from exc
        self._in_txn = True
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StateError(f"cannot commit local state: {exc}") from exc
        finally:
            self._in_txn = False

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise StateError(f"local state is damaged: {exc}") from exc

    # -- meta -------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """A meta value (JSON-decoded), or ``default``."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        if not rows:
            return default
        try:
            return json.loads(rows[0][0])
        except ValueError as exc:
            raise StateError(f"local state value {key!r} is damaged") from exc

    def set(self, key: str, value: Any) -> None:
        """Set a meta value (JSON-encoded); ``None`` deletes it."""
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value, sort_keys=True)),
                )

    # -- pins -------------------------------------------------------------------------

    @property
    def server(self) -> str | None:
        """The server URL this home talks to."""
        value = self.get("server")
        return value if isinstance(value, str) else None

    def genesis(self) -> Genesis | None:
        """The pinned genesis, re-verified, or ``None`` before joining or founding."""
        raw = self.get("genesis")
        if raw is None:
            return None
        try:
            genesis = Genesis.from_bytes(raw.encode("utf-8"))
            genesis.check_talks(b64d(self.get("talks"), length=32))
        except (ProtocolError, AttributeError) as exc:
            raise StateError("pinned genesis in the local state is damaged") from exc
        return genesis

    def pin_genesis(self, genesis: Genesis) -> None:
        """Pin the talks: store the genesis and its talks id (once; never replaced)."""
        existing = self.genesis()
        if existing is not None:
            if existing.talks_id != genesis.talks_id:
                raise Alarm("key_change", "the server's genesis differs from the pinned one")
            return
        with self.transaction() as db:
            self.set("genesis", genesis.to_bytes().decode("utf-8"))
            self.set("talks", b64e(genesis.talks_id))
            db.execute("DELETE FROM entries")
            db.execute("INSERT INTO entries (idx, data) VALUES (0, ?)", (genesis.to_bytes(),))

    # -- the verified log ---------------------------------------------------------------

    def load_log(self) -> VerifiedLog | None:
        """Replay every stored entry through a fresh ledger (verifying them again)."""
        genesis = self.genesis()
        if genesis is None:
            return None
        log = VerifiedLog(genesis)
        rows = self._query("SELECT idx, data FROM entries WHERE idx > 0 ORDER BY idx")
        for idx, data in rows:
            if idx != log.size:
                raise StateError(f"local state is missing log entry {log.size}")
            try:
                log.append(bytes(data))
            except ProtocolError as exc:
                raise StateError(
                    f"stored log entry {idx} no longer verifies ({exc.code}): local state "
                    "was modified"
                ) from exc
        return log

    def stored_size(self) -> int:
        """Number of entries stored."""
        rows = self._query("SELECT COUNT(*) FROM entries")
        return int(rows[0][0])

    def commit_entries(
        self, first: int, entries: Sequence[bytes], checkpoint: StoredCheckpoint
    ) -> None:
        """Store verified ``entries`` (starting at index ``first``) and the checkpoint that
        covers them, atomically."""
        with self.transaction() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
            if count != first:
                raise StateError(
                    "local state changed while syncing (is another docket process running "
                    "on this home?); run the command again"
                )
            db.executemany(
                "INSERT INTO entries (idx, data) VALUES (?, ?)",
                [(first + i, data) for i, data in enumerate(entries)],
            )
            self.set("checkpoint", checkpoint.to_json())

    def checkpoint(self) -> StoredCheckpoint | None:
        """The last verified checkpoint."""
        value = self.get("checkpoint")
        return None if value is None else StoredCheckpoint.from_json(value)

    def trusted_checkpoint(self) -> StoredCheckpoint | None:
        """The most recent checkpoint seen with the witness quorum."""
        value = self.get("trusted")
        return None if value is None else StoredCheckpoint.from_json(value)

    def witness_state(self, origin: str) -> WitnessState:
        """What this client last cosigned (the empty tree before its first cosignature)."""
        value = self.get("witness")
        if value is None:
            return WitnessState.initial(origin)
        try:
            return WitnessState.from_json(value)
        except ProtocolError as exc:
            raise StateError("stored witness state is damaged") from exc

    def set_witness_state(self, state: WitnessState) -> None:
        """Persist the witness state (before the cosignature leaves this machine)."""
        self.set("witness", state.to_json())

    # -- drafts cache -------------------------------------------------------------------

    def draft_record(self, index: int) -> DraftRecord | None:
        """The cached record of a received draft."""
        rows = self._query(
            "SELECT idx, keys, ciphertext, status, error, read, receipt FROM drafts WHERE idx = ?",
            (index,),
        )
        if not rows:
            return None
        idx, keys, ct, status, error, read, receipt = rows[0]
        return DraftRecord(
            index=idx,
            keys=json.loads(keys) if keys else None,
            ciphertext=bytes(ct) if ct is not None else None,
            status=status,
            error=error,
            read=bool(read),
            receipt=receipt,
        )

    def draft_records(self) -> list[DraftRecord]:
        """Every cached draft record, by index."""
        rows = self._query("SELECT idx FROM drafts ORDER BY idx")
        out = []
        for (idx,) in rows:
            record = self.draft_record(idx)
            if record is not None:
                out.append(record)
        return out

    def put_draft(
        self,
        index: int,
        *,
        keys: dict[str, str] | None,
        ciphertext: bytes | None,
        status: str,
        error: str | None,
    ) -> None:
        """Cache a received draft (encrypted) and whether it opened."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO drafts (idx, keys, ciphertext, status, error) VALUES (?,?,?,?,?) "
                "ON CONFLICT(idx) DO UPDATE SET keys=excluded.keys, "
                "ciphertext=excluded.ciphertext, status=excluded.status, error=excluded.error",
                (index, json.dumps(keys) if keys else None, ciphertext, status, error),
            )

    def mark_draft(
        self, index: int, *, read: bool | None = None, receipt: str | None = None
    ) -> None:
        """Record that a draft was read, or which receipt kind we submitted for it."""
        with self.transaction() as db:
            if read is not None:
                db.execute("UPDATE drafts SET read = ? WHERE idx = ?", (int(read), index))
            if receipt is not None:
                db.execute("UPDATE drafts SET receipt = ? WHERE idx = ?", (receipt, index))

    # -- promises and alarms ------------------------------------------------------------

    def add_promise(self, index: int, promise: dict[str, JSONValue], *, seen: int) -> None:
        """Keep the server's signed promise for one of our writes, and when it arrived
        by our own clock (``seen``, ms): the promise's ``time`` is the server's word, and
        a server could date it in the future to look punctual forever."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO promises (idx, promise, seen) VALUES (?, ?, ?)",
                (index, json.dumps(promise, sort_keys=True), seen),
            )

    def promises(self) -> dict[int, dict[str, Any]]:
        """Every promise kept, by index."""
        rows = self._query("SELECT idx, promise FROM promises ORDER BY idx")
        return {int(i): json.loads(p) for i, p in rows}

    def promise_seen(self) -> dict[int, int]:
        """When each kept promise arrived (ms, local clock), by index; promises stored
        before this was recorded are missing."""
        rows = self._query("SELECT idx, seen FROM promises WHERE seen IS NOT NULL")
        return {int(i): int(t) for i, t in rows}

    def drop_promises_below(self, size: int) -> None:
        """Forget promises the verified log has honoured (indices below ``size``)."""
        with self.transaction() as db:
            db.execute("DELETE FROM promises WHERE idx < ?", (size,))

    def record_alarm(self, alarm: Alarm) -> None:
        """Persist an alarm (and freeze sending after a rollback or fork)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO alarms (name, detail, idx, time) VALUES (?, ?, ?, ?)",
                (alarm.name, alarm.detail, alarm.index, int(time.time() * 1000)),
            )
            if alarm.name in ("rollback", "fork"):
                self.set("frozen", {"alarm": alarm.name, "detail": alarm.detail})

    def alarms(self) -> list[AlarmRecord]:
        """Every alarm recorded, oldest first."""
        rows = self._query("SELECT name, detail, idx, time FROM alarms ORDER BY id")
        return [AlarmRecord(name=n, detail=d, index=i, time=t) for n, d, i, t in rows]

    # -- small typed accessors ----------------------------------------------------------

    def member_id(self) -> str | None:
        """Our own member id, once known."""
        value = self.get("member")
        return value if isinstance(value, str) else None

    def device_known(self, device: DeviceId) -> bool:
        """Whether ``device`` is the device this state was created for."""
        value = self.get("device")
        return isinstance(value, str) and b64d(value) == device
