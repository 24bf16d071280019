"""Receipts (signed by recipients) and acceptance promises (signed by the server).

A **receipt** is a recipient device's signed statement about one logged draft:

* ``received`` — sent automatically once the draft opened and verified;
* ``acknowledged`` — on explicit action (the mediator "confirming receipt");
* ``rejected`` — the draft failed to open or verify; ``reason`` carries the error code.

It binds the draft's leaf hash, log index, ciphertext hash and commitment, so a receipt
for one draft can never be presented as a receipt for another, and a receipt proves the
recipient saw exactly the ciphertext (and, through the commitment, the text) the sender
signed.

A **promise** is the server's signed answer to every accepted write: "this leaf is at
this index, accepted at this time".  A promise whose entry never appears in the log at
that index is cryptographic evidence against the server.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import cast

from protocol import crypto, fastpath
from protocol.encoding import MAX_SAFE_INT, Fields, JSONValue, b64e, canonical, parse
from protocol.envelope import DraftHeader
from protocol.errors import BadValueError, ProtocolError, ReceiptMismatchError, WrongTalksError
from protocol.fastpath import B16, B32, B64, INT, MEMO, STD, memo_decode
from protocol.keys import DEVICE_ID_LEN, DeviceId, DeviceKeys, DevicePublic
from protocol.merkle import LeafHash, leaf_hash
from protocol.records import (
    VERSION,
    TalksId,
    verify_record_bytes,
)

RECEIVED = "received"
ACKNOWLEDGED = "acknowledged"
REJECTED = "rejected"
RECEIPT_KINDS = (RECEIVED, ACKNOWLEDGED, REJECTED)
REASON_RE = re.compile(r"[a-z0-9_]{1,64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    talks: TalksId
    device: DeviceId
    kind: str
    reason: str | None
    entry: LeafHash
    index: int
    ct_hash: bytes
    commit: bytes
    time: int
    sig: bytes = field(repr=False)
    raw: bytes = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in RECEIPT_KINDS:
            raise BadValueError("unknown receipt kind")
        if (self.kind == REJECTED) != (self.reason is not None):
            raise BadValueError("a rejected receipt, and only it, carries a reason")
        if self.reason is not None and not REASON_RE.fullmatch(self.reason):
            raise BadValueError("receipt reason must be an error code")

    @property
    def leaf(self) -> LeafHash:
        return leaf_hash(self.raw)

    def to_bytes(self) -> bytes:
        return self.raw

    def to_json(self) -> dict[str, JSONValue]:
        return cast(dict[str, JSONValue], parse(self.raw))

    @classmethod
    def from_json(cls, obj: JSONValue) -> Receipt:
        """Parse a receipt (shape only; :func:`verify_receipt` checks the signature).

        A canonical receipt takes the fast path (see :mod:`protocol.fastpath`), which
        builds exactly what the general path builds from the same bytes; anything else,
        or anything it declines, takes the general path, which reports the error.
        """
        return fastpath.record_from_json(obj, _hot_receipt, cls._from_parsed)

    @classmethod
    def _from_parsed(cls, obj: JSONValue, raw: bytes | None) -> Receipt:
        """:meth:`from_json`, where ``raw`` is None or the very bytes
        :func:`~protocol.encoding.parse` returned ``obj`` for (so, as parse guarantees,
        its canonical encoding), which saves encoding ``obj`` once more."""
        f = Fields(obj, "receipt")
        f.literal("t", "receipt")
        f.version(VERSION)
        receipt = cls(
            talks=TalksId(f.bytes("talks", length=32)),
            device=DeviceId(f.bytes("device", length=DEVICE_ID_LEN)),
            kind=f.str("kind", max_len=16),
            reason=f.opt_str("reason", max_len=64),
            entry=LeafHash(f.bytes("entry", length=32)),
            index=f.int("index"),
            ct_hash=f.bytes("ct_hash", length=32),
            commit=f.bytes("commit", length=32),
            time=f.int("time"),
            sig=f.bytes("sig", length=64),
            raw=canonical(obj) if raw is None else raw,
        )
        f.done()
        return receipt

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        """Parse a receipt's canonical bytes: the fast path, or else the general one (as
        :meth:`from_json`)."""
        return fastpath.record_from_bytes(data, _hot_receipt, cls._from_parsed)


# --- the fast path of from_bytes / from_json (protocol.fastpath) ----------------------

_RECEIPT = re.compile(
    rb'\{"commit":"(' + B32 + rb')","ct_hash":"(' + B32 + rb')","device":"(' + B16
    + rb')","entry":"(' + B32 + rb')","index":' + INT
    + rb',"kind":"(received|acknowledged|rejected)","reason":(?:null|"([a-z0-9_]{1,64})")'
    + rb',"sig":"(' + B64 + rb')","t":"receipt","talks":"(' + B32 + rb')","time":' + INT
    + rb',"v":1\}'
)  # fmt: skip
_SIG_GROUP = 8

_RECEIPT_FIELDS = (
    "talks", "device", "kind", "reason", "entry", "index", "ct_hash", "commit", "time",
    "sig", "raw",
)  # fmt: skip


def _receipt_builder() -> Callable[..., Receipt]:
    """``build(talks, device, kind, reason, entry, index, ct_hash, commit, time, sig,
    raw)``: ``Receipt(talks=talks, ...)`` (see :func:`protocol.fastpath.slot_writers`)."""
    writers = fastpath.slot_writers(Receipt, _RECEIPT_FIELDS)
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


_build_receipt = _receipt_builder()
_KINDS = {kind.encode("ascii"): kind for kind in RECEIPT_KINDS}
_a2b = binascii.a2b_base64


def _hot_receipt(raw: bytes) -> tuple[Receipt, int] | None:
    """The receipt ``raw`` is the canonical encoding of, exactly as the general path
    builds it, and the offset in ``raw`` of its signature's text; ``None`` when the
    pattern does not cover ``raw`` (the general path decides).  The signed bytes are then
    ``raw[:offset - SIG_MEMBER_HEAD] + raw[offset + SIG_MEMBER_TAIL:]``
    (:mod:`protocol.fastpath`): the pattern matched the member ``,"sig":"<86
    characters>"`` there, between two other members of the top-level object."""
    if type(raw) is not bytes:  # the objects keep ``raw``: only ever exact bytes
        return None
    m = _RECEIPT.fullmatch(raw)
    if m is None:
        return None
    commit, ct_hash, device, entry, index, kind, reason, sig, talks, time = m.groups()
    index_v, time_v = int(index), int(time)
    if index_v > MAX_SAFE_INT or time_v > MAX_SAFE_INT:
        return None
    # memo_decode inline (the memo's hit first): this runs for most entries of a log.
    get = MEMO.get
    try:
        return _build_receipt(
            get(talks) or memo_decode(talks),
            get(device) or memo_decode(device),
            _KINDS[kind],
            None if reason is None else reason.decode("ascii"),
            get(entry) or memo_decode(entry),
            index_v,
            get(ct_hash) or memo_decode(ct_hash),
            get(commit) or memo_decode(commit),
            time_v,
            _a2b(sig.translate(STD) + b"=="),  # 86 characters: two padding characters
            raw,
        ), m.start(_SIG_GROUP)
    except ProtocolError:  # the constructor's own checks: the general path reports
        return None


def make_receipt(
    *,
    device: DeviceKeys,
    header: DraftHeader,
    index: int,
    kind: str,
    time: int,
    reason: str | None = None,
) -> Receipt:
    """Sign a receipt for the draft ``header`` logged at ``index``.

    Every recipient signs one per draft, so the canonical bytes are assembled directly,
    as for :func:`make_promise`: the members are fixed and sorted (``commit < ct_hash <
    device < entry < index < kind < reason < sig < t < talks < time < v``), the kind is
    one of three literals, a reason matches ``[a-z0-9_]{1,64}``, and integers and
    base64url need no escaping.  A test holds the result to :meth:`Receipt.from_json`.
    """
    if kind not in RECEIPT_KINDS:
        raise BadValueError("unknown receipt kind")
    if reason is not None and not REASON_RE.fullmatch(reason):
        raise BadValueError("receipt reason must be an error code")
    if not 0 <= index <= MAX_SAFE_INT or not 0 <= time <= MAX_SAFE_INT:
        raise BadValueError("receipt index or time outside the JSON integer range")
    head = (
        b'{"commit":"%s","ct_hash":"%s","device":"%s","entry":"%s","index":%d,"kind":"%s","reason":%s'
        % (
            _b64(header.commit),
            _b64(header.ct_hash),
            _b64(device.device_id),
            _b64(header.leaf),
            index,
            kind.encode("ascii"),
            b"null" if reason is None else b'"' + reason.encode("ascii") + b'"',
        )
    )
    tail = b'"t":"receipt","talks":"%s","time":%d,"v":%d}' % (_b64(header.talks), time, VERSION)
    sig = device.signing.sign(crypto.CTX_RECEIPT, head + b"," + tail)
    return Receipt(
        talks=header.talks,
        device=device.device_id,
        kind=kind,
        reason=reason,
        entry=header.leaf,
        index=index,
        ct_hash=header.ct_hash,
        commit=header.commit,
        time=time,
        sig=sig,
        raw=head + b',"sig":"' + _b64(sig) + b'",' + tail,
    )


def _b64(data: bytes) -> bytes:
    return b64e(data).encode("ascii")


def verify_receipt(
    receipt: Receipt,
    *,
    signer: DevicePublic,
    header: DraftHeader,
    index: int,
    check_signature: bool = True,
) -> None:
    """Verify a receipt's signature and that it answers the draft ``header`` at ``index``.

    ``signer`` is the receipt device's key from the roster; the caller has checked that
    the device is a current roster device.  The device must be one of the draft's
    recipients.  ``check_signature=False`` skips only the Ed25519 check, for a caller
    that has already verified this receipt's signature under ``signer.sign_pk`` (the
    ledger, for the auditor's parallel workers).
    """
    if not crypto.equal(receipt.talks, header.talks):
        raise WrongTalksError("receipt belongs to other talks")
    if not crypto.equal(signer.device_id, receipt.device):
        raise BadValueError("signer key does not match the receipt's device")
    if check_signature:
        verify_record_bytes(signer.sign_pk, crypto.CTX_RECEIPT, receipt.raw, receipt.sig)
    if receipt.device not in header.recipients:
        raise ReceiptMismatchError("receipt from a device the draft was not addressed to")
    if (
        receipt.index != index
        or not crypto.equal(receipt.entry, header.leaf)
        or not crypto.equal(receipt.ct_hash, header.ct_hash)
        or not crypto.equal(receipt.commit, header.commit)
    ):
        raise ReceiptMismatchError("receipt is not bound to this draft")


@dataclass(frozen=True, slots=True, kw_only=True)
class Promise:
    """The server's signed acceptance promise for one log entry."""

    origin: str
    index: int
    leaf: LeafHash
    time: int
    sig: bytes = field(repr=False)
    raw: bytes = field(repr=False, compare=False)

    def to_json(self) -> dict[str, JSONValue]:
        return cast(dict[str, JSONValue], parse(self.raw))

    @classmethod
    def from_json(cls, obj: JSONValue) -> Promise:
        f = Fields(obj, "promise")
        f.literal("t", "promise")
        f.version(VERSION)
        promise = cls(
            origin=f.str("origin", max_len=200),
            index=f.int("index"),
            leaf=LeafHash(f.bytes("leaf", length=32)),
            time=f.int("time"),
            sig=f.bytes("sig", length=64),
            raw=canonical(obj),
        )
        f.done()
        return promise

    def verify(self, log_key: bytes) -> None:
        """Verify the server's signature (``log_key`` from the pinned genesis)."""
        verify_record_bytes(log_key, crypto.CTX_PROMISE, self.raw, self.sig)


def make_promise(
    *, key: crypto.SigningKey, origin: str, index: int, leaf: bytes, time: int
) -> Promise:
    """Sign the server's promise that ``leaf`` is logged at ``index``.

    The server signs one per logged entry, so the canonical bytes are assembled
    directly: the members are fixed and sorted (``index < leaf < origin < sig < t <
    time < v``), integers and base64url need no escaping, and the origin is encoded
    once by :func:`canonical`.  A test holds the result to :meth:`Promise.from_json`.
    """
    if not 0 <= index <= MAX_SAFE_INT or not -MAX_SAFE_INT <= time <= MAX_SAFE_INT:
        raise BadValueError("promise index or time outside the JSON integer range")
    head = b'{"index":%d,"leaf":"%s","origin":%s' % (
        index,
        b64e(leaf).encode("ascii"),
        _origin_json(origin),
    )
    tail = b'"t":"promise","time":%d,"v":%d}' % (time, VERSION)
    sig = key.sign(crypto.CTX_PROMISE, head + b"," + tail)
    raw = head + b',"sig":"' + b64e(sig).encode("ascii") + b'",' + tail
    return Promise(
        origin=origin, index=index, leaf=LeafHash(bytes(leaf)), time=time, sig=sig, raw=raw
    )


@lru_cache(maxsize=16)
def _origin_json(origin: str) -> bytes:
    return canonical(origin)
