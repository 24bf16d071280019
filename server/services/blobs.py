"""Ciphertexts: small ones in the database, larger ones as files ``DATA/blobs/<hex SHA-256>``.

A ciphertext of at most :data:`DB_CIPHERTEXT_MAX` bytes is checked in memory and written
by the sequencer into the ``ciphertexts`` table in the very transaction that logs its
draft (one WAL fsync per group commit covers it; measured, a file per draft cost two
fsyncs, a rename and a worker thread each: about a third of the server's CPU per entry).
A larger upload streams into a temporary file while its SHA-256 and length are
computed; only if both match the signed header is the file fsynced and renamed to its
final name, all before the draft's log entry is committed, so a promised draft always
has its ciphertext.

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

DB_CIPHERTEXT_MAX = 64 * 1024
"""Ciphertexts up to this size are stored in the database, larger ones as files."""


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
        self,
        chunks: AsyncIterator[bytes],
        *,
        ct_hash: bytes,
        ct_len: int,
        in_database: bool = False,
        check_hash: bool = True,
    ) -> bytes | None:
        """Check ``chunks`` against ``ct_len`` and ``ct_hash`` and keep them.

        With ``in_database`` (small drafts) the ciphertext is collected in memory and
        returned: the sequencer writes it in the transaction that logs its draft, so it
        is durable exactly when the draft is, with no file and no fsync of its own.
        Otherwise it is streamed to a temporary file that becomes blob ``ct_hash``
        (fsynced and renamed) only if it matches, and ``None`` is returned; the caller
        must then :meth:`hold` the hash around this call and the commit.  Raises
        :class:`CiphertextMismatchError` (nothing kept) if the bytes are longer or
        shorter than ``ct_len`` or hash to anything but ``ct_hash``.
        """
        if in_database:
            return await self._collect(
                chunks, ct_hash=ct_hash if check_hash else None, ct_len=ct_len
            )
        if not check_hash:
            raise CiphertextMismatchError("an unhashed ciphertext is kept only in the database")
        loop = asyncio.get_running_loop()
        tmp = self.tmp / secrets.token_hex(16)
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
    async def _collect(
        chunks: AsyncIterator[bytes], *, ct_hash: bytes | None, ct_len: int
    ) -> bytes:
        parts: list[bytes] = []
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received > ct_len:
                raise CiphertextMismatchError("ciphertext is longer than the header says")
            parts.append(chunk)
        data = b"".join(parts)
        if received != ct_len or (
            ct_hash is not None and not crypto.equal(crypto.sha256(data), ct_hash)
        ):
            raise CiphertextMismatchError("ciphertext differs from the signed header")
        return data

    def _persist(self, fh: io.BufferedWriter, tmp: Path, final: Path) -> None:
        # fsync the data, rename into place, fsync the directory: durable before commit.
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, final)
        fsync_dir(self.root)
