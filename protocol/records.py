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
from protocol.encoding import JSONValue, b64d, b64e, canonical
from protocol.errors import BadSignatureError

VERSION = 1

TalksId = NewType("TalksId", bytes)
MessageId = NewType("MessageId", bytes)
DraftId = NewType("DraftId", bytes)

ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
"""Member, delegation and channel ids: lowercase, digits, ``._-``, 1-64 chars."""

NAME_MAX = 200
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
