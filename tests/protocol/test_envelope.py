"""Draft envelopes (protocol/envelope.py): round trips, sealing to every recipient, each
verification step's own error, equivocation by the sender, signature coverage, framing.

The equivocation tests play a malicious *sender*: it signs a perfectly valid header but
hands different recipients different content keys.  With an ordinary AEAD the second key
simply fails to decrypt; with an "invisible salamanders" ciphertext (one ciphertext and
tag that decrypt under two keys to two texts, which XChaCha20-Poly1305 permits because
Poly1305 is not key-committing) only the signed key commitment catches it.  The
salamander is built below from first principles: ChaCha20 in pure Python to derive the
two Poly1305 keys, then one linear equation mod 2**130 - 5 solved for the message id
(part of the associated data, so the sender controls it).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping

import nacl.bindings as sodium
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.encoding import JSONValue, b64e, canonical, parse
from protocol.envelope import (
    MAX_FILE_NAME,
    MAX_TITLE,
    DraftHeader,
    Payload,
    SealedDraft,
    check_ciphertext,
    check_keys,
    decode_upload_meta,
    encode_upload,
    keys_from_json,
    keys_hash,
    keys_to_json,
    open_draft,
    open_with_key,
    seal,
    split_upload,
    verify_header,
)
from protocol.errors import (
    BadSignatureError,
    BadValueError,
    CiphertextMismatchError,
    CommitmentMismatchError,
    DecryptionError,
    MalformedError,
    NotARecipientError,
    ProtocolError,
    RecipientSetMismatchError,
    UnknownFieldError,
    WrongTalksError,
)
from protocol.keys import DeviceId, DeviceKeys, DevicePublic
from protocol.merkle import LeafHash
from protocol.names import unsafe_characters
from protocol.records import ID_RE, VERSION, DraftId, MessageId, TalksId, sign_record, verify_record
from tests.helpers import make_rng
from tests.protocol.builders import Sent, Talks, leaf_paths, mutations, resign, standard

_RNG = make_rng("test_envelope/pool")
POOL = [DeviceKeys.generate(_RNG) for _ in range(6)]
OUTSIDER = DeviceKeys.generate(_RNG)

# --- strategies ---------------------------------------------------------------------------

safe_text = st.text(
    st.characters(exclude_categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn"]),
).filter(lambda s: not unsafe_characters(s))  # and no default-ignorable (protocol.names)
media_types = st.from_regex(r"[a-z]{1,10}/[a-z0-9][a-z0-9.+-]{0,19}", fullmatch=True)


@st.composite
def payloads(draw: st.DrawFn) -> Payload:
    title = draw(safe_text.filter(lambda s: len(s) <= MAX_TITLE))
    body = draw(st.none() | st.text(max_size=300))
    if body is None or draw(st.booleans()):
        return Payload(
            title=title,
            body=body,
            file_name=draw(safe_text.filter(lambda s: 0 < len(s) <= MAX_FILE_NAME)),
            media_type=draw(media_types),
            file_data=draw(st.binary(max_size=600)),
        )
    return Payload(title=title, body=body)


# --- shared scenario ----------------------------------------------------------------------


@functools.cache
def scenario() -> tuple[Talks, Sent]:
    t, sent, _ = standard("test_envelope/standard")
    return t, sent


def ctx(t: Talks, sent: Sent) -> tuple[DevicePublic, dict[DeviceId, DevicePublic]]:
    roster = t.roster_at(sent.index)
    return roster.device(sent.sealed.header.sender)[1], roster.channel_devices("plenary")


def open_as(
    t: Talks,
    sent: Sent,
    me: DeviceKeys,
    *,
    header: DraftHeader | None = None,
    keys: Mapping[DeviceId, bytes] | None = None,
    ciphertext: bytes | None = None,
    talks: bytes | None = None,
    sender: DevicePublic | None = None,
    recipients: Mapping[DeviceId, DevicePublic] | None = None,
) -> Payload:
    real_sender, real_recipients = ctx(t, sent)
    return open_draft(
        sent.sealed.header if header is None else header,
        sent.sealed.keys if keys is None else keys,
        sent.sealed.ciphertext if ciphertext is None else ciphertext,
        me=me,
        talks=t.talks_id if talks is None else talks,
        sender=real_sender if sender is None else sender,
        recipients=real_recipients if recipients is None else recipients,
    ).payload


def craft(
    t: Talks,
    sender: DeviceKeys,
    *,
    ciphertext: bytes,
    keys: Mapping[DeviceId, bytes],
    commit: bytes,
    msg: bytes,
    **overrides: JSONValue,
) -> DraftHeader:
    """A header a malicious sender signs over exactly what it chooses."""
    body: dict[str, JSONValue] = {
        "channel": "plenary",
        "commit": b64e(commit),
        "counter": 1,
        "ct_hash": b64e(crypto.sha256(ciphertext)),
        "ct_len": len(ciphertext),
        "draft": b64e(bytes(16)),
        "msg": b64e(msg),
        "parents": [],
        "recipients": [b64e(r) for r in sorted(keys)],
        "roster": b64e(t.roster.head),
        "sender": b64e(sender.device_id),
        "t": "draft",
        "talks": b64e(t.talks_id),
        "time": t.tick(),
        "v": VERSION,
        "version": 1,
        "wrapped": b64e(keys_hash(keys)),
    }
    body.update(overrides)
    return DraftHeader.from_json(sign_record(sender.signing, crypto.CTX_DRAFT, body))


# --- round trips --------------------------------------------------------------------------


@given(payloads())
def test_payload_round_trips(payload: Payload) -> None:
    data = payload.to_bytes()
    again = Payload.from_bytes(data)
    assert again == payload
    assert again.to_bytes() == data
    assert parse(data) is not None


@given(
    payload=payloads(),
    channel=st.from_regex(ID_RE, fullmatch=True),
    counter=st.integers(1, 2**53 - 1),
    msg=st.binary(min_size=16, max_size=16),
    draft=st.binary(min_size=16, max_size=16),
    parents=st.lists(st.binary(min_size=32, max_size=32), max_size=4),
    recipients=st.lists(st.sampled_from(POOL), min_size=1, unique=True),
    time=st.integers(0, 2**53 - 1),
    seed=st.binary(max_size=8),
)
def test_header_round_trips(
    payload: Payload,
    channel: str,
    counter: int,
    msg: bytes,
    draft: bytes,
    parents: list[bytes],
    recipients: list[DeviceKeys],
    time: int,
    seed: bytes,
) -> None:
    sealed = seal(
        sender=POOL[0],
        talks=TalksId(bytes(32)),
        channel=channel,
        counter=counter,
        msg=MessageId(msg),
        draft=DraftId(draft),
        version=len(set(parents)) + 1 if parents else 1,
        parents=[LeafHash(p) for p in parents],
        roster=LeafHash(bytes(range(32))),
        recipients={k.device_id: k.public for k in recipients},
        payload=payload,
        time=time,
        rng=make_rng(seed),
    )
    header = sealed.header
    again = DraftHeader.from_json(header.to_json())
    assert again == header
    assert again.to_bytes() == header.to_bytes() == canonical(header.to_json())
    assert DraftHeader.from_bytes(header.to_bytes()) == header
    assert header.parents == tuple(sorted(set(parents)))
    assert keys_from_json(keys_to_json(sealed.keys)) == sealed.keys
    # keys_hash assembles the canonical text itself; it must be the canonical encoding.
    assert keys_hash(sealed.keys) == crypto.sha256(canonical(keys_to_json(sealed.keys)))
    # from_json's fast path builds exactly what the general path builds.
    assert DraftHeader._from_parsed(header.to_json(), None) == again
    # And every recipient can open it.
    for k in recipients:
        opened = open_draft(
            header,
            sealed.keys,
            sealed.ciphertext,
            me=k,
            talks=bytes(32),
            sender=POOL[0].public,
            recipients=[r.device_id for r in recipients],
        )
        assert opened.payload == payload
        assert opened.content_key == sealed.content_key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"title": "t"},  # neither body nor file
        {"title": "bad\ntitle", "body": ""},
        {"title": "x" * (MAX_TITLE + 1), "body": ""},
        {"title": "t", "file_name": "f", "media_type": "a/b"},  # file without data
        {"title": "t", "file_name": "", "media_type": "a/b", "file_data": b""},
        {"title": "t", "file_name": "a\x00b", "media_type": "a/b", "file_data": b""},
        {"title": "t", "file_name": "f", "media_type": "nonsense", "file_data": b""},
        {
            "title": "t",
            "file_name": "f" * (MAX_FILE_NAME + 1),
            "media_type": "a/b",
            "file_data": b"",
        },
    ],
)
def test_payload_invariants(kwargs: dict[str, object]) -> None:
    with pytest.raises(BadValueError):
        Payload(**kwargs)  # type: ignore[arg-type]


def test_payload_rejects_unknown_fields_and_non_canonical_bytes() -> None:
    good = Payload(title="t", body="b").to_bytes()
    with pytest.raises(UnknownFieldError):
        Payload.from_bytes(canonical({**parse(good), "extra": 1}))
    with pytest.raises(ProtocolError):
        Payload.from_bytes(good.replace(b'{"body"', b'{ "body"'))


# --- opening ------------------------------------------------------------------------------


def test_every_recipient_opens_the_same_text() -> None:
    t, sent = scenario()
    header = sent.sealed.header
    assert len(header.recipients) == len(t.roster_at(sent.index).channel_devices("plenary"))
    for device_id in header.recipients:
        assert open_as(t, sent, t.keys[device_id]) == sent.payload


def test_file_payload_opens() -> None:
    t = Talks("test_envelope/file")
    t.create_delegation("north", "nh")
    t.create_channel("plenary", delegations=["north"], members=["med"])
    payload = Payload(
        title="Annex B",
        body=None,
        file_name="annex-b.pdf",
        media_type="application/pdf",
        file_data=bytes(range(256)) * 4,
    )
    sent = t.send(t.people["nh"].device, "plenary", payload=payload)
    assert t.open_as(t.mediator.device, sent).payload == payload


def test_wrong_talks() -> None:
    t, sent = scenario()
    with pytest.raises(WrongTalksError):
        open_as(t, sent, t.people["nb"].device, talks=bytes(32))


def test_sender_key_must_match_header() -> None:
    t, sent = scenario()
    with pytest.raises(BadValueError):
        open_as(t, sent, t.people["nb"].device, sender=t.people["nb"].device.public)


def test_bad_signature() -> None:
    t, sent = scenario()
    obj = sent.sealed.header.to_json()
    obj["time"] += 1  # edited after signing
    with pytest.raises(BadSignatureError):
        open_as(t, sent, t.people["nb"].device, header=DraftHeader.from_json(obj))


def test_header_signed_by_someone_else_is_refused() -> None:
    """Sending as someone else: nb signs a header naming na's device."""
    t, sent = scenario()
    forged = DraftHeader.from_json(
        resign(sent.sealed.header.to_json(), t.people["nb"].device.signing, crypto.CTX_DRAFT)
    )
    with pytest.raises(BadSignatureError):
        open_as(t, sent, t.people["sa"].device, header=forged)


def test_recipient_set_missing_a_device() -> None:
    """The sender leaves one channel device out (e.g. to keep a member in the dark)."""
    t, sent = scenario()
    _, devices = ctx(t, sent)
    left_out = t.people["sa"].device.device_id
    partial = {k: v for k, v in devices.items() if k != left_out}
    sealed = t.seal(sent.sender, "plenary", recipients=partial, roster=sent.sealed.header.roster)
    with pytest.raises(RecipientSetMismatchError):
        open_as(
            t,
            sent,
            t.people["nb"].device,
            header=sealed.header,
            keys=sealed.keys,
            ciphertext=sealed.ciphertext,
        )


def test_recipient_set_with_an_extra_device() -> None:
    """The sender (or a key-substituting server) adds a device the channel does not have."""
    t, sent = scenario()
    _, devices = ctx(t, sent)
    sealed = t.seal(
        sent.sender,
        "plenary",
        recipients={**devices, OUTSIDER.device_id: OUTSIDER.public},
        roster=sent.sealed.header.roster,
    )
    with pytest.raises(RecipientSetMismatchError):
        open_as(
            t,
            sent,
            t.people["nb"].device,
            header=sealed.header,
            keys=sealed.keys,
            ciphertext=sealed.ciphertext,
        )


def test_not_a_recipient() -> None:
    t, sent = scenario()
    with pytest.raises(NotARecipientError):
        open_as(t, sent, OUTSIDER)


def test_swapped_wrapped_keys() -> None:
    t, sent = scenario()
    a, b = sent.sealed.header.recipients[:2]
    swapped = {**sent.sealed.keys, a: sent.sealed.keys[b], b: sent.sealed.keys[a]}
    with pytest.raises(CiphertextMismatchError):
        open_as(t, sent, t.keys[a], keys=swapped)


@pytest.mark.parametrize("change", ["dropped", "extra", "replaced"])
def test_altered_key_map(change: str) -> None:
    t, sent = scenario()
    keys = dict(sent.sealed.keys)
    me = t.people["nb"].device
    other = next(d for d in keys if d != me.device_id)
    if change == "dropped":
        del keys[other]
    elif change == "extra":
        keys[OUTSIDER.device_id] = keys[other]
    else:
        keys[other] = crypto.wrap_key(bytes(32), t.keys[other].public.enc_pk, make_rng("x"))
    with pytest.raises(CiphertextMismatchError):
        open_as(t, sent, me, keys=keys)


@pytest.mark.parametrize("change", ["flipped-byte", "truncated", "extended"])
def test_altered_ciphertext(change: str) -> None:
    t, sent = scenario()
    ct = sent.sealed.ciphertext
    altered = {
        "flipped-byte": ct[:30] + bytes([ct[30] ^ 1]) + ct[31:],
        "truncated": ct[:-1],
        "extended": ct + b"\x00",
    }[change]
    with pytest.raises(CiphertextMismatchError):
        open_as(t, sent, t.people["nb"].device, ciphertext=altered)
    with pytest.raises(CiphertextMismatchError):
        check_ciphertext(sent.sealed.header, altered)


def test_wrong_content_key_is_opaque() -> None:
    """Every decryption failure is the same error with the same message."""
    t, sent = scenario()
    header, ct = sent.sealed.header, sent.sealed.ciphertext
    errors = []
    for bad_key in (bytes(32), sent.sealed.content_key[:-1] + b"\x00", b"short"):
        with pytest.raises(DecryptionError) as info:
            open_with_key(header, ct, bad_key)
        errors.append(str(info.value))
    me = t.people["nb"].device
    with pytest.raises(DecryptionError) as info:
        me.box.unwrap(sent.sealed.keys[t.people["sa"].device.device_id])
    errors.append(str(info.value))
    assert len(set(errors)) == 1


def test_open_with_the_disclosed_key() -> None:
    t, sent = scenario()
    assert open_with_key(sent.sealed.header, sent.sealed.ciphertext, sent.sealed.content_key) == (
        sent.payload
    )


def test_commitment_to_another_text() -> None:
    t, sent = scenario()
    sender = sent.sender
    _, devices = ctx(t, sent)
    rng = make_rng("test_envelope/commit")
    key = crypto.new_content_key(rng)
    msg = rng(16)
    plaintext = Payload(title="t", body="what I sent").to_bytes()
    ct = crypto.seal_payload(key, plaintext, t.talks_id + msg, rng)
    keys = {d: crypto.wrap_key(key, p.enc_pk, rng) for d, p in devices.items()}
    commit = crypto.commitment(key, Payload(title="t", body="what I will claim").to_bytes())
    header = craft(
        t,
        sender,
        ciphertext=ct,
        keys=keys,
        commit=commit,
        msg=msg,
        roster=b64e(sent.sealed.header.roster),
    )
    with pytest.raises(CommitmentMismatchError):
        open_as(t, sent, t.people["nb"].device, header=header, keys=keys, ciphertext=ct)


def test_committed_garbage_is_refused_as_a_commitment_mismatch() -> None:
    """A sender who commits to bytes that are not a payload gets nothing shown."""
    t, sent = scenario()
    _, devices = ctx(t, sent)
    rng = make_rng("test_envelope/garbage")
    key, msg = crypto.new_content_key(rng), rng(16)
    plaintext = b'{"not":"a payload"}'
    ct = crypto.seal_payload(key, plaintext, t.talks_id + msg, rng)
    keys = {d: crypto.wrap_key(key, p.enc_pk, rng) for d, p in devices.items()}
    header = craft(
        t,
        sent.sender,
        ciphertext=ct,
        keys=keys,
        msg=msg,
        commit=crypto.commitment(key, plaintext),
        roster=b64e(sent.sealed.header.roster),
    )
    with pytest.raises(CommitmentMismatchError):
        open_as(t, sent, t.people["nb"].device, header=header, keys=keys, ciphertext=ct)


def test_equivocating_sender_with_two_content_keys() -> None:
    """One signed header, two content keys: half the recipients get K1 (the committed
    one), half get K2.  The K2 half can never be shown a text under this header."""
    t, sent = scenario()
    _, devices = ctx(t, sent)
    rng = make_rng("test_envelope/equivocate")
    k1, k2, msg = crypto.new_content_key(rng), crypto.new_content_key(rng), rng(16)
    text = Payload(title="t", body="the committed text").to_bytes()
    ct = crypto.seal_payload(k1, text, t.talks_id + msg, rng)
    ids = sorted(devices)
    group2 = set(ids[::2])
    keys = {d: crypto.wrap_key(k2 if d in group2 else k1, devices[d].enc_pk, rng) for d in ids}
    header = craft(
        t,
        sent.sender,
        ciphertext=ct,
        keys=keys,
        msg=msg,
        commit=crypto.commitment(k1, text),
        roster=b64e(sent.sealed.header.roster),
    )
    outcomes = {}
    for d in ids:
        try:
            outcomes[d] = open_as(t, sent, t.keys[d], header=header, keys=keys, ciphertext=ct).body
        except (CommitmentMismatchError, DecryptionError) as exc:
            outcomes[d] = exc.code
    assert {outcomes[d] for d in ids if d not in group2} == {"the committed text"}
    assert {outcomes[d] for d in group2} <= {"decryption_failed", "commitment_mismatch"}


# --- invisible salamanders ----------------------------------------------------------------

_MASK32 = 0xFFFFFFFF
_P1305 = (1 << 130) - 5
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _rotl(v: int, c: int) -> int:
    return ((v << c) & _MASK32) | (v >> (32 - c))


def _chacha_rounds(state: list[int]) -> list[int]:
    x = list(state)

    def qr(a: int, b: int, c: int, d: int) -> None:
        x[a] = (x[a] + x[b]) & _MASK32
        x[d] = _rotl(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & _MASK32
        x[b] = _rotl(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & _MASK32
        x[d] = _rotl(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & _MASK32
        x[b] = _rotl(x[b] ^ x[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12)
        qr(1, 5, 9, 13)
        qr(2, 6, 10, 14)
        qr(3, 7, 11, 15)
        qr(0, 5, 10, 15)
        qr(1, 6, 11, 12)
        qr(2, 7, 8, 13)
        qr(3, 4, 9, 14)
    return x


def _poly1305_key(key: bytes, nonce24: bytes) -> tuple[int, int]:
    """XChaCha20-Poly1305 (IETF) one-time key ``(r, s)``: HChaCha20 subkey, then block 0
    of ChaCha20 with nonce ``0^4 || nonce[16:24]``."""
    x = _chacha_rounds([*_SIGMA, *struct.unpack("<8I", key), *struct.unpack("<4I", nonce24[:16])])
    subkey = struct.pack("<8I", *x[0:4], *x[12:16])
    state = [*_SIGMA, *struct.unpack("<8I", subkey), 0, 0, *struct.unpack("<2I", nonce24[16:])]
    block = struct.pack(
        "<16I", *((a + b) & _MASK32 for a, b in zip(_chacha_rounds(state), state, strict=True))
    )
    r = int.from_bytes(block[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    return r, int.from_bytes(block[16:32], "little")


def _mac_data(ad: bytes, ct: bytes) -> bytes:
    return (
        ad + bytes(-len(ad) % 16) + ct + bytes(-len(ct) % 16) + struct.pack("<QQ", len(ad), len(ct))
    )


def _poly_h(r: int, data: bytes) -> int:
    acc = 0
    for i in range(0, len(data), 16):
        acc = (acc + int.from_bytes(data[i : i + 16] + b"\x01", "little")) * r % _P1305
    return acc


def salamander(
    k1: bytes, k2: bytes, nonce: bytes, plaintext: bytes, ad_prefix: bytes
) -> tuple[bytes, bytes] | None:
    """Find a 16-byte message id and a sealed payload that decrypts under both keys.

    The associated data is ``ad_prefix (50 bytes) || msg``; blocks 3 and 4 of the MAC input
    hold ``msg[0:14]`` and ``msg[14:16]``, so the difference of the two Poly1305 sums is
    linear in them.  Returns ``(msg, nonce || ct || tag)`` or ``None`` for this key pair.
    """
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, b"", nonce, k1)[:-16]
    (r1, s1), (r2, s2) = _poly1305_key(k1, nonce), _poly1305_key(k2, nonce)
    data0 = _mac_data(ad_prefix + bytes(16), ct)
    e3 = len(data0) // 16 - 3
    d0 = (_poly_h(r1, data0) - _poly_h(r2, data0)) % _P1305
    a = (1 << 16) * (pow(r1, e3, _P1305) - pow(r2, e3, _P1305)) % _P1305
    b = (pow(r1, e3 - 1, _P1305) - pow(r2, e3 - 1, _P1305)) % _P1305
    a_inv = pow(a, -1, _P1305)
    step = b * a_inv % _P1305
    target = (s2 - s1) % (1 << 128)
    for k in range(-4, 4):
        d = target + k * (1 << 128)
        if not -_P1305 < d < _P1305:
            continue
        y = (d - d0) * a_inv % _P1305
        for u in range(1 << 16):
            if y < 1 << 112:
                msg = y.to_bytes(14, "little") + u.to_bytes(2, "little")
                data = _mac_data(ad_prefix + msg, ct)
                t1 = (_poly_h(r1, data) + s1) % (1 << 128)
                if t1 == (_poly_h(r2, data) + s2) % (1 << 128):
                    return msg, nonce + ct + t1.to_bytes(16, "little")
            y = (y - step) % _P1305
    return None


def test_invisible_salamanders_equivocation_is_caught_by_the_commitment() -> None:
    """One header, one ciphertext, one tag, two keys, two texts: the AEAD accepts both,
    so without the signed key commitment half the channel would read another text."""
    t, sent = scenario()
    _, devices = ctx(t, sent)
    rng = make_rng("test_envelope/salamander")
    text = Payload(title="Art. 4", body="Withdrawal within 30 days.").to_bytes()
    prefix = crypto.CTX_PAYLOAD + t.talks_id
    for _ in range(20):
        k1, k2, nonce = rng(32), rng(32), rng(24)
        found = salamander(k1, k2, nonce, text, prefix)
        if found is not None:
            break
    assert found is not None
    msg, sealed = found
    # The AEAD alone is fooled: both keys open the same bytes, to different texts.
    assert crypto.open_payload(k1, sealed, t.talks_id + msg) == text
    other = crypto.open_payload(k2, sealed, t.talks_id + msg)
    assert other != text
    ids = sorted(devices)
    group2 = set(ids[1::2])
    keys = {d: crypto.wrap_key(k2 if d in group2 else k1, devices[d].enc_pk, rng) for d in ids}
    header = craft(
        t,
        sent.sender,
        ciphertext=sealed,
        keys=keys,
        msg=msg,
        commit=crypto.commitment(k1, text),
        roster=b64e(sent.sealed.header.roster),
    )
    for d in ids:
        if d in group2:
            with pytest.raises(CommitmentMismatchError):
                open_as(t, sent, t.keys[d], header=header, keys=keys, ciphertext=sealed)
        else:
            assert open_as(
                t, sent, t.keys[d], header=header, keys=keys, ciphertext=sealed
            ).body == ("Withdrawal within 30 days.")


# --- signature coverage -------------------------------------------------------------------


def test_every_header_field_is_covered_by_the_signature() -> None:
    t = Talks("test_envelope/sweep")
    t.create_delegation("north", "nh")
    t.create_channel("plenary", delegations=["north"], members=["med"])
    first = t.send(t.people["nh"].device, "plenary", "v1")
    sent = t.send(t.people["nh"].device, "plenary", "v2", reply_to=first)
    sender_pk = sent.sender.public
    recipients = list(t.roster.channel_devices("plenary"))
    obj = sent.sealed.header.to_json()
    verify_header(sent.sealed.header, talks=t.talks_id, sender=sender_pk, recipients=recipients)
    seen = set()
    for path, _what, mutated in mutations(obj):
        assert isinstance(mutated, dict)
        with pytest.raises(BadSignatureError):
            verify_record(sender_pk.sign_pk, crypto.CTX_DRAFT, mutated)
        with pytest.raises(ProtocolError):
            verify_header(
                DraftHeader.from_json(mutated),
                talks=t.talks_id,
                sender=sender_pk,
                recipients=recipients,
            )
        seen.add(path)
    assert set(leaf_paths(obj)) <= seen


@pytest.mark.parametrize(
    "context", [c for c in crypto.ALL_CONTEXTS if c != crypto.CTX_DRAFT], ids=repr
)
def test_header_signed_under_another_context_is_refused(context: bytes) -> None:
    t, sent = scenario()
    moved = DraftHeader.from_json(
        resign(sent.sealed.header.to_json(), sent.sender.signing, context)
    )
    with pytest.raises(BadSignatureError):
        open_as(t, sent, t.people["nb"].device, header=moved)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", 2),  # version 2 without parents
        ("counter", 0),
        ("recipients", []),
        ("channel", "Not An Id"),
    ],
)
def test_header_invariants(field: str, value: JSONValue) -> None:
    _, sent = scenario()
    obj = {**sent.sealed.header.to_json(), field: value}
    with pytest.raises(ProtocolError):
        DraftHeader.from_json(resign(obj, sent.sender.signing, crypto.CTX_DRAFT))


_ODD_VALUES: list[JSONValue] = [
    None,
    True,
    0,
    -1,
    2**53,
    2**64,
    1.5,
    "",
    "é",
    "A" * 43,
    "A" * 44,
    [],
    {},
    ["A" * 43],
]


@given(
    field=st.sampled_from(
        [
            "t",
            "v",
            "talks",
            "channel",
            "sender",
            "counter",
            "msg",
            "draft",
            "version",
            "parents",
            "roster",
            "recipients",
            "wrapped",
            "ct_hash",
            "ct_len",
            "commit",
            "time",
            "sig",
            "extra",
        ]
    ),
    value=st.sampled_from(_ODD_VALUES) | st.none(),
    drop=st.booleans(),
)
def test_header_from_json_fast_and_general_paths_agree(
    field: str, value: JSONValue, drop: bool
) -> None:
    """from_json (fast path first) and the general path accept the same objects, build
    equal headers, and refuse with the same error code."""
    _, sent = scenario()
    obj = sent.sealed.header.to_json()
    if drop:
        obj.pop(field, None)
    else:
        obj[field] = value
    outcomes: list[tuple[str, object]] = []
    for parse_header in (DraftHeader.from_json, lambda o: DraftHeader._from_parsed(o, None)):
        try:
            outcomes.append(("ok", parse_header(obj)))
        except ProtocolError as exc:
            outcomes.append(("error", exc.code))
    assert outcomes[0] == outcomes[1]


def test_unsorted_recipients_are_non_canonical() -> None:
    _, sent = scenario()
    obj = sent.sealed.header.to_json()
    obj["recipients"] = obj["recipients"][::-1]
    with pytest.raises(ProtocolError):
        DraftHeader.from_json(resign(obj, sent.sender.signing, crypto.CTX_DRAFT))


# --- upload framing -----------------------------------------------------------------------


def test_upload_round_trips() -> None:
    _, sent = scenario()
    body = encode_upload(sent.sealed)
    header, keys, ct = split_upload(body)
    assert header == sent.sealed.header and header.to_bytes() == sent.sealed.header.to_bytes()
    assert keys == sent.sealed.keys
    assert ct == sent.sealed.ciphertext
    n = struct.unpack(">I", body[:4])[0]
    assert decode_upload_meta(body[4 : 4 + n]) == (header, keys)


@given(payloads(), st.binary(max_size=8))
def test_upload_round_trips_for_any_payload(payload: Payload, seed: bytes) -> None:
    sealed = seal(
        sender=POOL[0],
        talks=TalksId(bytes(32)),
        channel="c",
        counter=1,
        msg=MessageId(bytes(16)),
        draft=DraftId(bytes(16)),
        version=1,
        parents=[],
        roster=LeafHash(bytes(32)),
        recipients={k.device_id: k.public for k in POOL[:3]},
        payload=payload,
        time=0,
        rng=make_rng(seed),
    )
    header, keys, ct = split_upload(encode_upload(sealed))
    assert (header, keys, ct) == (sealed.header, sealed.keys, sealed.ciphertext)


def _meta(sealed: SealedDraft, **changes: JSONValue) -> bytes:
    value: dict[str, JSONValue] = {
        "header": sealed.header.to_json(),
        "keys": keys_to_json(sealed.keys),
    }
    value.update(changes)
    return canonical(value)


def _frame(meta: bytes, ct: bytes = b"") -> bytes:
    return struct.pack(">I", len(meta)) + meta + ct


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "short-length",
        "length-beyond-body",
        "length-over-limit",
        "meta-not-json",
        "meta-non-canonical",
        "meta-unknown-field",
        "meta-missing-keys",
        "keys-not-object",
        "keys-bad-device-id",
        "keys-bad-wrapped-length",
        "keys-of-another-draft",
    ],
)
def test_malformed_upload(case: str) -> None:
    t, sent = scenario()
    sealed = sent.sealed
    ct = sealed.ciphertext
    good_meta = _meta(sealed)
    other = t.seal(sent.sender, "plenary", roster=sealed.header.roster)
    first_key = next(iter(keys_to_json(sealed.keys)))
    body = {
        "empty": b"",
        "short-length": b"\x00\x00\x01",
        "length-beyond-body": struct.pack(">I", len(good_meta) + 1) + good_meta,
        "length-over-limit": struct.pack(">I", 0xFFFFFFFF) + good_meta + ct,
        "meta-not-json": _frame(b"\xff\xfe not json", ct),
        "meta-non-canonical": _frame(good_meta.replace(b'{"header"', b'{ "header"'), ct),
        "meta-unknown-field": _frame(_meta(sealed, extra=1), ct),
        "meta-missing-keys": _frame(canonical({"header": sealed.header.to_json()}), ct),
        "keys-not-object": _frame(_meta(sealed, keys=[]), ct),
        "keys-bad-device-id": _frame(_meta(sealed, keys={"AAAA": "AAAA"}), ct),
        "keys-bad-wrapped-length": _frame(_meta(sealed, keys={first_key: "AAAA"}), ct),
        "keys-of-another-draft": _frame(_meta(sealed, keys=keys_to_json(other.keys)), ct),
    }[case]
    with pytest.raises(ProtocolError) as info:
        split_upload(body)
    if case == "keys-of-another-draft":
        assert isinstance(info.value, CiphertextMismatchError)
    elif case in ("empty", "short-length", "length-beyond-body", "length-over-limit"):
        assert isinstance(info.value, MalformedError)


def test_check_keys_binds_the_map_to_the_header() -> None:
    _, sent = scenario()
    check_keys(sent.sealed.header, sent.sealed.keys)
    with pytest.raises(CiphertextMismatchError):
        check_keys(sent.sealed.header, {})
