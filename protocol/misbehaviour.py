"""Misbehaviour bundles: "sender S signed draft D at log index N, and the content key it
wrapped for recipient R does not open the text it committed to".

Pure and sans-IO, like the rest of :mod:`protocol`: bytes in, a report or an error out.

Theory of operation
-------------------
A cheating sender can show recipients different texts under one signed header only by
wrapping something other than the committed content key to some of them (a different
key, or a key under which a crafted multi-key ciphertext opens to another text).  Each
victim's :func:`~protocol.envelope.open_draft` then fails at step 7 (decryption) or step
8 (the commitment) and the victim signs a ``rejected`` receipt, but a receipt is only
the victim's word.  This bundle turns it into proof without disclosing any long-term key.

The victim R discloses, for its own box only, the sealed box's crypto_box key
``k_box = crypto_box_beforenm(epk, r_sk)`` (:func:`protocol.crypto.sealed_box_shared_key`;
``epk`` is fresh per box, so ``k_box`` opens this box and nothing else).  Anyone can then
open R's box, take the content key the sender wrapped for R, and try it on the ciphertext.

Why R cannot frame an honest sender: the box (ephemeral key, ciphertext and Poly1305 tag)
is fixed by the sender's signed ``wrapped`` hash and the nonce by ``epk`` and R's X25519
key from the roster.  An honest box opens under its one true key to the committed content
key, which opens the committed text; to make it open under any other key R would have to
forge a Poly1305 tag it does not control (about 2^-128 per guess).  So the bundle's
conclusion does not depend on ``k_box`` being the true key: a box *of the sender's* that
opens, under any key, to a content key that fails the ciphertext or the commitment is a
box no honest sender makes.  Why the sender cannot escape: the true ``k_box`` is unique
(X25519 of ``epk`` and R's key), and whatever the box holds under it (a different key, or
one that decrypts a crafted ciphertext to another text) fails step 9 below.

Limits: a box that opens under no key R can show (random bytes, or a box sealed to another
public key) proves nothing here, because ``k_box`` is not bound to R's public key by a
proof of correct Diffie-Hellman; the victim's ``rejected`` receipt remains its unproven
claim.  Such a sender withholds the draft from R; it cannot show R a different text.

Bundle (canonical JSON, ``t = "misbehaviour"``)::

    genesis      the genesis record (entry 0) with its inclusion proof
    roster       every roster/channel change from the genesis up to (at least) the draft
    draft        the draft header, its index and inclusion proof
    checkpoint   a C2SP checkpoint note with the witness quorum
    recipient    R's device id
    keys         the whole wrapped-key map the sender sent ({device id: sealed box})
    shared_key   the crypto_box key of R's box
    ciphertext   the draft ciphertext

Verification (:func:`verify_misbehaviour`), each step raising
:class:`~protocol.errors.EvidenceError` that names it:

1-5. as for evidence bundles (:func:`protocol.evidence.verify_logged_draft`): the pin,
     the roster replay, the checkpoint and its quorum, inclusion, and the header signed by
     a channel member for exactly the channel's devices;
6. R is one of the header's recipients; its X25519 key comes from the roster at the draft;
7. the key map hashes to the signed ``wrapped`` (so R's box is exactly what the sender
   signed for R) and the ciphertext matches the signed length and hash;
8. R's box opens with ``shared_key`` and the nonce from ``epk`` and R's key; if it does
   not, the bundle proves nothing (``bad_evidence``: R may have lied);
9. the content key from the box opens the ciphertext and matches the commitment: then the
   sender was honest and :class:`~protocol.errors.NotMisbehaviourError` is raised.  If it
   fails with ``decryption_failed`` or ``commitment_mismatch``, misbehaviour is proven.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from protocol import crypto
from protocol.encoding import Fields, b64e, canonical, parse
from protocol.envelope import (
    MAX_PAYLOAD,
    MAX_RECIPIENTS,
    DraftHeader,
    check_ciphertext,
    check_keys,
    keys_from_json,
    keys_to_json,
    open_with_key,
)
from protocol.errors import (
    BadValueError,
    CommitmentMismatchError,
    DecryptionError,
    EvidenceError,
    NotARecipientError,
    NotMisbehaviourError,
    ProtocolError,
)
from protocol.evidence import MAX_EVIDENCE, MAX_ITEMS, Proven, verify_logged_draft
from protocol.keys import DEVICE_ID_LEN, DeviceId, DeviceKeys

SENDER_FAULT_REASONS: tuple[str, ...] = (CommitmentMismatchError.code, DecryptionError.code)
"""Rejection reasons that, for a header whose signature, recipient set, wrapped-key hash
and ciphertext hash all verified (steps 1-6 of :func:`~protocol.envelope.open_draft`), only
the sender can have caused, provided the recipient holds its enrolled key: the unwrap,
the payload decryption (``decryption_failed``) and the commitment or payload form
(``commitment_mismatch``) depend on nothing but what the sender signed.  The auditor may
treat a ``rejected`` receipt with one of these reasons as an accusation that a
misbehaviour bundle can prove; every other reason is about the header or the delivery."""

_WRAPPED_LEN = crypto.CONTENT_KEY_LEN + crypto.SEAL_OVERHEAD


@dataclass(frozen=True, slots=True, kw_only=True)
class MisbehaviourBundle:
    """A recipient's proof that a sender's draft does not open for it (module doc)."""

    genesis: Proven
    roster: tuple[Proven, ...]
    draft: Proven
    checkpoint: str
    recipient: DeviceId
    keys: Mapping[DeviceId, bytes] = field(hash=False)
    shared_key: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.recipient) != DEVICE_ID_LEN:
            raise BadValueError("misbehaviour.recipient must be a device id")
        if len(self.shared_key) != crypto.SHARED_KEY_LEN:
            raise BadValueError("misbehaviour.shared_key must be 32 bytes")
        if len(self.ciphertext) > MAX_PAYLOAD + crypto.AEAD_OVERHEAD:
            raise BadValueError("misbehaviour.ciphertext too large")
        if not 1 <= len(self.keys) <= MAX_RECIPIENTS or any(
            len(k) != DEVICE_ID_LEN or len(v) != _WRAPPED_LEN for k, v in self.keys.items()
        ):
            raise BadValueError("misbehaviour.keys is not a wrapped-key map")
        if self.recipient not in self.keys:
            raise BadValueError("misbehaviour.keys has no box for the recipient")
        # Frozen means frozen: keep a read-only copy, not the caller's dict.
        object.__setattr__(self, "keys", MappingProxyType(dict(sorted(self.keys.items()))))

    def to_bytes(self) -> bytes:
        return canonical(
            {
                "checkpoint": self.checkpoint,
                "ciphertext": b64e(self.ciphertext),
                "draft": self.draft.to_json(),
                "genesis": self.genesis.to_json(),
                "keys": keys_to_json(self.keys),
                "recipient": b64e(self.recipient),
                "roster": [r.to_json() for r in self.roster],
                "shared_key": b64e(self.shared_key),
                "t": "misbehaviour",
                "v": 1,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> MisbehaviourBundle:
        f = Fields(parse(data, max_size=MAX_EVIDENCE), "misbehaviour")
        f.literal("t", "misbehaviour")
        f.version(1)
        bundle = cls(
            genesis=Proven.from_json(f.raw("genesis"), "misbehaviour.genesis"),
            roster=tuple(
                Proven.from_json(v, "misbehaviour.roster")
                for v in f.list("roster", max_items=MAX_ITEMS)
            ),
            draft=Proven.from_json(f.raw("draft"), "misbehaviour.draft"),
            checkpoint=f.str("checkpoint", max_len=64 * 1024),
            recipient=DeviceId(f.bytes("recipient", length=DEVICE_ID_LEN)),
            keys=keys_from_json(f.raw("keys")),
            shared_key=f.bytes("shared_key", length=crypto.SHARED_KEY_LEN),
            ciphertext=f.bytes("ciphertext", max_len=MAX_PAYLOAD + crypto.AEAD_OVERHEAD),
        )
        f.done()
        return bundle


@dataclass(frozen=True, slots=True, kw_only=True)
class MisbehaviourReport:
    """What a verified misbehaviour bundle proves: who signed what, for whom, and how the
    content the sender wrapped for that recipient fails."""

    talks_fingerprint: str
    origin: str
    checkpoint_size: int
    cosigners: tuple[str, ...]
    index: int
    header: DraftHeader
    channel: str
    sender_member: str
    sender_device: DeviceId
    time: int
    recipient_member: str
    recipient_device: DeviceId
    failure: str
    """One of :data:`SENDER_FAULT_REASONS`."""


def _wrap(step: str, exc: ProtocolError) -> EvidenceError:
    return EvidenceError(f"step {step}: {exc.code}: {exc.detail}")


def verify_misbehaviour(
    data: bytes | MisbehaviourBundle, pinned_talks: bytes, *, now: int | None = None
) -> MisbehaviourReport:
    """Verify a misbehaviour bundle offline (steps 1-9 of the module docstring).

    Returns what it proves, or raises :class:`~protocol.errors.EvidenceError` naming the
    failed step (:class:`~protocol.errors.NotMisbehaviourError` when the sender's text
    opens fine).
    """
    try:
        bundle = (
            data if isinstance(data, MisbehaviourBundle) else MisbehaviourBundle.from_bytes(data)
        )
    except ProtocolError as exc:
        raise _wrap("0 (parse)", exc) from exc
    logged = verify_logged_draft(
        genesis=bundle.genesis,
        roster=bundle.roster,
        draft=bundle.draft,
        checkpoint=bundle.checkpoint,
        pinned_talks=pinned_talks,
        now=now,
    )
    header = logged.header
    # 6. the recipient and its key, from the roster the draft was computed from
    try:
        if bundle.recipient not in header.recipients:
            raise NotARecipientError("the device is not a recipient of the draft")
        recipient_member, recipient_key = logged.roster.device(bundle.recipient)
    except ProtocolError as exc:
        raise _wrap("6 (recipient)", exc) from exc
    # 7. the box and the ciphertext are exactly what the sender signed
    try:
        check_keys(header, bundle.keys)
        check_ciphertext(header, bundle.ciphertext)
    except ProtocolError as exc:
        raise _wrap("7 (signed content)", exc) from exc
    # 8. the disclosed key opens the recipient's box (otherwise nothing is shown)
    try:
        content_key = crypto.open_sealed_box_with_shared_key(
            bundle.keys[bundle.recipient], bundle.shared_key, recipient_key.enc_pk
        )
    except ProtocolError as exc:
        raise _wrap("8 (box)", exc) from exc
    # 9. what the box holds does not open the committed text
    try:
        open_with_key(header, bundle.ciphertext, content_key)
    except (DecryptionError, CommitmentMismatchError) as exc:
        failure = exc.code
    except ProtocolError as exc:  # pragma: no cover - step 7 checked the ciphertext
        raise _wrap("9 (content)", exc) from exc
    else:
        raise NotMisbehaviourError(
            "step 9 (content): the key wrapped for the recipient opens the committed text"
        )
    return MisbehaviourReport(
        talks_fingerprint=logged.genesis.fingerprint,
        origin=logged.genesis.origin,
        checkpoint_size=logged.checkpoint.size,
        cosigners=logged.cosigners,
        index=bundle.draft.index,
        header=header,
        channel=header.channel,
        sender_member=logged.sender_member,
        sender_device=header.sender,
        time=header.time,
        recipient_member=recipient_member.id,
        recipient_device=bundle.recipient,
        failure=failure,
    )


def make_misbehaviour_bundle(
    *,
    me: DeviceKeys,
    genesis: Proven,
    roster: Sequence[Proven],
    draft: Proven,
    checkpoint: str,
    keys: Mapping[DeviceId, bytes],
    ciphertext: bytes,
) -> MisbehaviourBundle:
    """Build the bundle a recipient ``me`` discloses after its draft failed to open.

    ``keys`` and ``ciphertext`` are what the recipient received for the draft (the ones
    :func:`~protocol.envelope.open_draft` rejected); ``genesis``, ``roster``, ``draft``
    and ``checkpoint`` are the same log pieces an evidence bundle carries (a checkpoint
    with the witness quorum covering the draft).  Only this device's box key is
    disclosed.  The bundle is checked with :func:`verify_misbehaviour` against the
    talks the draft names before it is returned, so this raises exactly what an
    arbitrator would (``not_misbehaviour`` for a draft that opens fine, ``bad_evidence``
    for one whose box does not open even for its recipient).
    """
    wrapped = keys.get(me.device_id)
    if wrapped is None:
        raise NotARecipientError("this device has no wrapped key in the draft")
    bundle = MisbehaviourBundle(
        genesis=genesis,
        roster=tuple(roster),
        draft=draft,
        checkpoint=checkpoint,
        recipient=me.device_id,
        keys=keys,
        shared_key=crypto.sealed_box_shared_key(wrapped, me.box),
        ciphertext=ciphertext,
    )
    verify_misbehaviour(bundle, DraftHeader.from_bytes(draft.entry).talks)
    return bundle
