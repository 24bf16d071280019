"""Devices and people over months of talks: rotation, revocation, proposals, heads
replaced, members leaving and coming back (docs/PROTOCOL.md section 5a).

Every refusal leaves the ledger exactly as it was (same size, same roster head)."""

from __future__ import annotations

import pytest

from protocol import checkpoint as cp
from protocol.errors import (
    ProtocolError,
    RevokedDeviceError,
    RosterConflictError,
    UnauthorisedChangeError,
)
from protocol.evidence import verify_evidence
from protocol.keys import DeviceKeys, DevicePublic
from protocol.ledger import Ledger, parse_entry
from protocol.quorum import quorum_cosigners
from protocol.roster import ChangeArgs, RosterChange, make_change
from tests.protocol.builders import Talks, roster_state


def world(seed: str) -> Talks:
    t = Talks(f"test_lifecycle/{seed}", quorum=2)
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    return t


def refused(t: Talks, data: bytes, error: type[ProtocolError]) -> None:
    size, before = t.ledger.size, roster_state(t.roster)
    with pytest.raises(error):
        t.append(data)
    assert (t.ledger.size, roster_state(t.roster)) == (size, before)


def revoke(t: Talks, member: str, device: DeviceKeys, since: int) -> int:
    t.change(
        t.owner(member),
        "device.revoke",
        ChangeArgs(member=member, device=device.device_id, since=since),
    )
    return t.ledger.size - 1


def test_revoked_device_signs_a_draft_before_the_revocation_is_logged() -> None:
    """Logged before the revocation: valid, but flagged from the declared index on."""
    t = world("draft-before")
    na = t.people["na"].device
    early = t.send(na, "plenary", "Before the laptop was lost.")
    late = t.send(na, "plenary", "Sent by whoever holds the laptop now.")
    at = revoke(t, "na", na, since=late.index)
    assert t.roster.compromised(na.device_id, early.index) is None
    flag = t.roster.compromised(na.device_id, late.index)
    assert flag is not None and (flag.since, flag.at, flag.by) == (late.index, at, "nh")
    # A fresh replay of the whole log agrees (server, clients and auditor run the same).
    assert t.fresh_ledger().roster.compromised(na.device_id, late.index) == flag


def test_revoked_device_signs_a_draft_after_the_revocation_is_logged() -> None:
    t = world("draft-after")
    na = t.people["na"].device
    revoke(t, "na", na, since=t.ledger.size)
    sealed = t.seal(na, "plenary", t.payload("after"))
    refused(t, sealed.header.to_bytes(), RevokedDeviceError)


def test_revoked_device_signs_a_receipt_before_and_after_the_revocation_is_logged() -> None:
    t = world("receipt")
    na = t.people["na"].device
    d1 = t.send(t.people["sh"].device, "plenary", "One.")
    d2 = t.send(t.people["sh"].device, "plenary", "Two.")
    before, _ = t.receipt(na, d1)
    _, late = t.receipt(na, d2, apply=False)
    revoke(t, "na", na, since=before)
    assert t.roster.compromised(na.device_id, before) is not None
    refused(t, late.to_bytes(), RevokedDeviceError)


def test_after_revocation_senders_wrap_no_keys_to_the_device() -> None:
    t = world("recipients")
    na = t.people["na"].device
    assert na.device_id in t.roster.channel_devices("plenary")
    revoke(t, "na", na, since=t.ledger.size)
    assert na.device_id not in t.roster.channel_devices("plenary")
    # A draft still wrapped to it no longer matches the channel: refused.
    old = t.roster_at(t.ledger.size - 1)
    stale = t.seal(
        t.people["sh"].device,
        "plenary",
        t.payload("x"),
        roster=old.head,
        recipients=old.channel_devices("plenary"),
    )
    with pytest.raises(ProtocolError):
        t.append(stale.header.to_bytes())


def test_replayed_enrolment_of_a_revoked_device_is_refused() -> None:
    t = world("replay")
    na = t.people["na"].device
    revoke(t, "na", na, since=1)
    nh = t.people["nh"].device
    again = [
        ("device.add", ChangeArgs(member="na", devices=(na.public,))),
        (
            "member.enrol",
            ChangeArgs(delegation="north", member="na2", member_name="A", devices=(na.public,)),
        ),
        # The same signing key under a fresh encryption key (a new device id) too.
        (
            "device.add",
            ChangeArgs(
                member="na",
                devices=(
                    DevicePublic(sign_pk=na.public.sign_pk, enc_pk=t.new_device().public.enc_pk),
                ),
            ),
        ),
    ]
    for op, args in again:
        refused(t, t.change(nh, op, args, apply=False).to_bytes(), RosterConflictError)
    # The original enrolment record itself, replayed, is stale.
    with pytest.raises(ProtocolError):
        t.append(t.entries[5])
    # And a second revocation of it is a conflict, not a silent no-op.
    refused(
        t,
        t.change(
            nh, "device.revoke", ChangeArgs(member="na", device=na.device_id, since=1), apply=False
        ).to_bytes(),
        RosterConflictError,
    )


def test_compromise_declared_from_a_future_index_is_refused() -> None:
    t = world("future")
    na = t.people["na"].device
    change = t.change(
        t.people["nh"].device,
        "device.revoke",
        ChangeArgs(member="na", device=na.device_id, since=t.ledger.size + 1),
        apply=False,
    )
    refused(t, change.to_bytes(), RosterConflictError)


def test_rotation_signed_by_the_old_key_alone_with_no_head_is_refused() -> None:
    t = world("rotate-self")
    na = t.people["na"].device
    new = t.new_device()
    change = t.change(
        na,
        "device.rotate",
        ChangeArgs(member="na", device=na.device_id, devices=(new.public,)),
        apply=False,
    )
    refused(t, change.to_bytes(), UnauthorisedChangeError)


def test_rotation_by_the_head_keeps_old_signatures_attributable() -> None:
    t = world("rotate")
    na = t.people["na"].device
    d1 = t.send(na, "plenary", "Signed with the old key.")
    new = t.new_device()
    t.change(
        t.people["nh"].device,
        "device.rotate",
        ChangeArgs(member="na", device=na.device_id, devices=(new.public,)),
    )
    assert t.roster.rotations[na.device_id] == new.device_id
    assert t.roster.device_public(na.device_id) == ("na", na.public)
    # The old draft still verifies on a replay; the old key signs nothing new.
    assert t.fresh_ledger().drafts[d1.leaf].sender_member == "na"
    refused(t, t.seal(na, "plenary", t.payload("old key")).header.to_bytes(), ProtocolError)
    t.counters.pop(na.device_id, None)
    t.send(new, "plenary", "Signed with the new key.")


def test_head_key_rotation_keeps_cosigning_history_continuous() -> None:
    """The new key is logged before it cosigns; old cosignatures stay valid under the
    roster in force at their checkpoint's size."""
    t = world("head-rotate")
    nh = t.people["nh"].device
    before = t.ledger.size
    old_roster = t.roster.copy()
    new = t.new_device()
    t.change(
        nh, "device.rotate", ChangeArgs(member="nh", device=nh.device_id, devices=(new.public,))
    )
    name = f"{t.genesis.origin}/witness/north"
    assert old_roster.witnesses()[name] == [nh.public.sign_pk]
    assert t.roster.witnesses()[name] == [new.public.sign_pk]
    # Cosigned by the old key at the old size, by the new key past the rotation.
    old_cp, old_note = opened(t, t.checkpoint(before, roster=old_roster))
    assert name in quorum_cosigners(old_cp, old_note, t.roster_at(before).witnesses())
    new_cp, new_note = opened(t, t.checkpoint(t.ledger.size))
    assert name in quorum_cosigners(new_cp, new_note, t.roster.witnesses())
    # The old key's cosignature on the newer checkpoint does not count.
    stale_cp, stale_note = opened(t, t.checkpoint(t.ledger.size, roster=old_roster))
    assert name not in quorum_cosigners(stale_cp, stale_note, t.roster.witnesses())
    assert nh.public.sign_pk in t.roster.used_keys  # and can never be registered again


def opened(t: Talks, note: str) -> tuple[cp.Checkpoint, cp.SignedNote]:
    return cp.open_checkpoint(
        note.encode("utf-8"),
        origin=t.genesis.origin,
        log_name=t.genesis.log_name,
        log_key=t.genesis.log_key,
    )


def test_witness_key_rotation_retires_the_old_key() -> None:
    t = world("witness-rotate")
    nh = t.people["nh"].device
    name = f"{t.genesis.origin}/witness/north-box"
    k1, k2 = t.new_device().public.sign_pk, t.new_device().public.sign_pk
    t.change(nh, "witness.set", ChangeArgs(witness=name, key=k1, party="north"))
    t.change(nh, "witness.set", ChangeArgs(witness=name, key=k2, party="north"))
    assert k1 in t.roster.retired_witness_keys
    back = t.change(nh, "witness.set", ChangeArgs(witness=name, key=k1, party="north"), apply=False)
    refused(t, back.to_bytes(), RosterConflictError)


def test_a_members_own_device_proposes_and_the_head_approves() -> None:
    t = world("propose")
    na = t.people["na"].device
    laptop = t.new_device()
    t.change(na, "device.propose", ChangeArgs(member="na", devices=(laptop.public,)))
    assert t.roster.proposals[laptop.device_id] == ("na", laptop.public, na.device_id)
    assert laptop.device_id not in t.roster.devices  # not a device until approved
    t.change(t.people["nh"].device, "device.add", ChangeArgs(member="na", devices=(laptop.public,)))
    assert t.roster.devices[laptop.device_id] == "na"
    assert laptop.device_id not in t.roster.proposals


def test_a_proposal_by_another_member_is_refused() -> None:
    t = world("propose-other")
    laptop = t.new_device()
    change = t.change(
        t.people["sh"].device,
        "device.propose",
        ChangeArgs(member="na", devices=(laptop.public,)),
        apply=False,
    )
    refused(t, change.to_bytes(), UnauthorisedChangeError)


def test_replaced_head_loses_authority_at_that_index() -> None:
    t = world("head-replace")
    nh, na = t.people["nh"].device, t.people["na"].device
    t.change(t.mediator.device, "delegation.head", ChangeArgs(delegation="north", member="na"))
    assert t.roster.delegations["north"].head == "na"
    assert (t.roster.members["nh"].role, t.roster.members["na"].role) == ("member", "head")
    fresh = t.new_device()
    enrol = ChangeArgs(delegation="north", member="nb", member_name="B", devices=(fresh.public,))
    refused(t, t.change(nh, "member.enrol", enrol, apply=False).to_bytes(), UnauthorisedChangeError)
    t.change(na, "member.enrol", enrol)
    # A head is not replaced by a member of another delegation.
    other = t.change(
        t.mediator.device,
        "delegation.head",
        ChangeArgs(delegation="north", member="sh"),
        apply=False,
    )
    refused(t, other.to_bytes(), RosterConflictError)


def test_member_leaves_and_comes_back_under_a_new_member_record() -> None:
    t = world("leave")
    na = t.people["na"].device
    t.change(na, "member.leave", ChangeArgs(member="na"))
    gone = t.roster.departures["na"]
    assert (gone.op, gone.by, gone.at) == ("member.leave", "na", t.ledger.size - 1)
    nh = t.people["nh"].device
    laptop = t.new_device()
    # The old id names the old record for good: it is not reused.
    reuse = ChangeArgs(delegation="north", member="na", member_name="A", devices=(laptop.public,))
    refused(t, t.change(nh, "member.enrol", reuse, apply=False).to_bytes(), RosterConflictError)
    # Nor are the old keys.
    old = ChangeArgs(delegation="north", member="na-2", member_name="A", devices=(na.public,))
    refused(t, t.change(nh, "member.enrol", old, apply=False).to_bytes(), RosterConflictError)
    t.change(
        nh,
        "member.enrol",
        ChangeArgs(delegation="north", member="na-2", member_name="A", devices=(laptop.public,)),
    )
    assert t.roster.members["na-2"].active and not t.roster.members["na"].active


def test_a_head_cannot_leave() -> None:
    t = world("head-leave")
    nh = t.people["nh"].device
    change = t.change(nh, "member.leave", ChangeArgs(member="nh"), apply=False)
    refused(t, change.to_bytes(), RosterConflictError)


def test_lifecycle_survives_a_server_style_resume() -> None:
    """The server rebuilds its ledger from roster changes alone (Ledger.resume)."""
    t = world("resume")
    na = t.people["na"].device
    revoke(t, "na", na, since=3)
    changes = []
    for i, data in enumerate(t.entries[1:], start=1):
        parsed = parse_entry(data)
        if isinstance(parsed, RosterChange):
            changes.append((i, parsed))
    resumed = Ledger.resume(
        t.genesis, changes=changes, size=t.ledger.size, counters={}, index=t.ledger.index
    )
    assert resumed.roster.revoked == t.roster.revoked


def test_make_change_for_lifecycle_ops_round_trips() -> None:
    t = world("round-trip")
    na = t.people["na"].device
    change = make_change(
        author=t.people["nh"].device,
        roster=t.roster,
        op="device.revoke",
        args=ChangeArgs(member="na", device=na.device_id, since=2),
        time=1,
    )
    args = change.to_json()["args"]
    assert isinstance(args, dict) and (args["member"], args["since"]) == ("na", 2)
    assert RosterChange.from_bytes(change.to_bytes()) == change


def test_evidence_checker_flags_a_draft_signed_after_a_declared_compromise() -> None:
    t = world("evidence")
    na = t.people["na"].device
    early = t.send(na, "plenary", "Mine.")
    late = t.send(na, "plenary", "The thief's.")
    receipt_at, _ = t.receipt(t.people["sh"].device, late)
    revoke(t, "na", na, since=late.index)
    late_report = verify_evidence(t.evidence(late, [receipt_at]).to_bytes(), t.talks_id)
    assert late_report.compromised == (late.index,)
    early_report = verify_evidence(t.evidence(early).to_bytes(), t.talks_id)
    assert early_report.compromised == ()
