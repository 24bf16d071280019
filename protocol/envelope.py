"""Draft envelopes: seal a draft for a channel, open and verify it as a recipient.

Theory of operation
-------------------
A draft is a :class:`Payload` (title, text body and/or one file).  The sender:

1. encodes the payload as canonical JSON — the title and file name are inside, so the
   server never sees them;
2. draws a fresh 32-byte content key and seals the payload with XChaCha20-Poly1305
   (associated data: talks id and message id);
3. wraps the content key to every recipient device's X25519 key (sealed box);
4. computes the key commitment SHA-256(ctx, key, SHA-256(plaintext));
5. signs a :class:`DraftHeader` committing to talks, channel, sender device, per-sender
   counter, message id, lineage (draft id, version, parent leaf hashes), the sorted
   recipient device set and the roster state it came from, the hash of the wrapped-key
   map, the ciphertext hash and length, the commitment and the sender's clock.

The header alone is logged.  The wrapped keys and ciphertext go only to recipients.

A recipient (:func:`open_draft`) verifies, in order, and raises a specific error at the
first failure: (1) talks id, (2) header signature under the sender device key taken from
the roster at ``header.roster``, (3) recipient set equals that roster's channel device
set, (4) it is itself a recipient, (5) the wrapped-key map matches ``header.wrapped``,
(6) ciphertext length and hash, (7) unwrap and decrypt (one opaque error), (8) the
commitment, (9) the payload's canonical form.  Only then is anything shown.
"""

from __future__ import annotations

import binascii
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from protocol import crypto, fastpath
from protocol.annex import Manifest
from protocol.encoding import (
    MAX_SAFE_INT,
    Fields,
    JSONValue,
    b64d,
    b64e,
    bytes_list,
    canonical,
    parse,
    strictly_sorted,
)
from protocol.errors import (
    BadTagError,
    BadValueError,
    CiphertextMismatchError,
    CommitmentMismatchError,
    MalformedError,
    NonPaperError,
    NotARecipientError,
    ProtocolError,
    RecipientSetMismatchError,
    TooLargeError,
    WrongTalksError,
)
from protocol.fastpath import (
    B16,
    B32,
    B64,
    INT,
    MEMO,
    STD,
    decode,
    decode_list,
    memo_decode,
    strictly_ascending,
)
from protocol.keys import DEVICE_ID_LEN, DeviceId, DeviceKeys, DevicePublic
from protocol.merkle import LeafHash, leaf_hash
from protocol.names import check_text
from protocol.records import (
    ID_RE,
    MESSAGE_ID_LEN,
    VERSION,
    DraftId,
    MessageId,
    TalksId,
    sign_record,
    verify_record_bytes,
)

MAX_RECIPIENTS = 4096
MAX_PARENTS = 16
MAX_TITLE = 500
MAX_FILE_NAME = 255
MAX_MEDIA_TYPE = 127
MAX_PAYLOAD = 64 * 1024 * 1024
MAX_META = 2 * 1024 * 1024
NON_PAPER = "non_paper"
"""The header mode of a non-paper (see :func:`seal`)."""
MAX_NON_PAPER = 64 * 1024
"""A non-paper's ciphertext (tags included) is at most this long: it is kept with its
header by the server, which cannot check its hash (the header commits to none)."""
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MEDIA_TYPE_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]*/[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """What the sender wrote.  Never leaves a client unencrypted."""

    title: str
    body: str | None = None
    file_name: str | None = None
    media_type: str | None = None
    file_data: bytes | None = None
    annex: Manifest | None = None
    """A file sent as an annex stream (:mod:`protocol.annex`) instead of ``file_data``."""

    def __post_init__(self) -> None:
        if len(self.title) > MAX_TITLE or _CONTROL_RE.search(self.title):
            raise BadValueError("title too long or contains control characters")
        # Beyond C0: C1 controls, bidi and other format characters (protocol.names).
        check_text(self.title, "title")
        if self.annex is not None and self.file_data is not None:
            raise BadValueError("a file is either inline data or an annex")
        has_file = self.file_data is not None or self.annex is not None
        if has_file != (self.file_name is not None) or has_file != (self.media_type is not None):
            raise BadValueError("a file needs a name, a media type and data")
        if self.body is None and not has_file:
            raise BadValueError("a draft needs a body or a file")
        if self.file_name is not None and (
            not self.file_name
            or len(self.file_name) > MAX_FILE_NAME
            or _CONTROL_RE.search(self.file_name)
        ):
            raise BadValueError("file name is empty, too long or contains control characters")
        if self.file_name is not None:
            check_text(self.file_name, "file name")
        if self.media_type is not None and (
            len(self.media_type) > MAX_MEDIA_TYPE or not _MEDIA_TYPE_RE.fullmatch(self.media_type)
        ):
            raise BadValueError("media type is invalid")

    def to_bytes(self) -> bytes:
        file: JSONValue = None
        if self.file_data is not None:
            file = {"data": b64e(self.file_data), "name": self.file_name, "type": self.media_type}
        elif self.annex is not None:
            file = {"annex": self.annex.to_json(), "name": self.file_name, "type": self.media_type}
        return canonical({"body": self.body, "file": file, "title": self.title})

    @classmethod
    def from_bytes(cls, data: bytes) -> Payload:
        f = Fields(parse(data, max_size=MAX_PAYLOAD * 2, max_depth=4), "payload")
        title = f.str("title", max_len=MAX_TITLE)
        body = f.opt_str("body", max_len=MAX_PAYLOAD)
        file = f.raw("file")
        f.done()
        if file is None:
            return cls(title=title, body=body)
        ff = Fields(file, "payload.file")
        annex = Manifest.from_json(ff.raw("annex")) if ff.has("annex") else None
        payload = cls(
            title=title,
            body=body,
            file_name=ff.str("name", max_len=MAX_FILE_NAME),
            media_type=ff.str("type", max_len=MAX_MEDIA_TYPE),
            file_data=None if annex is not None else ff.bytes("data", max_len=MAX_PAYLOAD),
            annex=annex,
        )
        ff.done()
        return payload


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftHeader:
    """The signed, logged part of a draft envelope."""

    talks: TalksId
    channel: str
    sender: DeviceId
    counter: int
    msg: MessageId
    draft: DraftId
    version: int
    parents: tuple[LeafHash, ...]
    roster: LeafHash
    recipients: tuple[DeviceId, ...]
    wrapped: bytes
    ct_hash: bytes
    ct_len: int
    commit: bytes
    time: int
    mode: str | None = None
    """``None``: attributable (the default); :data:`NON_PAPER`: a non-paper."""
    sig: bytes = field(repr=False)
    raw: bytes = field(repr=False, compare=False)
    _leaf: LeafHash | None = field(default=None, init=False, repr=False, compare=False)
    """:attr:`leaf`, once computed: every receipt the ledger checks compares against it."""

    def __post_init__(self) -> None:
        if not ID_RE.fullmatch(self.channel):
            raise BadValueError("draft.channel is not a valid id")
        if self.counter < 1 or self.version < 1:
            raise BadValueError("draft counter and version start at 1")
        if (self.version == 1) != (not self.parents):
            raise BadValueError("version 1 has no parents; later versions name their parents")
        if not 1 <= len(self.recipients) <= MAX_RECIPIENTS:
            raise BadValueError("draft needs 1..4096 recipients")
        if self.ct_len > MAX_PAYLOAD + crypto.AEAD_OVERHEAD:
            raise TooLargeError("draft ciphertext too large")
        if self.mode is not None:
            if self.mode != NON_PAPER:
                raise BadValueError("draft.mode is not a known mode")
            if self.commit != bytes(32):
                raise BadValueError("a non-paper commits to no content: its commit is zero")
            if self.ct_len > MAX_NON_PAPER:
                raise TooLargeError("non-paper too large")
            if self.ct_len < len(self.recipients) * crypto.NON_PAPER_TAG_LEN + crypto.AEAD_OVERHEAD:
                raise BadValueError("non-paper too short for its tags")

    @property
    def leaf(self) -> LeafHash:
        leaf = self._leaf
        if leaf is None:  # frozen: cache the hash of the immutable ``raw`` once
            leaf = leaf_hash(self.raw)
            object.__setattr__(self, "_leaf", leaf)
        return leaf

    def to_bytes(self) -> bytes:
        return self.raw

    def to_json(self) -> dict[str, JSONValue]:
        return cast(dict[str, JSONValue], parse(self.raw))

    @classmethod
    def from_json(cls, obj: JSONValue) -> DraftHeader:
        """Parse a header (shape only; :func:`verify_header` checks the signature).

        Headers arrive as JSON objects in inbox answers and notices, one per draft per
        recipient, so a canonical header takes the fast path (see
        :mod:`protocol.fastpath`), which builds exactly what the general path builds
        from the same bytes; anything else, or anything it declines, takes the general
        path, which reports the error.
        """
        return fastpath.record_from_json(obj, _hot_header, cls._from_parsed)

    @classmethod
    def _from_parsed(cls, obj: JSONValue, raw: bytes | None) -> DraftHeader:
        """:meth:`from_json`, where ``raw`` is None or the very bytes
        :func:`~protocol.encoding.parse` returned ``obj`` for (so, as parse guarantees,
        its canonical encoding), which saves encoding ``obj`` once more."""
        f = Fields(obj, "draft")
        f.literal("t", "draft")
        f.version(VERSION)
        parents = bytes_list(f.list("parents", max_items=MAX_PARENTS), "draft.parents", length=32)
        strictly_sorted(parents, "draft.parents")
        recipients = bytes_list(
            f.list("recipients", max_items=MAX_RECIPIENTS), "draft.recipients", length=DEVICE_ID_LEN
        )
        strictly_sorted(recipients, "draft.recipients")
        header = cls(
            talks=TalksId(f.bytes("talks", length=32)),
            channel=f.str("channel", max_len=64, pattern=ID_RE),
            sender=DeviceId(f.bytes("sender", length=DEVICE_ID_LEN)),
            counter=f.int("counter", lo=1),
            msg=MessageId(f.bytes("msg", length=MESSAGE_ID_LEN)),
            draft=DraftId(f.bytes("draft", length=MESSAGE_ID_LEN)),
            version=f.int("version", lo=1),
            parents=tuple(LeafHash(p) for p in parents),
            roster=LeafHash(f.bytes("roster", length=32)),
            recipients=tuple(DeviceId(r) for r in recipients),
            wrapped=f.bytes("wrapped", length=32),
            ct_hash=f.bytes("ct_hash", length=32),
            ct_len=f.int("ct_len", lo=crypto.AEAD_OVERHEAD),
            commit=f.bytes("commit", length=32),
            time=f.int("time"),
            mode=f.str("mode", max_len=16) if f.has("mode") else None,
            sig=f.bytes("sig", length=64),
            raw=canonical(obj) if raw is None else raw,
        )
        f.done()
        return header

    @classmethod
    def from_bytes(cls, data: bytes) -> DraftHeader:
        """Parse a header's canonical bytes: the fast path, or else the general one (as
        :meth:`from_json`)."""
        return fastpath.record_from_bytes(data, _hot_header, cls._from_parsed)


# --- the fast path of from_bytes / from_json (protocol.fastpath) ----------------------

_ID = rb"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?"  # protocol.records.ID_RE

_DRAFT = re.compile(
    rb'\{"channel":"(' + _ID + rb')","commit":"(' + B32 + rb')","counter":' + INT
    + rb',"ct_hash":"(' + B32 + rb')","ct_len":' + INT + rb',"draft":"(' + B16
    + rb')","msg":"(' + B16 + rb')","parents":\[((?:"' + B32 + rb'"(?:,"' + B32
    + rb'")*)?)\],"recipients":\[("' + B16 + rb'"(?:,"' + B16 + rb'")*)\],"roster":"('
    + B32 + rb')","sender":"(' + B16 + rb')","sig":"(' + B64
    + rb')","t":"draft","talks":"(' + B32 + rb')","time":' + INT + rb',"v":1,"version":'
    + INT + rb',"wrapped":"(' + B32 + rb')"\}'
)  # fmt: skip
_SIG_GROUP = 12

_RECIPIENTS: dict[bytes, tuple[bytes, ...] | None] = {}
_RECIPIENTS_MAX = 1 << 12


def _recipients(group: bytes) -> tuple[bytes, ...] | None:
    """The recipient ids of a matched list body, or ``None`` if the list is too long or
    not strictly sorted.  A pure function of the text, memoised like
    :func:`~protocol.fastpath.memo_decode`: every draft of a channel repeats the same
    list until the roster changes."""
    try:
        return _RECIPIENTS[group]
    except KeyError:
        pass
    items = decode_list(group, memo_decode)
    value = tuple(items) if len(items) <= MAX_RECIPIENTS and strictly_ascending(items) else None
    if len(_RECIPIENTS) >= _RECIPIENTS_MAX:
        _RECIPIENTS.clear()
    _RECIPIENTS[group] = value
    return value


_DRAFT_FIELDS = (
    "talks", "channel", "sender", "counter", "msg", "draft", "version", "parents", "roster",
    "recipients", "wrapped", "ct_hash", "ct_len", "commit", "time", "mode", "sig", "raw",
)  # fmt: skip
_DRAFT_UNSET = ("_leaf",)


def _draft_builder() -> Callable[..., DraftHeader]:
    """``build(talks, channel, sender, counter, msg, draft, version, parents, roster,
    recipients, wrapped, ct_hash, ct_len, commit, time, sig, raw)``:
    ``DraftHeader(talks=talks, ...)`` (see :func:`protocol.fastpath.slot_writers`)."""
    writers = fastpath.slot_writers(DraftHeader, _DRAFT_FIELDS, _DRAFT_UNSET)
    if writers is None:
        names = tuple(n for n in _DRAFT_FIELDS if n != "mode")
        return lambda *values: DraftHeader(**dict(zip(names, values, strict=True)))
    w_talks, w_channel, w_sender, w_counter, w_msg, w_draft, w_version, w_parents, \
        w_roster, w_recipients, w_wrapped, w_ct_hash, w_ct_len, w_commit, w_time, w_mode, \
        w_sig, w_raw, w_leaf = writers  # fmt: skip
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
        w_mode(h, None)  # the pattern has no "mode": an attributable draft
        w_sig(h, sig)
        w_raw(h, raw)
        w_leaf(h, None)
        post(h)
        return h

    return build


_build_draft = _draft_builder()
_a2b = binascii.a2b_base64


def _hot_header(raw: bytes) -> tuple[DraftHeader, int] | None:
    """The header ``raw`` is the canonical encoding of, exactly as the general path
    builds it, and the offset in ``raw`` of its signature's text; ``None`` when the
    pattern does not cover ``raw`` (the general path decides).  The signed bytes are then
    ``raw[:offset - SIG_MEMBER_HEAD] + raw[offset + SIG_MEMBER_TAIL:]``
    (:mod:`protocol.fastpath`), as for :func:`protocol.receipt._hot_receipt`."""
    if type(raw) is not bytes:  # the objects keep ``raw``: only ever exact bytes
        return None
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
    parents = decode_list(parents_text)
    recipients = _recipients(recipients_text)
    if recipients is None or len(parents) > MAX_PARENTS or not strictly_ascending(parents):
        return None
    get = MEMO.get  # memo_decode inline, as in protocol.receipt._hot_receipt
    try:
        return _build_draft(
            get(talks) or memo_decode(talks),
            channel.decode("ascii"),
            get(sender) or memo_decode(sender),
            counter_v,
            decode(msg),
            decode(draft),
            version_v,
            tuple(parents),
            get(roster) or memo_decode(roster),
            recipients,
            decode(wrapped),
            get(ct_hash) or memo_decode(ct_hash),
            ct_len_v,
            get(commit) or memo_decode(commit),
            time_v,
            _a2b(sig.translate(STD) + b"=="),  # 86 characters: two padding characters
            raw,
        ), m.start(_SIG_GROUP)
    except ProtocolError:  # the constructor's own checks: the general path reports
        return None


# --- wrapped keys ------------------------------------------------------------------------


def keys_to_json(keys: Mapping[DeviceId, bytes]) -> dict[str, JSONValue]:
    return {b64e(k): b64e(v) for k, v in sorted(keys.items())}


def keys_from_json(value: JSONValue) -> dict[DeviceId, bytes]:
    if not isinstance(value, dict):
        raise MalformedError("keys: expected an object")
    if len(value) > MAX_RECIPIENTS:
        raise BadValueError("keys: too many entries")
    out: dict[DeviceId, bytes] = {}
    wrapped_len = crypto.CONTENT_KEY_LEN + crypto.SEAL_OVERHEAD
    for k, v in value.items():
        out[DeviceId(b64d(k, length=DEVICE_ID_LEN, what="keys"))] = b64d(
            v, length=wrapped_len, what="keys"
        )
    return out


def keys_hash(keys: Mapping[DeviceId, bytes]) -> bytes:
    """SHA-256 of ``canonical(keys_to_json(keys))``, assembled directly (every recipient
    checks it for every draft): base64url names and values need no escaping, and
    canonical JSON orders members by their names, which are ASCII."""
    members = sorted((b64e(k), b64e(v)) for k, v in keys.items())
    text = ",".join(f'"{k}":"{v}"' for k, v in members)
    return crypto.sha256(("{" + text + "}").encode("ascii"))


# --- seal ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedDraft:
    header: DraftHeader
    keys: dict[DeviceId, bytes]
    ciphertext: bytes = field(repr=False)
    content_key: bytes = field(repr=False)


def _associated(talks: bytes, msg: bytes) -> bytes:
    return talks + msg


def seal(
    *,
    sender: DeviceKeys,
    talks: TalksId,
    channel: str,
    counter: int,
    msg: MessageId,
    draft: DraftId,
    version: int,
    parents: Sequence[LeafHash],
    roster: LeafHash,
    recipients: Mapping[DeviceId, DevicePublic],
    payload: Payload,
    time: int,
    rng: crypto.Rng,
    non_paper: bool = False,
) -> SealedDraft:
    """Encrypt ``payload`` to every recipient device and sign the header.

    A ``non_paper`` is authenticated to each recipient by a deniable tag instead of the
    signature: the signed header commits to no content (``commit`` is zero, ``ct_hash``
    is random), and the ciphertext is the tags, one per recipient in recipient order,
    followed by the sealed payload (see :func:`non_paper_message`)."""
    plaintext = payload.to_bytes()
    if len(plaintext) > MAX_PAYLOAD:
        raise TooLargeError(
            f"draft too large: {len(plaintext)} bytes encoded, the limit is {MAX_PAYLOAD} bytes"
        )
    content_key = crypto.new_content_key(rng)
    ciphertext = crypto.seal_payload(content_key, plaintext, _associated(talks, msg), rng)
    keys = {
        dev_id: crypto.wrap_key(content_key, dev.enc_pk, rng) for dev_id, dev in recipients.items()
    }
    commit = crypto.commitment(content_key, plaintext)
    ct_hash = crypto.sha256(ciphertext)
    if non_paper:
        message = non_paper_message(talks, msg, sender.device_id, ciphertext, commit)
        tags = b"".join(
            crypto.non_paper_tag(
                crypto.static_shared(sender.box, recipients[r].enc_pk),
                sender.public.enc_pk,
                recipients[r].enc_pk,
                message,
            )
            for r in sorted(recipients)
        )
        ciphertext = tags + ciphertext
        commit, ct_hash = bytes(32), rng(32)
    body: dict[str, JSONValue] = {
        "channel": channel,
        "commit": b64e(commit),
        "counter": counter,
        "ct_hash": b64e(ct_hash),
        "ct_len": len(ciphertext),
        "draft": b64e(draft),
        "msg": b64e(msg),
        "parents": [b64e(p) for p in sorted(set(parents))],
        "recipients": [b64e(r) for r in sorted(recipients)],
        "roster": b64e(roster),
        "sender": b64e(sender.device_id),
        "t": "draft",
        "talks": b64e(talks),
        "time": time,
        "v": VERSION,
        "version": version,
        "wrapped": b64e(keys_hash(keys)),
    }
    if non_paper:
        body["mode"] = NON_PAPER
    header = DraftHeader.from_json(sign_record(sender.signing, crypto.CTX_DRAFT, body))
    return SealedDraft(header=header, keys=keys, ciphertext=ciphertext, content_key=content_key)


# --- verify and open -------------------------------------------------------------------


def verify_header(
    header: DraftHeader,
    *,
    talks: bytes,
    sender: DevicePublic,
    recipients: Iterable[DeviceId],
    check_signature: bool = True,
) -> None:
    """Steps 1-3: talks, signature, recipient set.  ``sender`` and ``recipients`` come
    from the roster at ``header.roster`` (the caller looks them up).

    ``check_signature=False`` skips only the Ed25519 check of step 2, for a caller that
    has already verified this header's signature under ``sender.sign_pk`` (the ledger,
    for the auditor's parallel workers); everything else is checked regardless.
    """
    if not crypto.equal(header.talks, talks):
        raise WrongTalksError("draft belongs to other talks")
    if not crypto.equal(sender.device_id, header.sender):
        raise BadValueError("sender key does not match the header's sender device")
    if check_signature:
        verify_record_bytes(sender.sign_pk, crypto.CTX_DRAFT, header.raw, header.sig)
    if tuple(sorted(recipients)) != header.recipients:
        raise RecipientSetMismatchError("recipient set differs from the channel's devices")


def check_keys(header: DraftHeader, keys: Mapping[DeviceId, bytes]) -> None:
    """Step 5: the wrapped-key map is the one the sender signed, one per recipient."""
    if tuple(sorted(keys)) != header.recipients or not crypto.equal(
        keys_hash(keys), header.wrapped
    ):
        raise CiphertextMismatchError("wrapped keys differ from what the sender signed")


def non_paper_message(
    talks: bytes, msg: bytes, sender: bytes, sealed_payload: bytes, commit: bytes
) -> bytes:
    """What a non-paper's tags authenticate: talks, message id, sender device, the hash
    of the sealed payload and its commitment (each fixed-length)."""
    return talks + msg + sender + crypto.sha256(sealed_payload) + commit


def open_non_paper(
    header: DraftHeader,
    ciphertext: bytes,
    content_key: bytes,
    *,
    me: DeviceKeys,
    sender: DevicePublic,
) -> Payload:
    """Steps 6-9 for a non-paper: length, decrypt, then this recipient's deniable tag
    (``bad_tag``), which only the sender or this recipient could have made."""
    if len(ciphertext) != header.ct_len:
        raise CiphertextMismatchError("ciphertext length differs from what the sender signed")
    n = len(header.recipients) * crypto.NON_PAPER_TAG_LEN
    position = header.recipients.index(me.device_id) * crypto.NON_PAPER_TAG_LEN
    tag, sealed = ciphertext[position : position + crypto.NON_PAPER_TAG_LEN], ciphertext[n:]
    plaintext = crypto.open_payload(content_key, sealed, _associated(header.talks, header.msg))
    commit = crypto.commitment(content_key, plaintext)
    message = non_paper_message(header.talks, header.msg, header.sender, sealed, commit)
    expected = crypto.non_paper_tag(
        crypto.static_shared(me.box, sender.enc_pk), sender.enc_pk, me.public.enc_pk, message
    )
    if not crypto.equal(tag, expected):
        raise BadTagError("the non-paper's tag for this recipient does not verify")
    try:
        return Payload.from_bytes(plaintext)
    except ProtocolError as exc:
        raise BadTagError(f"the non-paper's payload is malformed: {exc.code}") from exc


def check_ciphertext(header: DraftHeader, ciphertext: bytes) -> None:
    """Step 6: ciphertext length and hash."""
    if header.mode == NON_PAPER:
        raise NonPaperError("a non-paper's ciphertext is bound by tags, not by the header")
    if len(ciphertext) != header.ct_len or not crypto.equal(
        crypto.sha256(ciphertext), header.ct_hash
    ):
        raise CiphertextMismatchError("ciphertext differs from what the sender signed")


def open_with_key(header: DraftHeader, ciphertext: bytes, content_key: bytes) -> Payload:
    """Steps 6-9 with a known content key (recipients after unwrapping; arbitrators)."""
    check_ciphertext(header, ciphertext)
    plaintext = crypto.open_payload(content_key, ciphertext, _associated(header.talks, header.msg))
    if not crypto.equal(crypto.commitment(content_key, plaintext), header.commit):
        raise CommitmentMismatchError("content does not match the sender's commitment")
    try:
        return Payload.from_bytes(plaintext)
    except ProtocolError as exc:
        raise CommitmentMismatchError(f"committed payload is malformed: {exc.code}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedDraft:
    header: DraftHeader
    payload: Payload
    content_key: bytes = field(repr=False)


def open_draft(
    header: DraftHeader,
    keys: Mapping[DeviceId, bytes],
    ciphertext: bytes,
    *,
    me: DeviceKeys,
    talks: bytes,
    sender: DevicePublic,
    recipients: Iterable[DeviceId],
) -> OpenedDraft:
    """Verify and decrypt a draft addressed to ``me`` (steps 1-9 of the module doc)."""
    verify_header(header, talks=talks, sender=sender, recipients=recipients)
    if me.device_id not in header.recipients:
        raise NotARecipientError("this device is not a recipient of the draft")
    check_keys(header, keys)
    if header.mode == NON_PAPER:
        content_key = me.box.unwrap(keys[me.device_id])
        payload = open_non_paper(header, ciphertext, content_key, me=me, sender=sender)
        return OpenedDraft(header=header, payload=payload, content_key=content_key)
    check_ciphertext(header, ciphertext)
    content_key = me.box.unwrap(keys[me.device_id])
    payload = open_with_key(header, ciphertext, content_key)
    return OpenedDraft(header=header, payload=payload, content_key=content_key)


# --- upload framing -------------------------------------------------------------------
# POST body: u32 big-endian length of the meta JSON, the canonical meta JSON
# {"header": <signed header>, "keys": {device id: wrapped key}}, then the ciphertext.


def encode_upload(sealed: SealedDraft) -> bytes:
    meta = canonical({"header": sealed.header.to_json(), "keys": keys_to_json(sealed.keys)})
    return struct.pack(">I", len(meta)) + meta + sealed.ciphertext


def decode_upload_meta(meta: bytes) -> tuple[DraftHeader, dict[DeviceId, bytes]]:
    """Parse the meta part of an upload (header and wrapped keys), checking the key map."""
    f = Fields(parse(meta, max_size=MAX_META), "upload")
    header = DraftHeader.from_json(f.raw("header"))
    keys = keys_from_json(f.raw("keys"))
    f.done()
    check_keys(header, keys)
    return header, keys


def split_upload(body: bytes) -> tuple[DraftHeader, dict[DeviceId, bytes], bytes]:
    """Split a whole upload body held in memory (small drafts, tests)."""
    if len(body) < 4:
        raise MalformedError("upload too short")
    (n,) = struct.unpack(">I", body[:4])
    if n > MAX_META or len(body) < 4 + n:
        raise MalformedError("upload meta length is invalid")
    header, keys = decode_upload_meta(body[4 : 4 + n])
    return header, keys, body[4 + n :]
