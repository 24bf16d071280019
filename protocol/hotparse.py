"""The fast path for a log entry of either hot type, by its bytes, with its signature's
place: for callers that hold raw entries (the auditor, the receipt batch handler).

Draft headers and receipts parse through their own :meth:`DraftHeader.from_bytes
<protocol.envelope.DraftHeader.from_bytes>` and :meth:`Receipt.from_bytes
<protocol.receipt.Receipt.from_bytes>`, whose first step is a fast path owned by each
record's module (the shared pieces and the theory of operation are in
:mod:`protocol.fastpath`).  This module only dispatches an entry of unknown type to the
right one, by the first member of its canonical encoding, and hands back what it
declined as ``None`` instead of falling back, so a caller can take the general path
(:func:`protocol.ledger.parse_entry`) itself.  ``parse_hot(b)`` is either ``None`` or
equal to ``parse_entry(b)``; a differential property test
(``tests/protocol/test_hotparse.py``) holds it to that.

It sits above :mod:`protocol.envelope` and :mod:`protocol.receipt`; nothing in
:mod:`protocol` imports it.  Sans-IO.
"""

from __future__ import annotations

from protocol.envelope import DraftHeader, _hot_header
from protocol.fastpath import SIG_MEMBER_HEAD, SIG_MEMBER_TAIL
from protocol.receipt import Receipt, _hot_receipt

__all__ = ["SIG_MEMBER_HEAD", "SIG_MEMBER_TAIL", "parse_hot", "parse_hot_signed"]


def parse_hot(raw: bytes) -> DraftHeader | Receipt | None:
    """The draft header or receipt ``raw`` encodes, exactly as the general parser would
    build it, or ``None`` when ``raw`` is not one the fast path is sure of."""
    hot = parse_hot_signed(raw)
    return None if hot is None else hot[0]


def parse_hot_signed(raw: bytes) -> tuple[DraftHeader | Receipt, int] | None:
    """:func:`parse_hot`, with the offset in ``raw`` of the signature's base64url text.

    The bytes the record's signature covers, ``canonical(record minus "sig")``, are then
    ``raw[:offset - SIG_MEMBER_HEAD] + raw[offset + SIG_MEMBER_TAIL:]``: the pattern
    matched the member ``,"sig":"<86 characters>"`` at that place, between two other
    members of the canonical top-level object (what
    :func:`protocol.ledger.raw_signature_verifies` finds by searching)."""
    if type(raw) is not bytes:  # the objects keep ``raw``: only ever exact bytes
        return None
    if raw[:11] == b'{"commit":"':
        return _hot_receipt(raw)
    if raw[:12] == b'{"channel":"':
        return _hot_header(raw)
    return None
