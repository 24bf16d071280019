"""Short invitation codes: sixteen characters to read aloud or type, for the ~400 of a
full ``docket-invite:`` code.

Theory of operation
-------------------
A full code ``C`` carries the server, the talks id the joiner pins, and the invitation
id and token.  Its short form is derived from it:

1. ``D = SHA-256("docket/v1/short-invitation\\x00" || C)``; the short code's *data* is the
   first 75 bits of ``D`` as 15 Crockford base32 characters, followed by one check
   character (the first 5 bits of ``SHA-256`` of those 15), shown in groups of four:
   ``K7M2-Q9XW-4THB-3RDX``.  Reading is forgiving: case, ``-`` and spaces do not matter,
   ``O`` reads as ``0`` and ``I``/``L`` as ``1``.  A typo almost always fails the check
   character and is reported as such, before anything is asked of the server.
2. The inviter stores, at the server, under ``handle = SHA-256("docket/v1/short-handle\\x00"
   || data)``, the full code sealed (XChaCha20-Poly1305) with
   ``key = SHA-256("docket/v1/short-key\\x00" || data)``.  The server never sees the short
   code: it holds neither the token in clear nor a way to read the sealed code.
3. The joiner recomputes ``handle`` and ``key`` from what they typed, fetches the sealed
   code, opens it and checks that the full code's own short form is exactly the one
   typed.  A server that substitutes another invitation (other talks, another token)
   would have to find a code whose digest matches 75 bits and a box that opens under a
   key it does not know: the joiner refuses anything else (``invitation_substituted``).
"""

from __future__ import annotations

import os

from client.errors import UsageError, VerificationError
from protocol import crypto
from protocol.errors import ProtocolError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O or U, so nothing reads as another symbol."""

DATA_CHARS = 15
SHORT_CHARS = DATA_CHARS + 1
_DIGEST = b"docket/v1/short-invitation\x00"
_HANDLE = b"docket/v1/short-handle\x00"
_KEY = b"docket/v1/short-key\x00"
_AD = b"docket/v1/short-sealed\x00"
_READ_AS = {"O": "0", "I": "1", "L": "1"}


def _chars(data: bytes, count: int) -> str:
    bits = int.from_bytes(data, "big")
    total = len(data) * 8
    return "".join(ALPHABET[(bits >> (total - 5 * (i + 1))) & 31] for i in range(count))


def _check(data: str) -> str:
    return ALPHABET[crypto.sha256(data.encode("ascii"))[0] >> 3]


def data_of(full_code: str) -> str:
    """The 15 data characters of ``full_code``'s short form."""
    return _chars(crypto.sha256(_DIGEST + full_code.encode("utf-8")), DATA_CHARS)


def show(data: str) -> str:
    """``data`` with its check character, in groups of four (what people read)."""
    text = data + _check(data)
    return "-".join(text[i : i + 4] for i in range(0, SHORT_CHARS, 4))


def short_code(full_code: str) -> str:
    """The short form of a full invitation code."""
    return show(data_of(full_code))


def _normalise(text: str) -> str:
    cleaned = "".join(text.split()).replace("-", "").upper()
    return "".join(_READ_AS.get(c, c) for c in cleaned)


def looks_short(text: str) -> bool:
    """Whether ``text`` is meant as a short code (16 base32 characters, maybe grouped)."""
    cleaned = _normalise(text)
    return len(cleaned) == SHORT_CHARS and all(c in ALPHABET for c in cleaned)


def parse(text: str) -> str:
    """The data characters of a typed short code, or ``bad_short_code``."""
    cleaned = _normalise(text)
    if len(cleaned) != SHORT_CHARS or any(c not in ALPHABET for c in cleaned):
        raise UsageError(
            f"a short invitation code has {SHORT_CHARS} letters and digits (like "
            "K7M2-Q9XW-4THB-3RDX); check what you typed",
            code="bad_short_code",
        )
    data, check = cleaned[:DATA_CHARS], cleaned[DATA_CHARS]
    if _check(data) != check:
        raise UsageError(
            "this short invitation code is mistyped (its check character does not match): "
            "compare each character with the code you were given",
            code="bad_short_code",
        )
    return data


def handle(data: str) -> bytes:
    """Where the server keeps the sealed code (it never learns ``data``)."""
    return crypto.sha256(_HANDLE + data.encode("ascii"))


def _key(data: str) -> bytes:
    return crypto.sha256(_KEY + data.encode("ascii"))


def seal(full_code: str) -> tuple[str, bytes, bytes]:
    """``(short code, handle, sealed full code)`` for the inviter to hand out and store."""
    data = data_of(full_code)
    sealed = crypto.seal_payload(_key(data), full_code.encode("utf-8"), _AD, os.urandom)
    return show(data), handle(data), sealed


def open_sealed(data: str, sealed: bytes) -> str:
    """The full code behind ``data``, refused unless it opens under the short code's key
    and its own short form is the one typed (the server cannot substitute one)."""
    try:
        full = crypto.open_payload(_key(data), sealed, _AD).decode("utf-8")
    except (ProtocolError, UnicodeDecodeError) as exc:
        raise VerificationError(
            "the server answered the short code with something that is not the invitation "
            "it stands for; nothing was joined (ask for the full code instead)",
            code="invitation_substituted",
        ) from exc
    if not crypto.equal(data_of(full).encode("ascii"), data.encode("ascii")):
        raise VerificationError(
            "the server answered the short code with another invitation than the one it "
            "stands for; nothing was joined (ask for the full code instead)",
            code="invitation_substituted",
        )
    return full
