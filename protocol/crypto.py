"""The only module that touches cryptographic libraries: named recipes, fixed contexts.

Primitives (all from libsodium through PyNaCl, or the standard library's SHA-256):

* **Signatures** — Ed25519 over ``context || message``.  Every signed object type has
  its own context string (``CTX_*`` below); each ends in a NUL byte so no context is a
  prefix of another and no context can begin a C2SP note text (notes never contain NUL).
  C2SP signed notes and cosignatures sign their own note formats (:func:`sign_note`),
  whose first bytes are an origin line or ``cosignature/v1``, never ``docket/``.
* **Key wrapping** — libsodium's sealed box (X25519 + XSalsa20-Poly1305, ephemeral
  sender key, nonce = BLAKE2b(epk || rpk)).  It is built here from ``crypto_box`` with an
  ephemeral key drawn from the caller's ``rng`` so that known-answer vectors are
  reproducible; its output opens with libsodium's own ``crypto_box_seal_open``.  A
  recipient can disclose one box's shared key (:func:`sealed_box_shared_key`) so that an
  arbitrator opens that box alone (:func:`open_sealed_box_with_shared_key`).
* **Payload sealing** — XChaCha20-Poly1305 (IETF), random 24-byte nonce prepended.
* **Commitment** — SHA-256 over a context, the content key and SHA-256(plaintext).  The
  AEAD tag is not key-committing; this hash is: nobody can find two (key, plaintext)
  pairs with the same commitment, so one signed draft cannot decrypt to two texts.
* **Key store** — Argon2id (``crypto_pwhash``) and ``secretbox``.
* **Annex streams** — libsodium's secretstream (XChaCha20-Poly1305 with per-chunk tags
  and a final tag), :func:`stream_pusher` / :func:`stream_puller`.

Every decryption failure raises the same opaque :class:`DecryptionError`.  Randomness is
always a parameter (``rng``): nothing here reads the OS RNG or the clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import lru_cache

import nacl.bindings as sodium
import nacl.exceptions

from protocol.errors import BadSignatureError, DecryptionError, MalformedError, WeakKeyError

Rng = Callable[[int], bytes]
"""A source of random bytes: ``rng(n)`` returns ``n`` bytes (``os.urandom`` in production)."""

# --- domain-separation contexts (never change an existing value) --------------------
CTX_GENESIS = b"docket/v1/genesis\x00"
CTX_ROSTER = b"docket/v1/roster\x00"
CTX_CHANNEL = b"docket/v1/channel\x00"
CTX_DRAFT = b"docket/v1/draft\x00"
CTX_RECEIPT = b"docket/v1/receipt\x00"
CTX_PROMISE = b"docket/v1/promise\x00"
CTX_AUTH = b"docket/v1/auth\x00"
CTX_JOIN = b"docket/v1/join\x00"
CTX_PAYLOAD = b"docket/v1/payload\x00"
CTX_COMMIT = b"docket/v1/commit\x00"
CTX_KEY_ID = b"docket/v1/key-id\x00"
CTX_FINGERPRINT = b"docket/v1/fingerprint\x00"
CTX_KEYSTORE = b"docket/v1/keystore\x00"
CTX_ANNEX = b"docket/v1/annex\x00"
CTX_ACT = b"docket/v1/act\x00"

ALL_CONTEXTS = (
    CTX_GENESIS,
    CTX_ROSTER,
    CTX_CHANNEL,
    CTX_DRAFT,
    CTX_RECEIPT,
    CTX_PROMISE,
    CTX_AUTH,
    CTX_JOIN,
    CTX_ACT,
)
_CONTEXTS = frozenset(ALL_CONTEXTS)

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64
CONTENT_KEY_LEN = 32
HASH_LEN = 32
SEAL_OVERHEAD = sodium.crypto_box_SEALBYTES
SHARED_KEY_LEN = sodium.crypto_box_BEFORENMBYTES
AEAD_NONCE_LEN = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
AEAD_OVERHEAD = AEAD_NONCE_LEN + sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES

_P25519 = 2**255 - 19


def sha256_stream(prefix: bytes = b"") -> hashlib._Hash:
    """An incremental SHA-256 already fed ``prefix`` (for hashes over many chunks)."""
    h = hashlib.sha256()
    h.update(prefix)
    return h


def sha256(*parts: bytes) -> bytes:
    """SHA-256 of the concatenation of ``parts``."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


equal: Callable[[bytes, bytes], bool] = hmac.compare_digest
"""Constant-time comparison (the function itself: several calls per record checked)."""


# --- Ed25519 ---------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def check_signing_key(public: bytes) -> None:
    """Reject anything but a canonical Ed25519 point of prime order (not small order)."""
    if not isinstance(public, bytes) or len(public) != PUBLIC_KEY_LEN:
        raise WeakKeyError("Ed25519 public key must be 32 bytes")
    if not sodium.crypto_core_ed25519_is_valid_point(public):
        raise WeakKeyError("Ed25519 public key is not a valid prime-order point")
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y >= _P25519:
        raise WeakKeyError("Ed25519 public key is not canonically encoded")


class SigningKey:
    """An Ed25519 private key.  Private material never leaves this object except by
    :meth:`seed_bytes` (for the encrypted key store)."""

    __slots__ = ("_public", "_secret", "_seed")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != sodium.crypto_sign_SEEDBYTES:
            raise MalformedError("Ed25519 seed must be 32 bytes")
        self._public, self._secret = sodium.crypto_sign_seed_keypair(seed)
        self._seed = seed

    @classmethod
    def from_seed_bytes(cls, seed: bytes) -> SigningKey:
        return cls(seed)

    @classmethod
    def generate(cls, rng: Rng) -> SigningKey:
        return cls(rng(sodium.crypto_sign_SEEDBYTES))

    def seed_bytes(self) -> bytes:
        return self._seed

    def public_bytes(self) -> bytes:
        return self._public

    def sign(self, context: bytes, message: bytes) -> bytes:
        """Sign ``context || message``."""
        if context not in _CONTEXTS:
            raise ValueError("unknown signature context")  # programming error
        return self._raw_sign(context + message)

    def sign_note(self, text: bytes) -> bytes:
        """Sign a C2SP note text or cosignature message as is (see module docstring)."""
        if b"\x00" in text:
            raise MalformedError("note text must not contain NUL")
        return self._raw_sign(text)

    def _raw_sign(self, message: bytes) -> bytes:
        signed = sodium.crypto_sign(message, self._secret)
        return bytes(signed[:SIGNATURE_LEN])

    def __repr__(self) -> str:
        return "SigningKey(<private>)"


def _raw_verify(public: bytes, message: bytes, signature: bytes) -> None:
    if not isinstance(public, bytes) or len(public) != PUBLIC_KEY_LEN:
        raise WeakKeyError("Ed25519 public key must be 32 bytes")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LEN:
        raise BadSignatureError("Ed25519 signature must be 64 bytes")
    try:
        sodium.crypto_sign_open(signature + message, public)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError) as exc:
        raise BadSignatureError("signature does not verify") from exc


def verify(public: bytes, context: bytes, message: bytes, signature: bytes) -> None:
    """Verify an Ed25519 signature over ``context || message``; raise or return ``None``."""
    if context not in _CONTEXTS:
        raise ValueError("unknown signature context")  # programming error
    _raw_verify(public, context + message, signature)


def verify_note(public: bytes, text: bytes, signature: bytes) -> None:
    """Verify a signature made by :meth:`SigningKey.sign_note`."""
    if b"\x00" in text:
        raise BadSignatureError("note text must not contain NUL")
    _raw_verify(public, text, signature)


# --- X25519 and sealed boxes -------------------------------------------------------------


@lru_cache(maxsize=65536)
def check_box_key(public: bytes) -> None:
    """Reject X25519 public keys that are non-canonical or of small order."""
    if not isinstance(public, bytes) or len(public) != PUBLIC_KEY_LEN:
        raise WeakKeyError("X25519 public key must be 32 bytes")
    if int.from_bytes(public, "little") >= _P25519:
        raise WeakKeyError("X25519 public key is not canonically encoded")
    try:
        # A small-order point yields the all-zero shared secret, which libsodium refuses.
        sodium.crypto_scalarmult(b"\x09" + b"\x00" * 30 + b"\x40", public)
    except nacl.exceptions.RuntimeError as exc:
        raise WeakKeyError("X25519 public key has small order") from exc


def _seal_nonce(epk: bytes, recipient: bytes) -> bytes:
    """The sealed-box nonce: BLAKE2b-192(epk || recipient public key)."""
    return sodium.crypto_generichash_blake2b_salt_personal(
        epk + recipient, digest_size=sodium.crypto_box_NONCEBYTES
    )


class BoxKey:
    """An X25519 private key for receiving wrapped content keys."""

    __slots__ = ("_public", "_secret")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != sodium.crypto_box_SECRETKEYBYTES:
            raise MalformedError("X25519 secret must be 32 bytes")
        self._secret = secret
        self._public = sodium.crypto_scalarmult_base(secret)

    @classmethod
    def from_secret_bytes(cls, secret: bytes) -> BoxKey:
        return cls(secret)

    @classmethod
    def generate(cls, rng: Rng) -> BoxKey:
        return cls(rng(sodium.crypto_box_SECRETKEYBYTES))

    def secret_bytes(self) -> bytes:
        return self._secret

    def public_bytes(self) -> bytes:
        return self._public

    def unwrap(self, sealed: bytes) -> bytes:
        """Open a sealed content key; any failure is one opaque :class:`DecryptionError`."""
        try:
            key = sodium.crypto_box_seal_open(sealed, self._public, self._secret)
        except Exception as exc:
            raise DecryptionError("cannot decrypt") from exc
        if len(key) != CONTENT_KEY_LEN:
            raise DecryptionError("cannot decrypt")
        return bytes(key)

    def __repr__(self) -> str:
        return "BoxKey(<private>)"


def wrap_key(content_key: bytes, recipient: bytes, rng: Rng) -> bytes:
    """Seal ``content_key`` to an X25519 public key (libsodium sealed-box format)."""
    if len(content_key) != CONTENT_KEY_LEN:
        raise MalformedError("content key must be 32 bytes")
    check_box_key(recipient)
    epk, esk = sodium.crypto_box_seed_keypair(rng(sodium.crypto_box_SEEDBYTES))
    nonce = _seal_nonce(epk, recipient)
    return bytes(epk) + bytes(sodium.crypto_box_easy(content_key, nonce, recipient, esk))


def sealed_box_shared_key(wrapped: bytes, recipient: BoxKey) -> bytes:
    """The crypto_box key of one sealed box, ``crypto_box_beforenm(epk, recipient)``.

    ``epk`` is the ephemeral public key at the front of ``wrapped``, fresh for every box,
    so this key opens that one box and nothing else: disclosing it reveals neither the
    recipient's private key nor any other box sealed to it.  Raises the opaque
    :class:`DecryptionError` for a box too short to hold a key or whose ephemeral key
    has small order (no recipient could open such a box).
    """
    if len(wrapped) < SEAL_OVERHEAD:
        raise DecryptionError("cannot decrypt")
    try:
        key = sodium.crypto_box_beforenm(wrapped[:PUBLIC_KEY_LEN], recipient.secret_bytes())
    except Exception as exc:
        raise DecryptionError("cannot decrypt") from exc
    return bytes(key)


def open_sealed_box_with_shared_key(
    wrapped: bytes, shared_key: bytes, recipient_public: bytes
) -> bytes:
    """Open a sealed box with its disclosed :func:`sealed_box_shared_key`.

    The nonce is recomputed from the box's ephemeral key and ``recipient_public``, so the
    box opens only as a box sealed to that public key.  Any failure is the opaque
    :class:`DecryptionError`.  For anyone but the box's author, finding a key other than
    the true one under which a given box opens means forging a Poly1305 tag.
    """
    if (
        len(wrapped) < SEAL_OVERHEAD
        or len(shared_key) != SHARED_KEY_LEN
        or len(recipient_public) != PUBLIC_KEY_LEN
    ):
        raise DecryptionError("cannot decrypt")
    nonce = _seal_nonce(wrapped[:PUBLIC_KEY_LEN], recipient_public)
    try:
        message = sodium.crypto_box_open_afternm(wrapped[PUBLIC_KEY_LEN:], nonce, shared_key)
    except Exception as exc:
        raise DecryptionError("cannot decrypt") from exc
    return bytes(message)


# --- payload AEAD and commitment ---------------------------------------------------


def new_content_key(rng: Rng) -> bytes:
    return rng(CONTENT_KEY_LEN)


def seal_payload(content_key: bytes, plaintext: bytes, associated: bytes, rng: Rng) -> bytes:
    """XChaCha20-Poly1305: ``nonce(24) || ciphertext || tag(16)``."""
    if len(content_key) != CONTENT_KEY_LEN:
        raise MalformedError("content key must be 32 bytes")
    nonce = rng(AEAD_NONCE_LEN)
    ad = CTX_PAYLOAD + associated
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, content_key)
    return nonce + bytes(ct)


def open_payload(content_key: bytes, sealed: bytes, associated: bytes) -> bytes:
    """Open :func:`seal_payload` output; any failure is one opaque :class:`DecryptionError`."""
    if len(content_key) != CONTENT_KEY_LEN or len(sealed) < AEAD_OVERHEAD:
        raise DecryptionError("cannot decrypt")
    nonce, ct = sealed[:AEAD_NONCE_LEN], sealed[AEAD_NONCE_LEN:]
    try:
        pt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ct, CTX_PAYLOAD + associated, nonce, content_key
        )
    except Exception as exc:
        raise DecryptionError("cannot decrypt") from exc
    return bytes(pt)


def commitment(content_key: bytes, plaintext: bytes) -> bytes:
    """Key-committing hash binding a content key to a plaintext."""
    return sha256(CTX_COMMIT, content_key, sha256(plaintext))


# --- passphrase-protected key store -----------------------------------------------

PWHASH_SALT_LEN = sodium.crypto_pwhash_SALTBYTES
PWHASH_OPSLIMIT = sodium.crypto_pwhash_argon2id_OPSLIMIT_MODERATE
PWHASH_MEMLIMIT = sodium.crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE * 2  # 128 MiB


def passphrase_key(
    passphrase: bytes,
    salt: bytes,
    *,
    opslimit: int = PWHASH_OPSLIMIT,
    memlimit: int = PWHASH_MEMLIMIT,
) -> bytes:
    """Argon2id key derivation for the key store."""
    if len(salt) != PWHASH_SALT_LEN:
        raise MalformedError("bad salt length")
    try:
        return bytes(
            sodium.crypto_pwhash_alg(
                sodium.crypto_secretbox_KEYBYTES,
                passphrase,
                salt,
                opslimit,
                memlimit,
                sodium.crypto_pwhash_ALG_ARGON2ID13,
            )
        )
    except Exception as exc:
        raise MalformedError("invalid key-derivation parameters") from exc


def secretbox_seal(key: bytes, plaintext: bytes, rng: Rng) -> bytes:
    nonce = rng(sodium.crypto_secretbox_NONCEBYTES)
    return nonce + bytes(sodium.crypto_secretbox_easy(plaintext, nonce, key))


def secretbox_open(key: bytes, sealed: bytes) -> bytes:
    n = sodium.crypto_secretbox_NONCEBYTES
    try:
        return bytes(sodium.crypto_secretbox_open_easy(sealed[n:], sealed[:n], key))
    except Exception as exc:
        raise DecryptionError("cannot decrypt") from exc


# --- annex streams (secretstream) ---------------------------------------------------

STREAM_KEY_BYTES = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
STREAM_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
STREAM_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


def new_stream_key(rng: Rng) -> bytes:
    return rng(STREAM_KEY_BYTES)


class StreamPusher:
    """Encrypt one secretstream, chunk by chunk (:func:`stream_pusher`)."""

    def __init__(self, key: bytes, header: bytes) -> None:
        if len(key) != STREAM_KEY_BYTES or len(header) != STREAM_HEADER_BYTES:
            raise MalformedError("stream key or header has the wrong length")
        self.header = header
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        # libsodium's init_push draws the header itself and then sets the state exactly
        # as init_pull does from that header (k = HChaCha20(key, header[:16]), nonce =
        # counter 1 || header[16:]); init_pull from a header drawn from ``rng`` gives
        # that state, so streams are reproducible (known-answer vectors, resuming an
        # upload) and decrypt with the standard pull.
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)

    def push(self, plaintext: bytes, *, final: bool) -> bytes:
        tag = _TAG_FINAL if final else _TAG_MESSAGE
        return bytes(
            sodium.crypto_secretstream_xchacha20poly1305_push(self._state, plaintext, None, tag)
        )


class StreamPuller:
    """Decrypt one secretstream, chunk by chunk (:func:`stream_puller`)."""

    def __init__(self, key: bytes, header: bytes) -> None:
        if len(key) != STREAM_KEY_BYTES or len(header) != STREAM_HEADER_BYTES:
            raise DecryptionError("cannot decrypt")
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        try:
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)
        except Exception as exc:
            raise DecryptionError("cannot decrypt") from exc
        self._ended = False

    def pull(self, ciphertext: bytes) -> tuple[bytes, bool]:
        """The chunk's plaintext and whether it carried the final tag."""
        if self._ended:
            raise DecryptionError("cannot decrypt")
        try:
            plaintext, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, ciphertext, None
            )
        except Exception as exc:
            raise DecryptionError("cannot decrypt") from exc
        if tag not in (_TAG_MESSAGE, _TAG_FINAL):
            raise DecryptionError("cannot decrypt")
        self._ended = tag == _TAG_FINAL
        return bytes(plaintext), self._ended


def stream_pusher(key: bytes, header: bytes | None = None, rng: Rng | None = None) -> StreamPusher:
    """A secretstream encryptor on ``key`` with ``header`` (or one drawn from ``rng``)."""
    if header is None:
        if rng is None:
            raise MalformedError("a new stream needs an rng for its header")
        header = rng(STREAM_HEADER_BYTES)
    return StreamPusher(key, header)


def stream_puller(key: bytes, header: bytes) -> StreamPuller:
    return StreamPuller(key, header)


# --- deniable authentication (non-papers: protocol.envelope) ----------------------------
# Not a signature context: a MAC key only the two ends of a static-static X25519 exchange
# can compute, so either end could have made any tag under it.

CTX_NON_PAPER = b"docket/v1/non-paper\x00"
NON_PAPER_TAG_LEN = 32


def static_shared(me: BoxKey, peer_public: bytes) -> bytes:
    """X25519(my secret, peer public): the same 32 bytes at both ends."""
    check_box_key(peer_public)
    try:
        return bytes(sodium.crypto_scalarmult(me.secret_bytes(), peer_public))
    except nacl.exceptions.RuntimeError as exc:  # pragma: no cover - check_box_key refuses
        raise WeakKeyError("X25519 shared secret is zero") from exc


def non_paper_tag(shared: bytes, sender_pk: bytes, recipient_pk: bytes, message: bytes) -> bytes:
    """The deniable tag of a non-paper for one recipient: keyed BLAKE2b-256 under a key
    derived from the static-static ``shared`` secret and both X25519 public keys
    (sender first), over ``message``."""
    key = sodium.crypto_generichash_blake2b_salt_personal(
        CTX_NON_PAPER + shared + sender_pk + recipient_pk, digest_size=32
    )
    return bytes(
        sodium.crypto_generichash_blake2b_salt_personal(
            CTX_NON_PAPER + message, digest_size=NON_PAPER_TAG_LEN, key=key
        )
    )
