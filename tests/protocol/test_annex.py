"""Annex streams: what a recipient accepts, and each tampering it catches."""

from __future__ import annotations

import io

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import annex, crypto
from protocol.annex import AnnexOpener, AnnexSealer, Manifest
from protocol.encoding import canonical
from protocol.envelope import Payload
from protocol.errors import BadValueError, DecryptionError, ProtocolError
from tests.helpers import make_rng

CHUNK = annex.MIN_CHUNK


def sealed(data: bytes, seed: str = "annex") -> tuple[Manifest, list[bytes]]:
    sealer = AnnexSealer(length=len(data), rng=make_rng(seed), chunk_size=CHUNK)
    chunks = [sealer.seal(p) for p in annex.read_chunks(io.BytesIO(data), len(data), CHUNK)]
    return sealer.manifest(), chunks


def opened(manifest: Manifest, chunks: list[bytes]) -> bytes:
    opener = AnnexOpener(manifest)
    out = b"".join(opener.open(c) for c in chunks)
    opener.finish()
    return out


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3 * CHUNK + 17))
def test_an_annex_opens_to_exactly_what_was_sealed(data: bytes) -> None:
    manifest, chunks = sealed(data)
    assert manifest.chunks == len(chunks) == annex.chunk_count(len(data), CHUNK)
    assert [len(c) for c in chunks] == [manifest.chunk_len(i) for i in range(manifest.chunks)]
    assert opened(manifest, chunks) == data
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_our_streams_open_with_libsodiums_own_pull() -> None:
    manifest, chunks = sealed(b"x" * (CHUNK + 5))
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, manifest.header, manifest.key)
    first, tag1 = sodium.crypto_secretstream_xchacha20poly1305_pull(state, chunks[0], None)
    last, tag2 = sodium.crypto_secretstream_xchacha20poly1305_pull(state, chunks[1], None)
    assert first + last == b"x" * (CHUNK + 5)
    assert (tag1, tag2) == (0, sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL)


def test_resealing_with_the_same_key_and_header_gives_the_same_chunks() -> None:
    """What lets an interrupted upload resume without resending acknowledged chunks."""
    data = bytes(range(256)) * 40
    manifest, chunks = sealed(data)
    again = AnnexSealer(
        length=len(data),
        rng=make_rng("other"),
        chunk_size=CHUNK,
        key=manifest.key,
        header=manifest.header,
    )
    assert [again.seal(p) for p in annex.read_chunks(io.BytesIO(data), len(data), CHUNK)] == chunks
    assert again.manifest() == manifest


def test_truncated_annex_is_refused() -> None:
    manifest, chunks = sealed(b"t" * (3 * CHUNK))
    opener = AnnexOpener(manifest)
    for c in chunks[:-1]:
        opener.open(c)
    with pytest.raises(DecryptionError, match="cut short"):
        opener.finish()


def test_truncated_stream_with_a_forged_shorter_manifest_is_refused() -> None:
    """Dropping the last chunk and claiming one chunk fewer: the second-to-last chunk
    carries no final tag, so the stream does not end where the manifest says."""
    manifest, chunks = sealed(b"t" * (3 * CHUNK))
    short = Manifest(
        key=manifest.key,
        header=manifest.header,
        length=2 * CHUNK,
        chunk_size=CHUNK,
        chunks=2,
        hash=manifest.hash,
    )
    opener = AnnexOpener(short)
    opener.open(chunks[0])
    with pytest.raises(DecryptionError):
        opener.open(chunks[1])


def test_reordered_chunks_are_refused() -> None:
    manifest, chunks = sealed(bytes(3 * CHUNK))
    with pytest.raises(DecryptionError):
        opened(manifest, [chunks[1], chunks[0], chunks[2]])


def test_a_substituted_chunk_from_another_stream_is_refused() -> None:
    manifest, chunks = sealed(b"a" * (2 * CHUNK), "one")
    _, other = sealed(b"b" * (2 * CHUNK), "two")
    with pytest.raises(DecryptionError):
        opened(manifest, [chunks[0], other[1]])


def test_a_flipped_bit_in_a_chunk_is_refused() -> None:
    manifest, chunks = sealed(b"f" * (2 * CHUNK))
    bad = bytearray(chunks[1])
    bad[10] ^= 1
    with pytest.raises(DecryptionError):
        opened(manifest, [chunks[0], bytes(bad)])


def test_a_manifest_naming_other_chunks_is_refused() -> None:
    """The same key and header but another hash: the chunks decrypt, the hash does not
    match, and nothing is accepted."""
    manifest, chunks = sealed(b"h" * CHUNK)
    forged = Manifest(
        key=manifest.key,
        header=manifest.header,
        length=manifest.length,
        chunk_size=CHUNK,
        chunks=manifest.chunks,
        hash=crypto.sha256(b"other"),
    )
    with pytest.raises(DecryptionError, match="not the ones"):
        opened(forged, chunks)


@pytest.mark.parametrize(
    "change",
    [
        {"chunks": 3},
        {"chunk": 100},
        {"length": -1},
        {"key": "AAAA"},
        {"extra": 1},
    ],
)
def test_malformed_manifests_are_refused(change: dict[str, object]) -> None:
    manifest, _ = sealed(b"m" * 10)
    obj = {**manifest.to_json(), **change}
    with pytest.raises(ProtocolError):
        Manifest.from_json(obj)


def test_a_payload_carries_an_annex_instead_of_inline_data() -> None:
    manifest, _ = sealed(b"p" * 100)
    payload = Payload(title="Map", file_name="map.tif", media_type="image/tiff", annex=manifest)
    again = Payload.from_bytes(payload.to_bytes())
    assert again == payload
    assert again.file_data is None
    with pytest.raises(BadValueError):
        Payload(title="x", file_name="a", media_type="a/b", file_data=b"", annex=manifest)


def test_a_file_that_changes_while_it_is_read_is_refused() -> None:
    with pytest.raises(BadValueError, match="changed"):
        list(annex.read_chunks(io.BytesIO(b"short"), 100, CHUNK))
    with pytest.raises(BadValueError, match="grew"):
        list(annex.read_chunks(io.BytesIO(b"x" * 10), 5, CHUNK))


def test_annex_hash_is_domain_separated_and_binds_count_and_length() -> None:
    manifest, chunks = sealed(b"d" * 10)
    expected = crypto.sha256(
        crypto.CTX_ANNEX,
        (1).to_bytes(8, "big"),
        (10).to_bytes(8, "big"),
        crypto.sha256(chunks[0]),
    )
    assert manifest.hash == expected
    assert canonical(manifest.to_json())  # canonical-encodable
