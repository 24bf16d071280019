"""History grants (protocol.grants): who may give a device earlier drafts, and how."""

from __future__ import annotations

import pytest

from protocol import crypto
from protocol.acts import make_act
from protocol.encoding import JSONValue, b64e, canonical, parse
from protocol.errors import (
    BadSignatureError,
    BadValueError,
    DecryptionError,
    DuplicateError,
    NotAMemberError,
    NotARecipientError,
    ProtocolError,
    ReceiptMismatchError,
    UnauthorisedChangeError,
    UnknownDeviceError,
)
from protocol.grants import (
    KIND,
    RECEIPT_KIND,
    GrantState,
    grant_receipt_body,
    make_grant_body,
    open_granted,
    readers_of,
)
from protocol.keys import DeviceKeys
from protocol.records import TalksId
from protocol.roster import ChangeArgs
from tests.helpers import make_rng
from tests.protocol.builders import Sent, Talks, resign

RNG = make_rng("test_grants")


def world(seed: str) -> tuple[Talks, Sent, Sent, DeviceKeys]:
    """north (nh, na, nm), south (sh); a working group of north and the mediator with
    two drafts; then na's new laptop, enrolled by the head."""
    t = Talks(f"test_grants/{seed}")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.enrol("north", "nm")
    t.create_channel("wg", delegations=["north"], members=["med"], kind="working_group")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    d1 = t.send(t.mediator.device, "wg", "Draft one.")
    d2 = t.send(t.people["nm"].device, "wg", "Draft two.")
    laptop = t.add_device("na")
    return t, d1, d2, laptop


def body(
    t: Talks, sents: list[Sent], to: DeviceKeys, upto: int | None = None
) -> dict[str, JSONValue]:
    return make_grant_body(
        channel="wg",
        device=to.public,
        upto=upto or max(s.index for s in sents),
        content_keys={s.index: s.sealed.content_key for s in sents},
        rng=RNG,
    )


def refused(t: Talks, data: bytes, error: type[ProtocolError]) -> None:
    size, head = t.ledger.size, t.roster.head
    with pytest.raises(error):
        t.append(data)
    assert (t.ledger.size, t.roster.head) == (size, head)


def state(t: Talks) -> GrantState:
    grants = t.ledger.act_state("grants")
    assert isinstance(grants, GrantState)
    return grants


def test_head_grants_the_working_groups_history_to_a_new_device() -> None:
    t, d1, d2, laptop = world("head")
    act = t.act(t.people["nh"].device, KIND, body(t, [d1, d2], laptop))
    at = t.ledger.size - 1
    readers = list(readers_of(state(t), d1.index))
    assert [(r.device, r.member, r.grant, r.granted_by) for r in readers] == [
        (laptop.device_id, "na", at, "nh")
    ]
    # The original recipient set is untouched.
    assert laptop.device_id not in t.ledger.drafts[d1.leaf].header.recipients
    opened = open_granted(d2.sealed.header, d2.sealed.ciphertext, act.body, d2.index, laptop)
    assert opened.payload == d2.payload
    # The same rules replay identically (server, client and auditor).
    assert t.fresh_ledger().act_state("grants").readers == state(t).readers


def test_members_other_device_grants_its_own_new_device() -> None:
    t, d1, _d2, laptop = world("self")
    t.act(t.people["na"].device, KIND, body(t, [d1], laptop))
    assert state(t).holds(laptop.device_id, d1.index)


def test_grant_from_a_non_head_is_refused() -> None:
    t, d1, _d2, laptop = world("non-head")
    # nm was a recipient and holds the key, but is neither na nor north's head.
    act = t.act(t.people["nm"].device, KIND, body(t, [d1], laptop), apply=False)
    refused(t, act.to_bytes(), UnauthorisedChangeError)
    # Nor may the head of another delegation, nor the mediator for a delegation member.
    for by in (t.people["sh"].device, t.mediator.device):
        act = t.act(by, KIND, body(t, [d1], laptop), apply=False)
        refused(t, act.to_bytes(), UnauthorisedChangeError)


def test_server_injected_grant_is_refused() -> None:
    t, d1, _d2, laptop = world("server")
    # The host signs with a key of its own: no enrolled device.
    host = DeviceKeys.generate(RNG)
    forged = make_act(
        kind=KIND,
        body=body(t, [d1], laptop),
        device=host,
        talks=TalksId(t.talks_id),
        roster=t.roster.head,
        time=t.tick(),
    )
    refused(t, forged.to_bytes(), UnknownDeviceError)
    # Or names the head's device and signs itself: the signature does not verify.
    obj = dict(forged.to_json())
    obj["device"] = b64e(t.people["nh"].device.device_id)
    refused(t, canonical(resign(obj, host.signing, crypto.CTX_ACT)), BadSignatureError)
    # Or redirects a real grant to a device of its choosing.
    other = t.add_device("na")
    real = t.act(t.people["nh"].device, KIND, body(t, [d1], laptop), apply=False)
    obj = parse(real.to_bytes())
    assert isinstance(obj, dict) and isinstance(obj["body"], dict)
    obj["body"]["device"] = b64e(other.device_id)
    refused(t, canonical(obj), BadSignatureError)


def test_grant_to_a_device_not_in_the_channel_is_refused() -> None:
    t, d1, _d2, _laptop = world("outside")
    outsider = t.people["sh"].device  # south is not in the working group
    act = t.act(t.mediator.device, KIND, body(t, [d1], outsider), apply=False)
    refused(t, act.to_bytes(), NotAMemberError)
    stranger = DeviceKeys.generate(RNG)
    act = t.act(t.people["nh"].device, KIND, body(t, [d1], stranger), apply=False)
    refused(t, act.to_bytes(), NotAMemberError)


def test_grant_of_a_key_the_granter_never_held_is_refused() -> None:
    t, d1, _d2, _laptop = world("not-held")
    t.enrol("north", "nz")  # joins after d1 and d2: a recipient of d3 only
    nz = t.people["nz"].device
    d3 = t.send(t.mediator.device, "wg", "Three.")
    laptop = t.add_device("nz")
    t.act(nz, KIND, body(t, [d3], laptop))
    act = t.act(nz, KIND, body(t, [d1], laptop), apply=False)
    refused(t, act.to_bytes(), NotARecipientError)


def test_grant_rules_on_the_drafts_named() -> None:
    t, d1, d2, laptop = world("drafts")
    nh = t.people["nh"].device
    plenary = t.send(nh, "plenary", "Plenary.")
    wrong_channel = make_grant_body(
        channel="wg",
        device=laptop.public,
        upto=plenary.index,
        content_keys={plenary.index: plenary.sealed.content_key},
        rng=RNG,
    )
    refused(t, t.act(nh, KIND, wrong_channel, apply=False).to_bytes(), BadValueError)
    past_upto = body(t, [d1, d2], laptop, upto=d1.index)
    refused(t, t.act(nh, KIND, past_upto, apply=False).to_bytes(), BadValueError)
    t.act(nh, KIND, body(t, [d1], laptop))
    refused(t, t.act(nh, KIND, body(t, [d1], laptop), apply=False).to_bytes(), DuplicateError)
    # An original recipient needs no grant.
    nm = t.people["nm"].device
    refused(t, t.act(nh, KIND, body(t, [d1], nm), apply=False).to_bytes(), DuplicateError)


def test_a_revoked_device_cannot_be_granted_nor_grant() -> None:
    t, d1, _d2, laptop = world("revoked")
    na = t.people["na"].device
    t.change(
        t.people["nh"].device,
        "device.revoke",
        ChangeArgs(member="na", device=na.device_id, since=t.ledger.size),
    )
    act = t.act(na, KIND, body(t, [d1], laptop), apply=False, roster=t.roster)
    refused(t, act.to_bytes(), UnknownDeviceError)
    act = t.act(t.people["nh"].device, KIND, body(t, [d1], na), apply=False)
    refused(t, act.to_bytes(), NotAMemberError)


def test_a_wrongly_wrapped_granted_key_does_not_open() -> None:
    t, d1, d2, laptop = world("wrong-key")
    # The granter wraps d2's key under d1's index: it logs (the ledger cannot tell) but
    # the grantee's open fails on the commitment, and it can show the signed grant.
    wrong = make_grant_body(
        channel="wg",
        device=laptop.public,
        upto=d1.index,
        content_keys={d1.index: d2.sealed.content_key},
        rng=RNG,
    )
    act = t.act(t.people["nh"].device, KIND, wrong)
    with pytest.raises((DecryptionError, ProtocolError)):
        open_granted(d1.sealed.header, d1.sealed.ciphertext, act.body, d1.index, laptop)
    other = DeviceKeys.generate(RNG)
    with pytest.raises(NotARecipientError):
        open_granted(d1.sealed.header, d1.sealed.ciphertext, act.body, d1.index, other)


def test_a_reader_through_a_grant_receipts_as_such() -> None:
    t, d1, d2, laptop = world("receipt")
    t.act(t.people["nh"].device, KIND, body(t, [d1], laptop))
    grant_at = t.ledger.size - 1

    def receipt(by: DeviceKeys, sent: Sent, **over: JSONValue) -> bytes:
        fields: dict[str, JSONValue] = {
            **grant_receipt_body(
                index=sent.index, entry=sent.leaf, grant=grant_at, kind="received", reason=None
            ),
            **over,
        }
        return t.act(by, RECEIPT_KIND, fields, apply=False).to_bytes()

    # Not granted that draft, another grant index, another leaf, an original recipient.
    refused(t, receipt(laptop, d2), NotARecipientError)
    refused(t, receipt(laptop, d1, grant=grant_at - 1), NotARecipientError)
    refused(t, receipt(laptop, d1, entry=b64e(d2.leaf)), ReceiptMismatchError)
    refused(t, receipt(t.people["nm"].device, d1), NotARecipientError)
    refused(t, receipt(laptop, d1, kind="rejected"), BadValueError)  # needs a reason
    t.append(receipt(laptop, d1))
    (logged,) = state(t).receipts[d1.index].values()
    assert (logged.device, logged.grant, logged.kind) == (laptop.device_id, grant_at, "received")
    refused(t, receipt(laptop, d1), DuplicateError)
    # The draft's own receipts are untouched: the laptop is still no recipient.
    assert laptop.device_id not in t.ledger.drafts[d1.leaf].received
