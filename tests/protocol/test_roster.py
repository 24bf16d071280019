"""Roster and channels (protocol/roster.py): wire round trips, signature coverage, the
authority table, chaining (stale, replay, concurrent), conflicts, atomicity, channels."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.encoding import JSONValue, b64e, canonical
from protocol.errors import (
    BadSignatureError,
    BadValueError,
    NonCanonicalError,
    ProtocolError,
    RosterConflictError,
    StaleRosterError,
    UnauthorisedChangeError,
    UnknownDeviceError,
    WrongTalksError,
)
from protocol.genesis import ExternalWitness, WitnessPolicy, found, witness_name
from protocol.keys import DeviceKeys
from protocol.records import ID_RE, verify_record
from protocol.roster import (
    CHANNEL_KINDS,
    CONTEXTS,
    MAX_DEVICES_PER_MEMBER,
    OPS,
    STAFF_ROLES,
    ChangeArgs,
    Roster,
    RosterChange,
    make_change,
)
from tests.helpers import make_rng
from tests.protocol.builders import Talks, leaf_paths, mutations, resign
from tests.protocol.builders import roster_state as state
from tests.protocol.test_genesis import names as display_names

_RNG = make_rng("test_roster/pool")
POOL = [DeviceKeys.generate(_RNG) for _ in range(6)]
ids = st.from_regex(ID_RE, fullmatch=True)
names = display_names  # what protocol.names allows
id_sets = st.lists(ids, unique=True, max_size=5).map(lambda xs: tuple(sorted(xs)))
device_sets = st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True).map(
    lambda ks: tuple(k.public for k in ks)
)


def refused(roster: Roster, change: RosterChange, error: type[ProtocolError]) -> None:
    """``apply`` raises ``error`` and leaves every part of the roster as it was."""
    before = state(roster)
    with pytest.raises(error):
        roster.apply(change)
    assert state(roster) == before


# --- round trips --------------------------------------------------------------------------


@functools.cache
def base_talks() -> Talks:
    return Talks("test_roster/base")


@st.composite
def change_args(draw: st.DrawFn, op: str) -> ChangeArgs:
    kw: dict[str, Any] = {}
    for key in OPS[op][1]:
        if key in ("delegation", "member", "channel"):
            kw[key] = draw(ids)
        elif key in ("name", "member_name"):
            kw[key] = draw(names)
        elif key == "role":
            kw[key] = draw(st.sampled_from(STAFF_ROLES))
        elif key == "kind":
            kw[key] = draw(st.sampled_from(CHANNEL_KINDS))
        elif key == "devices":
            kw[key] = draw(device_sets)
        elif key == "device":
            kw[key] = draw(st.sampled_from(POOL)).device_id
        elif key in ("delegations", "members"):
            kw[key] = draw(id_sets)
        elif key == "witness":
            kw[key] = "example.org/witness/" + draw(ids)
        elif key == "key":
            kw[key] = draw(st.sampled_from(POOL)).public.sign_pk
        elif key == "party":
            kw[key] = draw(st.one_of(st.sampled_from(["mediator", "outside"]), ids))
        elif key == "policy":
            kw[key] = WitnessPolicy(
                quorum=draw(st.integers(1, 64)),
                rule=draw(st.sampled_from(["parties", "count"])),
                max_age=draw(st.integers(10, 30 * 24 * 3600)),
            )
        elif key == "since":
            kw[key] = draw(st.integers(1, 2**53 - 1))
    return ChangeArgs(**kw)


@pytest.mark.parametrize("op", sorted(OPS))
@given(data=st.data(), time=st.integers(0, 2**53 - 1), author=st.sampled_from(POOL))
def test_every_op_round_trips(op: str, data: st.DataObject, time: int, author: DeviceKeys) -> None:
    args = data.draw(change_args(op))
    change = make_change(author=author, roster=base_talks().roster, op=op, args=args, time=time)
    again = RosterChange.from_json(change.to_json())
    assert again == change
    assert again.to_bytes() == change.to_bytes() == canonical(change.to_json())
    assert RosterChange.from_bytes(change.to_bytes()) == change
    assert again.args == args
    assert again.record_type == OPS[op][0]
    assert change.to_json()["t"] == OPS[op][0]


def test_unsorted_member_lists_cannot_be_signed() -> None:
    """Sets have one encoding: a change listing members out of order never exists."""
    with pytest.raises(NonCanonicalError):
        make_change(
            author=POOL[0],
            roster=base_talks().roster,
            op="channel.members",
            args=ChangeArgs(channel="c", delegations=(), members=("b", "a")),
            time=1,
        )


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("member.enrol", {"delegation": "d", "member": "m", "member_name": "", "devices": ()}),
        ("staff.enrol", {"member": "m", "member_name": "", "role": "mediator", "devices": "one"}),
        ("channel.create", {"channel": "c", "name": "", "kind": "secret", "delegations": ()}),
    ],
)
def test_bad_args_are_refused_at_parse(op: str, args: dict[str, Any]) -> None:
    if args.get("devices") == "one":
        args = {**args, "devices": (POOL[0].public,)}
    change = make_change(
        author=POOL[0],
        roster=base_talks().roster,
        op="member.remove",
        args=ChangeArgs(member="x"),
        time=1,
    )
    obj = change.to_json()
    raw_args: dict[str, JSONValue] = {}
    for key in OPS[op][1]:
        value = args.get(key, ())
        if key == "devices":
            raw_args[key] = [d.to_json() for d in value]
        elif isinstance(value, tuple):
            raw_args[key] = list(value)
        else:
            raw_args[key] = value
    obj = {**obj, "op": op, "t": OPS[op][0], "args": raw_args}
    with pytest.raises(BadValueError):
        RosterChange.from_json(resign(obj, POOL[0].signing, CONTEXTS[OPS[op][0]]))


def test_duplicate_devices_in_one_change_are_refused() -> None:
    change = make_change(
        author=POOL[0],
        roster=base_talks().roster,
        op="device.add",
        args=ChangeArgs(member="m", devices=(POOL[1].public,)),
        time=1,
    )
    obj = change.to_json()
    dev = POOL[1].public.to_json()
    obj = {**obj, "args": {"member": "m", "devices": [dev, dev]}}
    with pytest.raises(BadValueError):
        RosterChange.from_json(resign(obj, POOL[0].signing, crypto.CTX_ROSTER))


def test_op_must_match_record_type() -> None:
    t = base_talks()
    change = make_change(
        author=t.mediator.device,
        roster=t.roster,
        op="channel.members",
        args=ChangeArgs(channel="c", members=("med",)),
        time=1,
    )
    obj = {**change.to_json(), "t": "roster"}
    with pytest.raises(BadValueError):
        RosterChange.from_json(resign(obj, t.mediator.device.signing, crypto.CTX_ROSTER))


# --- the world the authority table runs in ------------------------------------------------


@functools.cache
def world() -> tuple[Talks, dict[str, DeviceKeys]]:
    """Mediator (2 devices), staff/observer/auditor, delegations north and south, a plain
    member ``nm``, a target member ``nt`` (2 devices), a removed member ``nx``, a
    mediator-side target ``tgt`` (2 devices), a plenary channel; plus the authors."""
    t = Talks("test_roster/world")
    t.add_device("med")
    t.enrol_staff("sam", "staff")
    t.enrol_staff("olga", "observer")
    t.enrol_staff("aud", "auditor")
    t.enrol_staff("tgt", "staff", devices=2)
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "nm")
    t.enrol("north", "nt", devices=2)
    nx = t.enrol("north", "nx")
    removed = nx.device
    t.remove_member("nx")
    t.enrol("south", "sm")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    origin = t.genesis.origin
    t.change(
        t.people["nh"].device,
        "witness.set",
        ChangeArgs(witness=f"{origin}/witness/north-box", key=WKEYS[0], party="north"),
    )
    t.change(
        t.mediator.device,
        "witness.set",
        ChangeArgs(witness=f"{origin}/witness/observer", key=WKEYS[1], party="outside"),
    )
    authors = {
        "mediator": t.mediator.device,
        "staff": t.people["sam"].device,
        "observer": t.people["olga"].device,
        "auditor": t.people["aud"].device,
        "head-of-target": t.people["nh"].device,
        "head-of-other": t.people["sh"].device,
        "plain-member": t.people["nm"].device,
        "target-member-itself": t.people["nt"].device,
        "removed-member-device": removed,
        "unknown-device": DeviceKeys.generate(make_rng("test_roster/unknown")),
    }
    return t, authors


_FRESH = make_rng("test_roster/fresh")
FRESH = [DeviceKeys.generate(_FRESH) for _ in range(48)]
WKEYS = [k.public.sign_pk for k in FRESH[40:44]]


def table_args(op: str, target: str) -> ChangeArgs:
    """Arguments of ``op`` aimed at north (``target == "delegation"``) or at the
    mediator side (``target == "mediator-side"``)."""
    t, _ = world()
    nt = t.people["nt"] if target == "delegation" else t.people["tgt"]
    origin = t.genesis.origin
    party, box = ("north", "north-box") if target == "delegation" else ("outside", "observer")
    return {
        "witness.set": ChangeArgs(witness=f"{origin}/witness/{box}", key=WKEYS[2], party=party),
        "witness.remove": ChangeArgs(witness=f"{origin}/witness/{box}"),
        "policy.set": ChangeArgs(policy=WitnessPolicy.parties(max_age=300)),
        "delegation.create": ChangeArgs(
            delegation="east",
            name="East",
            member="eh",
            member_name="East head",
            devices=(FRESH[0].public,),
        ),
        "member.enrol": ChangeArgs(
            delegation="north", member="nn", member_name="New", devices=(FRESH[1].public,)
        ),
        "staff.enrol": ChangeArgs(
            member="st2", member_name="Staff 2", role="observer", devices=(FRESH[2].public,)
        ),
        "member.remove": ChangeArgs(member=nt.id),
        "device.add": ChangeArgs(member=nt.id, devices=(FRESH[3].public,)),
        "device.remove": ChangeArgs(member=nt.id, device=nt.devices[1].device_id),
        "channel.create": ChangeArgs(
            channel="legal", name="Legal", kind="working_group", delegations=("north",)
        ),
        "channel.members": ChangeArgs(channel="plenary", delegations=("north",), members=("med",)),
        "device.propose": ChangeArgs(member=nt.id, devices=(FRESH[4].public,)),
        "device.rotate": ChangeArgs(
            member=nt.id, device=nt.devices[1].device_id, devices=(FRESH[6].public,)
        ),
        "device.revoke": ChangeArgs(member=nt.id, device=nt.devices[1].device_id, since=1),
        "delegation.head": ChangeArgs(delegation="north", member="nm"),
        "member.leave": ChangeArgs(member=nt.id),
    }[op]


def effect(op: str, roster: Roster, target: str) -> bool:
    """Did ``op`` (from :func:`table_args`) take effect on ``roster``?"""
    member = "nt" if target == "delegation" else "tgt"

    def member_has(member_id: str, pred: Callable[[Any], bool]) -> bool:
        m = roster.members.get(member_id)
        return m is not None and pred(m)

    def channel_has(channel_id: str) -> bool:
        c = roster.channels.get(channel_id)
        return c is not None and c.delegations == ("north",)

    checks: dict[str, Callable[[], bool]] = {
        "delegation.create": lambda: (
            "east" in roster.delegations and member_has("eh", lambda m: m.role == "head")
        ),
        "member.enrol": lambda: member_has("nn", lambda m: m.delegation == "north"),
        "staff.enrol": lambda: member_has("st2", lambda m: m.role == "observer"),
        "member.remove": lambda: not roster.members[member].active,
        "device.add": lambda: FRESH[3].device_id in roster.members[member].devices,
        "device.remove": lambda: len(roster.members[member].devices) == 1,
        "channel.create": lambda: channel_has("legal"),
        "channel.members": lambda: channel_has("plenary"),
        "witness.set": lambda: WKEYS[2] in [k for _p, k in roster.witness_keys.values()],
        "witness.remove": lambda: len(roster.witness_keys) == 1,
        "policy.set": lambda: roster.policy.max_age == 300,
        "device.propose": lambda: FRESH[4].device_id in roster.proposals,
        "device.rotate": lambda: FRESH[6].device_id in roster.members[member].devices,
        "device.revoke": lambda: len(roster.revoked) == 1,
        "delegation.head": lambda: roster.delegations["north"].head == "nm",
        "member.leave": lambda: not roster.members[member].active,
    }
    return checks[op]()


MEDIATOR_OPS = (
    "delegation.create",
    "staff.enrol",
    "channel.create",
    "channel.members",
    "policy.set",
    "delegation.head",
)
HEAD_OPS = (
    "member.enrol",
    "member.remove",
    "device.add",
    "device.remove",
    "witness.set",
    "witness.remove",
    "device.rotate",
    "device.revoke",
)
# A member's own devices, alone: proposing a device for the head to approve, leaving.
SELF_OPS = ("device.propose", "member.leave")
AUTHORS = (
    "mediator",
    "staff",
    "observer",
    "auditor",
    "head-of-target",
    "head-of-other",
    "plain-member",
    "target-member-itself",
    "removed-member-device",
    "unknown-device",
)


def expected(op: str, author: str, target: str) -> type[ProtocolError] | None:
    """The authority table: ``None`` for accepted, else the error."""
    if author in ("removed-member-device", "unknown-device"):
        return UnknownDeviceError
    if op in SELF_OPS:
        ok = author == "target-member-itself" and target == "delegation"
        return None if ok else UnauthorisedChangeError
    if op in MEDIATOR_OPS or target == "mediator-side":
        return None if author == "mediator" else UnauthorisedChangeError
    return None if author == "head-of-target" else UnauthorisedChangeError


TABLE = [(op, author, "delegation") for op in sorted(OPS) for author in AUTHORS] + [
    (op, author, "mediator-side")
    for op in (
        "member.remove",
        "device.add",
        "device.remove",
        "witness.set",
        "witness.remove",
        "device.rotate",
        "device.revoke",
    )
    for author in AUTHORS
]


@pytest.mark.parametrize(("op", "author", "target"), TABLE)
def test_authority_table(op: str, author: str, target: str) -> None:
    t, authors = world()
    roster = t.roster.copy()
    change = make_change(
        author=authors[author], roster=roster, op=op, args=table_args(op, target), time=5
    )
    error = expected(op, author, target)
    if error is None:
        roster.apply(change)
        assert effect(op, roster, target)
        assert roster.head == change.leaf and roster.seq == t.roster.seq + 1
    else:
        refused(roster, change, error)
        assert not effect(op, roster, target)
    # The shared world is never touched: every cell works on a copy.
    assert state(t.roster) == state(world()[0].roster)


def test_authority_table_matches_the_brief() -> None:
    """Heads alone change their delegation; the mediator alone does everything else."""
    accepted: dict[tuple[str, str], list[str]] = {(op, target): [] for op, _, target in TABLE}
    for op, author, target in TABLE:
        if expected(op, author, target) is None:
            accepted[(op, target)].append(author)
    for (op, target), who in accepted.items():
        if op in HEAD_OPS and target == "delegation":
            assert who == ["head-of-target"], op
        elif op in SELF_OPS:
            assert who == (["target-member-itself"] if target == "delegation" else []), op
        else:
            assert who == ["mediator"], (op, target)


def test_head_manages_its_own_devices() -> None:
    t, _ = world()
    roster = t.roster.copy()
    nh = t.people["nh"]
    roster.apply(
        make_change(
            author=nh.device,
            roster=roster,
            op="device.add",
            args=ChangeArgs(member="nh", devices=(FRESH[5].public,)),
            time=5,
        )
    )
    roster.apply(
        make_change(
            author=nh.device,
            roster=roster,
            op="device.remove",
            args=ChangeArgs(member="nh", device=nh.device.device_id),
            time=6,
        )
    )
    # The head's first device is retired: it can no longer author anything.
    change = make_change(
        author=nh.device,
        roster=roster,
        op="member.remove",
        args=ChangeArgs(member="nm"),
        time=7,
    )
    refused(roster, change, UnknownDeviceError)
    assert list(roster.witnesses()["docket.test/talks/witness/north"]) == [FRESH[5].public.sign_pk]


def test_mediator_manages_its_own_devices() -> None:
    t, _ = world()
    roster = t.roster.copy()
    med = t.people["med"]
    roster.apply(
        make_change(
            author=med.devices[1],
            roster=roster,
            op="device.remove",
            args=ChangeArgs(member="med", device=med.devices[0].device_id),
            time=5,
        )
    )
    assert roster.device(med.devices[1].device_id)[0].id == "med"
    with pytest.raises(UnknownDeviceError):
        roster.device(med.devices[0].device_id)


# --- signature coverage -------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_signed_field_of_every_op_is_covered(op: str) -> None:
    t, authors = world()
    author = authors[
        "mediator"
        if op in MEDIATOR_OPS
        else "target-member-itself"
        if op in SELF_OPS
        else "head-of-target"
    ]
    change = make_change(
        author=author, roster=t.roster, op=op, args=table_args(op, "delegation"), time=5
    )
    t.roster.copy().apply(change)  # the unmutated change is good
    obj = change.to_json()
    context = CONTEXTS[OPS[op][0]]
    seen = set()
    for path, _what, mutated in mutations(obj):
        assert isinstance(mutated, dict)
        with pytest.raises(BadSignatureError):
            verify_record(author.public.sign_pk, context, mutated)
        roster = t.roster.copy()
        before = state(roster)
        with pytest.raises(ProtocolError):
            roster.apply(RosterChange.from_json(mutated))
        assert state(roster) == before
        seen.add(path)
    assert set(leaf_paths(obj)) <= seen


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("context", crypto.ALL_CONTEXTS, ids=lambda c: c.decode()[10:-1])
def test_signature_under_another_context_is_refused(op: str, context: bytes) -> None:
    """Context separation: the same bytes signed for another record type never verify."""
    t, authors = world()
    author = authors[
        "mediator"
        if op in MEDIATOR_OPS
        else "target-member-itself"
        if op in SELF_OPS
        else "head-of-target"
    ]
    change = make_change(
        author=author, roster=t.roster, op=op, args=table_args(op, "delegation"), time=5
    )
    moved = RosterChange.from_json(resign(change.to_json(), author.signing, context))
    roster = t.roster.copy()
    if context == CONTEXTS[OPS[op][0]]:
        roster.apply(moved)
    else:
        refused(roster, moved, BadSignatureError)


def test_roster_signature_cannot_pass_as_channel_signature() -> None:
    """A roster-context signature over a channel change (same author) is refused even
    though both contexts belong to the roster machine."""
    t, authors = world()
    change = make_change(
        author=authors["mediator"],
        roster=t.roster,
        op="channel.members",
        args=table_args("channel.members", "delegation"),
        time=5,
    )
    moved = RosterChange.from_json(
        resign(change.to_json(), authors["mediator"].signing, crypto.CTX_ROSTER)
    )
    refused(t.roster.copy(), moved, BadSignatureError)


def test_signature_by_another_device_is_refused() -> None:
    """Sending as someone else: a change naming the mediator's device but signed by
    another key is refused before authority is considered."""
    t, authors = world()
    change = make_change(
        author=authors["mediator"],
        roster=t.roster,
        op="channel.members",
        args=table_args("channel.members", "delegation"),
        time=5,
    )
    forged = RosterChange.from_json(
        resign(change.to_json(), authors["plain-member"].signing, crypto.CTX_CHANNEL)
    )
    refused(t.roster.copy(), forged, BadSignatureError)


# --- chaining: stale, replay, concurrency, other talks ------------------------------------


def _enrol(t: Talks, roster: Roster, member: str, dev: DeviceKeys, time: int = 9) -> RosterChange:
    return make_change(
        author=t.people["nh"].device,
        roster=roster,
        op="member.enrol",
        args=ChangeArgs(
            delegation="north", member=member, member_name=member, devices=(dev.public,)
        ),
        time=time,
    )


def test_stale_prev_is_refused() -> None:
    t, _ = world()
    roster = t.roster.copy()
    stale = _enrol(t, roster, "late", FRESH[10])
    roster.apply(_enrol(t, roster, "early", FRESH[11]))
    refused(roster, stale, StaleRosterError)


def test_concurrent_changes_cannot_both_apply() -> None:
    t, authors = world()
    roster = t.roster.copy()
    a = _enrol(t, roster, "a1", FRESH[12])
    b = make_change(
        author=authors["mediator"],
        roster=roster,
        op="staff.enrol",
        args=ChangeArgs(member="b1", member_name="B", role="staff", devices=(FRESH[13].public,)),
        time=9,
    )
    assert (a.prev, a.seq) == (b.prev, b.seq)
    roster.apply(a)
    refused(roster, b, StaleRosterError)


@pytest.mark.parametrize("field", ["seq-ahead", "seq-behind", "prev-other", "prev-genesis"])
def test_wrong_prev_or_seq_is_refused(field: str) -> None:
    t, _ = world()
    roster = t.roster.copy()
    change = _enrol(t, roster, "nn2", FRESH[14])
    obj = change.to_json()
    if field == "seq-ahead":
        obj["seq"] = change.seq + 1
    elif field == "seq-behind":
        obj["seq"] = change.seq - 1
    elif field == "prev-other":
        obj["prev"] = b64e(roster.history[-2])
    else:
        obj["prev"] = b64e(t.genesis.talks_id)
    bad = RosterChange.from_json(resign(obj, t.people["nh"].device.signing, crypto.CTX_ROSTER))
    refused(roster, bad, StaleRosterError)


def test_replay_of_an_old_change_is_refused() -> None:
    t, _ = world()
    roster = t.roster.copy()
    change = _enrol(t, roster, "nn3", FRESH[15])
    roster.apply(change)
    refused(roster, change, StaleRosterError)
    # ... and of any change in the history, e.g. the very first one.
    first = RosterChange.from_bytes(t.entries[1])
    refused(roster, first, StaleRosterError)


def test_change_from_other_talks_is_refused() -> None:
    t, _ = world()
    other = Talks("test_roster/other-talks")
    foreign = make_change(
        author=other.mediator.device,
        roster=other.roster,
        op="staff.enrol",
        args=ChangeArgs(member="x", member_name="X", role="staff", devices=(FRESH[16].public,)),
        time=1,
    )
    refused(t.roster.copy(), foreign, WrongTalksError)
    # The same change re-signed by our mediator but still naming the other talks.
    obj = {**foreign.to_json(), "author": b64e(t.mediator.device.device_id)}
    obj["prev"], obj["seq"] = b64e(t.roster.head), t.roster.seq + 1
    resigned = RosterChange.from_json(resign(obj, t.mediator.device.signing, crypto.CTX_ROSTER))
    refused(t.roster.copy(), resigned, WrongTalksError)


# --- conflicts ----------------------------------------------------------------------------


def _conflict_cases() -> dict[str, tuple[str, str, ChangeArgs]]:
    t, _ = world()
    nx_dev = next(d for d in t.roster.retired)
    nt = t.people["nt"]
    retired_pub = t.roster.members["nx"].devices[nx_dev]
    enrolled_pub = t.people["nm"].device.public
    return {
        "duplicate-delegation-id": (
            "mediator",
            "delegation.create",
            ChangeArgs(
                delegation="north",
                name="N",
                member="zz",
                member_name="Z",
                devices=(FRESH[20].public,),
            ),
        ),
        "duplicate-member-id-in-delegation": (
            "head-of-target",
            "member.enrol",
            ChangeArgs(
                delegation="north", member="nm", member_name="Newcomer", devices=(FRESH[21].public,)
            ),
        ),
        "reused-id-of-removed-member": (
            "head-of-target",
            "member.enrol",
            ChangeArgs(
                delegation="north", member="nx", member_name="Newcomer", devices=(FRESH[22].public,)
            ),
        ),
        "head-id-already-a-member": (
            "mediator",
            "delegation.create",
            ChangeArgs(
                delegation="west",
                name="W",
                member="sam",
                member_name="Newcomer",
                devices=(FRESH[23].public,),
            ),
        ),
        "staff-id-is-the-mediator": (
            "mediator",
            "staff.enrol",
            ChangeArgs(
                member="med", member_name="Newcomer", role="staff", devices=(FRESH[24].public,)
            ),
        ),
        "re-adding-retired-device-by-enrol": (
            "head-of-target",
            "member.enrol",
            ChangeArgs(
                delegation="north", member="ny", member_name="Newcomer", devices=(retired_pub,)
            ),
        ),
        "re-adding-retired-device-by-device-add": (
            "head-of-target",
            "device.add",
            ChangeArgs(member="nm", devices=(retired_pub,)),
        ),
        "re-adding-retired-device-as-staff": (
            "mediator",
            "staff.enrol",
            ChangeArgs(member="st9", member_name="Newcomer", role="staff", devices=(retired_pub,)),
        ),
        "device-already-enrolled-elsewhere": (
            "head-of-target",
            "device.add",
            ChangeArgs(member="nt", devices=(enrolled_pub,)),
        ),
        "removing-own-head": ("head-of-target", "member.remove", ChangeArgs(member="nh")),
        "removing-the-mediator": ("mediator", "member.remove", ChangeArgs(member="med")),
        "removing-last-device": (
            "head-of-target",
            "device.remove",
            ChangeArgs(member="nm", device=t.people["nm"].device.device_id),
        ),
        "removing-device-of-another-member": (
            "head-of-target",
            "device.remove",
            ChangeArgs(member="nm", device=nt.devices[1].device_id),
        ),
        "duplicate-channel-id": (
            "mediator",
            "channel.create",
            ChangeArgs(channel="plenary", name="Channel", kind="plenary", members=("med",)),
        ),
        "channel-with-unknown-delegation": (
            "mediator",
            "channel.create",
            ChangeArgs(channel="c2", name="Channel", kind="bilateral", delegations=("nowhere",)),
        ),
        "channel-without-members": (
            "mediator",
            "channel.create",
            ChangeArgs(channel="c3", name="Channel", kind="bilateral"),
        ),
        "members-of-unknown-channel": (
            "mediator",
            "channel.members",
            ChangeArgs(channel="nochannel", members=("med",)),
        ),
        "enrol-into-unknown-delegation": (
            "head-of-target",
            "member.enrol",
            ChangeArgs(
                delegation="east", member="e1", member_name="Newcomer", devices=(FRESH[25].public,)
            ),
        ),
        "too-many-devices": (
            "head-of-target",
            "device.add",
            ChangeArgs(member="nt", devices=tuple(d.public for d in FRESH[26 : 26 + 15])),
        ),
    }


CONFLICTS = sorted(_conflict_cases())


@pytest.mark.parametrize("case", CONFLICTS)
def test_conflicting_change_is_refused(case: str) -> None:
    t, authors = world()
    author, op, args = _conflict_cases()[case]
    roster = t.roster.copy()
    change = make_change(author=authors[author], roster=roster, op=op, args=args, time=9)
    refused(roster, change, RosterConflictError)


def test_mediator_cannot_remove_a_head_either() -> None:
    """Authority comes first: the mediator has no say over a delegation's roster."""
    t, authors = world()
    roster = t.roster.copy()
    change = make_change(
        author=authors["mediator"],
        roster=roster,
        op="member.remove",
        args=ChangeArgs(member="nh"),
        time=9,
    )
    refused(roster, change, UnauthorisedChangeError)


def test_removed_member_cannot_be_in_a_new_channel() -> None:
    t, authors = world()
    roster = t.roster.copy()
    change = make_change(
        author=authors["mediator"],
        roster=roster,
        op="channel.create",
        args=ChangeArgs(channel="c4", name="Channel", kind="bilateral", members=("nx",)),
        time=9,
    )
    refused(roster, change, UnknownDeviceError)


def test_device_limit_is_exactly_max_devices() -> None:
    t, authors = world()
    roster = t.roster.copy()
    have = len(roster.members["nt"].devices)
    room = MAX_DEVICES_PER_MEMBER - have
    roster.apply(
        make_change(
            author=authors["head-of-target"],
            roster=roster,
            op="device.add",
            args=ChangeArgs(member="nt", devices=tuple(d.public for d in FRESH[26 : 26 + room])),
            time=9,
        )
    )
    assert len(roster.members["nt"].devices) == MAX_DEVICES_PER_MEMBER


# --- channels -----------------------------------------------------------------------------


def test_channel_devices_follow_the_roster() -> None:
    t = Talks("test_roster/channels")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol_staff("sam")
    t.create_channel("bilat", delegations=["north"], members=["med", "sam"], kind="bilateral")

    def devices() -> set[bytes]:
        return set(t.roster.channel_devices("bilat"))

    def of(*members: str) -> set[bytes]:
        return {d.device_id for m in members for d in t.people[m].devices}

    assert devices() == of("nh", "med", "sam")
    na = t.enrol("north", "na")
    assert devices() == of("nh", "na", "med", "sam")
    t.enrol("south", "sa")  # another delegation: not in the channel
    assert devices() == of("nh", "na", "med", "sam")
    extra = t.add_device("na")
    assert extra.device_id in devices()
    t.remove_device("na", na.devices[0])
    assert devices() == of("nh", "na", "med", "sam")
    assert na.devices == [extra]
    t.remove_member("na")
    assert devices() == of("nh", "med", "sam")
    t.remove_member("sam")  # an individually listed member who is removed drops out
    assert devices() == of("nh", "med")
    t.set_channel("bilat", delegations=["north", "south"], members=["med"])
    assert devices() == of("nh", "sh", "sa", "med")
    assert [m.id for m in t.roster.channel_members("bilat")] == ["med", "nh", "sa", "sh"]
    assert t.roster.channels_of("sa") == ["bilat"]
    assert t.roster.is_channel_member("bilat", "nh")
    assert not t.roster.is_channel_member("bilat", "na")
    assert list(t.roster.channel_devices("bilat")) == sorted(t.roster.channel_devices("bilat"))


def test_unknown_channel_is_a_conflict() -> None:
    with pytest.raises(RosterConflictError):
        base_talks().roster.channel_devices("nope")


def test_witnesses_are_mediator_and_heads_and_quorum_is_capped() -> None:
    t = Talks("test_roster/witnesses", quorum=5, external_witnesses=1)
    assert t.roster.quorum() == 2  # mediator + the external witness
    t.create_delegation("north", "nh", devices=2)
    w = t.roster.witnesses()
    assert set(w) == {
        "docket.test/talks/witness/mediator",
        "docket.test/talks/witness/north",
        "witness.example/0",
    }
    assert w["docket.test/talks/witness/north"] == [
        d.public.sign_pk for d in t.people["nh"].devices
    ]
    assert t.roster.quorum() == 3


def test_history_and_copy_are_independent() -> None:
    t, _ = world()
    copy = t.roster.copy()
    assert state(copy) == state(t.roster)
    copy.apply(_enrol(t, copy, "nn9", FRESH[30]))
    assert state(copy) != state(t.roster)
    assert copy.history[:-1] == t.roster.history
    assert copy.history[0] == t.genesis.leaf
    assert copy.history[-1] == copy.head


# --- witness slots (regression) ------------------------------------------------------------


def test_external_witness_cannot_shadow_a_delegation_witness_slot() -> None:
    """Attack: the mediator names an external witness ``<origin>/witness/north`` in the
    genesis, then creates delegation ``north``.  ``witnesses()`` let the external key
    replace the head's keys, so the mediator (with the server) held north's cosigning
    slot and could reach the quorum without the delegation.  Now the delegation id is
    refused as a conflict and every slot keeps one owner."""
    t = Talks("test_roster/shadow", quorum=3, external_witnesses=1)
    _, ext_key = t.external[0]
    origin = t.genesis.origin
    shadow = found(
        mediator_keys=t.mediator.device,
        mediator="med",
        mediator_name="M",
        origin=origin,
        title="t",
        log_key=t.log_key.public_bytes(),
        witness=WitnessPolicy(
            quorum=2,
            external=(
                ExternalWitness(name=witness_name(origin, "north"), key=ext_key.public_bytes()),
            ),
        ),
        time=1,
    )
    roster = Roster(shadow)
    change = make_change(
        author=t.mediator.device,
        roster=roster,
        op="delegation.create",
        args=ChangeArgs(
            delegation="north",
            name="North",
            member="nh",
            member_name="Head",
            devices=(FRESH[40].public,),
        ),
        time=2,
    )
    refused(roster, change, RosterConflictError)
    assert roster.witnesses()[witness_name(origin, "north")] == [ext_key.public_bytes()]


def test_delegation_named_mediator_cannot_take_the_mediator_witness_slot() -> None:
    """A delegation called ``mediator`` would have replaced the mediator's witness keys
    with its head's (and lowered the effective quorum by one name)."""
    t = Talks("test_roster/mediator-slot")
    roster = t.roster.copy()
    change = make_change(
        author=t.mediator.device,
        roster=roster,
        op="delegation.create",
        args=ChangeArgs(
            delegation="mediator",
            name="M",
            member="mh",
            member_name="Head",
            devices=(FRESH[41].public,),
        ),
        time=2,
    )
    refused(roster, change, RosterConflictError)
    assert roster.witnesses() == {
        "docket.test/talks/witness/mediator": [t.mediator.device.public.sign_pk]
    }


def test_every_witness_slot_has_exactly_one_owner() -> None:
    t = Talks("test_roster/slots", quorum=3, external_witnesses=2)
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    w = t.roster.witnesses()
    assert len(w) == 5
    keys = [k for ks in w.values() for k in ks]
    assert len(keys) == len(set(keys))
    assert t.roster.quorum() == 3
