"""The Wycheproof and CCTV vectors posted over HTTP get the protocol's verdict.

Every distinct public key in the vectors is posted as a joining device's key (Ed25519 as
``sign``, X25519 as ``enc``) to an open invitation of a real server on loopback.  A key
the protocol calls weak is ``422 weak_key``; any other gets past the key check and is
refused ``422 bad_signature``: the join signature posted is the vector's own signature
(for Ed25519 keys) or zeros, and Docket verifies it over the domain-separated join
record, which no vector signed.  Nothing is written: the invitation stays open.
"""

from __future__ import annotations

from protocol import crypto
from protocol.encoding import b64e
from protocol.errors import ProtocolError
from protocol.keys import DeviceKeys
from tests.server.harness import Harness
from tests.vectors.external import ed25519_cases, x25519_cases


def _weak(check: object, key: bytes) -> bool:
    try:
        check(key)  # type: ignore[operator]
    except ProtocolError as exc:
        assert exc.code == "weak_key"
        return True
    return False


async def test_vector_keys_and_signatures_over_http(talks: Harness) -> None:
    h = talks
    head = h.people["n-head"]
    inv = await h.ok(
        "POST",
        "/v1/invitations",
        person=head,
        body={"delegation": "north", "member": "n-vectors", "role": "member"},
    )
    path = f"/v1/invitations/{inv['id']}/accept"
    honest = DeviceKeys.generate(h.rng).public
    ed: dict[bytes, bytes] = {}
    for case in ed25519_cases():
        ed.setdefault(case.public, case.signature)
    x = {case.public for case in x25519_cases()}
    tried: list[tuple[str, bytes, bytes, bytes]] = [
        ("ed25519", key, b64e(honest.enc_pk).encode(), sig) for key, sig in ed.items()
    ] + [("x25519", key, b64e(honest.sign_pk).encode(), bytes(64)) for key in sorted(x)]
    verdicts = {"weak_key": 0, "bad_signature": 0}
    for kind, key, other, sig in tried:
        device = (
            {"enc": other.decode(), "sign": b64e(key)}
            if kind == "ed25519"
            else {"enc": b64e(key), "sign": other.decode()}
        )
        body = {"device": device, "name": "Vectors", "sig": b64e(sig), "token": inv["token"]}
        resp = await h.request("POST", path, body=body)
        problem = await resp.json(content_type=None)
        check = crypto.check_signing_key if kind == "ed25519" else crypto.check_box_key
        expected = "weak_key" if _weak(check, key) else "bad_signature"
        assert (resp.status, problem["code"]) == (422, expected), (kind, key.hex(), problem)
        verdicts[expected] += 1
    assert verdicts["weak_key"] > 20 and verdicts["bad_signature"] > 100, verdicts
    listed = await h.ok("GET", "/v1/invitations", person=head)
    assert [i["state"] for i in listed["invitations"]] == ["open"]
