"""Rate limits: 429 problem+json with ``Retry-After``, nothing stored, and recovery.

A device (by token) and a client address (unauthenticated routes) each get a token
bucket.  A client that exceeds it is told when to come back; when it does, it is served
again; and one greedy device never slows down another.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from protocol.crypto import Rng
from protocol.encoding import b64e
from tests.faults.counters import bump
from tests.server.harness import Harness


async def _until_limited(h: Harness, method: str, path: str, **kwargs: object) -> tuple[int, int]:
    """Requests until a 429 (bounded); ``(successes, retry_after)``."""
    for served in range(100):
        resp = await h.request(method, path, **kwargs)  # type: ignore[arg-type]
        body = await resp.read()
        if resp.status == 429:
            bump("bad inputs tried")
            assert resp.content_type == "application/problem+json"
            assert json.loads(body)["code"] == "rate_limited"
            return served, int(resp.headers["Retry-After"])
        if resp.status == 500:
            bump("500s seen")
        assert resp.status < 500, body
    raise AssertionError("never rate-limited")


async def test_device_limit_answers_429_and_recovers(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
    async with Harness.start(tmp_path, rng, init=h.init, rate=4.0, rate_burst=4) as h2:
        h2.people, h2.genesis, h2.ledger = h.people, h.genesis, h.ledger
        greedy, other = h2.people["n-adv"], h2.people["s-adv"]
        await h2.token(greedy)
        await h2.token(other)
        served, retry_after = await _until_limited(h2, "GET", "/v1/inbox", person=greedy)
        assert served <= 4
        assert 1 <= retry_after <= 2
        # Writes are refused before they are read, and store nothing.
        before = h2.counts()
        resp = await h2.post_draft(greedy, h2.seal(greedy, "plenary", "over the limit"))
        assert resp.status == 429
        greedy.counter -= 1
        assert h2.counts() == before
        # Another device is not affected.
        assert (await h2.request("GET", "/v1/inbox", person=other)).status == 200
        # Coming back after Retry-After works.
        started = time.monotonic()
        await asyncio.sleep(retry_after)
        assert (await h2.request("GET", "/v1/inbox", person=greedy)).status == 200
        await h2.send(greedy, h2.seal(greedy, "plenary", "after waiting"))
        assert time.monotonic() - started < retry_after + 2


async def test_address_limit_on_unauthenticated_routes_recovers(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
    async with Harness.start(tmp_path, rng, init=h.init, ip_rate=4.0, ip_burst=4) as h2:
        h2.people, h2.genesis, h2.ledger = h.people, h.genesis, h.ledger
        device = {"device": b64e(h2.people["n-adv"].device)}
        served, retry_after = await _until_limited(h2, "POST", "/v1/auth/challenge", body=device)
        assert served <= 4
        for path in ("/v1/talks", "/v1/auth/token", "/v1/invitations/x/accept"):
            method = "GET" if path == "/v1/talks" else "POST"
            resp = await h2.request(method, path, body={})
            assert resp.status == 429, path
        # Authenticated routes are limited per device, not per address: still served.
        token = h.tokens[h2.people["med"].device] if h.tokens else None
        if token is not None:
            h2.tokens = dict(h.tokens)
            assert (await h2.request("GET", "/v1/inbox", person=h2.people["med"])).status == 200
        await asyncio.sleep(retry_after)
        resp = await h2.request("POST", "/v1/auth/challenge", body=device)
        assert resp.status == 200
