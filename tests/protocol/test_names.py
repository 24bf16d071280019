"""Names people read (protocol.names): refused at the protocol level, so they never reach
the signed log; look-alike names refused within one talks."""

from __future__ import annotations

import pytest

from protocol import crypto
from protocol.encoding import JSONValue
from protocol.envelope import Payload
from protocol.errors import BadNameError, ConfusableNameError, ProtocolError, UnsafeTextError
from protocol.genesis import Genesis
from protocol.names import check_name, check_text, normalise_name, skeleton, unsafe_characters
from protocol.roster import ChangeArgs, RosterChange
from tests.protocol.builders import Talks, resign

UNREADABLE = {
    "rtl-override": "Eve\u202etxt.exe",
    "rtl-isolate": "Eve\u2067x\u2069",
    "zero-width-space": "Me\u200bdiator",
    "zero-width-joiner": "North\u200d",
    "soft-hyphen": "No\u00adrth",
    "nul": "North\x00",
    "c0-escape": "North\x1b[2J",
    "c1-csi": "North\x9b31m",
    "line-separator": "North\u2028South",
    "paragraph-separator": "North\u2029",
    "hangul-filler": "North\u3164",
    "private-use": "North\ue000",
    "unassigned": "North\U000e0080",
}


@pytest.mark.parametrize("name", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_characters_in_a_name_are_refused(name: str) -> None:
    with pytest.raises(BadNameError) as info:
        check_name(name, "name")
    assert info.value.code == "bad_name"
    # The refusal names the character by code point, never shows it raw.
    assert all(c not in info.value.detail for c in unsafe_characters(name))


@pytest.mark.parametrize(
    "name", ["", " North", "North ", "Jose\u0301", "x" * 201], ids=["empty", "lead", "trail",
                                                                   "nfd", "long"]
)  # fmt: skip
def test_a_name_has_one_form(name: str) -> None:
    with pytest.raises(BadNameError):
        check_name(name, "name")


def test_clients_normalise_what_people_type() -> None:
    assert normalise_name(" Jose\u0301 ") == "Jos\u00e9"
    assert check_name(normalise_name("Jose\u0301"), "name") == "Jos\u00e9"
    for fine in ("Délégation du Nord", "Делегация Севера", "وفد الشمال", "北方代表团", "O'Neil"):
        assert check_name(fine, "name") == fine


def test_skeletons_are_uts39() -> None:
    assert skeleton("N\u043erth") == skeleton("North")  # Cyrillic o
    assert skeleton("G\u03bfogle") == skeleton("Google")  # Greek omicron
    assert skeleton("rn") == skeleton("m")
    assert skeleton("North") != skeleton("South")


def _enrol_json(t: Talks, name: str) -> dict[str, JSONValue]:
    keys = t.new_device()
    head = t.head_of("north").device
    change = t.change(
        head,
        "member.enrol",
        ChangeArgs(
            delegation="north", member="nz", member_name="Placeholder", devices=(keys.public,)
        ),
        apply=False,
    )
    obj = change.to_json()
    obj["args"]["member_name"] = name
    return resign(obj, head.signing, crypto.CTX_ROSTER)


def _talks() -> Talks:
    t = Talks("test_names")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.create_channel("plenary", delegations=("north", "south"))
    return t


@pytest.mark.parametrize("name", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_bidi_and_invisible_names_never_reach_the_signed_log(name: str) -> None:
    t = _talks()
    with pytest.raises(BadNameError):
        RosterChange.from_json(_enrol_json(t, name))


def test_unreadable_mediator_name_or_title_in_a_genesis_is_refused() -> None:
    t = _talks()
    for field, value in (("title", "Talks\u202e"), ("mediator", "Me\u200bdiator")):
        obj = t.genesis.to_json()
        if field == "title":
            obj["title"] = value
        else:
            obj["mediator"]["name"] = value
        with pytest.raises(BadNameError):
            Genesis.from_json(obj)


def test_cyrillic_lookalike_of_a_member_name_is_refused() -> None:
    t = _talks()
    existing = t.roster.members["na"].name
    lookalike = existing.replace("e", "\u0435")  # Cyrillic e
    assert lookalike != existing
    keys = t.new_device()
    change = t.change(
        t.head_of("north").device,
        "member.enrol",
        ChangeArgs(delegation="north", member="nz", member_name=lookalike, devices=(keys.public,)),
        apply=False,
    )
    before = t.roster.copy()
    with pytest.raises(ConfusableNameError) as info:
        t.roster.copy().apply(change)
    assert info.value.code == "confusable_name"
    assert t.roster.members.keys() == before.members.keys()


def test_lookalike_of_a_removed_members_name_is_refused() -> None:
    t = _talks()
    name = t.roster.members["na"].name
    t.remove_member("na")
    keys = t.new_device()
    change = t.change(
        t.head_of("north").device,
        "member.enrol",
        ChangeArgs(delegation="north", member="nz", member_name=name, devices=(keys.public,)),
        apply=False,
    )
    with pytest.raises(ConfusableNameError):
        t.roster.copy().apply(change)


def test_lookalike_delegation_and_channel_names_are_refused() -> None:
    t = _talks()
    delegation = t.roster.delegations["north"].name
    keys = t.new_device()
    change = t.change(
        t.mediator.device,
        "delegation.create",
        ChangeArgs(
            delegation="north2",
            name=delegation.replace("o", "\u043e"),
            member="n2h",
            member_name="Another head",
            devices=(keys.public,),
        ),
        apply=False,
    )
    with pytest.raises(ConfusableNameError):
        t.roster.copy().apply(change)
    channel = t.roster.channels["plenary"].name
    change = t.change(
        t.mediator.device,
        "channel.create",
        ChangeArgs(channel="plenary2", name=channel.replace("l", "1"), kind="plenary",
                   delegations=("north",)),
        apply=False,
    )  # fmt: skip
    with pytest.raises(ConfusableNameError):
        t.roster.copy().apply(change)


@pytest.mark.parametrize(
    ("field", "value"),
    [("title", "invoice\u202efdp.exe"), ("title", "x\x9b31m"), ("file", "report\u202efdp.exe"),
     ("file", "a\u200b.txt"), ("file", "a\u2028b")],
)  # fmt: skip
def test_sender_refuses_an_unsafe_title_or_file_name(field: str, value: str) -> None:
    with pytest.raises(UnsafeTextError) as info:
        if field == "title":
            Payload(title=value, body="text")
        else:
            Payload(title="t", file_name=value, media_type="text/plain", file_data=b"x")
    assert info.value.code == "unsafe_text"
    with pytest.raises(ProtocolError):
        check_text(value, field)
