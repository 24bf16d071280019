"""The witness quorum and freshness rules (protocol.quorum), named after what they stop."""

from __future__ import annotations

import pytest

from protocol import checkpoint as cp
from protocol import crypto
from protocol.errors import (
    CosignatureTimeError,
    QuorumError,
    RosterConflictError,
    StaleViewError,
    UnauthorisedChangeError,
)
from protocol.genesis import WitnessPolicy, witness_name
from protocol.quorum import (
    MAX_FUTURE,
    check_cosignature_time,
    evaluate,
    require_fresh,
    rule_met,
)
from protocol.roster import ChangeArgs, Roster
from tests.helpers import make_rng
from tests.protocol.builders import Talks

NOW = 1_900_000_000  # seconds


def parties_talks(delegations: int = 3) -> Talks:
    """Talks under the ``parties`` rule with ``delegations`` delegations."""
    t = Talks("test_quorum", quorum=1)
    t.change(t.mediator.device, "policy.set", ChangeArgs(policy=WitnessPolicy.parties()))
    for i in range(delegations):
        t.create_delegation(f"d{i}", f"h{i}")
    return t


def note_of(
    t: Talks, stamps: dict[str, int], roster: Roster | None = None
) -> tuple[cp.Checkpoint, cp.SignedNote]:
    roster = roster or t.roster
    size = t.tree.size
    checkpoint = cp.Checkpoint(origin=t.genesis.origin, size=size, root=t.tree.root(size))
    signers = t.witness_signers(roster)
    lines = [cp.sign_checkpoint(checkpoint, t.genesis.log_name, t.log_key)]
    lines += [cp.cosign(checkpoint, n, signers[n], timestamp=ts) for n, ts in stamps.items()]
    note = cp.parse_note(cp.format_note(checkpoint.body(), lines))
    return checkpoint, note


def name(t: Talks, party: str) -> str:
    return witness_name(t.genesis.origin, party)


def test_parties_rule_needs_the_mediator() -> None:
    t = parties_talks(3)
    c, n = note_of(t, {name(t, "d0"): NOW, name(t, "d1"): NOW, name(t, "d2"): NOW})
    view = evaluate(c, n, t.roster, now=NOW)
    assert not view.met
    with pytest.raises(QuorumError):
        require_fresh(view, t.roster)


def test_host_and_mediator_alone_cannot_make_a_quorum() -> None:
    """The attack quorum-1 allowed: host + mediator fork the log unseen."""
    t = parties_talks(3)
    c, n = note_of(t, {name(t, "mediator"): NOW, name(t, "d0"): NOW})
    assert not evaluate(c, n, t.roster, now=NOW).met
    c, n = note_of(t, {name(t, "mediator"): NOW, name(t, "d0"): NOW, name(t, "d2"): NOW})
    view = evaluate(c, n, t.roster, now=NOW)
    assert view.met and view.fresh


def test_even_number_of_delegations_needs_a_strict_majority() -> None:
    t = parties_talks(4)
    two = {name(t, "mediator"): NOW, name(t, "d0"): NOW, name(t, "d1"): NOW}
    assert not evaluate(*note_of(t, two), t.roster, now=NOW).met
    three = {**two, name(t, "d3"): NOW}
    assert evaluate(*note_of(t, three), t.roster, now=NOW).met


def test_no_delegation_yet_needs_the_mediator_alone() -> None:
    t = parties_talks(0)
    assert evaluate(*note_of(t, {name(t, "mediator"): NOW}), t.roster, now=NOW).met


def test_stale_cosignatures_do_not_make_a_view_current() -> None:
    """A server freezing a client on an old view: its quorum grows old."""
    t = parties_talks(1)
    old = NOW - t.roster.policy.max_age - 1
    c, n = note_of(t, {name(t, "mediator"): old, name(t, "d0"): old})
    view = evaluate(c, n, t.roster, now=NOW)
    assert view.met and not view.fresh
    with pytest.raises(StaleViewError) as info:
        require_fresh(view, t.roster)
    assert info.value.code == "stale_view"
    # One fresh, one stale: still not current.
    c, n = note_of(t, {name(t, "mediator"): NOW, name(t, "d0"): old})
    assert not evaluate(c, n, t.roster, now=NOW).fresh


def test_cosignature_dated_in_the_future_does_not_count() -> None:
    t = parties_talks(1)
    future = NOW + MAX_FUTURE + 1
    c, n = note_of(t, {name(t, "mediator"): future, name(t, "d0"): NOW})
    view = evaluate(c, n, t.roster, now=NOW)
    assert not view.met
    assert "future" in view.rejected[name(t, "mediator")]


def test_replayed_older_cosignature_does_not_count() -> None:
    t = parties_talks(1)
    c, n = note_of(t, {name(t, "mediator"): NOW - 5, name(t, "d0"): NOW})
    view = evaluate(c, n, t.roster, now=NOW, last_seen={name(t, "mediator"): NOW - 1})
    assert not view.met and name(t, "mediator") in view.rejected


def test_cosignature_time_rules() -> None:
    check_cosignature_time(NOW, now=NOW, last=NOW - 1)
    check_cosignature_time(NOW + MAX_FUTURE, now=NOW, last=None)
    for ts, last, max_age in [
        (NOW + MAX_FUTURE + 1, None, None),  # the future
        (NOW - 2, NOW - 1, None),  # older than the last one accepted
        (0, None, 600),  # 1970
        (NOW - 601, None, 600),
    ]:
        with pytest.raises(CosignatureTimeError) as info:
            check_cosignature_time(ts, now=NOW, last=last, max_age=max_age)
        assert info.value.code == "bad_cosignature_time"


def test_count_rule_with_quorum_one_is_flagged_as_single_witness() -> None:
    assert WitnessPolicy(quorum=1).single_witness
    assert not WitnessPolicy.parties().single_witness
    assert not WitnessPolicy(quorum=2).single_witness


def test_registered_delegation_witness_speaks_for_its_delegation() -> None:
    t = parties_talks(1)
    box = crypto.SigningKey.generate(make_rng("test_quorum/box"))
    t.signers[box.public_bytes()] = box
    box_name = name(t, "d0-box")
    t.change(
        t.head_of("d0").device,
        "witness.set",
        ChangeArgs(witness=box_name, key=box.public_bytes(), party="d0"),
    )
    assert t.roster.witness_parties()[box_name] == "d0"
    c, n = note_of(t, {name(t, "mediator"): NOW, box_name: NOW})
    assert evaluate(c, n, t.roster, now=NOW).met


def test_head_cannot_register_a_witness_for_another_delegation() -> None:
    t = parties_talks(2)
    key = crypto.SigningKey.generate(make_rng("test_quorum/x")).public_bytes()
    roster = t.roster.copy()
    change = t.change(
        t.head_of("d0").device,
        "witness.set",
        ChangeArgs(witness=name(t, "fake"), key=key, party="d1"),
        apply=False,
    )
    with pytest.raises(UnauthorisedChangeError):
        roster.apply(change)


def test_witness_cannot_take_another_partys_name() -> None:
    """A head registering its key under the mediator's witness name."""
    t = parties_talks(1)
    key = crypto.SigningKey.generate(make_rng("test_quorum/y")).public_bytes()
    change = t.change(
        t.head_of("d0").device,
        "witness.set",
        ChangeArgs(witness=name(t, "mediator"), key=key, party="d0"),
        apply=False,
    )
    with pytest.raises(RosterConflictError):
        t.roster.copy().apply(change)


def test_rotated_witness_key_never_comes_back() -> None:
    t = parties_talks(1)
    rng = make_rng("test_quorum/rot")
    k1, k2 = (crypto.SigningKey.generate(rng).public_bytes() for _ in range(2))
    head = t.head_of("d0").device
    box = name(t, "d0-box")
    t.change(head, "witness.set", ChangeArgs(witness=box, key=k1, party="d0"))
    before = t.roster.copy()
    t.change(head, "witness.set", ChangeArgs(witness=box, key=k2, party="d0"))
    assert t.roster.witnesses()[box] == [k2]
    assert before.witnesses()[box] == [k1]  # old checkpoints verify under the old key
    again = t.change(head, "witness.set", ChangeArgs(witness=box, key=k1, party="d0"), apply=False)
    with pytest.raises(RosterConflictError):
        t.roster.copy().apply(again)


def test_policy_change_by_a_head_is_refused() -> None:
    t = parties_talks(1)
    change = t.change(
        t.head_of("d0").device,
        "policy.set",
        ChangeArgs(policy=WitnessPolicy(quorum=1)),
        apply=False,
    )
    with pytest.raises(UnauthorisedChangeError):
        t.roster.copy().apply(change)


def test_rule_met_counts_distinct_witnesses_under_count_rule() -> None:
    t = Talks("test_quorum/count", quorum=2)
    t.create_delegation("d0", "h0")
    assert not rule_met({name(t, "mediator")}, t.roster)
    assert rule_met({name(t, "mediator"), name(t, "d0")}, t.roster)
