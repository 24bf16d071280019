"""The shared pieces of the fast paths of the two hot record types' parsers.

Theory of operation
-------------------
Draft headers and receipts are nearly every entry of a long log, and the general strict
parser (:func:`protocol.encoding.parse`: JSON decode, canonical re-encode and compare,
then :class:`~protocol.encoding.Fields` reads) costs several times what their shape
needs.  So :meth:`DraftHeader.from_bytes <protocol.envelope.DraftHeader.from_bytes>` and
:meth:`Receipt.from_bytes <protocol.receipt.Receipt.from_bytes>` (and their ``from_json``)
first match the bytes against one regular expression, owned by the record's module, that
spells out the canonical encoding of that record exactly:

* the members in canonical (sorted) order, no whitespace, the literals ``t`` and ``v``;
* every byte string as unpadded base64url of its exact decoded length, its last
  character restricted to those whose spare bits are zero (:data:`B16`, :data:`B32`,
  :data:`B64`: so strict :func:`~protocol.encoding.b64d` would accept it and
  re-encoding gives the same text);
* integers as ``0`` or ``[1-9][0-9]*`` of at most 16 digits (:data:`INT`; the value is
  then checked against the range the general parser allows), enumerations and
  identifiers by the same patterns the record classes use.

Any such text is canonical JSON (ASCII only, nothing to escape) that the general parser
accepts with the same field values; the record is then built with the class's own
``__post_init__`` checks.  Whatever a pattern does not cover (another shape, a value out
of range, an unsorted list, a check that raises) is declined, and the general parser
decides and reports the error.  So the fast path changes no result, only the time;
differential property tests (``tests/protocol/test_hotparse.py``) hold it to that.

The records are built by writing their slots in field order and then running the class's
``__post_init__`` (:func:`slot_writers`): exactly what the dataclass-generated
``__init__`` does, without its keyword-argument call (about half a microsecond of the
~3 µs a receipt takes).  That is done only while the class is still the dataclass the
builders were written for; otherwise they call the constructor.  Fields that repeat
from record to record are decoded through a small bounded memo (:func:`memo_decode`, a
pure function, so nothing changes but speed).

:func:`record_from_bytes` and :func:`record_from_json` are the records' ``from_*``: the
fast path first, the general path for whatever it declines.

This module builds only on :mod:`protocol.encoding` and :mod:`protocol.errors` (the
record modules build on it) and is sans-IO.
"""

from __future__ import annotations

import binascii
import dataclasses
import itertools
import types
from collections.abc import Callable
from typing import Any, TypeVar, cast

from protocol.encoding import JSONValue, canonical, parse
from protocol.errors import ProtocolError

# Base64url of 16, 32 and 64 bytes: 22, 43 and 86 characters; the last one carries 4, 2
# and 4 spare bits, which must be zero.
B16 = rb"[A-Za-z0-9_-]{21}[AQgw]"
B32 = rb"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]"
B64 = rb"[A-Za-z0-9_-]{85}[AQgw]"
INT = rb"(0|[1-9][0-9]{0,15})"

SIG_MEMBER_HEAD = len(b',"sig":"')
"""Where a record's ``sig`` member starts, before the offset of its text."""
SIG_MEMBER_TAIL = 86 + 1  # the 86 base64url characters and the closing quote
"""Where it ends, after that offset: the signed bytes of a record matched at offset
``o`` are ``raw[:o - SIG_MEMBER_HEAD] + raw[o + SIG_MEMBER_TAIL:]``."""

R = TypeVar("R")
Hot = Callable[[bytes], tuple[R, int] | None]
"""A record module's fast path: the record the bytes canonically encode and the offset
of its signature's text, or ``None`` where its pattern does not cover them."""
General = Callable[[JSONValue, bytes | None], R]
"""A record class's general path, ``_from_parsed(obj, raw)``: ``raw`` is ``None`` or the
canonical encoding of ``obj`` (so it need not be encoded again)."""


def record_from_bytes(data: bytes, hot: Hot[R], general: General[R]) -> R:
    """A record's ``from_bytes``: the fast path, else strict :func:`parse` and the
    general path, which decide and report the error."""
    found = hot(data)
    return general(parse(data), bytes(data)) if found is None else found[0]


def record_from_json(obj: JSONValue, hot: Hot[R], general: General[R]) -> R:
    """A record's ``from_json``: the fast path on ``obj``'s canonical encoding, else the
    general path (given that encoding, or, when ``obj`` has none, ``None``: it then
    raises, with the error it finds first)."""
    try:
        raw = canonical(obj)
    except ProtocolError:
        return general(obj, None)
    found = hot(raw)
    return general(obj, raw) if found is None else found[0]


STD = bytes.maketrans(b"-_", b"+/")
"""The base64url alphabet to the standard one, for :func:`binascii.a2b_base64`."""
_PAD = (b"", b"", b"==", b"=")


def decode(text: bytes) -> bytes:
    """Decode base64url a pattern has already validated (alphabet, length, zero spare
    bits), so this cannot fail."""
    return binascii.a2b_base64(text.translate(STD) + _PAD[len(text) % 4])


MEMO: dict[bytes, bytes] = {}
MEMO_MAX = 1 << 16


def memo_decode(text: bytes) -> bytes:
    """:func:`decode` through a small memo, for the fields that repeat from record to
    record (talks id, device ids, roster head, the draft leaf, ciphertext hash and
    commitment every receipt of a draft repeats).  Decoding is a pure function of the
    text, so the memo changes no result; equal values then share one object, which also
    keeps a million-entry replay smaller.  Cleared when full (bounded memory).

    The hot loops inline the memo's hit: ``MEMO.get(text) or memo_decode(text)``."""
    value = MEMO.get(text)
    if value is None:
        if len(MEMO) >= MEMO_MAX:
            MEMO.clear()
        value = MEMO[text] = decode(text)
    return value


def decode_list(group: bytes, decode_item: Callable[[bytes], bytes] = decode) -> list[bytes]:
    """The decoded items of a matched list body ``"a","b",...`` (empty: no items)."""
    if not group:
        return []
    return [decode_item(item) for item in group[1:-1].split(b'","')]


def strictly_ascending(items: list[bytes]) -> bool:
    """Sorted without repeats (the one encoding of a set the general parser accepts)."""
    return len(items) < 2 or all(a < b for a, b in itertools.pairwise(items))


Writer = Callable[[object, object], None]


def slot_writers(
    cls: type, names: tuple[str, ...], unset: tuple[str, ...] = ()
) -> tuple[Writer, ...] | None:
    """The slot setters of ``cls``'s fields ``names + unset``, or ``None`` if ``cls`` is
    not the dataclass a builder was written for.

    The dataclass-generated ``__init__`` of a frozen, slotted class writes each field's
    slot in field order (``object.__setattr__``; a field with ``init=False`` gets its
    default) and then calls ``__post_init__``; the builders do the same through the slot
    descriptors, positionally.  Checked here: the fields are exactly ``names`` (each an
    ``__init__`` argument) then ``unset`` (each ``init=False`` with the default
    ``None``), in that order; every field is a plain slot; and ``__init__`` is the
    generated one (compiled from ``<string>``).
    """
    if not dataclasses.is_dataclass(cls):
        return None
    fields = dataclasses.fields(cls)
    if tuple(f.name for f in fields) != names + unset:
        return None
    writers = []
    for f in fields:
        slot = cls.__dict__.get(f.name)
        if type(slot) is not types.MemberDescriptorType:
            return None
        if f.init != (f.name in names) or (
            not f.init and (f.default is not None or f.default_factory is not dataclasses.MISSING)
        ):
            return None
        writers.append(slot.__set__)
    init = cast(Any, cls).__init__
    if getattr(getattr(init, "__code__", None), "co_filename", None) != "<string>":
        return None
    return tuple(writers)
