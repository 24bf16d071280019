"""Bad input classes on every JSON route: the right status and stable code, and the
database unchanged (row counts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from protocol.encoding import b64e, canonical
from protocol.keys import DeviceKeys
from protocol.roster import ChangeArgs
from tests.server.harness import Harness

Body = dict[str, Any]


def _routes(h: Harness) -> dict[str, tuple[str, str | None, Body, str | None]]:
    """route name -> (path, caller, a well-formed body, a base64 field in it)."""
    adv = h.people["n-adv"]
    change = h.make_change(
        h.people["med"],
        "channel.create",
        ChangeArgs(channel="c", name="C", kind="plenary", delegations=("north",)),
    )
    sealed = h.seal(adv, "plenary", "x")
    receipt = h.receipt(h.people["s-adv"], sealed, 1)
    genesis = h.genesis
    assert genesis is not None
    return {
        "challenge": ("/v1/auth/challenge", None, {"device": b64e(adv.device)}, "device"),
        "token": (
            "/v1/auth/token",
            None,
            {"challenge": b64e(b"c" * 32), "device": b64e(adv.device), "sig": b64e(b"s" * 64)},
            "challenge",
        ),
        "invitation": (
            "/v1/invitations",
            "n-head",
            {"delegation": "north", "member": "newbie", "role": "member"},
            None,
        ),
        "accept": (
            "/v1/invitations/AAAAAAAAAAAAAAAAAAAAAA/accept",
            None,
            {
                "device": DeviceKeys.generate(h.rng).public.to_json(),
                "name": "N",
                "sig": b64e(b"s" * 64),
                "token": b64e(b"t" * 32),
            },
            "token",
        ),
        "roster": ("/v1/roster", "n-adv", change.to_json(), "prev"),
        "receipts": ("/v1/receipts", "s-adv", {"receipts": [receipt.to_json()]}, None),
        "cosignature": (
            "/v1/log/cosignatures",
            "n-head",
            {"signature": "— x AAAA", "size": 1},
            None,
        ),
        "talks": (
            "/v1/talks",
            None,
            {"genesis": genesis.to_json(), "token": b64e(b"t" * 32)},
            "token",
        ),
    }


def _nest(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


GENERIC: dict[str, tuple[Callable[[Body], bytes], int, str]] = {
    "whitespace": (lambda b: canonical(b).replace(b":", b": ", 1), 400, "non_canonical"),
    "unsorted-keys": (
        lambda b: (
            b"{"
            + b",".join(
                canonical({k: v})[1:-1] for k, v in sorted({**b, "0": 0}.items(), reverse=True)
            )
            + b"}"
        ),
        400,
        "non_canonical",
    ),
    "duplicate-key": (lambda b: canonical(b)[:-1] + b',"zz":1,"zz":1}', 400, "malformed"),
    "float": (lambda b: canonical({**b, "zz": 0})[:-1].rstrip(b"0") + b"1.5}", 400, "malformed"),
    "not-json": (lambda b: b"hello", 400, "malformed"),
    "not-utf8": (lambda b: b'{"a":"\xff"}', 400, "malformed"),
    "too-deep": (lambda b: _nest(40), 400, "too_deep"),
    "empty": (lambda b: b"", 400, "malformed"),
    "oversized": (lambda b: b'"' + b"a" * (2 * 1024 * 1024) + b'"', 413, "too_large"),
    "top-level-list": (lambda b: b"[]", 422, "wrong_type"),
    "missing-field": (lambda b: b"{}", 422, "missing_field"),
    "unknown-field": (lambda b: canonical({**b, "zzz": 1}), 422, "unknown_field"),
}


@pytest.mark.parametrize(
    "route",
    ["challenge", "token", "invitation", "accept", "roster", "receipts", "cosignature", "talks"],
)
async def test_bad_bodies(talks: Harness, route: str) -> None:
    h = talks
    path, caller, body, b64_field = _routes(h)[route]
    person = None if caller is None else h.people[caller]
    if person is not None:
        await h.token(person)
    cases = dict(GENERIC)
    if b64_field is not None:
        field = b64_field
        cases["bad-base64"] = (lambda b: canonical({**b, field: "!!!!"}), 400, "malformed")
        cases["padded-base64"] = (
            lambda b: canonical({**b, field: b[field] + "="}),
            400,
            "malformed",
        )
        cases["base64-wrong-type"] = (lambda b: canonical({**b, field: 7}), 422, "wrong_type")
        cases["base64-wrong-length"] = (
            lambda b: canonical({**b, field: b64e(b"\x00" * 5)}),
            422,
            "bad_value",
        )
    first = sorted(body)[0]
    cases["wrong-type"] = (lambda b: canonical({**b, first: [1]}), 422, "wrong_type")
    before = h.counts()
    for case, (make, status, code) in cases.items():
        resp = await h.request("POST", path, person=person, data=make(body))
        got = await resp.json()
        assert (resp.status, got.get("code")) == (status, code), (route, case, got)
        assert resp.content_type == "application/problem+json"
        assert got["type"] == f"urn:docket:error:{code}"
        assert h.counts() == before, (route, case)
