"""Rounds, initials and calls for sealed proposals (protocol.negotiation): the ledger's
rules, and every refusal a stable code that leaves ledger and family state unchanged."""

from __future__ import annotations

import copy

import pytest

from protocol import crypto
from protocol.acts import Act
from protocol.encoding import JSONValue, b64e
from protocol.envelope import keys_to_json
from protocol.errors import (
    CallError,
    InitialError,
    LateProposalError,
    NotEntitledError,
    NotReleasedError,
    ProtocolError,
    RoundError,
    UnknownCheckpointError,
)
from protocol.keys import DeviceKeys
from protocol.negotiation import (
    CallsState,
    InitialsState,
    RoundsState,
    check_tree_claim,
)
from tests.protocol.builders import Sent, Talks


def world(seed: str) -> Talks:
    t = Talks(f"test_negotiation/{seed}")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    return t


def dev(t: Talks, member: str) -> DeviceKeys:
    return t.people[member].device


def states(t: Talks) -> tuple[object, ...]:
    return tuple(copy.deepcopy(t.ledger.act_state(n)) for n in ("rounds", "initials", "calls"))


def refused(t: Talks, act: Act, error: type[ProtocolError]) -> None:
    """Refused with exactly ``error``'s code, ledger size and family states unchanged."""
    before = (t.ledger.size, states(t))
    with pytest.raises(error) as info:
        t.ledger.apply(act.to_bytes())
    assert info.value.code == error.code
    assert (t.ledger.size, states(t)) == before


def rounds(t: Talks) -> RoundsState:
    st = t.ledger.act_state("rounds")
    assert isinstance(st, RoundsState)
    return st


def initials(t: Talks) -> InitialsState:
    st = t.ledger.act_state("initials")
    assert isinstance(st, InitialsState)
    return st


def calls(t: Talks) -> CallsState:
    st = t.ledger.act_state("calls")
    assert isinstance(st, CallsState)
    return st


def close_body(t: Talks, number: int, size: int | None = None) -> dict[str, JSONValue]:
    size = t.ledger.size if size is None else size
    return {"channel": None, "round": number, "root": b64e(t.tree.root(size)), "size": size}


# --- rounds -------------------------------------------------------------------------------


def test_a_round_is_opened_closed_and_countersigned_by_every_head() -> None:
    t = world("round")
    med = dev(t, "med")
    t.act(med, "round.open", {"channel": None, "round": 1})
    sent = t.send(dev(t, "na"), "plenary", "Art. 1.")
    body = close_body(t, 1)
    t.act(med, "round.close", body)
    t.act(dev(t, "nh"), "round.countersign", body)
    t.act(dev(t, "sh"), "round.countersign", body)
    [r] = rounds(t).all()
    assert r.size == body["size"] and set(r.countersigns) == {"north", "south"}
    assert rounds(t).round_of(sent.index, "plenary") is r
    assert t.fresh_ledger().act_state("rounds").all()[0].to_json() == r.to_json()
    t.act(med, "round.open", {"channel": None, "round": 2})
    assert [x.number for x in rounds(t).all()] == [1, 2]


def test_round_by_a_non_mediator_is_refused() -> None:
    t = world("round-nonmed")
    refused(t, t.act(dev(t, "nh"), "round.open", {"channel": None, "round": 1}, apply=False),
            NotEntitledError)  # fmt: skip


def test_round_out_of_order_or_twice_open_is_refused() -> None:
    t = world("round-order")
    med = dev(t, "med")
    refused(t, t.act(med, "round.open", {"channel": None, "round": 2}, apply=False), RoundError)
    t.act(med, "round.open", {"channel": None, "round": 1})
    refused(t, t.act(med, "round.open", {"channel": None, "round": 2}, apply=False), RoundError)
    # another scope may run its own round meanwhile
    t.act(med, "round.open", {"channel": "plenary", "round": 1})


def test_round_record_over_a_checkpoint_the_log_never_had_is_refused() -> None:
    t = world("round-ghost")
    med = dev(t, "med")
    t.act(med, "round.open", {"channel": None, "round": 1})
    t.send(dev(t, "na"), "plenary", "Art. 1.")
    future = close_body(t, 1)
    future["size"] = t.ledger.size + 5
    refused(t, t.act(med, "round.close", future, apply=False), UnknownCheckpointError)
    for size in (2, t.ledger.size - 1):
        earlier = close_body(t, 1, size=size)
        refused(t, t.act(med, "round.close", earlier, apply=False), UnknownCheckpointError)
    # A size the log had but a root it never had: the ledger accepts the size, every
    # holder of the tree refuses the root.
    wrong = close_body(t, 1)
    wrong["root"] = b64e(crypto.sha256(b"a root this log never had"))
    act = t.act(med, "round.close", wrong, apply=False)
    with pytest.raises(UnknownCheckpointError):
        check_tree_claim(act, t.ledger.size, t.tree.root)
    check_tree_claim(t.act(med, "round.close", close_body(t, 1), apply=False),
                     t.ledger.size, t.tree.root)  # fmt: skip


def test_countersign_by_a_non_head_or_over_other_figures_is_refused() -> None:
    t = world("round-cs")
    med = dev(t, "med")
    t.act(med, "round.open", {"channel": None, "round": 1})
    t.send(dev(t, "na"), "plenary", "Art. 1.")
    body = close_body(t, 1)
    refused(t, t.act(dev(t, "nh"), "round.countersign", body, apply=False), RoundError)
    t.act(med, "round.close", body)
    refused(t, t.act(dev(t, "na"), "round.countersign", body, apply=False), NotEntitledError)
    other = dict(body, size=int(body["size"]) - 1)
    refused(t, t.act(dev(t, "nh"), "round.countersign", other, apply=False), RoundError)
    t.act(dev(t, "nh"), "round.countersign", body)
    refused(t, t.act(dev(t, "nh"), "round.countersign", body, apply=False), RoundError)


# --- initials -----------------------------------------------------------------------------


def initial_body(sent: Sent, channel: str = "plenary") -> dict[str, JSONValue]:
    h = sent.sealed.header
    return {
        "channel": channel,
        "commit": b64e(h.commit),
        "draft": b64e(h.draft),
        "entry": b64e(h.leaf),
        "index": sent.index,
    }


def withdraw_body(sent: Sent) -> dict[str, JSONValue]:
    b = initial_body(sent)
    del b["commit"], b["index"]
    return b


def test_a_text_initialled_by_every_head_is_agreed() -> None:
    t = world("agreed")
    v1 = t.send(dev(t, "na"), "plenary", "Art. 1. Ceasefire at dawn.")
    t.act(dev(t, "nh"), "initial", initial_body(v1))
    assert v1.leaf not in initials(t).agreed
    assert set(initials(t).initials[v1.leaf]) == {"north"}
    last = t.act(dev(t, "sh"), "initial", initial_body(v1))
    agreed = initials(t).agreed[v1.leaf]
    assert set(agreed.initials) == {"north", "south"} and agreed.agreed_at == t.ledger.size - 1
    assert last.kind == "initial"
    # agreed is final: no withdrawal, no second initial
    refused(t, t.act(dev(t, "nh"), "initial.withdraw", withdraw_body(v1), apply=False),
            InitialError)  # fmt: skip


def test_initials_by_a_non_head_are_refused() -> None:
    t = world("initial-nonhead")
    v1 = t.send(dev(t, "na"), "plenary", "Art. 1.")
    for member in ("na", "med"):
        refused(t, t.act(dev(t, member), "initial", initial_body(v1), apply=False),
                NotEntitledError)  # fmt: skip


def test_initials_on_another_version_are_refused() -> None:
    t = world("initial-other")
    v1 = t.send(dev(t, "na"), "plenary", "Art. 1. At dawn.")
    t.act(dev(t, "nh"), "initial", initial_body(v1))
    v2 = t.send(dev(t, "na"), "plenary", "Art. 1. At noon.", reply_to=v1)
    # the later version resets: v1 can no longer be initialled, so never agreed
    refused(t, t.act(dev(t, "sh"), "initial", initial_body(v1), apply=False), InitialError)
    # a commitment that is not the version's
    bad = initial_body(v2)
    bad["commit"] = b64e(v1.sealed.header.commit)
    refused(t, t.act(dev(t, "sh"), "initial", bad, apply=False), InitialError)
    # an index holding another entry
    bad = initial_body(v2)
    bad["index"] = v1.index
    refused(t, t.act(dev(t, "sh"), "initial", bad, apply=False), InitialError)
    t.act(dev(t, "sh"), "initial", initial_body(v2))
    assert v2.leaf not in initials(t).agreed  # north initialled v1, not v2


def test_agreed_state_claimed_with_a_delegation_missing_is_not_agreed() -> None:
    t = world("agreed-missing")
    t.create_delegation("east", "eh")
    t.set_channel("plenary", delegations=["east", "north", "south"], members=["med"])
    v1 = t.send(dev(t, "na"), "plenary", "Art. 1.")
    t.act(dev(t, "nh"), "initial", initial_body(v1))
    t.act(dev(t, "sh"), "initial", initial_body(v1))
    assert v1.leaf not in initials(t).agreed
    t.act(dev(t, "eh"), "initial", initial_body(v1))
    assert set(initials(t).agreed[v1.leaf].initials) == {"east", "north", "south"}


def test_an_initial_is_withdrawn_until_agreed_and_not_twice() -> None:
    t = world("withdraw")
    v1 = t.send(dev(t, "na"), "plenary", "Art. 1.")
    refused(t, t.act(dev(t, "nh"), "initial.withdraw", withdraw_body(v1), apply=False),
            InitialError)  # fmt: skip
    t.act(dev(t, "nh"), "initial", initial_body(v1))
    refused(t, t.act(dev(t, "nh"), "initial", initial_body(v1), apply=False), InitialError)
    t.act(dev(t, "nh"), "initial.withdraw", withdraw_body(v1))
    t.act(dev(t, "sh"), "initial", initial_body(v1))
    assert v1.leaf not in initials(t).agreed


# --- calls for proposals ------------------------------------------------------------------


def open_call(t: Talks, deadline_in: int = 1000) -> None:
    body: dict[str, JSONValue] = {
        "call": len(calls(t).calls) + 1,
        "channel": "plenary",
        "deadline": t.time + deadline_in,
        "delegations": ["north", "south"],
    }
    t.act(dev(t, "med"), "call.open", body)


def commit(t: Talks, member: str, text: str, *, apply: bool = True) -> tuple[Sent, Act]:
    sent = t.send(dev(t, member), "plenary", text)
    body: dict[str, JSONValue] = {
        "call": 1,
        "commit": b64e(crypto.sha256(text.encode())),
        "entry": b64e(sent.leaf),
        "index": sent.index,
    }
    return sent, t.act(dev(t, member), "proposal.commit", body, apply=apply)


def reveal_body(t: Talks, sent: Sent) -> dict[str, JSONValue]:
    keys = {d: bytes(80) for d in sent.sealed.header.recipients}
    return {"call": 1, "entry": b64e(sent.leaf), "keys": keys_to_json(keys)}


def test_simultaneous_exchange_commit_release_reveal() -> None:
    t = world("call")
    open_call(t)
    north, _ = commit(t, "na", "north text")
    south, _ = commit(t, "sh", "south text")
    t.act(dev(t, "med"), "call.release", {"call": 1})
    t.act(dev(t, "na"), "proposal.reveal", reveal_body(t, north))
    [call] = calls(t).calls
    assert call.to_json()["unrevealed"] == ["south"]
    t.act(dev(t, "sh"), "proposal.reveal", reveal_body(t, south))
    assert calls(t).unrevealed() == []
    assert calls(t).proposal_at(north.index) is not None


def test_proposal_opened_before_the_release_is_refused() -> None:
    t = world("call-early")
    open_call(t)
    north, _ = commit(t, "na", "north text")
    refused(t, t.act(dev(t, "na"), "proposal.reveal", reveal_body(t, north), apply=False),
            NotReleasedError)  # fmt: skip


def test_release_by_a_non_mediator_is_refused() -> None:
    t = world("call-nonmed")
    open_call(t)
    commit(t, "na", "north")
    commit(t, "sh", "south")
    refused(t, t.act(dev(t, "nh"), "call.release", {"call": 1}, apply=False), NotEntitledError)


def test_early_release_before_every_commit_and_the_deadline_is_refused() -> None:
    t = world("call-release-early")
    open_call(t)
    commit(t, "na", "north")
    refused(t, t.act(dev(t, "med"), "call.release", {"call": 1}, apply=False), CallError)


def test_late_proposal_is_refused() -> None:
    t = world("call-late")
    open_call(t)
    commit(t, "na", "north")
    commit(t, "sh", "south")
    t.act(dev(t, "med"), "call.release", {"call": 1})
    t.enrol("south", "sa")
    _, late = commit(t, "sa", "late text", apply=False)
    refused(t, late, LateProposalError)


def test_proposal_after_the_deadline_is_refused_and_release_then_allowed() -> None:
    t = world("call-deadline")
    open_call(t, deadline_in=3)
    commit(t, "na", "north")
    t.time += 10
    _, late = commit(t, "sh", "south", apply=False)
    refused(t, late, LateProposalError)
    t.act(dev(t, "med"), "call.release", {"call": 1})
    assert calls(t).calls[0].to_json()["unrevealed"] == ["north"]


def test_a_sender_who_never_reveals_is_listed() -> None:
    t = world("call-unrevealed")
    open_call(t)
    commit(t, "na", "north")
    commit(t, "sh", "south")
    assert calls(t).unrevealed() == []  # not yet released: nothing is owed
    t.act(dev(t, "med"), "call.release", {"call": 1})
    assert [p.delegation for _, p in calls(t).unrevealed()] == ["north", "south"]


def test_reveal_by_another_member_or_to_the_wrong_devices_is_refused() -> None:
    t = world("call-reveal-wrong")
    open_call(t)
    north, _ = commit(t, "na", "north")
    commit(t, "sh", "south")
    t.act(dev(t, "med"), "call.release", {"call": 1})
    refused(t, t.act(dev(t, "nh"), "proposal.reveal", reveal_body(t, north), apply=False),
            NotEntitledError)  # fmt: skip
    short = reveal_body(t, north)
    keys = dict(short["keys"])
    keys.pop(next(iter(keys)))
    short["keys"] = keys
    refused(t, t.act(dev(t, "na"), "proposal.reveal", short, apply=False), CallError)


def test_a_second_proposal_or_someone_elses_draft_is_refused() -> None:
    t = world("call-second")
    open_call(t)
    commit(t, "na", "north")
    _, again = commit(t, "nh", "north again", apply=False)
    refused(t, again, CallError)
    theirs = t.send(dev(t, "na"), "plenary", "not mine")
    body: dict[str, JSONValue] = {
        "call": 1, "commit": b64e(bytes(32)), "entry": b64e(theirs.leaf), "index": theirs.index,
    }  # fmt: skip
    refused(t, t.act(dev(t, "sh"), "proposal.commit", body, apply=False), CallError)
