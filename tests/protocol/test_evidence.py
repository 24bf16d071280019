"""Evidence bundles (protocol/evidence.py): a real bundle verifies and says the right
things; every named mutation fails with EvidenceError; random byte flips never verify."""

from __future__ import annotations

import dataclasses
import functools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import checkpoint as cp
from protocol import crypto
from protocol.encoding import b64e, canonical, parse
from protocol.envelope import Payload
from protocol.errors import EvidenceError, ProtocolError
from protocol.evidence import EvidenceBundle, Proven, verify_evidence
from protocol.receipt import ACKNOWLEDGED, RECEIVED, REJECTED
from tests.protocol.builders import Sent, Talks, resign, standard


@functools.cache
def scenario() -> tuple[Talks, Sent, list[int], EvidenceBundle]:
    t, sent, receipts = standard("test_evidence/standard")
    later = t.send(t.people["sa"].device, "plenary", "Counter-proposal", reply_to=sent)
    t.receipt(t.people["nb"].device, later)
    return t, sent, receipts, t.evidence(sent, receipts)


def fails(bundle: EvidenceBundle | bytes, talks: bytes, step: str) -> None:
    with pytest.raises(EvidenceError) as info:
        verify_evidence(bundle, talks)
    assert info.value.detail.startswith(f"step {step}"), info.value.detail


# --- the happy path -----------------------------------------------------------------------


def test_bundle_verifies_and_reports_what_it_proves() -> None:
    t, sent, receipts, bundle = scenario()
    report = verify_evidence(bundle.to_bytes(), t.talks_id)
    assert report.talks_fingerprint == t.genesis.fingerprint
    assert report.origin == t.genesis.origin
    assert report.index == sent.index
    assert report.channel == "plenary"
    assert report.sender_member == "na"
    assert report.sender_device == sent.sender.device_id
    assert report.time == sent.sealed.header.time
    assert report.payload == sent.payload
    assert report.recipients == ("med", "na", "nb", "nh", "sa", "sh")
    assert report.checkpoint_size == t.tree.size
    assert report.cosigners == tuple(sorted(t.roster_at(sent.index).witnesses()))
    assert [f.index for f in report.receipts] == receipts
    by_kind = {(f.member, f.kind) for f in report.receipts}
    assert ("med", ACKNOWLEDGED) in by_kind
    assert {m for m, k in by_kind if k == RECEIVED} == {"med", "na", "nb", "nh", "sa", "sh"}
    # The second device of na (not the sender device) received it too.
    assert sum(1 for f in report.receipts if f.member == "na") == 1
    assert verify_evidence(bundle, t.talks_id) == report


def test_bundle_without_receipts_proves_the_sending() -> None:
    t, sent, _, _ = scenario()
    report = verify_evidence(t.evidence(sent).to_bytes(), t.talks_id)
    assert report.receipts == () and report.sender_member == "na"


def test_rejected_receipt_is_reported_with_its_reason() -> None:
    t, _, _ = standard("test_evidence/rejected")
    draft = t.send(t.people["sa"].device, "plenary", "x")
    i, _ = t.receipt(t.people["nb"].device, draft, REJECTED, reason="commitment_mismatch")
    report = verify_evidence(t.evidence(draft, [i]).to_bytes(), t.talks_id)
    assert [(f.member, f.kind, f.reason) for f in report.receipts] == [
        ("nb", REJECTED, "commitment_mismatch")
    ]


def test_bundle_round_trips() -> None:
    _, _, _, bundle = scenario()
    again = EvidenceBundle.from_bytes(bundle.to_bytes())
    assert again == bundle
    assert again.to_bytes() == bundle.to_bytes()


@settings(max_examples=15)
@given(
    body=st.none() | st.text(max_size=200),
    file=st.none() | st.binary(max_size=300),
    n_receipts=st.integers(0, 3),
)
def test_bundle_round_trips_and_verifies_for_any_payload(
    body: str | None, file: bytes | None, n_receipts: int
) -> None:
    t = Talks("test_evidence/hypothesis")
    t.create_delegation("north", "nh")
    t.enrol("north", "na")
    t.create_channel("c", delegations=["north"], members=["med"])
    if body is None and file is None:
        body = ""
    payload = Payload(
        title="T",
        body=body,
        file_name=None if file is None else "f.bin",
        media_type=None if file is None else "application/octet-stream",
        file_data=file,
    )
    sent = t.send(t.people["na"].device, "c", payload=payload)
    others = [d for d in sent.sealed.header.recipients if d != sent.sender.device_id]
    receipts = [t.receipt(t.keys[d], sent)[0] for d in others[:n_receipts]]
    bundle = t.evidence(sent, receipts)
    again = EvidenceBundle.from_bytes(bundle.to_bytes())
    assert again == bundle and again.to_bytes() == bundle.to_bytes()
    report = verify_evidence(again, t.talks_id)
    assert report.payload == payload
    assert len(report.receipts) == min(n_receipts, len(others))


# --- named mutations ----------------------------------------------------------------------


def test_wrong_pinned_talks() -> None:
    t, _, _, bundle = scenario()
    other = Talks("test_evidence/other")
    fails(bundle, other.talks_id, "1")
    fails(bundle, bytes(32), "1")


def test_genesis_of_other_talks() -> None:
    t, _, _, bundle = scenario()
    other = Talks("test_evidence/other")
    swapped = dataclasses.replace(bundle, genesis=other.proven(0, 1))
    fails(swapped, t.talks_id, "1")
    fails(swapped, other.talks_id, "2")  # its own pin passes, then the roster is foreign


def test_genesis_not_at_index_zero() -> None:
    t, _, _, bundle = scenario()
    moved = dataclasses.replace(bundle, genesis=dataclasses.replace(bundle.genesis, index=1))
    fails(moved, t.talks_id, "1")


@pytest.mark.parametrize("position", range(7))
def test_dropped_roster_change(position: int) -> None:
    t, _, _, bundle = scenario()
    assert len(bundle.roster) == 7
    roster = bundle.roster[:position] + bundle.roster[position + 1 :]
    fails(dataclasses.replace(bundle, roster=roster), t.talks_id, "2" if position < 6 else "5")


def test_truncated_roster_is_caught_at_the_draft() -> None:
    """Dropping the last changes keeps the chain valid; the draft names a later state."""
    t, _, _, bundle = scenario()
    fails(dataclasses.replace(bundle, roster=bundle.roster[:-2]), t.talks_id, "5")


@pytest.mark.parametrize("position", range(6))
def test_reordered_roster(position: int) -> None:
    t, _, _, bundle = scenario()
    r = list(bundle.roster)
    r[position], r[position + 1] = r[position + 1], r[position]
    fails(dataclasses.replace(bundle, roster=tuple(r)), t.talks_id, "2")


def test_roster_indices_must_increase() -> None:
    t, _, _, bundle = scenario()
    r = list(bundle.roster)
    r[1] = dataclasses.replace(r[1], index=r[0].index)
    fails(dataclasses.replace(bundle, roster=tuple(r)), t.talks_id, "2")


def test_roster_change_after_the_draft() -> None:
    """Changes logged after the draft may follow in the bundle (their witnesses judge the
    checkpoint) without changing the roster the draft is judged by; repeating one breaks
    the chain."""
    t, sent, receipts = standard("test_evidence/late-change")
    before = verify_evidence(t.evidence(sent, receipts), t.talks_id)
    t.enrol("south", "late")
    bundle = t.evidence(sent, receipts)
    after = verify_evidence(bundle, t.talks_id)
    assert after.recipients == before.recipients
    assert "late" not in after.recipients
    extra = t.proven(t.tree.size - 1, t.tree.size)
    fails(dataclasses.replace(bundle, roster=(*bundle.roster, extra)), t.talks_id, "2")


def test_altered_draft_entry() -> None:
    t, sent, _, bundle = scenario()
    obj = parse(bundle.draft.entry)
    obj["time"] += 1
    altered = dataclasses.replace(bundle.draft, entry=canonical(obj))
    fails(dataclasses.replace(bundle, draft=altered), t.talks_id, "4")
    # Re-signed by the real sender it still is not the logged entry.
    resigned = canonical(resign(obj, sent.sender.signing, crypto.CTX_DRAFT))
    fails(
        dataclasses.replace(bundle, draft=dataclasses.replace(bundle.draft, entry=resigned)),
        t.talks_id,
        "4",
    )


def test_another_logged_draft_in_place_of_the_draft() -> None:
    """The later draft's own valid entry and proof, with this draft's ciphertext/key."""
    t, sent, _, bundle = scenario()
    later_index = max(t.sent)
    fails(dataclasses.replace(bundle, draft=t.proven(later_index, t.tree.size)), t.talks_id, "")


@pytest.mark.parametrize("offset", [0, 23, 24, 100, -17, -1])
def test_altered_ciphertext_byte(offset: int) -> None:
    t, _, _, bundle = scenario()
    ct = bytearray(bundle.ciphertext)
    ct[offset] ^= 0x40
    fails(dataclasses.replace(bundle, ciphertext=bytes(ct)), t.talks_id, "6")


def test_wrong_content_key() -> None:
    t, _, _, bundle = scenario()
    fails(dataclasses.replace(bundle, content_key=bytes(32)), t.talks_id, "6")
    key = bytearray(bundle.content_key)
    key[0] ^= 1
    fails(dataclasses.replace(bundle, content_key=bytes(key)), t.talks_id, "6")


def test_receipt_from_another_draft() -> None:
    t, _, _, bundle = scenario()
    foreign = t.tree.size - 1  # nb's receipt for the later draft, with a valid proof
    assert parse(t.entries[foreign])["t"] == "receipt"
    fails(
        dataclasses.replace(bundle, receipts=(*bundle.receipts, t.proven(foreign, t.tree.size))),
        t.talks_id,
        "7",
    )


def test_receipt_index_before_the_draft() -> None:
    t, sent, _, bundle = scenario()
    r = dataclasses.replace(bundle.receipts[0], index=sent.index - 1)
    fails(dataclasses.replace(bundle, receipts=(r, *bundle.receipts[1:])), t.talks_id, "4")


def test_non_receipt_passed_as_receipt() -> None:
    t, sent, _, bundle = scenario()
    fails(dataclasses.replace(bundle, receipts=(bundle.draft,)), t.talks_id, "7")


def _tamper_proof(item: Proven, which: int) -> Proven:
    proof = list(item.proof)
    proof[which] = bytes([proof[which][0] ^ 1]) + proof[which][1:]
    return dataclasses.replace(item, proof=tuple(proof))


@pytest.mark.parametrize("item", ["genesis", "roster", "draft", "receipt"])
@pytest.mark.parametrize("how", ["flipped-hash", "dropped-hash", "extra-hash", "wrong-index"])
def test_inclusion_proof_tampered(item: str, how: str) -> None:
    t, _, _, bundle = scenario()
    target = {
        "genesis": bundle.genesis,
        "roster": bundle.roster[2],
        "draft": bundle.draft,
        "receipt": bundle.receipts[1],
    }[item]
    if how == "flipped-hash":
        changed = _tamper_proof(target, len(target.proof) // 2)
    elif how == "dropped-hash":
        changed = dataclasses.replace(target, proof=target.proof[:-1])
    elif how == "extra-hash":
        changed = dataclasses.replace(target, proof=(*target.proof, bytes(32)))
    else:
        changed = dataclasses.replace(target, index=target.index + 1)
    if item == "genesis":
        mutated = dataclasses.replace(bundle, genesis=changed)
    elif item == "roster":
        mutated = dataclasses.replace(
            bundle, roster=(*bundle.roster[:2], changed, *bundle.roster[3:])
        )
    elif item == "draft":
        mutated = dataclasses.replace(bundle, draft=changed)
    else:
        mutated = dataclasses.replace(
            bundle, receipts=(bundle.receipts[0], changed, *bundle.receipts[2:])
        )
    fails(mutated, t.talks_id, "")


def test_proofs_for_a_different_tree_size() -> None:
    t, sent, receipts, bundle = scenario()
    smaller = t.evidence(sent, receipts, size=t.tree.size - 1)
    fails(dataclasses.replace(bundle, draft=smaller.draft), t.talks_id, "4")


def _note_lines(note: str) -> tuple[str, list[str]]:
    body, _, sigs = note.partition("\n\n")
    return body + "\n", [line + "\n" for line in sigs.splitlines()]


def test_checkpoint_signature_tampered() -> None:
    t, _, _, bundle = scenario()
    body, lines = _note_lines(bundle.checkpoint)
    sig = cp.NoteSignature.from_line(lines[0])
    bad = dataclasses.replace(sig, sig_bytes=bytes([sig.sig_bytes[0] ^ 1]) + sig.sig_bytes[1:])
    note = cp.format_note(body.encode(), [bad.line(), *lines[1:]]).decode()
    fails(dataclasses.replace(bundle, checkpoint=note), t.talks_id, "3")


def test_checkpoint_signed_by_another_log_key() -> None:
    t, _, _, bundle = scenario()
    body, lines = _note_lines(bundle.checkpoint)
    checkpoint = cp.Checkpoint.from_body(body.encode())
    rogue = crypto.SigningKey(bytes(32))
    line = cp.sign_checkpoint(checkpoint, t.genesis.log_name, rogue)
    note = cp.format_note(body.encode(), [line, *lines[1:]]).decode()
    fails(dataclasses.replace(bundle, checkpoint=note), t.talks_id, "3")


def test_checkpoint_body_altered() -> None:
    """A checkpoint re-signed... by nobody: the root changed, the signatures did not."""
    t, _, _, bundle = scenario()
    body, lines = _note_lines(bundle.checkpoint)
    checkpoint = cp.Checkpoint.from_body(body.encode())
    altered = dataclasses.replace(checkpoint, root=crypto.sha256(b"other"))
    note = cp.format_note(altered.body(), lines).decode()
    fails(dataclasses.replace(bundle, checkpoint=note), t.talks_id, "3")


@pytest.mark.parametrize("cosigners", [0, 1, 2])
def test_quorum_missing(cosigners: int) -> None:
    t, sent, receipts, bundle = scenario()
    roster = t.roster_at(sent.index)
    names = sorted(roster.witnesses())[:cosigners]
    assert roster.quorum() == 3
    note = t.checkpoint(witnesses=names, roster=roster)
    fails(dataclasses.replace(bundle, checkpoint=note), t.talks_id, "3")


def test_cosignature_copied_under_another_witness_name_does_not_count() -> None:
    t, sent, _, bundle = scenario()
    roster = t.roster_at(sent.index)
    names = sorted(roster.witnesses())
    body, lines = _note_lines(t.checkpoint(witnesses=names[:2], roster=roster))
    copied = cp.NoteSignature.from_line(lines[1])
    forged = cp.NoteSignature(name=names[2], key_id=copied.key_id, sig_bytes=copied.sig_bytes)
    note = cp.format_note(body.encode(), [*lines, forged.line()]).decode()
    fails(dataclasses.replace(bundle, checkpoint=note), t.talks_id, "3")


def test_lower_quorum_policy_accepts_fewer_cosigners() -> None:
    t, sent, receipts = standard("test_evidence/quorum-1", quorum=1)
    roster = t.roster_at(sent.index)
    note = t.checkpoint(witnesses=[sorted(roster.witnesses())[1]], roster=roster)
    report = verify_evidence(t.evidence(sent, receipts, note=note), t.talks_id)
    assert len(report.cosigners) == 1


def test_checkpoint_of_another_origin() -> None:
    t, _, _, bundle = scenario()
    body, lines = _note_lines(bundle.checkpoint)
    checkpoint = cp.Checkpoint.from_body(body.encode())
    other = dataclasses.replace(checkpoint, origin="elsewhere.example/log")
    sig = cp.sign_checkpoint(other, t.genesis.log_name, t.log_key)
    note = cp.format_note(other.body(), [sig]).decode()
    fails(dataclasses.replace(bundle, checkpoint=note), t.talks_id, "3")


# --- byte flips ---------------------------------------------------------------------------


_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _never_verifies(data: bytes, talks: bytes, offset: int) -> str:
    try:
        verify_evidence(data, talks)
    except EvidenceError as exc:
        return exc.detail.split(":")[0]
    except ProtocolError as exc:  # pragma: no cover - reported with the offset
        pytest.fail(f"offset {offset}: {type(exc).__name__} escaped unwrapped")
    pytest.fail(f"offset {offset}: altered bundle still verified")  # pragma: no cover


def test_flipping_any_byte_never_verifies() -> None:
    """200 random offsets, each XORed with a random non-zero byte."""
    t, _, _, bundle = scenario()
    data = bundle.to_bytes()
    rng = random.Random(20260101)
    for offset in rng.sample(range(len(data)), 200):
        flipped = bytearray(data)
        flipped[offset] ^= rng.randrange(1, 256)
        _never_verifies(bytes(flipped), t.talks_id, offset)


def test_substituting_any_base64_character_never_verifies() -> None:
    """Most random flips die in the parser; swapping a base64url character for another
    keeps the JSON well-formed, so these reach the signature, proof and quorum checks."""
    t, _, _, bundle = scenario()
    data = bundle.to_bytes()
    rng = random.Random(20260102)
    candidates = [i for i, b in enumerate(data) if b in _B64URL]
    steps = set()
    for offset in rng.sample(candidates, 200):
        changed = bytearray(data)
        changed[offset] = rng.choice([c for c in _B64URL if c != data[offset]])
        steps.add(_never_verifies(bytes(changed), t.talks_id, offset))
    assert {"step 2 (roster)", "step 3 (checkpoint)", "step 4 (inclusion)"} <= steps


def test_unparseable_bundle_is_evidence_error() -> None:
    t, _, _, bundle = scenario()
    fails(b"", t.talks_id, "0")
    fails(canonical({"t": "evidence"}), t.talks_id, "0")
    fails(bundle.to_bytes()[:-1], t.talks_id, "0")
    obj = parse(bundle.to_bytes())
    obj["content_key"] = b64e(b"short")
    fails(canonical(obj), t.talks_id, "0")


def test_head_key_rotation_after_the_draft_still_verifies() -> None:
    t, sent, receipts = standard("test_evidence/rotation")
    old = t.people["nh"].device
    t.add_device("nh")
    t.remove_device("nh", old)
    note = t.checkpoint()  # cosigned with the witnesses' current keys
    verify_evidence(t.evidence(sent, receipts, note=note), t.talks_id)


def test_cosignatures_from_the_verifiers_future_do_not_make_a_bundle_trusted() -> None:
    """A bundle whose checkpoint was 'cosigned' later than the arbitrator's clock."""
    t, _sent, _receipts, bundle = scenario()
    cosigned_at = t.time  # the builder cosigns at its clock
    assert verify_evidence(bundle, t.talks_id, now=cosigned_at + 1).index == _sent.index
    with pytest.raises(EvidenceError) as info:
        verify_evidence(bundle, t.talks_id, now=cosigned_at - 3600)
    assert "3 (checkpoint)" in info.value.detail
