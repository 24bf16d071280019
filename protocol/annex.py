"""Annexes: files too large to hold in memory, sealed as an authenticated stream.

Theory of operation
-------------------
An annex (a map, imagery, a scanned treaty) is encrypted chunk by chunk with libsodium's
secretstream (XChaCha20-Poly1305, :func:`protocol.crypto.stream_pusher`): every chunk
carries its own tag and the stream's state advances with each, so a chunk moved to
another position, dropped or taken from another stream fails to decrypt, and the last
chunk alone carries the ``FINAL`` tag, so a stream cut short is caught too.

The sender computes, while encrypting, the **annex hash**

    SHA-256(ctx(annex) || u64(chunks) || u64(length) || H(c_0) || ... || H(c_{n-1}))

over the ciphertext chunks ``c_i`` (``H`` is SHA-256), and puts a :class:`Manifest` (the
stream key, the stream header, the plaintext length, the chunk size, the chunk count and
that hash) in the draft's encrypted payload.  The payload is committed by the signed
draft header (its ciphertext hash and key commitment) and by every receipt, so the
header commits to the count, the length and the hash over the chunks, while the server
sees none of them but the sizes.

The server stores chunks as blobs as they arrive, each acknowledged once durable, and
checks the annex hash over what it holds before it lets a draft use the annex; a
recipient recomputes it while downloading, decrypts chunk by chunk and accepts the file
only when the final tag, the length, the count and the hash all agree.  Neither side
ever holds more than one chunk.

Resuming: the stream is deterministic given its key and header, so a sender that lost
its connection re-encrypts from the start, compares each chunk's hash with the hashes
the server has acknowledged, and sends only what is missing; a file changed in the
meantime shows up as a hash that differs and the upload starts afresh.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from protocol import crypto
from protocol.encoding import Fields, JSONValue, b64e
from protocol.errors import BadValueError, DecryptionError, MalformedError

CHUNK_SIZE = 2 * 1024 * 1024
"""Plaintext bytes per chunk (the last may be shorter).  Large enough that the per-chunk
round trip and fsync are small beside the chunk's transfer, small enough to hold a few."""
MIN_CHUNK = 4096
MAX_CHUNK = 8 * 1024 * 1024
MAX_LENGTH = 1 << 42
"""The protocol's ceiling on an annex (4 TiB); servers set a lower limit."""
ABYTES = crypto.STREAM_ABYTES
HEADER_BYTES = crypto.STREAM_HEADER_BYTES


def chunk_count(length: int, chunk_size: int) -> int:
    """Chunks for ``length`` plaintext bytes: at least one (an empty file is one empty,
    final chunk)."""
    return max(1, -(-length // chunk_size))


def chunk_hash(ciphertext: bytes) -> bytes:
    return crypto.sha256(ciphertext)


class AnnexHasher:
    """The annex hash, fed one ciphertext chunk hash at a time."""

    def __init__(self, *, chunks: int, length: int) -> None:
        self._h = crypto.sha256_stream(crypto.CTX_ANNEX + struct.pack(">QQ", chunks, length))
        self.count = 0

    def add(self, digest: bytes) -> None:
        if len(digest) != 32:
            raise BadValueError("a chunk hash is 32 bytes")
        self._h.update(digest)
        self.count += 1

    def digest(self) -> bytes:
        return self._h.digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a recipient needs to fetch, check and decrypt an annex (inside the payload)."""

    key: bytes
    header: bytes
    length: int
    chunk_size: int
    chunks: int
    hash: bytes

    def __post_init__(self) -> None:
        if len(self.key) != crypto.STREAM_KEY_BYTES or len(self.header) != HEADER_BYTES:
            raise BadValueError("annex key or stream header has the wrong length")
        if not MIN_CHUNK <= self.chunk_size <= MAX_CHUNK:
            raise BadValueError(f"annex chunk size must be {MIN_CHUNK}..{MAX_CHUNK}")
        if not 0 <= self.length <= MAX_LENGTH:
            raise BadValueError("annex length out of range")
        if self.chunks != chunk_count(self.length, self.chunk_size):
            raise BadValueError("annex chunk count does not match its length")
        if len(self.hash) != 32:
            raise BadValueError("annex hash is 32 bytes")

    def chunk_len(self, index: int) -> int:
        """Ciphertext length of chunk ``index``."""
        if not 0 <= index < self.chunks:
            raise BadValueError("no such annex chunk")
        if index < self.chunks - 1:
            return self.chunk_size + ABYTES
        return self.length - self.chunk_size * (self.chunks - 1) + ABYTES

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "chunk": self.chunk_size,
            "chunks": self.chunks,
            "hash": b64e(self.hash),
            "header": b64e(self.header),
            "key": b64e(self.key),
            "length": self.length,
        }

    @classmethod
    def from_json(cls, obj: JSONValue) -> Manifest:
        f = Fields(obj, "annex")
        manifest = cls(
            chunk_size=f.int("chunk", lo=MIN_CHUNK, hi=MAX_CHUNK),
            chunks=f.int("chunks", lo=1),
            hash=f.bytes("hash", length=32),
            header=f.bytes("header", length=HEADER_BYTES),
            key=f.bytes("key", length=crypto.STREAM_KEY_BYTES),
            length=f.int("length", lo=0, hi=MAX_LENGTH),
        )
        f.done()
        return manifest


class AnnexSealer:
    """Encrypt an annex chunk by chunk; :meth:`manifest` once the last chunk is sealed."""

    def __init__(
        self,
        *,
        length: int,
        rng: crypto.Rng,
        chunk_size: int = CHUNK_SIZE,
        key: bytes | None = None,
        header: bytes | None = None,
    ) -> None:
        """``key`` and ``header`` given: re-create a stream already begun (resuming)."""
        self.length = length
        self.chunk_size = chunk_size
        self.chunks = chunk_count(length, chunk_size)
        self.key = crypto.new_stream_key(rng) if key is None else key
        self._push = crypto.stream_pusher(self.key, header, rng)
        self.header = self._push.header
        self._hasher = AnnexHasher(chunks=self.chunks, length=length)
        self._done = 0
        self._taken = 0

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt the next chunk (exactly ``chunk_size`` bytes but for the last)."""
        if self._done >= self.chunks:
            raise BadValueError("the annex has no more chunks")
        last = self._done == self.chunks - 1
        expected = self.length - self._taken if last else self.chunk_size
        if len(plaintext) != expected:
            raise BadValueError("an annex chunk has the wrong length")
        ciphertext = self._push.push(plaintext, final=last)
        self._hasher.add(chunk_hash(ciphertext))
        self._done += 1
        self._taken += len(plaintext)
        return ciphertext

    def manifest(self) -> Manifest:
        if self._done != self.chunks:
            raise BadValueError("the annex is not completely sealed")
        return Manifest(
            key=self.key,
            header=self.header,
            length=self.length,
            chunk_size=self.chunk_size,
            chunks=self.chunks,
            hash=self._hasher.digest(),
        )


class AnnexOpener:
    """Check and decrypt an annex's chunks in order against its :class:`Manifest`."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._pull = crypto.stream_puller(manifest.key, manifest.header)
        self._hasher = AnnexHasher(chunks=manifest.chunks, length=manifest.length)
        self._done = 0
        self._length = 0

    def open(self, ciphertext: bytes) -> bytes:
        """Decrypt the next chunk; raise :class:`DecryptionError` on any tampering."""
        m = self.manifest
        if self._done >= m.chunks:
            raise DecryptionError("the annex has more chunks than its manifest")
        if len(ciphertext) != m.chunk_len(self._done):
            raise DecryptionError("an annex chunk has the wrong length")
        plaintext, final = self._pull.pull(ciphertext)
        if final != (self._done == m.chunks - 1):
            raise DecryptionError("the annex stream ends at the wrong chunk")
        self._hasher.add(chunk_hash(ciphertext))
        self._done += 1
        self._length += len(plaintext)
        return plaintext

    def finish(self) -> None:
        """Raise unless every chunk was opened and the annex hash matches."""
        m = self.manifest
        if self._done != m.chunks or self._length != m.length:
            raise DecryptionError("the annex was cut short")
        if not crypto.equal(self._hasher.digest(), m.hash):
            raise DecryptionError("the annex's chunks are not the ones its manifest names")


def read_chunks(stream: object, length: int, chunk_size: int) -> Iterator[bytes]:
    """Plaintext chunks of exactly ``chunk_size`` bytes (the last shorter) from a binary
    file object holding ``length`` bytes; raise if it holds another amount."""
    read = getattr(stream, "read", None)
    if read is None:
        raise MalformedError("not a readable file")
    left = length
    for index in range(chunk_count(length, chunk_size)):
        want = min(chunk_size, left)
        data = read(want)
        if not isinstance(data, bytes) or len(data) != want:
            raise BadValueError(f"the file changed while it was read (chunk {index})")
        left -= want
        yield data
    if read(1):
        raise BadValueError("the file grew while it was read")
