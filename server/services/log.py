"""Reading the log: checkpoints with cosignatures, entry ranges, proofs; cosigning.

Everything served stays within the committed tree.  Proofs and roots at any size read
O(log n) stored nodes.

Serving proofs (theory of operation)
------------------------------------
A stored node never changes once written (:mod:`protocol.merkle`: only perfect subtrees
are stored), so proofs are served from two places:

1. **The upper tree in memory** (:class:`ProofNodes`): every committed node at levels
   ``>= min_level``, packed 32 bytes per node in one ``bytearray`` per level.
   ``min_level`` is the lowest level for which that stays within
   :data:`PROOF_CACHE_NODES` nodes (4 MiB), so memory is bounded whatever the log's size
   (at 1M entries: levels 4 and up).  The cache only grows, lazily: when a proof needs
   nodes beyond it, the next batched read also extends it to the committed size of that
   moment (and drops levels below the new ``min_level`` when the log has doubled).
2. **One batched read for the rest**: the coordinates a proof still lacks (its lowest
   levels) are queued; one reader-thread task fetches, in one snapshot, everything
   queued by all concurrent proofs (:func:`~server.storage.log.nodes_txn`), then wakes
   them all.  The thread hop, the costly part of a small read, is paid once per batch,
   not once per proof; a proof fully inside the cache never leaves the event loop.

A node missing from the store raises :class:`LookupError` (a storage fault: the error
middleware answers a bare 500), exactly as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

from protocol import merkle
from protocol.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    SignedNote,
    parse_note,
)
from protocol.errors import CheckpointError
from protocol.merkle import HASH_LEN, Coord
from protocol.quorum import check_cosignature_time, cosignature_time, quorum_cosigners
from server.clock import Clock
from server.errors import BadQueryError, NotFoundError
from server.services.state import LogState
from server.storage.db import Store
from server.storage.log import (
    checkpoint_txn,
    checkpoint_with_cosignatures_txn,
    entries_range_txn,
    last_cosignature_line_txn,
    node_runs_txn,
    nodes_txn,
    upsert_cosignature_txn,
)

MAX_ENTRIES = 1000
MAX_ENTRIES_BYTES = 8 * 1024 * 1024
"""A range answer stops early past this many entry bytes; clients continue from there."""

PROOF_CACHE_NODES = 1 << 17
"""Upper bound on the nodes :class:`ProofNodes` keeps in memory (32 bytes each: 4 MiB)."""


def cache_min_level(size: int, budget: int = PROOF_CACHE_NODES) -> int:
    """The lowest level ``k`` whose nodes and all above (``sum(size >> l, l >= k)``, the
    perfect subtrees of a tree of ``size``) fit in ``budget`` nodes."""
    level = 0
    while sum(size >> lv for lv in range(level, size.bit_length())) > budget:
        level += 1
    return level


def _batch_txn(
    conn: sqlite3.Connection, coords: Sequence[Coord], runs: Sequence[tuple[int, int, int]]
) -> tuple[dict[Coord, bytes], list[bytearray]]:
    """One snapshot: the nodes at ``coords`` and the packed runs extending the cache."""
    return nodes_txn(conn, coords), node_runs_txn(conn, runs)


class _Given:
    """A :class:`~protocol.merkle.NodeReader` answering exactly the coordinates a proof
    was computed from (:func:`~protocol.merkle.inclusion_coords`), already fetched."""

    __slots__ = ("_coords", "_hashes")

    def __init__(self, coords: list[Coord], hashes: list[bytes]) -> None:
        self._coords = coords
        self._hashes = hashes

    def get_nodes(self, coords: Sequence[Coord]) -> Sequence[bytes]:
        if coords != self._coords:  # pragma: no cover - the same function computed both
            raise LookupError("proof asked for other nodes than were fetched")
        return self._hashes


class ProofNodes:
    """The committed tree's nodes for proofs: the upper levels in memory, the rest read
    in batches shared by concurrent requests (see the module docstring)."""

    def __init__(self, *, state: LogState, store: Store, budget: int = PROOF_CACHE_NODES) -> None:
        self._state = state
        self._store = store
        self._budget = budget
        self._levels: dict[int, bytearray] = {}
        self._min_level = 0
        self._size = 0
        self._queue: list[tuple[list[Coord], asyncio.Future[dict[Coord, bytes]]]] = []
        self._task: asyncio.Task[None] | None = None
        self.reads = 0
        """Batched reads made so far (tests and benchmarks)."""

    async def run(self, level: int, start: int, end: int) -> bytes:
        """The hashes of nodes ``start .. end - 1`` of ``level`` (all committed), packed
        32 bytes each: a slice of the cache, else one range read (a tile, see
        :mod:`server.handlers.tiles`)."""
        packed = self._levels.get(level)
        if packed is not None and end * HASH_LEN <= len(packed):
            return bytes(packed[start * HASH_LEN : end * HASH_LEN])
        [found] = await self._store.read(node_runs_txn, [(level, start, end)])
        return bytes(found)

    @property
    def cached_nodes(self) -> int:
        return sum(len(packed) for packed in self._levels.values()) // HASH_LEN

    async def get(self, coords: list[Coord]) -> list[bytes]:
        """The hashes at ``coords`` (all within the committed tree), in order."""
        # One pass, no per-node method call: this runs on the event loop for every proof.
        levels = self._levels
        hashes: list[bytes | None] = []
        missing: list[Coord] = []
        for coord in coords:
            packed = levels.get(coord[0])
            at = coord[1] * HASH_LEN
            if packed is not None and at + HASH_LEN <= len(packed):
                hashes.append(bytes(packed[at : at + HASH_LEN]))
            else:
                hashes.append(None)
                missing.append(coord)
        if not missing:
            return hashes  # type: ignore[return-value]  # no None left
        found = await self._fetch(missing)
        out: list[bytes] = []
        for c, cached in zip(coords, hashes, strict=True):
            h = cached if cached is not None else found.get(c)
            if h is None:
                raise LookupError(f"no stored Merkle node at {c}")
            out.append(h)
        return out

    async def _fetch(self, coords: list[Coord]) -> dict[Coord, bytes]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[Coord, bytes]] = loop.create_future()
        self._queue.append((coords, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return await future

    def _runs(self, size: int) -> tuple[int, list[tuple[int, int, int]]]:
        """The new ``min_level`` for ``size`` and the node runs the cache lacks."""
        low = max(self._min_level, cache_min_level(size, self._budget))
        runs = []
        for level in range(low, size.bit_length()):
            have = len(self._levels.get(level, b"")) // HASH_LEN
            want = size >> level
            if want > have:
                runs.append((level, have, want))
        return low, runs

    def _extend(
        self, size: int, low: int, runs: list[tuple[int, int, int]], packed: list[bytearray]
    ) -> None:
        for level in [lv for lv in self._levels if lv < low]:
            del self._levels[level]
        self._min_level = low
        for (level, start, _), data in zip(runs, packed, strict=True):
            target = self._levels.setdefault(level, bytearray())
            if len(target) == start * HASH_LEN:  # else another batch got there first
                target += data
        self._size = max(self._size, size)

    async def _drain(self) -> None:
        """Serve queued fetches, one batched read at a time, until the queue is empty."""
        batch: list[tuple[list[Coord], asyncio.Future[dict[Coord, bytes]]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                wanted = sorted({c for coords, _ in batch for c in coords})
                size = self._state.committed_size
                low, runs = self._runs(size) if size > self._size else (self._min_level, [])
                try:
                    found, packed = await self._store.read(_batch_txn, wanted, runs)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.reads += 1
                if runs or low != self._min_level:
                    self._extend(size, low, runs, packed)
                for _, future in batch:
                    if not future.done():
                        future.set_result(found)
        finally:
            self._task = None
            for _, future in batch + self._queue:  # cancelled (shutdown): nobody waits
                if not future.done():
                    future.cancel()
            self._queue = []


class LogService:
    """Read the committed log and collect witness cosignatures."""

    def __init__(
        self,
        *,
        state: LogState,
        store: Store,
        clock: Clock,
        proof_cache_nodes: int = PROOF_CACHE_NODES,
    ) -> None:
        self._state = state
        self._store = store
        self._clock = clock
        self.nodes = ProofNodes(state=state, store=store, budget=proof_cache_nodes)

    async def checkpoint(self, size: int | None) -> bytes:
        """The checkpoint note (latest, or signed at ``size``) with its cosignatures."""
        self._state.require_ledger()
        found = await self._store.read(checkpoint_with_cosignatures_txn, size)
        if found is None:
            raise NotFoundError("no checkpoint at that size")
        row, lines = found
        # The stored note ends with the log's signature line; cosignature lines follow it.
        return row.note + "".join(lines[: MAX_SIGNATURES - 1]).encode("utf-8")

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Entries ``[start, end)`` within the committed log, at most 1000."""
        self._state.require_ledger()
        if start < 0 or end < start:
            raise BadQueryError("need 0 <= start <= end")
        end = min(end, start + MAX_ENTRIES, self._state.committed_size)
        if end <= start:
            return []
        return await self._store.read(entries_range_txn, start, end, MAX_ENTRIES_BYTES)

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """Audit path of entry ``index`` in the tree of ``size`` (``size`` committed)."""
        self._state.require_ledger()
        if not 0 <= index < size <= self._state.committed_size:
            raise BadQueryError("need 0 <= index < size <= the committed log size")
        coords = merkle.inclusion_coords(index, size)
        hashes = await self.nodes.get(coords)
        return merkle.inclusion_proof(index, size, _Given(coords, hashes))

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """Consistency proof from ``old`` to ``new`` (both within the committed log)."""
        self._state.require_ledger()
        if not 0 <= old <= new <= self._state.committed_size:
            raise BadQueryError("need 0 <= old <= new <= the committed log size")
        coords = merkle.consistency_coords(old, new)
        hashes = await self.nodes.get(coords)
        return merkle.consistency_proof(old, new, _Given(coords, hashes))

    async def cosign(self, size: int, line: str) -> list[str]:
        """Store a witness cosignature of the checkpoint signed at ``size``.

        It must verify under a key that the current roster gives that witness name
        (``Roster.witnesses``).  Returns every witness that has cosigned that size.
        """
        ledger = self._state.require_ledger()
        self._state.require_writable()
        sig = NoteSignature.from_line(line)
        row = await self._store.read(checkpoint_txn, size)
        if row is None:
            raise NotFoundError("no checkpoint was signed at that size")
        cp = Checkpoint.from_body(parse_note(row.note).text)
        roster = ledger.roster
        keys = roster.witnesses().get(sig.name) or roster.former_witnesses.get(sig.name)
        if keys is None:
            raise CheckpointError("not a witness of these talks")
        note = SignedNote(text=cp.body(), signatures=(sig,))
        if sig.name not in quorum_cosigners(cp, note, {sig.name: keys}):
            raise CheckpointError("the cosignature does not verify for that witness")
        # Cosignature times (protocol.quorum): not from the future, never older than the
        # last one this witness gave, and fresh enough to vouch for a current view.
        last_line = await self._store.read(last_cosignature_line_txn, sig.name)
        last = None if last_line is None else cosignature_time(NoteSignature.from_line(last_line))
        check_cosignature_time(
            cosignature_time(sig),
            now=self._clock() // 1000,
            last=last,
            max_age=ledger.roster.policy.max_age,
        )
        return await self._store.write(
            upsert_cosignature_txn, size, sig.name, sig.line(), self._clock()
        )
