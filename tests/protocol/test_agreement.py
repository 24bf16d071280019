"""Agreed-text and round record bundles (protocol.agreement), verified offline."""

from __future__ import annotations

import pytest

from protocol.agreement import AgreedBundle, RoundBundle, verify_agreed, verify_round
from protocol.encoding import JSONValue, b64e, parse
from protocol.errors import EvidenceError
from protocol.evidence import Proven
from tests.protocol.builders import Sent, Talks


def world(seed: str) -> tuple[Talks, Sent, list[int]]:
    t = Talks(f"test_agreement/{seed}")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    t.act(t.people["med"].device, "round.open", {"channel": None, "round": 1})
    sent = t.send(t.people["med"].device, "plenary", "Art. 9. Both capitals host the commission.")
    h = sent.sealed.header
    body: dict[str, JSONValue] = {
        "channel": "plenary", "commit": b64e(h.commit), "draft": b64e(h.draft),
        "entry": b64e(h.leaf), "index": sent.index,
    }  # fmt: skip
    initials = []
    for head in ("nh", "sh"):
        t.act(t.people[head].device, "initial", body)
        initials.append(t.ledger.size - 1)
    return t, sent, initials


def agreed_bundle(t: Talks, sent: Sent, initials: list[int]) -> AgreedBundle:
    size = t.tree.size
    return AgreedBundle(
        evidence=t.evidence(sent, size=size),
        initials=tuple(t.proven(i, size) for i in initials),
    )


def test_an_agreed_text_bundle_verifies_offline() -> None:
    t, sent, initials = world("agreed")
    bundle = agreed_bundle(t, sent, initials)
    report = verify_agreed(AgreedBundle.from_bytes(bundle.to_bytes()).to_bytes(), t.talks_id)
    assert report.agreed_at == initials[-1]
    assert sorted(report.initials) == ["north", "south"]
    assert report.text.payload.body == "Art. 9. Both capitals host the commission."


def test_agreed_state_claimed_with_a_delegation_missing_is_refused() -> None:
    t, sent, initials = world("missing")
    with pytest.raises(EvidenceError, match="no initial by south"):
        verify_agreed(agreed_bundle(t, sent, initials[:1]), t.talks_id)


def test_agreed_text_bundle_with_an_initial_twice_or_on_another_entry_is_refused() -> None:
    t, sent, initials = world("twice")
    twice = agreed_bundle(t, sent, [initials[0], initials[0]])
    with pytest.raises(EvidenceError, match="two initials"):
        verify_agreed(twice, t.talks_id)
    # Initials of one text offered for a text logged later (so not what they initialled).
    other = t.send(t.people["med"].device, "plenary", "Another text.")
    wrong = agreed_bundle(t, other, initials)
    with pytest.raises(EvidenceError, match="precedes the text"):
        verify_agreed(wrong, t.talks_id)


def test_agreed_text_bundle_with_initials_of_another_version_is_refused() -> None:
    t = Talks("test_agreement/other-version")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    first = t.send(t.people["med"].device, "plenary", "Art. 1. Version one.")
    second = t.send(t.people["med"].device, "plenary", "Art. 1. Another draft.")
    h = second.sealed.header
    body: dict[str, JSONValue] = {
        "channel": "plenary", "commit": b64e(h.commit), "draft": b64e(h.draft),
        "entry": b64e(h.leaf), "index": second.index,
    }  # fmt: skip
    initials = []
    for head in ("nh", "sh"):
        t.act(t.people[head].device, "initial", body)
        initials.append(t.ledger.size - 1)
    with pytest.raises(EvidenceError, match="not on exactly this version"):
        verify_agreed(agreed_bundle(t, first, initials), t.talks_id)


def round_bundle(t: Talks, consistency_from: int | None = None) -> RoundBundle:
    med = t.people["med"].device
    size = t.ledger.size
    close: dict[str, JSONValue] = {
        "channel": None, "round": 1, "root": b64e(t.tree.root(size)), "size": size,
    }  # fmt: skip
    t.act(med, "round.close", close)
    t.act(t.people["nh"].device, "round.countersign", close)
    total = t.tree.size
    roster = [i for i in range(1, total) if parse(t.entries[i]).get("t") in ("roster", "channel")]
    return RoundBundle(
        genesis=t.proven(0, total),
        roster=tuple(t.proven(i, total) for i in roster),
        close=t.proven(size, total),
        countersigns=(t.proven(size + 1, total),),
        consistency=tuple(
            t.tree.consistency_proof(size if consistency_from is None else consistency_from, total)
        ),
        checkpoint=t.checkpoint(total),
    )


def test_a_round_record_bundle_verifies_offline_and_names_who_has_not_countersigned() -> None:
    t, _, _ = world("round")
    bundle = round_bundle(t)
    report = verify_round(RoundBundle.from_bytes(bundle.to_bytes()), t.talks_id)
    assert report.round == 1 and report.size == bundle.close.index
    assert sorted(report.countersigns) == ["north"]
    assert report.to_json()["not_countersigned"] == ["south"]


def test_round_record_bundle_over_a_checkpoint_the_log_never_had_is_refused() -> None:
    t, _, _ = world("round-ghost")
    bundle = round_bundle(t, consistency_from=3)
    with pytest.raises(EvidenceError, match="step 5"):
        verify_round(bundle, t.talks_id)


def test_round_record_bundle_with_a_countersignature_moved_is_refused() -> None:
    t, _, _ = world("round-moved")
    bundle = round_bundle(t)
    moved = Proven(index=bundle.close.index + 1, entry=bundle.close.entry,
                   proof=bundle.countersigns[0].proof)  # fmt: skip
    forged = RoundBundle(
        genesis=bundle.genesis, roster=bundle.roster, close=bundle.close,
        countersigns=(moved,), consistency=bundle.consistency, checkpoint=bundle.checkpoint,
    )  # fmt: skip
    with pytest.raises(EvidenceError, match="step 4"):
        verify_round(forged, t.talks_id)
