"""Ciphertext blobs on disk: ``DATA/blobs/<hex SHA-256>``, written via ``blobs/tmp``.

An upload streams into a temporary file while its SHA-256 and length are computed; only
if both match the signed header is the file fsynced and renamed to its final name, all
before the draft's log entry is committed, so a promised draft always has its blob.

A blob whose draft was then rejected is removed again unless a logged draft or another
upload in flight uses the same bytes (two uploads of one ciphertext share one file).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

from protocol import crypto
from protocol.errors import CiphertextMismatchError
from server.storage.db import Store
from server.storage.relay import all_ct_hashes_txn, ct_hash_referenced_txn

log = logging.getLogger("docket.blobs")


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Ciphertext files by hash, with reference counts for uploads in flight."""

    def __init__(self, root: Path, store: Store) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self._store = store
        self._refs: dict[bytes, int] = defaultdict(int)
        self._generation: dict[bytes, int] = defaultdict(int)

    def path(self, ct_hash: bytes) -> Path:
        """Where the blob with this ciphertext hash lives."""
        return self.root / ct_hash.hex()

    async def start(self) -> None:
        """Create the directories and delete leftovers of interrupted or rejected uploads."""
        self.root.mkdir(mode=0o700, exist_ok=True)
        self.tmp.mkdir(mode=0o700, exist_ok=True)
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        keep = await self._store.read(all_ct_hashes_txn)
        for blob in self.root.iterdir():
            if blob.is_file() and len(blob.name) == 64:
                try:
                    name = bytes.fromhex(blob.name)
                except ValueError:
                    continue
                if name not in keep:
                    log.info("removing unreferenced blob %s", blob.name)
                    blob.unlink(missing_ok=True)

    # -- holding -----------------------------------------------------------------------

    def hold(self, ct_hash: bytes) -> None:
        """Mark a blob as in use by an upload in flight (it must not be discarded)."""
        self._refs[ct_hash] += 1
        self._generation[ct_hash] += 1

    def release(self, ct_hash: bytes) -> None:
        """The upload that held ``ct_hash`` is done (logged or not)."""
        self._refs[ct_hash] -= 1
        if self._refs[ct_hash] <= 0:
            del self._refs[ct_hash]
            self._generation.pop(ct_hash, None)

    async def discard(self, ct_hash: bytes) -> None:
        """Remove a blob nobody uses: no logged draft, no upload in flight.

        The generation counter closes the race in which another upload of the same bytes
        starts, commits and finishes while we ask the database: then we keep the file.
        """
        if self._refs.get(ct_hash, 0) > 0:
            return
        generation = self._generation.get(ct_hash, 0)
        referenced = await self._store.read(ct_hash_referenced_txn, ct_hash)
        if referenced or self._refs.get(ct_hash, 0) > 0:
            return
        if self._generation.get(ct_hash, 0) != generation:
            return
        self.path(ct_hash).unlink(missing_ok=True)

    # -- receiving -----------------------------------------------------------------------

    async def receive(
        self, chunks: AsyncIterator[bytes], *, ct_hash: bytes, ct_len: int, keep: bool = False
    ) -> bytes | None:
        """Stream ``chunks`` to disk; keep them as blob ``ct_hash`` only if they match.

        With ``keep`` (small drafts only) the ciphertext is also returned, so that it can
        be pushed inline to recipients.  Raises :class:`CiphertextMismatchError` (the
        temporary file is removed) if the bytes are longer or shorter than ``ct_len`` or
        hash to anything but ``ct_hash``.
        The caller must :meth:`hold` the hash around this call and the commit.
        """
        loop = asyncio.get_running_loop()
        tmp = self.tmp / secrets.token_hex(16)
        if keep:
            # Small: collect in memory, then create, write, fsync and rename on a worker
            # thread (no file-system call on the event loop).
            data = await self._collect(chunks, ct_hash=ct_hash, ct_len=ct_len)
            await loop.run_in_executor(None, self._write_small, data, tmp, self.path(ct_hash))
            return data
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fh = os.fdopen(fd, "wb")
        # Streaming hash: protocol.crypto.sha256 is one-shot, and a 64 MiB draft must
        # not be held in memory to hash it.
        digest = hashlib.sha256()
        received = 0
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > ct_len:
                    raise CiphertextMismatchError("ciphertext is longer than the header says")
                digest.update(chunk)
                fh.write(chunk)
            if received != ct_len or not crypto.equal(digest.digest(), ct_hash):
                raise CiphertextMismatchError("ciphertext differs from the signed header")
            await loop.run_in_executor(None, self._persist, fh, tmp, self.path(ct_hash))
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        return None

    @staticmethod
    async def _collect(chunks: AsyncIterator[bytes], *, ct_hash: bytes, ct_len: int) -> bytes:
        parts: list[bytes] = []
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received > ct_len:
                raise CiphertextMismatchError("ciphertext is longer than the header says")
            parts.append(chunk)
        data = b"".join(parts)
        if received != ct_len or not crypto.equal(crypto.sha256(data), ct_hash):
            raise CiphertextMismatchError("ciphertext differs from the signed header")
        return data

    def _write_small(self, data: bytes, tmp: Path, final: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.root)

    def _persist(self, fh: io.BufferedWriter, tmp: Path, final: Path) -> None:
        # fsync the data, rename into place, fsync the directory: durable before commit.
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, final)
        fsync_dir(self.root)
