"""The act framework: the envelope rules every act follows, and the family hooks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol import acts, crypto
from protocol.acts import Act
from protocol.encoding import b64e, canonical
from protocol.errors import (
    BadSignatureError,
    BadValueError,
    ProtocolError,
    StaleRosterError,
    UnauthorisedChangeError,
    UnknownDeviceError,
    WrongTalksError,
)
from protocol.ledger import Ledger, entry_kind, parse_entry, signature_claim
from protocol.records import TalksId, sign_record
from tests.acts_family import Tally, TallyState, registered
from tests.protocol.builders import Talks


@pytest.fixture
def tally() -> Iterator[Tally]:
    yield from registered()


def world(seed: str) -> Talks:
    t = Talks(f"test_acts/{seed}")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    return t


def state(ledger: Ledger) -> TallyState:
    st = ledger.act_state("tally")
    assert isinstance(st, TallyState)
    return st


def refused(t: Talks, data: bytes, error: type[ProtocolError]) -> None:
    """Refused with ``error``, and neither the ledger's size nor the family state moved."""
    before = (t.ledger.size, dict(state(t.ledger).totals), set(state(t.ledger).frozen))
    with pytest.raises(error):
        t.ledger.apply(data)
    assert (t.ledger.size, dict(state(t.ledger).totals), set(state(t.ledger).frozen)) == before


def test_an_act_round_trips_and_is_signed_as_an_act(tally: Tally) -> None:
    t = world("roundtrip")
    act = t.act(t.people["nh"].device, "tally.add", {"n": 3})
    again = parse_entry(act.to_bytes())
    assert isinstance(again, Act)
    assert again == act
    assert entry_kind(act) == "act"
    assert signature_claim(act) == (t.people["nh"].device.device_id, crypto.CTX_ACT)
    assert state(t.ledger).totals == {"nh": 3}
    assert state(t.ledger).applied_at == [t.ledger.size - 1]


def test_unknown_act_kind_is_refused_at_parse() -> None:
    t = world("unknown")
    act_json = {
        "a": "no.such",
        "body": {},
        "device": b64e(t.mediator.device.device_id),
        "roster": b64e(t.roster.head),
        "sig": b64e(bytes(64)),
        "t": "act",
        "talks": b64e(t.talks_id),
        "time": 1,
        "v": 1,
    }
    with pytest.raises(BadValueError, match="unknown act kind"):
        parse_entry(canonical(act_json))


def test_act_signed_under_another_context_is_refused(tally: Tally) -> None:
    """A signature the signer made for a roster change does not pass as an act."""
    t = world("context")
    act = t.act(t.people["nh"].device, "tally.add", {"n": 1}, apply=False)
    body = act.to_json()
    resigned = sign_record(t.people["nh"].device.signing, crypto.CTX_ROSTER, body)
    refused(t, canonical(resigned), BadSignatureError)


def test_act_kind_swapped_after_signing_is_refused(tally: Tally) -> None:
    t = world("swap")
    act = t.act(t.mediator.device, "tally.freeze", {"channel": "plenary"}, apply=False)
    body = act.to_json()
    body["a"] = "tally.add"
    body["body"] = {"n": 1}
    refused(t, canonical(body), BadSignatureError)


def test_act_for_other_talks_is_refused(tally: Tally) -> None:
    t = world("talks")
    act = acts.make_act(
        kind="tally.add",
        body={"n": 1},
        device=t.people["nh"].device,
        talks=TalksId(bytes(32)),
        roster=t.roster.head,
        time=t.tick(),
    )
    refused(t, act.to_bytes(), WrongTalksError)


def test_act_replayed_into_a_later_roster_state_is_refused(tally: Tally) -> None:
    """An act signed on one roster head is stale once the roster has moved on: the host
    cannot hold a head's act back and log it after the head lost authority."""
    t = world("stale")
    old = t.roster
    held = t.act(t.people["nh"].device, "tally.add", {"n": 2}, apply=False, roster=old)
    t.enrol("south", "sa")
    refused(t, held.to_bytes(), StaleRosterError)


def test_act_by_a_removed_device_is_refused(tally: Tally) -> None:
    t = world("removed")
    na = t.people["na"].device
    t.remove_member("na")
    act = t.act(na, "tally.add", {"n": 1}, apply=False)
    refused(t, act.to_bytes(), UnknownDeviceError)


def test_family_rules_refuse_without_changing_anything(tally: Tally) -> None:
    t = world("rules")
    refused(
        t,
        t.act(t.people["na"].device, "tally.add", {"n": 1}, apply=False).to_bytes(),
        UnauthorisedChangeError,
    )
    refused(
        t,
        t.act(t.people["nh"].device, "tally.add", {"n": 11}, apply=False).to_bytes(),
        BadValueError,
    )
    refused(
        t,
        t.act(
            t.people["nh"].device, "tally.freeze", {"channel": "plenary"}, apply=False
        ).to_bytes(),
        UnauthorisedChangeError,
    )


def test_family_can_refuse_a_draft(tally: Tally) -> None:
    t = world("draft")
    t.send(t.people["na"].device, "plenary", "before the freeze")
    t.act(t.mediator.device, "tally.freeze", {"channel": "plenary"})
    with pytest.raises(BadValueError, match="frozen"):
        t.send(t.people["na"].device, "plenary", "after the freeze")


def test_a_replayed_ledger_and_a_resumed_one_reach_the_same_family_state(tally: Tally) -> None:
    t = world("replay")
    t.act(t.people["nh"].device, "tally.add", {"n": 2})
    t.enrol("south", "sa")
    t.act(t.people["sh"].device, "tally.add", {"n": 5})
    t.act(t.people["nh"].device, "tally.add", {"n": 1})
    t.act(t.mediator.device, "tally.freeze", {"channel": "plenary"})
    replayed = t.fresh_ledger()
    assert state(replayed).totals == {"nh": 3, "sh": 5}
    changes = [
        (i, e)
        for i, data in enumerate(t.entries)
        if i > 0 and entry_kind(e := parse_entry(data)) in ("roster", "channel", "act")
    ]
    resumed = Ledger.resume(
        t.genesis,
        changes=changes,  # type: ignore[arg-type]
        size=len(t.entries),
        counters={},
        index=replayed.index,
    )
    assert state(resumed).totals == state(replayed).totals
    assert state(resumed).frozen == {"plenary"}
    assert state(resumed).applied_at == state(replayed).applied_at


def test_registering_a_kind_twice_is_refused(tally: Tally) -> None:
    with pytest.raises(ValueError, match="already known"):
        acts.register(Tally())
