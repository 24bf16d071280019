"""Challenge-response login and bearer tokens."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from protocol import crypto
from protocol.crypto import Rng
from protocol.encoding import b64d, b64e
from protocol.keys import DeviceKeys
from protocol.records import sign_record
from protocol.roster import ChangeArgs
from tests.server.harness import ORIGIN, Harness


async def _challenge(h: Harness, device: bytes) -> str:
    got = await h.ok("POST", "/v1/auth/challenge", body={"device": b64e(device)})
    return str(got["challenge"])


def _answer(h: Harness, keys: DeviceKeys, challenge: str, *, origin: str = ORIGIN) -> object:
    signed = sign_record(
        keys.signing,
        crypto.CTX_AUTH,
        {
            "challenge": challenge,
            "device": b64e(keys.device_id),
            "origin": origin,
            "talks": b64e(h.require_ledger().talks),
        },
    )
    return {"challenge": challenge, "device": signed["device"], "sig": signed["sig"]}


async def _token_status(h: Harness, body: object) -> tuple[int, str]:
    resp = await h.request("POST", "/v1/auth/token", body=body)
    got = await resp.json()
    return resp.status, str(got.get("code", ""))


async def test_login_gives_a_token_that_authenticates(talks: Harness) -> None:
    h = talks
    adv = h.people["n-adv"]
    got = await h.ok("POST", "/v1/auth/challenge", body={"device": b64e(adv.device)})
    assert len(b64d(got["challenge"])) == 32
    assert isinstance(got["expires"], int)
    answer = await h.ok("POST", "/v1/auth/token", body=_answer(h, adv.keys, got["challenge"]))
    token = answer["token"]
    assert len(b64d(token)) == 32
    resp = await h.request("GET", "/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    # Only the token's hash is stored.
    conn = sqlite3.connect(h.settings.db_path)
    hashes = {bytes(r[0]) for r in conn.execute("SELECT hash FROM tokens")}
    conn.close()
    assert crypto.sha256(b64d(token)) in hashes
    assert b64d(token) not in hashes


async def test_unknown_device_gets_a_challenge_but_no_token(talks: Harness) -> None:
    h = talks
    stranger = DeviceKeys.generate(h.rng)
    challenge = await _challenge(h, stranger.device_id)  # same shape: no roster oracle
    assert await _token_status(h, _answer(h, stranger, challenge)) == (401, "bad_challenge")


async def test_challenge_is_single_use(talks: Harness) -> None:
    h = talks
    adv = h.people["n-adv"]
    challenge = await _challenge(h, adv.device)
    body = _answer(h, adv.keys, challenge)
    assert (await _token_status(h, body))[0] == 200
    assert await _token_status(h, body) == (401, "bad_challenge")


async def test_failed_attempt_burns_the_challenge(talks: Harness) -> None:
    h = talks
    adv = h.people["n-adv"]
    challenge = await _challenge(h, adv.device)
    assert await _token_status(h, _answer(h, adv.keys, challenge, origin="other")) == (
        401,
        "bad_challenge",
    )
    assert await _token_status(h, _answer(h, adv.keys, challenge)) == (401, "bad_challenge")


async def test_challenge_for_one_device_cannot_log_in_another(talks: Harness) -> None:
    h = talks
    challenge = await _challenge(h, h.people["n-adv"].device)
    body = _answer(h, h.people["s-adv"].keys, challenge)
    assert await _token_status(h, body) == (401, "bad_challenge")


async def test_signature_by_another_key_is_refused(talks: Harness) -> None:
    h = talks
    adv = h.people["n-adv"]
    challenge = await _challenge(h, adv.device)
    body = _answer(h, h.people["s-adv"].keys, challenge)
    assert isinstance(body, dict)
    body["device"] = b64e(adv.device)
    assert await _token_status(h, body) == (401, "bad_challenge")


async def test_expired_challenge_is_refused(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng, challenge_ttl=0.05) as h:
        await h.found()
        med = h.people["med"]
        challenge = await _challenge(h, med.device)
        await asyncio.sleep(0.1)
        assert await _token_status(h, _answer(h, med.keys, challenge)) == (401, "bad_challenge")


async def test_expired_token_is_refused(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng, token_ttl=0.2) as h:
        await h.found()
        med = h.people["med"]
        assert (await h.request("GET", "/v1/inbox", person=med)).status == 200
        await asyncio.sleep(0.3)
        resp = await h.request("GET", "/v1/inbox", person=med)
        assert resp.status == 401
        assert (await resp.json())["code"] == "bad_token"


async def test_missing_and_malformed_tokens(talks: Harness) -> None:
    h = talks
    cases = {
        None: "unauthenticated",
        "Basic abc": "unauthenticated",
        "Bearer": "unauthenticated",
        "Bearer not base64!": "bad_token",
        "Bearer " + b64e(b"\x00" * 31): "bad_token",
        "Bearer " + b64e(b"\x00" * 32): "bad_token",
    }
    for header, code in cases.items():
        headers = {} if header is None else {"Authorization": header}
        resp = await h.request("GET", "/v1/inbox", headers=headers)
        assert resp.status == 401, header
        assert (await resp.json())["code"] == code, header


async def test_removing_a_device_revokes_its_tokens(talks: Harness) -> None:
    h = talks
    head = h.people["n-head"]
    adv = h.people["n-adv"]
    spare = DeviceKeys.generate(h.rng)
    await h.change(head, "device.add", ChangeArgs(member="n-adv", devices=(spare.public,)))
    spare_token = await h.login(spare)
    auth = {"Authorization": f"Bearer {spare_token}"}
    assert (await h.request("GET", "/v1/inbox", headers=auth)).status == 200
    await h.change(head, "device.remove", ChangeArgs(member="n-adv", device=spare.device_id))
    resp = await h.request("GET", "/v1/inbox", headers=auth)
    assert resp.status == 401
    assert (await resp.json())["code"] == "bad_token"
    # The member's other device is unaffected.
    assert (await h.request("GET", "/v1/inbox", person=adv)).status == 200


async def test_tokens_survive_a_restart(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng) as h:
        await h.found()
        token = await h.token(h.people["med"])
        init, ledger, people = h.init, h.ledger, h.people
    async with Harness.start(tmp_path, rng, init=init) as h2:
        h2.ledger, h2.people = ledger, people
        resp = await h2.request("GET", "/v1/inbox", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
