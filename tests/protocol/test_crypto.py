"""Crypto recipes (protocol/crypto.py): signatures, weak keys, sealed boxes, AEAD, key store.

Independent implementations are used as oracles where they exist: OpenSSL's Ed25519
(through ``cryptography``), PyNaCl's own ``SealedBox`` and ``VerifyKey``, and the naive
curve arithmetic in :mod:`tests.helpers`.
"""

from __future__ import annotations

import itertools

import nacl.bindings as sodium
import nacl.public
import nacl.signing
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.crypto import (
    AEAD_NONCE_LEN,
    AEAD_OVERHEAD,
    ALL_CONTEXTS,
    CONTENT_KEY_LEN,
    CTX_COMMIT,
    CTX_PAYLOAD,
    PUBLIC_KEY_LEN,
    SEAL_OVERHEAD,
    SIGNATURE_LEN,
    BoxKey,
    Rng,
    SigningKey,
    check_box_key,
    check_signing_key,
    commitment,
    open_payload,
    passphrase_key,
    seal_payload,
    secretbox_open,
    secretbox_seal,
    sha256,
    verify,
    verify_note,
    wrap_key,
)
from protocol.errors import (
    BadSignatureError,
    DecryptionError,
    MalformedError,
    ProtocolError,
    WeakKeyError,
)
from tests.helpers import (
    ED25519_L,
    ED25519_SMALL_ORDER,
    ED25519_TORSION,
    P25519,
    X25519_SMALL_ORDER_U,
    ed_add,
    ed_decode,
    ed_encode,
    ed_mul,
    ed_to_montgomery_u,
    flip_bit,
    make_rng,
    u_bytes,
)

seeds = st.binary(min_size=32, max_size=32)
contexts = st.sampled_from(ALL_CONTEXTS)


def ctx_name(ctx: bytes) -> str:
    return ctx.removeprefix(b"docket/v1/").rstrip(b"\x00").decode()


def signer(seed: bytes | str = "signer") -> SigningKey:
    return SigningKey.generate(make_rng(seed))


def assert_same_opaque_error(errors: list[ProtocolError]) -> None:
    """Every failure must look identical to the caller: same type, code and message."""
    assert errors
    shapes = {(type(e), e.code, e.detail, str(e)) for e in errors}
    assert shapes == {(DecryptionError, "decryption_failed", "cannot decrypt", "cannot decrypt")}


# --- contexts -----------------------------------------------------------------------------


def test_contexts_are_distinct_prefix_free_and_nul_terminated() -> None:
    every = [*ALL_CONTEXTS, CTX_PAYLOAD, CTX_COMMIT, crypto.CTX_KEY_ID]
    every += [crypto.CTX_FINGERPRINT, crypto.CTX_KEYSTORE]
    assert len(set(every)) == len(every)
    for ctx in every:
        assert ctx.startswith(b"docket/v1/")
        assert ctx.endswith(b"\x00")
        assert ctx.count(b"\x00") == 1
    for a, b in itertools.permutations(every, 2):
        assert not b.startswith(a)


@pytest.mark.parametrize(
    "ctx", [CTX_PAYLOAD, CTX_COMMIT, crypto.CTX_KEY_ID, b"", b"docket/v1/draft"]
)
def test_non_signature_contexts_cannot_sign_or_verify(ctx: bytes) -> None:
    key = signer()
    with pytest.raises(ValueError, match="unknown signature context"):
        key.sign(ctx, b"m")
    with pytest.raises(ValueError, match="unknown signature context"):
        verify(key.public_bytes(), ctx, b"m", b"\x00" * 64)


# --- Ed25519 signatures -------------------------------------------------------------------


@given(seeds, contexts, st.binary(max_size=300))
def test_sign_verify_round_trip(seed: bytes, ctx: bytes, message: bytes) -> None:
    key = SigningKey.from_seed_bytes(seed)
    sig = key.sign(ctx, message)
    assert len(sig) == SIGNATURE_LEN
    assert len(key.public_bytes()) == PUBLIC_KEY_LEN
    assert key.seed_bytes() == seed
    verify(key.public_bytes(), ctx, message, sig)
    check_signing_key(key.public_bytes())


@given(seeds, contexts, st.binary(max_size=64))
def test_signatures_interoperate_with_openssl_and_pynacl(
    seed: bytes, ctx: bytes, message: bytes
) -> None:
    key = SigningKey(seed)
    sig = key.sign(ctx, message)
    # The signature is plain Ed25519 over ctx || message: OpenSSL and PyNaCl agree.
    Ed25519PublicKey.from_public_bytes(key.public_bytes()).verify(sig, ctx + message)
    nacl.signing.VerifyKey(key.public_bytes()).verify(ctx + message, sig)
    assert bytes(nacl.signing.SigningKey(seed).verify_key) == key.public_bytes()
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(key.public_bytes()).verify(sig, message)


@pytest.mark.parametrize(
    ("signed_as", "verified_as"),
    [
        pytest.param(a, b, id=f"{ctx_name(a)}-as-{ctx_name(b)}")
        for a, b in itertools.permutations(ALL_CONTEXTS, 2)
    ],
)
def test_wrong_context(signed_as: bytes, verified_as: bytes) -> None:
    key = signer()
    message = b'{"kind":"draft","n":1}'
    sig = key.sign(signed_as, message)
    verify(key.public_bytes(), signed_as, message, sig)
    with pytest.raises(BadSignatureError):
        verify(key.public_bytes(), verified_as, message, sig)


def test_context_boundary_cannot_be_shifted() -> None:
    # Moving bytes between context and message must not keep a signature valid.
    key = signer()
    sig = key.sign(crypto.CTX_DRAFT, b"\x00abc")
    with pytest.raises(BadSignatureError):
        verify(key.public_bytes(), crypto.CTX_DRAFT, b"abc", sig)


def test_flipped_signature_bit() -> None:
    key = signer()
    sig = key.sign(crypto.CTX_RECEIPT, b"receipt")
    for bit in range(SIGNATURE_LEN * 8):
        with pytest.raises(BadSignatureError):
            verify(key.public_bytes(), crypto.CTX_RECEIPT, b"receipt", flip_bit(sig, bit))


def test_flipped_message_bit() -> None:
    key = signer()
    message = b"exactly this text"
    sig = key.sign(crypto.CTX_DRAFT, message)
    for bit in range(len(message) * 8):
        with pytest.raises(BadSignatureError):
            verify(key.public_bytes(), crypto.CTX_DRAFT, flip_bit(message, bit), sig)
    for other in (b"", message[:-1], message + b"\x00", b"\x00" + message):
        with pytest.raises(BadSignatureError):
            verify(key.public_bytes(), crypto.CTX_DRAFT, other, sig)


def test_flipped_key_bit() -> None:
    key = signer()
    sig = key.sign(crypto.CTX_ROSTER, b"roster")
    for bit in range(PUBLIC_KEY_LEN * 8):
        with pytest.raises(BadSignatureError):
            verify(flip_bit(key.public_bytes(), bit), crypto.CTX_ROSTER, b"roster", sig)


def test_other_signers_key() -> None:
    sig = signer("a").sign(crypto.CTX_AUTH, b"challenge")
    with pytest.raises(BadSignatureError):
        verify(signer("b").public_bytes(), crypto.CTX_AUTH, b"challenge", sig)


@pytest.mark.parametrize("length", [0, 1, 32, 63, 65, 128])
def test_wrong_length_signature(length: int) -> None:
    key = signer()
    sig = (key.sign(crypto.CTX_JOIN, b"j") * 3)[:length]
    with pytest.raises(BadSignatureError, match="must be 64 bytes"):
        verify(key.public_bytes(), crypto.CTX_JOIN, b"j", sig)


def test_signature_and_key_must_be_bytes() -> None:
    key = signer()
    sig = key.sign(crypto.CTX_JOIN, b"j")
    with pytest.raises(BadSignatureError):
        verify(key.public_bytes(), crypto.CTX_JOIN, b"j", bytearray(sig))  # type: ignore[arg-type]
    with pytest.raises(WeakKeyError):
        verify(bytearray(key.public_bytes()), crypto.CTX_JOIN, b"j", sig)  # type: ignore[arg-type]
    for length in (0, 31, 33):
        with pytest.raises(WeakKeyError):
            verify(key.public_bytes()[:1] * length, crypto.CTX_JOIN, b"j", sig)


def test_signature_malleability_s_plus_l_rejected() -> None:
    # (R, S + L) satisfies the verification equation too; libsodium requires S < L.
    key = signer()
    sig = key.sign(crypto.CTX_DRAFT, b"m")
    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + ED25519_L).to_bytes(32, "little")
    with pytest.raises(BadSignatureError):
        verify(key.public_bytes(), crypto.CTX_DRAFT, b"m", malleated)


@pytest.mark.parametrize("small", ED25519_SMALL_ORDER, ids=lambda b: b.hex()[:8])
def test_small_order_key_universal_forgery_rejected(small: bytes) -> None:
    # With A and R of small order and S = 0, a cofactored or lax verifier accepts the
    # "signature" on every message.  Verification must refuse it.
    for r in ED25519_SMALL_ORDER:
        with pytest.raises(BadSignatureError):
            verify(small, crypto.CTX_DRAFT, b"any message", r + b"\x00" * 32)


def test_signing_is_deterministic() -> None:
    a, b = signer("same"), signer("same")
    assert a.sign(crypto.CTX_DRAFT, b"m") == b.sign(crypto.CTX_DRAFT, b"m")
    assert a.public_bytes() != signer("other").public_bytes()


def test_signing_key_rejects_bad_seeds() -> None:
    for bad in (b"", b"\x00" * 31, b"\x00" * 33, "x" * 32, bytearray(32)):
        with pytest.raises(MalformedError):
            SigningKey(bad)  # type: ignore[arg-type]


def test_private_keys_do_not_print() -> None:
    rng = make_rng("repr")
    key, box = SigningKey.generate(rng), BoxKey.generate(rng)
    assert repr(key) == "SigningKey(<private>)"
    assert repr(box) == "BoxKey(<private>)"
    assert key.seed_bytes().hex() not in repr(key) + str(key)


# --- notes (C2SP signed notes and cosignatures) --------------------------------------


def test_note_round_trip_and_nul_rejected() -> None:
    key = signer()
    text = b"example.org/log\n42\nAAAA\n"
    sig = key.sign_note(text)
    verify_note(key.public_bytes(), text, sig)
    Ed25519PublicKey.from_public_bytes(key.public_bytes()).verify(sig, text)
    with pytest.raises(BadSignatureError):
        verify_note(key.public_bytes(), text + b"\n", sig)
    with pytest.raises(MalformedError):
        key.sign_note(b"origin\x00")
    with pytest.raises(BadSignatureError):
        verify_note(key.public_bytes(), b"origin\x00", sig)


def test_note_and_object_signatures_cannot_stand_in_for_each_other() -> None:
    key = signer()
    object_sig = key.sign(crypto.CTX_GENESIS, b"text")
    # As a note the signed bytes would contain the context's NUL, which notes refuse.
    with pytest.raises(BadSignatureError):
        verify_note(key.public_bytes(), crypto.CTX_GENESIS + b"text", object_sig)
    note_sig = key.sign_note(b"docket/v1/genesis text")
    for ctx in ALL_CONTEXTS:
        with pytest.raises(BadSignatureError):
            verify(key.public_bytes(), ctx, b"text", note_sig)


# --- Ed25519 key checks -----------------------------------------------------------------


def test_small_order_list_is_the_torsion_subgroup() -> None:
    # Sanity of the independent oracle: eight distinct points, each killed by 8, and the
    # two order-8 encodings everyone lists.
    assert len(set(ED25519_SMALL_ORDER)) == 8
    for t in ED25519_TORSION:
        assert ed_mul(8, t) == (0, 1)
        assert ed_decode(ed_encode(t)) == t
    assert (
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
        in ED25519_SMALL_ORDER
    )
    assert bytes.fromhex("0100000000000000000000000000000000000000000000000000000000000000") in (
        ED25519_SMALL_ORDER
    )


@given(seeds)
def test_check_signing_key_accepts_real_keys(seed: bytes) -> None:
    check_signing_key(SigningKey(seed).public_bytes())


@pytest.mark.parametrize("encoded", ED25519_SMALL_ORDER, ids=lambda b: b.hex())
def test_check_signing_key_rejects_small_order(encoded: bytes) -> None:
    with pytest.raises(WeakKeyError):
        check_signing_key(encoded)


def test_check_signing_key_rejects_zero_key() -> None:
    with pytest.raises(WeakKeyError):
        check_signing_key(bytes(32))


def test_check_signing_key_rejects_negative_zero_x() -> None:
    # Points with x = 0 (identity and the order-2 point) with the sign bit set: decoders
    # that ignore the RFC 8032 "x = 0 and sign = 1" rule read them as small-order points.
    for t in ED25519_TORSION:
        if t[0] == 0:
            encoded = flip_bit(ed_encode(t), 255)
            with pytest.raises(WeakKeyError):
                check_signing_key(encoded)


@pytest.mark.parametrize("sign", [0, 1])
def test_check_signing_key_rejects_non_canonical_y(sign: int) -> None:
    # Every y in [p, 2**255) is a non-canonical encoding of y - p (there are 19).
    rejected = 0
    for y in range(P25519, 2**255):
        encoded = (y | (sign << 255)).to_bytes(32, "little")
        with pytest.raises(WeakKeyError):
            check_signing_key(encoded)
        rejected += 1
    assert rejected == 19


def test_check_signing_key_rejects_mixed_order_points() -> None:
    # A real key plus a torsion point is on the curve and not of small order, but not in
    # the prime-order subgroup: it would give a second valid-looking encoding of "one" key.
    real = ed_decode(signer().public_bytes())
    assert real is not None
    for t in ED25519_TORSION[1:]:
        with pytest.raises(WeakKeyError):
            check_signing_key(ed_encode(ed_add(real, t)))


@given(st.binary(min_size=32, max_size=32))
def test_check_signing_key_agrees_with_the_oracle(encoded: bytes) -> None:
    point = ed_decode(encoded)
    good = point is not None and point not in ED25519_TORSION
    good = good and point is not None and ed_mul(ED25519_L, point) == (0, 1)
    try:
        check_signing_key(encoded)
    except WeakKeyError:
        assert not good
    else:
        assert good


@pytest.mark.parametrize("bad", [b"", b"\x01" * 31, b"\x01" * 33, None, "x" * 32, 0])
def test_check_signing_key_rejects_wrong_length_or_type(bad: object) -> None:
    with pytest.raises(WeakKeyError, match="must be 32 bytes"):
        check_signing_key(bad)  # lru_cache erases the argument type


# --- X25519 key checks --------------------------------------------------------------------


def test_x25519_small_order_list_matches_the_edwards_torsion() -> None:
    from_edwards = {ed_to_montgomery_u(t) for t in ED25519_TORSION}
    assert from_edwards <= set(X25519_SMALL_ORDER_U)
    assert len(from_edwards) == 4


@given(seeds)
def test_check_box_key_accepts_real_keys(secret: bytes) -> None:
    check_box_key(BoxKey(secret).public_bytes())


@pytest.mark.parametrize("u", X25519_SMALL_ORDER_U, ids=str)
def test_check_box_key_rejects_small_order(u: int) -> None:
    with pytest.raises(WeakKeyError):
        check_box_key(u_bytes(u))
    # Setting the (ignored by RFC 7748) top bit must not smuggle it through either.
    with pytest.raises(WeakKeyError):
        check_box_key(u_bytes(u | (1 << 255)))


def test_check_box_key_rejects_non_canonical() -> None:
    valid = BoxKey(bytes(range(32))).public_bytes()
    high = int.from_bytes(valid, "little") | (1 << 255)
    candidates = [*range(P25519, 2**255), 2**255, 2**256 - 1, high]
    for u in candidates:
        with pytest.raises(WeakKeyError, match="not canonically encoded"):
            check_box_key(u_bytes(u))


@pytest.mark.parametrize("bad", [b"", b"\x09" * 31, b"\x09" * 33, None, "x" * 32])
def test_check_box_key_rejects_wrong_length_or_type(bad: object) -> None:
    with pytest.raises(WeakKeyError, match="must be 32 bytes"):
        check_box_key(bad)  # lru_cache erases the argument type


# --- key wrapping (sealed boxes) --------------------------------------------------------


def test_wrap_key_opens_with_libsodium_sealed_box(rng: Rng) -> None:
    box = BoxKey.generate(rng)
    content_key = crypto.new_content_key(rng)
    sealed = wrap_key(content_key, box.public_bytes(), rng)
    assert len(sealed) == CONTENT_KEY_LEN + SEAL_OVERHEAD
    opened = nacl.public.SealedBox(nacl.public.PrivateKey(box.secret_bytes())).decrypt(sealed)
    assert opened == content_key
    assert box.unwrap(sealed) == content_key


def test_unwrap_opens_libsodium_sealed_box(rng: Rng) -> None:
    box = BoxKey.generate(rng)
    content_key = crypto.new_content_key(rng)
    sealed = nacl.public.SealedBox(nacl.public.PublicKey(box.public_bytes())).encrypt(content_key)
    assert box.unwrap(bytes(sealed)) == content_key


@given(seeds, seeds, seeds)
def test_wrap_unwrap_round_trip(secret: bytes, content_key: bytes, eph_seed: bytes) -> None:
    box = BoxKey.from_secret_bytes(secret)
    sealed = wrap_key(content_key, box.public_bytes(), lambda n: eph_seed[:n])
    assert box.unwrap(sealed) == content_key
    assert sealed[:32] == sodium.crypto_box_seed_keypair(eph_seed)[0]


def test_wrap_key_is_deterministic_in_rng() -> None:
    box = BoxKey.generate(make_rng("recipient"))
    key = b"k" * 32
    one = wrap_key(key, box.public_bytes(), make_rng("eph"))
    assert one == wrap_key(key, box.public_bytes(), make_rng("eph"))
    assert one != wrap_key(key, box.public_bytes(), make_rng("eph2"))


def test_wrap_key_refuses_weak_recipients_and_bad_content_keys(rng: Rng) -> None:
    for u in X25519_SMALL_ORDER_U:
        with pytest.raises(WeakKeyError):
            wrap_key(b"k" * 32, u_bytes(u), rng)
    box = BoxKey.generate(rng)
    for bad in (b"", b"k" * 31, b"k" * 33):
        with pytest.raises(MalformedError):
            wrap_key(bad, box.public_bytes(), rng)


def test_unwrap_failures_are_opaque(rng: Rng) -> None:
    box = BoxKey.generate(rng)
    other = BoxKey.generate(rng)
    content_key = crypto.new_content_key(rng)
    sealed = wrap_key(content_key, box.public_bytes(), rng)
    seal_to = nacl.public.SealedBox(nacl.public.PublicKey(box.public_bytes()))

    blobs: list[object] = [flip_bit(sealed, bit) for bit in range(len(sealed) * 8)]
    blobs += [sealed[:n] for n in range(len(sealed))]  # truncated
    blobs += [sealed + b"\x00", b"", bytes(80)]
    blobs += [bytes(seal_to.encrypt(b"k" * n)) for n in (0, 31, 33)]  # wrong-length key
    blobs += [bytearray(sealed), sealed.hex(), None]
    errors: list[ProtocolError] = []
    for blob in blobs:
        with pytest.raises(DecryptionError) as info:
            box.unwrap(blob)  # type: ignore[arg-type]
        errors.append(info.value)
    with pytest.raises(DecryptionError) as info:
        other.unwrap(sealed)  # wrong recipient
    errors.append(info.value)
    assert_same_opaque_error(errors)


# --- disclosed sealed-box keys --------------------------------------------------------------


def test_shared_key_opens_libsodium_sealed_box(rng: Rng) -> None:
    """Boxes sealed by libsodium itself and by wrap_key both open with the disclosed key,
    which is crypto_box_beforenm(epk, recipient secret), the key libsodium opens with."""
    box = BoxKey.generate(rng)
    content_key = crypto.new_content_key(rng)
    seal_to = nacl.public.SealedBox(nacl.public.PublicKey(box.public_bytes()))
    for sealed in (
        bytes(seal_to.encrypt(content_key)),
        wrap_key(content_key, box.public_bytes(), rng),
    ):
        shared = crypto.sealed_box_shared_key(sealed, box)
        assert len(shared) == crypto.SHARED_KEY_LEN
        assert shared == sodium.crypto_box_beforenm(sealed[:32], box.secret_bytes())
        assert crypto.open_sealed_box_with_shared_key(sealed, shared, box.public_bytes()) == (
            content_key
        )


@given(seeds, seeds, st.binary(max_size=64))
def test_shared_key_round_trip_with_libsodium(
    secret: bytes, eph_seed: bytes, message: bytes
) -> None:
    """Any message libsodium seals opens with the shared key, and the sealed-box format
    is what crypto_box_seal_open reads back."""
    box = BoxKey.from_secret_bytes(secret)
    epk, esk = sodium.crypto_box_seed_keypair(eph_seed)
    nonce = sodium.crypto_generichash_blake2b_salt_personal(
        epk + box.public_bytes(), digest_size=24
    )
    sealed = epk + sodium.crypto_box_easy(message, nonce, box.public_bytes(), esk)
    opener = nacl.public.SealedBox(nacl.public.PrivateKey(secret))
    assert opener.decrypt(sealed) == message
    shared = crypto.sealed_box_shared_key(sealed, box)
    assert crypto.open_sealed_box_with_shared_key(sealed, shared, box.public_bytes()) == message


def test_shared_key_is_per_box(rng: Rng) -> None:
    """Two boxes to one recipient have unrelated keys: one disclosed key opens one box."""
    box = BoxKey.generate(rng)
    one = wrap_key(b"k" * 32, box.public_bytes(), rng)
    two = wrap_key(b"k" * 32, box.public_bytes(), rng)
    k_one = crypto.sealed_box_shared_key(one, box)
    assert k_one != crypto.sealed_box_shared_key(two, box)
    with pytest.raises(DecryptionError):
        crypto.open_sealed_box_with_shared_key(two, k_one, box.public_bytes())


def test_shared_key_failures_are_opaque(rng: Rng) -> None:
    box = BoxKey.generate(rng)
    other = BoxKey.generate(rng)
    sealed = wrap_key(b"k" * 32, box.public_bytes(), rng)
    shared = crypto.sealed_box_shared_key(sealed, box)
    errors: list[ProtocolError] = []
    attempts: list[tuple[bytes, bytes, bytes]] = [
        (flip_bit(sealed, bit), shared, box.public_bytes())
        for bit in range(32 * 8, len(sealed) * 8)
    ]
    attempts += [
        (sealed, flip_bit(shared, 0), box.public_bytes()),
        (sealed, bytes(32), box.public_bytes()),
        (sealed, shared[:31], box.public_bytes()),
        (sealed, shared, other.public_bytes()),  # the nonce of another recipient
        (sealed, shared, box.public_bytes()[:31]),
        (sealed[: SEAL_OVERHEAD - 1], shared, box.public_bytes()),
        (sealed[:-1], shared, box.public_bytes()),
    ]
    for wrapped, key, public in attempts:
        with pytest.raises(DecryptionError) as info:
            crypto.open_sealed_box_with_shared_key(wrapped, key, public)
        errors.append(info.value)
    for bad in [u_bytes(u) + sealed[32:] for u in X25519_SMALL_ORDER_U] + [sealed[:47], b""]:
        with pytest.raises(DecryptionError) as info:
            crypto.sealed_box_shared_key(bad, box)
        errors.append(info.value)
    assert_same_opaque_error(errors)


# --- payload AEAD -------------------------------------------------------------------------


@given(seeds, st.binary(max_size=512), st.binary(max_size=64), st.binary(min_size=24, max_size=24))
def test_seal_open_payload_round_trip(
    key: bytes, plaintext: bytes, associated: bytes, nonce: bytes
) -> None:
    sealed = seal_payload(key, plaintext, associated, lambda n: nonce[:n])
    assert len(sealed) == len(plaintext) + AEAD_OVERHEAD
    assert sealed[:AEAD_NONCE_LEN] == nonce
    assert open_payload(key, sealed, associated) == plaintext
    # The format is plain XChaCha20-Poly1305 with the payload context prefixed to the AD.
    assert (
        sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[AEAD_NONCE_LEN:], CTX_PAYLOAD + associated, nonce, key
        )
        == plaintext
    )


def test_payload_nonce_is_fresh_per_call(rng: Rng) -> None:
    key = crypto.new_content_key(rng)
    assert seal_payload(key, b"same", b"", rng) != seal_payload(key, b"same", b"", rng)


def test_open_payload_failures_are_opaque(rng: Rng) -> None:
    key = crypto.new_content_key(rng)
    sealed = seal_payload(key, b"ceasefire line", b"header-hash", rng)
    errors: list[ProtocolError] = []

    def expect_failure(k: bytes, blob: bytes, ad: bytes) -> None:
        with pytest.raises(DecryptionError) as info:
            open_payload(k, blob, ad)
        errors.append(info.value)

    for bit in range(len(sealed) * 8):
        expect_failure(key, flip_bit(sealed, bit), b"header-hash")
    for n in range(len(sealed)):
        expect_failure(key, sealed[:n], b"header-hash")
    expect_failure(key, sealed + b"\x00", b"header-hash")
    expect_failure(crypto.new_content_key(rng), sealed, b"header-hash")  # wrong key
    expect_failure(flip_bit(key, 0), sealed, b"header-hash")
    for bad_key in (b"", key[:31], key + b"\x00"):
        expect_failure(bad_key, sealed, b"header-hash")
    for ad in (b"", b"header-has", b"header-hash\x00", CTX_PAYLOAD + b"header-hash"):
        expect_failure(key, sealed, ad)  # wrong associated data
    assert_same_opaque_error(errors)
    # Without the payload context the AD does not match either: the context is bound.
    with pytest.raises(Exception):  # noqa: B017, PT011 - a raw library error, by design
        sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[AEAD_NONCE_LEN:], b"header-hash", sealed[:AEAD_NONCE_LEN], key
        )


def test_seal_payload_rejects_bad_key_length(rng: Rng) -> None:
    for bad in (b"", b"k" * 31, b"k" * 33):
        with pytest.raises(MalformedError):
            seal_payload(bad, b"p", b"", rng)


# --- commitment -------------------------------------------------------------------------


def test_commitment_definition() -> None:
    key, plaintext = b"k" * 32, b"text"
    expected = sha256(CTX_COMMIT + key + sha256(plaintext))
    assert commitment(key, plaintext) == expected
    assert len(expected) == crypto.HASH_LEN


@given(seeds, st.binary(max_size=64), seeds, st.binary(max_size=64))
def test_commitment_differs_for_different_key_or_plaintext(
    key_a: bytes, text_a: bytes, key_b: bytes, text_b: bytes
) -> None:
    same_inputs = (key_a, text_a) == (key_b, text_b)
    assert (commitment(key_a, text_a) == commitment(key_b, text_b)) == same_inputs
    assert commitment(key_a, text_a) != commitment(flip_bit(key_a, 0), text_a)
    assert commitment(key_a, text_a) != commitment(key_a, text_a + b"\x00")


# --- key store: Argon2id + secretbox -------------------------------------------------------

FAST = {
    "opslimit": sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN,
    "memlimit": sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN,
}


def test_passphrase_key_and_secretbox_round_trip(rng: Rng) -> None:
    salt = rng(crypto.PWHASH_SALT_LEN)
    key = passphrase_key(b"correct horse", salt, **FAST)
    assert len(key) == sodium.crypto_secretbox_KEYBYTES
    assert key == passphrase_key(b"correct horse", salt, **FAST)
    sealed = secretbox_seal(key, b"device private keys", rng)
    assert secretbox_open(key, sealed) == b"device private keys"
    assert key != passphrase_key(b"correct horse", rng(crypto.PWHASH_SALT_LEN), **FAST)


def test_wrong_passphrase_is_a_decryption_error(rng: Rng) -> None:
    salt = rng(crypto.PWHASH_SALT_LEN)
    sealed = secretbox_seal(passphrase_key(b"right", salt, **FAST), b"secret", rng)
    wrong = passphrase_key(b"wrong", salt, **FAST)
    errors: list[ProtocolError] = []
    for key, blob in [
        (wrong, sealed),
        (passphrase_key(b"right", flip_bit(salt, 0), **FAST), sealed),
        (passphrase_key(b"right", salt, **FAST), flip_bit(sealed, 200)),
        (passphrase_key(b"right", salt, **FAST), sealed[:-1]),
        (passphrase_key(b"right", salt, **FAST), b""),
        (b"short", sealed),
    ]:
        with pytest.raises(DecryptionError) as info:
            secretbox_open(key, blob)
        errors.append(info.value)
    assert_same_opaque_error(errors)


def test_passphrase_key_rejects_bad_parameters() -> None:
    with pytest.raises(MalformedError, match="bad salt length"):
        passphrase_key(b"p", b"s" * 15, **FAST)
    with pytest.raises(MalformedError, match="invalid key-derivation parameters"):
        passphrase_key(b"p", b"s" * 16, opslimit=0, memlimit=FAST["memlimit"])
    with pytest.raises(MalformedError, match="invalid key-derivation parameters"):
        passphrase_key(b"p", b"s" * 16, opslimit=FAST["opslimit"], memlimit=0)


def test_default_key_store_parameters_are_not_weakened() -> None:
    opslimit, memlimit = crypto.PWHASH_OPSLIMIT, crypto.PWHASH_MEMLIMIT
    assert opslimit >= sodium.crypto_pwhash_argon2id_OPSLIMIT_MODERATE
    assert memlimit >= 128 * 1024 * 1024
