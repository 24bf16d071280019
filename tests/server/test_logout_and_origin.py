"""Tokens end when their holder says so, and browsers on foreign sites get no WebSocket.

* Logout and rotation revoke the presented token in memory and in the database before
  answering: the old token is 401 ``bad_token`` on the very next request, and a
  WebSocket opened with it is closed.
* A WebSocket handshake carrying a foreign ``Origin`` (cross-site WebSocket hijacking)
  is refused with ``403 bad_origin``; no ``Origin`` (every non-browser client), the
  server's own origin and origins listed in ``ws_origins`` are allowed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from protocol import crypto
from protocol.crypto import Rng
from protocol.encoding import b64d
from server.services import relay as relay_module
from server.settings import ConfigError, Settings
from tests.server.harness import Harness


def _stored_hashes(h: Harness) -> set[bytes]:
    conn = sqlite3.connect(h.settings.db_path)
    try:
        return {bytes(r[0]) for r in conn.execute("SELECT hash FROM tokens")}
    finally:
        conn.close()


async def _status(
    h: Harness, token: str, method: str = "GET", path: str = "/v1/inbox"
) -> tuple[int, str]:
    resp = await h.request(method, path, headers={"Authorization": f"Bearer {token}"})
    body = await resp.json()
    return resp.status, str(body.get("code", "")) if isinstance(body, dict) else ""


async def test_logged_out_token_is_refused_at_once(talks: Harness) -> None:
    h = talks
    token = await h.login(h.people["n-adv"].keys)
    other = await h.login(h.people["n-adv"].keys)  # a second session of the same device
    assert (await _status(h, token))[0] == 200
    assert await _status(h, token, "POST", "/v1/auth/logout") == (200, "")
    assert await _status(h, token) == (401, "bad_token")
    assert await _status(h, token, "POST", "/v1/auth/logout") == (401, "bad_token")
    assert crypto.sha256(b64d(token)) not in _stored_hashes(h)
    # Only that token: the device's other session goes on.
    assert (await _status(h, other))[0] == 200


async def test_rotated_token_is_refused_at_once(talks: Harness) -> None:
    h = talks
    old = await h.login(h.people["s-adv"].keys)
    resp = await h.request("POST", "/v1/auth/rotate", headers={"Authorization": f"Bearer {old}"})
    got = await resp.json()
    assert resp.status == 200, got
    new = str(got["token"])
    assert new != old and isinstance(got["expires"], int)
    assert await _status(h, old) == (401, "bad_token")
    assert await _status(h, old, "POST", "/v1/auth/rotate") == (401, "bad_token")
    assert (await _status(h, new))[0] == 200
    hashes = _stored_hashes(h)
    assert crypto.sha256(b64d(old)) not in hashes
    assert crypto.sha256(b64d(new)) in hashes


async def test_logout_without_a_token_is_unauthenticated(talks: Harness) -> None:
    resp = await talks.request("POST", "/v1/auth/logout")
    assert resp.status == 401
    assert (await resp.json())["code"] == "unauthenticated"


async def test_websocket_of_a_logged_out_token_is_closed(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = talks
    monkeypatch.setattr(relay_module, "WS_RECHECK", 0.1)
    token = await h.login(h.people["obs"].keys)
    headers = {"Authorization": f"Bearer {token}"}
    async with h.session.ws_connect(h.base + "/v1/ws?after=-1", headers=headers) as ws:
        assert await _status(h, token, "POST", "/v1/auth/logout") == (200, "")
        async with asyncio.timeout(10):
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
        assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY


async def _handshake(h: Harness, origin: str | None) -> tuple[int, str]:
    headers = {
        "Authorization": f"Bearer {await h.token(h.people['obs'])}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    if origin is not None:
        headers["Origin"] = origin
    resp = await h.session.get(h.base + "/v1/ws?after=-1", headers=headers)
    try:
        if resp.status == 101:
            return 101, ""
        return resp.status, str((await resp.json()).get("code"))
    finally:
        resp.close()


async def test_websocket_from_a_foreign_origin_is_refused(talks: Harness) -> None:
    h = talks
    for origin in (
        "https://evil.example",
        "null",
        h.base.replace("127.0.0.1", "localhost"),  # another host name is another origin
        h.base.replace("http://", "https://"),  # another scheme too
        "javascript:alert(1)",
    ):
        assert await _handshake(h, origin) == (403, "bad_origin"), origin


async def test_websocket_from_no_or_the_same_origin_is_allowed(talks: Harness) -> None:
    h = talks
    assert (await _handshake(h, None))[0] == 101
    assert (await _handshake(h, h.base))[0] == 101
    assert (await _handshake(h, h.base + "/"))[0] == 101


async def test_websocket_from_an_allow_listed_origin_is_allowed(tmp_path: Path, rng: Rng) -> None:
    allowed = "https://desk.example, http://localhost:3000"
    async with Harness.start(tmp_path, rng, ws_origins=allowed) as h:
        await h.standard_talks()
        assert (await _handshake(h, "https://desk.example"))[0] == 101
        assert (await _handshake(h, "https://desk.example:443"))[0] == 101
        assert (await _handshake(h, "http://localhost:3000"))[0] == 101
        assert await _handshake(h, "https://desk.example.evil") == (403, "bad_origin")
        assert await _handshake(h, "http://localhost:3001") == (403, "bad_origin")


def test_malformed_ws_origins_setting_is_refused(tmp_path: Path) -> None:
    for bad in ("desk.example", "https://desk.example/path", "ftp://x", "https://a b"):
        with pytest.raises(ConfigError, match="ws_origins"):
            Settings(data=tmp_path, ws_origins=bad)
