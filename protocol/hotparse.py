"""A fast parser for the two hot record types of a log: draft headers and receipts.

Theory of operation
-------------------
Drafts and receipts are nearly every entry of a long log, and the general strict
parser (:func:`protocol.ledger.parse_entry`: JSON decode, canonical re-encode and
compare, :class:`~protocol.encoding.Fields` reads) costs several times what their
shape needs.  :func:`parse_hot` matches the entry's bytes against one regular
expression per type that spells out the canonical encoding of that record exactly:

* the members in canonical (sorted) order, no whitespace, the literals ``t`` and ``v``;
* every byte string as unpadded base64url of its exact decoded length, its last
  character restricted to those whose spare bits are zero (so strict :func:`b64d`
  would accept it and re-encoding gives the same text);
* integers as ``0`` or ``[1-9][0-9]*`` of at most 16 digits (the value is then checked
  against the range the general parser allows), enumerations and identifiers by the
  same patterns the record classes use.

Any such text is canonical JSON (ASCII only, nothing to escape) that the general parser
accepts with the same field values; the record is then built by the same constructor,
whose ``__post_init__`` runs the same checks.  Whatever the patterns do not cover —
another shape, a value out of range, an unsorted list, a constructor that raises —
returns ``None`` and the caller uses the general parser, which decides and reports the
error.  So ``parse_hot(b)`` is either ``None`` or equal to ``parse_entry(b)``; a
differential property test (``tests/protocol/test_hotparse.py``) holds it to that.

:func:`parse_hot_signed` also returns where the signature's text sits, so the auditor's
workers can cut the signed bytes out by position (the test checks the cut equals
``signing_bytes`` of the parsed object).  Fields that repeat from record to record are
decoded through a small bounded memo (a pure function, so nothing changes but speed).

This module is sans-IO.
"""

from __future__ import annotations

import binascii
import itertools
import re
from collections.abc import Callable
from typing import cast

from protocol import crypto
from protocol.encoding import MAX_SAFE_INT
from protocol.envelope import MAX_PARENTS, MAX_RECIPIENTS, DraftHeader
from protocol.errors import ProtocolError
from protocol.keys import DeviceId
from protocol.merkle import LeafHash
from protocol.receipt import Receipt
from protocol.records import DraftId, MessageId, TalksId

# Base64url of 32, 16 and 64 bytes: 43, 22 and 86 characters; the last one carries 2, 4
# and 4 spare bits, which must be zero.
_B32 = rb"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]"
_B16 = rb"[A-Za-z0-9_-]{21}[AQgw]"
_B64 = rb"[A-Za-z0-9_-]{85}[AQgw]"
_INT = rb"(0|[1-9][0-9]{0,15})"
_ID = rb"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?"  # protocol.records.ID_RE

_RECEIPT = re.compile(
    rb'\{"commit":"(' + _B32 + rb')","ct_hash":"(' + _B32 + rb')","device":"(' + _B16
    + rb')","entry":"(' + _B32 + rb')","index":' + _INT
    + rb',"kind":"(received|acknowledged|rejected)","reason":(?:null|"([a-z0-9_]{1,64})")'
    + rb',"sig":"(' + _B64 + rb')","t":"receipt","talks":"(' + _B32 + rb')","time":' + _INT
    + rb',"v":1\}'
)  # fmt: skip

_DRAFT = re.compile(
    rb'\{"channel":"(' + _ID + rb')","commit":"(' + _B32 + rb')","counter":' + _INT
    + rb',"ct_hash":"(' + _B32 + rb')","ct_len":' + _INT + rb',"draft":"(' + _B16
    + rb')","msg":"(' + _B16 + rb')","parents":\[((?:"' + _B32 + rb'"(?:,"' + _B32
    + rb'")*)?)\],"recipients":\[("' + _B16 + rb'"(?:,"' + _B16 + rb'")*)\],"roster":"('
    + _B32 + rb')","sender":"(' + _B16 + rb')","sig":"(' + _B64
    + rb')","t":"draft","talks":"(' + _B32 + rb')","time":' + _INT + rb',"v":1,"version":'
    + _INT + rb',"wrapped":"(' + _B32 + rb')"\}'
)  # fmt: skip

_STD = bytes.maketrans(b"-_", b"+/")
_PAD = (b"", b"", b"==", b"=")


def _d(text: bytes) -> bytes:
    """Decode base64url the patterns above have already validated (alphabet, length,
    zero spare bits), so this cannot fail."""
    return binascii.a2b_base64(text.translate(_STD) + _PAD[len(text) % 4])


_CACHE: dict[bytes, bytes] = {}
_CACHE_MAX = 1 << 16


def _dc(text: bytes) -> bytes:
    """:func:`_d` through a small memo, for the fields that repeat from record to
    record (talks id, device ids, roster head, the draft leaf, ciphertext hash and
    commitment every receipt of a draft repeats).  Decoding is a pure function of the
    text, so the memo changes no result; equal values then share one object, which also
    keeps a million-entry replay smaller.  Cleared when full (bounded memory)."""
    value = _CACHE.get(text)
    if value is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        value = _CACHE[text] = _d(text)
    return value


# The same function, typed for each kind of value it decodes (no wrapper call at run
# time: a NewType is its underlying bytes).
_talks = cast(Callable[[bytes], TalksId], _dc)
_device = cast(Callable[[bytes], DeviceId], _dc)
_leaf = cast(Callable[[bytes], LeafHash], _dc)

_DeviceIds = tuple[DeviceId, ...]

SIG_MEMBER_HEAD = len(b',"sig":"')
SIG_MEMBER_TAIL = 86 + 1  # the 86 base64url characters and the closing quote


def _list(group: bytes, decode: Callable[[bytes], bytes] = _d) -> list[bytes]:
    """The decoded items of a matched list body ``"a","b",...`` (empty: no items)."""
    if not group:
        return []
    return [decode(item) for item in group[1:-1].split(b'","')]


def _sorted(items: list[bytes]) -> bool:
    return all(a < b for a, b in itertools.pairwise(items))


def parse_hot(raw: bytes) -> DraftHeader | Receipt | None:
    """The draft header or receipt ``raw`` encodes, exactly as the general parser would
    build it, or ``None`` when ``raw`` is not one this fast path is sure of."""
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
        return _receipt(raw)
    if raw[:12] == b'{"channel":"':
        return _draft(raw)
    return None


def _receipt(raw: bytes) -> tuple[Receipt, int] | None:
    m = _RECEIPT.fullmatch(raw)
    if m is None:
        return None
    commit, ct_hash, device, entry, index, kind, reason, sig, talks, time = m.groups()
    index_v, time_v = int(index), int(time)
    if index_v > MAX_SAFE_INT or time_v > MAX_SAFE_INT:
        return None
    try:
        return Receipt(
            talks=_talks(talks),
            device=_device(device),
            kind=kind.decode("ascii"),
            reason=None if reason is None else reason.decode("ascii"),
            entry=_leaf(entry),
            index=index_v,
            ct_hash=_dc(ct_hash),
            commit=_dc(commit),
            time=time_v,
            sig=_d(sig),
            raw=raw,
        ), m.start(8)
    except ProtocolError:  # the constructor's own checks: the general parser reports
        return None


def _draft(raw: bytes) -> tuple[DraftHeader, int] | None:
    m = _DRAFT.fullmatch(raw)
    if m is None:
        return None
    (
        channel,
        commit,
        counter,
        ct_hash,
        ct_len,
        draft,
        msg,
        parents_text,
        recipients_text,
        roster,
        sender,
        sig,
        talks,
        time,
        version,
        wrapped,
    ) = m.groups()
    counter_v, ct_len_v, time_v, version_v = int(counter), int(ct_len), int(time), int(version)
    if (
        not 1 <= counter_v <= MAX_SAFE_INT
        or not crypto.AEAD_OVERHEAD <= ct_len_v <= MAX_SAFE_INT
        or time_v > MAX_SAFE_INT
        or not 1 <= version_v <= MAX_SAFE_INT
    ):
        return None
    parents = _list(parents_text)
    recipients = _list(recipients_text, _dc)
    if (
        len(parents) > MAX_PARENTS
        or len(recipients) > MAX_RECIPIENTS
        or not _sorted(parents)
        or not _sorted(recipients)
    ):
        return None
    try:
        return DraftHeader(
            talks=_talks(talks),
            channel=channel.decode("ascii"),
            sender=_device(sender),
            counter=counter_v,
            msg=MessageId(_d(msg)),
            draft=DraftId(_d(draft)),
            version=version_v,
            parents=tuple(LeafHash(p) for p in parents),
            roster=_leaf(roster),
            recipients=cast(_DeviceIds, tuple(recipients)),
            wrapped=_d(wrapped),
            ct_hash=_dc(ct_hash),
            ct_len=ct_len_v,
            commit=_dc(commit),
            time=time_v,
            sig=_d(sig),
            raw=raw,
        ), m.start(12)
    except ProtocolError:  # the constructor's own checks: the general parser reports
        return None
