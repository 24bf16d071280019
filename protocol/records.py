"""Shared rules for signed records: identifiers, signing and the record header.

Every signed record is a canonical JSON object with a type tag ``t``, a version ``v`` and
a ``sig`` field.  The signature is Ed25519 over ``context(t) || canonical(record minus
sig)``, so a signature made for one record type never verifies as another, and the
signature covers every other field (a mutation sweep in the tests proves it).
"""

from __future__ import annotations

import re
from typing import NewType

from protocol import crypto
from protocol.encoding import JSONValue, b64d, b64e, canonical, parse
from protocol.errors import BadSignatureError
from protocol.names import NAME_MAX

__all__ = [
    "ID_RE",
    "MAX_TIME",
    "MESSAGE_ID_LEN",
    "NAME_MAX",
    "VERSION",
    "DraftId",
    "MessageId",
    "TalksId",
    "sign_record",
    "signing_bytes",
    "verify_record",
    "verify_record_bytes",
]

VERSION = 1

TalksId = NewType("TalksId", bytes)
MessageId = NewType("MessageId", bytes)
DraftId = NewType("DraftId", bytes)

ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
"""Member, delegation and channel ids: lowercase, digits, ``._-``, 1-64 chars."""

MESSAGE_ID_LEN = 16
MAX_TIME = 2**53 - 1


def signing_bytes(record: dict[str, JSONValue]) -> bytes:
    """The bytes a record's signature covers: canonical JSON without ``sig``."""
    return canonical({k: v for k, v in record.items() if k != "sig"})


def sign_record(
    key: crypto.SigningKey, context: bytes, record: dict[str, JSONValue]
) -> dict[str, JSONValue]:
    """Return ``record`` with its ``sig`` field set."""
    body = {k: v for k, v in record.items() if k != "sig"}
    body["sig"] = b64e(key.sign(context, canonical(body)))
    return body


def verify_record(public: bytes, context: bytes, record: dict[str, JSONValue]) -> None:
    """Verify a record's ``sig``; raise :class:`BadSignatureError` or return ``None``."""
    sig = record.get("sig")
    if not isinstance(sig, str):
        raise BadSignatureError("record has no signature")
    crypto.verify(public, context, signing_bytes(record), b64d(sig, what="sig"))


def verify_record_bytes(public: bytes, context: bytes, raw: bytes, sig: bytes) -> None:
    """:func:`verify_record` for a record held as its canonical bytes ``raw`` (what
    :func:`~protocol.encoding.parse` accepted, or :func:`canonical` produced) with its
    decoded ``sig``: raise :class:`BadSignatureError` or return ``None``.

    The signed bytes, ``canonical(record minus "sig")``, are ``raw`` with the member
    text ``,"sig":"<base64url>"`` cut out: canonical JSON joins an object's members,
    sorted, with commas, base64url needs no escaping, and every unescaped quote is
    structural, so that text can only be a ``sig`` member of some object.  It is cut
    only when it occurs exactly once and no other ``"sig":`` key occurs anywhere (so
    it is the top-level one); otherwise the record is parsed and re-encoded.  This
    spares a JSON parse and encode per verification (headers and receipts are flat).
    """
    member = b',"sig":"' + b64e(sig).encode("ascii") + b'"'
    if raw.count(member) == 1 and raw.count(b'"sig":') == 1:
        message = raw.replace(member, b"", 1)
    else:
        obj = parse(raw, max_size=len(raw) + 1)
        if not isinstance(obj, dict):
            raise BadSignatureError("record has no signature")
        message = signing_bytes(obj)
    crypto.verify(public, context, message, sig)
