"""Invitations (keys to the enroller) and roster/channel changes (the ledger decides)."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import crypto
from protocol.encoding import b64e, canonical
from protocol.keys import DeviceKeys, DevicePublic
from protocol.records import sign_record
from protocol.roster import ChangeArgs
from server.clock import now_ms
from tests.server.harness import Harness, Person


def _acceptance(h: Harness, invitation: str, token: str, keys: DeviceKeys, name: str) -> Any:
    signed = sign_record(
        keys.signing,
        crypto.CTX_JOIN,
        {
            "device": keys.public.to_json(),
            "invitation": invitation,
            "name": name,
            "talks": b64e(h.require_ledger().talks),
        },
    )
    return {"device": keys.public.to_json(), "name": name, "sig": signed["sig"], "token": token}


async def _invite(
    h: Harness, inviter: Person, member: str, role: str, delegation: str | None
) -> tuple[int, Any]:
    resp = await h.request(
        "POST",
        "/v1/invitations",
        person=inviter,
        body={"delegation": delegation, "member": member, "role": role},
    )
    return resp.status, await resp.json()


async def test_head_invites_a_member_who_is_then_enrolled(talks: Harness) -> None:
    h = talks
    head = h.people["n-head"]
    status, inv = await _invite(h, head, "n-expert", "member", "north")
    assert status == 200, inv
    assert set(inv) == {"expires", "id", "token"}
    keys = DeviceKeys.generate(h.rng)
    accepted = await h.ok(
        "POST",
        f"/v1/invitations/{inv['id']}/accept",
        body=_acceptance(h, inv["id"], inv["token"], keys, "Expert"),
    )
    assert accepted == {"state": "accepted"}
    listed = await h.ok("GET", "/v1/invitations", person=head)
    [item] = listed["invitations"]
    assert item["state"] == "accepted"
    assert item["name"] == "Expert"
    assert item["member"] == "n-expert"
    assert item["delegation"] == "north"
    device = DevicePublic.from_json(item["device"])
    assert device == keys.public
    # The head signs the enrolment with the keys read from the invitation.
    await h.change(
        head,
        "member.enrol",
        ChangeArgs(delegation="north", member="n-expert", member_name="Expert", devices=(device,)),
    )
    listed = await h.ok("GET", "/v1/invitations", person=head)
    assert listed["invitations"][0]["state"] == "used"
    # Other inviters do not see it.
    assert (await h.ok("GET", "/v1/invitations", person=h.people["s-head"]))["invitations"] == []
    # Accepting a used invitation is refused.
    resp = await h.request(
        "POST",
        f"/v1/invitations/{inv['id']}/accept",
        body=_acceptance(h, inv["id"], inv["token"], DeviceKeys.generate(h.rng), "Other"),
    )
    assert resp.status == 409


async def test_mediator_invites_heads_and_staff(talks: Harness) -> None:
    h = talks
    med = h.people["med"]
    assert (await _invite(h, med, "e-head", "head", "east"))[0] == 200
    assert (await _invite(h, med, "aud2", "auditor", None))[0] == 200
    assert (await _invite(h, med, "stf", "staff", None))[0] == 200


@pytest.mark.parametrize(
    ("inviter", "member", "role", "delegation", "status", "code"),
    [
        ("n-head", "x1", "member", "south", 403, "forbidden"),
        ("n-head", "x1", "head", "north", 403, "forbidden"),
        ("n-head", "x1", "auditor", None, 403, "forbidden"),
        ("n-adv", "x1", "member", "north", 403, "forbidden"),
        ("aud", "x1", "auditor", None, 403, "forbidden"),
        ("obs", "x1", "member", "north", 403, "forbidden"),
        ("med", "x1", "member", "north", 403, "forbidden"),
        ("med", "x1", "head", None, 422, "bad_value"),
        ("med", "x1", "head", "north", 409, "roster_conflict"),
        ("med", "x1", "auditor", "north", 422, "bad_value"),
        ("med", "x1", "king", None, 422, "bad_value"),
        ("med", "n-adv", "auditor", None, 409, "roster_conflict"),
        ("med", "Bad Id", "auditor", None, 422, "bad_value"),
        ("n-head", "x1", "member", "Bad Id", 422, "bad_value"),
    ],
)
async def test_invitation_authority(
    talks: Harness,
    inviter: str,
    member: str,
    role: str,
    delegation: str | None,
    status: int,
    code: str,
) -> None:
    h = talks
    before = h.counts()
    got_status, got = await _invite(h, h.people[inviter], member, role, delegation)
    assert (got_status, got["code"]) == (status, code)
    assert h.counts() == before


async def test_acceptance_failures(talks: Harness) -> None:
    h = talks
    _, inv = await _invite(h, h.people["n-head"], "n-x", "member", "north")
    keys = DeviceKeys.generate(h.rng)
    path = f"/v1/invitations/{inv['id']}/accept"
    good = _acceptance(h, inv["id"], inv["token"], keys, "X")
    cases: list[tuple[str, Any, int, str]] = [
        ("wrong-token", {**good, "token": b64e(b"\x07" * 32)}, 401, "bad_token"),
        ("wrong-name", {**good, "name": "Y"}, 422, "bad_signature"),
        (
            "enrolled-key",
            _acceptance(h, inv["id"], inv["token"], h.people["n-adv"].keys, "X"),
            409,
            "roster_conflict",
        ),
    ]
    for case, body, status, code in cases:
        before = h.counts()
        resp = await h.request("POST", path, body=body)
        assert resp.status == status, case
        assert (await resp.json())["code"] == code, case
        assert h.counts() == before, case
    missing = "/v1/invitations/AAAAAAAAAAAAAAAAAAAAAA/accept"
    resp = await h.request("POST", missing, body=good)
    assert resp.status == 404
    # The good acceptance works, and repeating it exactly is harmless.
    assert (await h.ok("POST", path, body=good)) == {"state": "accepted"}
    assert (await h.ok("POST", path, body=good)) == {"state": "accepted"}
    other = _acceptance(h, inv["id"], inv["token"], DeviceKeys.generate(h.rng), "X")
    resp = await h.request("POST", path, body=other)
    assert resp.status == 409
    assert (await resp.json())["code"] == "duplicate"


# --- roster and channel changes ------------------------------------------------------


async def test_roster_change_returns_a_valid_promise(talks: Harness) -> None:
    h = talks
    change = h.make_change(
        h.people["med"],
        "channel.create",
        ChangeArgs(
            channel="legal", name="Legal", kind="working_group", delegations=("north",), members=()
        ),
    )
    got = await h.ok("POST", "/v1/roster", person=h.people["n-adv"], body=change.to_json())
    from protocol.receipt import Promise

    promise = Promise.from_json(got["promise"])
    promise.verify(h.init.log_key)
    assert promise.leaf == change.leaf
    await h.sync()
    assert "legal" in h.require_ledger().roster.channels


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("head-enrols-in-other-delegation", 403, "unauthorised_change"),
        ("member-creates-channel", 403, "unauthorised_change"),
        ("stale", 409, "stale_roster"),
        ("existing-member", 409, "roster_conflict"),
        ("bad-time", 422, "bad_time"),
        ("bad-signature", 422, "bad_signature"),
        ("unknown-field", 422, "unknown_field"),
        ("unknown-author", 422, "unknown_device"),
    ],
)
async def test_bad_roster_changes_change_nothing(
    talks: Harness, case: str, status: int, code: str
) -> None:
    h = talks
    new = DeviceKeys.generate(h.rng).public
    enrol = ChangeArgs(delegation="south", member="zz", member_name="Z", devices=(new,))
    channel = ChangeArgs(channel="c2", name="C", kind="plenary", delegations=("north",))
    if case == "head-enrols-in-other-delegation":
        body = h.make_change(h.people["n-head"], "member.enrol", enrol).to_json()
    elif case == "member-creates-channel":
        body = h.make_change(h.people["n-adv"], "channel.create", channel).to_json()
    elif case == "stale":
        old = h.make_change(h.people["med"], "channel.create", channel)
        await h.change(
            h.people["med"],
            "channel.create",
            ChangeArgs(channel="c3", name="C", kind="plenary", delegations=("south",)),
        )
        body = old.to_json()
    elif case == "existing-member":
        args = ChangeArgs(delegation="south", member="s-adv", member_name="Z", devices=(new,))
        body = h.make_change(h.people["s-head"], "member.enrol", args).to_json()
    elif case == "bad-time":
        body = h.make_change(h.people["med"], "channel.create", channel).to_json()
        from protocol.roster import make_change

        body = make_change(
            author=h.people["med"].keys,
            roster=h.require_ledger().roster,
            op="channel.create",
            args=channel,
            time=now_ms() - 11 * 60 * 1000,
        ).to_json()
    elif case == "bad-signature":
        body = h.make_change(h.people["med"], "channel.create", channel).to_json()
        body["args"]["name"] = "Other"
    elif case == "unknown-field":
        body = h.make_change(h.people["med"], "channel.create", channel).to_json()
        body["extra"] = True
    else:
        stranger = Person(
            member="x", name="X", role="member", delegation=None, keys=DeviceKeys.generate(h.rng)
        )
        body = h.make_change(stranger, "channel.create", channel).to_json()
    await h.token(h.people["n-adv"])
    before = h.counts()
    resp = await h.request("POST", "/v1/roster", person=h.people["n-adv"], data=canonical(body))
    assert resp.status == status, await resp.text()
    assert (await resp.json())["code"] == code
    assert h.counts() == before
