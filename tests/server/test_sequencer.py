"""The sequencer: group commit, and what a failed commit must (not) do."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from typing import Any

import pytest

import server.services.sequencer as sequencer_module
from protocol.receipt import Promise
from tests.server.harness import Harness, Person


async def _many_senders(h: Harness, n: int) -> list[Person]:
    head = h.people["n-head"]
    return [await h.add_member(head, f"m{i}") for i in range(n)]


async def test_concurrent_writes_are_group_committed(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = talks
    senders = await _many_senders(h, 12)
    for s in senders:
        await h.token(s)
    real = sequencer_module.append_batch_txn

    def slow(conn: sqlite3.Connection, records: Any) -> None:
        # A slow disk: everything that arrives meanwhile must join the next batch.
        time.sleep(0.05)
        real(conn, records)

    monkeypatch.setattr(sequencer_module, "append_batch_txn", slow)
    sealed = [h.seal(s, "plenary", f"from {s.member}") for s in senders]
    responses = await asyncio.gather(
        *(h.post_draft(s, d) for s, d in zip(senders, sealed, strict=True))
    )
    promises = []
    for resp in responses:
        assert resp.status == 200, await resp.text()
        promises.append(Promise.from_json((await resp.json())["promise"]))
    indices = sorted(p.index for p in promises)
    assert indices == list(range(indices[0], indices[0] + len(senders)))
    for p in promises:
        p.verify(h.init.log_key)
    text = await (await h.request("GET", "/metrics")).text()
    match = re.search(r"^docket_batch_size_max (\d+)$", text, re.M)
    assert match is not None and int(match.group(1)) > 1
    await h.sync()  # the local ledger replays every committed entry


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (sqlite3.OperationalError("disk I/O error"), 503, "unavailable"),
        (sqlite3.OperationalError("database or disk is full"), 507, "insufficient_storage"),
    ],
)
async def test_failed_commit_gives_no_promise_and_recovers(
    talks: Harness,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    code: str,
) -> None:
    h = talks
    sender = h.people["n-adv"]
    real = sequencer_module.append_batch_txn
    failures = [error]

    def flaky(conn: sqlite3.Connection, records: Any) -> None:
        if failures:
            raise failures.pop()
        real(conn, records)

    monkeypatch.setattr(sequencer_module, "append_batch_txn", flaky)
    await h.token(sender)
    before = h.counts()
    sealed = h.seal(sender, "plenary", "x")
    resp = await h.post_draft(sender, sealed)
    assert resp.status == status
    assert (await resp.json())["code"] == code
    assert h.counts() == before
    health = await h.ok("GET", "/healthz")
    assert health["read_only"] is False
    # The in-memory ledger was rebuilt: the same draft (same counter) is accepted now.
    promise = await h.send(sender, sealed)
    assert promise.index == before["entries"]


async def test_unrecoverable_commit_failure_goes_read_only(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = talks
    sender = h.people["n-adv"]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sequencer_module, "append_batch_txn", broken)
    monkeypatch.setattr(sequencer_module, "recover_txn", broken)
    await h.token(sender)
    resp = await h.post_draft(sender, h.seal(sender, "plenary", "x"))
    assert resp.status == 503
    assert await h.ok("GET", "/healthz") == {
        "code": "read_only",
        "read_only": True,
        "reason": "cannot rebuild the log state after a failed commit",
        "size": h.require_ledger().size,
        "status": "read_only",
    }
    resp = await h.post_draft(sender, h.seal(sender, "plenary", "y"))
    assert (resp.status, (await resp.json())["code"]) == (503, "read_only")
    # Reads still work.
    assert (await h.request("GET", "/v1/inbox", person=sender)).status == 200
