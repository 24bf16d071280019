"""Misbehaviour bundles (protocol/misbehaviour.py): a cheating sender is proven, an honest
one never is, and every tampered bundle fails with a stable, step-numbered error."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.encoding import b64e, canonical, parse
from protocol.envelope import Payload
from protocol.errors import (
    CommitmentMismatchError,
    DecryptionError,
    EvidenceError,
    NotARecipientError,
    NotMisbehaviourError,
    ProtocolError,
)
from protocol.keys import DeviceKeys
from protocol.misbehaviour import (
    SENDER_FAULT_REASONS,
    MisbehaviourBundle,
    verify_misbehaviour,
)
from protocol.receipt import REASON_RE, REJECTED
from tests.protocol.builders import Sent, Talks, mutations, standard
from tests.protocol.cheating import (
    bundle_for,
    commit_to_other_text,
    sign_altered,
    wrap_other_key,
)


def true_key(sent: Sent, me: DeviceKeys) -> bytes:
    return crypto.sealed_box_shared_key(sent.sealed.keys[me.device_id], me.box)


@functools.cache
def scenario() -> tuple[Talks, Sent, Sent]:
    """Standard talks; ``na`` sends an honest draft, then one wrapping another key to sa."""
    t, honest, _ = standard("test_misbehaviour/standard")
    cheat = wrap_other_key(t, t.people["na"].device, "plenary", t.people["sa"].device, "Art. 2")
    return t, honest, cheat


def fails(
    data: MisbehaviourBundle | bytes, talks: bytes, step: str, code: str | None = None
) -> EvidenceError:
    """Verification fails at ``step`` with ``bad_evidence`` wrapping ``code``."""
    with pytest.raises(EvidenceError) as info:
        verify_misbehaviour(data, talks)
    assert info.value.code == "bad_evidence"
    assert info.value.detail.startswith(f"step {step}"), info.value.detail
    if code is not None:
        assert info.value.detail.split(": ")[1] == code, info.value.detail
    return info.value


# --- attacks that are proven ----------------------------------------------------------------


def test_sender_wrapping_another_key_to_one_recipient_is_proven() -> None:
    t, _, cheat = scenario()
    victim = t.people["sa"].device
    with pytest.raises(DecryptionError):
        t.open_as(victim, cheat)
    assert t.open_as(t.people["nb"].device, cheat).payload == cheat.payload  # others read it
    t.receipt(victim, cheat, REJECTED, reason=DecryptionError.code)

    report = verify_misbehaviour(bundle_for(t, cheat, victim).to_bytes(), t.talks_id)
    assert report.failure == "decryption_failed"
    assert report.index == cheat.index
    assert report.header == cheat.sealed.header
    assert (report.channel, report.time) == ("plenary", cheat.sealed.header.time)
    assert (report.sender_member, report.sender_device) == ("na", cheat.sender.device_id)
    assert (report.recipient_member, report.recipient_device) == ("sa", victim.device_id)
    assert report.talks_fingerprint == t.genesis.fingerprint
    assert report.origin == t.genesis.origin
    assert report.checkpoint_size == t.tree.size
    assert report.cosigners == tuple(sorted(t.roster.witnesses()))


def test_key_multicollision_style_ciphertext_is_proven() -> None:
    """The wrapped key decrypts the ciphertext, to a text the sender did not commit to."""
    t, _, _ = standard("test_misbehaviour/multicollision")
    shown = Payload(title="Draft", body="Article 1. Nobody agrees to anything.").to_bytes()
    cheat = commit_to_other_text(t, t.people["na"].device, "plenary", shown)
    victim = t.people["sa"].device
    with pytest.raises(CommitmentMismatchError):
        t.open_as(victim, cheat)
    report = verify_misbehaviour(bundle_for(t, cheat, victim), t.talks_id)
    assert report.failure == "commitment_mismatch"
    assert report.recipient_member == "sa"


def test_committed_text_that_is_no_payload_is_proven() -> None:
    t, _, _ = standard("test_misbehaviour/malformed")
    cheat = commit_to_other_text(
        t, t.people["na"].device, "plenary", b'{"title": 1}', commit_to_shown=True
    )
    victim = t.people["nb"].device
    with pytest.raises(CommitmentMismatchError):
        t.open_as(victim, cheat)
    assert verify_misbehaviour(bundle_for(t, cheat, victim), t.talks_id).failure == (
        "commitment_mismatch"
    )


def test_sender_fault_reasons_are_exactly_the_post_header_failures() -> None:
    """open_draft checks talks, signature, recipients, membership, wrapped hash and
    ciphertext before it unwraps; what can fail after that is these two codes."""
    assert set(SENDER_FAULT_REASONS) == {DecryptionError.code, CommitmentMismatchError.code}
    assert all(REASON_RE.fullmatch(r) for r in SENDER_FAULT_REASONS)
    t, _, cheat = scenario()
    with pytest.raises(ProtocolError) as info:
        t.open_as(t.people["sa"].device, cheat)
    assert info.value.code in SENDER_FAULT_REASONS


# --- an honest sender is never proven ---------------------------------------------------------


def test_forged_proof_against_honest_sender_fails() -> None:
    t, honest, _ = scenario()
    me = t.people["sa"].device
    with pytest.raises(NotMisbehaviourError) as info:
        verify_misbehaviour(bundle_for(t, honest, me, shared_key=true_key(honest, me)), t.talks_id)
    assert info.value.code == "not_misbehaviour"
    with pytest.raises(NotMisbehaviourError):
        bundle_for(t, honest, me)  # the builder refuses to make it


def test_recipient_cannot_frame_honest_sender_with_false_shared_key() -> None:
    t, honest, cheat = scenario()
    me = t.people["sa"].device
    other = t.people["nb"].device
    true = true_key(honest, me)
    false_keys = {
        "zero": bytes(32),
        "random": t.rng(32),
        "flipped-bit": bytes([true[0] ^ 1]) + true[1:],
        "key-of-another-recipients-box": true_key(honest, other),
        "key-of-own-box-in-another-draft": true_key(cheat, me),
        "x25519-secret": me.box.secret_bytes(),
    }
    for name, key in false_keys.items():
        bundle = bundle_for(t, honest, me, shared_key=key)
        assert fails(bundle, t.talks_id, "8", "decryption_failed"), name


def test_box_that_opens_for_nobody_proves_nothing() -> None:
    """The limit: a box the victim cannot open at all (here: random bytes) is withheld
    content, not a different text, and the victim has no key to disclose for it."""
    t, _, _ = standard("test_misbehaviour/withheld")
    sender, victim = t.people["na"].device, t.people["sa"].device
    honest = t.seal(sender, "plenary")
    keys = dict(honest.keys)
    keys[victim.device_id] = t.rng(len(keys[victim.device_id]))
    sent = sign_altered(
        t,
        sender,
        honest,
        t.payload(),
        keys=keys,
        ciphertext=honest.ciphertext,
        content_key=honest.content_key,
    )
    with pytest.raises(DecryptionError):
        t.open_as(victim, sent)
    with pytest.raises(EvidenceError) as info:
        bundle_for(t, sent, victim)
    assert info.value.detail.startswith("step 8"), info.value.detail


# --- tampered bundles ---------------------------------------------------------------------------


def test_bundle_round_trips() -> None:
    t, _, cheat = scenario()
    bundle = bundle_for(t, cheat, t.people["sa"].device)
    again = MisbehaviourBundle.from_bytes(bundle.to_bytes())
    assert again == bundle
    assert again.to_bytes() == bundle.to_bytes()
    assert verify_misbehaviour(bundle, t.talks_id) == verify_misbehaviour(again, t.talks_id)


def test_tampered_wrapped_map() -> None:
    """The sender (or anyone) cannot swap the victim's box for an honest one afterwards,
    and the victim cannot drop or add boxes: the map must hash to the signed value."""
    t, honest, cheat = scenario()
    victim = t.people["sa"].device
    bundle = bundle_for(t, cheat, victim)
    keys = dict(bundle.keys)
    swapped = {**keys, victim.device_id: honest.sealed.keys[victim.device_id]}
    fails(dataclasses.replace(bundle, keys=swapped), t.talks_id, "7", "ciphertext_mismatch")
    dropped = {k: v for k, v in keys.items() if k in (victim.device_id, min(keys))}
    fails(dataclasses.replace(bundle, keys=dropped), t.talks_id, "7", "ciphertext_mismatch")
    extra = {**keys, t.people["sam"].device.device_id: keys[victim.device_id]}
    fails(dataclasses.replace(bundle, keys=extra), t.talks_id, "7", "ciphertext_mismatch")


@pytest.mark.parametrize("offset", [0, 23, 24, -17, -1])
def test_tampered_ciphertext(offset: int) -> None:
    t, _, cheat = scenario()
    bundle = bundle_for(t, cheat, t.people["sa"].device)
    ct = bytearray(bundle.ciphertext)
    ct[offset] ^= 0x40
    fails(dataclasses.replace(bundle, ciphertext=bytes(ct)), t.talks_id, "7", "ciphertext_mismatch")
    fails(
        dataclasses.replace(bundle, ciphertext=bundle.ciphertext[:-1]),
        t.talks_id,
        "7",
        "ciphertext_mismatch",
    )


def test_wrong_recipient() -> None:
    """sa's disclosed key, claimed for nb's box (honest, nb reads the text): nothing opens."""
    t, _, cheat = scenario()
    bundle = bundle_for(t, cheat, t.people["sa"].device)
    moved = dataclasses.replace(bundle, recipient=t.people["nb"].device.device_id)
    fails(moved, t.talks_id, "8", "decryption_failed")
    # nb's own, true key for nb's honest box proves nothing either.
    nb = t.people["nb"].device
    honest_box = dataclasses.replace(moved, shared_key=true_key(cheat, nb))
    with pytest.raises(NotMisbehaviourError):
        verify_misbehaviour(honest_box, t.talks_id)


def test_recipient_not_in_the_set() -> None:
    t, _, cheat = scenario()
    bundle = bundle_for(t, cheat, t.people["sa"].device)
    outsider = t.people["sam"].device  # staff, not a member of the plenary
    keys = {**bundle.keys, outsider.device_id: bundle.keys[t.people["sa"].device.device_id]}
    moved = dataclasses.replace(bundle, recipient=outsider.device_id, keys=keys)
    fails(moved, t.talks_id, "6", "not_a_recipient")
    with pytest.raises(NotARecipientError):
        bundle_for(t, cheat, outsider)


def test_bundle_for_other_talks() -> None:
    t, _, cheat = scenario()
    bundle = bundle_for(t, cheat, t.people["sa"].device)
    fails(bundle, Talks("test_misbehaviour/other").talks_id, "1", "wrong_talks")
    fails(bundle, bytes(32), "1", "wrong_talks")


def test_checkpoint_without_quorum() -> None:
    t, _, cheat = scenario()
    bundle = bundle_for(t, cheat, t.people["sa"].device)
    note = t.checkpoint(witnesses=sorted(t.roster.witnesses())[:1])
    fails(dataclasses.replace(bundle, checkpoint=note), t.talks_id, "3", "no_quorum")


def test_every_field_mutated_gives_a_stable_error() -> None:
    """Every well-formed single mutation of the bundle's JSON fails, and fails the same
    way twice (a stable code and step), never with anything but a ProtocolError.  (A
    changed recipient has no box in the map and dies in the parser; step 6 is reached
    by test_recipient_not_in_the_set.)"""
    t, _, cheat = scenario()
    obj = parse(bundle_for(t, cheat, t.people["sa"].device).to_bytes(), max_size=1 << 24)
    seen: set[str] = set()
    count = 0
    for path, what, mutated in mutations(obj):
        data = canonical(mutated)
        outcomes = []
        for _ in range(2):
            with pytest.raises(EvidenceError) as info:
                verify_misbehaviour(data, t.talks_id)
            outcomes.append((info.value.code, info.value.detail))
        assert outcomes[0] == outcomes[1], (path, what)
        seen.add(outcomes[0][1].split(":")[0])
        count += 1
    assert count > 100
    assert {
        "step 0 (parse)",
        "step 1 (genesis)",
        "step 2 (roster)",
        "step 3 (checkpoint)",
        "step 4 (inclusion)",
        "step 5 (draft)",
        "step 7 (signed content)",
        "step 8 (box)",
    } <= seen, seen


def test_unparseable_bundle_is_evidence_error() -> None:
    t, _, cheat = scenario()
    bundle = bundle_for(t, cheat, t.people["sa"].device)
    obj = parse(bundle.to_bytes(), max_size=1 << 24)
    for bad in (
        b"",
        canonical({"t": "misbehaviour"}),
        bundle.to_bytes()[:-1],
        canonical({**obj, "shared_key": b64e(b"short")}),
        canonical({**obj, "shared_key": obj["shared_key"] + "="}),
        canonical({**obj, "keys": {}}),
        canonical({**obj, "recipient": b64e(bytes(16))}),  # no box for it in the map
        canonical({**obj, "t": "evidence"}),
        canonical({**obj, "extra": 1}),
    ):
        fails(bad, t.talks_id, "0")


@given(data=st.binary(max_size=512))
def test_from_bytes_raises_only_protocol_errors_on_any_bytes(data: bytes) -> None:
    try:
        MisbehaviourBundle.from_bytes(data)
    except ProtocolError:
        pass


@given(
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_from_bytes_raises_only_protocol_errors_on_damaged_bundles(
    edits: list[tuple[int, int, bool]],
) -> None:
    data = bytearray(_bundle_bytes())
    for pos, byte, insert in edits:
        i = pos % len(data)
        if insert:
            data.insert(i, byte)
        else:
            data[i] = byte
    try:
        MisbehaviourBundle.from_bytes(bytes(data))
    except ProtocolError:
        pass


@functools.cache
def _bundle_bytes() -> bytes:
    t, _, cheat = scenario()
    return bundle_for(t, cheat, t.people["sa"].device).to_bytes()
