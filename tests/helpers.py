"""Shared test helpers: a deterministic ``rng`` and independent curve arithmetic.

The curve code here is deliberately naive (affine coordinates, Python integers) and
shares nothing with libsodium, so the weak-key lists it produces are an independent
check of :func:`protocol.crypto.check_signing_key` and :func:`~protocol.crypto.check_box_key`.
It is far too slow and leaky for anything but tests.
"""

from __future__ import annotations

import hashlib

from protocol.crypto import Rng

# --- deterministic randomness ---------------------------------------------------------

_RNG_TAG = b"docket/test/rng\x00"


def make_rng(seed: bytes | str) -> Rng:
    """Return a deterministic stand-in for ``os.urandom`` derived from ``seed``.

    Call number ``i`` returns ``SHAKE-256(tag || len(seed) || seed || i)[:n]``: the same
    seed and the same sequence of requests always give the same bytes, which is what
    known-answer vectors need, while distinct calls never repeat (a nonce drawn twice
    from one rng differs).
    """
    seed_bytes = seed.encode("utf-8") if isinstance(seed, str) else seed
    prefix = _RNG_TAG + len(seed_bytes).to_bytes(4, "big") + seed_bytes
    counter = 0

    def rng(n: int) -> bytes:
        nonlocal counter
        if n < 0:
            raise ValueError("cannot draw a negative number of bytes")
        out = hashlib.shake_256(prefix + counter.to_bytes(8, "big")).digest(n)
        counter += 1
        return out

    return rng


def flip_bit(data: bytes, bit: int) -> bytes:
    """Return ``data`` with bit number ``bit`` (little-endian within each byte) flipped."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- Ed25519 / Curve25519 arithmetic (RFC 8032 section 5.1, RFC 7748) -------------------

P25519 = 2**255 - 19
ED25519_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, -1, P25519)) % P25519
_SQRT_M1 = pow(2, (P25519 - 1) // 4, P25519)

EdPoint = tuple[int, int]
"""An affine Edwards point ``(x, y)``."""

ED_IDENTITY: EdPoint = (0, 1)


def ed_add(a: EdPoint, b: EdPoint) -> EdPoint:
    """Complete twisted-Edwards addition (a = -1)."""
    x1, y1 = a
    x2, y2 = b
    t = _D * x1 * x2 * y1 * y2 % P25519
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, -1, P25519) % P25519
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, -1, P25519) % P25519
    return x3, y3


def ed_mul(k: int, point: EdPoint) -> EdPoint:
    """Scalar multiplication by double-and-add."""
    result = ED_IDENTITY
    addend = point
    while k:
        if k & 1:
            result = ed_add(result, addend)
        addend = ed_add(addend, addend)
        k >>= 1
    return result


def ed_decode(encoded: bytes, *, reduce: bool = False) -> EdPoint | None:
    """Decode a 32-byte Edwards point; ``None`` if it is not on the curve.

    RFC 8032 rejects ``y >= p``; with ``reduce=True`` such a ``y`` is taken mod p instead,
    which is how lenient decoders read non-canonical encodings.
    """
    value = int.from_bytes(encoded, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= P25519:
        if not reduce:
            return None
        y -= P25519
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, P25519) % P25519
    x = pow(x2, (P25519 + 3) // 8, P25519)
    if (x * x - x2) % P25519:
        x = x * _SQRT_M1 % P25519
    if (x * x - x2) % P25519:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P25519 - x
    return x, y


def ed_encode(point: EdPoint) -> bytes:
    """Canonical RFC 8032 encoding."""
    x, y = point
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _order8_point() -> EdPoint:
    # [L]Q kills the prime-order part of any point Q, leaving its torsion component; about
    # half of all points have a component of full order 8.
    for y in range(2, 1000):
        q = ed_decode(y.to_bytes(32, "little"))
        if q is None:
            continue
        t = ed_mul(ED25519_L, q)
        if ed_mul(4, t) != ED_IDENTITY:
            return t
    raise AssertionError("no point with an order-8 component found")  # pragma: no cover


ED25519_TORSION: tuple[EdPoint, ...] = tuple(ed_mul(k, _order8_point()) for k in range(8))
"""The eight points of order dividing 8 (``ED25519_TORSION[0]`` is the identity)."""

ED25519_SMALL_ORDER: tuple[bytes, ...] = tuple(sorted(ed_encode(t) for t in ED25519_TORSION))
"""Canonical encodings of the eight small-order Ed25519 points."""


def ed_to_montgomery_u(point: EdPoint) -> int:
    """Birational map to Curve25519: ``u = (1 + y) / (1 - y)`` (identity maps to 0)."""
    _, y = point
    if y == 1:
        return 0
    return (1 + y) * pow(1 - y, -1, P25519) % P25519


X25519_SMALL_ORDER_U: tuple[int, ...] = (
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    P25519 - 1,
    P25519,
    P25519 + 1,
)
"""X25519 u-coordinates of small order, from the literature (Bernstein's curve25519 page,
libsodium's blocklist); the last two are non-canonical encodings of 0 and 1."""


def u_bytes(u: int) -> bytes:
    """Little-endian 32-byte encoding of an X25519 u-coordinate."""
    return u.to_bytes(32, "little")
