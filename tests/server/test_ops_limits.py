"""Operations and limits: health, metrics, error mapping, rate limits, slow bodies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from protocol.crypto import Rng
from server.services.relay import RelayService
from tests.server.harness import Harness
from tests.server.promtext import types, value


async def test_healthz_and_request_ids(talks: Harness) -> None:
    h = talks
    resp = await h.request("GET", "/healthz")
    assert resp.status == 200
    assert await resp.json() == {
        "read_only": False,
        "size": h.require_ledger().size,
        "status": "ok",
    }
    assert len(resp.headers["X-Request-Id"]) == 16
    resp = await h.request("GET", "/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await h.request("GET", "/healthz", headers={"X-Request-Id": "bad id\u00e9"})
    assert resp.headers["X-Request-Id"] != "bad id"


async def test_metrics_exposition(talks: Harness) -> None:
    h = talks
    await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "plenary", "x"))
    await h.checkpoint()
    text = await (await h.request("GET", "/metrics")).text()
    roster = value(text, "docket_requests_total", route="/v1/roster", method="POST", status="200")
    assert roster == 9
    assert value(text, "docket_entries_appended_total", kind="draft") == 1
    assert value(text, "docket_entries_appended_total", kind="genesis") == 1
    assert types(text)["docket_batch_size"] == "histogram"
    assert value(text, "docket_batch_size_bucket", le="+Inf") is not None
    assert value(text, "docket_log_size") == h.require_ledger().size
    assert value(text, "docket_checkpoint_age_seconds") is not None
    assert value(text, "docket_ws_clients") == 0
    assert value(text, "docket_request_seconds_count", route="/v1/drafts") == 1
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2, line


async def test_unknown_route_and_method(talks: Harness) -> None:
    h = talks
    resp = await h.request("GET", "/v1/nothing")
    assert (resp.status, (await resp.json())["code"]) == (404, "not_found")
    resp = await h.request("DELETE", "/v1/drafts/1")
    assert (resp.status, (await resp.json())["code"]) == (405, "method_not_allowed")
    assert resp.content_type == "application/problem+json"


async def test_unexpected_errors_leak_nothing(
    talks: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    h = talks

    async def broken(self: RelayService, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(RelayService, "inbox", broken)
    with caplog.at_level(logging.ERROR, logger="docket.server"):
        resp = await h.request("GET", "/v1/inbox", person=h.people["obs"])
    assert resp.status == 500
    body = await resp.read()
    assert b"secret" not in body
    assert (await resp.json())["code"] == "internal"
    assert "secret internal detail" in caplog.text  # logged with its traceback
    assert resp.headers["X-Request-Id"] in caplog.text


async def test_rate_limit_answers_429_and_changes_nothing(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
    # Restart the same data directory with a tight limit.
    async with Harness.start(tmp_path, rng, init=h.init, rate=1.0, rate_burst=3) as h2:
        h2.ledger, h2.people, h2.genesis = h.ledger, h.people, h.genesis
        adv = h2.people["n-adv"]
        statuses = []
        for _ in range(5):
            resp = await h2.request("GET", "/v1/inbox", person=adv)
            statuses.append(resp.status)
            if resp.status == 429:
                assert (await resp.json())["code"] == "rate_limited"
                assert int(resp.headers["Retry-After"]) >= 1
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429]
        before = h2.counts()
        sealed = h2.seal(adv, "plenary", "x")
        resp = await h2.post_draft(adv, sealed)
        assert resp.status == 429
        assert h2.counts() == before


async def test_per_address_limit_on_unauthenticated_routes(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng, ip_rate=1.0, ip_burst=2) as h:
        statuses = [(await h.request("GET", "/v1/talks")).status for _ in range(4)]
        assert statuses == [404, 404, 429, 429]


async def test_slow_body_times_out(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng, body_timeout=0.3) as h:
        await h.found()
        token = await h.token(h.people["med"])

        async def trickle() -> AsyncIterator[bytes]:
            yield b'{"delegation":null,'
            await asyncio.sleep(1.0)
            yield b'"member":"x","role":"auditor"}'

        resp = await h.session.post(
            f"{h.base}/v1/invitations",
            data=trickle(),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status == 408
        assert (await resp.json())["code"] == "timeout"


async def test_declared_oversized_body_is_refused_unread(talks: Harness) -> None:
    h = talks
    data = b"x" * (2 * 1024 * 1024)
    resp = await h.request("POST", "/v1/roster", person=h.people["med"], data=data)
    assert resp.status == 413
    assert (await resp.json())["code"] == "too_large"
