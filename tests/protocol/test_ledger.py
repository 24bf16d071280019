"""The ledger (protocol/ledger.py): what may follow what in the log.

Counters, message ids, draft lineage, channel membership, roster freshness, receipts and
the genesis rule; every refusal leaves the ledger exactly as it was."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from protocol import crypto
from protocol.encoding import b64e, canonical
from protocol.errors import (
    BadSignatureError,
    CounterError,
    DuplicateError,
    LineageError,
    MalformedError,
    NotAMemberError,
    ProtocolError,
    ReceiptMismatchError,
    RecipientSetMismatchError,
    RosterConflictError,
    SequenceError,
    StaleRosterError,
    UnknownDeviceError,
    WrongTalksError,
)
from protocol.ledger import Ledger, entry_kind, parse_entry
from protocol.receipt import ACKNOWLEDGED, RECEIVED, REJECTED, make_receipt
from protocol.records import DraftId
from tests.protocol.builders import Sent, Talks, resign, roster_state


def snapshot(ledger: Ledger) -> tuple[Any, ...]:
    return (
        ledger.size,
        {
            leaf: (
                d.index,
                dict(d.received),
                dict(d.acknowledged),
                dict(d.rejected),
                list(d.receipt_indices),
            )
            for leaf, d in ledger.drafts.items()
        },
        dict(ledger.draft_at),
        {k: dict(v) for k, v in ledger.versions.items()},
        dict(ledger.draft_channel),
        dict(ledger.counters),
        dict(ledger.msg_ids),
        roster_state(ledger.roster),
    )


def refused(t: Talks, data: bytes, error: type[ProtocolError]) -> None:
    """The ledger refuses ``data`` with ``error`` and is unchanged afterwards."""
    before = snapshot(t.ledger)
    with pytest.raises(error):
        t.ledger.apply(data)
    assert snapshot(t.ledger) == before


def world(seed: str) -> Talks:
    t = Talks(f"test_ledger/{seed}")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na", devices=2)
    t.enrol("south", "sa")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    t.create_channel("north-room", delegations=["north"], members=["med"], kind="bilateral")
    return t


# --- the genesis --------------------------------------------------------------------------


def test_second_genesis_is_refused() -> None:
    t = world("genesis")
    refused(t, t.genesis.to_bytes(), SequenceError)
    other = Talks("test_ledger/other")
    refused(t, other.genesis.to_bytes(), SequenceError)


def test_log_must_start_with_a_genesis() -> None:
    t = world("start")
    with pytest.raises(SequenceError):
        Ledger.from_genesis_bytes(t.entries[1])
    assert Ledger.from_genesis_bytes(t.entries[0]).talks == t.talks_id


def test_unknown_entry_type_is_malformed() -> None:
    t = world("unknown")
    refused(t, canonical({"t": "memo", "v": 1}), MalformedError)
    refused(t, canonical([1, 2]), MalformedError)
    refused(t, b"not json", MalformedError)


def test_replay_reaches_the_same_state() -> None:
    t = world("replay")
    a = t.send(t.people["na"].device, "plenary", "one")
    t.receipt(t.people["sa"].device, a)
    t.send(t.people["sa"].device, "plenary", "two", reply_to=a)
    assert snapshot(t.fresh_ledger()) == snapshot(t.ledger)
    assert [entry_kind(parse_entry(e)) for e in t.entries] == [
        "genesis",
        "roster",
        "roster",
        "roster",
        "roster",
        "channel",
        "channel",
        "draft",
        "receipt",
        "draft",
    ]


# --- drafts: counters and message ids -----------------------------------------------------


def test_counter_gap_is_refused() -> None:
    t = world("gap")
    na = t.people["na"].device
    t.send(na, "plenary")
    refused(t, t.seal(na, "plenary", counter=3).header.to_bytes(), CounterError)


def test_counter_repeat_is_refused() -> None:
    t = world("repeat")
    na = t.people["na"].device
    t.send(na, "plenary")
    refused(t, t.seal(na, "plenary", counter=1).header.to_bytes(), CounterError)


def test_first_counter_must_be_one() -> None:
    t = world("first")
    refused(t, t.seal(t.people["na"].device, "plenary", counter=2).header.to_bytes(), CounterError)


def test_counters_are_per_device() -> None:
    t = world("per-device")
    na = t.people["na"]
    t.send(na.devices[0], "plenary")
    t.send(na.devices[1], "plenary")  # counter 1 again, but another device
    t.send(na.devices[0], "plenary")
    assert t.ledger.counters[na.devices[0].device_id] == 2
    assert t.ledger.counters[na.devices[1].device_id] == 1


def test_duplicate_message_id_is_refused() -> None:
    t = world("dup-msg")
    na = t.people["na"].device
    sent = t.send(na, "plenary")
    again = t.seal(na, "plenary", msg=sent.sealed.header.msg)
    refused(t, again.header.to_bytes(), DuplicateError)
    assert t.ledger.find_message(na.device_id, sent.sealed.header.msg) == sent.leaf
    # The very same draft sent twice (a retry) is a duplicate too, not a counter error.
    refused(t, sent.sealed.header.to_bytes(), DuplicateError)


def test_same_message_id_from_another_sender_is_fine() -> None:
    t = world("msg-other")
    sent = t.send(t.people["na"].device, "plenary")
    sealed = t.seal(t.people["sa"].device, "plenary", msg=sent.sealed.header.msg)
    t.log_draft(sealed, t.payload(), t.people["sa"].device)


# --- drafts: lineage ----------------------------------------------------------------------


def test_lineage_accepts_answers_and_merges() -> None:
    t = world("lineage-ok")
    v1 = t.send(t.people["na"].device, "plenary", "v1")
    v2 = t.send(t.people["sa"].device, "plenary", "v2", reply_to=v1)
    v2b = t.send(t.people["nh"].device, "plenary", "v2b", reply_to=v1)
    merged = t.seal(
        t.mediator.device,
        "plenary",
        draft=v1.sealed.header.draft,
        version=3,
        parents=[v2.leaf, v2b.leaf],
    )
    t.log_draft(merged, t.payload(), t.mediator.device)
    assert [s.header.version for s in t.ledger.lineage(v1.sealed.header.draft)] == [1, 2, 2, 3]


def test_v1_reusing_a_draft_id_is_refused() -> None:
    t = world("v1-reuse")
    v1 = t.send(t.people["na"].device, "plenary")
    again = t.seal(t.people["sa"].device, "plenary", draft=v1.sealed.header.draft)
    refused(t, again.header.to_bytes(), LineageError)


def test_v2_with_foreign_parents_is_refused() -> None:
    t = world("foreign")
    a = t.send(t.people["na"].device, "plenary", "a")
    b = t.send(t.people["na"].device, "plenary", "b")
    bad = t.seal(
        t.people["sa"].device, "plenary", draft=a.sealed.header.draft, version=2, parents=[b.leaf]
    )
    refused(t, bad.header.to_bytes(), LineageError)


def test_v2_of_an_unknown_draft_is_refused() -> None:
    t = world("unknown-draft")
    a = t.send(t.people["na"].device, "plenary")
    bad = t.seal(
        t.people["sa"].device, "plenary", draft=DraftId(bytes(16)), version=2, parents=[a.leaf]
    )
    refused(t, bad.header.to_bytes(), LineageError)


@pytest.mark.parametrize("version", [3, 4])
def test_wrong_version_number_is_refused(version: int) -> None:
    t = world(f"version-{version}")
    a = t.send(t.people["na"].device, "plenary")
    bad = t.seal(
        t.people["sa"].device,
        "plenary",
        draft=a.sealed.header.draft,
        version=version,
        parents=[a.leaf],
    )
    refused(t, bad.header.to_bytes(), LineageError)


def test_version_must_follow_the_newest_parent() -> None:
    t = world("newest")
    v1 = t.send(t.people["na"].device, "plenary")
    v2 = t.send(t.people["sa"].device, "plenary", reply_to=v1)
    bad = t.seal(
        t.people["nh"].device,
        "plenary",
        draft=v1.sealed.header.draft,
        version=2,
        parents=[v1.leaf, v2.leaf],
    )
    refused(t, bad.header.to_bytes(), LineageError)


def test_parent_in_another_channel_is_refused() -> None:
    """A draft's versions stay in the channel where it started: answering a plenary
    draft inside a smaller room would show the lineage to fewer people."""
    t = world("channel")
    v1 = t.send(t.people["na"].device, "plenary")
    bad = t.seal(
        t.people["nh"].device,
        "north-room",
        draft=v1.sealed.header.draft,
        version=2,
        parents=[v1.leaf],
    )
    refused(t, bad.header.to_bytes(), LineageError)


# --- drafts: sender, channel, roster ------------------------------------------------------


def test_draft_from_a_non_member_is_refused() -> None:
    t = world("non-member")
    refused(t, t.seal(t.people["sa"].device, "north-room").header.to_bytes(), NotAMemberError)


def test_draft_from_a_removed_member_is_refused() -> None:
    t = world("removed")
    na = t.people["na"]
    sealed = t.seal(na.device, "plenary")
    t.remove_member("na")
    refused(t, t.seal(na.device, "plenary").header.to_bytes(), UnknownDeviceError)
    refused(t, sealed.header.to_bytes(), UnknownDeviceError)


def test_draft_to_an_unknown_channel_is_refused() -> None:
    t = world("no-channel")
    sealed = t.seal(t.people["na"].device, "plenary")
    obj = {**sealed.header.to_json(), "channel": "nowhere"}
    refused(t, resign_draft(t, obj, "na"), RosterConflictError)


def resign_draft(t: Talks, obj: dict[str, Any], who: str) -> bytes:
    return canonical(resign(obj, t.people[who].device.signing, crypto.CTX_DRAFT))


def test_stale_roster_head_is_refused() -> None:
    """A draft sealed before a roster change lands after it: its recipient set may be
    missing the newly enrolled member, so it must be re-sealed."""
    t = world("stale")
    sealed = t.seal(t.people["na"].device, "plenary")
    t.enrol("south", "sb")
    refused(t, sealed.header.to_bytes(), StaleRosterError)


def test_roster_head_from_the_future_is_refused() -> None:
    t = world("future")
    sealed = t.seal(t.people["na"].device, "plenary", roster=crypto.sha256(b"x"))  # type: ignore[arg-type]
    refused(t, sealed.header.to_bytes(), StaleRosterError)


def test_recipient_set_must_match_the_channel() -> None:
    t = world("recipients")
    devices = t.roster.channel_devices("plenary")
    fewer = dict(list(devices.items())[1:])
    sealed = t.seal(t.people["na"].device, "plenary", recipients=fewer)
    refused(t, sealed.header.to_bytes(), RecipientSetMismatchError)


def test_draft_of_other_talks_is_refused() -> None:
    t = world("talks")
    sealed = t.seal(t.people["na"].device, "plenary", talks=bytes(32))
    refused(t, sealed.header.to_bytes(), WrongTalksError)


def test_draft_with_a_bad_signature_is_refused() -> None:
    t = world("sig")
    sealed = t.seal(t.people["na"].device, "plenary")
    obj = {**sealed.header.to_json(), "time": 1}
    refused(t, canonical(obj), BadSignatureError)
    refused(t, resign_draft(t, sealed.header.to_json(), "sa"), BadSignatureError)


# --- receipts -----------------------------------------------------------------------------


def draft_world(seed: str) -> tuple[Talks, Sent]:
    t = world(seed)
    return t, t.send(t.people["na"].device, "plenary", "Article 1")


def test_receipts_are_recorded() -> None:
    t, sent = draft_world("receipts")
    sa, med = t.people["sa"].device, t.mediator.device
    i1, _ = t.receipt(sa, sent)
    i2, _ = t.receipt(med, sent)
    i3, _ = t.receipt(med, sent, ACKNOWLEDGED)
    i4, _ = t.receipt(t.people["sh"].device, sent, REJECTED, reason="decryption_failed")
    state = t.ledger.drafts[sent.leaf]
    assert set(state.received) == {sa.device_id, med.device_id}
    assert set(state.acknowledged) == {med.device_id}
    assert set(state.rejected) == {t.people["sh"].device.device_id}
    assert state.rejected[t.people["sh"].device.device_id].reason == "decryption_failed"
    assert state.receipt_indices == [i1, i2, i3, i4]
    expected_missing = {d for d in sent.sealed.header.recipients if d != sent.sender.device_id} - {
        sa.device_id,
        med.device_id,
        t.people["sh"].device.device_id,
    }
    assert set(state.missing(RECEIVED)) == expected_missing
    assert med.device_id not in state.missing(ACKNOWLEDGED)
    assert sent.sender.device_id not in state.missing(ACKNOWLEDGED)


def test_receipt_from_a_non_recipient_is_refused() -> None:
    """A member enrolled after the draft is a current device but not a recipient."""
    t, sent = draft_world("non-recipient")
    late = t.enrol("south", "late")
    _, receipt = t.receipt(late.device, sent, apply=False)
    refused(t, receipt.to_bytes(), ReceiptMismatchError)


def test_receipt_from_an_unknown_device_is_refused() -> None:
    t, sent = draft_world("unknown-device")
    stranger = t.new_device()
    _, receipt = t.receipt(stranger, sent, apply=False)
    refused(t, receipt.to_bytes(), UnknownDeviceError)


def test_receipt_from_a_removed_device_is_refused() -> None:
    t, sent = draft_world("removed-device")
    sa = t.people["sa"].device
    _, receipt = t.receipt(sa, sent, apply=False)
    t.remove_member("sa")
    refused(t, receipt.to_bytes(), UnknownDeviceError)


def test_device_lookups_follow_roster_changes() -> None:
    """The ledger keeps each device's roster entry (with its id computed once) for one
    roster state: a device or member removed after earlier entries of theirs were
    accepted is refused at once, and a device added is known at once."""
    t, sent = draft_world("device-cache")
    na2 = t.people["na"].devices[1]
    sa = t.people["sa"].device
    t.receipt(na2, sent)
    t.receipt(sa, sent)
    later = t.send(sa, "plenary", "Article 2")
    t.remove_device("na", na2)
    _, receipt = t.receipt(na2, later, apply=False)
    refused(t, receipt.to_bytes(), UnknownDeviceError)
    t.remove_member("sa")
    refused(t, t.seal(sa, "plenary").header.to_bytes(), UnknownDeviceError)
    spare = t.add_device("na")
    fresh = t.send(spare, "plenary", "Article 3")
    t.receipt(t.mediator.device, fresh)
    assert t.ledger.drafts[fresh.leaf].sender_member == "na"


def test_a_copied_ledger_goes_on_like_the_original() -> None:
    """Copies (pickled or deep-copied) carry the device cache correctly."""
    t, sent = draft_world("ledger-copy")
    sa = t.people["sa"].device
    t.receipt(sa, sent)  # (sa's roster entry is cached now)
    clones = [pickle.loads(pickle.dumps(t.ledger)), copy.deepcopy(t.ledger)]
    _, receipt = t.receipt(sa, sent, ACKNOWLEDGED)
    for clone in clones:
        clone.apply(receipt.to_bytes())
        assert snapshot(clone) == snapshot(t.ledger)


def test_receipt_with_wrong_index_is_refused() -> None:
    t, sent = draft_world("index")
    other = t.send(t.people["sa"].device, "plenary")
    sa = t.people["nh"].device
    for index in (sent.index - 1, other.index, t.ledger.size + 5):
        receipt = make_receipt(
            device=sa, header=sent.sealed.header, index=index, kind=RECEIVED, time=1
        )
        refused(t, receipt.to_bytes(), ReceiptMismatchError)


def test_receipt_with_wrong_entry_is_refused() -> None:
    t, sent = draft_world("entry")
    other = t.send(t.people["sa"].device, "plenary")
    nh = t.people["nh"].device
    obj = make_receipt(
        device=nh, header=sent.sealed.header, index=sent.index, kind=RECEIVED, time=1
    ).to_json()
    obj["entry"] = b64e(other.leaf)
    refused(t, canonical(resign(obj, nh.signing, crypto.CTX_RECEIPT)), ReceiptMismatchError)


def test_duplicate_received_is_refused() -> None:
    t, sent = draft_world("dup-received")
    sa = t.people["sa"].device
    t.receipt(sa, sent)
    _, again = t.receipt(sa, sent, apply=False)
    refused(t, again.to_bytes(), DuplicateError)
    _, rejected = t.receipt(sa, sent, REJECTED, reason="x", apply=False)
    refused(t, rejected.to_bytes(), DuplicateError)


def test_received_after_rejected_is_refused() -> None:
    t, sent = draft_world("after-rejected")
    sa = t.people["sa"].device
    t.receipt(sa, sent, REJECTED, reason="bad_signature")
    _, received = t.receipt(sa, sent, apply=False)
    refused(t, received.to_bytes(), DuplicateError)
    _, ack = t.receipt(sa, sent, ACKNOWLEDGED, apply=False)
    refused(t, ack.to_bytes(), ReceiptMismatchError)


def test_acknowledged_before_received_is_refused() -> None:
    t, sent = draft_world("ack-first")
    med = t.mediator.device
    _, ack = t.receipt(med, sent, ACKNOWLEDGED, apply=False)
    refused(t, ack.to_bytes(), ReceiptMismatchError)
    t.receipt(med, sent)
    t.append(ack.to_bytes())
    _, ack2 = t.receipt(med, sent, ACKNOWLEDGED, apply=False)
    refused(t, ack2.to_bytes(), DuplicateError)


def test_the_same_receipt_twice_is_a_duplicate() -> None:
    t, sent = draft_world("same-twice")
    index, receipt = t.receipt(t.people["sa"].device, sent)
    refused(t, receipt.to_bytes(), DuplicateError)
    assert t.entries[index] == receipt.to_bytes()


def test_receipt_with_bad_signature_is_refused() -> None:
    t, sent = draft_world("receipt-sig")
    _, receipt = t.receipt(t.people["sa"].device, sent, apply=False)
    obj = {**receipt.to_json(), "time": receipt.time + 1}
    refused(t, canonical(obj), BadSignatureError)


def test_receipt_of_other_talks_is_refused() -> None:
    t, sent = draft_world("receipt-talks")
    sa = t.people["sa"].device
    _, receipt = t.receipt(sa, sent, apply=False)
    obj = {**receipt.to_json(), "talks": b64e(bytes(32))}
    refused(t, canonical(resign(obj, sa.signing, crypto.CTX_RECEIPT)), WrongTalksError)


def test_sender_may_receipt_its_own_draft_but_is_never_missing() -> None:
    t, sent = draft_world("own")
    t.receipt(sent.sender, sent)
    state = t.ledger.drafts[sent.leaf]
    assert sent.sender.device_id in state.received


# --- queries ------------------------------------------------------------------------------


def test_drafts_in_and_lineage_queries() -> None:
    t = world("queries")
    a = t.send(t.people["na"].device, "plenary")
    b = t.send(t.people["nh"].device, "north-room")
    assert [s.index for s in t.ledger.drafts_in("plenary")] == [a.index]
    assert [s.index for s in t.ledger.drafts_in("north-room")] == [b.index]
    assert t.ledger.lineage(bytes(16)) == []
    assert t.ledger.drafts[a.leaf].sender_member == "na"
    size = t.ledger.size
    t.ledger.check(parse_entry(t.seal(t.people["sa"].device, "plenary").header.to_bytes()))
    assert t.ledger.size == size
    with pytest.raises(SequenceError):
        t.ledger.check(t.genesis)
