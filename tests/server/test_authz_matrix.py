"""Who may do what: every role against every route around one draft.

Setup: ``n-adv`` sent draft D to channel ``north-med`` (delegation north and the
mediator).  Each role then tries every action; the table says what must happen.  A
role with no token (``anon``) gets 401 everywhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from protocol.envelope import encode_upload
from protocol.roster import ChangeArgs
from tests.server.harness import Harness, Person

ACTIONS = (
    "get-draft",
    "get-ciphertext",
    "list-receipts",
    "own-receipt",
    "others-receipt",
    "send-to-channel",
    "send-as-sender",
    "read-log",
    "read-inbox",
    "create-channel",
)

OK = (200, "")
NOT_FOUND = (404, "not_found")
EXPECTED: dict[str, dict[str, tuple[int, str]]] = {
    "med": {
        "get-draft": OK,
        "get-ciphertext": OK,
        "list-receipts": OK,
        "own-receipt": OK,
        "others-receipt": (403, "forbidden"),
        "send-to-channel": OK,
        "send-as-sender": (403, "forbidden"),
        "read-log": OK,
        "read-inbox": OK,
        "create-channel": OK,
    },
    "n-head": {
        "get-draft": OK,
        "get-ciphertext": OK,
        "list-receipts": OK,
        "own-receipt": OK,
        "others-receipt": (403, "forbidden"),
        "send-to-channel": OK,
        "send-as-sender": (403, "forbidden"),
        "read-log": OK,
        "read-inbox": OK,
        "create-channel": (403, "unauthorised_change"),
    },
    "n-adv": {
        "get-draft": OK,
        "get-ciphertext": OK,
        "list-receipts": OK,
        "own-receipt": OK,
        "others-receipt": (403, "forbidden"),
        "send-to-channel": OK,
        "send-as-sender": OK,  # it is the sender
        "read-log": OK,
        "read-inbox": OK,
        "create-channel": (403, "unauthorised_change"),
    },
    "aud": {
        "get-draft": NOT_FOUND,
        "get-ciphertext": NOT_FOUND,
        "list-receipts": OK,
        "own-receipt": (422, "receipt_mismatch"),
        "others-receipt": (403, "forbidden"),
        "send-to-channel": (403, "not_a_member"),
        "send-as-sender": (403, "forbidden"),
        "read-log": OK,
        "read-inbox": OK,
        "create-channel": (403, "unauthorised_change"),
    },
}
for outsider in ("s-head", "s-adv", "obs"):
    EXPECTED[outsider] = {
        **EXPECTED["aud"],
        "list-receipts": NOT_FOUND,
    }
EXPECTED["anon"] = dict.fromkeys(ACTIONS, (401, "unauthenticated"))


async def _try(h: Harness, who: Person | None, action: str, draft: Any) -> tuple[int, str]:
    sealed, index = draft
    sender = h.people["n-adv"]
    actor = who or h.new_person("anon", "member", None)
    if action == "get-draft":
        resp = await h.request("GET", f"/v1/drafts/{index}", person=who)
    elif action == "get-ciphertext":
        resp = await h.request("GET", f"/v1/drafts/{index}/ciphertext", person=who)
    elif action == "list-receipts":
        resp = await h.request("GET", f"/v1/drafts/{index}/receipts", person=who)
    elif action in ("own-receipt", "others-receipt"):
        if action == "own-receipt":
            signer = actor
        else:
            signer = h.people["med"] if who is h.people["n-head"] else h.people["n-head"]
        receipt = h.receipt(signer, sealed, index)
        resp = await h.request(
            "POST", "/v1/receipts", person=who, body={"receipts": [receipt.to_json()]}
        )
    elif action == "send-to-channel":
        if who is None:
            upload = encode_upload(h.seal(sender, "north-med", "x", counter=99))
        else:
            upload = encode_upload(h.seal(who, "north-med", f"from {who.member}"))
        resp = await h.request("POST", "/v1/drafts", person=who, data=upload)
    elif action == "send-as-sender":
        upload = encode_upload(h.seal(sender, "north-med", "as sender"))
        resp = await h.request("POST", "/v1/drafts", person=who, data=upload)
        if resp.status != 200:
            sender.counter -= 1  # not logged: the next seal reuses the counter
    elif action == "read-log":
        resp = await h.request("GET", "/v1/log/entries?start=0&end=5", person=who)
    elif action == "read-inbox":
        resp = await h.request("GET", "/v1/inbox", person=who)
    else:
        change = h.make_change(
            actor,
            "channel.create",
            ChangeArgs(channel="new", name="New", kind="plenary", delegations=("north",)),
        )
        resp = await h.request("POST", "/v1/roster", person=who, body=change.to_json())
    code = "" if resp.status == 200 else str((await resp.json())["code"])
    if resp.status == 200 and action in ("send-to-channel", "send-as-sender", "create-channel"):
        await h.sync()
    return resp.status, code


@pytest.mark.parametrize("role", sorted(EXPECTED))
async def test_authorisation_matrix(talks: Harness, role: str) -> None:
    h = talks
    sealed = h.seal(h.people["n-adv"], "north-med", "the draft")
    promise = await h.send(h.people["n-adv"], sealed)
    who = None if role == "anon" else h.people[role]
    actual = {}
    for action in ACTIONS:
        actual[action] = await _try(h, who, action, (sealed, promise.index))
    assert actual == EXPECTED[role]
