"""Start-up self-check: a store that lost or changed entries makes the server read-only."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol import crypto
from protocol.checkpoint import Checkpoint, format_note, sign_checkpoint
from protocol.crypto import Rng
from protocol.encoding import b64d
from server.settings import KEY_FILE
from tests.server.harness import ORIGIN, Harness, table_counts


async def _populated(tmp_path: Path, rng: Rng) -> Harness:
    """Standard talks with three drafts, shut down cleanly; returns the stopped harness."""
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
        for i in range(3):
            await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "plenary", f"d{i}"))
        await h.checkpoint()
    return h


def _sql(h: Harness, *statements: str) -> None:
    conn = sqlite3.connect(h.settings.db_path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def test_restart_keeps_everything(tmp_path: Path, rng: Rng) -> None:
    h = await _populated(tmp_path, rng)
    size = h.require_ledger().size
    async with Harness.start(tmp_path, rng, init=h.init) as h2:
        h2.ledger, h2.people, h2.genesis = h.ledger, h.people, h.genesis
        assert await h2.ok("GET", "/healthz") == {"read_only": False, "size": size, "status": "ok"}
        cp, _, _ = await h2.checkpoint(size)
        assert cp.size == size
        # Counters, roster and drafts carried over: the next draft is accepted.
        await h2.send(h2.people["n-adv"], h2.seal(h2.people["n-adv"], "plenary", "after restart"))
        await h2.checkpoint()


def _forge_checkpoint(h: Harness, size: int, root: bytes) -> bytes:
    key = crypto.SigningKey(b64d((h.settings.data / KEY_FILE).read_text().strip()))
    cp = Checkpoint(origin=ORIGIN, size=size, root=root)
    return format_note(cp.body(), [sign_checkpoint(cp, ORIGIN, key)])


def _publish(h: Harness, note: bytes) -> None:
    h.settings.checkpoint_path.write_bytes(note)


TAMPERINGS: dict[str, Callable[[Harness], None]] = {
    "lost-last-entries": lambda h: _sql(
        h, f"DELETE FROM entries WHERE idx >= {h.require_ledger().size - 2}"
    ),
    "rewritten-entry": lambda h: _sql(
        h, "UPDATE entries SET body = replace(body, 'plenary', 'plenarz') WHERE kind = 'draft'"
    ),
    "lost-nodes": lambda h: _sql(h, "DELETE FROM nodes WHERE level > 0"),
    "checkpoint-file-other-root": lambda h: _publish(
        h, _forge_checkpoint(h, h.require_ledger().size - 1, b"\x00" * 32)
    ),
    "checkpoint-file-garbage": lambda h: _publish(h, b"garbage\n"),
    "checkpoint-file-beyond-store": lambda h: _publish(
        h, _forge_checkpoint(h, h.require_ledger().size + 5, b"\x00" * 32)
    ),
}


READ_ONLY_CODES = {
    "checkpoint-file-beyond-store": "store_behind",
    "checkpoint-file-other-root": "store_diverged",
    "lost-last-entries": "store_behind",
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
async def test_a_store_that_disagrees_makes_the_server_read_only(
    tmp_path: Path, rng: Rng, tampering: str
) -> None:
    h = await _populated(tmp_path, rng)
    TAMPERINGS[tampering](h)
    checkpoints = table_counts(h.settings.db_path)["checkpoints"]
    published = h.settings.checkpoint_path.read_bytes()
    async with Harness.start(tmp_path, rng, init=h.init) as h2:
        h2.ledger, h2.people, h2.genesis = h.ledger, h.people, h.genesis
        health = await h2.ok("GET", "/healthz")
        assert health["read_only"] is True
        assert health["status"] == "read_only"
        sender = h2.people["n-adv"]
        resp = await h2.post_draft(sender, h2.seal(sender, "plenary", "refused"))
        # A store behind or off what was published says so with its own code.
        expected = READ_ONLY_CODES.get(tampering, "read_only")
        assert (resp.status, (await resp.json())["code"]) == (503, expected)
        assert health["code"] == expected
        resp = await h2.request("POST", "/v1/roster", person=sender, body={"anything": True})
        assert resp.status in (400, 422, 503)
        # Reads still work, and nothing new is ever signed.
        assert (await h2.request("GET", "/v1/inbox", person=sender)).status == 200
        await asyncio.sleep(3 * h2.settings.checkpoint_interval)
        assert table_counts(h2.settings.db_path)["checkpoints"] == checkpoints
    assert h.settings.checkpoint_path.read_bytes() == published


async def test_missing_checkpoint_file_is_rewritten(tmp_path: Path, rng: Rng) -> None:
    h = await _populated(tmp_path, rng)
    published = h.settings.checkpoint_path.read_bytes()
    h.settings.checkpoint_path.unlink()
    async with Harness.start(tmp_path, rng, init=h.init) as h2:
        assert (await h2.ok("GET", "/healthz"))["read_only"] is False
        assert h2.settings.checkpoint_path.read_bytes() == published


async def test_leftover_uploads_are_cleaned_at_start(tmp_path: Path, rng: Rng) -> None:
    h = await _populated(tmp_path, rng)
    blobs = h.settings.blob_dir
    kept = sorted(p.name for p in blobs.iterdir() if p.is_file())
    (blobs / "tmp" / "partial").write_bytes(b"half an upload")
    (blobs / ("ab" * 32)).write_bytes(b"an upload whose draft was never logged")
    async with Harness.start(tmp_path, rng, init=h.init):
        assert sorted(p.name for p in blobs.iterdir() if p.is_file()) == kept
        assert list((blobs / "tmp").iterdir()) == []
