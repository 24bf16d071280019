"""The server clock jumps: back one hour, forward one day.

The server's clock is injected (``create_app(clock=...)``), so these tests move it
while a real server runs on a real SQLite file.  What must hold:

* checkpoint times never decrease: a reading before the latest checkpoint is clamped
  to it and logged as an anomaly;
* the order of the log depends only on indices: entries appended across the jumps get
  consecutive indices, replay in a fresh ledger and come out of the inbox in order;
* tokens and challenges that expired never come back when the clock is set back,
  neither while the server runs nor across a restart (expiry is measured on a clock
  that never goes backwards, and expired tokens are deleted).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from protocol import crypto
from protocol.crypto import Rng
from protocol.encoding import b64d, b64e, parse
from protocol.records import sign_record
from server.clock import now_ms
from tests.server.harness import ORIGIN, Harness

HOUR = 3600 * 1000
DAY = 24 * HOUR
TOKEN_TTL_MS = 15 * 60 * 1000


class FakeClock:
    """The real clock plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return now_ms() + self.offset


def _checkpoint_times(h: Harness) -> list[tuple[int, int]]:
    conn = sqlite3.connect(h.settings.db_path)
    try:
        return [
            (int(s), int(t))
            for s, t in conn.execute("SELECT size, time FROM checkpoints ORDER BY size")
        ]
    finally:
        conn.close()


async def _send_at(h: Harness, clock: FakeClock, text: str) -> int:
    """A draft whose (client) time agrees with the server's moved clock; its index."""
    sender = h.people["n-adv"]
    promise = await h.send(sender, h.seal(sender, "plenary", text, time=clock()))
    await h.checkpoint(promise.index + 1)
    return promise.index


async def test_clock_set_back_an_hour_and_forward_a_day_keeps_checkpoints_and_order(
    tmp_path: Path, rng: Rng, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    async with Harness.start(tmp_path, rng, clock=clock) as h:
        await h.standard_talks()
        indices = [await _send_at(h, clock, "before")]
        with caplog.at_level(logging.WARNING):
            clock.offset = -HOUR  # the operator sets the clock back an hour
            indices.append(await _send_at(h, clock, "an hour back"))
            clock.offset = DAY  # then it runs a day ahead: every token has expired
            h.tokens.clear()
            indices.append(await _send_at(h, clock, "a day ahead"))
            clock.offset = 0  # and is corrected: a day back
            indices.append(await _send_at(h, clock, "corrected"))
        times = _checkpoint_times(h)
        assert [t for _, t in times] == sorted(t for _, t in times), times
        assert "system clock is 3599 s behind" in caplog.text  # the hour back was logged
        # The checkpoint after the day-back correction kept the day-ahead time.
        assert times[-1][1] >= times[-2][1] > now_ms() + DAY - HOUR
        # Order depends only on indices: consecutive, replayed in order (h.sync applies
        # every entry to a fresh ledger), and the inbox lists them in index order.
        assert indices == list(range(indices[0], indices[0] + 4))
        assert h.require_ledger().size == indices[-1] + 1
        items = (await h.ok("GET", f"/v1/inbox?after={indices[0] - 1}", person=h.people["s-adv"]))[
            "items"
        ]
        assert [i["index"] for i in items] == indices
        # Promise times never decrease either.
        conn = sqlite3.connect(h.settings.db_path)
        try:
            raw = [bytes(r[0]) for r in conn.execute("SELECT promise FROM entries ORDER BY idx")]
        finally:
            conn.close()
        promise_times = [int(parse(p)["time"]) for p in raw]
        assert promise_times == sorted(promise_times)


async def test_checkpoint_after_a_restart_with_the_clock_set_back_is_clamped(
    tmp_path: Path, rng: Rng, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    async with Harness.start(tmp_path, rng, clock=clock) as h:
        await h.standard_talks()
        await _send_at(h, clock, "before")
        saved = h.init, h.genesis, h.ledger, h.people
    latest = _checkpoint_times(h)[-1][1]
    clock.offset = -HOUR
    with caplog.at_level(logging.WARNING):
        async with Harness.start(tmp_path, rng, init=saved[0], clock=clock) as h2:
            h2.genesis, h2.ledger, h2.people = saved[1], saved[2], saved[3]
            await _send_at(h2, clock, "after the restart")
            times = [t for _, t in _checkpoint_times(h2)]
    assert times == sorted(times)
    assert times[-1] >= latest
    assert "behind the latest time seen" in caplog.text


async def _answer(h: Harness, challenge: str) -> dict[str, object]:
    keys = h.people["obs"].keys
    signed = sign_record(
        keys.signing,
        crypto.CTX_AUTH,
        {
            "challenge": challenge,
            "device": b64e(keys.device_id),
            "origin": ORIGIN,
            "talks": b64e(h.require_ledger().talks),
        },
    )
    return {"challenge": challenge, "device": signed["device"], "sig": signed["sig"]}


async def _inbox_status(h: Harness, token: str) -> tuple[int, str]:
    resp = await h.request("GET", "/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    body = await resp.json()
    return resp.status, str(body.get("code", ""))


async def test_expired_token_is_not_revived_by_setting_the_clock_back(
    tmp_path: Path, rng: Rng
) -> None:
    clock = FakeClock()
    async with Harness.start(tmp_path, rng, clock=clock) as h:
        await h.standard_talks()
        token = await h.login(h.people["obs"].keys)
        assert (await _inbox_status(h, token))[0] == 200
        clock.offset = TOKEN_TTL_MS + 60_000  # past its expiry
        assert await _inbox_status(h, token) == (401, "bad_token")
        clock.offset = -HOUR  # set back: the token stays expired
        assert await _inbox_status(h, token) == (401, "bad_token")
        clock.offset = 0
        assert await _inbox_status(h, token) == (401, "bad_token")
        # A challenge that expired is not revived either.
        keys = h.people["obs"].keys
        got = await h.ok("POST", "/v1/auth/challenge", body={"device": b64e(keys.device_id)})
        clock.offset = TOKEN_TTL_MS + 60_000 + 2 * 60_000  # past the 60 s challenge TTL
        await h.ok("POST", "/v1/auth/challenge", body={"device": b64e(keys.device_id)})
        clock.offset = -HOUR
        resp = await h.request(
            "POST", "/v1/auth/token", body=await _answer(h, str(got["challenge"]))
        )
        assert (resp.status, (await resp.json())["code"]) == (401, "bad_challenge")
        # Fresh logins still work at the set-back time.
        fresh = await h.login(keys)
        assert (await _inbox_status(h, fresh))[0] == 200
    token_hash = crypto.sha256(b64d(token))
    conn = sqlite3.connect(h.settings.db_path)
    try:
        stored = {bytes(r[0]) for r in conn.execute("SELECT hash FROM tokens")}
        mark = conn.execute("SELECT value FROM meta WHERE key = 'clock_high_water'").fetchone()
    finally:
        conn.close()
    assert token_hash not in stored  # expired credentials are deleted, not kept
    assert mark is not None and int(bytes(mark[0])) >= now_ms() + TOKEN_TTL_MS


async def test_expired_token_is_not_revived_by_a_restart_with_the_clock_set_back(
    tmp_path: Path, rng: Rng
) -> None:
    clock = FakeClock()
    async with Harness.start(tmp_path, rng, clock=clock) as h:
        await h.standard_talks()
        token = await h.login(h.people["obs"].keys)
        init, genesis, ledger, people = h.init, h.genesis, h.ledger, h.people
        clock.offset = TOKEN_TTL_MS + 60_000
        assert await _inbox_status(h, token) == (401, "bad_token")
    # Stopped, the clock set back an hour, started again on the same data directory.
    clock.offset = -HOUR
    async with Harness.start(tmp_path, rng, init=init, clock=clock) as h2:
        h2.genesis, h2.ledger, h2.people = genesis, ledger, people
        assert await _inbox_status(h2, token) == (401, "bad_token")
