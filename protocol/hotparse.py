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

The record objects are built by writing their slots in field order and then running the
class's own ``__post_init__`` (:func:`_slot_writers`): exactly what the dataclass-generated
``__init__`` does, without its keyword-argument call (about half a microsecond of the
~3 µs a receipt takes).  That is done only when the class is still the dataclass this
module was written for (the same fields, in order, each a plain slot, and the generated
``__init__``); otherwise the constructor is called.

:func:`parse_hot_signed` also returns where the signature's text sits, so the auditor's
workers can cut the signed bytes out by position (the test checks the cut equals
``signing_bytes`` of the parsed object).  Fields that repeat from record to record are
decoded through a small bounded memo (a pure function, so nothing changes but speed).

This module is sans-IO.
"""

from __future__ import annotations

import binascii
import dataclasses
import itertools
import re
import types
from collections.abc import Callable
from typing import Any, cast

from protocol import crypto
from protocol.encoding import MAX_SAFE_INT
from protocol.envelope import MAX_PARENTS, MAX_RECIPIENTS, DraftHeader
from protocol.errors import ProtocolError
from protocol.receipt import RECEIPT_KINDS, Receipt

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


SIG_MEMBER_HEAD = len(b',"sig":"')
SIG_MEMBER_TAIL = 86 + 1  # the 86 base64url characters and the closing quote


def _list(group: bytes, decode: Callable[[bytes], bytes] = _d) -> list[bytes]:
    """The decoded items of a matched list body ``"a","b",...`` (empty: no items)."""
    if not group:
        return []
    return [decode(item) for item in group[1:-1].split(b'","')]


def _sorted(items: list[bytes]) -> bool:
    return len(items) < 2 or all(a < b for a, b in itertools.pairwise(items))


_RECIPIENTS: dict[bytes, tuple[bytes, ...] | None] = {}
_RECIPIENTS_MAX = 1 << 12


def _recipients(group: bytes) -> tuple[bytes, ...] | None:
    """The recipient ids of a matched list body, or ``None`` if the list is too long or
    not strictly sorted.  A pure function of the text, memoised like :func:`_dc`: every
    draft of a channel repeats the same list until the roster changes."""
    try:
        return _RECIPIENTS[group]
    except KeyError:
        pass
    items = _list(group, _dc)
    value = tuple(items) if len(items) <= MAX_RECIPIENTS and _sorted(items) else None
    if len(_RECIPIENTS) >= _RECIPIENTS_MAX:
        _RECIPIENTS.clear()
    _RECIPIENTS[group] = value
    return value


_Writer = Callable[[object, object], None]


def _slot_writers(
    cls: type, names: tuple[str, ...], unset: tuple[str, ...] = ()
) -> tuple[_Writer, ...] | None:
    """The slot setters of ``cls``'s fields ``names + unset``, or ``None`` if ``cls`` is
    not the dataclass the builders below were written for.

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


_RECEIPT_FIELDS = (
    "talks", "device", "kind", "reason", "entry", "index", "ct_hash", "commit", "time",
    "sig", "raw",
)  # fmt: skip
_DRAFT_FIELDS = (
    "talks", "channel", "sender", "counter", "msg", "draft", "version", "parents", "roster",
    "recipients", "wrapped", "ct_hash", "ct_len", "commit", "time", "sig", "raw",
)  # fmt: skip
_DRAFT_UNSET = ("_leaf",)


def _receipt_builder() -> Callable[..., Receipt]:
    """``build(talks, device, kind, reason, entry, index, ct_hash, commit, time, sig,
    raw)``: ``Receipt(talks=talks, ...)`` (see :func:`_slot_writers`)."""
    writers = _slot_writers(Receipt, _RECEIPT_FIELDS)
    if writers is None:
        return lambda *values: Receipt(**dict(zip(_RECEIPT_FIELDS, values, strict=True)))
    w_talks, w_device, w_kind, w_reason, w_entry, w_index, w_ct_hash, w_commit, w_time, \
        w_sig, w_raw = writers  # fmt: skip
    new = object.__new__
    post = Receipt.__post_init__

    def build(  # noqa: PLR0917 - the fields, positionally: the point of it
        talks: bytes, device: bytes, kind: str, reason: str | None, entry: bytes, index: int,
        ct_hash: bytes, commit: bytes, time: int, sig: bytes, raw: bytes,
    ) -> Receipt:  # fmt: skip
        r = new(Receipt)
        w_talks(r, talks)
        w_device(r, device)
        w_kind(r, kind)
        w_reason(r, reason)
        w_entry(r, entry)
        w_index(r, index)
        w_ct_hash(r, ct_hash)
        w_commit(r, commit)
        w_time(r, time)
        w_sig(r, sig)
        w_raw(r, raw)
        post(r)
        return r

    return build


def _draft_builder() -> Callable[..., DraftHeader]:
    """``build(talks, channel, sender, counter, msg, draft, version, parents, roster,
    recipients, wrapped, ct_hash, ct_len, commit, time, sig, raw)``:
    ``DraftHeader(talks=talks, ...)`` (see :func:`_slot_writers`)."""
    writers = _slot_writers(DraftHeader, _DRAFT_FIELDS, _DRAFT_UNSET)
    if writers is None:
        return lambda *values: DraftHeader(**dict(zip(_DRAFT_FIELDS, values, strict=True)))
    w_talks, w_channel, w_sender, w_counter, w_msg, w_draft, w_version, w_parents, \
        w_roster, w_recipients, w_wrapped, w_ct_hash, w_ct_len, w_commit, w_time, w_sig, \
        w_raw, w_leaf = writers  # fmt: skip
    new = object.__new__
    post = DraftHeader.__post_init__

    def build(  # noqa: PLR0917 - the fields, positionally: the point of it
        talks: bytes, channel: str, sender: bytes, counter: int, msg: bytes, draft: bytes,
        version: int, parents: tuple[bytes, ...], roster: bytes, recipients: tuple[bytes, ...],
        wrapped: bytes, ct_hash: bytes, ct_len: int, commit: bytes, time: int, sig: bytes,
        raw: bytes,
    ) -> DraftHeader:  # fmt: skip
        h = new(DraftHeader)
        w_talks(h, talks)
        w_channel(h, channel)
        w_sender(h, sender)
        w_counter(h, counter)
        w_msg(h, msg)
        w_draft(h, draft)
        w_version(h, version)
        w_parents(h, parents)
        w_roster(h, roster)
        w_recipients(h, recipients)
        w_wrapped(h, wrapped)
        w_ct_hash(h, ct_hash)
        w_ct_len(h, ct_len)
        w_commit(h, commit)
        w_time(h, time)
        w_sig(h, sig)
        w_raw(h, raw)
        w_leaf(h, None)
        post(h)
        return h

    return build


_build_receipt = _receipt_builder()
_build_draft = _draft_builder()


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


_KINDS = {kind.encode("ascii"): kind for kind in RECEIPT_KINDS}
_a2b = binascii.a2b_base64


def _receipt(raw: bytes) -> tuple[Receipt, int] | None:
    m = _RECEIPT.fullmatch(raw)
    if m is None:
        return None
    commit, ct_hash, device, entry, index, kind, reason, sig, talks, time = m.groups()
    index_v, time_v = int(index), int(time)
    if index_v > MAX_SAFE_INT or time_v > MAX_SAFE_INT:
        return None
    # _dc and _d inline (the memo's hit first): this runs for most entries of a log.
    get = _CACHE.get
    try:
        return _build_receipt(
            get(talks) or _dc(talks),
            get(device) or _dc(device),
            _KINDS[kind],
            None if reason is None else reason.decode("ascii"),
            get(entry) or _dc(entry),
            index_v,
            get(ct_hash) or _dc(ct_hash),
            get(commit) or _dc(commit),
            time_v,
            _a2b(sig.translate(_STD) + b"=="),  # 86 characters: _PAD[86 % 4]
            raw,
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
    recipients = _recipients(recipients_text)
    if recipients is None or len(parents) > MAX_PARENTS or not _sorted(parents):
        return None
    get = _CACHE.get  # _dc inline, as in _receipt
    try:
        return _build_draft(
            get(talks) or _dc(talks),
            channel.decode("ascii"),
            get(sender) or _dc(sender),
            counter_v,
            _d(msg),
            _d(draft),
            version_v,
            tuple(parents),
            get(roster) or _dc(roster),
            recipients,
            _d(wrapped),
            get(ct_hash) or _dc(ct_hash),
            ct_len_v,
            get(commit) or _dc(commit),
            time_v,
            _a2b(sig.translate(_STD) + b"=="),  # 86 characters: _PAD[86 % 4]
            raw,
        ), m.start(12)
    except ProtocolError:  # the constructor's own checks: the general parser reports
        return None
