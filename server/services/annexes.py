"""Annex uploads and downloads: chunked, resumable, never held whole.

Theory of operation
-------------------
An annex (:mod:`protocol.annex`) travels beside its draft.  The sender

1. declares an upload (``POST /v1/annexes``: plaintext length, chunk size, chunk count),
   within ``max_annex`` and ``max_open_annexes``;
2. sends the chunks (``PUT .../chunks/i``), several at a time in any order, so that one
   chunk's fsync overlaps the next one's transfer.  Each is written to a temporary
   file, fsynced, renamed to ``blobs/annex/<id>/<i>`` and fsynced into its folder, and
   only then recorded (its hash, and one more ``received``) in one transaction: a chunk
   is acknowledged only once durable.  A chunk already held is accepted again only with
   the same bytes (a retry) and refused otherwise (``chunk_conflict``), so a resumed
   upload can never splice two different files; concurrent uploads of the same chunk
   are serialised, so the file on disk is always the one whose hash was recorded;
3. finishes (``POST .../finish`` with the annex hash): the server recomputes the hash
   over the chunk hashes it recorded and refuses a mismatch (``annex_mismatch``);
4. logs the draft whose encrypted payload names the annex, and attaches the annex to it
   (``POST .../attach``): only the draft's own sender device, only once per annex and
   per draft.

Recipients read chunk ``i`` of the annex of the draft at ``index``
(``GET /v1/drafts/{index}/annex/{i}``) exactly when they may read the draft: anyone
else gets the same 404 as for a draft that does not exist.  Until the annex is
attached, recipients get ``annex_pending`` and retry.

The server learns only sizes; what the chunks are, and that they are the ones the
sender meant, is checked by each recipient against the manifest in the signed,
encrypted payload.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import annex, crypto
from protocol.annex import AnnexHasher
from protocol.encoding import JSONValue, b64e
from protocol.errors import BadValueError, ProtocolError, TooLargeError
from server.clock import Clock
from server.errors import NotFoundError
from server.services.auth import Caller
from server.services.blobs import fsync_dir
from server.services.relay import RelayService
from server.storage.db import Store

ANNEX_DIR = "annex"
MAX_ID = 64


class ChunkConflictError(ProtocolError):
    """A chunk already stored was sent again with other bytes."""

    code = "chunk_conflict"
    status = 409


class AnnexMismatchError(ProtocolError):
    """The finished annex's hash is not the one the sender claims."""

    code = "annex_mismatch"
    status = 409


class AnnexStateError(ProtocolError):
    """The upload is not in a state for this step (unfinished, finished, attached)."""

    code = "annex_state"
    status = 409


class AnnexPendingError(ProtocolError):
    """The draft names an annex whose upload is not attached yet: retry later."""

    code = "annex_pending"
    status = 404


class AnnexLimitError(ProtocolError):
    """Too many unfinished uploads for this device."""

    code = "annex_limit"
    status = 429


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    owner: bytes
    length: int
    chunk: int
    chunks: int
    received: int
    hash: bytes | None
    draft: int | None

    def chunk_len(self, index: int) -> int:
        if index < self.chunks - 1:
            return self.chunk + annex.ABYTES
        return self.length - self.chunk * (self.chunks - 1) + annex.ABYTES


def _row(row: Any) -> Upload | None:
    if row is None:
        return None
    id_, owner, length, chunk, chunks, received, hash_, draft = row
    return Upload(
        id=str(id_),
        owner=bytes(owner),
        length=int(length),
        chunk=int(chunk),
        chunks=int(chunks),
        received=int(received),
        hash=None if hash_ is None else bytes(hash_),
        draft=None if draft is None else int(draft),
    )


_SELECT = "SELECT id, owner, length, chunk, chunks, received, hash, draft_idx FROM annexes"


def _upload_txn(conn: sqlite3.Connection, upload_id: str) -> Upload | None:
    return _row(conn.execute(_SELECT + " WHERE id = ?", (upload_id,)).fetchone())


def _by_draft_txn(conn: sqlite3.Connection, index: int) -> Upload | None:
    return _row(conn.execute(_SELECT + " WHERE draft_idx = ?", (index,)).fetchone())


def _hashes_txn(conn: sqlite3.Connection, upload_id: str) -> dict[int, bytes]:
    """Chunk index -> hash of every chunk held, in index order."""
    return {
        int(idx): bytes(h)
        for idx, h in conn.execute(
            "SELECT idx, hash FROM annex_chunks WHERE annex = ? ORDER BY idx", (upload_id,)
        )
    }


def _create_txn(  # noqa: PLR0917 - one row's columns
    conn: sqlite3.Connection,
    upload_id: str,
    owner: bytes,
    length: int,
    chunk: int,
    chunks: int,
    now: int,
    limit: int,
) -> None:
    (open_,) = conn.execute(
        "SELECT count(*) FROM annexes WHERE owner = ? AND hash IS NULL", (owner,)
    ).fetchone()
    if open_ >= limit:
        raise AnnexLimitError(f"at most {limit} unfinished annex uploads per device")
    conn.execute(
        "INSERT INTO annexes (id, owner, length, chunk, chunks, received, hash, draft_idx,"
        " created) VALUES (?, ?, ?, ?, ?, 0, NULL, NULL, ?)",
        (upload_id, owner, length, chunk, chunks, now),
    )


def _chunk_hash_txn(conn: sqlite3.Connection, upload_id: str, index: int) -> bytes | None:
    row = conn.execute(
        "SELECT hash FROM annex_chunks WHERE annex = ? AND idx = ?", (upload_id, index)
    ).fetchone()
    return None if row is None else bytes(row[0])


def _chunk_txn(conn: sqlite3.Connection, upload_id: str, index: int, digest: bytes) -> int:
    conn.execute(
        "INSERT INTO annex_chunks (annex, idx, hash) VALUES (?, ?, ?)", (upload_id, index, digest)
    )
    conn.execute("UPDATE annexes SET received = received + 1 WHERE id = ?", (upload_id,))
    (received,) = conn.execute("SELECT received FROM annexes WHERE id = ?", (upload_id,)).fetchone()
    return int(received)


def _finish_txn(conn: sqlite3.Connection, upload_id: str, digest: bytes) -> None:
    conn.execute("UPDATE annexes SET hash = ? WHERE id = ? AND hash IS NULL", (digest, upload_id))


def _attach_txn(conn: sqlite3.Connection, upload_id: str, index: int, owner: bytes) -> None:
    row = conn.execute("SELECT sender FROM drafts WHERE idx = ?", (index,)).fetchone()
    if row is None or not crypto.equal(bytes(row[0]), owner):
        raise NotFoundError("no draft of yours at that index")
    taken = conn.execute("SELECT id FROM annexes WHERE draft_idx = ?", (index,)).fetchone()
    if taken is not None:
        if str(taken[0]) == upload_id:
            return
        raise AnnexStateError("that draft already has an annex")
    conn.execute(
        "UPDATE annexes SET draft_idx = ? WHERE id = ? AND draft_idx IS NULL", (index, upload_id)
    )
    if (
        conn.execute("SELECT draft_idx FROM annexes WHERE id = ?", (upload_id,)).fetchone()[0]
        != index
    ):
        raise AnnexStateError("this annex is attached to another draft")


class AnnexService:
    """Declare, receive, finish, attach and serve annexes (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        blob_root: Path,
        relay: RelayService,
        clock: Clock,
        max_annex: int,
        max_open: int,
    ) -> None:
        self._store = store
        self.root = blob_root / ANNEX_DIR
        self._relay = relay
        self._clock = clock
        self._max = max_annex
        self._max_open = max_open
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, upload_id: str) -> Path:
        return self.root / upload_id

    async def _owned(self, caller: Caller, upload_id: str) -> Upload:
        upload = await self._store.read(_upload_txn, upload_id)
        if upload is None or not crypto.equal(upload.owner, bytes(caller.device)):
            raise NotFoundError("no such annex upload")
        return upload

    async def create(self, caller: Caller, *, length: int, chunk: int, chunks: int) -> Upload:
        if length > self._max:
            raise TooLargeError(f"annex larger than this server's limit of {self._max} bytes")
        if not annex.MIN_CHUNK <= chunk <= annex.MAX_CHUNK:
            raise BadValueError(f"chunk size must be {annex.MIN_CHUNK}..{annex.MAX_CHUNK}")
        if chunks != annex.chunk_count(length, chunk):
            raise BadValueError("chunk count does not match the length and chunk size")
        upload_id = secrets.token_urlsafe(18)
        self._dir(upload_id).mkdir(parents=True)
        await self._store.write(
            _create_txn,
            upload_id,
            bytes(caller.device),
            length,
            chunk,
            chunks,
            self._clock(),
            self._max_open,
        )
        fsync_dir(self.root)
        return Upload(upload_id, bytes(caller.device), length, chunk, chunks, 0, None, None)

    async def status(self, caller: Caller, upload_id: str) -> dict[str, JSONValue]:
        upload = await self._owned(caller, upload_id)
        hashes = await self._store.read(_hashes_txn, upload_id)
        return {
            "chunk": upload.chunk,
            "chunks": upload.chunks,
            "draft": upload.draft,
            "hash": None if upload.hash is None else b64e(upload.hash),
            "hashes": {str(i): b64e(h) for i, h in hashes.items()},
            "id": upload.id,
            "length": upload.length,
            "received": upload.received,
        }

    async def put_chunk(self, caller: Caller, upload_id: str, index: int, data: bytes) -> int:
        """Store chunk ``index`` durably; return how many chunks are now held."""
        key = (upload_id, index)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            upload = await self._owned(caller, upload_id)
            if upload.hash is not None:
                raise AnnexStateError("the upload is finished")
            if not 0 <= index < upload.chunks:
                raise AnnexStateError(f"the upload has chunks 0..{upload.chunks - 1}")
            if len(data) != upload.chunk_len(index):
                raise BadValueError(f"chunk {index} must be {upload.chunk_len(index)} bytes")
            digest = annex.chunk_hash(data)
            held = await self._store.read(_chunk_hash_txn, upload_id, index)
            if held is not None:
                if not crypto.equal(held, digest):
                    raise ChunkConflictError(f"chunk {index} is already held with other bytes")
                return upload.received
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._persist, upload_id, index, data)
            return await self._store.write(_chunk_txn, upload_id, index, digest)

    def _persist(self, upload_id: str, index: int, data: bytes) -> None:
        folder = self._dir(upload_id)
        tmp = folder / f"{index}.{secrets.token_hex(8)}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / str(index))
        fsync_dir(folder)

    async def finish(self, caller: Caller, upload_id: str, claimed: bytes) -> None:
        upload = await self._owned(caller, upload_id)
        if upload.received != upload.chunks:
            raise AnnexStateError(f"{upload.chunks - upload.received} chunks are missing")
        hasher = AnnexHasher(chunks=upload.chunks, length=upload.length)
        for digest in (await self._store.read(_hashes_txn, upload_id)).values():
            hasher.add(digest)
        if not crypto.equal(hasher.digest(), claimed):
            raise AnnexMismatchError("the chunks held hash to another annex hash")
        if upload.hash is None:
            await self._store.write(_finish_txn, upload_id, claimed)
        for index in range(upload.chunks):  # no more chunks: their locks can go
            self._locks.pop((upload_id, index), None)

    async def attach(self, caller: Caller, upload_id: str, index: int) -> None:
        upload = await self._owned(caller, upload_id)
        if upload.hash is None:
            raise AnnexStateError("finish the upload before attaching it")
        await self._store.write(_attach_txn, upload_id, index, bytes(caller.device))

    async def chunk_path(self, caller: Caller, index: int, chunk: int) -> Path:
        """The file of chunk ``chunk`` of the draft ``index``'s annex, for its readers."""
        await self._relay.draft(caller, index)  # 404 unless the caller may read the draft
        upload = await self._store.read(_by_draft_txn, index)
        if upload is None:
            raise AnnexPendingError("the draft's annex is not attached yet")
        if not 0 <= chunk < upload.chunks:
            raise NotFoundError("no such annex chunk")
        return self._dir(upload.id) / str(chunk)
