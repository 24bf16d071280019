"""Drafts a cheating sender signs, and the bundles that prove them, for misbehaviour
tests and vectors.

Each starts from an honest :meth:`~tests.protocol.builders.Talks.seal`, changes what the
sender sends (the wrapped keys or the ciphertext), and signs a header that commits to the
changed parts, so the ledger accepts it and every check before decryption passes; only
the recipients' unwrap, decryption or commitment check can tell.  The drafts are logged.
"""

from __future__ import annotations

from protocol import crypto
from protocol.encoding import b64e
from protocol.envelope import DraftHeader, Payload, SealedDraft, keys_hash
from protocol.keys import DeviceId, DeviceKeys
from protocol.misbehaviour import MisbehaviourBundle, make_misbehaviour_bundle
from tests.protocol.builders import Sent, Talks, resign


def sign_altered(
    t: Talks,
    sender: DeviceKeys,
    honest: SealedDraft,
    payload: Payload,
    *,
    keys: dict[DeviceId, bytes],
    ciphertext: bytes,
    content_key: bytes,
    committed: bytes | None = None,
) -> Sent:
    """Re-sign ``honest``'s header over ``keys`` and ``ciphertext`` (and, if given, a
    commitment to the plaintext ``committed``) and log the draft."""
    obj = honest.header.to_json()
    if committed is not None:
        obj["commit"] = b64e(crypto.commitment(content_key, committed))
    obj["wrapped"] = b64e(keys_hash(keys))
    obj["ct_hash"] = b64e(crypto.sha256(ciphertext))
    obj["ct_len"] = len(ciphertext)
    header = DraftHeader.from_json(resign(obj, sender.signing, crypto.CTX_DRAFT))
    sealed = SealedDraft(header=header, keys=keys, ciphertext=ciphertext, content_key=content_key)
    return t.log_draft(sealed, payload, sender)


def wrap_other_key(
    t: Talks, sender: DeviceKeys, channel: str, victim: DeviceKeys, text: str = ""
) -> Sent:
    """Send a draft whose box for ``victim`` holds a key other than the committed one:
    every other recipient reads the text, the victim's decryption fails."""
    payload = t.payload(text)
    honest = t.seal(sender, channel, payload)
    keys = dict(honest.keys)
    keys[victim.device_id] = crypto.wrap_key(
        crypto.new_content_key(t.rng), victim.public.enc_pk, t.rng
    )
    return sign_altered(
        t,
        sender,
        honest,
        payload,
        keys=keys,
        ciphertext=honest.ciphertext,
        content_key=honest.content_key,
    )


def commit_to_other_text(
    t: Talks,
    sender: DeviceKeys,
    channel: str,
    shown: bytes,
    text: str = "",
    *,
    commit_to_shown: bool = False,
) -> Sent:
    """Send a draft committed to one text whose ciphertext, under the wrapped key,
    decrypts to the plaintext ``shown``: the key decrypts, the commitment fails.

    This is what a recipient of a key-multicollision ciphertext meets (its key opens the
    ciphertext to another text than the committed one), with every recipient a victim.
    With ``commit_to_shown`` the commitment does cover ``shown``, so only its form can
    fail (a ``shown`` that is no canonical payload).
    """
    payload = t.payload(text)
    honest = t.seal(sender, channel, payload)
    associated = honest.header.talks + honest.header.msg
    ciphertext = crypto.seal_payload(honest.content_key, shown, associated, t.rng)
    return sign_altered(
        t,
        sender,
        honest,
        payload,
        keys=dict(honest.keys),
        ciphertext=ciphertext,
        content_key=honest.content_key,
        committed=shown if commit_to_shown else None,
    )


def bundle_for(
    t: Talks, sent: Sent, me: DeviceKeys, *, shared_key: bytes | None = None
) -> MisbehaviourBundle:
    """The bundle ``me`` builds for ``sent``, with the log pieces of the builder's
    evidence bundle (or, with ``shared_key``, the bundle it would build disclosing that
    key instead, made without the builder's own check)."""
    ev = t.evidence(sent)
    if shared_key is None:
        return make_misbehaviour_bundle(
            me=me,
            genesis=ev.genesis,
            roster=ev.roster,
            draft=ev.draft,
            checkpoint=ev.checkpoint,
            keys=sent.sealed.keys,
            ciphertext=sent.sealed.ciphertext,
        )
    return MisbehaviourBundle(
        genesis=ev.genesis,
        roster=ev.roster,
        draft=ev.draft,
        checkpoint=ev.checkpoint,
        recipient=me.device_id,
        keys=sent.sealed.keys,
        shared_key=shared_key,
        ciphertext=sent.sealed.ciphertext,
    )
